/* Offline DCAP collateral (src/evidence/collateral.c) against the real
 * vectors in tests/vectors (README section 2).
 *
 * The query values below come from the quotes themselves, extracted once
 * with (the same extraction check_collateral.py cross-checks on every run):
 *   python3 tests/evidence/check_collateral.py --query tests/vectors/dcap-qvl/sample/sgx_quote
 * which reads the PCK leaf of the PEM chain in the quote's certification
 * data (its SGX extension 1.2.840.113741.1.13.1: FMSPC, PCESVN, the 16 TCB
 * components) and the QE report at Intel's documented offsets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/x509.h>

#include "veil/collateral.h"
#include "veil/common.h"

#ifndef VEIL_SOURCE_ROOT
#define VEIL_SOURCE_ROOT "."
#endif

/* inside every window of both dcap-qvl bundles (2025-06-19T10:56:11Z ..
 * 2025-07-19T10:00:35Z) and of go-tdx-guest's 2023 set (2023-06-18T08:42:58Z
 * .. 2023-07-08T07:24:59Z) */
#define AT_2025 ((time_t)1751328000) /* 2025-07-01T00:00:00Z */
#define AT_2023 ((time_t)1688169600) /* 2023-07-01T00:00:00Z */

static char *read_vector(const char *rel, size_t *n)
{
	const char *root = getenv("VEIL_SOURCE_ROOT");
	char path[1024];
	snprintf(path, sizeof(path), "%s/tests/vectors/%s", root ? root : VEIL_SOURCE_ROOT, rel);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	buf[size] = '\0';
	*n = (size_t)size;
	return buf;
}

static void unhex_into(const char *hex, uint8_t *out, size_t size)
{
	assert_int_equal(strlen(hex), 2 * size);
	for (size_t i = 0; i < size; i++) {
		unsigned v;
		char two[3] = {hex[2 * i], hex[2 * i + 1], 0};
		v = (unsigned)strtoul(two, NULL, 16);
		out[i] = (uint8_t)v;
	}
}

static void set_serial(struct veil_tcb_query *q, const char *hex)
{
	q->pck_serial_size = strlen(hex) / 2;
	unhex_into(hex, q->pck_serial, q->pck_serial_size);
}

/* dcap-qvl sample/sgx_quote */
static struct veil_tcb_query sgx_query(void)
{
	struct veil_tcb_query q = {.tee = VEIL_TEE_SGX,
				   .pce_svn = 13,
				   .qe_isvprodid = 1,
				   .qe_isvsvn = 10,
				   .qe_miscselect = 0,
				   .pck_ca = VEIL_PCK_CA_PROCESSOR};
	unhex_into("00a067110000", q.fmspc, 6);
	unhex_into("0b0b0202ff0100000000000000000000", q.cpu_svn, 16);
	unhex_into("8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff",
		   q.qe_mrsigner, 32);
	unhex_into("1500000000000000e700000000000000", q.qe_attributes, 16);
	set_serial(&q, "0081b77732b761e98eb9b963a4abd1e5b9bf5dd8d6");
	return q;
}

/* dcap-qvl sample/tdx_quote */
static struct veil_tcb_query tdx_query(void)
{
	struct veil_tcb_query q = {.tee = VEIL_TEE_TDX,
				   .pce_svn = 11,
				   .qe_isvprodid = 2,
				   .qe_isvsvn = 6,
				   .qe_miscselect = 0,
				   .pck_ca = VEIL_PCK_CA_PLATFORM};
	unhex_into("b0c06f000000", q.fmspc, 6);
	unhex_into("03030202040100050000000000000000", q.cpu_svn, 16);
	unhex_into("06010300000000000000000000000000", q.tee_tcb_svn, 16);
	unhex_into("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5",
		   q.qe_mrsigner, 32);
	unhex_into("1500000000000000e700000000000000", q.qe_attributes, 16);
	set_serial(&q, "3c16ed54eacbb4ced072be72630c85788cf46e36");
	return q; /* mr_signer_seam and seam_attributes: all zero in the quote */
}

/* go-tdx-guest testing/testdata/tdx_prod_quote_SPR_E4.dat */
static struct veil_tcb_query spr_e4_query(void)
{
	struct veil_tcb_query q = {.tee = VEIL_TEE_TDX,
				   .pce_svn = 11,
				   .qe_isvprodid = 2,
				   .qe_isvsvn = 4,
				   .qe_miscselect = 0,
				   .pck_ca = VEIL_PCK_CA_PLATFORM};
	unhex_into("50806f000000", q.fmspc, 6);
	unhex_into("03030202020100020000000000000000", q.cpu_svn, 16);
	unhex_into("03000400000000000000000000000000", q.tee_tcb_svn, 16);
	unhex_into("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5",
		   q.qe_mrsigner, 32);
	unhex_into("1500000000000000e700000000000000", q.qe_attributes, 16);
	set_serial(&q, "00bba6c175d838b8df3900cc3411f24f512d104102");
	return q;
}

