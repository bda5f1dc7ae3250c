#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/pem.h>

#include "cli.h"
#include "client.h"

char *cli_home_dir(void)
{
	const char *h = getenv("VEIL_HOME");
	if (h && *h)
		return strdup(h);
	const char *u = getenv("HOME");
	if (!u || !*u) {
		struct passwd *pw = getpwuid(getuid());
		u = pw ? pw->pw_dir : "/";
	}
	char *base = veil_path_join(u, ".config");
	char *p = base ? veil_path_join(base, "veil") : NULL;
	free(base);
	return p;
}

char *client_normalize_url(const char *in)
{
	const char *host = in;
	if (!strncmp(host, "https://", 8))
		host += 8;
	else if (strstr(host, "://"))
		return NULL; /* only https */
	size_t n = strcspn(host, "/");
	if (n == 0 || n > 255 || (host[n] == '/' && host[n + 1]))
		return NULL; /* a path would be dropped silently */
	/* [v6]:port, host:port, host, :port (this machine) */
	size_t hlen = n;
	const char *port = NULL;
	if (host[0] == '[') {
		const char *close = memchr(host, ']', n);
		if (!close)
			return NULL;
		hlen = (size_t)(close - host) + 1;
		if (hlen < n && host[hlen] != ':')
			return NULL;
	} else {
		const char *colon = memchr(host, ':', n);
		if (colon)
			hlen = (size_t)(colon - host);
	}
	if (hlen < n)
		port = host + hlen + 1;
	char portbuf[8] = "8081";
	if (port) {
		size_t plen = n - hlen - 1;
		long v = 0;
		if (plen == 0 || plen >= sizeof(portbuf))
			return NULL;
		memcpy(portbuf, port, plen);
		portbuf[plen] = '\0';
		struct veil_diags pd;
		veil_diags_init(&pd);
		int bad = veil_parse_long("port", portbuf, 1, 65535, &v, &pd);
		veil_diags_free(&pd);
		if (bad)
			return NULL;
	}
	char *out = NULL;
	if (!hlen) {
		host = "127.0.0.1";
		hlen = strlen(host);
	}
	if (asprintf(&out, "https://%.*s:%s", (int)hlen, host, portbuf) < 0)
		return NULL;
	return out;
}

/* pin file name: the host:port with anything but [A-Za-z0-9.-] as '_' */
static char *pin_path(const struct client *c, const char *url)
{
	char name[300];
	size_t k = 0;
	for (const char *p = url + 8; *p && k + 1 < sizeof(name); p++)
		name[k++] = (isalnum((unsigned char)*p) || *p == '.' || *p == '-') ? *p : '_';
	name[k] = '\0';
	char *dir = veil_path_join(c->home, "cas");
	char *p = dir ? veil_path_join(dir, name) : NULL;
	free(dir);
	return p;
}

static int read_pin(struct client *c, struct veil_diags *d)
{
	char *p = pin_path(c, c->url), *data = NULL;
	size_t size = 0;
	c->pinned[0] = '\0';
	if (!p)
		return VEIL_ENOMEM;
	int rc = veil_read_file(p, 4096, &data, &size, NULL);
	if (rc == 0) {
		static const char field[] = "key_hash ";
		const char *hash = strstr(data, field);
		size_t n = 0;
		if (hash) {
			hash += sizeof(field) - 1;
			while (isspace((unsigned char)*hash))
				hash++;
			n = strcspn(hash, " \t\n\r\v\f");
		}
		if (n == VEIL_KEY_HASH_HEX - 1) {
			memcpy(c->pinned, hash, n);
			c->pinned[n] = '\0';
		} else {
			veil_diag(d, "%s: not a pin file (run 'veil cas attest %s' again)", p,
				  c->url);
		}
		rc = c->pinned[0] ? 0 : VEIL_EINVAL;
	} else if (rc == VEIL_ENOENT) {
		rc = 0;
	}
	free(data);
	free(p);
	return rc;
}

int client_pin(struct client *c, const char *key_hash, struct veil_diags *d)
{
	char *p = pin_path(c, c->url), *dir = veil_path_join(c->home, "cas"), *def = NULL;
	char buf[512];
	int rc = p && dir ? veil_mkdirs(dir, 0700, d) : VEIL_ENOMEM;
	if (!rc) {
		int n = snprintf(buf, sizeof(buf), "url %s\nkey_hash %s\n", c->url, key_hash);
		rc = veil_write_file(p, buf, (size_t)n, 0600, d);
	}
	if (!rc && (def = veil_path_join(dir, "default"))) {
		int n = snprintf(buf, sizeof(buf), "%s\n", c->url);
		rc = veil_write_file(def, buf, (size_t)n, 0600, d);
	}
	if (!rc)
		snprintf(c->pinned, sizeof(c->pinned), "%s", key_hash);
	free(def);
	free(dir);
	free(p);
	return rc;
}

