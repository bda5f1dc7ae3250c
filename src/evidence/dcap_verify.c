/* Intel DCAP quote verification with OpenSSL only (see include/veil/dcap.h):
 * root -> PCK CA -> PCK leaf -> QE report -> attestation key -> quote. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "veil/common.h"
#include "veil/dcap.h"
#include "veil/tls.h"

#include "intel_root.h"

#define SGX_EXT_OID "1.2.840.113741.1.13.1"
#define PCK_CHAIN_LEN 3 /* leaf, PCK Platform/Processor CA, root */

__attribute__((format(printf, 3, 4))) static int refuse(char *why, size_t cap, const char *fmt, ...)
{
	if (why && cap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return VEIL_EINVAL;
}

/* a raw X||Y P-256 point as a public key (NULL if it is not on the curve) */
static EVP_PKEY *p256_key(const uint8_t xy[static 64])
{
	uint8_t point[65];
	point[0] = POINT_CONVERSION_UNCOMPRESSED;
	memcpy(point + 1, xy, 64);
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
	    OSSL_PARAM_construct_end(),
	};
	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* 1 if sig (raw r||s, 32 bytes each) is key's ECDSA-SHA256 signature over
 * data, 0 if not, -1 if OpenSSL failed */
static int ecdsa_p256_verify(EVP_PKEY *key, const uint8_t sig[static 64], const uint8_t *data,
			     size_t size)
{
	int ok = -1, len;
	uint8_t *der = NULL;
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL), *sv = BN_bin2bn(sig + 32, 32, NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!s || !r || !sv || !md || !ECDSA_SIG_set0(s, r, sv))
		goto out;
	r = sv = NULL; /* owned by s now */
	len = i2d_ECDSA_SIG(s, &der);
	if (len <= 0 || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1)
		goto out;
	ok = EVP_DigestVerify(md, der, (size_t)len, data, size) == 1;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(s);
	return ok;
}

static bool is_p256(EVP_PKEY *key)
{
	char group[32];
	size_t len = 0;
	return EVP_PKEY_is_a(key, "EC") &&
	       EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					      &len) == 1 &&
	       strcmp(group, "prime256v1") == 0;
}

/* The compiled-in root, parsed once per process, and only if it is the one
 * its fingerprint names (a damaged copy fails closed, every time). Parsing
 * it per verification was a sixth of the time of one (OpenSSL 3.0's key
 * decoder), as was parsing the quote's copy of it, which is now compared
 * with it byte for byte instead. */
static struct {
	X509 *cert;
	uint8_t *der;
	int der_size;
} intel_root_ca;
static CRYPTO_ONCE intel_root_once = CRYPTO_ONCE_STATIC_INIT;

static void load_intel_root(void)
{
	uint8_t want[32], fp[32];
	unsigned n = 0;
	BIO *b = BIO_new_mem_buf(intel_sgx_root_pem, (int)strlen(intel_sgx_root_pem));
	X509 *root = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	uint8_t *der = NULL;
	int der_size = root ? i2d_X509(root, &der) : -1;
	BIO_free(b);
	if (der_size > 0 && EVP_Digest(der, (size_t)der_size, fp, &n, EVP_sha256(), NULL) &&
	    /* not secret: the fingerprint of the public Intel root */
	    n == 32 && !veil_unhex(INTEL_SGX_ROOT_SHA256, want, 32) && memcmp(fp, want, 32) == 0) {
		intel_root_ca.cert = root;
		intel_root_ca.der = der;
		intel_root_ca.der_size = der_size;
	} else {
		X509_free(root);
		OPENSSL_free(der);
	}
	ERR_clear_error();
}

static int intel_root(X509 **out, char *why, size_t cap)
{
	if (!CRYPTO_THREAD_run_once(&intel_root_once, load_intel_root) || !intel_root_ca.cert)
		return refuse(why, cap,
			      "the compiled-in Intel SGX Root CA does not match its "
			      "fingerprint " INTEL_SGX_ROOT_SHA256);
	*out = intel_root_ca.cert; /* borrowed: lives as long as the process */
	return 0;
}

/* frees and forgets: a later call on the same array frees nothing twice */
static void x509_free_all(X509 **certs, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		X509_free(certs[i]);
		certs[i] = NULL;
	}
}

/* Parsed certificates by their exact DER: the PCK CAs are the same few for
 * every quote and a platform's PCK leaf repeats, and decoding a certificate
 * (its key, through OpenSSL 3.0's decoder) cost as much as checking a
 * signature. The same bytes always parse to the same certificate, so a hit
 * changes nothing but the time; each verification still checks every
 * signature and validity. */
