/* Intel DCAP collateral, offline (include/veil/collateral.h says what is
 * verified when). The TCB status follows Intel's algorithm as dcap-qvl
 * implements it (src/verify.rs: match_platform_tcb, match_tdx_module_identity,
 * verify_qe_identity_policy; src/tcb_info.rs: the severity merge), written
 * anew here; where the two differ, the comment says which one veil follows. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "intel_root.h"
#include "veil/collateral.h"
#include "veil/common.h"

/* the Intel SGX Root CA and its fingerprint: intel_root.h, the quote
 * verifier's too */

/* limits on what a load accepts (real bodies are 3-60 KB, 30 levels) */
#define COLLATERAL_JSON_MAX ((size_t)1 << 20)
#define COLLATERAL_FILE_MAX ((size_t)4 << 20)
#define CHAIN_CERTS_MAX 8
#define LEVELS_MAX 512
#define MODULE_IDENTITIES_MAX 32
#define SPAN_DEPTH_MAX 64

#define CN_ROOT "Intel SGX Root CA"
#define CN_TCB_SIGNING "Intel SGX TCB Signing"
#define CN_PLATFORM_CA "Intel SGX PCK Platform CA"
#define CN_PROCESSOR_CA "Intel SGX PCK Processor CA"

typedef char advisory_id[VEIL_ADVISORY_ID_MAX + 1];

struct tcb_level {
	uint8_t sgx_svn[16];
	uint8_t tdx_svn[16];
	uint16_t svn; /* pcesvn for platform levels, isvsvn for QE and module levels */
	enum veil_tcb_status status;
	time_t date;
	advisory_id *advisories;
	size_t advisory_count;
};

struct level_list {
	struct tcb_level *v;
	size_t count;
};

/* a verified issuer chain: its leaf and the window where all its
 * certificates (the root included) are valid */
struct chain {
	X509 *leaf; /* owned (one reference) */
	time_t not_before, not_after;
};

struct module_identity {
	char id[16];
	uint8_t mrsigner[48], attributes[8], attributes_mask[8];
	struct level_list levels;
};

struct tcb_info {
	int tee;
	unsigned version;
	uint8_t fmspc[6];
	time_t issue_date, next_update;
	uint32_t evaluation_data_number;
	struct level_list levels;
	bool has_module;
	uint8_t module_mrsigner[48], module_attributes[8], module_attributes_mask[8];
	struct module_identity *modules;
	size_t module_count;
	struct chain chain;
};

struct qe_identity {
	char id[8];
	unsigned version;
	time_t issue_date, next_update;
	uint8_t miscselect[4], miscselect_mask[4], attributes[16], attributes_mask[16];
	uint8_t mrsigner[32];
	uint16_t isvprodid;
	struct level_list levels;
	struct chain chain;
};

struct crl {
	X509_CRL *crl;
	time_t this_update, next_update;
	struct chain chain; /* the issuer's (for the root CRL: the root alone) */
};

struct veil_collateral {
	struct tcb_info *tcb_infos;
	size_t tcb_info_count;
	struct qe_identity *qe[2]; /* SGX "QE", TDX "TD_QE" */
	struct crl *root_crl;
	struct crl *pck_crl[2]; /* Platform CA, Processor CA */
	X509 *root;
	time_t root_not_before, root_not_after;
};

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

/* prefix what a nested call wrote into why with the part it was about */
static int name_part(char *why, size_t cap, const char *part)
{
	if (why && cap) {
		char inner[512];
		snprintf(inner, sizeof(inner), "%s", why);
		snprintf(why, cap, "%s: %s", part, inner);
	}
	return VEIL_EINVAL;
}

static const char *const status_names[] = {
    [VEIL_TCB_UP_TO_DATE] = "UpToDate",
    [VEIL_TCB_SW_HARDENING_NEEDED] = "SWHardeningNeeded",
    [VEIL_TCB_CONFIGURATION_NEEDED] = "ConfigurationNeeded",
    [VEIL_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED] = "ConfigurationAndSWHardeningNeeded",
    [VEIL_TCB_OUT_OF_DATE] = "OutOfDate",
    [VEIL_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED] = "OutOfDateConfigurationNeeded",
    [VEIL_TCB_REVOKED] = "Revoked",
};

const char *veil_tcb_status_name(enum veil_tcb_status s)
{
	if ((unsigned)s >= VEIL_ARRAY_LEN(status_names))
		return "?";
	return status_names[s];
}

static int status_from_name(const char *name, enum veil_tcb_status *out)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(status_names); i++)
		if (strcmp(name, status_names[i]) == 0) {
			*out = (enum veil_tcb_status)i;
			return 0;
		}
	return VEIL_EINVAL;
}

/* ---- the span scanner ------------------------------------------------- */

static size_t skip_ws(const char *t, size_t n, size_t i)
{
	while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* t[*i] is '"'; moves *i past the closing quote */
static bool skip_string(const char *t, size_t n, size_t *i)
{
	size_t j = *i + 1;
	while (j < n) {
		unsigned char ch = (unsigned char)t[j];
		if (ch == '"') {
			*i = j + 1;
			return true;
		}
		if (ch < 0x20)
			return false;
		j += ch == '\\' ? 2 : 1;
	}
	return false;
}

static bool skip_value(const char *t, size_t n, size_t *i, unsigned depth);

static bool skip_container(const char *t, size_t n, size_t *i, unsigned depth)
{
	char close = t[*i] == '{' ? '}' : ']';
	bool object = close == '}';
	size_t j = skip_ws(t, n, *i + 1);
	if (depth >= SPAN_DEPTH_MAX)
		return false;
	if (j < n && t[j] == close) {
		*i = j + 1;
		return true;
	}
	for (;;) {
		if (object) {
			if (j >= n || t[j] != '"' || !skip_string(t, n, &j))
				return false;
			j = skip_ws(t, n, j);
			if (j >= n || t[j] != ':')
				return false;
			j = skip_ws(t, n, j + 1);
		}
		if (!skip_value(t, n, &j, depth + 1))
			return false;
		j = skip_ws(t, n, j);
		if (j >= n)
			return false;
		if (t[j] == close) {
			*i = j + 1;
			return true;
		}
		if (t[j] != ',')
			return false;
		j = skip_ws(t, n, j + 1);
	}
}

/* a scalar's characters; jansson judges the value itself later */
static bool scalar_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '-' || ch == '+' || ch == '.';
}

static bool skip_value(const char *t, size_t n, size_t *i, unsigned depth)
{
	if (*i >= n)
		return false;
	if (t[*i] == '"')
		return skip_string(t, n, i);
	if (t[*i] == '{' || t[*i] == '[')
		return skip_container(t, n, i, depth);
	size_t j = *i;
	while (j < n && scalar_char(t[j]))
		j++;
	if (j == *i)
		return false;
	*i = j;
	return true;
}

int veil_json_member_span(const char *text, size_t n, const char *key, size_t *off, size_t *len)
{
	size_t key_len = strlen(key), i = skip_ws(text, n, 0), found_off = 0, found_len = 0;
	bool found = false;
	if (i >= n || text[i] != '{')
		return VEIL_EINVAL;
	i = skip_ws(text, n, i + 1);
	if (i < n && text[i] == '}') {
		i++;
	} else {
		for (;;) {
			size_t name = i;
			if (i >= n || text[i] != '"' || !skip_string(text, n, &i))
				return VEIL_EINVAL;
			/* the name as written, between its quotes */
			bool match =
			    /* not secret: a JSON key name */
			    i - name - 2 == key_len && memcmp(text + name + 1, key, key_len) == 0;
			i = skip_ws(text, n, i);
			if (i >= n || text[i] != ':')
				return VEIL_EINVAL;
			i = skip_ws(text, n, i + 1);
			size_t value = i;
			if (!skip_value(text, n, &i, 1))
				return VEIL_EINVAL;
			if (match) {
				if (found) /* which one would a reader take? */
					return VEIL_EINVAL;
				found = true;
				found_off = value;
				found_len = i - value;
			}
			i = skip_ws(text, n, i);
			if (i >= n)
				return VEIL_EINVAL;
			if (text[i] == '}') {
				i++;
				break;
			}
			if (text[i] != ',')
				return VEIL_EINVAL;
			i = skip_ws(text, n, i + 1);
		}
	}
	if (skip_ws(text, n, i) != n)
		return VEIL_EINVAL;
	if (!found)
		return VEIL_ENOENT;
	*off = found_off;
	*len = found_len;
	return 0;
}

