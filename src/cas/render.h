/* The key process's work on namespace payloads (render.c).
 *
 * The payload frame that holds a namespace's policy and secrets is payload.h's. */
#ifndef VEIL_CAS_RENDER_H
#define VEIL_CAS_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/cursor.h"
#include "veil/policy_model.h"
#include "veil/secrets.h"
#include "veil/store.h"
#include "veil/ytree.h"

/* An opened payload. plain is secure memory; yaml points into it; with
 * parse, doc/policy/secrets are filled (policy points into doc). */
struct cas_opened {
	uint8_t *plain;
	size_t plain_size;
	const char *yaml;
	size_t yaml_size;
	struct ydoc doc;
	struct veil_policy policy;
	struct veil_secret_set secrets;
	int have_doc;
};
int cas_payload_open(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
		     size_t wrapped_size, const uint8_t *sealed, size_t sealed_size, bool parse,
		     struct cas_opened *o) VEIL_MUST_CHECK;
void cas_opened_free(struct cas_opened *o);

/* *out is secure memory (veil_secure_free(*out, *out_size)) */
int cas_payload_build(const char *yaml, size_t yaml_size, const struct veil_secret_set *set,
		      uint8_t **out, size_t *out_size) VEIL_MUST_CHECK;

/* Generates the secrets of policy yaml (its canonical form; keeping what
 * the update rules keep of prev, the sealed current payload, when given)
 * and seals the new payload: *blob (malloc'd). VEIL_EINVAL: the policy's
 * secret definitions were refused, why says how (never a value); another
 * error: why says what failed. */
int cas_payload_generate(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
			 size_t wrapped_size, const char *yaml, size_t yaml_size,
			 const uint8_t *prev, size_t prev_size, uint8_t **blob, size_t *blob_size,
			 char *why, size_t cap) VEIL_MUST_CHECK;

/* The configuration of `service` (its environment and injection files
 * rendered, the code key with owner), as /v1/attest answers it: *body is
 * jansson's (json_free wipes it). imports (may be NULL): the imported
 * values' records (see render.c). */
int cas_payload_render(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
		       size_t wrapped_size, const uint8_t *sealed, size_t sealed_size,
		       const char *service, const char *owner, struct veil_cursor *imports,
		       char **body, char *why, size_t cap) VEIL_MUST_CHECK;

#endif
