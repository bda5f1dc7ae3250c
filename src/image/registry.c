/* Registry push and pull over the OCI distribution API (distribution-spec
 * v1.1), with libcurl. include/veil/registry.h says what is trusted.
 *
 * Every byte a registry sends is untrusted: manifests are bounded
 * (VEIL_MANIFEST_MAX) and checked against the digest asked for or announced,
 * blobs are hashed while they are written and refused (and removed) unless
 * their size and SHA-256 are the descriptor's, error bodies are bounded and
 * reduced to printable text. Credentials live in secure memory, go only to the
 * registry they are for (or its token realm, over HTTPS) and into no message. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "veil/registry.h"
#include "veil/secrets.h"

#define ERROR_BODY_MAX ((size_t)64 << 10)
#define TOKEN_BODY_MAX ((size_t)64 << 10)
#define AUTH_FILE_MAX ((size_t)1 << 20)
#define CREDENTIALS_MAX 4096
#define PROGRESS_MIN ((curl_off_t)4 << 20) /* smaller blobs print no progress */

static const char accept_manifests[] = "Accept: application/vnd.oci.image.manifest.v1+json, "
				       "application/vnd.oci.image.index.v1+json, "
				       "application/vnd.docker.distribution.manifest.v2+json, "
				       "application/vnd.docker.distribution.manifest.list.v2+json";

/* ---------------------------------------------------------------- parsers */

static int is_lower_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A repository path: components of [a-z0-9] joined by '.', '_', '__' or
 * '-'s, separated by '/' (distribution's grammar, slightly looser on
 * separators: any run of [._-] between alphanumerics). */
static int valid_repo(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 255)
		return 0;
	int prev_alnum = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (is_lower_alnum(c)) {
			prev_alnum = 1;
		} else if (c == '/' || c == '.' || c == '_' || c == '-') {
			if (!prev_alnum && c == '/')
				return 0;
			if (i == 0 || i + 1 == n)
				return 0;
			if (c == '/' && !is_lower_alnum((unsigned char)s[i + 1]))
				return 0;
			prev_alnum = 0;
		} else {
			return 0;
		}
	}
	return prev_alnum;
}

static int valid_tag(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '_' || (i && (c == '.' || c == '-'))))
			return 0;
	}
	return 1;
}

/* HOST[:PORT]: a DNS name or IPv4 address, an optional port 1..65535 */
static int valid_host(const char *s)
{
	size_t n = strcspn(s, ":");
	if (!n || n > 253)
		return 0;
	/* labels of letters, digits and '-', each starting and ending with a
	 * letter or digit: "." and "../x" are folders, not hosts */
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		int edge = !i || i == n - 1 || s[i - 1] == '.' || s[i + 1] == '.';
		if (!(isalnum(c) || (!edge && (c == '.' || c == '-'))))
			return 0;
	}
	if (!s[n])
		return 1;
	const char *p = s + n + 1;
	if (!*p || strlen(p) > 5)
		return 0;
	for (const char *q = p; *q; q++)
		if (!isdigit((unsigned char)*q))
			return 0;
	long port = strtol(p, NULL, 10);
	return port >= 1 && port <= 65535;
}

static int valid_digest(const char *s)
{
	return !strncmp(s, "sha256:", 7) && veil_is_sha256_hex(s + 7);
}

static int copy_str(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap)
		return VEIL_ELIMIT;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

int veil_image_ref_parse(const char *s, struct veil_image_ref *out, struct veil_diags *d)
{
	struct veil_image_ref r;
	memset(&r, 0, sizeof(r));
	const char *orig = s;
	if (!strncmp(s, "docker://", 9))
		s += 9;
	if (strlen(s) > 1024)
		goto bad;
	const char *slash = strchr(s, '/');
	const char *name = s;
	if (slash && (memchr(s, '.', (size_t)(slash - s)) || memchr(s, ':', (size_t)(slash - s)) ||
		      ((size_t)(slash - s) == 9 && !strncmp(s, "localhost", 9)))) {
		if (copy_str(r.host, sizeof(r.host), s, (size_t)(slash - s)) || !valid_host(r.host))
			goto bad;
		name = slash + 1;
	} else {
		/* a Docker Hub name, as docker and podman read it */
		snprintf(r.host, sizeof(r.host), "docker.io");
	}
	const char *at = strchr(name, '@');
	size_t name_len = at ? (size_t)(at - name) : strlen(name);
	if (at) {
		if (copy_str(r.digest, sizeof(r.digest), at + 1, strlen(at + 1)) ||
		    !valid_digest(r.digest))
			goto bad;
	}
	/* a tag is after the last ':' that follows the last '/' */
	const char *last_slash = memrchr(name, '/', name_len);
	const char *colon = memchr(last_slash ? last_slash : name, ':',
				   name_len - (size_t)((last_slash ? last_slash : name) - name));
	size_t repo_len = colon ? (size_t)(colon - name) : name_len;
	if (colon) {
		if (copy_str(r.tag, sizeof(r.tag), colon + 1, name_len - repo_len - 1) ||
		    !valid_tag(r.tag))
			goto bad;
	}
	char repo[256];
	if (copy_str(repo, sizeof(repo), name, repo_len))
		goto bad;
	if (!strcmp(r.host, "docker.io") && !strchr(repo, '/')) {
		if (snprintf(r.repo, sizeof(r.repo), "library/%s", repo) >= (int)sizeof(r.repo))
			goto bad;
	} else {
		memcpy(r.repo, repo, repo_len + 1);
	}
	if (!valid_repo(r.repo))
		goto bad;
	if (r.digest[0])
		r.tag[0] = '\0'; /* name:tag@digest: the digest decides */
	else if (!r.tag[0])
		snprintf(r.tag, sizeof(r.tag), "latest");
	*out = r;
	return 0;
bad:
	veil_diag(d,
		  "'%.200s' is not an image reference: expected "
		  "[docker://]HOST[:PORT]/REPO[:TAG|@sha256:HEX] (REPO lower case)",
		  orig);
	return VEIL_EINVAL;
}

/* RFC 7235 challenge: scheme SP param=("quoted"|token) *("," param) */
int veil_auth_challenge_parse(const char *h, struct veil_auth_challenge *out)
{
	struct veil_auth_challenge c;
	memset(&c, 0, sizeof(c));
	while (*h == ' ' || *h == '\t')
		h++;
	size_t n = strcspn(h, " \t,");
	if (!n || n >= sizeof(c.scheme))
		return VEIL_EINVAL;
	memcpy(c.scheme, h, n);
	if (strcasecmp(c.scheme, "Basic") && strcasecmp(c.scheme, "Bearer"))
		return VEIL_EINVAL;
	snprintf(c.scheme, sizeof(c.scheme), "%s",
		 tolower((unsigned char)c.scheme[1]) == 'a' ? "Basic" : "Bearer");
	h += n;
	for (;;) {
		while (*h == ' ' || *h == '\t' || *h == ',')
			h++;
		if (!*h || *h == '\r' || *h == '\n')
			break;
		size_t kn = strcspn(h, "= \t,");
		if (!kn || h[kn] != '=')
			return VEIL_EINVAL;
		const char *key = h;
		h += kn + 1;
		char val[1024];
		size_t vn = 0;
		if (*h == '"') {
			h++;
			while (*h && *h != '"') {
				if (*h == '\\' && h[1])
					h++;
				if (vn + 1 >= sizeof(val))
					return VEIL_EINVAL;
				val[vn++] = *h++;
			}
			if (*h != '"')
				return VEIL_EINVAL;
			h++;
		} else {
			while (*h && *h != ',' && *h != ' ' && *h != '\t' && *h != '\r' &&
			       *h != '\n') {
				if (vn + 1 >= sizeof(val))
					return VEIL_EINVAL;
				val[vn++] = *h++;
			}
		}
		val[vn] = '\0';
		char *dst = NULL;
		size_t cap = 0;
		if (kn == 5 && !strncasecmp(key, "realm", 5))
			dst = c.realm, cap = sizeof(c.realm);
		else if (kn == 7 && !strncasecmp(key, "service", 7))
			dst = c.service, cap = sizeof(c.service);
		else if (kn == 5 && !strncasecmp(key, "scope", 5))
			dst = c.scope, cap = sizeof(c.scope);
		if (dst && copy_str(dst, cap, val, vn))
			return VEIL_EINVAL;
	}
	if (!strcmp(c.scheme, "Bearer") && !c.realm[0])
		return VEIL_EINVAL;
	*out = c;
	return 0;
}

#define OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

static int is_index_type(const char *t)
{
	return !strcmp(t, "application/vnd.oci.image.index.v1+json") ||
	       !strcmp(t, "application/vnd.docker.distribution.manifest.list.v2+json");
}

