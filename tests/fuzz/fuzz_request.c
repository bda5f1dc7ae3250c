/* libFuzzer: veil-cas request decoder ({"policy": "<YAML>"}) */
#include "fuzz_common.h"
#include "veil/cas_request.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil_policy_request r;
	struct veil_diags d;
	veil_diags_init(&d);
	if (veil_policy_request_decode((const char *)data, size, &r, &d) == 0)
		assert(r.canonical.size > 0 && strlen(r.policy.hash) == 64);
	veil_policy_request_free(&r);
	veil_diags_free(&d);
	return 0;
}
