/* CAS secrets: generation with the OpenSSL CSPRNG, update rules, the serialised form for encrypted
 * storage, and placeholder rendering.
 *
 * Every byte of secret material (and every string a secret set points to)
 * lives in veil_secure_alloc() memory and is wiped on every path, errors
 * included. Diagnostics name secrets and suffixes, never values. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
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
#include "veil/cursor.h"
#include "veil/secrets.h"

/* Limits: a policy holds at most this many secrets, a field of a serialised
 * set at most FIELD_MAX bytes, a rendered template at most RENDER_MAX. */
#define SECRETS_MAX 4096
#define SECRET_SIZE_MAX 65536
#define FIELD_MAX ((size_t)16 << 20)
#define RENDER_MAX ((size_t)64 << 20)
#define NS_CA_NAME "namespace_ca"
#define NS_CA_DAYS 3650L
#define NONE SIZE_MAX
#define ISSUER_NS (SIZE_MAX - 1)

static void sec_freep(void *pp)
{
	void **p = pp;
	veil_secure_free(*p, 0);
	*p = NULL;
}

/* Growable string in secure memory, with a hard maximum. */
struct sbuf {
	char *p;
	size_t len, cap, max;
};

static int sb_reserve(struct sbuf *b, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return VEIL_ELIMIT;
	size_t need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = veil_secure_alloc(cap);
	if (!p)
		return VEIL_ENOMEM;
	if (b->len)
		memcpy(p, b->p, b->len);
	p[b->len] = '\0';
	veil_secure_free(b->p, 0);
	b->p = p;
	b->cap = cap;
	return 0;
}

static int sb_add(struct sbuf *b, const void *p, size_t n)
{
	int rc = sb_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void sb_free(struct sbuf *b)
{
	veil_secure_free(b->p, 0);
	b->p = NULL;
	b->len = b->cap = 0;
}

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

/* ------------------------------------------------------------------------ */
/* Kinds                                                                    */

/* Fields of a stored value, for the serialised form. */
enum {
	F_BYTES = 1 << 0,
	F_KEY = 1 << 1,
	F_PUB = 1 << 2,
	F_CERT = 1 << 3,
	F_CHAIN = 1 << 4,
};

/* The keys that apply to each kind: veil_secret_keys_misfit (shared with
 * the manifest and policy checks). */
static const struct kind_info {
	const char *kind;
	unsigned fields; /* value fields present, all others absent */
} kinds[] = {
    {"ascii", F_BYTES},
    {"binary", F_BYTES},
    {"explicit", F_BYTES},
    {"private-key", F_KEY | F_PUB},
    {"public-key", F_PUB},
    {"x509-ca", F_KEY | F_PUB | F_CERT | F_CHAIN},
    {"x509", F_KEY | F_PUB | F_CERT | F_CHAIN},
};

static const struct kind_info *kind_find(const char *kind)
{
	for (size_t i = 0; kind && i < VEIL_ARRAY_LEN(kinds); i++)
		if (!strcmp(kinds[i].kind, kind))
			return &kinds[i];
	return NULL;
}

static int is_kind(const char *kind, const char *k)
{
	return kind && !strcmp(kind, k);
}

static int is_bytes_kind(const char *kind)
{
	return is_kind(kind, "ascii") || is_kind(kind, "binary") || is_kind(kind, "explicit");
}

static int is_cert_kind(const char *kind)
{
	return is_kind(kind, "x509") || is_kind(kind, "x509-ca");
}

static int holds_private_key(const char *kind)
{
	return is_kind(kind, "private-key") || is_cert_kind(kind);
}

/* ------------------------------------------------------------------------ */
/* Keys and certificates                                                    */

static const char *const key_algs[] = {"P-256", "P-384", "Ed25519", "RSA-2048", "RSA-3072"};

static int ossl_fail(struct veil_diags *d, const char *name, const char *what)
{
	char buf[256] = "";
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	veil_diag(d, "secret '%s': %s failed%s%s", name, what, *buf ? ": " : "", buf);
	return VEIL_EIO;
}

static EVP_PKEY *key_generate(const char *alg)
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

/* The manifest's algorithm name of a key, NULL for any other key. */
static const char *key_alg_of(EVP_PKEY *k)
{
	if (EVP_PKEY_is_a(k, "ED25519"))
		return "Ed25519";
	if (EVP_PKEY_is_a(k, "RSA")) {
		int bits = EVP_PKEY_get_bits(k);
		return bits == 2048 ? "RSA-2048" : bits == 3072 ? "RSA-3072" : NULL;
	}
	if (EVP_PKEY_is_a(k, "EC")) {
		char g[64];
		if (!EVP_PKEY_get_group_name(k, g, sizeof(g), NULL))
			return NULL;
		if (!strcmp(g, "prime256v1") || !strcmp(g, "P-256"))
			return "P-256";
		if (!strcmp(g, "secp384r1") || !strcmp(g, "P-384"))
			return "P-384";
	}
	return NULL;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1; /* encrypted keys are refused, never prompted for */
}

static EVP_PKEY *key_parse(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL) : NULL;
	BIO_free(b);
	ERR_clear_error();
	return k;
}

static X509 *cert_parse(const char *pem)
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
static int valid_for_days(const char *s, long *days, long *secs)
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

/* A SAN entry: an IP literal or a DNS name (letters, digits, '-', '.', '_',
 * and '*' for wildcards). Built by hand, never through a config string, so
 * an entry cannot smuggle in other names. */
static int dns_entry_valid(const char *s)
{
	unsigned char addr[16];
	int len;
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return 0;
	if (ip_literal(s, addr, &len))
		return 1;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("-._*", *p)))
			return 0;
	return 1;
}

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

struct cert_spec {
	const char *name; /* the secret, for messages */
	const char *cn;
	const char *org; /* NULL: none */
	int is_ca;
	char *const *dns;
	size_t dns_count;
	long days, secs;
	EVP_PKEY *key;
	X509 *issuer; /* NULL: self-signed with key */
	EVP_PKEY *issuer_key;
};

