/* veil-cas REST routes. Every refusal is answered with a JSON reason and
 * appended to the audit log; no response or log line holds a secret. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cas.h"
#include "veil/cas_request.h"
#include "veil/codecrypt.h"
#include "veil/cursor.h"
#include "veil/evidence.h"
#include "veil/secrets.h"

struct ctx {
	struct cas_thread *t;
	struct evhttp_request *req;
	const char *identity; /* NULL: no client certificate */
	char identity_buf[VEIL_KEY_HASH_HEX];
	enum cas_route route;
	int status;
	const char *allow;     /* the Allow header of a 405 */
	bool cert_out_of_date; /* the client certificate is expired or not yet valid */
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

static void reply(struct ctx *c, int status, const char *type, const char *body, size_t size)
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
static void reply_secret(struct ctx *c, int status, char *body, size_t size)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	struct evbuffer *out = evbuffer_new();
	if (!out || evbuffer_add_reference(out, body, size, wipe_and_free, NULL)) {
		wipe_and_free(body, size, NULL);
		if (out)
			evbuffer_free(out);
		reply(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
		return;
	}
	evhttp_send_reply(c->req, status, NULL, out);
	evbuffer_free(out);
	c->status = status;
}

static void reply_json(struct ctx *c, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!s) {
		reply(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
	} else {
		size_t n = strlen(s);
		s[n] = '\n';
		reply(c, status, "application/json", s, n + 1);
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

static void audit(struct ctx *c, const char *event, const char *ns, int status, const char *detail)
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

/* An error reply; refusals (401/403) and every 4xx of a write are audited. A
 * refusal names the client identity it refused, so its user can tell which
 * key to grant (veil whoami prints one's own). */
static void fail(struct ctx *c, int status, const char *ns, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct ctx *c, int status, const char *ns, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status == 401 || status == 403 || c->route == R_POLICY_CREATE ||
	    c->route == R_POLICY_UPDATE || c->route == R_POLICY_DELETE)
		audit(c, status == 403 || status == 401 ? "refuse" : "reject", ns, status, msg);
	size_t n = strnlen(msg, sizeof(c->error) - 1);
	memcpy(c->error, msg, n);
	c->error[n] = '\0';
	if ((status == 401 || status == 403) && c->identity)
		reply_json(c, status,
			   json_pack("{s:s, s:s}", "error", msg, "identity", c->identity));
	else
		reply_json(c, status, json_pack("{s:s}", "error", msg));
}

/* A namespace that does not exist and one this client may not use get the
 * same answer (404, same body), so that nobody learns which names exist;
 * only the audit log tells them apart (a refusal is audited). `acl` names
 * the access list that decided, e.g. "read". */
static void absent_or_refused(struct ctx *c, const char *ns, const char *acl, int refused)
{
	char msg[400];
	snprintf(msg, sizeof(msg),
		 "no namespace %s that access_policy.%s allows this client (absent or not "
		 "allowed)",
		 ns, acl);
	if (refused)
		audit(c, "refuse", ns, 404, msg);
	snprintf(c->error, sizeof(c->error), "%s", msg);
	reply_json(c, 404, json_pack("{s:s, s:s}", "error", msg, "identity", c->identity));
}

static void diags_text(const struct veil_diags *d, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < d->count && n + 1 < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "; " : "", d->msgs[i]);
}

/* Test-only fault injection: VEIL_CAS_FAULT=NAME kills the CAS (SIGKILL, as
 * a crash) at the point NAME, e.g. after_commit: the store has committed a
 * change, its audit entry is not written yet. */
static void fault_point(const char *name)
{
	const char *f = getenv("VEIL_CAS_FAULT");
	if (f && !strcmp(f, name))
		raise(SIGKILL);
}

/* After a committed change: every thread's read cache is stale. */
static void changed(struct ctx *c)
{
	__atomic_add_fetch(&c->t->cas->generation, 1, __ATOMIC_RELEASE);
}

/* The head just written, signed, into the store's open transaction. */
static int record_head(struct cas *cas, struct veil_store *st, const struct veil_audit_head *h)
{
	struct veil_store_head sh = {.seq = h->seq, .size = h->size};
	memcpy(sh.hash, h->hash, sizeof(sh.hash));
	if (veil_audit_head_sign(cas->key, h, sh.signature, sizeof(sh.signature)))
		return VEIL_EIO;
	return st->ops->set_head(st, &sh);
}

/* A change is acknowledged only once its audit entry is durable, and store
 * and log cannot disagree after a crash: the change (made by the caller in
 * the store's open transaction, store->begin) commits together with the
 * audit head its entry ends at, after the entry is synced. A crash before
 * the commit leaves an entry for a change that is not stored: the next start
 * appends a "rollback" entry naming it (veil_audit_reconcile). 0, or the
 * transaction was rolled back and the reply sent (503: the entry could not
 * be written, e.g. a full disk; before, 26 updates were stored unaudited). */
static int commit_change(struct ctx *c, const char *event, const char *ns, int status,
			 const char *detail)
{
	struct cas *cas = c->t->cas;
	struct veil_store *st = c->t->store;
	struct veil_audit_event ev = {.event = event,
				      .namespace_ = ns,
				      .client = c->identity,
				      .status = status,
				      .detail = detail};
	struct veil_audit_head h;
	if (veil_audit_append_at(cas->audit, &ev, &h)) {
		st->ops->rollback(st);
		snprintf(c->error, sizeof(c->error), "the audit log cannot be written");
		reply_json(
		    c, 503,
		    json_pack("{s:s}", "error",
			      "the audit log cannot be written (is the disk full?): the change "
			      "was not applied"));
		return -1;
	}
	fault_point("before_commit");
	if (record_head(cas, st, &h) || st->ops->commit(st)) {
		st->ops->rollback(st);
		/* the entry stands for a change that is not stored: a rollback
		 * entry restores the state (as veil_audit_reconcile does) */
		struct veil_record old = {0};
		int g = st->ops->get(st, ns, &old);
		struct veil_audit_event rb = {.event = "rollback",
					      .namespace_ = ns,
					      .status = 200,
					      .detail = g ? NULL : old.hash};
		if ((!g || g == VEIL_ENOENT) && veil_audit_append(cas->audit, &rb))
			cas_warn_limited("cannot write the audit log");
		veil_record_free(&old);
		fail(c, 500, ns, "storage error");
		return -1;
	}
	fault_point("after_commit");
	changed(c);
	return 0;
}

/* A signed checkpoint of the head (at start, every minute when it moved, at
 * stop): an entry whose detail signs the head before it with the CAS's TLS
 * key, and the head after it kept in the store. */
int cas_audit_checkpoint(struct cas *cas, struct veil_store *st)
{
	struct veil_audit_head prev, h;
	char detail[800], sig[512];
	int rc = st->ops->begin(st);
	if (rc)
		return rc;
	if (!(rc = veil_audit_head_get(cas->audit, &prev)) &&
	    !(rc = veil_audit_head_sign(cas->key, &prev, sig, sizeof(sig)))) {
		snprintf(detail, sizeof(detail), "seq %llu hash %s key %s signature %s",
			 (unsigned long long)prev.seq, prev.hash, cas->key_hash, sig);
		struct veil_audit_event ev = {.event = "checkpoint", .detail = detail};
		rc = veil_audit_append_at(cas->audit, &ev, &h);
	}
	if (!rc)
		rc = record_head(cas, st, &h);
	if (!rc)
		rc = st->ops->commit(st);
	if (rc)
		st->ops->rollback(st);
	return rc;
}

/* ---- payload: the policy's canonical YAML and its secrets ---- */

/* A stored policy as the network process sees it: its YAML (from the key
 * process, which keeps the secrets) and the parsed policy. */
struct stored {
	uint8_t *plain; /* the YAML, secure memory */
	size_t plain_size;
	const char *yaml;
	size_t yaml_size;
	struct ydoc doc;
	struct veil_policy policy;
	int have_doc;
};

static void stored_free(struct stored *s)
{
	if (s->have_doc)
		ydoc_free(&s->doc);
	if (s->plain)
		veil_secure_free(s->plain, s->plain_size);
	memset(s, 0, sizeof(*s));
}

/* The policy of a stored record (the key process opens it and returns its
 * YAML only), parsed. A failure here is the CAS's fault (500). */
