/* veil-cas audit export|verify: the change chain a PostgreSQL store keeps
 * (table veil_audit, one chain for every replica; store.h), read without a
 * running CAS. export writes it as audit.log lines, which `veil audit verify
 * FILE` checks; verify checks it in place, and with --data the signatures
 * of its checkpoints against the CAS certificate in DIR/tls/cert.pem. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "cas.h"
#include "veil/args.h"
#include "veil/audit.h"
#include "veil/tls.h"

static void audit_usage(FILE *f)
{
	fprintf(f, "Usage: veil-cas audit export --store URL [-o FILE]\n"
		   "       veil-cas audit verify --store URL [--data DIR]\n\n"
		   "On PostgreSQL (--store) every replica writes the audit entries of changes\n"
		   "(create, update, delete) and their signed checkpoints to one chain in the\n"
		   "database (table veil_audit), each in the change's own transaction; each\n"
		   "replica's DIR/audit.log holds its requests (reads, attestations, refusals).\n\n"
		   "Commands:\n"
		   "  export  the chain as audit.log lines, to FILE or stdout; 'veil audit\n"
		   "          verify FILE' checks them\n"
		   "  verify  check the chain in the database: every entry parses, counts up\n"
		   "          and chains to the one before; with --data, every checkpoint is\n"
		   "          signed by the CAS key (DIR/tls/cert.pem) over the entry before it\n\n"
		   "  --store URL   the PostgreSQL database (a libpq URI, as veil-cas --store)\n"
		   "  --data DIR    verify: a replica's data folder, for the CAS certificate\n"
		   "  -o, --output FILE  export: write to FILE (default stdout)\n"
		   "  -h, --help    this help\n");
}

/* ---- export ---- */

static int write_line(const char *line, size_t len, const char *replica, void *arg)
{
	(void)replica;
	FILE *f = arg;
	return fwrite(line, 1, len, f) == len && fputc('\n', f) != EOF ? 0 : VEIL_EIO;
}

static int audit_export(const char *url, const char *out, struct veil_diags *d)
{
	FILE *f = stdout;
	if (out) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || !(f = fdopen(fd, "w"))) {
			veil_diag(d, "-o %s: %s", out, strerror(errno));
			if (fd >= 0)
				close(fd);
			return VEIL_EIO;
		}
	}
	int rc = veil_store_pg_audit_walk(url, write_line, f, d);
	if (fflush(f) || (out && fsync(fileno(f)))) {
		if (!rc)
			veil_diag(d, "%s: %s", out ? out : "stdout", strerror(errno));
		rc = rc ? rc : VEIL_EIO;
	} else if (rc == VEIL_EIO && !d->count) {
		veil_diag(d, "%s: %s", out ? out : "stdout", strerror(errno));
	}
	if (out)
		fclose(f);
	return rc;
}

/* ---- verify ---- */

struct check {
	EVP_PKEY *key; /* NULL: signatures are not checked */
	char key_hash[VEIL_KEY_HASH_HEX];
	uint64_t entries, checkpoints, last_checkpoint;
	char prev[VEIL_AUDIT_HASH_HEX];
	/* the last chain-anchor of DIR/audit.log: seq 0 none; seen: the
	 * chain's entry of that seq, and whether its hash is the anchored one */
	uint64_t anchor_seq;
	char anchor_hash[VEIL_AUDIT_HASH_HEX];
	bool anchor_seen, anchor_matches;
	struct veil_diags *d;
};

/* A checkpoint signs the entry before it (e) with the CAS key. */
static int check_checkpoint(struct check *c, const struct veil_audit_checkpoint *cp,
			    const struct veil_audit_entry *e, const char *replica)
{
	if (cp->head.seq != e->seq - 1 || strcmp(cp->head.hash, e->prev)) {
		veil_diag(c->d,
			  "entry %" PRIu64 " (replica %s): the checkpoint signs entry %" PRIu64
			  ", not the entry before it",
			  e->seq, replica, cp->head.seq);
		return VEIL_EINVAL;
	}
	if (strcmp(cp->key_hash, c->key_hash) ||
	    veil_audit_head_verify(c->key, &cp->head, cp->signature)) {
		veil_diag(c->d,
			  "entry %" PRIu64 " (replica %s): the checkpoint is not signed by this "
			  "CAS's key (%s)",
			  e->seq, replica, c->key_hash);
		return VEIL_EINVAL;
	}
	return 0;
}

