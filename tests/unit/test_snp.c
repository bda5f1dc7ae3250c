/* SEV-SNP reports (src/evidence/snp.c) against the real reports and
 * certificates in tests/vectors (README section 3). Adversarial cases first
 * in spirit: every check the verifier makes has a case that trips it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "veil/common.h"
#include "veil/snp.h"

/* 2025-12-07T00:00:00Z: every vector's certificates are valid then (the
 * VLEK expires 2025-12-10, the GCP VCEKs start 2025-12-05) */
#define AT ((time_t)1765065600)

#define MILAN_CHAIN "go-sev-guest/verify/trust/ask_ark_milan.pem"
#define MILAN_VLEK_CHAIN "go-sev-guest/verify/trust/ask_ark_milan_vlek.pem"
#define GENOA_CHAIN "go-sev-guest/verify/trust/ask_ark_genoa.pem"
#define TRUSTEE "trustee/deps/verifier/test_data/snp/"

struct vector {
	const char *report, *key, *chain;
	uint32_t version;
	enum veil_snp_product product;
	enum veil_snp_signer signer;
	uint32_t vmpl;
	int debug;
};

static const struct vector vectors[] = {
    {"go-sev-guest/verify/testdata/attestation.bin", "go-sev-guest/verify/testdata/vcek.testcer",
     MILAN_CHAIN, 2, VEIL_SNP_PRODUCT_MILAN, VEIL_SNP_SIGNER_VCEK, 0, 1},
    {TRUSTEE "test-report.bin", TRUSTEE "test-vcek.der", MILAN_CHAIN, 2, VEIL_SNP_PRODUCT_MILAN,
     VEIL_SNP_SIGNER_VCEK, 0, 0},
    {TRUSTEE "test-vlek-report.bin", TRUSTEE "test-vlek.der", MILAN_VLEK_CHAIN, 3,
     VEIL_SNP_PRODUCT_MILAN, VEIL_SNP_SIGNER_VLEK, 1, 0},
    {"derived/virtee-sev_report_milan.bin", "virtee-sev/tests/certs_data/vcek_milan.der",
     "virtee-sev/tests/certs_data/cert_chain_milan", 2, VEIL_SNP_PRODUCT_MILAN,
     VEIL_SNP_SIGNER_VCEK, 0, 0},
    {"derived/az-snp-vtpm_hcl-report_snp-report-milan-v2.bin", "derived/az-snp-vtpm_vcek-milan.pem",
     MILAN_CHAIN, 2, VEIL_SNP_PRODUCT_MILAN, VEIL_SNP_SIGNER_VCEK, 0, 0},
    {"derived/az-snp-vtpm_evidence-genoa_snp-report-v3.bin",
     "derived/az-snp-vtpm_evidence-genoa_vcek.pem", GENOA_CHAIN, 3, VEIL_SNP_PRODUCT_GENOA,
     VEIL_SNP_SIGNER_VCEK, 0, 0},
    {"teekit/sev-gcp.bin", "teekit/sev-gcp-vcek.pem", "teekit/sev-gcp-cert-chain.pem", 5,
     VEIL_SNP_PRODUCT_MILAN, VEIL_SNP_SIGNER_VCEK, 0, 0},
    {"teekit/sev-gcp-reportdata.bin", "teekit/sev-gcp-vcek.pem", "teekit/sev-gcp-cert-chain.pem", 5,
     VEIL_SNP_PRODUCT_MILAN, VEIL_SNP_SIGNER_VCEK, 1, 0},
    {"teekit/sev-gcp-x25519-bound.bin", "teekit/sev-gcp-x25519-vcek.pem",
     "teekit/sev-gcp-x25519-cert-chain.pem", 5, VEIL_SNP_PRODUCT_MILAN, VEIL_SNP_SIGNER_VCEK, 1, 0},
};

/* a vector file, NUL-terminated (so PEM bundles are strings) */
static uint8_t *vec(const char *rel, size_t *size)
{
	const char *root = getenv("VEIL_SOURCE_ROOT");
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/vectors/%s", root ? root : VEIL_SOURCE_ROOT, rel);
	char *data = NULL;
	size_t n = 0;
	struct veil_diags d;
	veil_diags_init(&d);
	if (veil_read_file(path, 1 << 20, &data, &n, &d))
		fail_msg("cannot read %s", path);
	veil_diags_free(&d);
	if (size)
		*size = n;
	return (uint8_t *)data;
}

static char why[512];

static void parse_ok(const uint8_t *b, size_t n, struct veil_snp_report *r)
{
	why[0] = '\0';
	if (veil_snp_parse(b, n, r, why, sizeof(why)))
		fail_msg("parse refused: %s", why);
}

