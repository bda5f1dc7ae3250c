/* Intel DCAP quotes (src/evidence/dcap.c, dcap_verify.c) against the real
 * quotes in tests/vectors (README.md §1): every one parses and verifies to
 * the Intel SGX Root CA; a flipped bit in each signed region, a truncation
 * at each structure boundary, Intel's synthetic test-root samples and a
 * time outside the chain's validity are refused with a reason naming them. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "veil/common.h"
#include "veil/dcap.h"

#define MAX_QUOTE (1 << 20)
#define DAY 86400

struct vector {
	const char *path; /* under tests/vectors */
	uint16_t version;
	uint32_t tee;
	const char *fmspc;
	enum veil_dcap_pck_ca ca;
};

#define P VEIL_DCAP_PCK_PLATFORM_CA
#define Q VEIL_DCAP_PCK_PROCESSOR_CA
#define SGX VEIL_DCAP_TEE_SGX
#define TDX VEIL_DCAP_TEE_TDX
#define TEEKIT "dstack-teekit/packages/qvl/test/sampleQuotes/"
#define TRUSTEE "trustee/deps/verifier/test_data/"
#define GOTDX "go-tdx-guest/testing/testdata/"
/* README.md §1, every real quote (the .hex and base64 ones decoded in derived/) */
static const struct vector real_quotes[] = {
    {GOTDX "tdx_prod_quote_SPR_E4.dat", 4, TDX, "50806f000000", P},
    {GOTDX "quote_v5_sample.dat", 5, TDX, "90c06f000000", P},
    {GOTDX "ccel/cos-113-tdx-quote.dat", 4, TDX, "00806f050000", P},
    {TRUSTEE "tdx_quote_4.dat", 4, TDX, "50806f000000", P},
    {TRUSTEE "tdx_quote_5.dat", 5, TDX, "90c06f000000", P},
    {TRUSTEE "tdx_quote_6.dat", 4, TDX, "00a06d080000", P},
    {TRUSTEE "az-tdx-vtpm/td-quote.bin", 4, TDX, "00806f050000", P},
    {TRUSTEE "occlum_quote.dat", 3, SGX, "00606a000000", P},
    {"dcap-qvl/sample/sgx_quote", 3, SGX, "00a067110000", Q},
    {"dcap-qvl/sample/tdx_quote", 4, TDX, "b0c06f000000", P},
    {"dcap-qvl/sample/tdx_quote_outdated", 5, TDX, "90c06f000000", P},
    {"derived/dcap-qvl_tdx-quote.bin", 4, TDX, "b0c06f000000", P},
    {"derived/dcap-qvl_quote-from-tappd.bin", 4, TDX, "b0c06f000000", P},
    {TEEKIT "sgx-chinenyeokafor.dat", 3, SGX, "90c06f000000", P},
    {TEEKIT "sgx-tlsn-quote9.dat", 3, SGX, "00906ed50000", Q},
    {TEEKIT "sgx-tlsn-quotedev.dat", 3, SGX, "00906ed50000", Q},
    {TEEKIT "tdx-v4-edgeless.dat", 4, TDX, "00806f050000", P},
    {TEEKIT "tdx-v4-moemahhouk.dat", 4, TDX, "90c06f000000", P},
    {TEEKIT "tdx-v4-zkdcap.dat", 4, TDX, "00806f050000", P},
    {"derived/tdx-v4-azure.decoded.bin", 4, TDX, "00806f050000", P},
    {"derived/tdx-v4-gcp.quote.bin", 4, TDX, "00806f050000", P},
    {"derived/tdx-v4-gcp-no-nonce.quote.bin", 4, TDX, "00806f050000", P},
};
/* one of each kind, for the negative tests */
#define SGX_V3 "dcap-qvl/sample/sgx_quote"
#define TDX_V4 TRUSTEE "tdx_quote_6.dat" /* 70 bytes of zero padding after it */
#define TDX_V5 GOTDX "quote_v5_sample.dat"
#define QVL "intel-qvl/Src/AttestationApp/sampleData/"

static uint8_t *load(const char *rel, size_t *size)
{
	const char *root = getenv("VEIL_SOURCE_ROOT");
	char path[1024];
	snprintf(path, sizeof(path), "%s/tests/vectors/%s", root ? root : VEIL_SOURCE_ROOT, rel);
	char *data = NULL;
	struct veil_diags d;
	veil_diags_init(&d);
	int rc = veil_read_file(path, MAX_QUOTE, &data, size, &d);
	if (rc)
		veil_diags_print(&d, stderr);
	veil_diags_free(&d);
	assert_int_equal(rc, 0);
	return (uint8_t *)data;
}

