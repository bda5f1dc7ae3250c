/* AMD SEV-SNP attestation reports: parser and verifier (see veil/snp.h).
 *
 * ATTESTATION_REPORT (AMD SEV-SNP ABI spec; 0x4A0 bytes, integers
 * little-endian; offsets hex; "mbz": reserved, refused unless zero):
 *   000 version u32          004 guest_svn u32        008 policy u64 (bit 19: debug;
 *       bit 17: reserved, must be one)
 *   010 family_id [16]       020 image_id [16]        030 vmpl u32
 *   034 signature_algo u32 (1: ECDSA P-384 SHA-384)   038 current_tcb u64
 *   040 platform_info u64    048 signer_info u32 (bit 0 author_key_en, bit 1
 *       mask_chip_key, bits 4:2 signing key 0 VCEK 1 VLEK 7 none; 31:5 mbz)
 *   04C mbz [4]              050 report_data [64]     090 measurement [48]
 *   0C0 host_data [32]       0E0 id_key_digest [48]   110 author_key_digest [48]
 *   140 report_id [32]       160 report_id_ma [32]    180 reported_tcb u64
 *   188 v2: mbz [24]; v3+: cpuid_fam_id u8, cpuid_mod_id u8, cpuid_step u8, mbz [21]
 *   1A0 chip_id [64]         1E0 committed_tcb u64
 *   1E8 current_build u8, current_minor u8, current_major u8, mbz u8
 *   1EC committed_build u8, committed_minor u8, committed_major u8, mbz u8
 *   1F0 launch_tcb u64
 *   1F8 v5+: launch_mit_vector u64, current_mit_vector u64; before v5: mbz [16]
 *   208 mbz [152]
 *   2A0 signature: r [72] LE, s [72] LE, mbz [368]   (signed: bytes 000-29F)
 * Version 4 has v3's layout (go-sev-guest and virtee/sev read it so).
 * Check a report's version and signed-region hash with:
 *   od -An -tu4 -N4 report.bin; head -c 672 report.bin | sha384sum */
#include "veil/snp.h"
#include "veil/tls.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "veil/common.h"
#include "veil/cursor.h"

#include "amd_roots.h"

#define KEY_CERT_MAX (64 * 1024)
#define CA_BUNDLE_MAX (256 * 1024)
#define CA_BUNDLE_CERTS_MAX 16

static int refuse(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t cap, const char *fmt, ...)
{
	if (why && cap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return VEIL_EINVAL;
}

const char *veil_snp_product_name(enum veil_snp_product p)
{
	switch (p) {
	case VEIL_SNP_PRODUCT_MILAN:
		return "Milan";
	case VEIL_SNP_PRODUCT_GENOA:
		return "Genoa";
	case VEIL_SNP_PRODUCT_TURIN:
		return "Turin";
	default:
		return "unknown";
	}
}

const char *veil_snp_signer_name(enum veil_snp_signer s)
{
	switch (s) {
	case VEIL_SNP_SIGNER_VCEK:
		return "VCEK";
	case VEIL_SNP_SIGNER_VLEK:
		return "VLEK";
	default:
		return "none";
	}
}

void veil_snp_tcb_decode(uint64_t tcb, enum veil_snp_product p, struct veil_snp_tcb *out)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(tcb >> (8 * i));
	memset(out, 0, sizeof(*out));
	if (p == VEIL_SNP_PRODUCT_TURIN) {
		out->fmc_spl = b[0];
		out->bl_spl = b[1];
		out->tee_spl = b[2];
		out->snp_spl = b[3];
	} else {
		out->bl_spl = b[0];
		out->tee_spl = b[1];
		out->snp_spl = b[6];
	}
	out->microcode_spl = b[7];
}

/* CPUID Fn0000_0001 family/model as the report gives them (v3+); the
 * ranges are AMD's EPYC generations (the ones virtee/sev maps too). */
static enum veil_snp_product product_of_cpuid(uint8_t family, uint8_t model)
{
	if (family == 0x19 && model <= 0x0F)
		return VEIL_SNP_PRODUCT_MILAN;
	if (family == 0x19 &&
	    ((model >= 0x10 && model <= 0x1F) || (model >= 0xA0 && model <= 0xAF)))
		return VEIL_SNP_PRODUCT_GENOA;
	if (family == 0x1A && model <= 0x11)
		return VEIL_SNP_PRODUCT_TURIN;
	return VEIL_SNP_PRODUCT_UNKNOWN;
}

