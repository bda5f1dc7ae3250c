/* Policies: a stored policy opened for the network process, and the policy
 * routes: create, read, update (compare-and-swap on the predecessor hash),
 * delete and list, with their access rules and quotas (routes.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#include "routes.h"
#include "veil/secure.h"

/* ---- payload: the policy's canonical YAML and its secrets ---- */

void stored_policy_free(struct stored_policy *s)
{
	if (s->have_doc)
		ydoc_free(&s->doc);
	if (s->plain)
		veil_secure_free(s->plain, s->plain_size);
	memset(s, 0, sizeof(*s));
}

/* The policy of a stored record (the key process opens it and returns its
 * YAML only), parsed. A failure here is the CAS's fault (500). */
int stored_policy_open(struct veil_vault *vault, const struct veil_record *r,
		       struct stored_policy *s)
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
static int read_policy(struct route_ctx *c, struct veil_policy_request *in,
		       const char *ns_for_audit)
{
	struct evbuffer *body = c->deferred ? NULL : evhttp_request_get_input_buffer(c->req);
	size_t n = body ? evbuffer_get_length(body) : c->body_size;
	memset(in, 0, sizeof(*in));
	if (n > c->t->cas->body_max) {
		route_fail(c, 413, ns_for_audit, "request body too large");
		return -1;
	}
	struct veil_diags d;
	veil_diags_init(&d);
	int rc = veil_policy_request_decode(
	    body ? (const char *)evbuffer_pullup(body, -1) : c->body, n, in, &d);
	if (rc) {
		char msg[1800];
		route_diags_text(&d, msg, sizeof(msg));
		route_fail(c, 400, ns_for_audit, "%s%s", in->have_doc ? "invalid policy: " : "",
			   msg[0] ? msg : "out of memory");
	}
	veil_diags_free(&d);
	return rc ? -1 : 0;
}

/* The per-client namespace quota (veil-cas --max-namespaces-per-client). In
 * a transaction (in_tx) a refusal rolls it back. 0, or replied. */
static int check_quota(struct route_ctx *c, const char *ns, int in_tx)
{
	struct veil_store *st = c->t->store;
	long long max = c->t->cas->max_namespaces_per_client, owned = 0;
	int rc = st->ops->count_owned(st, c->identity, &owned);
	if (!rc && owned < max)
		return 0;
	if (in_tx)
		st->ops->rollback(st);
	if (rc)
		route_fail(c, 500, ns, "storage error");
	else
		route_fail(c, 403, ns,
			   "this client owns %lld namespaces: at most %lld namespaces per client "
			   "(veil-cas --max-namespaces-per-client)",
			   owned, max);
	return -1;
}

/* "parent/child": the parent must exist and allow this client to create
 * namespaces under it (access_policy.create_sessions). */
static int check_parent(struct route_ctx *c, const char *ns)
{
	const char *slash = strrchr(ns, '/');
	if (!slash)
		return 0;
	char parent[256];
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - ns), ns);
	struct veil_record r = {0};
	struct stored_policy st;
	memset(&st, 0, sizeof(st));
	int rc = c->t->store->ops->get(c->t->store, parent, &r), ok = -1;
	if (rc && rc != VEIL_ENOENT)
		route_fail(c, 500, ns, "cannot open namespace %s", parent);
	else if (!rc && stored_policy_open(c->t->cas->vault, &r, &st))
		route_fail(c, 500, ns, "cannot open namespace %s", parent);
	else if (rc == VEIL_ENOENT ||
		 !veil_policy_allows(st.policy.create_sessions, st.policy.create_sessions_count,
				     r.owner, c->identity))
		/* absent and not allowed alike: no existence oracle */
		route_fail(
		    c, 403, ns,
		    "access_policy.create_sessions of %s does not allow this client to create %s "
		    "(or %s does not exist)",
		    parent, ns, parent);
	else
		ok = 0;
	stored_policy_free(&st);
	veil_record_free(&r);
	return ok;
}

/* The key process generates the secrets of policy p (canonical YAML yaml),
 * keeping what the update rules keep of prev (the sealed current payload),
 * and seals the new payload into *blob. 0, or replied. */
static int seal_generated(struct route_ctx *c, const struct veil_policy *p,
			  const struct veil_buf *yaml, const uint8_t *wrapped, size_t wrapped_size,
			  const uint8_t *prev, size_t prev_size, uint8_t **blob, size_t *blob_size)
{
	char why[1800];
	int rc = cas_kp_generate(p->name, wrapped, wrapped_size, (const char *)yaml->data,
				 yaml->size, prev, prev_size, blob, blob_size, why, sizeof(why));
	if (rc == VEIL_EINVAL)
		route_fail(c, 400, p->name, "cannot generate secrets: %s", why[0] ? why : "error");
	else if (rc)
		route_fail(c, 500, p->name, "cannot seal the policy");
	return rc;
}

