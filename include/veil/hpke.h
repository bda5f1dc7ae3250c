/* HPKE (RFC 9180), base mode, single shot, one suite:
 *
 *   KEM  DHKEM(P-256, HKDF-SHA256)  kem_id  0x0010
 *   KDF  HKDF-SHA256                kdf_id  0x0001
 *   AEAD AES-256-GCM                aead_id 0x0002
 *
 * built from OpenSSL 3.0 primitives (ECDH, EVP_KDF "HKDF" extract-only and
 * expand-only, EVP aes-256-gcm): OpenSSL 3.0 has no HPKE of its own.
 * Checked against the RFC's test vectors for this suite
 * (tests/unit/test_hpke.c).
 *
 *   seal(pkR, info, aad, pt) -> enc (65 bytes: the ephemeral public key,
 *                               uncompressed point), ct (pt + 16-byte tag)
 *   open(skR, enc, info, aad, ct) -> pt, or an error for anything changed
 *
 * Single shot: one message per enc, sequence number 0, so the AEAD nonce is
 * the base nonce. Keys are EVP_PKEYs of type EC on P-256 (prime256v1); any
 * other key is refused (veil_hpke_key_is_p256). Every intermediate secret
 * (DH output, PRKs, shared secret, key, nonce) is wiped before return.
 *
 * Ownership: inputs stay the caller's. On success seal sets *ct to malloc'd
 * memory (ciphertext, not secret; free()); open sets *pt to
 * veil_secure_alloc memory of *pt_len + 1 bytes, a NUL after the plaintext
 * (free with veil_secure_free(*pt, *pt_len + 1)). Outputs are set only on
 * success. */
#ifndef VEIL_HPKE_H
#define VEIL_HPKE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "veil/common.h"

#define VEIL_HPKE_ENC_SIZE 65 /* SerializePublicKey of P-256: 0x04 || x || y */
#define VEIL_HPKE_TAG_SIZE 16
#define VEIL_HPKE_KEY_SIZE 32
#define VEIL_HPKE_NONCE_SIZE 12
/* the largest plaintext sealed or opened (EVP's lengths are ints) */
#define VEIL_HPKE_PT_MAX ((size_t)1 << 30)

/* 1 if key is an EC key on P-256, else 0 */
int veil_hpke_key_is_p256(EVP_PKEY *key);

/* DeserializePublicKey: pkR from its 65-byte uncompressed point (0x04 || x
 * || y); OpenSSL refuses a point off the curve. *out is the caller's
 * (EVP_PKEY_free). 0, or VEIL_EINVAL. Much cheaper than decoding a DER
 * SubjectPublicKeyInfo (d2i_PUBKEY runs OpenSSL 3.0's decoder search: half
 * of the key process's time per attestation, measured with perf). */
int veil_hpke_public_from_point(const uint8_t point[static VEIL_HPKE_ENC_SIZE],
				EVP_PKEY **out) VEIL_MUST_CHECK;

/* A P-256 key's uncompressed point (SerializePublicKey): 0, or
 * VEIL_EINVAL (not a P-256 key), VEIL_EIO. */
int veil_hpke_point_of(EVP_PKEY *key, uint8_t point[static VEIL_HPKE_ENC_SIZE]) VEIL_MUST_CHECK;

/* seal to pkR given as its uncompressed point (what the CAS's key process
 * gets): no EVP_PKEY is made. VEIL_EINVAL: not a point on P-256. */
int veil_hpke_seal_to_point(const uint8_t recipient[static VEIL_HPKE_ENC_SIZE], const uint8_t *info,
			    size_t info_len, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
			    size_t pt_len, uint8_t enc[static VEIL_HPKE_ENC_SIZE], uint8_t **ct,
			    size_t *ct_len) VEIL_MUST_CHECK;

/* 0; VEIL_EINVAL (not a P-256 key), VEIL_ELIMIT (pt_len past
 * VEIL_HPKE_PT_MAX), VEIL_ENOMEM or VEIL_EIO (OpenSSL failed). *ct_len is
 * pt_len + VEIL_HPKE_TAG_SIZE. */
int veil_hpke_seal(EVP_PKEY *recipient_pub, const uint8_t *info, size_t info_len,
		   const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
		   uint8_t enc[static VEIL_HPKE_ENC_SIZE], uint8_t **ct,
		   size_t *ct_len) VEIL_MUST_CHECK;

/* 0; VEIL_EINVAL: not a P-256 private key, enc is not a point on P-256, ct
 * is shorter than a tag, or it does not authenticate (another key, info,
 * aad, enc or ct: the reasons are not told apart); VEIL_ELIMIT,
 * VEIL_ENOMEM, VEIL_EIO as for seal. */
int veil_hpke_open(EVP_PKEY *recipient_priv, const uint8_t enc[static VEIL_HPKE_ENC_SIZE],
		   const uint8_t *info, size_t info_len, const uint8_t *aad, size_t aad_len,
		   const uint8_t *ct, size_t ct_len, uint8_t **pt, size_t *pt_len) VEIL_MUST_CHECK;

/* ---- tests only: the RFC's test vectors fix the ephemeral key ---- */

/* A P-256 key pair from its 32-byte private scalar (the vectors' skEm,
 * skRm); *out is the caller's (EVP_PKEY_free). */
int veil_hpke_p256_key_for_test(const uint8_t sk[static 32], EVP_PKEY **out) VEIL_MUST_CHECK;
/* SetupBaseS with the ephemeral key given (never use outside tests: a fixed
 * ephemeral key under one recipient key reuses the AEAD key and nonce):
 * enc and the key schedule's shared secret, key and base nonce */
int veil_hpke_setup_base_s_for_test(
    EVP_PKEY *recipient_pub, EVP_PKEY *ephemeral, const uint8_t *info, size_t info_len,
    uint8_t enc[static VEIL_HPKE_ENC_SIZE], uint8_t shared_secret[static 32],
    uint8_t key[static VEIL_HPKE_KEY_SIZE],
    uint8_t base_nonce[static VEIL_HPKE_NONCE_SIZE]) VEIL_MUST_CHECK;
/* ContextS.Seal at sequence number seq: ct (pt_len + VEIL_HPKE_TAG_SIZE
 * bytes, the caller's) */
int veil_hpke_seal_seq_for_test(const uint8_t key[static VEIL_HPKE_KEY_SIZE],
				const uint8_t base_nonce[static VEIL_HPKE_NONCE_SIZE], uint64_t seq,
				const uint8_t *aad, size_t aad_len, const uint8_t *pt,
				size_t pt_len, uint8_t *ct) VEIL_MUST_CHECK;

#endif