/* parse and verify; 0 or the error, the reason in `why` */
static int check(const uint8_t *report, size_t rn, const uint8_t *key, size_t kn, const char *ca,
		 time_t at, struct veil_snp_verified *v)
{
	struct veil_snp_report r;
	why[0] = '\0';
	int err = veil_snp_parse(report, rn, &r, why, sizeof(why));
	return err ? err : veil_snp_verify(&r, key, kn, ca, at, v, why, sizeof(why));
}

static void assert_refused(int err, const char *reason)
{
	assert_int_not_equal(err, 0);
	if (!strstr(why, reason))
		fail_msg("refused for \"%s\", expected a reason with \"%s\"", why, reason);
}

/* one vector's three files */
struct loaded {
	uint8_t *report, *key;
	char *chain;
	size_t rn, kn;
};

static void load(const struct vector *v, struct loaded *l)
{
	l->report = vec(v->report, &l->rn);
	l->key = vec(v->key, &l->kn);
	l->chain = (char *)vec(v->chain, NULL);
}

static void unload(struct loaded *l)
{
	free(l->report);
	free(l->key);
	free(l->chain);
}

/* ---- the real vectors ---- */

static void test_every_vector_verifies_with_its_chain(void **state)
{
	(void)state;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(vectors); i++) {
		const struct vector *v = &vectors[i];
		struct loaded l;
		load(v, &l);
		struct veil_snp_report r;
		parse_ok(l.report, l.rn, &r);
		struct veil_snp_verified out;
		if (veil_snp_verify(&r, l.key, l.kn, l.chain, AT, &out, why, sizeof(why)))
			fail_msg("%s: %s", v->report, why);
		assert_int_equal(r.version, v->version);
		assert_int_equal(out.product, v->product);
		assert_int_equal(out.signer, v->signer);
		assert_int_equal(r.signing_key, v->signer);
		assert_int_equal(r.vmpl, v->vmpl);
		assert_int_equal(r.debug, v->debug);
		/* and with the compiled-in ASK/ASVK and ARK */
		if (veil_snp_verify(&r, l.key, l.kn, NULL, AT, &out, why, sizeof(why)))
			fail_msg("%s with compiled-in roots: %s", v->report, why);
		assert_int_equal(out.product, v->product);
		unload(&l);
	}
}

static void test_reported_tcb_decoded_by_product(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[5], &l); /* Genoa: reported_tcb 0a00000000001754 */
	struct veil_snp_verified out;
	assert_int_equal(check(l.report, l.rn, l.key, l.kn, l.chain, AT, &out), 0);
	assert_int_equal(out.reported_tcb.bl_spl, 10);
	assert_int_equal(out.reported_tcb.tee_spl, 0);
	assert_int_equal(out.reported_tcb.snp_spl, 23);
	assert_int_equal(out.reported_tcb.microcode_spl, 84);
	unload(&l);
	/* Turin's layout: fmc, bl, tee, snp in bytes 0-3 */
	struct veil_snp_tcb t;
	veil_snp_tcb_decode(0xdb00000004030201ull, VEIL_SNP_PRODUCT_TURIN, &t);
	assert_int_equal(t.fmc_spl, 1);
	assert_int_equal(t.bl_spl, 2);
	assert_int_equal(t.tee_spl, 3);
	assert_int_equal(t.snp_spl, 4);
	assert_int_equal(t.microcode_spl, 0xdb);
	veil_snp_tcb_decode(0xdb00000004030201ull, VEIL_SNP_PRODUCT_MILAN, &t);
	assert_int_equal(t.fmc_spl, 0);
	assert_int_equal(t.bl_spl, 1);
	assert_int_equal(t.snp_spl, 0);
}

/* teekit's GCP report binds an X25519 key: report_data = SHA-512(nonce || key) */
static void test_report_data_binds_the_x25519_key(void **state)
{
	(void)state;
	char *txt = (char *)vec("teekit/sev-gcp-x25519-bound.txt", NULL);
	char nonce_hex[65] = "", key_hex[65] = "";
	const char *n = strstr(txt, "NONCE="), *k = strstr(txt, "X25519_KEY=");
	assert_non_null(n);
	assert_non_null(k);
	assert_int_equal(sscanf(n, "NONCE=%64[0-9a-f]", nonce_hex), 1);
	assert_int_equal(sscanf(k, "X25519_KEY=%64[0-9a-f]", key_hex), 1);
	uint8_t in[64], want[64];
	assert_int_equal(veil_unhex(nonce_hex, in, 32), 0);
	assert_int_equal(veil_unhex(key_hex, in + 32, 32), 0);
	unsigned int len = 0;
	assert_int_equal(EVP_Digest(in, sizeof(in), want, &len, EVP_sha512(), NULL), 1);
	assert_int_equal(len, 64);

	struct loaded l;
	load(&vectors[8], &l);
	struct veil_snp_report r;
	parse_ok(l.report, l.rn, &r);
	assert_int_equal(veil_snp_verify(&r, l.key, l.kn, l.chain, AT, NULL, why, sizeof(why)), 0);
	assert_memory_equal(r.report_data, want, 64);
	/* another key is not bound */
	in[63] ^= 1;
	assert_int_equal(EVP_Digest(in, sizeof(in), want, &len, EVP_sha512(), NULL), 1);
	assert_memory_not_equal(r.report_data, want, 64);
	unload(&l);
	free(txt);
}

