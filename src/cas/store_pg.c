/* The shared store: PostgreSQL through libpq, for several veil-cas replicas
 * on one database.
 *
 * Same tables and semantics as SQLite (store_sqlite.c); what differs:
 * - Writes: begin takes a transaction-scoped advisory lock (the writer lock,
 *   PG_LOCK_SPACE/PG_LOCK_WRITE), so one change at a time across every
 *   replica, as SQLite's BEGIN IMMEDIATE in one process: the quota count and
 *   the export-name check of a create see no other change half done. The
 *   update itself is still the compare-and-swap on the predecessor hash
 *   (UPDATE ... WHERE namespace = $1 AND hash = $6, one row or
 *   VEIL_ECONFLICT), which alone keeps concurrent updates from losing one.
 * - The audit entries of changes are one chain for every replica, rows of
 *   veil_audit (schema 2) written in the change's transaction under the
 *   writer lock (pg_audit_append). Each replica's own audit.log (its
 *   requests) has its head in audit_head, one row per replica, keyed by the
 *   id in DATA/replica.id. The first store a process opens
 *   holds a session advisory lock on that id: a second replica started on a
 *   copy of the same data folder is refused (delete its replica.id).
 * - veil_generation holds a counter a trigger moves at every statement that
 *   changes policies: the caches of every replica compare it (caches.c).
 * - veil_master_key and veil_replica_keys (schema 3): the PKCS#11 record a
 *   master-key rotation publishes at each step (rotate.c) and what each
 *   replica loaded (veil_store_pg_master_key, veil_store_pg_key_loaded;
 *   keysync.c); a replica is live while it holds its id's advisory lock.
 * - Connections: a statement that finds the connection broken (libpq says
 *   so, or the server's error is a connection exception, 08..., an
 *   operator intervention such as a shutdown, 57P..., or a read-only
 *   former primary, 25006) outside a transaction resets it (a new
 *   connection, following target_session_attrs to the new primary) and
 *   runs once more; inside a transaction the transaction is lost, the
 *   change fails as a whole and the connection is reset after it.
 *   Either way base.unavailable tells the routes to answer 503.
 *
 * Schema versions: table veil_schema(version), one row per applied step,
 * applied at the first open under the advisory lock PG_LOCK_MIGRATE, each
 * step in a transaction with its row. By hand:
 *   psql "$URL" -c 'SELECT max(version) FROM veil_schema'
 * All statements carrying data are parameterised (PQexecParams), bytea in
 * binary. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/rand.h>

#include "veil/audit.h"
#include "veil/store.h"

/* advisory lock keys: (PG_LOCK_SPACE, what); a replica's claim is
 * (PG_LOCK_REPLICA, hashtext(id)) */
#define PG_LOCK_SPACE "1986357612" /* "veil" */
#define PG_LOCK_REPLICA "1986357613"
#define PG_LOCK_MIGRATE "1"
#define PG_LOCK_WRITE "2"
#define REPLICA_ID_LEN 32

struct pg_store {
	struct veil_store base;
	PGconn *conn;
	bool in_tx;
	bool lost;    /* the connection is to be reset before its next use */
	bool warned;  /* the server sent a WARNING (pg_commit looks) */
	bool counted; /* in the open connections of the statistics */
	bool claims;  /* holds the replica id's session lock (the first store) */
	char replica[REPLICA_ID_LEN + 1];
};

static struct pg_store *pg_of(struct veil_store *s)
{
	return (struct pg_store *)s;
}

/* The connection works, or is made to work outside a transaction. */
static int pg_ready(struct pg_store *q)
{
	if ((q->lost || PQstatus(q->conn) != CONNECTION_OK) && !q->in_tx) {
		PQreset(q->conn);
		veil_store_stats_reconnect();
		q->lost = false;
		/* the replica id's session lock went with the old session: taken
		 * again, so that this replica still counts as live (a rotation
		 * waits for the live ones; rotate.c) */
		if (q->claims && PQstatus(q->conn) == CONNECTION_OK) {
			const char *v[] = {q->replica};
			PQclear(PQexecParams(q->conn,
					     "SELECT pg_try_advisory_lock(" PG_LOCK_REPLICA
					     ", hashtext($1))",
					     1, NULL, v, NULL, NULL, 0));
		}
	}
	if (q->lost || PQstatus(q->conn) != CONNECTION_OK) {
		q->base.unavailable = true;
		return VEIL_EIO;
	}
	return 0;
}

/* PQexecParams, cancelled when it has not ended after --store-timeout: a
 * lock held elsewhere, a server that does not answer, a COMMIT waiting for a
 * synchronous standby that is gone (which the server's statement_timeout
 * does not end: it stops before the commit). The cancelled statement ends
 * with 57014, a cancelled COMMIT with a WARNING (pg_commit); a cancel not
 * answered within another timeout gives the connection up (lost). So no
 * statement holds a thread longer than twice the timeout. *timed_out: the
 * cancel was sent. NULL when the query could not be sent or was given up. */
