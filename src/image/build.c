/* veil apply's image build: a base image read from an OCI layout, its layers
 * reused byte for byte, then one layer with the copy files under pwd and one
 * with veil-run, a config whose entrypoint is veil-run (no Cmd: the command
 * lives only in the policy), written as an OCI image layout folder
 * (docs/images.md). Built in a staging folder beside the old image and
 * swapped in whole by veil_image_commit(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci.h"
#include "veil/registry.h"

/* build.kind -> base image; a kind not listed needs build.from or --base.
 * Debian 12's Python in the official image, the interpreter the e2e
 * goldens' stand-in image mimics. */
static const struct {
	const char *kind, *base;
} kind_bases[] = {
    {"python", "docker://docker.io/library/python:3.11-slim-bookworm"},
};

const char *veil_image_kind_base(const char *kind)
{
	for (size_t i = 0; kind && i < VEIL_ARRAY_LEN(kind_bases); i++)
		if (!strcmp(kind, kind_bases[i].kind))
			return kind_bases[i].base;
	return NULL;
}

void veil_image_discard(struct veil_image_staged *s)
{
	if (s->staging)
		/* best effort: the next build removes it first */
		VEIL_UNCHECKED(veil_remove_tree(s->staging));
	free(s->staging);
	free(s->layout);
	free(s->tag);
	memset(s, 0, sizeof(*s));
}

int veil_image_commit(struct veil_image_staged *s, struct veil_diags *d)
{
	/* the blobs durable before the folder that names them appears */
	int rc = veil_sync_fs(s->staging, d);
	if (!rc)
		rc = veil_swap_dir(s->staging, s->layout, d);
	if (!rc) {
		free(s->staging);
		s->staging = NULL;
	}
	veil_image_discard(s);
	return rc;
}

/* build.to's tag: "latest" when it names none (a digest reference too). */
static char *ref_tag(const char *ref)
{
	const char *last = strrchr(ref, '/');
	last = last ? last + 1 : ref;
	size_t n = strcspn(last, "@");
	const char *colon = memchr(last, ':', n);
	return colon ? strndup(colon + 1, n - (size_t)(colon - last) - 1) : strdup("latest");
}

struct builder {
	const struct veil_measurement *m;
	const struct veil_image_opts *o;
	struct veil_diags *d;
	char *staging;
	json_t *layers;   /* the new manifest's layer descriptors */
	json_t *diff_ids; /* the new config's */
	json_t *history;
	char created[32];
};

static int add_layer(struct builder *b, const char *diff_id, const struct oci_desc *desc,
		     const char *created_by)
{
	json_t *l = json_pack("{s:s, s:s, s:I}", "mediaType", desc->media_type, "digest",
			      desc->digest, "size", (json_int_t)desc->size);
	json_t *h = json_pack("{s:s, s:s, s:s}", "created", b->created, "created_by", created_by,
			      "comment", "veil apply");
	if (!l || !h || json_array_append_new(b->layers, l) ||
	    json_array_append_new(b->diff_ids, json_string(diff_id)) ||
	    json_array_append_new(b->history, h))
		return VEIL_ENOMEM;
	return 0;
}

static int pwd_fit(const char *pwd, struct veil_diags *d)
{
	for (const char *p = pwd; *p; p++)
		if (p[0] == '/' && p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0')) {
			veil_diag(d, "build: pwd '%s' holds '..', which an image path cannot hold",
				  pwd);
			return VEIL_EINVAL;
		}
	return 0;
}