static struct veil_collateral *load_bundle_text(const char *text, size_t n, int want_rc, char *why,
						size_t cap)
{
	struct veil_collateral *c = veil_collateral_new();
	assert_non_null(c);
	why[0] = '\0';
	int rc = veil_collateral_load_bundle(c, text, n, why, cap);
	if (rc != want_rc)
		fail_msg("load: %d (%s)", rc, why);
	return c;
}

static struct veil_collateral *load_bundle(const char *rel)
{
	size_t n;
	char why[512];
	char *text = read_vector(rel, &n);
	struct veil_collateral *c = load_bundle_text(text, n, 0, why, sizeof(why));
	free(text);
	return c;
}

static struct veil_tcb_result evaluate_ok(const struct veil_collateral *c,
					  const struct veil_tcb_query *q, time_t at)
{
	struct veil_tcb_result r;
	char why[512] = "";
	int rc = veil_tcb_evaluate(c, q, at, &r, why, sizeof(why));
	if (rc)
		fail_msg("evaluate: %d (%s)", rc, why);
	return r;
}

static void evaluate_refused(const struct veil_collateral *c, const struct veil_tcb_query *q,
			     time_t at, const char *want)
{
	struct veil_tcb_result r;
	char why[512] = "";
	assert_int_equal(veil_tcb_evaluate(c, q, at, &r, why, sizeof(why)), VEIL_EINVAL);
	if (!strstr(why, want))
		fail_msg("refused with \"%s\", wanted \"%s\"", why, want);
}

static void test_sgx_bundle_gives_dcap_qvl_published_status(void **state)
{
	(void)state;
	struct veil_collateral *c = load_bundle("dcap-qvl/sample/sgx_quote_collateral.json");
	struct veil_tcb_query q = sgx_query();
	struct veil_tcb_result r = evaluate_ok(c, &q, AT_2025);
	assert_string_equal(veil_tcb_status_name(r.status), "ConfigurationAndSWHardeningNeeded");
	assert_int_equal(r.advisory_count, 2);
	assert_string_equal(r.advisory_ids[0], "INTEL-SA-00289");
	assert_string_equal(r.advisory_ids[1], "INTEL-SA-00615");
	assert_int_equal(r.qe_status, VEIL_TCB_UP_TO_DATE);
	assert_int_equal(r.tcb_date, 1710288000); /* 2024-03-13T00:00:00Z */
	assert_int_equal(r.tcb_evaluation_data_number, 17);
	/* the QE Identity's 2025-07-19T10:01:18Z is the first to end */
	assert_int_equal(r.next_update, 1752919278);
	veil_collateral_free(c);
}

static void test_tdx_bundle_is_up_to_date(void **state)
{
	(void)state;
	struct veil_collateral *c = load_bundle("dcap-qvl/sample/tdx_quote_collateral.json");
	struct veil_tcb_query q = tdx_query();
	struct veil_tcb_result r = evaluate_ok(c, &q, AT_2025);
	assert_string_equal(veil_tcb_status_name(r.status), "UpToDate");
	assert_int_equal(r.advisory_count, 0);
	/* the PCK CRL's 2025-07-19T10:00:35Z is the first to end */
	assert_int_equal(r.next_update, 1752919235);
	veil_collateral_free(c);
}

/* go-tdx-guest's 2023 PCS responses, their chains and CRLs */
static struct veil_collateral *load_2023_set(void)
{
	size_t tn, qn, cn, pn, rn, pcn;
	char why[512] = "";
	char *tcb = read_vector("go-tdx-guest/testing/testdata/sample_tcbInfo_response", &tn);
	char *qe = read_vector("go-tdx-guest/testing/testdata/sample_qeIdentity_response", &qn);
	char *chain = read_vector("go-tdx-guest/extracted/tcb_info_issuer_chain.pem", &cn);
	char *pck = read_vector("go-tdx-guest/testing/testdata/pckcrl", &pn);
	char *root = read_vector("go-tdx-guest/testing/testdata/rootcrl.der", &rn);
	char *pck_chain = read_vector("go-tdx-guest/extracted/pck_crl_issuer_chain.pem", &pcn);
	struct veil_collateral *c = veil_collateral_new();
	assert_non_null(c);
	if (veil_collateral_load_pcs_json(c, tcb, tn, chain, cn, why, sizeof(why)) ||
	    veil_collateral_load_pcs_json(c, qe, qn, chain, cn, why, sizeof(why)) ||
	    veil_collateral_load_crl(c, (uint8_t *)root, rn, NULL, 0, why, sizeof(why)) ||
	    veil_collateral_load_crl(c, (uint8_t *)pck, pn, pck_chain, pcn, why, sizeof(why)))
		fail_msg("load: %s", why);
	free(tcb);
	free(qe);
	free(chain);
	free(pck);
	free(root);
	free(pck_chain);
	return c;
}