/* n reserved bytes that must be zero; false (cursor failed) otherwise */
static bool reserved_zero(struct veil_cursor *c, size_t n)
{
	const uint8_t *p;
	if (!veil_cur_view(c, n, &p))
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i]) {
			veil_cur_fail(c);
			return false;
		}
	return true;
}

/* The report's fields in order; a refusal names the field and its offset. */
static int parse_fields(struct veil_cursor *c, struct veil_snp_report *r, char *why, size_t cap)
{
	size_t at;
#define FIELD(name, read)                                                                          \
	do {                                                                                       \
		at = veil_cur_pos(c);                                                              \
		if (!(read))                                                                       \
			return refuse(why, cap, "SNP report: %s at 0x%zx is truncated", name, at); \
	} while (0)
#define RESERVED(n)                                                                                \
	do {                                                                                       \
		at = veil_cur_pos(c);                                                              \
		if (!reserved_zero(c, n))                                                          \
			return refuse(why, cap,                                                    \
				      "SNP report: reserved bytes at 0x%zx are not zero", at);     \
	} while (0)

	FIELD("version", veil_cur_le32(c, &r->version));
	if (r->version < 2 || r->version > 5)
		return refuse(why, cap, "SNP report: version %u (veil reads versions 2 to 5)",
			      r->version);
	FIELD("guest_svn", veil_cur_le32(c, &r->guest_svn));
	FIELD("policy", veil_cur_le64(c, &r->policy));
	/* the spec's one must-be-one bit; later bits are left to the caller's
	 * policy check (new spec revisions define them) */
	if (!(r->policy & (1ull << 17)))
		return refuse(why, cap, "SNP report: policy 0x%llx has reserved bit 17 clear",
			      (unsigned long long)r->policy);
	FIELD("family_id", veil_cur_copy(c, r->family_id, sizeof(r->family_id)));
	FIELD("image_id", veil_cur_copy(c, r->image_id, sizeof(r->image_id)));
	FIELD("vmpl", veil_cur_le32(c, &r->vmpl));
	FIELD("signature_algo", veil_cur_le32(c, &r->signature_algo));
	if (r->signature_algo != 1)
		return refuse(why, cap,
			      "SNP report: signature_algo %u (only 1, ECDSA P-384 with SHA-384, "
			      "is defined)",
			      r->signature_algo);
	FIELD("current_tcb", veil_cur_le64(c, &r->current_tcb));
	FIELD("platform_info", veil_cur_le64(c, &r->platform_info));
	FIELD("signer_info", veil_cur_le32(c, &r->signer_info));
	if (r->signer_info >> 5)
		return refuse(why, cap, "SNP report: signer_info 0x%x has reserved bits 31:5 set",
			      r->signer_info);
	unsigned key = (r->signer_info >> 2) & 7;
	if (key != VEIL_SNP_SIGNER_VCEK && key != VEIL_SNP_SIGNER_VLEK &&
	    key != VEIL_SNP_SIGNER_NONE)
		return refuse(why, cap, "SNP report: signer_info signing key %u is reserved", key);
	r->signing_key = (enum veil_snp_signer)key;
	r->author_key_en = r->signer_info & 1;
	r->mask_chip_key = (r->signer_info >> 1) & 1;
	RESERVED(4);
	FIELD("report_data", veil_cur_copy(c, r->report_data, sizeof(r->report_data)));
	FIELD("measurement", veil_cur_copy(c, r->measurement, sizeof(r->measurement)));
	FIELD("host_data", veil_cur_copy(c, r->host_data, sizeof(r->host_data)));
	FIELD("id_key_digest", veil_cur_copy(c, r->id_key_digest, sizeof(r->id_key_digest)));
	FIELD("author_key_digest",
	      veil_cur_copy(c, r->author_key_digest, sizeof(r->author_key_digest)));
	FIELD("report_id", veil_cur_copy(c, r->report_id, sizeof(r->report_id)));
	FIELD("report_id_ma", veil_cur_copy(c, r->report_id_ma, sizeof(r->report_id_ma)));
	FIELD("reported_tcb", veil_cur_le64(c, &r->reported_tcb));
	if (r->version >= 3) {
		FIELD("cpuid_fam_id", veil_cur_u8(c, &r->cpuid_fam_id));
		FIELD("cpuid_mod_id", veil_cur_u8(c, &r->cpuid_mod_id));
		FIELD("cpuid_step", veil_cur_u8(c, &r->cpuid_step));
		RESERVED(21);
		r->product = product_of_cpuid(r->cpuid_fam_id, r->cpuid_mod_id);
	} else {
		RESERVED(24);
	}
	FIELD("chip_id", veil_cur_copy(c, r->chip_id, sizeof(r->chip_id)));
	FIELD("committed_tcb", veil_cur_le64(c, &r->committed_tcb));
	FIELD("current_build", veil_cur_u8(c, &r->current_build));
	FIELD("current_minor", veil_cur_u8(c, &r->current_minor));
	FIELD("current_major", veil_cur_u8(c, &r->current_major));
	RESERVED(1);
	FIELD("committed_build", veil_cur_u8(c, &r->committed_build));
	FIELD("committed_minor", veil_cur_u8(c, &r->committed_minor));
	FIELD("committed_major", veil_cur_u8(c, &r->committed_major));
	RESERVED(1);
	FIELD("launch_tcb", veil_cur_le64(c, &r->launch_tcb));
	if (r->version >= 5) {
		FIELD("launch_mit_vector", veil_cur_le64(c, &r->launch_mit_vector));
		FIELD("current_mit_vector", veil_cur_le64(c, &r->current_mit_vector));
	} else {
		RESERVED(16);
	}
	RESERVED(0x2A0 - 0x208);
	const uint8_t *signed_bytes;
	size_t signed_size;
	if (!veil_cur_span(c, 0, &signed_bytes, &signed_size) ||
	    signed_size != VEIL_SNP_SIGNED_SIZE)
		return refuse(why, cap, "SNP report: internal error: signed region is %zu bytes",
			      signed_size);
	memcpy(r->signed_bytes, signed_bytes, signed_size);
	FIELD("signature r", veil_cur_copy(c, r->sig_r, sizeof(r->sig_r)));
	FIELD("signature s", veil_cur_copy(c, r->sig_s, sizeof(r->sig_s)));
	RESERVED(512 - 144);
	r->debug = (r->policy & VEIL_SNP_POLICY_DEBUG) != 0;
	return 0;
#undef RESERVED
#undef FIELD
}

