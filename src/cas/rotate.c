/* veil-cas rotate-master-key: a new PKCS#11 master key re-wraps every data
 * key, then the old key is destroyed in the token; with veil-cas stopped
 * (offline) or running (online, under load). The store is DATA/cas.db
 * (SQLite), or with --store the PostgreSQL database of one or several
 * replicas (each with its own copy of master.key and its own key process,
 * on this host or others; below).
 *
 * Offline (no process holds the audit log's lock), so that a crash
 * anywhere loses nothing and a rerun finishes:
 *   1. the new key is recorded as pending in master.key, then made in the
 *      token (vault.c: veil_vault_rotate_begin); a start meanwhile loads
 *      both keys;
 *   2. every row's wrapped_key (that column only: the policy hash and the
 *      payload stay) is re-wrapped under it, in one SQLite transaction (on
 *      PostgreSQL in batches, as online); a rerun skips rows already under
 *      it;
 *   3. the code-key root is re-wrapped, the new key made current and the
 *      old one marked retired, in one atomic write of master.key; only then
 *      is the old key destroyed in the token (a rerun destroys a key left
 *      marked);
 *   4. an audit entry "rotate-master-key" says which versions and how many
 *      data keys.
 *
 * Online (a veil-cas holds the lock; DATA/master-key.loaded names it): the
 * same steps, and after each one that changes master.key the running
 * veil-cas loads it again (SIGUSR1: a fresh key process swapped in without
 * failing a request, main.c and keyproc.c), this command waiting until
 * master-key.loaded says it did. veil-cas writes the audit entries
 * ("master-key-reload": what it loaded, and the line this command leaves in
 * DATA/master-key.reload):
 *   1. begin, reload: veil-cas holds both keys and wraps new data keys
 *      under the new one;
 *   2. the rows not under the new key re-wrapped, a few per short
 *      transaction, each row compared-and-swapped on the wrapped key it
 *      had (requests go on; a policy update leaves wrapped_key alone),
 *      until none is left; reload (its caches, which may hold old wrapped
 *      keys, emptied); the rows checked again;
 *   3. switch (code-key root, current, retired), reload: veil-cas holds
 *      only the new key; the rows checked again (this command still holds
 *      the old key: a straggler is re-wrapped);
 *   4. the old key destroyed, reload (the entry says so).
 * A rerun after a crash anywhere continues from master.key's state (a
 * rerun after the switch reloads, checks that no row is left under the old
 * key, and destroys it). A reload reports done only once every request
 * begun before it was answered (cas_requests_drain), so no data key the
 * old key process made can be stored after step 1: step 2 finds them all.
 *
 * Replicas (--store): the steps are the online ones, whether a veil-cas
 * runs here or not (offline, this command holds the audit log's lock and
 * writes the entry). After each step master.key's text (the PKCS#11
 * record: no key in clear) is also written to table veil_master_key, its
 * version moved on, and the step waits (--wait, default 120 s) until every
 * live replica (one holding its replica id's session advisory lock,
 * store_pg.c) says in veil_replica_keys that it loaded that version: each
 * replica looks each second, takes a newer record into its master.key and
 * reloads as SIGUSR1 does (keysync.c). A live replica that does not (a
 * stopped process, an older veil-cas) stops the command with its name
 * before anything more happens: no key is destroyed before every live
 * replica dropped it, and a rerun goes on from master.key's state. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <time.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "cas.h"
#include "veil/args.h"
#include "veil/audit_log.h"
#include "veil/store.h"

static void rotate_usage(FILE *f)
{
	fprintf(f, "Usage: veil-cas rotate-master-key --data DIR [--store URL] [--pin-file FILE]\n"
		   "                                  [--wait SECONDS]\n\n"
		   "Makes a new master key in the PKCS#11 token of the CAS in DIR, re-wraps\n"
		   "every namespace's data key under it, then destroys the old key. veil-cas\n"
		   "may be running (started with --pin-file): it loads each step's keys\n"
		   "(SIGUSR1) and keeps serving. With --store, every replica on the database\n"
		   "(here or on other hosts) loads each step's keys from it, and each step\n"
		   "waits until every live one did; one that does not stops the rotation\n"
		   "before the old key is destroyed. A rerun after a crash or a refusal\n"
		   "finishes the rotation.\n\n"
		   "  --data DIR       the CAS's data folder (a replica's, with --store)\n"
		   "  --store URL      its PostgreSQL store (as given to veil-cas), else\n"
		   "                   DIR/cas.db\n"
		   "  --pin-file FILE  the token's PIN (else $VEIL_PKCS11_PIN)\n"
		   "  --wait SECONDS   how long a step waits for the replicas (default 120)\n"
		   "  -h, --help       this help\n");
}

struct names {
	char **v;
	size_t count, cap;
};

static void names_free(struct names *n)
{
	for (size_t i = 0; i < n->count; i++)
		free(n->v[i]);
	free(n->v);
}

/* every row's wrapped_key under the new key; *count re-wrapped */
static int rewrap_store(const char *data, struct veil_vault *v, long long *count,
			struct veil_diags *d)
{
	char *path = veil_path_join(data, "cas.db");
	sqlite3 *db = NULL;
	sqlite3_stmt *list = NULL, *get = NULL, *put = NULL;
	struct names n = {0};
	int rc = VEIL_EIO;
	*count = 0;
	if (!path)
		return VEIL_ENOMEM;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 10000) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT namespace FROM policies", -1, &list, NULL) !=
		SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT wrapped_key FROM policies WHERE namespace = ?1", -1,
			       &get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "UPDATE policies SET wrapped_key = ?1 WHERE namespace = ?2", -1,
			       &put, NULL) != SQLITE_OK) {
		veil_diag(d, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	/* the names first: no row is changed under a running SELECT */
	while (sqlite3_step(list) == SQLITE_ROW) {
		if (n.count == n.cap) {
			size_t cap = n.cap ? 2 * n.cap : 64;
			char **p = realloc(n.v, cap * sizeof(*p));
			if (!p) {
				rc = VEIL_ENOMEM;
				goto out;
			}
			n.v = p, n.cap = cap;
		}
		if (!(n.v[n.count] = strdup((const char *)sqlite3_column_text(list, 0)))) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		n.count++;
	}
	for (size_t i = 0; i < n.count; i++) {
		uint8_t out[VEIL_VAULT_WRAPPED_MAX];
		size_t out_size = 0;
		sqlite3_reset(get);
		sqlite3_bind_text(get, 1, n.v[i], -1, SQLITE_STATIC);
		if (sqlite3_step(get) != SQLITE_ROW) {
			veil_diag(d, "%s: namespace %s: %s", path, n.v[i], sqlite3_errmsg(db));
			goto out;
		}
		int r = veil_vault_rewrap(v, n.v[i], sqlite3_column_blob(get, 0),
					  (size_t)sqlite3_column_bytes(get, 0), out, &out_size);
		if (r) {
			veil_diag(d,
				  "namespace %s: its data key does not open with this CAS's "
				  "master keys; nothing changed",
				  n.v[i]);
			rc = r;
			goto out;
		}
		if (!out_size)
			continue; /* a rerun: already under the new key */
		sqlite3_reset(put);
		sqlite3_bind_blob(put, 1, out, (int)out_size, SQLITE_STATIC);
		sqlite3_bind_text(put, 2, n.v[i], -1, SQLITE_STATIC);
		if (sqlite3_step(put) != SQLITE_DONE) {
			veil_diag(d, "%s: namespace %s: %s", path, n.v[i], sqlite3_errmsg(db));
			goto out;
		}
		(*count)++;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		veil_diag(d, "%s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(list);
	sqlite3_finalize(get);
	sqlite3_finalize(put);
	if (rc && db)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	names_free(&n);
	free(path);
	return rc;
}

/* ---- online: a running veil-cas ---- */

/* whether a veil-cas holds DATA's audit log (flock, audit_log.c) */
static int cas_running(const char *auditlog, bool *running, struct veil_diags *d)
{
	int fd = open(auditlog, O_RDONLY | O_CLOEXEC);
	*running = false;
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		veil_diag(d, "%s: %s", auditlog, strerror(errno));
		return VEIL_EIO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			veil_diag(d, "%s: cannot lock: %s", auditlog, strerror(errno));
			close(fd);
			return VEIL_EIO;
		}
		*running = true;
	}
	close(fd); /* releases the lock if it was taken */
	return 0;
}

/* DATA/master-key.loaded (main.c: write_loaded) */
struct loaded {
	long pid;
	unsigned long reload;
	char what[128], error[512];
};

static int read_loaded(const char *data, struct loaded *l)
{
	char *path = veil_path_join(data, "master-key.loaded");
	FILE *f = path ? fopen(path, "re") : NULL;
	char line[600];
	int got = 0;
	free(path);
	memset(l, 0, sizeof(*l));
	if (!f)
		return VEIL_ENOENT;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "veil-cas ", 9))
			got |= (l->pid = strtol(line + 9, NULL, 10)) > 0;
		else if (!strncmp(line, "reload ", 7))
			l->reload = strtoul(line + 7, NULL, 10), got |= 2;
		else if (!strncmp(line, "loaded ", 7))
			snprintf(l->what, sizeof(l->what), "%.127s", line + 7), got |= 4;
		else if (!strncmp(line, "error ", 6))
			snprintf(l->error, sizeof(l->error), "%.511s", line + 6);
	}
	fclose(f);
	return got == 7 ? 0 : VEIL_EINVAL;
}

