/* The payload frame: what a namespace's sealed blob holds once opened with
 * its data key (vault.c). All integers little-endian:
 *
 *   "VPAY" | version u16 (1) | flags u16 (0) | yaml size u32 | the policy's
 *   canonical YAML | secrets size u32 | the serialised secrets
 *   (veil_secret_set_serialize)
 *
 * A frame without the header is version 0 (stores written before it had
 * one); the two cannot be mistaken for each other: "VPAY" read as a size is
 * 1.5 GB, past every limit. Another version or a flag is refused, never
 * guessed at. Only the key process opens payloads. */
#ifndef VEIL_CAS_PAYLOAD_H
#define VEIL_CAS_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

#define CAS_PAYLOAD_MAGIC "VPAY"
#define CAS_PAYLOAD_VERSION 1u
#define CAS_PAYLOAD_HEADER_SIZE 8u

/* yaml and secrets framed into *out, secure memory of *out_size bytes
 * (veil_secure_free). 0, VEIL_ELIMIT (a part over 4 GiB), VEIL_ENOMEM. */
int cas_payload_pack(const uint8_t *yaml, size_t yaml_size, const uint8_t *secrets,
		     size_t secrets_size, uint8_t **out, size_t *out_size) VEIL_MUST_CHECK;

/* The parts of an opened frame, views into plain: 0, or VEIL_EINVAL. */
int cas_payload_frame(const uint8_t *plain, size_t size, const uint8_t **yaml, size_t *yaml_size,
		      const uint8_t **secrets, size_t *secrets_size) VEIL_MUST_CHECK;

#endif