static int parse(const uint8_t *data, size_t n, bool prefix, struct veil_snp_report *out,
		 size_t *used, char *why, size_t cap)
{
	if (!data || n < VEIL_SNP_REPORT_SIZE || (!prefix && n != VEIL_SNP_REPORT_SIZE))
		return refuse(why, cap, "SNP report: %zu bytes, a report is %d", data ? n : 0,
			      VEIL_SNP_REPORT_SIZE);
	struct veil_cursor c, rc;
	veil_cur_init(&c, data, n);
	veil_cur_sub(&c, VEIL_SNP_REPORT_SIZE, &rc);
	/* large (an 1.9 KiB value): build it in place only on success */
	static const struct veil_snp_report zero;
	struct veil_snp_report r = zero;
	int err = parse_fields(&rc, &r, why, cap);
	if (!err && !veil_cur_done(&rc))
		err = refuse(why, cap, "SNP report: internal error: %zu bytes left",
			     veil_cur_left(&rc));
	if (err)
		return err;
	*out = r;
	if (used)
		*used = VEIL_SNP_REPORT_SIZE;
	return 0;
}

int veil_snp_parse(const uint8_t *r, size_t n, struct veil_snp_report *out, char *why, size_t cap)
{
	return parse(r, n, false, out, NULL, why, cap);
}

int veil_snp_parse_prefix(const uint8_t *r, size_t n, struct veil_snp_report *out, size_t *used,
			  char *why, size_t cap)
{
	return parse(r, n, true, out, used, why, cap);
}

/* ---- certificates ---- */

struct product_roots {
	enum veil_snp_product product;
	const char *ark_pem, *ask_pem, *asvk_pem;
	const unsigned char *ark_sha256;
};

static const struct product_roots amd_roots[] = {
    {VEIL_SNP_PRODUCT_MILAN, AMD_ARK_MILAN_PEM, AMD_ASK_MILAN_PEM, AMD_ASVK_MILAN_PEM,
     AMD_ARK_MILAN_SHA256},
    {VEIL_SNP_PRODUCT_GENOA, AMD_ARK_GENOA_PEM, AMD_ASK_GENOA_PEM, AMD_ASVK_GENOA_PEM,
     AMD_ARK_GENOA_SHA256},
    {VEIL_SNP_PRODUCT_TURIN, AMD_ARK_TURIN_PEM, AMD_ASK_TURIN_PEM, AMD_ASVK_TURIN_PEM,
     AMD_ARK_TURIN_SHA256},
};