static int stored_open(struct veil_vault *vault, const struct veil_record *r, struct stored *s)
{
	memset(s, 0, sizeof(*s));
	int rc = cas_kp_open_policy(vault, r, &s->plain, &s->plain_size);
	if (rc)
		return rc;
	s->yaml = (const char *)s->plain;
	s->yaml_size = s->plain_size;
	if ((rc = ydoc_init(&s->doc, r->namespace_)))
		return rc;
	s->have_doc = 1;
	struct veil_diags d;
	veil_diags_init(&d);
	rc = ydoc_parse(&s->doc, s->yaml, s->yaml_size, &veil_policy_limits, &d);
	if (!rc)
		rc = veil_policy_parse(&s->doc, &s->policy, &d);
	veil_diags_free(&d);
	return rc;
}

/* ---- request body ---- */

/* 0, or the reply was sent */
static int read_policy(struct ctx *c, struct veil_policy_request *in, const char *ns_for_audit)
{
	struct evbuffer *body = c->deferred ? NULL : evhttp_request_get_input_buffer(c->req);
	size_t n = body ? evbuffer_get_length(body) : c->body_size;
	memset(in, 0, sizeof(*in));
	if (n > c->t->cas->body_max) {
		fail(c, 413, ns_for_audit, "request body too large");
		return -1;
	}
	struct veil_diags d;
	veil_diags_init(&d);
	int rc = veil_policy_request_decode(
	    body ? (const char *)evbuffer_pullup(body, -1) : c->body, n, in, &d);
	if (rc) {
		char msg[1800];
		diags_text(&d, msg, sizeof(msg));
		fail(c, 400, ns_for_audit, "%s%s", in->have_doc ? "invalid policy: " : "",
		     msg[0] ? msg : "out of memory");
	}
	veil_diags_free(&d);
	return rc ? -1 : 0;
}

/* Imports need the exporting owner's consent: the exporting namespace's
 * policy lists the importer under the secret's `export`, bound to the
 * importer's identity: its owner's key hash (`owner`) and/or its policy hash
 * (`session_hash`), so that whoever creates or re-creates a namespace of
 * that name gets nothing. An entry naming neither (stored before identities
 * were required) grants nothing. The exporter is opened into *st (the caller
 * frees it with stored_free and r with veil_record_free); 0 with the
 * exported value in *val (NULL when the exporter has none, e.g. an explicit
 * import chain), else an HTTP status and the reason in msg. An absent
 * exporter, an absent secret and a missing consent get the same answer: an
 * importer learns nothing about namespaces that do not consent to it.
 * Checked at create and update, and again by /v1/attest each time it renders
 * the value: consent withdrawn stops new starts. */
static int open_export(struct cas_thread *t, const char *importer, const char *importer_owner,
		       const char *importer_hash, const struct veil_secret *s,
		       struct veil_record *r, struct stored *st, char *msg, size_t cap)
{
	const char *from = s->import_namespace, *name = s->import_secret;
	memset(st, 0, sizeof(*st));
	if (!strcmp(from, importer)) {
		snprintf(msg, cap, "secret %s: a namespace cannot import from itself", s->name);
		return 400;
	}
	int rc = t->store->ops->get(t->store, from, r);
	if (rc && rc != VEIL_ENOENT) {
		snprintf(msg, cap, "cannot open namespace %s", from);
		return 500;
	}
	if (!rc && stored_open(t->cas->vault, r, st)) {
		snprintf(msg, cap, "cannot open namespace %s", from);
		return 500;
	}
	const struct veil_secret *src = NULL;
	for (size_t k = 0; !rc && k < st->policy.secret_count; k++)
		if (!strcmp(st->policy.secrets[k].name, name))
			src = &st->policy.secrets[k];
	int consent = 0;
	for (size_t k = 0; src && k < src->export_count; k++) {
		const char *owner = src->export_owner[k], *sh = src->export_session_hash[k];
		consent |= !strcmp(src->export_to[k], importer) && (owner || sh) &&
			   (!owner || (importer_owner && !strcmp(owner, importer_owner))) &&
			   (!sh || (importer_hash && !strcmp(sh, importer_hash)));
	}
	if (!consent) {
		snprintf(msg, cap,
			 "namespace %s does not export secret %s to %s (its owner must list %s "
			 "under the secret's export, with this namespace's owner key hash or "
			 "policy hash)",
			 from, name, importer, importer);
		return 403;
	}
	if (src->import_namespace) {
		snprintf(msg, cap,
			 "secret %s of namespace %s is itself imported: imports do not chain", name,
			 from);
		return 400;
	}
	return 0;
}

/* one import for the key process (IPC_F_IMPORTS, ipc.h): each part
 * le32-prefixed */
static int import_add(struct veil_buf *b, const char *local, const struct veil_record *r,
		      const char *secret)
{
	const void *part[5] = {local, r->namespace_, r->wrapped_key, r->blob, secret};
	size_t size[5] = {strlen(local), strlen(r->namespace_), r->wrapped_size, r->blob_size,
			  strlen(secret)};
	for (int i = 0; i < 5; i++) {
		uint8_t n[4];
		for (int k = 0; k < 4; k++)
			n[k] = (uint8_t)(size[i] >> (8 * k));
		if (veil_buf_append(b, n, sizeof(n)) || veil_buf_append(b, part[i], size[i]))
			return VEIL_ENOMEM;
	}
	return 0;
}

/* Every import of p (imported into namespace `importer`, owned by
 * importer_owner, p's hash being its identity) with its exporter's consent;
 * with `into`, each exporter's record is added to it for the key process,
 * which opens the value. 0, or an HTTP status and the reason in msg. */
static int import_all(struct cas_thread *t, const char *importer, const char *importer_owner,
		      const struct veil_policy *p, struct veil_buf *into, char *msg, size_t cap)
{
	for (size_t i = 0; i < p->secret_count; i++) {
		const struct veil_secret *s = &p->secrets[i];
		if (!s->import_namespace)
			continue;
		struct veil_record r = {0};
		struct stored st;
		int status =
		    open_export(t, importer, importer_owner, p->hash, s, &r, &st, msg, cap);
		if (!status && into && import_add(into, s->name, &r, s->import_secret)) {
			snprintf(msg, cap, "out of memory");
			status = 500;
		}
		stored_free(&st);
		veil_record_free(&r);
		if (status)
			return status;
	}
	return 0;
}

static int check_imports(struct ctx *c, const struct veil_policy *p, const char *owner)
{
	char msg[600];
	int status = import_all(c->t, p->name, owner, p, NULL, msg, sizeof(msg));
	if (status)
		fail(c, status, p->name, "%s", msg);
	return status ? -1 : 0;
}

/* ---- the export index: names that exports reserve (H3) ----
 *
 * A namespace's export entries that bind an identity, as the store indexes
 * them (store.h). Consent binds the importer's identity, not its name
 * (open_export); the index also keeps the name itself for that importer: a
 * create of a name another namespace exports to is refused unless the
 * creator is the importer an entry binds, also after the importer deleted
 * it, until the exporter removes the entry (update or delete). */
static int each_export(const struct veil_policy *p,
		       int (*add)(void *sink, const struct veil_store_export *e), void *sink)
{
	for (size_t i = 0; i < p->secret_count; i++) {
		const struct veil_secret *s = &p->secrets[i];
		for (size_t k = 0; k < s->export_count; k++) {
			struct veil_store_export e = {.importer = s->export_to[k],
						      .owner = s->export_owner[k],
						      .session_hash = s->export_session_hash[k]};
			int rc = e.owner || e.session_hash ? add(sink, &e) : 0;
			if (rc)
				return rc;
		}
	}
	return 0;
}

int cas_policy_exports(void *vault, const struct veil_record *r,
		       int (*add)(void *sink, const struct veil_store_export *e), void *sink)
{
	struct stored st;
	int rc = stored_open(vault, r, &st);
	if (!rc)
		rc = each_export(&st.policy, add, sink);
	stored_free(&st);
	return rc;
}

struct index_sink {
	struct veil_store *st;
	const char *exporter;
};

static int index_entry_add(void *sink, const struct veil_store_export *e)
{
	struct index_sink *x = sink;
	return x->st->ops->add_export(x->st, x->exporter, e);
}

