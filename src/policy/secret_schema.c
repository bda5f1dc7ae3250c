/* The secret schema (include/veil/secret_schema.h): the one table of secret
 * kinds, and the checks of secret names, values and placeholders that `veil
 * check`, the policy validator and the CAS share. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "veil/common.h"
#include "veil/secret_schema.h"

/* ---- Kinds ---- */

#define K_CERT_KEYS                                                                                \
	(VEIL_SKEY_PRIVATE_KEY | VEIL_SKEY_ISSUER | VEIL_SKEY_COMMON_NAME | VEIL_SKEY_VALID_FOR |  \
	 VEIL_SKEY_ALGORITHM | VEIL_SKEY_DNS)
#define K_CERT_OUT (VEIL_SOUT_KEY | VEIL_SOUT_PUB | VEIL_SOUT_CERT | VEIL_SOUT_CHAIN)

/* In the order of VEIL_SECRET_KINDS: messages list kinds in table order. */
static const struct veil_secret_kind_info secret_kinds[] = {
    {"ascii", VEIL_SECRET_ASCII, VEIL_SKEY_SIZE | VEIL_SKEY_VALUE, 0, VEIL_SOUT_BYTES, 20,
     VEIL_RENDER_TEXT, VEIL_RENDER_NONE},
    {"binary", VEIL_SECRET_BINARY, VEIL_SKEY_SIZE | VEIL_SKEY_VALUE, 0, VEIL_SOUT_BYTES, 32,
     VEIL_RENDER_HEX, VEIL_RENDER_NONE},
    {"private-key", VEIL_SECRET_PRIVATE_KEY, VEIL_SKEY_VALUE | VEIL_SKEY_ALGORITHM, 0,
     VEIL_SOUT_KEY | VEIL_SOUT_PUB, 0, VEIL_RENDER_KEY, VEIL_RENDER_KEY},
    {"public-key", VEIL_SECRET_PUBLIC_KEY, VEIL_SKEY_PRIVATE_KEY, VEIL_SKEY_PRIVATE_KEY,
     VEIL_SOUT_PUB, 0, VEIL_RENDER_PUB, VEIL_RENDER_PUB},
    {"x509", VEIL_SECRET_X509, K_CERT_KEYS, 0, K_CERT_OUT, 0, VEIL_RENDER_CERT, VEIL_RENDER_CERT},
    {"x509-ca", VEIL_SECRET_X509_CA, K_CERT_KEYS, 0, K_CERT_OUT, 0, VEIL_RENDER_CERT,
     VEIL_RENDER_CERT},
    {"explicit", VEIL_SECRET_EXPLICIT, VEIL_SKEY_VALUE, VEIL_SKEY_VALUE, VEIL_SOUT_BYTES, 0,
     VEIL_RENDER_TEXT, VEIL_RENDER_NONE},
};

const struct veil_secret_kind_info *veil_secret_kind_find(const char *name)
{
	for (size_t i = 0; name && i < VEIL_ARRAY_LEN(secret_kinds); i++)
		if (!strcmp(secret_kinds[i].name, name))
			return &secret_kinds[i];
	return NULL;
}

const struct veil_secret_kind_info *veil_secret_kind_get(enum veil_secret_kind kind)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(secret_kinds); i++)
		if (secret_kinds[i].kind == kind)
			return &secret_kinds[i];
	return NULL;
}

/* in the order of enum veil_secret_key's bits */
static const char *const secret_key_names[] = {"size",        "value",     "private_key", "issuer",
					       "common_name", "valid_for", "algorithm",   "dns"};