static const struct product_roots *roots_of(enum veil_snp_product p)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(amd_roots); i++)
		if (amd_roots[i].product == p)
			return &amd_roots[i];
	return NULL;
}

/* the subject's CN, or "" */
static void subject_cn(const X509 *x, char *cn, size_t cap)
{
	cn[0] = '\0';
	X509_NAME *name = X509_get_subject_name(x);
	int len = name ? X509_NAME_get_text_by_NID(name, NID_commonName, cn, (int)cap) : -1;
	if (len < 0 || (size_t)len >= cap || strlen(cn) != (size_t)len)
		cn[0] = '\0'; /* missing, truncated or with a NUL inside */
}

static void issuer_cn(const X509 *x, char *cn, size_t cap)
{
	cn[0] = '\0';
	X509_NAME *name = X509_get_issuer_name(x);
	int len = name ? X509_NAME_get_text_by_NID(name, NID_commonName, cn, (int)cap) : -1;
	if (len < 0 || (size_t)len >= cap || strlen(cn) != (size_t)len)
		cn[0] = '\0';
}

/* "SEV-Milan" (VCEK issuer) or "SEV-VLEK-Milan" (VLEK issuer) -> product */
static enum veil_snp_product product_of_issuer(const char *cn, enum veil_snp_signer signer)
{
	const char *prefix = signer == VEIL_SNP_SIGNER_VLEK ? "SEV-VLEK-" : "SEV-";
	size_t n = strlen(prefix);
	if (strncmp(cn, prefix, n))
		return VEIL_SNP_PRODUCT_UNKNOWN;
	for (int p = VEIL_SNP_PRODUCT_MILAN; p <= VEIL_SNP_PRODUCT_TURIN; p++)
		if (!strcmp(cn + n, veil_snp_product_name((enum veil_snp_product)p)))
			return (enum veil_snp_product)p;
	return VEIL_SNP_PRODUCT_UNKNOWN;
}

/* A key certificate as DER (exactly n bytes) or PEM (one certificate). */
static X509 *load_key_cert(const uint8_t *data, size_t n)
{
	if (!data || !n || n > KEY_CERT_MAX)
		return NULL;
	static const char pem_begin[] = "-----BEGIN CERTIFICATE-----";
	/* not secret: the PEM header */
	if (n >= sizeof(pem_begin) - 1 && !memcmp(data, pem_begin, sizeof(pem_begin) - 1)) {
		BIO *bio = BIO_new_mem_buf(data, (int)n);
		X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		if (!x)
			ERR_clear_error(); /* see veil_snp_verify */
		return x;
	}
	const unsigned char *p = data;
	X509 *x = d2i_X509(NULL, &p, (long)n);
	if (x && p != data + n) { /* trailing bytes: not the certificate we were given */
		X509_free(x);
		x = NULL;
	}
	if (!x)
		ERR_clear_error();
	return x;
}

/* every certificate of a PEM bundle, at most CA_BUNDLE_CERTS_MAX */
static STACK_OF(X509) * load_bundle(const char *pem, size_t len)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x;
	if (!sk || !bio)
		goto fail;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (sk_X509_num(sk) >= CA_BUNDLE_CERTS_MAX || !sk_X509_push(sk, x)) {
			X509_free(x);
			goto fail;
		}
	}
	BIO_free(bio);
	return sk;
fail:
	BIO_free(bio);
	sk_X509_pop_free(sk, X509_free);
	return NULL;
}

static X509 *find_by_cn(STACK_OF(X509) * sk, const char *want)
{
	char cn[64];
	for (int i = 0; i < sk_X509_num(sk); i++) {
		subject_cn(sk_X509_value(sk, i), cn, sizeof(cn));
		if (!strcmp(cn, want))
			return sk_X509_value(sk, i);
	}
	return NULL;
}

static X509 *pem_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return x;
}

/* The compiled-in certificates, decoded once per process (decoding them at
 * every verification was a fifth of its time: bench/evidence.sh); the
 * caller gets its own reference */
#define ROOT_CACHE 16
static struct {
	const char *pem;
	X509 *x;
} root_cache[ROOT_CACHE];
static pthread_mutex_t root_lock = PTHREAD_MUTEX_INITIALIZER;