static void test_debug_flag_is_policy_bit_19(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[0], &l); /* policy 0xb0000: a debug guest */
	struct veil_snp_report r;
	parse_ok(l.report, l.rn, &r);
	assert_true(r.debug);
	assert_true(r.policy & VEIL_SNP_POLICY_DEBUG);
	l.report[0x08 + 2] ^= 0x08; /* bit 19 */
	parse_ok(l.report, l.rn, &r);
	assert_false(r.debug);
	/* and it is signed: clearing it breaks the signature */
	assert_refused(veil_snp_verify(&r, l.key, l.kn, l.chain, AT, NULL, why, sizeof(why)),
		       "report signature");
	unload(&l);
	load(&vectors[1], &l);
	parse_ok(l.report, l.rn, &r);
	assert_false(r.debug);
	unload(&l);
}

/* ---- the report ---- */

static bool in_range(size_t off, size_t lo, size_t hi)
{
	return off >= lo && off < hi;
}

/* Every one-bit flip in the signed region is refused; where the bytes are
 * plain data (not a field the parser or the TCB/chip checks look at), the
 * reason is the report signature. */
static void test_every_flip_in_the_signed_region_is_refused(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[1], &l);
	for (size_t off = 0; off < VEIL_SNP_SIGNED_SIZE; off++) {
		l.report[off] ^= 0x01;
		int err = check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL);
		if (!err)
			fail_msg("flip at 0x%zx accepted", off);
		bool checked_field = in_range(off, 0x00, 0x04) ||   /* version */
				     in_range(off, 0x34, 0x38) ||   /* signature_algo */
				     in_range(off, 0x48, 0x50) ||   /* signer_info, reserved */
				     in_range(off, 0x180, 0x1E0) || /* reported_tcb..chip_id */
				     off == 0x1EB || off == 0x1EF || off >= 0x1F8;
		if (!checked_field && !strstr(why, "report signature"))
			fail_msg("flip at 0x%zx refused for \"%s\"", off, why);
		l.report[off] ^= 0x01;
	}
	/* the named fields */
	l.report[0x90] ^= 0x80; /* measurement */
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL), "report signature");
	l.report[0x90] ^= 0x80;
	l.report[0x50] ^= 0x01; /* report_data */
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL), "report signature");
	l.report[0x50] ^= 0x01;
	l.report[0x1A0] ^= 0x01; /* chip_id */
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL), "chip_id");
	l.report[0x1A0] ^= 0x01;
	l.report[0x186] ^= 0x01; /* reported_tcb snp_spl 8 -> 9 */
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL),
		       "reported TCB snp_spl 9 != VCEK's 8");
	l.report[0x186] ^= 0x01;
	assert_int_equal(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL), 0);
	unload(&l);
}

static void test_flip_in_the_signature_is_refused(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[6], &l);
	l.report[0x2A0 + 5] ^= 0x10; /* r */
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL), "report signature");
	l.report[0x2A0 + 5] ^= 0x10;
	l.report[0x2A0 + 72 + 40] ^= 0x01; /* s */
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL), "report signature");
	l.report[0x2A0 + 72 + 40] ^= 0x01;
	l.report[0x2A0 + 144] ^= 0x01; /* the zero padding after s */
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL),
		       "reserved bytes at 0x330 are not zero");
	l.report[0x2A0 + 144] ^= 0x01;
	/* r and s swapped */
	uint8_t tmp[72];
	memcpy(tmp, l.report + 0x2A0, 72);
	memcpy(l.report + 0x2A0, l.report + 0x2A0 + 72, 72);
	memcpy(l.report + 0x2A0 + 72, tmp, 72);
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL), "report signature");
	unload(&l);
}

/* the offsets where a field starts (and the end) */
static const size_t boundaries[] = {
    0x000, 0x004, 0x008, 0x010, 0x020, 0x030, 0x034, 0x038, 0x040, 0x048,     0x04C,
    0x050, 0x090, 0x0C0, 0x0E0, 0x110, 0x140, 0x160, 0x180, 0x188, 0x1A0,     0x1E0,
    0x1E8, 0x1EC, 0x1F0, 0x1F8, 0x200, 0x208, 0x2A0, 0x2E8, 0x330, 0x4A0 - 1,
};

