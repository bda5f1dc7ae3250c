/* Unit tests: CAS secrets (src/cas/secrets_*.c, src/common/secure.c):
 * secure memory, generation, dependency order, update rules, the serialised
 * form and placeholder rendering. Adversarial cases first in each group. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "veil/manifest.h" /* veil check, against the CAS */
#include "veil/policy_model.h"
#include "veil/secrets.h"

static struct veil_diags D;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static int diags_have(const char *needle)
{
	for (size_t i = 0; i < D.count; i++)
		if (strstr(D.msgs[i], needle))
			return 1;
	return 0;
}

static void print_diags(void)
{
	veil_diags_print(&D, stderr);
}

static int gen_rc(const struct veil_secret *defs, size_t n, const struct veil_secret_set *prev,
		  struct veil_secret_set *out)
{
	veil_diags_free(&D);
	veil_diags_init(&D);
	return veil_secrets_generate(defs, n, "test-ns", prev, out, &D);
}

static void gen_ok(const struct veil_secret *defs, size_t n, const struct veil_secret_set *prev,
		   struct veil_secret_set *out)
{
	int rc = gen_rc(defs, n, prev, out);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
}

/* Fails with VEIL_EINVAL, leaves out untouched, and a diagnostic says want. */
static void gen_err(const struct veil_secret *defs, size_t n, const struct veil_secret_set *prev,
		    const char *want)
{
	struct veil_secret_set out = {(struct veil_secret_value *)&out, 4242};
	int rc = gen_rc(defs, n, prev, &out);
	assert_int_equal(rc, VEIL_EINVAL);
	assert_ptr_equal(out.v, (struct veil_secret_value *)&out);
	assert_int_equal(out.count, 4242);
	if (!diags_have(want)) {
		print_diags();
		fail_msg("no diagnostic contains '%s'", want);
	}
}

static const struct veil_secret_value *must_find(const struct veil_secret_set *set,
						 const char *name)
{
	const struct veil_secret_value *v = veil_secret_find(set, name);
	if (!v)
		fail_msg("secret '%s' not in the set", name);
	return v;
}

static EVP_PKEY *parse_key(const char *pem)
{
	assert_non_null(pem);
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(k);
	return k;
}

static EVP_PKEY *parse_pub(const char *pem)
{
	assert_non_null(pem);
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(k);
	return k;
}

static X509 *parse_cert(const char *pem)
{
	assert_non_null(pem);
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(x);
	return x;
}

static STACK_OF(X509) * parse_certs(const char *pem)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
}

/* X509_V_OK when leaf verifies (X.509 strict) against root, with the
 * certificates of `untrusted` (may be NULL) as intermediates. */
static int verify(const char *leaf_pem, const char *root_pem, const char *untrusted)
{
	X509 *leaf = parse_cert(leaf_pem), *root = parse_cert(root_pem);
	STACK_OF(X509) *chain = untrusted ? parse_certs(untrusted) : NULL;
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	assert_int_equal(X509_STORE_add_cert(st, root), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, chain), 1);
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
	int ok = X509_verify_cert(ctx);
	int err = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_pop_free(chain, X509_free);
	X509_free(leaf);
	X509_free(root);
	ERR_clear_error();
	return ok == 1 ? X509_V_OK : (err ? err : -1);
}

static void subject_entry(X509 *x, int nid, char *buf, size_t size)
{
	buf[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), nid, buf, (int)size);
}

static int ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);
	assert_true(i >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static void check_alg(EVP_PKEY *k, const char *alg)
{
	char g[64] = "";
	if (!strcmp(alg, "Ed25519")) {
		assert_true(EVP_PKEY_is_a(k, "ED25519"));
	} else if (!strncmp(alg, "RSA-", 4)) {
		assert_true(EVP_PKEY_is_a(k, "RSA"));
		assert_int_equal(EVP_PKEY_get_bits(k), atoi(alg + 4));
	} else {
		assert_true(EVP_PKEY_is_a(k, "EC"));
		assert_int_equal(EVP_PKEY_get_group_name(k, g, sizeof(g), NULL), 1);
		assert_string_equal(g, !strcmp(alg, "P-256") ? "prime256v1" : "secp384r1");
	}
}

/* The public key in pub_pem is the one of key_pem (or of a certificate). */
static void assert_same_key(const char *pub_pem, EVP_PKEY *k)
{
	EVP_PKEY *p = parse_pub(pub_pem);
	assert_int_equal(EVP_PKEY_eq(p, k), 1);
	EVP_PKEY_free(p);
}

static void assert_cert_key(const char *cert_pem, const char *key_pem)
{
	X509 *x = parse_cert(cert_pem);
	EVP_PKEY *k = parse_key(key_pem);
	assert_int_equal(X509_check_private_key(x, k), 1);
	EVP_PKEY_free(k);
	X509_free(x);
}

static int serial_cmp(const char *a_pem, const char *b_pem)
{
	X509 *a = parse_cert(a_pem), *b = parse_cert(b_pem);
	int r = ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b));
	X509_free(a);
	X509_free(b);
	return r;
}

static int days_left(X509 *x)
{
	int days = 0, secs = 0;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
	return days;
}

static void test_hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
	out[2 * n] = '\0';
}

/* An independent base64 (RFC 4648), to check the renderer against. */
static void test_b64(const uint8_t *p, size_t n, int url, char *out)
{
	const char *t = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			    : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = n - i;
		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		out[o++] = t[(v >> 18) & 63];
		out[o++] = t[(v >> 12) & 63];
		if (left > 1)
			out[o++] = t[(v >> 6) & 63];
		else if (!url)
			out[o++] = '=';
		if (left > 2)
			out[o++] = t[v & 63];
		else if (!url)
			out[o++] = '=';
	}
	out[o] = '\0';
}

static int forbidden_ascii(int c)
{
	return c < 0x21 || c > 0x7e || c == '"' || c == '\'' || c == '\\' || c == '`';
}

/* ------------------------------------------------------------------------ */
/* Secure memory                                                            */

/* Pool blocks come back wiped, whoever used them before; two threads
 * allocating and freeing at once never share a block. */
static void *secure_churn(void *arg)
{
	uint8_t tag = (uint8_t)(uintptr_t)arg;
	for (int round = 0; round < 2000; round++) {
		uint8_t *p[8];
		for (size_t i = 0; i < 8; i++) {
			size_t n = 1 + (size_t)(round * 8 + (int)i) % 300;
			p[i] = veil_secure_alloc(n);
			if (!p[i])
				return (void *)1;
			for (size_t k = 0; k < n; k++)
				if (p[i][k])
					return (void *)1; /* not wiped */
			memset(p[i], tag, n);
		}
		for (size_t i = 0; i < 8; i++) {
			size_t n = 1 + (size_t)(round * 8 + (int)i) % 300;
			for (size_t k = 0; k < n; k++)
				if (p[i][k] != tag)
					return (void *)1; /* another thread wrote here */
			veil_secure_free(p[i], n);
		}
	}
	return NULL;
}

static void test_secure_reuse_wiped_and_threads(void **state)
{
	uint8_t *p[100];
	for (size_t i = 0; i < 100; i++) {
		p[i] = veil_secure_alloc(40);
		memset(p[i], 0xa5, 40);
	}
	for (size_t i = 0; i < 100; i++)
		veil_secure_free(p[i], 40);
	for (size_t i = 0; i < 100; i++) {
		p[i] = veil_secure_alloc(40);
		for (size_t k = 0; k < 40; k++)
			assert_int_equal(p[i][k], 0);
	}
	for (size_t i = 0; i < 100; i++)
		veil_secure_free(p[i], 40);
	pthread_t t1, t2;
	void *r1, *r2;
	assert_int_equal(pthread_create(&t1, NULL, secure_churn, (void *)(uintptr_t)0x11), 0);
	assert_int_equal(pthread_create(&t2, NULL, secure_churn, (void *)(uintptr_t)0x22), 0);
	pthread_join(t1, &r1);
	pthread_join(t2, &r2);
	assert_null(r1);
	assert_null(r2);
}

static void test_secure_alloc(void **state)
{
	size_t sizes[] = {0, 1, 15, 16, 4063, 4064, 4065, 4096, 100000};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(sizes); i++) {
		uint8_t *p = veil_secure_alloc(sizes[i]);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		for (size_t k = 0; k < sizes[i]; k++)
			assert_int_equal(p[k], 0);
		memset(p, 0xa5, sizes[i]);
		veil_secure_free(p, sizes[i]);
	}
	assert_null(veil_secure_alloc(SIZE_MAX));
	assert_null(veil_secure_alloc(SIZE_MAX - 16));
	veil_secure_free(NULL, 10);
	veil_secure_strfree(NULL);
	assert_null(veil_secure_strdup(NULL));
	char *s = veil_secure_strdup("hunter2");
	assert_string_equal(s, "hunter2");
	veil_secure_strfree(s);
	s = veil_secure_strdup("");
	assert_string_equal(s, "");
	veil_secure_strfree(s);
}

/* ------------------------------------------------------------------------ */
/* ascii and binary                                                         */

static void test_ascii_alphabet_and_sizes(void **state)
{
	unsigned long hist[256] = {0};
	unsigned long total = 0;
	for (unsigned long long size = 1; size <= 300; size++) {
		struct veil_secret def = {
		    .name = "pw", .kind = "ascii", .size = size, .has_size = 1};
		struct veil_secret_set set = {0};
		gen_ok(&def, 1, NULL, &set);
		assert_int_equal(set.count, 1);
		const struct veil_secret_value *v = &set.v[0];
		assert_string_equal(v->name, "pw");
		assert_string_equal(v->kind, "ascii");
		assert_int_equal(v->size, size);
		assert_int_equal(v->bytes[size], 0);
		assert_null(v->key_pem);
		for (size_t i = 0; i < size; i++) {
			if (forbidden_ascii(v->bytes[i]))
				fail_msg("forbidden character 0x%02x at %zu of %llu", v->bytes[i],
					 i, size);
			hist[v->bytes[i]]++;
			total++;
		}
		veil_secret_set_free(&set);
	}
	struct veil_secret big = {.name = "big", .kind = "ascii", .size = 65536, .has_size = 1};
	struct veil_secret_set set = {0};
	gen_ok(&big, 1, NULL, &set);
	assert_int_equal(set.v[0].size, 65536);
	for (size_t i = 0; i < 65536; i++) {
		assert_false(forbidden_ascii(set.v[0].bytes[i]));
		hist[set.v[0].bytes[i]]++;
		total++;
	}
	veil_secret_set_free(&set);
	/* all 90 allowed characters appear, each close to equally often */
	double expect = (double)total / 90;
	int seen = 0;
	for (int c = 0; c < 256; c++) {
		if (forbidden_ascii(c)) {
			assert_int_equal(hist[c], 0);
			continue;
		}
		seen++;
		if (hist[c] < 0.8 * expect || hist[c] > 1.2 * expect)
			fail_msg("character '%c' drawn %lu times, expected about %.0f", c, hist[c],
				 expect);
	}
	assert_int_equal(seen, 90);
}