/* SPR_E4 (a pre-production Sapphire Rapids E4 stepping) has CPUSVN 03 03 02
 * 02 02 01 00 02 ..., PCESVN 11 and TEE_TCB_SVN 03 00 04 ...; both levels of
 * the 2023 TDX TCB Info need SGX components 0 and 1 >= 5 (and TDX component
 * 2 >= 5): the platform reaches no level, so the status is refused as "TCB
 * not supported", as dcap-qvl refuses it ("No matching TCB level found").
 * The collateral itself (signatures, chains, CRLs, windows at 2023-07-01)
 * is accepted: a platform at the first level's TCB is UpToDate. */
static void test_go_tdx_guest_2023_set_evaluates_spr_e4(void **state)
{
	(void)state;
	struct veil_collateral *c = load_2023_set();
	struct veil_tcb_query q = spr_e4_query();
	evaluate_refused(c, &q, AT_2023, "TCB not supported");
	static const uint8_t level0_sgx[8] = {5, 5, 2, 2, 3, 1, 0, 3};
	memcpy(q.cpu_svn, level0_sgx, sizeof(level0_sgx));
	q.tee_tcb_svn[2] = 5;
	struct veil_tcb_result r = evaluate_ok(c, &q, AT_2023);
	assert_string_equal(veil_tcb_status_name(r.status), "UpToDate");
	assert_int_equal(r.tcb_date, 1676419200); /* 2023-02-15T00:00:00Z */
	/* PCE SVN 10: the second level, OutOfDate with its 13 advisories */
	q.pce_svn = 10;
	r = evaluate_ok(c, &q, AT_2023);
	assert_string_equal(veil_tcb_status_name(r.status), "OutOfDate");
	assert_int_equal(r.advisory_count, 13);
	assert_string_equal(r.advisory_ids[0], "INTEL-SA-00106");
	veil_collateral_free(c);
}

/* dcap-qvl's tdx_quote_outdated (a v5 quote: CPUSVN 03 03 02 02 04 01 00 03
 * ..., PCESVN 13, FMSPC 90c06f000000) reaches no level of its 2026 TCB Info
 * (every level needs SGX component 7 >= 5); dcap-qvl too refuses it unless
 * its test-only TCB override rewrites the levels. */
static void test_dcap_qvl_outdated_sample_is_not_supported(void **state)
{
	(void)state;
	struct veil_collateral *c =
	    load_bundle("dcap-qvl/sample/tdx_quote_outdated_collateral.json");
	struct veil_tcb_query q = {.tee = VEIL_TEE_TDX,
				   .pce_svn = 13,
				   .qe_isvprodid = 2,
				   .qe_isvsvn = 7,
				   .pck_ca = VEIL_PCK_CA_PLATFORM};
	unhex_into("90c06f000000", q.fmspc, 6);
	unhex_into("03030202040100030000000000000000", q.cpu_svn, 16);
	unhex_into("07010300000000000000000000000000", q.tee_tcb_svn, 16);
	unhex_into("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5",
		   q.qe_mrsigner, 32);
	unhex_into("1500000000000000e700000000000000", q.qe_attributes, 16);
	set_serial(&q, "01");
	time_t at = 1772707803; /* 2026-03-05T10:50:03Z, inside its windows */
	evaluate_refused(c, &q, at, "TCB not supported");
	/* at the first level's SGX components it is UpToDate (TDX_01 module
	 * ISVSVN 7 >= 6) */
	q.cpu_svn[7] = 5;
	q.tee_tcb_svn[0] = 7;
	struct veil_tcb_result r = evaluate_ok(c, &q, at);
	assert_string_equal(veil_tcb_status_name(r.status), "UpToDate");
	/* an older TDX module (ISVSVN 4 of TDX_01): OutOfDate from the module */
	q.tee_tcb_svn[0] = 5;
	r = evaluate_ok(c, &q, at);
	assert_string_equal(veil_tcb_status_name(r.platform_status), "OutOfDate");
	veil_collateral_free(c);
}

