/* veil audit verify FILE: offline check of a CAS audit log. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "veil/audit.h"

static void verify_usage(FILE *f)
{
	fprintf(f, "Usage: veil audit verify [-o json|yaml] FILE\n\n"
		   "Checks a veil-cas audit log (DATA/audit.log) offline: every entry must\n"
		   "parse, count up, chain to its predecessor's hash and match its own hash.\n"
		   "A changed, removed or reordered entry is reported with its line.\n\n"
		   "  -o, --output FORMAT   json or yaml: file, entries, intact and errors on\n"
		   "                        stdout (exit 1 when the chain is broken)\n"
		   "  -h, --help            this help\n");
}

static const struct cli_cmd audit_verify_cmd;

static int verify_main(int argc, char **argv)
{
	enum cli_format fmt = CLI_FMT_TEXT;
	int c;
	while ((c = getopt_long(argc, argv, audit_verify_cmd.shortopts, audit_verify_cmd.opts,
				NULL)) != -1) {
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
	int rc = veil_audit_verify_file(file, &entries, &bad, &d);
	if (fmt != CLI_FMT_TEXT) {
		int prc = cli_print_result(json_pack("{s:s, s:I, s:b, s:o*}", "file", file,
						     "entries", (json_int_t)entries, "intact",
						     rc == 0, "errors", cli_diags_json(&d)),
					   fmt);
		if (!rc)
			rc = prc;
	} else if (!rc) {
		printf("%s: %zu entries, chain intact\n", file, entries);
	}
	return cli_report(&d, rc);
}

static const struct cli_cmd audit_verify_cmd = {
    .name = "verify",
    .path = "veil audit verify",
    .summary = "check a CAS audit log offline (hash chain, order, entries)",
    .run = verify_main,
    .usage = verify_usage,
    .opts = (const struct option[]){{"output", required_argument, NULL, 'o'}, CLI_STD_OPTS, {0}},
    .shortopts = ":o:h",
    .file_args = 1,
};

const struct cli_cmd audit_cmd = {
    .name = "audit",
    .path = "veil audit",
    .summary = "verify a CAS audit log offline (audit verify FILE)",
    .subs = (const struct cli_cmd *const[]){&audit_verify_cmd, NULL},
};