static X509 *compiled_cert(const char *pem)
{
	X509 *x = NULL;
	pthread_mutex_lock(&root_lock);
	size_t i = 0;
	for (; i < ROOT_CACHE && root_cache[i].pem; i++)
		if (root_cache[i].pem == pem) {
			x = root_cache[i].x;
			break;
		}
	if (!x && (x = pem_cert(pem)) && i < ROOT_CACHE) {
		root_cache[i].pem = pem;
		root_cache[i].x = x;
	} else if (x && i == ROOT_CACHE) {
		/* not cached (cannot happen with the compiled-in set): the
		 * caller's reference is the only one */
		pthread_mutex_unlock(&root_lock);
		return x;
	}
	if (x && !X509_up_ref(x))
		x = NULL;
	pthread_mutex_unlock(&root_lock);
	return x;
}

static void format_time(const ASN1_TIME *t, char *out, size_t cap)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, cap, "?");
}

static int check_validity(const X509 *x, const char *role, time_t at, char *why, size_t cap)
{
	const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
	char when[32];
	if (!nb || X509_cmp_time(nb, &at) >= 0) {
		format_time(nb, when, sizeof(when));
		return refuse(why, cap, "%s is not valid before %s", role, when);
	}
	if (!na || X509_cmp_time(na, &at) <= 0) {
		format_time(na, when, sizeof(when));
		return refuse(why, cap, "%s expired on %s", role, when);
	}
	return 0;
}

/* x's signature by issuer_key, with RSASSA-PSS as AMD signs */
static bool signed_by_pss(X509 *x, EVP_PKEY *issuer_key)
{
	return X509_get_signature_nid(x) == NID_rsassaPss && issuer_key &&
	       X509_verify(x, issuer_key) == 1;
}

static bool ark_has_fingerprint(X509 *ark, const unsigned char want[static 32])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	return X509_digest(ark, EVP_sha256(), md, &len) && len == 32 &&
	       CRYPTO_memcmp(md, want, 32) == 0;
}

/* The key certificate's chain to AMD's root; *product on success. */
static int verify_chain(X509 *key, enum veil_snp_signer signer, const char *ca_chain_pem, time_t at,
			enum veil_snp_product *product, char *why, size_t cap)
{
	const char *key_name = veil_snp_signer_name(signer);
	const char *ica_role = signer == VEIL_SNP_SIGNER_VLEK ? "ASVK" : "ASK";
	char cn[64], want_cn[64];
	subject_cn(key, cn, sizeof(cn));
	snprintf(want_cn, sizeof(want_cn), "SEV-%s", key_name);
	if (strcmp(cn, want_cn))
		return refuse(
		    why, cap,
		    "the report is signed by a %s (signer_info) but the key certificate's "
		    "CN is '%s', not '%s'",
		    key_name, cn, want_cn);
	issuer_cn(key, cn, sizeof(cn));
	enum veil_snp_product p = product_of_issuer(cn, signer);
	const struct product_roots *roots = roots_of(p);
	if (!roots)
		return refuse(why, cap, "%s issuer '%s' is not an AMD %s of Milan, Genoa or Turin",
			      key_name, cn, ica_role);
	const char *pname = veil_snp_product_name(p);

