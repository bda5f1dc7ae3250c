/* HPKE (src/common/hpke.c) against RFC 9180's test vectors, and the sealed
 * configuration built on it (src/common/sealed.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "veil/common.h"
#include "veil/hpke.h"
#include "veil/sealed.h"
#include "veil/secrets.h"

/* RFC 9180's test vectors (test-vectors.json of github.com/cfrg/draft-irtf-cfrg-hpke
 * at commit 5f503c5, the RFC's; as vendored by github.com/cloudflare/circl,
 * hpke/testdata/vectors_rfc9180_5f503c5.json.gz): the entry mode 0, kem_id
 * 16, kdf_id 1, aead_id 2, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256,
 * AES-256-GCM, and its first four encryptions. Appendix A.3 of the RFC
 * prints the same suite with AES-128-GCM only. */
static const char v_info[] = "4f6465206f6e2061204772656369616e2055726e";
static const char v_skem[] = "90345e3a1d116c1dd39ae76d95ab858c142223a63e44f8f85318cfa91a84858e";
static const char v_pkem[] = "04c06b4f6bebc7bb495cb797ab753f911aff80aefb86fd8b6fcc35525f3ab5f03e"
			     "0b21bd31a86c6048af3cb2d98e0d3bf01da5cc4c39ff5370d331a4f1f7d5a4e0";
static const char v_skrm[] = "317f915db7bc629c48fe765587897e01e282d3e8445f79f27f65d031a88082b2";
static const char v_pkrm[] = "04abc7e49a4c6b3566d77d0304addc6ed0e98512ffccf505e6a8e3eb25c685136f"
			     "853148544876de76c0f2ef99cdc3a05ccf5ded7860c7c021238f9e2073d2356c";
static const char v_enc[] = "04c06b4f6bebc7bb495cb797ab753f911aff80aefb86fd8b6fcc35525f3ab5f03e"
			    "0b21bd31a86c6048af3cb2d98e0d3bf01da5cc4c39ff5370d331a4f1f7d5a4e0";
static const char v_shared_secret[] =
    "48893fecd82f7c3456af6a42d8f56325d21e08c10fa81299986aaff54cde7b49";
static const char v_key[] = "ee16802a936d5f544771131900ee6973d0551de9e852ece2ef34bf0d5f9e1d1d";
static const char v_base_nonce[] = "9bc50980832a7b4b58c40161";
/* "Beauty is truth, truth beauty" */
static const char v_pt[] = "4265617574792069732074727574682c20747275746820626561757479";
static const struct {
	const char *aad, *ct;
} v_encryptions[] = {
    {"436f756e742d30", "58c61a45059d0c5704560e9d88b564a8b63f1364b8d1fcb3c4c6ddc1d291742465e902cd"
		       "216f8908da49f8f96f"},
    {"436f756e742d31", "b4e7c90d1dd62cb563694956eb517ab55d5e7d1f6366a0066c04ababaa444dbaf60a30d7"
		       "bb7d3e91b969762dee"},
    {"436f756e742d32", "65463cc0e5fd16e1650a55fb37d5b6fe6e5ac5b6f6e8c2640cfb0fcd528dc37bc0963b5c"
		       "53d6238c42d447ddf4"},
    {"436f756e742d33", "2e68d23899ad26f5b2a427b558b764978f36ee5a77ff5d9e41b53c9ed92e68e5432fbbd8"
		       "02426118fb33679597"},
};

/* hex -> bytes (the test's own vectors: any error is the test's bug) */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;
	assert_true(n <= cap);
	assert_int_equal(veil_unhex(hex, out, n), 0);
	return n;
}

static EVP_PKEY *key_from_hex(const char *sk_hex)
{
	uint8_t sk[32];
	EVP_PKEY *k = NULL;
	unhex(sk_hex, sk, sizeof(sk));
	assert_int_equal(veil_hpke_p256_key_for_test(sk, &k), 0);
	return k;
}

