/* Shamir secret sharing over GF(2^8) (src/common/shamir.c) and the recovery
 * share formats built on it (src/common/recovery_share.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "veil/common.h"
#include "veil/hpke.h"
#include "veil/recovery_share.h"
#include "veil/secure.h"
#include "veil/shamir.h"

#define KEY 32

/* the field, against a plain (variable-time) reference */
static uint8_t slow_mul(uint8_t a, uint8_t b)
{
	unsigned p = 0;
	for (unsigned i = 0; i < 8; i++)
		if (b & (1u << i))
			p ^= (unsigned)a << i;
	for (int bit = 14; bit >= 8; bit--)
		if (p & (1u << bit))
			p ^= 0x11bu << (bit - 8);
	return (uint8_t)p;
}

static void test_field_multiplication_and_inverse(void **state)
{
	(void)state;
	for (unsigned a = 0; a < 256; a++)
		for (unsigned b = 0; b < 256; b++)
			assert_int_equal(veil_gf256_mul((uint8_t)a, (uint8_t)b),
					 slow_mul((uint8_t)a, (uint8_t)b));
	/* FIPS 197's example: {57} x {83} = {c1} */
	assert_int_equal(veil_gf256_mul(0x57, 0x83), 0xc1);
	assert_int_equal(veil_gf256_inv(0), 0);
	for (unsigned a = 1; a < 256; a++)
		assert_int_equal(veil_gf256_mul((uint8_t)a, veil_gf256_inv((uint8_t)a)), 1);
}

/* shares i of a split (x = i + 1) */
static void pick(const uint8_t *shares, const unsigned *idx, size_t k, uint8_t *xs,
		 const uint8_t **ys)
{
	for (size_t i = 0; i < k; i++) {
		xs[i] = (uint8_t)(idx[i] + 1);
		ys[i] = shares + (size_t)idx[i] * KEY;
	}
}

static void test_round_trip_for_several_thresholds(void **state)
{
	(void)state;
	static const unsigned kn[][2] = {{2, 2},  {2, 3},   {3, 5},    {5, 5},
					 {4, 10}, {2, 255}, {255, 255}};
	uint8_t secret[KEY], out[KEY], xs[255];
	const uint8_t *ys[255];
	unsigned idx[255];
	for (size_t t = 0; t < VEIL_ARRAY_LEN(kn); t++) {
		unsigned k = kn[t][0], n = kn[t][1];
		uint8_t *shares = veil_secure_alloc((size_t)n * KEY);
		assert_non_null(shares);
		assert_int_equal(RAND_bytes(secret, KEY), 1);
		assert_int_equal(veil_shamir_split(secret, KEY, k, n, shares), 0);
		/* the first K, the last K, and K spread out */
		for (unsigned i = 0; i < k; i++)
			idx[i] = i;
		pick(shares, idx, k, xs, ys);
		assert_int_equal(veil_shamir_combine(xs, ys, k, KEY, out), 0);
		assert_memory_equal(out, secret, KEY);
		for (unsigned i = 0; i < k; i++)
			idx[i] = n - 1 - i;
		pick(shares, idx, k, xs, ys);
		assert_int_equal(veil_shamir_combine(xs, ys, k, KEY, out), 0);
		assert_memory_equal(out, secret, KEY);
		/* all N: more points of the same polynomials */
		for (unsigned i = 0; i < n; i++)
			idx[i] = i;
		pick(shares, idx, n, xs, ys);
		assert_int_equal(veil_shamir_combine(xs, ys, n, KEY, out), 0);
		assert_memory_equal(out, secret, KEY);
		veil_secure_free(shares, (size_t)n * KEY);
	}
}

static void test_any_k_of_n_give_the_secret(void **state)
{
	(void)state;
	enum { K = 3, N = 6 };
	uint8_t secret[KEY], out[KEY], shares[N * KEY], xs[K];
	const uint8_t *ys[K];
	assert_int_equal(RAND_bytes(secret, KEY), 1);
	assert_int_equal(veil_shamir_split(secret, KEY, K, N, shares), 0);
	unsigned subsets = 0;
	for (unsigned a = 0; a < N; a++)
		for (unsigned b = a + 1; b < N; b++)
			for (unsigned c = b + 1; c < N; c++) {
				unsigned idx[K] = {c, a, b}; /* any order */
				pick(shares, idx, K, xs, ys);
				assert_int_equal(veil_shamir_combine(xs, ys, K, KEY, out), 0);
				assert_memory_equal(out, secret, KEY);
				subsets++;
			}
	assert_int_equal(subsets, 20);
}

