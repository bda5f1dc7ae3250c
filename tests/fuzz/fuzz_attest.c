/* libFuzzer: the /v1/attest and /v1/attest/refused request decoders of
 * veil-cas (the same JSON shape: a config id and strings) */
#include <stdint.h>
#include <string.h>

#include "veil/cas_request.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil_attest_request r;
	struct veil_refusal_report q;
	struct veil_diags d;
	veil_diags_init(&d);
	if (veil_attest_request_decode((const char *)data, size, &r, &d) == 0) {
		/* a decoded request always names a valid namespace and service */
		if (!veil_valid_namespace(r.ns) || !veil_valid_object_name(r.service))
			__builtin_trap();
	}
	veil_attest_request_free(&r);
	if (veil_refusal_report_decode((const char *)data, size, &q, &d) == 0) {
		size_t n = strlen(q.reason);
		if (!veil_valid_namespace(q.ns) || !veil_valid_object_name(q.service) || n == 0 ||
		    n > VEIL_REFUSAL_REASON_MAX)
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)q.reason[i] < 0x20)
				__builtin_trap();
	}
	veil_refusal_report_free(&q);
	veil_diags_free(&d);
	return 0;
}
