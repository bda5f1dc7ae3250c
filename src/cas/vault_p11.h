/* The PKCS#11 side of the vault (vault_p11.c): a module loaded with dlopen,
 * one token found by its label, a pool of logged-in sessions, and AES-256
 * master keys that never leave the token. Internal to libveilcas.
 *
 * Ownership: struct p11 owns the module handle, its sessions and the key
 * handles; labels passed in are borrowed. Every function is thread-safe
 * (a session is used by one thread at a time). */
#ifndef VEIL_CAS_VAULT_P11_H
#define VEIL_CAS_VAULT_P11_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

#define P11_WRAPPED_SIZE (12 + 32 + 16) /* nonce || GCM(data key) || tag */
#define P11_KEYS_MAX 4                  /* key versions loaded at once (rotation: 2) */

struct p11;

/* Loads module, finds the token labelled token, logs in with pin (borrowed,
 * not kept). A missing module, an unknown token or a wrong PIN is refused
 * with a one-line reason in d naming it. */
int p11_open(const char *module, const char *token, const char *pin, struct p11 **out,
	     struct veil_diags *d) VEIL_MUST_CHECK;
void p11_close(struct p11 *p);
/* A new AES-256 key object labelled label in the token: CKA_TOKEN,
 * CKA_SENSITIVE, not CKA_EXTRACTABLE. VEIL_EEXIST (no message) if the label
 * is taken. */
int p11_key_create(struct p11 *p, const char *label, struct veil_diags *d) VEIL_MUST_CHECK;
/* Makes the key labelled label usable as key version `version` (its
 * handle, and a session copy in each session: see vault_p11.c). */
int p11_key_load(struct p11 *p, uint32_t version, const char *label,
		 struct veil_diags *d) VEIL_MUST_CHECK;
/* Destroys the token object labelled label (retiring a rotated key);
 * 0 if there was none. */
int p11_key_destroy(struct p11 *p, const char *label, struct veil_diags *d) VEIL_MUST_CHECK;
/* AES-256-GCM inside the token with key `version`: key (32 bytes) to
 * out[P11_WRAPPED_SIZE], bound to aad; and back. */
int p11_wrap(struct p11 *p, uint32_t version, const uint8_t *aad, size_t aad_len,
	     const uint8_t key[static 32], uint8_t out[static P11_WRAPPED_SIZE]) VEIL_MUST_CHECK;
int p11_unwrap(struct p11 *p, uint32_t version, const uint8_t *aad, size_t aad_len,
	       const uint8_t in[static P11_WRAPPED_SIZE], uint8_t key[static 32]) VEIL_MUST_CHECK;

#endif