static PGresult *exec_within(struct pg_store *q, const char *sql, int n, const char *const *vals,
			     const int *lens, const int *fmts, int binary_result, bool *timed_out)
{
	if (!PQsendQueryParams(q->conn, sql, n, NULL, vals, lens, fmts, binary_result))
		return NULL;
	double timeout = veil_store_timeout_ms() / 1000.0;
	double deadline = veil_store_clock() + timeout;
	while (PQisBusy(q->conn)) {
		double left = deadline - veil_store_clock();
		if (*timed_out && left <= 0) {
			/* the cancel was not answered either (a frozen server, a
			 * connection a middlebox dropped): given up, a new one */
			q->lost = true;
			break;
		}
		if (!*timed_out && left <= 0) {
			*timed_out = true;
			PGcancel *c = PQgetCancel(q->conn);
			char err[256];
			if (!c || !PQcancel(c, err, sizeof(err)))
				q->lost = true; /* the server cannot be reached: a new connection */
			PQfreeCancel(c);
			if (q->lost)
				break;
			deadline = veil_store_clock() + timeout; /* for the cancel's answer */
			continue;
		}
		struct pollfd p = {.fd = PQsocket(q->conn), .events = POLLIN};
		int w = poll(&p, 1, (int)(left * 1000) + 1);
		if (w < 0 && errno != EINTR)
			break;
		if (w > 0 && !PQconsumeInput(q->conn))
			break;
	}
	PGresult *res = NULL, *r;
	if (q->lost) /* abandoned mid-statement: nothing more is read from it */
		return NULL;
	while ((r = PQgetResult(q->conn))) {
		if (!res || PQresultStatus(r) == PGRES_FATAL_ERROR) {
			PQclear(res);
			res = r;
		} else {
			PQclear(r);
		}
	}
	return res;
}

/* Runs sql with n parameters (fmts[i] 1: binary, lens[i] its size; NULL
 * fmts: all text); *res is the result to PQclear on 0. VEIL_EEXIST for a
 * unique violation, VEIL_EIO for any other failure. A connection found
 * broken outside a transaction is reset and the statement run once more:
 * outside a transaction only reads and BEGIN run, which are safe to repeat. */
static int pg_exec(struct pg_store *q, const char *sql, int n, const char *const *vals,
		   const int *lens, const int *fmts, int binary_result, PGresult **res)
{
	*res = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (pg_ready(q))
			return VEIL_EIO;
		bool own = !q->in_tx; /* a transaction counts as busy from begin to its end */
		veil_store_stats_conns(0, own);
		double t0 = veil_store_clock();
		bool timed_out = false;
		PGresult *r = exec_within(q, sql, n, vals, lens, fmts, binary_result, &timed_out);
		ExecStatusType st = PQresultStatus(r);
		double took = veil_store_clock() - t0;
		veil_store_stats_conns(0, -(int)own);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			veil_store_stats_statement(took, VEIL_STORE_OK);
			q->base.unavailable = false;
			*res = r;
			return 0;
		}
		const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		/* cancelled at --store-timeout (57014): the database is there but
		 * does not get to it; retry later (503) */
		bool timeout = timed_out && state && !strcmp(state, "57014");
		veil_store_stats_statement(took,
					   timeout ? VEIL_STORE_TIMED_OUT : VEIL_STORE_FAILED);
		if (timeout) {
			PQclear(r);
			q->base.unavailable = true;
			return VEIL_EIO;
		}
		bool unique = state && !strcmp(state, "23505");
		/* the server ending the session (57P01 at a fast shutdown) can be
		 * read as this statement's error while libpq still calls the
		 * connection OK; a former primary is read-only (25006) after a
		 * failover: both want a new connection (to the read-write host) */
		bool lost = q->lost || PQstatus(q->conn) != CONNECTION_OK ||
			    (state && (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3) ||
				       !strcmp(state, "25006")));
		PQclear(r);
		if (lost) {
			q->base.unavailable = true;
			q->lost = true; /* reset at once outside a transaction, else
					 * after its rollback */
			if (q->in_tx)
				return VEIL_EIO;
			continue;
		}
		q->base.unavailable = false; /* the database answered: an SQL error */
		return unique ? VEIL_EEXIST : VEIL_EIO;
	}
	return VEIL_EIO;
}

/* A statement with text parameters whose result is not needed. */
static int pg_run(struct pg_store *q, const char *sql, int n, const char *const *vals)
{
	PGresult *r;
	int rc = pg_exec(q, sql, n, vals, NULL, NULL, 0, &r);
	PQclear(r);
	return rc;
}

static uint8_t *dup_value(const PGresult *r, int row, int col, size_t *size)
{
	int n = PQgetlength(r, row, col);
	uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
	if (b && n > 0)
		memcpy(b, PQgetvalue(r, row, col), (size_t)n);
	*size = (size_t)n;
	return b;
}

