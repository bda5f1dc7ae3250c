/* Shared by the libFuzzer harnesses: parse bytes as one YAML document, then
 * re-emit the tree canonically and check the emitter's output parses back to
 * the same canonical bytes (the property the policy hash relies on). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "veil/manifest.h"

static int fuzz_parse(struct ydoc *doc, const uint8_t *data, size_t size, struct veil_diags *d)
{
	static const struct ylimits lim = {
	    .max_doc_size = 1 << 20,
	    .max_depth = 64,
	    .max_str = 1 << 16,
	    .max_nodes = 20000,
	    .max_items = 5000,
	};
	if (ydoc_init(doc, "fuzz.yaml"))
		return -1;
	return ydoc_parse(doc, (const char *)data, size, &lim, d);
}

static void fuzz_roundtrip(const struct ynode *root)
{
	struct veil_buf a, b;
	veil_buf_init(&a, 0);
	veil_buf_init(&b, 0);
	if (yemit(root, &a) == 0) {
		struct ydoc again;
		struct veil_diags d;
		veil_diags_init(&d);
		if (ydoc_init(&again, "again") == 0 &&
		    ydoc_parse(&again, a.data, a.size, NULL, &d) == 0) {
			assert(yemit(again.root, &b) == 0);
			assert(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
		}
		ydoc_free(&again);
		veil_diags_free(&d);
	}
	veil_buf_free(&a);
	veil_buf_free(&b);
}

static int count_placeholder(const struct veil_placeholder *ph, void *arg)
{
	(void)ph;
	(*(size_t *)arg)++;
	return 0;
}

/* Run the placeholder scanner over every scalar of the tree. */
static void fuzz_placeholders(const struct ynode *n)
{
	if (!n)
		return;
	if (n->type == YT_SCALAR) {
		size_t count = 0;
		const char *why = NULL;
		/* a refusal is a result too: only crashes and leaks are findings */
		VEIL_UNCHECKED(veil_placeholders(n->str, count_placeholder, &count, &why));
		return;
	}
	for (size_t i = 0; i < n->count; i++)
		fuzz_placeholders(n->items[i]);
}