static void test_truncation_at_every_field_boundary_is_refused(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[6], &l);
	struct veil_snp_report r;
	memset(&r, 0xAA, sizeof(r));
	for (size_t i = 0; i < VEIL_ARRAY_LEN(boundaries); i++) {
		size_t n = boundaries[i];
		uint8_t *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees overreads */
		memcpy(copy, l.report, n);
		size_t used = 7;
		assert_refused(veil_snp_parse(copy, n, &r, why, sizeof(why)),
			       "bytes, a report is 1184");
		assert_refused(veil_snp_parse_prefix(copy, n, &r, &used, why, sizeof(why)),
			       "bytes, a report is 1184");
		assert_int_equal(used, 7); /* outputs only on success */
		free(copy);
	}
	assert_int_equal(r.version, 0xAAAAAAAA);
	assert_refused(veil_snp_parse(NULL, 1184, &r, why, sizeof(why)), "a report is 1184");
	unload(&l);
}

static void test_trailing_bytes_only_when_the_caller_says_so(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[2], &l);
	uint8_t *big = calloc(1, l.rn + 100);
	memcpy(big, l.report, l.rn);
	struct veil_snp_report r;
	assert_refused(veil_snp_parse(big, l.rn + 100, &r, why, sizeof(why)),
		       "1284 bytes, a report is 1184");
	size_t used = 0;
	assert_int_equal(veil_snp_parse_prefix(big, l.rn + 100, &r, &used, why, sizeof(why)), 0);
	assert_int_equal(used, VEIL_SNP_REPORT_SIZE);
	assert_int_equal(veil_snp_verify(&r, l.key, l.kn, l.chain, AT, NULL, why, sizeof(why)), 0);
	free(big);
	unload(&l);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_unknown_version_is_refused(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[5], &l); /* v3 */
	struct veil_snp_report r;
	const uint32_t bad[] = {0, 1, 6, 7, 0x100, 0xffffffff};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(bad); i++) {
		put_le32(l.report, bad[i]);
		assert_refused(veil_snp_parse(l.report, l.rn, &r, why, sizeof(why)), "version");
	}
	/* 4 has 3's layout: it parses (and then fails the signature) */
	put_le32(l.report, 4);
	parse_ok(l.report, l.rn, &r);
	assert_int_equal(r.version, 4);
	assert_int_equal(r.product, VEIL_SNP_PRODUCT_GENOA);
	assert_refused(veil_snp_verify(&r, l.key, l.kn, l.chain, AT, NULL, why, sizeof(why)),
		       "report signature");
	/* a v2 may not carry CPUID bytes (reserved there) */
	put_le32(l.report, 2);
	assert_refused(veil_snp_parse(l.report, l.rn, &r, why, sizeof(why)),
		       "reserved bytes at 0x188");
	unload(&l);
}

static void test_signature_algo_other_than_1_is_refused(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[1], &l);
	struct veil_snp_report r;
	const uint32_t bad[] = {0, 2, 0x101};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(bad); i++) {
		put_le32(l.report + 0x34, bad[i]);
		assert_refused(veil_snp_parse(l.report, l.rn, &r, why, sizeof(why)),
			       "signature_algo");
	}
	unload(&l);
}

static void test_signer_info_and_reserved_fields(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[1], &l);
	struct veil_snp_report r;
	put_le32(l.report + 0x48, 2u << 2); /* signing key 2: reserved */
	assert_refused(veil_snp_parse(l.report, l.rn, &r, why, sizeof(why)), "signing key 2");
	put_le32(l.report + 0x48, 1u << 5);
	assert_refused(veil_snp_parse(l.report, l.rn, &r, why, sizeof(why)), "reserved bits");
	put_le32(l.report + 0x48, 7u << 2); /* none: parses, never verifies */
	parse_ok(l.report, l.rn, &r);
	assert_int_equal(r.signing_key, VEIL_SNP_SIGNER_NONE);
	assert_refused(veil_snp_verify(&r, l.key, l.kn, l.chain, AT, NULL, why, sizeof(why)),
		       "not signed");
	put_le32(l.report + 0x48, 0);
	l.report[0x08 + 2] ^= 0x02; /* policy bit 17: reserved, must be one */
	assert_refused(veil_snp_parse(l.report, l.rn, &r, why, sizeof(why)),
		       "reserved bit 17 clear");
	l.report[0x08 + 2] ^= 0x02;
	const size_t reserved[] = {0x4C,  0x18B, 0x19F, 0x1EB,    0x1EF,
				   0x1F8, 0x208, 0x29F, 0x4A0 - 1};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(reserved); i++) {
		l.report[reserved[i]] ^= 0x40;
		assert_refused(veil_snp_parse(l.report, l.rn, &r, why, sizeof(why)),
			       "reserved bytes at 0x");
		l.report[reserved[i]] ^= 0x40;
	}
	parse_ok(l.report, l.rn, &r);
	unload(&l);
}