static int pg_get(struct veil_store *s, const char *ns, struct veil_record *out)
{
	PGresult *r;
	const char *v[] = {ns};
	int rc = pg_exec(pg_of(s),
			 "SELECT hash, owner, wrapped_key, blob FROM policies WHERE namespace = $1",
			 1, v, NULL, NULL, 1, &r);
	if (rc)
		return rc == VEIL_EEXIST ? VEIL_EIO : rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return VEIL_ENOENT;
	}
	memset(out, 0, sizeof(*out));
	out->namespace_ = strdup(ns);
	out->hash = strdup(PQgetvalue(r, 0, 0)); /* binary text: the bytes, NUL added */
	out->owner = strdup(PQgetvalue(r, 0, 1));
	out->wrapped_key = dup_value(r, 0, 2, &out->wrapped_size);
	out->blob = dup_value(r, 0, 3, &out->blob_size);
	PQclear(r);
	if (out->namespace_ && out->hash && out->owner && out->wrapped_key && out->blob)
		return 0;
	veil_record_free(out);
	return VEIL_ENOMEM;
}

/* $1..$5: namespace, hash, owner (text), wrapped key, blob (binary) */
static int pg_exec_record(struct pg_store *q, const char *sql, const struct veil_record *rec,
			  const char *extra, PGresult **res)
{
	const char *v[] = {rec->namespace_,
			   rec->hash,
			   rec->owner,
			   rec->wrapped_key ? (const char *)rec->wrapped_key : "",
			   rec->blob ? (const char *)rec->blob : "",
			   extra};
	const int lens[] = {0, 0, 0, (int)rec->wrapped_size, (int)rec->blob_size, 0};
	const int fmts[] = {0, 0, 0, 1, 1, 0};
	return pg_exec(q, sql, extra ? 6 : 5, v, lens, fmts, 0, res);
}

static int pg_create(struct veil_store *s, const struct veil_record *rec)
{
	PGresult *r;
	int rc = pg_exec_record(pg_of(s),
				"INSERT INTO policies(namespace, hash, owner, wrapped_key, blob) "
				"VALUES($1, $2, $3, $4, $5)",
				rec, NULL, &r);
	PQclear(r);
	return rc;
}

static int pg_update(struct veil_store *s, const struct veil_record *rec, const char *expected)
{
	PGresult *r;
	/* wrapped_key stays (a rotation may have re-wrapped it since it was
	 * read; the payload is sealed with the same data key); $4 is only
	 * typed, as every parameter must be */
	int rc = pg_exec_record(pg_of(s),
				"UPDATE policies SET hash = $2, owner = $3, blob = $5 "
				"WHERE namespace = $1 AND hash = $6 AND $4::bytea IS NOT NULL",
				rec, expected, &r);
	if (rc)
		return rc == VEIL_EEXIST ? VEIL_EIO : rc;
	bool one = !strcmp(PQcmdTuples(r), "1");
	PQclear(r);
	return one ? 0 : VEIL_ECONFLICT;
}

static int pg_clear_exports(struct veil_store *s, const char *exporter)
{
	const char *v[] = {exporter};
	int rc = pg_run(pg_of(s), "DELETE FROM exports WHERE exporter = $1", 1, v);
	return rc ? VEIL_EIO : 0;
}

static int pg_add_export(struct veil_store *s, const char *exporter,
			 const struct veil_store_export *e)
{
	if (!e->importer || (!e->owner && !e->session_hash))
		return VEIL_EINVAL;
	const char *v[] = {exporter, e->importer, e->owner, e->session_hash}; /* NULL: NULL */
	int rc = pg_run(pg_of(s),
			"INSERT INTO exports(exporter, importer, owner, session_hash) "
			"VALUES($1, $2, $3, $4)",
			4, v);
	return rc ? VEIL_EIO : 0;
}

static int pg_exports_to(struct veil_store *s, const char *importer,
			 int (*fn)(const struct veil_store_export *e, void *arg), void *arg)
{
	PGresult *r;
	const char *v[] = {importer};
	if (pg_exec(pg_of(s),
		    "SELECT owner, session_hash FROM exports WHERE importer = $1 AND "
		    "exporter <> $1",
		    1, v, NULL, NULL, 0, &r))
		return VEIL_EIO;
	int rc = 0;
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		struct veil_store_export e = {
		    .importer = importer,
		    .owner = PQgetisnull(r, i, 0) ? NULL : PQgetvalue(r, i, 0),
		    .session_hash = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1)};
		rc = fn(&e, arg);
	}
	PQclear(r);
	return rc;
}

static int pg_remove(struct veil_store *s, const char *ns)
{
	PGresult *r;
	const char *v[] = {ns};
	/* "ns/..." is the range (ns/, ns0) in byte order (COLLATE "C") */
	if (pg_exec(pg_of(s),
		    "DELETE FROM policies WHERE namespace = $1 AND NOT EXISTS (SELECT 1 FROM "
		    "policies WHERE namespace > $1 || '/' AND namespace < $1 || '0')",
		    1, v, NULL, NULL, 0, &r))
		return VEIL_EIO;
	bool gone = strcmp(PQcmdTuples(r), "0") != 0;
	PQclear(r);
	if (!gone)
		return VEIL_ENOENT;
	return pg_clear_exports(s, ns);
}

