/* Generation of a namespace's secrets in the CAS (veil_secrets_generate):
 * checking the definitions against the secret schema (veil/secret_schema.h),
 * ordering them by their private_key and issuer references, the update
 * rules (keep / reissue / new, stated once in update_rule below), and the
 * set's values (find, append, free). Keys and certificates come from the
 * factory (secrets_x509.c). Every byte of a value is secure memory, wiped on
 * every path; diagnostics name secrets and keys, never values. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "veil/common.h"
#include "veil/secret_schema.h"
#include "veil/secrets.h"

#include "secrets_internal.h"

#define NS_CA_DAYS 3650L
#define NONE SIZE_MAX
#define ISSUER_NS (SIZE_MAX - 1)

static void sec_freep(void *pp)
{
	void **p = pp;
	veil_secure_free(*p, 0);
	*p = NULL;
}

struct gen {
	const struct veil_secret *defs;
	size_t count;
	const struct veil_secret_set *prev;
	const char *namespace_;
	struct veil_diags *d;
	const struct veil_secret_kind_info **kind; /* per def, NULL: imported */
	struct veil_secret_value *v;               /* secure, n entries */
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
	if (!strcmp(s->name, VEIL_NAMESPACE_CA_NAME)) {
		veil_diag(
		    d,
		    "secret '%s': the name is reserved for the namespace CA" VEIL_NAMESPACE_CA_WHY,
		    s->name);
		bad = 1;
	}
	for (size_t j = 0; j < i; j++)
		if (g->defs[j].name && !strcmp(g->defs[j].name, s->name)) {
			veil_diag(d, "secret '%s' is defined more than once", s->name);
			bad = 1;
			break;
		}
	if (is_import(s))
		return bad;
	const struct veil_secret_kind_info *k = veil_secret_kind_find(s->kind);
	if (!k) {
		veil_diag(d, "secret '%s': unknown kind '%s' (" VEIL_SECRET_KINDS ")", s->name,
			  s->kind ? s->kind : "(none)");
		return 1;
	}
	g->kind[i] = k;
	struct misfit_ctx mc = {s, d};
	if (veil_secret_keys_misfit(s, report_misfit, &mc))
		bad = 1;
	if (s->has_size && s->value) {
		veil_diag(d, "secret '%s': give either 'size' or 'value', not both", s->name);
		bad = 1;
	}
	if (s->has_size && (s->size < 1 || s->size > VEIL_SECRET_SIZE_MAX)) {
		veil_diag(d, "secret '%s': size must be between 1 and %d bytes", s->name,
			  VEIL_SECRET_SIZE_MAX);
		bad = 1;
	}
	size_t start, len;
	if (s->value && k->kind == VEIL_SECRET_BINARY &&
	    veil_binary_value_span(s->value, &start, &len)) {
		veil_diag(d, "secret '%s': value must be " VEIL_BINARY_VALUE_FORM, s->name);
		bad = 1;
	}
	if (s->value && strlen(s->value) > FIELD_MAX) {
		veil_diag(d, "secret '%s': value longer than %zu bytes", s->name, FIELD_MAX);
		bad = 1;
	}
	if (s->algorithm && !veil_secret_algorithm_valid(s->algorithm)) {
		veil_diag(d, "secret '%s': unknown algorithm '%s' (" VEIL_SECRET_ALGORITHMS ")",
			  s->name, s->algorithm);
		bad = 1;
	}
	char why[512];
	if (k->kind == VEIL_SECRET_PRIVATE_KEY && s->value &&
	    veil_secret_key_value_check(
		s->value, veil_secret_algorithm_valid(s->algorithm) ? s->algorithm : NULL, why,
		sizeof(why))) {
		veil_diag(d, "secret '%s': %s", s->name, why);
		bad = 1;
	}
	long days, secs;
	if (secret_valid_for_days(s->valid_for, &days, &secs)) {
		veil_diag(d, "secret '%s': valid_for '%s' is not " VEIL_VALID_FOR_FORMS, s->name,
			  s->valid_for);
		bad = 1;
	}
	if (s->common_name && !veil_secret_common_name_valid(s->common_name)) {
		veil_diag(d, "secret '%s': common_name must be " VEIL_SECRET_COMMON_NAME_FORM,
			  s->name);
		bad = 1;
	}
	for (size_t n = 0; n < s->dns_count; n++)
		if (!veil_secret_dns_entry_valid(s->dns[n])) {
			veil_diag(d, "secret '%s': dns entry #%zu is " VEIL_SECRET_DNS_FORM,
				  s->name, n + 1);
			bad = 1;
		}
	return bad;
}