/* ---- small readers ---------------------------------------------------- */

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* exactly 2*size hex digits of either case */
static bool unhex_exact(const char *s, size_t s_len, uint8_t *out, size_t size)
{
	if (s_len != 2 * size)
		return false;
	for (size_t i = 0; i < size; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* hex of any even length; *out is the caller's to free */
static bool unhex_alloc(const char *s, size_t s_len, uint8_t **out, size_t *size)
{
	if (s_len % 2 || s_len / 2 > COLLATERAL_FILE_MAX)
		return false;
	uint8_t *b = malloc(s_len / 2 + 1);
	if (!b || !unhex_exact(s, s_len, b, s_len / 2)) {
		free(b);
		return false;
	}
	*out = b;
	*size = s_len / 2;
	return true;
}

static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* "YYYY-MM-DDThh:mm:ssZ" (what PCS writes; fractional seconds are refused) */
static bool parse_date(const char *s, time_t *out)
{
	int year, mon, day, hour, min, sec;
	if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != 'Z' || !digits(s, 4, &year) || !digits(s + 5, 2, &mon) ||
	    !digits(s + 8, 2, &day) || !digits(s + 11, 2, &hour) || !digits(s + 14, 2, &min) ||
	    !digits(s + 17, 2, &sec) || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 ||
	    min > 59 || sec > 60)
		return false;
	struct tm tm = {.tm_year = year - 1900,
			.tm_mon = mon - 1,
			.tm_mday = day,
			.tm_hour = hour,
			.tm_min = min,
			.tm_sec = sec};
	*out = timegm(&tm);
	return true;
}

static void format_date(time_t t, char *out, size_t cap)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, cap, "%lld", (long long)t);
}

static bool asn1_time(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;
	if (!a || !ASN1_TIME_to_tm(a, &tm))
		return false;
	*out = timegm(&tm);
	return true;
}

/* ---- JSON fields ------------------------------------------------------ */

static int get_string(json_t *o, const char *name, const char **out, char *why, size_t cap)
{
	json_t *v = json_object_get(o, name);
	if (!json_is_string(v))
		return refuse(why, cap, "\"%s\" is missing or not a string", name);
	*out = json_string_value(v);
	return 0;
}

static int get_uint(json_t *o, const char *name, json_int_t max, json_int_t *out, char *why,
		    size_t cap)
{
	json_t *v = json_object_get(o, name);
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return refuse(why, cap, "\"%s\" is missing or not an integer from 0 to %lld", name,
			      (long long)max);
	*out = json_integer_value(v);
	return 0;
}

static int get_hex(json_t *o, const char *name, uint8_t *out, size_t size, char *why, size_t cap)
{
	const char *s = NULL;
	if (get_string(o, name, &s, why, cap))
		return VEIL_EINVAL;
	if (!unhex_exact(s, strlen(s), out, size))
		return refuse(why, cap, "\"%s\" is not %zu bytes in hex", name, size);
	return 0;
}

static int get_date(json_t *o, const char *name, time_t *out, char *why, size_t cap)
{
	const char *s = NULL;
	if (get_string(o, name, &s, why, cap))
		return VEIL_EINVAL;
	if (!parse_date(s, out))
		return refuse(why, cap, "\"%s\" is not a date like 2025-06-19T10:56:11Z", name);
	return 0;
}

static void free_levels(struct level_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->v[i].advisories);
	free(l->v);
	l->v = NULL;
	l->count = 0;
}

/* tcbDate, tcbStatus, advisoryIDs of one level */
static int parse_level_common(json_t *level, struct tcb_level *out, char *why, size_t cap)
{
	const char *status = NULL;
	if (get_date(level, "tcbDate", &out->date, why, cap) ||
	    get_string(level, "tcbStatus", &status, why, cap))
		return VEIL_EINVAL;
	if (status_from_name(status, &out->status))
		return refuse(why, cap, "unknown tcbStatus \"%.40s\"", status);
	json_t *ids = json_object_get(level, "advisoryIDs");
	if (!ids)
		return 0;
	if (!json_is_array(ids) || json_array_size(ids) > VEIL_LEVEL_ADVISORIES_MAX)
		return refuse(why, cap, "\"advisoryIDs\" is not a list of at most %d",
			      VEIL_LEVEL_ADVISORIES_MAX);
	if (json_array_size(ids) == 0)
		return 0;
	out->advisories = calloc(json_array_size(ids), sizeof(*out->advisories));
	if (!out->advisories)
		return VEIL_ENOMEM;
	for (size_t i = 0; i < json_array_size(ids); i++) {
		json_t *id = json_array_get(ids, i);
		if (!json_is_string(id) || json_string_length(id) == 0 ||
		    json_string_length(id) > VEIL_ADVISORY_ID_MAX ||
		    strlen(json_string_value(id)) != json_string_length(id))
			return refuse(why, cap, "advisory ID %zu is not a string of 1 to %d bytes",
				      i, VEIL_ADVISORY_ID_MAX);
		memcpy(out->advisories[out->advisory_count++], json_string_value(id),
		       json_string_length(id) + 1);
	}
	return 0;
}

/* "sgxtcbcomponents" / "tdxtcbcomponents": exactly 16 {"svn": 0..255} */
static int parse_components(json_t *tcb, const char *name, uint8_t out[16], char *why, size_t cap)
{
	json_t *a = json_object_get(tcb, name);
	if (!json_is_array(a) || json_array_size(a) != 16)
		return refuse(why, cap, "\"%s\" is not a list of 16 components", name);
	for (size_t i = 0; i < 16; i++) {
		json_int_t svn;
		json_t *comp = json_array_get(a, i);
		if (!json_is_object(comp) || get_uint(comp, "svn", 255, &svn, why, cap))
			return refuse(why, cap, "\"%s\"[%zu] has no svn from 0 to 255", name, i);
		out[i] = (uint8_t)svn;
	}
	return 0;
}

/* A platform level: v3 {"tcb":{"sgxtcbcomponents":[...],"tdxtcbcomponents":
 * [...],"pcesvn":N},...} or v2 {"tcb":{"sgxtcbcomp01svn":N,...,"pcesvn":N}} */
static int parse_platform_level(json_t *level, unsigned version, int tee, struct tcb_level *out,
				char *why, size_t cap)
{
	json_t *tcb = json_object_get(level, "tcb");
	json_int_t v;
	if (!json_is_object(level) || !json_is_object(tcb))
		return refuse(why, cap, "no \"tcb\" object");
	if (version >= 3) {
		if (parse_components(tcb, "sgxtcbcomponents", out->sgx_svn, why, cap))
			return VEIL_EINVAL;
		if (tee == VEIL_TEE_TDX &&
		    parse_components(tcb, "tdxtcbcomponents", out->tdx_svn, why, cap))
			return VEIL_EINVAL;
	} else {
		for (int i = 0; i < 16; i++) {
			char name[32];
			snprintf(name, sizeof(name), "sgxtcbcomp%02dsvn", i + 1);
			if (get_uint(tcb, name, 255, &v, why, cap))
				return VEIL_EINVAL;
			out->sgx_svn[i] = (uint8_t)v;
		}
	}
	if (get_uint(tcb, "pcesvn", 65535, &v, why, cap))
		return VEIL_EINVAL;
	out->svn = (uint16_t)v;
	return parse_level_common(level, out, why, cap);
}

