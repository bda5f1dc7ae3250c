/* Recovery shares of a CAS's master key (docs/cas.md, "Recovery"): at
 * `veil-cas --init --recovery-key ... --recovery-threshold K` the 32-byte
 * master key is split K of N (veil/shamir.h) and share x is sealed with
 * HPKE (veil/hpke.h) to holder x's P-256 public key.
 *
 * The share file, DATA/recovery/share-X.json, exactly as written (one line,
 * no spaces, then "\n"; lower-case hex; decimal without leading zeros):
 *
 *   {"format":"veil-recovery-share","version":1,"cas_key_hash":"<64 hex>",
 *    "threshold":K,"shares":N,"x":X,"commitment":"<64 hex>",
 *    "enc":"<130 hex>","ciphertext":"<96 hex>"}
 *
 *   cas_key_hash  the CAS's TLS key hash (veil-cas --print-key-hash): whose
 *                 master key this is
 *   threshold     K, 2 <= K <= N;  shares  N <= 255;  x  1 <= x <= N
 *   commitment    SHA-256(HMAC-SHA256(key = master key,
 *                   msg = "veil-recovery-commitment-v1" 0x00 cas_key_hash))
 *                 a recovered key is checked against it before it is
 *                 written; it reveals nothing of the key (one-way, keyed)
 *   enc, ciphertext  HPKE base mode (DHKEM(P-256), HKDF-SHA256, AES-256-GCM)
 *                 of the 32-byte share to the holder's key, with
 *                   info = "veil-recovery-share-v1" 0x00 cas_key_hash 0x00
 *                          K (1 byte) N (1 byte) x (1 byte)
 *                   aad  = the 32 commitment bytes
 *                 so a share moved to another CAS, x, K, N or commitment
 *                 does not open.
 * Read back with JSON_REJECT_DUPLICATES: exactly these nine members, with
 * these types and sizes, at most VEIL_RECOVERY_FILE_MAX bytes. Recompute a
 * commitment:
 *   printf 'veil-recovery-commitment-v1\0%s' KEYHASH | openssl dgst -sha256 \
 *     -mac HMAC -macopt hexkey:$(od -An -tx1 -v master.key | tr -d ' \n') -binary |
 *     sha256sum
 *
 * The opened share (`veil-cas recovery-share open`), a secret: seven lines,
 * each "name value\n", in this order and nothing else:
 *
 *   veil-recovery-share 1
 *   cas_key_hash <64 hex>
 *   threshold K
 *   shares N
 *   x X
 *   commitment <64 hex>
 *   share <64 hex>
 *
 * The share's hex (veil_hex, veil_unhex) is not constant time (a 16-entry
 * digit table, branches on digits): it runs once per share, offline, when a
 * holder opens it or the operator recovers, not in a server an attacker can
 * time; the field arithmetic that combines shares is constant time.
 *
 * Ownership: everything is the caller's. Outputs are set only on success. */
#ifndef VEIL_RECOVERY_SHARE_H
#define VEIL_RECOVERY_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "veil/common.h"
#include "veil/hpke.h"

#define VEIL_RECOVERY_SECRET_SIZE 32 /* the master key */
#define VEIL_RECOVERY_FILE_MAX 4096  /* a share file or an opened share */
#define VEIL_RECOVERY_CT_SIZE (VEIL_RECOVERY_SECRET_SIZE + VEIL_HPKE_TAG_SIZE)
/* an opened share's text: 7 lines, the longest "cas_key_hash " + 64 + "\n" */
#define VEIL_RECOVERY_OPENED_MAX 512

/* What a share file and an opened share both say (none of it secret). */
struct veil_recovery_meta {
	char cas_key_hash[2 * VEIL_SHA256_SIZE + 1]; /* hex, NUL-terminated */
	unsigned threshold, count, x;
	uint8_t commitment[VEIL_SHA256_SIZE];
};

struct veil_recovery_share_file {
	struct veil_recovery_meta meta;
	uint8_t enc[VEIL_HPKE_ENC_SIZE];
	uint8_t ct[VEIL_RECOVERY_CT_SIZE];
};

/* the commitment above; 0 or VEIL_EIO */
int veil_recovery_commitment(const uint8_t master[static VEIL_RECOVERY_SECRET_SIZE],
			     const char *cas_key_hash,
			     uint8_t out[static VEIL_SHA256_SIZE]) VEIL_MUST_CHECK;

/* meta well formed: a key hash, 2 <= K <= N <= 255, 1 <= x <= N */
int veil_recovery_meta_valid(const struct veil_recovery_meta *m);

/* The share file of share (32 bytes) for holder: *json is a malloc'd
 * NUL-terminated string (not secret), *json_size without the NUL. 0;
 * VEIL_EINVAL (meta not valid, holder not P-256), VEIL_ENOMEM, VEIL_EIO. */
int veil_recovery_share_seal(EVP_PKEY *holder, const struct veil_recovery_meta *meta,
			     const uint8_t share[static VEIL_RECOVERY_SECRET_SIZE], char **json,
			     size_t *json_size) VEIL_MUST_CHECK;

/* A share file's text; why (why_size bytes) says what is wrong on
 * VEIL_EINVAL. */
int veil_recovery_share_parse(const char *text, size_t size, struct veil_recovery_share_file *out,
			      char *why, size_t why_size) VEIL_MUST_CHECK;

/* The share inside f, with the holder's private key. 0, or VEIL_EINVAL
 * (another key, or the file was changed), VEIL_ENOMEM, VEIL_EIO. share is
 * wiped on failure. */
int veil_recovery_share_open(EVP_PKEY *holder_priv, const struct veil_recovery_share_file *f,
			     uint8_t share[static VEIL_RECOVERY_SECRET_SIZE]) VEIL_MUST_CHECK;

/* The opened share's text into out (cap bytes, at least
 * VEIL_RECOVERY_OPENED_MAX; secret: give it secure memory), NUL-terminated;
 * *size without the NUL. 0 or VEIL_EINVAL (meta not valid). */
int veil_recovery_opened_format(const struct veil_recovery_meta *meta,
				const uint8_t share[static VEIL_RECOVERY_SECRET_SIZE], char *out,
				size_t cap, size_t *size) VEIL_MUST_CHECK;

/* An opened share's text back; share is secret (secure memory), wiped on
 * failure. why as for parse. */
int veil_recovery_opened_parse(const char *text, size_t size, struct veil_recovery_meta *meta,
			       uint8_t share[static VEIL_RECOVERY_SECRET_SIZE], char *why,
			       size_t why_size) VEIL_MUST_CHECK;

#endif