/* Finds private_key and issuer references (veil_secret_ref_resolve, as the
 * policy validator does); returns non-zero on an error. */
static int resolve_refs(struct gen *g, size_t i, int *need_ns)
{
	size_t *slot[2] = {&g->pk_def[i], &g->iss_def[i]};
	char why[512];
	int bad = 0;
	for (int issuer = 0; issuer < 2; issuer++) {
		size_t t;
		if (veil_secret_ref_resolve(g->defs, g->count, i, issuer, &t, why, sizeof(why))) {
			veil_diag(g->d, "secret '%s': %s", g->defs[i].name, why);
			bad = 1;
			t = VEIL_SECRET_REF_NONE;
		}
		if (t == VEIL_SECRET_REF_NAMESPACE_CA) {
			t = ISSUER_NS;
			*need_ns = 1;
		}
		*slot[issuer] = t == VEIL_SECRET_REF_NONE ? NONE : t;
	}
	return bad;
}

/* Orders the definitions so that each comes after its private_key and issuer
 * (veil_secret_order); refuses cycles before any key is generated. */
static int order_defs(struct gen *g)
{
	char why[2048];
	int rc = veil_secret_order(g->defs, g->count, g->order, &g->norder, why, sizeof(why));
	if (rc == VEIL_EINVAL)
		veil_diag(g->d, "secrets %s", why);
	return rc;
}

/* ---- Update rules ----
 *
 * What an update (veil_secrets_generate with `previous`, the namespace's set
 * before the update) does to each secret, stated once (docs/cas.md,
 * "Secrets"); pv is the previous value of the same name:
 *
 *   kind                 KEEP (pv unchanged) when              else
 *   ascii, binary        no value is written; pv is of the     NEW: random
 *                        same kind and size
 *   explicit             never                                 NEW: the definition's value
 *   private-key          no value is written; migrate: true;   NEW: a fresh key, or the
 *                        pv is of the same kind, its key of    definition's value
 *                        the algorithm asked for
 *   public-key           never                                 NEW: read from its
 *                                                              private_key's key (the same
 *                                                              when that key is kept)
 *   x509, x509-ca        never: REISSUE (a new certificate     NEW: a fresh key and
 *                        for a kept key) with private_key, or  certificate
 *                        when the private-key rule keeps
 *                        their own key
 *   the namespace CA     always (clients may pin it: gen_ns_ca)
 *
 * prev_key is pv's private key, read when the private-key rule may keep it
 * (read_previous_key); the algorithm is the definition's, P-256 without. */
enum update_rule { UPDATE_NEW, UPDATE_KEEP, UPDATE_REISSUE };

/* the size of a generated byte secret: size, else the kind's default */
static size_t bytes_size(const struct veil_secret *s, const struct veil_secret_kind_info *k)
{
	return s->has_size ? (size_t)s->size : k->default_size;
}

static const char *key_algorithm(const struct veil_secret *s)
{
	return s->algorithm ? s->algorithm : "P-256";
}

static int same_kind(const struct veil_secret_kind_info *k, const struct veil_secret_value *pv)
{
	return pv && veil_secret_kind_find(pv->kind) == k;
}

