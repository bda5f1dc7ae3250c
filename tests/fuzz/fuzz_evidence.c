/* libFuzzer: the evidence decoder (what veil-cas reads in /v1/attest) */
#include <stdint.h>
#include <string.h>

#include "veil/evidence.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t rd[VEIL_SHA256_SIZE] = {0};
	struct veil_claims claims;
	struct veil_diags d;
	veil_diags_init(&d);
	/* a refusal is what most inputs get; the fuzzer looks for crashes */
	VEIL_UNCHECKED(veil_evidence_verify((const char *)data, size, rd, &claims, &d));
	veil_diags_free(&d);
	return 0;
}
