/* veil: the command line. One file per subcommand, dispatched by name. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *help;
} commands[] = {
    {"check", check_main, "validate service manifests and Meshfiles"},
    {"apply", apply_main,
     "measure a service (service.yaml) or derive a mesh's policy and "
     "Helm chart (Meshfile)"},
    {"policy", policy_main, "create, get, update, delete and list policies on a CAS"},
    {"cas", cas_main, "attest a CAS and pin its key (cas attest URL)"},
    {"audit", audit_main, "verify a CAS audit log offline (audit verify FILE)"},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: veil COMMAND [OPTIONS]\n\n"
		   "veil turns a service manifest and a Meshfile into a measurement record, a\n"
		   "security policy for the CAS and a Helm chart.\n\nCommands:\n");
	for (size_t i = 0; i < VEIL_ARRAY_LEN(commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun 'veil COMMAND --help' for a command's options.\n");
}

int cli_report(struct veil_diags *d, int rc)
{
	veil_diags_print(d, stderr);
	if (rc && d->count == 0)
		fprintf(stderr, "error: %s\n",
			rc == VEIL_ENOMEM ? "out of memory" : "operation failed");
	veil_diags_free(d);
	return rc ? EXIT_REJECTED : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("veil %s\n", VEIL_VERSION);
		return 0;
	}
	for (size_t i = 0; i < VEIL_ARRAY_LEN(commands); i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].main(argc - 1, argv + 1);
	fprintf(stderr, "veil: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
