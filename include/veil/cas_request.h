/* Decoding a policy request body of the CAS: {"policy": "<policy YAML>"}.
 * Pure and bounded, so it can be fuzzed without a server. */
#ifndef VEIL_CAS_REQUEST_H
#define VEIL_CAS_REQUEST_H

#include "veil/policy_model.h"

struct veil_policy_request {
	struct ydoc doc; /* owns the parsed policy */
	struct veil_policy policy;
	struct veil_buf canonical; /* canonical YAML: what the CAS stores */
	int have_doc;
};

/* 0 on success; otherwise a reason for a 400 answer in d (never a value from
 * the policy beyond names and positions). Free with veil_policy_request_free
 * in both cases. */
int veil_policy_request_decode(const char *body, size_t size, struct veil_policy_request *out,
			       struct veil_diags *d) VEIL_MUST_CHECK;
void veil_policy_request_free(struct veil_policy_request *r);

/* POST /v1/attest: {"config_id": "NS/SERVICE", "evidence": "...",
 * "file_set_root": "HEX", "files": [{"path", "sha256"}...],
 * "image_root": "HEX"} (image_root: the image measurement record's SHA-256,
 * sent when the image has one) */
struct veil_attest_request {
	void *json; /* json_t*, owns the strings below */
	char ns[256];
	const char *service, *config_id, *evidence, *file_set_root;
	const char *image_root; /* NULL: not sent */
	void *files;            /* json_t* array or NULL */
};
int veil_attest_request_decode(const char *body, size_t size, struct veil_attest_request *out,
			       struct veil_diags *d) VEIL_MUST_CHECK;
void veil_attest_request_free(struct veil_attest_request *r);

/* POST /v1/attest/refused: {"config_id": "NS/SERVICE", "reason": "..."}, a
 * runtime's report that it refused to start after the CAS released its
 * configuration. The reason is at most VEIL_REFUSAL_REASON_MAX bytes of
 * UTF-8 without control characters. */
#define VEIL_REFUSAL_REASON_MAX 512
struct veil_refusal_report {
	void *json; /* json_t*, owns the strings below */
	char ns[256];
	const char *service, *config_id, *reason;
};
int veil_refusal_report_decode(const char *body, size_t size, struct veil_refusal_report *out,
			       struct veil_diags *d) VEIL_MUST_CHECK;
void veil_refusal_report_free(struct veil_refusal_report *r);

#endif