/* a QE or TDX module level: {"tcb":{"isvsvn":N},...} */
static int parse_isv_level(json_t *level, struct tcb_level *out, char *why, size_t cap)
{
	json_t *tcb = json_object_get(level, "tcb");
	json_int_t v;
	if (!json_is_object(level) || !json_is_object(tcb))
		return refuse(why, cap, "no \"tcb\" object");
	if (get_uint(tcb, "isvsvn", 65535, &v, why, cap))
		return VEIL_EINVAL;
	out->svn = (uint16_t)v;
	return parse_level_common(level, out, why, cap);
}

static int parse_levels(json_t *o, bool platform, unsigned version, int tee, struct level_list *out,
			char *why, size_t cap)
{
	json_t *a = json_object_get(o, "tcbLevels");
	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > LEVELS_MAX)
		return refuse(why, cap, "\"tcbLevels\" is not a list of 1 to %d levels",
			      LEVELS_MAX);
	out->v = calloc(json_array_size(a), sizeof(*out->v));
	if (!out->v)
		return VEIL_ENOMEM;
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *level = json_array_get(a, i);
		out->count = i + 1; /* so free_levels frees this one's advisories too */
		int rc = platform ? parse_platform_level(level, version, tee, &out->v[i], why, cap)
				  : parse_isv_level(level, &out->v[i], why, cap);
		if (rc) {
			char part[32];
			snprintf(part, sizeof(part), "tcbLevels[%zu]", i);
			return rc == VEIL_ENOMEM ? rc : name_part(why, cap, part);
		}
	}
	return 0;
}

static void free_tcb_info(struct tcb_info *t)
{
	free_levels(&t->levels);
	for (size_t i = 0; i < t->module_count; i++)
		free_levels(&t->modules[i].levels);
	free(t->modules);
	X509_free(t->chain.leaf);
	memset(t, 0, sizeof(*t));
}

static void free_qe_identity(struct qe_identity *q)
{
	if (!q)
		return;
	free_levels(&q->levels);
	X509_free(q->chain.leaf);
	free(q);
}

static void free_crl(struct crl *c)
{
	if (!c)
		return;
	X509_CRL_free(c->crl);
	X509_free(c->chain.leaf);
	free(c);
}

static int parse_module(json_t *o, uint8_t mrsigner[48], uint8_t attributes[8], uint8_t mask[8],
			char *why, size_t cap)
{
	return get_hex(o, "mrsigner", mrsigner, 48, why, cap) ||
		       get_hex(o, "attributes", attributes, 8, why, cap) ||
		       get_hex(o, "attributesMask", mask, 8, why, cap)
		   ? VEIL_EINVAL
		   : 0;
}

/* the fields of a TCB Info object (the value that was signed) */
static int parse_tcb_info(json_t *o, struct tcb_info *t, char *why, size_t cap)
{
	json_int_t v;
	const char *id = "SGX", *fmspc = NULL;
	if (!json_is_object(o))
		return refuse(why, cap, "not a JSON object");
	if (get_uint(o, "version", 255, &v, why, cap))
		return VEIL_EINVAL;
	t->version = (unsigned)v;
	if (t->version != 2 && t->version != 3)
		return refuse(why, cap, "version %u is not 2 or 3", t->version);
	/* v2 has no "id": it exists for SGX only */
	if (t->version == 3 && get_string(o, "id", &id, why, cap))
		return VEIL_EINVAL;
	if (strcmp(id, "SGX") == 0)
		t->tee = VEIL_TEE_SGX;
	else if (strcmp(id, "TDX") == 0)
		t->tee = VEIL_TEE_TDX;
	else
		return refuse(why, cap, "id \"%.20s\" is not SGX or TDX", id);
	if (get_date(o, "issueDate", &t->issue_date, why, cap) ||
	    get_date(o, "nextUpdate", &t->next_update, why, cap) ||
	    get_string(o, "fmspc", &fmspc, why, cap) ||
	    get_uint(o, "tcbEvaluationDataNumber", UINT32_MAX, &v, why, cap))
		return VEIL_EINVAL;
	t->evaluation_data_number = (uint32_t)v;
	if (!unhex_exact(fmspc, strlen(fmspc), t->fmspc, 6))
		return refuse(why, cap, "\"fmspc\" is not 6 bytes in hex");
	json_t *module = json_object_get(o, "tdxModule");
	if (t->tee == VEIL_TEE_TDX && module) {
		if (!json_is_object(module) ||
		    parse_module(module, t->module_mrsigner, t->module_attributes,
				 t->module_attributes_mask, why, cap))
			return name_part(why, cap, "tdxModule");
		t->has_module = true;
	}
	json_t *ids = json_object_get(o, "tdxModuleIdentities");
	if (t->tee == VEIL_TEE_TDX && ids) {
		if (!json_is_array(ids) || json_array_size(ids) > MODULE_IDENTITIES_MAX)
			return refuse(why, cap,
				      "\"tdxModuleIdentities\" is not a list of at most %d",
				      MODULE_IDENTITIES_MAX);
		t->modules = calloc(json_array_size(ids) + 1, sizeof(*t->modules));
		if (!t->modules)
			return VEIL_ENOMEM;
		for (size_t i = 0; i < json_array_size(ids); i++) {
			json_t *m = json_array_get(ids, i);
			struct module_identity *mi = &t->modules[i];
			const char *mid = NULL;
			t->module_count = i + 1;
			int rc = !json_is_object(m) ? refuse(why, cap, "not an object")
				 : get_string(m, "id", &mid, why, cap) ? VEIL_EINVAL
				 : strlen(mid) >= sizeof(mi->id)
				     ? refuse(why, cap, "\"id\" is too long")
				 : parse_module(m, mi->mrsigner, mi->attributes,
						mi->attributes_mask, why, cap)
				     ? VEIL_EINVAL
				     : parse_levels(m, false, 0, t->tee, &mi->levels, why, cap);
			if (rc) {
				char part[48];
				snprintf(part, sizeof(part), "tdxModuleIdentities[%zu]", i);
				return rc == VEIL_ENOMEM ? rc : name_part(why, cap, part);
			}
			memcpy(mi->id, mid, strlen(mid) + 1);
		}
	}
	return parse_levels(o, true, t->version, t->tee, &t->levels, why, cap);
}

static int parse_qe_identity(json_t *o, struct qe_identity *q, char *why, size_t cap)
{
	json_int_t v;
	const char *id = NULL;
	if (!json_is_object(o))
		return refuse(why, cap, "not a JSON object");
	if (get_string(o, "id", &id, why, cap) || get_uint(o, "version", 255, &v, why, cap))
		return VEIL_EINVAL;
	if (strlen(id) >= sizeof(q->id))
		return refuse(why, cap, "\"id\" is too long");
	memcpy(q->id, id, strlen(id) + 1);
	q->version = (unsigned)v;
	if (get_date(o, "issueDate", &q->issue_date, why, cap) ||
	    get_date(o, "nextUpdate", &q->next_update, why, cap) ||
	    get_hex(o, "miscselect", q->miscselect, 4, why, cap) ||
	    get_hex(o, "miscselectMask", q->miscselect_mask, 4, why, cap) ||
	    get_hex(o, "attributes", q->attributes, 16, why, cap) ||
	    get_hex(o, "attributesMask", q->attributes_mask, 16, why, cap) ||
	    get_hex(o, "mrsigner", q->mrsigner, 32, why, cap) ||
	    get_uint(o, "isvprodid", 65535, &v, why, cap))
		return VEIL_EINVAL;
	q->isvprodid = (uint16_t)v;
	return parse_levels(o, false, 0, 0, &q->levels, why, cap);
}

