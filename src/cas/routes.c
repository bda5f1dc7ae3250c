/* veil-cas's HTTP plumbing: the route table (method and path to handler,
 * with what each route needs and how it is logged), the dispatch of a
 * request through it, the client's identity, and the request log and
 * metrics of each answer. Every refusal is answered with a JSON reason and
 * appended to the audit log; no response or log line holds a secret.
 *
 * The handlers: policy.c (policies), attest.c (/v1/attest and its refusal
 * report), code_keys.c, probes.c (/healthz, /readyz, /metrics, the CAS's
 * identity); their helpers: reply.c, commit.c, consent.c, caches.c,
 * workers.c (routes.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "routes.h"

/* What a route needs of the client before its handler runs. */
enum route_auth {
	ROUTE_OPEN, /* anyone, with or without a client certificate */
	/* a client certificate valid now (else 403 here); without any, the
	 * handler refuses with 403 and a reason of its own */
	ROUTE_CLIENT_CERT,
};

struct route_method {
	unsigned methods;     /* EVHTTP_REQ_* bits */
	enum cas_route route; /* its name in the metrics and the request log */
	route_handler *handle;
	bool on_worker;     /* key generation: done by a worker (workers.c) */
	bool audit_rejects; /* every error reply is audited ("reject"), not only 401 and 403 */
};

struct route {
	const char *path;
	bool prefix; /* path, then a namespace name (400 unless valid) */
	enum route_auth auth;
	/* of a request that reaches no handler: a method it does not take
	 * (405), a refused out-of-date certificate */
	enum cas_route route;
	const char *allow;      /* the Allow header of its 405 */
	const char *shown_path; /* the path its 405 names (NULL: the request's) */
	bool probe;             /* its answers are logged at debug level */
	struct route_method method[3];
};

#define GET_OR_HEAD (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)

/* Searched in order: the exact paths, then the prefix. Audited besides the
 * rejections marked here: every 401 and 403 (route_fail), a refused read
 * (route_absent_or_refused), each read, release, start-refused report and
 * code key (route_audit), each change (route_commit_change). */
static const struct route routes[] = {
    {.path = "/healthz",
     .route = R_HEALTHZ,
     .allow = "GET, HEAD",
     .probe = true,
     .method = {{GET_OR_HEAD, R_HEALTHZ, route_healthz}}},
    {.path = "/readyz",
     .route = R_READYZ,
     .allow = "GET, HEAD",
     .probe = true,
     .method = {{GET_OR_HEAD, R_READYZ, route_readyz}}},
    {.path = "/metrics",
     .route = R_METRICS,
     .allow = "GET, HEAD",
     .probe = true,
     .method = {{GET_OR_HEAD, R_METRICS, route_metrics}}},
    {.path = "/v1/cas/identity",
     .route = R_IDENTITY,
     .allow = "GET, HEAD",
     .method = {{GET_OR_HEAD, R_IDENTITY, route_identity}}},
    {.path = "/v1/attest",
     .auth = ROUTE_CLIENT_CERT,
     .route = R_ATTEST,
     .allow = "POST",
     .method = {{EVHTTP_REQ_POST, R_ATTEST, route_attest}}},
    {.path = "/v1/attest/refused",
     .auth = ROUTE_CLIENT_CERT,
     .route = R_ATTEST_REFUSED,
     .allow = "POST",
     .method = {{EVHTTP_REQ_POST, R_ATTEST_REFUSED, route_attest_refused}}},
    {.path = "/v1/code-keys",
     .auth = ROUTE_CLIENT_CERT,
     .route = R_CODE_KEY,
     .allow = "POST",
     .method = {{EVHTTP_REQ_POST, R_CODE_KEY, route_code_key}}},
    {.path = "/v1/policies",
     .auth = ROUTE_CLIENT_CERT,
     .route = R_OTHER,
     .allow = "GET, POST",
     .method = {{EVHTTP_REQ_GET, R_POLICY_LIST, route_policy_list},
		{EVHTTP_REQ_POST, R_POLICY_CREATE, route_policy_create, .on_worker = true,
		 .audit_rejects = true}}},
    {.path = "/v1/policies/",
     .prefix = true,
     .auth = ROUTE_CLIENT_CERT,
     .route = R_OTHER,
     .allow = "GET, PUT, DELETE",
     .shown_path = "/v1/policies/NAME",
     .method = {{EVHTTP_REQ_GET, R_POLICY_GET, route_policy_get},
		{EVHTTP_REQ_PUT, R_POLICY_UPDATE, route_policy_update, .on_worker = true,
		 .audit_rejects = true},
		{EVHTTP_REQ_DELETE, R_POLICY_DELETE, route_policy_delete, .audit_rejects = true}}},
};

static void free_identity(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			  void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	free(ptr);
}

static int identity_index = -1;
static pthread_once_t identity_once = PTHREAD_ONCE_INIT;

static void identity_index_init(void)
{
	identity_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_identity);
}

/* The client's key hash, computed once per connection: encoding a public key
 * is costly in OpenSSL 3 and the certificate cannot change on a connection. */
static void peer_identity(struct route_ctx *c)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(c->req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	if (!ssl)
		return;
	pthread_once(&identity_once, identity_index_init);
	/* per request, not per connection: a connection outlives a certificate */
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (cert && (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0 ||
		     X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0))
		c->cert_out_of_date = true;
	const char *known = identity_index >= 0 ? SSL_get_ex_data(ssl, identity_index) : NULL;
	if (known) {
		memcpy(c->identity_buf, known, VEIL_KEY_HASH_HEX);
		c->identity = c->identity_buf;
		return;
	}
	X509 *peer = SSL_get0_peer_certificate(ssl);
	if (!peer || veil_cert_key_hash(peer, c->identity_buf))
		return;
	c->identity = c->identity_buf;
	char *copy = identity_index >= 0 ? malloc(VEIL_KEY_HASH_HEX) : NULL;
	if (copy) {
		memcpy(copy, c->identity_buf, VEIL_KEY_HASH_HEX);
		if (!SSL_set_ex_data(ssl, identity_index, copy))
			free(copy);
	}
}

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "?";
}