	int err = VEIL_EINVAL;
	STACK_OF(X509) *bundle = NULL;
	X509 *own_ark = NULL, *own_ica = NULL; /* compiled in: ours to free */
	X509 *ark, *ica;
	char ark_cn[32], ica_cn[32];
	snprintf(ark_cn, sizeof(ark_cn), "ARK-%s", pname);
	snprintf(ica_cn, sizeof(ica_cn), signer == VEIL_SNP_SIGNER_VLEK ? "SEV-VLEK-%s" : "SEV-%s",
		 pname);
	if (ca_chain_pem) {
		size_t len = strnlen(ca_chain_pem, CA_BUNDLE_MAX + 1);
		if (len > CA_BUNDLE_MAX) {
			err = refuse(why, cap, "CA bundle larger than %d bytes", CA_BUNDLE_MAX);
			goto out;
		}
		if (!(bundle = load_bundle(ca_chain_pem, len))) {
			err = refuse(why, cap,
				     "CA bundle is not a PEM list of at most %d certificates",
				     CA_BUNDLE_CERTS_MAX);
			goto out;
		}
		ark = find_by_cn(bundle, ark_cn);
		ica = find_by_cn(bundle, ica_cn);
	} else {
		ark = own_ark = compiled_cert(roots->ark_pem);
		ica = own_ica = compiled_cert(signer == VEIL_SNP_SIGNER_VLEK ? roots->asvk_pem
									     : roots->ask_pem);
	}
	if (!ica) {
		err = refuse(why, cap, "CA bundle has no %s (CN %s) for the %s's product %s",
			     ica_role, ica_cn, key_name, pname);
		goto out;
	}
	if (!ark) {
		err = refuse(why, cap, "CA bundle has no ARK (CN %s)", ark_cn);
		goto out;
	}
	/* ARK: AMD's root of this product, self-signed */
	if (!ark_has_fingerprint(ark, roots->ark_sha256)) {
		err = refuse(why, cap, "ARK is not AMD's %s root (SHA-256 fingerprint differs)",
			     pname);
		goto out;
	}
	if (X509_NAME_cmp(X509_get_subject_name(ark), X509_get_issuer_name(ark)) ||
	    !signed_by_pss(ark, X509_get0_pubkey(ark))) {
		err = refuse(why, cap, "ARK (%s) is not self-signed", ark_cn);
		goto out;
	}
	if (X509_NAME_cmp(X509_get_issuer_name(ica), X509_get_subject_name(ark)) ||
	    !signed_by_pss(ica, X509_get0_pubkey(ark))) {
		err = refuse(why, cap, "%s not signed by ARK (%s not signed by %s)", ica_role,
			     ica_cn, ark_cn);
		goto out;
	}
	if (X509_NAME_cmp(X509_get_issuer_name(key), X509_get_subject_name(ica)) ||
	    !signed_by_pss(key, X509_get0_pubkey(ica))) {
		err = refuse(why, cap, "%s not signed by %s (%s)", key_name, ica_role, ica_cn);
		goto out;
	}
	if ((err = check_validity(ark, "ARK", at, why, cap)) ||
	    (err = check_validity(ica, ica_role, at, why, cap)) ||
	    (err = check_validity(key, key_name, at, why, cap)))
		goto out;
	*product = p;
	err = 0;
out:
	X509_free(own_ark);
	X509_free(own_ica);
	sk_X509_pop_free(bundle, X509_free);
	return err;
}

/* ---- the key certificate's AMD extensions ---- */

#define AMD_OID_TCB "1.3.6.1.4.1.3704.1.3."
#define AMD_OID_HWID "1.3.6.1.4.1.3704.1.4"

/* The extension's value (the extnValue's contents), NULL when absent;
 * *dup set when it occurs more than once. */
static const ASN1_OCTET_STRING *amd_extension(X509 *x, const char *oid, bool *dup)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	if (!obj)
		return NULL;
	int i = X509_get_ext_by_OBJ(x, obj, -1);
	*dup = i >= 0 && X509_get_ext_by_OBJ(x, obj, i) >= 0;
	ASN1_OBJECT_free(obj);
	X509_EXTENSION *ext = i >= 0 ? X509_get_ext(x, i) : NULL;
	return ext ? X509_EXTENSION_get_data(ext) : NULL;
}

/* An SPL extension: a DER INTEGER 0-255 filling the extnValue. */
static int spl_extension(X509 *x, const char *key_name, int minor, const char *spl, uint8_t *out,
			 char *why, size_t cap)
{
	char oid[48];
	snprintf(oid, sizeof(oid), AMD_OID_TCB "%d", minor);
	bool dup;
	const ASN1_OCTET_STRING *v = amd_extension(x, oid, &dup);
	if (!v || dup)
		return refuse(why, cap, "%s has %s %s extension (%s)", key_name,
			      v ? "more than one" : "no", spl, oid);
	const unsigned char *p = ASN1_STRING_get0_data(v), *start = p;
	long len = ASN1_STRING_length(v);
	ASN1_INTEGER *i = d2i_ASN1_INTEGER(NULL, &p, len);
	int64_t value = -1;
	bool ok = i && p == start + len && ASN1_INTEGER_get_int64(&value, i) && value >= 0 &&
		  value <= 255;
	ASN1_INTEGER_free(i);
	if (!ok)
		return refuse(why, cap, "%s's %s extension is not a DER INTEGER 0-255", key_name,
			      spl);
	*out = (uint8_t)value;
	return 0;
}