#define CERT_CACHE_SLOTS 8
#define CERT_CACHE_MAX_DER 8192 /* PCK certificates are about 1.2 KiB */
static struct {
	unsigned char *der[CERT_CACHE_SLOTS];
	long size[CERT_CACHE_SLOTS];
	X509 *cert[CERT_CACHE_SLOTS];
	size_t next; /* the slot replaced next (round robin) */
	CRYPTO_RWLOCK *lock;
} cert_cache;
static CRYPTO_ONCE cert_cache_once = CRYPTO_ONCE_STATIC_INIT;

static void cert_cache_init(void)
{
	cert_cache.lock = CRYPTO_THREAD_lock_new();
}

/* the certificate of exactly der[0..size) (NULL if it is not one); the
 * caller frees it */
static X509 *parsed_cert(const unsigned char *der, long size)
{
	bool cache = size <= CERT_CACHE_MAX_DER &&
		     CRYPTO_THREAD_run_once(&cert_cache_once, cert_cache_init) && cert_cache.lock;
	X509 *x = NULL;
	if (cache && CRYPTO_THREAD_read_lock(cert_cache.lock)) {
		for (size_t i = 0; i < CERT_CACHE_SLOTS && !x; i++)
			if (cert_cache.cert[i] && cert_cache.size[i] == size &&
			    /* not secret: public certificates in DER */
			    memcmp(cert_cache.der[i], der, (size_t)size) == 0 &&
			    X509_up_ref(cert_cache.cert[i]))
				x = cert_cache.cert[i];
		CRYPTO_THREAD_unlock(cert_cache.lock);
		if (x)
			return x;
	}
	const unsigned char *p = der;
	x = d2i_X509(NULL, &p, size);
	if (!x || p != der + size) {
		X509_free(x);
		return NULL;
	}
	if (!cache)
		return x;
	/* the cache's own reference and copy; without them, just no caching */
	unsigned char *copy = OPENSSL_memdup(der, (size_t)size);
	if (!copy || !X509_up_ref(x)) {
		OPENSSL_free(copy);
		return x;
	}
	if (!CRYPTO_THREAD_write_lock(cert_cache.lock)) {
		X509_free(x);
		OPENSSL_free(copy);
		return x;
	}
	size_t i = cert_cache.next;
	cert_cache.next = (i + 1) % CERT_CACHE_SLOTS;
	X509_free(cert_cache.cert[i]);
	OPENSSL_free(cert_cache.der[i]);
	cert_cache.cert[i] = x;
	cert_cache.der[i] = copy;
	cert_cache.size[i] = size;
	CRYPTO_THREAD_unlock(cert_cache.lock);
	return x;
}

/* the PEM chain of the quote: exactly leaf, CA, root; the leaf and the CA
 * parsed, the root byte for byte ours (certs[2] is then our root, up-ref'd) */
static int read_chain(const struct veil_dcap_quote *q, X509 *root,
		      X509 *certs[static PCK_CHAIN_LEN], char *why, size_t cap)
{
	if (q->pck_chain_pem_size > INT_MAX)
		return refuse(why, cap, "PCK chain: %zu bytes is too long", q->pck_chain_pem_size);
	BIO *b = BIO_new_mem_buf(q->pck_chain_pem, (int)q->pck_chain_pem_size);
	if (!b)
		return VEIL_ENOMEM;
	char *name[PCK_CHAIN_LEN + 1] = {NULL}, *header[PCK_CHAIN_LEN + 1] = {NULL};
	unsigned char *der[PCK_CHAIN_LEN + 1] = {NULL};
	long size[PCK_CHAIN_LEN + 1] = {0};
	size_t count = 0;
	bool not_cert = false;
	while (count < PCK_CHAIN_LEN + 1 &&
	       PEM_read_bio(b, &name[count], &header[count], &der[count], &size[count]) == 1) {
		not_cert |= strcmp(name[count], PEM_STRING_X509) != 0;
		count++;
	}
	BIO_free(b);
	ERR_clear_error();
	int rc = 0;
	if (count != PCK_CHAIN_LEN) {
		rc = refuse(why, cap,
			    "PCK chain: %s PEM certificates in the certification data (expected "
			    "3: PCK leaf, PCK CA, root)",
			    count > PCK_CHAIN_LEN ? "more than 3"
			    : count == 0          ? "no"
			    : count == 1          ? "1"
						  : "2");
		goto out;
	}
	if (not_cert) {
		rc = refuse(why, cap, "PCK chain: a PEM block is not a CERTIFICATE");
		goto out;
	}
	if (size[2] != intel_root_ca.der_size ||
	    /* not secret: public certificates in DER */
	    memcmp(der[2], intel_root_ca.der, (size_t)size[2])) {
		rc = refuse(why, cap,
			    "PCK chain: the root is not the Intel SGX Root CA (SHA-256 fingerprint "
			    "differs from " INTEL_SGX_ROOT_SHA256 ")");
		goto out;
	}
	for (size_t i = 0; i < 2; i++) {
		certs[i] = parsed_cert(der[i], size[i]);
		if (!certs[i]) {
			rc = refuse(why, cap, "PCK chain: the %s certificate is not DER X.509",
				    i == 0 ? "PCK leaf" : "PCK CA");
			goto out;
		}
	}
	if (!X509_up_ref(root)) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	certs[2] = root;
out:
	if (rc)
		x509_free_all(certs, PCK_CHAIN_LEN);
	for (size_t i = 0; i < count; i++) {
		OPENSSL_free(name[i]);
		OPENSSL_free(header[i]);
		OPENSSL_free(der[i]);
	}
	ERR_clear_error();
	return rc;
}