/* ---- the key certificate and its chain ---- */

/* the DER of a PEM's certificates, one per entry */
struct der_list {
	uint8_t *der[4];
	int len[4];
	int count;
};

static void split_pem(const char *pem, struct der_list *dl)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x;
	dl->count = 0;
	while (dl->count < 4 && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		dl->der[dl->count] = NULL;
		dl->len[dl->count] = i2d_X509(x, &dl->der[dl->count]);
		assert_true(dl->len[dl->count] > 0);
		dl->count++;
		X509_free(x);
	}
	BIO_free(bio);
	assert_true(dl->count > 0);
}

static char *join_pem(const struct der_list *dl)
{
	BIO *bio = BIO_new(BIO_s_mem());
	for (int i = 0; i < dl->count; i++)
		assert_true(PEM_write_bio(bio, "CERTIFICATE", "", dl->der[i], dl->len[i]) > 0);
	char *p;
	long n = BIO_get_mem_data(bio, &p);
	char *s = strndup(p, (size_t)n);
	BIO_free(bio);
	return s;
}

static void free_ders(struct der_list *dl)
{
	for (int i = 0; i < dl->count; i++)
		OPENSSL_free(dl->der[i]);
}

/* the VCEK as DER (from PEM or DER) */
static uint8_t *key_der(const uint8_t *key, size_t kn, int *len)
{
	if (kn > 10 && !memcmp(key, "-----BEGIN", 10)) {
		struct der_list dl;
		split_pem((const char *)key, &dl);
		*len = dl.len[0];
		return dl.der[0];
	}
	uint8_t *copy = OPENSSL_malloc(kn);
	memcpy(copy, key, kn);
	*len = (int)kn;
	return copy;
}

static void test_flip_in_the_vcek_is_refused_naming_it(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[1], &l); /* DER VCEK */
	int n = (int)l.kn;
	/* its signature (the last bytes) */
	l.key[n - 3] ^= 0x01;
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL),
		       "VCEK not signed by ASK (SEV-Milan)");
	l.key[n - 3] ^= 0x01;
	/* every 7th byte of it: refused, and the reason names the VCEK */
	for (int off = 0; off < n; off += 7) {
		l.key[off] ^= 0x04;
		int err = check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL);
		if (!err)
			fail_msg("VCEK flip at %d accepted", off);
		if (!strstr(why, "VCEK"))
			fail_msg("VCEK flip at %d refused for \"%s\"", off, why);
		l.key[off] ^= 0x04;
	}
	/* its TBS: the hwID (the last 64 bytes before the signature algorithm) */
	uint8_t *hw = memmem(l.key, l.kn, l.report + 0x1A0, 64);
	assert_non_null(hw);
	hw[10] ^= 0x01;
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL),
		       "VCEK not signed by ASK");
	hw[10] ^= 0x01;
	/* trailing bytes after the DER */
	uint8_t *longer = malloc(l.kn + 1);
	memcpy(longer, l.key, l.kn);
	longer[l.kn] = 0;
	assert_refused(check(l.report, l.rn, longer, l.kn + 1, l.chain, AT, NULL),
		       "VCEK certificate does not parse");
	free(longer);
	assert_int_equal(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL), 0);
	unload(&l);
}

static void test_flip_in_ask_or_ark_is_refused_naming_it(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[0], &l); /* ask_ark_milan.pem: ASK, ARK */
	struct der_list dl;
	split_pem(l.chain, &dl);
	assert_int_equal(dl.count, 2);
	const struct {
		int cert, off; /* off < 0: from the end */
		const char *reason;
	} cases[] = {
	    {0, -5, "ASK not signed by ARK"},  /* the ASK's signature */
	    {0, 400, "ASK not signed by ARK"}, /* in the ASK's public key (TBS) */
	    {0, 200, "ASK"},                   /* in the ASK's names */
	    {1, -5, "ARK is not AMD's Milan root"},
	    {1, 400, "ARK is not AMD's Milan root"},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(cases); i++) {
		int c = cases[i].cert;
		int off = cases[i].off < 0 ? dl.len[c] + cases[i].off : cases[i].off;
		dl.der[c][off] ^= 0x01;
		char *pem = join_pem(&dl);
		assert_refused(check(l.report, l.rn, l.key, l.kn, pem, AT, NULL), cases[i].reason);
		free(pem);
		dl.der[c][off] ^= 0x01;
	}
	char *pem = join_pem(&dl);
	assert_int_equal(check(l.report, l.rn, l.key, l.kn, pem, AT, NULL), 0);
	free(pem);
	free_ders(&dl);
	unload(&l);
}