/* one substitution in text at the first place `after` occurs (plus skip) */
static char *flipped(const char *text, size_t n, const char *after, size_t skip)
{
	char *copy = malloc(n + 1);
	assert_non_null(copy);
	memcpy(copy, text, n + 1);
	char *p = strstr(copy, after);
	assert_non_null(p);
	p += strlen(after) + skip;
	/* stay a valid character of its kind (digit, hex, base64) */
	*p = *p == '1'   ? '2'
	     : *p == 'A' ? 'B'
	     : *p == 'a' ? 'b'
	     : *p == '0' ? '1'
	     : *p == 'B' ? 'C'
			 : '1';
	return copy;
}

static void bundle_refused(const char *rel, const char *after, size_t skip, const char *want)
{
	size_t n;
	char why[512];
	char *text = read_vector(rel, &n);
	char *bad = flipped(text, n, after, skip);
	struct veil_collateral *c = load_bundle_text(bad, n, VEIL_EINVAL, why, sizeof(why));
	if (!strstr(why, want))
		fail_msg("refused with \"%s\", wanted \"%s\"", why, want);
	veil_collateral_free(c);
	free(bad);
	free(text);
}

#define SGX_BUNDLE "dcap-qvl/sample/sgx_quote_collateral.json"
#define TDX_BUNDLE "dcap-qvl/sample/tdx_quote_collateral.json"

static void test_flipped_tcb_info_byte_is_refused(void **state)
{
	(void)state;
	bundle_refused(SGX_BUNDLE, "tcbEvaluationDataNumber\\\":", 0,
		       "TCB Info: the signature does not verify");
	/* an svn of the first level */
	bundle_refused(TDX_BUNDLE, "{\\\"svn\\\":", 0, "TCB Info: the signature does not verify");
}

static void test_flipped_tcb_info_signature_is_refused(void **state)
{
	(void)state;
	bundle_refused(SGX_BUNDLE, "\"tcb_info_signature\": \"", 10,
		       "TCB Info: the signature does not verify");
}

static void test_flipped_qe_identity_byte_is_refused(void **state)
{
	(void)state;
	bundle_refused(SGX_BUNDLE, "isvprodid\\\":", 0,
		       "QE Identity: the signature does not verify");
	bundle_refused(SGX_BUNDLE, "\"qe_identity_signature\": \"", 3,
		       "QE Identity: the signature does not verify");
}

static void test_flipped_crl_byte_is_refused(void **state)
{
	(void)state;
	/* a byte of the CRLs' signatures (their last 20 hex digits) */
	size_t n;
	char *text = read_vector(SGX_BUNDLE, &n);
	const char *fields[] = {"\"pck_crl\": \"", "\"root_ca_crl\": \""};
	const char *names[] = {"PCK CRL", "root CA CRL"};
	for (int i = 0; i < 2; i++) {
		const char *start = strstr(text, fields[i]);
		assert_non_null(start);
		start += strlen(fields[i]);
		size_t hex_len = strcspn(start, "\"");
		char *bad = flipped(text, n, fields[i], hex_len - 20);
		char why[512];
		struct veil_collateral *c = load_bundle_text(bad, n, VEIL_EINVAL, why, sizeof(why));
		assert_non_null(strstr(why, names[i]));
		assert_non_null(strstr(why, "signature does not verify"));
		veil_collateral_free(c);
		free(bad);
	}
	free(text);
}

static void test_flipped_tcb_signing_cert_is_refused(void **state)
{
	(void)state;
	/* inside the TCB Signing certificate's signature (its last base64 line
	 * before the END line holds the end of the ECDSA signature) */
	size_t n;
	char *text = read_vector(SGX_BUNDLE, &n);
	const char *chain = strstr(text, "\"tcb_info_issuer_chain\"");
	assert_non_null(chain);
	const char *end = strstr(chain, "-----END CERTIFICATE-----");
	assert_non_null(end);
	char *bad = malloc(n + 1);
	memcpy(bad, text, n + 1);
	/* 12 characters before "\n-----END": base64 of the signature's s */
	char *p = bad + (end - text) - 14;
	*p = *p == 'A' ? 'B' : 'A';
	char why[512];
	struct veil_collateral *c = load_bundle_text(bad, n, VEIL_EINVAL, why, sizeof(why));
	if (!strstr(why, "TCB Info issuer chain"))
		fail_msg("refused with \"%s\"", why);
	veil_collateral_free(c);
	free(bad);
	free(text);
}