static int check_line(const char *line, size_t len, const char *replica, void *arg)
{
	struct check *c = arg;
	struct veil_audit_entry e;
	const char *why = NULL;
	size_t col = 0;
	uint64_t want = c->entries + 1;
	if (len >= VEIL_AUDIT_LINE_MAX || strlen(line) != len ||
	    veil_audit_check_line(line, len, &e, &why, &col)) {
		veil_diag(c->d, "entry %" PRIu64 " (replica %s): %s%s", want, replica,
			  why ? why : "longer than an audit line may be",
			  col ? " (not an audit entry)" : "");
		return VEIL_EINVAL;
	}
	switch (veil_audit_link(&e, want, c->prev)) {
	case VEIL_AUDIT_LINKED:
		break;
	case VEIL_AUDIT_SEQ_SKIPPED:
		veil_diag(c->d,
			  "entry %" PRIu64 ": seq %" PRIu64 ": entries before it were removed",
			  want, e.seq);
		return VEIL_EINVAL;
	case VEIL_AUDIT_SEQ_REPEATED:
		veil_diag(c->d, "entry %" PRIu64 ": seq %" PRIu64 ": reordered or repeated", want,
			  e.seq);
		return VEIL_EINVAL;
	case VEIL_AUDIT_PREV_CHANGED:
		veil_diag(c->d,
			  "entry %" PRIu64 " (replica %s): prev is not the hash of entry %" PRIu64
			  ": that entry was changed, removed or replaced",
			  want, replica, want - 1);
		return VEIL_EINVAL;
	}
	struct veil_audit_checkpoint cp;
	int k = veil_audit_parse_checkpoint(line, len, &cp);
	if (k == VEIL_EINVAL) {
		veil_diag(c->d,
			  "entry %" PRIu64 " (replica %s): a checkpoint without its signed head",
			  e.seq, replica);
		return VEIL_EINVAL;
	}
	if (!k) {
		if (c->key && check_checkpoint(c, &cp, &e, replica))
			return VEIL_EINVAL;
		c->checkpoints++;
		c->last_checkpoint = e.seq;
	}
	if (c->anchor_seq && e.seq == c->anchor_seq) {
		c->anchor_seen = true;
		/* not secret: public hashes */
		c->anchor_matches = !memcmp(e.hash, c->anchor_hash, sizeof(e.hash));
	}
	c->entries = e.seq;
	memcpy(c->prev, e.hash, sizeof(c->prev));
	return 0;
}

/* The last "chain-anchor" entry of DIR/audit.log (commit.c: the database
 * chain's head as this replica last saw it), whose line verifies. None: 0. */
static int load_anchor(const char *dir, struct check *c, struct veil_diags *d)
{
	char *path = veil_path_join(dir, "audit.log");
	FILE *f = path ? fopen(path, "re") : NULL;
	if (!f && path && errno == ENOENT) {
		free(path); /* a folder with the CAS's certificate only: no anchor */
		return 0;
	}
	if (!f) {
		veil_diag(d, "%s: cannot open the replica's audit log", path ? path : dir);
		free(path);
		return VEIL_EIO;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = 0;
		if (!strstr(line, "\"event\":\"chain-anchor\""))
			continue;
		struct veil_audit_entry e;
		const char *why;
		size_t col;
		static const char key[] = "\"detail\":\"seq ";
		const char *at = strstr(line, key);
		char *end = NULL;
		if (veil_audit_check_line(line, (size_t)n, &e, &why, &col) || !at)
			continue; /* veil audit verify DIR/audit.log says what is wrong */
		at += sizeof(key) - 1;
		errno = 0;
		unsigned long long seq = strtoull(at, &end, 10);
		const size_t hex = VEIL_AUDIT_HASH_HEX - 1;
		if (errno || end == at || !seq || strncmp(end, " hash ", 6) ||
		    strspn(end + 6, "0123456789abcdef") != hex || end[6 + hex] != '"')
			continue;
		c->anchor_seq = seq;
		memcpy(c->anchor_hash, end + 6, hex);
		c->anchor_hash[hex] = 0;
	}
	free(line);
	fclose(f);
	free(path);
	return 0;
}

