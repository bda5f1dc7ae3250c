/* veil evidence verify FILE: the claims a piece of evidence makes and whether
 * it verifies, for an operator debugging a refusal (issue 11 item 6). The
 * same verifier the CAS runs (veil_evidence_verify_opts), offline: the time
 * and the collateral are the operator's, and the report data is compared
 * only when asked (recorded evidence is bound to a connection long gone).
 *
 * FILE is evidence JSON as veil-run and veil-cas send it (src/evidence/
 * verify.c), or a raw binary wrapped here into that JSON:
 *   SGX quote   le16 version 3, le16 attestation key type 2, le32 TEE type 0
 *   TDX quote   le16 version 4 or 5, le16 attestation key type 2, le32 TEE
 *               type 0x81
 *   SNP report  exactly 1184 bytes (with --vcek: the VCEK or VLEK, DER or PEM)
 * The attestation key type (2: ECDSA P-256, the only one DCAP uses) tells an
 * SGX quote from a v3 SNP report with guest_svn 0, whose first 8 bytes are
 * 03 00 00 00 00 00 00 00. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "veil/collateral.h"
#include "veil/evidence.h"

/* more than any quote (64 KiB) or evidence document (128 KiB) veil takes */
#define EVIDENCE_FILE_MAX (1024 * 1024)
#define SNP_REPORT_SIZE 1184
#define VCEK_FILE_MAX (16 * 1024)

enum { O_COLLATERAL = 256, O_AT, O_REPORT_DATA, O_VCEK };

static void verify_usage(FILE *f)
{
	fprintf(f,
		"Usage: veil evidence verify [--collateral DIR] [--at TIME] [--report-data HEX]\n"
		"                            [--vcek FILE] [-o json|yaml] FILE\n\n"
		"Verifies evidence as the CAS does and prints its claims and the verdict.\n"
		"FILE (- for stdin) is evidence JSON as veil-run and veil-cas send it, a raw\n"
		"SGX (v3) or TDX (v4, v5) quote, or a raw 1184-byte SNP report (needs --vcek).\n"
		"The report data is not compared unless --report-data is given.\n\n"
		"  --collateral DIR      Intel collateral (TCB Info, QE Identity, CRLs, or\n"
		"                        dcap-qvl bundles) for the TCB status and advisories;\n"
		"                        without it the status is \"not-evaluated\"\n"
		"  --at TIME             check certificates and collateral at TIME: RFC 3339\n"
		"                        UTC (2025-07-01T00:00:00Z) or seconds since the\n"
		"                        epoch; default now\n"
		"  --report-data HEX     64 hex digits: the first 32 bytes of the report data\n"
		"                        must be these (the SHA-256 of the attester's TLS key)\n"
		"  --vcek FILE           the VCEK or VLEK certificate (DER or PEM) of a raw\n"
		"                        SNP report\n"
		"  -o, --output FORMAT   json or yaml: {verified, claims} or {verified, error}\n"
		"  -h, --help            this help\n"
		"Exit status: 0 verified, 1 refused (\"error: REASON\"), 2 usage error.\n");
}

static const struct cli_cmd evidence_verify_cmd;

/* RFC 3339 in UTC with a 'Z' (no fraction, no offset), or digits: seconds
 * since the epoch; > 0 (0 means "now" to the verifier) */
static int parse_at(const char *s, long long *out)
{
	struct veil_diags d;
	veil_diags_init(&d);
	long v = 0;
	int rc = veil_parse_long("--at", s, 1, 253402300799L /* 9999-12-31 */, &v, &d);
	veil_diags_free(&d);
	if (!rc) {
		*out = v;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end || strlen(s) != 20)
		return VEIL_EINVAL;
	time_t t = timegm(&tm);
	if (t <= 0)
		return VEIL_EINVAL;
	*out = (long long)t;
	return 0;
}

static uint32_t le(const uint8_t *p, size_t n)
{
	uint32_t v = 0;
	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* "sgx", "tdx", "snp" for a raw binary, or NULL */
static const char *raw_platform(const uint8_t *p, size_t n)
{
	if (n >= 48 && le(p + 2, 2) == 2) {
		uint32_t version = le(p, 2), tee = le(p + 4, 4);
		if (version == 3 && tee == 0x00)
			return "sgx";
		if ((version == 4 || version == 5) && tee == 0x81)
			return "tdx";
	}
	return n == SNP_REPORT_SIZE ? "snp" : NULL;
}

static int is_json(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && isspace((unsigned char)p[i]))
		i++;
	return i < n && p[i] == '{';
}