void route_policy_create(struct route_ctx *c, const char *name)
{
	struct cas *cas = c->t->cas;
	struct veil_policy_request in;
	struct veil_record r = {0};
	if (!c->identity) {
		route_fail(c, 403, NULL, "a client certificate is required");
		return;
	}
	if (read_policy(c, &in, NULL))
		goto out;
	const struct veil_policy *p = &in.policy;
	if (p->predecessor) {
		route_fail(c, 400, p->name,
			   "'predecessor' is not allowed when creating namespace %s (use update)",
			   p->name);
		goto out;
	}
	/* checked before the work (key generation), and again in the create's
	 * transaction, where no other create of this client can come between */
	if (check_quota(c, p->name, 0))
		goto out;
	if (check_parent(c, p->name) || consent_check_imports(c, p, c->identity))
		goto out;
	int rc = veil_vault_new_key(cas->vault, p->name, &r.wrapped_key, &r.wrapped_size);
	if (rc) {
		route_fail(c, 500, p->name, "cannot seal the policy");
		goto out;
	}
	if (seal_generated(c, p, &in.canonical, r.wrapped_key, r.wrapped_size, NULL, 0, &r.blob,
			   &r.blob_size))
		goto out;
#ifdef VEIL_TEST_HOOKS
	/* test only: a create stalled between its sealing (a data key of the
	 * key process serving then) and its store transaction, e.g. across a
	 * master-key rotation (hsm.sh t_rotate_waits_for_a_stalled_create) */
	const char *slow = getenv("VEIL_CAS_TEST_SLOW_CREATE");
	if (slow && !strncmp(p->name, "slow-", 5))
		sleep((unsigned)atoi(slow));
#endif
	struct veil_store *st = c->t->store;
	if ((rc = st->ops->begin(st))) {
		route_fail(c, 500, p->name, "storage error");
		goto out;
	}
	if (check_quota(c, p->name, 1) || consent_check_name_free(c, p))
		goto out;
	r.namespace_ = (char *)p->name;
	r.hash = (char *)p->hash;
	r.owner = (char *)c->identity;
	rc = st->ops->create(st, &r);
	r.namespace_ = r.hash = r.owner = NULL;
	if (!rc)
		rc = consent_index_exports(st, p);
	if (rc)
		st->ops->rollback(st);
	if (rc == VEIL_EEXIST) {
		route_fail(c, 409, p->name, "namespace %s exists", p->name);
		goto out;
	}
	if (rc) {
		route_fail(c, 500, p->name, "storage error");
		goto out;
	}
	if (route_commit_change(c, "create", p->name, 201, p->hash))
		goto out;
	route_reply_json(c, 201, json_pack("{s:s, s:s}", "name", p->name, "hash", p->hash));
out:
	veil_record_free(&r);
	veil_policy_request_free(&in);
}

/* Loads namespace ns and checks `acl` of its stored policy (for_update: 0
 * read, 1 update, 2 delete); 0 or replied. */
static int load_checked(struct route_ctx *c, const char *ns, int for_update, struct veil_record *r,
			struct stored_policy *s)
{
	memset(s, 0, sizeof(*s));
	if (!c->identity) {
		route_fail(c, 403, ns, "a client certificate is required");
		return -1;
	}
	int rc = c->t->store->ops->get(c->t->store, ns, r);
	if (rc == VEIL_ENOENT) {
		route_absent_or_refused(c, ns, for_update ? "update" : "read", 0);
		return -1;
	}
	if (rc || stored_policy_open(c->t->cas->vault, r, s)) {
		route_fail(c, 500, ns, "cannot open the stored policy");
		return -1;
	}
	const struct veil_policy *p = &s->policy;
	int ok = for_update ? veil_policy_allows(p->update, p->update_count, r->owner, c->identity)
			    : veil_policy_allows(p->read, p->read_count, r->owner, c->identity);
	/* for_update 2 (delete): a frozen policy (update: [NONE]) by its creator */
	if (!ok && for_update == 2 && p->update_count == 1 && !strcmp(p->update[0], "NONE"))
		ok = veil_policy_allows((char *[]){"CREATOR"}, 1, r->owner, c->identity);
	if (!ok) {
		route_absent_or_refused(c, ns, for_update ? "update" : "read", 1);
		return -1;
	}
	return 0;
}

