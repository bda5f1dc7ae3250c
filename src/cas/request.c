#include <string.h>

#include <jansson.h>

#include "veil/cas_request.h"

int veil_policy_request_decode(const char *body, size_t size, struct veil_policy_request *r,
			       struct veil_diags *d)
{
	memset(r, 0, sizeof(*r));
	veil_buf_init(&r->canonical, 0);
	if (size == 0) {
		veil_diag(d, "empty body");
		return VEIL_EINVAL;
	}
	json_error_t err;
	json_t *j = json_loadb(body, size, JSON_REJECT_DUPLICATES, &err);
	const char *yaml = NULL;
	size_t yaml_size = 0;
	int rc = VEIL_EINVAL;
	if (!j) {
		veil_diag(d, "body is not valid JSON: %s (line %d, column %d)", err.text, err.line,
			  err.column);
		return rc;
	}
	if (json_unpack(j, "{s:s%}", "policy", &yaml, &yaml_size) || json_object_size(j) != 1) {
		veil_diag(d, "body must be a JSON object {\"policy\": \"<policy YAML>\"}");
		goto out;
	}
	if ((rc = ydoc_init(&r->doc, "policy")))
		goto out;
	r->have_doc = 1;
	if ((rc = ydoc_parse(&r->doc, yaml, yaml_size, &veil_policy_limits, d)))
		goto out;
	if ((rc = veil_policy_parse(&r->doc, &r->policy, d)))
		goto out;
	rc = yemit(r->doc.root, &r->canonical);
out:
	json_decref(j);
	return rc;
}

void veil_policy_request_free(struct veil_policy_request *r)
{
	if (r->have_doc)
		ydoc_free(&r->doc);
	veil_buf_free(&r->canonical);
	memset(r, 0, sizeof(*r));
}