static int cert_time(const ASN1_TIME *t, long long *out)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return VEIL_EINVAL;
	*out = (long long)timegm(&tm);
	return 0;
}

/* which PCK CA issued the leaf, from the CA's common name */
static int pck_ca_kind(X509 *ca, enum veil_dcap_pck_ca *out, char *why, size_t cap)
{
	char cn[128] = "";
	X509_NAME *name = X509_get_subject_name(ca);
	int len = name ? X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn)) : -1;
	ERR_clear_error();
	if (len > 0 && strcmp(cn, "Intel SGX PCK Platform CA") == 0)
		*out = VEIL_DCAP_PCK_PLATFORM_CA;
	else if (len > 0 && strcmp(cn, "Intel SGX PCK Processor CA") == 0)
		*out = VEIL_DCAP_PCK_PROCESSOR_CA;
	else
		return refuse(why, cap,
			      "PCK chain: the issuing CA \"%s\" is neither the Intel SGX PCK "
			      "Platform CA nor the Processor CA",
			      cn);
	return 0;
}

/* the chain to our root at `at` (X509_verify_cert: signatures, names,
 * validity, CA constraints, path length) */
static int verify_chain(X509 *certs[static PCK_CHAIN_LEN], X509 *root, time_t at, char *why,
			size_t cap)
{
	int rc = VEIL_ENOMEM;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	if (!store || !ctx || !untrusted || !X509_STORE_add_cert(store, root) ||
	    !sk_X509_push(untrusted, certs[1]) ||
	    !X509_STORE_CTX_init(ctx, store, certs[0], untrusted))
		goto out;
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, at);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
	X509_VERIFY_PARAM_set_depth(param, PCK_CHAIN_LEN - 1);
	if (X509_verify_cert(ctx) == 1) {
		/* the path OpenSSL built must be the quote's own: leaf, its CA, root */
		STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
		if (!chain || sk_X509_num(chain) != PCK_CHAIN_LEN ||
		    X509_cmp(sk_X509_value(chain, 1), certs[1]) != 0 ||
		    X509_cmp(sk_X509_value(chain, 2), root) != 0)
			rc = refuse(why, cap,
				    "PCK chain: the certificates are not in the order "
				    "PCK leaf, PCK CA, root");
		else
			rc = 0;
		goto out;
	}
	int err = X509_STORE_CTX_get_error(ctx), depth = X509_STORE_CTX_get_error_depth(ctx);
	static const char *const which[] = {"PCK leaf", "PCK CA", "root"};
	rc = refuse(why, cap, "PCK chain: %s (%s certificate)", X509_verify_cert_error_string(err),
		    depth >= 0 && depth < PCK_CHAIN_LEN ? which[depth] : "a");
out:
	ERR_clear_error();
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

/* The PCK leaf's SGX extension: SEQUENCE OF SEQUENCE { OID, value }, the
 * TCB entry itself a SEQUENCE OF SEQUENCE { OID, INTEGER | OCTET STRING }. */