static enum update_rule update_rule(const struct veil_secret *s,
				    const struct veil_secret_kind_info *k,
				    const struct veil_secret_value *pv, EVP_PKEY *prev_key)
{
	const char *pa = prev_key ? veil_secret_key_algorithm(prev_key) : NULL;
	int key_kept =
	    !s->value && s->migrate && same_kind(k, pv) && pa && !strcmp(pa, key_algorithm(s));
	switch (k->kind) {
	case VEIL_SECRET_ASCII:
	case VEIL_SECRET_BINARY:
		return !s->value && same_kind(k, pv) && pv->bytes && pv->size == bytes_size(s, k)
			   ? UPDATE_KEEP
			   : UPDATE_NEW;
	case VEIL_SECRET_PRIVATE_KEY:
		return key_kept ? UPDATE_KEEP : UPDATE_NEW;
	case VEIL_SECRET_X509:
	case VEIL_SECRET_X509_CA:
		return s->private_key || key_kept ? UPDATE_REISSUE : UPDATE_NEW;
	case VEIL_SECRET_EXPLICIT:
	case VEIL_SECRET_PUBLIC_KEY:
	case VEIL_SECRET_KIND_UNKNOWN:
		break;
	}
	return UPDATE_NEW;
}

/* pv's private key when the private-key rule may keep it: a private-key
 * secret, or a certificate with a key of its own (no private_key), without
 * a value, with migrate: true, pv of the same kind. A stored key that does
 * not read is an error, never silently replaced. */
static int read_previous_key(struct gen *g, const struct veil_secret *s,
			     const struct veil_secret_kind_info *k,
			     const struct veil_secret_value *pv, EVP_PKEY **out)
{
	*out = NULL;
	int own_key = k->kind == VEIL_SECRET_PRIVATE_KEY ||
		      ((k->outputs & VEIL_SOUT_CERT) && !s->private_key);
	if (!own_key || s->value || !s->migrate || !same_kind(k, pv) || !pv->key_pem)
		return 0;
	if (!(*out = veil_secret_key_parse(pv->key_pem))) {
		veil_diag(g->d, "secret '%s': the stored private key cannot be read", s->name);
		return VEIL_EINVAL;
	}
	return 0;
}

/* ---- Making each kind ---- */

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
static int binary_value(const struct veil_secret *s, struct veil_secret_value *v)
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

/* ascii, binary, explicit: the definition's value, kept (the previous
 * value, `kept`) or random bytes of the size */
