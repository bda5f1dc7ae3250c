/* libFuzzer: the SEV-SNP report parser and verifier (src/evidence/snp.c).
 * The first byte chooses what the rest is: even, a report, parsed (exactly
 * and as a prefix) and, when it parses, verified against a fixed real VCEK
 * and its chain (given, and the compiled-in roots); odd, a key certificate
 * (DER or PEM) checked against a fixed real report, which reaches the AMD
 * extension readers. The seeds are tests/fuzz/corpus/snp. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/common.h"
#include "veil/snp.h"
#include "fuzzer.h"

#define VEC VEIL_SOURCE_ROOT "/tests/vectors/"
/* when the vectors' certificates are all valid (see tests/unit/test_snp.c) */
#define AT ((time_t)1765065600)

static char *vcek, *chain, *report;
static size_t vcek_size, report_size;

static char *slurp(const char *path, size_t *size)
{
	char *data = NULL;
	size_t n = 0;
	struct veil_diags d;
	veil_diags_init(&d);
	if (veil_read_file(path, 1 << 20, &data, &n, &d)) {
		veil_diags_print(&d, stderr);
		abort();
	}
	veil_diags_free(&d);
	if (size)
		*size = n;
	return data;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vcek = slurp(VEC "trustee/deps/verifier/test_data/snp/test-vcek.der", &vcek_size);
	chain = slurp(VEC "go-sev-guest/verify/trust/ask_ark_milan.pem", NULL);
	report = slurp(VEC "trustee/deps/verifier/test_data/snp/test-report.bin", &report_size);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char why[256];
	struct veil_snp_report r;
	struct veil_snp_verified v;
	if (data[0] % 2 == 0) {
		size_t used = 0;
		if (veil_snp_parse_prefix(data + 1, size - 1, &r, &used, why, sizeof(why)) == 0 &&
		    used != VEIL_SNP_REPORT_SIZE)
			abort();
		if (veil_snp_parse(data + 1, size - 1, &r, why, sizeof(why)))
			return 0;
		if (veil_snp_verify(&r, (const uint8_t *)vcek, vcek_size, chain, AT, &v, why,
				    sizeof(why)) == 0 &&
		    memcmp(r.signed_bytes, report, VEIL_SNP_SIGNED_SIZE))
			abort(); /* only the real report's signed bytes verify */
		(void)veil_snp_verify(&r, (const uint8_t *)vcek, vcek_size, NULL, AT, &v, why,
				      sizeof(why));
		return 0;
	}
	if (veil_snp_parse((const uint8_t *)report, report_size, &r, why, sizeof(why)))
		abort();
	(void)veil_snp_verify(&r, data + 1, size - 1, chain, AT, &v, why, sizeof(why));
	return 0;
}