/* p's entries replace its namespace's in the index, in the open transaction */
static int index_exports(struct veil_store *st, const struct veil_policy *p)
{
	struct index_sink x = {.st = st, .exporter = p->name};
	int rc = st->ops->clear_exports(st, p->name);
	return rc ? rc : each_export(p, index_entry_add, &x);
}

struct claim {
	const char *creator, *hash; /* the creating client, the new policy's hash */
};

/* 1 when entry e keeps its name from this creator: the owner it binds is
 * another client's, or it binds only a policy hash and this is another */
static int claim_refused(const struct veil_store_export *e, void *arg)
{
	const struct claim *c = arg;
	if (e->owner)
		return strcmp(e->owner, c->creator) != 0;
	return !e->session_hash || strcmp(e->session_hash, c->hash) != 0;
}

/* In the create's transaction (one writer: no export is added between the
 * check and the insert). 0, or the transaction was rolled back and the reply
 * sent. The refusal names neither the exporter nor what it binds. */
static int check_name_free(struct ctx *c, const struct veil_policy *p)
{
	struct veil_store *st = c->t->store;
	struct claim cl = {.creator = c->identity, .hash = p->hash};
	int rc = st->ops->exports_to(st, p->name, claim_refused, &cl);
	if (!rc)
		return 0;
	st->ops->rollback(st);
	if (rc == 1)
		fail(c, 403, p->name,
		     "namespace %s is reserved: another namespace exports a secret to it for "
		     "another owner or policy hash (only that importer may create it, until the "
		     "exporter removes the export)",
		     p->name);
	else
		fail(c, 500, p->name, "storage error");
	return -1;
}

/* The per-client namespace quota (veil-cas --max-namespaces-per-client). In
 * a transaction (in_tx) a refusal rolls it back. 0, or replied. */
static int check_quota(struct ctx *c, const char *ns, int in_tx)
{
	struct veil_store *st = c->t->store;
	long long max = c->t->cas->max_namespaces_per_client, owned = 0;
	int rc = st->ops->count_owned(st, c->identity, &owned);
	if (!rc && owned < max)
		return 0;
	if (in_tx)
		st->ops->rollback(st);
	if (rc)
		fail(c, 500, ns, "storage error");
	else
		fail(c, 403, ns,
		     "this client owns %lld namespaces: at most %lld namespaces per client "
		     "(veil-cas --max-namespaces-per-client)",
		     owned, max);
	return -1;
}

/* "parent/child": the parent must exist and allow this client to create
 * namespaces under it (access_policy.create_sessions). */
static int check_parent(struct ctx *c, const char *ns)
{
	const char *slash = strrchr(ns, '/');
	if (!slash)
		return 0;
	char parent[256];
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - ns), ns);
	struct veil_record r = {0};
	struct stored st;
	memset(&st, 0, sizeof(st));
	int rc = c->t->store->ops->get(c->t->store, parent, &r), ok = -1;
	if (rc && rc != VEIL_ENOENT)
		fail(c, 500, ns, "cannot open namespace %s", parent);
	else if (!rc && stored_open(c->t->cas->vault, &r, &st))
		fail(c, 500, ns, "cannot open namespace %s", parent);
	else if (rc == VEIL_ENOENT ||
		 !veil_policy_allows(st.policy.create_sessions, st.policy.create_sessions_count,
				     r.owner, c->identity))
		/* absent and not allowed alike: no existence oracle */
		fail(c, 403, ns,
		     "access_policy.create_sessions of %s does not allow this client to create %s "
		     "(or %s does not exist)",
		     parent, ns, parent);
	else
		ok = 0;
	stored_free(&st);
	veil_record_free(&r);
	return ok;
}

/* The key process generates the secrets of policy p (canonical YAML yaml),
 * keeping what the update rules keep of prev (the sealed current payload),
 * and seals the new payload into *blob. 0, or replied. */
static int seal_generated(struct ctx *c, const struct veil_policy *p, const struct veil_buf *yaml,
			  const uint8_t *wrapped, size_t wrapped_size, const uint8_t *prev,
			  size_t prev_size, uint8_t **blob, size_t *blob_size)
{
	char why[1800];
	int rc = cas_kp_generate(p->name, wrapped, wrapped_size, (const char *)yaml->data,
				 yaml->size, prev, prev_size, blob, blob_size, why, sizeof(why));
	if (rc == VEIL_EINVAL)
		fail(c, 400, p->name, "cannot generate secrets: %s", why[0] ? why : "error");
	else if (rc)
		fail(c, 500, p->name, "cannot seal the policy");
	return rc;
}

static void policy_create(struct ctx *c)
{
	struct cas *cas = c->t->cas;
	struct veil_policy_request in;
	struct veil_record r = {0};
	if (!c->identity) {
		fail(c, 403, NULL, "a client certificate is required");
		return;
	}
	if (read_policy(c, &in, NULL))
		goto out;
	const struct veil_policy *p = &in.policy;
	if (p->predecessor) {
		fail(c, 400, p->name,
		     "'predecessor' is not allowed when creating namespace %s (use update)",
		     p->name);
		goto out;
	}
	/* checked before the work (key generation), and again in the create's
	 * transaction, where no other create of this client can come between */
	if (check_quota(c, p->name, 0))
		goto out;
	if (check_parent(c, p->name) || check_imports(c, p, c->identity))
		goto out;
	int rc = veil_vault_new_key(cas->vault, p->name, &r.wrapped_key, &r.wrapped_size);
	if (rc) {
		fail(c, 500, p->name, "cannot seal the policy");
		goto out;
	}
	if (seal_generated(c, p, &in.canonical, r.wrapped_key, r.wrapped_size, NULL, 0, &r.blob,
			   &r.blob_size))
		goto out;
	struct veil_store *st = c->t->store;
	if ((rc = st->ops->begin(st))) {
		fail(c, 500, p->name, "storage error");
		goto out;
	}
	if (check_quota(c, p->name, 1) || check_name_free(c, p))
		goto out;
	r.namespace_ = (char *)p->name;
	r.hash = (char *)p->hash;
	r.owner = (char *)c->identity;
	rc = st->ops->create(st, &r);
	r.namespace_ = r.hash = r.owner = NULL;
	if (!rc)
		rc = index_exports(st, p);
	if (rc)
		st->ops->rollback(st);
	if (rc == VEIL_EEXIST) {
		fail(c, 409, p->name, "namespace %s exists", p->name);
		goto out;
	}
	if (rc) {
		fail(c, 500, p->name, "storage error");
		goto out;
	}
	if (commit_change(c, "create", p->name, 201, p->hash))
		goto out;
	reply_json(c, 201, json_pack("{s:s, s:s}", "name", p->name, "hash", p->hash));
out:
	veil_record_free(&r);
	veil_policy_request_free(&in);
}

/* Loads namespace ns and checks `acl` of its stored policy (for_update: 0
 * read, 1 update, 2 delete); 0 or replied. */
static int load_checked(struct ctx *c, const char *ns, int for_update, struct veil_record *r,
			struct stored *s)
{
	memset(s, 0, sizeof(*s));
	if (!c->identity) {
		fail(c, 403, ns, "a client certificate is required");
		return -1;
	}
	int rc = c->t->store->ops->get(c->t->store, ns, r);
	if (rc == VEIL_ENOENT) {
		absent_or_refused(c, ns, for_update ? "update" : "read", 0);
		return -1;
	}
	if (rc || stored_open(c->t->cas->vault, r, s)) {
		fail(c, 500, ns, "cannot open the stored policy");
		return -1;
	}
	const struct veil_policy *p = &s->policy;
	int ok = for_update ? veil_policy_allows(p->update, p->update_count, r->owner, c->identity)
			    : veil_policy_allows(p->read, p->read_count, r->owner, c->identity);
	/* for_update 2 (delete): a frozen policy (update: [NONE]) by its creator */
	if (!ok && for_update == 2 && p->update_count == 1 && !strcmp(p->update[0], "NONE"))
		ok = veil_policy_allows((char *[]){"CREATOR"}, 1, r->owner, c->identity);
	if (!ok) {
		absent_or_refused(c, ns, for_update ? "update" : "read", 1);
		return -1;
	}
	return 0;
}

/* ---- the read cache: decrypting and parsing a policy once per change ---- */