static int is_manifest_type(const char *t)
{
	return !strcmp(t, "application/vnd.oci.image.manifest.v1+json") ||
	       !strcmp(t, "application/vnd.docker.distribution.manifest.v2+json");
}

static int get_str(json_t *o, const char *key, char *dst, size_t cap, int required)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return required ? VEIL_EINVAL : 0;
	const char *s = json_string_value(v);
	return s ? copy_str(dst, cap, s, strlen(s)) : VEIL_EINVAL;
}

/* An informative field (platform, name): not a string is an error; too long
 * to be one veil looks for is left empty, not an error. */
static int get_hint(json_t *o, const char *key, char *dst, size_t cap)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	const char *s = json_string_value(v);
	if (!s)
		return VEIL_EINVAL;
	if (copy_str(dst, cap, s, strlen(s)))
		dst[0] = '\0';
	return 0;
}

static int parse_descriptor(json_t *j, struct veil_descriptor *out, const char *what,
			    struct veil_diags *d)
{
	memset(out, 0, sizeof(*out));
	json_t *size = json_object_get(j, "size");
	if (!json_is_object(j) ||
	    get_str(j, "mediaType", out->media_type, sizeof(out->media_type), 1) ||
	    get_str(j, "digest", out->digest, sizeof(out->digest), 1) || !json_is_integer(size) ||
	    json_integer_value(size) < 0) {
		veil_diag(d, "%s: a descriptor needs mediaType, digest and size", what);
		return VEIL_EINVAL;
	}
	out->size = (uint64_t)json_integer_value(size);
	if (!valid_digest(out->digest)) {
		veil_diag(d, "%s: digest '%.80s' is not sha256:<64 lower-case hex digits>", what,
			  out->digest);
		return VEIL_EINVAL;
	}
	json_t *p = json_object_get(j, "platform");
	if (p && (!json_is_object(p) || get_hint(p, "os", out->os, sizeof(out->os)) ||
		  get_hint(p, "architecture", out->arch, sizeof(out->arch)))) {
		veil_diag(d, "%s: bad platform", what);
		return VEIL_EINVAL;
	}
	json_t *a = json_object_get(j, "annotations");
	if (a && (!json_is_object(a) || get_hint(a, "org.opencontainers.image.ref.name",
						 out->ref_name, sizeof(out->ref_name)))) {
		veil_diag(d, "%s: bad org.opencontainers.image.ref.name", what);
		return VEIL_EINVAL;
	}
	return 0;
}

void veil_manifest_info_free(struct veil_manifest_info *m)
{
	free(m->items);
	memset(m, 0, sizeof(*m));
}

int veil_manifest_parse(const char *data, size_t size, const char *content_type,
			struct veil_manifest_info *out, struct veil_diags *d)
{
	struct veil_manifest_info m;
	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (size > VEIL_MANIFEST_MAX) {
		veil_diag(d, "manifest of %zu bytes: more than the %zu allowed", size,
			  VEIL_MANIFEST_MAX);
		return VEIL_ELIMIT;
	}
	json_error_t je;
	json_t *j = json_loadb(data, size, JSON_REJECT_DUPLICATES, &je);
	if (!j || !json_is_object(j)) {
		veil_diag(d, "manifest: not a JSON object%s%s", j ? "" : ": ", j ? "" : je.text);
		json_decref(j);
		return VEIL_EINVAL;
	}
	int rc = VEIL_EINVAL;
	json_t *sv = json_object_get(j, "schemaVersion");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
		veil_diag(d, "manifest: schemaVersion must be 2");
		goto out;
	}
	if (get_str(j, "mediaType", m.media_type, sizeof(m.media_type), 0)) {
		veil_diag(d, "manifest: bad mediaType");
		goto out;
	}
	const char *ct = content_type && *content_type ? content_type : NULL;
	if (!m.media_type[0] && ct) {
		size_t n = strcspn(ct, "; ");
		if (copy_str(m.media_type, sizeof(m.media_type), ct, n)) {
			veil_diag(d, "manifest: bad content type");
			goto out;
		}
	}
	json_t *list = json_object_get(j, "manifests");
	json_t *layers = json_object_get(j, "layers");
	if (!m.media_type[0]) /* OCI allows it to be absent: the shape decides */
		snprintf(m.media_type, sizeof(m.media_type), "%s",
			 list ? "application/vnd.oci.image.index.v1+json"
			      : "application/vnd.oci.image.manifest.v1+json");
	m.is_index = is_index_type(m.media_type);
	if (!m.is_index && !is_manifest_type(m.media_type)) {
		veil_diag(d,
			  "manifest: media type '%.100s' is neither an image manifest nor an index",
			  m.media_type);
		goto out;
	}
	json_t *arr = m.is_index ? list : layers;
	if (!json_is_array(arr)) {
		veil_diag(d, "manifest: '%s' must be a list", m.is_index ? "manifests" : "layers");
		goto out;
	}
	if (json_array_size(arr) > VEIL_MANIFEST_MAX_ITEMS) {
		veil_diag(d, "manifest: more than %d entries", VEIL_MANIFEST_MAX_ITEMS);
		rc = VEIL_ELIMIT;
		goto out;
	}
	if (!m.is_index &&
	    parse_descriptor(json_object_get(j, "config"), &m.config, "manifest config", d))
		goto out;
	m.count = json_array_size(arr);
	if (m.count && !(m.items = calloc(m.count, sizeof(*m.items)))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < m.count; i++)
		if (parse_descriptor(json_array_get(arr, i), &m.items[i],
				     m.is_index ? "index entry" : "layer", d))
			goto out;
	*out = m;
	memset(&m, 0, sizeof(m));
	rc = 0;
out:
	veil_manifest_info_free(&m);
	json_decref(j);
	return rc;
}

/* ------------------------------------------------------------ credentials */

/* "USER:PASSWORD" in secure memory; NULL when none. */
struct creds {
	char *userpass;
	char source[300]; /* where they came from, for messages */
};

static void creds_free(struct creds *c)
{
	veil_secure_strfree(c->userpass);
	c->userpass = NULL;
}

static int creds_set(struct creds *c, const char *s, size_t n, const char *source,
		     struct veil_diags *d)
{
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	if (!n || !memchr(s, ':', n) || memchr(s, '\n', n) || memchr(s, '\0', n)) {
		veil_diag(d, "%s: expected one line USER:PASSWORD", source);
		return VEIL_EINVAL;
	}
	char *p = veil_secure_alloc(n + 1);
	if (!p)
		return VEIL_ENOMEM;
	memcpy(p, s, n);
	p[n] = '\0';
	c->userpass = p;
	snprintf(c->source, sizeof(c->source), "%s", source);
	return 0;
}

/* An auth file's key names a registry as "HOST[:PORT][/REPO...]", maybe with
 * a scheme and docker's legacy "/v1/" suffix. Returns the length of the key's
 * registry part that matches host/repo, or 0. */
static size_t auth_key_match(const char *key, const char *host, const char *repo)
{
	char k[600];
	if (!strncmp(key, "https://", 8))
		key += 8;
	else if (!strncmp(key, "http://", 7))
		key += 7;
	if (snprintf(k, sizeof(k), "%s", key) >= (int)sizeof(k))
		return 0;
	size_t n = strlen(k);
	if (n >= 4 && (!strcmp(k + n - 4, "/v1/") || !strcmp(k + n - 4, "/v2/")))
		k[n -= 4] = '\0';
	while (n && k[n - 1] == '/')
		k[--n] = '\0';
	char full[600];
	const char *h = host;
	if (!strncmp(k, "index.docker.io", 15) || !strncmp(k, "registry-1.docker.io", 20)) {
		/* docker's legacy key for Docker Hub */
		size_t skip = k[0] == 'i' ? 15 : 20;
		memmove(k + 9, k + skip, strlen(k + skip) + 1);
		memcpy(k, "docker.io", 9);
		n = strlen(k);
	}
	if (snprintf(full, sizeof(full), "%s/%s", h, repo) >= (int)sizeof(full))
		return 0;
	if (!strcmp(k, h))
		return n;
	/* a namespace key: a prefix of host/repo ending at a component */
	if (!strncmp(full, k, n) && (full[n] == '/' || full[n] == '\0') && n > strlen(h))
		return n;
	return 0;
}