/* ---- certificates, signatures, CRLs ----------------------------------- */

static bool subject_cn_is(X509_NAME *name, const char *cn)
{
	char buf[128];
	int n = X509_NAME_get_text_by_NID(name, NID_commonName, buf, sizeof(buf));
	return n >= 0 && (size_t)n == strlen(cn) && strcmp(buf, cn) == 0;
}

static void free_certs(STACK_OF(X509) * s)
{
	sk_X509_pop_free(s, X509_free);
}

static int read_pem_chain(const char *pem, size_t n, STACK_OF(X509) * *out, char *why, size_t cap)
{
	if (n > COLLATERAL_FILE_MAX)
		return refuse(why, cap, "too large");
	BIO *bio = BIO_new_mem_buf(pem, (int)n);
	STACK_OF(X509) *certs = sk_X509_new_null();
	int rc = VEIL_ENOMEM;
	if (!bio || !certs)
		goto out;
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x)
			break;
		if (sk_X509_num(certs) >= CHAIN_CERTS_MAX || !sk_X509_push(certs, x)) {
			X509_free(x);
			rc = refuse(why, cap, "more than %d certificates", CHAIN_CERTS_MAX);
			goto out;
		}
	}
	/* a damaged certificate must not end the chain early unnoticed */
	unsigned long err = ERR_peek_last_error();
	if (ERR_GET_REASON(err) != PEM_R_NO_START_LINE || sk_X509_num(certs) == 0) {
		rc = refuse(why, cap, "not a PEM certificate chain (certificate %d does not parse)",
			    sk_X509_num(certs) + 1);
		goto out;
	}
	*out = certs;
	certs = NULL;
	rc = 0;
out:
	ERR_clear_error();
	free_certs(certs);
	BIO_free(bio);
	return rc;
}

/* Verifies the PEM chain (leaf first) to the compiled-in root, without
 * looking at the time (the windows are checked at evaluation); the leaf is
 * the certificate named cn_a (or cn_b). out->leaf gets a reference. */
static int verify_chain(const struct veil_collateral *c, const char *pem, size_t n,
			const char *cn_a, const char *cn_b, struct chain *out, char *why,
			size_t cap)
{
	STACK_OF(X509) *certs = NULL;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = VEIL_ENOMEM;
	if (!store || !ctx)
		goto out;
	if ((rc = read_pem_chain(pem, n, &certs, why, cap)))
		goto out;
	/* the leaf is the certificate with the expected name, wherever the
	 * sender put it (PCS sends it first; Intel's own samples do not always) */
	X509 *leaf = NULL;
	for (int i = 0; i < sk_X509_num(certs) && !leaf; i++) {
		X509_NAME *subject = X509_get_subject_name(sk_X509_value(certs, i));
		if (subject_cn_is(subject, cn_a) || (cn_b && subject_cn_is(subject, cn_b)))
			leaf = sk_X509_value(certs, i);
	}
	if (!leaf) {
		rc = refuse(why, cap, "no %s certificate in the chain", cn_a);
		goto out;
	}
	if (!X509_STORE_add_cert(store, c->root) || !X509_STORE_CTX_init(ctx, store, leaf, certs))
		goto out;
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_X509_STRICT);
	if (X509_verify_cert(ctx) != 1) {
		int err = X509_STORE_CTX_get_error(ctx);
		rc =
		    refuse(why, cap, "does not chain to the Intel SGX Root CA (certificate %d: %s)",
			   X509_STORE_CTX_get_error_depth(ctx), X509_verify_cert_error_string(err));
		goto out;
	}
	/* the built chain's windows (the root's included) */
	STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx);
	struct chain ch = {.not_before = 0, .not_after = (time_t)INT64_MAX};
	for (int i = 0; i < sk_X509_num(built); i++) {
		time_t nb, na;
		X509 *x = sk_X509_value(built, i);
		if (!asn1_time(X509_get0_notBefore(x), &nb) ||
		    !asn1_time(X509_get0_notAfter(x), &na)) {
			rc = refuse(why, cap, "certificate %d has an unreadable validity", i);
			goto out;
		}
		if (nb > ch.not_before)
			ch.not_before = nb;
		if (na < ch.not_after)
			ch.not_after = na;
	}
	if (!X509_up_ref(leaf))
		goto out;
	ch.leaf = leaf;
	*out = ch;
	rc = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	free_certs(certs);
	return rc;
}

/* ECDSA P-256 with SHA-256 over data; sig_hex is r||s, 64 bytes in hex */
static int verify_signature(X509 *signer, const void *data, size_t n, const char *sig_hex,
			    size_t sig_hex_len, char *why, size_t cap)
{
	uint8_t raw[64];
	unsigned char *der = NULL;
	ECDSA_SIG *sig = NULL;
	EVP_MD_CTX *md = NULL;
	int rc = VEIL_ENOMEM, der_len;
	if (!unhex_exact(sig_hex, sig_hex_len, raw, sizeof(raw)))
		return refuse(why, cap, "the signature is not 64 bytes (r||s) in hex");
	EVP_PKEY *key = X509_get0_pubkey(signer);
	if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get_bits(key) != 256)
		return refuse(why, cap, "the signing certificate's key is not ECDSA P-256");
	BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
	sig = ECDSA_SIG_new();
	if (!r || !s || !sig) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	ECDSA_SIG_set0(sig, r, s);
	der_len = i2d_ECDSA_SIG(sig, &der);
	md = EVP_MD_CTX_new();
	if (der_len <= 0 || !md)
		goto out;
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestVerify(md, der, (size_t)der_len, data, n) != 1) {
		rc = refuse(why, cap, "the signature does not verify");
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	return rc;
}

static int keep_tcb_info(struct veil_collateral *c, struct tcb_info *t)
{
	for (size_t i = 0; i < c->tcb_info_count; i++) {
		struct tcb_info *old = &c->tcb_infos[i];
		/* not secret: FMSPCs, public platform ids */
		if (old->tee == t->tee && memcmp(old->fmspc, t->fmspc, 6) == 0) {
			if (t->issue_date > old->issue_date) {
				free_tcb_info(old);
				*old = *t;
			} else {
				free_tcb_info(t);
			}
			return 0;
		}
	}
	struct tcb_info *grown = reallocarray(c->tcb_infos, c->tcb_info_count + 1, sizeof(*grown));
	if (!grown)
		return VEIL_ENOMEM;
	c->tcb_infos = grown;
	c->tcb_infos[c->tcb_info_count++] = *t;
	return 0;
}

/* the TCB Info value's exact bytes (signed) and its signature */
static int add_tcb_info(struct veil_collateral *c, const char *body, size_t n, const char *sig_hex,
			size_t sig_len, const char *chain_pem, size_t chain_n, char *why,
			size_t cap)
{
	struct tcb_info t = {0};
	json_error_t jerr;
	json_t *o = NULL;
	int rc;
	if (n > COLLATERAL_JSON_MAX)
		return refuse(why, cap, "TCB Info: larger than %zu bytes", COLLATERAL_JSON_MAX);
	if ((rc = verify_chain(c, chain_pem, chain_n, CN_TCB_SIGNING, NULL, &t.chain, why, cap))) {
		if (rc == VEIL_EINVAL)
			name_part(why, cap, "TCB Info issuer chain");
		goto out;
	}
	if ((rc = verify_signature(t.chain.leaf, body, n, sig_hex, sig_len, why, cap))) {
		if (rc == VEIL_EINVAL)
			name_part(why, cap, "TCB Info");
		goto out;
	}
	o = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		rc = refuse(why, cap, "TCB Info: not JSON: %s", jerr.text);
		goto out;
	}
	if ((rc = parse_tcb_info(o, &t, why, cap))) {
		if (rc == VEIL_EINVAL)
			name_part(why, cap, "TCB Info");
		goto out;
	}
	if ((rc = keep_tcb_info(c, &t)))
		goto out;
	memset(&t, 0, sizeof(t));