static void assert_hex(const uint8_t *got, size_t n, const char *want)
{
	char hex[1024];
	assert_true(2 * n < sizeof(hex));
	veil_hex(got, n, hex);
	assert_string_equal(hex, want);
}

static void test_rfc9180_vectors_key_schedule_and_sequence(void **state)
{
	(void)state;
	EVP_PKEY *ske = key_from_hex(v_skem), *skr = key_from_hex(v_skrm);
	uint8_t info[64], enc[VEIL_HPKE_ENC_SIZE], ss[32], key[32], nonce[12], pub[65];
	size_t info_len = unhex(v_info, info, sizeof(info));
	/* the keys made from the scalars are the vectors' public keys */
	size_t n = 0;
	assert_true(EVP_PKEY_get_octet_string_param(ske, "encoded-pub-key", pub, sizeof(pub), &n));
	assert_hex(pub, n, v_pkem);
	assert_true(EVP_PKEY_get_octet_string_param(skr, "encoded-pub-key", pub, sizeof(pub), &n));
	assert_hex(pub, n, v_pkrm);

	assert_int_equal(
	    veil_hpke_setup_base_s_for_test(skr, ske, info, info_len, enc, ss, key, nonce), 0);
	assert_hex(enc, sizeof(enc), v_enc);
	assert_hex(ss, sizeof(ss), v_shared_secret);
	assert_hex(key, sizeof(key), v_key);
	assert_hex(nonce, sizeof(nonce), v_base_nonce);

	uint8_t pt[64], aad[32], ct[128];
	size_t pt_len = unhex(v_pt, pt, sizeof(pt));
	for (uint64_t seq = 0; seq < VEIL_ARRAY_LEN(v_encryptions); seq++) {
		size_t aad_len = unhex(v_encryptions[seq].aad, aad, sizeof(aad));
		assert_int_equal(
		    veil_hpke_seal_seq_for_test(key, nonce, seq, aad, aad_len, pt, pt_len, ct), 0);
		assert_hex(ct, pt_len + VEIL_HPKE_TAG_SIZE, v_encryptions[seq].ct);
	}
	EVP_PKEY_free(ske);
	EVP_PKEY_free(skr);
}

/* the single-shot open of the vectors' sequence 0: Decap and the key
 * schedule on the recipient's side */
static void test_rfc9180_vector_opens_with_recipient_key(void **state)
{
	(void)state;
	EVP_PKEY *skr = key_from_hex(v_skrm);
	uint8_t info[64], enc[VEIL_HPKE_ENC_SIZE], aad[32], ct[128], *pt = NULL;
	size_t info_len = unhex(v_info, info, sizeof(info)), pt_len = 0;
	unhex(v_enc, enc, sizeof(enc));
	size_t aad_len = unhex(v_encryptions[0].aad, aad, sizeof(aad));
	size_t ct_len = unhex(v_encryptions[0].ct, ct, sizeof(ct));
	assert_int_equal(
	    veil_hpke_open(skr, enc, info, info_len, aad, aad_len, ct, ct_len, &pt, &pt_len), 0);
	assert_hex(pt, pt_len, v_pt);
	assert_int_equal(pt[pt_len], 0);
	veil_secure_free(pt, pt_len + 1);
	/* sequence 1's ciphertext is not single-shot's (another nonce) */
	ct_len = unhex(v_encryptions[1].ct, ct, sizeof(ct));
	aad_len = unhex(v_encryptions[1].aad, aad, sizeof(aad));
	pt = NULL;
	assert_int_equal(
	    veil_hpke_open(skr, enc, info, info_len, aad, aad_len, ct, ct_len, &pt, &pt_len),
	    VEIL_EINVAL);
	assert_null(pt);
	EVP_PKEY_free(skr);
}

static const uint8_t msg[] = "{\"environment\":{\"API_PASSWORD\":\"s3cr3t-value\"}}";
static const uint8_t r_info[] = "veil-config-v1\0ns/svc";
static const uint8_t r_aad[32] = {1, 2, 3};