/* 1: found (c set), 0: the file has no entry, <0: error */
static int creds_from_auth_file(struct creds *c, const char *path, const char *host,
				const char *repo, int must_exist, struct veil_diags *d)
{
	char *data = NULL;
	size_t size = 0;
	struct stat st;
	if (stat(path, &st) < 0 && !must_exist)
		return 0;
	int rc = veil_read_file(path, AUTH_FILE_MAX, &data, &size, d);
	if (rc)
		return rc;
	json_error_t je;
	json_t *j = json_loadb(data, size, 0, &je);
	OPENSSL_cleanse(data, size);
	free(data);
	if (!j) {
		/* je.text can quote the file: keep only the position */
		veil_diag(d, "%s:%d: not valid JSON", path, je.line);
		return VEIL_EINVAL;
	}
	json_t *auths = json_object_get(j, "auths");
	const char *key;
	json_t *v;
	size_t best = 0;
	const char *best_b64 = NULL;
	json_object_foreach(auths, key, v)
	{
		const char *b64 = json_string_value(json_object_get(v, "auth"));
		size_t m = b64 && *b64 ? auth_key_match(key, host, repo) : 0;
		if (m > best)
			best = m, best_b64 = b64;
	}
	rc = 0;
	if (best_b64) {
		size_t n = strlen(best_b64);
		unsigned char *raw = n < 8192 ? veil_secure_alloc(n + 1) : NULL;
		int len = raw ? EVP_DecodeBlock(raw, (const unsigned char *)best_b64, (int)n) : -1;
		if (len >= 0)
			for (size_t i = n; i > 0 && best_b64[i - 1] == '='; i--)
				len--;
		if (!raw || len <= 0 || n % 4) {
			veil_diag(d,
				  "%s: the entry for %s has an 'auth' that is not base64 "
				  "USER:PASSWORD",
				  path, host);
			rc = raw ? VEIL_EINVAL : VEIL_ENOMEM;
		} else {
			char source[300];
			snprintf(source, sizeof(source), "%s (entry for %s)", path, host);
			rc = creds_set(c, (const char *)raw, (size_t)len, source, d);
			if (!rc)
				rc = 1;
		}
		if (raw)
			veil_secure_free(raw, n + 1);
	}
	/* wipe what jansson holds (the base64 strings) before it is freed */
	json_object_foreach(auths, key, v)
	{
		json_t *a = json_object_get(v, "auth");
		const char *s = json_string_value(a);
		if (s)
			OPENSSL_cleanse((char *)s, strlen(s));
	}
	json_decref(j);
	return rc;
}

static int creds_load(struct creds *c, const struct veil_registry_opts *o, const char *host,
		      const char *repo, struct veil_diags *d)
{
	memset(c, 0, sizeof(*c));
	if (o && o->credentials_file) {
		char *data = NULL;
		size_t size = 0;
		int rc = veil_read_file(o->credentials_file, CREDENTIALS_MAX, &data, &size, d);
		if (rc)
			return rc;
		rc = creds_set(c, data, size, o->credentials_file, d);
		OPENSSL_cleanse(data, size);
		free(data);
		return rc;
	}
	const char *env = getenv("VEIL_REGISTRY_AUTH");
	if (env && *env)
		return creds_set(c, env, strlen(env), "$VEIL_REGISTRY_AUTH", d);
	if (o && o->auth_file) {
		int rc = creds_from_auth_file(c, o->auth_file, host, repo, 1, d);
		return rc < 0 ? rc : 0;
	}
	char path[4096];
	const char *p = getenv("REGISTRY_AUTH_FILE");
	if (p && *p) {
		int rc = creds_from_auth_file(c, p, host, repo, 1, d);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	p = getenv("XDG_RUNTIME_DIR");
	if (p && *p &&
	    snprintf(path, sizeof(path), "%s/containers/auth.json", p) < (int)sizeof(path)) {
		int rc = creds_from_auth_file(c, path, host, repo, 0, d);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	p = getenv("HOME");
	if (p && *p &&
	    snprintf(path, sizeof(path), "%s/.docker/config.json", p) < (int)sizeof(path)) {
		int rc = creds_from_auth_file(c, path, host, repo, 0, d);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	return 0;
}

/* ---------------------------------------------------------------- session */

struct headers {
	char www_authenticate[2048];
	char location[4096];
	char digest[VEIL_DIGEST_MAX];
	char content_type[128];
	int too_long;
};

/* Where a response body goes: a bounded buffer or a file, hashed. */
struct sink {
	struct veil_buf *buf;
	int fd;
	EVP_MD_CTX *md;
	uint64_t max, got;
	int over, io_error;
};

struct session {
	CURL *h;
	struct veil_image_ref ref; /* host: as written */
	char host[256];            /* contacted (after the mirror map) */
	char base[300];            /* "https://host" or "http://host" */
	int insecure;
	int push;
	struct creds creds;
	char *auth_header; /* secure memory: "Authorization: ..." */
	const struct veil_registry_opts *o;
	struct veil_registry_stats stats;
	char cainfo[4096], capath[4096];
	/* per request */
	struct headers hdr;
	struct veil_buf err; /* error body */
	long status;
	CURLcode curl_error; /* of the last request without an HTTP answer */
	int progress_shown;
	const char *progress_label;
	time_t progress_last;
	curl_off_t progress_now;
};

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct headers *h = arg;
	size_t n = size * nmemb;
	if (n >= 5 && !strncmp(p, "HTTP/", 5)) {
		memset(h, 0, sizeof(*h)); /* a new response (redirect, 100 Continue) */
		return n;
	}
	const char *colon = memchr(p, ':', n);
	if (!colon)
		return n;
	size_t kn = (size_t)(colon - p);
	const char *v = colon + 1;
	size_t vn = n - kn - 1;
	while (vn && (*v == ' ' || *v == '\t'))
		v++, vn--;
	while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
		vn--;
	char *dst = NULL;
	size_t cap = 0;
	if (kn == 16 && !strncasecmp(p, "WWW-Authenticate", 16)) {
		if (h->www_authenticate[0])
			return n; /* the first challenge */
		dst = h->www_authenticate, cap = sizeof(h->www_authenticate);
	} else if (kn == 8 && !strncasecmp(p, "Location", 8)) {
		dst = h->location, cap = sizeof(h->location);
	} else if (kn == 21 && !strncasecmp(p, "Docker-Content-Digest", 21)) {
		dst = h->digest, cap = sizeof(h->digest);
	} else if (kn == 12 && !strncasecmp(p, "Content-Type", 12)) {
		dst = h->content_type, cap = sizeof(h->content_type);
	}
	if (dst && copy_str(dst, cap, v, vn))
		h->too_long = 1;
	return n;
}

struct write_ctx {
	struct session *s;
	struct sink *sink;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct write_ctx *w = arg;
	size_t n = size * nmemb;
	long status = 0;
	curl_easy_getinfo(w->s->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300 || !w->sink) {
		/* an error's body: kept (bounded) for the message, else dropped */
		if (w->s->err.size + n <= ERROR_BODY_MAX)
			veil_buf_append(&w->s->err, p, n);
		return n;
	}
	struct sink *k = w->sink;
	if (k->got + n > k->max || k->got + n < k->got) {
		k->over = 1;
		return 0; /* aborts the transfer */
	}
	k->got += n;
	if (k->md && !EVP_DigestUpdate(k->md, p, n))
		return 0;
	if (k->buf)
		return veil_buf_append(k->buf, p, n) ? 0 : n;
	for (size_t off = 0; off < n;) {
		ssize_t r = write(k->fd, p + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			k->io_error = errno ? errno : EIO;
			return 0;
		}
		off += (size_t)r;
	}
	return n;
}

struct read_ctx {
	int fd;
	const char *path;
	int io_error;
};

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
	struct read_ctx *r = arg;
	for (;;) {
		ssize_t n = read(r->fd, p, size * nmemb);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r->io_error = errno;
			return CURL_READFUNC_ABORT;
		}
		return (size_t)n;
	}
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct session *s = arg;
	curl_off_t total = dltotal > ultotal ? dltotal : ultotal;
	curl_off_t now = dltotal > ultotal ? dlnow : ulnow;
	time_t t = time(NULL);
	/* at most a line a second, and the end once */
	if (total < PROGRESS_MIN || (s->progress_shown && now == s->progress_now) ||
	    (s->progress_shown && t == s->progress_last && now < total))
		return 0;
	s->progress_last = t;
	s->progress_now = now;
	s->progress_shown = 1;
	fprintf(stderr, "\r%s %s %7.1f / %.1f MiB", s->push ? "pushing" : "pulling",
		s->progress_label ? s->progress_label : "", (double)now / 1048576.0,
		(double)total / 1048576.0);
	fflush(stderr);
	return 0;
}

