/* Encrypted code (docs/images.md, "Encrypted files"): a `copy` file that
 * build.encrypt names is stored in the image as
 *
 *   "VEILENC1" (8) || nonce (12) || AES-256-GCM ciphertext || tag (16)
 *
 * with the associated data "veil-code-v1\0" || the file's absolute path in
 * the image || "\0" || its plaintext size as 8 bytes big-endian: a file
 * moved to another path, cut or grown does not decrypt. The nonce is the
 * first 12 bytes of HMAC-SHA256(nonce key, "veil-code-nonce-v1\0" || path ||
 * "\0" || plaintext), the nonce key being HMAC-SHA256(key,
 * "veil-code-nonce-v1\0"): the same file under the same key gives the same bytes (the
 * image stays reproducible) and two different files never share a nonce.
 *
 * The key is the CAS's (POST /v1/code-keys): derived from its master key,
 * the key id and the owner's identity, given to the builder that owns it and
 * to an attested veil-run, never written anywhere. */
#ifndef VEIL_CODECRYPT_H
#define VEIL_CODECRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

#define VEIL_CODE_KEY_SIZE 32
#define VEIL_CODE_KEY_ID_HEX 32 /* 16 random bytes, hex */
#define VEIL_CODE_MAGIC "VEILENC1"
#define VEIL_CODE_OVERHEAD (8 + 12 + 16)
/* the largest plaintext a file may have (veil-run holds it in memory) */
#define VEIL_CODE_MAX_SIZE ((size_t)64 << 20)
/* ... and of all encrypted files of an image together, with its injection
 * files (src/runtime/inject.c's budget: 64 MiB, 256 files) */
#define VEIL_CODE_MAX_FILES 256

/* plain (size bytes) -> *out (malloc'd, size + VEIL_CODE_OVERHEAD bytes).
 * 0, VEIL_ELIMIT (too large), VEIL_ENOMEM or VEIL_EIO. */
int veil_code_encrypt(const uint8_t key[static VEIL_CODE_KEY_SIZE], const char *path,
		      const uint8_t *plain, size_t size, uint8_t **out,
		      size_t *out_size) VEIL_MUST_CHECK;

/* The reverse: *out is memory from veil_secure_alloc (out_size + 1 bytes, a
 * NUL after the plaintext; free with veil_secure_free(*out, *out_size + 1)).
 * 0, or VEIL_EINVAL with the reason in why (not a veil-encrypted file, cut,
 * or not authentic under this key and path), never any plaintext. */
int veil_code_decrypt(const uint8_t key[static VEIL_CODE_KEY_SIZE], const char *path,
		      const uint8_t *in, size_t in_size, uint8_t **out, size_t *out_size, char *why,
		      size_t cap) VEIL_MUST_CHECK;

/* 1 when s is a key id: VEIL_CODE_KEY_ID_HEX lower-case hex digits. */
int veil_code_key_id_valid(const char *s);

#endif