static int load_cas_key(const char *dir, struct check *c, struct veil_diags *d)
{
	char *path = veil_path_join(dir, "tls/cert.pem");
	FILE *f = path ? fopen(path, "re") : NULL;
	X509 *cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	int rc = VEIL_EIO;
	if (cert && !veil_cert_key_hash(cert, c->key_hash) && (c->key = X509_get_pubkey(cert)))
		rc = 0;
	else
		veil_diag(d, "%s: cannot read the CAS certificate", path ? path : dir);
	if (f)
		fclose(f);
	X509_free(cert);
	free(path);
	return rc;
}

static int audit_verify(const char *url, const char *dir, struct veil_diags *d)
{
	struct check c = {.d = d};
	memcpy(c.prev, veil_audit_zero_hash, sizeof(c.prev));
	int rc = dir ? load_cas_key(dir, &c, d) : 0;
	if (!rc && dir)
		rc = load_anchor(dir, &c, d);
	if (!rc)
		rc = veil_store_pg_audit_walk(url, check_line, &c, d);
	if (!rc && c.anchor_seq && !c.anchor_seen) {
		veil_diag(d,
			  "the chain ends at entry %" PRIu64 ", before entry %" PRIu64
			  " that %s/audit.log anchors: entries were removed from its end",
			  c.entries, c.anchor_seq, dir);
		rc = VEIL_EINVAL;
	} else if (!rc && c.anchor_seq && !c.anchor_matches) {
		veil_diag(d, "entry %" PRIu64 " is not the one %s/audit.log anchors (hash %s)",
			  c.anchor_seq, dir, c.anchor_hash);
		rc = VEIL_EINVAL;
	}
	if (rc) {
		if (rc == VEIL_EINVAL)
			veil_diag(d, "the database's audit chain is not intact");
	} else {
		printf("the database's audit chain: %" PRIu64 " entries, chain intact; head: entry "
		       "%" PRIu64 ", hash %s\n",
		       c.entries, c.entries, c.prev);
		if (dir)
			printf("%" PRIu64
			       " checkpoints signed by the CAS key %s (the last at entry "
			       "%" PRIu64 "; %" PRIu64 " entries after it); %s\n",
			       c.checkpoints, c.key_hash, c.last_checkpoint,
			       c.entries - c.last_checkpoint,
			       c.anchor_seq ? "the head the replica's audit.log anchors is in it"
					    : "no head anchored in the replica's audit.log yet");
		else
			printf("%" PRIu64 " checkpoints (their signatures are checked with --data "
			       "DIR)\n",
			       c.checkpoints);
	}
	EVP_PKEY_free(c.key);
	return rc;
}

int cas_audit_main(int argc, char **argv)
{
	static const char prog[] = "veil-cas audit";
	static const struct option opts[] = {{"store", required_argument, NULL, 's'},
					     {"data", required_argument, NULL, 'd'},
					     {"output", required_argument, NULL, 'o'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	const char *url = NULL, *dir = NULL, *out = NULL;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
		if (c == 's') {
			url = optarg;
		} else if (c == 'd') {
			dir = optarg;
		} else if (c == 'o') {
			out = optarg;
		} else if (c == 'h') {
			audit_usage(stdout);
			return 0;
		} else {
			return veil_getopt_error(prog, c, argc, argv, optind);
		}
	}
	if (argc - optind != 1)
		return veil_usage_error(prog, "give one command: export or verify");
	const char *cmd = argv[optind];
	bool export = !strcmp(cmd, "export");
	if (!export && strcmp(cmd, "verify"))
		return veil_usage_error(prog, "unknown command '%s' (export or verify)", cmd);
	if (!url || !veil_store_url_is_pg(url))
		return veil_usage_error(prog, "--store postgresql://... is required: the chain is "
					      "in the database (on SQLite it is DIR/audit.log: "
					      "'veil audit verify --data DIR DIR/audit.log')");
	if (export && dir)
		return veil_usage_error(prog, "--data applies to verify");
	if (!export && out)
		return veil_usage_error(prog, "-o applies to export");
	struct veil_diags d;
	veil_diags_init(&d);
	int rc = export ? audit_export(url, out, &d) : audit_verify(url, dir, &d);
	veil_diags_print(&d, stderr);
	veil_diags_free(&d);
	return rc ? 1 : 0;
}
