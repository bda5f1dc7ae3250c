/* The answers of veil-cas's routes: JSON replies, replies holding a secret
 * (wiped once sent), error replies with their audit entry, and the audit
 * entries of requests, refusals rate-limited (routes.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "routes.h"

void route_reply(struct route_ctx *c, int status, const char *type, const char *body, size_t size)
{
	if (c->deferred) {
		free(c->reply_body);
		c->reply_body = malloc(size ? size : 1);
		c->reply_size = c->reply_body ? size : 0;
		if (c->reply_body)
			memcpy(c->reply_body, body, size);
		c->reply_type = type;
		c->status = status;
		return;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (status == 405 && c->allow)
		evhttp_add_header(h, "Allow", c->allow);
	struct evbuffer *out = evbuffer_new();
	if (out)
		evbuffer_add(out, body, size);
	/* NULL: libevent's standard reason phrase for the status */
	evhttp_send_reply(c->req, status, NULL, out);
	if (out)
		evbuffer_free(out);
	c->status = status;
}

static void wipe_and_free(const void *data, size_t size, void *arg)
{
	(void)arg;
	OPENSSL_cleanse((void *)data, size);
	free((void *)data);
}

/* A reply holding secrets: libevent sends body (malloc'd, taken over) by
 * reference, and it is wiped and freed once written, not left in freed
 * evbuffer chains. */
void route_reply_secret(struct route_ctx *c, int status, char *body, size_t size)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	struct evbuffer *out = evbuffer_new();
	if (!out || evbuffer_add_reference(out, body, size, wipe_and_free, NULL)) {
		wipe_and_free(body, size, NULL);
		if (out)
			evbuffer_free(out);
		route_reply(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
		return;
	}
	evhttp_send_reply(c->req, status, NULL, out);
	evbuffer_free(out);
	c->status = status;
}

void route_reply_json(struct route_ctx *c, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!s) {
		route_reply(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
	} else {
		size_t n = strlen(s);
		s[n] = '\n';
		route_reply(c, status, "application/json", s, n + 1);
		s[n] = '\0';
	}
	free(s);
	json_decref(j);
}

/* Refusals and rejections by clients nobody knows cost no more than a few
 * audit entries a second: 3000 requests without a certificate added 900 KB
 * to the log before. Past AUDIT_REFUSALS_PER_S in a second the rest are
 * counted, and the next one let through is preceded by a "suppressed" entry
 * with their number. */
#define AUDIT_REFUSALS_PER_S 20
static pthread_mutex_t refusal_lock = PTHREAD_MUTEX_INITIALIZER;
static time_t refusal_second;
static unsigned long refusals_this_second, refusals_suppressed;

void route_audit(struct route_ctx *c, const char *event, const char *ns, int status,
		 const char *detail)
{
	unsigned long suppressed = 0;
	/* a runtime's report of its own refusal counts as a refusal here */
	if (status >= 400 || !strcmp(event, "start-refused")) {
		time_t now = time(NULL);
		bool drop;
		pthread_mutex_lock(&refusal_lock);
		if (now != refusal_second) {
			refusal_second = now;
			refusals_this_second = 0;
		}
		drop = ++refusals_this_second > AUDIT_REFUSALS_PER_S;
		if (drop)
			refusals_suppressed++;
		else
			suppressed = refusals_suppressed, refusals_suppressed = 0;
		pthread_mutex_unlock(&refusal_lock);
		if (drop)
			return;
	}
	if (suppressed) {
		char d[96];
		snprintf(d, sizeof(d), "%lu refusals or rejections not logged one by one",
			 suppressed);
		struct veil_audit_event sev = {.event = "suppressed", .detail = d, .nosync = 1};
		if (veil_audit_append(c->t->cas->audit, &sev))
			cas_warn_limited("cannot write the audit log");
	}
	/* changes go through commit_change; reads and refusals ride along */
	struct veil_audit_event ev = {.event = event,
				      .namespace_ = ns,
				      .client = c->identity,
				      .status = status,
				      .detail = detail,
				      .nosync = 1};
	if (veil_audit_append(c->t->cas->audit, &ev))
		cas_warn_limited("cannot write the audit log");
}

/* An error reply; refusals (401/403) and every error of a write (the routes
 * marked audit_rejects in routes.c's table) are audited. A
 * refusal names the client identity it refused, so its user can tell which
 * key to grant (veil whoami prints one's own). */
void route_fail(struct route_ctx *c, int status, const char *ns, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* a store error because the database is out of reach: not the
	 * server's fault for good, the client may retry. Nothing was applied,
	 * but for a commit whose answer was lost with the connection: a retried
	 * update then answers 409 (its predecessor is no longer current). */
	if (status == 500 && c->t->store && c->t->store->unavailable) {
		char why[sizeof(msg)];
		memcpy(why, msg, sizeof(why));
		status = 503;
		snprintf(msg, sizeof(msg), "the database is unavailable (%.1900s); retry later",
			 why);
	}
	if (status == 401 || status == 403 || c->audit_rejects)
		route_audit(c, status == 403 || status == 401 ? "refuse" : "reject", ns, status,
			    msg);
	size_t n = strnlen(msg, sizeof(c->error) - 1);
	memcpy(c->error, msg, n);
	c->error[n] = '\0';
	if ((status == 401 || status == 403) && c->identity)
		route_reply_json(c, status,
				 json_pack("{s:s, s:s}", "error", msg, "identity", c->identity));
	else
		route_reply_json(c, status, json_pack("{s:s}", "error", msg));
}

/* A namespace that does not exist and one this client may not use get the
 * same answer (404, same body), so that nobody learns which names exist;
 * only the audit log tells them apart (a refusal is audited). `acl` names
 * the access list that decided, e.g. "read". */
void route_absent_or_refused(struct route_ctx *c, const char *ns, const char *acl, int refused)
{
	char msg[400];
	snprintf(msg, sizeof(msg),
		 "no namespace %s that access_policy.%s allows this client (absent or not "
		 "allowed)",
		 ns, acl);
	if (refused)
		route_audit(c, "refuse", ns, 404, msg);
	snprintf(c->error, sizeof(c->error), "%s", msg);
	route_reply_json(c, 404, json_pack("{s:s, s:s}", "error", msg, "identity", c->identity));
}

void route_diags_text(const struct veil_diags *d, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < d->count && n + 1 < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "; " : "", d->msgs[i]);
}