static int app_layer(struct builder *b)
{
	const struct veil_measurement *m = b->m;
	struct oci_layer *l = NULL;
	char *done = NULL;
	size_t plen = strcmp(m->pwd, "/") ? strlen(m->pwd) : 0;
	int rc = oci_layer_open(&l, b->staging, (time_t)b->o->epoch, b->d);
	if (rc)
		return rc;
	if (plen)
		rc = oci_layer_add_parents(l, m->pwd, &done);
	for (size_t i = 0; !rc && i < m->file_count; i++) {
		const char *path = m->files[i].path;
		/* the measurement maps manifest_dir/REL to pwd/REL */
		if (strncmp(path, m->pwd, plen) || path[plen] != '/') {
			veil_diag(b->d, "image: '%s' is not under pwd %s", path, m->pwd);
			rc = VEIL_EINVAL;
			break;
		}
		/* an encrypted file: its ciphertext, written by veil_measure_encrypt */
		int enc = 0;
		for (size_t k = 0; k < m->encrypted_count; k++)
			enc |= !strcmp(m->encrypted[k], path);
		char *src = enc ? veil_path_join(m->encrypted_dir, path + 1)
				: veil_path_join(b->o->manifest_dir, path + plen + 1);
		char *dir = veil_dirname(path);
		rc = src && dir ? 0 : VEIL_ENOMEM;
		if (!rc && strcmp(dir, "/"))
			rc = oci_layer_add_parents(l, dir, &done);
		if (!rc)
			rc = oci_layer_add_file(l, path, src, m->files[i].mode, m->files[i].sha256);
		free(src);
		free(dir);
	}
	free(done);
	if (rc) {
		oci_layer_abort(l);
		return rc;
	}
	char diff_id[VEIL_DIGEST_SIZE];
	struct oci_desc desc;
	if ((rc = oci_layer_close(l, diff_id, &desc)))
		return rc;
	char what[300];
	snprintf(what, sizeof(what), "veil: copy files into %.250s", m->pwd);
	return add_layer(b, diff_id, &desc, what);
}

static int runtime_layer(struct builder *b)
{
	struct oci_layer *l = NULL;
	char *done = NULL;
	uint8_t expect[VEIL_SHA256_SIZE];
	if (veil_unhex(b->m->runtime_sha256, expect, sizeof(expect))) {
		veil_diag(b->d, "image: the runtime was not measured");
		return VEIL_EINVAL;
	}
	int rc = oci_layer_open(&l, b->staging, (time_t)b->o->epoch, b->d);
	if (rc)
		return rc;
	/* veil-run's prefetch list (a hint: src/runtime/verify.h), then veil-run;
	 * entries in path order */
	struct veil_buf list;
	veil_buf_init(&list, 0);
	char *dir = NULL;
	if (b->m->program) {
		dir = veil_dirname(VEIL_IMAGE_RUNTIME_LIST);
		rc = dir ? oci_layer_add_parents(l, dir, &done) : VEIL_ENOMEM;
		if (!rc)
			rc = veil_runtime_list(b->m, &list);
		if (!rc)
			rc = oci_layer_add_bytes(l, VEIL_IMAGE_RUNTIME_LIST,
						 list.data ? list.data : "", list.size, 0644);
		free(dir);
	}
	veil_buf_free(&list);
	dir = rc ? NULL : veil_dirname(VEIL_IMAGE_RUNTIME_PATH);
	if (!rc)
		rc = dir ? oci_layer_add_parents(l, dir, &done) : VEIL_ENOMEM;
	if (!rc)
		rc = oci_layer_add_file(l, VEIL_IMAGE_RUNTIME_PATH, b->o->runtime_path, 0755,
					expect);
	free(dir);
	free(done);
	if (rc) {
		oci_layer_abort(l);
		return rc;
	}
	char diff_id[VEIL_DIGEST_SIZE];
	struct oci_desc desc;
	if ((rc = oci_layer_close(l, diff_id, &desc)))
		return rc;
	return add_layer(b, diff_id, &desc, "veil: " VEIL_IMAGE_RUNTIME_PATH);
}

/* The base's config with veil's entrypoint, environment, working folder and
 * layers. Anything else of the base (User, Labels, ExposedPorts, ...) stays. */
static json_t *make_config(struct builder *b, const json_t *base)
{
	json_t *cfg = base ? json_deep_copy(base)
			   : json_pack("{s:s, s:s, s:{s:s, s:[]}}", "architecture", "amd64", "os",
				       "linux", "rootfs", "type", "layers", "diff_ids");
	if (!cfg)
		return NULL;
	json_t *c = json_object_get(cfg, "config");
	if (!json_is_object(c)) {
		c = json_object();
		if (!c || json_object_set_new(cfg, "config", c))
			goto fail;
	}
	json_t *env = json_array(), *old = json_object_get(c, "Env");
	char *files_dir = NULL;
	size_t i;
	json_t *e;
	if (!env)
		goto fail;
	json_array_foreach(old, i, e)
	{
		if (strncmp(json_string_value(e), "VEIL_FILES_DIR=", 15) &&
		    json_array_append(env, e)) {
			json_decref(env);
			goto fail;
		}
	}
	if (asprintf(&files_dir, "VEIL_FILES_DIR=%s", b->m->pwd) < 0 ||
	    json_array_append_new(env, json_string(files_dir))) {
		free(files_dir);
		json_decref(env);
		goto fail;
	}
	free(files_dir);
	json_object_del(c, "Cmd");
	json_t *hist = json_object_get(cfg, "history");
	if (!json_is_array(hist) && json_object_set_new(cfg, "history", hist = json_array()))
		goto fail;
	json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
	if (json_object_set_new(c, "Env", env) ||
	    json_object_set_new(c, "Entrypoint", json_pack("[s]", VEIL_IMAGE_RUNTIME_PATH)) ||
	    json_object_set_new(c, "WorkingDir", json_string(b->m->pwd)) ||
	    json_object_set_new(cfg, "created", json_string(b->created)) ||
	    json_array_extend(ids, b->diff_ids) || json_array_extend(hist, b->history))
		goto fail;
	return cfg;
fail:
	json_decref(cfg);
	return NULL;
}

