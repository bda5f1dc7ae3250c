/* Import consent and the export index: an import needs the exporting
 * namespace's consent, bound to the importer's identity, at create and
 * update and again at every /v1/attest; and the names that exports reserve
 * (routes.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"

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
		       struct veil_record *r, struct stored_policy *st, char *msg, size_t cap)
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
	if (!rc && stored_policy_open(t->cas->vault, r, st)) {
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
int consent_import_all(struct cas_thread *t, const char *importer, const char *importer_owner,
		       const struct veil_policy *p, struct veil_buf *into, char *msg, size_t cap)
{
	for (size_t i = 0; i < p->secret_count; i++) {
		const struct veil_secret *s = &p->secrets[i];
		if (!s->import_namespace)
			continue;
		struct veil_record r = {0};
		struct stored_policy st;
		int status =
		    open_export(t, importer, importer_owner, p->hash, s, &r, &st, msg, cap);
		if (!status && into && import_add(into, s->name, &r, s->import_secret)) {
			snprintf(msg, cap, "out of memory");
			status = 500;
		}
		stored_policy_free(&st);
		veil_record_free(&r);
		if (status)
			return status;
	}
	return 0;
}

int consent_check_imports(struct route_ctx *c, const struct veil_policy *p, const char *owner)
{
	char msg[600];
	int status = consent_import_all(c->t, p->name, owner, p, NULL, msg, sizeof(msg));
	if (status)
		route_fail(c, status, p->name, "%s", msg);
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
	struct stored_policy st;
	int rc = stored_policy_open(vault, r, &st);
	if (!rc)
		rc = each_export(&st.policy, add, sink);
	stored_policy_free(&st);
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
int consent_index_exports(struct veil_store *st, const struct veil_policy *p)
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
int consent_check_name_free(struct route_ctx *c, const struct veil_policy *p)
{
	struct veil_store *st = c->t->store;
	struct claim cl = {.creator = c->identity, .hash = p->hash};
	int rc = st->ops->exports_to(st, p->name, claim_refused, &cl);
	if (!rc)
		return 0;
	st->ops->rollback(st);
	if (rc == 1)
		route_fail(
		    c, 403, p->name,
		    "namespace %s is reserved: another namespace exports a secret to it for "
		    "another owner or policy hash (only that importer may create it, until the "
		    "exporter removes the export)",
		    p->name);
	else
		route_fail(c, 500, p->name, "storage error");
	return -1;
}
