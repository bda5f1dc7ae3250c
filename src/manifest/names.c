/* Names, document kinds and secret placeholders shared by both manifests. */
#include <ctype.h>
#include <string.h>

#include "veil/manifest.h"

int veil_valid_env_name(const char *s)
{
	if (!s || !(isalpha((unsigned char)*s) || *s == '_') || strlen(s) > 256)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

int veil_valid_secret_name(const char *s)
{
	if (!s || !*s || strlen(s) > 128)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return 0;
	return 1;
}

int veil_valid_object_name(const char *s)
{
	if (!s || !isalnum((unsigned char)*s) || strlen(s) > 128)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
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

/* Which definition keys apply to which kind of secret, and which a kind
 * needs: one table for veil check, the policy validator and the CAS. */
enum {
	K_SIZE = 1 << 0,
	K_VALUE = 1 << 1,
	K_PK = 1 << 2,
	K_ISSUER = 1 << 3,
	K_CN = 1 << 4,
	K_VALID = 1 << 5,
	K_ALG = 1 << 6,
	K_DNS = 1 << 7,
};
#define K_CERT (K_PK | K_ISSUER | K_CN | K_VALID | K_ALG | K_DNS)
static const struct secret_kind_keys {
	const char *kind;
	unsigned allowed, required;
} secret_kind_keys[] = {
    {"ascii", K_SIZE | K_VALUE, 0},
    {"binary", K_SIZE | K_VALUE, 0},
    {"explicit", K_VALUE, K_VALUE},
    {"private-key", K_VALUE | K_ALG, 0},
    {"public-key", K_PK, K_PK},
    {"x509-ca", K_CERT, 0},
    {"x509", K_CERT, 0},
};
static const char *const secret_key_names[] = {"size",        "value",     "private_key", "issuer",
					       "common_name", "valid_for", "algorithm",   "dns"};

int veil_secret_keys_misfit(const struct veil_secret *s,
			    void (*fn)(const char *key, int needed, void *arg), void *arg)
{
	const struct secret_kind_keys *k = NULL;
	for (size_t i = 0; s->kind && i < VEIL_ARRAY_LEN(secret_kind_keys); i++)
		if (!strcmp(secret_kind_keys[i].kind, s->kind))
			k = &secret_kind_keys[i];
	if (!k)
		return -1;
	unsigned given = (s->has_size ? K_SIZE : 0) | (s->value ? K_VALUE : 0) |
			 (s->private_key ? K_PK : 0) | (s->issuer ? K_ISSUER : 0) |
			 (s->common_name ? K_CN : 0) | (s->valid_for ? K_VALID : 0) |
			 (s->algorithm ? K_ALG : 0) | (s->dns_count ? K_DNS : 0);
	int n = 0;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(secret_key_names); i++) {
		unsigned bit = 1u << i;
		if (((given & bit) && !(k->allowed & bit)) ||
		    (!(given & bit) && (k->required & bit))) {
			fn(secret_key_names[i], !(given & bit), arg);
			n++;
		}
	}
	return n;
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

static const char *const suffixes[] = {"hex",        "base64",    "base64url", "crt", "cert", "key",
				       "privatekey", "publickey", "chain",     "pem", NULL};

int veil_placeholder_suffix_valid(const char *suffix)
{
	for (const char *const *p = suffixes; *p; p++)
		if (!strcmp(*p, suffix))
			return 1;
	return 0;
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

/* scone/5.8 and its patch versions (scone/5.8.0, scone/5.8.12: one format),
 * or veil/v1 */
static int api_version_supported(const char *api)
{
	if (!strcmp(api, "veil/v1") || !strcmp(api, "scone/5.8"))
		return 1;
	if (strncmp(api, "scone/5.8.", 10) || !api[10] || strlen(api + 10) > 9)
		return 0;
	for (const char *p = api + 10; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	return 1;
}

enum veil_doc_kind veil_doc_kind(const struct ydoc *doc, struct veil_diags *d)
{
	struct yctx c = {.file = doc->file, .d = d};
	const struct ynode *root = doc->root;
	if (yexpect(&c, root, YT_MAP, "the document"))
		return VEIL_DOC_UNKNOWN;
	const char *api = yget_str(&c, root, "apiVersion", 1, "top level");
	const char *kind = yget_str(&c, root, "kind", 1, "top level");
	if (!api || !kind)
		return VEIL_DOC_UNKNOWN;
	if (!api_version_supported(api)) {
		yerr(
		    &c, ymap_get(root, "apiVersion"),
		    "unsupported apiVersion '%s' (supported: scone/5.8, its patch versions such as "
		    "scone/5.8.0, veil/v1)",
		    api);
		return VEIL_DOC_UNKNOWN;
	}
	if (!strcmp(kind, "genservice"))
		return VEIL_DOC_SERVICE;
	if (!strcmp(kind, "mesh"))
		return VEIL_DOC_MESH;
	yerr(&c, ymap_get(root, "kind"), "unknown kind '%s' (supported: genservice, mesh)", kind);
	return VEIL_DOC_UNKNOWN;
}
