/* veil cas attest URL: verify the CAS's evidence and pin its key. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "cli.h"
#include "client.h"
#include "veil/evidence.h"

enum { O_DEBUG = 256, O_SIGNER, O_ANY, O_MRE };

static void cas_usage(FILE *f)
{
	fprintf(f,
		"Usage: veil cas attest [URL] [-C] [-G] [-S] [--mrenclave HEX] [-o json|yaml]\n"
		"                           [--only_for_testing-debug]\n"
		"                           [--only_for_testing-ignore-signer]\n"
		"                           [--only_for_testing-trust-any]\n\n"
		"Fetches the CAS's identity over TLS, checks that its evidence is bound to the\n"
		"TLS key this connection saw, checks the evidence with SCONE's semantics, and\n"
		"pins the CAS key in $VEIL_HOME (default ~/.config/veil). Every later command\n"
		"talking to that CAS fails if its key changes. Without URL: $VEIL_CAS.\n\n"
		"  -C   tolerate a platform that needs a configuration change\n"
		"  -G   tolerate an out-of-date TCB (group out of date)\n"
		"  -S   tolerate a platform that needs software hardening\n"
		"  --mrenclave HEX                   the CAS measurement must be HEX (64 or\n"
		"                                    96 hex digits); a hardware CAS needs it\n"
		"  --only_for_testing-debug          accept a CAS in debug mode (all simulation)\n"
		"  --only_for_testing-ignore-signer  accept a CAS whose signer is not known\n"
		"  --only_for_testing-trust-any      accept evidence from any platform\n"
		"  -o, --output FORMAT               json or yaml: the attested CAS on stdout\n"
		"  -h, --help                        this help\n"
		"The long forms --insecure-configuration, --outdated-tcb and\n"
		"--software-hardening-needed are accepted for -C, -G and -S.\n");
}

/* 64 or 96 lower-case hex digits */
static int mrenclave_ok(const char *s)
{
	size_t n = strlen(s);
	if (n != 64 && n != 96)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int cli_tolerance_parse(const char *flags, struct cas_tolerance *t, struct veil_diags *d)
{
	memset(t, 0, sizeof(*t));
	char *copy = strdup(flags ? flags : ""), *save = NULL;
	int rc = copy ? 0 : VEIL_ENOMEM;
	for (char *w = copy ? strtok_r(copy, " \t", &save) : NULL; w;
	     w = strtok_r(NULL, " \t", &save)) {
		if (!strcmp(w, "-C") || !strcmp(w, "--insecure-configuration"))
			t->configuration_needed = 1;
		else if (!strcmp(w, "-G") || !strcmp(w, "--outdated-tcb"))
			t->outdated_tcb = 1;
		else if (!strcmp(w, "-S") || !strcmp(w, "--software-hardening-needed"))
			t->sw_hardening_needed = 1;
		else if (!strcmp(w, "--only_for_testing-debug"))
			t->debug = 1;
		else if (!strcmp(w, "--only_for_testing-ignore-signer"))
			t->ignore_signer = 1;
		else if (!strcmp(w, "--only_for_testing-trust-any"))
			t->trust_any = 1;
		else {
			veil_diag(d, "unknown CAS tolerance flag '%s'", w);
			rc = VEIL_EINVAL;
		}
	}
	free(copy);
	return rc;
}

int cli_attest(const char *url, const struct cas_tolerance *t, int quiet, json_t **result,
	       struct veil_diags *d)
{
	struct client c;
	struct response r = {0};
	json_t *j = NULL;
	int rc = client_open(&c, url, d);
	if (rc)
		return rc;
	char previous[VEIL_KEY_HASH_HEX];
	memcpy(previous, c.pinned, sizeof(previous));
	c.pinned[0] = '\0'; /* attest afresh, then compare */
	if ((rc = client_request(&c, "GET", "/v1/cas/identity", NULL, 1, &r, d)))
		goto out;
	rc = VEIL_EINVAL;
	if (r.status != 200) {
		response_error(&r, "GET /v1/cas/identity", d);
		goto out;
	}
	json_error_t err;
	const char *key_hash = NULL, *evidence = NULL;
	j = json_loadb(r.body.data, r.body.size, JSON_REJECT_DUPLICATES, &err);
	if (!j || json_unpack(j, "{s:s, s:s}", "key_hash", &key_hash, "evidence", &evidence)) {
		veil_diag(d, "%s: the identity response is malformed", c.url);
		goto out;
	}
	if (strcmp(key_hash, r.server_key)) {
		veil_diag(d,
			  "%s: the identity names key %.16s... but the TLS connection used key "
			  "%.16s...: refusing",
			  c.url, key_hash, r.server_key);
		goto out;
	}
	uint8_t rd[VEIL_SHA256_SIZE];
	if (veil_unhex(r.server_key, rd, sizeof(rd))) { /* our own hex of the TLS key */
		veil_diag(d, "%s: the TLS key's hash '%s' is not hex", c.url, r.server_key);
		goto out;
	}
	struct veil_claims cl;
	if (veil_evidence_verify(evidence, strlen(evidence), rd, &cl, d)) {
		veil_diag(d, "%s: the CAS's evidence does not verify", c.url);
		goto out;
	}
	/* SCONE's semantics: each weakness must be tolerated explicitly */
	int refused = 0;
	if (!strcmp(cl.platform, "sim") && !t->trust_any) {
		veil_diag(d,
			  "%s: evidence from the simulated platform %.16s..., which is not a "
			  "trusted platform (accept only for testing: "
			  "--only_for_testing-trust-any)",
			  c.url, cl.platform_key);
		refused = 1;
	}
	if (cl.debug && !t->debug) {
		veil_diag(d,
			  "%s: the CAS runs in debug mode (accept only for testing: "
			  "--only_for_testing-debug)",
			  c.url);
		refused = 1;
	}
	/* which CAS: nothing here knows veil's own signing key, so a hardware
	 * CAS is identified by its measurement (--mrenclave); without it only
	 * for testing */
	if (!t->ignore_signer && (!cl.hardware || !t->mrenclave)) {
		veil_diag(d,
			  "%s: the CAS is not %s (name its measurement with --mrenclave, or "
			  "accept only for testing: --only_for_testing-ignore-signer)",
			  c.url, cl.hardware ? "identified" : "signed by a known signer");
		refused = 1;
	}
	/* a CAS's own evidence binds its key alone: the second half of the
	 * report data is zero (a runtime's holds its config id's hash) */
	static const uint8_t zero[VEIL_SHA256_SIZE];
	if (cl.hardware && CRYPTO_memcmp(cl.report_data + VEIL_SHA256_SIZE, zero, sizeof(zero))) {
		veil_diag(d, "%s: the evidence was made for a configuration, not for a CAS", c.url);
		refused = 1;
	}
	/* the TCB status's parts, as the CAS's policies read them
	 * (src/policy/decide.c): the combined statuses need both flags */
	const char *st = cl.tcb_status;
	int intel = !strcmp(cl.platform, "sgx") || !strcmp(cl.platform, "tdx");
	if (!strcmp(st, "revoked")) {
		veil_diag(d, "%s: the platform's key is revoked", c.url);
		refused = 1;
	}
	if ((!strncmp(st, "out-of-date", 11) || (intel && !strcmp(st, "not-evaluated"))) &&
	    !t->outdated_tcb) {
		veil_diag(d, "%s: the platform's TCB is %s (tolerate with -G)", c.url,
			  !strcmp(st, "not-evaluated") ? "not evaluated (no collateral)"
						       : "out of date");
		refused = 1;
	}
	if (strstr(st, "sw-hardening-needed") && !t->sw_hardening_needed) {
		veil_diag(d, "%s: the platform needs software hardening (tolerate with -S)", c.url);
		refused = 1;
	}
	if (strstr(st, "configuration") && !t->configuration_needed) {
		veil_diag(d, "%s: the platform needs a configuration change (tolerate with -C)",
			  c.url);
		refused = 1;
	}
	static const char *const known[] = {"up-to-date",
					    "sw-hardening-needed",
					    "configuration-needed",
					    "configuration-and-sw-hardening-needed",
					    "out-of-date",
					    "out-of-date-configuration-needed",
					    "revoked",
					    "not-evaluated"};
	int is_known = 0;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(known); i++)
		is_known |= !strcmp(st, known[i]);
	if (!is_known) {
		veil_diag(d, "%s: the platform's TCB status '%.40s' is unknown", c.url, st);
		refused = 1;
	}
	if (t->mrenclave && strcmp(t->mrenclave, cl.measurement)) {
		veil_diag(d, "%s: the CAS measurement is %s, not the expected %s", c.url,
			  cl.measurement, t->mrenclave);
		refused = 1;
	}
	if (refused)
		goto out;
	if (previous[0] && strcmp(previous, r.server_key))
		fprintf(stderr, "warning: %s had key %.16s... pinned; replacing it by %.16s...\n",
			c.url, previous, r.server_key);
	if ((rc = client_pin(&c, r.server_key, d)))
		goto out;
	if (!quiet) {
		printf("CAS %s attested: %s platform %.16s..., measurement %s%s\n", c.url,
		       cl.platform, cl.platform_key, cl.measurement, cl.debug ? ", debug" : "");
		printf("CAS key %s pinned in %s\n", r.server_key, c.home);
	}
	if (result &&
	    !(*result = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "url", c.url, "key_hash",
				  r.server_key, "platform", cl.platform, "platform_key",
				  cl.platform_key, "measurement", cl.measurement, "debug", cl.debug,
				  "pinned_in", c.home))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	rc = 0;
out:
	json_decref(j);
	response_free(&r);
	client_close(&c);
	return rc;
}