static void test_k_minus_1_shares_do_not_give_the_secret(void **state)
{
	(void)state;
	enum { K = 3, N = 5 };
	uint8_t secret[KEY], out[KEY], shares[N * KEY], xs[K];
	const uint8_t *ys[K];
	unsigned idx[K - 1] = {0, 3};
	assert_int_equal(RAND_bytes(secret, KEY), 1);
	assert_int_equal(veil_shamir_split(secret, KEY, K, N, shares), 0);
	pick(shares, idx, K - 1, xs, ys);
	assert_int_equal(veil_shamir_combine(xs, ys, K - 1, KEY, out), 0);
	/* 32 bytes all equal by chance: 2^-256 */
	assert_memory_not_equal(out, secret, KEY);
}

/* K - 1 shares reveal nothing: for each of the 256 values a secret byte
 * could have, there is exactly one polynomial of degree K - 1 through
 * (0, value) and the K - 1 shares' points. Shown two ways: by
 * interpolation (K points fix one polynomial of degree K - 1, and it does
 * pass through all of them), and for K = 2 and K = 3 by counting every
 * polynomial: each candidate value has exactly one. The coefficients are
 * uniform, so each value is equally likely given the K - 1 shares. */
static uint8_t eval(const uint8_t *coef, unsigned degree, uint8_t x)
{
	uint8_t y = 0;
	for (unsigned j = degree + 1; j-- > 0;)
		y = veil_gf256_mul(y, x) ^ coef[j];
	return y;
}

static void test_k_minus_1_shares_fit_every_candidate_exactly_once(void **state)
{
	(void)state;
	for (unsigned k = 2; k <= 4; k++) {
		uint8_t secret = 0x5a, shares[8], xs[4], point[1];
		const uint8_t *ys[4];
		assert_int_equal(veil_shamir_split(&secret, 1, k, 8, shares), 0);
		/* the known shares: x = 2, 5, 7 (the first k - 1 of them) */
		static const uint8_t given[] = {2, 5, 7};
		for (unsigned candidate = 0; candidate < 256; candidate++) {
			/* the polynomial through (0, candidate) and the K - 1 points,
			 * by interpolation at every x: at each given x it has the
			 * share's value */
			uint8_t cand = (uint8_t)candidate, zero_xs[4], ys0[4][1];
			const uint8_t *pys[4];
			for (unsigned i = 0; i < k - 1; i++) {
				xs[i] = given[i];
				ys[i] = &shares[given[i] - 1];
			}
			/* interpolation needs x != 0: the candidate's point is
			 * checked through a shifted variable, t = x ^ 1 (the field
			 * is of characteristic 2: x -> x ^ 1 is a bijection that
			 * keeps degrees) */
			for (unsigned i = 0; i < k - 1; i++) {
				zero_xs[i] = (uint8_t)(xs[i] ^ 1);
				ys0[i][0] = ys[i][0];
				pys[i] = ys0[i];
			}
			zero_xs[k - 1] = 1; /* x = 0 */
			ys0[k - 1][0] = cand;
			pys[k - 1] = ys0[k - 1];
			for (unsigned i = 0; i < k; i++)
				assert_int_not_equal(zero_xs[i], 0);
			for (unsigned i = 0; i < k - 1; i++) {
				assert_int_equal(
				    veil_shamir_interpolate(zero_xs, pys, k, 1, zero_xs[i], point),
				    0);
				assert_int_equal(point[0], ys[i][0]);
			}
			assert_int_equal(veil_shamir_interpolate(zero_xs, pys, k, 1, 1, point), 0);
			assert_int_equal(point[0], cand);
		}
		if (k > 3)
			continue;
		/* counting: every polynomial c0 + c1 x (+ c2 x^2) */
		unsigned fits[256] = {0};
		uint8_t coef[3] = {0};
		for (unsigned c0 = 0; c0 < 256; c0++)
			for (unsigned c1 = 0; c1 < 256; c1++)
				for (unsigned c2 = 0; c2 < (k == 3 ? 256u : 1u); c2++) {
					coef[0] = (uint8_t)c0;
					coef[1] = (uint8_t)c1;
					coef[2] = (uint8_t)c2;
					bool all = true;
					for (unsigned i = 0; i < k - 1 && all; i++)
						all = eval(coef, k - 1, given[i]) ==
						      shares[given[i] - 1];
					fits[c0] += all;
				}
		for (unsigned v = 0; v < 256; v++)
			assert_int_equal(fits[v], 1);
	}
}

