/* libFuzzer: service manifest parser (kind: genservice) */
#include "fuzz_common.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ydoc doc;
	struct veil_diags d;
	veil_diags_init(&d);
	if (fuzz_parse(&doc, data, size, &d) == 0) {
		struct veil_service_manifest m;
		VEIL_UNCHECKED(veil_service_parse(&doc, &m, &d)); /* refusals are fine */
		fuzz_placeholders(doc.root);
		fuzz_roundtrip(doc.root);
	}
	ydoc_free(&doc);
	veil_diags_free(&d);
	return 0;
}