static int pg_list(struct veil_store *s, const char *owner,
		   int (*fn)(const char *ns, const char *hash, void *arg), void *arg)
{
	PGresult *r;
	const char *v[] = {owner};
	if (pg_exec(pg_of(s),
		    "SELECT namespace, hash FROM policies WHERE owner = $1 ORDER BY namespace", 1,
		    v, NULL, NULL, 0, &r))
		return VEIL_EIO;
	int rc = 0;
	for (int i = 0; !rc && i < PQntuples(r); i++)
		rc = fn(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), arg);
	PQclear(r);
	return rc;
}

/* The first column of the only row as a number. */
static int pg_number(struct pg_store *q, const char *sql, int n, const char *const *vals,
		     long long *out)
{
	PGresult *r;
	if (pg_exec(q, sql, n, vals, NULL, NULL, 0, &r))
		return VEIL_EIO;
	int rc = VEIL_EIO;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
		char *end;
		errno = 0;
		long long x = strtoll(PQgetvalue(r, 0, 0), &end, 10);
		if (!errno && !*end) {
			*out = x;
			rc = 0;
		}
	}
	PQclear(r);
	return rc;
}

static int pg_count(struct veil_store *s, long long *out)
{
	return pg_number(pg_of(s), "SELECT count(*) FROM policies", 0, NULL, out);
}

static int pg_count_children(struct veil_store *s, const char *ns, long long *out)
{
	const char *v[] = {ns};
	return pg_number(pg_of(s),
			 "SELECT count(*) FROM policies WHERE namespace > $1 || '/' AND "
			 "namespace < $1 || '0'",
			 1, v, out);
}

static int pg_count_owned(struct veil_store *s, const char *owner, long long *out)
{
	const char *v[] = {owner};
	return pg_number(pg_of(s), "SELECT count(*) FROM policies WHERE owner = $1", 1, v, out);
}

/* PostgreSQL checks its own pages; this checks that the database answers
 * and has the schema this code writes. */
static int pg_check(struct veil_store *s, struct veil_diags *d)
{
	long long v = 0;
	if (pg_number(pg_of(s), "SELECT max(version) FROM veil_schema", 0, NULL, &v)) {
		veil_diag(d, "PostgreSQL: cannot read the schema version: %s",
			  PQerrorMessage(pg_of(s)->conn));
		return VEIL_EIO;
	}
	if (v != VEIL_STORE_PG_SCHEMA_VERSION) {
		veil_diag(d, "PostgreSQL: schema version %lld, expected %d", v,
			  VEIL_STORE_PG_SCHEMA_VERSION);
		return VEIL_EIO;
	}
	return 0;
}

static void pg_rollback(struct veil_store *s)
{
	struct pg_store *q = pg_of(s);
	if (!q->in_tx)
		return;
	q->in_tx = false;
	veil_store_stats_conns(0, -1);
	if (PQstatus(q->conn) == CONNECTION_OK && !q->lost)
		PQclear(PQexec(q->conn, "ROLLBACK"));
}

static int pg_begin(struct veil_store *s)
{
	struct pg_store *q = pg_of(s);
	/* READ COMMITTED whatever the database's default: each statement
	 * after the writer lock sees what the previous writer committed (under
	 * REPEATABLE READ the snapshot would date from before the lock wait:
	 * the chain's last entry stale, every waiting writer's append a
	 * duplicate seq) */
	if (pg_run(q, "BEGIN ISOLATION LEVEL READ COMMITTED", 0, NULL))
		return VEIL_EIO;
	q->in_tx = true;
	veil_store_stats_conns(0, 1);
	if (pg_run(q, "SELECT pg_advisory_xact_lock(" PG_LOCK_SPACE ", " PG_LOCK_WRITE ")", 0,
		   NULL)) {
		pg_rollback(s);
		return VEIL_EIO;
	}
	return 0;
}

static int pg_commit(struct veil_store *s)
{
	struct pg_store *q = pg_of(s);
	PGresult *r;
	q->warned = false;
	int rc = pg_exec(q, "COMMIT", 0, NULL, NULL, NULL, 0, &r);
	/* COMMIT of a failed transaction "succeeds" as a ROLLBACK */
	if (!rc && strcmp(PQcmdStatus(r), "COMMIT"))
		rc = VEIL_EIO;
	/* A COMMIT that waited for a synchronous standby until the statement
	 * timeout ends with a WARNING: committed here, perhaps not on the
	 * standby, so perhaps lost at a failover. Not acknowledged: the
	 * request is answered 503, as when COMMIT's answer is lost (a retry
	 * sees the change or a conflict). */
	if (!rc && q->warned) {
		rc = VEIL_EIO;
		q->base.unavailable = true;
		/* counted as a success by pg_exec: it is a timeout */
		veil_store_stats_timed_out();
	}
	PQclear(r);
	q->in_tx = false;
	veil_store_stats_conns(0, -1);
	return rc ? VEIL_EIO : 0;
}