static int gen_bytes(struct gen *g, const struct veil_secret *s,
		     const struct veil_secret_kind_info *k, const struct veil_secret_value *kept,
		     struct veil_secret_value *v)
{
	size_t size;
	const uint8_t *src = NULL;
	if (s->value && k->kind == VEIL_SECRET_BINARY)
		return binary_value(s, v);
	if (s->value) {
		size = strlen(s->value);
		src = (const uint8_t *)s->value;
	} else {
		size = bytes_size(s, k);
		src = kept ? kept->bytes : NULL;
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
	int ok = k->kind == VEIL_SECRET_ASCII ? random_ascii(v->bytes, size) == 0
					      : RAND_priv_bytes(v->bytes, (int)size) == 1;
	if (!ok)
		return secret_ossl_fail(g->d, s->name, "the random generator");
	return 0;
}

/* The key of a private-key secret, or the own key of a certificate without
 * private_key: the given value, the kept key (*kept, taken over) or a fresh
 * one. */
static int own_key(struct gen *g, const struct veil_secret *s, EVP_PKEY **kept, EVP_PKEY **out)
{
	EVP_PKEY *k = NULL;
	int rc = VEIL_EINVAL;
	if (s->value) {
		/* veil_secret_key_value_check passed in check_def */
		if (!(k = veil_secret_key_parse(s->value)))
			goto out;
	} else if (kept && *kept) {
		k = *kept;
		*kept = NULL;
	}
	if (!k && !(k = secret_key_generate(key_algorithm(s)))) {
		rc = secret_ossl_fail(g->d, s->name, "key generation");
		goto out;
	}
	*out = k;
	k = NULL;
	rc = 0;
out:
	EVP_PKEY_free(k);
	return rc;
}

/* x509, x509-ca: the key (private_key's, kept or new), a new certificate
 * from the issuer (the named CA, the namespace CA, or itself) */
static int gen_cert(struct gen *g, size_t di, EVP_PKEY **kept, EVP_PKEY **key, X509 **cert)
{
	const struct veil_secret *s = &g->defs[di];
	struct veil_secret_value *v = &g->v[g->val_of[di]];
	int rc;
	char cn[65];
	size_t ivi = NONE;
	if (g->pk_def[di] != NONE) {
		EVP_PKEY *k = g->key[g->val_of[g->pk_def[di]]];
		const char *ka = veil_secret_key_algorithm(k);
		if (s->algorithm && (!ka || strcmp(ka, s->algorithm))) {
			veil_diag(g->d, "secret '%s': private_key '%s' is a %s key, not %s",
				  s->name, s->private_key, ka ? ka : "unsupported", s->algorithm);
			return VEIL_EINVAL;
		}
		if (!EVP_PKEY_up_ref(k))
			return secret_ossl_fail(g->d, s->name, "referencing the key");
		*key = k;
	} else if ((rc = own_key(g, s, kept, key))) {
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
	struct secret_cert_spec cs = {.name = s->name,
				      .cn = src,
				      .is_ca = g->kind[di]->kind == VEIL_SECRET_X509_CA,
				      .dns = s->dns,
				      .dns_count = s->dns_count,
				      .key = *key,
				      .issuer = ivi != NONE ? g->cert[ivi] : NULL,
				      .issuer_key = ivi != NONE ? g->key[ivi] : NULL};
	/* valid_for was checked in check_def */
	VEIL_UNCHECKED(secret_valid_for_days(s->valid_for, &cs.days, &cs.secs));
	if ((rc = secret_cert_issue(&cs, cert, g->d)))
		return rc;
	if (secret_fill_key(v, *key, 1) ||
	    secret_fill_cert(v, *cert, ivi != NONE ? &g->v[ivi] : NULL))
		return secret_ossl_fail(g->d, s->name, "encoding the certificate");
	return 0;
}

static int gen_one(struct gen *g, size_t di)
{
	const struct veil_secret *s = &g->defs[di];
	const struct veil_secret_kind_info *k = g->kind[di];
	size_t vi = g->val_of[di];
	struct veil_secret_value *v = &g->v[vi];
	const struct veil_secret_value *pv = veil_secret_find(g->prev, s->name);
	EVP_PKEY *key = NULL, *prev_key = NULL;
	X509 *cert = NULL;
	int rc = VEIL_ENOMEM;

	v->name = veil_secure_strdup(s->name);
	v->kind = veil_secure_strdup(s->kind);
	if (!v->name || !v->kind)
		goto out;
	if ((rc = read_previous_key(g, s, k, pv, &prev_key)))
		goto out;
	enum update_rule rule = update_rule(s, k, pv, prev_key);
	switch (k->kind) {
	case VEIL_SECRET_ASCII:
	case VEIL_SECRET_BINARY:
	case VEIL_SECRET_EXPLICIT:
		rc = gen_bytes(g, s, k, rule == UPDATE_KEEP ? pv : NULL, v);
		break;
	case VEIL_SECRET_PRIVATE_KEY:
		if (rule != UPDATE_KEEP) {
			EVP_PKEY_free(prev_key);
			prev_key = NULL;
		}
		rc = own_key(g, s, &prev_key, &key);
		if (!rc && secret_fill_key(v, key, 1))
			rc = secret_ossl_fail(g->d, s->name, "encoding the key");
		break;
	case VEIL_SECRET_PUBLIC_KEY:
		rc = secret_fill_key(v, g->key[g->val_of[g->pk_def[di]]], 0)
			 ? secret_ossl_fail(g->d, s->name, "encoding the public key")
			 : 0;
		break;
	case VEIL_SECRET_X509:
	case VEIL_SECRET_X509_CA:
		if (rule != UPDATE_REISSUE) {
			EVP_PKEY_free(prev_key);
			prev_key = NULL;
		}
		rc = gen_cert(g, di, &prev_key, &key, &cert);
		break;
	case VEIL_SECRET_KIND_UNKNOWN:
		rc = VEIL_EINVAL; /* refused in check_def */
		break;
	}
	if (rc)
		goto out;
	g->key[vi] = key;
	g->cert[vi] = cert;
	key = NULL;
	cert = NULL;
out:
	EVP_PKEY_free(prev_key);
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

int secret_value_copy(struct veil_secret_value *dst, const struct veil_secret_value *src)
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
	const struct veil_secret_value *pv = veil_secret_find(g->prev, VEIL_NAMESPACE_CA_NAME);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char org[65];
	int rc = VEIL_EINVAL;
	if (pv) {
		const struct veil_secret_kind_info *pk = veil_secret_kind_find(pv->kind);
		if (!pk || pk->kind != VEIL_SECRET_X509_CA || !pv->key_pem || !pv->cert_pem ||
		    !pv->pub_pem || !pv->chain_pem || !(key = veil_secret_key_parse(pv->key_pem)) ||
		    !(cert = secret_cert_parse(pv->cert_pem)) ||
		    X509_check_private_key(cert, key) != 1) {
			ERR_clear_error();
			veil_diag(g->d,
				  "secret '" VEIL_NAMESPACE_CA_NAME "': the stored namespace CA is "
				  "incomplete or unreadable");
			goto out;
		}
		if ((rc = secret_value_copy(v, pv)))
			goto out;
	} else {
		snprintf(org, sizeof(org), "%s", g->namespace_ ? g->namespace_ : "");
		struct secret_cert_spec cs = {.name = VEIL_NAMESPACE_CA_NAME,
					      .cn = "veil namespace CA",
					      .org = *org ? org : NULL,
					      .is_ca = 1,
					      .days = NS_CA_DAYS};
		rc = VEIL_ENOMEM;
		if (!(v->name = veil_secure_strdup(VEIL_NAMESPACE_CA_NAME)) ||
		    !(v->kind =
			  veil_secure_strdup(veil_secret_kind_get(VEIL_SECRET_X509_CA)->name)))
			goto out;
		if (!(key = secret_key_generate("P-256"))) {
			rc = secret_ossl_fail(g->d, VEIL_NAMESPACE_CA_NAME, "key generation");
			goto out;
		}
		cs.key = key;
		if ((rc = secret_cert_issue(&cs, &cert, g->d)))
			goto out;
		if (secret_fill_key(v, key, 1) || secret_fill_cert(v, cert, NULL)) {
			rc = secret_ossl_fail(g->d, VEIL_NAMESPACE_CA_NAME,
					      "encoding the certificate");
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

void secret_value_free(struct veil_secret_value *v)
{
	sec_freep(&v->name);
	sec_freep(&v->kind);
	sec_freep(&v->bytes);
	sec_freep(&v->key_pem);
	sec_freep(&v->pub_pem);
	sec_freep(&v->cert_pem);
	sec_freep(&v->chain_pem);
}

void secret_values_free(struct veil_secret_value *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		secret_value_free(&v[i]);
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
	g.kind = calloc(count + 1, sizeof(*g.kind));
	if (!g.val_of || !g.pk_def || !g.iss_def || !g.order || !g.kind)
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
	if (need_ns || veil_secret_find(previous, VEIL_NAMESPACE_CA_NAME))
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
	secret_values_free(g.v, g.n);
	free(g.val_of);
	free(g.pk_def);
	free(g.iss_def);
	free(g.order);
	free(g.kind);
	ERR_clear_error();
	if (rc == VEIL_ENOMEM)
		veil_diag(d, "out of memory while generating secrets");
	return rc;
}

void veil_secret_set_free(struct veil_secret_set *set)
{
	if (!set)
		return;
	secret_values_free(set->v, set->count);
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
	int rc = secret_value_copy(n, src);
	sec_freep(&n->name);
	if (!rc && !(n->name = veil_secure_strdup(name)))
		rc = VEIL_ENOMEM;
	if (rc) {
		secret_value_free(n);
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