/* The registry's {"errors": [{"code", "message"}]} as printable text. */
static void describe_error_body(const struct veil_buf *b, char *out, size_t cap)
{
	out[0] = '\0';
	json_t *j = b->size ? json_loadb(b->data, b->size, 0, NULL) : NULL;
	json_t *errs = json_object_get(j, "errors");
	size_t i, off = 0;
	json_t *e;
	json_array_foreach(errs, i, e)
	{
		if (i >= 3)
			break;
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *msg = json_string_value(json_object_get(e, "message"));
		int n = snprintf(out + off, cap - off, "%s%s%s%s", i ? "; " : "", code ? code : "",
				 code && msg ? ": " : "", msg ? msg : "");
		if (n < 0 || (size_t)n >= cap - off)
			break;
		off += (size_t)n;
	}
	json_decref(j);
	for (char *p = out; *p; p++)
		if (!isprint((unsigned char)*p))
			*p = '?';
	if (strlen(out) > 300)
		memcpy(out + 297, "...", 4);
}

/* Does url go to this session's registry (so it may carry our credentials)? */
static int same_origin(const struct session *s, const char *url)
{
	size_t n = strlen(s->base);
	return !strncmp(url, s->base, n) && (url[n] == '/' || url[n] == '\0');
}

/* The authority of an http(s) URL ("host[:port]"), into out. */
static int url_authority(const char *url, int *https, char *out, size_t cap)
{
	const char *p;
	if (!strncmp(url, "https://", 8))
		p = url + 8, *https = 1;
	else if (!strncmp(url, "http://", 7))
		p = url + 7, *https = 0;
	else
		return VEIL_EINVAL;
	size_t n = strcspn(p, "/?#");
	if (memchr(p, '@', n)) /* userinfo in a URL: never */
		return VEIL_EINVAL;
	return copy_str(out, cap, p, n);
}

static int host_is_insecure(const struct veil_registry_opts *o, const char *host)
{
	for (size_t i = 0; o && i < o->insecure_count; i++)
		if (!strcmp(o->insecure[i], host))
			return 1;
	return 0;
}

enum { BODY_NONE, BODY_MEMORY, BODY_FILE };
struct request {
	const char *method;
	const char *url; /* absolute */
	const char *accept;
	const char *content_type;
	int body_kind;
	const void *body; /* BODY_MEMORY */
	size_t body_size;
	int fd; /* BODY_FILE: read from offset 0 */
	const char *path;
	uint64_t file_size;
	struct sink *sink; /* 2xx body; NULL: dropped */
	int follow;        /* GET/HEAD: follow redirects */
};

