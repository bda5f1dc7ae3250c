/* libFuzzer: measurement record parser */
#include "fuzz_common.h"
#include "veil/image.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ydoc doc;
	struct veil_diags d;
	veil_diags_init(&d);
	if (fuzz_parse(&doc, data, size, &d) == 0) {
		struct veil_measurement m;
		if (veil_measurement_parse(&doc, &m, &d) == 0)
			veil_measurement_free(&m);
	}
	ydoc_free(&doc);
	veil_diags_free(&d);
	return 0;
}