int veil_secret_keys_misfit(const struct veil_secret *s,
			    void (*fn)(const char *key, int needed, void *arg), void *arg)
{
	const struct veil_secret_kind_info *k = veil_secret_kind_find(s->kind);
	if (!k)
		return -1;
	unsigned given =
	    (s->has_size ? VEIL_SKEY_SIZE : 0) | (s->value ? VEIL_SKEY_VALUE : 0) |
	    (s->private_key ? VEIL_SKEY_PRIVATE_KEY : 0) | (s->issuer ? VEIL_SKEY_ISSUER : 0) |
	    (s->common_name ? VEIL_SKEY_COMMON_NAME : 0) |
	    (s->valid_for ? VEIL_SKEY_VALID_FOR : 0) | (s->algorithm ? VEIL_SKEY_ALGORITHM : 0) |
	    (s->dns_count ? VEIL_SKEY_DNS : 0);
	int n = 0;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(secret_key_names); i++) {
		unsigned bit = 1u << i;
		if (((given & bit) && !(k->keys_allowed & bit)) ||
		    (!(given & bit) && (k->keys_required & bit))) {
			fn(secret_key_names[i], !(given & bit), arg);
			n++;
		}
	}
	return n;
}

/* ---- References between definitions ---- */

static int is_import(const struct veil_secret *s)
{
	return s->import_namespace != NULL;
}

static size_t def_index(const struct veil_secret *defs, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (defs[i].name && !strcmp(defs[i].name, name))
			return i;
	return VEIL_SECRET_REF_NONE;
}

int veil_secret_ref_resolve(const struct veil_secret *defs, size_t count, size_t i, int issuer,
			    size_t *target, char *why, size_t cap)
{
	const struct veil_secret *s = &defs[i];
	const char *ref = issuer ? s->issuer : s->private_key;
	const char *key = issuer ? "issuer" : "private_key";
	const struct veil_secret_kind_info *k = veil_secret_kind_find(s->kind);
	*target = VEIL_SECRET_REF_NONE;
	if (!ref) {
		if (issuer && k && k->kind == VEIL_SECRET_X509)
			*target = VEIL_SECRET_REF_NAMESPACE_CA;
		return 0;
	}
	if (!strcmp(ref, VEIL_NAMESPACE_CA_NAME)) {
		if (issuer) {
			*target = VEIL_SECRET_REF_NAMESPACE_CA;
			return 0;
		}
		snprintf(why, cap, "private_key cannot be the namespace CA's key");
		return VEIL_EINVAL;
	}
	size_t j = def_index(defs, count, ref);
	if (j == VEIL_SECRET_REF_NONE) {
		snprintf(why, cap, "%s '%s' is not defined", key, ref);
		return VEIL_EINVAL;
	}
	if (is_import(&defs[j])) {
		snprintf(why, cap,
			 issuer ? "issuer '%s' is imported; only x509-ca secrets generated in this "
				  "policy can issue"
				: "private_key '%s' is imported; only secrets generated in this "
				  "policy can be used",
			 ref);
		return VEIL_EINVAL;
	}
	const struct veil_secret_kind_info *tk = veil_secret_kind_find(defs[j].kind);
	const char *tkind = defs[j].kind ? defs[j].kind : "(none)";
	if (issuer && (!tk || tk->kind != VEIL_SECRET_X509_CA)) {
		snprintf(why, cap, "issuer '%s' is of kind '%s', not x509-ca", ref, tkind);
		return VEIL_EINVAL;
	}
	if (!issuer && (!tk || !(tk->outputs & VEIL_SOUT_KEY))) {
		snprintf(why, cap,
			 "private_key '%s' is of kind '%s', which holds no private key "
			 "(private-key, x509, x509-ca do)",
			 ref, tkind);
		return VEIL_EINVAL;
	}
	*target = j;
	return 0;
}