static const struct cli_cmd cas_attest_cmd;

static int attest_main(int argc, char **argv)
{
	enum cli_format fmt = CLI_FMT_TEXT;
	struct cas_tolerance t = {0};
	int c;
	while ((c = getopt_long(argc, argv, cas_attest_cmd.shortopts, cas_attest_cmd.opts, NULL)) !=
	       -1) {
		switch (c) {
		case 'C':
			t.configuration_needed = 1;
			break;
		case 'G':
			t.outdated_tcb = 1;
			break;
		case 'S':
			t.sw_hardening_needed = 1;
			break;
		case O_DEBUG:
			t.debug = 1;
			break;
		case O_SIGNER:
			t.ignore_signer = 1;
			break;
		case O_ANY:
			t.trust_any = 1;
			break;
		case O_MRE:
			t.mrenclave = optarg;
			break;
		case 'o':
			if (cli_parse_format(&cas_attest_cmd, optarg, &fmt))
				return EXIT_USAGE;
			break;
		default:
			return cli_option_default(&cas_attest_cmd, c, argv);
		}
	}
	const char *url = optind < argc ? argv[optind] : cli_cas_url(NULL);
	if (argc - optind > 1)
		return cli_usage_error(&cas_attest_cmd, "give one URL");
	if (!url)
		return cli_usage_error(&cas_attest_cmd, "give the CAS URL (or set $VEIL_CAS)");
	if (t.mrenclave && !mrenclave_ok(t.mrenclave))
		return cli_usage_error(&cas_attest_cmd,
				       "--mrenclave needs 64 (SGX MRENCLAVE, veil-run) or 96 (TDX "
				       "MRTD, SNP measurement) lower-case hex digits");
	struct veil_diags d;
	veil_diags_init(&d);
	json_t *result = NULL;
	int rc = cli_attest(url, &t, fmt != CLI_FMT_TEXT, fmt != CLI_FMT_TEXT ? &result : NULL, &d);
	if (!rc && result)
		rc = cli_print_result(result, fmt);
	return cli_report(&d, rc);
}

static const struct cli_cmd cas_attest_cmd = {
    .name = "attest",
    .path = "veil cas attest",
    .summary = "attest a CAS and pin its key",
    .run = attest_main,
    .usage = cas_usage,
    .opts = (const struct option[]){{"only_for_testing-debug", no_argument, NULL, O_DEBUG},
				    {"only_for_testing-ignore-signer", no_argument, NULL, O_SIGNER},
				    {"only_for_testing-trust-any", no_argument, NULL, O_ANY},
				    {"insecure-configuration", no_argument, NULL, 'C'},
				    {"outdated-tcb", no_argument, NULL, 'G'},
				    {"software-hardening-needed", no_argument, NULL, 'S'},
				    {"mrenclave", required_argument, NULL, O_MRE},
				    {"output", required_argument, NULL, 'o'},
				    CLI_STD_OPTS,
				    {0}},
    .shortopts = ":CGSo:h",
};

const struct cli_cmd cas_cmd = {
    .name = "cas",
    .path = "veil cas",
    .summary = "attest a CAS and pin its key (cas attest URL)",
    .subs = (const struct cli_cmd *const[]){&cas_attest_cmd, NULL},
};