/* A JSON document as a blob: compact, keys sorted, so the same content
 * always gives the same digest. */
static int write_json_blob(const char *dir, const json_t *doc, struct oci_desc *out,
			   const char *media_type, struct veil_diags *d)
{
	char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!s)
		return VEIL_ENOMEM;
	out->media_type = media_type;
	out->size = strlen(s);
	int rc = oci_blob_write(dir, s, out->size, out->digest, d);
	free(s);
	return rc;
}

static int write_json_file(const char *dir, const char *name, const json_t *doc,
			   struct veil_diags *d)
{
	char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	char *path = veil_path_join(dir, name);
	int rc = s && path ? veil_write_file_plain(path, s, strlen(s), 0644, d) : VEIL_ENOMEM;
	free(s);
	free(path);
	return rc;
}

/* The base named by opts->base, read. A registry base is pulled first into
 * TARGET/cache/base, an OCI layout kept between builds (blobs already there
 * are rehashed, not fetched again), as the image named "base": the cache
 * holds the last base pulled under that name, and the build reads it at
 * once. */
static int load_base(const struct veil_image_opts *o, struct oci_base *base, struct veil_diags *d)
{
	char *dir = NULL, *tag = NULL;
	int rc;
	if (!strcmp(o->base, "scratch"))
		return 0;
	if (veil_base_is_registry(o->base)) {
		struct veil_registry_opts none = {0};
		if (!(dir = veil_path_join(o->target, "cache/base")) || !(tag = strdup("base"))) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		rc = veil_image_pull(o->base, dir, tag, o->registry ? o->registry : &none, d);
		if (rc)
			veil_diag(d, "base image '%s': not pulled; nothing was built", o->base);
	} else if (!strncmp(o->base, "oci:", 4)) {
		rc = oci_ref_split(o->base, &dir, &tag, d);
	} else {
		veil_diag(d,
			  "base image '%s': not a reference veil reads (oci:DIR[:TAG], "
			  "[docker://]HOST/REPO[:TAG] or scratch)",
			  o->base);
		return VEIL_EINVAL;
	}
	if (!rc) {
		char where[512];
		snprintf(where, sizeof(where), "base image %.500s", o->base);
		rc = oci_base_load(dir, tag, where, base, d);
	}
out:
	free(dir);
	free(tag);
	return rc;
}