static int pg_set_head(struct veil_store *s, const struct veil_store_head *h)
{
	char seq[24], size[24];
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)h->seq);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)h->size);
	const char *v[] = {pg_of(s)->replica, seq, size, h->hash, h->signature};
	int rc = pg_run(pg_of(s),
			"INSERT INTO audit_head(replica, seq, size, hash, signature) "
			"VALUES($1, $2, $3, $4, $5) ON CONFLICT (replica) DO UPDATE SET "
			"seq = EXCLUDED.seq, size = EXCLUDED.size, hash = EXCLUDED.hash, "
			"signature = EXCLUDED.signature",
			5, v);
	return rc ? VEIL_EIO : 0;
}

static int pg_get_head(struct veil_store *s, struct veil_store_head *out)
{
	PGresult *r;
	const char *v[] = {pg_of(s)->replica};
	if (pg_exec(pg_of(s),
		    "SELECT seq, size, hash, signature FROM audit_head WHERE replica = $1", 1, v,
		    NULL, NULL, 0, &r))
		return VEIL_EIO;
	int rc = VEIL_ENOENT;
	if (PQntuples(r) == 1) {
		const char *h = PQgetvalue(r, 0, 2), *sig = PQgetvalue(r, 0, 3);
		rc = VEIL_EIO;
		if (strlen(h) == 64 && strlen(sig) < sizeof(out->signature)) {
			memset(out, 0, sizeof(*out));
			out->seq = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
			out->size = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
			memcpy(out->hash, h, 65);
			snprintf(out->signature, sizeof(out->signature), "%s", sig);
			rc = 0;
		}
	}
	PQclear(r);
	return rc;
}

static int pg_generation(struct veil_store *s, unsigned long long *out)
{
	long long n;
	int rc = pg_number(pg_of(s), "SELECT n FROM veil_generation WHERE id = 1", 0, NULL, &n);
	if (!rc)
		*out = (unsigned long long)n;
	return rc;
}

/* ---- the change chain (schema 2): table veil_audit ---- */

/* The chain's last entry, from its line, which must verify: a last line
 * changed in the table is refused, not extended (a new entry after it would
 * chain to the changed bytes and hide the change). */
static int pg_audit_last(struct veil_store *s, struct veil_audit_head *out, bool *checkpoint)
{
	struct pg_store *q = pg_of(s);
	PGresult *r;
	if (!q->in_tx) /* only under the writer lock: else two would take the same seq */
		return VEIL_EINVAL;
	if (pg_exec(q, "SELECT line FROM veil_audit ORDER BY seq DESC LIMIT 1", 0, NULL, NULL, NULL,
		    0, &r))
		return VEIL_EIO;
	memset(out, 0, sizeof(*out));
	memcpy(out->hash, veil_audit_zero_hash, sizeof(out->hash));
	*checkpoint = false;
	int rc = 0;
	if (PQntuples(r) == 1) {
		const char *line = PQgetvalue(r, 0, 0), *why;
		size_t col, size = strlen(line);
		struct veil_audit_entry e;
		struct veil_audit_checkpoint cp;
		if (veil_audit_check_line(line, size, &e, &why, &col)) {
			rc = VEIL_EINVAL;
		} else {
			out->seq = e.seq;
			memcpy(out->hash, e.hash, sizeof(out->hash));
			*checkpoint = veil_audit_parse_checkpoint(line, size, &cp) != VEIL_ENOENT;
		}
	}
	PQclear(r);
	return rc;
}

static int pg_audit_append(struct veil_store *s, const struct veil_audit_event *ev,
			   struct veil_audit_head *head)
{
	struct pg_store *q = pg_of(s);
	struct veil_audit_head last;
	char when[VEIL_AUDIT_TIME_SIZE], hash[VEIL_AUDIT_HASH_HEX], seq[24];
	char *line = malloc(VEIL_AUDIT_LINE_MAX);
	size_t size = 0;
	bool cp;
	int rc = line ? pg_audit_last(s, &last, &cp) : VEIL_ENOMEM;
	if (!rc && !(rc = veil_audit_time_now(when)))
		rc = veil_audit_format_line(last.hash, last.seq + 1, when, ev, line, &size, hash);
	if (!rc) {
		line[size - 1] = '\0'; /* the row holds the line without its '\n' */
		snprintf(seq, sizeof(seq), "%llu", (unsigned long long)(last.seq + 1));
		const char *v[] = {seq, line, q->replica};
		if (pg_run(q, "INSERT INTO veil_audit(seq, line, replica) VALUES($1, $2, $3)", 3,
			   v))
			rc = VEIL_EIO;
	}
	if (!rc && head) {
		memset(head, 0, sizeof(*head));
		head->seq = last.seq + 1;
		memcpy(head->hash, hash, sizeof(head->hash));
	}
	free(line);
	return rc;
}

static void pg_close(struct veil_store *s)
{
	struct pg_store *q = pg_of(s);
	if (!q)
		return;
	if (q->counted)
		veil_store_stats_conns(-1, 0);
	PQfinish(q->conn);
	free(q);
}