#define OSSL_CHECK(cond, what)                                                                     \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			rc = ossl_fail(d, cs->name, what);                                         \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

static int make_cert(const struct cert_spec *cs, X509 **out, struct veil_diags *d)
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

/* ------------------------------------------------------------------------ */
/* Generation                                                               */

struct gen {
	const struct veil_secret *defs;
	size_t count;
	const struct veil_secret_set *prev;
	const char *namespace_;
	struct veil_diags *d;
	struct veil_secret_value *v; /* secure, n entries */
	size_t n;
	EVP_PKEY **key;  /* per value: its private key, if it has one */
	X509 **cert;     /* per value: its certificate, if it has one */
	size_t *val_of;  /* def -> value index (NONE: imported) */
	size_t *pk_def;  /* def -> def of its private_key (NONE) */
	size_t *iss_def; /* def -> def of its issuer (NONE, ISSUER_NS) */
	size_t *order;   /* defs in generation order */
	size_t norder;
	size_t ns_ca; /* value index of the namespace CA, NONE if not in the set */
};

static size_t def_index(const struct gen *g, const char *name)
{
	for (size_t i = 0; i < g->count; i++)
		if (g->defs[i].name && !strcmp(g->defs[i].name, name))
			return i;
	return NONE;
}

static int is_import(const struct veil_secret *s)
{
	return s->import_namespace != NULL;
}

struct misfit_ctx {
	const struct veil_secret *s;
	struct veil_diags *d;
};

static void report_misfit(const char *key, int needed, void *arg)
{
	struct misfit_ctx *m = arg;
	if (needed)
		veil_diag(m->d, "secret '%s': kind '%s' needs '%s'", m->s->name, m->s->kind, key);
	else
		veil_diag(m->d, "secret '%s': '%s' does not apply to kind '%s'", m->s->name, key,
			  m->s->kind);
}

/* Everything about a definition that does not need the others. */
static int check_def(struct gen *g, size_t i)
{
	const struct veil_secret *s = &g->defs[i];
	struct veil_diags *d = g->d;
	int bad = 0;
	if (!s->name || !veil_valid_secret_name(s->name)) {
		veil_diag(d, "secret #%zu: missing or invalid name (letters, digits, '_', '-')",
			  i + 1);
		return 1;
	}
	if (!strcmp(s->name, NS_CA_NAME)) {
		veil_diag(d, "secret '%s': the name is reserved for the namespace CA", s->name);
		bad = 1;
	}
	for (size_t k = 0; k < i; k++)
		if (g->defs[k].name && !strcmp(g->defs[k].name, s->name)) {
			veil_diag(d, "secret '%s' is defined more than once", s->name);
			bad = 1;
			break;
		}
	if (is_import(s))
		return bad;
	const struct kind_info *ki = kind_find(s->kind);
	if (!ki) {
		veil_diag(d,
			  "secret '%s': unknown kind '%s' (ascii, binary, explicit, private-key, "
			  "public-key, x509, x509-ca)",
			  s->name, s->kind ? s->kind : "(none)");
		return 1;
	}
	struct misfit_ctx mc = {s, d};
	if (veil_secret_keys_misfit(s, report_misfit, &mc))
		bad = 1;
	if (s->has_size && s->value) {
		veil_diag(d, "secret '%s': give either 'size' or 'value', not both", s->name);
		bad = 1;
	}
	if (s->has_size && (s->size < 1 || s->size > SECRET_SIZE_MAX)) {
		veil_diag(d, "secret '%s': size must be between 1 and %d bytes", s->name,
			  SECRET_SIZE_MAX);
		bad = 1;
	}
	size_t start, len;
	if (s->value && is_kind(s->kind, "binary") &&
	    veil_binary_value_span(s->value, &start, &len)) {
		veil_diag(d, "secret '%s': value must be " VEIL_BINARY_VALUE_FORM, s->name);
		bad = 1;
	}
	if (s->value && strlen(s->value) > FIELD_MAX) {
		veil_diag(d, "secret '%s': value longer than %zu bytes", s->name, FIELD_MAX);
		bad = 1;
	}
	if (s->algorithm) {
		int ok = 0;
		for (size_t a = 0; a < VEIL_ARRAY_LEN(key_algs); a++)
			ok |= !strcmp(key_algs[a], s->algorithm);
		if (!ok) {
			veil_diag(d,
				  "secret '%s': unknown algorithm '%s' (P-256, P-384, Ed25519, "
				  "RSA-2048, RSA-3072)",
				  s->name, s->algorithm);
			bad = 1;
		}
	}
	long days, secs;
	if (valid_for_days(s->valid_for, &days, &secs)) {
		veil_diag(d, "secret '%s': valid_for '%s' is not " VEIL_VALID_FOR_FORMS, s->name,
			  s->valid_for);
		bad = 1;
	}
	if (s->common_name && (!*s->common_name || strlen(s->common_name) > 256)) {
		veil_diag(d, "secret '%s': common_name must be 1 to 64 characters", s->name);
		bad = 1;
	}
	for (size_t k = 0; k < s->dns_count; k++)
		if (!s->dns[k] || !dns_entry_valid(s->dns[k])) {
			veil_diag(d,
				  "secret '%s': dns entry #%zu is neither a DNS name (letters, "
				  "digits, '-', '.', '_', '*'; at most 253) nor an IP address",
				  s->name, k + 1);
			bad = 1;
		}
	return bad;
}

