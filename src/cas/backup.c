/* veil-cas backup / restore: a consistent copy of a running CAS and its way
 * back into a new data folder.
 *
 * A backup is a folder, mode 0700:
 *   BACKUP          "veil-cas backup 1\n" then "version V\n", "time T\n",
 *                   "policies N\n", "audit_entries M\n", "audit_head HEX\n"
 *   cas.db          the store, one SQLite snapshot (online backup API: the
 *                   running CAS keeps reading and writing), in rollback
 *                   journal mode: one file, no -wal or -shm
 * Every file is mode 0600, whatever the umask.
 *   audit.log       the audit log cut exactly where it describes the snapshot
 *   master.key      the master key: THE BACKUP CAN DECRYPT EVERY POLICY (a
 *                   PKCS#11 CAS: the provider record only, the key stays in
 *                   the token; both commands then need its PIN)
 *   tls/            the CAS's TLS identity (clients pin its key hash)
 *   sim-platform/   the simulated platform key of its own evidence
 *
 * Consistency with the audit log: a change is committed to the store, then
 * its audit entry is made durable, then it is acknowledged. After taking the
 * snapshot, the backup replays the log's changes (create/update: namespace ->
 * the hash in detail; delete: gone) and keeps the longest prefix whose state
 * is exactly the snapshot's set of (namespace, hash): every change in the
 * copied store has its entry in the copied log, and the copied log holds no
 * change the store lacks. An entry still being written is waited for (up to
 * BACKUP_WAIT_MS in all); when the log never matches the snapshot (two
 * threads' commits logged in the other order) another snapshot is taken, up
 * to BACKUP_SNAPSHOTS times. The copied log is a prefix of a chained log, so it
 * verifies (veil audit verify) on its own. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <sqlite3.h>

#include "cas.h"
#include "veil/args.h"
#include "veil/secrets.h"

#define BACKUP_MAGIC "veil-cas backup 1\n"
#define BACKUP_WAIT_MS 5000 /* for the log to catch up, over all snapshots */
#define BACKUP_SNAPSHOTS 5
#define AUDIT_LOG_MAX ((size_t)1 << 30) /* bytes read into memory by a backup */
#define COPY_CHUNK 65536

/* ---- namespace -> (hash in the log replay, hash in the snapshot) ---- */

struct ns_entry {
	char *ns;
	char state[VEIL_KEY_HASH_HEX]; /* "" when absent */
	char snap[VEIL_KEY_HASH_HEX];
};

struct ns_map {
	struct ns_entry *e;
	size_t cap; /* a power of two */
	size_t count;
	size_t mismatches; /* entries whose state differs from snap */
};

static void ns_map_free(struct ns_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->e[i].ns);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