static struct read_cache_entry *cache_slot(struct cas_thread *t, const char *ns)
{
	if (!t->cache)
		return NULL;
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = ns; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return &t->cache[h % READ_CACHE_SLOTS];
}

static void cache_clear(struct read_cache_entry *e)
{
	free(e->owner);
	for (size_t i = 0; i < e->read_count; i++)
		free(e->read[i]);
	free(e->read);
	veil_wipe_free(e->response); /* a policy's YAML: explicit values */
	memset(e, 0, sizeof(*e));
}

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
	struct stored st;
	struct veil_record rec; /* sealed: what the key process renders from; its
				 * owner is the code key's */
	int used;
};

static void attest_cache_clear(struct attest_cache_entry *e)
{
	if (e->used)
		stored_free(&e->st);
	veil_record_free(&e->rec);
	memset(e, 0, sizeof(*e));
}

void cas_cache_free(struct cas_thread *t)
{
	for (size_t i = 0; t->cache && i < READ_CACHE_SLOTS; i++)
		cache_clear(&t->cache[i]);
	free(t->cache);
	t->cache = NULL;
	for (size_t i = 0; t->attest_cache && i < ATTEST_CACHE_SLOTS; i++)
		attest_cache_clear(&t->attest_cache[i]);
	free(t->attest_cache);
	t->attest_cache = NULL;
}

/* The slot for ns. After any committed change every entry of this thread is
 * wiped at once, not only the one looked up: a deleted or updated
 * namespace's secrets do not linger in slots nobody asks for again. */
static struct attest_cache_entry *attest_slot(struct cas_thread *t, const char *ns,
					      unsigned long long gen)
{
	if (t->attest_cache && t->attest_gen != gen)
		for (size_t i = 0; i < ATTEST_CACHE_SLOTS; i++)
			attest_cache_clear(&t->attest_cache[i]);
	t->attest_gen = gen;
	if (!t->attest_cache &&
	    !(t->attest_cache = calloc(ATTEST_CACHE_SLOTS, sizeof(*t->attest_cache))))
		return NULL;
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = ns; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return &t->attest_cache[h % ATTEST_CACHE_SLOTS];
}

static int has_imports(const struct veil_policy *p)
{
	for (size_t i = 0; i < p->secret_count; i++)
		if (p->secrets[i].import_namespace)
			return 1;
	return 0;
}

static void cache_fill(struct read_cache_entry *e, const char *ns, unsigned long long gen,
		       const char *owner, const struct veil_policy *p, const char *response,
		       size_t size)
{
	cache_clear(e);
	if (strlen(ns) >= sizeof(e->ns))
		return;
	e->read = calloc(p->read_count + 1, sizeof(char *));
	e->owner = strdup(owner);
	e->response = malloc(size);
	if (!e->read || !e->owner || !e->response) {
		cache_clear(e);
		return;
	}
	for (size_t i = 0; i < p->read_count; i++)
		if (!(e->read[e->read_count++] = strdup(p->read[i]))) {
			cache_clear(e);
			return;
		}
	memcpy(e->response, response, size);
	e->response_size = size;
	snprintf(e->ns, sizeof(e->ns), "%s", ns);
	e->generation = gen;
}

static void policy_get(struct ctx *c, const char *ns)
{
	struct cas *cas = c->t->cas;
	unsigned long long gen = __atomic_load_n(&cas->generation, __ATOMIC_ACQUIRE);
	struct read_cache_entry *e = cache_slot(c->t, ns);
	if (e && e->response && e->generation == gen && !strcmp(e->ns, ns)) {
		if (!c->identity) {
			fail(c, 403, ns, "a client certificate is required");
		} else if (!veil_policy_allows(e->read, e->read_count, e->owner, c->identity)) {
			absent_or_refused(c, ns, "read", 1);
		} else {
			audit(c, "read", ns, 200, NULL);
			reply(c, 200, "application/json", e->response, e->response_size);
		}
		return;
	}
	struct veil_record r = {0};
	struct stored s;
	if (!load_checked(c, ns, 0, &r, &s)) {
		audit(c, "read", ns, 200, NULL);
		json_t *j = json_pack("{s:s, s:s, s:s%}", "name", ns, "hash", r.hash, "policy",
				      s.yaml, s.yaml_size);
		char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!body) {
			fail(c, 500, ns, "out of memory");
		} else {
			size_t n = strlen(body);
			body[n] = '\n'; /* json_dumps leaves room: its NUL */
			reply(c, 200, "application/json", body, n + 1);
			if (e)
				cache_fill(e, ns, gen, r.owner, &s.policy, body, n + 1);
			veil_wipe_free(body); /* the policy's YAML: explicit values */
		}
	}
	stored_free(&s);
	veil_record_free(&r);
}

static void policy_update(struct ctx *c, const char *ns)
{
	struct veil_record r = {0};
	struct stored s;
	struct veil_policy_request in = {0};
	uint8_t *blob = NULL;
	size_t blob_size = 0;
	veil_buf_init(&in.canonical, 0);
	if (load_checked(c, ns, 1, &r, &s))
		goto out;
	if (read_policy(c, &in, ns))
		goto out;
	const struct veil_policy *p = &in.policy;
	if (strcmp(p->name, ns)) {
		fail(c, 400, ns, "the policy is named %s, not %s", p->name, ns);
		goto out;
	}
	if (!p->predecessor) {
		fail(c, 400, ns, "an update needs 'predecessor: %s' (the current policy hash)",
		     r.hash);
		goto out;
	}
	if (strcmp(p->predecessor, r.hash)) {
		fail(c, 409, ns, "predecessor %.16s... is not the current policy hash %s",
		     p->predecessor, r.hash);
		goto out;
	}
	if (check_imports(c, p, r.owner) ||
	    seal_generated(c, p, &in.canonical, r.wrapped_key, r.wrapped_size, r.blob, r.blob_size,
			   &blob, &blob_size))
		goto out;
	int rc;
	struct veil_record nr = {.namespace_ = (char *)ns,
				 .hash = (char *)p->hash,
				 .owner = r.owner,
				 .wrapped_key = r.wrapped_key,
				 .wrapped_size = r.wrapped_size,
				 .blob = blob,
				 .blob_size = blob_size};
	struct veil_store *st = c->t->store;
	rc = st->ops->begin(st);
	if (!rc)
		rc = st->ops->update(st, &nr, r.hash);
	if (!rc)
		rc = index_exports(st, p);
	if (rc)
		st->ops->rollback(st);
	if (rc == VEIL_ECONFLICT) {
		fail(c, 409, ns, "the policy changed meanwhile; its hash is no longer %s", r.hash);
		goto out;
	}
	if (rc) {
		fail(c, 500, ns, "storage error");
		goto out;
	}
	if (commit_change(c, "update", ns, 200, p->hash))
		goto out;
	reply_json(c, 200, json_pack("{s:s, s:s}", "name", ns, "hash", p->hash));
out:
	free(blob);
	veil_policy_request_free(&in);
	stored_free(&s);
	veil_record_free(&r);
}

/* Deleting is governed by access_policy.update; a policy whose update list
 * is NONE (frozen: nobody may change it) can still be deleted by its
 * creator, or a name would be held forever. A parent with child namespaces
 * is not deleted: its name freed, anyone could create it again and hold the
 * children's parent (create_sessions). */
static void policy_delete(struct ctx *c, const char *ns)
{
	struct veil_record r = {0};
	struct stored s;
	long long children = 0;
	if (!load_checked(c, ns, 2, &r, &s)) {
		struct veil_store *st = c->t->store;
		int rc = st->ops->begin(st);
		if (!rc)
			rc = st->ops->remove(st, ns);
		if (rc == VEIL_ENOENT && !st->ops->count_children(st, ns, &children) && children) {
			st->ops->rollback(st);
			fail(c, 409, ns,
			     "namespace %s has child namespaces (%lld): delete them first", ns,
			     children);
		} else if (rc && rc != VEIL_ENOENT) {
			st->ops->rollback(st);
			fail(c, 500, ns, "storage error");
		} else if (!commit_change(c, "delete", ns, 200, r.hash)) {
			reply_json(c, 200, json_pack("{s:s, s:b}", "name", ns, "deleted", 1));
		}
	}
	stored_free(&s);
	veil_record_free(&r);
}

