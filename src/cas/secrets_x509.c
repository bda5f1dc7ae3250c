/* The CAS's X.509/key factory: key generation in the algorithms of the secret
 * schema (veil/secret_schema.h), reading and writing PEM into secure memory,
 * and issuing certificates. It knows nothing of definitions or update rules
 * (secrets_gen.c decides what to make); everything it encodes lands in
 * veil_secure_alloc() memory, private keys through OpenSSL's secure BIO. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "veil/common.h"
#include "veil/secret_schema.h"

#include "secrets_internal.h"

static char *sec_concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > FIELD_MAX || lb > FIELD_MAX)
		return NULL;
	char *p = veil_secure_alloc(la + lb + 1);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	memcpy(p + la, b, lb + 1);
	return p;
}

int secret_ossl_fail(struct veil_diags *d, const char *name, const char *what)
{
	char buf[256] = "";
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	veil_diag(d, "secret '%s': %s failed%s%s", name, what, *buf ? ": " : "", buf);
	return VEIL_EIO;
}

EVP_PKEY *secret_key_generate(const char *alg)
{
	if (!strcmp(alg, "P-256"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!strcmp(alg, "P-384"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	if (!strcmp(alg, "Ed25519"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!strcmp(alg, "RSA-2048"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (!strcmp(alg, "RSA-3072"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	return NULL;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1; /* encrypted PEM is refused, never prompted for */
}

X509 *secret_cert_parse(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, no_password, NULL) : NULL;
	BIO_free(b);
	ERR_clear_error();
	return x;
}

/* A memory BIO's contents as a string in secure memory. */
static char *bio_to_secure(BIO *b)
{
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	if (n <= 0 || !data || (size_t)n > FIELD_MAX)
		return NULL;
	char *s = veil_secure_alloc((size_t)n + 1);
	if (!s)
		return NULL;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

static char *key_to_pem(EVP_PKEY *k)
{
	/* secmem: OpenSSL wipes the BIO's buffer when it grows and on free */
	BIO *b = BIO_new(BIO_s_secmem());
	char *s = NULL;
	if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
		s = bio_to_secure(b);
	BIO_free(b);
	return s;
}

static char *pub_to_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s = NULL;
	if (b && PEM_write_bio_PUBKEY(b, k))
		s = bio_to_secure(b);
	BIO_free(b);
	return s;
}

static char *cert_to_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s = NULL;
	if (b && PEM_write_bio_X509(b, x))
		s = bio_to_secure(b);
	BIO_free(b);
	return s;
}

/* valid_for (veil_valid_for_parse, shared with the manifest and policy
 * checks) as X509_time_adj_ex's days and seconds; NULL: 365 days. */
int secret_valid_for_days(const char *s, long *days, long *secs)
{
	long long total = 365 * 86400LL;
	if (s && veil_valid_for_parse(s, &total))
		return -1;
	*days = (long)(total / 86400);
	*secs = (long)(total % 86400);
	return 0;
}

static int ip_literal(const char *s, unsigned char addr[16], int *len)
{
	if (inet_pton(AF_INET, s, addr) == 1) {
		*len = 4;
		return 1;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*len = 16;
		return 1;
	}
	return 0;
}

/* A SAN entry, built by hand, never through a config string, so an entry
 * cannot smuggle in other names (veil_secret_dns_entry_valid checked it). */
static GENERAL_NAME *san_entry(const char *s)
{
	unsigned char addr[16];
	int len = 0;
	GENERAL_NAME *gn = GENERAL_NAME_new(), *ret = NULL;
	ASN1_STRING *str = NULL;
	if (!gn)
		goto out;
	if (ip_literal(s, addr, &len)) {
		str = ASN1_OCTET_STRING_new();
		if (!str || !ASN1_OCTET_STRING_set(str, addr, len))
			goto out;
		GENERAL_NAME_set0_value(gn, GEN_IPADD, str);
	} else {
		str = ASN1_IA5STRING_new();
		if (!str || !ASN1_STRING_set(str, s, -1))
			goto out;
		GENERAL_NAME_set0_value(gn, GEN_DNS, str);
	}
	str = NULL; /* owned by gn */
	ret = gn;
	gn = NULL;
out:
	ASN1_STRING_free(str);
	GENERAL_NAME_free(gn);
	return ret;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	int ok = e && X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok;
}

static const EVP_MD *sign_md(EVP_PKEY *k)
{
	if (EVP_PKEY_is_a(k, "ED25519"))
		return NULL; /* pure EdDSA */
	if (EVP_PKEY_is_a(k, "EC") && EVP_PKEY_get_bits(k) > 256)
		return EVP_sha384();
	return EVP_sha256();
}

/* A positive serial of 16 random bytes (top bit clear: DER stays 16 bytes). */
static ASN1_INTEGER *random_serial(void)
{
	uint8_t b[16];
	int nonzero = 0;
	while (!nonzero) {
		if (RAND_bytes(b, sizeof(b)) != 1)
			return NULL;
		b[0] &= 0x7f;
		for (size_t i = 0; i < sizeof(b); i++)
			nonzero |= b[i];
	}
	BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
	ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	BN_free(bn);
	return ai;
}

