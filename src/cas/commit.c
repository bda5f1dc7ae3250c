/* A change and its audit entry commit together (routes.h). On SQLite the
 * entry goes to the data folder's audit.log, durable before the store's
 * transaction commits with the head it ends at, and a failed commit is
 * followed by a "rollback" entry. On PostgreSQL it is a row of the
 * database's change chain (store audit_append), one chain for every
 * replica, written in the change's own transaction: it commits or vanishes
 * with the change. Also the signed checkpoints of the audit heads (cas.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "routes.h"

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
static void changed(struct route_ctx *c)
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
 * and log cannot disagree after a crash. PostgreSQL (store audit_append):
 * the entry is a row of the change's own transaction, committed with it.
 * SQLite, the file: the change (made by the caller in
 * the store's open transaction, store->begin) commits together with the
 * audit head its entry ends at, after the entry is synced. A crash before
 * the commit leaves an entry for a change that is not stored: the next start
 * appends a "rollback" entry naming it (veil_audit_reconcile). 0, or the
 * transaction was rolled back and the reply sent (503: the entry could not
 * be written, e.g. a full disk; before, 26 updates were stored unaudited). */
int route_commit_change(struct route_ctx *c, const char *event, const char *ns, int status,
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
	if (st->ops->audit_append) {
		/* no rollback entry is ever needed, and a commit whose answer
		 * was lost took both or neither (500, or 503 when the database
		 * is out of reach: route_fail) */
		int rc = st->ops->audit_append(st, &ev, NULL);
		if (!rc)
			fault_point("before_commit");
		if (rc || st->ops->commit(st)) {
			st->ops->rollback(st);
			route_fail(c, 500, ns,
				   rc ? "the audit chain cannot be written: the change was not "
					"applied"
				      : "storage error");
			return -1;
		}
		fault_point("after_commit");
		changed(c);
		return 0;
	}
	if (veil_audit_append_at(cas->audit, &ev, &h)) {
		st->ops->rollback(st);
		snprintf(c->error, sizeof(c->error), "the audit log cannot be written");
		route_reply_json(
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
		bool unavailable = st->unavailable; /* the commit's: 503, not the get's */
		int g = st->ops->get(st, ns, &old);
		st->unavailable = unavailable;
		struct veil_audit_event rb = {.event = "rollback",
					      .namespace_ = ns,
					      .status = 200,
					      .detail = g ? NULL : old.hash};
		if ((!g || g == VEIL_ENOENT) && veil_audit_append(cas->audit, &rb))
			cas_warn_limited("cannot write the audit log");
		veil_record_free(&old);
		route_fail(c, 500, ns, "storage error");
		return -1;
	}
	fault_point("after_commit");
	changed(c);
	return 0;
}

/* A checkpoint entry's detail (audit.h): head signed with the CAS's TLS key. */
static int checkpoint_detail(struct cas *cas, const struct veil_audit_head *head, char *out,
			     size_t cap)
{
	struct veil_audit_checkpoint cp = {.head = *head};
	memcpy(cp.key_hash, cas->key_hash, sizeof(cp.key_hash));
	int rc = veil_audit_head_sign(cas->key, head, cp.signature, sizeof(cp.signature));
	if (!rc)
		rc = veil_audit_checkpoint_detail(&cp, out, cap);
	return rc < 0 ? rc : 0;
}

/* PostgreSQL: a signed checkpoint of the database's change chain, when an
 * entry other than a checkpoint ends it (every replica calls this; a chain
 * that did not move gets none). Signed with the CAS key all replicas share. */
int cas_audit_checkpoint_chain(struct cas *cas, struct veil_store *st)
{
	struct veil_audit_head prev;
	char detail[800];
	bool cp = true;
	if (!st->ops->audit_append)
		return 0;
	int rc = st->ops->begin(st);
	if (rc)
		return rc;
	struct veil_audit_head anchor = {0};
	if (!(rc = st->ops->audit_last(st, &prev, &cp)))
		anchor = prev;
	if (!rc && prev.seq && !cp &&
	    !(rc = checkpoint_detail(cas, &prev, detail, sizeof(detail)))) {
		struct veil_audit_event ev = {.event = "checkpoint", .detail = detail};
		rc = st->ops->audit_append(st, &ev, &anchor);
	}
	if (!rc)
		rc = st->ops->commit(st);
	if (rc) {
		st->ops->rollback(st);
		return rc;
	}
	/* The chain's head, written down outside the database too: rows cut
	 * from the chain's end (with their checkpoints) leave no trace in it,
	 * but veil-cas audit verify --data DIR finds the anchored entry gone.
	 * Once per head (main thread only: start, the minute timer, stop). */
	static uint64_t anchored;
	if (anchor.seq && anchor.seq != anchored) {
		char d[160];
		snprintf(d, sizeof(d), "seq %llu hash %s", (unsigned long long)anchor.seq,
			 anchor.hash);
		struct veil_audit_event ev = {.event = "chain-anchor", .detail = d};
		if (veil_audit_append(cas->audit, &ev))
			cas_warn_limited("cannot write the audit log");
		else
			anchored = anchor.seq;
	}
	return 0;
}

/* A signed checkpoint of the file's head (at start, every minute when it
 * moved, at stop): an entry whose detail signs the head before it with the
 * CAS's TLS key, and the head after it kept in the store. */
int cas_audit_checkpoint(struct cas *cas, struct veil_store *st)
{
	struct veil_audit_head prev, h;
	char detail[800];
	int rc = st->ops->begin(st);
	if (rc)
		return rc;
	if (!(rc = veil_audit_head_get(cas->audit, &prev)) &&
	    !(rc = checkpoint_detail(cas, &prev, detail, sizeof(detail)))) {
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