static int pg_info(struct veil_store *s, struct veil_store_info *out)
{
	struct pg_store *q = pg_of(s);
	long long standby = 0;
	int rc = pg_number(q, "SELECT pg_is_in_recovery()::int", 0, NULL, &standby);
	if (rc)
		return rc;
	snprintf(out->role, sizeof(out->role), "%s", standby ? "standby" : "primary");
	const char *host = PQhost(q->conn), *port = PQport(q->conn);
	snprintf(out->server, sizeof(out->server), "%s:%s", host ? host : "?", port ? port : "?");
	return 0;
}

static const struct veil_store_ops pg_ops = {
    .get = pg_get,
    .create = pg_create,
    .update = pg_update,
    .remove = pg_remove,
    .clear_exports = pg_clear_exports,
    .add_export = pg_add_export,
    .exports_to = pg_exports_to,
    .list = pg_list,
    .count = pg_count,
    .count_children = pg_count_children,
    .count_owned = pg_count_owned,
    .check = pg_check,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .set_head = pg_set_head,
    .get_head = pg_get_head,
    .generation = pg_generation,
    .audit_last = pg_audit_last,
    .audit_append = pg_audit_append,
    .info = pg_info,
    .close = pg_close,
};

/* One step per version; each runs in a transaction with its veil_schema
 * row. Text columns that are compared as ranges or sorted are COLLATE "C":
 * byte order, as SQLite's. */
static const char *const pg_migrations[] = {
    /* 1: SQLite's schema 4, plus the generation the caches compare */
    "CREATE TABLE policies ("
    " namespace text COLLATE \"C\" PRIMARY KEY,"
    " hash text NOT NULL,"
    " owner text NOT NULL,"
    " wrapped_key bytea NOT NULL,"
    " blob bytea NOT NULL);"
    "CREATE INDEX policies_owner ON policies(owner);"
    "CREATE TABLE audit_head ("
    " replica text PRIMARY KEY,"
    " seq bigint NOT NULL,"
    " size bigint NOT NULL,"
    " hash text NOT NULL,"
    " signature text NOT NULL);"
    "CREATE TABLE exports ("
    " exporter text COLLATE \"C\" NOT NULL,"
    " importer text COLLATE \"C\" NOT NULL,"
    " owner text,"
    " session_hash text,"
    " CHECK (owner IS NOT NULL OR session_hash IS NOT NULL));"
    "CREATE INDEX exports_importer ON exports(importer);"
    "CREATE INDEX exports_exporter ON exports(exporter);"
    "CREATE TABLE veil_generation (id integer PRIMARY KEY CHECK (id = 1), n bigint NOT NULL);"
    "INSERT INTO veil_generation VALUES (1, 0);"
    "CREATE FUNCTION veil_policies_changed() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN UPDATE veil_generation SET n = n + 1 WHERE id = 1; RETURN NULL; END $$;"
    "CREATE TRIGGER policies_changed AFTER INSERT OR UPDATE OR DELETE ON policies "
    "FOR EACH STATEMENT EXECUTE FUNCTION veil_policies_changed();",
    /* 2: the changes' audit chain, one for every replica: each row an
     * audit.log line (without its '\n'), seq as in the line, and the id of
     * the replica that wrote it (its replica.id) */
    "CREATE TABLE veil_audit ("
    " seq bigint PRIMARY KEY CHECK (seq > 0),"
    " line text NOT NULL,"
    " replica text NOT NULL);",
    /* 3: the master key's PKCS#11 record (master.key's text: no key in
     * clear) that every replica loads during a rotation, version moved at
     * each step (rotate.c), and what each replica loaded (main.c) */
    "CREATE TABLE veil_master_key ("
    " id integer PRIMARY KEY CHECK (id = 1),"
    " record text NOT NULL,"
    " note text NOT NULL,"
    " version bigint NOT NULL);"
    "CREATE TABLE veil_replica_keys ("
    " replica text PRIMARY KEY,"
    " loaded text NOT NULL,"
    " version bigint NOT NULL,"
    " at timestamptz NOT NULL);",
};
_Static_assert(VEIL_ARRAY_LEN(pg_migrations) == VEIL_STORE_PG_SCHEMA_VERSION,
	       "one migration step per schema version");

static int pg_fail(struct pg_store *q, struct veil_diags *d, const char *what)
{
	veil_diag(d, "PostgreSQL (--store): %s: %s", what, PQerrorMessage(q->conn));
	return VEIL_EIO;
}

