/* veil audit verify FILE: offline check of a CAS audit log. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "veil/audit.h"

int audit_main(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("Usage: veil audit verify FILE\n\n"
		       "Checks a veil-cas audit log (DATA/audit.log) offline: every entry must\n"
		       "parse, count up, chain to its predecessor's hash and match its own hash.\n"
		       "A changed, removed or reordered entry is reported with its line.\n");
		return 0;
	}
	if (argc != 3 || strcmp(argv[1], "verify")) {
		fprintf(stderr, "Usage: veil audit verify FILE\n");
		return EXIT_USAGE;
	}
	struct veil_diags d;
	veil_diags_init(&d);
	size_t entries = 0, bad = 0;
	int rc = veil_audit_verify_file(argv[2], &entries, &bad, &d);
	if (!rc)
		printf("%s: %zu entries, chain intact\n", argv[2], entries);
	return cli_report(&d, rc);
}