struct sealed {
	uint8_t enc[VEIL_HPKE_ENC_SIZE];
	uint8_t *ct;
	size_t ct_len;
};

static void seal_msg(EVP_PKEY *to, struct sealed *s)
{
	assert_int_equal(veil_hpke_seal(to, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), msg,
					sizeof(msg) - 1, s->enc, &s->ct, &s->ct_len),
			 0);
	assert_int_equal(s->ct_len, sizeof(msg) - 1 + VEIL_HPKE_TAG_SIZE);
	/* the plaintext is nowhere in the ciphertext */
	assert_null(memmem(s->ct, s->ct_len, "s3cr3t", 6));
}

/* open with info, aad, enc, ct as given: 0 or the error */
static int open_as(EVP_PKEY *k, const uint8_t *enc, const uint8_t *info, size_t info_len,
		   const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len)
{
	uint8_t *pt = NULL;
	size_t pt_len = 0;
	int rc = veil_hpke_open(k, enc, info, info_len, aad, aad_len, ct, ct_len, &pt, &pt_len);
	if (!rc) {
		assert_int_equal(pt_len, sizeof(msg) - 1);
		assert_memory_equal(pt, msg, pt_len);
		veil_secure_free(pt, pt_len + 1);
	} else {
		assert_null(pt);
	}
	return rc;
}

static void test_round_trip_with_random_keys(void **state)
{
	(void)state;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct sealed a, b;
	assert_non_null(k);
	seal_msg(k, &a);
	seal_msg(k, &b);
	/* a fresh ephemeral key each time */
	assert_memory_not_equal(a.enc, b.enc, sizeof(a.enc));
	assert_int_equal(
	    open_as(k, a.enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), a.ct, a.ct_len), 0);
	assert_int_equal(
	    open_as(k, b.enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), b.ct, b.ct_len), 0);
	/* an empty plaintext and empty info and aad are fine too */
	uint8_t enc[VEIL_HPKE_ENC_SIZE], *ct = NULL, *pt = NULL;
	size_t ct_len = 0, pt_len = 1;
	assert_int_equal(veil_hpke_seal(k, NULL, 0, NULL, 0, NULL, 0, enc, &ct, &ct_len), 0);
	assert_int_equal(ct_len, VEIL_HPKE_TAG_SIZE);
	assert_int_equal(veil_hpke_open(k, enc, NULL, 0, NULL, 0, ct, ct_len, &pt, &pt_len), 0);
	assert_int_equal(pt_len, 0);
	veil_secure_free(pt, 1);
	free(ct);
	free(a.ct);
	free(b.ct);
	EVP_PKEY_free(k);
}

/* the key process gets the runtime's key as its point: off the curve,
 * compressed or the wrong size is refused; the point's key seals to the
 * same recipient */