enum {
	HAVE_PPID = 1 << 0,
	HAVE_PCE_ID = 1 << 1,
	HAVE_FMSPC = 1 << 2,
	HAVE_PCE_SVN = 1 << 3,
	HAVE_CPU_SVN = 1 << 4,
	HAVE_TCB = 1 << 5, /* all 16 components */
};

/* one SEQUENCE { OID, value } element: its OID's last arc under `prefix`
 * and the value; false if it is not that shape */
static bool ext_entry(const ASN1_TYPE *item, const char *prefix, long *arc,
		      STACK_OF(ASN1_TYPE) * *pair, const ASN1_TYPE **value)
{
	if (item->type != V_ASN1_SEQUENCE)
		return false;
	const unsigned char *p = item->value.sequence->data;
	STACK_OF(ASN1_TYPE) *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, item->value.sequence->length);
	if (!seq)
		return false;
	*pair = seq;
	if (sk_ASN1_TYPE_num(seq) != 2 || sk_ASN1_TYPE_value(seq, 0)->type != V_ASN1_OBJECT)
		return false;
	char oid[80];
	int len = OBJ_obj2txt(oid, sizeof(oid), sk_ASN1_TYPE_value(seq, 0)->value.object, 1);
	size_t plen = strlen(prefix);
	if (len <= 0 || (size_t)len >= sizeof(oid) || strncmp(oid, prefix, plen) != 0 ||
	    oid[plen] != '.')
		return false;
	char *end;
	*arc = strtol(oid + plen + 1, &end, 10);
	if (*end != '\0' || end == oid + plen + 1)
		*arc = -1; /* deeper or malformed: not ours, ignored */
	*value = sk_ASN1_TYPE_value(seq, 1);
	return true;
}

static bool octets(const ASN1_TYPE *v, uint8_t *out, size_t size)
{
	if (v->type != V_ASN1_OCTET_STRING || (size_t)v->value.octet_string->length != size)
		return false;
	memcpy(out, v->value.octet_string->data, size);
	return true;
}

static bool small_int(const ASN1_TYPE *v, int64_t max, int64_t *out)
{
	return v->type == V_ASN1_INTEGER && ASN1_INTEGER_get_int64(out, v->value.integer) == 1 &&
	       *out >= 0 && *out <= max;
}

static bool parse_tcb(const ASN1_TYPE *v, struct veil_dcap_pck *pck, unsigned *have)
{
	if (v->type != V_ASN1_SEQUENCE)
		return false;
	const unsigned char *p = v->value.sequence->data;
	STACK_OF(ASN1_TYPE) *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, v->value.sequence->length);
	bool ok = seq != NULL;
	uint32_t comps = 0;
	for (int i = 0; ok && i < sk_ASN1_TYPE_num(seq); i++) {
		STACK_OF(ASN1_TYPE) *pair = NULL;
		const ASN1_TYPE *val;
		long arc;
		int64_t n = 0;
		ok = ext_entry(sk_ASN1_TYPE_value(seq, i), SGX_EXT_OID ".2", &arc, &pair, &val);
		if (ok && arc >= 1 && arc <= 16) {
			ok = !(comps & (1u << arc)) && small_int(val, 255, &n);
			pck->tcb_comp_svn[arc - 1] = (uint8_t)n;
			comps |= 1u << arc;
		} else if (ok && arc == 17) {
			ok = !(*have & HAVE_PCE_SVN) && small_int(val, 65535, &n);
			pck->pce_svn = (uint16_t)n;
			*have |= HAVE_PCE_SVN;
		} else if (ok && arc == 18) {
			ok = !(*have & HAVE_CPU_SVN) && octets(val, pck->cpu_svn, 16);
			*have |= HAVE_CPU_SVN;
		}
		sk_ASN1_TYPE_pop_free(pair, ASN1_TYPE_free);
	}
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	if (ok && comps == 0x1fffe)
		*have |= HAVE_TCB;
	return ok;
}