static void test_changed_share_gives_another_secret(void **state)
{
	(void)state;
	uint8_t secret[KEY], out[KEY], shares[3 * KEY], xs[2];
	const uint8_t *ys[2];
	unsigned idx[2] = {0, 2};
	assert_int_equal(RAND_bytes(secret, KEY), 1);
	assert_int_equal(veil_shamir_split(secret, KEY, 2, 3, shares), 0);
	for (size_t byte = 0; byte < KEY; byte += 7) {
		shares[2 * KEY + byte] ^= 0x01;
		pick(shares, idx, 2, xs, ys);
		assert_int_equal(veil_shamir_combine(xs, ys, 2, KEY, out), 0);
		assert_memory_not_equal(out, secret, KEY);
		shares[2 * KEY + byte] ^= 0x01;
	}
}

static void test_bad_parameters_refused(void **state)
{
	(void)state;
	uint8_t secret[KEY] = {1}, shares[256 * 2], out[KEY];
	assert_int_equal(veil_shamir_split(secret, KEY, 1, 3, shares), VEIL_EINVAL); /* K < 2 */
	assert_int_equal(veil_shamir_split(secret, KEY, 4, 3, shares), VEIL_EINVAL); /* K > N */
	assert_int_equal(veil_shamir_split(secret, 2, 2, 256, shares), VEIL_EINVAL); /* N */
	assert_int_equal(veil_shamir_split(secret, 0, 2, 3, shares), VEIL_EINVAL);   /* empty */
	assert_int_equal(veil_shamir_split(secret, KEY, 0, 0, shares), VEIL_EINVAL);
	uint8_t a[KEY] = {0}, b[KEY] = {0};
	const uint8_t *ys[2] = {a, b};
	uint8_t dup[2] = {3, 3}, zero[2] = {0, 1};
	assert_int_equal(veil_shamir_combine(dup, ys, 2, KEY, out), VEIL_EINVAL);
	assert_int_equal(veil_shamir_combine(zero, ys, 2, KEY, out), VEIL_EINVAL);
	uint8_t ok[2] = {1, 2};
	assert_int_equal(veil_shamir_combine(ok, ys, 1, KEY, out), VEIL_EINVAL); /* one */
	assert_int_equal(veil_shamir_combine(ok, ys, 2, 0, out), VEIL_EINVAL);
}

/* ---- share files ---- */

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	return k;
}

static const char hash_a[] = "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11";

static char *sealed_share(EVP_PKEY *holder, const uint8_t master[KEY], unsigned x,
			  struct veil_recovery_meta *meta, uint8_t share[KEY])
{
	memset(meta, 0, sizeof(*meta));
	memcpy(meta->cas_key_hash, hash_a, sizeof(hash_a));
	meta->threshold = 2;
	meta->count = 3;
	meta->x = x;
	assert_int_equal(veil_recovery_commitment(master, hash_a, meta->commitment), 0);
	assert_int_equal(RAND_bytes(share, KEY), 1);
	char *json = NULL;
	size_t size = 0;
	assert_int_equal(veil_recovery_share_seal(holder, meta, share, &json, &size), 0);
	assert_int_equal(strlen(json), size);
	return json;
}