int veil_secret_order(const struct veil_secret *defs, size_t count, size_t *order, size_t *n,
		      char *why, size_t cap)
{
	size_t want = 0, got = 0;
	char ignored[8];
	unsigned char *done = calloc(count + 1, 1);
	size_t *ref = calloc(2 * count + 1, sizeof(*ref));
	int rc = VEIL_ENOMEM;
	if (!done || !ref)
		goto out;
	for (size_t i = 0; i < count; i++) {
		want += !is_import(&defs[i]);
		for (int r = 0; r < 2; r++)
			if (veil_secret_ref_resolve(defs, count, i, r, &ref[2 * i + r], ignored,
						    sizeof(ignored)))
				ref[2 * i + r] = VEIL_SECRET_REF_NONE;
	}
	while (got < want) {
		size_t progress = 0;
		for (size_t i = 0; i < count; i++) {
			size_t pk = ref[2 * i], is = ref[2 * i + 1];
			if (is_import(&defs[i]) || done[i])
				continue;
			if ((pk < count && !done[pk]) || (is < count && !done[is]))
				continue;
			done[i] = 1;
			order[got++] = i;
			progress++;
		}
		if (!progress)
			break;
	}
	rc = 0;
	if (got < want) {
		size_t listed = 0, len = 0;
		why[0] = '\0';
		for (size_t i = 0; i < count && listed < 8; i++) {
			if (is_import(&defs[i]) || done[i] || len >= cap)
				continue;
			int w = snprintf(why + len, cap - len, "%s'%s'", listed++ ? ", " : "",
					 defs[i].name ? defs[i].name : "");
			len = w < 0 ? cap : len + (size_t)w;
		}
		if (len < cap)
			snprintf(why + len, cap - len,
				 "%s: their private_key/issuer references form a cycle",
				 want - got > 8 ? ", ..." : "");
		rc = VEIL_EINVAL;
	}
	*n = got;
out:
	free(done);
	free(ref);
	return rc;
}

/* ---- Names and values ---- */

int veil_valid_secret_name(const char *s)
{
	if (!s || !*s || strlen(s) > 128)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return 0;
	return 1;
}

int veil_secret_algorithm_valid(const char *alg)
{
	static const char *const algs[] = {"P-256", "P-384", "Ed25519", "RSA-2048", "RSA-3072"};
	for (size_t i = 0; alg && i < VEIL_ARRAY_LEN(algs); i++)
		if (!strcmp(algs[i], alg))
			return 1;
	return 0;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1; /* encrypted keys are refused, never prompted for */
}

EVP_PKEY *veil_secret_key_parse(const char *pem)
{
	BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL) : NULL;
	BIO_free(b);
	ERR_clear_error();
	return k;
}

const char *veil_secret_key_algorithm(const EVP_PKEY *k)
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

int veil_secret_key_value_check(const char *pem, const char *algorithm, char *why, size_t cap)
{
	EVP_PKEY *k = veil_secret_key_parse(pem);
	const char *ka = k ? veil_secret_key_algorithm(k) : NULL;
	int rc = VEIL_EINVAL;
	if (!ka)
		snprintf(why, cap,
			 "the value is not an unencrypted PEM private key of a supported "
			 "algorithm (" VEIL_SECRET_ALGORITHMS ")");
	else if (algorithm && strcmp(ka, algorithm))
		snprintf(why, cap, "the value is a %s key, not %s", ka, algorithm);
	else
		rc = 0;
	EVP_PKEY_free(k);
	return rc;
}

/* UTF-8 as OpenSSL's MBSTRING_UTF8 reads it for X509_NAME entries: no
 * overlong forms, no surrogates, at most U+10FFFF. */
int veil_secret_common_name_valid(const char *cn)
{
	const unsigned char *p = (const unsigned char *)cn;
	size_t chars = 0;
	if (!cn || !*cn)
		return 0;
	while (*p) {
		unsigned long c;
		int more;
		if (*p < 0x80)
			c = *p, more = 0;
		else if ((*p & 0xe0) == 0xc0)
			c = *p & 0x1f, more = 1;
		else if ((*p & 0xf0) == 0xe0)
			c = *p & 0x0f, more = 2;
		else if ((*p & 0xf8) == 0xf0)
			c = *p & 0x07, more = 3;
		else
			return 0;
		p++;
		for (int i = 0; i < more; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (*p & 0x3f);
		}
		static const unsigned long min[] = {0, 0x80, 0x800, 0x10000};
		if (c < min[more] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		if (++chars > 64)
			return 0;
	}
	return 1;
}

static int is_ip_literal(const char *s)
{
	unsigned char addr[16];
	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

int veil_secret_dns_entry_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 253)
		return 0;
	if (is_ip_literal(s))
		return 1;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._*", *p))
			return 0;
	return 1;
}

