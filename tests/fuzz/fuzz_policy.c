/* libFuzzer: policy parser (what veil-cas accepts) and its canonical form */
#include "fuzz_common.h"
#include "veil/policy_model.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ydoc doc;
	struct veil_diags d;
	veil_diags_init(&d);
	if (fuzz_parse(&doc, data, size, &d) == 0) {
		struct veil_policy p;
		if (veil_policy_parse(&doc, &p, &d) == 0)
			assert(strlen(p.hash) == 64);
		fuzz_roundtrip(doc.root);
	}
	ydoc_free(&doc);
	veil_diags_free(&d);
	return 0;
}
