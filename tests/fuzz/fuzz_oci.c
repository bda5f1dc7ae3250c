/* libFuzzer: the OCI layout reader's documents (src/image/oci.c): the same
 * bytes as index.json (with and without a tag), a manifest list, an image
 * manifest and an image config. */
#include <stdlib.h>

#include "oci.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct veil_diags d;
	struct oci_desc desc;
	struct oci_base b = {0};
	json_t *doc = NULL;
	veil_diags_init(&d);
	if (oci_index_select(s, size, "fuzz", "v1", &doc, &desc, &d) == 0)
		json_decref(doc);
	doc = NULL;
	if (oci_index_select(s, size, "fuzz", NULL, &doc, &desc, &d) == 0)
		json_decref(doc);
	doc = NULL;
	if (oci_list_select(s, size, "fuzz", &doc, &desc, &d) == 0)
		json_decref(doc);
	doc = NULL;
	if (oci_manifest_parse(s, size, "fuzz", &b, &d) == 0) {
		/* every layer of an accepted manifest is a descriptor */
		size_t i;
		json_t *e;
		json_array_foreach(b.layers, i, e)
		{
			if (oci_desc_parse(e, "fuzz", "layer", &desc, &d))
				abort();
		}
	}
	size_t layers = b.layer_count;
	oci_base_free(&b);
	if (oci_config_parse(s, size, "fuzz", layers, &doc, &d) == 0)
		json_decref(doc);
	veil_diags_free(&d);
	return 0;
}