/* SCONE reads valid_for as a humantime duration ("90 days", "1year 6months",
 * "36h"): the units and lengths below are humantime's (a month is 30.44
 * days, a year 365.25). A bare number is veil's older form: days. */
static const struct duration_unit {
	const char *name;
	long long seconds;
} duration_units[] = {
    {"s", 1},          {"sec", 1},         {"secs", 1},         {"second", 1},
    {"seconds", 1},    {"m", 60},          {"min", 60},         {"mins", 60},
    {"minute", 60},    {"minutes", 60},    {"h", 3600},         {"hr", 3600},
    {"hrs", 3600},     {"hour", 3600},     {"hours", 3600},     {"d", 86400},
    {"day", 86400},    {"days", 86400},    {"w", 604800},       {"week", 604800},
    {"weeks", 604800}, {"M", 2630016},     {"month", 2630016},  {"months", 2630016},
    {"y", 31557600},   {"year", 31557600}, {"years", 31557600},
};

int veil_valid_for_parse(const char *s, long long *seconds)
{
	const long long max = VEIL_VALID_FOR_MAX_DAYS * 86400LL;
	long long total = 0;
	int parts = 0;
	if (!s || strlen(s) > 64)
		return VEIL_EINVAL;
	for (const char *p = s;;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		long long n = 0;
		const char *digits = p;
		for (; isdigit((unsigned char)*p); p++)
			if ((n = n * 10 + (*p - '0')) > max)
				return VEIL_EINVAL;
		if (p == digits)
			return VEIL_EINVAL;
		while (*p == ' ')
			p++;
		const char *unit = p;
		while (isalpha((unsigned char)*p))
			p++;
		size_t len = (size_t)(p - unit);
		long long mult = 0;
		if (len == 0 && !*p && parts == 0 && digits == s)
			mult = 86400; /* a bare number: days */
		for (size_t i = 0; len && i < VEIL_ARRAY_LEN(duration_units); i++)
			if (strlen(duration_units[i].name) == len &&
			    !strncmp(duration_units[i].name, unit, len))
				mult = duration_units[i].seconds;
		if (!mult || n > (max - total) / mult)
			return VEIL_EINVAL;
		total += n * mult;
		parts++;
	}
	if (total <= 0)
		return VEIL_EINVAL;
	*seconds = total;
	return 0;
}

int veil_binary_value_span(const char *value, size_t *start, size_t *len)
{
	static const char blanks[] = " \t\r\n";
	if (!value)
		return VEIL_EINVAL;
	size_t a = strspn(value, blanks), n = strlen(value + a);
	while (n && strchr(blanks, value[a + n - 1]))
		n--;
	if (n == 0 || n % 2)
		return VEIL_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)value[a + i]))
			return VEIL_EINVAL;
	*start = a;
	*len = n;
	return 0;
}

/* ---- Placeholders ---- */

/* Each suffix and the output it renders; "pem" renders the kind's own PEM
 * (the table's pem column). */
static const struct suffix_info {
	const char *name;
	enum veil_render_as as;
	unsigned needs; /* enum veil_secret_output */
} suffixes[] = {
    {"hex", VEIL_RENDER_HEX, VEIL_SOUT_BYTES},
    {"base64", VEIL_RENDER_BASE64, VEIL_SOUT_BYTES},
    {"base64url", VEIL_RENDER_BASE64URL, VEIL_SOUT_BYTES},
    {"crt", VEIL_RENDER_CERT, VEIL_SOUT_CERT},
    {"cert", VEIL_RENDER_CERT, VEIL_SOUT_CERT},
    {"key", VEIL_RENDER_KEY, VEIL_SOUT_KEY},
    {"privatekey", VEIL_RENDER_KEY, VEIL_SOUT_KEY},
    {"publickey", VEIL_RENDER_PUB, VEIL_SOUT_PUB},
    {"chain", VEIL_RENDER_CHAIN, VEIL_SOUT_CHAIN},
    {"pem", VEIL_RENDER_NONE, 0},
};

static const struct suffix_info *suffix_find(const char *suffix)
{
	for (size_t i = 0; suffix && i < VEIL_ARRAY_LEN(suffixes); i++)
		if (!strcmp(suffixes[i].name, suffix))
			return &suffixes[i];
	return NULL;
}