static void test_stale_collateral_is_refused_naming_what_expired(void **state)
{
	(void)state;
	struct veil_collateral *c = load_bundle(SGX_BUNDLE);
	struct veil_tcb_query q = sgx_query();
	/* a day after the QE Identity's nextUpdate (the first to end) */
	evaluate_refused(c, &q, 1752919278 + 86400,
			 "stale collateral: the QE Identity expired at 2025-07-19T10:01:18Z");
	/* a second after: still stale */
	evaluate_refused(c, &q, 1752919279, "stale collateral: the QE Identity expired");
	/* at the second itself: accepted */
	(void)evaluate_ok(c, &q, 1752919278);
	/* before the TCB Info was issued */
	evaluate_refused(c, &q, 1750330571 - 1,
			 "the TCB Info is not valid before 2025-06-19T10:56:11Z");
	veil_collateral_free(c);

	c = load_2023_set();
	q = spr_e4_query();
	evaluate_refused(c, &q, AT_2025,
			 "stale collateral: the QE Identity expired at 2023-07-08T07:24:59Z");
	veil_collateral_free(c);
}

/* a serial number the TDX bundle's Platform CA CRL lists */
static void test_pck_serial_on_the_crl_is_revoked(void **state)
{
	(void)state;
	size_t n;
	char *text = read_vector(TDX_BUNDLE, &n);
	const char *start = strstr(text, "\"pck_crl\": \"");
	assert_non_null(start);
	start += strlen("\"pck_crl\": \"");
	size_t hex_len = strcspn(start, "\"");
	uint8_t *der = malloc(hex_len / 2);
	for (size_t i = 0; i < hex_len / 2; i++) {
		char two[3] = {start[2 * i], start[2 * i + 1], 0};
		der[i] = (uint8_t)strtoul(two, NULL, 16);
	}
	const unsigned char *p = der;
	X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)(hex_len / 2));
	assert_non_null(crl);
	STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
	assert_true(sk_X509_REVOKED_num(revoked) > 10);
	const ASN1_INTEGER *serial =
	    X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, 7));
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);

	struct veil_collateral *c = load_bundle(TDX_BUNDLE);
	struct veil_tcb_query q = tdx_query();
	q.pck_serial_size = (size_t)BN_bn2bin(bn, q.pck_serial);
	struct veil_tcb_result r = evaluate_ok(c, &q, AT_2025);
	assert_string_equal(veil_tcb_status_name(r.status), "Revoked");
	/* with a leading zero byte (a DER INTEGER's form): the same serial */
	memmove(q.pck_serial + 1, q.pck_serial, q.pck_serial_size);
	q.pck_serial[0] = 0;
	q.pck_serial_size++;
	r = evaluate_ok(c, &q, AT_2025);
	assert_int_equal(r.status, VEIL_TCB_REVOKED);
	/* the TDX quote's own PCK serial is not on the CRL */
	q = tdx_query();
	r = evaluate_ok(c, &q, AT_2025);
	assert_int_equal(r.status, VEIL_TCB_UP_TO_DATE);
	veil_collateral_free(c);
	BN_free(bn);
	X509_CRL_free(crl);
	free(der);
	free(text);
}

static void test_intel_qvl_synthetic_root_is_untrusted(void **state)
{
	(void)state;
	const char *sets[] = {"intel-qvl/Src/AttestationApp/sampleData/",
			      "intel-qvl/Src/AttestationApp/sampleData/tdx/"};
	for (int i = 0; i < 2; i++) {
		char p1[256], p2[256], p3[256], why[512] = "";
		size_t tn, qn, cn;
		snprintf(p1, sizeof(p1), "%stcbInfo.json", sets[i]);
		snprintf(p2, sizeof(p2), "%sqeIdentity.json", sets[i]);
		snprintf(p3, sizeof(p3), "%stcbSignChain.pem", sets[i]);
		char *tcb = read_vector(p1, &tn), *qe = read_vector(p2, &qn),
		     *chain = read_vector(p3, &cn);
		struct veil_collateral *c = veil_collateral_new();
		assert_int_equal(
		    veil_collateral_load_pcs_json(c, tcb, tn, chain, cn, why, sizeof(why)),
		    VEIL_EINVAL);
		if (!strstr(why, "TCB Info issuer chain: does not chain to the Intel SGX Root CA"))
			fail_msg("refused with \"%s\"", why);
		assert_int_equal(
		    veil_collateral_load_pcs_json(c, qe, qn, chain, cn, why, sizeof(why)),
		    VEIL_EINVAL);
		assert_non_null(strstr(why, "QE Identity issuer chain: does not chain"));
		veil_collateral_free(c);
		free(tcb);
		free(qe);
		free(chain);
	}
}

/* the signature covers the "tcbInfo" value as received: whitespace around it
 * does not matter, one byte inside it does */