static time_t cert_time(const ASN1_TIME *t)
{
	struct tm tm;
	assert_true(ASN1_TIME_to_tm(t, &tm));
	return timegm(&tm);
}

/* a time inside the PCK chain's validity: the leaf's notBefore + 1 day
 * (read from the first PEM certificate, whatever the quote claims) */
static time_t leaf_not_before(const uint8_t *pem, size_t size)
{
	BIO *b = BIO_new_mem_buf(pem, (int)size);
	X509 *leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
	assert_non_null(leaf);
	time_t t = cert_time(X509_get0_notBefore(leaf));
	X509_free(leaf);
	BIO_free(b);
	return t;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* parse and verify; 0 or the error, with the reason in why */
static int check(const uint8_t *q, size_t n, time_t at, struct veil_dcap_pck *pck, char *why,
		 size_t cap)
{
	struct veil_dcap_quote parsed;
	int rc = veil_dcap_parse(q, n, &parsed, why, cap);
	if (rc == 0)
		rc = veil_dcap_verify(&parsed, at, pck, why, cap);
	return rc;
}

static void assert_refused(const uint8_t *q, size_t n, time_t at, const char *reason)
{
	char why[512] = "";
	struct veil_dcap_pck pck;
	int rc = check(q, n, at, &pck, why, sizeof(why));
	if (rc == 0 || !strstr(why, reason))
		print_error("refusal \"%s\" does not name \"%s\"\n", why, reason);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(why, reason));
}

/* A quote serialized again from its parsed parts, with another PCK chain
 * (and certification data type) in place of its own: what the chain tests
 * and Intel's samples need, since the chain is signed by nothing but itself. */
struct rebuilt {
	uint8_t *data;
	size_t size;
};

static void put(struct rebuilt *r, const void *p, size_t n)
{
	r->data = realloc(r->data, r->size + n + 1);
	assert_non_null(r->data);
	if (n)
		memcpy(r->data + r->size, p, n);
	r->size += n;
}

static void put_le(struct rebuilt *r, uint32_t v, size_t n)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	put(r, b, n);
}

static struct rebuilt rebuild(const struct veil_dcap_quote *q, uint16_t cert_type,
			      const void *chain, size_t chain_size)
{
	struct rebuilt qe = {0}, sig = {0}, out = {0};
	put(&qe, q->qe_report_raw, VEIL_DCAP_SGX_REPORT_SIZE);
	put(&qe, q->qe_report_sig, 64);
	put_le(&qe, (uint32_t)q->qe_auth_data_size, 2);
	put(&qe, q->qe_auth_data, q->qe_auth_data_size);
	put_le(&qe, cert_type, 2);
	put_le(&qe, (uint32_t)chain_size, 4);
	put(&qe, chain, chain_size);
	put(&sig, q->signature, 64);
	put(&sig, q->att_key, 64);
	if (q->version != 3) {
		put_le(&sig, VEIL_DCAP_CERT_DATA_QE_REPORT, 2);
		put_le(&sig, (uint32_t)qe.size, 4);
	}
	put(&sig, qe.data, qe.size);
	put(&out, q->signed_data, q->signed_size);
	put_le(&out, (uint32_t)sig.size, 4);
	put(&out, sig.data, sig.size);
	free(qe.data);
	free(sig.data);
	return out;
}

static void parse_ok(const uint8_t *q, size_t n, struct veil_dcap_quote *out)
{
	char why[512] = "";
	int rc = veil_dcap_parse(q, n, out, why, sizeof(why));
	if (rc)
		print_error("%s\n", why);
	assert_int_equal(rc, 0);
}

static void test_every_real_quote_verifies_to_the_intel_root(void **state)
{
	(void)state;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(real_quotes); i++) {
		const struct vector *v = &real_quotes[i];
		size_t n;
		uint8_t *q = load(v->path, &n);
		struct veil_dcap_quote parsed;
		struct veil_dcap_pck pck;
		char why[512] = "", fmspc[13];
		parse_ok(q, n, &parsed);
		assert_int_equal(parsed.version, v->version);
		assert_int_equal(parsed.tee_type, v->tee);
		assert_int_equal(parsed.att_key_type, VEIL_DCAP_ATT_KEY_TYPE_ECDSA_P256);
		assert_true(parsed.quote_size <= n);
		time_t at = leaf_not_before(parsed.pck_chain_pem, parsed.pck_chain_pem_size) + DAY;
		int rc = veil_dcap_verify(&parsed, at, &pck, why, sizeof(why));
		if (rc)
			print_error("%s: %s\n", v->path, why);
		assert_int_equal(rc, 0);
		hex(pck.fmspc, 6, fmspc);
		assert_string_equal(fmspc, v->fmspc);
		assert_int_equal(pck.ca, v->ca);
		assert_true(pck.not_before + DAY == at);
		assert_true(pck.serial_size > 0);
		free(q);
	}
}