int veil_image_build(const struct veil_measurement *m, const struct veil_image_opts *o,
		     struct veil_image_staged *out, struct veil_diags *d)
{
	struct oci_base base = {0};
	struct builder b = {.m = m, .o = o, .d = d};
	struct veil_image_staged s = {0};
	json_t *cfg = NULL, *man = NULL, *idx = NULL;
	char *images = veil_path_join(o->target, "images"), *blobs = NULL, *name_dir = NULL;
	int rc = VEIL_ENOMEM;
	time_t t = (time_t)o->epoch;
	struct tm tm;
	if (!gmtime_r(&t, &tm) ||
	    !strftime(b.created, sizeof(b.created), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		veil_diag(d, "image: time stamp %lld out of range", o->epoch);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (!images || !(name_dir = veil_path_join(images, m->name)) ||
	    !(s.layout = veil_path_join(name_dir, "oci")) || !(s.tag = ref_tag(m->image)) ||
	    asprintf(&s.staging, "%s/.%s.oci.new-%ld", images, m->name, (long)getpid()) < 0) {
		s.staging = NULL;
		goto out;
	}
	if ((rc = pwd_fit(m->pwd, d)) || (rc = load_base(o, &base, d)))
		goto out;
	b.staging = s.staging;
	if (!(blobs = veil_path_join(s.staging, "blobs/sha256")) || !(b.layers = json_array()) ||
	    !(b.diff_ids = json_array()) || !(b.history = json_array())) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (veil_remove_tree(s.staging)) { /* what a killed run left */
		veil_diag(d, "%s: cannot remove what an earlier build left", s.staging);
		rc = VEIL_EIO;
		goto out;
	}
	if ((rc = veil_mkdirs(blobs, 0755, d)))
		goto out;
	/* the base's layers, verified as they are copied */
	size_t i;
	json_t *e;
	json_array_foreach(base.layers, i, e)
	{
		struct oci_desc desc;
		char where[512];
		snprintf(where, sizeof(where), "base image %.500s", o->base);
		if ((rc = oci_desc_parse(e, where, "a layer", &desc, d)) ||
		    (rc = oci_blob_copy(base.dir, &desc, where, s.staging, d)))
			goto out;
		json_t *copy = json_deep_copy(e);
		/* the same bytes under the OCI name */
		if (!copy ||
		    (!strcmp(desc.media_type, DOCKER_MT_LAYER_GZIP) &&
		     json_object_set_new(copy, "mediaType", json_string(OCI_MT_LAYER_GZIP)))) {
			json_decref(copy);
			rc = VEIL_ENOMEM;
			goto out;
		}
		if (json_array_append_new(b.layers, copy)) {
			rc = VEIL_ENOMEM;
			goto out;
		}
	}
	if ((rc = app_layer(&b)) || (rc = runtime_layer(&b)))
		goto out;
	/* the whole image's measurement record, the last layer: it measures
	 * every layer below it (src/image/rootfs.c) */
	char rec_diff_id[VEIL_DIGEST_SIZE];
	struct oci_desc rec_desc;
	if ((rc = oci_measurement_layer(s.staging, b.layers, m, (time_t)o->epoch, rec_diff_id,
					&rec_desc, s.image_root, d)) ||
	    (rc = add_layer(&b, rec_diff_id, &rec_desc, "veil: image measurement record")))
		goto out;
	struct oci_desc cdesc, mdesc;
	rc = VEIL_ENOMEM;
	if (!(cfg = make_config(&b, base.config)))
		goto out;
	if ((rc = write_json_blob(s.staging, cfg, &cdesc, OCI_MT_CONFIG, d)))
		goto out;
	rc = VEIL_ENOMEM;
	if (!(man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:O}", "schemaVersion", 2, "mediaType",
			      OCI_MT_MANIFEST, "config", "mediaType", OCI_MT_CONFIG, "digest",
			      cdesc.digest, "size", (json_int_t)cdesc.size, "layers", b.layers)))
		goto out;
	if ((rc = write_json_blob(s.staging, man, &mdesc, OCI_MT_MANIFEST, d)))
		goto out;
	rc = VEIL_ENOMEM;
	if (!(idx = json_pack("{s:i, s:s, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2,
			      "mediaType", OCI_MT_INDEX, "manifests", "mediaType", OCI_MT_MANIFEST,
			      "digest", mdesc.digest, "size", (json_int_t)mdesc.size, "annotations",
			      OCI_REF_NAME, s.tag)))
		goto out;
	json_t *layout = json_pack("{s:s}", "imageLayoutVersion", "1.0.0");
	rc = layout ? write_json_file(s.staging, "oci-layout", layout, d) : VEIL_ENOMEM;
	json_decref(layout);
	if (rc || (rc = write_json_file(s.staging, "index.json", idx, d)))
		goto out;
	snprintf(s.digest, sizeof(s.digest), "%s", mdesc.digest);
	*out = s;
	memset(&s, 0, sizeof(s));
	rc = 0;
out:
	veil_image_discard(&s);
	oci_base_free(&base);
	json_decref(b.layers);
	json_decref(b.diff_ids);
	json_decref(b.history);
	json_decref(cfg);
	json_decref(man);
	json_decref(idx);
	free(images);
	free(blobs);
	free(name_dir);
	return rc;
}

/* SOURCE_DATE_EPOCH (reproducible-builds.org): decimal seconds, else 0. */
int veil_image_epoch(long long *out, struct veil_diags *d)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	char *end = NULL;
	*out = 0;
	if (!s || !*s)
		return 0;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < 0 || v > 253402300799LL || s[0] < '0' || s[0] > '9') {
		veil_diag(d, "SOURCE_DATE_EPOCH '%s' is not a number of seconds since 1970", s);
		return VEIL_EINVAL;
	}
	*out = v;
	return 0;
}
