/* The measurement record of a service image: what a CAS expects the runtime
 * to be, and the file-set root over every protected file.
 *
 * File-set root (documented in docs/manifests.md): SHA-256 over
 *   "veil-fileset-v1\n" followed, for each protected file sorted bytewise by
 *   its image path, by the line "<sha256 hex> <mode as 4 octal digits> <path>\n".
 * The lines are `sha256sum`-like so the root can be recomputed with a shell. */
#ifndef VEIL_IMAGE_H
#define VEIL_IMAGE_H

#include "veil/codecrypt.h"
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
	/* the whole image's measurement record's SHA-256
	 * (include/veil/image_record.h); empty until the image is built */
	char image_root[2 * VEIL_SHA256_SIZE + 1];
	/* paths the image's record excludes besides the fixed ones: the
	 * folders of the manifest's injection files (not written to
	 * measurement.yaml) */
	char **exclude;
	size_t exclude_count;
	/* encrypted code (include/veil/codecrypt.h): the CAS's key id and the
	 * image paths stored as ciphertext (sorted); code_key_id "": none */
	char code_key_id[VEIL_CODE_KEY_ID_HEX + 1];
	char **encrypted;
	size_t encrypted_count;
	/* where veil_measure_encrypt wrote the ciphertext (image path appended);
	 * the image's app layer takes those files from there. Not recorded. */
	char *encrypted_dir;
};

void veil_measurement_free(struct veil_measurement *m);

/* Hashes the `copy` files (relative to manifest_dir) and the runtime binary
 * (runtime_path NULL: not measured, runtime_sha256 left empty). */
int veil_measure_service(const struct veil_service_manifest *sm, const char *manifest_dir,
			 const char *runtime_path, struct veil_measurement *out,
			 struct veil_diags *d) VEIL_MUST_CHECK;

/* Encrypts the copy files that sm's build.encrypt names (relative to
 * manifest_dir) under key into dir (their image paths below it, 0644, each
 * replaced atomically), records key_id and the paths in m, and makes m's
 * file entries and file-set root describe the ciphertext: what the image
 * holds and veil-run verifies. A glob that matches no copy file is an
 * error. The plaintext is read into memory only. */
int veil_measure_encrypt(struct veil_measurement *m, const struct veil_service_manifest *sm,
			 const char *manifest_dir, const char *key_id,
			 const uint8_t key[static VEIL_CODE_KEY_SIZE], const char *dir,
			 struct veil_diags *d) VEIL_MUST_CHECK;

int veil_fileset_root(const struct veil_file_entry *files, size_t count,
		      char out_hex[static 2 * VEIL_SHA256_SIZE + 1]) VEIL_MUST_CHECK;

/* A YAML sequence of {path, mode ("0644"), sha256} maps: the record's and
 * the policy's file lists. */
struct yarena;
struct ynode;
struct ynode *veil_file_entries_node(struct yarena *a, const struct veil_file_entry *f,
				     size_t n) VEIL_MUST_CHECK;

/* Appends veil-run's prefetch list for m to out (src/runtime/verify.h: the
 * runtime files' paths, the program first; empty without a program). */
int veil_runtime_list(const struct veil_measurement *m, struct veil_buf *out) VEIL_MUST_CHECK;

/* Writes <target>/images/<name>/measurement.yaml, a copy of the manifest
 * (service.yaml) and the prefetch list (runtime-files) beside it; *out_dir
 * (caller frees) names the folder. */
int veil_measurement_write(const struct veil_measurement *m, const char *target,
			   const char *manifest_data, size_t manifest_size, char **out_dir,
			   struct veil_diags *d) VEIL_MUST_CHECK;
/* Parse a record already read into doc (checks the file-set root). */
int veil_measurement_parse(const struct ydoc *doc, struct veil_measurement *out,
			   struct veil_diags *d) VEIL_MUST_CHECK;
int veil_measurement_load(const char *path, struct veil_measurement *out,
			  struct veil_diags *d) VEIL_MUST_CHECK;

/* veil-run's PATH when the policy sets none; `veil apply` resolves the
 * command's program with it. */
#define VEIL_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The program the command names and its runtime files (src/image/runtime.c
 * says which), looked up under root ("/" or $VEIL_IMAGE_ROOT). No program
 * found: 0 with *program NULL. The caller owns the outputs. */
int veil_measure_runtime_files(const char *root, const char *command, char **program,
			       struct veil_file_entry **files, size_t *count,
			       struct veil_diags *d) VEIL_MUST_CHECK;
/* A folder's listing hash (format in src/image/runtime.c); VEIL_ENOENT if it
 * is absent. names (optional, caller frees each and the array) gets the
 * sorted lines. */
int veil_listing_sha256(const char *dir, uint8_t out[static VEIL_SHA256_SIZE], char ***names,
			size_t *count) VEIL_MUST_CHECK;
/* A file Python runs at start when it is in a site folder (*.pth, site.py,
 * sitecustomize.py, usercustomize.py). */