static void sign_pss(X509 *x, EVP_PKEY *key)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	assert_int_equal(EVP_DigestSignInit(ctx, &pctx, EVP_sha384(), NULL, key), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48), 1);
	assert_true(X509_sign_ctx(x, ctx) > 0);
	EVP_MD_CTX_free(ctx);
}

/* An ARK with AMD's name and a key of its own, re-signing AMD's real ASK:
 * the chain is consistent, the root is not AMD's. */
static void test_self_made_ark_named_like_amds_is_refused(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[1], &l);
	BIO *bio = BIO_new_mem_buf(l.chain, -1);
	X509 *real_ask = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	X509 *real_ark = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(real_ask);
	assert_non_null(real_ark);
	EVP_PKEY *fake = EVP_RSA_gen(2048);
	assert_non_null(fake);
	X509 *ark = X509_new();
	assert_int_equal(X509_set_version(ark, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(ark), 1);
	X509_set_subject_name(ark, X509_get_subject_name(real_ark));
	X509_set_issuer_name(ark, X509_get_subject_name(real_ark));
	ASN1_TIME_set(X509_getm_notBefore(ark), AT - 86400L * 3650);
	ASN1_TIME_set(X509_getm_notAfter(ark), AT + 86400L * 3650);
	X509_set_pubkey(ark, fake);
	sign_pss(ark, fake);
	X509 *ask = X509_dup(real_ask);
	sign_pss(ask, fake);
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(bio, ask);
	PEM_write_bio_X509(bio, ark);
	char *p;
	long n = BIO_get_mem_data(bio, &p);
	char *pem = strndup(p, (size_t)n);
	BIO_free(bio);
	assert_refused(check(l.report, l.rn, l.key, l.kn, pem, AT, NULL),
		       "ARK is not AMD's Milan root");
	/* the real ARK with the re-signed ASK */
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(bio, ask);
	PEM_write_bio_X509(bio, real_ark);
	n = BIO_get_mem_data(bio, &p);
	free(pem);
	pem = strndup(p, (size_t)n);
	BIO_free(bio);
	assert_refused(check(l.report, l.rn, l.key, l.kn, pem, AT, NULL), "ASK not signed by ARK");
	free(pem);
	X509_free(ask);
	X509_free(ark);
	X509_free(real_ask);
	X509_free(real_ark);
	EVP_PKEY_free(fake);
	unload(&l);
}

static void test_wrong_product_chain_is_refused(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[1], &l); /* Milan */
	char *genoa = (char *)vec(GENOA_CHAIN, NULL);
	assert_refused(check(l.report, l.rn, l.key, l.kn, genoa, AT, NULL),
		       "CA bundle has no ASK (CN SEV-Milan)");
	/* Genoa's ASK with Milan's ARK: the ARK is found, the ASK is not */
	char *turin = (char *)vec("go-sev-guest/verify/trust/ask_ark_turin_vcek.pem", NULL);
	assert_refused(check(l.report, l.rn, l.key, l.kn, turin, AT, NULL), "no ASK");
	free(turin);
	/* a Genoa report (CPUID 0x19/0x11) with a Milan VCEK */
	struct loaded g;
	load(&vectors[5], &g);
	assert_refused(check(g.report, g.rn, l.key, l.kn, NULL, AT, NULL),
		       "report's CPUID says Genoa but the VCEK is Milan's");
	/* ... and with its own VCEK but Milan's chain */
	assert_refused(check(g.report, g.rn, g.key, g.kn, l.chain, AT, NULL),
		       "CA bundle has no ASK (CN SEV-Genoa)");
	unload(&g);
	free(genoa);
	unload(&l);
}

static void test_vcek_of_another_report_is_refused_naming_the_mismatch(void **state)
{
	(void)state;
	struct loaded a, b;
	load(&vectors[1], &a); /* trustee: TCB bl 3 snp 8 ucode 115 */
	load(&vectors[0], &b); /* go-sev-guest: TCB bl 2 snp 5 ucode 68 */
	assert_refused(check(a.report, a.rn, b.key, b.kn, a.chain, AT, NULL),
		       "reported TCB bl_spl 3 != VCEK's 2");
	/* virtee's report has trustee's TCB but another chip */
	struct loaded c;
	load(&vectors[3], &c);
	assert_refused(check(c.report, c.rn, a.key, a.kn, a.chain, AT, NULL),
		       "chip_id != VCEK's hwID");
	unload(&a);
	unload(&b);
	unload(&c);
}