static void test_public_key_from_point(void **state)
{
	(void)state;
	EVP_PKEY *k = EVP_EC_gen("P-256"), *pub = NULL;
	uint8_t pt[VEIL_HPKE_ENC_SIZE + 8];
	size_t n = 0;
	assert_int_equal(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt,
							 sizeof(pt), &n),
			 1);
	assert_int_equal(n, VEIL_HPKE_ENC_SIZE);
	assert_int_equal(veil_hpke_public_from_point(pt, &pub), 0);
	struct sealed a;
	seal_msg(pub, &a);
	assert_int_equal(
	    open_as(k, a.enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), a.ct, a.ct_len), 0);
	free(a.ct);
	EVP_PKEY_free(pub);
	uint8_t bad[VEIL_HPKE_ENC_SIZE];
	memcpy(bad, pt, sizeof(bad));
	bad[64] ^= 1; /* y changed: off the curve */
	pub = NULL;
	assert_int_equal(veil_hpke_public_from_point(bad, &pub), VEIL_EINVAL);
	assert_null(pub);
	memcpy(bad, pt, sizeof(bad));
	bad[0] = 0x02; /* a compressed point's tag */
	assert_int_equal(veil_hpke_public_from_point(bad, &pub), VEIL_EINVAL);
	memset(bad, 0, sizeof(bad)); /* the point at infinity is one zero byte, never this */
	assert_int_equal(veil_hpke_public_from_point(bad, &pub), VEIL_EINVAL);
	/* sealing to the point itself (the key process's way): it opens with
	 * the key; a point off the curve or compressed is refused */
	uint8_t enc[VEIL_HPKE_ENC_SIZE], *ct = NULL;
	size_t ct_len = 0;
	assert_int_equal(veil_hpke_seal_to_point(pt, r_info, sizeof(r_info) - 1, r_aad,
						 sizeof(r_aad), (const uint8_t *)msg,
						 sizeof(msg) - 1, enc, &ct, &ct_len),
			 0);
	assert_int_equal(
	    open_as(k, enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), ct, ct_len), 0);
	free(ct);
	memcpy(bad, pt, sizeof(bad));
	bad[64] ^= 1;
	ct = NULL;
	assert_int_equal(veil_hpke_seal_to_point(bad, NULL, 0, NULL, 0, (const uint8_t *)"x", 1,
						 enc, &ct, &ct_len),
			 VEIL_EINVAL);
	assert_null(ct);
	bad[0] = 0x03;
	assert_int_equal(veil_hpke_seal_to_point(bad, NULL, 0, NULL, 0, (const uint8_t *)"x", 1,
						 enc, &ct, &ct_len),
			 VEIL_EINVAL);
	EVP_PKEY_free(k);
}

static void test_other_recipient_key_cannot_open(void **state)
{
	(void)state;
	EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	struct sealed a;
	seal_msg(k, &a);
	assert_int_equal(
	    open_as(other, a.enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), a.ct, a.ct_len),
	    VEIL_EINVAL);
	free(a.ct);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void test_changed_info_aad_enc_or_ct_byte_refused(void **state)
{
	(void)state;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct sealed a;
	seal_msg(k, &a);
	uint8_t info[sizeof(r_info)], aad[sizeof(r_aad)], enc[VEIL_HPKE_ENC_SIZE];
	/* every byte of info */
	for (size_t i = 0; i < sizeof(r_info) - 1; i++) {
		memcpy(info, r_info, sizeof(info));
		info[i] ^= 0x01;
		assert_int_equal(open_as(k, a.enc, info, sizeof(r_info) - 1, r_aad, sizeof(r_aad),
					 a.ct, a.ct_len),
				 VEIL_EINVAL);
	}
	/* a shorter or longer info (the config id's end) */
	assert_int_equal(
	    open_as(k, a.enc, r_info, sizeof(r_info) - 2, r_aad, sizeof(r_aad), a.ct, a.ct_len),
	    VEIL_EINVAL);
	assert_int_equal(
	    open_as(k, a.enc, r_info, sizeof(r_info), r_aad, sizeof(r_aad), a.ct, a.ct_len),
	    VEIL_EINVAL);
	for (size_t i = 0; i < sizeof(r_aad); i++) {
		memcpy(aad, r_aad, sizeof(aad));
		aad[i] ^= 0x80;
		assert_int_equal(
		    open_as(k, a.enc, r_info, sizeof(r_info) - 1, aad, sizeof(aad), a.ct, a.ct_len),
		    VEIL_EINVAL);
	}
	/* enc: the point changed (off the curve, or another point) */
	for (size_t i = 0; i < sizeof(enc); i++) {
		memcpy(enc, a.enc, sizeof(enc));
		enc[i] ^= 0x01;
		assert_int_equal(open_as(k, enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad),
					 a.ct, a.ct_len),
				 VEIL_EINVAL);
	}
	for (size_t i = 0; i < a.ct_len; i++) {
		a.ct[i] ^= 0x01;
		assert_int_equal(open_as(k, a.enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad),
					 a.ct, a.ct_len),
				 VEIL_EINVAL);
		a.ct[i] ^= 0x01;
	}
	/* unchanged, it still opens */
	assert_int_equal(
	    open_as(k, a.enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), a.ct, a.ct_len), 0);
	free(a.ct);
	EVP_PKEY_free(k);
}