/* pid is a veil-cas (this program): a pid left in a stale file may name
 * another process by now, which must get no signal */
static bool is_veil_cas(long pid)
{
	char self[PATH_MAX], other[PATH_MAX], proc[64];
	snprintf(proc, sizeof(proc), "/proc/%ld/exe", pid);
	ssize_t a = readlink("/proc/self/exe", self, sizeof(self) - 1);
	ssize_t b = readlink(proc, other, sizeof(other) - 1);
	if (a <= 0 || b <= 0)
		return false;
	self[a] = other[b] = 0;
	if (strcmp(self, other))
		return false;
	/* the same program, but not a key process ("veil-cas --key-process") */
	char cmd[64] = "";
	snprintf(proc, sizeof(proc), "/proc/%ld/cmdline", pid);
	FILE *f = fopen(proc, "re");
	size_t n = f ? fread(cmd, 1, sizeof(cmd) - 1, f) : 0;
	if (f)
		fclose(f);
	size_t first = strnlen(cmd, n);
	return n > 0 && !(first + 1 < n && !strncmp(cmd + first + 1, "--key-process", 13));
}

/* the running veil-cas loads master.key again (SIGUSR1); waits until
 * master-key.loaded says it holds what v describes. note: its audit entry's
 * line. */
static int cas_reload(const char *data, struct veil_vault *v, const char *note,
		      struct veil_diags *d)
{
	char want[128];
	struct loaded before, now;
	int rc = veil_vault_describe(v, want, sizeof(want));
	if (rc)
		return rc;
	if (read_loaded(data, &before) || !is_veil_cas(before.pid)) {
		veil_diag(d,
			  "%s/master-key.loaded does not name a running veil-cas (starting or "
			  "stopping?): run this again",
			  data);
		return VEIL_EINVAL;
	}
	char *note_path = veil_path_join(data, "master-key.reload");
	rc = note_path ? veil_write_file(note_path, note, strlen(note), 0600, d) : VEIL_ENOMEM;
	free(note_path);
	if (rc)
		return rc;
	/* a key process starts in well under a second; a sanitizer build or
	 * a busy token take longer. A reload that shows other keys began
	 * before master.key changed (a killed run's signal, or two signals
	 * that came as one): asked again, a few times */
	const struct timespec tick = {0, 20 * 1000 * 1000};
	int asked = 0;
	for (int i = 0; i < 120 * 50; i++) {
		if (!i || (now.reload != before.reload && asked < 5)) {
			if (i)
				before = now;
			if (kill((pid_t)before.pid, SIGUSR1) < 0) {
				veil_diag(d, "veil-cas (pid %ld): %s", before.pid, strerror(errno));
				return VEIL_EIO;
			}
			asked++;
		}
		nanosleep(&tick, NULL);
		if (read_loaded(data, &now)) {
			now = before; /* being replaced, or veil-cas stopped */
			continue;
		}
		if (now.pid == before.pid && now.reload == before.reload)
			continue;
		if (now.pid == before.pid && now.error[0]) {
			veil_diag(d, "veil-cas (pid %ld) could not load the master key: %s",
				  now.pid, now.error);
			return VEIL_EIO;
		}
		if (!strcmp(now.what, want))
			return 0;
		if (asked >= 5) {
			veil_diag(d, "veil-cas (pid %ld) loaded '%s', not '%s'", now.pid, now.what,
				  want);
			return VEIL_EIO;
		}
	}
	veil_diag(d, "veil-cas (pid %ld) did not reload its master key within 120 s", before.pid);
	return VEIL_EIO;
}

