/* The embedded default store: SQLite, WAL, synchronous=FULL.
 *
 * Schema versions: PRAGMA user_version holds the version of cas.db's schema.
 * Opening a store runs every migration step above its version, all in one
 * transaction with the new user_version, so a store is always at a version a
 * step produced. Version 0 is a store older than versions (or a new file);
 * step 1 is today's schema (CREATE TABLE IF NOT EXISTS: a pre-version store
 * already has it). A store newer than VEIL_STORE_SCHEMA_VERSION is refused:
 * an older veil-cas must not write a schema it does not know. By hand:
 *   sqlite3 DATA/cas.db 'PRAGMA user_version'
 * A new step appends {N, "SQL"} to migrations[] (and a function, for a step
 * that fills what the SQL made: step 4's export index is built from the
 * policies, which only the master key opens) and bumps the version.
 *
 * The export index, by hand: sqlite3 DATA/cas.db 'SELECT * FROM exports'
 * (exporter, importer, owner, session_hash; one row per export entry that
 * binds an identity, duplicates kept). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "veil/store.h"

struct sqlite_store {
	struct veil_store base;
	sqlite3 *db;
	sqlite3_stmt *get, *create, *update, *remove, *list, *count, *count_children, *count_owned,
	    *set_head, *get_head, *clear_exports, *add_export, *exports_to;
};

void veil_record_free(struct veil_record *r)
{
	if (!r)
		return;
	free(r->namespace_);
	free(r->hash);
	free(r->owner);
	free(r->wrapped_key);
	free(r->blob);
	memset(r, 0, sizeof(*r));
}

static struct sqlite_store *S(struct veil_store *s)
{
	return (struct sqlite_store *)s;
}

static uint8_t *dup_blob(const void *p, int n)
{
	uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
	if (b && n > 0)
		memcpy(b, p, (size_t)n);
	return b;
}

static int sq_get(struct veil_store *s, const char *ns, struct veil_record *out)
{
	sqlite3_stmt *st = S(s)->get;
	int rc = VEIL_EIO;
	sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		rc = VEIL_ENOENT;
	} else if (r == SQLITE_ROW) {
		memset(out, 0, sizeof(*out));
		out->namespace_ = strdup(ns);
		out->hash = strdup((const char *)sqlite3_column_text(st, 0));
		out->owner = strdup((const char *)sqlite3_column_text(st, 1));
		out->wrapped_size = (size_t)sqlite3_column_bytes(st, 2);
		out->wrapped_key =
		    dup_blob(sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2));
		out->blob_size = (size_t)sqlite3_column_bytes(st, 3);
		out->blob = dup_blob(sqlite3_column_blob(st, 3), sqlite3_column_bytes(st, 3));
		rc = out->namespace_ && out->hash && out->owner && out->wrapped_key && out->blob
			 ? 0
			 : VEIL_ENOMEM;
		if (rc)
			veil_record_free(out);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static void bind_record(sqlite3_stmt *st, const struct veil_record *r)
{
	sqlite3_bind_text(st, 1, r->namespace_, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->owner, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, r->wrapped_key, (int)r->wrapped_size, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, r->blob, (int)r->blob_size, SQLITE_STATIC);
}

static int sq_create(struct veil_store *s, const struct veil_record *r)
{
	sqlite3_stmt *st = S(s)->create;
	bind_record(st, r);
	int x = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (x == SQLITE_DONE)
		return 0;
	return x == SQLITE_CONSTRAINT ? VEIL_EEXIST : VEIL_EIO;
}

static int sq_update(struct veil_store *s, const struct veil_record *r, const char *expected)
{
	sqlite3_stmt *st = S(s)->update;
	bind_record(st, r);
	sqlite3_bind_text(st, 6, expected, -1, SQLITE_STATIC);
	int x = sqlite3_step(st);
	int changed = sqlite3_changes(S(s)->db);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (x != SQLITE_DONE)
		return VEIL_EIO;
	return changed == 1 ? 0 : VEIL_ECONFLICT;
}

static int sq_clear_exports(struct veil_store *s, const char *exporter)
{
	sqlite3_stmt *st = S(s)->clear_exports;
	sqlite3_bind_text(st, 1, exporter, -1, SQLITE_STATIC);
	int x = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return x == SQLITE_DONE ? 0 : VEIL_EIO;
}

static int add_export_with(sqlite3_stmt *st, const char *exporter,
			   const struct veil_store_export *e)
{
	sqlite3_bind_text(st, 1, exporter, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->importer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->owner, -1, SQLITE_STATIC); /* NULL binds NULL */
	sqlite3_bind_text(st, 4, e->session_hash, -1, SQLITE_STATIC);
	int x = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return x == SQLITE_DONE ? 0 : VEIL_EIO;
}