static void test_share_file_round_trip_and_exact_form(void **state)
{
	(void)state;
	EVP_PKEY *holder = new_key(), *other = new_key();
	uint8_t master[KEY], share[KEY], back[KEY];
	struct veil_recovery_meta meta;
	struct veil_recovery_share_file f;
	char why[200];
	assert_int_equal(RAND_bytes(master, KEY), 1);
	char *json = sealed_share(holder, master, 2, &meta, share);
	static const char head[] =
	    "{\"format\":\"veil-recovery-share\",\"version\":1,\"cas_key_hash\":\"";
	assert_true(!strncmp(json, head, strlen(head)));
	assert_non_null(strstr(json, "\"threshold\":2,\"shares\":3,\"x\":2,\"commitment\":\""));
	assert_int_equal(json[strlen(json) - 1], '\n');
	assert_int_equal(veil_recovery_share_parse(json, strlen(json), &f, why, sizeof(why)), 0);
	assert_string_equal(f.meta.cas_key_hash, hash_a);
	assert_int_equal(f.meta.x, 2);
	assert_memory_equal(f.meta.commitment, meta.commitment, 32);
	assert_int_equal(veil_recovery_share_open(holder, &f, back), 0);
	assert_memory_equal(back, share, KEY);
	/* another holder's key does not open it */
	assert_int_equal(veil_recovery_share_open(other, &f, back), VEIL_EINVAL);
	/* x, K, N, the CAS and the commitment are bound: each changed, no open */
	struct veil_recovery_share_file g = f;
	g.meta.x = 3;
	assert_int_equal(veil_recovery_share_open(holder, &g, back), VEIL_EINVAL);
	g = f;
	g.meta.threshold = 3;
	assert_int_equal(veil_recovery_share_open(holder, &g, back), VEIL_EINVAL);
	g = f;
	g.meta.count = 4;
	assert_int_equal(veil_recovery_share_open(holder, &g, back), VEIL_EINVAL);
	g = f;
	g.meta.cas_key_hash[0] = 'b';
	assert_int_equal(veil_recovery_share_open(holder, &g, back), VEIL_EINVAL);
	g = f;
	g.meta.commitment[5] ^= 1;
	assert_int_equal(veil_recovery_share_open(holder, &g, back), VEIL_EINVAL);
	g = f;
	g.ct[0] ^= 1;
	assert_int_equal(veil_recovery_share_open(holder, &g, back), VEIL_EINVAL);
	free(json);
	EVP_PKEY_free(holder);
	EVP_PKEY_free(other);
}

static void test_share_file_refuses_malformed(void **state)
{
	(void)state;
	EVP_PKEY *holder = new_key();
	uint8_t master[KEY] = {7}, share[KEY];
	struct veil_recovery_meta meta;
	struct veil_recovery_share_file f;
	char why[200];
	char *json = sealed_share(holder, master, 1, &meta, share);
	/* each member replaced by something wrong */
	static const char *const swaps[][2] = {
	    {"\"format\":\"veil-recovery-share\"", "\"format\":\"veil-recovery-shares\""},
	    {"\"version\":1", "\"version\":2"},
	    {"\"version\":1", "\"version\":\"1\""},
	    {"\"threshold\":2", "\"threshold\":1"},
	    {"\"threshold\":2", "\"threshold\":4"},
	    {"\"threshold\":2", "\"threshold\":2.0"},
	    {"\"shares\":3", "\"shares\":256"},
	    {"\"x\":1", "\"x\":0"},
	    {"\"x\":1", "\"x\":4"},
	    {"\"x\":1", "\"x\":-1"},
	    {"\"cas_key_hash\":\"aa", "\"cas_key_hash\":\"AA"},
	    {"\"cas_key_hash\":\"aa", "\"cas_key_hash\":\"a"},
	    {"\"commitment\":\"", "\"commitment\":\"00"},
	    {"\"enc\":\"", "\"enc\":\"x"},
	    {"\"ciphertext\":\"", "\"ciphertext\":\"00"},
	    {"\"x\":1,", "\"x\":1,\"x\":1,"},     /* duplicate */
	    {"\"x\":1,", "\"x\":1,\"extra\":1,"}, /* unknown member */
	    {"\"x\":1,", ""},                     /* missing member */
	    {"{", "["},
	};
	char buf[2048];
	for (size_t i = 0; i < VEIL_ARRAY_LEN(swaps); i++) {
		const char *at = strstr(json, swaps[i][0]);
		assert_non_null(at);
		int n = snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - json), json, swaps[i][1],
				 at + strlen(swaps[i][0]));
		assert_true(n > 0 && (size_t)n < sizeof(buf));
		why[0] = 0;
		assert_int_not_equal(
		    veil_recovery_share_parse(buf, (size_t)n, &f, why, sizeof(why)), 0);
		assert_true(why[0] != 0);
	}
	/* truncated anywhere */
	for (size_t cut = 0; cut + 2 < strlen(json); cut += 13)
		assert_int_not_equal(veil_recovery_share_parse(json, cut, &f, why, sizeof(why)), 0);
	/* too large */
	char *big = calloc(1, VEIL_RECOVERY_FILE_MAX + 2);
	memset(big, ' ', VEIL_RECOVERY_FILE_MAX + 1);
	assert_int_equal(
	    veil_recovery_share_parse(big, VEIL_RECOVERY_FILE_MAX + 1, &f, why, sizeof(why)),
	    VEIL_ELIMIT);
	free(big);
	free(json);
	EVP_PKEY_free(holder);
}