static void test_pcs_body_is_verified_over_the_exact_value_bytes(void **state)
{
	(void)state;
	size_t tn, cn;
	char why[512] = "";
	char *tcb = read_vector("go-tdx-guest/testing/testdata/sample_tcbInfo_response", &tn);
	char *chain = read_vector("go-tdx-guest/extracted/tcb_info_issuer_chain.pem", &cn);
	assert_memory_equal(tcb, "{\"tcbInfo\":{", 12);
	char *spaced = malloc(tn + 4);
	memcpy(spaced, "{ \"tcbInfo\" :\n", 14);
	memcpy(spaced + 14, tcb + 11, tn - 11);
	struct veil_collateral *c = veil_collateral_new();
	if (veil_collateral_load_pcs_json(c, spaced, tn + 3, chain, cn, why, sizeof(why)))
		fail_msg("%s", why);
	/* a space inside the value: still the same JSON, not the same bytes */
	memcpy(spaced, "{\"tcbInfo\":{ ", 13);
	memcpy(spaced + 13, tcb + 12, tn - 12);
	assert_int_equal(
	    veil_collateral_load_pcs_json(c, spaced, tn + 1, chain, cn, why, sizeof(why)),
	    VEIL_EINVAL);
	assert_non_null(strstr(why, "TCB Info: the signature does not verify"));
	/* the TCB Info twice: which one was signed? */
	char twice[64] = "{\"tcbInfo\":{},\"tcbInfo\":{},\"signature\":\"00\"}";
	assert_int_equal(
	    veil_collateral_load_pcs_json(c, twice, strlen(twice), chain, cn, why, sizeof(why)),
	    VEIL_EINVAL);
	veil_collateral_free(c);
	free(spaced);
	free(tcb);
	free(chain);
}

static void test_span_scanner(void **state)
{
	(void)state;
	size_t off = 0, len = 0;
	const char *t = " {\"a\\\"\":\"}\\\\\", \"k\" : [1, {\"k\": 2}, \"]\"] ,\"z\":null} ";
	assert_int_equal(veil_json_member_span(t, strlen(t), "k", &off, &len), 0);
	assert_int_equal(len, strlen("[1, {\"k\": 2}, \"]\"]"));
	assert_memory_equal(t + off, "[1, {\"k\": 2}, \"]\"]", len);
	assert_int_equal(veil_json_member_span(t, strlen(t), "z", &off, &len), 0);
	assert_memory_equal(t + off, "null", len);
	assert_int_equal(veil_json_member_span(t, strlen(t), "q", &off, &len), VEIL_ENOENT);
	/* a key is compared as written: an escaped name is not the name */
	const char *esc = "{\"tcb\\u0049nfo\":{}}";
	assert_int_equal(veil_json_member_span(esc, strlen(esc), "tcbInfo", &off, &len),
			 VEIL_ENOENT);
	const char *bad[] = {"",
			     "[]",
			     "{",
			     "{\"k\":}",
			     "{\"k\":1,}",
			     "{\"k\":1} x",
			     "{\"k\":\"a}",
			     "{\"k\":1 \"j\":2}",
			     "{\"k\":1,\"k\":2}",
			     "{\"k\":[1,2}",
			     "{k:1}",
			     "{\"k\":\"\x01\"}"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(bad); i++)
		assert_int_equal(veil_json_member_span(bad[i], strlen(bad[i]), "k", &off, &len),
				 VEIL_EINVAL);
	/* nesting past the limit */
	char deep[200];
	size_t d = 0;
	memcpy(deep, "{\"k\":", 5);
	d = 5;
	for (int i = 0; i < 70; i++)
		deep[d++] = '[';
	for (int i = 0; i < 70; i++)
		deep[d++] = ']';
	deep[d++] = '}';
	assert_int_equal(veil_json_member_span(deep, d, "k", &off, &len), VEIL_EINVAL);
	/* a cut input never reads past its end */
	const char *full = "{\"k\":\"abc\\\"\"}";
	for (size_t n = 0; n < strlen(full); n++)
		assert_int_equal(veil_json_member_span(full, n, "k", &off, &len), VEIL_EINVAL);
}