static void test_truncated_ct_refused(void **state)
{
	(void)state;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct sealed a;
	seal_msg(k, &a);
	for (size_t n = 0; n < a.ct_len; n++)
		assert_int_equal(
		    open_as(k, a.enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), a.ct, n),
		    VEIL_EINVAL);
	free(a.ct);
	EVP_PKEY_free(k);
}

static void test_keys_other_than_p256_refused(void **state)
{
	(void)state;
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint8_t enc[VEIL_HPKE_ENC_SIZE], *ct = NULL;
	size_t ct_len = 0;
	assert_non_null(p384);
	assert_non_null(ed);
	assert_true(veil_hpke_key_is_p256(k));
	assert_false(veil_hpke_key_is_p256(p384));
	assert_false(veil_hpke_key_is_p256(ed));
	assert_false(veil_hpke_key_is_p256(NULL));
	assert_int_equal(veil_hpke_seal(p384, r_info, 3, r_aad, 3, msg, 3, enc, &ct, &ct_len),
			 VEIL_EINVAL);
	assert_int_equal(veil_hpke_seal(ed, r_info, 3, r_aad, 3, msg, 3, enc, &ct, &ct_len),
			 VEIL_EINVAL);
	assert_null(ct);
	/* a compressed point in enc is not DHKEM(P-256)'s serialization */
	struct sealed a;
	seal_msg(k, &a);
	memcpy(enc, a.enc, sizeof(enc));
	enc[0] = 0x02;
	assert_int_equal(
	    open_as(k, enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), a.ct, a.ct_len),
	    VEIL_EINVAL);
	assert_int_equal(
	    open_as(p384, a.enc, r_info, sizeof(r_info) - 1, r_aad, sizeof(r_aad), a.ct, a.ct_len),
	    VEIL_EINVAL);
	free(a.ct);
	EVP_PKEY_free(k);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
}

/* ---- the sealed configuration (sealed.h) ---- */

static const char config[] = "{\"environment\":{\"API_USER\":\"myself\",\"API_PASSWORD\":"
			     "\"pw-0123456789\"},\"injection_files\":[]}";

static char *seal_config(EVP_PKEY *k, const char *config_id, const uint8_t ev[32], size_t *n)
{
	char *answer = NULL;
	assert_int_equal(veil_seal_config(k, config_id, ev, config, sizeof(config) - 1, &answer, n),
			 0);
	assert_int_equal(strlen(answer), *n);
	return answer;
}

static int open_config(EVP_PKEY *k, const char *config_id, const uint8_t ev[32], const char *answer,
		       size_t n)
{
	char *out = NULL;
	size_t out_size = 0;
	int rc = veil_open_config(k, config_id, ev, answer, n, &out, &out_size);
	if (!rc) {
		assert_string_equal(out, config);
		assert_int_equal(out_size, sizeof(config) - 1);
		veil_secure_free(out, out_size + 1);
	} else {
		assert_null(out);
	}
	return rc;
}