static int parse_sgx_extension(X509 *leaf, struct veil_dcap_pck *pck, char *why, size_t cap)
{
	ASN1_OBJECT *oid = OBJ_txt2obj(SGX_EXT_OID, 1);
	int idx = oid ? X509_get_ext_by_OBJ(leaf, oid, -1) : -1;
	ASN1_OBJECT_free(oid);
	if (idx < 0) {
		ERR_clear_error();
		return refuse(why, cap, "PCK certificate: no SGX extension (" SGX_EXT_OID ")");
	}
	if (X509_get_ext_by_OBJ(leaf, X509_EXTENSION_get_object(X509_get_ext(leaf, idx)), idx) >= 0)
		return refuse(why, cap, "PCK certificate: two SGX extensions");
	const ASN1_OCTET_STRING *data = X509_EXTENSION_get_data(X509_get_ext(leaf, idx));
	const unsigned char *p = data->data;
	STACK_OF(ASN1_TYPE) *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, data->length);
	bool ok = seq != NULL && p == data->data + data->length;
	unsigned have = 0;
	for (int i = 0; ok && i < sk_ASN1_TYPE_num(seq); i++) {
		STACK_OF(ASN1_TYPE) *pair = NULL;
		const ASN1_TYPE *val;
		long arc;
		ok = ext_entry(sk_ASN1_TYPE_value(seq, i), SGX_EXT_OID, &arc, &pair, &val);
		if (ok && arc == 1) {
			ok = !(have & HAVE_PPID) && octets(val, pck->ppid, 16);
			have |= HAVE_PPID;
		} else if (ok && arc == 2) {
			ok = !(have & (HAVE_TCB | HAVE_PCE_SVN | HAVE_CPU_SVN)) &&
			     parse_tcb(val, pck, &have);
		} else if (ok && arc == 3) {
			ok = !(have & HAVE_PCE_ID) && octets(val, pck->pce_id, 2);
			have |= HAVE_PCE_ID;
		} else if (ok && arc == 4) {
			ok = !(have & HAVE_FMSPC) && octets(val, pck->fmspc, 6);
			have |= HAVE_FMSPC;
		}
		sk_ASN1_TYPE_pop_free(pair, ASN1_TYPE_free);
	}
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	ERR_clear_error();
	if (!ok)
		return refuse(why, cap, "PCK certificate: malformed SGX extension");
	static const struct {
		unsigned bit;
		const char *name;
	} needed[] = {{HAVE_PPID, "PPID"},       {HAVE_TCB, "TCB components 1-16"},
		      {HAVE_PCE_SVN, "PCE SVN"}, {HAVE_CPU_SVN, "CPU SVN"},
		      {HAVE_PCE_ID, "PCE-ID"},   {HAVE_FMSPC, "FMSPC"}};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(needed); i++)
		if (!(have & needed[i].bit))
			return refuse(why, cap, "PCK certificate: the SGX extension has no %s",
				      needed[i].name);
	return 0;
}

static int leaf_facts(X509 *leaf, X509 *ca, struct veil_dcap_pck *pck, char *why, size_t cap)
{
	int rc = pck_ca_kind(ca, &pck->ca, why, cap);
	if (rc)
		return rc;
	const ASN1_INTEGER *serial = X509_get0_serialNumber(leaf);
	if (!serial || serial->length <= 0 || (size_t)serial->length > sizeof(pck->serial))
		return refuse(why, cap, "PCK certificate: serial number is not 1 to 20 bytes");
	memcpy(pck->serial, serial->data, (size_t)serial->length);
	pck->serial_size = (size_t)serial->length;
	if (cert_time(X509_get0_notBefore(leaf), &pck->not_before) ||
	    cert_time(X509_get0_notAfter(leaf), &pck->not_after))
		return refuse(why, cap, "PCK certificate: unreadable validity");
	if (veil_cert_key_hash(leaf, pck->key_hash))
		return refuse(why, cap, "PCK certificate: unreadable public key");
	return parse_sgx_extension(leaf, pck, why, cap);
}

/* Intel's quoting enclaves: the SGX QE (ISVPRODID 1) and the TD QE
 * (ISVPRODID 2), both signed by Intel (MRSIGNER = SHA-256 of Intel's
 * enclave signing key's modulus; as every real quote in tests/vectors and
 * Intel's QE Identity collateral say) */
