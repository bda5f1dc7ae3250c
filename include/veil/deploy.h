/* Helm chart and plain Kubernetes manifests for a mesh.
 *
 * Templates use a small subset of Helm's language, which veil itself
 * renders for --format manifests: a value ({{ .Values.a.b }},
 * {{ .Release.Name }} or {{ .Release.Service }}) piped through any of
 * `quote`, `trunc N` and `trimSuffix "S"`, and
 * {{- toYaml .Values.a.b | nindent N }}. */
#ifndef VEIL_DEPLOY_H
#define VEIL_DEPLOY_H

#include "veil/policy.h"

enum { VEIL_OUT_HELM = 1, VEIL_OUT_YAML = 2 };

/* Writes TARGET/helm and/or TARGET/manifests. cas_key: the CAS key hash the
 * pods' veil-run pins (values cas.key; "" or NULL leaves it to be set).
 * outputs 0: only the checks (names, ports, volumes); nothing is written and
 * no warning printed, so a caller can check before its first write. */
int veil_deploy_write(const struct veil_mesh *mesh, const struct veil_mesh_member *members,
		      size_t count, const char *policy_hash, const char *cas_key,
		      const char *target, unsigned outputs, struct veil_diags *d) VEIL_MUST_CHECK;

/* What a template's .Release names: Helm's release name and service
 * ("Helm"); --format manifests renders with the chart name and "veil". */
struct veil_release {
	const char *name, *service;
};

/* Renders a template of the subset above against a values tree and a
 * release. On failure *why (static) says what was refused. */
int veil_template_render(const char *tpl, const struct ynode *values,
			 const struct veil_release *release, struct veil_buf *out,
			 const char **why) VEIL_MUST_CHECK;

/* Kubernetes DNS-1123 label from a name: lower case, '_' and '.' -> '-'. */
int veil_k8s_name(const char *in, char out[static 64]) VEIL_MUST_CHECK;

#endif