static void test_sealed_config_opens_only_for_its_key_config_id_and_evidence(void **state)
{
	(void)state;
	EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	uint8_t ev[32], ev2[32];
	assert_int_equal(veil_sha256("evidence", 8, ev), 0);
	assert_int_equal(veil_sha256("evidence2", 9, ev2), 0);
	size_t n = 0;
	char *answer = seal_config(k, "ns/svc", ev, &n);
	/* the format: no plaintext, the suite named, a newline at the end */
	assert_null(strstr(answer, "myself"));
	assert_null(strstr(answer, "API_USER"));
	assert_null(strstr(answer, "pw-0123456789"));
	static const char head[] = "{\"sealed\":{\"suite\":\"P256-SHA256-AES256GCM\",\"enc\":\"";
	assert_int_equal(strncmp(answer, head, sizeof(head) - 1), 0);
	assert_int_equal(answer[n - 1], '\n');
	assert_int_equal(open_config(k, "ns/svc", ev, answer, n), 0);
	assert_int_equal(open_config(other, "ns/svc", ev, answer, n), VEIL_EINVAL);
	assert_int_equal(open_config(k, "ns/other", ev, answer, n), VEIL_EINVAL);
	assert_int_equal(open_config(k, "ns/sv", ev, answer, n), VEIL_EINVAL);
	assert_int_equal(open_config(k, "ns/svc", ev2, answer, n), VEIL_EINVAL);
	free(answer);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void test_sealed_config_other_format_refused(void **state)
{
	(void)state;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	uint8_t ev[32] = {0};
	size_t n = 0;
	char *answer = seal_config(k, "a/b", ev, &n), buf[4096];
	assert_true(n < sizeof(buf) - 64);
	/* another suite */
	memcpy(buf, answer, n + 1);
	char *s = strstr(buf, "AES256GCM");
	memcpy(s, "AES128GCM", 9);
	assert_int_equal(open_config(k, "a/b", ev, buf, n), VEIL_EINVAL);
	/* an extra member, inside and outside */
	snprintf(buf, sizeof(buf), "{\"sealed\":{\"x\":1,%s", answer + 11);
	assert_int_equal(open_config(k, "a/b", ev, buf, strlen(buf)), VEIL_EINVAL);
	memcpy(buf, answer, n + 1);
	snprintf(strrchr(buf, '}'), 32, ",\"error\":\"x\"}");
	assert_int_equal(open_config(k, "a/b", ev, buf, strlen(buf)), VEIL_EINVAL);
	/* the plain answer of before, and an error answer */
	assert_int_equal(open_config(k, "a/b", ev, config, sizeof(config) - 1), VEIL_EINVAL);
	assert_int_equal(open_config(k, "a/b", ev, "{\"error\":\"no\"}", 14), VEIL_EINVAL);
	/* truncated anywhere */
	for (size_t i = 0; i < n - 1; i++)
		assert_int_not_equal(open_config(k, "a/b", ev, answer, i), 0);
	/* a malformed enc (its base64 padded too early) */
	const char *e = strstr(answer, "\"enc\":\"") + 7;
	memcpy(buf, answer, n + 1);
	memcpy(buf + (e - answer) + 84, "==", 2);
	assert_int_not_equal(open_config(k, "a/b", ev, buf, n), 0);
	/* the full answer still opens */
	assert_int_equal(open_config(k, "a/b", ev, answer, n), 0);
	free(answer);
	EVP_PKEY_free(k);
}

static void test_sealed_config_refuses_non_p256_key(void **state)
{
	(void)state;
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	uint8_t ev[32] = {0};
	char *answer = NULL;
	size_t n = 0;
	assert_non_null(rsa);
	assert_int_equal(veil_seal_config(rsa, "a/b", ev, config, sizeof(config) - 1, &answer, &n),
			 VEIL_EINVAL);
	assert_null(answer);
	EVP_PKEY_free(rsa);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_changed_info_aad_enc_or_ct_byte_refused),
	    cmocka_unit_test(test_truncated_ct_refused),
	    cmocka_unit_test(test_other_recipient_key_cannot_open),
	    cmocka_unit_test(test_public_key_from_point),
	    cmocka_unit_test(test_keys_other_than_p256_refused),
	    cmocka_unit_test(test_sealed_config_other_format_refused),
	    cmocka_unit_test(test_sealed_config_refuses_non_p256_key),
	    cmocka_unit_test(test_sealed_config_opens_only_for_its_key_config_id_and_evidence),
	    cmocka_unit_test(test_rfc9180_vectors_key_schedule_and_sequence),
	    cmocka_unit_test(test_rfc9180_vector_opens_with_recipient_key),
	    cmocka_unit_test(test_round_trip_with_random_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
