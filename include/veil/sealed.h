/* The sealed configuration: the CAS's answer to a successful /v1/attest,
 * readable only with the private key of the runtime that attested
 * (docs/cas.md, "Attestation"). Byte for byte:
 *
 *   {"sealed":{"suite":"P256-SHA256-AES256GCM","enc":"B64","ct":"B64"}}\n
 *
 * (compact, the keys in this order; base64 as in RFC 4648, padded) where
 *
 *   enc, ct = HPKE base mode (include/veil/hpke.h: DHKEM(P-256, HKDF-SHA256),
 *             HKDF-SHA256, AES-256-GCM) to the public key of the client
 *             certificate the runtime attested with, of
 *   info    = "veil-config-v1" 0x00 || config_id            (no NUL at the end)
 *   aad     = SHA-256(evidence)   the evidence text exactly as the request's
 *                                 "evidence" string carried it
 *   pt      = the rendered configuration, a JSON document
 *
 * so the answer opens only with that key, for that config id and that
 * evidence: moved to another runtime, another service or another
 * attestation it does not open. A check of a captured answer (the request
 * in req.json, the runtime's key in key.pem) is tests/tools/sealed_open.c.
 * The suite string names the suite; another one is refused, not guessed at.
 * Refusals (every status but 200) stay plain {"error": ...}. */
#ifndef VEIL_SEALED_H
#define VEIL_SEALED_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "veil/common.h"
#include "veil/hpke.h"

#define VEIL_SEALED_SUITE "P256-SHA256-AES256GCM"
#define VEIL_SEALED_INFO_LABEL "veil-config-v1"
/* the largest configuration sealed or opened (veil-run read at most 16 MiB
 * of plaintext answer before), and the largest answer: its base64 makes 4
 * of 3, and a few hundred bytes around it */
#define VEIL_SEALED_CONFIG_MAX ((size_t)16 << 20)
#define VEIL_SEALED_ANSWER_MAX ((VEIL_SEALED_CONFIG_MAX + 16 + 65) / 3 * 4 + 1024)

/* info for config_id: "veil-config-v1" 0x00 || config_id. *info is malloc'd
 * (*info_len bytes); 0 or VEIL_ENOMEM */
int veil_sealed_info(const char *config_id, uint8_t **info, size_t *info_len) VEIL_MUST_CHECK;

/* config (config_size bytes) -> *answer, the whole answer above with its
 * '\n' (malloc'd, NUL-terminated, *answer_size bytes without the NUL; not
 * secret). 0; VEIL_EINVAL: runtime_pub is not a P-256 key; VEIL_ELIMIT,
 * VEIL_ENOMEM, VEIL_EIO. */
int veil_seal_config(EVP_PKEY *runtime_pub, const char *config_id,
		     const uint8_t evidence_sha256[static VEIL_SHA256_SIZE], const char *config,
		     size_t config_size, char **answer, size_t *answer_size) VEIL_MUST_CHECK;

/* The same, to the runtime's key given as its uncompressed P-256 point
 * (the CAS's key process gets it so): VEIL_EINVAL when it is not one. */
int veil_seal_config_to_point(const uint8_t runtime_point[static VEIL_HPKE_ENC_SIZE],
			      const char *config_id,
			      const uint8_t evidence_sha256[static VEIL_SHA256_SIZE],
			      const char *config, size_t config_size, char **answer,
			      size_t *answer_size) VEIL_MUST_CHECK;

/* The reverse: answer (answer_size bytes, need not be NUL-terminated) ->
 * *config, veil_secure_alloc memory of *config_size + 1 bytes with a NUL
 * after the document (free with veil_secure_free(*config, *config_size + 1)).
 * 0; VEIL_EINVAL: not the format above, another suite, or it does not open
 * (another key, config id or evidence, or changed); VEIL_ELIMIT, VEIL_ENOMEM,
 * VEIL_EIO. Outputs are set only on success. */
int veil_open_config(EVP_PKEY *runtime_key, const char *config_id,
		     const uint8_t evidence_sha256[static VEIL_SHA256_SIZE], const char *answer,
		     size_t answer_size, char **config, size_t *config_size) VEIL_MUST_CHECK;

#endif