static size_t ns_hash(const char *s)
{
	size_t h = 1469598103934665603u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static struct ns_entry *ns_slot(struct ns_map *m, const char *ns)
{
	size_t i = ns_hash(ns) & (m->cap - 1);
	while (m->e[i].ns && strcmp(m->e[i].ns, ns))
		i = (i + 1) & (m->cap - 1);
	return &m->e[i];
}

static struct ns_entry *ns_get(struct ns_map *m, const char *ns)
{
	if ((m->count + 1) * 2 > m->cap) {
		struct ns_map bigger = {.cap = m->cap ? m->cap * 2 : 64};
		if (!(bigger.e = calloc(bigger.cap, sizeof(*bigger.e))))
			return NULL;
		for (size_t i = 0; i < m->cap; i++)
			if (m->e[i].ns)
				*ns_slot(&bigger, m->e[i].ns) = m->e[i];
		bigger.count = m->count;
		bigger.mismatches = m->mismatches;
		free(m->e);
		*m = bigger;
	}
	struct ns_entry *e = ns_slot(m, ns);
	if (!e->ns) {
		if (!(e->ns = strdup(ns)))
			return NULL;
		m->count++;
	}
	return e;
}

static void ns_set(struct ns_map *m, struct ns_entry *e, const char *state)
{
	bool before = strcmp(e->state, e->snap) != 0;
	snprintf(e->state, sizeof(e->state), "%s", state);
	bool after = strcmp(e->state, e->snap) != 0;
	m->mismatches = m->mismatches + after - before;
}

/* ---- files ---- */

static int copy_file(const char *from, const char *to, unsigned mode, bool optional,
		     struct veil_diags *d)
{
	unsigned char buf[COPY_CHUNK];
	int in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), out = -1, rc = VEIL_EIO;
	if (in < 0) {
		if (optional && errno == ENOENT)
			return 0;
		veil_diag(d, "%s: %s", from, strerror(errno));
		return VEIL_EIO;
	}
	if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) < 0) {
		veil_diag(d, "%s: %s", to, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			veil_diag(d, "%s: %s", from, strerror(errno));
			goto out;
		}
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(out, buf + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				veil_diag(d, "%s: %s", to, strerror(errno));
				goto out;
			}
			done += w;
		}
	}
	if (fsync(out)) {
		veil_diag(d, "%s: %s", to, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf)); /* it held the master key */
	close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/* from/name to to/name for each name; a missing optional file is skipped.
 * In a backup every file is 0600 (a certificate too: the folder is a secret
 * as a whole); a restored data folder gets the CAS's own modes. */
static int copy_parts(const char *from, const char *to, bool to_backup, struct veil_diags *d)
{
	static const struct {
		const char *name;
		unsigned mode;
		bool optional;
	} parts[] = {
	    {"master.key", 0600, false},           {"tls/key.pem", 0600, false},
	    {"tls/cert.pem", 0644, false},         {"sim-platform/key.pem", 0600, true},
	    {"sim-platform/cert.pem", 0644, true},
	};
	int rc = 0;
	for (size_t i = 0; !rc && i < VEIL_ARRAY_LEN(parts); i++) {
		char *src = veil_path_join(from, parts[i].name);
		char *dst = veil_path_join(to, parts[i].name);
		char *dir = dst ? veil_dirname(dst) : NULL;
		rc = src && dst && dir ? veil_mkdirs(dir, 0700, d) : VEIL_ENOMEM;
		if (!rc)
			rc = copy_file(src, dst, to_backup ? 0600 : parts[i].mode,
				       parts[i].optional, d);
		free(src);
		free(dst);
		free(dir);
	}
	return rc;
}

/* A folder that may receive a CAS or a backup: absent, or an empty folder
 * (rename(2) replaces an empty folder in one step, so it is left alone until
 * the copy is complete). */
static int fresh_folder(const char *path, struct veil_diags *d)
{
	DIR *dir = opendir(path);
	if (!dir) {
		if (errno == ENOENT)
			return 0;
		veil_diag(d, "%s exists and is not an empty folder: give a new one", path);
		return VEIL_EINVAL;
	}
	size_t entries = 0;
	for (struct dirent *e; (e = readdir(dir));)
		entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(dir);
	if (entries) {
		veil_diag(d, "%s exists and is not an empty folder: give a new one", path);
		return VEIL_EINVAL;
	}
	return 0;
}

/* The copy is made in DEST.partial and renamed into place when complete: a
 * folder named DEST is always a whole backup or CAS. */
static char *partial_name(const char *dest)
{
	size_t n = strlen(dest);
	while (n > 1 && dest[n - 1] == '/')
		n--;
	char *p = malloc(n + sizeof(".partial"));
	if (p) {
		memcpy(p, dest, n);
		memcpy(p + n, ".partial", sizeof(".partial"));
	}
	return p;
}

static int finish(const char *partial, const char *dest, struct veil_diags *d)
{
	char *parent = veil_dirname(dest);
	int rc = parent ? veil_sync_fs(partial, d) : VEIL_ENOMEM;
	if (rc)
		goto out;
	if (rename(partial, dest)) {
		veil_diag(d, "cannot rename %s to %s: %s", partial, dest, strerror(errno));
		rc = VEIL_EIO;
		goto out;
	}
	rc = veil_sync_fs(parent, d);
out:
	free(parent);
	return rc;
}