/* hwID: AMD's KDS puts the raw id bytes in the extnValue, without the DER
 * OCTET STRING header the X.509 profile asks for (go-sev-guest notes the same);
 * a wrapped value is read too. Milan and Genoa ids are 64 bytes, Turin's 8. */
static int hwid_extension(X509 *x, size_t want, uint8_t *out, char *why, size_t cap)
{
	bool dup;
	const ASN1_OCTET_STRING *v = amd_extension(x, AMD_OID_HWID, &dup);
	if (!v || dup)
		return refuse(why, cap, "VCEK has %s hwID extension (" AMD_OID_HWID ")",
			      v ? "more than one" : "no");
	const unsigned char *p = ASN1_STRING_get0_data(v), *start = p;
	long len = ASN1_STRING_length(v);
	if (len == (long)want) {
		memcpy(out, p, want);
		return 0;
	}
	ASN1_OCTET_STRING *inner = d2i_ASN1_OCTET_STRING(NULL, &p, len);
	bool ok = inner && p == start + len && ASN1_STRING_length(inner) == (int)want;
	if (ok)
		memcpy(out, ASN1_STRING_get0_data(inner), want);
	ASN1_OCTET_STRING_free(inner);
	if (!ok)
		return refuse(why, cap, "VCEK's hwID extension is not %zu bytes", want);
	return 0;
}

static int check_extensions(X509 *key, const struct veil_snp_report *r,
			    enum veil_snp_product product, char *why, size_t cap)
{
	const char *key_name = veil_snp_signer_name(r->signing_key);
	struct veil_snp_tcb want, got = {0};
	veil_snp_tcb_decode(r->reported_tcb, product, &want);
	const struct {
		int minor;
		const char *name;
		uint8_t *got;
		uint8_t want;
	} spls[] = {
	    {1, "bl_spl", &got.bl_spl, want.bl_spl},
	    {2, "tee_spl", &got.tee_spl, want.tee_spl},
	    {3, "snp_spl", &got.snp_spl, want.snp_spl},
	    {8, "microcode_spl", &got.microcode_spl, want.microcode_spl},
	    {9, "fmc_spl", &got.fmc_spl, want.fmc_spl},
	};
	int err;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(spls); i++) {
		if (spls[i].minor == 9 && product != VEIL_SNP_PRODUCT_TURIN)
			continue; /* fmc_spl exists from Turin on */
		if ((err = spl_extension(key, key_name, spls[i].minor, spls[i].name, spls[i].got,
					 why, cap)))
			return err;
		if (*spls[i].got != spls[i].want)
			return refuse(why, cap, "reported TCB %s %u != %s's %u", spls[i].name,
				      spls[i].want, key_name, *spls[i].got);
	}
	bool dup;
	if (r->signing_key == VEIL_SNP_SIGNER_VLEK) {
		/* a VLEK is a cloud provider's, not a chip's */
		if (amd_extension(key, AMD_OID_HWID, &dup))
			return refuse(why, cap, "VLEK has a hwID extension");
		return 0;
	}
	/* a masked chip id (signer_info bit 1) is zeros: nothing to compare; the
	 * VCEK's signature still names the chip */
	if (r->mask_chip_key)
		return 0;
	size_t id_size = product == VEIL_SNP_PRODUCT_TURIN ? 8 : 64;
	uint8_t hwid[64];
	if ((err = hwid_extension(key, id_size, hwid, why, cap)))
		return err;
	bool rest_zero = true;
	for (size_t i = id_size; i < sizeof(r->chip_id); i++)
		rest_zero &= r->chip_id[i] == 0;
	if (CRYPTO_memcmp(hwid, r->chip_id, id_size) || !rest_zero)
		return refuse(why, cap,
			      "report's chip_id != VCEK's hwID (the VCEK of another chip)");
	return 0;
}

