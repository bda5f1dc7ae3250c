/* The OCI image layout reader (src/image/oci.c) and the layer writer
 * (src/image/layer.c), internal to the image builder. Every JSON document
 * and blob of a base layout is untrusted: documents are size-limited,
 * digests are checked for form before they name a file, and every blob is
 * hashed as it is read and compared with the digest and size that name it.
 *
 * Ownership: struct oci_base owns its JSON values (json_decref) and strings;
 * release it with oci_base_free(). */
#ifndef VEIL_IMAGE_OCI_H
#define VEIL_IMAGE_OCI_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "veil/image.h"

#define OCI_MAX_JSON (4u << 20) /* index.json, a manifest, a config */
#define OCI_MAX_LAYERS 500      /* Docker stops at 127 */
#define OCI_MAX_ENTRIES 1000    /* descriptors in one index */

#define OCI_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define OCI_MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define OCI_MT_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define OCI_MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define DOCKER_MT_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_MT_CONFIG "application/vnd.docker.container.image.v1+json"
#define DOCKER_MT_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define OCI_REF_NAME "org.opencontainers.image.ref.name"

struct oci_desc {
	const char *media_type; /* borrowed from the JSON it was read from */
	char digest[VEIL_DIGEST_SIZE];
	uint64_t size;
};

/* "sha256:" and 64 lower-case hex digits: the only form that may name a
 * file under blobs/. */
int oci_digest_valid(const char *s);

/* Reads {mediaType, digest, size} of a descriptor; what names it in errors. */
int oci_desc_parse(const json_t *o, const char *where, const char *what, struct oci_desc *out,
		   struct veil_diags *d) VEIL_MUST_CHECK;

/* index.json (or a manifest list): the descriptor tagged tag, or with tag
 * NULL the only one. where names the layout in errors. */
int oci_index_select(const char *data, size_t size, const char *where, const char *tag,
		     json_t **doc, struct oci_desc *out, struct veil_diags *d) VEIL_MUST_CHECK;
/* A manifest list / image index: its linux/amd64 image. */
int oci_list_select(const char *data, size_t size, const char *where, json_t **doc,
		    struct oci_desc *out, struct veil_diags *d) VEIL_MUST_CHECK;

struct oci_base {
	char *dir; /* the layout folder; NULL for scratch */
	json_t *manifest, *config;
	struct oci_desc config_desc;
	json_t *layers; /* the manifest's layer descriptors, verbatim (borrowed) */
	size_t layer_count;
};
void oci_base_free(struct oci_base *b);

/* An image manifest: config and layer descriptors (media types checked). */
int oci_manifest_parse(const char *data, size_t size, const char *where, struct oci_base *out,
		       struct veil_diags *d) VEIL_MUST_CHECK;
/* An image config: an object with os, architecture and rootfs.diff_ids
 * (one per layer of the manifest, layer_count). */
int oci_config_parse(const char *data, size_t size, const char *where, size_t layer_count,
		     json_t **out, struct veil_diags *d) VEIL_MUST_CHECK;

/* Splits oci:DIR[:TAG]; the caller frees *dir and *tag (NULL: none given). */
int oci_ref_split(const char *ref, char **dir, char **tag, struct veil_diags *d) VEIL_MUST_CHECK;
/* Reads the image oci:DIR[:TAG] names: index, manifest, config, each blob's
 * digest and size checked. Layers are checked as they are copied. */
int oci_base_load(const char *dir, const char *tag, const char *where, struct oci_base *out,
		  struct veil_diags *d) VEIL_MUST_CHECK;
/* Copies blob desc of layout src_dir into layout dst_dir, checking its
 * digest and size on the way. */
int oci_blob_copy(const char *src_dir, const struct oci_desc *desc, const char *where,
		  const char *dst_dir, struct veil_diags *d) VEIL_MUST_CHECK;
/* Writes data as a blob of layout dir; its digest into digest. */
int oci_blob_write(const char *dir, const void *data, size_t size,
		   char digest[static VEIL_DIGEST_SIZE], struct veil_diags *d) VEIL_MUST_CHECK;

/* A layer: an uncompressed tar (pax where ustar cannot hold an entry)
 * streamed through zlib into blobs/sha256/ of a layout, hashed twice on the
 * way (diff_id: the tar; digest: the gzip stream). */
struct oci_layer;
int oci_layer_open(struct oci_layer **out, const char *layout, time_t mtime,
		   struct veil_diags *d) VEIL_MUST_CHECK;
/* A folder entry (0755, 0:0) for an image path ("/a/b"). */
int oci_layer_add_dir(struct oci_layer *l, const char *image_path) VEIL_MUST_CHECK;
/* Adds each folder of dir ("/a/b", itself included) that the previous call
 * did not (*done: the folder it left off in, owned, freed by the caller at
 * the end). The callers add paths sorted, so a folder once left is never
 * needed again. */
int oci_layer_add_parents(struct oci_layer *l, const char *dir, char **done) VEIL_MUST_CHECK;
/* A regular file from src; its SHA-256 as it was read must equal expect
 * (NULL: not checked). */
int oci_layer_add_file(struct oci_layer *l, const char *image_path, const char *src, unsigned mode,
		       const uint8_t *expect) VEIL_MUST_CHECK;
/* A regular file holding size bytes of data. */
int oci_layer_add_bytes(struct oci_layer *l, const char *image_path, const void *data, size_t size,
			unsigned mode) VEIL_MUST_CHECK;
/* Finishes the layer; frees l in any case. On success the blob is in place. */
int oci_layer_close(struct oci_layer *l, char diff_id[static VEIL_DIGEST_SIZE],
		    struct oci_desc *out) VEIL_MUST_CHECK;
void oci_layer_abort(struct oci_layer *l);

/* The whole image's measurement record (src/image/rootfs.c; format in
 * include/veil/image_record.h): the root file system that the layers
 * (descriptors in layers, blobs in layout) make, applied in order, appended
 * to out. exclude: paths excluded besides the fixed ones (the injection
 * files' folders), normalised here; "/" is refused. */
int oci_rootfs_record(const char *layout, const json_t *layers, const char *const *exclude,
		      size_t exclude_count, struct veil_buf *out,
		      struct veil_diags *d) VEIL_MUST_CHECK;
/* That record (m->exclude excluded too) written as one more layer of
 * layout: its diff_id and descriptor, and the record's SHA-256 in root_hex. */
int oci_measurement_layer(const char *layout, const json_t *layers,
			  const struct veil_measurement *m, time_t mtime,
			  char diff_id[static VEIL_DIGEST_SIZE], struct oci_desc *out,
			  char root_hex[static 2 * VEIL_SHA256_SIZE + 1],
			  struct veil_diags *d) VEIL_MUST_CHECK;

#endif