out:
	json_decref(o);
	free_tcb_info(&t);
	return rc;
}

static int add_qe_identity(struct veil_collateral *c, const char *body, size_t n,
			   const char *sig_hex, size_t sig_len, const char *chain_pem,
			   size_t chain_n, char *why, size_t cap)
{
	struct qe_identity *q = calloc(1, sizeof(*q));
	json_error_t jerr;
	json_t *o = NULL;
	int rc = VEIL_ENOMEM;
	if (!q)
		return rc;
	if (n > COLLATERAL_JSON_MAX) {
		rc = refuse(why, cap, "QE Identity: larger than %zu bytes", COLLATERAL_JSON_MAX);
		goto out;
	}
	if ((rc = verify_chain(c, chain_pem, chain_n, CN_TCB_SIGNING, NULL, &q->chain, why, cap))) {
		if (rc == VEIL_EINVAL)
			name_part(why, cap, "QE Identity issuer chain");
		goto out;
	}
	if ((rc = verify_signature(q->chain.leaf, body, n, sig_hex, sig_len, why, cap))) {
		if (rc == VEIL_EINVAL)
			name_part(why, cap, "QE Identity");
		goto out;
	}
	o = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		rc = refuse(why, cap, "QE Identity: not JSON: %s", jerr.text);
		goto out;
	}
	if ((rc = parse_qe_identity(o, q, why, cap))) {
		if (rc == VEIL_EINVAL)
			name_part(why, cap, "QE Identity");
		goto out;
	}
	int slot;
	if (strcmp(q->id, "QE") == 0)
		slot = 0;
	else if (strcmp(q->id, "TD_QE") == 0)
		slot = 1;
	else {
		rc = refuse(why, cap, "QE Identity: id \"%s\" is not QE or TD_QE", q->id);
		goto out;
	}
	if (!c->qe[slot] || q->issue_date > c->qe[slot]->issue_date) {
		free_qe_identity(c->qe[slot]);
		c->qe[slot] = q;
		q = NULL;
	}
	rc = 0;
out:
	json_decref(o);
	free_qe_identity(q);
	return rc;
}

int veil_collateral_load_crl(struct veil_collateral *c, const uint8_t *der, size_t n,
			     const char *issuer_chain_pem, size_t chain_n, char *why, size_t cap)
{
	const char *what = issuer_chain_pem ? "PCK CRL" : "root CA CRL";
	struct crl *crl = calloc(1, sizeof(*crl));
	const unsigned char *p = der;
	X509 *issuer;
	int rc = VEIL_ENOMEM, slot = -1;
	if (!crl)
		return rc;
	if (n > COLLATERAL_FILE_MAX || !(crl->crl = d2i_X509_CRL(NULL, &p, (long)n)) ||
	    p != der + n) {
		rc = refuse(why, cap, "%s: not one DER CRL", what);
		goto out;
	}
	if (issuer_chain_pem) {
		rc = verify_chain(c, issuer_chain_pem, chain_n, CN_PLATFORM_CA, CN_PROCESSOR_CA,
				  &crl->chain, why, cap);
		if (rc) {
			if (rc == VEIL_EINVAL)
				name_part(why, cap, "PCK CRL issuer chain");
			goto out;
		}
		slot =
		    subject_cn_is(X509_get_subject_name(crl->chain.leaf), CN_PLATFORM_CA) ? 0 : 1;
	} else {
		if (!X509_up_ref(c->root))
			goto out;
		crl->chain = (struct chain){c->root, c->root_not_before, c->root_not_after};
	}
	issuer = crl->chain.leaf;
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl->crl), X509_get_subject_name(issuer)) != 0) {
		rc = refuse(why, cap, "%s: not issued by the %s", what,
			    issuer_chain_pem ? "CA of its issuer chain" : CN_ROOT);
		goto out;
	}
	if (X509_CRL_verify(crl->crl, X509_get0_pubkey(issuer)) != 1) {
		rc = refuse(why, cap, "%s: the signature does not verify", what);
		goto out;
	}
	if (!asn1_time(X509_CRL_get0_lastUpdate(crl->crl), &crl->this_update) ||
	    !asn1_time(X509_CRL_get0_nextUpdate(crl->crl), &crl->next_update)) {
		rc = refuse(why, cap, "%s: no thisUpdate or nextUpdate", what);
		goto out;
	}
	struct crl **keep = slot < 0 ? &c->root_crl : &c->pck_crl[slot];
	if (!*keep || crl->this_update > (*keep)->this_update) {
		free_crl(*keep);
		*keep = crl;
		crl = NULL;
	}
	rc = 0;
out:
	ERR_clear_error();
	free_crl(crl);
	return rc;
}

int veil_collateral_check_json(const char *json, size_t n, char *why, size_t cap)
{
	json_error_t jerr;
	int rc;
	if (n > COLLATERAL_JSON_MAX)
		return refuse(why, cap, "larger than %zu bytes", COLLATERAL_JSON_MAX);
	json_t *o = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		json_decref(o);
		return refuse(why, cap, "not a JSON object");
	}
	if (json_object_get(o, "tcbInfo") || json_object_get(o, "enclaveIdentity")) {
		json_decref(o);
		return refuse(why, cap, "a PCS body: pass the signed value inside it");
	}
	if (json_object_get(o, "tcbLevels") && json_object_get(o, "fmspc")) {
		struct tcb_info t = {0};
		rc = parse_tcb_info(o, &t, why, cap);
		free_tcb_info(&t);
	} else {
		struct qe_identity *q = calloc(1, sizeof(*q));
		rc = q ? parse_qe_identity(o, q, why, cap) : VEIL_ENOMEM;
		free_qe_identity(q);
	}
	json_decref(o);
	return rc;
}

/* ---- loading ---------------------------------------------------------- */

struct veil_collateral *veil_collateral_new(void)
{
	struct veil_collateral *c = calloc(1, sizeof(*c));
	BIO *bio = BIO_new_mem_buf(intel_sgx_root_pem, sizeof(intel_sgx_root_pem) - 1);
	uint8_t fp[32], want[32];
	unsigned fp_len = 0;
	if (!c || !bio || veil_unhex(INTEL_SGX_ROOT_SHA256, want, sizeof(want)))
		goto fail;
	c->root = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!c->root || !X509_digest(c->root, EVP_sha256(), fp, &fp_len) || fp_len != 32 ||
	    CRYPTO_memcmp(fp, want, 32) != 0 ||
	    !asn1_time(X509_get0_notBefore(c->root), &c->root_not_before) ||
	    !asn1_time(X509_get0_notAfter(c->root), &c->root_not_after))
		goto fail;
	BIO_free(bio);
	return c;
fail:
	ERR_clear_error();
	BIO_free(bio);
	veil_collateral_free(c);
	return NULL;
}

void veil_collateral_free(struct veil_collateral *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->tcb_info_count; i++)
		free_tcb_info(&c->tcb_infos[i]);
	free(c->tcb_infos);
	free_qe_identity(c->qe[0]);
	free_qe_identity(c->qe[1]);
	free_crl(c->root_crl);
	free_crl(c->pck_crl[0]);
	free_crl(c->pck_crl[1]);
	X509_free(c->root);
	free(c);
}

static int bundle_string(json_t *o, const char *name, const char **s, size_t *n, char *why,
			 size_t cap)
{
	json_t *v = json_object_get(o, name);
	if (!json_is_string(v))
		return refuse(why, cap, "bundle: \"%s\" is missing or not a string", name);
	*s = json_string_value(v);
	*n = json_string_length(v);
	return 0;
}

