/* veil check FILE... */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "veil/manifest.h"

static void check_usage(FILE *f)
{
	fprintf(f, "Usage: veil check FILE...\n\n"
		   "Validates service manifests (kind: genservice) and Meshfiles (kind: mesh):\n"
		   "unknown or misspelt keys, wrong types, duplicate names, invalid variable and\n"
		   "secret names, and secret placeholders naming undeclared secrets. Prints every\n"
		   "error as file:line:column and exits 1 if any file is rejected.\n"
		   "Policy files are checked once veil-cas lands.\n");
}

int check_main(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			check_usage(stdout);
			return 0;
		}
		check_usage(stderr);
		return EXIT_USAGE;
	}
	if (optind >= argc) {
		check_usage(stderr);
		return EXIT_USAGE;
	}
	int failed = 0;
	for (int i = optind; i < argc; i++) {
		struct veil_diags d;
		veil_diags_init(&d);
		struct ydoc doc;
		int rc = ydoc_init(&doc, argv[i]);
		if (!rc)
			rc = ydoc_load(&doc, argv[i], NULL, &d);
		const char *what = NULL;
		if (!rc) {
			switch (veil_doc_kind(&doc, &d)) {
			case VEIL_DOC_SERVICE: {
				struct veil_service_manifest m;
				rc = veil_service_parse(&doc, &m, &d);
				what = "service manifest";
				break;
			}
			case VEIL_DOC_MESH: {
				struct veil_mesh m;
				rc = veil_mesh_parse(&doc, &m, &d);
				what = "Meshfile";
				break;
			}
			default:
				rc = VEIL_EINVAL;
			}
		}
		if (!rc)
			printf("%s: ok (%s)\n", argv[i], what);
		else
			failed = 1;
		cli_report(&d, rc);
		ydoc_free(&doc);
	}
	return failed ? EXIT_REJECTED : 0;
}