static int pg_migrate(struct pg_store *q, struct veil_diags *d)
{
	long long v = 0;
	int rc = VEIL_EIO;
	if (pg_run(q, "SELECT pg_advisory_lock(" PG_LOCK_SPACE ", " PG_LOCK_MIGRATE ")", 0, NULL))
		return pg_fail(q, d, "cannot take the migration lock");
	if (pg_run(q, "CREATE TABLE IF NOT EXISTS veil_schema (version integer PRIMARY KEY)", 0,
		   NULL) ||
	    pg_number(q, "SELECT coalesce(max(version), 0) FROM veil_schema", 0, NULL, &v)) {
		pg_fail(q, d, "cannot read the schema version");
		goto out;
	}
	if (v > VEIL_STORE_PG_SCHEMA_VERSION) {
		veil_diag(d,
			  "PostgreSQL (--store): the database has schema version %lld; this "
			  "veil-cas (%s) knows versions up to %d: run a newer veil-cas",
			  v, VEIL_VERSION, VEIL_STORE_PG_SCHEMA_VERSION);
		rc = VEIL_EINVAL;
		goto out;
	}
	for (long long step = v + 1; step <= VEIL_STORE_PG_SCHEMA_VERSION; step++) {
		char num[24];
		snprintf(num, sizeof(num), "%lld", step);
		const char *vals[] = {num};
		PGresult *r = PQexec(q->conn, "BEGIN");
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok) {
			r = PQexec(q->conn, pg_migrations[step - 1]);
			ok = PQresultStatus(r) == PGRES_COMMAND_OK;
			PQclear(r);
		}
		if (ok)
			ok = !pg_run(q, "INSERT INTO veil_schema(version) VALUES($1)", 1, vals);
		if (ok) {
			r = PQexec(q->conn, "COMMIT");
			ok = PQresultStatus(r) == PGRES_COMMAND_OK &&
			     !strcmp(PQcmdStatus(r), "COMMIT");
			PQclear(r);
		}
		if (!ok) {
			veil_diag(d, "PostgreSQL (--store): schema step %lld failed: %s", step,
				  PQerrorMessage(q->conn));
			PQclear(PQexec(q->conn, "ROLLBACK"));
			goto out;
		}
	}
	rc = 0;
out:
	PQclear(
	    PQexec(q->conn, "SELECT pg_advisory_unlock(" PG_LOCK_SPACE ", " PG_LOCK_MIGRATE ")"));
	return rc;
}

static bool is_replica_id(const char *s, size_t n)
{
	if (n != REPLICA_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]) || !s[i])
			return false;
	return true;
}

/* DATA/replica.id: read, or made (O_EXCL: the first of racing makers wins). */
static int replica_id(const char *data_dir, char out[static REPLICA_ID_LEN + 1],
		      struct veil_diags *d)
{
	char *path = veil_path_join(data_dir, "replica.id");
	int rc = VEIL_EIO;
	if (!path)
		return VEIL_ENOMEM;
	/* read; else make, then read what the winner made */
	for (int attempt = 0; attempt < 3; attempt++) {
		char buf[REPLICA_ID_LEN + 2];
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf));
			close(fd);
			if (n > 0 && buf[n - 1] == '\n')
				n--;
			if (n < 0 || !is_replica_id(buf, (size_t)n)) {
				veil_diag(d,
					  "%s: not a replica id (32 hex digits); delete it to "
					  "make a new one",
					  path);
				rc = VEIL_EINVAL;
				goto out;
			}
			memcpy(out, buf, REPLICA_ID_LEN);
			out[REPLICA_ID_LEN] = '\0';
			rc = 0;
			goto out;
		}
		if (errno != ENOENT)
			break;
		uint8_t raw[REPLICA_ID_LEN / 2];
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			break;
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(buf + 2 * i, 3, "%02x", raw[i]);
		buf[REPLICA_ID_LEN] = '\n';
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0)
			break;
		bool ok = write(fd, buf, REPLICA_ID_LEN + 1) == REPLICA_ID_LEN + 1 && !fsync(fd);
		close(fd);
		if (!ok)
			break;
	}
	veil_diag(d, "%s: %s", path, strerror(errno));
out:
	free(path);
	return rc;
}

/* The server's notices ("already exists, skipping") are not ours to print;
 * a WARNING is noted (pg_commit). */
static void take_notice(void *arg, const PGresult *r)
{
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev && !strcmp(sev, "WARNING"))
		((struct pg_store *)arg)->warned = true;
}

/* url parses as a libpq connection string; else VEIL_EINVAL, why in d */
static int check_uri(const char *url, struct veil_diags *d)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &err);
	if (!opts) {
		/* the string itself is not repeated: it may hold a password */
		veil_diag(d, "--store: not a PostgreSQL connection URI: %s",
			  err ? err : "out of memory");
		PQfreemem(err);
		return VEIL_EINVAL;
	}
	PQconninfoFree(opts);
	return 0;
}

bool veil_store_url_is_pg(const char *url)
{
	return url && (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11));
}

