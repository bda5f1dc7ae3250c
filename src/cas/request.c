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
	if ((rc = veil_policy_parse(&r->doc, &r->policy, d)) ||
	    (rc = veil_policy_check_new(&r->policy, d)))
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

/* NAMESPACE/SERVICE into ns (cap bytes) and *service; 0 or -1 */
static int split_config_id(const char *config_id, char *ns, size_t cap, const char **service)
{
	const char *slash = strrchr(config_id, '/');
	if (!slash || slash == config_id || (size_t)(slash - config_id) >= cap ||
	    !veil_valid_object_name(slash + 1))
		return -1;
	memcpy(ns, config_id, (size_t)(slash - config_id));
	ns[slash - config_id] = '\0';
	*service = slash + 1;
	return veil_valid_namespace(ns) ? 0 : -1;
}

int veil_attest_request_decode(const char *body, size_t size, struct veil_attest_request *r,
			       struct veil_diags *d)
{
	memset(r, 0, sizeof(*r));
	json_error_t err;
	json_t *j = size ? json_loadb(body, size, JSON_REJECT_DUPLICATES, &err) : NULL,
	       *files = NULL;
	r->json = j;
	if (!j ||
	    json_unpack(j, "{s:s, s:s, s?:s, s?:o, s?:s}", "config_id", &r->config_id, "evidence",
			&r->evidence, "file_set_root", &r->file_set_root, "files", &files,
			"image_root", &r->image_root) ||
	    (files && !json_is_array(files))) {
		veil_diag(d, "body must be {\"config_id\": \"NAMESPACE/SERVICE\", \"evidence\": "
			     "\"...\", \"file_set_root\": \"HEX\", \"files\": [...], "
			     "\"image_root\": \"HEX\"}");
		return VEIL_EINVAL;
	}
	r->files = files;
	if (split_config_id(r->config_id, r->ns, sizeof(r->ns), &r->service)) {
		veil_diag(d, "config_id must be NAMESPACE/SERVICE");
		return VEIL_EINVAL;
	}
	return 0;
}

void veil_attest_request_free(struct veil_attest_request *r)
{
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

int veil_refusal_report_decode(const char *body, size_t size, struct veil_refusal_report *r,
			       struct veil_diags *d)
{
	memset(r, 0, sizeof(*r));
	json_error_t err;
	json_t *j = size ? json_loadb(body, size, JSON_REJECT_DUPLICATES, &err) : NULL;
	size_t reason_size = 0;
	r->json = j;
	if (!j ||
	    json_unpack(j, "{s:s, s:s%}", "config_id", &r->config_id, "reason", &r->reason,
			&reason_size) ||
	    json_object_size(j) != 2) {
		veil_diag(d, "body must be {\"config_id\": \"NAMESPACE/SERVICE\", \"reason\": "
			     "\"...\"}");
		return VEIL_EINVAL;
	}
	if (split_config_id(r->config_id, r->ns, sizeof(r->ns), &r->service)) {
		veil_diag(d, "config_id must be NAMESPACE/SERVICE");
		return VEIL_EINVAL;
	}
	if (reason_size == 0 || reason_size > VEIL_REFUSAL_REASON_MAX) {
		veil_diag(d, "reason must be 1 to %d bytes", VEIL_REFUSAL_REASON_MAX);
		return VEIL_EINVAL;
	}
	/* jansson checked the UTF-8; a NUL or another control character would
	 * pass it */
	for (size_t i = 0; i < reason_size; i++) {
		unsigned char ch = (unsigned char)r->reason[i];
		if (ch < 0x20 || ch == 0x7f) {
			veil_diag(d, "reason holds a control character");
			return VEIL_EINVAL;
		}
	}
	return 0;
}

void veil_refusal_report_free(struct veil_refusal_report *r)
{
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}
