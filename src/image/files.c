/* An image of plain files: one layer on no base, no measurement record and
 * no veil-run. veil's own control-plane images (`veil image control-plane`,
 * docs/deploy.md), which cannot attest to a CAS: they are the CAS and the
 * platform's attestation service. The layer, blob and layout writers are the
 * ones veil_image_build uses (layer.c, oci.c), with the same reproducibility
 * rules (docs/images.md, section 3): entries sorted bytewise, each folder
 * right before the first entry in it, uid/gid 0, one time stamp, gzip with a
 * fixed header, JSON documents compact with sorted keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oci.h"

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct veil_image_file *)a)->path,
		      ((const struct veil_image_file *)b)->path);
}

/* An absolute, normalised image path: no "//", ".", ".." or trailing '/'. */
static int image_path_valid(const char *p)
{
	if (p[0] != '/' || !p[1])
		return 0;
	for (const char *c = p; *c; c++) {
		if (*c != '/')
			continue;
		const char *s = c + 1;
		size_t len = strcspn(s, "/");
		if (len == 0 || (len == 1 && s[0] == '.') ||
		    (len == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
	}
	return 1;
}

static int files_layer(const struct veil_image_files_opts *o, const char *staging,
		       char diff_id[static VEIL_DIGEST_SIZE], struct oci_desc *desc,
		       struct veil_diags *d)
{
	struct veil_image_file *sorted = calloc(o->file_count ? o->file_count : 1, sizeof(*sorted));
	struct oci_layer *l = NULL;
	char *done = NULL;
	int rc = sorted ? 0 : VEIL_ENOMEM;
	if (!rc && o->file_count)
		memcpy(sorted, o->files, o->file_count * sizeof(*sorted));
	qsort(sorted, o->file_count, sizeof(*sorted), by_path);
	for (size_t i = 0; !rc && i < o->file_count; i++) {
		if (!image_path_valid(sorted[i].path)) {
			veil_diag(d, "image: '%s' is not an absolute, normalised path",
				  sorted[i].path);
			rc = VEIL_EINVAL;
		} else if (i && !strcmp(sorted[i].path, sorted[i - 1].path)) {
			veil_diag(d, "image: '%s' is named twice", sorted[i].path);
			rc = VEIL_EINVAL;
		}
	}
	if (!rc)
		rc = oci_layer_open(&l, staging, (time_t)o->epoch, d);
	for (size_t i = 0; !rc && i < o->file_count; i++) {
		const struct veil_image_file *f = &sorted[i];
		if (!f->src) {
			rc = oci_layer_add_parents(l, f->path, &done);
			continue;
		}
		char *dir = veil_dirname(f->path);
		rc = dir ? 0 : VEIL_ENOMEM;
		if (!rc && strcmp(dir, "/"))
			rc = oci_layer_add_parents(l, dir, &done);
		free(dir);
		if (!rc)
			rc = oci_layer_add_file(l, f->path, f->src, f->mode, NULL);
	}
	free(done);
	free(sorted);
	if (rc) {
		oci_layer_abort(l);
		return rc;
	}
	return oci_layer_close(l, diff_id, desc);
}

/* A JSON document as a blob: compact, keys sorted (as build.c's). */
static int json_blob(const char *dir, const json_t *doc, const char *media_type,
		     struct oci_desc *out, struct veil_diags *d)
{
	char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (!s)
		return VEIL_ENOMEM;
	out->media_type = media_type;
	out->size = strlen(s);
	int rc = oci_blob_write(dir, s, out->size, out->digest, d);
	free(s);
	return rc;
}

static int json_file(const char *dir, const char *name, const json_t *doc, struct veil_diags *d)
{
	char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	char *path = veil_path_join(dir, name);
	int rc = s && path ? veil_write_file_plain(path, s, strlen(s), 0644, d) : VEIL_ENOMEM;
	free(s);
	free(path);
	return rc;
}

static json_t *string_array(const char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; a && v && v[i]; i++)
		if (json_array_append_new(a, json_string(v[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *files_config(const struct veil_image_files_opts *o, const char *created,
			    const char *diff_id)
{
	json_t *c = json_pack("{s:o, s:o, s:s}", "Entrypoint", string_array(o->entrypoint), "Env",
			      string_array(o->env), "WorkingDir", "/");
	if (c && o->user && json_object_set_new(c, "User", json_string(o->user))) {
		json_decref(c);
		return NULL;
	}
	if (!c)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:[s]}, s:[{s:s, s:s, s:s}]}",
			 "architecture", "amd64", "os", "linux", "created", created, "config", c,
			 "rootfs", "type", "layers", "diff_ids", diff_id, "history", "created",
			 created, "created_by", o->created_by, "comment", "veil");
}

int veil_image_build_files(const struct veil_image_files_opts *o, struct veil_image_staged *out,
			   struct veil_diags *d)
{
	struct veil_image_staged s = {0};
	json_t *cfg = NULL, *man = NULL, *idx = NULL, *layout = NULL;
	char *parent = NULL, *blobs = NULL;
	char created[32], diff_id[VEIL_DIGEST_SIZE];
	struct oci_desc ldesc, cdesc, mdesc;
	int rc = VEIL_ENOMEM;
	time_t t = (time_t)o->epoch;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		veil_diag(d, "image: time stamp %lld out of range", o->epoch);
		return VEIL_EINVAL;
	}
	/* staged beside the layout, swapped in by veil_image_commit() */
	if (!(s.layout = strdup(o->layout)) || !(s.tag = strdup(o->tag)) ||
	    !(parent = veil_dirname(o->layout)) ||
	    asprintf(&s.staging, "%s.new-%ld", o->layout, (long)getpid()) < 0) {
		s.staging = NULL;
		goto out;
	}
	if (!(blobs = veil_path_join(s.staging, "blobs/sha256")))
		goto out;
	if (veil_remove_tree(s.staging)) { /* what a killed run left */
		veil_diag(d, "%s: cannot remove what an earlier build left", s.staging);
		rc = VEIL_EIO;
		goto out;
	}
	if ((rc = veil_mkdirs(parent, 0755, d)) || (rc = veil_mkdirs(blobs, 0755, d)) ||
	    (rc = files_layer(o, s.staging, diff_id, &ldesc, d)))
		goto out;
	if ((rc = json_blob(s.staging, cfg = files_config(o, created, diff_id), OCI_MT_CONFIG,
			    &cdesc, d)))
		goto out;
	man =
	    json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I}]}", "schemaVersion", 2,
		      "mediaType", OCI_MT_MANIFEST, "config", "mediaType", OCI_MT_CONFIG, "digest",
		      cdesc.digest, "size", (json_int_t)cdesc.size, "layers", "mediaType",
		      ldesc.media_type, "digest", ldesc.digest, "size", (json_int_t)ldesc.size);
	if ((rc = json_blob(s.staging, man, OCI_MT_MANIFEST, &mdesc, d)))
		goto out;
	idx = json_pack("{s:i, s:s, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2, "mediaType",
			OCI_MT_INDEX, "manifests", "mediaType", OCI_MT_MANIFEST, "digest",
			mdesc.digest, "size", (json_int_t)mdesc.size, "annotations", OCI_REF_NAME,
			s.tag);
	layout = json_pack("{s:s}", "imageLayoutVersion", "1.0.0");
	if ((rc = json_file(s.staging, "oci-layout", layout, d)) ||
	    (rc = json_file(s.staging, "index.json", idx, d)))
		goto out;
	snprintf(s.digest, sizeof(s.digest), "%s", mdesc.digest);
	*out = s;
	memset(&s, 0, sizeof(s));
	rc = 0;
out:
	veil_image_discard(&s);
	json_decref(cfg);
	json_decref(man);
	json_decref(idx);
	json_decref(layout);
	free(parent);
	free(blobs);
	return rc;
}