/* ---- backup ---- */

static int snapshot_store(const char *data, const char *to, struct veil_diags *d)
{
	char *from = veil_path_join(data, "cas.db");
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b = NULL;
	struct veil_vault *vault = NULL;
	struct veil_store_opener opener = {cas_policy_exports, NULL};
	int rc = VEIL_EIO, x = SQLITE_ERROR;
	if (!from)
		return VEIL_ENOMEM;
	/* SQLite creates its files with the umask's mode (0644 under 022): the
	 * copy and any journal beside it are the owner's only */
	mode_t old_umask = umask(077);
	if (sqlite3_open_v2(from, &src, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_open_v2(to, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
		SQLITE_OK) {
		veil_diag(d, "%s: %s", from, src ? sqlite3_errmsg(src) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(src, 10000);
	/* one step copies every page under one read transaction: a snapshot
	 * of one moment, while the CAS goes on writing to the WAL */
	for (int tries = 0; tries < 100; tries++) {
		if (!(b = sqlite3_backup_init(dst, "main", src, "main")))
			break;
		x = sqlite3_backup_step(b, -1);
		sqlite3_backup_finish(b);
		if (x != SQLITE_BUSY && x != SQLITE_LOCKED)
			break;
		usleep(50000);
	}
	if (x != SQLITE_DONE) {
		veil_diag(d, "%s: cannot copy the store: %s", from, sqlite3_errmsg(dst));
		goto out;
	}
	/* the pages copied say WAL, as the live store: the copy becomes one
	 * self-contained file, with no -wal or -shm beside it */
	if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
		veil_diag(d, "%s: cannot make the copy one file: %s", to, sqlite3_errmsg(dst));
		goto out;
	}
	/* refuses a newer schema; an older one's export index (4) is built
	 * with the master key, which the backup copies anyway */
	char *keyfile = veil_path_join(data, "master.key");
	rc = keyfile ? veil_vault_open_any(keyfile, NULL, &vault, d) : VEIL_ENOMEM;
	free(keyfile);
	opener.arg = vault;
	if (!rc)
		rc = veil_store_sqlite_migrate(dst, from, &opener, d);
out:
	veil_vault_close(vault);
	sqlite3_close(src);
	sqlite3_close(dst);
	umask(old_umask);
	free(from);
	return rc;
}

/* The snapshot's (namespace, hash) pairs into m (snap side). */
static int load_snapshot(const char *db_path, struct ns_map *m, long long *count,
			 struct veil_diags *d)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = VEIL_EIO, x;
	*count = 0;
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT namespace, hash FROM policies", -1, &st, NULL) !=
		SQLITE_OK) {
		veil_diag(d, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	while ((x = sqlite3_step(st)) == SQLITE_ROW) {
		const char *ns = (const char *)sqlite3_column_text(st, 0);
		const char *hash = (const char *)sqlite3_column_text(st, 1);
		struct ns_entry *e = ns && hash ? ns_get(m, ns) : NULL;
		if (!e || strlen(hash) >= sizeof(e->snap)) {
			veil_diag(d, "%s: cannot read a row", db_path);
			goto out;
		}
		snprintf(e->snap, sizeof(e->snap), "%s", hash);
		m->mismatches++; /* the replay starts from an empty state */
		(*count)++;
	}
	rc = x == SQLITE_DONE ? 0 : VEIL_EIO;
	if (rc)
		veil_diag(d, "%s: %s", db_path, sqlite3_errmsg(db));
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* Replays log[0..size) over m; *cut is the end of the longest prefix whose
 * state is the snapshot's (or SIZE_MAX when none is), *entries its line
 * count and head its last hash. */
static int replay_log(const char *log, size_t size, struct ns_map *m, size_t *cut, size_t *entries,
		      char head[static VEIL_KEY_HASH_HEX], struct veil_diags *d)
{
	size_t off = 0, line_no = 0;
	char last[VEIL_KEY_HASH_HEX] = "";
	*cut = m->mismatches == 0 ? 0 : SIZE_MAX;
	*entries = 0;
	snprintf(head, VEIL_KEY_HASH_HEX, "%s", "");
	for (size_t i = 0; i < m->cap; i++) /* from an empty state */
		if (m->e[i].ns && m->e[i].state[0])
			ns_set(m, &m->e[i], "");
	while (off < size) {
		const char *nl = memchr(log + off, '\n', size - off);
		if (!nl)
			break; /* a line being written: not yet part of the log */
		size_t len = (size_t)(nl - (log + off));
		line_no++;
		json_error_t err;
		json_t *j = json_loadb(log + off, len, 0, &err);
		const char *event = NULL, *hash = NULL;
		json_t *ns_j = NULL, *detail_j = NULL; /* a string or null */
		int status = 0;
		if (!j ||
		    json_unpack(j, "{s:s, s:o, s:i, s:o, s:s}", "event", &event, "namespace", &ns_j,
				"status", &status, "detail", &detail_j, "hash", &hash)) {
			veil_diag(d,
				  "audit.log:%zu: not an audit entry (veil audit verify says more)",
				  line_no);
			json_decref(j);
			return VEIL_EINVAL;
		}
		/* rollback: the store's state again after a change that never
		 * committed (audit_log.c), the hash or null */
		bool rollback = !strcmp(event, "rollback") && status == 200;
		bool set = (!strcmp(event, "create") && status == 201) ||
			   (!strcmp(event, "update") && status == 200) ||
			   (rollback && json_is_string(detail_j));
		bool del = (!strcmp(event, "delete") && status == 200) ||
			   (rollback && !json_is_string(detail_j));
		const char *ns = json_string_value(ns_j), *detail = json_string_value(detail_j);
		if ((set || del) && ns) {
			struct ns_entry *e = ns_get(m, ns);
			if (!e) {
				json_decref(j);
				return VEIL_ENOMEM;
			}
			ns_set(m, e, set && detail ? detail : "");
		}
		snprintf(last, sizeof(last), "%s", hash);
		json_decref(j);
		off += len + 1;
		if (m->mismatches == 0) {
			*cut = off;
			*entries = line_no;
			snprintf(head, VEIL_KEY_HASH_HEX, "%s", last);
		}
	}
	return 0;
}

static int write_audit_prefix(const char *data, const char *partial, long long policies,
			      struct ns_map *m, struct veil_diags *d)
{
	char *from = veil_path_join(data, "audit.log"), *to = veil_path_join(partial, "audit.log");
	char *manifest = veil_path_join(partial, "BACKUP");
	char *log = NULL, head[VEIL_KEY_HASH_HEX];
	size_t size = 0, cut = SIZE_MAX, entries = 0, bad = 0;
	int rc = from && to && manifest ? 0 : VEIL_ENOMEM;
	for (int waited = 0; !rc; waited += 50) {
		free(log);
		log = NULL;
		if ((rc = veil_read_file(from, AUDIT_LOG_MAX, &log, &size, d)) ||
		    (rc = replay_log(log, size, m, &cut, &entries, head, d)))
			break;
		if (cut != SIZE_MAX)
			break;
		if (waited >= BACKUP_WAIT_MS / BACKUP_SNAPSHOTS) {
			rc = VEIL_ENOENT; /* the caller takes another snapshot */
			break;
		}
		usleep(50000); /* an acknowledged change's entry is on its way */
	}
	if (!rc)
		rc = veil_write_file(to, log, cut, 0600, d);
	if (!rc && (rc = veil_audit_verify_file(to, &entries, &bad, d)))
		veil_diag(d, "the copied audit log does not verify at line %zu", bad);
	if (!rc) {
		char text[512];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		int n =
		    snprintf(text, sizeof(text),
			     BACKUP_MAGIC "version %s\ntime %04d-%02d-%02dT%02d:%02d:%02dZ\n"
					  "policies %lld\naudit_entries %zu\naudit_head %s\n",
			     VEIL_VERSION, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			     tm.tm_min, tm.tm_sec, policies, entries, entries ? head : "-");
		rc = veil_write_file(manifest, text, (size_t)n, 0600, d);
	}
	free(log);
	free(from);
	free(to);
	free(manifest);
	return rc;
}

static void backup_usage(FILE *f)
{
	fprintf(f, "Usage: veil-cas backup --data DIR DEST\n\n"
		   "A consistent copy of the CAS in DIR, running or not, into the new folder\n"
		   "DEST: a snapshot of the store, the audit log up to exactly that snapshot,\n"
		   "and what a restore needs, the master key and the TLS identity included.\n"
		   "The backup can decrypt every policy and secret: keep it as safe as the\n"
		   "CAS itself. Bring it back with 'veil-cas restore DEST --data NEWDIR'.\n\n"
		   "  --data DIR  the CAS's data folder\n"
		   "  -h, --help  this help\n");
}

static void restore_usage(FILE *f)
{
	fprintf(f, "Usage: veil-cas restore SRC --data NEWDIR\n\n"
		   "Restores the backup SRC (made by 'veil-cas backup') into NEWDIR, which must\n"
		   "not exist or be empty. The backup is checked first: its audit log chain,\n"
		   "its store's integrity and schema, the policy and audit entry counts and\n"
		   "the last audit hash against BACKUP, that the log's changes give exactly\n"
		   "the store, and that its master key opens every stored policy. A backup\n"
		   "that fails a check is refused and nothing is left in NEWDIR.\n"
		   "Then start the CAS with 'veil-cas --data NEWDIR'.\n\n"
		   "  --data NEWDIR  the new data folder\n"
		   "  -h, --help     this help\n");
}

/* Shared flag parsing of both commands: --data and one positional. */
static int parse_sub(const char *prog, int argc, char **argv, void (*usage)(FILE *),
		     const char **data, const char **arg)
{
	static const struct option opts[] = {
	    {"data", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {0}};
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'd') {
			*data = optarg;
		} else if (c == 'h') {
			usage(stdout);
			return 0;
		} else {
			return veil_getopt_error(prog, c, argc, argv, optind);
		}
	}
	if (!*data)
		return veil_usage_error(prog, "--data DIR is required");
	if (optind >= argc)
		return veil_usage_error(prog, "%s", "missing the backup folder");
	if (optind + 1 < argc)
		return veil_usage_error(prog, "unexpected argument '%s'", argv[optind + 1]);
	*arg = argv[optind];
	return -1; /* go on */
}

int cas_backup_main(int argc, char **argv)
{
	const char *data = NULL, *dest = NULL;
	int r = parse_sub("veil-cas backup", argc, argv, backup_usage, &data, &dest);
	if (r >= 0)
		return r;
	struct veil_diags d;
	struct ns_map m = {0};
	long long policies = 0;
	bool made = false;
	veil_diags_init(&d);
	char *partial = partial_name(dest);
	char *db = partial ? veil_path_join(partial, "cas.db") : NULL;
	int rc = db ? cas_check_data_dir(data, false, true, &d) : VEIL_ENOMEM;
	if (!rc)
		rc = fresh_folder(dest, &d);
	if (!rc && mkdir(partial, 0700)) {
		veil_diag(&d, "%s: %s%s", partial, strerror(errno),
			  errno == EEXIST ? " (left by an interrupted backup: remove it)" : "");
		rc = VEIL_EIO;
	}
	made = !rc;
	/* Two changes committed in one order can reach the log in the other
	 * (threads): a snapshot between the two commits then matches no prefix
	 * of the log. Another snapshot a moment later does. */
	for (int attempt = 1; !rc; attempt++) {
		ns_map_free(&m);
		if ((rc = snapshot_store(data, db, &d)) ||
		    (rc = load_snapshot(db, &m, &policies, &d)))
			break;
		rc = write_audit_prefix(data, partial, policies, &m, &d);
		if (rc != VEIL_ENOENT)
			break;
		if (attempt == BACKUP_SNAPSHOTS) {
			veil_diag(
			    &d,
			    "%s/audit.log does not describe the store's state (a change "
			    "without its audit entry, e.g. after a crash between the two): no "
			    "consistent backup; check it with 'veil audit verify'",
			    data);
			rc = VEIL_EINVAL;
			break;
		}
		rc = 0;
	}
	if (!rc)
		rc = copy_parts(data, partial, true, &d);
	if (!rc)
		rc = finish(partial, dest, &d);
	if (!rc) {
		printf("backup of %lld policies in %s\n", policies, dest);
		fprintf(stderr,
			"warning: %s holds the CAS's master key and TLS key: anyone who "
			"reads it can decrypt every policy and secret\n",
			dest);
	} else {
		veil_diags_print(&d, stderr);
		if (partial && made)
			fprintf(stderr, "error: the incomplete copy is left in %s: remove it\n",
				partial);
	}
	ns_map_free(&m);
	free(db);
	free(partial);
	veil_diags_free(&d);
	return rc ? 1 : 0;
}

/* ---- restore ---- */

/* What BACKUP says of the backup's content. */
struct backup_manifest {
	long long policies;
	size_t audit_entries;
	char audit_head[VEIL_KEY_HASH_HEX]; /* "" when the log is empty ("-") */
};

/* The value of "\nKEY VALUE\n" in BACKUP's text (key holds the "\n" and the
 * space): 1 to cap - 1 bytes, none of them whitespace, then the '\n'. */
static bool manifest_field(const char *text, const char *key, char *out, size_t cap)
{
	const char *p = strstr(text, key);
	if (!p)
		return false;
	p += strlen(key);
	size_t n = strcspn(p, " \t\n\r\v\f");
	if (!n || n >= cap || p[n] != '\n')
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

/* a count field: decimal digits only, at most max */
static bool manifest_count(const char *text, const char *key, unsigned long long max,
			   unsigned long long *out)
{
	char v[24];
	char *e;
	if (!manifest_field(text, key, v, sizeof(v)) || v[0] < '0' || v[0] > '9')
		return false;
	errno = 0;
	unsigned long long n = strtoull(v, &e, 10);
	if (errno || *e || n > max)
		return false;
	*out = n;
	return true;
}

/* BACKUP's text (NUL-terminated) into *out; every field is required. */
static int parse_manifest(const char *src, const char *text, struct backup_manifest *out,
			  struct veil_diags *d)
{
	struct backup_manifest m = {0};
	char head[VEIL_KEY_HASH_HEX + 1] = "";
	unsigned long long policies = 0, entries = 0;
	if (!manifest_count(text, "\npolicies ", LLONG_MAX, &policies) ||
	    !manifest_count(text, "\naudit_entries ", SIZE_MAX, &entries) ||
	    !manifest_field(text, "\naudit_head ", head, sizeof(head))) {
		veil_diag(d,
			  "%s/BACKUP lacks 'policies N', 'audit_entries M' or 'audit_head HEX': "
			  "not a complete backup",
			  src);
		return VEIL_EINVAL;
	}
	m.policies = (long long)policies;
	m.audit_entries = (size_t)entries;
	if (strcmp(head, "-"))
		snprintf(m.audit_head, sizeof(m.audit_head), "%s", head);
	*out = m;
	return 0;
}

/* PRAGMA integrity_check: "ok", or the store is refused with its first
 * complaint. */
static int store_is_intact(const char *db_path, struct veil_diags *d)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = VEIL_EINVAL;
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL) != SQLITE_OK) {
		veil_diag(d, "%s: the store is damaged: %s", db_path,
			  db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	int x = sqlite3_step(st);
	const char *verdict = x == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	if (!verdict || strcmp(verdict, "ok")) {
		veil_diag(d, "%s: the store is damaged (integrity_check: %s)", db_path,
			  verdict ? verdict : sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* The restored store and log agree with each other and with BACKUP, as
 * backup made them: the store holds BACKUP's policy count, the log BACKUP's
 * entry count and head, and the log's changes replayed give exactly the
 * store's (namespace, hash) pairs (replay_log, as backup cuts the log). A log
 * cut at a line boundary still verifies on its own, and a deleted row leaves
 * a store that opens: these are what catch them. */
static int check_complete(const char *dir, const struct backup_manifest *want, struct veil_diags *d)
{
	char *db = veil_path_join(dir, "cas.db"), *log_path = veil_path_join(dir, "audit.log");
	char *log = NULL, head[VEIL_KEY_HASH_HEX];
	struct ns_map m = {0};
	long long policies = 0;
	size_t size = 0, cut = SIZE_MAX, entries = 0, bad = 0;
	int rc = db && log_path ? store_is_intact(db, d) : VEIL_ENOMEM;
	if (!rc && veil_audit_verify_file(log_path, &entries, &bad, d)) {
		veil_diag(d, "the backup's audit log does not verify (line %zu)", bad);
		rc = VEIL_EINVAL;
	}
	if (!rc && entries != want->audit_entries) {
		veil_diag(d,
			  "audit.log holds %zu entries; BACKUP says %zu: the backup is incomplete",
			  entries, want->audit_entries);
		rc = VEIL_EINVAL;
	}
	if (!rc && (rc = load_snapshot(db, &m, &policies, d)))
		veil_diag(d, "%s: the store is damaged", db);
	if (!rc && policies != want->policies) {
		veil_diag(d,
			  "cas.db holds %lld policies; BACKUP says %lld: the backup is incomplete",
			  policies, want->policies);
		rc = VEIL_EINVAL;
	}
	if (!rc)
		rc = veil_read_file(log_path, AUDIT_LOG_MAX, &log, &size, d);
	if (!rc)
		rc = replay_log(log, size, &m, &cut, &entries, head, d);
	if (!rc && (cut != size || entries != want->audit_entries)) {
		veil_diag(d, "cas.db and audit.log disagree (a change in one has no counterpart in "
			     "the other): the backup is incomplete or altered");
		rc = VEIL_EINVAL;
	}
	if (!rc && strcmp(head, want->audit_head)) {
		veil_diag(d, "audit.log ends at %s; BACKUP says %s: the backup is incomplete",
			  head[0] ? head : "-", want->audit_head[0] ? want->audit_head : "-");
		rc = VEIL_EINVAL;
	}
	ns_map_free(&m);
	free(log);
	free(db);
	free(log_path);
	return rc;
}

/* Every record of the store at dir opens with the master key at dir. */
static int check_records(const char *dir, long long *count, struct veil_diags *d)
{
	struct veil_store *store = NULL;
	struct veil_vault *vault = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *keyfile = veil_path_join(dir, "master.key"), *dbfile = veil_path_join(dir, "cas.db");
	int rc = keyfile && dbfile ? veil_vault_open_any(keyfile, NULL, &vault, d) : VEIL_ENOMEM;
	*count = 0;
	struct veil_store_opener opener = {cas_policy_exports, vault};
	if (!rc) /* schema check, migration */
		rc = veil_store_sqlite_open(dir, &opener, &store, d);
	if (!rc && (sqlite3_open_v2(dbfile, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
		    sqlite3_prepare_v2(db, "SELECT namespace FROM policies", -1, &st, NULL) !=
			SQLITE_OK)) {
		veil_diag(d, "%s: %s", dbfile, db ? sqlite3_errmsg(db) : "out of memory");
		rc = VEIL_EIO;
	}
	int x = SQLITE_DONE;
	while (!rc && (x = sqlite3_step(st)) == SQLITE_ROW) {
		struct veil_record r = {0};
		uint8_t *plain = NULL;
		size_t plain_size = 0;
		const char *ns = (const char *)sqlite3_column_text(st, 0);
		rc = ns ? store->ops->get(store, ns, &r) : VEIL_EIO;
		if (!rc && veil_vault_open(vault, ns, r.wrapped_key, r.wrapped_size, r.blob,
					   r.blob_size, &plain, &plain_size)) {
			veil_diag(d, "namespace %s does not open with the backup's master.key", ns);
			rc = VEIL_EINVAL;
		}
		if (plain)
			veil_secure_free(plain, plain_size);
		veil_record_free(&r);
		(*count)++;
	}
	/* SQLITE_CORRUPT or SQLITE_IOERR ends the rows as quietly as the last
	 * row does: only SQLITE_DONE means every record was checked */
	if (!rc && x != SQLITE_DONE) {
		veil_diag(d, "%s: the store is damaged: %s", dbfile, sqlite3_errmsg(db));
		rc = VEIL_EINVAL;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (store)
		store->ops->close(store);
	veil_vault_close(vault);
	free(keyfile);
	free(dbfile);
	return rc;
}

int cas_restore_main(int argc, char **argv)
{
	const char *data = NULL, *src = NULL;
	int r = parse_sub("veil-cas restore", argc, argv, restore_usage, &data, &src);
	if (r >= 0)
		return r;
	struct veil_diags d;
	veil_diags_init(&d);
	char *manifest = veil_path_join(src, "BACKUP"), *text = NULL;
	char *partial = partial_name(data);
	char *from_db = veil_path_join(src, "cas.db"), *from_log = veil_path_join(src, "audit.log");
	char *to_db = partial ? veil_path_join(partial, "cas.db") : NULL;
	char *to_log = partial ? veil_path_join(partial, "audit.log") : NULL;
	size_t size = 0;
	struct backup_manifest want = {0};
	long long policies = 0;
	bool made = false;
	int rc = manifest && from_db && from_log && to_db && to_log ? 0 : VEIL_ENOMEM;
	if (!rc && (veil_read_file(manifest, 4096, &text, &size, NULL) ||
		    strncmp(text, BACKUP_MAGIC, strlen(BACKUP_MAGIC)))) {
		veil_diag(&d, "%s is not a veil-cas backup (no %s with '%.*s')", src, "BACKUP",
			  (int)strlen(BACKUP_MAGIC) - 1, BACKUP_MAGIC);
		rc = VEIL_EINVAL;
	}
	if (!rc)
		rc = parse_manifest(src, text, &want, &d);
	if (!rc)
		rc = fresh_folder(data, &d);
	if (!rc && mkdir(partial, 0700)) {
		veil_diag(&d, "%s: %s", partial, strerror(errno));
		rc = VEIL_EIO;
	}
	made = !rc;
	if (!rc)
		rc = copy_file(from_db, to_db, 0600, false, &d);
	if (!rc)
		rc = copy_file(from_log, to_log, 0600, false, &d);
	if (!rc)
		rc = copy_parts(src, partial, false, &d);
	/* checked in the copy: what is checked is what is restored */
	if (!rc)
		rc = check_complete(partial, &want, &d);
	if (!rc)
		rc = check_records(partial, &policies, &d);
	if (!rc)
		rc = finish(partial, data, &d);
	if (!rc) {
		printf("restored %lld policies and %zu audit entries into %s; start it with "
		       "'veil-cas --data %s'\n",
		       policies, want.audit_entries, data, data);
	} else {
		veil_diags_print(&d, stderr);
		/* a refused backup leaves nothing that looks like a data folder */
		if (made && veil_remove_tree(partial))
			fprintf(stderr, "error: the incomplete copy is left in %s: remove it\n",
				partial);
	}
	free(text);
	free(manifest);
	free(partial);
	free(from_db);
	free(from_log);
	free(to_db);
	free(to_log);
	veil_diags_free(&d);
	return rc ? 1 : 0;
}
