/* The measurement record of a service image: what a CAS expects the runtime
 * to be, and the file-set root over every protected file.
 *
 * File-set root (documented in docs/manifests.md): SHA-256 over
 *   "veil-fileset-v1\n" followed, for each protected file sorted bytewise by
 *   its image path, by the line "<sha256 hex> <mode as 4 octal digits> <path>\n".
 * The lines are `sha256sum`-like so the root can be recomputed with a shell. */
#ifndef VEIL_IMAGE_H
#define VEIL_IMAGE_H

#include "veil/manifest.h"

struct veil_file_entry {
	char *path; /* absolute path inside the image */
	unsigned mode;
	uint8_t sha256[VEIL_SHA256_SIZE];
};

/* Owns every string and array it points to; release with veil_measurement_free(). */
struct veil_measurement {
	char *name;    /* build.name */
	char *image;   /* build.to */
	char *command; /* protected command line */
	char *pwd;
	char *manifest; /* absolute path of the manifest measured (may be NULL) */
	char runtime_sha256[2 * VEIL_SHA256_SIZE + 1]; /* the "mrenclave" */
	char file_set_root[2 * VEIL_SHA256_SIZE + 1];
	struct veil_file_entry *files;
	size_t file_count;
	/* what the command execs outside pwd (src/image/runtime.c): the program
	 * (absolute, symbolic links resolved; NULL when the command's program is
	 * not in the image or is a protected file) and the runtime files */
	char *program;
	struct veil_file_entry *runtime_files;
	size_t runtime_file_count;
};

void veil_measurement_free(struct veil_measurement *m);

/* Hashes the `copy` files (relative to manifest_dir) and the runtime binary
 * (runtime_path NULL: not measured, runtime_sha256 left empty). */
int veil_measure_service(const struct veil_service_manifest *sm, const char *manifest_dir,
			 const char *runtime_path, struct veil_measurement *out,
			 struct veil_diags *d);

int veil_fileset_root(const struct veil_file_entry *files, size_t count,
		      char out_hex[static 2 * VEIL_SHA256_SIZE + 1]);

/* Writes <target>/images/<name>/measurement.yaml and a copy of the manifest
 * (service.yaml) beside it; *out_dir (caller frees) names the folder. */
int veil_measurement_write(const struct veil_measurement *m, const char *target,
			   const char *manifest_data, size_t manifest_size, char **out_dir,
			   struct veil_diags *d);
/* Parse a record already read into doc (checks the file-set root). */
int veil_measurement_parse(const struct ydoc *doc, struct veil_measurement *out,
			   struct veil_diags *d);
int veil_measurement_load(const char *path, struct veil_measurement *out, struct veil_diags *d);

/* veil-run's PATH when the policy sets none; `veil apply` resolves the
 * command's program with it. */
#define VEIL_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The program the command names and its runtime files (src/image/runtime.c
 * says which), looked up under root ("/" or $VEIL_IMAGE_ROOT). No program
 * found: 0 with *program NULL. The caller owns the outputs. */
int veil_measure_runtime_files(const char *root, const char *command, char **program,
			       struct veil_file_entry **files, size_t *count, struct veil_diags *d);
/* A folder's listing hash (format in src/image/runtime.c); VEIL_ENOENT if it
 * is absent. names (optional, caller frees each and the array) gets the
 * sorted lines. */
int veil_listing_sha256(const char *dir, uint8_t out[static VEIL_SHA256_SIZE], char ***names,
			size_t *count);
/* A file Python runs at start when it is in a site folder (*.pth, site.py,
 * sitecustomize.py, usercustomize.py). */
int veil_runtime_startup_file(const char *name);

/* The veil-run executable next to the running binary, or $VEIL_RUNTIME. */
char *veil_default_runtime_path(void);

#endif