static void test_opened_share_round_trip_and_malformed(void **state)
{
	(void)state;
	struct veil_recovery_meta meta = {.threshold = 2, .count = 3, .x = 3}, back;
	uint8_t share[KEY], got[KEY];
	char text[VEIL_RECOVERY_OPENED_MAX], buf[VEIL_RECOVERY_OPENED_MAX + 64], why[200];
	size_t size = 0;
	memcpy(meta.cas_key_hash, hash_a, sizeof(hash_a));
	assert_int_equal(RAND_bytes(share, KEY), 1);
	assert_int_equal(RAND_bytes(meta.commitment, 32), 1);
	assert_int_equal(veil_recovery_opened_format(&meta, share, text, sizeof(text), &size), 0);
	assert_true(!strncmp(text, "veil-recovery-share 1\ncas_key_hash aa11", 39));
	assert_int_equal(veil_recovery_opened_parse(text, size, &back, got, why, sizeof(why)), 0);
	assert_memory_equal(got, share, KEY);
	assert_int_equal(back.x, 3);
	assert_memory_equal(back.commitment, meta.commitment, 32);
	static const char *const swaps[][2] = {
	    {"veil-recovery-share 1\n", "veil-recovery-share 2\n"},
	    {"threshold 2\n", "threshold 02\n"},
	    {"threshold 2\n", "threshold 4\n"},
	    {"threshold 2\n", "threshold  2\n"},
	    {"x 3\n", "x 0\n"},
	    {"x 3\n", "x 300\n"},
	    {"x 3\n", ""},
	    {"shares 3\n", "x 3\nshares 3\n"},
	    {"share ", "share 00"},
	    {"share ", "share\t"},
	    {"commitment ", "commitment 0"},
	    {"cas_key_hash aa", "cas_key_hash AA"},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(swaps); i++) {
		const char *at = strstr(text, swaps[i][0]);
		assert_non_null(at);
		int n = snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - text), text, swaps[i][1],
				 at + strlen(swaps[i][0]));
		assert_true(n > 0 && (size_t)n < sizeof(buf));
		assert_int_not_equal(
		    veil_recovery_opened_parse(buf, (size_t)n, &back, got, why, sizeof(why)), 0);
	}
	/* trailing text, a missing final newline, every truncation */
	snprintf(buf, sizeof(buf), "%sextra\n", text);
	assert_int_not_equal(
	    veil_recovery_opened_parse(buf, strlen(buf), &back, got, why, sizeof(why)), 0);
	for (size_t cut = 0; cut < size; cut++)
		assert_int_not_equal(
		    veil_recovery_opened_parse(text, cut, &back, got, why, sizeof(why)), 0);
}

static void test_commitment_depends_on_key_and_cas(void **state)
{
	(void)state;
	uint8_t k1[KEY] = {1}, k2[KEY] = {2}, c1[32], c2[32], c3[32];
	static const char hash_b[] =
	    "bb11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11";
	assert_int_equal(veil_recovery_commitment(k1, hash_a, c1), 0);
	assert_int_equal(veil_recovery_commitment(k2, hash_a, c2), 0);
	assert_int_equal(veil_recovery_commitment(k1, hash_b, c3), 0);
	assert_memory_not_equal(c1, c2, 32);
	assert_memory_not_equal(c1, c3, 32);
	assert_int_equal(veil_recovery_commitment(k1, "short", c3), VEIL_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_parameters_refused),
	    cmocka_unit_test(test_share_file_refuses_malformed),
	    cmocka_unit_test(test_opened_share_round_trip_and_malformed),
	    cmocka_unit_test(test_k_minus_1_shares_do_not_give_the_secret),
	    cmocka_unit_test(test_k_minus_1_shares_fit_every_candidate_exactly_once),
	    cmocka_unit_test(test_changed_share_gives_another_secret),
	    cmocka_unit_test(test_field_multiplication_and_inverse),
	    cmocka_unit_test(test_round_trip_for_several_thresholds),
	    cmocka_unit_test(test_any_k_of_n_give_the_secret),
	    cmocka_unit_test(test_share_file_round_trip_and_exact_form),
	    cmocka_unit_test(test_commitment_depends_on_key_and_cas),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