#define OSSL_CHECK(cond, what)                                                                     \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			rc = secret_ossl_fail(d, cs->name, what);                                  \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

int secret_cert_issue(const struct secret_cert_spec *cs, X509 **out, struct veil_diags *d)
{
	int rc = VEIL_EIO;
	X509 *x = X509_new();
	X509_NAME *nm = X509_NAME_new();
	ASN1_INTEGER *serial = random_serial();
	GENERAL_NAMES *gens = NULL;
	X509V3_CTX ctx;

	OSSL_CHECK(x && nm && serial, "allocating the certificate");
	OSSL_CHECK(X509_set_version(x, X509_VERSION_3), "setting the certificate version");
	OSSL_CHECK(X509_set_serialNumber(x, serial), "setting the serial number");
	if (!X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cs->cn, -1,
					-1, 0)) {
		ERR_clear_error();
		veil_diag(d,
			  "secret '%s': the common name is not valid in a certificate (UTF-8, at "
			  "most 64 characters)",
			  cs->name);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (cs->org)
		OSSL_CHECK(X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_UTF8,
						      (const unsigned char *)cs->org, -1, -1, 0),
			   "setting the organisation");
	OSSL_CHECK(X509_set_subject_name(x, nm), "setting the subject");
	OSSL_CHECK(X509_set_issuer_name(x, cs->issuer ? X509_get_subject_name(cs->issuer) : nm),
		   "setting the issuer");
	/* a few minutes back, for clocks that lag the CAS */
	OSSL_CHECK(X509_gmtime_adj(X509_getm_notBefore(x), -300), "setting notBefore");
	OSSL_CHECK(X509_time_adj_ex(X509_getm_notAfter(x), (int)cs->days, cs->secs, NULL),
		   "setting notAfter");
	OSSL_CHECK(X509_set_pubkey(x, cs->key), "setting the public key");

	X509V3_set_ctx(&ctx, cs->issuer ? cs->issuer : x, x, NULL, NULL, 0);
	if (cs->is_ca) {
		OSSL_CHECK(add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE"),
			   "adding basicConstraints");
		OSSL_CHECK(add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"),
			   "adding keyUsage");
	} else {
		OSSL_CHECK(add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE"),
			   "adding basicConstraints");
		OSSL_CHECK(add_ext(x, &ctx, NID_key_usage,
				   EVP_PKEY_is_a(cs->key, "RSA")
				       ? "critical,digitalSignature,keyEncipherment"
				       : "critical,digitalSignature"),
			   "adding keyUsage");
		OSSL_CHECK(add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth"),
			   "adding extendedKeyUsage");
	}
	OSSL_CHECK(add_ext(x, &ctx, NID_subject_key_identifier, "hash"),
		   "adding subjectKeyIdentifier");
	if (cs->issuer)
		OSSL_CHECK(add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"),
			   "adding authorityKeyIdentifier");
	if (cs->dns_count) {
		gens = sk_GENERAL_NAME_new_null();
		OSSL_CHECK(gens, "allocating subjectAltName");
		for (size_t i = 0; i < cs->dns_count; i++) {
			GENERAL_NAME *gn = san_entry(cs->dns[i]);
			OSSL_CHECK(gn, "adding a subjectAltName entry");
			if (!sk_GENERAL_NAME_push(gens, gn)) {
				GENERAL_NAME_free(gn);
				OSSL_CHECK(0, "adding a subjectAltName entry");
			}
		}
		OSSL_CHECK(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_APPEND) ==
			       1,
			   "adding subjectAltName");
	}
	EVP_PKEY *signer = cs->issuer ? cs->issuer_key : cs->key;
	OSSL_CHECK(X509_sign(x, signer, sign_md(signer)) > 0, "signing the certificate");
	*out = x;
	x = NULL;
	rc = 0;
out:
	X509_free(x);
	X509_NAME_free(nm);
	ASN1_INTEGER_free(serial);
	GENERAL_NAMES_free(gens);
	return rc;
}

#undef OSSL_CHECK

int secret_fill_key(struct veil_secret_value *v, EVP_PKEY *k, int with_private)
{
	if (with_private && !(v->key_pem = key_to_pem(k)))
		return VEIL_EIO;
	if (!(v->pub_pem = pub_to_pem(k)))
		return VEIL_EIO;
	return 0;
}

int secret_fill_cert(struct veil_secret_value *v, X509 *x, const struct veil_secret_value *issuer)
{
	if (!(v->cert_pem = cert_to_pem(x)))
		return VEIL_EIO;
	v->chain_pem = sec_concat(v->cert_pem, issuer ? issuer->chain_pem : "");
	return v->chain_pem ? 0 : VEIL_ENOMEM;
}