static void test_defaults_and_distinct(void **state)
{
	struct veil_secret defs[] = {{.name = "a1", .kind = "ascii"},
				     {.name = "a2", .kind = "ascii"},
				     {.name = "b1", .kind = "binary"},
				     {.name = "b2", .kind = "binary"}};
	struct veil_secret_set set = {0};
	gen_ok(defs, 4, NULL, &set);
	assert_int_equal(set.count, 4); /* no namespace CA without certificates */
	const struct veil_secret_value *a1 = must_find(&set, "a1"), *a2 = must_find(&set, "a2");
	const struct veil_secret_value *b1 = must_find(&set, "b1"), *b2 = must_find(&set, "b2");
	assert_int_equal(a1->size, 20);
	assert_int_equal(b1->size, 32);
	assert_memory_not_equal(a1->bytes, a2->bytes, 20);
	assert_memory_not_equal(b1->bytes, b2->bytes, 32);
	veil_secret_set_free(&set);

	/* two generations of the same definitions differ too */
	struct veil_secret_set s1 = {0}, s2 = {0};
	gen_ok(defs, 4, NULL, &s1);
	gen_ok(defs, 4, NULL, &s2);
	for (size_t i = 0; i < 4; i++)
		assert_memory_not_equal(s1.v[i].bytes, s2.v[i].bytes, s1.v[i].size);
	veil_secret_set_free(&s1);
	veil_secret_set_free(&s2);
}

static void test_binary_sizes(void **state)
{
	unsigned long long sizes[] = {1, 2, 3, 31, 32, 33, 1000, 65535, 65536};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(sizes); i++) {
		struct veil_secret def = {
		    .name = "k", .kind = "binary", .size = sizes[i], .has_size = 1};
		struct veil_secret_set set = {0};
		gen_ok(&def, 1, NULL, &set);
		assert_int_equal(set.v[0].size, sizes[i]);
		if (sizes[i] >= 16) {
			uint8_t zero[16] = {0};
			assert_memory_not_equal(set.v[0].bytes, zero, 16);
		}
		veil_secret_set_free(&set);
	}
}

static void test_explicit_and_values(void **state)
{
	struct veil_secret defs[] = {
	    {.name = "e", .kind = "explicit", .value = "the value"},
	    {.name = "empty", .kind = "explicit", .value = ""},
	    {.name = "a", .kind = "ascii", .value = "given ascii"},
	    {.name = "b", .kind = "binary", .value = "feedfeed00"},
	};
	struct veil_secret_set set = {0};
	gen_ok(defs, 4, NULL, &set);
	const struct veil_secret_value *e = must_find(&set, "e");
	assert_int_equal(e->size, 9);
	assert_memory_equal(e->bytes, "the value", 9);
	assert_int_equal(must_find(&set, "empty")->size, 0);
	assert_non_null(must_find(&set, "empty")->bytes);
	assert_memory_equal(must_find(&set, "a")->bytes, "given ascii", 11);
	/* an explicit binary value is hex, as in SCONE */
	assert_int_equal(must_find(&set, "b")->size, 5);
	assert_memory_equal(must_find(&set, "b")->bytes, "\xfe\xed\xfe\xed\x00", 5);
	veil_secret_set_free(&set);
}

/* SCONE's java tutorial writes `value: |` then `feedfeed00`: the line break of
 * the block and upper-case digits are accepted; the default rendering of a
 * binary secret gives the same hex back */
static void test_explicit_binary_value_is_hex(void **state)
{
	static const char *const same[] = {"feedfeed00", "feedfeed00\n", "  FEEDfeed00 \r\n"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(same); i++) {
		struct veil_secret def = {.name = "b", .kind = "binary", .value = same[i]};
		struct veil_secret_set set = {0};
		char *out = NULL;
		gen_ok(&def, 1, NULL, &set);
		assert_int_equal(must_find(&set, "b")->size, 5);
		assert_memory_equal(must_find(&set, "b")->bytes, "\xfe\xed\xfe\xed\x00", 5);
		assert_int_equal(
		    veil_secret_render("<$$SCONE::b$$|$$SCONE::b:base64$$>", &set, &out, &D), 0);
		assert_string_equal(out, "<feedfeed00|/u3+7QA=>");
		veil_secure_strfree(out);
		veil_secret_set_free(&set);
	}
	static const char *const bad[] = {"given binary", "abc", "", "\n", "fe ed", "0x00", "gg"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(bad); i++) {
		struct veil_secret def = {.name = "b", .kind = "binary", .value = bad[i]};
		gen_err(&def, 1, NULL,
			"secret 'b': value must be an even number of hex digits (an explicit "
			"binary value is hex, as in SCONE)");
		assert_int_equal(D.count, 1);
	}
}

/* ------------------------------------------------------------------------ */
/* Invalid definitions                                                      */

static void test_invalid_definitions(void **state)
{
	static char *bad_dns1[] = {"a b"};
	static char *bad_dns2[] = {"ok.example", "x,IP:1.2.3.4"};
	static char *bad_dns3[] = {""};
	static const struct {
		struct veil_secret def;
		const char *want;
	} cases[] = {
	    {{.name = "s", .kind = "ascii", .size = 0, .has_size = 1}, "size must be between"},
	    {{.name = "s", .kind = "binary", .size = 65537, .has_size = 1}, "size must be between"},
	    {{.name = "s", .kind = "ascii", .size = 1ULL << 40, .has_size = 1},
	     "size must be between"},
	    {{.name = "s", .kind = "password"}, "unknown kind 'password'"},
	    {{.name = "s", .kind = NULL}, "unknown kind"},
	    {{.name = "a.b", .kind = "ascii"}, "invalid name"},
	    {{.name = "", .kind = "ascii"}, "invalid name"},
	    {{.name = NULL, .kind = "ascii"}, "invalid name"},
	    {{.name = "namespace_ca", .kind = "x509-ca"}, "reserved for the namespace CA"},
	    {{.name = "s", .kind = "explicit"}, "kind 'explicit' needs 'value'"},
	    {{.name = "s", .kind = "explicit", .value = "v", .size = 3, .has_size = 1},
	     "'size' does not apply"},
	    {{.name = "s", .kind = "ascii", .value = "v", .size = 3, .has_size = 1},
	     "either 'size' or 'value'"},
	    {{.name = "s", .kind = "private-key", .algorithm = "P-521"},
	     "unknown algorithm 'P-521'"},
	    {{.name = "s", .kind = "x509-ca", .valid_for = "soon"}, "valid_for 'soon'"},
	    {{.name = "s", .kind = "x509-ca", .valid_for = "0"}, "valid_for '0'"},
	    {{.name = "s", .kind = "x509-ca", .valid_for = "-1"}, "valid_for '-1'"},
	    {{.name = "s", .kind = "x509-ca", .valid_for = "12x"}, "valid_for '12x'"},
	    {{.name = "s", .kind = "x509-ca", .valid_for = "36501"}, "valid_for '36501'"},
	    {{.name = "s", .kind = "x509-ca", .valid_for = "99999999999999999999d"}, "valid_for"},
	    {{.name = "s", .kind = "x509-ca", .valid_for = "d"}, "valid_for 'd'"},
	    {{.name = "s", .kind = "x509", .dns = bad_dns1, .dns_count = 1}, "dns entry #1"},
	    {{.name = "s", .kind = "x509", .dns = bad_dns2, .dns_count = 2}, "dns entry #2"},
	    {{.name = "s", .kind = "x509", .dns = bad_dns3, .dns_count = 1}, "dns entry #1"},
	    {{.name = "s", .kind = "x509", .common_name = ""}, "common_name"},
	    {{.name = "s", .kind = "ascii", .issuer = "ca"}, "'issuer' does not apply"},
	    {{.name = "s", .kind = "binary", .private_key = "k"}, "'private_key' does not apply"},
	    {{.name = "s", .kind = "private-key", .private_key = "k"},
	     "'private_key' does not apply"},
	    {{.name = "s", .kind = "public-key"}, "kind 'public-key' needs 'private_key'"},
	    {{.name = "s", .kind = "x509", .value = "pem?"}, "'value' does not apply"},
	    {{.name = "s", .kind = "ascii", .algorithm = "P-256"}, "'algorithm' does not apply"},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(cases); i++)
		gen_err(&cases[i].def, 1, NULL, cases[i].want);

	/* every broken definition is reported, not just the first */
	struct veil_secret two[] = {{.name = "x", .kind = "nope"},
				    {.name = "y", .kind = "ascii", .size = 0, .has_size = 1}};
	gen_err(two, 2, NULL, "secret 'x'");
	assert_true(diags_have("secret 'y'"));

	struct veil_secret dup[] = {{.name = "d", .kind = "ascii"},
				    {.name = "d", .kind = "binary"}};
	gen_err(dup, 2, NULL, "secret 'd' is defined more than once");
	struct veil_secret dup_import[] = {{.name = "d", .kind = "ascii"},
					   {.name = "d", .import_namespace = "other"}};
	gen_err(dup_import, 2, NULL, "defined more than once");

	struct veil_secret_set out = {0};
	veil_diags_free(&D);
	assert_int_equal(veil_secrets_generate(NULL, 1, "ns", NULL, &out, &D), VEIL_EINVAL);
	assert_int_equal(veil_secrets_generate(two, 1, "ns", NULL, NULL, &D), VEIL_EINVAL);
	/* no definitions: an empty set */
	gen_ok(NULL, 0, NULL, &out);
	assert_int_equal(out.count, 0);
	veil_secret_set_free(&out);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */

static void test_key_algorithms(void **state)
{
	const char *algs[] = {"P-256", "P-384", "Ed25519", "RSA-2048", "RSA-3072"};
	struct veil_secret defs[8] = {
	    {.name = "k0", .kind = "private-key", .algorithm = "P-256"},
	    {.name = "k1", .kind = "private-key", .algorithm = "P-384"},
	    {.name = "k2", .kind = "private-key", .algorithm = "Ed25519"},
	    {.name = "k3", .kind = "private-key", .algorithm = "RSA-2048"},
	    {.name = "k4", .kind = "private-key", .algorithm = "RSA-3072"},
	    {.name = "kdefault", .kind = "private-key"},
	    {.name = "pub2", .kind = "public-key", .private_key = "k2"},
	    {.name = "pub4", .kind = "public-key", .private_key = "k4"},
	};
	struct veil_secret_set set = {0};
	gen_ok(defs, 8, NULL, &set);
	assert_int_equal(set.count, 8);
	for (size_t i = 0; i < 6; i++) {
		const struct veil_secret_value *v = &set.v[i];
		assert_string_equal(v->name, defs[i].name);
		assert_string_equal(v->kind, "private-key");
		assert_null(v->bytes);
		assert_null(v->cert_pem);
		assert_true(!strncmp(v->key_pem, "-----BEGIN PRIVATE KEY-----\n", 28));
		assert_true(!strncmp(v->pub_pem, "-----BEGIN PUBLIC KEY-----\n", 27));
		EVP_PKEY *k = parse_key(v->key_pem);
		check_alg(k, i < 5 ? algs[i] : "P-256");
		assert_same_key(v->pub_pem, k);
		EVP_PKEY_free(k);
	}
	const struct veil_secret_value *p2 = must_find(&set, "pub2"), *p4 = must_find(&set, "pub4");
	assert_null(p2->key_pem);
	assert_null(p2->bytes);
	assert_string_equal(p2->pub_pem, must_find(&set, "k2")->pub_pem);
	assert_string_equal(p4->pub_pem, must_find(&set, "k4")->pub_pem);
	/* fresh keys each time */
	assert_string_not_equal(set.v[0].key_pem, set.v[5].key_pem);
	veil_secret_set_free(&set);
}

static char *pem_of(EVP_PKEY *k, int how)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (how == 0)
		assert_true(PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL));
	else
		assert_true(
		    PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), "pw", 2, NULL, NULL));
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *s = calloc(1, (size_t)n + 1);
	memcpy(s, data, (size_t)n);
	BIO_free(b);
	return s;
}