/* Finds private_key and issuer references; returns non-zero on an error. */
static int resolve_refs(struct gen *g, size_t i, int *need_ns)
{
	const struct veil_secret *s = &g->defs[i];
	struct veil_diags *d = g->d;
	int bad = 0;
	g->pk_def[i] = NONE;
	g->iss_def[i] = NONE;
	if (s->private_key) {
		size_t j = def_index(g, s->private_key);
		if (!strcmp(s->private_key, NS_CA_NAME)) {
			veil_diag(d, "secret '%s': private_key cannot be the namespace CA's key",
				  s->name);
			bad = 1;
		} else if (j == NONE) {
			veil_diag(d, "secret '%s': private_key '%s' is not defined", s->name,
				  s->private_key);
			bad = 1;
		} else if (is_import(&g->defs[j])) {
			veil_diag(d,
				  "secret '%s': private_key '%s' is imported; only secrets "
				  "generated in this policy can be used",
				  s->name, s->private_key);
			bad = 1;
		} else if (!holds_private_key(g->defs[j].kind)) {
			veil_diag(d,
				  "secret '%s': private_key '%s' is of kind '%s', which holds no "
				  "private key (private-key, x509, x509-ca do)",
				  s->name, s->private_key,
				  g->defs[j].kind ? g->defs[j].kind : "(none)");
			bad = 1;
		} else {
			g->pk_def[i] = j;
		}
	}
	if (s->issuer) {
		size_t j = def_index(g, s->issuer);
		if (!strcmp(s->issuer, NS_CA_NAME)) {
			g->iss_def[i] = ISSUER_NS;
			*need_ns = 1;
		} else if (j == NONE) {
			veil_diag(d, "secret '%s': issuer '%s' is not defined", s->name, s->issuer);
			bad = 1;
		} else if (is_import(&g->defs[j])) {
			veil_diag(d,
				  "secret '%s': issuer '%s' is imported; only x509-ca secrets "
				  "generated in this policy can issue",
				  s->name, s->issuer);
			bad = 1;
		} else if (!is_kind(g->defs[j].kind, "x509-ca")) {
			veil_diag(d, "secret '%s': issuer '%s' is of kind '%s', not x509-ca",
				  s->name, s->issuer, g->defs[j].kind ? g->defs[j].kind : "(none)");
			bad = 1;
		} else {
			g->iss_def[i] = j;
		}
	} else if (is_kind(s->kind, "x509")) {
		g->iss_def[i] = ISSUER_NS;
		*need_ns = 1;
	}
	return bad;
}

/* Orders the definitions so that each comes after its private_key and issuer;
 * refuses cycles before any key is generated. */
static int order_defs(struct gen *g)
{
	int rc = VEIL_ENOMEM;
	size_t want = 0;
	struct veil_buf names;
	unsigned char *done = calloc(g->count + 1, 1);
	veil_buf_init(&names, 4096);
	if (!done)
		goto out;
	for (size_t i = 0; i < g->count; i++)
		want += !is_import(&g->defs[i]);
	while (g->norder < want) {
		size_t progress = 0;
		for (size_t i = 0; i < g->count; i++) {
			size_t pk = g->pk_def[i], is = g->iss_def[i];
			if (is_import(&g->defs[i]) || done[i])
				continue;
			if ((pk != NONE && !done[pk]) || (is < g->count && !done[is]))
				continue;
			done[i] = 1;
			g->order[g->norder++] = i;
			progress++;
		}
		if (!progress)
			break;
	}
	if (g->norder < want) {
		size_t listed = 0;
		for (size_t i = 0; i < g->count && listed < 8; i++)
			if (!is_import(&g->defs[i]) && !done[i])
				veil_buf_printf(&names, "%s'%s'", listed++ ? ", " : "",
						g->defs[i].name);
		veil_diag(g->d, "secrets %s%s: their private_key/issuer references form a cycle",
			  names.failed ? "(many)" : names.data,
			  want - g->norder > 8 ? ", ..." : "");
		rc = VEIL_EINVAL;
		goto out;
	}
	rc = 0;
out:
	free(done);
	veil_buf_free(&names);
	return rc;
}

static int random_ascii(uint8_t *out, size_t n)
{
	char alpha[96];
	size_t na = 0;
	for (int c = 0x21; c <= 0x7e; c++)
		if (!strchr("\"'\\`", c))
			alpha[na++] = (char)c;
	/* reject bytes past the largest multiple of the alphabet size, so that
	 * every character is equally likely */
	const unsigned limit = 256 - 256 % (unsigned)na;
	uint8_t pool[256];
	size_t have = 0, used = 0;
	int rc = 0;
	for (size_t i = 0; i < n;) {
		if (used == have) {
			if (RAND_priv_bytes(pool, sizeof(pool)) != 1) {
				rc = VEIL_EIO;
				goto out;
			}
			have = sizeof(pool);
			used = 0;
		}
		uint8_t b = pool[used++];
		if (b >= limit)
			continue;
		out[i++] = (uint8_t)alpha[b % na];
	}
out:
	OPENSSL_cleanse(pool, sizeof(pool));
	return rc;
}

/* An explicit binary value: hex (veil_binary_value_span, checked in
 * check_def), decoded through a lower-cased copy in secure memory. */
static int binary_value(struct gen *g, const struct veil_secret *s, struct veil_secret_value *v)
{
	size_t start = 0, len = 0;
	if (veil_binary_value_span(s->value, &start, &len))
		return VEIL_EINVAL;
	char *digits = veil_secure_alloc(len + 1);
	v->bytes = veil_secure_alloc(len / 2 + 1);
	int rc = digits && v->bytes ? 0 : VEIL_ENOMEM;
	for (size_t i = 0; !rc && i < len; i++)
		digits[i] = (char)tolower((unsigned char)s->value[start + i]);
	if (!rc && veil_unhex(digits, v->bytes, len / 2))
		rc = VEIL_EINVAL;
	veil_secure_free(digits, len + 1);
	if (!rc)
		v->size = len / 2;
	return rc;
}

