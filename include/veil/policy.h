/* Deriving a security policy from a Meshfile and its services' manifests and
 * measurement records; canonical form and hash.
 *
 * The policy tree lives in the arena passed in; its canonical form is
 * yemit()'s output and its hash is SHA-256 over those bytes. */
#ifndef VEIL_POLICY_H
#define VEIL_POLICY_H

#include "veil/image.h"
#include "veil/manifest.h"

struct veil_mesh_member {
	const struct veil_mesh_service *svc;
	const struct veil_service_manifest *manifest;
	const struct veil_measurement *meas;
};

struct veil_derive_opts {
	int debug_mode; /* --mode debug: tolerate debug-mode */
};

/* Mesh env visible to one service: the flat list and the "global" and "helm"
 * blocks, overridden by the service's own block. Returns the variable's
 * value or NULL; *from (optional) receives where it was set. */
const struct veil_env_var *veil_mesh_lookup(const struct veil_mesh *mesh, const char *service,
					    const char *name, const char **block);

/* Fills {{VAR}} templates from the mesh env of `service` and the cas fields
 * ({{cas_<name>_cas_url}}, ...). Result in arena (or `in` itself when it has
 * no template); NULL with *why set when a template is malformed or names an
 * unknown variable. */
char *veil_template_fill(struct yarena *a, const struct veil_mesh *mesh, const char *service,
			 const char *in, const char **why) VEIL_MUST_CHECK;

int veil_policy_derive(struct yarena *a, const struct veil_mesh *mesh,
		       const struct veil_mesh_member *members, size_t count,
		       const struct veil_derive_opts *opts, struct ynode **out,
		       struct veil_diags *d) VEIL_MUST_CHECK;

/* Canonical bytes into *canonical (caller frees), hash as lower-case hex. */
int veil_policy_canonical(const struct ynode *policy, struct veil_buf *canonical,
			  char hash_hex[static 2 * VEIL_SHA256_SIZE + 1]) VEIL_MUST_CHECK;

#endif
