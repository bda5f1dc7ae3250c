/* veil audit verify FILE: offline check of a CAS audit log. */
#include <stdio.h>
#include <string.h>

#include <openssl/pem.h>
#include <sqlite3.h>

#include "cli.h"
#include "veil/audit.h"

/* The audit head DIR's store committed last (read-only), its signature
 * checked with DIR's CAS certificate, found unchanged in the log at file. */
static int check_store_head(const char *dir, const char *file, struct veil_audit_head *h,
			    struct veil_diags *d)
{
	char *db_path = veil_path_join(dir, "cas.db"),
	     *cert_path = veil_path_join(dir, "tls/cert.pem");
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	FILE *f = NULL;
	X509 *cert = NULL;
	char sig[512] = "";
	int rc = VEIL_EIO;
	if (!db_path || !cert_path) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT seq, size, hash, signature FROM audit_head WHERE id=1",
			       -1, &st, NULL) != SQLITE_OK) {
		veil_diag(d, "%s: no audit head: %s", db_path, db ? sqlite3_errmsg(db) : "?");
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_ROW || !sqlite3_column_text(st, 2) ||
	    strlen((const char *)sqlite3_column_text(st, 2)) != 64) {
		veil_diag(d, "%s: the store holds no audit head yet", db_path);
		goto out;
	}
	h->seq = (uint64_t)sqlite3_column_int64(st, 0);
	h->size = (uint64_t)sqlite3_column_int64(st, 1);
	memcpy(h->hash, sqlite3_column_text(st, 2), 65);
	snprintf(sig, sizeof(sig), "%s", (const char *)sqlite3_column_text(st, 3));
	if (!(f = fopen(cert_path, "re")) || !(cert = PEM_read_X509(f, NULL, NULL, NULL))) {
		veil_diag(d, "%s: cannot read the CAS certificate", cert_path);
		goto out;
	}
	if (veil_audit_head_verify(X509_get0_pubkey(cert), h, sig)) {
		veil_diag(d, "%s: the audit head is not signed by the CAS key of %s", db_path,
			  cert_path);
		rc = VEIL_EINVAL;
		goto out;
	}
	rc = veil_audit_check_head_file(file, h, d);
out:
	if (f)
		fclose(f);
	X509_free(cert);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(db_path);
	free(cert_path);
	return rc;
}

static void verify_usage(FILE *f)
{
	fprintf(f, "Usage: veil audit verify [--data DIR] [-o json|yaml] FILE\n\n"
		   "Checks a veil-cas audit log (DATA/audit.log) offline: every entry must\n"
		   "parse, count up, chain to its predecessor's hash and match its own hash.\n"
		   "A changed, removed or reordered entry is reported with its line.\n"
		   "The log alone cannot show that its end was cut, or that it was rewritten\n"
		   "and chained again: --data compares it with the head the CAS committed.\n\n"
		   "  --data DIR            the CAS's data folder: the log must hold the audit\n"
		   "                        head kept in DIR/cas.db, signed by the CAS's key\n"
		   "                        (DIR/tls/cert.pem); else \"truncated or rewritten\"\n"
		   "  -o, --output FORMAT   json or yaml: file, entries, intact and errors on\n"
		   "                        stdout (exit 1 when the chain is broken)\n"
		   "  -h, --help            this help\n");
}

static const struct cli_cmd audit_verify_cmd;

static int verify_main(int argc, char **argv)
{
	enum cli_format fmt = CLI_FMT_TEXT;
	const char *dir = NULL;
	int c;
	while ((c = getopt_long(argc, argv, audit_verify_cmd.shortopts, audit_verify_cmd.opts,
				NULL)) != -1) {
		if (c == 'd') {
			dir = optarg;
			continue;
		}
		if (c == 'o') {
			if (cli_parse_format(&audit_verify_cmd, optarg, &fmt))
				return EXIT_USAGE;
			continue;
		}
		return cli_option_default(&audit_verify_cmd, c, argv);
	}
	if (argc - optind != 1)
		return cli_usage_error(&audit_verify_cmd, "give exactly one FILE");
	const char *file = argv[optind];
	struct veil_diags d;
	veil_diags_init(&d);
	size_t entries = 0, bad = 0;
	struct veil_audit_head h = {0};
	int rc = veil_audit_verify_file(file, &entries, &bad, &d);
	if (!rc)
		rc = dir ? check_store_head(dir, file, &h, &d) : veil_audit_tail_head(file, &h, &d);
	if (fmt != CLI_FMT_TEXT) {
		int prc = cli_print_result(
		    json_pack(
			"{s:s, s:I, s:b, s:o*, s:b, s:o*}", "file", file, "entries",
			(json_int_t)entries, "intact", rc == 0, "head",
			!rc ? json_pack("{s:I, s:s}", "seq", (json_int_t)h.seq, "hash", h.hash)
			    : NULL,
			"head_checked", dir != NULL, "errors", cli_diags_json(&d)),
		    fmt);
		if (!rc)
			rc = prc;
	} else if (!rc && dir) {
		printf("%s: %zu entries, chain intact; holds the signed head of %s (entry %llu, "
		       "hash %s)\n",
		       file, entries, dir, (unsigned long long)h.seq, h.hash);
	} else if (!rc) {
		printf("%s: %zu entries, chain intact; head: entry %llu, hash %s (whether entries "
		       "were cut from the end shows only with --data DIR)\n",
		       file, entries, (unsigned long long)h.seq, h.hash);
	}
	return cli_report(&d, rc);
}

static const struct cli_cmd audit_verify_cmd = {
    .name = "verify",
    .path = "veil audit verify",
    .summary = "check a CAS audit log offline (hash chain, order, entries)",
    .run = verify_main,
    .usage = verify_usage,
    .opts = (const struct option[]){{"output", required_argument, NULL, 'o'},
				    {"data", required_argument, NULL, 'd'},
				    CLI_STD_OPTS,
				    {0}},
    .shortopts = ":o:h",
    .file_flags = "data",
    .file_args = 1,
};

const struct cli_cmd audit_cmd = {
    .name = "audit",
    .path = "veil audit",
    .summary = "verify a CAS audit log offline (audit verify FILE)",
    .subs = (const struct cli_cmd *const[]){&audit_verify_cmd, NULL},
};