static void test_private_key_value(void **state)
{
	EVP_PKEY *mine = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	char *trad = pem_of(mine, 0), *enc = pem_of(mine, 1);
	assert_non_null(strstr(trad, "BEGIN EC PRIVATE KEY"));
	char body[40];
	snprintf(body, sizeof(body), "%.32s", strchr(trad, '\n') + 1);

	struct veil_secret def = {.name = "byok", .kind = "private-key", .value = trad};
	struct veil_secret_set set = {0};
	gen_ok(&def, 1, NULL, &set);
	EVP_PKEY *k = parse_key(set.v[0].key_pem);
	assert_int_equal(EVP_PKEY_eq(k, mine), 1);
	assert_true(!strncmp(set.v[0].key_pem, "-----BEGIN PRIVATE KEY-----", 27));
	EVP_PKEY_free(k);
	veil_secret_set_free(&set);

	def.algorithm = "P-256";
	gen_err(&def, 1, NULL, "the value is a P-384 key, not P-256");
	assert_false(diags_have(body));
	def.algorithm = NULL;
	def.value = enc; /* encrypted: refused, never prompted for */
	gen_err(&def, 1, NULL, "not an unencrypted PEM private key");
	def.value = "-----BEGIN PRIVATE KEY-----\nS3cr3tS3cr3t\n-----END PRIVATE KEY-----\n";
	gen_err(&def, 1, NULL, "not an unencrypted PEM private key");
	assert_false(diags_have("S3cr3t"));
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	char *rsa_pem = pem_of(rsa, 0);
	def.value = rsa_pem; /* RSA-1024 is not a supported algorithm */
	gen_err(&def, 1, NULL, "supported algorithm");
	free(rsa_pem);
	EVP_PKEY_free(rsa);
	free(trad);
	free(enc);
	EVP_PKEY_free(mine);
}

/* ------------------------------------------------------------------------ */
/* valid_for: one validator for `veil check`, the policy validator and the CAS */

static const struct {
	const char *in;
	long long seconds; /* 0: refused */
} valid_for_cases[] = {
    {"90 days", 90 * 86400LL},
    {"90days", 90 * 86400LL},
    {"90d", 90 * 86400LL},
    {"90", 90 * 86400LL}, /* veil's older form: days */
    {"1 year", 31557600LL},
    {"2y", 2 * 31557600LL},
    {"1 year 6 months", 31557600LL + 6 * 2630016LL},
    {"1year 6months", 31557600LL + 6 * 2630016LL},
    {"36h", 36 * 3600LL},
    {"2 weeks", 14 * 86400LL},
    {"30 minutes", 1800LL},
    {"1 day 12 hours", 36 * 3600LL},
    {"36500 days", 36500 * 86400LL},
    {"soon", 0},
    {"0", 0},
    {"0 days", 0},
    {"-1", 0},
    {"12x", 0},
    {"36501", 0},
    {"36501 days", 0},
    {"100 years", 0}, /* 36525 days */
    {"99999999999999999999d", 0},
    {"d", 0},
    {"", 0},
    {"90 days ago", 0},
    {"1.5 days", 0},
    {"90 ms", 0},
    {"days 90", 0},
    {"1 year 1", 0},
    {"90 Days", 0},
};

static void test_valid_for_same_verdict_everywhere(void **state)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(valid_for_cases); i++) {
		const char *in = valid_for_cases[i].in;
		long long want = valid_for_cases[i].seconds, got = -1;
		int accepted = want > 0;
		char yaml[512], msg[512];
		print_message("valid_for '%s'\n", in);

		/* the shared parser */
		assert_int_equal(veil_valid_for_parse(in, &got), accepted ? 0 : VEIL_EINVAL);
		if (accepted)
			assert_true(got == want);

		/* veil check: the service manifest */
		struct ydoc doc;
		struct veil_service_manifest m;
		veil_diags_free(&D);
		veil_diags_init(&D);
		snprintf(yaml, sizeof(yaml),
			 "apiVersion: scone/5.8\nkind: genservice\n"
			 "build: {name: a, to: r/a:1, command: a}\n"
			 "secrets:\n  global:\n    - name: ca\n      kind: x509-ca\n"
			 "      valid_for: \"%s\"\n",
			 in);
		assert_int_equal(ydoc_init(&doc, "s.yaml"), 0);
		assert_int_equal(ydoc_parse(&doc, yaml, strlen(yaml), NULL, &D), 0);
		assert_int_equal(veil_service_parse(&doc, &m, &D), accepted ? 0 : VEIL_EINVAL);
		snprintf(msg, sizeof(msg),
			 "s.yaml:8:18: secrets.global entry: valid_for '%s' is "
			 "not " VEIL_VALID_FOR_FORMS,
			 in);
		assert_int_equal(D.count, accepted ? 0 : 1);
		if (!accepted)
			assert_string_equal(D.msgs[0], msg);
		ydoc_free(&doc);

		/* veil policy create / veil-cas: the policy validator */
		struct veil_policy p;
		veil_diags_free(&D);
		veil_diags_init(&D);
		snprintf(
		    yaml, sizeof(yaml),
		    "name: n\nsecrets:\n  - name: ca\n    kind: x509-ca\n    valid_for: \"%s\"\n",
		    in);
		assert_int_equal(ydoc_init(&doc, "p.yaml"), 0);
		assert_int_equal(ydoc_parse(&doc, yaml, strlen(yaml), &veil_policy_limits, &D), 0);
		assert_int_equal(veil_policy_parse(&doc, &p, &D), accepted ? 0 : VEIL_EINVAL);
		snprintf(msg, sizeof(msg),
			 "p.yaml:5:16: secrets: valid_for '%s' is not " VEIL_VALID_FOR_FORMS, in);
		assert_int_equal(D.count, accepted ? 0 : 1);
		if (!accepted)
			assert_string_equal(D.msgs[0], msg);
		ydoc_free(&doc);

		/* the CAS generating the certificate: that validity exactly */
		struct veil_secret def = {.name = "ca", .kind = "x509-ca", .valid_for = in};
		struct veil_secret_set set = {0};
		if (!accepted) {
			snprintf(msg, sizeof(msg),
				 "secret 'ca': valid_for '%s' is not " VEIL_VALID_FOR_FORMS, in);
			gen_err(&def, 1, NULL, msg);
			continue;
		}
		gen_ok(&def, 1, NULL, &set);
		X509 *x = parse_cert(must_find(&set, "ca")->cert_pem);
		int days = 0, secs = 0;
		assert_int_equal(
		    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
		/* notBefore is 5 minutes back, for clocks that lag the CAS */
		assert_true(days * 86400LL + secs == want + 300);
		X509_free(x);
		veil_secret_set_free(&set);
	}
}

/* Which keys fit which kind: one table (veil_secret_keys_misfit) for veil
 * check, the policy validator and the CAS; the same definitions get the same
 * verdict on all three sides */
static void test_secret_keys_fit_kind_same_everywhere(void **state)
{
	static const struct {
		const char *kind, *key_line; /* key_line: one "key: value" or "" */
		const char *key;             /* the misfit, NULL: accepted */
		int needed;
	} cases[] = {
	    {"ascii", "valid_for: 90 days", "valid_for", 0},
	    {"ascii", "issuer: ca", "issuer", 0},
	    {"ascii", "algorithm: P-256", "algorithm", 0},
	    {"binary", "private_key: k", "private_key", 0},
	    {"private-key", "common_name: x", "common_name", 0},
	    {"x509", "value: pem", "value", 0},
	    {"x509", "size: 4", "size", 0},
	    {"public-key", "", "private_key", 1},
	    {"explicit", "", "value", 1},
	    {"x509", "valid_for: 90 days", NULL, 0},
	    {"private-key", "algorithm: P-384", NULL, 0},
	    {"public-key", "private_key: k", NULL, 0},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(cases); i++) {
		char yaml[512], msg[256];
		int accepted = !cases[i].key;
		print_message("kind %s, %s\n", cases[i].kind, cases[i].key_line);

		/* veil check */
		struct ydoc doc;
		struct veil_service_manifest m;
		veil_diags_free(&D);
		veil_diags_init(&D);
		snprintf(yaml, sizeof(yaml),
			 "apiVersion: scone/5.8\nkind: genservice\n"
			 "build: {name: a, to: r/a:1, command: a}\n"
			 "secrets:\n  global:\n    - name: k\n      kind: private-key\n"
			 "    - name: s\n      kind: %s\n      %s\n",
			 cases[i].kind, cases[i].key_line);
		assert_int_equal(ydoc_init(&doc, "s.yaml"), 0);
		assert_int_equal(ydoc_parse(&doc, yaml, strlen(yaml), NULL, &D), 0);
		assert_int_equal(veil_service_parse(&doc, &m, &D), accepted ? 0 : VEIL_EINVAL);
		if (cases[i].needed)
			snprintf(msg, sizeof(msg),
				 "s.yaml:8:7: secrets.global entry: kind '%s' needs '%s'",
				 cases[i].kind, cases[i].key);
		else if (!accepted)
			snprintf(
			    msg, sizeof(msg), /* at the key's value */
			    "s.yaml:10:%zu: secrets.global entry: '%s' does not apply to kind '%s'",
			    7 + strlen(cases[i].key) + 2, cases[i].key, cases[i].kind);
		assert_int_equal(D.count, accepted ? 0 : 1);
		if (!accepted)
			assert_string_equal(D.msgs[0], msg);
		ydoc_free(&doc);

		/* veil policy create / veil-cas */
		struct veil_policy p;
		veil_diags_free(&D);
		veil_diags_init(&D);
		snprintf(yaml, sizeof(yaml),
			 "name: n\nsecrets:\n  - name: k\n    kind: private-key\n"
			 "  - name: s\n    kind: %s\n    %s\n",
			 cases[i].kind, cases[i].key_line);
		assert_int_equal(ydoc_init(&doc, "p.yaml"), 0);
		assert_int_equal(ydoc_parse(&doc, yaml, strlen(yaml), &veil_policy_limits, &D), 0);
		assert_int_equal(veil_policy_parse(&doc, &p, &D), accepted ? 0 : VEIL_EINVAL);
		if (cases[i].needed)
			snprintf(msg, sizeof(msg), "p.yaml:5:5: secrets: kind '%s' needs '%s'",
				 cases[i].kind, cases[i].key);
		else if (!accepted)
			snprintf(msg, sizeof(msg),
				 "p.yaml:7:%zu: secrets: '%s' does not apply to kind '%s'",
				 5 + strlen(cases[i].key) + 2, cases[i].key, cases[i].kind);
		assert_int_equal(D.count, accepted ? 0 : 1);
		if (!accepted)
			assert_string_equal(D.msgs[0], msg);

		/* the CAS generating the policy's secrets */
		struct veil_secret_set set = {0};
		if (accepted) {
			if (!strcmp(cases[i].kind, "x509") ||
			    !strcmp(cases[i].kind, "private-key") ||
			    !strcmp(cases[i].kind, "public-key"))
				gen_ok(p.secrets, p.secret_count, NULL, &set);
			veil_secret_set_free(&set);
		} else {
			if (cases[i].needed)
				snprintf(msg, sizeof(msg), "secret 's': kind '%s' needs '%s'",
					 cases[i].kind, cases[i].key);
			else
				snprintf(msg, sizeof(msg),
					 "secret 's': '%s' does not apply to kind '%s'",
					 cases[i].key, cases[i].kind);
			/* the policy validator refused it: give the CAS the definition by hand */
			struct veil_secret defs[2] = {{.name = "k", .kind = "private-key"},
						      {.name = "s", .kind = cases[i].kind}};
			const char *v = strchr(cases[i].key_line, ':');
			v = v ? v + 2 : NULL;
			const char *key = cases[i].key;
			if (!cases[i].needed) {
				if (!strcmp(key, "valid_for"))
					defs[1].valid_for = v;
				else if (!strcmp(key, "issuer"))
					defs[1].issuer = v;
				else if (!strcmp(key, "algorithm"))
					defs[1].algorithm = v;
				else if (!strcmp(key, "private_key"))
					defs[1].private_key = v;
				else if (!strcmp(key, "common_name"))
					defs[1].common_name = v;
				else if (!strcmp(key, "value"))
					defs[1].value = v;
				else if (!strcmp(key, "size")) {
					defs[1].size = 4;
					defs[1].has_size = 1;
				}
			}
			gen_err(defs, 2, NULL, msg);
			assert_int_equal(D.count, 1);
		}
		ydoc_free(&doc);
	}
}