int veil_placeholder_suffix_valid(const char *suffix)
{
	return suffix_find(suffix) != NULL;
}

static enum veil_render_as render_as(const struct veil_secret_kind_info *k,
				     const struct suffix_info *sx)
{
	if (!k)
		return VEIL_RENDER_NONE;
	if (!sx)
		return k->plain;
	if (!sx->needs)
		return k->pem;
	return (k->outputs & sx->needs) ? sx->as : VEIL_RENDER_NONE;
}

enum veil_render_as veil_placeholder_render_as(const struct veil_secret_kind_info *k,
					       const char *suffix, char *fits, size_t cap)
{
	const struct suffix_info *sx = NULL;
	if (*suffix && !(sx = suffix_find(suffix))) {
		snprintf(fits, cap, "no kind");
		return VEIL_RENDER_NONE;
	}
	enum veil_render_as as = render_as(k, sx);
	if (as != VEIL_RENDER_NONE)
		return as;
	size_t len = 0;
	fits[0] = '\0';
	for (size_t i = 0; i < VEIL_ARRAY_LEN(secret_kinds); i++) {
		if (render_as(&secret_kinds[i], sx) == VEIL_RENDER_NONE || len >= cap)
			continue;
		int n =
		    snprintf(fits + len, cap - len, "%s%s", len ? ", " : "", secret_kinds[i].name);
		len = n < 0 ? cap : len + (size_t)n;
	}
	if (!k && (!sx || !sx->needs))
		snprintf(fits, cap, "no kind: the secret's kind is unknown");
	return VEIL_RENDER_NONE;
}

int veil_placeholder_fits(const struct veil_placeholder *ph, const char *kind, char *why,
			  size_t cap)
{
	const struct veil_secret_kind_info *k = veil_secret_kind_find(kind);
	char fits[128];
	if (!k || veil_placeholder_render_as(k, ph->suffix, fits, sizeof(fits)) != VEIL_RENDER_NONE)
		return 0;
	snprintf(why, cap, "suffix '%s' does not fit secret '%s' of kind '%s' (it fits %s)",
		 *ph->suffix ? ph->suffix : "(none)", ph->name, k->name, fits);
	return VEIL_EINVAL;
}

#define PH_OPEN "$$SCONE::"

int veil_placeholders(const char *s, int (*fn)(const struct veil_placeholder *, void *), void *arg,
		      const char **why)
{
	const char *p = s;
	while ((p = strstr(p, PH_OPEN))) {
		const char *name = p + strlen(PH_OPEN);
		const char *close = strstr(name, "$$");
		if (!close) {
			*why = "unterminated secret placeholder (missing closing '$$')";
			return VEIL_EINVAL;
		}
		struct veil_placeholder ph = {.start = (size_t)(p - s),
					      .end = (size_t)(close + 2 - s)};
		size_t nlen = strcspn(name, ":.$");
		if (nlen == 0 || nlen >= sizeof(ph.name)) {
			*why = "secret placeholder without a valid secret name";
			return VEIL_EINVAL;
		}
		memcpy(ph.name, name, nlen);
		if (!veil_valid_secret_name(ph.name)) {
			*why = "secret placeholder names an invalid secret name";
			return VEIL_EINVAL;
		}
		const char *rest = name + nlen;
		if (rest < close) {
			size_t slen = (size_t)(close - rest - 1);
			if (slen == 0 || slen >= sizeof(ph.suffix)) {
				*why = "secret placeholder has an empty or too long suffix";
				return VEIL_EINVAL;
			}
			memcpy(ph.suffix, rest + 1, slen);
			if (!veil_placeholder_suffix_valid(ph.suffix)) {
				*why =
				    "secret placeholder has an unknown suffix (known: hex, base64, "
				    "base64url, crt, cert, key, privatekey, publickey, chain, "
				    "pem)";
				return VEIL_EINVAL;
			}
		}
		int rc = fn ? fn(&ph, arg) : 0;
		if (rc)
			return rc;
		p = close + 2;
	}
	return 0;
}