void route_policy_get(struct route_ctx *c, const char *ns)
{
	unsigned long long gen = 0;
	struct read_cache_entry *e =
	    cas_cache_generation(c->t, &gen) ? NULL : read_cache_slot(c->t, ns);
	if (e && e->response && e->generation == gen && !strcmp(e->ns, ns)) {
		if (!c->identity) {
			route_fail(c, 403, ns, "a client certificate is required");
		} else if (!veil_policy_allows(e->read, e->read_count, e->owner, c->identity)) {
			route_absent_or_refused(c, ns, "read", 1);
		} else {
			route_audit(c, "read", ns, 200, NULL);
			route_reply(c, 200, "application/json", e->response, e->response_size);
		}
		return;
	}
	struct veil_record r = {0};
	struct stored_policy s;
	if (!load_checked(c, ns, 0, &r, &s)) {
		route_audit(c, "read", ns, 200, NULL);
		json_t *j = json_pack("{s:s, s:s, s:s%}", "name", ns, "hash", r.hash, "policy",
				      s.yaml, s.yaml_size);
		char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!body) {
			route_fail(c, 500, ns, "out of memory");
		} else {
			size_t n = strlen(body);
			body[n] = '\n'; /* json_dumps leaves room: its NUL */
			route_reply(c, 200, "application/json", body, n + 1);
			if (e)
				read_cache_fill(e, ns, gen, r.owner, &s.policy, body, n + 1);
			veil_wipe_free(body); /* the policy's YAML: explicit values */
		}
	}
	stored_policy_free(&s);
	veil_record_free(&r);
}

void route_policy_update(struct route_ctx *c, const char *ns)
{
	struct veil_record r = {0};
	struct stored_policy s;
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
		route_fail(c, 400, ns, "the policy is named %s, not %s", p->name, ns);
		goto out;
	}
	if (!p->predecessor) {
		route_fail(c, 400, ns,
			   "an update needs 'predecessor: %s' (the current policy hash)", r.hash);
		goto out;
	}
	if (strcmp(p->predecessor, r.hash)) {
		route_fail(c, 409, ns, "predecessor %.16s... is not the current policy hash %s",
			   p->predecessor, r.hash);
		goto out;
	}
	if (consent_check_imports(c, p, r.owner) ||
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
		rc = consent_index_exports(st, p);
	if (rc)
		st->ops->rollback(st);
	if (rc == VEIL_ECONFLICT) {
		route_fail(c, 409, ns, "the policy changed meanwhile; its hash is no longer %s",
			   r.hash);
		goto out;
	}
	if (rc) {
		route_fail(c, 500, ns, "storage error");
		goto out;
	}
	if (route_commit_change(c, "update", ns, 200, p->hash))
		goto out;
	route_reply_json(c, 200, json_pack("{s:s, s:s}", "name", ns, "hash", p->hash));
out:
	free(blob);
	veil_policy_request_free(&in);
	stored_policy_free(&s);
	veil_record_free(&r);
}

/* Deleting is governed by access_policy.update; a policy whose update list
 * is NONE (frozen: nobody may change it) can still be deleted by its
 * creator, or a name would be held forever. A parent with child namespaces
 * is not deleted: its name freed, anyone could create it again and hold the
 * children's parent (create_sessions). */
void route_policy_delete(struct route_ctx *c, const char *ns)
{
	struct veil_record r = {0};
	struct stored_policy s;
	long long children = 0;
	if (!load_checked(c, ns, 2, &r, &s)) {
		struct veil_store *st = c->t->store;
		int rc = st->ops->begin(st);
		if (!rc)
			rc = st->ops->remove(st, ns);
		if (rc == VEIL_ENOENT && !st->ops->count_children(st, ns, &children) && children) {
			st->ops->rollback(st);
			route_fail(c, 409, ns,
				   "namespace %s has child namespaces (%lld): delete them first",
				   ns, children);
		} else if (rc && rc != VEIL_ENOENT) {
			st->ops->rollback(st);
			route_fail(c, 500, ns, "storage error");
		} else if (!route_commit_change(c, "delete", ns, 200, r.hash)) {
			route_reply_json(c, 200, json_pack("{s:s, s:b}", "name", ns, "deleted", 1));
		}
	}
	stored_policy_free(&s);
	veil_record_free(&r);
}

static int list_one(const char *ns, const char *hash, void *arg)
{
	return json_array_append_new(arg, json_pack("{s:s, s:s}", "name", ns, "hash", hash));
}

void route_policy_list(struct route_ctx *c, const char *name)
{
	if (!c->identity) {
		route_fail(c, 403, NULL, "a client certificate is required");
		return;
	}
	json_t *a = json_array();
	if (!a || c->t->store->ops->list(c->t->store, c->identity, list_one, a)) {
		json_decref(a);
		route_fail(c, 500, NULL, "storage error");
		return;
	}
	route_reply_json(c, 200, json_pack("{s:o}", "policies", a));
}