static int gen_bytes(struct gen *g, const struct veil_secret *s, const struct veil_secret_value *pv,
		     struct veil_secret_value *v)
{
	int ascii = is_kind(s->kind, "ascii");
	size_t size;
	const uint8_t *src = NULL;
	if (s->value && is_kind(s->kind, "binary"))
		return binary_value(g, s, v);
	if (s->value) {
		size = strlen(s->value);
		src = (const uint8_t *)s->value;
	} else {
		size = s->has_size ? (size_t)s->size : ascii ? 20 : 32;
		if (pv && pv->kind && !strcmp(pv->kind, s->kind) && pv->size == size && pv->bytes)
			src = pv->bytes;
	}
	v->bytes = veil_secure_alloc(size + 1);
	if (!v->bytes)
		return VEIL_ENOMEM;
	v->size = size;
	if (src) {
		if (size)
			memcpy(v->bytes, src, size);
		return 0;
	}
	int ok =
	    ascii ? random_ascii(v->bytes, size) == 0 : RAND_priv_bytes(v->bytes, (int)size) == 1;
	if (!ok)
		return ossl_fail(g->d, s->name, "the random generator");
	return 0;
}

/* The key of a private-key secret, or the own key of a certificate without
 * private_key: the given value, the previous key (migrate, same kind and
 * algorithm) or a fresh one. */
static int own_key(struct gen *g, const struct veil_secret *s, const struct veil_secret_value *pv,
		   EVP_PKEY **out)
{
	const char *alg = s->algorithm ? s->algorithm : "P-256";
	const char *ka = NULL;
	EVP_PKEY *k = NULL;
	int rc = VEIL_EINVAL;
	if (s->value) {
		k = key_parse(s->value);
		ka = k ? key_alg_of(k) : NULL;
		if (!ka) {
			veil_diag(g->d,
				  "secret '%s': the value is not an unencrypted PEM private key of "
				  "a supported algorithm (P-256, P-384, Ed25519, RSA-2048, "
				  "RSA-3072)",
				  s->name);
			goto out;
		}
		if (s->algorithm && strcmp(ka, s->algorithm)) {
			veil_diag(g->d, "secret '%s': the value is a %s key, not %s", s->name, ka,
				  s->algorithm);
			goto out;
		}
	} else if (s->migrate && pv && is_kind(pv->kind, s->kind) && pv->key_pem) {
		if (!(k = key_parse(pv->key_pem))) {
			veil_diag(g->d, "secret '%s': the stored private key cannot be read",
				  s->name);
			goto out;
		}
		ka = key_alg_of(k);
		if (!ka || strcmp(ka, alg)) { /* algorithm changed: a new key */
			EVP_PKEY_free(k);
			k = NULL;
		}
	}
	if (!k && !(k = key_generate(alg))) {
		rc = ossl_fail(g->d, s->name, "key generation");
		goto out;
	}
	*out = k;
	k = NULL;
	rc = 0;
out:
	EVP_PKEY_free(k);
	return rc;
}

static int fill_key(struct veil_secret_value *v, EVP_PKEY *k, int with_private)
{
	if (with_private && !(v->key_pem = key_to_pem(k)))
		return VEIL_EIO;
	if (!(v->pub_pem = pub_to_pem(k)))
		return VEIL_EIO;
	return 0;
}

static int fill_cert(struct veil_secret_value *v, X509 *x, const struct veil_secret_value *issuer)
{
	if (!(v->cert_pem = cert_to_pem(x)))
		return VEIL_EIO;
	v->chain_pem = sec_concat(v->cert_pem, issuer ? issuer->chain_pem : "");
	return v->chain_pem ? 0 : VEIL_ENOMEM;
}

static int gen_cert(struct gen *g, size_t di, const struct veil_secret_value *pv, EVP_PKEY **key,
		    X509 **cert)
{
	const struct veil_secret *s = &g->defs[di];
	struct veil_secret_value *v = &g->v[g->val_of[di]];
	int rc;
	char cn[65];
	size_t ivi = NONE;
	if (g->pk_def[di] != NONE) {
		EVP_PKEY *k = g->key[g->val_of[g->pk_def[di]]];
		const char *ka = key_alg_of(k);
		if (s->algorithm && (!ka || strcmp(ka, s->algorithm))) {
			veil_diag(g->d, "secret '%s': private_key '%s' is a %s key, not %s",
				  s->name, s->private_key, ka ? ka : "unsupported", s->algorithm);
			return VEIL_EINVAL;
		}
		if (!EVP_PKEY_up_ref(k))
			return ossl_fail(g->d, s->name, "referencing the key");
		*key = k;
	} else if ((rc = own_key(g, s, pv, key))) {
		return rc;
	}
	if (g->iss_def[di] == ISSUER_NS)
		ivi = g->ns_ca;
	else if (g->iss_def[di] != NONE)
		ivi = g->val_of[g->iss_def[di]];
	/* A derived common name is cut to the 64 characters X.509 allows; the
	 * SAN carries full DNS names. */
	const char *src = s->common_name ? s->common_name : s->dns_count ? s->dns[0] : s->name;
	if (!s->common_name) {
		snprintf(cn, sizeof(cn), "%s", src);
		src = cn;
	}
	struct cert_spec cs = {.name = s->name,
			       .cn = src,
			       .is_ca = is_kind(s->kind, "x509-ca"),
			       .dns = s->dns,
			       .dns_count = s->dns_count,
			       .key = *key,
			       .issuer = ivi != NONE ? g->cert[ivi] : NULL,
			       .issuer_key = ivi != NONE ? g->key[ivi] : NULL};
	valid_for_days(s->valid_for, &cs.days, &cs.secs); /* checked in check_def */
	if ((rc = make_cert(&cs, cert, g->d)))
		return rc;
	if (fill_key(v, *key, 1) || fill_cert(v, *cert, ivi != NONE ? &g->v[ivi] : NULL))
		return ossl_fail(g->d, s->name, "encoding the certificate");
	return 0;
}

