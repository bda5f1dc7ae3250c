/* Service manifests (kind: genservice) and Meshfiles (kind: mesh) as typed
 * models. Both are parsed from a struct ydoc and keep pointers into its arena:
 * a model is valid while its document is; free the document, not the model.
 * Secret definitions, environment entries, injection files and the name and
 * placeholder checks are the policy layer's (veil/secret_schema.h,
 * veil/policy_model.h): the manifest reads them into the same types. */
#ifndef VEIL_MANIFEST_H
#define VEIL_MANIFEST_H

#include <stddef.h>

#include "veil/policy_model.h"
#include "veil/secret_schema.h"
#include "veil/ytree.h"

struct veil_secret_import {
	const char *name;
	const char *from_namespace; /* NULL: not said in the manifest */
	const char *secret;         /* name in the exporting namespace */
	struct veil_pos pos;
};

struct veil_build {
	const char *name, *kind, *to, *pwd, *command, *requirements;
	/* the base image (a veil extension; docs/images.md): oci:DIR[:TAG],
	 * a registry reference (veil_base_is_registry) or scratch; NULL: by kind */
	const char *from;
	char **copy;
	size_t copy_count;
	char **run;
	size_t run_count;
	char **host_paths;
	size_t host_paths_count;
	int sign;
	/* globs (fnmatch without FNM_PATHNAME, relative to pwd: '*' also matches
	 * '/') of the copy files stored encrypted (a veil extension:
	 * docs/images.md) */
	char **encrypt;
	size_t encrypt_count;
	struct veil_pos encrypt_pos;
	/* the program's dedicated uid and gid (a veil extension: SCONE's policy
	 * language has no such field); 0: not named, since 0 is refused */
	unsigned user, group;
	struct veil_pos copy_pos;
};

struct veil_service_manifest {
	const char *file; /* as given */
	const char *api_version;
	struct veil_env_var *local;
	size_t local_count;
	struct veil_env_var *global;
	size_t global_count;
	struct veil_secret *secrets;
	size_t secret_count;
	struct veil_secret_import *imports;
	size_t import_count;
	struct veil_injection_file *inject;
	size_t inject_count;
	struct veil_build build;
};

struct veil_mesh_cas {
	const char *name, *cas_url, *cas_key, *tolerance, *mode, *cas_encryption_key;
	char **alias;
	size_t alias_count;
	struct veil_pos pos;
};

/* One env list of the Meshfile: service NULL for the flat list, else the
 * block's service ("global", "helm" or a service name). */
struct veil_mesh_env_block {
	const char *service;
	struct veil_env_var *vars;
	size_t count;
	struct veil_pos pos;
};

struct veil_mesh_service {
	const char *name;
	const char *image;
	char **image_secrets;
	size_t image_secrets_count;
	struct veil_pos pos;
};

struct veil_mesh {
	const char *file;
	const char *api_version;
	struct veil_mesh_cas *cas;
	size_t cas_count;
	const char *namespace_;
	char **tolerate;
	size_t tolerate_count;
	char **ignore_advisories;
	size_t ignore_advisories_count;
	struct veil_mesh_env_block *env;
	size_t env_count;
	struct veil_mesh_service *services;
	size_t service_count;
	struct veil_pos namespace_pos;
};

enum veil_doc_kind { VEIL_DOC_UNKNOWN = 0, VEIL_DOC_SERVICE, VEIL_DOC_MESH, VEIL_DOC_POLICY };

/* Reads apiVersion and kind of a parsed document (errors into d). */
enum veil_doc_kind veil_doc_kind(const struct ydoc *doc, struct veil_diags *d);

/* 1 when a base image reference names a registry image: docker://REF, or
 * HOST[:PORT]/REPO[:TAG|@DIGEST] whose HOST holds a '.' or ':' or is
 * localhost (so "python:3.11", "ftp://x" and "oci:../dir" are not). The reference itself
 * is checked where it is pulled (veil/registry.h). */
int veil_base_is_registry(const char *ref) VEIL_MUST_CHECK;
int veil_service_parse(const struct ydoc *doc, struct veil_service_manifest *out,
		       struct veil_diags *d) VEIL_MUST_CHECK;
int veil_mesh_parse(const struct ydoc *doc, struct veil_mesh *out,
		    struct veil_diags *d) VEIL_MUST_CHECK;
/* The CAS that holds the mesh's policy: the cas entry with alias "security",
 * else the first; NULL if the Meshfile names none. */
const struct veil_mesh_cas *veil_mesh_policy_cas(const struct veil_mesh *mesh);
/* Does `veil apply -f Meshfile` upload the policy? Not when that CAS says
 * mode: NoUpload (SCONE's mode; Upload, the default, does). */
int veil_mesh_uploads(const struct veil_mesh *mesh) VEIL_MUST_CHECK;

#endif