/* The raw bytes as the evidence JSON the verifier takes (*out: the caller's). */
static int wrap_raw(const char *platform, const uint8_t *p, size_t n, const uint8_t *vcek,
		    size_t vcek_size, char **out)
{
	char *b64 = veil_b64_encode(p, n), *key = vcek ? veil_b64_encode(vcek, vcek_size) : NULL;
	json_t *j = NULL;
	int rc = VEIL_ENOMEM;
	if (!b64 || (vcek && !key))
		goto out;
	if (!strcmp(platform, "snp"))
		j = json_pack("{s:s, s:i, s:s, s:s}", "platform", platform, "version", 1, "report",
			      b64, "vcek", key);
	else
		j = json_pack("{s:s, s:i, s:s}", "platform", platform, "version", 1, "quote", b64);
	if (j && (*out = json_dumps(j, JSON_COMPACT)))
		rc = 0;
out:
	json_decref(j);
	free(b64);
	free(key);
	return rc;
}

static int read_input(const char *file, char **data, size_t *size, struct veil_diags *d)
{
	if (strcmp(file, "-"))
		return veil_read_file(file, EVIDENCE_FILE_MAX, data, size, d);
	struct cli_input *in = NULL;
	size_t count = 0;
	int rc = cli_inputs_add(&in, &count, "-", EVIDENCE_FILE_MAX, d);
	if (!rc) {
		*data = in[0].data;
		*size = in[0].size;
		in[0].data = NULL;
	}
	cli_inputs_free(in, count);
	return rc;
}

static json_t *claims_json(const struct veil_claims *c)
{
	char rd[2 * 64 + 1], policy[24];
	veil_hex(c->report_data, sizeof(c->report_data), rd);
	json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:s}", "platform", c->platform, "measurement",
			      c->measurement, "platform_key", c->platform_key, "debug", c->debug,
			      "tcb_status", c->tcb_status);
	json_t *adv = json_array();
	int bad = !j || !adv;
	for (const char *p = c->advisories; !bad && *p;) {
		size_t len = strcspn(p, ",");
		bad = json_array_append_new(adv, json_stringn(p, len)) != 0;
		p += len + (p[len] == ',');
	}
	if (!bad)
		bad = json_object_set_new(j, "advisories", adv);
	else
		json_decref(adv);
	if (!bad && c->hardware)
		bad = json_object_set_new(j, "report_data", json_string(rd));
	if (!bad && !strcmp(c->platform, "sgx"))
		bad = json_object_update_new(j, json_pack("{s:s, s:i, s:i}", "signer", c->signer,
							  "isvprodid", (int)c->isvprodid, "isvsvn",
							  (int)c->isvsvn));
	if (!bad && !strcmp(c->platform, "tdx"))
		bad = json_object_update_new(
		    j, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "mrtd", c->measurement,
				 "rtmr0", c->rtmr[0], "rtmr1", c->rtmr[1], "rtmr2", c->rtmr[2],
				 "rtmr3", c->rtmr[3], "mrconfigid", c->mrconfigid, "mrowner",
				 c->mrowner));
	if (!bad && !strcmp(c->platform, "snp")) {
		snprintf(policy, sizeof(policy), "0x%llx", c->snp_policy);
		bad = json_object_update_new(j, json_pack("{s:s, s:s, s:I, s:I}", "host_data",
							  c->host_data, "policy", policy,
							  "guest_svn", (json_int_t)c->guest_svn,
							  "vmpl", (json_int_t)c->vmpl));
	}
	if (!bad && !strcmp(c->platform, "sim"))
		bad = json_object_update_new(j, json_pack("{s:I, s:s}", "timestamp",
							  (json_int_t)c->timestamp, "config_id",
							  c->config_id));
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static void print_claims(const struct veil_claims *c)
{
	char rd[2 * 64 + 1];
	veil_hex(c->report_data, sizeof(c->report_data), rd);
	printf("platform:      %s\n", c->platform);
	printf("measurement:   %s\n", c->measurement);
	if (!strcmp(c->platform, "sgx")) {
		printf("signer:        %s\n", c->signer);
		printf("isvprodid:     %u\n", (unsigned)c->isvprodid);
		printf("isvsvn:        %u\n", (unsigned)c->isvsvn);
	}
	if (!strcmp(c->platform, "tdx")) {
		printf("mrtd:          %s\n", c->measurement);
		for (int i = 0; i < 4; i++)
			printf("rtmr%d:         %s\n", i, c->rtmr[i]);
		printf("mrconfigid:    %s\n", c->mrconfigid);
		printf("mrowner:       %s\n", c->mrowner);
	}
	if (!strcmp(c->platform, "snp")) {
		printf("host_data:     %s\n", c->host_data);
		printf("policy:        0x%llx\n", c->snp_policy);
		printf("guest_svn:     %u\n", c->guest_svn);
		printf("vmpl:          %u\n", c->vmpl);
	}
	if (!strcmp(c->platform, "sim")) {
		printf("timestamp:     %lld\n", c->timestamp);
		printf("config_id:     %s\n", c->config_id);
	}
	printf("debug:         %s\n", c->debug ? "true" : "false");
	if (c->hardware)
		printf("report_data:   %s\n", rd);
	printf("platform_key:  %s\n", c->platform_key);
	printf("tcb_status:    %s\n", c->tcb_status);
	printf("advisories:    %s\n", c->advisories[0] ? c->advisories : "none");
	printf("verdict:       verified\n");
}

