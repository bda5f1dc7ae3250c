/* The registry side of the image builder (include/veil/image.h): not
 * implemented yet. The registry client (issue 10, item 4: the OCI
 * distribution API over libcurl, src/image/registry.c) replaces this file;
 * these two functions are its only call sites. */
#include "veil/image.h"

int veil_image_pull(const char *ref, const char *layout_dir, char **tag, struct veil_diags *d)
{
	(void)layout_dir;
	*tag = NULL;
	veil_diag(d,
		  "base image '%s': pulling from a registry is not available yet (planned); "
		  "copy it into an OCI layout folder (e.g. skopeo copy %s oci:DIR:TAG) and "
		  "give --base oci:DIR:TAG",
		  ref, ref);
	return VEIL_EINVAL;
}

int veil_image_push(const char *layout_dir, const char *tag, const char *ref, struct veil_diags *d)
{
	(void)layout_dir;
	(void)tag;
	(void)ref;
	(void)d;
	return VEIL_ENOENT; /* the caller says "not implemented" and goes on */
}