static void test_vlek_needs_the_asvk_and_its_validity(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[2], &l);
	char *ask_only = (char *)vec(MILAN_CHAIN, NULL);
	assert_refused(check(l.report, l.rn, l.key, l.kn, ask_only, AT, NULL),
		       "CA bundle has no ASVK (CN SEV-VLEK-Milan)");
	free(ask_only);
	/* the VLEK was valid for a year: 2024-12-10 to 2025-12-10 */
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, 0, NULL),
		       "VLEK expired on 2025-12-10T22:14:21Z");
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT - 86400L * 365, NULL),
		       "VLEK is not valid before 2024-12-10T22:14:21Z");
	/* a VCEK where the report names a VLEK */
	struct loaded v;
	load(&vectors[1], &v);
	assert_refused(check(l.report, l.rn, v.key, v.kn, l.chain, AT, NULL),
		       "signed by a VLEK (signer_info) but the key certificate's CN is 'SEV-VCEK'");
	assert_refused(check(v.report, v.rn, l.key, l.kn, l.chain, AT, NULL),
		       "signed by a VCEK (signer_info) but the key certificate's CN is 'SEV-VLEK'");
	unload(&v);
	unload(&l);
}

static void test_validity_of_the_vcek_at_the_given_time(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[6], &l); /* GCP VCEK: 2025-12-05T06:04:27Z to 2032 */
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT - 86400L * 3, NULL),
		       "VCEK is not valid before 2025-12-05T06:04:27Z");
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, (time_t)2000000000, NULL),
		       "VCEK expired on 2032-12-05T06:04:27Z");
	/* 0: now */
	assert_int_equal(check(l.report, l.rn, l.key, l.kn, l.chain, 0, NULL), 0);
	unload(&l);
}

static void test_turin_vcek_chains_to_the_compiled_in_root(void **state)
{
	(void)state;
	size_t kn;
	uint8_t *key = vec("virtee-sev/tests/certs_data/vcek_turin.der", &kn);
	char *chain = (char *)vec("virtee-sev/tests/certs_data/cert_chain_turin", NULL);
	enum veil_snp_product p = VEIL_SNP_PRODUCT_UNKNOWN;
	assert_int_equal(
	    veil_snp_verify_key_cert(key, kn, VEIL_SNP_SIGNER_VCEK, NULL, AT, &p, why, sizeof(why)),
	    0);
	assert_int_equal(p, VEIL_SNP_PRODUCT_TURIN);
	p = VEIL_SNP_PRODUCT_UNKNOWN;
	assert_int_equal(veil_snp_verify_key_cert(key, kn, VEIL_SNP_SIGNER_VCEK, chain, AT, &p, why,
						  sizeof(why)),
			 0);
	assert_int_equal(p, VEIL_SNP_PRODUCT_TURIN);
	assert_refused(
	    veil_snp_verify_key_cert(key, kn, VEIL_SNP_SIGNER_VLEK, NULL, AT, &p, why, sizeof(why)),
	    "CN is 'SEV-VCEK'");
	free(chain);
	free(key);
}

static void test_key_cert_as_pem_or_der(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[4], &l); /* PEM VCEK */
	int len;
	uint8_t *der = key_der(l.key, l.kn, &len);
	assert_int_equal(check(l.report, l.rn, der, (size_t)len, l.chain, AT, NULL), 0);
	assert_refused(check(l.report, l.rn, der, (size_t)len - 1, l.chain, AT, NULL),
		       "VCEK certificate does not parse");
	assert_refused(check(l.report, l.rn, NULL, 0, l.chain, AT, NULL),
		       "VCEK certificate does not parse");
	OPENSSL_free(der);
	unload(&l);
}

/* No Turin report among the vectors: a Genoa v3 report made to look like
 * Turin's (CPUID family 0x1A) with the Turin VCEK's TCB and 8-byte hwID
 * passes every check up to the signature, which it cannot have. Its TCB is
 * read in Turin's layout (fmc, bl, tee, snp in bytes 0-3). */
