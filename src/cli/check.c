/* veil check FILE... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "veil/manifest.h"

static void check_usage(FILE *f)
{
	fprintf(f, "Usage: veil check [-o json|yaml] FILE...\n\n"
		   "Validates service manifests (kind: genservice) and Meshfiles (kind: mesh):\n"
		   "unknown or misspelt keys, wrong types, duplicate names, invalid variable and\n"
		   "secret names, and secret placeholders naming undeclared secrets. Prints every\n"
		   "error as file:line:column and exits 1 if any file is rejected.\n"
		   "FILE may be a folder (its *.yaml, *.yml and Meshfile) or - (stdin).\n\n"
		   "  -o, --output FORMAT   json or yaml: per file its name, kind, ok and errors\n"
		   "                        on stdout (errors are also printed on stderr)\n"
		   "  -h, --help            this help\n");
}

/* Checks one input; *kind receives "service" or "mesh" when it is one. */
static int check_one(const struct cli_input *in, const char **kind, struct veil_diags *d)
{
	struct ydoc doc;
	int rc = ydoc_init(&doc, in->name);
	if (!rc)
		rc = in->is_stdin ? ydoc_parse(&doc, in->data, in->size, NULL, d)
				  : ydoc_load(&doc, in->name, NULL, d);
	if (!rc) {
		switch (veil_doc_kind(&doc, d)) {
		case VEIL_DOC_SERVICE: {
			struct veil_service_manifest m;
			*kind = "service";
			rc = veil_service_parse(&doc, &m, d);
			break;
		}
		case VEIL_DOC_MESH: {
			struct veil_mesh m;
			*kind = "mesh";
			rc = veil_mesh_parse(&doc, &m, d);
			break;
		}
		default:
			rc = VEIL_EINVAL;
		}
	}
	ydoc_free(&doc);
	return rc;
}

static int check_main(int argc, char **argv)
{
	enum cli_format fmt = CLI_FMT_TEXT;
	int c;
	while ((c = getopt_long(argc, argv, check_cmd.shortopts, check_cmd.opts, NULL)) != -1) {
		if (c == 'o') {
			if (cli_parse_format(&check_cmd, optarg, &fmt))
				return EXIT_USAGE;
			continue;
		}
		return cli_option_default(&check_cmd, c, argv);
	}
	if (optind >= argc)
		return cli_usage_error(&check_cmd, "give at least one FILE");
	struct veil_diags d;
	veil_diags_init(&d);
	struct cli_input *in = NULL;
	size_t count = 0;
	int rc = 0, failed = 0;
	for (int i = optind; i < argc && !rc; i++)
		rc = cli_inputs_add(&in, &count, argv[i], ylimits_default.max_doc_size, &d);
	json_t *files = json_array();
	if (rc || !files) {
		json_decref(files);
		cli_inputs_free(in, count);
		return cli_report(&d, rc ? rc : VEIL_ENOMEM);
	}
	for (size_t i = 0; i < count; i++) {
		struct veil_diags one;
		veil_diags_init(&one);
		const char *kind = NULL;
		int bad = check_one(&in[i], &kind, &one);
		if (bad)
			failed = 1;
		if (fmt == CLI_FMT_TEXT && !bad)
			printf("%s: ok (%s)\n", in[i].name,
			       !strcmp(kind, "service") ? "service manifest" : "Meshfile");
		if (fmt != CLI_FMT_TEXT &&
		    json_array_append_new(files, json_pack("{s:s, s:s?, s:b, s:o*}", "file",
							   in[i].name, "kind", kind, "ok", !bad,
							   "errors", cli_diags_json(&one))))
			rc = VEIL_ENOMEM;
		cli_report(&one, bad);
	}
	cli_inputs_free(in, count);
	if (fmt != CLI_FMT_TEXT && !rc)
		rc = cli_print_result(json_pack("{s:o}", "files", files), fmt);
	else
		json_decref(files);
	if (rc)
		return cli_report(&d, rc);
	veil_diags_free(&d);
	return failed ? EXIT_REJECTED : 0;
}

const struct cli_cmd check_cmd = {
    .name = "check",
    .path = "veil check",
    .summary = "validate service manifests and Meshfiles",
    .run = check_main,
    .usage = check_usage,
    .opts = (const struct option[]){{"output", required_argument, NULL, 'o'}, CLI_STD_OPTS, {0}},
    .shortopts = ":o:h",
    .file_args = 1,
};
