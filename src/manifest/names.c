/* Document kinds (apiVersion, kind) shared by both manifests. Names, secret
 * definitions and placeholders are the policy layer's (veil/secret_schema.h,
 * veil/policy_model.h). */
#include <ctype.h>
#include <string.h>

#include "veil/manifest.h"

/* scone/5.8 and its patch versions (scone/5.8.0, scone/5.8.12: one format),
 * or veil/v1 */
static int api_version_supported(const char *api)
{
	if (!strcmp(api, "veil/v1") || !strcmp(api, "scone/5.8"))
		return 1;
	if (strncmp(api, "scone/5.8.", 10) || !api[10] || strlen(api + 10) > 9)
		return 0;
	for (const char *p = api + 10; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	return 1;
}

enum veil_doc_kind veil_doc_kind(const struct ydoc *doc, struct veil_diags *d)
{
	struct yctx c = {.file = doc->file, .d = d};
	const struct ynode *root = doc->root;
	if (yexpect(&c, root, YT_MAP, "the document"))
		return VEIL_DOC_UNKNOWN;
	const char *api = yget_str(&c, root, "apiVersion", 1, "top level");
	const char *kind = yget_str(&c, root, "kind", 1, "top level");
	if (!api || !kind)
		return VEIL_DOC_UNKNOWN;
	if (!api_version_supported(api)) {
		yerr(
		    &c, ymap_get(root, "apiVersion"),
		    "unsupported apiVersion '%s' (supported: scone/5.8, its patch versions such as "
		    "scone/5.8.0, veil/v1)",
		    api);
		return VEIL_DOC_UNKNOWN;
	}
	if (!strcmp(kind, "genservice"))
		return VEIL_DOC_SERVICE;
	if (!strcmp(kind, "mesh"))
		return VEIL_DOC_MESH;
	yerr(&c, ymap_get(root, "kind"), "unknown kind '%s' (supported: genservice, mesh)", kind);
	return VEIL_DOC_UNKNOWN;
}
