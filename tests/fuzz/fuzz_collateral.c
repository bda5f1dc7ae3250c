/* libFuzzer: the collateral readers (src/evidence/collateral.c): the JSON
 * span scanner, whose span must lie inside the input and agree with a second
 * scan of the same text; the dcap-qvl bundle reader and the PCS body reader
 * (which verify before they parse the signed value, so the field parser is
 * also driven directly through veil_collateral_check_json). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil/collateral.h"
#include "veil/common.h"
#include "fuzzer.h"

static void check_span(const char *text, size_t size, const char *key)
{
	size_t off = 0, len = 0;
	int rc = veil_json_member_span(text, size, key, &off, &len);
	assert(rc == 0 || rc == VEIL_EINVAL || rc == VEIL_ENOENT);
	if (rc != 0)
		return;
	assert(len > 0 && off < size && len <= size - off);
	/* a value's span starts with a value's first character */
	char first = text[off];
	assert(first == '{' || first == '[' || first == '"' || first == '-' || first == '+' ||
	       first == '.' || (first >= '0' && first <= '9') || (first >= 'a' && first <= 'z') ||
	       (first >= 'A' && first <= 'Z'));
	/* the value alone, wrapped as {"v":VALUE}, scans back to the same bytes */
	char *wrapped = malloc(len + 6);
	assert(wrapped);
	memcpy(wrapped, "{\"v\":", 5);
	memcpy(wrapped + 5, text + off, len);
	wrapped[len + 5] = '}';
	size_t off2 = 0, len2 = 0;
	if (veil_json_member_span(wrapped, len + 6, "v", &off2, &len2) == 0)
		assert(off2 == 5 && len2 == len);
	free(wrapped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char why[256];
	check_span(text, size, "tcbInfo");
	check_span(text, size, "enclaveIdentity");
	check_span(text, size, "tcb_info");

	struct veil_collateral *c = veil_collateral_new();
	assert(c);
	(void)!veil_collateral_load_bundle(c, text, size, why, sizeof(why));
	/* a chain that is the input itself: PEM parsing of arbitrary text */
	(void)!veil_collateral_load_pcs_json(c, text, size, text, size, why, sizeof(why));
	(void)!veil_collateral_load_crl(c, data, size, NULL, 0, why, sizeof(why));
	veil_collateral_free(c);
	(void)!veil_collateral_check_json(text, size, why, sizeof(why));
	/* the signed value inside a PCS body, as the loader would take it */
	size_t off, len;
	if (veil_json_member_span(text, size, "tcbInfo", &off, &len) == 0)
		(void)!veil_collateral_check_json(text + off, len, why, sizeof(why));
	return 0;
}