static int gen_one(struct gen *g, size_t di)
{
	const struct veil_secret *s = &g->defs[di];
	size_t vi = g->val_of[di];
	struct veil_secret_value *v = &g->v[vi];
	const struct veil_secret_value *pv = veil_secret_find(g->prev, s->name);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int rc = VEIL_ENOMEM;

	v->name = veil_secure_strdup(s->name);
	v->kind = veil_secure_strdup(s->kind);
	if (!v->name || !v->kind)
		goto out;
	if (is_bytes_kind(s->kind)) {
		rc = gen_bytes(g, s, pv, v);
	} else if (is_kind(s->kind, "private-key")) {
		rc = own_key(g, s, pv, &key);
		if (!rc && fill_key(v, key, 1))
			rc = ossl_fail(g->d, s->name, "encoding the key");
	} else if (is_kind(s->kind, "public-key")) {
		EVP_PKEY *k = g->key[g->val_of[g->pk_def[di]]];
		rc = fill_key(v, k, 0) ? ossl_fail(g->d, s->name, "encoding the public key") : 0;
	} else {
		rc = gen_cert(g, di, pv, &key, &cert);
	}
	if (rc)
		goto out;
	g->key[vi] = key;
	g->cert[vi] = cert;
	key = NULL;
	cert = NULL;
out:
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

static int copy_value(struct veil_secret_value *dst, const struct veil_secret_value *src)
{
	char **dstr[] = {&dst->name,    &dst->kind,     &dst->key_pem,
			 &dst->pub_pem, &dst->cert_pem, &dst->chain_pem};
	const char *sstr[] = {src->name,    src->kind,     src->key_pem,
			      src->pub_pem, src->cert_pem, src->chain_pem};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(dstr); i++)
		if (sstr[i] && !(*dstr[i] = veil_secure_strdup(sstr[i])))
			return VEIL_ENOMEM;
	if (src->bytes) {
		if (!(dst->bytes = veil_secure_alloc(src->size + 1)))
			return VEIL_ENOMEM;
		if (src->size)
			memcpy(dst->bytes, src->bytes, src->size);
		dst->size = src->size;
	}
	return 0;
}

/* The namespace CA: kept unchanged from `previous` (it is the namespace's
 * trust anchor, which clients may have pinned), else a fresh P-256 CA. */