/* ---- replicas on PostgreSQL ---- */

/* what a step reloads: the veil-cas on this host (local: it holds DATA's
 * audit log; SIGUSR1), and with --store every live replica on the
 * database (keysync.c), which loads the record published there */
struct targets {
	const char *data, *url, *keyfile;
	bool local;
	long wait; /* seconds a step waits for the replicas */
};

static PGconn *pg_connect(const char *url, struct veil_diags *d)
{
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *const vals[] = {"10", "veil-cas rotate-master-key", url, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) != CONNECTION_OK) {
		veil_diag(d, "--store: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* master.key's record into veil_master_key (its version moved on): each
 * replica takes it; *version the new version */
static int publish_record(PGconn *c, const char *keyfile, const char *note, long long *version,
			  struct veil_diags *d)
{
	char *text = NULL;
	size_t size = 0;
	int rc = veil_read_file(keyfile, 65536, &text, &size, d);
	char *record = rc ? NULL : strndup(text, size);
	free(text);
	if (rc || !record)
		return rc ? rc : VEIL_ENOMEM;
	const char *v[] = {record, note};
	PGresult *res = PQexecParams(
	    c,
	    "INSERT INTO veil_master_key(id, record, note, version) VALUES(1, $1, $2, 1) "
	    "ON CONFLICT (id) DO UPDATE SET record = excluded.record, note = excluded.note, "
	    "version = veil_master_key.version + 1 RETURNING version",
	    2, NULL, v, NULL, NULL, 0);
	free(record);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		*version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	} else if (state && !strcmp(state, "42P01")) {
		veil_diag(d, "--store: the database has no table veil_master_key (schema 3): "
			     "start a veil-cas of this version on it first (it migrates the "
			     "schema); nothing changed in the database");
		rc = VEIL_EINVAL;
	} else {
		veil_diag(d, "--store: %s", PQerrorMessage(c));
		rc = VEIL_EIO;
	}
	PQclear(res);
	return rc;
}

/* The live replicas (each holds its replica id's session advisory lock,
 * store_pg.c: PG_LOCK_REPLICA 1986357613, hashtext(id), which pg_locks
 * shows as classid and objid, an oid: the int4 hash's 32 bits) whose row
 * of veil_replica_keys does not say version: *left of them, named in
 * who. */
static int replicas_behind(PGconn *c, long long version, int *left, char *who, size_t cap,
			   struct veil_diags *d)
{
	char v[24];
	snprintf(v, sizeof(v), "%lld", version);
	const char *vals[] = {v};
	PGresult *res = PQexecParams(
	    c,
	    "SELECT l.pid, k.replica, k.loaded, k.version FROM pg_locks l "
	    "LEFT JOIN veil_replica_keys k ON (hashtext(k.replica)::bigint & 4294967295) = "
	    "l.objid::bigint "
	    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 1986357613 AND "
	    "l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = "
	    "current_database()) AND (k.version IS NULL OR k.version < $1) ORDER BY l.pid",
	    1, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		veil_diag(d, "--store: %s", PQerrorMessage(c));
		PQclear(res);
		return VEIL_EIO;
	}
	*left = PQntuples(res);
	size_t used = 0;
	who[0] = 0;
	for (int i = 0; i < *left && used + 1 < cap; i++) {
		int n;
		if (PQgetisnull(res, i, 1))
			n = snprintf(who + used, cap - used,
				     "%sa replica that records no master key (an older veil-cas? "
				     "PostgreSQL backend pid %s)",
				     i ? "; " : "", PQgetvalue(res, i, 0));
		else
			n = snprintf(who + used, cap - used,
				     "%sreplica %s (loaded '%s', record version %s)", i ? "; " : "",
				     PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
				     PQgetvalue(res, i, 3));
		if (n < 0)
			break;
		used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
	}
	PQclear(res);
	return 0;
}

/* master.key published for the replicas; waits until every live one loaded
 * it (at most t->wait seconds) */
static int replicas_reload(const struct targets *t, const char *note, struct veil_diags *d)
{
	PGconn *c = pg_connect(t->url, d);
	long long version = 0;
	int rc = c ? publish_record(c, t->keyfile, note, &version, d) : VEIL_EIO, left = 0;
	char who[1024] = "";
	const struct timespec tick = {0, 100 * 1000 * 1000};
	for (long i = 0; !rc && i <= t->wait * 10; i++) {
		if ((rc = replicas_behind(c, version, &left, who, sizeof(who), d)) || !left)
			break;
		nanosleep(&tick, NULL);
	}
	if (!rc && left) {
		veil_diag(d,
			  "%d live replica%s did not load the master key's record (version %lld "
			  "in the database) within %ld s: %s. Nothing was destroyed: once every "
			  "replica serves again (or is stopped), run this again to go on",
			  left, left == 1 ? "" : "s", version, t->wait, who);
		rc = VEIL_EIO;
	}
	if (c)
		PQfinish(c);
	return rc;
}

/* a step's master.key loaded by the veil-cas here and every replica */
static int reload_all(const struct targets *t, struct veil_vault *v, const char *note,
		      struct veil_diags *d)
{
	int rc = t->local ? cas_reload(t->data, v, note, d) : 0;
	if (!rc && t->url)
		rc = replicas_reload(t, note, d);
	return rc;
}

struct row {
	char *ns;
	uint8_t in[VEIL_VAULT_WRAPPED_MAX], out[VEIL_VAULT_WRAPPED_MAX];
	size_t in_size, out_size;
};

#define BATCH 16

/* the store's rows as the rotation reads and writes them: DATA/cas.db, or
 * the PostgreSQL database of --store (libpq directly: the store interface
 * has no such operation, and an UPDATE of wrapped_key moves the generation
 * the replicas' caches compare, store_pg.c) */
struct rows_db {
	sqlite3 *sq;
	PGconn *pg;
	char *where; /* for messages */
};

static void rows_close(struct rows_db *db)
{
	sqlite3_close(db->sq);
	if (db->pg)
		PQfinish(db->pg);
	free(db->where);
	memset(db, 0, sizeof(*db));
}

static int rows_open(const char *data, const char *url, struct rows_db *db, struct veil_diags *d)
{
	memset(db, 0, sizeof(*db));
	if (url) {
		if (!(db->where = strdup("the PostgreSQL store")))
			return VEIL_ENOMEM;
		db->pg = PQconnectdb(url);
		if (PQstatus(db->pg) != CONNECTION_OK) {
			veil_diag(d, "--store: %s", PQerrorMessage(db->pg));
			rows_close(db);
			return VEIL_EIO;
		}
		return 0;
	}
	if (!(db->where = veil_path_join(data, "cas.db")))
		return VEIL_ENOMEM;
	if (sqlite3_open_v2(db->where, &db->sq, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db->sq, 10000) != SQLITE_OK) {
		veil_diag(d, "%s: %s", db->where,
			  db->sq ? sqlite3_errmsg(db->sq) : "out of memory");
		rows_close(db);
		return VEIL_EIO;
	}
	return 0;
}

static void prefix_of(uint32_t to, uint8_t prefix[static 8])
{
	prefix[0] = 'V', prefix[1] = 'K', prefix[2] = 1, prefix[3] = 2;
	for (int i = 0; i < 4; i++)
		prefix[4 + i] = (uint8_t)(to >> (24 - 8 * i));
}

static int row_set(struct row *r, const char *ns, size_t ns_len, const void *w, size_t size,
		   struct veil_diags *d)
{
	if (!(r->ns = strndup(ns, ns_len)))
		return VEIL_ENOMEM;
	if (size > sizeof(r->in)) {
		veil_diag(d, "namespace %s: not a wrapped key of this CAS", r->ns);
		return VEIL_EINVAL;
	}
	memcpy(r->in, w, size);
	r->in_size = size;
	return 0;
}

/* up to BATCH rows whose wrapped key does not start with prefix */
static int rows_list(struct rows_db *db, const uint8_t prefix[static 8], struct row *rows,
		     size_t *n, struct veil_diags *d)
{
	int rc = 0;
	*n = 0;
	if (db->pg) {
		const char *v[] = {(const char *)prefix};
		const int lens[] = {8}, fmts[] = {1};
		PGresult *res = PQexecParams(db->pg,
					     "SELECT namespace, wrapped_key FROM policies WHERE "
					     "substring(wrapped_key from 1 for 8) <> $1 LIMIT 16",
					     1, NULL, v, lens, fmts, 1);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			veil_diag(d, "%s: %s", db->where, PQerrorMessage(db->pg));
			rc = VEIL_EIO;
		}
		for (int i = 0; !rc && i < PQntuples(res) && *n < BATCH; i++, (*n)++)
			rc = row_set(&rows[*n], PQgetvalue(res, i, 0),
				     (size_t)PQgetlength(res, i, 0), PQgetvalue(res, i, 1),
				     (size_t)PQgetlength(res, i, 1), d);
		PQclear(res);
		return rc;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db->sq,
			       "SELECT namespace, wrapped_key FROM policies WHERE "
			       "substr(wrapped_key, 1, 8) != ?1 LIMIT 16",
			       -1, &st, NULL) != SQLITE_OK) {
		veil_diag(d, "%s: %s", db->where, sqlite3_errmsg(db->sq));
		return VEIL_EIO;
	}
	sqlite3_bind_blob(st, 1, prefix, 8, SQLITE_STATIC);
	int x;
	while (!rc && *n < BATCH && (x = sqlite3_step(st)) == SQLITE_ROW) {
		rc = row_set(&rows[*n], (const char *)sqlite3_column_text(st, 0),
			     (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_blob(st, 1),
			     (size_t)sqlite3_column_bytes(st, 1), d);
		if (!rc)
			(*n)++;
	}
	sqlite3_finalize(st);
	return rc;
}