static int list_one(const char *ns, const char *hash, void *arg)
{
	return json_array_append_new(arg, json_pack("{s:s, s:s}", "name", ns, "hash", hash));
}

static void policy_list(struct ctx *c)
{
	if (!c->identity) {
		fail(c, 403, NULL, "a client certificate is required");
		return;
	}
	json_t *a = json_array();
	if (!a || c->t->store->ops->list(c->t->store, c->identity, list_one, a)) {
		json_decref(a);
		fail(c, 500, NULL, "storage error");
		return;
	}
	reply_json(c, 200, json_pack("{s:o}", "policies", a));
}

/* ---- /v1/attest: a service proves what it is and gets its configuration ---- */

static int in_list(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return 1;
	return 0;
}

/* The files a runtime may list in /v1/attest: a policy holds at most 4096
 * (veil_policy_limits); more than this is no runtime's list. */
#define ATTEST_FILES_MAX 16384

static int file_ptr_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct veil_policy_file *const *)a)->path,
		      (*(const struct veil_policy_file *const *)b)->path);
}

/* Names the first protected file that differs between the policy and the
 * list the runtime sent ({path, sha256} entries), as ": FILE changed" etc.
 * The policy's files are sorted once and each sent one found by binary
 * search: comparing every pair took 19 s for a 3.9 MB list on the loop. */
static void name_changed_file(const struct veil_policy_service *svc, json_t *sent, char *out,
			      size_t cap)
{
	out[0] = '\0';
	if (!svc->file_count || !json_is_array(sent))
		return;
	size_t n = svc->file_count, i;
	const struct veil_policy_file **sorted = malloc(n * sizeof(*sorted));
	unsigned char *seen = calloc(n, 1);
	json_t *e;
	if (!sorted || !seen)
		goto out;
	for (size_t k = 0; k < n; k++)
		sorted[k] = &svc->files[k];
	qsort(sorted, n, sizeof(*sorted), file_ptr_cmp);
	json_array_foreach(sent, i, e)
	{
		const char *path = NULL, *h = NULL;
		if (json_unpack(e, "{s:s, s:s}", "path", &path, "sha256", &h))
			continue;
		size_t lo = 0, hi = n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(sorted[mid]->path, path) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == n || strcmp(sorted[lo]->path, path)) {
			snprintf(out, cap, ": %.200s is not a protected file of the policy", path);
			goto out;
		}
		if (strcmp(sorted[lo]->sha256, h)) {
			snprintf(out, cap, ": %.200s changed", path);
			goto out;
		}
		seen[lo] = 1;
	}
	for (size_t k = 0; k < n; k++)
		if (!seen[k]) {
			snprintf(out, cap, ": %.200s is missing", sorted[k]->path);
			goto out;
		}
	snprintf(out, cap, ": a file's mode changed");
out:
	free(sorted);
	free(seen);
}

/* The configurations released lately, so that a runtime that then refuses
 * to start can say so (POST /v1/attest/refused) and nobody else can: a
 * report counts only from the client key the configuration was released to,
 * for that config id, within RELEASE_REPORT_SECONDS, once. An entry is the
 * SHA-256 of "KEYHASH\nCONFIG_ID" and the time. The ring holds the last
 * RELEASES_KEPT releases (160 KiB); a report after more than that many
 * releases is refused like a stranger's, which costs only the audit entry. */
#define RELEASES_KEPT 4096
#define RELEASE_REPORT_SECONDS 60
struct release {
	uint8_t id[VEIL_SHA256_SIZE];
	time_t at; /* 0: free or reported */
};
static pthread_mutex_t releases_lock = PTHREAD_MUTEX_INITIALIZER;
static struct release releases[RELEASES_KEPT];
static size_t releases_next;

static int release_id(const char *client, const char *config_id, uint8_t id[VEIL_SHA256_SIZE])
{
	char buf[VEIL_KEY_HASH_HEX + 1 + VEIL_EVIDENCE_CONFIG_ID_MAX + 1];
	int n = snprintf(buf, sizeof(buf), "%s\n%s", client, config_id);
	return n < 0 || (size_t)n >= sizeof(buf) || veil_sha256(buf, (size_t)n, id) ? -1 : 0;
}

static void release_remember(const char *client, const char *config_id)
{
	struct release r = {.at = time(NULL)};
	if (release_id(client, config_id, r.id))
		return;
	pthread_mutex_lock(&releases_lock);
	releases[releases_next] = r;
	releases_next = (releases_next + 1) % RELEASES_KEPT;
	pthread_mutex_unlock(&releases_lock);
}

/* 1 (and forgotten: one report per release) if config_id was released to
 * client within the window, else 0 */
static int release_take(const char *client, const char *config_id)
{
	uint8_t id[VEIL_SHA256_SIZE];
	if (release_id(client, config_id, id))
		return 0;
	time_t now = time(NULL);
	int found = 0;
	pthread_mutex_lock(&releases_lock);
	for (size_t i = 0; i < RELEASES_KEPT && !found; i++) {
		struct release *r =
		    &releases[(releases_next + RELEASES_KEPT - 1 - i) % RELEASES_KEPT];
		if (r->at && now - r->at <= RELEASE_REPORT_SECONDS && now >= r->at &&
		    /* not secret: hash of a client key hash and a config id */
		    !memcmp(r->id, id, sizeof(id))) {
			r->at = 0;
			found = 1;
		}
	}
	pthread_mutex_unlock(&releases_lock);
	return found;
}

/* POST /v1/attest/refused: the runtime the configuration was just released
 * to refused to start (a runtime file changed, the folder could not be
 * pinned, ...). Audited as start-refused with its reason, which the runtime
 * writes from names and errors only, never a value. An attacker who controls
 * the node can keep the report from coming: its absence proves nothing. */