/* every diagnostic in one line, for {"error": ...} */
static char *joined_diags(const struct veil_diags *d)
{
	struct veil_buf b;
	veil_buf_init(&b, 64 * 1024);
	for (size_t i = 0; i < d->count; i++)
		veil_buf_printf(&b, "%s%s", i ? "; " : "", d->msgs[i]);
	if (!d->count)
		veil_buf_puts(&b, "verification failed");
	if (b.failed) {
		veil_buf_free(&b);
		return NULL;
	}
	return b.data;
}

static int verify_main(int argc, char **argv)
{
	enum cli_format fmt = CLI_FMT_TEXT;
	const char *collateral_dir = NULL, *vcek_file = NULL, *report_data_hex = NULL;
	long long at = 0;
	int c;
	while ((c = getopt_long(argc, argv, evidence_verify_cmd.shortopts, evidence_verify_cmd.opts,
				NULL)) != -1) {
		switch (c) {
		case O_COLLATERAL:
			collateral_dir = optarg;
			break;
		case O_AT:
			if (parse_at(optarg, &at))
				return cli_usage_error(&evidence_verify_cmd,
						       "--at: '%s' is neither RFC 3339 UTC "
						       "(2025-07-01T00:00:00Z) nor seconds since "
						       "the epoch",
						       optarg);
			break;
		case O_REPORT_DATA:
			report_data_hex = optarg;
			break;
		case O_VCEK:
			vcek_file = optarg;
			break;
		case 'o':
			if (cli_parse_format(&evidence_verify_cmd, optarg, &fmt))
				return EXIT_USAGE;
			break;
		default:
			return cli_option_default(&evidence_verify_cmd, c, argv);
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(&evidence_verify_cmd, "give exactly one FILE (- for stdin)");
	const char *file = argv[optind];
	uint8_t expected[VEIL_SHA256_SIZE] = {0};
	if (report_data_hex) {
		char lower[2 * VEIL_SHA256_SIZE + 1] = "";
		size_t n = strlen(report_data_hex);
		for (size_t i = 0; i < n && i < sizeof(lower) - 1; i++)
			lower[i] = (char)tolower((unsigned char)report_data_hex[i]);
		if (n != 2 * VEIL_SHA256_SIZE || veil_unhex(lower, expected, sizeof(expected)))
			return cli_usage_error(&evidence_verify_cmd,
					       "--report-data needs 64 hex digits (32 bytes)");
	}

	struct veil_diags d;
	veil_diags_init(&d);
	struct veil_collateral *col = NULL;
	struct veil_claims claims;
	char *data = NULL, *vcek = NULL, *wrapped = NULL, why[512] = "";
	size_t size = 0, vcek_size = 0;
	const char *name = strcmp(file, "-") ? file : "<stdin>";
	int rc = read_input(file, &data, &size, &d);
	if (rc)
		goto out;
	rc = VEIL_EINVAL;
	const char *evidence = data;
	size_t evidence_size = size;
	if (!size) {
		veil_diag(&d, "%s is empty", name);
		goto out;
	}
	if (!is_json(data, size)) {
		const char *platform = raw_platform((const uint8_t *)data, size);
		if (!platform) {
			veil_diag(&d,
				  "%s is neither evidence JSON, an SGX (v3) or TDX (v4, v5) quote, "
				  "nor a 1184-byte SNP report",
				  name);
			goto out;
		}
		if (!strcmp(platform, "snp") && !vcek_file) {
			veil_diag(&d, "%s is an SNP report: give its VCEK or VLEK with --vcek FILE",
				  name);
			goto out;
		}
		if (strcmp(platform, "snp") && vcek_file) {
			veil_diag(&d, "%s is a%s quote: --vcek is for SNP reports only", name,
				  !strcmp(platform, "sgx") ? "n SGX" : " TDX");
			goto out;
		}
		if (vcek_file &&
		    (rc = veil_read_file(vcek_file, VCEK_FILE_MAX, &vcek, &vcek_size, &d)))
			goto out;
		if ((rc = wrap_raw(platform, (const uint8_t *)data, size, (const uint8_t *)vcek,
				   vcek_size, &wrapped)))
			goto out;
		rc = VEIL_EINVAL;
		evidence = wrapped;
		evidence_size = strlen(wrapped);
	} else if (vcek_file) {
		veil_diag(&d,
			  "%s is evidence JSON: --vcek is for raw SNP reports (put the "
			  "certificate in its 'vcek')",
			  name);
		goto out;
	}
	if (collateral_dir && veil_collateral_load_dir(collateral_dir, &col, why, sizeof(why))) {
		veil_diag(&d, "%s: %s", collateral_dir, why);
		goto out;
	}
	struct veil_evidence_opts o = {
	    .collateral = col, .at = at, .no_binding = report_data_hex == NULL};
	rc = veil_evidence_verify_opts(evidence, evidence_size, expected, &o, &claims, &d);
out:
	if (fmt != CLI_FMT_TEXT) {
		json_t *j = NULL;
		if (!rc) {
			json_t *cl = claims_json(&claims);
			j = cl ? json_pack("{s:b, s:o}", "verified", 1, "claims", cl) : NULL;
		} else {
			char *msg = joined_diags(&d);
			j = msg ? json_pack("{s:b, s:s}", "verified", 0, "error", msg) : NULL;
			free(msg);
		}
		int prc = cli_print_result(j, fmt);
		if (!rc)
			rc = prc;
	} else if (!rc) {
		print_claims(&claims);
		if (fflush(stdout))
			rc = VEIL_EIO;
	}
	veil_collateral_free(col);
	free(data);
	free(vcek);
	free(wrapped);
	return cli_report(&d, rc);
}

static const struct cli_cmd evidence_verify_cmd = {
    .name = "verify",
    .path = "veil evidence verify",
    .summary = "verify SGX, TDX, SNP or veil-las evidence offline and print its claims",
    .run = verify_main,
    .usage = verify_usage,
    .opts = (const struct option[]){{"collateral", required_argument, NULL, O_COLLATERAL},
				    {"at", required_argument, NULL, O_AT},
				    {"report-data", required_argument, NULL, O_REPORT_DATA},
				    {"vcek", required_argument, NULL, O_VCEK},
				    {"output", required_argument, NULL, 'o'},
				    CLI_STD_OPTS,
				    {0}},
    .shortopts = ":o:h",
    .file_flags = "collateral vcek",
    .file_args = 1,
};

const struct cli_cmd evidence_cmd = {
    .name = "evidence",
    .path = "veil evidence",
    .summary = "verify attestation evidence offline (evidence verify FILE)",
    .subs = (const struct cli_cmd *const[]){&evidence_verify_cmd, NULL},
};
