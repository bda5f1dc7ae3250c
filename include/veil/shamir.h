/* Shamir secret sharing over GF(2^8), the AES field (x^8 + x^4 + x^3 + x + 1,
 * 0x11b), byte by byte: each byte of the secret is the constant term of its
 * own random polynomial of degree K - 1, and share number x (1..N) holds
 * the value of every polynomial at x.
 *
 * Any K shares give the secret back (Lagrange interpolation at 0). K - 1
 * shares say nothing about it: for every value of a secret byte there is
 * exactly one polynomial of degree K - 1 through it and the K - 1 points,
 * and the coefficients are uniform, so each value is equally likely
 * (tests/unit/test_shamir.c counts them). Combining K - 1 shares still
 * gives *a* value, just not the secret: a caller that has a commitment to
 * the secret checks it (src/common/recovery_share.c).
 *
 * The field arithmetic is constant time: multiplication is a fixed loop of
 * 8 shift-and-conditional-xor steps with masks, inversion is a^254 by a
 * fixed chain of them, no table is indexed by a secret byte and no branch
 * depends on one. The coefficients come from RAND_priv_bytes and live in
 * veil_secure_alloc memory, wiped before return; so does every intermediate
 * of combine.
 *
 * Ownership: all buffers are the caller's. Outputs are set only on success;
 * on failure they are wiped. */
#ifndef VEIL_SHAMIR_H
#define VEIL_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

#define VEIL_SHAMIR_MAX_SHARES 255  /* x is one non-zero byte */
#define VEIL_SHAMIR_MAX_SECRET 4096 /* bytes: far above a 32-byte key */

/* a * b and a^-1 (0^-1 is 0) in GF(2^8) mod 0x11b, constant time */
uint8_t veil_gf256_mul(uint8_t a, uint8_t b);
uint8_t veil_gf256_inv(uint8_t a);

/* secret_size bytes into count shares of secret_size bytes each: share i
 * (0-based) is at shares + i * secret_size and has x = i + 1. shares must
 * hold count * secret_size bytes (secure memory: it is as secret as the
 * secret). 0; VEIL_EINVAL: threshold < 2, threshold > count, count > 255,
 * secret_size 0 or over VEIL_SHAMIR_MAX_SECRET; VEIL_ENOMEM; VEIL_EIO (the
 * random generator failed). */
int veil_shamir_split(const uint8_t *secret, size_t secret_size, unsigned threshold, unsigned count,
		      uint8_t *shares) VEIL_MUST_CHECK;

/* The polynomials through the count points (xs[i], ys[i]) (each ys[i]
 * secret_size bytes) evaluated at x: with x = 0 and count >= the threshold
 * of a split, its secret. 0; VEIL_EINVAL: count < 2 or over 255, a zero or
 * repeated x, secret_size 0 or over VEIL_SHAMIR_MAX_SECRET; VEIL_ENOMEM. */
int veil_shamir_interpolate(const uint8_t *xs, const uint8_t *const *ys, size_t count,
			    size_t secret_size, uint8_t x, uint8_t *out) VEIL_MUST_CHECK;

/* veil_shamir_interpolate at x = 0 */
int veil_shamir_combine(const uint8_t *xs, const uint8_t *const *ys, size_t count,
			size_t secret_size, uint8_t *secret) VEIL_MUST_CHECK;

#endif