static void test_declared_lengths_not_file_size(void **state)
{
	(void)state;
	static const struct {
		const char *path;
		size_t file, quote;
	} padded[] = {
	    {GOTDX "tdx_prod_quote_SPR_E4.dat", 4974, 4935},  /* appended text */
	    {GOTDX "ccel/cos-113-tdx-quote.dat", 8000, 4935}, /* zero padding */
	    {TDX_V4, 5006, 4936},
	    {TEEKIT "tdx-v4-zkdcap.dat", 8000, 4935},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(padded); i++) {
		size_t n;
		uint8_t *q = load(padded[i].path, &n);
		struct veil_dcap_quote parsed;
		assert_int_equal(n, padded[i].file);
		parse_ok(q, n, &parsed);
		assert_int_equal(parsed.quote_size, padded[i].quote);
		/* the quote alone is just as good */
		struct veil_dcap_pck pck;
		char why[512];
		time_t at = leaf_not_before(parsed.pck_chain_pem, parsed.pck_chain_pem_size) + DAY;
		assert_int_equal(check(q, parsed.quote_size, at, &pck, why, sizeof(why)), 0);
		free(q);
	}
}

static void test_fields_policy_needs(void **state)
{
	(void)state;
	size_t n;
	uint8_t *q = load(SGX_V3, &n);
	struct veil_dcap_quote p;
	parse_ok(q, n, &p);
	/* dcap-qvl's SGX sample: an enclave reporting "Hello, world!" */
	assert_memory_equal(p.sgx.report_data, "Hello, world!", 13);
	assert_false(p.sgx.debug);
	assert_int_equal(p.qe_auth_data_size, 32);
	assert_int_equal(p.qe_report.isvprodid, 1); /* the SGX QE */
	assert_int_equal(p.body_type, 0);
	free(q);

	q = load(TDX_V5, &n);
	parse_ok(q, n, &p);
	assert_int_equal(p.body_type, 3);
	assert_true(p.td.is_tdx15);
	assert_false(p.td.debug);
	assert_int_equal(p.qe_report.isvprodid, 2); /* the TD QE */
	assert_int_equal(p.signed_size, VEIL_DCAP_HEADER_SIZE + 6 + VEIL_DCAP_TD15_BODY_SIZE);
	free(q);

	q = load(TDX_V4, &n);
	parse_ok(q, n, &p);
	assert_int_equal(p.body_type, 2);
	assert_false(p.td.is_tdx15);
	assert_int_equal(p.signed_size, VEIL_DCAP_HEADER_SIZE + VEIL_DCAP_TD10_BODY_SIZE);
	free(q);
}

/* a bit flipped in each region a signature covers names that signature */
static void flips_in(const char *path)
{
	size_t n;
	uint8_t *q = load(path, &n);
	struct veil_dcap_quote p;
	parse_ok(q, n, &p);
	time_t at = leaf_not_before(p.pck_chain_pem, p.pck_chain_pem_size) + DAY;
	size_t body = p.version == 5 ? 54 : 48;
	struct {
		size_t off;
		const char *reason;
	} flips[] = {
	    {10, "quote signature"}, /* header: pce_svn */
	    {40, "quote signature"}, /* header: user data */
	    {body + 100, "quote signature"},
	    {p.signed_size - 1, "quote signature"},        /* report data's last byte */
	    {p.signed_size + 4 + 5, "quote signature"},    /* the signature itself */
	    {p.signed_size + 4 + 64 + 7, "does not bind"}, /* the attestation key */
	    {(size_t)(p.qe_report_raw - q) + 70, "QE report signature"},      /* QE mrenclave */
	    {(size_t)(p.qe_report_raw - q) + 330, "QE report signature"},     /* QE report data */
	    {(size_t)(p.qe_report_raw - q) + 384 + 3, "QE report signature"}, /* its signature */
	    {(size_t)(p.qe_auth_data - q), "does not bind"},
	    {(size_t)(p.qe_auth_data - q) + p.qe_auth_data_size - 1, "does not bind"},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(flips); i++) {
		assert_true(flips[i].off < p.quote_size);
		q[flips[i].off] ^= 0x01;
		assert_refused(q, n, at, flips[i].reason);
		q[flips[i].off] ^= 0x01;
	}
	char why[512];
	struct veil_dcap_pck pck;
	assert_int_equal(check(q, n, at, &pck, why, sizeof(why)), 0);
	free(q);
}