int veil_collateral_load_bundle(struct veil_collateral *c, const char *json, size_t n, char *why,
				size_t cap)
{
	static const char *const fields[] = {"tcb_info",
					     "tcb_info_signature",
					     "tcb_info_issuer_chain",
					     "qe_identity",
					     "qe_identity_signature",
					     "qe_identity_issuer_chain",
					     "pck_crl_issuer_chain",
					     "root_ca_crl",
					     "pck_crl"};
	const char *s[VEIL_ARRAY_LEN(fields)] = {0};
	size_t len[VEIL_ARRAY_LEN(fields)] = {0};
	uint8_t *root_crl = NULL, *pck_crl = NULL;
	size_t root_crl_n, pck_crl_n;
	json_error_t jerr;
	int rc;
	if (n > COLLATERAL_FILE_MAX)
		return refuse(why, cap, "bundle: larger than %zu bytes", COLLATERAL_FILE_MAX);
	json_t *o = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		rc = refuse(why, cap, "bundle: not a JSON object (%s)", o ? "" : jerr.text);
		goto out;
	}
	for (size_t i = 0; i < VEIL_ARRAY_LEN(fields); i++)
		if ((rc = bundle_string(o, fields[i], &s[i], &len[i], why, cap)))
			goto out;
	if (!unhex_alloc(s[7], len[7], &root_crl, &root_crl_n) ||
	    !unhex_alloc(s[8], len[8], &pck_crl, &pck_crl_n)) {
		rc = refuse(why, cap, "bundle: \"%s\" is not hex",
			    root_crl ? "pck_crl" : "root_ca_crl");
		goto out;
	}
	/* CRLs first: nothing below depends on them, but a refused CRL is
	 * reported before the larger parts */
	if ((rc = veil_collateral_load_crl(c, root_crl, root_crl_n, NULL, 0, why, cap)) ||
	    (rc = veil_collateral_load_crl(c, pck_crl, pck_crl_n, s[6], len[6], why, cap)) ||
	    (rc = add_tcb_info(c, s[0], len[0], s[1], len[1], s[2], len[2], why, cap)) ||
	    (rc = add_qe_identity(c, s[3], len[3], s[4], len[4], s[5], len[5], why, cap)))
		goto out;
out:
	free(root_crl);
	free(pck_crl);
	json_decref(o);
	return rc;
}

int veil_collateral_load_pcs_json(struct veil_collateral *c, const char *json, size_t n,
				  const char *chain_pem, size_t chain_n, char *why, size_t cap)
{
	size_t off, len, sig_off, sig_len;
	bool is_tcb;
	if (n > COLLATERAL_JSON_MAX)
		return refuse(why, cap, "PCS body: larger than %zu bytes", COLLATERAL_JSON_MAX);
	int rc = veil_json_member_span(json, n, "tcbInfo", &off, &len);
	is_tcb = rc == 0;
	if (rc == VEIL_ENOENT)
		rc = veil_json_member_span(json, n, "enclaveIdentity", &off, &len);
	if (rc)
		return refuse(why, cap, "PCS body: %s",
			      rc == VEIL_ENOENT ? "neither \"tcbInfo\" nor \"enclaveIdentity\""
						: "not one JSON object (or a member twice)");
	/* the signature: a JSON string of hex digits only, so its bytes between
	 * the quotes are its value */
	if (veil_json_member_span(json, n, "signature", &sig_off, &sig_len) || sig_len < 2 ||
	    json[sig_off] != '"')
		return refuse(why, cap, "PCS body: no \"signature\" string");
	const char *what = is_tcb ? "TCB Info" : "QE Identity";
	/* the whole body must be JSON jansson reads the same way (no duplicate
	 * names, which the scanner would not see behind escapes) */
	json_error_t jerr;
	json_t *whole = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!whole)
		return refuse(why, cap, "%s: not JSON: %s", what, jerr.text);
	json_decref(whole);
	if (is_tcb)
		return add_tcb_info(c, json + off, len, json + sig_off + 1, sig_len - 2, chain_pem,
				    chain_n, why, cap);
	return add_qe_identity(c, json + off, len, json + sig_off + 1, sig_len - 2, chain_pem,
			       chain_n, why, cap);
}

static int read_small_file(const char *path, char **out, size_t *n, char *why, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int rc = VEIL_EIO;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = refuse(why, cap, "%s: cannot read (%s)", path,
			    fd < 0 ? strerror(errno) : "not a file");
		goto out;
	}
	if ((size_t)st.st_size > COLLATERAL_FILE_MAX) {
		rc = refuse(why, cap, "%s: larger than %zu bytes", path, COLLATERAL_FILE_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = refuse(why, cap, "%s: cannot read", path);
			goto out;
		}
		got += (size_t)r;
	}
	buf[got] = '\0';
	*out = buf;
	*n = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);
	return a >= b && strcmp(s + a - b, tail) == 0;
}

struct dir_chains {
	char *tcb_signing, *platform_ca, *processor_ca;
	size_t tcb_signing_n, platform_ca_n, processor_ca_n;
};

/* files of one kind in name order: pass 0 chains (.pem), 1 CRLs (.crl,
 * .der), 2 JSON (.json) */
static int load_dir_pass(struct veil_collateral *c, const char *dir, char **names, size_t count,
			 int pass, struct dir_chains *chains, char *why, size_t cap)
{
	for (size_t i = 0; i < count; i++) {
		const char *name = names[i];
		bool want = pass == 0   ? ends_with(name, ".pem")
			    : pass == 1 ? ends_with(name, ".crl") || ends_with(name, ".der")
					: ends_with(name, ".json");
		if (!want)
			continue;
		char *path = veil_path_join(dir, name), *data = NULL;
		size_t n = 0;
		int rc = path ? read_small_file(path, &data, &n, why, cap) : VEIL_ENOMEM;
		if (rc == 0 && pass == 0) {
			STACK_OF(X509) *certs = NULL;
			rc = read_pem_chain(data, n, &certs, why, cap);
			if (rc == 0) {
				X509_NAME *subject = X509_get_subject_name(sk_X509_value(certs, 0));
				char **slot = NULL;
				size_t *slot_n = NULL;
				if (subject_cn_is(subject, CN_TCB_SIGNING))
					slot = &chains->tcb_signing,
					slot_n = &chains->tcb_signing_n;
				else if (subject_cn_is(subject, CN_PLATFORM_CA))
					slot = &chains->platform_ca,
					slot_n = &chains->platform_ca_n;
				else if (subject_cn_is(subject, CN_PROCESSOR_CA))
					slot = &chains->processor_ca,
					slot_n = &chains->processor_ca_n;
				free_certs(certs);
				if (slot) {
					free(*slot);
					*slot = data;
					*slot_n = n;
					data = NULL;
				}
			}
		} else if (rc == 0 && pass == 1) {
			const unsigned char *p = (const unsigned char *)data;
			X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)n);
			X509_NAME *issuer = crl ? X509_CRL_get_issuer(crl) : NULL;
			const char *chain = NULL;
			size_t chain_n = 0;
			if (!crl)
				rc = refuse(why, cap, "not a DER CRL");
			else if (subject_cn_is(issuer, CN_PLATFORM_CA))
				chain = chains->platform_ca, chain_n = chains->platform_ca_n;
			else if (subject_cn_is(issuer, CN_PROCESSOR_CA))
				chain = chains->processor_ca, chain_n = chains->processor_ca_n;
			else if (!subject_cn_is(issuer, CN_ROOT))
				rc = refuse(why, cap, "issued by none of the Intel CAs");
			if (rc == 0 && !chain && !subject_cn_is(issuer, CN_ROOT))
				rc = refuse(why, cap,
					    "no .pem chain of its issuer CA in the folder");
			X509_CRL_free(crl);
			ERR_clear_error();
			if (rc == 0)
				rc = veil_collateral_load_crl(c, (const uint8_t *)data, n, chain,
							      chain_n, why, cap);
		} else if (rc == 0) {
			size_t off, len;
			if (veil_json_member_span(data, n, "tcb_info", &off, &len) == 0)
				rc = veil_collateral_load_bundle(c, data, n, why, cap);
			else if (!chains->tcb_signing)
				rc = refuse(why, cap,
					    "a PCS body needs the TCB Signing chain as a .pem "
					    "file in the folder");
			else
				rc = veil_collateral_load_pcs_json(c, data, n, chains->tcb_signing,
								   chains->tcb_signing_n, why, cap);
		}
		if (rc == VEIL_EINVAL && path && !strstr(why ? why : "", path))
			name_part(why, cap, path);
		free(data);
		free(path);
		if (rc)
			return rc;
	}
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int veil_collateral_load_dir(const char *dir, struct veil_collateral **out, char *why, size_t cap)
{
	struct dir_chains chains = {0};
	struct veil_collateral *c = NULL;
	char **names = NULL;
	size_t count = 0;
	int rc = VEIL_ENOMEM;
	DIR *d = opendir(dir);
	if (!d)
		return refuse(why, cap, "%s: cannot open the collateral folder (%s)", dir,
			      strerror(errno));
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (count >= 4096) {
			rc = refuse(why, cap, "%s: more than 4096 files", dir);
			goto out;
		}
		char **grown = reallocarray(names, count + 1, sizeof(*names));
		if (!grown)
			goto out;
		names = grown;
		if (!(names[count] = veil_strdup(e->d_name)))
			goto out;
		count++;
	}
	qsort(names, count, sizeof(*names), compare_names);
	if (!(c = veil_collateral_new()))
		goto out;
	for (int pass = 0; pass < 3; pass++)
		if ((rc = load_dir_pass(c, dir, names, count, pass, &chains, why, cap)))
			goto out;
	*out = c;
	c = NULL;
	rc = 0;