static int intel_qe(const struct veil_dcap_quote *q, char *why, size_t cap)
{
	static const uint8_t sgx_qe_signer[32] = {0x8c, 0x4f, 0x57, 0x75, 0xd7, 0x96, 0x50, 0x3e,
						  0x96, 0x13, 0x7f, 0x77, 0xc6, 0x8a, 0x82, 0x9a,
						  0x00, 0x56, 0xac, 0x8d, 0xed, 0x70, 0x14, 0x0b,
						  0x08, 0x1b, 0x09, 0x44, 0x90, 0xc5, 0x7b, 0xff};
	static const uint8_t td_qe_signer[32] = {0xdc, 0x9e, 0x2a, 0x7c, 0x6f, 0x94, 0x8f, 0x17,
						 0x47, 0x4e, 0x34, 0xa7, 0xfc, 0x43, 0xed, 0x03,
						 0x0f, 0x7c, 0x15, 0x63, 0xf1, 0xba, 0xbd, 0xdf,
						 0x63, 0x40, 0xc8, 0x2e, 0x0e, 0x54, 0xa8, 0xc5};
	int tdx = q->tee_type == VEIL_DCAP_TEE_TDX;
	const uint8_t *want = tdx ? td_qe_signer : sgx_qe_signer;
	uint16_t prodid = tdx ? 2 : 1;
	if (CRYPTO_memcmp(q->qe_report.mrsigner, want, 32) || q->qe_report.isvprodid != prodid)
		return refuse(why, cap,
			      "QE report: the quote was not made by Intel's %s quoting enclave "
			      "(MRSIGNER or ISVPRODID %u differs)",
			      tdx ? "TD" : "SGX", q->qe_report.isvprodid);
	if (q->qe_report.debug)
		return refuse(why, cap, "QE report: the quoting enclave runs in debug mode");
	return 0;
}

int veil_dcap_verify(const struct veil_dcap_quote *q, time_t at, struct veil_dcap_pck *pck_out,
		     char *why, size_t cap)
{
	X509 *root = NULL, *certs[PCK_CHAIN_LEN] = {NULL};
	EVP_PKEY *att_key = NULL;
	struct veil_dcap_pck pck;
	uint8_t digest[32];
	int rc, ok;
	memset(&pck, 0, sizeof(pck));
	if (!q->pck_chain_pem || !q->qe_report_raw || !q->signed_data)
		return refuse(why, cap, "quote was not parsed");
	if ((rc = intel_root(&root, why, cap)) || (rc = read_chain(q, root, certs, why, cap)) ||
	    (rc = verify_chain(certs, root, at ? at : time(NULL), why, cap)) ||
	    (rc = leaf_facts(certs[0], certs[1], &pck, why, cap)))
		goto out;

	EVP_PKEY *pck_key = X509_get0_pubkey(certs[0]);
	if (!pck_key || !is_p256(pck_key)) {
		rc = refuse(why, cap, "PCK certificate: the key is not ECDSA P-256");
		goto out;
	}
	ok = ecdsa_p256_verify(pck_key, q->qe_report_sig, q->qe_report_raw,
			       VEIL_DCAP_SGX_REPORT_SIZE);
	if (ok != 1) {
		rc = ok < 0 ? VEIL_ENOMEM
			    : refuse(why, cap,
				     "QE report signature does not verify with the "
				     "PCK certificate's key");
		goto out;
	}

	/* the PCE certifies any enclave that holds the provisioning key, which
	 * the host's administrator can launch: only Intel's quoting enclave
	 * (its signer and product, not in debug) vouches for a quote, whether
	 * or not collateral is given (its QE Identity then checks the QE's
	 * version too) */
	if ((rc = intel_qe(q, why, cap)))
		goto out;

	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned dlen = 0;
	ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(md, q->att_key, sizeof(q->att_key)) &&
	     EVP_DigestUpdate(md, q->qe_auth_data, q->qe_auth_data_size) &&
	     EVP_DigestFinal_ex(md, digest, &dlen) && dlen == 32;
	EVP_MD_CTX_free(md);
	if (!ok) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	static const uint8_t zero[32];
	if (CRYPTO_memcmp(digest, q->qe_report.report_data, 32) != 0 ||
	    CRYPTO_memcmp(zero, q->qe_report.report_data + 32, 32) != 0) {
		rc =
		    refuse(why, cap,
			   "QE report does not bind the attestation key (its report data is not "
			   "SHA-256(attestation key || QE authentication data) and 32 zero bytes)");
		goto out;
	}

	att_key = p256_key(q->att_key);
	if (!att_key) {
		rc = refuse(why, cap, "quote signature: the attestation key is not a P-256 point");
		goto out;
	}
	ok = ecdsa_p256_verify(att_key, q->signature, q->signed_data, q->signed_size);
	if (ok != 1) {
		rc = ok < 0 ? VEIL_ENOMEM
			    : refuse(why, cap,
				     "quote signature does not verify with the "
				     "attestation key (header and body)");
		goto out;
	}
	if (pck_out)
		*pck_out = pck;
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(att_key);
	x509_free_all(certs, PCK_CHAIN_LEN);
	return rc;
}
