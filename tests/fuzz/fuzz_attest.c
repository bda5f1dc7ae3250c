/* libFuzzer: the /v1/attest request decoder of veil-cas */
#include <stdint.h>
#include <string.h>

#include "veil/cas_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil_attest_request r;
	struct veil_diags d;
	veil_diags_init(&d);
	if (veil_attest_request_decode((const char *)data, size, &r, &d) == 0) {
		/* a decoded request always names a valid namespace and service */
		if (!veil_valid_namespace(r.ns) || !veil_valid_object_name(r.service))
			__builtin_trap();
	}
	veil_attest_request_free(&r);
	veil_diags_free(&d);
	return 0;
}