static void attest_refused(struct ctx *c)
{
	struct veil_refusal_report q;
	struct veil_diags d;
	char msg[600];
	memset(&q, 0, sizeof(q));
	veil_diags_init(&d);
	if (!c->identity) {
		fail(c, 403, NULL,
		     "a refusal is reported with the key the configuration was released to");
		goto out;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	if (veil_refusal_report_decode((const char *)evbuffer_pullup(in, -1),
				       evbuffer_get_length(in), &q, &d)) {
		diags_text(&d, msg, sizeof(msg));
		fail(c, 400, NULL, "%s", msg);
		goto out;
	}
	if (!release_take(c->identity, q.config_id)) {
		fail(c, 403, q.ns,
		     "no configuration of %s was released to this client in the last %d s (a "
		     "refusal is reported once, by the runtime that attested, with its key)",
		     q.config_id, RELEASE_REPORT_SECONDS);
		goto out;
	}
	char detail[VEIL_REFUSAL_REASON_MAX + 200]; /* + a service name, 128 */
	snprintf(detail, sizeof(detail), "%s: the attested runtime refused to start: %s", q.service,
		 q.reason);
	audit(c, "start-refused", q.ns, 200, detail);
	reply_json(c, 200, json_pack("{s:s}", "audited", "start-refused"));
out:
	veil_refusal_report_free(&q);
	veil_diags_free(&d);
}

/* ---- /v1/code-keys: the key an image build encrypts code with ---- */

/* POST /v1/code-keys {"key_id"?: HEX}: the code key of that id (a new
 * random id without one) for this client, {"key_id", "key"}. The key is
 * derived, not stored (veil_vault_code_key): the same id and client give
 * the same key, so a rebuild is reproducible, and a runtime gets it after
 * attestation from a policy whose creator is that client. It is the one
 * secret the CAS gives to a client: the owner's builder holds the code in
 * plaintext anyway (docs/security.md). */
static void code_key(struct ctx *c)
{
	char id[VEIL_CODE_KEY_ID_HEX + 1];
	uint8_t raw[VEIL_CODE_KEY_ID_HEX / 2], key[VEIL_CODE_KEY_SIZE];
	char key_hex[2 * VEIL_CODE_KEY_SIZE + 1];
	if (!c->identity) {
		fail(c, 403, NULL, "a client certificate is required");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t n = evbuffer_get_length(in);
	const char *given = NULL;
	json_error_t je;
	json_t *j = n ? json_loadb((const char *)evbuffer_pullup(in, -1), n, 0, &je) : NULL;
	if (n && (!json_is_object(j) || json_unpack(j, "{s?s !}", "key_id", &given) ||
		  (given && !veil_code_key_id_valid(given)))) {
		json_decref(j);
		fail(c, 400, NULL, "expected {} or {\"key_id\": \"%d lower-case hex digits\"}",
		     VEIL_CODE_KEY_ID_HEX);
		return;
	}
	if (given) {
		snprintf(id, sizeof(id), "%s", given);
	} else if (RAND_bytes(raw, sizeof(raw)) != 1) {
		json_decref(j);
		fail(c, 500, NULL, "no randomness");
		return;
	} else {
		veil_hex(raw, sizeof(raw), id);
	}
	json_decref(j);
	if (veil_vault_code_key(c->t->cas->vault, id, c->identity, key)) {
		fail(c, 500, NULL, "cannot derive the code key");
		return;
	}
	veil_hex(key, sizeof(key), key_hex);
	OPENSSL_cleanse(key, sizeof(key));
	char *body = NULL;
	if (asprintf(&body, "{\"key_id\":\"%s\",\"key\":\"%s\"}\n", id, key_hex) < 0)
		body = NULL;
	OPENSSL_cleanse(key_hex, sizeof(key_hex));
	if (!body) {
		fail(c, 500, NULL, "out of memory");
		return;
	}
	char detail[120];
	snprintf(detail, sizeof(detail), "code key %s given to its owner for an image build", id);
	audit(c, "code-key", NULL, 200, detail);
	reply_secret(c, 200, body, strlen(body));
}

static void attest(struct ctx *c)
{
	struct cas *cas = c->t->cas;
	struct veil_record r = {0};
	struct stored st;
	struct veil_diags d;
	memset(&st, 0, sizeof(st));
	veil_diags_init(&d);
	struct veil_attest_request q;
	char msg[600], *sealed = NULL;
	size_t sealed_size = 0;
	struct veil_buf imports = {0};
	struct cas_seal_to to = {0};
	memset(&q, 0, sizeof(q));
	if (!c->identity) {
		fail(c, 403, NULL, "attestation needs the client certificate the evidence binds");
		goto out;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	if (veil_attest_request_decode((const char *)evbuffer_pullup(in, -1),
				       evbuffer_get_length(in), &q, &d)) {
		diags_text(&d, msg, sizeof(msg));
		fail(c, 400, NULL, "%s", msg);
		goto out;
	}
	if (json_array_size(q.files) > ATTEST_FILES_MAX) {
		fail(c, 413, NULL, "files: %zu entries, at most %d", json_array_size(q.files),
		     ATTEST_FILES_MAX);
		goto out;
	}
	const char *ns = q.ns, *svc_name = q.service, *config_id = q.config_id;
	const char *evidence = q.evidence, *root = q.file_set_root;
	json_t *sent_files = q.files;
	/* 1. the evidence, before anything about the namespace: a refusal says
	 * nothing about which namespaces and services exist. It verifies and is
	 * bound to the key of this very TLS connection, */
	uint8_t rd[VEIL_SHA256_SIZE];
	if (veil_unhex(c->identity, rd, sizeof(rd))) { /* our own hex of the peer's key */
		fail(c, 500, NULL, "internal error: the connection's key hash");
		goto out;
	}
	struct veil_claims cl;
	struct veil_evidence_opts eo = {.collateral = cas->collateral,
					.no_binding = cas->test_recorded_evidence};
	if (veil_evidence_verify_opts(evidence, strlen(evidence), rd, &eo, &cl, &d)) {
		diags_text(&d, msg, sizeof(msg));
		fail(c, 403, ns, "evidence refused for %s: %s", config_id, msg);
		goto out;
	}
	/* hardware evidence: bound to this TLS key (above) and to this
	 * configuration by the report data's second half; the key is made for
	 * this start, so a replay needs it */
	if (cl.hardware) {
		uint8_t want[VEIL_SHA256_SIZE];
		if (veil_sha256(config_id, strlen(config_id), want)) {
			fail(c, 500, ns, "cannot hash the config id");
			goto out;
		}
		if (!cas->test_recorded_evidence &&
		    CRYPTO_memcmp(cl.report_data + VEIL_SHA256_SIZE, want, sizeof(want))) {
			fail(c, 403, ns,
			     "evidence refused for %s: its report data was made for another "
			     "configuration (the second 32 bytes are not the SHA-256 of %s)",
			     config_id, config_id);
			goto out;
		}
	}
	/* fresh (a recording replayed later is refused), */
	long long now = (long long)time(NULL), max_age = cas->evidence_max_age;
	if (!cl.hardware && (cl.timestamp < now - max_age || cl.timestamp > now + max_age)) {
		/* no subtraction with the claimed time: it may be any 64-bit value */
		fail(c, 403, ns,
		     "evidence refused for %s: evidence is not fresh (made at %lld, the CAS's "
		     "time is %lld; veil-cas accepts %lld s either way, --evidence-max-age)",
		     config_id, cl.timestamp, now, max_age);
		goto out;
	}
	/* made for this configuration, */
	if (!cl.hardware && strcmp(cl.config_id, config_id)) {
		fail(c, 403, ns, "evidence refused for %s: evidence was made for %s, not %s",
		     config_id, cl.config_id[0] ? cl.config_id : "(no config id)", config_id);
		goto out;
	}
	/* 2. and signed by a platform the operator trusts (a key the policy
	 * lists counts only with --allow-policy-platforms: a policy's writer
	 * could list a key they made up) */
	/* (hardware evidence is signed by the vendor's chain, checked above) */
	int platform_trusted =
	    cl.hardware || in_list(cas->trusted_platforms, cas->trusted_count, cl.platform_key);
	if (!platform_trusted && !cas->allow_policy_platforms) {
		fail(c, 403, ns,
		     "platform %.16s... is not trusted for %s (veil-cas --trust-platform)",
		     cl.platform_key, config_id);
		goto out;
	}
	unsigned long long gen = __atomic_load_n(&cas->generation, __ATOMIC_ACQUIRE);
	struct attest_cache_entry *slot = attest_slot(c->t, ns, gen);
	struct stored *sp = &st;           /* the cached entry, or st (this request's) */
	const struct veil_record *rp = &r; /* likewise */
	if (slot && slot->used && slot->generation == gen && !strcmp(slot->ns, ns)) {
		sp = &slot->st;
		rp = &slot->rec;
	} else {
		int rc = c->t->store->ops->get(c->t->store, ns, &r);
		if (rc == VEIL_ENOENT) {
			fail(c, 404, ns, "no namespace %s", ns);
			goto out;
		}
		if (rc || stored_open(cas->vault, &r, &st)) {
			fail(c, 500, ns, "cannot open the stored policy");
			goto out;
		}
		if (slot && strlen(ns) < sizeof(slot->ns) && !has_imports(&st.policy)) {
			attest_cache_clear(slot);
			slot->rec = r; /* moved, as st */
			memset(&r, 0, sizeof(r));
			rp = &slot->rec;
			slot->st = st; /* moved: the doc's arena is on the heap, the
					* policy's pointers stay valid */
			memset(&st, 0, sizeof(st));
			snprintf(slot->ns, sizeof(slot->ns), "%s", ns);
			slot->generation = gen;
			slot->used = 1;
			sp = &slot->st;
		}
	}
	const struct veil_policy *p = &sp->policy;
	const struct veil_policy_service *svc = NULL;
	for (size_t i = 0; i < p->service_count; i++)
		if (!strcmp(p->services[i].name, svc_name))
			svc = &p->services[i];
	if (!svc) {
		fail(c, 404, ns, "no service %s in policy %s", svc_name, ns);
		goto out;
	}
	if (!platform_trusted && !in_list(svc->platforms, svc->platform_count, cl.platform_key)) {
		fail(c, 403, ns,
		     "platform %.16s... is not trusted for %s (veil-cas --trust-platform, or the "
		     "service's platforms with veil-cas --allow-policy-platforms)",
		     cl.platform_key, config_id);
		goto out;
	}
	/* 3. and 4. tolerance (simulation evidence is always debug), the
	 * measurement, the TCB status and advisories: the claims the policy
	 * names (src/policy/decide.c) */
	char decision[600];
	if (veil_attest_decide(p, svc, &cl, config_id, decision, sizeof(decision))) {
		fail(c, 403, ns, "%s", decision);
		goto out;
	}
	/* 5. the protected files are the measured ones */
	if (svc->file_set_root && (!root || strcmp(root, svc->file_set_root))) {
		char which[300];
		name_changed_file(svc, sent_files, which, sizeof(which));
		fail(c, 403, ns, "file-set root %.16s... does not match policy %s%s",
		     root ? root : "(none)", config_id, which);
		goto out;
	}
	/* 5b. the whole image is the measured one (its record's SHA-256; veil-run
	 * checks the image against the record before the program starts) */
	if (svc->image_root && (!q.image_root || strcmp(q.image_root, svc->image_root))) {
		fail(c, 403, ns,
		     "image_root %.16s... does not match policy %s (the image is not the one "
		     "measured by 'veil apply')",
		     q.image_root ? q.image_root : "(none)", config_id);
		goto out;
	}
	/* 6. imported secrets, each with its exporter's consent as of now (a
	 * policy with imports is never the cached entry: rp is this request's);
	 * the key process opens their values */
	veil_buf_init(&imports, 0);
	int status =
	    import_all(c->t, ns, rp->owner, p, has_imports(p) ? &imports : NULL, msg, sizeof(msg));
	if (status) {
		fail(c, status == 500 ? 500 : 403, ns, "cannot provision %s: %s", config_id, msg);
		goto out;
	}
	/* 7. the key process renders the configuration and seals it to this
	 * connection's client key (src/cas/seal.c): only the runtime that
	 * attested can read it, and the plaintext never comes here */
	int seal_status = cas_seal_target(c->req, evidence, &to, msg, sizeof(msg));
	if (seal_status) {
		fail(c, seal_status, ns, "cannot release the configuration of %s: %s", config_id,
		     msg);
		goto out;
	}
	if (cas_kp_render(rp, svc_name, svc->code_key_id ? rp->owner : NULL,
			  has_imports(p) ? (const uint8_t *)imports.data : NULL, imports.size,
			  config_id, &to, &sealed, &sealed_size, msg, sizeof(msg))) {
		fail(c, 500, ns, "cannot render the configuration of %s: %s", config_id,
		     msg[0] ? msg : "out of memory");
		goto out;
	}
	/* released, not started: veil-run still checks its runtime files and
	 * pins its folders, and reports a refusal (start-refused) */
	char detail[300];
	snprintf(detail, sizeof(detail),
		 "%s: configuration released to an attested runtime (measurement %.16s platform "
		 "%.16s)",
		 svc_name, cl.measurement, cl.platform_key);
	audit(c, "release", ns, 200, detail);
	release_remember(c->identity, config_id);
	reply(c, 200, "application/json", sealed, sealed_size);
out:
	free(sealed);
	veil_diags_free(&d);
	veil_buf_free(&imports);
	veil_attest_request_free(&q);
	stored_free(&st);
	veil_record_free(&r);
}

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
static void peer_identity(struct ctx *c)
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

/* A known route asked with a method it does not take: 405 and Allow. */
static void wrong_method(struct ctx *c, const char *allow, const char *path)
{
	c->allow = allow;
	fail(c, 405, NULL, "%s takes %s", path, allow);
}

/* 200 only when a restart would succeed and requests can be served: the
 * store answers, the master key wraps and unwraps, and master.key is still
 * in the data folder (without it the next start is refused). */
static void readyz(struct ctx *c)
{
	struct cas *cas = c->t->cas;
	long long n;
	uint8_t *wrapped = NULL, *sealed = NULL, *opened = NULL;
	size_t wrapped_size = 0, sealed_size = 0, opened_size = 0;
	/* a payload frame (render.h) with the policy text "readyz", no secrets */
	static const uint8_t probe[] = {'V', 'P', 'A', 'Y', 1,   0,   0,   0, 6, 0, 0,
					0,   'r', 'e', 'a', 'd', 'y', 'z', 0, 0, 0, 0};
	char *keyfile = veil_path_join(cas->data_dir, "master.key");
	const char *reason = NULL;
	if (!keyfile)
		reason = "out of memory";
	else if (c->t->store->ops->count(c->t->store, &n))
		reason = "the store does not answer";
	else if (access(keyfile, R_OK))
		reason = "master.key is missing from the data folder (a restart would refuse to "
			 "start)";
	else if (veil_vault_new_key(cas->vault, "readyz", &wrapped, &wrapped_size) ||
		 veil_vault_seal(cas->vault, "readyz", wrapped, wrapped_size, probe, sizeof(probe),
				 &sealed, &sealed_size) ||
		 cas_kp_open_policy(cas->vault,
				    &(struct veil_record){.namespace_ = "readyz",
							  .wrapped_key = wrapped,
							  .wrapped_size = wrapped_size,
							  .blob = sealed,
							  .blob_size = sealed_size},
				    &opened, &opened_size) ||
		 /* not secret: the probe's fixed text */
		 opened_size != 6 || memcmp(opened, "readyz", 6))
		reason = "the master key does not wrap and unwrap a data key";
	if (reason) {
		snprintf(c->error, sizeof(c->error), "not ready: %s", reason);
		reply_json(c, 503, json_pack("{s:s}", "error", c->error));
	} else {
		reply(c, 200, "text/plain", "ok\n", 3);
	}
	if (opened)
		veil_secure_free(opened, opened_size);
	free(sealed);
	free(wrapped);
	free(keyfile);
}

static enum cas_log_level log_level_of(const struct ctx *c)
{
	if (c->status >= 500)
		return CAS_LOG_ERROR;
	if (c->status >= 400)
		return CAS_LOG_WARN;
	if (c->route == R_HEALTHZ || c->route == R_READYZ || c->route == R_METRICS)
		return CAS_LOG_DEBUG; /* probes every few seconds would drown the rest */
	return CAS_LOG_INFO;
}

/* Metrics and the request log of an answered request; its connection's
 * deadline runs again, for the next one. */
static void finish(struct ctx *c, enum evhttp_cmd_type m, const char *path,
		   const struct timespec *t0)
{
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

/* ---- the worker pool: policy create and update off the event loops ----
 * Generating a policy's keys (RSA-3072 takes ~0.3-1 s each) on an event loop
 * stalled every other connection of that loop: /healthz waited 6 s behind a
 * policy with 8 of them. A create or update is read on the loop, done by a
 * worker (its own store connection), and its reply sent back on the loop. */
#define JOBS_MAX 1024

struct cas_job {
	struct cas_job *next;
	struct ctx c;
	struct cas_thread *home; /* the event loop that answers */
	enum evhttp_cmd_type m;
	struct timespec t0;
	char ns[256];
	char *body;
};

struct cas_workers {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cas_job *head, *tail;
	long queued;      /* in the queue or on a worker */
	long outstanding; /* not answered yet */
	bool stop;
	size_t count;
	struct cas_thread *threads; /* a worker's store and the cas */
	pthread_t *tids;
};

static void job_free(struct cas_job *j)
{
	free(j->c.reply_body);
	if (j->body) {
		OPENSSL_cleanse(j->body, j->c.body_size);
		free(j->body);
	}
	free(j);
}

/* On the event loop: the worker's reply goes out. */
static void job_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct cas_job *j = arg;
	struct ctx *c = &j->c;
	struct cas_workers *w = c->t->cas->workers;
	c->deferred = false;
	/* a request whose connection is gone is freed by the reply itself */
	bool gone = !evhttp_request_get_connection(c->req);
	if (c->reply_body)
		reply(c, c->status, c->reply_type, c->reply_body, c->reply_size);
	else
		reply(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
	if (gone)
		c->req = NULL;
	finish(c, j->m, j->ns, &j->t0); /* j->ns: the path, kept at enqueue */
	job_free(j);
	pthread_mutex_lock(&w->lock);
	w->outstanding--;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void *worker_main(void *arg)
{
	struct cas_thread *wt = arg;
	struct cas_workers *w = wt->cas->workers;
	for (;;) {
		pthread_mutex_lock(&w->lock);
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		struct cas_job *j = w->head;
		if (!j) {
			pthread_mutex_unlock(&w->lock);
			return NULL;
		}
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		j->c.t = wt;
		if (j->c.route == R_POLICY_CREATE)
			policy_create(&j->c);
		else
			policy_update(&j->c, j->ns + strlen("/v1/policies/"));
		j->c.t = j->home;
		pthread_mutex_lock(&w->lock);
		w->queued--;
		pthread_mutex_unlock(&w->lock);
		struct timeval now = {0, 0};
		if (event_base_once(j->home->base, -1, EV_TIMEOUT, job_done, j, &now)) {
			pthread_mutex_lock(&w->lock);
			w->outstanding--;
			pthread_mutex_unlock(&w->lock);
			job_free(j); /* the loop is gone: evhttp frees the request */
		}
	}
}

/* 0: queued, the worker answers; else answered here (503 when full). */
static int defer(struct ctx *c, enum evhttp_cmd_type m, const char *path, const struct timespec *t0)
{
	struct cas_workers *w = c->t->cas->workers;
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t n = evbuffer_get_length(in);
	struct cas_job *j = w ? calloc(1, sizeof(*j)) : NULL;
	if (!j || strlen(path) >= sizeof(j->ns) || (n && !(j->body = malloc(n)))) {
		if (j)
			job_free(j);
		return -1; /* done on the loop */
	}
	if (n && evbuffer_copyout(in, j->body, n) != (ev_ssize_t)n) {
		job_free(j);
		return -1;
	}
	j->c = *c;
	if (c->identity == c->identity_buf)
		j->c.identity = j->c.identity_buf;
	j->c.deferred = true;
	j->c.body = j->body;
	j->c.body_size = n;
	j->home = c->t;
	j->m = m;
	j->t0 = *t0;
	snprintf(j->ns, sizeof(j->ns), "%s", path);
	pthread_mutex_lock(&w->lock);
	bool full = w->stop || w->queued >= JOBS_MAX;
	if (!full) {
		if (w->tail)
			w->tail->next = j;
		else
			w->head = j;
		w->tail = j;
		w->queued++;
		w->outstanding++;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	if (full) {
		job_free(j);
		snprintf(c->error, sizeof(c->error), "busy");
		reply_json(c, 503,
			   json_pack("{s:s}", "error", "too many policy changes queued; retry"));
		return 1;
	}
	return 0;
}

int cas_workers_start(struct cas *cas, size_t count, struct veil_diags *d)
{
	struct cas_workers *w = calloc(1, sizeof(*w));
	if (!w)
		return VEIL_ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->threads = calloc(count, sizeof(*w->threads));
	w->tids = calloc(count, sizeof(*w->tids));
	cas->workers = w;
	if (!w->threads || !w->tids)
		return VEIL_ENOMEM;
	for (size_t i = 0; i < count; i++) {
		w->threads[i].cas = cas;
		w->threads[i].fd = -1;
		struct veil_store_opener o = {cas_policy_exports, cas->vault};
		if (veil_store_sqlite_open(cas->data_dir, &o, &w->threads[i].store, d))
			return VEIL_EIO;
		if (pthread_create(&w->tids[i], NULL, worker_main, &w->threads[i]))
			return VEIL_EIO;
		w->count++;
	}
	return 0;
}

/* Before the event loops stop: the queue is worked off, its answers sent
 * (up to 10 s), then the workers end. */
void cas_workers_stop(struct cas *cas)
{
	struct cas_workers *w = cas->workers;
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (size_t i = 0; i < w->count; i++)
		pthread_join(w->tids[i], NULL);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&w->lock);
	while (w->outstanding > 0 && !pthread_cond_timedwait(&w->cond, &w->lock, &until))
		;
	pthread_mutex_unlock(&w->lock);
}

void cas_workers_free(struct cas *cas)
{
	struct cas_workers *w = cas->workers;
	if (!w)
		return;
	for (size_t i = 0; w->threads && i < w->count; i++)
		if (w->threads[i].store)
			w->threads[i].store->ops->close(w->threads[i].store);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->threads);
	free(w->tids);
	free(w);
	cas->workers = NULL;
}

void cas_handle(struct evhttp_request *req, void *arg)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct ctx c = {.t = arg, .req = req, .route = R_OTHER};
	cas_conn_request_done(req);
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	bool get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
	peer_identity(&c);
	if (!path) {
		fail(&c, 400, NULL, "malformed request URI");
		goto done;
	}
	const char *prefix = "/v1/policies/";
	if (c.cert_out_of_date &&
	    (!strcmp(path, "/v1/attest") || !strcmp(path, "/v1/attest/refused") ||
	     !strcmp(path, "/v1/code-keys") || !strcmp(path, "/v1/policies") ||
	     !strncmp(path, prefix, strlen(prefix)))) {
		c.route = !strcmp(path, "/v1/attest")           ? R_ATTEST
			  : !strcmp(path, "/v1/attest/refused") ? R_ATTEST_REFUSED
								: R_OTHER;
		fail(&c, 403, NULL,
		     "the client certificate is outside its validity period (expired or not yet "
		     "valid)");
	} else if (!strcmp(path, "/healthz")) {
		c.route = R_HEALTHZ;
		if (get)
			reply(&c, 200, "text/plain", "ok\n", 3);
		else
			wrong_method(&c, "GET, HEAD", path);
	} else if (!strcmp(path, "/readyz")) {
		c.route = R_READYZ;
		if (get)
			readyz(&c);
		else
			wrong_method(&c, "GET, HEAD", path);
	} else if (!strcmp(path, "/metrics")) {
		c.route = R_METRICS;
		char *text = get ? cas_metrics_render(c.t->cas, c.t->store) : NULL;
		if (!get)
			wrong_method(&c, "GET, HEAD", path);
		else if (text)
			reply(&c, 200, "text/plain; version=0.0.4", text, strlen(text));
		else
			fail(&c, 500, NULL, "out of memory");
		free(text);
	} else if (!strcmp(path, "/v1/cas/identity")) {
		c.route = R_IDENTITY;
		const char *j = c.t->cas->identity_json;
		if (get)
			reply(&c, 200, "application/json", j, strlen(j));
		else
			wrong_method(&c, "GET, HEAD", path);
	} else if (!strcmp(path, "/v1/attest")) {
		c.route = R_ATTEST;
		if (m == EVHTTP_REQ_POST)
			attest(&c);
		else
			wrong_method(&c, "POST", path);
	} else if (!strcmp(path, "/v1/attest/refused")) {
		c.route = R_ATTEST_REFUSED;
		if (m == EVHTTP_REQ_POST)
			attest_refused(&c);
		else
			wrong_method(&c, "POST", path);
	} else if (!strcmp(path, "/v1/code-keys")) {
		c.route = R_CODE_KEY;
		if (m == EVHTTP_REQ_POST)
			code_key(&c);
		else
			wrong_method(&c, "POST", path);
	} else if (!strcmp(path, "/v1/policies")) {
		if (m == EVHTTP_REQ_GET) {
			c.route = R_POLICY_LIST;
			policy_list(&c);
		} else if (m == EVHTTP_REQ_POST) {
			c.route = R_POLICY_CREATE;
			int q = defer(&c, m, path, &t0);
			if (!q)
				return; /* a worker answers */
			if (q < 0)
				policy_create(&c);
		} else {
			wrong_method(&c, "GET, POST", path);
		}
	} else if (!strncmp(path, prefix, strlen(prefix))) {
		const char *ns = path + strlen(prefix);
		/* evhttp gives the raw path: a %-escape or anything else outside the
		 * name syntax (e.g. "../x") is refused before any lookup */
		if (!veil_valid_namespace(ns)) {
			fail(&c, 400, NULL, "invalid namespace name in the path");
		} else if (m == EVHTTP_REQ_GET) {
			c.route = R_POLICY_GET;
			policy_get(&c, ns);
		} else if (m == EVHTTP_REQ_PUT) {
			c.route = R_POLICY_UPDATE;
			int q = defer(&c, m, path, &t0);
			if (!q)
				return; /* a worker answers */
			if (q < 0)
				policy_update(&c, ns);
		} else if (m == EVHTTP_REQ_DELETE) {
			c.route = R_POLICY_DELETE;
			policy_delete(&c, ns);
		} else {
			wrong_method(&c, "GET, PUT, DELETE", "/v1/policies/NAME");
		}
	} else {
		c.status = 404;
		snprintf(c.error, sizeof(c.error), "no such route");
		reply_json(&c, 404, json_pack("{s:s}", "error", "no such route"));
	}
done:
	finish(&c, m, path, &t0);
}