/* ------------------------------------------------------------------------ */
/* Certificates                                                             */

static void test_x509_with_ca(void **state)
{
	static char *dns[] = {"svc.example", "*.svc.example", "10.1.2.3", "::1"};
	struct veil_secret defs[] = {
	    /* the leaf comes first: order of definitions must not matter */
	    {.name = "leaf", .kind = "x509", .issuer = "ca", .dns = dns, .dns_count = 4},
	    {.name = "ca", .kind = "x509-ca", .common_name = "Test Root", .valid_for = "30d"},
	};
	struct veil_secret_set set = {0};
	gen_ok(defs, 2, NULL, &set);
	assert_int_equal(set.count, 2); /* no namespace CA needed */
	assert_null(veil_secret_find(&set, "namespace_ca"));
	const struct veil_secret_value *ca = must_find(&set, "ca"), *leaf = must_find(&set, "leaf");
	assert_string_equal(set.v[0].name, "leaf");

	X509 *cx = parse_cert(ca->cert_pem);
	char buf[256];
	subject_entry(cx, NID_commonName, buf, sizeof(buf));
	assert_string_equal(buf, "Test Root");
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(cx), X509_get_issuer_name(cx)), 0);
	assert_int_equal(X509_check_ca(cx), 1);
	assert_int_equal(ext_critical(cx, NID_basic_constraints), 1);
	assert_int_equal(ext_critical(cx, NID_key_usage), 1);
	assert_int_equal(X509_get_key_usage(cx), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	int d = days_left(cx);
	assert_true(d >= 29 && d <= 30);
	const ASN1_INTEGER *sn = X509_get0_serialNumber(cx);
	BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
	assert_false(BN_is_negative(bn));
	assert_false(BN_is_zero(bn));
	assert_true(BN_num_bits(bn) <= 128 && BN_num_bits(bn) > 64);
	BN_free(bn);
	assert_string_equal(ca->chain_pem, ca->cert_pem);
	assert_cert_key(ca->cert_pem, ca->key_pem);

	X509 *lx = parse_cert(leaf->cert_pem);
	subject_entry(lx, NID_commonName, buf, sizeof(buf));
	assert_string_equal(buf, "svc.example"); /* the first dns entry */
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(lx), X509_get_subject_name(cx)), 0);
	assert_int_equal(X509_check_ca(lx), 0);
	assert_int_equal(X509_check_host(lx, "svc.example", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(lx, "a.svc.example", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(lx, "other.example", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ip_asc(lx, "10.1.2.3", 0), 1);
	assert_int_equal(X509_check_ip_asc(lx, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(lx, "10.1.2.4", 0), 0);
	d = days_left(lx);
	assert_true(d >= 364 && d <= 365);
	assert_cert_key(leaf->cert_pem, leaf->key_pem);
	EVP_PKEY *lk = parse_key(leaf->key_pem);
	check_alg(lk, "P-256");
	assert_same_key(leaf->pub_pem, lk);
	EVP_PKEY_free(lk);

	/* chain: leaf, then its issuer */
	size_t lc = strlen(leaf->cert_pem);
	assert_memory_equal(leaf->chain_pem, leaf->cert_pem, lc);
	assert_string_equal(leaf->chain_pem + lc, ca->cert_pem);

	assert_int_equal(verify(leaf->cert_pem, ca->cert_pem, NULL), X509_V_OK);
	assert_int_equal(verify(leaf->cert_pem, ca->cert_pem, leaf->chain_pem), X509_V_OK);
	assert_int_equal(verify(ca->cert_pem, ca->cert_pem, NULL), X509_V_OK);

	/* another CA of the same name does not vouch for the leaf */
	struct veil_secret_set other = {0};
	gen_ok(defs, 2, NULL, &other);
	assert_int_not_equal(verify(leaf->cert_pem, must_find(&other, "ca")->cert_pem, NULL),
			     X509_V_OK);
	assert_int_not_equal(serial_cmp(ca->cert_pem, must_find(&other, "ca")->cert_pem), 0);
	veil_secret_set_free(&other);
	X509_free(cx);
	X509_free(lx);
	veil_secret_set_free(&set);
}

static void test_x509_namespace_ca(void **state)
{
	struct veil_secret defs[] = {
	    {.name = "svc", .kind = "x509"},
	    {.name = "svc2", .kind = "x509", .issuer = "namespace_ca", .common_name = "Two"},
	};
	struct veil_secret_set set = {0};
	gen_ok(defs, 2, NULL, &set);
	assert_int_equal(set.count, 3);
	const struct veil_secret_value *ns = must_find(&set, "namespace_ca");
	const struct veil_secret_value *svc = must_find(&set, "svc");
	assert_string_equal(ns->kind, "x509-ca");
	assert_non_null(ns->key_pem);
	assert_string_equal(ns->chain_pem, ns->cert_pem);
	X509 *nx = parse_cert(ns->cert_pem), *sx = parse_cert(svc->cert_pem);
	char buf[256];
	assert_int_equal(X509_check_ca(nx), 1);
	subject_entry(nx, NID_organizationName, buf, sizeof(buf));
	assert_string_equal(buf, "test-ns");
	subject_entry(sx, NID_commonName, buf, sizeof(buf));
	assert_string_equal(buf, "svc"); /* no common_name, no dns: the name */
	assert_int_equal(X509_get_ext_by_NID(sx, NID_subject_alt_name, -1), -1);
	assert_int_equal(verify(svc->cert_pem, ns->cert_pem, NULL), X509_V_OK);
	assert_int_equal(verify(must_find(&set, "svc2")->cert_pem, ns->cert_pem, NULL), X509_V_OK);
	assert_string_equal(svc->chain_pem + strlen(svc->cert_pem), ns->cert_pem);
	X509_free(nx);
	X509_free(sx);
	veil_secret_set_free(&set);

	/* a long secret name gives a common name cut to 64 characters */
	char name[129];
	memset(name, 'n', 128);
	name[128] = '\0';
	struct veil_secret longname = {.name = name, .kind = "x509"};
	gen_ok(&longname, 1, NULL, &set);
	sx = parse_cert(must_find(&set, name)->cert_pem);
	subject_entry(sx, NID_commonName, buf, sizeof(buf));
	assert_int_equal(strlen(buf), 64);
	X509_free(sx);
	veil_secret_set_free(&set);

	/* an explicit common name longer than X.509 allows is refused */
	char cn[66];
	memset(cn, 'c', 65);
	cn[65] = '\0';
	struct veil_secret longcn = {.name = "x", .kind = "x509", .common_name = cn};
	gen_err(&longcn, 1, NULL, "common name is not valid");
}

static void test_x509_keys_and_algorithms(void **state)
{
	struct veil_secret defs[] = {
	    {.name = "leaf", .kind = "x509", .issuer = "ca", .private_key = "rk"},
	    {.name = "ca", .kind = "x509-ca", .private_key = "ek"},
	    {.name = "ek", .kind = "private-key", .algorithm = "Ed25519"},
	    {.name = "rk", .kind = "private-key", .algorithm = "RSA-2048"},
	    {.name = "ca384", .kind = "x509-ca", .algorithm = "P-384", .valid_for = "2y"},
	    {.name = "leaf384", .kind = "x509", .issuer = "ca384", .valid_for = "48h"},
	    {.name = "shared", .kind = "x509", .issuer = "ca384", .private_key = "leaf384"},
	    {.name = "publeaf", .kind = "public-key", .private_key = "leaf"},
	};
	struct veil_secret_set set = {0};
	gen_ok(defs, VEIL_ARRAY_LEN(defs), NULL, &set);
	const struct veil_secret_value *leaf = must_find(&set, "leaf"), *ca = must_find(&set, "ca");
	const struct veil_secret_value *ca384 = must_find(&set, "ca384");
	const struct veil_secret_value *leaf384 = must_find(&set, "leaf384");
	const struct veil_secret_value *shared = must_find(&set, "shared");
	assert_string_equal(ca->key_pem, must_find(&set, "ek")->key_pem);
	assert_string_equal(leaf->key_pem, must_find(&set, "rk")->key_pem);
	assert_string_equal(must_find(&set, "publeaf")->pub_pem, leaf->pub_pem);
	assert_string_equal(shared->key_pem, leaf384->key_pem);
	assert_int_equal(verify(leaf->cert_pem, ca->cert_pem, NULL), X509_V_OK);
	assert_int_equal(verify(leaf384->cert_pem, ca384->cert_pem, NULL), X509_V_OK);
	assert_int_equal(verify(shared->cert_pem, ca384->cert_pem, NULL), X509_V_OK);

	X509 *x = parse_cert(ca->cert_pem);
	assert_int_equal(X509_get_signature_nid(x), NID_ED25519);
	X509_free(x);
	x = parse_cert(leaf->cert_pem);
	assert_int_equal(X509_get_signature_nid(x), NID_ED25519); /* signed by the CA's key */
	assert_true(X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT); /* RSA leaf */
	X509_free(x);
	x = parse_cert(ca384->cert_pem);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
	int d = days_left(x);
	assert_true(d >= 729 && d <= 730);
	EVP_PKEY *k = parse_key(ca384->key_pem);
	check_alg(k, "P-384");
	EVP_PKEY_free(k);
	X509_free(x);
	x = parse_cert(leaf384->cert_pem);
	d = days_left(x);
	assert_true(d >= 1 && d <= 2);
	X509_free(x);
	veil_secret_set_free(&set);

	/* algorithm contradicting the referenced key */
	struct veil_secret bad[] = {
	    {.name = "k", .kind = "private-key", .algorithm = "P-384"},
	    {.name = "c", .kind = "x509-ca", .private_key = "k", .algorithm = "P-256"},
	};
	gen_err(bad, 2, NULL, "private_key 'k' is a P-384 key, not P-256");
}

static void test_intermediate_ca(void **state)
{
	struct veil_secret defs[] = {
	    {.name = "leaf", .kind = "x509", .issuer = "inter"},
	    {.name = "inter", .kind = "x509-ca", .issuer = "root"},
	    {.name = "root", .kind = "x509-ca"},
	};
	struct veil_secret_set set = {0};
	gen_ok(defs, 3, NULL, &set);
	const struct veil_secret_value *leaf = must_find(&set, "leaf");
	const struct veil_secret_value *inter = must_find(&set, "inter");
	const struct veil_secret_value *root = must_find(&set, "root");
	assert_int_equal(verify(leaf->cert_pem, root->cert_pem, leaf->chain_pem), X509_V_OK);
	/* without the intermediate the leaf does not verify */
	assert_int_not_equal(verify(leaf->cert_pem, root->cert_pem, NULL), X509_V_OK);
	STACK_OF(X509) *chain = parse_certs(leaf->chain_pem);
	assert_int_equal(sk_X509_num(chain), 3);
	sk_X509_pop_free(chain, X509_free);
	assert_string_equal(inter->chain_pem + strlen(inter->cert_pem), root->cert_pem);
	veil_secret_set_free(&set);
}

static void test_order_independence(void **state)
{
	const struct veil_secret base[5] = {
	    {.name = "leaf", .kind = "x509", .issuer = "ca", .private_key = "k"},
	    {.name = "ca", .kind = "x509-ca", .private_key = "k2"},
	    {.name = "k", .kind = "private-key"},
	    {.name = "k2", .kind = "private-key"},
	    {.name = "pub", .kind = "public-key", .private_key = "leaf"},
	};
	size_t perms = 0;
	for (unsigned code = 0; code < 5 * 5 * 5 * 5 * 5; code++) {
		size_t idx[5], used = 0;
		unsigned c = code;
		for (size_t i = 0; i < 5; i++, c /= 5) {
			idx[i] = c % 5;
			used |= (size_t)1 << idx[i];
		}
		if (used != 31)
			continue;
		perms++;
		struct veil_secret defs[5];
		for (size_t i = 0; i < 5; i++)
			defs[i] = base[idx[i]];
		struct veil_secret_set set = {0};
		gen_ok(defs, 5, NULL, &set);
		assert_int_equal(set.count, 5);
		for (size_t i = 0; i < 5; i++)
			assert_string_equal(set.v[i].name, defs[i].name); /* definition order */
		const struct veil_secret_value *leaf = must_find(&set, "leaf");
		const struct veil_secret_value *ca = must_find(&set, "ca");
		assert_int_equal(verify(leaf->cert_pem, ca->cert_pem, NULL), X509_V_OK);
		assert_string_equal(leaf->key_pem, must_find(&set, "k")->key_pem);
		assert_string_equal(ca->key_pem, must_find(&set, "k2")->key_pem);
		assert_string_equal(must_find(&set, "pub")->pub_pem, leaf->pub_pem);
		veil_secret_set_free(&set);
	}
	assert_int_equal(perms, 120);
}

static void test_cycles_and_missing(void **state)
{
	struct veil_secret cyc[] = {
	    {.name = "ca", .kind = "x509-ca", .private_key = "leaf"},
	    {.name = "leaf", .kind = "x509", .issuer = "ca"},
	};
	gen_err(cyc, 2, NULL, "cycle");
	assert_true(diags_have("'ca'") && diags_have("'leaf'"));

	struct veil_secret self_key[] = {{.name = "c", .kind = "x509", .private_key = "c"}};
	gen_err(self_key, 1, NULL, "cycle");
	struct veil_secret self_issuer[] = {{.name = "c", .kind = "x509-ca", .issuer = "c"}};
	gen_err(self_issuer, 1, NULL, "cycle");
	struct veil_secret three[] = {
	    {.name = "p", .kind = "public-key", .private_key = "b"},
	    {.name = "b", .kind = "x509", .issuer = "c"},
	    {.name = "c", .kind = "x509-ca", .private_key = "b"},
	    {.name = "fine", .kind = "ascii"},
	};
	gen_err(three, 4, NULL, "cycle");
	assert_false(diags_have("'fine'"));

	struct veil_secret missing_issuer[] = {{.name = "l", .kind = "x509", .issuer = "nope"}};
	gen_err(missing_issuer, 1, NULL, "issuer 'nope' is not defined");
	struct veil_secret missing_key[] = {{.name = "l", .kind = "x509", .private_key = "nope"}};
	gen_err(missing_key, 1, NULL, "private_key 'nope' is not defined");
	struct veil_secret missing_pub[] = {
	    {.name = "p", .kind = "public-key", .private_key = "nope"}};
	gen_err(missing_pub, 1, NULL, "private_key 'nope' is not defined");
	struct veil_secret wrong_issuer[] = {{.name = "a", .kind = "ascii"},
					     {.name = "l", .kind = "x509", .issuer = "a"},
					     {.name = "l2", .kind = "x509", .issuer = "l"}};
	gen_err(wrong_issuer, 3, NULL, "issuer 'a' is of kind 'ascii', not x509-ca");
	assert_true(diags_have("issuer 'l' is of kind 'x509', not x509-ca"));
	struct veil_secret wrong_key[] = {{.name = "b", .kind = "binary"},
					  {.name = "p", .kind = "public-key", .private_key = "b"},
					  {.name = "q", .kind = "public-key", .private_key = "p"}};
	gen_err(wrong_key, 3, NULL, "private_key 'b' is of kind 'binary'");
	assert_true(diags_have("private_key 'p' is of kind 'public-key'"));
	struct veil_secret imported[] = {
	    {.name = "rca", .kind = "x509-ca", .import_namespace = "other", .import_secret = "ca"},
	    {.name = "l", .kind = "x509", .issuer = "rca"},
	    {.name = "p", .kind = "public-key", .private_key = "rca"}};
	gen_err(imported, 3, NULL, "issuer 'rca' is imported");
	assert_true(diags_have("private_key 'rca' is imported"));
	struct veil_secret ns_key[] = {
	    {.name = "p", .kind = "x509", .private_key = "namespace_ca"}};
	gen_err(ns_key, 1, NULL, "namespace CA's key");
}

static void test_imports_skipped(void **state)
{
	struct veil_secret defs[] = {
	    {.name = "mine", .kind = "ascii"},
	    {.name = "theirs", .import_namespace = "other", .import_secret = "pw"},
	    {.name = "theirs2", .kind = "x509", .import_namespace = "other"},
	};
	struct veil_secret_set set = {0};
	gen_ok(defs, 3, NULL, &set);
	assert_int_equal(set.count, 1);
	assert_null(veil_secret_find(&set, "theirs"));
	assert_null(veil_secret_find(&set, "theirs2"));
	assert_null(veil_secret_find(&set, "namespace_ca"));
	veil_secret_set_free(&set);
}

/* ------------------------------------------------------------------------ */
/* Updates                                                                  */

static void test_update_semantics(void **state)
{
	struct veil_secret v1[] = {
	    {.name = "a", .kind = "ascii", .size = 16, .has_size = 1},
	    {.name = "b", .kind = "binary"},
	    {.name = "c", .kind = "ascii", .size = 10, .has_size = 1},
	    {.name = "d", .kind = "ascii", .size = 32, .has_size = 1},
	    {.name = "k1", .kind = "private-key", .migrate = 1},
	    {.name = "k2", .kind = "private-key"},
	    {.name = "k3", .kind = "private-key", .migrate = 1},
	    {.name = "ca", .kind = "x509-ca", .migrate = 1},
	    {.name = "leaf", .kind = "x509", .issuer = "ca"},
	    {.name = "leaf2", .kind = "x509", .issuer = "ca", .private_key = "k1"},
	    {.name = "nsleaf", .kind = "x509"},
	    {.name = "e", .kind = "explicit", .value = "one"},
	    {.name = "gone", .kind = "binary"},
	};
	struct veil_secret v2[] = {
	    {.name = "e", .kind = "explicit", .value = "two"},
	    {.name = "nsleaf", .kind = "x509"},
	    {.name = "leaf2", .kind = "x509", .issuer = "ca", .private_key = "k1"},
	    {.name = "leaf", .kind = "x509", .issuer = "ca"},
	    {.name = "ca", .kind = "x509-ca", .migrate = 1},
	    {.name = "k3", .kind = "private-key", .migrate = 1, .algorithm = "P-384"},
	    {.name = "k2", .kind = "private-key"},
	    {.name = "k1", .kind = "private-key", .migrate = 1},
	    {.name = "d", .kind = "binary", .size = 32, .has_size = 1},
	    {.name = "c", .kind = "ascii", .size = 12, .has_size = 1},
	    {.name = "b", .kind = "binary"},
	    {.name = "a", .kind = "ascii", .size = 16, .has_size = 1},
	};
	struct veil_secret_set prev = {0}, next = {0};
	gen_ok(v1, VEIL_ARRAY_LEN(v1), NULL, &prev);
	gen_ok(v2, VEIL_ARRAY_LEN(v2), &prev, &next);
#define P(n) must_find(&prev, n)
#define N(n) must_find(&next, n)
	/* kept: same kind and size */
	assert_memory_equal(P("a")->bytes, N("a")->bytes, 16);
	assert_memory_equal(P("b")->bytes, N("b")->bytes, 32);
	/* regenerated: size or kind changed */
	assert_int_equal(N("c")->size, 12);
	assert_memory_not_equal(P("c")->bytes, N("c")->bytes, 10);
	assert_string_equal(N("d")->kind, "binary");
	assert_memory_not_equal(P("d")->bytes, N("d")->bytes, 32);
	/* explicit: the new value; removed definitions are gone */
	assert_memory_equal(N("e")->bytes, "two", 3);
	assert_null(veil_secret_find(&next, "gone"));
	/* keys: kept with migrate, new without, new when the algorithm changed */
	assert_string_equal(P("k1")->key_pem, N("k1")->key_pem);
	assert_string_not_equal(P("k2")->key_pem, N("k2")->key_pem);
	assert_string_not_equal(P("k3")->key_pem, N("k3")->key_pem);
	EVP_PKEY *k = parse_key(N("k3")->key_pem);
	check_alg(k, "P-384");
	EVP_PKEY_free(k);
	/* certificates: always issued again (new serial); keys by their rule */
	assert_string_not_equal(P("ca")->cert_pem, N("ca")->cert_pem);
	assert_int_not_equal(serial_cmp(P("ca")->cert_pem, N("ca")->cert_pem), 0);
	assert_string_equal(P("ca")->key_pem, N("ca")->key_pem);
	assert_string_not_equal(P("leaf")->key_pem, N("leaf")->key_pem);
	assert_int_not_equal(serial_cmp(P("leaf")->cert_pem, N("leaf")->cert_pem), 0);
	assert_string_equal(P("leaf2")->key_pem, N("leaf2")->key_pem);
	assert_string_equal(N("leaf2")->key_pem, N("k1")->key_pem);
	assert_int_not_equal(serial_cmp(P("leaf2")->cert_pem, N("leaf2")->cert_pem), 0);
	assert_int_equal(verify(N("leaf")->cert_pem, N("ca")->cert_pem, NULL), X509_V_OK);
	assert_int_equal(verify(N("leaf2")->cert_pem, N("ca")->cert_pem, NULL), X509_V_OK);
	/* same CA key and name: old leaves still verify against the new CA */
	assert_int_equal(verify(P("leaf")->cert_pem, N("ca")->cert_pem, NULL), X509_V_OK);
	/* the namespace CA is the namespace's anchor: kept as it was */
	assert_string_equal(P("namespace_ca")->cert_pem, N("namespace_ca")->cert_pem);
	assert_string_equal(P("namespace_ca")->key_pem, N("namespace_ca")->key_pem);
	assert_string_not_equal(P("nsleaf")->cert_pem, N("nsleaf")->cert_pem);
	assert_int_equal(verify(N("nsleaf")->cert_pem, N("namespace_ca")->cert_pem, NULL),
			 X509_V_OK);

	/* the namespace CA stays in the set while no certificate needs it */
	struct veil_secret v3[] = {{.name = "a", .kind = "ascii", .size = 16, .has_size = 1}};
	struct veil_secret_set third = {0};
	gen_ok(v3, 1, &next, &third);
	assert_int_equal(third.count, 2);
	assert_string_equal(must_find(&third, "namespace_ca")->cert_pem,
			    N("namespace_ca")->cert_pem);
	veil_secret_set_free(&third);

	/* a stored key that cannot be read is an error, not a silent new key */
	char *kp = (char *)N("k1")->key_pem;
	memcpy(kp + 30, "garbage", 7);
	gen_err(v2, VEIL_ARRAY_LEN(v2), &next,
		"secret 'k1': the stored private key cannot be read");
	char *np = (char *)N("namespace_ca")->key_pem;
	memcpy(np + 30, "garbage", 7);
	gen_err(v3, 1, &next, "stored namespace CA");
#undef P
#undef N
	veil_secret_set_free(&prev);
	veil_secret_set_free(&next);
}

/* ------------------------------------------------------------------------ */
/* Serialised form                                                          */

static void full_set(struct veil_secret_set *set)
{
	static char *dns[] = {"db.example"};
	static const struct veil_secret defs[] = {
	    {.name = "pw", .kind = "ascii"},
	    {.name = "key", .kind = "binary", .size = 7, .has_size = 1},
	    {.name = "e", .kind = "explicit", .value = "v"},
	    {.name = "empty", .kind = "explicit", .value = ""},
	    {.name = "pk", .kind = "private-key", .algorithm = "Ed25519"},
	    {.name = "pub", .kind = "public-key", .private_key = "pk"},
	    {.name = "ca", .kind = "x509-ca"},
	    {.name = "srv", .kind = "x509", .issuer = "ca", .dns = dns, .dns_count = 1},
	    {.name = "cli", .kind = "x509"},
	};
	gen_ok(defs, VEIL_ARRAY_LEN(defs), NULL, set);
}

static void assert_str_eq_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_true(a == b);
	else
		assert_string_equal(a, b);
}

static void assert_sets_equal(const struct veil_secret_set *a, const struct veil_secret_set *b)
{
	assert_int_equal(a->count, b->count);
	for (size_t i = 0; i < a->count; i++) {
		const struct veil_secret_value *x = &a->v[i], *y = &b->v[i];
		assert_string_equal(x->name, y->name);
		assert_string_equal(x->kind, y->kind);
		assert_int_equal(x->size, y->size);
		assert_true(!x->bytes == !y->bytes);
		if (x->bytes && x->size)
			assert_memory_equal(x->bytes, y->bytes, x->size);
		assert_str_eq_or_null(x->key_pem, y->key_pem);
		assert_str_eq_or_null(x->pub_pem, y->pub_pem);
		assert_str_eq_or_null(x->cert_pem, y->cert_pem);
		assert_str_eq_or_null(x->chain_pem, y->chain_pem);
	}
}

/* Deserialises an exact-size heap copy, so that ASan sees any over-read. */
static int deser_copy(const uint8_t *p, size_t n, struct veil_secret_set *out)
{
	uint8_t *c = malloc(n ? n : 1);
	if (n)
		memcpy(c, p, n);
	int rc = veil_secret_set_deserialize(c, n, out);
	free(c);
	return rc;
}

static void test_serialize_roundtrip(void **state)
{
	struct veil_secret_set set = {0}, back = {0};
	uint8_t *buf = NULL, *buf2 = NULL;
	size_t size = 0, size2 = 0;
	full_set(&set);
	assert_int_equal(set.count, 10); /* with the namespace CA */
	assert_int_equal(veil_secret_set_serialize(&set, &buf, &size), 0);
	assert_int_equal(deser_copy(buf, size, &back), 0);
	assert_sets_equal(&set, &back);
	assert_int_equal(veil_secret_set_serialize(&back, &buf2, &size2), 0);
	assert_int_equal(size, size2);
	assert_memory_equal(buf, buf2, size);
	veil_secure_free(buf2, size2);
	veil_secret_set_free(&back);

	/* the restored set renders and serves as `previous` like the original */
	struct veil_secret pw = {.name = "pw", .kind = "ascii"};
	struct veil_secret_set next = {0};
	assert_int_equal(deser_copy(buf, size, &back), 0);
	gen_ok(&pw, 1, &back, &next);
	assert_memory_equal(must_find(&next, "pw")->bytes, must_find(&set, "pw")->bytes, 20);
	veil_secret_set_free(&next);
	veil_secret_set_free(&back);

	/* an empty set */
	struct veil_secret_set empty = {0};
	assert_int_equal(veil_secret_set_serialize(&empty, &buf2, &size2), 0);
	assert_int_equal(size2, 9);
	assert_int_equal(deser_copy(buf2, size2, &back), 0);
	assert_int_equal(back.count, 0);
	veil_secret_set_free(&back);
	veil_secure_free(buf2, size2);

	/* what cannot be written */
	struct veil_secret_value bad = {.name = "x", .kind = NULL};
	struct veil_secret_set bads = {&bad, 1};
	assert_int_equal(veil_secret_set_serialize(&bads, &buf2, &size2), VEIL_EINVAL);
	assert_int_equal(veil_secret_set_serialize(NULL, &buf2, &size2), VEIL_EINVAL);

	veil_secure_free(buf, size);
	veil_secret_set_free(&set);
}

static void test_serialize_truncations(void **state)
{
	struct veil_secret_set set = {0}, back = {0};
	uint8_t *buf = NULL;
	size_t size = 0;
	full_set(&set);
	assert_int_equal(veil_secret_set_serialize(&set, &buf, &size), 0);
	for (size_t n = 0; n < size; n++) {
		struct veil_secret_set out = {(struct veil_secret_value *)&out, 77};
		int rc = deser_copy(buf, n, &out);
		if (rc != VEIL_EINVAL)
			fail_msg("truncation to %zu of %zu bytes: rc %d", n, size, rc);
		assert_ptr_equal(out.v, (struct veil_secret_value *)&out);
		assert_int_equal(out.count, 77);
	}
	/* and one byte too many */
	uint8_t *longer = malloc(size + 1);
	memcpy(longer, buf, size);
	longer[size] = 0;
	assert_int_equal(veil_secret_set_deserialize(longer, size + 1, &back), VEIL_EINVAL);
	free(longer);
	assert_int_equal(veil_secret_set_deserialize(NULL, 0, &back), VEIL_EINVAL);
	assert_int_equal(veil_secret_set_deserialize(buf, size, NULL), VEIL_EINVAL);
	veil_secure_free(buf, size);
	veil_secret_set_free(&set);
}

/* A small writer for hand-made serialised sets. */
struct w {
	uint8_t b[512];
	size_t n;
};

static void w_u32(struct w *w, uint32_t x)
{
	w->b[w->n++] = (uint8_t)(x >> 24);
	w->b[w->n++] = (uint8_t)(x >> 16);
	w->b[w->n++] = (uint8_t)(x >> 8);
	w->b[w->n++] = (uint8_t)x;
}

static void w_field(struct w *w, const char *s, size_t n)
{
	if (!s) {
		w_u32(w, 0xffffffffu);
		return;
	}
	w_u32(w, (uint32_t)n);
	memcpy(w->b + w->n, s, n);
	w->n += n;
}

static void w_head(struct w *w, uint8_t version, uint32_t count)
{
	memcpy(w->b, "VSEC", 4);
	w->b[4] = version;
	w->n = 5;
	w_u32(w, count);
}

/* name, kind, bytes and the four PEM fields ("-" for a dummy PEM) */
static void w_value(struct w *w, const char *name, size_t name_len, const char *kind,
		    const char *bytes, const char *key, const char *pub, const char *cert,
		    const char *chain)
{
	w_field(w, name, name_len);
	w_field(w, kind, kind ? strlen(kind) : 0);
	w_field(w, bytes, bytes ? strlen(bytes) : 0);
	w_field(w, key, key ? strlen(key) : 0);
	w_field(w, pub, pub ? strlen(pub) : 0);
	w_field(w, cert, cert ? strlen(cert) : 0);
	w_field(w, chain, chain ? strlen(chain) : 0);
}

static int deser_w(const struct w *w)
{
	struct veil_secret_set out = {(struct veil_secret_value *)&out, 5};
	int rc = deser_copy(w->b, w->n, &out);
	if (rc == 0) {
		veil_secret_set_free(&out);
	} else {
		assert_ptr_equal(out.v, (struct veil_secret_value *)&out);
		assert_int_equal(out.count, 5);
	}
	return rc;
}

static void test_deserialize_malformed(void **state)
{
	struct w w;
	/* a valid baseline */
	w_head(&w, 1, 2);
	w_value(&w, "a", 1, "ascii", "xyz", NULL, NULL, NULL, NULL);
	w_value(&w, "k", 1, "private-key", NULL, "K", "P", NULL, NULL);
	assert_int_equal(deser_w(&w), 0);

	w_head(&w, 2, 0); /* unknown version */
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 0);
	w.b[0] = 'X'; /* bad magic */
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 0xffffffffu); /* absurd count */
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 4097 + 1); /* over the limit */
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 2); /* fewer values than counted */
	w_value(&w, "a", 1, "ascii", "xyz", NULL, NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* a length past the end */
	w_u32(&w, 1000);
	w.b[w.n++] = 'a';
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* the largest non-absent length */
	w_u32(&w, 0xfffffffeu);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* NUL inside the name */
	w_value(&w, "a\0b", 3, "ascii", "x", NULL, NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* invalid name */
	w_value(&w, "a b", 3, "ascii", "x", NULL, NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* empty name */
	w_value(&w, "", 0, "ascii", "x", NULL, NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* absent name */
	w_value(&w, NULL, 0, "ascii", "x", NULL, NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* unknown kind */
	w_value(&w, "a", 1, "password", "x", NULL, NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* absent kind */
	w_value(&w, "a", 1, NULL, "x", NULL, NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* ascii without bytes */
	w_value(&w, "a", 1, "ascii", NULL, NULL, NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* ascii with a key */
	w_value(&w, "a", 1, "ascii", "x", "K", NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* x509 without chain */
	w_value(&w, "c", 1, "x509", NULL, "K", "P", "C", NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* public-key with a private key */
	w_value(&w, "p", 1, "public-key", NULL, "K", "P", NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* NUL inside a PEM */
	w_value(&w, "p", 1, "public-key", NULL, NULL, NULL, NULL, NULL);
	w.n -= 4 * 4; /* rewrite pub..chain */
	w_field(&w, NULL, 0);
	w_field(&w, "P\0Q", 3);
	w_field(&w, NULL, 0);
	w_field(&w, NULL, 0);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 2); /* duplicate names */
	w_value(&w, "a", 1, "ascii", "x", NULL, NULL, NULL, NULL);
	w_value(&w, "a", 1, "binary", "y", NULL, NULL, NULL, NULL);
	assert_int_equal(deser_w(&w), VEIL_EINVAL);
	w_head(&w, 1, 1); /* binary bytes may hold NUL */
	w_value(&w, "b", 1, "binary", NULL, NULL, NULL, NULL, NULL);
	w.n -= 5 * 4;
	w_field(&w, "\0\0", 2);
	for (int i = 0; i < 4; i++)
		w_field(&w, NULL, 0);
	assert_int_equal(deser_w(&w), 0);
}

/* Every byte of a serialised set overwritten with a few values: either the
 * result is refused or it is a well-formed set (ASan checks every read). */
static void test_deserialize_mutations(void **state)
{
	struct veil_secret defs[] = {{.name = "a", .kind = "ascii", .size = 5, .has_size = 1},
				     {.name = "p", .kind = "private-key"}};
	struct veil_secret_set set = {0};
	uint8_t *buf = NULL;
	size_t size = 0;
	gen_ok(defs, 2, NULL, &set);
	assert_int_equal(veil_secret_set_serialize(&set, &buf, &size), 0);
	uint8_t *m = malloc(size);
	const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
	size_t accepted = 0;
	for (size_t i = 0; i < size; i++)
		for (size_t k = 0; k < VEIL_ARRAY_LEN(vals); k++) {
			if (buf[i] == vals[k])
				continue;
			memcpy(m, buf, size);
			m[i] = vals[k];
			struct veil_secret_set out = {0};
			int rc = veil_secret_set_deserialize(m, size, &out);
			if (rc == 0) {
				accepted++; /* only content bytes may change */
				assert_int_equal(out.count, 2);
				veil_secret_set_free(&out);
			} else {
				assert_int_equal(rc, VEIL_EINVAL);
			}
		}
	assert_true(accepted > 0);
	free(m);
	veil_secure_free(buf, size);
	veil_secret_set_free(&set);
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                */

#define LEAK "S3cr3t-Value-Do-Not-Leak"

/* one secret of every kind, named after its kind */
static void render_set(struct veil_secret_set *set)
{
	static const struct veil_secret defs[] = {
	    {.name = "ascii", .kind = "ascii"},
	    {.name = "binary", .kind = "binary", .size = 40, .has_size = 1},
	    {.name = "explicit", .kind = "explicit", .value = LEAK},
	    {.name = "private-key", .kind = "private-key"},
	    {.name = "public-key", .kind = "public-key", .private_key = "private-key"},
	    {.name = "x509-ca", .kind = "x509-ca"},
	    {.name = "x509", .kind = "x509", .issuer = "x509-ca"},
	    {.name = "b64", .kind = "explicit", .value = "\xfb\xff\xbf"},
	    {.name = "pad1", .kind = "explicit", .value = "ab"},
	    {.name = "pad2", .kind = "explicit", .value = "a"},
	};
	gen_ok(defs, VEIL_ARRAY_LEN(defs), NULL, set);
}

static int render_rc(const char *in, const struct veil_secret_set *set, char **out)
{
	veil_diags_free(&D);
	veil_diags_init(&D);
	return veil_secret_render(in, set, out, &D);
}

static void render_expect(const struct veil_secret_set *set, const char *in, const char *want)
{
	char *out = NULL;
	int rc = render_rc(in, set, &out);
	if (rc) {
		print_diags();
		fail_msg("rendering '%s' failed", in);
	}
	assert_string_equal(out, want);
	veil_secure_strfree(out);
}

/* None of a secret's value forms appears in any diagnostic. */
static void assert_no_leak(const struct veil_secret_value *v)
{
	char *forms[4] = {NULL};
	size_t nf = 0;
	if (v->bytes && v->size >= 4) {
		/* the raw bytes as a string only when they are one: a random
		 * binary value may hold a NUL, and its prefix up to it (possibly
		 * "") would "match" any diagnostic (1 run in 256 failed so) */
		if (!memchr(v->bytes, 0, v->size)) {
			forms[nf] = calloc(1, 4 * v->size + 8);
			memcpy(forms[nf++], v->bytes, v->size);
		}
		forms[nf] = calloc(1, 4 * v->size + 8);
		test_hex(v->bytes, v->size, forms[nf++]);
		forms[nf] = calloc(1, 4 * v->size + 8);
		test_b64(v->bytes, v->size, 0, forms[nf]);
		forms[nf][strlen(forms[nf]) - 4] = '\0'; /* no padding or last group */
		nf++;
	}
	const char *pem = v->key_pem ? v->key_pem : v->pub_pem;
	if (pem) { /* the first line of base64 */
		const char *nl = strchr(pem, '\n');
		forms[nf] = calloc(1, 65);
		memcpy(forms[nf++], nl + 1, 64);
	}
	for (size_t i = 0; i < nf; i++) {
		if (diags_have(forms[i])) {
			print_diags();
			fail_msg("a diagnostic contains the value of secret '%s'", v->name);
		}
		free(forms[i]);
	}
}

static void render_reject(const struct veil_secret_set *set, const char *in, const char *want1,
			  const char *want2)
{
	char *out = (char *)"untouched";
	int rc = render_rc(in, set, &out);
	assert_int_equal(rc, VEIL_EINVAL);
	assert_string_equal(out, "untouched");
	if (!diags_have(want1) || (want2 && !diags_have(want2))) {
		print_diags();
		fail_msg("rendering '%s': no diagnostic names '%s'", in, want1);
	}
	for (size_t i = 0; i < set->count; i++)
		assert_no_leak(&set->v[i]);
}

/* SCONE's :chain is the chain of issuers, without the certificate itself; a
 * self-signed CA is its own issuer */
static void test_chain_suffix_is_the_issuers(void **state)
{
	struct veil_secret defs[] = {
	    {.name = "leaf", .kind = "x509", .issuer = "inter"},
	    {.name = "inter", .kind = "x509-ca", .issuer = "root"},
	    {.name = "root", .kind = "x509-ca"},
	    {.name = "svc", .kind = "x509"}, /* issued by the namespace CA */
	};
	struct veil_secret_set set = {0};
	gen_ok(defs, 4, NULL, &set);
	const char *inter = must_find(&set, "inter")->cert_pem;
	const char *root = must_find(&set, "root")->cert_pem;
	const char *ns_ca = must_find(&set, "namespace_ca")->cert_pem;
	size_t ni = strlen(inter);
	char *want = calloc(1, ni + strlen(root) + 1);
	assert_non_null(want);
	memcpy(want, inter, ni);
	strcpy(want + ni, root);
	render_expect(&set, "$$SCONE::leaf:chain$$", want);
	render_expect(&set, "$$SCONE::leaf.chain$$", want);
	render_expect(&set, "$$SCONE::inter:chain$$", root);
	render_expect(&set, "$$SCONE::root.chain$$", root);
	render_expect(&set, "$$SCONE::svc:chain$$", ns_ca);
	/* what a TLS client does with it: the leaf verifies against the chain's
	 * last certificate with the others as intermediates */
	char *out = NULL;
	assert_int_equal(render_rc("$$SCONE::leaf:chain$$", &set, &out), 0);
	STACK_OF(X509) *chain = parse_certs(out);
	assert_int_equal(sk_X509_num(chain), 2);
	sk_X509_pop_free(chain, X509_free);
	assert_null(strstr(out, must_find(&set, "leaf")->cert_pem));
	assert_int_equal(verify(must_find(&set, "leaf")->cert_pem, root, out), X509_V_OK);
	veil_secure_strfree(out);
	free(want);
	veil_secret_set_free(&set);
}

static void test_render_suffix_matrix(void **state)
{
	static const char *const kinds[] = {"ascii",      "binary",  "explicit", "private-key",
					    "public-key", "x509-ca", "x509"};
	static const char *const suffixes[] = {"",          "hex",   "base64", "base64url",
					       "crt",       "cert",  "key",    "privatekey",
					       "publickey", "chain", "pem"};
	struct veil_secret_set set = {0};
	render_set(&set);
	size_t ok = 0, refused = 0;
	for (size_t ki = 0; ki < VEIL_ARRAY_LEN(kinds); ki++) {
		const struct veil_secret_value *v = must_find(&set, kinds[ki]);
		const char *k = v->kind;
		int bytes = !strcmp(k, "ascii") || !strcmp(k, "binary") || !strcmp(k, "explicit");
		int cert = !strncmp(k, "x509", 4);
		for (size_t si = 0; si < VEIL_ARRAY_LEN(suffixes); si++) {
			const char *s = suffixes[si];
			char *want = calloc(1, 65536);
			const char *w = NULL;
			if (!*s) {
				if (!strcmp(k, "binary")) {
					test_hex(v->bytes, v->size, want);
					w = want;
				} else if (bytes) {
					memcpy(want, v->bytes, v->size);
					w = want;
				} else {
					w = cert                        ? v->cert_pem
					    : !strcmp(k, "private-key") ? v->key_pem
									: v->pub_pem;
				}
			} else if (bytes && !strcmp(s, "hex")) {
				test_hex(v->bytes, v->size, want);
				w = want;
			} else if (bytes && !strncmp(s, "base64", 6)) {
				test_b64(v->bytes, v->size, !strcmp(s, "base64url"), want);
				w = want;
			} else if (cert && (!strcmp(s, "crt") || !strcmp(s, "cert"))) {
				w = v->cert_pem;
			} else if (cert && !strcmp(s, "chain")) {
				/* the issuers: x509's is x509-ca, self-signed */
				w = must_find(&set, "x509-ca")->cert_pem;
			} else if (v->key_pem && (!strcmp(s, "key") || !strcmp(s, "privatekey"))) {
				w = v->key_pem;
			} else if (v->pub_pem && !strcmp(s, "publickey")) {
				w = v->pub_pem;
			} else if (!bytes && !strcmp(s, "pem")) {
				w = cert                        ? v->cert_pem
				    : !strcmp(k, "private-key") ? v->key_pem
								: v->pub_pem;
			}
			for (int sep = 0; sep < 2; sep++) {
				char in[128];
				snprintf(in, sizeof(in), "<$$SCONE::%s%s%s$$>", v->name,
					 *s ? (sep ? "." : ":") : "", s);
				if (w) {
					size_t wl = strlen(w) + 3;
					char *wrapped = calloc(1, wl);
					snprintf(wrapped, wl, "<%s>", w);
					render_expect(&set, in, wrapped);
					free(wrapped);
					ok++;
				} else {
					render_reject(&set, in, v->name, *s ? s : "(none)");
					assert_true(diags_have("does not fit"));
					refused++;
				}
			}
			free(want);
		}
	}
	/* 7 kinds x 11 suffixes x 2 separators; the fitting ones counted by hand */
	assert_int_equal(ok + refused, 7 * 11 * 2);
	assert_int_equal(ok, 2 * (4 + 4 + 4 + 5 + 3 + 8 + 8));
	veil_secret_set_free(&set);
}

static void test_render_encodings(void **state)
{
	struct veil_secret_set set = {0};
	render_set(&set);
	render_expect(&set, "$$SCONE::b64:base64$$", "+/+/");
	render_expect(&set, "$$SCONE::b64:base64url$$", "-_-_");
	render_expect(&set, "$$SCONE::b64:hex$$", "fbffbf");
	render_expect(&set, "$$SCONE::pad1:base64$$", "YWI=");
	render_expect(&set, "$$SCONE::pad1.base64url$$", "YWI");
	render_expect(&set, "$$SCONE::pad2:base64$$", "YQ==");
	render_expect(&set, "$$SCONE::pad2:base64url$$", "YQ");
	render_expect(&set, "$$SCONE::explicit$$", LEAK);
	render_expect(&set, "user=$$SCONE::pad1$$;pw=$$SCONE::pad2.hex$$ $$ $SCONE:: end",
		      "user=ab;pw=61 $$ $SCONE:: end");
	render_expect(&set, "", "");
	render_expect(&set, "no placeholders", "no placeholders");
	render_expect(&set, "$$SCONE::pad2$$$$SCONE::pad2$$", "aa");

	/* long binary: base64 over several internal chunks */
	struct veil_secret big = {.name = "big", .kind = "binary", .size = 65536, .has_size = 1};
	struct veil_secret_set bs = {0};
	gen_ok(&big, 1, NULL, &bs);
	char *want = malloc(4 * 65536 / 3 + 8);
	char *out = NULL;
	for (int url = 0; url < 2; url++) {
		test_b64(bs.v[0].bytes, 65536, url, want);
		assert_int_equal(
		    render_rc(url ? "$$SCONE::big:base64url$$" : "$$SCONE::big:base64$$", &bs,
			      &out),
		    0);
		assert_string_equal(out, want);
		veil_secure_strfree(out);
	}
	want = realloc(want, 2 * 65536 + 1);
	test_hex(bs.v[0].bytes, 65536, want);
	assert_int_equal(render_rc("$$SCONE::big$$", &bs, &out), 0);
	assert_string_equal(out, want);
	veil_secure_strfree(out);
	free(want);
	veil_secret_set_free(&bs);

	/* the namespace CA's certificate is renderable for clients to trust */
	struct veil_secret leaf = {.name = "leaf", .kind = "x509"};
	gen_ok(&leaf, 1, NULL, &bs);
	render_expect(&bs, "$$SCONE::namespace_ca:crt$$", must_find(&bs, "namespace_ca")->cert_pem);
	veil_secret_set_free(&bs);
	veil_secret_set_free(&set);
}

static void test_render_errors(void **state)
{
	struct veil_secret_set set = {0};
	render_set(&set);
	render_reject(&set, "pw=$$SCONE::nope$$", "unknown secret 'nope'", NULL);
	render_reject(&set, "$$SCONE::explicit:bogus$$", "bogus", "unknown suffix");
	render_reject(&set, "$$SCONE::explicit.KEY$$", "KEY", "unknown suffix");
	render_reject(&set, "$$SCONE::explicit:crt$$", "suffix 'crt'", "kind 'explicit'");
	render_reject(&set, "$$SCONE::explicit", "unterminated", NULL);
	render_reject(&set, "$$SCONE::$$", "without a valid secret name", NULL);
	render_reject(&set, "$$SCONE::explicit:$$", "empty or too long suffix", NULL);
	render_reject(&set, "$$SCONE::x509:waytoolongsuffix_xx$$", "empty or too long suffix",
		      NULL);
	/* a malformed placeholder is not quoted when it holds other text */
	render_reject(&set, "$$SCONE::explicit:" LEAK "!$$", "at byte 0", NULL);
	assert_false(diags_have(LEAK));
	/* every bad placeholder is reported */
	render_reject(&set, "$$SCONE::one$$ $$SCONE::explicit$$ $$SCONE::two$$", "'one'", "'two'");
	assert_int_equal(D.count, 2);
	render_reject(&set, "$$SCONE::ascii:crt$$$$SCONE::public-key:key$$",
		      "secret 'ascii' of kind 'ascii'", "secret 'public-key' of kind 'public-key'");
	/* NULL set: every secret is unknown */
	char *out = NULL;
	assert_int_equal(render_rc("$$SCONE::explicit$$", NULL, &out), VEIL_EINVAL);
	assert_true(diags_have("unknown secret 'explicit'"));
	assert_int_equal(render_rc("plain", NULL, &out), 0);
	assert_string_equal(out, "plain");
	veil_secure_strfree(out);
	assert_int_equal(render_rc(NULL, &set, &out), VEIL_EINVAL);

	/* a hand-made value missing the field a suffix needs */
	struct veil_secret_value hv = {.name = "h", .kind = "x509", .cert_pem = NULL};
	struct veil_secret_set hs = {&hv, 1};
	render_reject(&hs, "$$SCONE::h:chain$$", "has no certificate chain", NULL);
	struct veil_secret_value uv = {.name = "u", .kind = "weird"};
	struct veil_secret_set us = {&uv, 1};
	render_reject(&us, "$$SCONE::u$$", "kind 'weird'", NULL);
	veil_secret_set_free(&set);
}

/* ------------------------------------------------------------------------ */
/* Lookup and free                                                          */

static void test_find_and_free(void **state)
{
	struct veil_secret_set set = {0};
	struct veil_secret def = {.name = "x", .kind = "ascii"};
	assert_null(veil_secret_find(NULL, "x"));
	assert_null(veil_secret_find(&set, "x"));
	gen_ok(&def, 1, NULL, &set);
	assert_null(veil_secret_find(&set, NULL));
	assert_null(veil_secret_find(&set, "y"));
	assert_null(veil_secret_find(&set, "X"));
	assert_non_null(veil_secret_find(&set, "x"));
	veil_secret_set_free(&set);
	assert_null(set.v);
	assert_int_equal(set.count, 0);
	veil_secret_set_free(&set); /* twice is harmless */
	veil_secret_set_free(NULL);
}

/* An imported value joins the importer's set under the importer's name; the
 * rendering then works as for the importer's own secrets. */
static void test_append_imported(void **state)
{
	struct veil_secret exp_defs[] = {
	    {.name = "shared", .kind = "ascii", .size = 12, .has_size = 1},
	    {.name = "tls", .kind = "x509"}};
	struct veil_secret own_def = {.name = "mine", .kind = "binary"};
	struct veil_secret_set exporter = {0}, importer = {0};
	gen_ok(exp_defs, 2, NULL, &exporter);
	gen_ok(&own_def, 1, NULL, &importer);
	const struct veil_secret_value *src = must_find(&exporter, "shared");
	assert_int_equal(veil_secret_set_append(&importer, "theirs", src), 0);
	assert_int_equal(veil_secret_set_append(&importer, "cert", must_find(&exporter, "tls")), 0);
	assert_int_equal(importer.count, 3);
	assert_non_null(must_find(&importer, "mine"));
	const struct veil_secret_value *v = must_find(&importer, "theirs");
	assert_ptr_not_equal(v->bytes, src->bytes); /* a copy: the exporter's set may go */
	assert_int_equal(v->size, 12);
	assert_memory_equal(v->bytes, src->bytes, 12);
	assert_string_equal(v->kind, "ascii");
	char *out = NULL;
	assert_int_equal(
	    veil_secret_render("pw=$$SCONE::theirs$$ c=$$SCONE::cert:crt$$", &importer, &out, &D),
	    0);
	assert_memory_equal(out + 3, src->bytes, 12);
	assert_non_null(strstr(out, must_find(&exporter, "tls")->cert_pem));
	veil_secure_strfree(out);
	veil_secret_set_free(&exporter);
	assert_string_equal(must_find(&importer, "cert")->kind, "x509");
	assert_int_equal(veil_secret_set_append(&importer, NULL, v), VEIL_EINVAL);
	assert_int_equal(veil_secret_set_append(NULL, "x", v), VEIL_EINVAL);
	assert_int_equal(importer.count, 3);
	veil_secret_set_free(&importer);
	/* appending to an empty set */
	struct veil_secret_value lone = {
	    .name = "n", .kind = "explicit", .bytes = (uint8_t *)"v", .size = 1};
	assert_int_equal(veil_secret_set_append(&importer, "lone", &lone), 0);
	assert_int_equal(importer.count, 1);
	assert_memory_equal(must_find(&importer, "lone")->bytes, "v", 1);
	veil_secret_set_free(&importer);
}

static int group_setup(void **state)
{
	veil_diags_init(&D);
	return 0;
}

static int group_teardown(void **state)
{
	veil_diags_free(&D);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_invalid_definitions),
	    cmocka_unit_test(test_valid_for_same_verdict_everywhere),
	    cmocka_unit_test(test_secret_keys_fit_kind_same_everywhere),
	    cmocka_unit_test(test_cycles_and_missing),
	    cmocka_unit_test(test_serialize_truncations),
	    cmocka_unit_test(test_deserialize_malformed),
	    cmocka_unit_test(test_deserialize_mutations),
	    cmocka_unit_test(test_render_errors),
	    cmocka_unit_test(test_secure_alloc),
	    cmocka_unit_test(test_ascii_alphabet_and_sizes),
	    cmocka_unit_test(test_defaults_and_distinct),
	    cmocka_unit_test(test_binary_sizes),
	    cmocka_unit_test(test_explicit_and_values),
	    cmocka_unit_test(test_explicit_binary_value_is_hex),
	    cmocka_unit_test(test_key_algorithms),
	    cmocka_unit_test(test_private_key_value),
	    cmocka_unit_test(test_x509_with_ca),
	    cmocka_unit_test(test_x509_namespace_ca),
	    cmocka_unit_test(test_x509_keys_and_algorithms),
	    cmocka_unit_test(test_intermediate_ca),
	    cmocka_unit_test(test_chain_suffix_is_the_issuers),
	    cmocka_unit_test(test_order_independence),
	    cmocka_unit_test(test_imports_skipped),
	    cmocka_unit_test(test_update_semantics),
	    cmocka_unit_test(test_serialize_roundtrip),
	    cmocka_unit_test(test_render_suffix_matrix),
	    cmocka_unit_test(test_render_encodings),
	    cmocka_unit_test(test_find_and_free),
	    cmocka_unit_test(test_append_imported),
	    cmocka_unit_test(test_secure_reuse_wiped_and_threads),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
