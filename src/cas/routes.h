/* veil-cas's routes, shared by the files that serve them (and by them only):
 * the request every handler gets, the replies, and what each file offers the
 * others. routes.c maps a method and path to a handler (its route table).
 *
 * Ownership: a struct route_ctx lives on the event loop's stack (or in a
 * worker's job) for one request; handlers borrow it and answer it exactly
 * once, through route_reply* or route_fail. */
#ifndef VEIL_CAS_ROUTES_H
#define VEIL_CAS_ROUTES_H

#include <stdbool.h>
#include <time.h>

#include <event2/http.h>
#include <jansson.h>

#include "cas.h"
#include "veil/cas_request.h"

struct route_ctx {
	struct cas_thread *t;
	struct evhttp_request *req;
	const char *identity; /* NULL: no client certificate */
	char identity_buf[VEIL_KEY_HASH_HEX];
	enum cas_route route;
	bool audit_rejects; /* every error reply is audited, not only 401 and 403 */
	bool probe;         /* answered, it is logged at debug level */
	int status;
	const char *allow;     /* the Allow header of a 405 */
	bool cert_out_of_date; /* the client certificate is expired or not yet valid */
	int inflight_slot;     /* its count of requests under way (cas_requests_drain) */
	char error[512];       /* an error reply's reason, for the request log */
	/* on a worker (cas_job): the body read from here, the reply kept here
	 * and sent by the event loop */
	bool deferred;
	const char *body;
	size_t body_size;
	const char *reply_type;
	char *reply_body;
	size_t reply_size;
};

/* A route's handler; ns is the namespace of a /v1/policies/NAME route
 * (checked by veil_valid_namespace), NULL for the others. */
typedef void route_handler(struct route_ctx *c, const char *ns);

/* ---- reply.c: answers ---- */
void route_reply(struct route_ctx *c, int status, const char *type, const char *body, size_t size);
/* body (malloc'd, taken over) holds a secret: wiped and freed once sent */
void route_reply_secret(struct route_ctx *c, int status, char *body, size_t size);
/* takes j (NULL: 500, out of memory) */
void route_reply_json(struct route_ctx *c, int status, json_t *j);
/* an entry of a read or a refusal (not synced; changes: route_commit_change) */
void route_audit(struct route_ctx *c, const char *event, const char *ns, int status,
		 const char *detail);
/* An error reply {"error": ...}; audited as said in reply.c. */
void route_fail(struct route_ctx *c, int status, const char *ns, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 404, the same for a namespace that is absent and one the client may not
 * use (acl: the access list that decided); refused: audited as a refusal */
void route_absent_or_refused(struct route_ctx *c, const char *ns, const char *acl, int refused);
/* d's messages joined with "; " */
void route_diags_text(const struct veil_diags *d, char *out, size_t cap);

/* ---- commit.c: a change commits with its audit entry ---- */
int route_commit_change(struct route_ctx *c, const char *event, const char *ns, int status,
			const char *detail) VEIL_MUST_CHECK;

/* ---- policy.c: stored policies and the policy routes ---- */
/* A stored policy as the network process sees it: its YAML (from the key
 * process, which keeps the secrets) and the parsed policy. */
struct stored_policy {
	uint8_t *plain; /* the YAML, secure memory */
	size_t plain_size;
	const char *yaml;
	size_t yaml_size;
	struct ydoc doc;
	struct veil_policy policy;
	int have_doc;
};
void stored_policy_free(struct stored_policy *s);
int stored_policy_open(struct veil_vault *vault, const struct veil_record *r,
		       struct stored_policy *s) VEIL_MUST_CHECK;
route_handler route_policy_list, route_policy_create, route_policy_get, route_policy_update,
    route_policy_delete;

/* ---- consent.c: import consent and the export index ---- */
int consent_import_all(struct cas_thread *t, const char *importer, const char *importer_owner,
		       const struct veil_policy *p, struct veil_buf *into, char *msg,
		       size_t cap) VEIL_MUST_CHECK;
int consent_check_imports(struct route_ctx *c, const struct veil_policy *p,
			  const char *owner) VEIL_MUST_CHECK;
int consent_index_exports(struct veil_store *st, const struct veil_policy *p) VEIL_MUST_CHECK;
int consent_check_name_free(struct route_ctx *c, const struct veil_policy *p) VEIL_MUST_CHECK;

/* ---- caches.c: the read cache and the attest cache ---- */
/* The generation this thread's caches are valid for: it moves at every
 * change committed by this process and, on a store shared by several
 * replicas (PostgreSQL), by any of them. Non-zero: the store did not say
 * (use no cache). */
int cas_cache_generation(struct cas_thread *t, unsigned long long *out) VEIL_MUST_CHECK;
struct read_cache_entry *read_cache_slot(struct cas_thread *t, const char *ns);
void read_cache_fill(struct read_cache_entry *e, const char *ns, unsigned long long gen,
		     const char *owner, const struct veil_policy *p, const char *response,
		     size_t size);
/* /v1/attest's cache: a namespace's decrypted, parsed policy and secrets,
 * per thread, until the next committed change anywhere (the generation).
 * Decrypting, parsing and deserialising per start cost ~40 us of ~850 us.
 * The secrets stay in secure memory (locked, not dumped) while cached.
 * Policies that import are not cached: the exporter's consent and value are
 * read afresh every time. */
#define ATTEST_CACHE_SLOTS 64
struct attest_cache_entry {
	char ns[129];
	unsigned long long generation;
	struct stored_policy st;
	struct veil_record rec; /* sealed: what the key process renders from; its
				 * owner is the code key's */
	int used;
};
void attest_cache_clear(struct attest_cache_entry *e);
struct attest_cache_entry *attest_cache_slot(struct cas_thread *t, const char *ns,
					     unsigned long long gen);

/* ---- attest.c, code_keys.c, probes.c: the other handlers ---- */
route_handler route_attest, route_attest_refused, route_code_key, route_healthz, route_readyz,
    route_metrics, route_identity;

/* ---- workers.c: create and update off the event loop ---- */
/* 0: queued, a worker runs handle(c, name) (name: NULL or inside path) and
 * the event loop answers; < 0: not queued, to be done on the loop; > 0:
 * answered here (503 when full). */
int route_defer(struct route_ctx *c, enum evhttp_cmd_type m, const char *path, const char *name,
		route_handler *handle, const struct timespec *t0) VEIL_MUST_CHECK;

/* ---- routes.c ---- */
/* Metrics and the request log of an answered request; its connection's
 * deadline runs again, for the next one. */
void route_finish(struct route_ctx *c, enum evhttp_cmd_type m, const char *path,
		  const struct timespec *t0);

#endif
