/* snp_dump REPORT KEY_CERT CA_BUNDLE|- AT: veil's reading of an SEV-SNP
 * report and its verdict, in the format tests/evidence/check_snp.py prints
 * from its own independent verifier (the script compares the two). AT is
 * seconds since the epoch; "-" for the CA bundle uses the compiled-in roots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/common.h"
#include "veil/snp.h"

static char *slurp(const char *path, size_t *size)
{
	char *data = NULL;
	struct veil_diags d;
	veil_diags_init(&d);
	if (veil_read_file(path, 1 << 20, &data, size, &d)) {
		veil_diags_print(&d, stderr);
		data = NULL;
	}
	veil_diags_free(&d);
	return data;
}

static void print_hex(const char *name, const uint8_t *p, size_t n)
{
	char hex[2 * 64 + 1];
	veil_hex(p, n, hex);
	printf("%s: %s\n", name, hex);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: snp_dump REPORT KEY_CERT CA_BUNDLE|- AT\n");
		return 2;
	}
	size_t rn = 0, kn = 0, cn = 0;
	char *report = slurp(argv[1], &rn), *key = slurp(argv[2], &kn);
	char *ca = strcmp(argv[3], "-") ? slurp(argv[3], &cn) : NULL;
	if (!report || !key || (strcmp(argv[3], "-") && !ca))
		return 2;
	time_t at = (time_t)strtoll(argv[4], NULL, 10);
	char why[256] = "";
	struct veil_snp_report r;
	struct veil_snp_verified v = {0};
	int err = veil_snp_parse((const uint8_t *)report, rn, &r, why, sizeof(why));
	if (!err)
		err = veil_snp_verify(&r, (const uint8_t *)key, kn, ca, at, &v, why, sizeof(why));
	if (err) {
		printf("verdict: refused: %s\n", why);
		return 1;
	}
	printf("version: %u\n", r.version);
	printf("product: %s\n", veil_snp_product_name(v.product));
	printf("signer: %s\n", veil_snp_signer_name(v.signer));
	printf("vmpl: %u\n", r.vmpl);
	printf("policy: 0x%llx\n", (unsigned long long)r.policy);
	printf("debug: %d\n", r.debug);
	print_hex("measurement", r.measurement, sizeof(r.measurement));
	print_hex("report_data", r.report_data, sizeof(r.report_data));
	print_hex("host_data", r.host_data, sizeof(r.host_data));
	print_hex("chip_id", r.chip_id, sizeof(r.chip_id));
	printf("reported_tcb: fmc=%u bl=%u tee=%u snp=%u microcode=%u\n", v.reported_tcb.fmc_spl,
	       v.reported_tcb.bl_spl, v.reported_tcb.tee_spl, v.reported_tcb.snp_spl,
	       v.reported_tcb.microcode_spl);
	printf("verdict: ok\n");
	free(report);
	free(key);
	free(ca);
	return 0;
}