/* ECDSA P-384 over the signed bytes with SHA-384; r and s little-endian */
static int check_report_signature(X509 *key, const struct veil_snp_report *r, char *why, size_t cap)
{
	const char *key_name = veil_snp_signer_name(r->signing_key);
	EVP_PKEY *pk = X509_get0_pubkey(key);
	char group[32] = "";
	size_t glen = 0;
	if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) || strcmp(group, "secp384r1"))
		return refuse(why, cap, "%s's key is not an ECDSA P-384 key", key_name);
	int err = VEIL_ENOMEM;
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *br = BN_lebin2bn(r->sig_r, sizeof(r->sig_r), NULL);
	BIGNUM *bs = BN_lebin2bn(r->sig_s, sizeof(r->sig_s), NULL);
	unsigned char *der = NULL;
	int der_len = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!sig || !br || !bs || !ctx || !ECDSA_SIG_set0(sig, br, bs))
		goto out;
	br = bs = NULL; /* sig owns them */
	if ((der_len = i2d_ECDSA_SIG(sig, &der)) <= 0)
		goto out;
	if (!EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, pk) ||
	    EVP_DigestVerify(ctx, der, (size_t)der_len, r->signed_bytes, sizeof(r->signed_bytes)) !=
		1) {
		err = refuse(why, cap, "report signature does not verify with the %s", key_name);
		goto out;
	}
	err = 0;
out:
	if (err == VEIL_ENOMEM)
		refuse(why, cap, "out of memory checking the report signature");
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(sig);
	return err;
}

int veil_snp_verify_key_cert(const uint8_t *key_cert, size_t n, enum veil_snp_signer signer,
			     const char *ca_chain_pem, time_t at, enum veil_snp_product *product,
			     char *why, size_t cap)
{
	if (signer != VEIL_SNP_SIGNER_VCEK && signer != VEIL_SNP_SIGNER_VLEK)
		return refuse(why, cap, "no key certificate for signer %s",
			      veil_snp_signer_name(signer));
	X509 *key = load_key_cert(key_cert, n);
	if (!key)
		return refuse(why, cap,
			      "%s certificate does not parse (DER or PEM, at most %d bytes)",
			      veil_snp_signer_name(signer), KEY_CERT_MAX);
	enum veil_snp_product p;
	int err = verify_chain(key, signer, ca_chain_pem, at ? at : time(NULL), &p, why, cap);
	X509_free(key);
	ERR_clear_error(); /* see veil_snp_verify */
	if (!err && product)
		*product = p;
	return err;
}

int veil_snp_verify(const struct veil_snp_report *r, const uint8_t *key_cert, size_t n,
		    const char *ca_chain_pem, time_t at, struct veil_snp_verified *out, char *why,
		    size_t cap)
{
	if (!r)
		return refuse(why, cap, "no SNP report");
	if (r->signing_key != VEIL_SNP_SIGNER_VCEK && r->signing_key != VEIL_SNP_SIGNER_VLEK)
		return refuse(why, cap, "SNP report is not signed (signer_info signing key: none)");
	if (r->signature_algo != 1)
		return refuse(why, cap, "SNP report: signature_algo %u", r->signature_algo);
	const char *key_name = veil_snp_signer_name(r->signing_key);
	X509 *key = load_key_cert(key_cert, n);
	if (!key)
		return refuse(why, cap,
			      "%s certificate does not parse (DER or PEM, at most %d bytes)",
			      key_name, KEY_CERT_MAX);
	enum veil_snp_product p = VEIL_SNP_PRODUCT_UNKNOWN;
	int err =
	    verify_chain(key, r->signing_key, ca_chain_pem, at ? at : time(NULL), &p, why, cap);
	if (err)
		goto out;
	if (r->version >= 3 && r->product != p) {
		err = r->product == VEIL_SNP_PRODUCT_UNKNOWN
			  ? refuse(why, cap,
				   "report's CPUID family 0x%02x model 0x%02x is not Milan, Genoa "
				   "or Turin",
				   r->cpuid_fam_id, r->cpuid_mod_id)
			  : refuse(why, cap, "report's CPUID says %s but the %s is %s's",
				   veil_snp_product_name(r->product), key_name,
				   veil_snp_product_name(p));
		goto out;
	}
	/* the extensions before the signature: a VCEK fetched for another TCB
	 * or chip is then named as such rather than as a bad signature */
	if ((err = check_extensions(key, r, p, why, cap)) ||
	    (err = check_report_signature(key, r, why, cap)))
		goto out;
	if (out) {
		out->product = p;
		out->signer = r->signing_key;
		veil_snp_tcb_decode(r->reported_tcb, p, &out->reported_tcb);
		if (veil_cert_key_hash(key, out->key_hash))
			out->key_hash[0] = '\0';
	}
out:
	X509_free(key);
	/* a refused certificate leaves OpenSSL errors in this thread's queue,
	 * where a later SSL_get_error() on the same thread would find them */
	ERR_clear_error();
	return err;
}