static void test_bit_flip_in_each_signed_region_is_refused(void **state)
{
	(void)state;
	flips_in(SGX_V3);
	flips_in(TDX_V4);
	flips_in(TDX_V5);
}

/* the chain's certificates as DER (exactly 3) */
static size_t chain_der(const struct veil_dcap_quote *p, uint8_t *der[3], int len[3])
{
	BIO *b = BIO_new_mem_buf(p->pck_chain_pem, (int)p->pck_chain_pem_size);
	size_t count = 0;
	X509 *x;
	while (count < 3 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		der[count] = NULL;
		len[count] = i2d_X509(x, &der[count]);
		assert_true(len[count] > 0);
		X509_free(x);
		count++;
	}
	BIO_free(b);
	ERR_clear_error();
	return count;
}

static struct rebuilt pem_of(uint8_t *der[], int len[], size_t count)
{
	struct rebuilt pem = {0};
	BIO *b = BIO_new(BIO_s_mem());
	for (size_t i = 0; i < count; i++) {
		const uint8_t *p = der[i];
		X509 *x = d2i_X509(NULL, &p, len[i]);
		if (x)
			assert_true(PEM_write_bio_X509(b, x));
		else /* not DER any more: its bytes as a PEM block anyway */
			assert_true(PEM_write_bio(b, "CERTIFICATE", "", der[i], len[i]));
		X509_free(x);
	}
	char *data;
	long n = BIO_get_mem_data(b, &data);
	put(&pem, data, (size_t)n);
	BIO_free(b);
	return pem;
}

static void chain_flips_in(const char *path)
{
	size_t n;
	uint8_t *q = load(path, &n);
	struct veil_dcap_quote p;
	parse_ok(q, n, &p);
	time_t at = leaf_not_before(p.pck_chain_pem, p.pck_chain_pem_size) + DAY;
	uint8_t *der[3];
	int len[3];
	assert_int_equal(chain_der(&p, der, len), 3);

	/* the unchanged chain, re-encoded, still verifies */
	struct rebuilt pem = pem_of(der, len, 3);
	struct rebuilt again = rebuild(&p, VEIL_DCAP_CERT_DATA_PCK_CHAIN, pem.data, pem.size);
	char why[512];
	struct veil_dcap_pck pck;
	assert_int_equal(check(again.data, again.size, at, &pck, why, sizeof(why)), 0);
	free(pem.data);
	free(again.data);

	for (size_t c = 0; c < 3; c++) {
		/* byte 16 is in the serial number (30 82 l l 30 82 l l a0 03 02 01 02
		 * 02 14 <serial>), the last one in the signature: both stay DER */
		size_t offs[] = {16, (size_t)len[c] - 1, (size_t)len[c] / 2};
		for (size_t k = 0; k < VEIL_ARRAY_LEN(offs); k++) {
			der[c][offs[k]] ^= 0x01;
			pem = pem_of(der, len, 3);
			again = rebuild(&p, VEIL_DCAP_CERT_DATA_PCK_CHAIN, pem.data, pem.size);
			/* (a flip that breaks the DER leaves 2 certificates) */
			assert_refused(again.data, again.size, at,
				       c == 2 && k < 2
					   ? "PCK chain: the root is not the Intel SGX Root CA"
					   : "PCK chain");
			free(pem.data);
			free(again.data);
			der[c][offs[k]] ^= 0x01;
		}
	}
	/* the chain in another order, short of a certificate, or with one more */
	uint8_t *swapped[3] = {der[1], der[0], der[2]};
	int swapped_len[3] = {len[1], len[0], len[2]};
	pem = pem_of(swapped, swapped_len, 3);
	again = rebuild(&p, VEIL_DCAP_CERT_DATA_PCK_CHAIN, pem.data, pem.size);
	assert_refused(again.data, again.size, at, "PCK chain");
	free(pem.data);
	free(again.data);
	pem = pem_of(der, len, 2);
	again = rebuild(&p, VEIL_DCAP_CERT_DATA_PCK_CHAIN, pem.data, pem.size);
	assert_refused(again.data, again.size, at, "PCK chain: 2 PEM certificates");
	free(pem.data);
	free(again.data);
	uint8_t *four[4] = {der[0], der[1], der[2], der[2]};
	int four_len[4] = {len[0], len[1], len[2], len[2]};
	pem = pem_of(four, four_len, 4);
	again = rebuild(&p, VEIL_DCAP_CERT_DATA_PCK_CHAIN, pem.data, pem.size);
	assert_refused(again.data, again.size, at, "PCK chain: more than 3");
	free(pem.data);
	free(again.data);
	for (size_t c = 0; c < 3; c++)
		OPENSSL_free(der[c]);
	free(q);
}