out:
	closedir(d);
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	free(chains.tcb_signing);
	free(chains.platform_ca);
	free(chains.processor_ca);
	veil_collateral_free(c);
	return rc;
}

/* ---- evaluation ------------------------------------------------------- */

/* dcap-qvl's merge: the worse status; advisory IDs appended once each */
static void merge_level(struct veil_tcb_result *out, enum veil_tcb_status *status,
			const struct tcb_level *l)
{
	if (l->status > *status)
		*status = l->status;
	for (size_t i = 0; i < l->advisory_count; i++) {
		bool seen = false;
		for (size_t j = 0; j < out->advisory_count && !seen; j++)
			seen = strcmp(out->advisory_ids[j], l->advisories[i]) == 0;
		if (!seen && out->advisory_count < VEIL_ADVISORIES_MAX)
			memcpy(out->advisory_ids[out->advisory_count++], l->advisories[i],
			       sizeof(out->advisory_ids[0]));
	}
}

/* a validity window of one part of the collateral */
struct window {
	const char *what;
	time_t from, until;
};

/* Every window must contain at. The refusal names the part that expired
 * first (or one not yet valid); *earliest is the earliest end of all. */
static int check_windows(const struct window *w, size_t count, time_t at, time_t *earliest,
			 char *why, size_t cap)
{
	const struct window *early = NULL, *expired = NULL;
	char date[32];
	*earliest = (time_t)INT64_MAX;
	for (size_t i = 0; i < count; i++) {
		if (w[i].until < *earliest)
			*earliest = w[i].until;
		if (at < w[i].from && !early)
			early = &w[i];
		if (at > w[i].until && (!expired || w[i].until < expired->until))
			expired = &w[i];
	}
	if (early) {
		format_date(early->from, date, sizeof(date));
		return refuse(why, cap, "%s is not valid before %s", early->what, date);
	}
	if (expired) {
		format_date(expired->until, date, sizeof(date));
		return refuse(why, cap, "stale collateral: %s expired at %s", expired->what, date);
	}
	return 0;
}

static bool is_revoked(const struct crl *crl, X509 *cert)
{
	X509_REVOKED *r = NULL;
	return X509_CRL_get0_by_cert(crl->crl, &r, cert) == 1;
}

static int pck_serial_revoked(const struct crl *crl, const struct veil_tcb_query *q, bool *revoked,
			      char *why, size_t cap)
{
	if (q->pck_serial_size == 0 || q->pck_serial_size > sizeof(q->pck_serial))
		return refuse(why, cap, "the PCK certificate's serial number is missing");
	BIGNUM *bn = BN_bin2bn(q->pck_serial, (int)q->pck_serial_size, NULL);
	ASN1_INTEGER *serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	X509_REVOKED *r = NULL;
	BN_free(bn);
	if (!serial)
		return VEIL_ENOMEM;
	*revoked = X509_CRL_get0_by_serial(crl->crl, &r, serial) == 1;
	ASN1_INTEGER_free(serial);
	return 0;
}

static int evaluate_qe(const struct qe_identity *qe, const struct veil_tcb_query *q,
		       const struct tcb_level **out, char *why, size_t cap)
{
	bool tdx = q->tee == VEIL_TEE_TDX;
	if (strcmp(qe->id, tdx ? "TD_QE" : "QE") != 0 ||
	    !(qe->version == 2 || (tdx && qe->version == 3)))
		return refuse(why, cap, "QE Identity %s version %u does not apply to an %s quote",
			      qe->id, qe->version, tdx ? "TDX" : "SGX");
	if (CRYPTO_memcmp(qe->mrsigner, q->qe_mrsigner, 32) != 0)
		return refuse(why, cap, "QE report: MRSIGNER is not the QE Identity's");
	if (q->qe_attributes[0] & 0x02)
		return refuse(why, cap, "QE report: the quoting enclave is a debug enclave");
	if (qe->isvprodid != q->qe_isvprodid)
		return refuse(why, cap, "QE report: ISVPRODID %u is not the QE Identity's %u",
			      q->qe_isvprodid, qe->isvprodid);
	/* the hex bytes read as the little-endian u32 of the report (dcap-qvl) */
	uint32_t misc = (uint32_t)qe->miscselect[0] | (uint32_t)qe->miscselect[1] << 8 |
			(uint32_t)qe->miscselect[2] << 16 | (uint32_t)qe->miscselect[3] << 24;
	uint32_t mask = (uint32_t)qe->miscselect_mask[0] | (uint32_t)qe->miscselect_mask[1] << 8 |
			(uint32_t)qe->miscselect_mask[2] << 16 |
			(uint32_t)qe->miscselect_mask[3] << 24;
	if ((q->qe_miscselect & mask) != (misc & mask))
		return refuse(why, cap, "QE report: MISCSELECT does not match under the mask");
	for (int i = 0; i < 16; i++)
		if ((q->qe_attributes[i] & qe->attributes_mask[i]) !=
		    (qe->attributes[i] & qe->attributes_mask[i]))
			return refuse(why, cap,
				      "QE report: ATTRIBUTES byte %d does not match under the mask",
				      i);
	for (size_t i = 0; i < qe->levels.count; i++)
		if (q->qe_isvsvn >= qe->levels.v[i].svn) {
			*out = &qe->levels.v[i];
			return 0;
		}
	return refuse(why, cap, "QE report: ISVSVN %u is below the lowest QE Identity level (%u)",
		      q->qe_isvsvn, qe->levels.v[qe->levels.count - 1].svn);
}

/* The TDX module's identity (dcap-qvl's match_tdx_module_identity): with
 * TEE_TCB_SVN[1] (the module's major version) non-zero and identities
 * listed, the identity "TDX_%02X" of that version gives the MRSIGNER,
 * attributes and a level by TEE_TCB_SVN[0]; otherwise the base tdxModule's
 * MRSIGNER and attributes must match and there is no level. */
