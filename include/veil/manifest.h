/* Service manifests (kind: genservice) and Meshfiles (kind: mesh) as typed
 * models. Both are parsed from a struct ydoc and keep pointers into its arena:
 * a model is valid while its document is; free the document, not the model. */
#ifndef VEIL_MANIFEST_H
#define VEIL_MANIFEST_H

#include <stddef.h>

#include "veil/ytree.h"

struct veil_pos {
	unsigned line, col;
};

struct veil_env_var {
	const char *name;
	const char *value;    /* NULL: no value given (global without default) */
	struct veil_pos pos;  /* of the name */
	struct veil_pos vpos; /* of the value (the name's if none) */
};

struct veil_secret {
	const char *name;
	const char *kind; /* ascii binary private-key public-key x509 x509-ca explicit */
	unsigned long long size;
	int has_size;
	const char *value; /* explicit value written by the owner */
	const char *private_key;
	const char *issuer;
	const char *common_name;
	const char *valid_for;
	const char *algorithm; /* private-key: P-256, P-384, Ed25519, RSA-2048, RSA-3072 */
	char **dns;
	size_t dns_count;
	/* export entries: the importer namespace and its identity, consent
	 * being bound to the identity, not to the name: export_owner[i] (the
	 * importer's owner key hash) and/or export_session_hash[i] (the
	 * importer's policy hash), NULL when the entry does not name one */
	char **export_to;
	char **export_owner;
	char **export_session_hash;
	size_t export_count;
	int migrate;
	int is_global;
	const char *import_namespace; /* policy secrets: import: {namespace, secret} */
	const char *import_secret;
	struct veil_pos pos;
};

struct veil_secret_import {
	const char *name;
	const char *from_namespace; /* NULL: not said in the manifest */
	const char *secret;         /* name in the exporting namespace */
	struct veil_pos pos;
};

struct veil_injection_file {
	const char *path;
	const char *content;
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
int veil_base_is_registry(const char *ref);
int veil_service_parse(const struct ydoc *doc, struct veil_service_manifest *out,
		       struct veil_diags *d);
int veil_mesh_parse(const struct ydoc *doc, struct veil_mesh *out, struct veil_diags *d);
/* The CAS that holds the mesh's policy: the cas entry with alias "security",
 * else the first; NULL if the Meshfile names none. */
const struct veil_mesh_cas *veil_mesh_policy_cas(const struct veil_mesh *mesh);
/* Does `veil apply -f Meshfile` upload the policy? Not when that CAS says
 * mode: NoUpload (SCONE's mode; Upload, the default, does). */
int veil_mesh_uploads(const struct veil_mesh *mesh);

/* Names: env variables [A-Za-z_][A-Za-z0-9_]*, secrets [A-Za-z0-9_-]+ (no
 * dots: a dot starts a placeholder suffix), services and namespaces
 * [A-Za-z0-9][A-Za-z0-9_.-]* up to 128 bytes. */
int veil_valid_env_name(const char *s);
int veil_valid_secret_name(const char *s);
int veil_valid_object_name(const char *s);

/* valid_for of a certificate secret, read the same way by `veil check`, the
 * policy validator and the CAS: one or more "<number> <unit>" parts as SCONE
 * writes them ("90 days", "1 year 6 months", "36h"; units s, m, h, d, w, M,
 * y and their long names, a month 30.44 days, a year 365.25), or a bare
 * number of days. 0 and *seconds (1 s to VEIL_VALID_FOR_MAX_DAYS days) or
 * VEIL_EINVAL. VEIL_VALID_FOR_FORMS says so in messages. */
#define VEIL_VALID_FOR_MAX_DAYS 36500LL
#define VEIL_VALID_FOR_FORMS                                                                       \
	"a duration such as 90 days, 1 year 6 months or 36h (units s, m, h, d, w, M, y or "        \
	"their names: seconds, minutes, hours, days, weeks, months, years), or a number of days; " \
	"at most 36500 days"
int veil_valid_for_parse(const char *s, long long *seconds);

/* A command is one string, the program and its arguments separated by
 * blanks, as SCONE writes it (veil-run splits it, no shell); a YAML list is
 * refused with this reason. */
#define VEIL_COMMAND_FORM                                                                          \
	" (the program and its arguments separated by blanks, as in SCONE: command: python3 "      \
	"app.py --port 80)"

/* SCONE renders $$SCONE::name$$ in a service's command; veil refuses it
 * (manifest, policy validator and CAS alike): outside a TEE the command line
 * of the started program is readable by the node (ps, /proc/PID/cmdline).
 * The reason, for messages after "'command' holds a secret placeholder". */
#define VEIL_COMMAND_PLACEHOLDER_REFUSED                                                           \
	"; veil does not put secrets on a command line, which the node can read (ps, "             \
	"/proc/PID/cmdline): pass the secret in the environment or an injection file"

/* The keys of a secret definition that do not fit its kind, by one table
 * for veil check, the policy validator and the CAS: fn is called for each key
 * given that does not apply to the kind (needed 0) and each key the kind
 * needs that is missing (needed 1). Returns how many, -1 for an unknown kind.
 * Keys: size, value, private_key, issuer, common_name, valid_for, algorithm,
 * dns. */
int veil_secret_keys_misfit(const struct veil_secret *s,
			    void (*fn)(const char *key, int needed, void *arg), void *arg);

/* An explicit value of a binary secret is hex, as SCONE writes it (its java
 * tutorial: `value: |` then `feedfeed00`): an even number of hex digits of
 * either case, at least two, blanks and line breaks around them ignored.
 * 0 with the digits' offset and length, or VEIL_EINVAL. */
int veil_binary_value_span(const char *value, size_t *start, size_t *len);
#define VEIL_BINARY_VALUE_FORM                                                                     \
	"an even number of hex digits (an explicit binary value is hex, as in SCONE)"

/* Secret placeholders: $$SCONE::name$$ or $$SCONE::name:suffix$$ (also .suffix) */
struct veil_placeholder {
	size_t start, end; /* byte range of the whole placeholder in the string */
	char name[129];
	char suffix[17]; /* "" for none */
};
/* Calls fn for each placeholder in s; returns VEIL_EINVAL with *why set for a
 * malformed one. fn returning non-zero stops the walk with that value. */
int veil_placeholders(const char *s, int (*fn)(const struct veil_placeholder *, void *), void *arg,
		      const char **why);
int veil_placeholder_suffix_valid(const char *suffix);

#endif