static int gen_ns_ca(struct gen *g)
{
	struct veil_secret_value *v = &g->v[g->ns_ca];
	const struct veil_secret_value *pv = veil_secret_find(g->prev, NS_CA_NAME);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char org[65];
	int rc = VEIL_EINVAL;
	if (pv) {
		if (!is_kind(pv->kind, "x509-ca") || !pv->key_pem || !pv->cert_pem ||
		    !pv->pub_pem || !pv->chain_pem || !(key = key_parse(pv->key_pem)) ||
		    !(cert = cert_parse(pv->cert_pem)) || X509_check_private_key(cert, key) != 1) {
			ERR_clear_error();
			veil_diag(g->d, "secret '" NS_CA_NAME "': the stored namespace CA is "
					"incomplete or unreadable");
			goto out;
		}
		if ((rc = copy_value(v, pv)))
			goto out;
	} else {
		snprintf(org, sizeof(org), "%s", g->namespace_ ? g->namespace_ : "");
		struct cert_spec cs = {.name = NS_CA_NAME,
				       .cn = "veil namespace CA",
				       .org = *org ? org : NULL,
				       .is_ca = 1,
				       .days = NS_CA_DAYS};
		rc = VEIL_ENOMEM;
		if (!(v->name = veil_secure_strdup(NS_CA_NAME)) ||
		    !(v->kind = veil_secure_strdup("x509-ca")))
			goto out;
		if (!(key = key_generate("P-256"))) {
			rc = ossl_fail(g->d, NS_CA_NAME, "key generation");
			goto out;
		}
		cs.key = key;
		if ((rc = make_cert(&cs, &cert, g->d)))
			goto out;
		if (fill_key(v, key, 1) || fill_cert(v, cert, NULL)) {
			rc = ossl_fail(g->d, NS_CA_NAME, "encoding the certificate");
			goto out;
		}
	}
	g->key[g->ns_ca] = key;
	g->cert[g->ns_ca] = cert;
	key = NULL;
	cert = NULL;
	rc = 0;
out:
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

static void value_free(struct veil_secret_value *v)
{
	sec_freep(&v->name);
	sec_freep(&v->kind);
	sec_freep(&v->bytes);
	sec_freep(&v->key_pem);
	sec_freep(&v->pub_pem);
	sec_freep(&v->cert_pem);
	sec_freep(&v->chain_pem);
}

static void values_free(struct veil_secret_value *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		value_free(&v[i]);
	veil_secure_free(v, 0);
}

int veil_secrets_generate(const struct veil_secret *defs, size_t count, const char *namespace_,
			  const struct veil_secret_set *previous, struct veil_secret_set *out,
			  struct veil_diags *d)
{
	struct gen g = {.defs = defs,
			.count = count,
			.prev = previous,
			.namespace_ = namespace_,
			.d = d,
			.ns_ca = NONE};
	int rc = VEIL_EINVAL, bad = 0, need_ns = 0;

	if (!out || (count && !defs)) {
		veil_diag(d, "veil_secrets_generate: missing definitions or output");
		goto out;
	}
	if (count > SECRETS_MAX) {
		veil_diag(d, "a policy may define at most %d secrets (it has %zu)", SECRETS_MAX,
			  count);
		rc = VEIL_ELIMIT;
		goto out;
	}
	rc = VEIL_ENOMEM;
	g.val_of = calloc(count + 1, sizeof(size_t));
	g.pk_def = calloc(count + 1, sizeof(size_t));
	g.iss_def = calloc(count + 1, sizeof(size_t));
	g.order = calloc(count + 1, sizeof(size_t));
	if (!g.val_of || !g.pk_def || !g.iss_def || !g.order)
		goto out;
	for (size_t i = 0; i < count; i++)
		bad |= check_def(&g, i);
	for (size_t i = 0; i < count; i++) {
		g.val_of[i] = NONE;
		if (bad || is_import(&defs[i]))
			continue;
		g.val_of[i] = g.n++;
	}
	int refs_bad = 0;
	for (size_t i = 0; !bad && i < count; i++)
		if (!is_import(&defs[i]))
			refs_bad |= resolve_refs(&g, i, &need_ns);
	bad |= refs_bad;
	rc = VEIL_EINVAL;
	if (bad || (rc = order_defs(&g)))
		goto out;
	if (need_ns || veil_secret_find(previous, NS_CA_NAME))
		g.ns_ca = g.n++;

	rc = VEIL_ENOMEM;
	g.v = veil_secure_alloc((g.n + 1) * sizeof(*g.v));
	g.key = calloc(g.n + 1, sizeof(*g.key));
	g.cert = calloc(g.n + 1, sizeof(*g.cert));
	if (!g.v || !g.key || !g.cert)
		goto out;
	if (g.ns_ca != NONE && (rc = gen_ns_ca(&g)))
		goto out;
	for (size_t k = 0; k < g.norder; k++)
		if ((rc = gen_one(&g, g.order[k])))
			goto out;
	out->v = g.v;
	out->count = g.n;
	g.v = NULL;
	rc = 0;
out:
	for (size_t i = 0; i < g.n && g.key; i++)
		EVP_PKEY_free(g.key[i]);
	for (size_t i = 0; i < g.n && g.cert; i++)
		X509_free(g.cert[i]);
	free(g.key);
	free(g.cert);
	values_free(g.v, g.n);
	free(g.val_of);
	free(g.pk_def);
	free(g.iss_def);
	free(g.order);
	ERR_clear_error();
	if (rc == VEIL_ENOMEM)
		veil_diag(d, "out of memory while generating secrets");
	return rc;
}

void veil_secret_set_free(struct veil_secret_set *set)
{
	if (!set)
		return;
	values_free(set->v, set->count);
	set->v = NULL;
	set->count = 0;
}

int veil_secret_set_append(struct veil_secret_set *set, const char *name,
			   const struct veil_secret_value *src)
{
	if (!set || !name || !src)
		return VEIL_EINVAL;
	struct veil_secret_value *v = veil_secure_alloc((set->count + 2) * sizeof(*v));
	if (!v)
		return VEIL_ENOMEM;
	if (set->count)
		memcpy(v, set->v, set->count * sizeof(*v));
	struct veil_secret_value *n = &v[set->count];
	int rc = copy_value(n, src);
	sec_freep(&n->name);
	if (!rc && !(n->name = veil_secure_strdup(name)))
		rc = VEIL_ENOMEM;
	if (rc) {
		value_free(n);
		veil_secure_free(v, 0);
		return rc;
	}
	veil_secure_free(set->v, 0);
	set->v = v;
	set->count++;
	return 0;
}

const struct veil_secret_value *veil_secret_find(const struct veil_secret_set *set,
						 const char *name)
{
	for (size_t i = 0; set && name && set->v && i < set->count; i++)
		if (set->v[i].name && !strcmp(set->v[i].name, name))
			return &set->v[i];
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Serialised form                                                          */
/*
 *   "VSEC" | version (1 byte) | count (u32 BE) | count x value
 *   value = name kind bytes key_pem pub_pem cert_pem chain_pem
 *   field = length (u32 BE; 0xffffffff: absent) | bytes
 * Strings carry no NUL. The kind decides which fields are present. Nothing
 * may follow the last value. */

#define SER_MAGIC "VSEC"
#define SER_VERSION 1
#define SER_ABSENT 0xffffffffu
#define SER_NFIELDS 7

static void value_fields(const struct veil_secret_value *v, const void *p[SER_NFIELDS],
			 size_t n[SER_NFIELDS])
{
	const char *s[SER_NFIELDS] = {v->name,    v->kind,     NULL,        v->key_pem,
				      v->pub_pem, v->cert_pem, v->chain_pem};
	for (size_t i = 0; i < SER_NFIELDS; i++) {
		p[i] = s[i];
		n[i] = s[i] ? strlen(s[i]) : 0;
	}
	p[2] = v->bytes;
	n[2] = v->bytes ? v->size : 0;
}

static uint8_t *put_u32(uint8_t *w, uint32_t x)
{
	w[0] = (uint8_t)(x >> 24);
	w[1] = (uint8_t)(x >> 16);
	w[2] = (uint8_t)(x >> 8);
	w[3] = (uint8_t)x;
	return w + 4;
}

int veil_secret_set_serialize(const struct veil_secret_set *set, uint8_t **buf, size_t *size)
{
	const void *p[SER_NFIELDS];
	size_t n[SER_NFIELDS];
	if (!set || !buf || !size || (set->count && !set->v))
		return VEIL_EINVAL;
	if (set->count > SECRETS_MAX + 1)
		return VEIL_ELIMIT;
	size_t total = 4 + 1 + 4;
	for (size_t i = 0; i < set->count; i++) {
		if (!set->v[i].name || !set->v[i].kind || (!set->v[i].bytes && set->v[i].size))
			return VEIL_EINVAL;
		value_fields(&set->v[i], p, n);
		for (size_t f = 0; f < SER_NFIELDS; f++) {
			if (n[f] > FIELD_MAX)
				return VEIL_ELIMIT;
			total += 4 + n[f]; /* bounded: 4097 * 7 * (16 MiB + 4) */
		}
	}
	uint8_t *out = veil_secure_alloc(total);
	if (!out)
		return VEIL_ENOMEM;
	uint8_t *w = out;
	memcpy(w, SER_MAGIC, 4);
	w += 4;
	*w++ = SER_VERSION;
	w = put_u32(w, (uint32_t)set->count);
	for (size_t i = 0; i < set->count; i++) {
		value_fields(&set->v[i], p, n);
		for (size_t f = 0; f < SER_NFIELDS; f++) {
			w = put_u32(w, p[f] ? (uint32_t)n[f] : SER_ABSENT);
			if (p[f] && n[f]) {
				memcpy(w, p[f], n[f]);
				w += n[f];
			}
		}
	}
	*buf = out;
	*size = total;
	return 0;
}

/* A bounded reader: every length is checked against what is left. */
/* A field into secure memory (NUL-terminated); *out NULL when absent. */
static int cur_field(struct veil_cursor *c, int is_string, uint8_t **out, size_t *size)
{
	uint32_t n;
	const uint8_t *src;
	*out = NULL;
	*size = 0;
	if (!veil_cur_be32(c, &n))
		return VEIL_EINVAL;
	if (n == SER_ABSENT)
		return 0;
	if (n > FIELD_MAX || !veil_cur_view(c, n, &src) || (is_string && memchr(src, 0, n)))
		return VEIL_EINVAL;
	uint8_t *p = veil_secure_alloc((size_t)n + 1);
	if (!p)
		return VEIL_ENOMEM;
	if (n)
		memcpy(p, src, n);
	p[n] = '\0';
	*out = p;
	*size = n;
	return 0;
}

static int value_read(struct veil_cursor *c, struct veil_secret_value *v)
{
	static const unsigned bit[SER_NFIELDS] = {0, 0, F_BYTES, F_KEY, F_PUB, F_CERT, F_CHAIN};
	uint8_t *f[SER_NFIELDS] = {NULL};
	size_t n[SER_NFIELDS] = {0};
	int rc = 0;
	for (size_t i = 0; i < SER_NFIELDS && !rc; i++)
		rc = cur_field(c, i != 2, &f[i], &n[i]);
	/* owned by v from here on, so that the caller frees a half-read value */
	v->name = (char *)f[0];
	v->kind = (char *)f[1];
	v->bytes = f[2];
	v->size = n[2];
	v->key_pem = (char *)f[3];
	v->pub_pem = (char *)f[4];
	v->cert_pem = (char *)f[5];
	v->chain_pem = (char *)f[6];
	if (rc)
		return rc;
	const struct kind_info *ki = kind_find(v->kind);
	if (!v->name || !veil_valid_secret_name(v->name) || !ki)
		return VEIL_EINVAL;
	for (size_t i = 2; i < SER_NFIELDS; i++)
		if (!f[i] != !(ki->fields & bit[i]))
			return VEIL_EINVAL;
	return 0;
}

int veil_secret_set_deserialize(const uint8_t *buf, size_t size, struct veil_secret_set *out)
{
	struct veil_cursor c;
	struct veil_secret_value *v = NULL;
	uint32_t count = 0;
	size_t got = 0;
	int rc = VEIL_EINVAL;
	static const uint8_t version = SER_VERSION;
	veil_cur_init(&c, buf, size);
	if (!out || !veil_cur_expect(&c, SER_MAGIC, 4) || !veil_cur_expect(&c, &version, 1) ||
	    !veil_cur_be32(&c, &count) || count > SECRETS_MAX + 1 ||
	    count > veil_cur_left(&c) / (4 * SER_NFIELDS))
		goto out;
	rc = VEIL_ENOMEM;
	if (!(v = veil_secure_alloc(((size_t)count + 1) * sizeof(*v))))
		goto out;
	for (; got < count; got++) {
		/* count first: a half-read value is freed with the others */
		if ((rc = value_read(&c, &v[got]))) {
			got++;
			goto out;
		}
		for (size_t k = 0; k < got; k++)
			if (!strcmp(v[k].name, v[got].name)) {
				rc = VEIL_EINVAL;
				got++;
				goto out;
			}
	}
	rc = VEIL_EINVAL;
	if (!veil_cur_done(&c))
		goto out;
	out->v = v;
	out->count = count;
	v = NULL;
	rc = 0;
out:
	values_free(v, got);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                */

enum render_as { R_TEXT, R_HEX, R_B64, R_B64URL, R_KEY, R_PUB, R_CERT, R_CHAIN };

struct render_ctx {
	const char *in;
	const struct veil_secret_set *set;
	struct sbuf out;
	size_t pos; /* end of the last placeholder seen */
	struct veil_diags *d;
	int rc;
};

/* What a suffix renders for a kind; -1 with *fits set when it does not fit. */
static int render_choice(const char *kind, const char *suffix, const char **fits)
{
	int bytes = is_bytes_kind(kind), cert = is_cert_kind(kind);
	int priv = holds_private_key(kind), pub = priv || is_kind(kind, "public-key");
	if (!*suffix || !strcmp(suffix, "pem")) {
		if (bytes && *suffix) {
			*fits = "private-key, public-key, x509, x509-ca";
			return -1;
		}
		if (bytes)
			return is_kind(kind, "binary") ? R_HEX : R_TEXT;
		if (cert)
			return R_CERT;
		if (is_kind(kind, "private-key"))
			return R_KEY;
		if (pub)
			return R_PUB;
		*fits = "no kind: the secret's kind is unknown";
		return -1;
	}
	if (!strcmp(suffix, "hex") || !strcmp(suffix, "base64") || !strcmp(suffix, "base64url")) {
		*fits = "ascii, binary, explicit";
		if (!bytes)
			return -1;
		return !strcmp(suffix, "hex")      ? R_HEX
		       : !strcmp(suffix, "base64") ? R_B64
						   : R_B64URL;
	}
	if (!strcmp(suffix, "crt") || !strcmp(suffix, "cert") || !strcmp(suffix, "chain")) {
		*fits = "x509, x509-ca";
		if (!cert)
			return -1;
		return !strcmp(suffix, "chain") ? R_CHAIN : R_CERT;
	}
	if (!strcmp(suffix, "key") || !strcmp(suffix, "privatekey")) {
		*fits = "private-key, x509, x509-ca";
		return priv ? R_KEY : -1;
	}
	if (!strcmp(suffix, "publickey")) {
		*fits = "private-key, public-key, x509, x509-ca";
		return pub ? R_PUB : -1;
	}
	*fits = "no kind";
	return -1;
}

static int sb_hex(struct sbuf *b, const uint8_t *p, size_t n)
{
	if (n > RENDER_MAX / 2)
		return VEIL_ELIMIT;
	int rc = sb_reserve(b, 2 * n);
	if (rc)
		return rc;
	if (n)
		veil_hex(p, n, b->p + b->len);
	b->len += 2 * n;
	b->p[b->len] = '\0';
	return 0;
}

static int sb_base64(struct sbuf *b, const uint8_t *p, size_t n, int url)
{
	enum { CHUNK = 3 * 256 }; /* a multiple of 3: padding only at the end */
	unsigned char tmp[4 * (CHUNK / 3) + 1];
	int rc = 0;
	while (n && !rc) {
		size_t c = n < CHUNK ? n : CHUNK;
		int len = EVP_EncodeBlock(tmp, p, (int)c);
		if (url) {
			for (int i = 0; i < len; i++)
				tmp[i] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : tmp[i];
			while (len > 0 && tmp[len - 1] == '=')
				len--;
		}
		rc = len < 0 ? VEIL_EIO : sb_add(b, tmp, (size_t)len);
		p += c;
		n -= c;
	}
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return rc;
}

static const char *const render_field_names[] = {[R_KEY] = "private key",
						 [R_PUB] = "public key",
						 [R_CERT] = "certificate",
						 [R_CHAIN] = "certificate chain"};

/* SCONE's :chain: the certificates of the issuers, the direct issuer first,
 * up to the root, without the certificate itself; a self-signed certificate
 * is its own issuer (SCONE's flask/redis tutorial hands out
 * $$SCONE::redis_ca_cert.chain$$ as the CA file). chain_pem, as stored, is
 * the certificate followed by its issuers. NULL if it is not. */
static const char *issuer_chain(const struct veil_secret_value *v)
{
	size_t n = v->cert_pem ? strlen(v->cert_pem) : 0;
	if (!v->chain_pem || !n || strncmp(v->chain_pem, v->cert_pem, n))
		return NULL;
	return v->chain_pem[n] ? v->chain_pem + n : v->cert_pem;
}

static int render_one(const struct veil_placeholder *ph, void *arg)
{
	struct render_ctx *r = arg;
	const char *fits = "";
	int plen = (int)(ph->end - ph->start);
	const char *ptext = r->in + ph->start;
	int rc = 0;

	if ((rc = sb_add(&r->out, r->in + r->pos, ph->start - r->pos)))
		return rc;
	r->pos = ph->end;
	const struct veil_secret_value *v = veil_secret_find(r->set, ph->name);
	if (!v) {
		veil_diag(r->d, "secret placeholder '%.*s': unknown secret '%s'", plen, ptext,
			  ph->name);
		r->rc = VEIL_EINVAL;
		return 0;
	}
	int as = render_choice(v->kind, ph->suffix, &fits);
	if (as < 0) {
		veil_diag(r->d,
			  "secret placeholder '%.*s': suffix '%s' does not fit secret '%s' of "
			  "kind '%s' (it fits %s)",
			  plen, ptext, *ph->suffix ? ph->suffix : "(none)", ph->name,
			  v->kind ? v->kind : "(none)", fits);
		r->rc = VEIL_EINVAL;
		return 0;
	}
	const char *pem = as == R_KEY     ? v->key_pem
			  : as == R_PUB   ? v->pub_pem
			  : as == R_CERT  ? v->cert_pem
			  : as == R_CHAIN ? issuer_chain(v)
					  : NULL;
	if (as >= R_KEY && !pem) {
		veil_diag(r->d, "secret placeholder '%.*s': secret '%s' has no %s", plen, ptext,
			  ph->name, render_field_names[as]);
		r->rc = VEIL_EINVAL;
		return 0;
	}
	if (as < R_KEY && !v->bytes) {
		veil_diag(r->d, "secret placeholder '%.*s': secret '%s' has no value", plen, ptext,
			  ph->name);
		r->rc = VEIL_EINVAL;
		return 0;
	}
	switch (as) {
	case R_TEXT:
		rc = sb_add(&r->out, v->bytes, v->size);
		break;
	case R_HEX:
		rc = sb_hex(&r->out, v->bytes, v->size);
		break;
	case R_B64:
	case R_B64URL:
		rc = sb_base64(&r->out, v->bytes, v->size, as == R_B64URL);
		break;
	default:
		rc = sb_add(&r->out, pem, strlen(pem));
		break;
	}
	return rc;
}

/* For a malformed placeholder: its text when it is short and made only of
 * name/suffix characters (so it quotes nothing but the placeholder). */
static void describe_bad_placeholder(const struct render_ctx *r, const char *why)
{
	const char *p = strstr(r->in + r->pos, "$$SCONE::");
	const char *close = p ? strstr(p + 9, "$$") : NULL;
	size_t off = p ? (size_t)(p - r->in) : r->pos;
	int quotable = close && close - p <= 160;
	for (const char *q = p ? p + 9 : NULL; quotable && q < close; q++)
		quotable = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
			   (*q >= '0' && *q <= '9') || (*q && strchr("_-.:", *q));
	if (quotable)
		veil_diag(r->d, "secret placeholder '%.*s' at byte %zu: %s", (int)(close + 2 - p),
			  p, off, why);
	else
		veil_diag(r->d, "secret placeholder at byte %zu: %s", off, why);
}

int veil_secret_render(const char *in, const struct veil_secret_set *set, char **out,
		       struct veil_diags *d)
{
	struct render_ctx r = {.in = in, .set = set, .out = {.max = RENDER_MAX}, .d = d};
	const char *why = NULL;
	int rc = VEIL_EINVAL;
	if (!in || !out) {
		veil_diag(d, "veil_secret_render: missing input or output");
		goto out;
	}
	rc = veil_placeholders(in, render_one, &r, &why);
	if (rc == VEIL_EINVAL && why) {
		describe_bad_placeholder(&r, why);
		goto out;
	}
	if (!rc)
		rc = r.rc;
	if (!rc)
		rc = sb_add(&r.out, in + r.pos, strlen(in + r.pos));
	if (rc == VEIL_ELIMIT)
		veil_diag(d, "rendered text longer than %zu bytes", RENDER_MAX);
	if (rc == VEIL_ENOMEM)
		veil_diag(d, "out of memory while rendering secrets");
	if (rc)
		goto out;
	*out = r.out.p;
	r.out.p = NULL;
out:
	sb_free(&r.out);
	return rc;
}
