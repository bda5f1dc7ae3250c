/* What veil's DCAP parser and verifier make of a quote, for the independent
 * cross-check tests/evidence/check_dcap.py (which prints the same lines):
 *   dcap_dump FILE [AT]
 * AT: seconds since the epoch for the certificate validity check (0 or
 * absent: now). Prints one "key value" line per field, the last being
 * "verdict ok" or "verdict refused <check>" (parse, pck-chain,
 * qe-report-signature, binding, quote-signature); exits 0 when it verified,
 * 1 when refused, 64 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/common.h"
#include "veil/dcap.h"

#define MAX_QUOTE (1 << 20)

static void hex_line(const char *key, const uint8_t *p, size_t n)
{
	printf("%s ", key);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	putchar('\n');
}

static const char *check_of(const char *why)
{
	if (strncmp(why, "PCK chain", 9) == 0 || strncmp(why, "PCK certificate", 15) == 0)
		return "pck-chain";
	if (strncmp(why, "QE report signature", 19) == 0)
		return "qe-report-signature";
	if (strncmp(why, "QE report does not bind", 23) == 0)
		return "binding";
	if (strncmp(why, "quote signature", 15) == 0)
		return "quote-signature";
	return "other";
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: dcap_dump FILE [AT]\n");
		return 64;
	}
	char *data = NULL, why[512];
	size_t size = 0;
	struct veil_diags d;
	veil_diags_init(&d);
	if (veil_read_file(argv[1], MAX_QUOTE, &data, &size, &d)) {
		veil_diags_print(&d, stderr);
		veil_diags_free(&d);
		return 64;
	}
	veil_diags_free(&d);
	time_t at = argc > 2 ? (time_t)strtoll(argv[2], NULL, 10) : 0;
	struct veil_dcap_quote q;
	struct veil_dcap_pck pck;
	if (veil_dcap_parse((const uint8_t *)data, size, &q, why, sizeof(why))) {
		printf("verdict refused parse\n");
		fprintf(stderr, "%s\n", why);
		free(data);
		return 1;
	}
	printf("version %u\n", q.version);
	printf("tee 0x%02x\n", q.tee_type);
	printf("body_type %u\n", q.body_type);
	printf("quote_size %zu\n", q.quote_size);
	if (q.tee_type == VEIL_DCAP_TEE_SGX) {
		hex_line("mrenclave", q.sgx.mrenclave, 32);
		hex_line("mrsigner", q.sgx.mrsigner, 32);
		printf("isvprodid %u\nisvsvn %u\ndebug %d\n", q.sgx.isvprodid, q.sgx.isvsvn,
		       q.sgx.debug);
		hex_line("report_data", q.sgx.report_data, 64);
	} else {
		hex_line("tee_tcb_svn", q.td.tee_tcb_svn, 16);
		hex_line("mrtd", q.td.mrtd, 48);
		for (int i = 0; i < 4; i++) {
			char key[8];
			snprintf(key, sizeof(key), "rtmr%d", i);
			hex_line(key, q.td.rtmr[i], 48);
		}
		printf("td_attributes %016llx\ndebug %d\n", (unsigned long long)q.td.td_attributes,
		       q.td.debug);
		hex_line("report_data", q.td.report_data, 64);
		if (q.td.is_tdx15)
			hex_line("mrservicetd", q.td.mrservicetd, 48);
	}
	hex_line("qe_mrenclave", q.qe_report.mrenclave, 32);
	hex_line("qe_mrsigner", q.qe_report.mrsigner, 32);
	printf("qe_isvprodid %u\nqe_isvsvn %u\n", q.qe_report.isvprodid, q.qe_report.isvsvn);
	int rc = veil_dcap_verify(&q, at, &pck, why, sizeof(why));
	if (rc == 0) {
		hex_line("fmspc", pck.fmspc, 6);
		hex_line("pce_id", pck.pce_id, 2);
		printf("pce_svn %u\n", pck.pce_svn);
		hex_line("cpu_svn", pck.cpu_svn, 16);
		hex_line("tcb_comp_svn", pck.tcb_comp_svn, 16);
		printf("pck_ca %s\n",
		       pck.ca == VEIL_DCAP_PCK_PLATFORM_CA ? "platform" : "processor");
		printf("verdict ok\n");
	} else {
		printf("verdict refused %s\n", check_of(why));
		fprintf(stderr, "%s\n", why);
	}
	free(data);
	return rc == 0 ? 0 : 1;
}
