/* veil-cas rotate-master-key: a new PKCS#11 master key re-wraps every data
 * key of a stopped CAS (offline: the audit log's lock refuses a running
 * one), then the old key is destroyed in the token.
 *
 * Order, so that a crash anywhere loses nothing and a rerun finishes:
 *   1. the new key is recorded as pending in master.key, then made in the
 *      token (vault.c: veil_vault_rotate_begin); a start meanwhile loads
 *      both keys;
 *   2. every row's wrapped_key (that column only: the policy hash and the
 *      payload stay) is re-wrapped under it, in one SQLite transaction; a
 *      rerun skips rows already under it;
 *   3. the code-key root is re-wrapped, the new key made current and the
 *      old one marked retired, in one atomic write of master.key; only then
 *      is the old key destroyed in the token (a rerun destroys a key left
 *      marked);
 *   4. an audit entry "rotate-master-key" says which versions and how many
 *      data keys.
 * The store is cas.db (SQLite); the PostgreSQL store is not covered. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cas.h"
#include "veil/args.h"
#include "veil/audit_log.h"
#include "veil/store.h"

static void rotate_usage(FILE *f)
{
	fprintf(f, "Usage: veil-cas rotate-master-key --data DIR [--pin-file FILE]\n\n"
		   "Makes a new master key in the PKCS#11 token of the CAS in DIR, re-wraps\n"
		   "every namespace's data key under it, then destroys the old key. veil-cas\n"
		   "must be stopped. A rerun after a crash finishes the rotation.\n\n"
		   "  --data DIR       the CAS's data folder\n"
		   "  --pin-file FILE  the token's PIN (else $VEIL_PKCS11_PIN)\n"
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

int cas_rotate_main(int argc, char **argv)
{
	enum { OPT_DATA = 256, OPT_PIN_FILE };
	static const struct option opts[] = {{"data", required_argument, NULL, OPT_DATA},
					     {"pin-file", required_argument, NULL, OPT_PIN_FILE},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	const char *prog = "veil-cas rotate-master-key", *data = NULL, *pin_file = NULL;
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
	int rc = keyfile && auditlog ? cas_check_data_dir(data, false, true, &d) : VEIL_ENOMEM;
	/* the audit log's lock: a running veil-cas holds it */
	if (!rc && (rc = veil_audit_open(auditlog, &audit, &d)))
		veil_diag(&d, "stop veil-cas before rotating its master key");
	if (!rc)
		rc = veil_vault_open_any(keyfile, pin_file, &v, &d);
	if (!rc)
		rc = veil_vault_rotate_begin(v, &from, &to, &d);
	bool finishing = !rc && from == to; /* an earlier rotation's old key destroyed */
	if (!rc && !finishing)
		rc = rewrap_store(data, v, &count, &d);
#ifdef VEIL_TEST_HOOKS
	/* only for testing: a crash between the re-wrap and the switch */
	if (!rc && getenv("VEIL_TEST_ROTATE_STOP") &&
	    !strcmp(getenv("VEIL_TEST_ROTATE_STOP"), "after-rewrap"))
		_exit(9);
#endif
	if (!rc && !finishing)
		rc = veil_vault_rotate_finish(v, &d);
	if (!rc) {
		char detail[160];
		if (finishing)
			snprintf(detail, sizeof(detail),
				 "%s master key version %" PRIu32
				 ": the rotation to it is finished (its old key destroyed)",
				 veil_vault_provider(v), to);
		else
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