static void test_qe_and_platform_mismatches_are_refused(void **state)
{
	(void)state;
	struct veil_collateral *c = load_bundle(SGX_BUNDLE);
	struct veil_tcb_query q = sgx_query();
	q.qe_mrsigner[0] ^= 1;
	evaluate_refused(c, &q, AT_2025, "QE report: MRSIGNER");
	q = sgx_query();
	q.qe_isvprodid = 2;
	evaluate_refused(c, &q, AT_2025, "QE report: ISVPRODID");
	q = sgx_query();
	q.qe_attributes[0] |= 0x02;
	evaluate_refused(c, &q, AT_2025, "debug enclave");
	q = sgx_query();
	q.qe_isvsvn = 0;
	evaluate_refused(c, &q, AT_2025, "QE report: ISVSVN 0 is below");
	/* an older QE: the QE level's status and advisories are merged in */
	q = sgx_query();
	q.qe_isvsvn = 5;
	struct veil_tcb_result r = evaluate_ok(c, &q, AT_2025);
	assert_string_equal(veil_tcb_status_name(r.status), "OutOfDate");
	assert_string_equal(veil_tcb_status_name(r.platform_status),
			    "ConfigurationAndSWHardeningNeeded");
	assert_int_equal(r.advisory_count, 3);
	assert_string_equal(r.advisory_ids[2], "INTEL-SA-00477");
	q = sgx_query();
	memset(q.cpu_svn, 0, sizeof(q.cpu_svn));
	evaluate_refused(c, &q, AT_2025, "TCB not supported");
	q = sgx_query();
	q.fmspc[5] = 1;
	evaluate_refused(c, &q, AT_2025, "no SGX TCB Info for FMSPC 00a067110001");
	q = sgx_query();
	q.pck_ca = VEIL_PCK_CA_PLATFORM;
	evaluate_refused(c, &q, AT_2025, "no PCK Platform CA CRL");
	q = tdx_query();
	evaluate_refused(c, &q, AT_2025, "no TDX TCB Info");
	veil_collateral_free(c);

	c = load_bundle(TDX_BUNDLE);
	q = tdx_query();
	q.mr_signer_seam[3] = 1;
	evaluate_refused(c, &q, AT_2025, "MRSIGNERSEAM");
	q = tdx_query();
	q.tee_tcb_svn[1] = 7;
	evaluate_refused(c, &q, AT_2025, "no TDX module identity TDX_07");
	veil_collateral_free(c);
}

static void copy_vector(const char *rel, const char *dir, const char *name)
{
	size_t n;
	char *data = read_vector(rel, &n);
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
	free(data);
}

static void test_folder_layout_loads_bundles_and_pcs_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/veil-collateral-XXXXXX", why[512] = "";
	assert_non_null(mkdtemp(dir));
	copy_vector(SGX_BUNDLE, dir, "sgx.json");
	copy_vector(TDX_BUNDLE, dir, "tdx.json");
	copy_vector("go-tdx-guest/testing/testdata/sample_tcbInfo_response", dir,
		    "tcbinfo-2023.json");
	copy_vector("go-tdx-guest/testing/testdata/sample_qeIdentity_response", dir,
		    "qe-2023.json");
	copy_vector("go-tdx-guest/extracted/tcb_info_issuer_chain.pem", dir, "tcb-signing.pem");
	copy_vector("go-tdx-guest/extracted/pck_crl_issuer_chain.pem", dir, "platform-ca.pem");
	copy_vector("go-tdx-guest/testing/testdata/pckcrl", dir, "platform-2023.crl");
	copy_vector("go-tdx-guest/testing/testdata/rootcrl.der", dir, "root-2023.der");
	copy_vector("go-tdx-guest/verify/trusted_root.pem", dir, "README");
	struct veil_collateral *c = NULL;
	if (veil_collateral_load_dir(dir, &c, why, sizeof(why)))
		fail_msg("%s", why);
	struct veil_tcb_query q = sgx_query();
	struct veil_tcb_result r = evaluate_ok(c, &q, AT_2025);
	assert_int_equal(r.status, VEIL_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED);
	q = tdx_query();
	r = evaluate_ok(c, &q, AT_2025);
	assert_int_equal(r.status, VEIL_TCB_UP_TO_DATE);
	/* the newest TD_QE identity and CRLs are kept (2025's): the 2023 TCB
	 * Info's platform is found, and the 2025 collateral is not valid then */
	q = spr_e4_query();
	evaluate_refused(c, &q, AT_2023, "not valid before");
	veil_collateral_free(c);

	/* a PCS body with no TCB Signing chain in the folder */
	char pem[600];
	snprintf(pem, sizeof(pem), "%s/tcb-signing.pem", dir);
	assert_int_equal(unlink(pem), 0);
	c = NULL;
	assert_int_equal(veil_collateral_load_dir(dir, &c, why, sizeof(why)), VEIL_EINVAL);
	assert_non_null(strstr(why, "qe-2023.json: a PCS body needs the TCB Signing chain"));
	copy_vector("go-tdx-guest/extracted/tcb_info_issuer_chain.pem", dir, "tcb-signing.pem");

	/* a damaged file names itself */
	copy_vector("intel-qvl/Src/AttestationApp/sampleData/tcbInfo.json", dir,
		    "zz-synthetic.json");
	c = NULL;
	assert_int_equal(veil_collateral_load_dir(dir, &c, why, sizeof(why)), VEIL_EINVAL);
	assert_null(c);
	assert_non_null(strstr(why, "zz-synthetic.json"));
	assert_non_null(strstr(why, "TCB Info"));
	assert_int_equal(veil_remove_tree(dir), 0);
	assert_int_equal(veil_collateral_load_dir(dir, &c, why, sizeof(why)), VEIL_EINVAL);
}