int veil_runtime_startup_file(const char *name);

/* The veil-run executable next to the running binary, or $VEIL_RUNTIME. */
char *veil_default_runtime_path(void) VEIL_MUST_CHECK;

/* --- OCI image build (src/image/oci.c, layer.c, build.c; docs/images.md) ---
 *
 * Base references (veil_image_build's base):
 *   oci:DIR[:TAG]   an OCI image layout folder; without TAG its index.json
 *                   must hold exactly one image (DIR cannot hold ':', as in
 *                   skopeo's oci: transport)
 *   docker://HOST[:PORT]/REPO[:TAG|@DIGEST], or the same without docker://
 *                   (HOST holds a '.' or ':' or is localhost): a registry
 *                   image, pulled with veil_image_pull (veil/registry.h) into
 *                   TARGET/cache/base first
 *   scratch         no base: the image holds only veil's layers (linux/amd64) */

/* Where veil-run is in every image, and the layer's mode. */
#define VEIL_IMAGE_RUNTIME_PATH "/usr/lib/veil/veil-run"
/* where the image keeps veil-run's prefetch list (its default) */
#define VEIL_IMAGE_RUNTIME_LIST "/etc/veil/runtime-files"
/* "sha256:" and 64 hex digits */
#define VEIL_DIGEST_SIZE (7 + 2 * VEIL_SHA256_SIZE + 1)

/* The base a build.kind stands for (docs/images.md has the table); NULL for
 * a kind without one. */
const char *veil_image_kind_base(const char *kind);

struct veil_registry_opts;

struct veil_image_opts {
	const char *base;         /* a base reference (above); required */
	const char *manifest_dir; /* the copy files' folder */
	const char *runtime_path; /* the veil-run measured */
	const char *target;       /* the target folder */
	long long epoch;          /* every time stamp (SOURCE_DATE_EPOCH, else 0) */
	/* how a registry base is pulled (mirrors, credentials, insecure
	 * registries); NULL: the defaults. Borrowed for the call. */
	const struct veil_registry_opts *registry;
};

/* An image built into a staging folder, not yet in place. Owns its strings;
 * veil_image_commit() swaps it in, veil_image_discard() removes it (both
 * release it; discarding a committed or zeroed one does nothing). */
struct veil_image_staged {
	char *staging;                 /* TARGET/images/.<name>.oci.new-<pid> */
	char *layout;                  /* TARGET/images/<name>/oci, where commit puts it */
	char *tag;                     /* org.opencontainers.image.ref.name: build.to's tag */
	char digest[VEIL_DIGEST_SIZE]; /* the image manifest's digest */
	char image_root[2 * VEIL_SHA256_SIZE + 1]; /* its measurement record's SHA-256 */
};

/* Builds m's image on opts->base (see docs/images.md for the layers and the
 * reproducibility rules). Every file is hashed again as it is archived and
 * must match m. Nothing under TARGET/images/<name>/ changes here. */
/* SOURCE_DATE_EPOCH (reproducible-builds.org): the images' time stamp in
 * decimal seconds, else 0; anything else is an error naming it. */
int veil_image_epoch(long long *out, struct veil_diags *d) VEIL_MUST_CHECK;

int veil_image_build(const struct veil_measurement *m, const struct veil_image_opts *opts,
		     struct veil_image_staged *out, struct veil_diags *d) VEIL_MUST_CHECK;
/* TARGET/images/<name>/oci replaced by the staged folder in one step. */
int veil_image_commit(struct veil_image_staged *s, struct veil_diags *d) VEIL_MUST_CHECK;
void veil_image_discard(struct veil_image_staged *s);

/* --- An image of plain files (src/image/files.c): veil's own control-plane
 * images. One layer on no base ("scratch"), written by the same layer and
 * layout writers with the same reproducibility rules as veil_image_build;
 * no measurement record, no veil-run. */
struct veil_image_file {
	const char *path; /* absolute, normalised image path */
	const char *src;  /* the host file copied there; NULL: a folder (0755) */
	unsigned mode;    /* a file's mode in the image */
};

/* Everything is borrowed for the call. */
struct veil_image_files_opts {
	const struct veil_image_file *files; /* any order; each path once */
	size_t file_count;
	const char *const *entrypoint; /* config.Entrypoint, NULL-terminated */
	const char *const *env;        /* config.Env ("NAME=value"), NULL-terminated */
	const char *user;              /* config.User ("UID:GID"), or NULL */
	const char *created_by;        /* the layer's history entry */
	const char *layout;            /* the layout folder veil_image_commit() replaces */
	const char *tag;               /* its org.opencontainers.image.ref.name */
	long long epoch;               /* every time stamp (SOURCE_DATE_EPOCH, else 0) */
};

/* Builds the image into a staging folder beside o->layout (created with
 * its parents); *out as veil_image_build's (image_root stays empty). */
int veil_image_build_files(const struct veil_image_files_opts *o, struct veil_image_staged *out,
			   struct veil_diags *d) VEIL_MUST_CHECK;

#endif