static void test_turin_tcb_layout_and_8_byte_hwid(void **state)
{
	(void)state;
	struct loaded g;
	load(&vectors[5], &g);
	size_t kn;
	uint8_t *key = vec("virtee-sev/tests/certs_data/vcek_turin.der", &kn);
	static const uint8_t hwid[8] = {0x1e, 0x55, 0x0a, 0x8e, 0xe5, 0xcf, 0x9f, 0x4d};
	g.report[0x188] = 0x1A; /* family */
	g.report[0x189] = 0x02; /* model */
	memset(g.report + 0x1A0, 0, 64);
	memcpy(g.report + 0x1A0, hwid, sizeof(hwid));
	/* the VCEK's TCB: fmc 0, bl 0, tee 0, snp 0, microcode 9 */
	static const uint8_t tcb[8] = {0, 0, 0, 0, 0, 0, 0, 9};
	memcpy(g.report + 0x180, tcb, 8);
	struct veil_snp_report r;
	parse_ok(g.report, g.rn, &r);
	assert_int_equal(r.product, VEIL_SNP_PRODUCT_TURIN);
	assert_refused(veil_snp_verify(&r, key, kn, NULL, AT, NULL, why, sizeof(why)),
		       "report signature");
	g.report[0x180] = 1; /* byte 0: Turin's fmc_spl */
	parse_ok(g.report, g.rn, &r);
	assert_refused(veil_snp_verify(&r, key, kn, NULL, AT, NULL, why, sizeof(why)),
		       "reported TCB fmc_spl 1 != VCEK's 0");
	g.report[0x180] = 0;
	g.report[0x183] = 2; /* byte 3: Turin's snp_spl (reserved in Milan's layout) */
	parse_ok(g.report, g.rn, &r);
	assert_refused(veil_snp_verify(&r, key, kn, NULL, AT, NULL, why, sizeof(why)),
		       "reported TCB snp_spl 2 != VCEK's 0");
	g.report[0x183] = 0;
	g.report[0x1A0 + 8] = 1; /* past the 8-byte id: must be zero */
	parse_ok(g.report, g.rn, &r);
	assert_refused(veil_snp_verify(&r, key, kn, NULL, AT, NULL, why, sizeof(why)),
		       "chip_id != VCEK's hwID");
	g.report[0x1A0 + 8] = 0;
	g.report[0x1A0 + 7] ^= 1;
	parse_ok(g.report, g.rn, &r);
	assert_refused(veil_snp_verify(&r, key, kn, NULL, AT, NULL, why, sizeof(why)),
		       "chip_id != VCEK's hwID");
	free(key);
	unload(&g);
}

/* a refusal leaves no OpenSSL errors behind for the thread's TLS code */
static void test_refusals_leave_the_openssl_error_queue_empty(void **state)
{
	(void)state;
	struct loaded l;
	load(&vectors[1], &l);
	ERR_clear_error();
	l.key[l.kn - 3] ^= 0x01;
	assert_refused(check(l.report, l.rn, l.key, l.kn, l.chain, AT, NULL), "VCEK");
	assert_int_equal(ERR_peek_error(), 0);
	assert_refused(check(l.report, l.rn, l.key, 10, l.chain, AT, NULL), "does not parse");
	assert_int_equal(ERR_peek_error(), 0);
	assert_refused(check(l.report, l.rn, l.key, l.kn, "garbage", AT, NULL), "CA bundle");
	assert_int_equal(ERR_peek_error(), 0);
	unload(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_flip_in_the_signed_region_is_refused),
	    cmocka_unit_test(test_flip_in_the_signature_is_refused),
	    cmocka_unit_test(test_truncation_at_every_field_boundary_is_refused),
	    cmocka_unit_test(test_trailing_bytes_only_when_the_caller_says_so),
	    cmocka_unit_test(test_unknown_version_is_refused),
	    cmocka_unit_test(test_signature_algo_other_than_1_is_refused),
	    cmocka_unit_test(test_signer_info_and_reserved_fields),
	    cmocka_unit_test(test_flip_in_the_vcek_is_refused_naming_it),
	    cmocka_unit_test(test_flip_in_ask_or_ark_is_refused_naming_it),
	    cmocka_unit_test(test_self_made_ark_named_like_amds_is_refused),
	    cmocka_unit_test(test_wrong_product_chain_is_refused),
	    cmocka_unit_test(test_vcek_of_another_report_is_refused_naming_the_mismatch),
	    cmocka_unit_test(test_vlek_needs_the_asvk_and_its_validity),
	    cmocka_unit_test(test_validity_of_the_vcek_at_the_given_time),
	    cmocka_unit_test(test_debug_flag_is_policy_bit_19),
	    cmocka_unit_test(test_every_vector_verifies_with_its_chain),
	    cmocka_unit_test(test_reported_tcb_decoded_by_product),
	    cmocka_unit_test(test_report_data_binds_the_x25519_key),
	    cmocka_unit_test(test_turin_vcek_chains_to_the_compiled_in_root),
	    cmocka_unit_test(test_turin_tcb_layout_and_8_byte_hwid),
	    cmocka_unit_test(test_key_cert_as_pem_or_der),
	    cmocka_unit_test(test_refusals_leave_the_openssl_error_queue_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