int veil_store_pg_open(const char *url, const char *data_dir, bool first, struct veil_store **out,
		       struct veil_diags *d)
{
	if (check_uri(url, d))
		return VEIL_EINVAL;
	struct pg_store *q = calloc(1, sizeof(*q));
	if (!q)
		return VEIL_ENOMEM;
	q->base.ops = &pg_ops;
	int rc = replica_id(data_dir, q->replica, d);
	if (rc)
		goto out;
	/* defaults before the URI, which may override them: a database host
	 * that vanished without closing the connection (a failover, a cut
	 * network) is noticed within about 30 s instead of the kernel's hours */
	const char *const keys[] = {"connect_timeout",
				    "keepalives_idle",
				    "keepalives_interval",
				    "keepalives_count",
				    "tcp_user_timeout",
				    "fallback_application_name",
				    "dbname",
				    NULL};
	const char *const vals[] = {"10", "10", "5", "3", "30000", "veil-cas", url, NULL};
	q->conn = PQconnectdbParams(keys, vals, 1);
	rc = VEIL_EIO;
	if (!q->conn) {
		veil_diag(d, "PostgreSQL (--store): out of memory");
		goto out;
	}
	if (PQstatus(q->conn) != CONNECTION_OK) {
		pg_fail(q, d, "cannot connect");
		goto out;
	}
	veil_store_stats_conns(1, 0);
	q->counted = true;
	PQsetNoticeReceiver(q->conn, take_notice, q);
	if (first && (rc = pg_migrate(q, d)))
		goto out;
	if (first) {
		PGresult *r;
		const char *v[] = {q->replica};
		rc = pg_exec(q, "SELECT pg_try_advisory_lock(" PG_LOCK_REPLICA ", hashtext($1))", 1,
			     v, NULL, NULL, 0, &r);
		if (rc) {
			pg_fail(q, d, "cannot claim the replica id");
			goto out;
		}
		bool mine = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "t");
		PQclear(r);
		q->claims = mine;
		if (!mine) {
			veil_diag(d,
				  "PostgreSQL (--store): a running veil-cas uses this replica's id "
				  "(%s/replica.id, %s): was the data folder copied with it? Delete "
				  "replica.id in the copy so that it gets its own",
				  data_dir, q->replica);
			rc = VEIL_EINVAL;
			goto out;
		}
	}
	*out = &q->base;
	q = NULL;
	rc = 0;
out:
	if (q)
		pg_close(&q->base);
	return rc;
}

/* ---- the master key's record for the replicas (schema 3) ---- */

int veil_store_pg_master_key(struct veil_store *s, long long *version, char **record, char **note)
{
	PGresult *r;
	*version = 0;
	*record = *note = NULL;
	if (pg_exec(pg_of(s), "SELECT version, record, note FROM veil_master_key", 0, NULL, NULL,
		    NULL, 0, &r))
		return VEIL_EIO;
	int rc = 0;
	if (PQntuples(r) == 1) {
		*version = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		*record = strdup(PQgetvalue(r, 0, 1));
		*note = strdup(PQgetvalue(r, 0, 2));
		if (!*record || !*note) {
			free(*record);
			free(*note);
			*record = *note = NULL;
			*version = 0;
			rc = VEIL_ENOMEM;
		}
	}
	PQclear(r);
	return rc;
}

int veil_store_pg_key_loaded(struct veil_store *s, long long version, const char *loaded)
{
	char v[24];
	snprintf(v, sizeof(v), "%lld", version);
	const char *vals[] = {pg_of(s)->replica, loaded, v};
	return pg_run(pg_of(s),
		      "INSERT INTO veil_replica_keys(replica, loaded, version, at) "
		      "VALUES($1, $2, $3, now()) ON CONFLICT (replica) DO UPDATE SET "
		      "loaded = excluded.loaded, version = excluded.version, at = excluded.at",
		      3, vals)
		   ? VEIL_EIO
		   : 0;
}

/* ---- reading the change chain (veil-cas audit) ---- */

#define AUDIT_WALK_BATCH "1000"

int veil_store_pg_audit_walk(const char *url,
			     int (*fn)(const char *line, size_t len, const char *replica,
				       void *arg),
			     void *arg, struct veil_diags *d)
{
	if (check_uri(url, d))
		return VEIL_EINVAL;
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *const vals[] = {"10", "veil-cas audit", url, NULL};
	struct pg_store q = {.conn = PQconnectdbParams(keys, vals, 1)};
	int rc = VEIL_EIO;
	if (!q.conn || PQstatus(q.conn) != CONNECTION_OK) {
		veil_diag(d, "PostgreSQL (--store): cannot connect: %s",
			  q.conn ? PQerrorMessage(q.conn) : "out of memory");
		goto out;
	}
	PQsetNoticeReceiver(q.conn, take_notice, &q);
	/* one snapshot: the chain as it was at one instant */
	long long present = 0;
	if (pg_run(&q, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL) ||
	    pg_number(&q, "SELECT (to_regclass('veil_audit') IS NOT NULL)::int", 0, NULL,
		      &present)) {
		pg_fail(&q, d, "cannot read the audit chain");
		goto out;
	}
	q.in_tx = true;
	char after[24] = "0";
	rc = 0;
	for (int n = present ? 1 : 0; !rc && n > 0;) {
		PGresult *r;
		const char *v[] = {after};
		if (pg_exec(&q,
			    "SELECT seq, line, replica FROM veil_audit WHERE seq > $1 ORDER BY seq "
			    "LIMIT " AUDIT_WALK_BATCH,
			    1, v, NULL, NULL, 0, &r)) {
			rc = pg_fail(&q, d, "cannot read the audit chain");
			break;
		}
		n = PQntuples(r);
		for (int i = 0; !rc && i < n; i++)
			rc = fn(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1),
				PQgetvalue(r, i, 2), arg);
		if (n)
			snprintf(after, sizeof(after), "%s", PQgetvalue(r, n - 1, 0));
		PQclear(r);
	}
out:
	PQfinish(q.conn);
	return rc;
}