/* TCB Info v2 (SGX only: no "id", sgxtcbcompNNsvn fields) has no real
 * signed sample here; Intel's synthetic one exercises the parser */
static void test_field_parser_reads_v2_and_v3_and_names_what_is_wrong(void **state)
{
	(void)state;
	size_t n, off, len;
	char why[256] = "";
	char *v2 = read_vector("intel-qvl/Src/AttestationApp/sampleData/tcbInfo.json", &n);
	assert_int_equal(veil_json_member_span(v2, n, "tcbInfo", &off, &len), 0);
	if (veil_collateral_check_json(v2 + off, len, why, sizeof(why)))
		fail_msg("%s", why);
	char *pcesvn = strstr(v2 + off, "\"pcesvn\"");
	assert_non_null(pcesvn);
	pcesvn[1] = 'q';
	assert_int_equal(veil_collateral_check_json(v2 + off, len, why, sizeof(why)), VEIL_EINVAL);
	assert_string_equal(
	    why, "tcbLevels[0]: \"pcesvn\" is missing or not an integer from 0 to 65535");
	free(v2);
	char *qe = read_vector("intel-qvl/Src/AttestationApp/sampleData/qeIdentity.json", &n);
	assert_int_equal(veil_json_member_span(qe, n, "enclaveIdentity", &off, &len), 0);
	if (veil_collateral_check_json(qe + off, len, why, sizeof(why)))
		fail_msg("%s", why);
	free(qe);
	const char *bad_status =
	    "{\"id\":\"QE\",\"version\":2,\"issueDate\":\"2025-06-19T10:01:18Z\","
	    "\"nextUpdate\":\"2025-07-19T10:01:18Z\",\"miscselect\":\"00000000\","
	    "\"miscselectMask\":\"FFFFFFFF\",\"attributes\":\"11000000000000000000000000000000\","
	    "\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",\"mrsigner\":"
	    "\"8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF\",\"isvprodid\":1,"
	    "\"tcbLevels\":[{\"tcb\":{\"isvsvn\":8},\"tcbDate\":\"2024-03-13T00:00:00Z\","
	    "\"tcbStatus\":\"Fine\"}]}";
	assert_int_equal(
	    veil_collateral_check_json(bad_status, strlen(bad_status), why, sizeof(why)),
	    VEIL_EINVAL);
	assert_string_equal(why, "tcbLevels[0]: unknown tcbStatus \"Fine\"");
}

static void test_status_names_are_intels(void **state)
{
	(void)state;
	const char *names[] = {"UpToDate",
			       "SWHardeningNeeded",
			       "ConfigurationNeeded",
			       "ConfigurationAndSWHardeningNeeded",
			       "OutOfDate",
			       "OutOfDateConfigurationNeeded",
			       "Revoked"};
	for (int i = 0; i < 7; i++)
		assert_string_equal(veil_tcb_status_name((enum veil_tcb_status)i), names[i]);
	assert_string_equal(veil_tcb_status_name((enum veil_tcb_status)7), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_flipped_tcb_info_byte_is_refused),
	    cmocka_unit_test(test_flipped_tcb_info_signature_is_refused),
	    cmocka_unit_test(test_flipped_qe_identity_byte_is_refused),
	    cmocka_unit_test(test_flipped_crl_byte_is_refused),
	    cmocka_unit_test(test_flipped_tcb_signing_cert_is_refused),
	    cmocka_unit_test(test_stale_collateral_is_refused_naming_what_expired),
	    cmocka_unit_test(test_pck_serial_on_the_crl_is_revoked),
	    cmocka_unit_test(test_intel_qvl_synthetic_root_is_untrusted),
	    cmocka_unit_test(test_pcs_body_is_verified_over_the_exact_value_bytes),
	    cmocka_unit_test(test_span_scanner),
	    cmocka_unit_test(test_qe_and_platform_mismatches_are_refused),
	    cmocka_unit_test(test_sgx_bundle_gives_dcap_qvl_published_status),
	    cmocka_unit_test(test_tdx_bundle_is_up_to_date),
	    cmocka_unit_test(test_go_tdx_guest_2023_set_evaluates_spr_e4),
	    cmocka_unit_test(test_dcap_qvl_outdated_sample_is_not_supported),
	    cmocka_unit_test(test_folder_layout_loads_bundles_and_pcs_files),
	    cmocka_unit_test(test_field_parser_reads_v2_and_v3_and_names_what_is_wrong),
	    cmocka_unit_test(test_status_names_are_intels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
