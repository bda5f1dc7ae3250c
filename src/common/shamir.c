/* Shamir secret sharing over GF(2^8) (include/veil/shamir.h). */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "veil/secure.h"
#include "veil/shamir.h"

/* Russian-peasant multiplication mod 0x11b: eight rounds whatever the
 * operands, the conditional xors done with all-ones or all-zeros masks. A
 * log/exp table lookup would be faster and index memory by secret bytes
 * (a cache-timing channel); 32 bytes times a few shares is nothing. */
uint8_t veil_gf256_mul(uint8_t a, uint8_t b)
{
	unsigned p = 0, x = a, y = b;
	for (int i = 0; i < 8; i++) {
		p ^= x & (0u - (y & 1u));
		unsigned carry = 0u - ((x >> 7) & 1u);
		x = ((x << 1) ^ (0x1bu & carry)) & 0xffu;
		y >>= 1;
	}
	return (uint8_t)p;
}

/* a^254 = a^-1 for a != 0 (the multiplicative group has order 255), and 0
 * for 0: a fixed chain of squarings and multiplications. */
uint8_t veil_gf256_inv(uint8_t a)
{
	uint8_t a2 = veil_gf256_mul(a, a);       /* a^2 */
	uint8_t a3 = veil_gf256_mul(a2, a);      /* a^3 */
	uint8_t a6 = veil_gf256_mul(a3, a3);     /* a^6 */
	uint8_t a12 = veil_gf256_mul(a6, a6);    /* a^12 */
	uint8_t a15 = veil_gf256_mul(a12, a3);   /* a^15 */
	uint8_t a30 = veil_gf256_mul(a15, a15);  /* a^30 */
	uint8_t a60 = veil_gf256_mul(a30, a30);  /* a^60 */
	uint8_t a120 = veil_gf256_mul(a60, a60); /* a^120 */
	uint8_t a240 = veil_gf256_mul(a120, a120);
	uint8_t a252 = veil_gf256_mul(a240, a12);
	return veil_gf256_mul(a252, a2); /* a^254 */
}

int veil_shamir_split(const uint8_t *secret, size_t secret_size, unsigned threshold, unsigned count,
		      uint8_t *shares)
{
	if (threshold < 2 || threshold > count || count > VEIL_SHAMIR_MAX_SHARES ||
	    secret_size == 0 || secret_size > VEIL_SHAMIR_MAX_SECRET)
		return VEIL_EINVAL;
	/* coefficients 1 .. threshold - 1 of each byte's polynomial */
	size_t coef_size = (size_t)(threshold - 1) * secret_size;
	uint8_t *coef = veil_secure_alloc(coef_size);
	if (!coef)
		return VEIL_ENOMEM;
	int rc = VEIL_EIO;
	if (RAND_priv_bytes(coef, (int)coef_size) != 1)
		goto out;
	for (unsigned i = 0; i < count; i++) {
		uint8_t x = (uint8_t)(i + 1);
		uint8_t *share = shares + (size_t)i * secret_size;
		for (size_t b = 0; b < secret_size; b++) {
			/* Horner from the highest coefficient down to the secret */
			uint8_t y = 0;
			for (unsigned j = threshold - 1; j >= 1; j--)
				y = veil_gf256_mul(y, x) ^ coef[(size_t)(j - 1) * secret_size + b];
			share[b] = veil_gf256_mul(y, x) ^ secret[b];
		}
	}
	rc = 0;
out:
	if (rc)
		OPENSSL_cleanse(shares, (size_t)count * secret_size);
	veil_secure_free(coef, coef_size);
	return rc;
}

int veil_shamir_interpolate(const uint8_t *xs, const uint8_t *const *ys, size_t count,
			    size_t secret_size, uint8_t x, uint8_t *out)
{
	if (count < 2 || count > VEIL_SHAMIR_MAX_SHARES || secret_size == 0 ||
	    secret_size > VEIL_SHAMIR_MAX_SECRET)
		return VEIL_EINVAL;
	for (size_t i = 0; i < count; i++) {
		if (xs[i] == 0)
			return VEIL_EINVAL;
		for (size_t j = 0; j < i; j++)
			if (xs[i] == xs[j])
				return VEIL_EINVAL;
	}
	/* the Lagrange basis at x: l_i = prod_{j != i} (x - x_j) / (x_i - x_j)
	 * (minus is xor). The x's are public (they are in the share files);
	 * the sum is over secret bytes, in secure memory. */
	uint8_t *acc = veil_secure_alloc(secret_size);
	if (!acc)
		return VEIL_ENOMEM;
	for (size_t i = 0; i < count; i++) {
		uint8_t num = 1, den = 1;
		for (size_t j = 0; j < count; j++) {
			if (j == i)
				continue;
			num = veil_gf256_mul(num, x ^ xs[j]);
			den = veil_gf256_mul(den, xs[i] ^ xs[j]);
		}
		uint8_t basis = veil_gf256_mul(num, veil_gf256_inv(den));
		for (size_t b = 0; b < secret_size; b++)
			acc[b] ^= veil_gf256_mul(ys[i][b], basis);
	}
	memcpy(out, acc, secret_size);
	veil_secure_free(acc, secret_size);
	return 0;
}

int veil_shamir_combine(const uint8_t *xs, const uint8_t *const *ys, size_t count,
			size_t secret_size, uint8_t *secret)
{
	return veil_shamir_interpolate(xs, ys, count, secret_size, 0, secret);
}
