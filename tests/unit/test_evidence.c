/* The evidence dispatcher (src/evidence/verify.c): each platform's real
 * evidence into claims, the binding to the connection, the SNP certificate
 * table. Inputs: tests/fuzz/corpus/evidence (made from tests/vectors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "veil/evidence.h"

/* 2025-12-07: inside every vector's certificates (tests/unit/test_snp.c) */
#define AT 1765065600LL

static char *slurp(const char *name, size_t *n)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/evidence/%s", VEIL_SOURCE_ROOT, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *b = malloc(256 * 1024);
	*n = fread(b, 1, 256 * 1024 - 1, f);
	b[*n] = 0;
	fclose(f);
	return b;
}

static int verify(const char *doc, size_t n, const uint8_t rd[32], int no_binding,
		  struct veil_claims *c, char *why, size_t cap)
{
	struct veil_diags d;
	struct veil_evidence_opts o = {.at = AT, .no_binding = no_binding};
	veil_diags_init(&d);
	int rc = veil_evidence_verify_opts(doc, n, rd, &o, c, &d);
	snprintf(why, cap, "%s", d.count ? d.msgs[0] : "");
	veil_diags_free(&d);
	return rc;
}

static void test_each_platform(void **state)
{
	(void)state;
	static const struct {
		const char *file, *platform, *measurement16;
	} cases[] = {
	    {"sgx.json", "sgx", "33d8736db756ed49"},
	    {"tdx.json", "tdx", "91eb2b44d141d4ec"},
	    {"snp-vcek.json", "snp", "a1f3930413247bb3"},
	    {"snp-table.json", "snp", "a1f3930413247bb3"},
	};
	uint8_t rd[32] = {0};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		size_t n;
		char *doc = slurp(cases[i].file, &n), why[600];
		struct veil_claims c;
		assert_int_equal(verify(doc, n, rd, 1, &c, why, sizeof(why)), 0);
		assert_string_equal(c.platform, cases[i].platform);
		assert_memory_equal(c.measurement, cases[i].measurement16, 16);
		assert_int_equal(c.hardware, 1);
		/* no collateral: Intel's status is unknown, AMD's is the VCEK's */
		assert_string_equal(c.tcb_status, "not-evaluated");
		assert_int_equal(strlen(c.platform_key), 64);
		/* bound to another key: the recorded report data is not ours */
		assert_int_not_equal(verify(doc, n, rd, 0, &c, why, sizeof(why)), 0);
		assert_non_null(strstr(why, "evidence is bound to another TLS key"));
		free(doc);
	}
}

static void test_binding_accepts_its_key(void **state)
{
	(void)state;
	size_t n;
	char *doc = slurp("tdx.json", &n), why[600];
	struct veil_claims c;
	uint8_t rd[32] = {0};
	assert_int_equal(verify(doc, n, rd, 1, &c, why, sizeof(why)), 0);
	memcpy(rd, c.report_data, 32); /* what a live TD would have bound */
	assert_int_equal(verify(doc, n, rd, 0, &c, why, sizeof(why)), 0);
	free(doc);
}

/* the GHCB certificate table, rebuilt around the VCEK with a change */
static void test_snp_certificate_table(void **state)
{
	(void)state;
	size_t n;
	char *doc = slurp("snp-table.json", &n), why[600];
	json_error_t e;
	json_t *j = json_loadb(doc, n, 0, &e);
	assert_non_null(j);
	uint8_t *t = NULL, rd[32] = {0};
	size_t tn = 0;
	assert_int_equal(
	    veil_b64_decode(json_string_value(json_object_get(j, "auxblob")), 65536, &t, &tn), 0);
	struct {
		const char *what;
		size_t at;
		uint8_t val;
		const char *reason;
	} cases[] = {
	    {"another GUID", 0, 0x64, "holds no VCEK certificate"},
	    {"offset past the end", 16 + 1, 0x40, "holds no VCEK certificate"},
	    {"length past the end", 20 + 1, 0x40, "holds no VCEK certificate"},
	    {"a changed certificate", 48 + 200, 0x00, "snp evidence: "},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		uint8_t *copy = malloc(tn);
		memcpy(copy, t, tn);
		copy[cases[i].at] ^= cases[i].val ? cases[i].val : 0x01;
		char *b = veil_b64_encode(copy, tn);
		json_object_set_new(j, "auxblob", json_string(b));
		char *s = json_dumps(j, JSON_COMPACT);
		struct veil_claims c;
		assert_int_not_equal(verify(s, strlen(s), rd, 1, &c, why, sizeof(why)), 0);
		if (!strstr(why, cases[i].reason))
			fail_msg("%s: got '%s'", cases[i].what, why);
		free(s);
		free(b);
		free(copy);
	}
	/* no table and no vcek */
	json_object_del(j, "auxblob");
	char *s = json_dumps(j, JSON_COMPACT);
	struct veil_claims c;
	assert_int_not_equal(verify(s, strlen(s), rd, 1, &c, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "no VCEK or VLEK"));
	free(s);
	free(t);
	json_decref(j);
	free(doc);
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const docs[] = {
	    "",
	    "[]",
	    "{\"platform\":\"tpm\"}",
	    "{\"platform\":\"tdx\",\"version\":2,\"quote\":\"\"}",
	    "{\"platform\":\"tdx\",\"version\":1}",
	    "{\"platform\":\"tdx\",\"version\":1,\"quote\":\"!!\"}",
	    "{\"platform\":\"sgx\",\"version\":1,\"quote\":\"AAAA\"}",
	    "{\"platform\":\"snp\",\"version\":1,\"report\":\"AAAA\",\"vcek\":\"AAAA\"}",
	};
	static const char *const reasons[] = {
	    "not a JSON object", "not a JSON object",  "unknown platform 'tpm'",
	    "version must be 1", "'quote' is missing", "'quote' is not base64",
	    "sgx evidence: ",    "snp evidence: ",
	};
	uint8_t rd[32] = {0};
	for (size_t i = 0; i < sizeof(docs) / sizeof(*docs); i++) {
		char why[600];
		struct veil_claims c;
		assert_int_not_equal(verify(docs[i], strlen(docs[i]), rd, 1, &c, why, sizeof(why)),
				     0);
		if (!strstr(why, reasons[i]))
			fail_msg("'%s': got '%s'", docs[i], why);
	}
	/* an SGX quote presented as TDX */
	size_t n;
	char *doc = slurp("sgx.json", &n), why[600];
	char *p = strstr(doc, "\"sgx\"");
	memcpy(p, "\"tdx\"", 5);
	struct veil_claims c;
	assert_int_not_equal(verify(doc, n, rd, 1, &c, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "tdx evidence: the quote is an SGX quote"));
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_platform),
	    cmocka_unit_test(test_binding_accepts_its_key),
	    cmocka_unit_test(test_snp_certificate_table),
	    cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