static enum cas_log_level log_level_of(const struct route_ctx *c)
{
	if (c->status >= 500)
		return CAS_LOG_ERROR;
	if (c->status >= 400)
		return CAS_LOG_WARN;
	if (c->probe)
		return CAS_LOG_DEBUG; /* probes every few seconds would drown the rest */
	return CAS_LOG_INFO;
}

/* ---- requests under way, by the epoch they began in (cas_requests_drain):
 * a drain moves the epoch on, then waits for the previous epoch's count to
 * reach 0. Two slots: a drain empties the old one before it returns, so it
 * is empty again when the next drain makes it current. ---- */
static unsigned drain_epoch;
static long inflight[2];

static int inflight_enter(void)
{
	for (;;) {
		unsigned e = __atomic_load_n(&drain_epoch, __ATOMIC_SEQ_CST) & 1u;
		__atomic_add_fetch(&inflight[e], 1, __ATOMIC_SEQ_CST);
		/* a drain that moved the epoch meanwhile may have read the old
		 * count already: count in the new slot instead */
		if ((__atomic_load_n(&drain_epoch, __ATOMIC_SEQ_CST) & 1u) == e)
			return (int)e;
		__atomic_sub_fetch(&inflight[e], 1, __ATOMIC_SEQ_CST);
	}
}

int cas_requests_drain(double max_seconds, struct veil_diags *d)
{
	unsigned old = __atomic_fetch_add(&drain_epoch, 1, __ATOMIC_SEQ_CST) & 1u;
	struct timespec start, now, pause = {.tv_nsec = 2 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long left = __atomic_load_n(&inflight[old], __ATOMIC_SEQ_CST);
		if (left <= 0)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((double)(now.tv_sec - start.tv_sec) +
			(double)(now.tv_nsec - start.tv_nsec) / 1e9 >
		    max_seconds) {
			veil_diag(
			    d, "%ld requests begun before the reload were not answered within %g s",
			    left, max_seconds);
			return VEIL_EIO;
		}
		nanosleep(&pause, NULL);
	}
}

void route_finish(struct route_ctx *c, enum evhttp_cmd_type m, const char *path,
		  const struct timespec *t0)
{
	__atomic_sub_fetch(&inflight[c->inflight_slot], 1, __ATOMIC_SEQ_CST);
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double seconds =
	    (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
	cas_metrics_record(&c->t->cas->metrics, c->route, c->status, seconds);
	struct cas_log_entry e = {.level = log_level_of(c),
				  .route = cas_route_name(c->route),
				  .method = method_name(m),
				  .path = path,
				  .status = c->status,
				  .ms = seconds * 1e3,
				  .client = c->identity,
				  .error = c->error};
	cas_log_request(&c->t->cas->log, &e);
	if (c->req)
		cas_conn_request_next(c->req);
}

static const struct route *route_of(const char *path)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(routes); i++) {
		const struct route *r = &routes[i];
		if (r->prefix ? !strncmp(path, r->path, strlen(r->path)) : !strcmp(path, r->path))
			return r;
	}
	return NULL;
}

static const struct route_method *method_of(const struct route *r, enum evhttp_cmd_type m)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(r->method) && r->method[i].handle; i++)
		if (r->method[i].methods & (unsigned)m)
			return &r->method[i];
	return NULL;
}

void cas_handle(struct evhttp_request *req, void *arg)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct route_ctx c = {
	    .t = arg, .req = req, .route = R_OTHER, .inflight_slot = inflight_enter()};
	cas_conn_request_done(req);
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	peer_identity(&c);
	const struct route *r = path ? route_of(path) : NULL;
	const struct route_method *rm = r ? method_of(r, m) : NULL;
	/* evhttp gives the raw path: a %-escape or anything else outside the
	 * name syntax (e.g. "../x") is refused before any lookup */
	const char *ns = r && r->prefix ? path + strlen(r->path) : NULL;
	if (!path) {
		route_fail(&c, 400, NULL, "malformed request URI");
	} else if (!r) {
		c.status = 404;
		snprintf(c.error, sizeof(c.error), "no such route");
		route_reply_json(&c, 404, json_pack("{s:s}", "error", "no such route"));
	} else if (r->auth == ROUTE_CLIENT_CERT && c.cert_out_of_date) {
		c.route = r->route;
		route_fail(&c, 403, NULL,
			   "the client certificate is outside its validity period (expired or not "
			   "yet valid)");
	} else if (ns && !veil_valid_namespace(ns)) {
		route_fail(&c, 400, NULL, "invalid namespace name in the path");
	} else if (!rm) {
		/* a known route asked with a method it does not take: 405 and Allow */
		c.route = r->route;
		c.allow = r->allow;
		route_fail(&c, 405, NULL, "%s takes %s", r->shown_path ? r->shown_path : path,
			   r->allow);
	} else {
		c.route = rm->route;
		c.audit_rejects = rm->audit_rejects;
		c.probe = r->probe;
		int queued = rm->on_worker ? route_defer(&c, m, path, ns, rm->handle, &t0) : -1;
		if (!queued)
			return; /* a worker answers */
		if (queued < 0)
			rm->handle(&c, ns);
	}
	route_finish(&c, m, path, &t0);
}
