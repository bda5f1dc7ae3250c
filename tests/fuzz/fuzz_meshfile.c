/* libFuzzer: Meshfile parser (kind: mesh) and template filling */
#include "fuzz_common.h"
#include "veil/policy.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ydoc doc;
	struct veil_diags d;
	veil_diags_init(&d);
	if (fuzz_parse(&doc, data, size, &d) == 0) {
		struct veil_mesh m;
		if (veil_mesh_parse(&doc, &m, &d) == 0) {
			for (size_t i = 0; i < m.env_count; i++)
				for (size_t k = 0; k < m.env[i].count; k++) {
					const char *missing = NULL;
					if (m.env[i].vars[k].value)
						VEIL_UNCHECKED(veil_template_fill(
						    doc.arena, &m, m.env[i].service,
						    m.env[i].vars[k].value, &missing));
				}
		}
		fuzz_roundtrip(doc.root);
	}
	ydoc_free(&doc);
	veil_diags_free(&d);
	return 0;
}
