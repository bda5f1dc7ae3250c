/* veil: the command line. One file per subcommand, dispatched by the table in
 * cli_root; `veil whoami` lives here as it is a few lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cli.h"
#include "client.h"
#include "veil/tls.h"

static void whoami_usage(FILE *f)
{
	fprintf(f, "Usage: veil whoami [-o json|yaml]\n\n"
		   "Prints this client's identity: the SHA-256 of the public key (SPKI, DER) of\n"
		   "$VEIL_HOME/identity/cert.pem, as a CAS computes it for access_policy entries\n"
		   "and names it in a refusal. The identity is created on first use.\n\n"
		   "  -o, --output FORMAT   json or yaml: {\"identity\": HASH} on stdout\n"
		   "  -h, --help            this help\n");
}

static int whoami_main(int argc, char **argv)
{
	enum cli_format fmt = CLI_FMT_TEXT;
	int c;
	while ((c = getopt_long(argc, argv, whoami_cmd.shortopts, whoami_cmd.opts, NULL)) != -1) {
		if (c == 'o') {
			if (cli_parse_format(&whoami_cmd, optarg, &fmt))
				return EXIT_USAGE;
			continue;
		}
		return cli_option_default(&whoami_cmd, c, argv);
	}
	if (optind < argc)
		return cli_usage_error(&whoami_cmd, "unexpected argument '%s'", argv[optind]);
	struct veil_diags d;
	veil_diags_init(&d);
	char *home = cli_home_dir(), *idir = home ? veil_path_join(home, "identity") : NULL;
	char hash[VEIL_KEY_HASH_HEX];
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int rc = idir ? veil_identity_load_or_create(idir, "veil client", &k, &x, &d) : VEIL_ENOMEM;
	if (!rc)
		rc = veil_cert_key_hash(x, hash);
	if (!rc && fmt != CLI_FMT_TEXT)
		rc = cli_print_result(json_pack("{s:s}", "identity", hash), fmt);
	else if (!rc)
		printf("%s\n", hash);
	EVP_PKEY_free(k);
	X509_free(x);
	free(idir);
	free(home);
	return cli_report(&d, rc);
}

const struct cli_cmd whoami_cmd = {
    .name = "whoami",
    .path = "veil whoami",
    .summary = "print this client's identity (the key hash a CAS sees)",
    .run = whoami_main,
    .usage = whoami_usage,
    .opts = (const struct option[]){{"output", required_argument, NULL, 'o'}, CLI_STD_OPTS, {0}},
    .shortopts = ":o:h",
};

static void root_usage(FILE *f)
{
	fprintf(f,
		"veil turns a service manifest and a Meshfile into a measurement record, a\n"
		"security policy for the CAS and a Helm chart, and manages policies on a CAS.\n\n");
}

const struct cli_cmd cli_root = {
    .name = "veil",
    .path = "veil",
    .usage = root_usage,
    .subs = (const struct cli_cmd *const[]){&check_cmd, &apply_cmd, &image_cmd, &policy_cmd,
					    &cas_cmd, &evidence_cmd, &audit_cmd, &whoami_cmd,
					    &completion_cmd, NULL},
};

int main(int argc, char **argv)
{
	/* jansson's memory is wiped when freed: a code key (veil apply with
	 * build.encrypt) passes through its parser */
	json_set_alloc_funcs(veil_wipe_malloc, veil_wipe_free);
	if (argc >= 2 && !strcmp(argv[1], "version")) {
		printf("veil %s\n", VEIL_VERSION);
		return 0;
	}
	return cli_dispatch(&cli_root, argc, argv);
}