static int sq_add_export(struct veil_store *s, const char *exporter,
			 const struct veil_store_export *e)
{
	if (!e->importer || (!e->owner && !e->session_hash))
		return VEIL_EINVAL;
	return add_export_with(S(s)->add_export, exporter, e);
}

static int sq_exports_to(struct veil_store *s, const char *importer,
			 int (*fn)(const struct veil_store_export *e, void *arg), void *arg)
{
	sqlite3_stmt *st = S(s)->exports_to;
	int rc = 0, x;
	sqlite3_bind_text(st, 1, importer, -1, SQLITE_STATIC);
	while ((x = sqlite3_step(st)) == SQLITE_ROW) {
		struct veil_store_export e = {.importer = importer,
					      .owner = (const char *)sqlite3_column_text(st, 0),
					      .session_hash =
						  (const char *)sqlite3_column_text(st, 1)};
		if ((rc = fn(&e, arg)))
			break;
	}
	if (!rc && x != SQLITE_DONE)
		rc = VEIL_EIO;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int sq_remove(struct veil_store *s, const char *ns)
{
	sqlite3_stmt *st = S(s)->remove;
	sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
	int x = sqlite3_step(st);
	int changed = sqlite3_changes(S(s)->db);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (x != SQLITE_DONE)
		return VEIL_EIO;
	if (!changed)
		return VEIL_ENOENT;
	/* its own exports go with it; exports naming it stay */
	return sq_clear_exports(s, ns);
}

static int sq_list(struct veil_store *s, const char *owner,
		   int (*fn)(const char *ns, const char *hash, void *arg), void *arg)
{
	sqlite3_stmt *st = S(s)->list;
	int rc = 0, x;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	while ((x = sqlite3_step(st)) == SQLITE_ROW)
		if ((rc = fn((const char *)sqlite3_column_text(st, 0),
			     (const char *)sqlite3_column_text(st, 1), arg)))
			break;
	if (!rc && x != SQLITE_DONE)
		rc = VEIL_EIO;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int sq_count(struct veil_store *s, long long *out)
{
	sqlite3_stmt *st = S(s)->count;
	int rc = VEIL_EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_reset(st);
	return rc;
}

static int count_with(sqlite3_stmt *st, const char *arg, long long *out)
{
	int rc = VEIL_EIO;
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int sq_count_children(struct veil_store *s, const char *ns, long long *out)
{
	return count_with(S(s)->count_children, ns, out);
}

static int sq_count_owned(struct veil_store *s, const char *owner, long long *out)
{
	return count_with(S(s)->count_owned, owner, out);
}

static int sq_check(struct veil_store *s, struct veil_diags *d)
{
	sqlite3_stmt *st = NULL;
	int rc = VEIL_EIO;
	if (sqlite3_prepare_v2(S(s)->db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
		return rc;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);
		if (r && !strcmp(r, "ok"))
			rc = 0;
		else
			veil_diag(d, "database integrity check: %s", r ? r : "?");
	}
	sqlite3_finalize(st);
	return rc;
}

static int sq_exec(struct veil_store *s, const char *sql)
{
	return sqlite3_exec(S(s)->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

static int sq_begin(struct veil_store *s)
{
	return sq_exec(s, "BEGIN IMMEDIATE");
}

static int sq_commit(struct veil_store *s)
{
	return sq_exec(s, "COMMIT");
}

static void sq_rollback(struct veil_store *s)
{
	if (!sqlite3_get_autocommit(S(s)->db))
		sq_exec(s, "ROLLBACK");
}

static int sq_set_head(struct veil_store *s, const struct veil_store_head *h)
{
	sqlite3_stmt *st = S(s)->set_head;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)h->seq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)h->size);
	sqlite3_bind_text(st, 3, h->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, h->signature, -1, SQLITE_STATIC);
	int x = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return x == SQLITE_DONE ? 0 : VEIL_EIO;
}

static int sq_get_head(struct veil_store *s, struct veil_store_head *out)
{
	sqlite3_stmt *st = S(s)->get_head;
	int rc = VEIL_EIO, x = sqlite3_step(st);
	if (x == SQLITE_DONE) {
		rc = VEIL_ENOENT;
	} else if (x == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(st, 2);
		const char *sig = (const char *)sqlite3_column_text(st, 3);
		memset(out, 0, sizeof(*out));
		out->seq = (uint64_t)sqlite3_column_int64(st, 0);
		out->size = (uint64_t)sqlite3_column_int64(st, 1);
		if (h && strlen(h) == 64 && (!sig || strlen(sig) < sizeof(out->signature))) {
			memcpy(out->hash, h, 65);
			snprintf(out->signature, sizeof(out->signature), "%s", sig ? sig : "");
			rc = 0;
		}
	}
	sqlite3_reset(st);
	return rc;
}

static void sq_close(struct veil_store *s)
{
	struct sqlite_store *q = S(s);
	if (!q)
		return;
	sqlite3_finalize(q->get);
	sqlite3_finalize(q->create);
	sqlite3_finalize(q->update);
	sqlite3_finalize(q->remove);
	sqlite3_finalize(q->list);
	sqlite3_finalize(q->count);
	sqlite3_finalize(q->count_children);
	sqlite3_finalize(q->count_owned);
	sqlite3_finalize(q->set_head);
	sqlite3_finalize(q->get_head);
	sqlite3_finalize(q->clear_exports);
	sqlite3_finalize(q->add_export);
	sqlite3_finalize(q->exports_to);
	sqlite3_close(q->db);
	free(q);
}

static const struct veil_store_ops sqlite_ops = {
    .get = sq_get,
    .create = sq_create,
    .update = sq_update,
    .remove = sq_remove,
    .clear_exports = sq_clear_exports,
    .add_export = sq_add_export,
    .exports_to = sq_exports_to,
    .list = sq_list,
    .count = sq_count,
    .count_children = sq_count_children,
    .count_owned = sq_count_owned,
    .check = sq_check,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .set_head = sq_set_head,
    .get_head = sq_get_head,
    .close = sq_close,
};

struct index_build {
	sqlite3_stmt *add;
	const char *exporter;
	int failed; /* an insert failed (not the policy) */
};

static int build_add(void *sink, const struct veil_store_export *e)
{
	struct index_build *b = sink;
	if (!e->importer || (!e->owner && !e->session_hash))
		return 0; /* grants nothing: reserves nothing */
	int rc = add_export_with(b->add, b->exporter, e);
	b->failed |= rc != 0;
	return rc;
}

/* Step 4: the export index of every stored policy, opened by opener. A
 * policy that does not open stops the migration (and so the start): the
 * index must not miss a name an export reserves. */
static int build_export_index(sqlite3 *db, const char *path, const struct veil_store_opener *opener,
			      struct veil_diags *d)
{
	sqlite3_stmt *rows = NULL, *add = NULL;
	int rc = VEIL_EIO, x;
	if (sqlite3_exec(db, "DELETE FROM exports", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT namespace, hash, owner, wrapped_key, blob FROM policies "
			       "ORDER BY namespace",
			       -1, &rows, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO exports(exporter, importer, owner, session_hash) "
			       "VALUES(?,?,?,?)",
			       -1, &add, NULL) != SQLITE_OK)
		goto out;
	while ((x = sqlite3_step(rows)) == SQLITE_ROW) {
		struct veil_record r = {.namespace_ = (char *)sqlite3_column_text(rows, 0),
					.hash = (char *)sqlite3_column_text(rows, 1),
					.owner = (char *)sqlite3_column_text(rows, 2),
					.wrapped_key = (uint8_t *)sqlite3_column_blob(rows, 3),
					.wrapped_size = (size_t)sqlite3_column_bytes(rows, 3),
					.blob = (uint8_t *)sqlite3_column_blob(rows, 4),
					.blob_size = (size_t)sqlite3_column_bytes(rows, 4)};
		struct index_build b = {.add = add, .exporter = r.namespace_};
		if (!r.namespace_ || !r.hash || !r.owner)
			goto out;
		if (!opener) {
			veil_diag(d,
				  "%s: building the export index (schema version 4) needs the "
				  "master key to open the stored policies: start veil-cas on it",
				  path);
			rc = VEIL_EINVAL;
			goto out;
		}
		int o = opener->exports_of(opener->arg, &r, build_add, &b);
		if (b.failed)
			goto out;
		if (o) {
			veil_diag(d,
				  "%s: namespace %s does not open with the master key: cannot "
				  "build the export index (schema version 4)",
				  path, r.namespace_);
			rc = VEIL_EINVAL;
			goto out;
		}
	}
	if (x == SQLITE_DONE)
		rc = 0;
out:
	sqlite3_finalize(rows);
	sqlite3_finalize(add);
	return rc;
}

static const struct {
	int version;
	const char *sql;
	int (*fill)(sqlite3 *db, const char *path, const struct veil_store_opener *opener,
		    struct veil_diags *d);
} migrations[] = {
    {1,
     "CREATE TABLE IF NOT EXISTS policies ("
     " namespace TEXT PRIMARY KEY,"
     " hash TEXT NOT NULL,"
     " owner TEXT NOT NULL,"
     " wrapped_key BLOB NOT NULL,"
     " blob BLOB NOT NULL);",
     NULL},
    /* the per-client quota counts a client's namespaces at every create:
     * without an index a scan of the whole table (a create took 1.6 ms
     * instead of 0.17 ms with 10,000 namespaces) */
    {2, "CREATE INDEX IF NOT EXISTS policies_owner ON policies(owner);", NULL},
    /* the audit log's head, committed with each change (audit_log.c) */
    {3,
     "CREATE TABLE IF NOT EXISTS audit_head ("
     " id INTEGER PRIMARY KEY CHECK (id = 1),"
     " seq INTEGER NOT NULL,"
     " size INTEGER NOT NULL,"
     " hash TEXT NOT NULL,"
     " signature TEXT NOT NULL);",
     NULL},
    /* the names exports point to: a create checks its name here (consent.c,
     * H3) instead of opening every policy */
    {4,
     "CREATE TABLE IF NOT EXISTS exports ("
     " exporter TEXT NOT NULL,"
     " importer TEXT NOT NULL,"
     " owner TEXT,"
     " session_hash TEXT,"
     " CHECK (owner IS NOT NULL OR session_hash IS NOT NULL));"
     "CREATE INDEX IF NOT EXISTS exports_importer ON exports(importer);"
     "CREATE INDEX IF NOT EXISTS exports_exporter ON exports(exporter);",
     build_export_index},
};
_Static_assert(VEIL_ARRAY_LEN(migrations) == VEIL_STORE_SCHEMA_VERSION,
	       "one migration step per schema version");

static int user_version(sqlite3 *db, int *out)
{
	sqlite3_stmt *st = NULL;
	int rc = VEIL_EIO;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int veil_store_sqlite_migrate(sqlite3 *db, const char *path, const struct veil_store_opener *opener,
			      struct veil_diags *d)
{
	int v = 0, rc = VEIL_EIO;
	char *err = NULL;
	/* IMMEDIATE: the version read and the steps are one writer's, even
	 * with several connections opening at once */
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK)
		goto out;
	if (user_version(db, &v))
		goto rollback;
	if (v > VEIL_STORE_SCHEMA_VERSION || v < 0) {
		veil_diag(d,
			  "%s has schema version %d; this veil-cas (%s) knows versions up to %d: "
			  "run a newer veil-cas",
			  path, v, VEIL_VERSION, VEIL_STORE_SCHEMA_VERSION);
		rc = VEIL_EINVAL;
		goto refused;
	}
	for (size_t i = 0; i < VEIL_ARRAY_LEN(migrations); i++) {
		if (migrations[i].version <= v)
			continue;
		char pragma[64];
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", migrations[i].version);
		if (sqlite3_exec(db, migrations[i].sql, NULL, NULL, &err) != SQLITE_OK)
			goto rollback;
		if (migrations[i].fill && (rc = migrations[i].fill(db, path, opener, d))) {
			if (rc == VEIL_EIO)
				goto rollback;
			goto refused; /* the reason is in d */
		}
		if (sqlite3_exec(db, pragma, NULL, NULL, &err) != SQLITE_OK)
			goto rollback;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, &err) != SQLITE_OK)
		goto rollback;
	rc = 0;
	goto out;
rollback:
	rc = VEIL_EIO;
refused:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	if (rc == VEIL_EIO)
		veil_diag(d, "%s: cannot bring the schema to version %d: %s", path,
			  VEIL_STORE_SCHEMA_VERSION, err ? err : sqlite3_errmsg(db));
	sqlite3_free(err);
	return rc;
}

int veil_store_sqlite_open(const char *dir, const struct veil_store_opener *opener,
			   struct veil_store **out, struct veil_diags *d)
{
	struct sqlite_store *q = calloc(1, sizeof(*q));
	char *path = veil_path_join(dir, "cas.db");
	int rc = VEIL_EIO;
	if (!q || !path) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	q->base.ops = &sqlite_ops;
	if (sqlite3_open_v2(path, &q->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		veil_diag(d, "%s: cannot open: %s", path,
			  q->db ? sqlite3_errmsg(q->db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(q->db, (int)veil_store_timeout_ms());
	char *err = NULL;
	if (sqlite3_exec(q->db,
			 "PRAGMA journal_mode=WAL;"
			 "PRAGMA synchronous=FULL;"
			 "PRAGMA secure_delete=ON;",
			 NULL, NULL, &err) != SQLITE_OK) {
		veil_diag(d, "%s: cannot initialise: %s", path, err ? err : "?");
		sqlite3_free(err);
		goto out;
	}
	if ((rc = veil_store_sqlite_migrate(q->db, path, opener, d)))
		goto out;
	rc = VEIL_EIO;
	struct {
		sqlite3_stmt **st;
		const char *sql;
	} prep[] = {
	    {&q->get, "SELECT hash, owner, wrapped_key, blob FROM policies WHERE namespace=?"},
	    {&q->create, "INSERT INTO policies(namespace, hash, owner, wrapped_key, blob) "
			 "VALUES(?,?,?,?,?)"},
	    /* wrapped_key (?4) stays: a rotation re-wraps it meanwhile
	     * (rotate.c), and the payload is sealed with the same data key */
	    {&q->update, "UPDATE policies SET namespace=?1, hash=?2, owner=?3, blob=?5 "
			 "WHERE namespace=?1 AND hash=?6"},
	    {&q->remove, "DELETE FROM policies WHERE namespace=?1 AND NOT EXISTS (SELECT 1 FROM "
			 "policies WHERE namespace > ?1 || '/' AND namespace < ?1 || '0')"},
	    {&q->list, "SELECT namespace, hash FROM policies WHERE owner=? ORDER BY namespace"},
	    {&q->count, "SELECT count(*) FROM policies"},
	    /* "ns/..." is the primary key's range (ns/, ns0): '0' follows '/' */
	    {&q->count_children, "SELECT count(*) FROM policies WHERE namespace > ?1 || '/' AND "
				 "namespace < ?1 || '0'"},
	    {&q->count_owned, "SELECT count(*) FROM policies WHERE owner=?"},
	    {&q->set_head, "INSERT OR REPLACE INTO audit_head(id, seq, size, hash, signature) "
			   "VALUES(1,?,?,?,?)"},
	    {&q->get_head, "SELECT seq, size, hash, signature FROM audit_head WHERE id=1"},
	    {&q->clear_exports, "DELETE FROM exports WHERE exporter=?"},
	    {&q->add_export, "INSERT INTO exports(exporter, importer, owner, session_hash) "
			     "VALUES(?,?,?,?)"},
	    {&q->exports_to, "SELECT owner, session_hash FROM exports WHERE importer=?1 AND "
			     "exporter<>?1"},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(prep); i++)
		if (sqlite3_prepare_v3(q->db, prep[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
				       prep[i].st, NULL) != SQLITE_OK) {
			veil_diag(d, "%s: %s", path, sqlite3_errmsg(q->db));
			goto out;
		}
	*out = &q->base;
	q = NULL;
	rc = 0;
out:
	if (q)
		sq_close(&q->base);
	free(path);
	return rc;
}