/* the re-wrapped rows, each compared-and-swapped on the key it had, in one
 * transaction; *done: rows changed */
static int rows_swap(struct rows_db *db, struct row *rows, size_t n, long long *done,
		     struct veil_diags *d)
{
	*done = 0;
	if (db->pg) {
		PGresult *res = PQexec(db->pg, "BEGIN");
		int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : VEIL_EIO;
		PQclear(res);
		for (size_t i = 0; !rc && i < n; i++) {
			if (!rows[i].out_size)
				continue;
			const char *v[] = {(const char *)rows[i].out, rows[i].ns,
					   (const char *)rows[i].in};
			const int lens[] = {(int)rows[i].out_size, 0, (int)rows[i].in_size};
			const int fmts[] = {1, 0, 1};
			res = PQexecParams(db->pg,
					   "UPDATE policies SET wrapped_key = $1 WHERE namespace = "
					   "$2 AND wrapped_key = $3",
					   3, NULL, v, lens, fmts, 0);
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				rc = VEIL_EIO;
			else
				*done += strtol(PQcmdTuples(res), NULL, 10);
			PQclear(res);
		}
		res = PQexec(db->pg, rc ? "ROLLBACK" : "COMMIT");
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = VEIL_EIO;
		PQclear(res);
		if (rc)
			veil_diag(d, "%s: %s", db->where, PQerrorMessage(db->pg));
		return rc;
	}
	sqlite3_stmt *put = NULL;
	if (sqlite3_exec(db->sq, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->sq,
			       "UPDATE policies SET wrapped_key = ?1 WHERE namespace = ?2 AND "
			       "wrapped_key = ?3",
			       -1, &put, NULL) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (!rows[i].out_size)
			continue;
		sqlite3_reset(put);
		sqlite3_bind_blob(put, 1, rows[i].out, (int)rows[i].out_size, SQLITE_STATIC);
		sqlite3_bind_text(put, 2, rows[i].ns, -1, SQLITE_STATIC);
		sqlite3_bind_blob(put, 3, rows[i].in, (int)rows[i].in_size, SQLITE_STATIC);
		if (sqlite3_step(put) != SQLITE_DONE)
			goto fail;
		*done += sqlite3_changes(db->sq);
	}
	sqlite3_finalize(put);
	put = NULL;
	if (sqlite3_exec(db->sq, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return 0;
fail:
	veil_diag(d, "%s: %s", db->where, sqlite3_errmsg(db->sq));
	sqlite3_finalize(put);
	sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	return VEIL_EIO;
}

/* the rows not under version `to`, re-wrapped a batch per transaction while
 * veil-cas serves (each row compared-and-swapped on the wrapped key read),
 * until none is left; *count re-wrapped */
static int rewrap_online(const char *data, const char *url, struct veil_vault *v, uint32_t to,
			 long long *count, struct veil_diags *d)
{
	struct rows_db db;
	struct row rows[BATCH] = {0};
	uint8_t prefix[8];
	int rc = rows_open(data, url, &db, d), idle = 0;
	prefix_of(to, prefix);
	while (!rc) {
		size_t n = 0;
		long long done = 0;
		rc = rows_list(&db, prefix, rows, &n, d);
		if (rc || !n)
			break;
		/* in the token, outside the write transaction */
		for (size_t i = 0; !rc && i < n; i++) {
			if ((rc = veil_vault_rewrap(v, rows[i].ns, rows[i].in, rows[i].in_size,
						    rows[i].out, &rows[i].out_size)))
				veil_diag(d,
					  "namespace %s: its data key does not open with this "
					  "CAS's master keys",
					  rows[i].ns);
		}
		if (!rc)
			rc = rows_swap(&db, rows, n, &done, d);
		for (size_t i = 0; i < BATCH; i++) {
			free(rows[i].ns);
			rows[i].ns = NULL;
		}
		*count += done;
		/* rows that changed under us are read again; rows that never
		 * re-wrap would loop forever */
		idle = done ? 0 : idle + 1;
		if (!rc && idle > 100) {
			veil_diag(d, "%s: rows stay under the old master key", db.where);
			rc = VEIL_EIO;
		}
	}
	for (size_t i = 0; i < BATCH; i++)
		free(rows[i].ns);
	rows_close(&db);
	return rc;
}

/* how many rows are not under version `to` */
static int count_not_under(const char *data, const char *url, uint32_t to, unsigned long long *n,
			   struct veil_diags *d)
{
	struct rows_db db;
	uint8_t prefix[8];
	int rc = rows_open(data, url, &db, d);
	prefix_of(to, prefix);
	if (!rc && db.pg) {
		const char *v[] = {(const char *)prefix};
		const int lens[] = {8}, fmts[] = {1};
		PGresult *res = PQexecParams(db.pg,
					     "SELECT count(*) FROM policies WHERE "
					     "substring(wrapped_key from 1 for 8) <> $1",
					     1, NULL, v, lens, fmts, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			*n = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		else
			rc = VEIL_EIO;
		if (rc)
			veil_diag(d, "%s: %s", db.where, PQerrorMessage(db.pg));
		PQclear(res);
	} else if (!rc) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(db.sq,
				       "SELECT count(*) FROM policies WHERE substr(wrapped_key, 1, "
				       "8) != ?1",
				       -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_bind_blob(st, 1, prefix, sizeof(prefix), SQLITE_STATIC) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW) {
			*n = (unsigned long long)sqlite3_column_int64(st, 0);
		} else {
			veil_diag(d, "%s: %s", db.where, sqlite3_errmsg(db.sq));
			rc = VEIL_EIO;
		}
		sqlite3_finalize(st);
	}
	rows_close(&db);
	return rc;
}

#ifdef VEIL_TEST_HOOKS
/* only for testing: a crash (exit 9) at the named step */
static void test_stop(const char *step)
{
	const char *at = getenv("VEIL_TEST_ROTATE_STOP");
	if (at && !strcmp(at, step))
		_exit(9);
}
#else
#define test_stop(step) ((void)0)
#endif

/* the rotation step by step, each step loaded by the veil-cas here
 * (t->local) and the replicas (t->url), the comment at the top; detail:
 * what it did, *finishing: only an earlier rotation's end */
static int rotate_online(const struct targets *t, const char *pin_file, char *detail, size_t cap,
			 bool *finishing, struct veil_diags *d)
{
	const char *data = t->data, *url = t->url, *keyfile = t->keyfile;
	struct veil_vault *v = NULL;
	uint32_t from = 0, to = 0;
	long long count = 0;
	char note[256];
	char state[128] = "";
	unsigned long long retired = 0;
	int rc = veil_vault_open_any(keyfile, pin_file, &v, d);
	if (!rc)
		rc = veil_vault_describe(v, state, sizeof(state));
	if (!rc && strstr(state, " pending 0 retire ") && !strstr(state, " retire 0")) {
		/* a rerun after the switch: veil-cas loads the new key alone
		 * first; a row still under the old key (this vault no longer
		 * holds it) stops the rerun before that key is destroyed */
		/* "pkcs11 current N ..." (veil_vault_describe) */
		char *end = NULL;
		unsigned long cur =
		    strncmp(state, "pkcs11 current ", 15) ? 0 : strtoul(state + 15, &end, 10);
		if (!cur || cur > UINT32_MAX || !end || *end != ' ')
			rc = VEIL_EINVAL;
		if (!rc)
			rc = reload_all(t, v,
					"rotate-master-key: the new key current, the old one "
					"still to destroy",
					d);
		if (!rc && (rc = count_not_under(data, url, (uint32_t)cur, &retired, d)) == 0 &&
		    retired) {
			veil_diag(d,
				  "%llu data keys are not under the current master key: the "
				  "retired key is kept (master.key's retire line); report this",
				  retired);
			rc = VEIL_EIO;
		}
	}
	if (!rc)
		rc = veil_vault_rotate_begin(v, &from, &to, d);
	if (!rc && from == to) {
		/* a rerun after the switch: the old key is destroyed already
		 * (begin did it); veil-cas loads the record without it */
		snprintf(note, sizeof(note),
			 "rotate-master-key: version %" PRIu32
			 " is current; the retired key destroyed in the token",
			 to);
		rc = reload_all(t, v, note, d);
		if (!rc)
			snprintf(detail, cap,
				 "%s master key version %" PRIu32
				 ": the rotation to it is finished (its old key destroyed)",
				 veil_vault_provider(v), to);
		*finishing = true;
		veil_vault_close(v);
		return rc;
	}
	if (!rc) {
		snprintf(note, sizeof(note),
			 "rotate-master-key %" PRIu32 " -> %" PRIu32 ": the new key loaded", from,
			 to);
		rc = reload_all(t, v, note, d);
	}
	if (!rc)
		test_stop("online-loaded");
	if (!rc)
		rc = rewrap_online(data, url, v, to, &count, d);
	if (!rc) {
		test_stop("online-rewrapped");
		snprintf(note, sizeof(note),
			 "rotate-master-key %" PRIu32 " -> %" PRIu32 ": %lld data keys re-wrapped",
			 from, to, count);
		rc = reload_all(t, v, note, d);
	}
	if (!rc)
		rc = rewrap_online(data, url, v, to, &count, d);
	if (!rc)
		rc = veil_vault_rotate_switch(v, d);
	if (!rc) {
		test_stop("online-switched");
		snprintf(note, sizeof(note),
			 "rotate-master-key %" PRIu32 " -> %" PRIu32 ": %" PRIu32
			 " is current, %" PRIu32 " retired",
			 from, to, to, from);
		rc = reload_all(t, v, note, d);
	}
	/* stragglers: this vault still holds the old key */
	if (!rc)
		rc = rewrap_online(data, url, v, to, &count, d);
	if (!rc)
		rc = veil_vault_rotate_retire(v, d);
	if (!rc) {
		snprintf(note, sizeof(note),
			 "rotate-master-key %" PRIu32 " -> %" PRIu32
			 ": finished, %lld data keys re-wrapped, key %" PRIu32
			 " destroyed in the token",
			 from, to, count, from);
		rc = reload_all(t, v, note, d);
	}
	if (!rc)
		snprintf(detail, cap,
			 "%s master key version %" PRIu32 " -> %" PRIu32
			 "; %lld data keys re-wrapped",
			 veil_vault_provider(v), from, to, count);
	veil_vault_close(v);
	return rc;
}

int cas_rotate_main(int argc, char **argv)
{
	enum { OPT_DATA = 256, OPT_PIN_FILE, OPT_STORE, OPT_WAIT };
	static const struct option opts[] = {{"data", required_argument, NULL, OPT_DATA},
					     {"pin-file", required_argument, NULL, OPT_PIN_FILE},
					     {"store", required_argument, NULL, OPT_STORE},
					     {"wait", required_argument, NULL, OPT_WAIT},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	const char *prog = "veil-cas rotate-master-key", *data = NULL, *pin_file = NULL,
		   *store = NULL;
	long wait = 120;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_DATA:
			data = optarg;
			break;
		case OPT_PIN_FILE:
			pin_file = optarg;
			break;
		case OPT_WAIT: {
			struct veil_diags wd;
			veil_diags_init(&wd);
			int bad = veil_parse_long("--wait", optarg, 1, 3600, &wait, &wd);
			if (bad) {
				int r = veil_usage_error(prog, "%s", wd.msgs[0]);
				veil_diags_free(&wd);
				return r;
			}
			veil_diags_free(&wd);
			break;
		}
		case OPT_STORE:
			if (!veil_store_url_is_pg(optarg))
				return veil_usage_error(prog,
							"--store: expected postgresql://... or "
							"postgres://...");
			store = optarg;
			break;
		case 'h':
			rotate_usage(stdout);
			return 0;
		default:
			return veil_getopt_error(prog, c, argc, argv, optind);
		}
	}
	if (optind < argc)
		return veil_usage_error(prog, "unexpected argument '%s'", argv[optind]);
	if (!data)
		return veil_usage_error(prog, "--data DIR is required");
	struct veil_diags d;
	veil_diags_init(&d);
	struct veil_audit *audit = NULL;
	struct veil_vault *v = NULL;
	char *keyfile = veil_path_join(data, "master.key");
	char *auditlog = veil_path_join(data, "audit.log");
	uint32_t from = 0, to = 0;
	long long count = 0;
	bool running = false;
	int rc = keyfile && auditlog ? cas_check_data_dir(data, false, !store, &d) : VEIL_ENOMEM;
	/* the audit log's lock: a running veil-cas holds it */
	if (!rc)
		rc = cas_running(auditlog, &running, &d);
	char detail[160] = "";
	bool finishing = false;
	struct targets t = {data, store, keyfile, running, wait};
	if (!rc && running) {
		rc = rotate_online(&t, pin_file, detail, sizeof(detail), &finishing, &d);
		if (!rc)
			printf("veil-cas: %s%s\n", detail, finishing ? "" : " (veil-cas running)");
		veil_diags_print(&d, stderr);
		veil_diags_free(&d);
		free(keyfile);
		free(auditlog);
		return rc ? 1 : 0;
	}
	/* offline: this command holds the lock (a veil-cas starting now
	 * stops at it) and writes the audit entry */
	if (!rc && (rc = veil_audit_open(auditlog, &audit, &d)))
		veil_diag(&d, "veil-cas started meanwhile: run this again");
	/* PostgreSQL: replicas elsewhere may serve; they load each step
	 * from the database, as online */
	if (!rc && store)
		rc = rotate_online(&t, pin_file, detail, sizeof(detail), &finishing, &d);
	else if (!rc)
		rc = veil_vault_open_any(keyfile, pin_file, &v, &d);
	if (!rc && !store)
		rc = veil_vault_rotate_begin(v, &from, &to, &d);
	if (!rc && !store)
		finishing = from == to; /* an earlier rotation's old key destroyed */
	/* SQLite: every row in one transaction */
	if (!rc && !store && !finishing)
		rc = rewrap_store(data, v, &count, &d);
#ifdef VEIL_TEST_HOOKS
	/* only for testing: a crash between the re-wrap and the switch */
	if (!rc && !store && getenv("VEIL_TEST_ROTATE_STOP") &&
	    !strcmp(getenv("VEIL_TEST_ROTATE_STOP"), "after-rewrap"))
		_exit(9);
#endif
	if (!rc && !store && !finishing)
		rc = veil_vault_rotate_finish(v, &d);
	if (!rc) {
		/* with --store, rotate_online said what it did */
		if (!store && finishing)
			snprintf(detail, sizeof(detail),
				 "%s master key version %" PRIu32
				 ": the rotation to it is finished (its old key destroyed)",
				 veil_vault_provider(v), to);
		else if (!store)
			snprintf(detail, sizeof(detail),
				 "%s master key version %" PRIu32 " -> %" PRIu32
				 "; %lld data keys re-wrapped",
				 veil_vault_provider(v), from, to, count);
		struct veil_audit_event ev = {
		    .event = "rotate-master-key", .status = 200, .detail = detail};
		rc = veil_audit_append(audit, &ev);
		if (rc)
			veil_diag(&d,
				  "%s: the rotation is done but its audit entry was not written",
				  auditlog);
		else
			printf("veil-cas: %s\n", detail);
	}
	veil_vault_close(v);
	veil_audit_close(audit);
	veil_diags_print(&d, stderr);
	veil_diags_free(&d);
	free(keyfile);
	free(auditlog);
	return rc ? 1 : 0;
}