static void test_bit_flip_in_each_chain_certificate_is_refused(void **state)
{
	(void)state;
	chain_flips_in(SGX_V3);
	chain_flips_in(TDX_V4);
	chain_flips_in(TDX_V5);
}

/* A chain refused after its leaf was parsed (the CA block is not DER) once
 * freed the leaf twice, which the parsed-certificate cache then handed out
 * or freed again (found by fuzz_dcap; ASan sees it when the slot is reused
 * below). */
static void test_chain_refused_midway_frees_each_certificate_once(void **state)
{
	(void)state;
	size_t n;
	uint8_t *q = load(TDX_V4, &n);
	struct veil_dcap_quote p;
	parse_ok(q, n, &p);
	time_t at = leaf_not_before(p.pck_chain_pem, p.pck_chain_pem_size) + DAY;
	uint8_t *der[3];
	int len[3];
	assert_int_equal(chain_der(&p, der, len), 3);
	uint8_t junk[64];
	memset(junk, 0x30, sizeof(junk));
	uint8_t *bad[3] = {der[0], junk, der[2]};
	int bad_len[3] = {len[0], (int)sizeof(junk), len[2]};
	struct rebuilt pem = pem_of(bad, bad_len, 3);
	struct rebuilt again = rebuild(&p, VEIL_DCAP_CERT_DATA_PCK_CHAIN, pem.data, pem.size);
	for (int i = 0; i < 3; i++)
		assert_refused(again.data, again.size, at, "PCK chain: the PCK CA certificate");
	/* every real quote: more leaves than the cache has slots */
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < VEIL_ARRAY_LEN(real_quotes); i++) {
			size_t m;
			uint8_t *r = load(real_quotes[i].path, &m);
			struct veil_dcap_quote rp;
			struct veil_dcap_pck pck;
			char why[512];
			parse_ok(r, m, &rp);
			time_t t = leaf_not_before(rp.pck_chain_pem, rp.pck_chain_pem_size) + DAY;
			assert_int_equal(veil_dcap_verify(&rp, t, &pck, why, sizeof(why)), 0);
			free(r);
		}
	char why[512];
	struct veil_dcap_pck pck;
	assert_int_equal(check(q, n, at, &pck, why, sizeof(why)), 0);
	for (size_t c = 0; c < 3; c++)
		OPENSSL_free(der[c]);
	free(pem.data);
	free(again.data);
	free(q);
}

static void test_time_outside_the_chain_validity_is_refused(void **state)
{
	(void)state;
	size_t n;
	uint8_t *q = load(TDX_V4, &n);
	struct veil_dcap_quote p;
	struct veil_dcap_pck pck;
	char why[512];
	parse_ok(q, n, &p);
	time_t nb = leaf_not_before(p.pck_chain_pem, p.pck_chain_pem_size);
	assert_int_equal(veil_dcap_verify(&p, nb + DAY, &pck, why, sizeof(why)), 0);
	assert_int_equal(veil_dcap_verify(&p, (time_t)pck.not_after + DAY, &pck, why, sizeof(why)),
			 VEIL_EINVAL);
	assert_non_null(strstr(why, "PCK chain: certificate has expired"));
	assert_int_equal(veil_dcap_verify(&p, nb - DAY, &pck, why, sizeof(why)), VEIL_EINVAL);
	assert_non_null(strstr(why, "PCK chain: certificate is not yet valid"));
	free(q);
}

/* Review of issue 11: a PCE-certified enclave that is not Intel's quoting
 * enclave (the host's admin can launch one) must not vouch for a quote. The
 * QE report's signature covers its raw bytes; its parsed identity is what
 * the verifier checks, so changing the parsed fields stands for such an
 * enclave. */
static void test_only_intels_quoting_enclave_vouches(void **state)
{
	(void)state;
	static const char *const files[] = {TDX_V4, SGX_V3};
	for (size_t f = 0; f < 2; f++) {
		size_t n;
		uint8_t *q = load(files[f], &n);
		struct veil_dcap_quote p;
		struct veil_dcap_pck pck;
		char why[512];
		parse_ok(q, n, &p);
		time_t nb = leaf_not_before(p.pck_chain_pem, p.pck_chain_pem_size);
		assert_int_equal(veil_dcap_verify(&p, nb + DAY, &pck, why, sizeof(why)), 0);
		struct veil_dcap_quote bad = p;
		bad.qe_report.mrsigner[5] ^= 1;
		assert_int_equal(veil_dcap_verify(&bad, nb + DAY, &pck, why, sizeof(why)),
				 VEIL_EINVAL);
		assert_non_null(strstr(why, "was not made by Intel's"));
		bad = p;
		bad.qe_report.isvprodid ^= 3;
		assert_int_equal(veil_dcap_verify(&bad, nb + DAY, &pck, why, sizeof(why)),
				 VEIL_EINVAL);
		assert_non_null(strstr(why, "was not made by Intel's"));
		bad = p;
		bad.qe_report.debug = true;
		assert_int_equal(veil_dcap_verify(&bad, nb + DAY, &pck, why, sizeof(why)),
				 VEIL_EINVAL);
		assert_non_null(strstr(why, "quoting enclave runs in debug mode"));
		free(q);
	}
}