static void set_tls(struct session *s, int insecure_scheme_ok)
{
	if (s->insecure) {
		curl_easy_setopt(s->h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(s->h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		curl_easy_setopt(s->h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(s->h, CURLOPT_SSL_VERIFYHOST, 2L);
		if (s->cainfo[0])
			curl_easy_setopt(s->h, CURLOPT_CAINFO, s->cainfo);
		if (s->capath[0])
			curl_easy_setopt(s->h, CURLOPT_CAPATH, s->capath);
	}
	const char *protos = insecure_scheme_ok ? "http,https" : "https";
	curl_easy_setopt(s->h, CURLOPT_PROTOCOLS_STR, protos);
	curl_easy_setopt(s->h, CURLOPT_REDIR_PROTOCOLS_STR, protos);
}

/* One HTTP exchange, no authentication logic. Returns 0 with s->status set,
 * or a veil_err when no HTTP answer came (message given). */
static int perform(struct session *s, const struct request *rq, const char *auth_header,
		   struct veil_diags *d)
{
	CURL *h = s->h;
	struct curl_slist *hl = NULL;
	struct write_ctx w = {s, rq->sink};
	struct read_ctx rd = {rq->fd, rq->path, 0};
	int rc = 0;
	curl_easy_reset(h);
	memset(&s->hdr, 0, sizeof(s->hdr));
	s->err.size = 0;
	s->status = 0;
	s->progress_shown = 0;
	if (rq->sink) {
		rq->sink->got = 0;
		if (rq->sink->buf)
			rq->sink->buf->size = 0;
		if (rq->sink->fd >= 0 && !rq->sink->buf &&
		    (lseek(rq->sink->fd, 0, SEEK_SET) < 0 || ftruncate(rq->sink->fd, 0) < 0))
			return VEIL_EIO;
		if (rq->sink->md && !EVP_DigestInit_ex(rq->sink->md, EVP_sha256(), NULL))
			return VEIL_ENOMEM;
	}
	curl_easy_setopt(h, CURLOPT_URL, rq->url);
	set_tls(s, s->insecure);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "veil/" VEIL_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
	/* a stalled transfer, not a long one, is an error */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &s->hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
	if (rq->follow) {
		/* curl drops a custom Authorization header on a redirect to another host */
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	}
	if (s->o && s->o->progress && isatty(2)) {
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
	}
	if (rq->accept)
		hl = curl_slist_append(hl, rq->accept);
	if (auth_header)
		hl = curl_slist_append(hl, auth_header);
	char ct[200];
	if (rq->content_type) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", rq->content_type);
		hl = curl_slist_append(hl, ct);
	}
	if (!strcmp(rq->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (rq->body_kind == BODY_FILE) {
		if (lseek(rq->fd, 0, SEEK_SET) < 0) {
			rc = VEIL_EIO;
			goto out;
		}
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &rd);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->file_size);
		/* Expect: 100-continue would wait 1 s for registries that never send it */
		hl = curl_slist_append(hl, "Expect:");
		hl = curl_slist_append(hl, "Content-Type: application/octet-stream");
	} else if (rq->body_kind == BODY_MEMORY || !strcmp(rq->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_size);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	} else if (strcmp(rq->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	CURLcode e = curl_easy_perform(h);
	s->curl_error = e;
	s->stats.requests++;
	if (s->progress_shown)
		fputs("\n", stderr);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
	/* the path only: an upload URL's query is the registry's state */
	char shown[300];
	const char *path = strstr(rq->url, "://");
	path = path ? path + 3 + strcspn(path + 3, "/") : rq->url;
	snprintf(shown, sizeof(shown), "%.*s", (int)strcspn(path, "?"), path);
	if (s->o && s->o->verbose)
		fprintf(stderr, "registry: %s %s%s -> %ld\n", rq->method, s->host, shown,
			s->status);
	if (rq->sink && rq->sink->over) {
		veil_diag(d, "%s: %s %s%s: the answer is larger than the %llu bytes expected",
			  s->host, rq->method, s->host, shown, (unsigned long long)rq->sink->max);
		rc = VEIL_ELIMIT;
	} else if (rq->sink && rq->sink->io_error) {
		veil_diag(d, "%s: cannot write: %s", rq->path ? rq->path : "download",
			  strerror(rq->sink->io_error));
		rc = VEIL_EIO;
	} else if (rd.io_error) {
		veil_diag(d, "%s: cannot read: %s", rq->path, strerror(rd.io_error));
		rc = VEIL_EIO;
	} else if (e != CURLE_OK) {
		veil_diag(d, "%s: %s %s: %s", s->host, rq->method, shown, curl_easy_strerror(e));
		rc = (e == CURLE_PEER_FAILED_VERIFICATION || e == CURLE_SSL_CONNECT_ERROR)
			 ? VEIL_EINVAL
			 : VEIL_EIO;
	} else if (s->hdr.too_long) {
		veil_diag(d, "%s: %s %s: an answer header is too long", s->host, rq->method, shown);
		rc = VEIL_EINVAL;
	}
out:
	/* curl's copy of the Authorization header: wiped like ours */
	for (struct curl_slist *l = hl; l; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(hl);
	return rc;
}

static void set_auth_header(struct session *s, const char *scheme, const char *value, size_t n)
{
	veil_secure_strfree(s->auth_header);
	size_t len = strlen("Authorization: ") + strlen(scheme) + 1 + n + 1;
	s->auth_header = veil_secure_alloc(len);
	if (s->auth_header)
		snprintf(s->auth_header, len, "Authorization: %s %.*s", scheme, (int)n, value);
}

static int set_basic(struct session *s)
{
	size_t n = strlen(s->creds.userpass);
	size_t cap = 4 * ((n + 2) / 3) + 1;
	char *b64 = veil_secure_alloc(cap);
	if (!b64)
		return VEIL_ENOMEM;
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)s->creds.userpass, (int)n);
	set_auth_header(s, "Basic", b64, strlen(b64));
	veil_secure_free(b64, cap);
	return s->auth_header ? 0 : VEIL_ENOMEM;
}

/* Answers the challenge: Basic with the credentials, or a Bearer token from
 * the realm (with the credentials, if any, as Basic). */
static int authenticate(struct session *s, const char *scope, struct veil_diags *d)
{
	struct veil_auth_challenge c;
	if (veil_auth_challenge_parse(s->hdr.www_authenticate, &c)) {
		veil_diag(d, "%s: HTTP 401 with a challenge veil does not understand: '%.200s'",
			  s->host, s->hdr.www_authenticate);
		return VEIL_EINVAL;
	}
	if (!strcmp(c.scheme, "Basic")) {
		if (!s->creds.userpass) {
			veil_diag(d,
				  "%s: HTTP 401: the registry wants a user name and password: give "
				  "--registry-auth FILE, or log in (podman login / docker login)",
				  s->host);
			return VEIL_EINVAL;
		}
		return set_basic(s);
	}
	/* Bearer: the token endpoint gets the credentials, so it must be HTTPS
	 * (or a registry the user named insecure) */
	int https = 0;
	char authority[300];
	if (url_authority(c.realm, &https, authority, sizeof(authority)) ||
	    (!https && !host_is_insecure(s->o, authority))) {
		veil_diag(d,
			  "%s: the token realm '%.200s' is not an https:// URL (plain HTTP only "
			  "for a host named with --insecure-registry)",
			  s->host, c.realm);
		return VEIL_EINVAL;
	}
	const char *sc = scope && *scope ? scope : c.scope;
	struct veil_buf url, body;
	veil_buf_init(&url, 8192);
	veil_buf_init(&body, TOKEN_BODY_MAX);
	char *esc_service = curl_easy_escape(s->h, c.service, 0);
	char *esc_scope = curl_easy_escape(s->h, sc, 0);
	veil_buf_printf(&url, "%s%c", c.realm, strchr(c.realm, '?') ? '&' : '?');
	if (c.service[0])
		veil_buf_printf(&url, "service=%s&", esc_service ? esc_service : "");
	if (sc && *sc)
		veil_buf_printf(&url, "scope=%s", esc_scope ? esc_scope : "");
	curl_free(esc_service);
	curl_free(esc_scope);
	int rc = url.failed ? VEIL_ENOMEM : 0;
	char *basic = NULL;
	if (!rc && s->creds.userpass) {
		if (!(rc = set_basic(s))) {
			basic = s->auth_header;
			s->auth_header = NULL;
		}
	}
	struct sink sink = {.buf = &body, .fd = -1, .max = TOKEN_BODY_MAX};
	struct request rq = {.method = "GET", .url = url.data, .sink = &sink, .follow = 1};
	int saved_insecure = s->insecure;
	s->insecure = host_is_insecure(s->o, authority);
	if (!rc)
		rc = perform(s, &rq, basic, d);
	s->insecure = saved_insecure;
	veil_secure_strfree(basic);
	if (!rc && s->status != 200) {
		char why[400];
		describe_error_body(&s->err, why, sizeof(why));
		veil_diag(d, "%s: the token service %s answered HTTP %ld%s%s%s%s", s->host,
			  authority, s->status, why[0] ? " (" : "", why, why[0] ? ")" : "",
			  s->status == 401 ? (s->creds.userpass ? ": the credentials were refused"
								: ": credentials are needed")
					   : "");
		rc = VEIL_EINVAL;
	}
	json_t *j = rc ? NULL : json_loadb(body.data, body.size, 0, NULL);
	const char *tok = json_string_value(json_object_get(j, "token"));
	if (!tok || !*tok)
		tok = json_string_value(json_object_get(j, "access_token"));
	if (!rc && (!tok || !*tok || strpbrk(tok, "\r\n"))) {
		veil_diag(d, "%s: the token service %s gave no token", s->host, authority);
		rc = VEIL_EINVAL;
	}
	if (!rc) {
		set_auth_header(s, "Bearer", tok, strlen(tok));
		if (!s->auth_header)
			rc = VEIL_ENOMEM;
	}
	if (tok)
		OPENSSL_cleanse((char *)tok, strlen(tok));
	json_decref(j);
	OPENSSL_cleanse(body.data, body.size);
	veil_buf_free(&body);
	veil_buf_free(&url);
	return rc;
}

static const char *session_scope(const struct session *s, char *buf, size_t cap)
{
	snprintf(buf, cap, "repository:%s:%s", s->ref.repo, s->push ? "pull,push" : "pull");
	return buf;
}

/* A request with authentication: on 401, answer the challenge and retry once. */
static int request(struct session *s, const struct request *rq, struct veil_diags *d)
{
	const char *auth = same_origin(s, rq->url) ? s->auth_header : NULL;
	int rc = perform(s, rq, auth, d);
	if (rc || s->status != 401 || !same_origin(s, rq->url))
		return rc;
	char scope[400];
	int had_auth = auth != NULL;
	/* a token for other scopes: ask again; the same Basic credentials: refused */
	if (had_auth && !strncmp(s->auth_header, "Authorization: Basic", 20))
		return 0;
	if ((rc = authenticate(s, session_scope(s, scope, sizeof(scope)), d)))
		return rc;
	return perform(s, rq, s->auth_header, d);
}

/* "HTTP 404 (MANIFEST_UNKNOWN: manifest unknown)" and the credentials' source */
static void http_error(struct session *s, const char *what, struct veil_diags *d)
{
	char why[400];
	describe_error_body(&s->err, why, sizeof(why));
	char hint[400] = "";
	if (s->status == 401 && s->creds.userpass)
		snprintf(hint, sizeof(hint), ": the credentials from %s were refused",
			 s->creds.source);
	else if (s->status == 401)
		snprintf(hint, sizeof(hint),
			 ": credentials needed (--registry-auth FILE or an auth file)");
	else if (s->status == 403)
		snprintf(hint, sizeof(hint), ": not allowed for these credentials");
	if (!why[0] && !strcmp(what, "HEAD"))
		snprintf(why, sizeof(why), "a HEAD answer has no error body");
	veil_diag(d, "%s/%s: %s: HTTP %ld%s%s%s%s", s->host, s->ref.repo, what, s->status,
		  why[0] ? " (" : "", why, why[0] ? ")" : "", hint);
}

static void session_free(struct session *s)
{
	if (s->h)
		curl_easy_cleanup(s->h);
	creds_free(&s->creds);
	veil_secure_strfree(s->auth_header);
	veil_buf_free(&s->err);
	memset(s, 0, sizeof(*s));
}

/* Parses ref, maps it through the mirrors, loads credentials and pings
 * /v2/ (which decides between HTTPS and, for an insecure host, HTTP). */
static int session_open(struct session *s, const char *ref, int push,
			const struct veil_registry_opts *o, struct veil_diags *d)
{
	memset(s, 0, sizeof(*s));
	veil_buf_init(&s->err, ERROR_BODY_MAX + 1);
	s->o = o;
	s->push = push;
	int rc = veil_image_ref_parse(ref, &s->ref, d);
	if (rc)
		return rc;
	const char *host = s->ref.host;
	for (size_t i = 0; o && i < o->mirror_count; i++)
		if (!strcmp(o->mirrors[i].from, host)) {
			host = o->mirrors[i].to;
			break;
		}
	if (!strcmp(host, "docker.io"))
		host = "registry-1.docker.io";
	if (copy_str(s->host, sizeof(s->host), host, strlen(host)) || !valid_host(s->host)) {
		veil_diag(d, "registry '%.200s' is not HOST[:PORT]", host);
		return VEIL_EINVAL;
	}
	s->insecure = host_is_insecure(o, s->host);
	if (push && o && o->mount_from && !valid_repo(o->mount_from)) {
		veil_diag(d, "mount from '%.200s': not a repository name (lower case REPO)",
			  o->mount_from);
		return VEIL_EINVAL;
	}
	const char *ca = getenv("SSL_CERT_FILE"), *cadir = getenv("SSL_CERT_DIR");
	if (ca && *ca)
		snprintf(s->cainfo, sizeof(s->cainfo), "%s", ca);
	if (cadir && *cadir)
		snprintf(s->capath, sizeof(s->capath), "%s", cadir);
	/* auth files name Docker Hub "docker.io" (or its legacy URL) */
	const char *lookup = !strcmp(s->host, "registry-1.docker.io") ? "docker.io" : s->host;
	if ((rc = creds_load(&s->creds, o, lookup, s->ref.repo, d)))
		return rc;
	if (!(s->h = curl_easy_init()))
		return VEIL_ENOMEM;
	char url[400];
	struct request rq = {.method = "GET", .url = url};
	snprintf(s->base, sizeof(s->base), "https://%s", s->host);
	snprintf(url, sizeof(url), "%s/v2/", s->base);
	struct veil_diags quiet;
	veil_diags_init(&quiet);
	rc = perform(s, &rq, NULL, s->insecure ? &quiet : d);
	if (rc && s->insecure) {
		/* an insecure registry may speak plain HTTP */
		CURLcode https_error = s->curl_error;
		snprintf(s->base, sizeof(s->base), "http://%s", s->host);
		snprintf(url, sizeof(url), "%s/v2/", s->base);
		rc = perform(s, &rq, NULL, &quiet);
		if (rc)
			veil_diag(d, "%s: neither HTTPS (%s) nor HTTP (%s) answered", s->host,
				  curl_easy_strerror(https_error),
				  curl_easy_strerror(s->curl_error));
	} else if (rc && s->curl_error == CURLE_PEER_FAILED_VERIFICATION) {
		veil_diag(d,
			  "%s: TLS verification failed; give the registry's CA in SSL_CERT_FILE, "
			  "or (only for a test registry) --insecure-registry %s",
			  s->host, s->host);
	} else if (rc && s->curl_error == CURLE_SSL_CONNECT_ERROR) {
		veil_diag(
		    d,
		    "%s: no TLS handshake (a plain-HTTP registry is used only when named with "
		    "--insecure-registry %s)",
		    s->host, s->host);
	}
	veil_diags_free(&quiet);
	if (rc)
		return rc;
	if (s->status == 401 && s->hdr.www_authenticate[0]) {
		char scope[400];
		rc = authenticate(s, session_scope(s, scope, sizeof(scope)), d);
		/* the credentials checked now, with the registry's own answer */
		if (!rc)
			rc = perform(s, &rq, s->auth_header, d);
		if (!rc && s->status != 200) {
			http_error(s, "GET /v2/ (checking the credentials)", d);
			rc = VEIL_EINVAL;
		}
	} else if (s->status != 200) {
		http_error(s, "GET /v2/ (is this an OCI registry?)", d);
		rc = VEIL_EINVAL;
	}
	return rc;
}

static void api_url(const struct session *s, char *out, size_t cap, const char *kind,
		    const char *ref)
{
	snprintf(out, cap, "%s/v2/%s/%s/%s", s->base, s->ref.repo, kind, ref);
}

/* 0, or VEIL_EIO with the reason in d (OpenSSL failed) */
static int digest_of(const void *data, size_t size, char out[VEIL_DIGEST_MAX], struct veil_diags *d)
{
	uint8_t h[VEIL_SHA256_SIZE];
	if (veil_sha256(data, size, h)) {
		veil_diag(d, "cannot compute a SHA-256 (OpenSSL failed)");
		return VEIL_EIO;
	}
	memcpy(out, "sha256:", 7);
	veil_hex(h, sizeof(h), out + 7);
	return 0;
}

/* ------------------------------------------------------------------- push */

static char *blob_path(const char *layout, const char *digest)
{
	size_t n = strlen(layout) + 100;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/blobs/sha256/%s", layout, digest + 7);
	return p;
}

static int push_blob(struct session *s, const char *layout, const struct veil_descriptor *b,
		     struct veil_diags *d)
{
	char url[5000];
	api_url(s, url, sizeof(url), "blobs", b->digest);
	struct request head = {.method = "HEAD", .url = url, .follow = 1};
	int rc = request(s, &head, d);
	if (rc)
		return rc;
	if (s->status == 200) {
		s->stats.blobs_present++;
		return 0;
	}
	if (s->status != 404) {
		char what[120];
		snprintf(what, sizeof(what), "HEAD blob %.19s", b->digest);
		http_error(s, what, d);
		return VEIL_EINVAL;
	}
	char *path = blob_path(layout, b->digest);
	if (!path)
		return VEIL_ENOMEM;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != b->size) {
		veil_diag(d, "%s: %s (the layout's blob %s of %llu bytes)", path,
			  fd < 0 ? strerror(errno)
				 : "not a regular file of the size the manifest says",
			  b->digest, (unsigned long long)b->size);
		rc = VEIL_EINVAL;
		goto out;
	}
	/* a cross-repository mount: the registry links the blob (201) or, if it
	 * cannot (not there, not allowed), starts an upload as without it (202) */
	const char *from = s->o ? s->o->mount_from : NULL;
	int mount = from && strcmp(from, s->ref.repo);
	if (mount)
		snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/?mount=%s&from=%s", s->base,
			 s->ref.repo, b->digest, from);
	else
		snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/", s->base, s->ref.repo);
	struct request post = {.method = "POST", .url = url};
	if ((rc = request(s, &post, d)))
		goto out;
	if (mount && s->status == 201) {
		s->stats.blobs_mounted++;
		goto out;
	}
	if (s->status != 202 || !s->hdr.location[0]) {
		http_error(s, "starting a blob upload (POST)", d);
		rc = VEIL_EINVAL;
		goto out;
	}
	char put[5000];
	const char *loc = s->hdr.location;
	const char *sep = strchr(loc, '?') ? "&" : "?";
	int n;
	if (!strncmp(loc, "http://", 7) || !strncmp(loc, "https://", 8)) {
		int https = 0;
		char authority[300];
		if (url_authority(loc, &https, authority, sizeof(authority)) ||
		    (!https && !host_is_insecure(s->o, authority))) {
			veil_diag(d, "%s: the upload location is not an https:// URL", s->host);
			rc = VEIL_EINVAL;
			goto out;
		}
		n = snprintf(put, sizeof(put), "%s%sdigest=%s", loc, sep, b->digest);
	} else if (loc[0] == '/') {
		n = snprintf(put, sizeof(put), "%s%s%sdigest=%s", s->base, loc, sep, b->digest);
	} else {
		veil_diag(d, "%s: the upload location is not a URL or an absolute path", s->host);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (n < 0 || (size_t)n >= sizeof(put)) {
		veil_diag(d, "%s: the upload location is too long", s->host);
		rc = VEIL_EINVAL;
		goto out;
	}
	struct request up = {.method = "PUT",
			     .url = put,
			     .body_kind = BODY_FILE,
			     .fd = fd,
			     .path = path,
			     .file_size = b->size};
	char label[32];
	snprintf(label, sizeof(label), "%.19s", b->digest);
	s->progress_label = label;
	rc = request(s, &up, d);
	s->progress_label = NULL;
	if (!rc && s->status != 201) {
		char what[120];
		snprintf(what, sizeof(what), "uploading blob %s (PUT)", b->digest);
		http_error(s, what, d);
		rc = VEIL_EINVAL;
	}
	if (!rc) {
		s->stats.blobs_sent++;
		s->stats.bytes_sent += b->size;
	}
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

/* Reads a manifest blob of the layout and checks it is what desc says. */
static int read_layout_manifest(const char *layout, const struct veil_descriptor *desc, char **data,
				size_t *size, struct veil_diags *d)
{
	char *path = blob_path(layout, desc->digest);
	if (!path)
		return VEIL_ENOMEM;
	int rc = veil_read_file(path, VEIL_MANIFEST_MAX, data, size, d);
	char dg[VEIL_DIGEST_MAX];
	if (rc) {
		free(path);
		return rc;
	}
	if (!(rc = digest_of(*data, *size, dg, d)) &&
	    (strcmp(dg, desc->digest) || *size != desc->size)) {
		veil_diag(d, "%s: the blob's content is %s (%zu bytes), not %s (%llu bytes)", path,
			  dg, *size, desc->digest, (unsigned long long)desc->size);
		rc = VEIL_EINVAL;
	}
	if (rc) {
		free(*data);
		*data = NULL;
	}
	free(path);
	return rc;
}

static int push_manifest(struct session *s, const char *layout, const struct veil_descriptor *desc,
			 const char *tag, int depth, char digest_out[VEIL_DIGEST_MAX],
			 struct veil_diags *d)
{
	char *data = NULL;
	size_t size = 0;
	struct veil_manifest_info m;
	memset(&m, 0, sizeof(m));
	int rc = read_layout_manifest(layout, desc, &data, &size, d);
	if (!rc)
		rc = veil_manifest_parse(data, size, desc->media_type, &m, d);
	if (rc)
		goto out;
	if (m.is_index) {
		if (depth > 0) {
			veil_diag(d, "%s: an index inside an index is not pushed", desc->digest);
			rc = VEIL_EINVAL;
			goto out;
		}
		for (size_t i = 0; i < m.count && !rc; i++)
			rc = push_manifest(s, layout, &m.items[i], NULL, depth + 1, NULL, d);
	} else {
		rc = push_blob(s, layout, &m.config, d);
		for (size_t i = 0; i < m.count && !rc; i++)
			rc = push_blob(s, layout, &m.items[i], d);
	}
	if (rc)
		goto out;
	char url[1000];
	api_url(s, url, sizeof(url), "manifests", tag ? tag : desc->digest);
	struct request put = {.method = "PUT",
			      .url = url,
			      .content_type = m.media_type,
			      .body_kind = BODY_MEMORY,
			      .body = data,
			      .body_size = size};
	if ((rc = request(s, &put, d)))
		goto out;
	if (s->status != 201 && s->status != 200) {
		char what[200];
		snprintf(what, sizeof(what), "PUT manifest %s", tag ? tag : desc->digest);
		http_error(s, what, d);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (s->hdr.digest[0] && strcmp(s->hdr.digest, desc->digest)) {
		veil_diag(d, "%s/%s: the registry stored the manifest as %s, not %s", s->host,
			  s->ref.repo, s->hdr.digest, desc->digest);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (digest_out)
		snprintf(digest_out, VEIL_DIGEST_MAX, "%s", desc->digest);
out:
	veil_manifest_info_free(&m);
	free(data);
	return rc;
}

/* The descriptor index.json names tag (NULL: its only entry). */
static int layout_find(const char *layout, const char *tag, struct veil_descriptor *out,
		       struct veil_diags *d)
{
	char *path = veil_path_join(layout, "index.json"), *data = NULL;
	size_t size = 0;
	struct veil_manifest_info idx;
	memset(&idx, 0, sizeof(idx));
	if (!path)
		return VEIL_ENOMEM;
	struct veil_diags inner;
	veil_diags_init(&inner);
	int rc = veil_read_file(path, VEIL_MANIFEST_MAX, &data, &size, d);
	if (!rc && (rc = veil_manifest_parse(data, size, NULL, &idx, &inner)) == 0 &&
	    !idx.is_index) {
		veil_diag(d, "%s: not an OCI image layout's index", path);
		rc = VEIL_EINVAL;
	} else if (rc && rc != VEIL_ENOENT && inner.count) {
		for (size_t i = 0; i < inner.count; i++)
			veil_diag(d, "%s: %s", path, inner.msgs[i]);
	}
	veil_diags_free(&inner);
	size_t found = idx.count;
	for (size_t i = 0; !rc && i < idx.count; i++) {
		if (tag ? !strcmp(idx.items[i].ref_name, tag) : idx.count == 1) {
			found = i;
			break;
		}
	}
	if (!rc && found == idx.count) {
		if (tag)
			veil_diag(d, "%s: no image named '%s' (org.opencontainers.image.ref.name)",
				  path, tag);
		else
			veil_diag(d, "%s: %zu images: name one", path, idx.count);
		rc = VEIL_ENOENT;
	}
	if (!rc)
		*out = idx.items[found];
	veil_manifest_info_free(&idx);
	free(data);
	free(path);
	return rc;
}

int veil_image_push(const char *layout_dir, const char *tag_in_layout, const char *ref,
		    const struct veil_registry_opts *o, char digest_out[VEIL_DIGEST_MAX],
		    struct veil_diags *d)
{
	struct session s;
	struct veil_descriptor desc;
	int rc = layout_find(layout_dir, tag_in_layout, &desc, d);
	if (rc)
		return rc;
	if ((rc = session_open(&s, ref, 1, o, d)))
		goto out;
	char dg[VEIL_DIGEST_MAX];
	if (s.ref.digest[0]) {
		if (strcmp(s.ref.digest, desc.digest)) {
			veil_diag(d, "%s names digest %s, but the image is %s", ref, s.ref.digest,
				  desc.digest);
			rc = VEIL_EINVAL;
			goto out;
		}
	}
	rc = push_manifest(&s, layout_dir, &desc, s.ref.digest[0] ? NULL : s.ref.tag, 0, dg, d);
	if (!rc && digest_out)
		memcpy(digest_out, dg, sizeof(dg));
out:
	if (o && o->stats)
		*o->stats = s.stats;
	session_free(&s);
	return rc;
}

/* ------------------------------------------------------------------- pull */

/* GET a manifest by tag or digest; checks its digest against `want` (a
 * digest) or the one the registry announces. */
static int get_manifest(struct session *s, const char *ref, struct veil_buf *body,
			char digest[VEIL_DIGEST_MAX], char *ctype, size_t ctype_cap,
			struct veil_diags *d)
{
	char url[1000];
	api_url(s, url, sizeof(url), "manifests", ref);
	struct sink sink = {.buf = body, .fd = -1, .max = VEIL_MANIFEST_MAX};
	struct request rq = {
	    .method = "GET", .url = url, .accept = accept_manifests, .sink = &sink, .follow = 1};
	int rc = request(s, &rq, d);
	if (rc)
		return rc;
	if (s->status != 200) {
		char what[200];
		snprintf(what, sizeof(what), "GET manifest %s", ref);
		http_error(s, what, d);
		return VEIL_EINVAL;
	}
	if ((rc = digest_of(body->data, body->size, digest, d)))
		return rc;
	const char *expect = valid_digest(ref) ? ref : s->hdr.digest[0] ? s->hdr.digest : NULL;
	if (expect && strcmp(expect, digest)) {
		veil_diag(d, "%s/%s: manifest %s: the registry sent bytes with digest %s", s->host,
			  s->ref.repo, expect, digest);
		return VEIL_EINVAL;
	}
	snprintf(ctype, ctype_cap, "%.*s", (int)strcspn(s->hdr.content_type, "; "),
		 s->hdr.content_type);
	return 0;
}

/* Downloads a blob into the layout, hashed while written; refused and removed
 * unless its size and digest are the descriptor's. */
static int pull_blob(struct session *s, const char *layout, const struct veil_descriptor *b,
		     struct veil_diags *d)
{
	char *path = blob_path(layout, b->digest);
	size_t tmp_size = path ? strlen(path) + 16 : 0;
	char *tmp = path ? malloc(tmp_size) : NULL;
	int rc = 0, fd = -1;
	if (tmp)
		tmp[0] = '\0'; /* nothing to remove yet */
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!path || !tmp || !md) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	/* a blob already there is kept only if it is what its name says */
	uint8_t h[VEIL_SHA256_SIZE];
	char hex[2 * VEIL_SHA256_SIZE + 1];
	struct stat st;
	if (!stat(path, &st) && (uint64_t)st.st_size == b->size &&
	    !veil_sha256_file(path, h, NULL)) {
		veil_hex(h, sizeof(h), hex);
		if (!strcmp(hex, b->digest + 7)) {
			s->stats.blobs_present++;
			goto out;
		}
	}
	snprintf(tmp, tmp_size, "%s.partXXXXXX", path);
	if ((fd = mkstemp(tmp)) < 0) {
		veil_diag(d, "%s: cannot create: %s", tmp, strerror(errno));
		tmp[0] = '\0';
		rc = VEIL_EIO;
		goto out;
	}
	char url[1000];
	api_url(s, url, sizeof(url), "blobs", b->digest);
	struct sink sink = {.fd = fd, .md = md, .max = b->size};
	struct request rq = {.method = "GET", .url = url, .sink = &sink, .path = tmp, .follow = 1};
	char label[32];
	snprintf(label, sizeof(label), "%.19s", b->digest);
	s->progress_label = label;
	rc = request(s, &rq, d);
	s->progress_label = NULL;
	if (rc) /* a blob longer than its size: perform named it */
		goto out;
	if (s->status != 200) {
		char what[120];
		snprintf(what, sizeof(what), "GET blob %s", b->digest);
		http_error(s, what, d);
		rc = VEIL_EINVAL;
		goto out;
	}
	unsigned len = 0;
	EVP_DigestFinal_ex(md, h, &len);
	veil_hex(h, sizeof(h), hex);
	if (sink.got != b->size || strcmp(hex, b->digest + 7)) {
		veil_diag(d,
			  "%s/%s: blob %s: the registry sent %llu bytes with digest sha256:%s "
			  "(expected %llu bytes); refused",
			  s->host, s->ref.repo, b->digest, (unsigned long long)sink.got, hex,
			  (unsigned long long)b->size);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (fchmod(fd, 0644) < 0 || close(fd) < 0) {
		fd = -1;
		veil_diag(d, "%s: %s", tmp, strerror(errno));
		rc = VEIL_EIO;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		veil_diag(d, "%s: cannot rename: %s", path, strerror(errno));
		rc = VEIL_EIO;
		goto out;
	}
	tmp[0] = '\0';
	s->stats.blobs_sent++;
	s->stats.bytes_sent += b->size;
out:
	if (fd >= 0)
		close(fd);
	if (tmp && tmp[0])
		unlink(tmp); /* a refused or partial download */
	EVP_MD_CTX_free(md);
	free(tmp);
	free(path);
	return rc;
}

/* index.json with the image named tag replaced by desc; written last. */
static int layout_add(const char *layout, const struct veil_descriptor *desc, const char *tag,
		      struct veil_diags *d)
{
	char *path = veil_path_join(layout, "index.json"), *data = NULL;
	char *olpath = veil_path_join(layout, "oci-layout");
	json_t *idx = NULL, *list = NULL;
	size_t size = 0;
	int rc = (!path || !olpath) ? VEIL_ENOMEM : 0;
	struct stat st;
	if (!rc && !stat(path, &st)) {
		if ((rc = veil_read_file(path, VEIL_MANIFEST_MAX, &data, &size, d)))
			goto out;
		json_error_t je;
		idx = json_loadb(data, size, 0, &je);
		list = json_object_get(idx, "manifests");
		if (!json_is_array(list)) {
			veil_diag(d, "%s: not an OCI image layout's index (kept as it is)", path);
			rc = VEIL_EINVAL;
			goto out;
		}
		for (size_t i = json_array_size(list); i-- > 0;) {
			json_t *a = json_object_get(json_array_get(list, i), "annotations");
			const char *n = json_string_value(
			    json_object_get(a, "org.opencontainers.image.ref.name"));
			if (n && !strcmp(n, tag))
				json_array_remove(list, i);
		}
	} else if (!rc) {
		idx = json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType",
				"application/vnd.oci.image.index.v1+json", "manifests");
		list = json_object_get(idx, "manifests");
	}
	if (rc)
		goto out;
	if (!idx || json_array_append_new(
			list, json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", desc->media_type,
					"digest", desc->digest, "size", (json_int_t)desc->size,
					"annotations", "org.opencontainers.image.ref.name", tag))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	char *text = json_dumps(idx, JSON_COMPACT);
	if (!text) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	static const char layout_file[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	rc = veil_write_file_nosync(olpath, layout_file, strlen(layout_file), 0644, d);
	/* every blob durable before the index that names them */
	if (!rc)
		rc = veil_sync_fs(layout, d);
	if (!rc)
		rc = veil_write_file(path, text, strlen(text), 0644, d);
	free(text);
out:
	json_decref(idx);
	free(data);
	free(path);
	free(olpath);
	return rc;
}

/* A Docker schema 2 manifest as the OCI manifest skopeo and podman write for
 * it: the same blobs, OCI media types (a Docker image config is an OCI image
 * config). An OCI layout's readers (skopeo's oci:, umoci) see OCI manifests
 * only. The manifest's digest changes; the blobs' do not. */
static int docker_to_oci(struct veil_buf *body, struct veil_diags *d)
{
	static const char *const map[][2] = {
	    {"application/vnd.docker.container.image.v1+json",
	     "application/vnd.oci.image.config.v1+json"},
	    {"application/vnd.docker.image.rootfs.diff.tar.gzip",
	     "application/vnd.oci.image.layer.v1.tar+gzip"},
	    {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
	     "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"},
	    {"application/vnd.docker.image.rootfs.diff.tar",
	     "application/vnd.oci.image.layer.v1.tar"},
	};
	json_t *j = json_loadb(body->data, body->size, 0, NULL);
	json_t *layers = json_object_get(j, "layers");
	int rc = j && json_is_array(layers) ? 0 : VEIL_EINVAL;
	for (size_t i = 0; !rc && i <= json_array_size(layers); i++) {
		json_t *desc = i ? json_array_get(layers, i - 1) : json_object_get(j, "config");
		const char *t = json_string_value(json_object_get(desc, "mediaType"));
		size_t k = 0;
		while (t && k < VEIL_ARRAY_LEN(map) && strcmp(map[k][0], t))
			k++;
		if (!t || k == VEIL_ARRAY_LEN(map) || (i == 0) != (k == 0)) {
			veil_diag(d,
				  "Docker manifest: %s media type '%.100s' has no OCI equivalent",
				  i ? "a layer's" : "the config's", t ? t : "");
			rc = VEIL_EINVAL;
		} else if (json_object_set_new(desc, "mediaType", json_string(map[k][1]))) {
			rc = VEIL_ENOMEM;
		}
	}
	char *text = NULL;
	if (!rc && (json_object_set_new(j, "mediaType", json_string(OCI_MANIFEST)) ||
		    !(text = json_dumps(j, JSON_COMPACT))))
		rc = VEIL_ENOMEM;
	if (!rc) {
		body->size = 0;
		if (veil_buf_puts(body, text))
			rc = VEIL_ENOMEM;
	}
	free(text);
	json_decref(j);
	return rc;
}

static int pick_platform(const struct session *s, const struct veil_manifest_info *idx,
			 struct veil_descriptor *out, struct veil_diags *d)
{
	for (size_t i = 0; i < idx->count; i++)
		if (!strcmp(idx->items[i].os, "linux") && !strcmp(idx->items[i].arch, "amd64") &&
		    is_manifest_type(idx->items[i].media_type)) {
			*out = idx->items[i];
			return 0;
		}
	veil_diag(d, "%s/%s: the index lists no linux/amd64 image (%zu entries)", s->host,
		  s->ref.repo, idx->count);
	return VEIL_EINVAL;
}

int veil_image_pull_digest(const char *ref, const char *layout_dir, const char *tag_in_layout,
			   const struct veil_registry_opts *o, char digest_out[VEIL_DIGEST_MAX],
			   struct veil_diags *d)
{
	struct session s;
	struct veil_buf body;
	struct veil_manifest_info m, idx;
	memset(&m, 0, sizeof(m));
	memset(&idx, 0, sizeof(idx));
	veil_buf_init(&body, VEIL_MANIFEST_MAX + 1);
	char digest[VEIL_DIGEST_MAX], ctype[128];
	struct veil_descriptor desc;
	memset(&desc, 0, sizeof(desc));
	int rc = session_open(&s, ref, 0, o, d);
	if (rc)
		goto out;
	const char *tag = tag_in_layout ? tag_in_layout : s.ref.tag[0] ? s.ref.tag : "latest";
	if (!valid_tag(tag)) {
		veil_diag(d, "'%s' is not a valid image name in a layout", tag);
		rc = VEIL_EINVAL;
		goto out;
	}
	if ((rc = get_manifest(&s, s.ref.digest[0] ? s.ref.digest : s.ref.tag, &body, digest, ctype,
			       sizeof(ctype), d)))
		goto out;
	if ((rc = veil_manifest_parse(body.data, body.size, ctype, &m, d)))
		goto out;
	if (m.is_index) {
		idx = m;
		memset(&m, 0, sizeof(m));
		struct veil_descriptor pick;
		if ((rc = pick_platform(&s, &idx, &pick, d)))
			goto out;
		if ((rc = get_manifest(&s, pick.digest, &body, digest, ctype, sizeof(ctype), d)))
			goto out;
		if ((rc = veil_manifest_parse(body.data, body.size, pick.media_type, &m, d)))
			goto out;
		if (m.is_index) {
			veil_diag(d, "%s: an index inside an index", pick.digest);
			rc = VEIL_EINVAL;
			goto out;
		}
	}
	/* the blobs are fetched by the registry's manifest, checked above */
	char registry_digest[VEIL_DIGEST_MAX];
	memcpy(registry_digest, digest, sizeof(digest));
	if (!strcmp(m.media_type, DOCKER_MANIFEST)) {
		if ((rc = docker_to_oci(&body, d)))
			goto out;
		if ((rc = digest_of(body.data, body.size, digest, d)))
			goto out;
		snprintf(m.media_type, sizeof(m.media_type), "%s", OCI_MANIFEST);
		if (o && o->verbose)
			fprintf(
			    stderr,
			    "registry: Docker schema 2 manifest %s written as OCI manifest %s\n",
			    registry_digest, digest);
	}
	snprintf(desc.media_type, sizeof(desc.media_type), "%s", m.media_type);
	memcpy(desc.digest, digest, sizeof(digest));
	desc.size = body.size;
	size_t blobs_size = strlen(layout_dir) + 32;
	char *blobs = malloc(blobs_size);
	if (!blobs) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	snprintf(blobs, blobs_size, "%s/blobs/sha256", layout_dir);
	rc = veil_mkdirs(blobs, 0755, d);
	free(blobs);
	if (!rc)
		rc = pull_blob(&s, layout_dir, &m.config, d);
	for (size_t i = 0; !rc && i < m.count; i++)
		rc = pull_blob(&s, layout_dir, &m.items[i], d);
	char *mpath = rc ? NULL : blob_path(layout_dir, digest);
	if (!rc && !mpath)
		rc = VEIL_ENOMEM;
	if (!rc)
		rc = veil_write_file_nosync(mpath, body.data, body.size, 0644, d);
	free(mpath);
	if (!rc)
		rc = layout_add(layout_dir, &desc, tag, d);
	if (!rc && digest_out)
		memcpy(digest_out, digest, sizeof(digest));
out:
	if (o && o->stats)
		*o->stats = s.stats;
	veil_manifest_info_free(&m);
	veil_manifest_info_free(&idx);
	veil_buf_free(&body);
	session_free(&s);
	return rc;
}

int veil_image_pull(const char *ref, const char *layout_dir, const char *tag_in_layout,
		    const struct veil_registry_opts *o, struct veil_diags *d)
{
	return veil_image_pull_digest(ref, layout_dir, tag_in_layout, o, NULL, d);
}