static int evaluate_tdx_module(const struct tcb_info *t, const struct veil_tcb_query *q,
			       const struct tcb_level **out, char *why, size_t cap)
{
	const uint8_t *mrsigner = t->module_mrsigner, *attributes = t->module_attributes,
		      *mask = t->module_attributes_mask;
	const struct module_identity *mi = NULL;
	if (!t->has_module)
		return refuse(why, cap, "TCB Info: a TDX TCB Info without \"tdxModule\"");
	if (q->tee_tcb_svn[1] > 0 && t->module_count > 0) {
		char want[16];
		snprintf(want, sizeof(want), "TDX_%02X", q->tee_tcb_svn[1]);
		for (size_t i = 0; i < t->module_count && !mi; i++)
			if (strcasecmp(t->modules[i].id, want) == 0)
				mi = &t->modules[i];
		if (!mi)
			return refuse(why, cap, "TCB Info: no TDX module identity %s", want);
		mrsigner = mi->mrsigner;
		attributes = mi->attributes;
		mask = mi->attributes_mask;
	}
	/* not secret: MRSIGNERSEAM and the public TDX module signer */
	if (memcmp(q->mr_signer_seam, mrsigner, 48) != 0)
		return refuse(why, cap, "TD report: MRSIGNERSEAM is not the TDX module's");
	for (int i = 0; i < 8; i++) {
		if ((q->seam_attributes[i] & mask[i]) != (attributes[i] & mask[i]))
			return refuse(why, cap, "TD report: SEAMATTRIBUTES byte %d does not match",
				      i);
		if (q->seam_attributes[i] & ~mask[i])
			return refuse(why, cap,
				      "TD report: SEAMATTRIBUTES byte %d has bits outside the mask",
				      i);
	}
	*out = NULL;
	if (!mi)
		return 0;
	for (size_t i = 0; i < mi->levels.count; i++)
		if (q->tee_tcb_svn[0] >= mi->levels.v[i].svn) {
			*out = &mi->levels.v[i];
			return 0;
		}
	return refuse(why, cap, "TD report: TDX module ISVSVN %u is below every level of %s",
		      q->tee_tcb_svn[0], mi->id);
}

/* The first level (in the order Intel lists them, highest first) that the
 * platform reaches: PCE SVN, the 16 SGX components and for TDX the 16
 * TEE_TCB_SVN components each at least the level's. dcap-qvl sorts the
 * levels first; Intel's lists are already sorted, so both take the same one.
 * For TDX all 16 TEE_TCB_SVN bytes are compared, as dcap-qvl does (the module
 * bytes 0 and 1 included, also when a tdxModuleIdentities level judges them
 * as well). */
static const struct tcb_level *match_platform_level(const struct tcb_info *t,
						    const struct veil_tcb_query *q)
{
	for (size_t i = 0; i < t->levels.count; i++) {
		const struct tcb_level *l = &t->levels.v[i];
		bool reached = q->pce_svn >= l->svn;
		for (int k = 0; k < 16 && reached; k++)
			reached = q->cpu_svn[k] >= l->sgx_svn[k] &&
				  (q->tee != VEIL_TEE_TDX || q->tee_tcb_svn[k] >= l->tdx_svn[k]);
		if (reached)
			return l;
	}
	return NULL;
}

int veil_tcb_evaluate(const struct veil_collateral *c, const struct veil_tcb_query *q, time_t at,
		      struct veil_tcb_result *out, char *why, size_t cap)
{
	struct veil_tcb_result r = {0};
	const struct tcb_info *t = NULL;
	char fmspc[13];
	veil_hex(q->fmspc, 6, fmspc);
	if (q->tee != VEIL_TEE_SGX && q->tee != VEIL_TEE_TDX)
		return refuse(why, cap, "TEE type 0x%x is not SGX or TDX", (unsigned)q->tee);
	for (size_t i = 0; i < c->tcb_info_count && !t; i++)
		if (c->tcb_infos[i].tee == q->tee &&
		    /* not secret: FMSPCs, public platform ids */
		    memcmp(c->tcb_infos[i].fmspc, q->fmspc, 6) == 0)
			t = &c->tcb_infos[i];
	const char *tee = q->tee == VEIL_TEE_TDX ? "TDX" : "SGX";
	if (!t)
		return refuse(why, cap, "no %s TCB Info for FMSPC %s in the collateral", tee,
			      fmspc);
	const struct qe_identity *qe = c->qe[q->tee == VEIL_TEE_TDX];
	if (!qe)
		return refuse(why, cap, "no %s QE Identity in the collateral",
			      q->tee == VEIL_TEE_TDX ? "TD_QE" : "QE");
	if (!c->root_crl)
		return refuse(why, cap, "no root CA CRL in the collateral");
	if (q->pck_ca != VEIL_PCK_CA_PLATFORM && q->pck_ca != VEIL_PCK_CA_PROCESSOR)
		return refuse(why, cap, "the PCK certificate's CA is not named");
	const struct crl *pck_crl = c->pck_crl[q->pck_ca == VEIL_PCK_CA_PROCESSOR];
	if (!pck_crl)
		return refuse(why, cap, "no PCK %s CA CRL in the collateral",
			      q->pck_ca == VEIL_PCK_CA_PROCESSOR ? "Processor" : "Platform");

	/* every window involved, and the earliest end */
	const struct window windows[] = {
	    {"the TCB Info", t->issue_date, t->next_update},
	    {"the TCB Info's signing chain", t->chain.not_before, t->chain.not_after},
	    {"the QE Identity", qe->issue_date, qe->next_update},
	    {"the QE Identity's signing chain", qe->chain.not_before, qe->chain.not_after},
	    {"the root CA CRL", c->root_crl->this_update, c->root_crl->next_update},
	    {"the PCK CRL", pck_crl->this_update, pck_crl->next_update},
	    {"the PCK CRL's issuer chain", pck_crl->chain.not_before, pck_crl->chain.not_after},
	};
	if (check_windows(windows, VEIL_ARRAY_LEN(windows), at, &r.next_update, why, cap))
		return VEIL_EINVAL;
	if (is_revoked(c->root_crl, t->chain.leaf) || is_revoked(c->root_crl, qe->chain.leaf))
		return refuse(why, cap, "the TCB Signing certificate is revoked (root CA CRL)");
	if (is_revoked(c->root_crl, pck_crl->chain.leaf))
		return refuse(why, cap, "the PCK CA certificate is revoked (root CA CRL)");
	r.tcb_evaluation_data_number = t->evaluation_data_number;

	bool revoked = false;
	int rc = pck_serial_revoked(pck_crl, q, &revoked, why, cap);
	if (rc)
		return rc;
	if (revoked) {
		r.status = r.platform_status = r.qe_status = VEIL_TCB_REVOKED;
		*out = r;
		return 0;
	}

	const struct tcb_level *qe_level = NULL, *platform, *module = NULL;
	if ((rc = evaluate_qe(qe, q, &qe_level, why, cap)))
		return rc;
	if (!(platform = match_platform_level(t, q)))
		return refuse(
		    why, cap,
		    "TCB not supported: the platform (PCE SVN %u) reaches no TCB level of "
		    "the %s TCB Info for FMSPC %s",
		    q->pce_svn, tee, fmspc);
	if (q->tee == VEIL_TEE_TDX && (rc = evaluate_tdx_module(t, q, &module, why, cap)))
		return rc;
	r.platform_status = VEIL_TCB_UP_TO_DATE;
	merge_level(&r, &r.platform_status, platform);
	if (module)
		merge_level(&r, &r.platform_status, module);
	r.qe_status = VEIL_TCB_UP_TO_DATE;
	r.status = r.platform_status;
	merge_level(&r, &r.status, qe_level);
	r.qe_status = qe_level->status;
	r.tcb_date = platform->date;
	*out = r;
	return 0;
}