int client_open(struct client *c, const char *url, struct veil_diags *d)
{
	memset(c, 0, sizeof(*c));
	int rc = VEIL_ENOMEM;
	if (!(c->home = cli_home_dir()))
		goto out;
	if (!url)
		url = cli_cas_url(NULL);
	if (url) {
		if (!(c->url = client_normalize_url(url))) {
			veil_diag(d,
				  "'%s' is not a CAS address (https://HOST[:PORT], HOST[:PORT] or "
				  ":PORT; PORT from 1 to 65535)",
				  url);
			rc = VEIL_EINVAL;
			goto out;
		}
	} else {
		char *dir = veil_path_join(c->home, "cas");
		char *def = dir ? veil_path_join(dir, "default") : NULL, *data = NULL;
		size_t size;
		rc = def ? veil_read_file(def, 1024, &data, &size, NULL) : VEIL_ENOMEM;
		if (rc == 0) {
			data[strcspn(data, "\n")] = '\0';
			c->url = strdup(data);
		}
		free(data);
		free(def);
		free(dir);
		if (rc || !c->url) {
			veil_diag(d,
				  "no CAS given: use --cas URL or $VEIL_CAS, or pin one with 'veil "
				  "cas attest URL'");
			rc = VEIL_EINVAL;
			goto out;
		}
	}
	char *idir = veil_path_join(c->home, "identity");
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	rc = idir ? veil_identity_load_or_create(idir, "veil client", &k, &x, d) : VEIL_ENOMEM;
	if (!rc)
		rc = veil_cert_key_hash(x, c->identity);
	if (!rc) {
		c->cert_path = veil_path_join(idir, "cert.pem");
		c->key_path = veil_path_join(idir, "key.pem");
		rc = c->cert_path && c->key_path ? 0 : VEIL_ENOMEM;
	}
	EVP_PKEY_free(k);
	X509_free(x);
	free(idir);
	if (!rc)
		rc = read_pin(c, d);
out:
	if (rc)
		client_close(c);
	return rc;
}

void client_close(struct client *c)
{
	free(c->home);
	free(c->url);
	free(c->cert_path);
	free(c->key_path);
	memset(c, 0, sizeof(*c));
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct veil_buf *b = arg;
	return veil_buf_append(b, p, size * n) ? 0 : size * n;
}

void response_free(struct response *r)
{
	veil_buf_free(&r->body);
	free(r->server_cert_pem);
	memset(r, 0, sizeof(*r));
}

void response_error(const struct response *r, const char *what, struct veil_diags *d)
{
	json_error_t err;
	json_t *j = r->body.data ? json_loads(r->body.data, 0, &err) : NULL;
	const char *msg = NULL, *identity = NULL;
	if (j && !json_unpack(j, "{s:s, s:s}", "error", &msg, "identity", &identity) &&
	    veil_is_sha256_hex(identity))
		veil_diag(d, "the CAS refused identity %s: %s: the CAS answered %ld: %s", identity,
			  what, r->status, msg);
	else if (j && !json_unpack(j, "{s:s}", "error", &msg))
		veil_diag(d, "%s: the CAS answered %ld: %s", what, r->status, msg);
	else
		veil_diag(d, "%s: the CAS answered %ld", what, r->status);
	json_decref(j);
}

static int hex_to_b64(const char *hex, char *out, size_t cap)
{
	uint8_t raw[VEIL_SHA256_SIZE];
	if (veil_unhex(hex, raw, sizeof(raw)) || cap < 45)
		return VEIL_EINVAL;
	EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
	return 0;
}

int client_request(struct client *c, const char *method, const char *path, const char *body,
		   int want_cert, struct response *r, struct veil_diags *d)
{
	memset(r, 0, sizeof(*r));
	veil_buf_init(&r->body, 64u << 20);
	if (!c->pinned[0] && !want_cert) {
		veil_diag(d, "the CAS at %s is not attested yet: run 'veil cas attest %s' first",
			  c->url, c->url);
		return VEIL_EINVAL;
	}
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	char *url = NULL, pin[64 + 10];
	int rc = VEIL_EIO;
	if (!h || asprintf(&url, "%s%s", c->url, path) < 0) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
	curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_path);
	curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_path);
	/* The CAS certificate is self-signed: trust comes from attestation and
	 * the pinned key, not from a CA. */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	if (c->pinned[0]) {
		memcpy(pin, "sha256//", 8);
		if (hex_to_b64(c->pinned, pin + 8, sizeof(pin) - 8)) {
			veil_diag(d, "corrupt pin for %s", c->url);
			goto out;
		}
		curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, pin);
	}
	if (want_cert)
		curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
	if (body) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	CURLcode e = curl_easy_perform(h);
	if (e == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
		veil_diag(d,
			  "the CAS at %s presents a different key than the one pinned (%.16s...): "
			  "refusing to talk to it. If the CAS was legitimately replaced, attest it "
			  "again with 'veil cas attest %s'",
			  c->url, c->pinned, c->url);
		goto out;
	}
	if (e != CURLE_OK) {
		veil_diag(d, "%s: %s", url, curl_easy_strerror(e));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	if (want_cert) {
		struct curl_certinfo *ci = NULL;
		if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) || !ci || ci->num_of_certs < 1) {
			veil_diag(d, "%s: no server certificate seen", url);
			goto out;
		}
		for (struct curl_slist *s = ci->certinfo[0]; s; s = s->next)
			if (!strncmp(s->data, "Cert:", 5))
				r->server_cert_pem = strdup(s->data + 5);
		BIO *b = r->server_cert_pem ? BIO_new_mem_buf(r->server_cert_pem, -1) : NULL;
		X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		int ok = x && veil_cert_key_hash(x, r->server_key) == 0;
		X509_free(x);
		BIO_free(b);
		if (!ok) {
			veil_diag(d, "%s: cannot read the server certificate", url);
			goto out;
		}
	}
	rc = r->body.failed ? VEIL_ELIMIT : 0;
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	free(url);
	if (rc)
		response_free(r);
	return rc;
}