static void set_le(uint8_t *p, uint32_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Every structure boundary, two ways: the bytes cut there (every length
 * still declared as before), and the quote cut there with the enclosing
 * lengths shrunk to match, so the parser reaches the cut structure itself
 * and names it. */
static void truncations_in(const char *path)
{
	size_t n;
	uint8_t *q = load(path, &n);
	struct veil_dcap_quote p;
	parse_ok(q, n, &p);
	size_t sig_at = p.signed_size + 4; /* signature data */
	size_t qe_at = (size_t)(p.qe_report_raw - q);
	size_t auth_at = (size_t)(p.qe_auth_data - q);
	size_t cert_at = auth_at + p.qe_auth_data_size;          /* type 5 */
	size_t cert6_at = p.version == 3 ? 0 : sig_at + 128 + 6; /* type 6's contents */
	struct {
		size_t cut;
		const char *field;
	} cuts[] = {
	    {0, "header"},
	    {47, "header"},
	    {48, p.version == 5 ? "body type" : "report body"},
	    {50, p.version == 5 ? "body size" : "report body"},
	    {p.signed_size - 1, "report body"},
	    {p.signed_size, "signature data length"},
	    {p.signed_size + 3, "signature data length"},
	    {sig_at, "quote signature"},
	    {sig_at + 63, "quote signature"},
	    {sig_at + 64, "attestation key"},
	    {sig_at + 127, "attestation key"},
	    /* v4/v5: the outer type 6 header; v3: inside the QE report */
	    {sig_at + 128, p.version == 3 ? "QE report" : "certification data type"},
	    {sig_at + 130, p.version == 3 ? "QE report" : "certification data size"},
	    {qe_at, "QE report"},
	    {qe_at + 383, "QE report"},
	    {qe_at + 384, "QE report signature"},
	    {qe_at + 447, "QE report signature"},
	    {auth_at - 2, "QE authentication data size"},
	    {auth_at - 1, "QE authentication data size"},
	    {auth_at, "QE authentication data"},
	    {cert_at - 1, "QE authentication data"},
	    {cert_at, "certification data type"},
	    {cert_at + 1, "certification data type"},
	    {cert_at + 2, "certification data size"},
	    {cert_at + 5, "certification data size"},
	    {cert_at + 6, "certification data"},
	    {p.quote_size - 1, "certification data"},
	};
	if (p.version != 3) {
		/* the outer type 6 header */
		assert_int_equal(qe_at, cert6_at);
	}
	for (size_t i = 0; i < VEIL_ARRAY_LEN(cuts); i++) {
		size_t cut = cuts[i].cut;
		char why[512] = "";
		struct veil_dcap_quote out;
		/* as cut */
		assert_int_equal(veil_dcap_parse(q, cut, &out, why, sizeof(why)), VEIL_EINVAL);
		assert_non_null(strstr(why, "offset"));
		/* with the lengths around the cut shrunk */
		uint8_t *t = malloc(cut + 1);
		memcpy(t, q, cut);
		if (cut >= sig_at)
			set_le(t + p.signed_size, (uint32_t)(cut - sig_at), 4);
		if (p.version != 3 && cut >= cert6_at)
			set_le(t + cert6_at - 4, (uint32_t)(cut - cert6_at), 4);
		if (cut > cert_at + 6)
			set_le(t + cert_at + 2, (uint32_t)(cut - cert_at - 6) - 1, 4);
		int rc = veil_dcap_parse(t, cut, &out, why, sizeof(why));
		if (cut > cert_at + 6) {
			/* the certification data just shorter than what is left */
			assert_int_equal(rc, VEIL_EINVAL);
			assert_non_null(
			    strstr(why, "unexpected bytes after the certification data"));
		} else {
			if (rc == 0 || !strstr(why, cuts[i].field))
				print_error("cut at %zu: \"%s\" does not name %s\n", cut, why,
					    cuts[i].field);
			assert_int_equal(rc, VEIL_EINVAL);
			assert_non_null(strstr(why, cuts[i].field));
			assert_non_null(strstr(why, "offset"));
		}
		free(t);
	}
	/* and every other length short of the quote */
	for (size_t cut = 0; cut < p.quote_size; cut++) {
		char why[512];
		struct veil_dcap_quote out;
		assert_int_equal(veil_dcap_parse(q, cut, &out, why, sizeof(why)), VEIL_EINVAL);
	}
	free(q);
}

static void test_truncation_at_every_boundary_is_refused(void **state)
{
	(void)state;
	truncations_in(SGX_V3);
	truncations_in(TDX_V4);
	truncations_in(TDX_V5);
}

static void assert_parse_refused(const uint8_t *q, size_t n, const char *reason)
{
	char why[512] = "";
	struct veil_dcap_quote out;
	int rc = veil_dcap_parse(q, n, &out, why, sizeof(why));
	if (rc == 0 || !strstr(why, reason))
		print_error("\"%s\" does not name \"%s\"\n", why, reason);
	assert_int_equal(rc, VEIL_EINVAL);
	assert_non_null(strstr(why, reason));
}

static void test_unknown_versions_types_and_sizes_are_refused(void **state)
{
	(void)state;
	size_t n3, n4, n5;
	uint8_t *v3 = load(SGX_V3, &n3), *v4 = load(TDX_V4, &n4), *v5 = load(TDX_V5, &n5);
	struct veil_dcap_quote p;

	v3[0] = 2;
	assert_parse_refused(v3, n3, "quote version 2");
	v3[0] = 6;
	assert_parse_refused(v3, n3, "quote version 6");
	v3[0] = 3;
	v3[2] = 3; /* ECDSA-384-with-P-384 */
	assert_parse_refused(v3, n3, "attestation key type 3");
	v3[2] = 2;
	v3[4] = 0x81; /* an SGX v3 quote that says TDX */
	assert_parse_refused(v3, n3, "tee type 0x81");
	v3[4] = 0;
	v4[4] = 0; /* a v4 quote that says SGX: not one veil reads */
	assert_parse_refused(v4, n4, "tee type 0x0");
	v4[4] = 0x81;
	v5[48] = 4;
	assert_parse_refused(v5, n5, "body type 4");
	v5[48] = 2; /* says TDX 1.0 but 648 bytes */
	assert_parse_refused(v5, n5, "body size 648");
	v5[48] = 3;
	v5[50] ^= 0x10;
	assert_parse_refused(v5, n5, "body size");
	v5[50] ^= 0x10;

	/* the outer certification data of v4/v5 must be type 6, the inner 5 */
	parse_ok(v4, n4, &p);
	size_t outer = p.signed_size + 4 + 128;
	v4[outer] = 5;
	assert_parse_refused(v4, n4, "certification data type 5");
	v4[outer] = 6;
	size_t inner = (size_t)(p.qe_auth_data - v4) + p.qe_auth_data_size;
	for (uint8_t t = 1; t <= 7; t++) {
		if (t == 5)
			continue;
		v4[inner] = t;
		assert_parse_refused(v4, n4, "certification data type");
	}
	v4[inner] = 5;
	/* the signature data claiming one byte of the zero padding after it */
	set_le(v4 + p.signed_size, (uint32_t)(p.quote_size - p.signed_size - 4 + 1), 4);
	assert_parse_refused(v4, n4, "1 unexpected bytes after the QE report certification data");
	set_le(v4 + p.signed_size, (uint32_t)(p.quote_size - p.signed_size - 4), 4);
	parse_ok(v4, n4, &p);
	free(v3);
	free(v4);
	free(v5);
}

/* Intel's QVL samples are real-format quotes chained to a test root with the
 * production root's name: never accepted. */
static void test_intel_synthetic_samples_are_refused(void **state)
{
	(void)state;
	size_t n, pem_n, chain_n;
	char why[512];
	struct veil_dcap_quote p;
	struct veil_dcap_pck pck;

	/* SGX: certification data type 1 (PPID in clear text) */
	uint8_t *q = load(QVL "quote.dat", &n);
	assert_parse_refused(q, n, "certification data type 1");
	/* the same quote with its PCK certificate and chain inlined as type 5:
	 * everything verifies but the root */
	char *pem = (char *)load(QVL "pckCert.pem", &pem_n);
	char *chain = (char *)load(QVL "pckSignChain.pem", &chain_n);
	struct rebuilt both = {0};
	put(&both, pem, pem_n);
	put(&both, chain, chain_n);
	/* parse it with a type 5 stand-in, then put the chain in */
	struct veil_dcap_quote proto;
	{
		struct rebuilt tmp = {0};
		put(&tmp, q, n);
		/* the type 1 data is the last 34 bytes, after its type and size */
		set_le(tmp.data + n - 34 - 6, 5, 2);
		parse_ok(tmp.data, tmp.size, &proto);
		struct rebuilt again =
		    rebuild(&proto, VEIL_DCAP_CERT_DATA_PCK_CHAIN, both.data, both.size);
		time_t at = leaf_not_before(both.data, both.size) + DAY;
		assert_refused(again.data, again.size, at,
			       "PCK chain: the root is not the Intel SGX Root CA");
		free(again.data);
		free(tmp.data);
	}
	free(both.data);
	free(pem);
	free(chain);
	free(q);

	/* TDX: claims type 5 but carries DER, not PEM */
	q = load(QVL "tdx/quote.dat", &n);
	parse_ok(q, n, &p);
	assert_int_not_equal(veil_dcap_verify(&p, 0, &pck, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "PCK chain: no PEM certificates"));
	/* as PEM, it is the test root */
	uint8_t *der[3];
	int len[3];
	size_t count = 0;
	const uint8_t *next = p.pck_chain_pem;
	long left = (long)p.pck_chain_pem_size;
	while (count < 3 && left > 0) {
		const uint8_t *start = next;
		X509 *x = d2i_X509(NULL, &next, left);
		assert_non_null(x);
		left -= (long)(next - start);
		der[count] = NULL;
		len[count] = i2d_X509(x, &der[count]);
		X509_free(x);
		count++;
	}
	assert_int_equal(count, 3);
	struct rebuilt as_pem = pem_of(der, len, 3);
	struct rebuilt again = rebuild(&p, VEIL_DCAP_CERT_DATA_PCK_CHAIN, as_pem.data, as_pem.size);
	assert_refused(again.data, again.size, leaf_not_before(as_pem.data, as_pem.size) + DAY,
		       "PCK chain: the root is not the Intel SGX Root CA");
	for (size_t c = 0; c < 3; c++)
		OPENSSL_free(der[c]);
	free(as_pem.data);
	free(again.data);
	free(q);
}

/* the parsed-certificate cache and the root loaded once are shared between
 * threads (veil-cas verifies on several): the same verdicts from 4 at once */
struct verifier_thread {
	const uint8_t *quotes[3];
	size_t sizes[3];
	time_t at[3];
	int failures;
};

static void *verify_many(void *arg)
{
	struct verifier_thread *t = arg;
	for (int round = 0; round < 20; round++)
		for (size_t i = 0; i < 3; i++) {
			char why[512];
			struct veil_dcap_pck pck;
			if (check(t->quotes[i], t->sizes[i], t->at[i], &pck, why, sizeof(why)))
				t->failures++;
		}
	return NULL;
}

static void test_verifies_from_many_threads(void **state)
{
	(void)state;
	const char *paths[3] = {SGX_V3, TDX_V4, TDX_V5};
	struct verifier_thread work = {0};
	uint8_t *q[3];
	for (size_t i = 0; i < 3; i++) {
		struct veil_dcap_quote p;
		q[i] = load(paths[i], &work.sizes[i]);
		parse_ok(q[i], work.sizes[i], &p);
		work.quotes[i] = q[i];
		work.at[i] = leaf_not_before(p.pck_chain_pem, p.pck_chain_pem_size) + DAY;
	}
	struct verifier_thread each[4];
	pthread_t tid[4];
	for (size_t i = 0; i < 4; i++) {
		each[i] = work;
		assert_int_equal(pthread_create(&tid[i], NULL, verify_many, &each[i]), 0);
	}
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		assert_int_equal(each[i].failures, 0);
	}
	for (size_t i = 0; i < 3; i++)
		free(q[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bit_flip_in_each_signed_region_is_refused),
	    cmocka_unit_test(test_bit_flip_in_each_chain_certificate_is_refused),
	    cmocka_unit_test(test_truncation_at_every_boundary_is_refused),
	    cmocka_unit_test(test_unknown_versions_types_and_sizes_are_refused),
	    cmocka_unit_test(test_intel_synthetic_samples_are_refused),
	    cmocka_unit_test(test_chain_refused_midway_frees_each_certificate_once),
	    cmocka_unit_test(test_time_outside_the_chain_validity_is_refused),
	    cmocka_unit_test(test_every_real_quote_verifies_to_the_intel_root),
	    cmocka_unit_test(test_declared_lengths_not_file_size),
	    cmocka_unit_test(test_fields_policy_needs),
	    cmocka_unit_test(test_verifies_from_many_threads),
	    cmocka_unit_test(test_only_intels_quoting_enclave_vouches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
