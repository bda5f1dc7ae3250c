/* The OCI image layout reader: index.json -> (manifest list ->) manifest ->
 * config + layers, as the OCI image-spec v1 lays them out
 * (https://github.com/opencontainers/image-spec/blob/v1.1.0/image-layout.md).
 * Every byte of a base layout is untrusted (src/image/oci.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "oci.h"

int oci_digest_valid(const char *s)
{
	return s && !strncmp(s, "sha256:", 7) && veil_is_sha256_hex(s + 7);
}

static const char *str_member(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

int oci_desc_parse(const json_t *o, const char *where, const char *what, struct oci_desc *out,
		   struct veil_diags *d)
{
	if (!json_is_object(o)) {
		veil_diag(d, "%s: %s is not a descriptor (a JSON object)", where, what);
		return VEIL_EINVAL;
	}
	const char *mt = str_member(o, "mediaType");
	const char *digest = str_member(o, "digest");
	const json_t *size = json_object_get(o, "size");
	if (!mt || !digest || !json_is_integer(size)) {
		veil_diag(d, "%s: %s lacks mediaType, digest or size", where, what);
		return VEIL_EINVAL;
	}
	if (!oci_digest_valid(digest)) {
		veil_diag(d,
			  "%s: %s has digest '%.80s'; veil reads sha256:<64 lower-case hex "
			  "digits> only",
			  where, what, digest);
		return VEIL_EINVAL;
	}
	if (json_integer_value(size) < 0) {
		veil_diag(d, "%s: %s has a negative size", where, what);
		return VEIL_EINVAL;
	}
	out->media_type = mt;
	snprintf(out->digest, sizeof(out->digest), "%s", digest);
	out->size = (uint64_t)json_integer_value(size);
	return 0;
}

static json_t *parse_json(const char *data, size_t size, const char *where, const char *what,
			  struct veil_diags *d)
{
	json_error_t e;
	if (size > OCI_MAX_JSON) {
		veil_diag(d, "%s: %s is larger than %u bytes", where, what, OCI_MAX_JSON);
		return NULL;
	}
	json_t *doc = json_loadb(data, size, JSON_REJECT_DUPLICATES, &e);
	if (!doc) {
		veil_diag(d, "%s: %s is not valid JSON: %s (line %d, column %d)", where, what,
			  e.text, e.line, e.column);
		return NULL;
	}
	if (!json_is_object(doc)) {
		veil_diag(d, "%s: %s is not a JSON object", where, what);
		json_decref(doc);
		return NULL;
	}
	/* an image config has no schemaVersion; indexes and manifests must */
	const json_t *v = json_object_get(doc, "schemaVersion");
	if (strcmp(what, "config") && (!json_is_integer(v) || json_integer_value(v) != 2)) {
		veil_diag(d, "%s: %s has no schemaVersion 2", where, what);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* The manifests array of an index, checked for type and length. */
static const json_t *index_entries(const json_t *doc, const char *where, const char *what,
				   struct veil_diags *d)
{
	const json_t *list = json_object_get(doc, "manifests");
	if (!json_is_array(list)) {
		veil_diag(d, "%s: %s has no 'manifests' list", where, what);
		return NULL;
	}
	if (json_array_size(list) > OCI_MAX_ENTRIES) {
		veil_diag(d, "%s: %s lists more than %d manifests", where, what, OCI_MAX_ENTRIES);
		return NULL;
	}
	return list;
}

static const char *ref_name(const json_t *entry)
{
	return str_member(json_object_get(entry, "annotations"), OCI_REF_NAME);
}

int oci_index_select(const char *data, size_t size, const char *where, const char *tag,
		     json_t **doc, struct oci_desc *out, struct veil_diags *d)
{
	json_t *idx = parse_json(data, size, where, "index.json", d);
	const json_t *list = idx ? index_entries(idx, where, "index.json", d) : NULL;
	const json_t *found = NULL;
	size_t i;
	json_t *e;
	if (!list)
		goto fail;
	json_array_foreach(list, i, e)
	{
		const char *name = ref_name(e);
		if (tag && (!name || strcmp(name, tag)))
			continue;
		if (found) {
			if (tag)
				veil_diag(d, "%s: index.json tags two images '%s'", where, tag);
			else
				veil_diag(d,
					  "%s: index.json holds %zu images; name one "
					  "(oci:DIR:TAG)",
					  where, json_array_size(list));
			goto fail;
		}
		found = e;
	}
	if (!found) {
		struct veil_buf tags;
		veil_buf_init(&tags, 4096);
		json_array_foreach(list, i, e)
		{
			const char *name = ref_name(e);
			if (name)
				veil_buf_printf(&tags, "%s'%.100s'", tags.size ? ", " : "", name);
		}
		if (tag)
			veil_diag(d, "%s: no image tagged '%s' in index.json (tags: %s)", where,
				  tag, tags.size ? tags.data : "none");
		else
			veil_diag(d, "%s: index.json holds no image", where);
		veil_buf_free(&tags);
		goto fail;
	}
	if (oci_desc_parse(found, where, "the index.json entry", out, d))
		goto fail;
	*doc = idx;
	return 0;
fail:
	json_decref(idx);
	return VEIL_EINVAL;
}

int oci_list_select(const char *data, size_t size, const char *where, json_t **doc,
		    struct oci_desc *out, struct veil_diags *d)
{
	json_t *idx = parse_json(data, size, where, "the manifest list", d);
	const json_t *list = idx ? index_entries(idx, where, "the manifest list", d) : NULL;
	size_t i;
	json_t *e;
	if (!list)
		goto fail;
	json_array_foreach(list, i, e)
	{
		const json_t *p = json_object_get(e, "platform");
		const char *os = str_member(p, "os"), *arch = str_member(p, "architecture");
		if (!os || !arch || strcmp(os, "linux") || strcmp(arch, "amd64"))
			continue;
		if (oci_desc_parse(e, where, "the manifest list's linux/amd64 entry", out, d))
			goto fail;
		*doc = idx;
		return 0;
	}
	struct veil_buf have;
	veil_buf_init(&have, 4096);
	json_array_foreach(list, i, e)
	{
		const json_t *p = json_object_get(e, "platform");
		veil_buf_printf(&have, "%s%.40s/%.40s", have.size ? ", " : "",
				str_member(p, "os") ? str_member(p, "os") : "?",
				str_member(p, "architecture") ? str_member(p, "architecture")
							      : "?");
	}
	veil_diag(d,
		  "%s: a manifest list without a linux/amd64 image (it has: %s); veil builds "
		  "linux/amd64 images",
		  where, have.size ? have.data : "nothing");
	veil_buf_free(&have);
fail:
	json_decref(idx);
	return VEIL_EINVAL;
}

void oci_base_free(struct oci_base *b)
{
	free(b->dir);
	json_decref(b->manifest);
	json_decref(b->config);
	memset(b, 0, sizeof(*b));
}

static int layer_type_known(const char *mt)
{
	return !strcmp(mt, OCI_MT_LAYER_GZIP) || !strcmp(mt, OCI_MT_LAYER_TAR) ||
	       !strcmp(mt, OCI_MT_LAYER_ZSTD) || !strcmp(mt, DOCKER_MT_LAYER_GZIP);
}

int oci_manifest_parse(const char *data, size_t size, const char *where, struct oci_base *out,
		       struct veil_diags *d)
{
	json_t *doc = parse_json(data, size, where, "the image manifest", d);
	if (!doc)
		return VEIL_EINVAL;
	const char *mt = str_member(doc, "mediaType");
	if (mt && strcmp(mt, OCI_MT_MANIFEST) && strcmp(mt, DOCKER_MT_MANIFEST)) {
		veil_diag(d, "%s: the image manifest has media type '%.100s', not %s", where, mt,
			  OCI_MT_MANIFEST);
		goto fail;
	}
	struct oci_desc config;
	if (oci_desc_parse(json_object_get(doc, "config"), where, "the manifest's config", &config,
			   d))
		goto fail;
	if (strcmp(config.media_type, OCI_MT_CONFIG) &&
	    strcmp(config.media_type, DOCKER_MT_CONFIG)) {
		veil_diag(d, "%s: the config has media type '%.100s', not %s", where,
			  config.media_type, OCI_MT_CONFIG);
		goto fail;
	}
	json_t *layers = json_object_get(doc, "layers");
	if (!json_is_array(layers)) {
		veil_diag(d, "%s: the image manifest has no 'layers' list", where);
		goto fail;
	}
	if (json_array_size(layers) > OCI_MAX_LAYERS) {
		veil_diag(d, "%s: the image manifest has more than %d layers", where,
			  OCI_MAX_LAYERS);
		goto fail;
	}
	size_t i;
	json_t *e;
	json_array_foreach(layers, i, e)
	{
		struct oci_desc l;
		char what[64];
		snprintf(what, sizeof(what), "layer %zu", i + 1);
		if (oci_desc_parse(e, where, what, &l, d))
			goto fail;
		if (!layer_type_known(l.media_type)) {
			veil_diag(d, "%s: %s has media type '%.100s', not a layer veil knows",
				  where, what, l.media_type);
			goto fail;
		}
	}
	out->manifest = doc;
	out->config_desc = config;
	out->layers = layers;
	out->layer_count = json_array_size(layers);
	return 0;
fail:
	json_decref(doc);
	return VEIL_EINVAL;
}

int oci_config_parse(const char *data, size_t size, const char *where, size_t layer_count,
		     json_t **out, struct veil_diags *d)
{
	json_t *doc = parse_json(data, size, where, "config", d);
	if (!doc)
		return VEIL_EINVAL;
	const json_t *rootfs = json_object_get(doc, "rootfs");
	const json_t *ids = json_object_get(rootfs, "diff_ids");
	const char *type = str_member(rootfs, "type");
	if (!str_member(doc, "os") || !str_member(doc, "architecture")) {
		veil_diag(d, "%s: the image config names no os or architecture", where);
		goto fail;
	}
	if (strcmp(str_member(doc, "os"), "linux") ||
	    strcmp(str_member(doc, "architecture"), "amd64")) {
		veil_diag(d, "%s: the image is for %.40s/%.40s; veil builds linux/amd64 images",
			  where, str_member(doc, "os"), str_member(doc, "architecture"));
		goto fail;
	}
	if (!type || strcmp(type, "layers") || !json_is_array(ids)) {
		veil_diag(d, "%s: the image config has no rootfs of type 'layers' with diff_ids",
			  where);
		goto fail;
	}
	if (json_array_size(ids) != layer_count) {
		veil_diag(d, "%s: the image config lists %zu diff_ids for %zu layers", where,
			  json_array_size(ids), layer_count);
		goto fail;
	}
	size_t i;
	json_t *e;
	json_array_foreach(ids, i, e)
	{
		if (!oci_digest_valid(json_string_value(e))) {
			veil_diag(d, "%s: diff_id %zu is not sha256:<64 hex digits>", where, i + 1);
			goto fail;
		}
	}
	const json_t *cfg = json_object_get(doc, "config");
	if (cfg && !json_is_object(cfg) && !json_is_null(cfg)) {
		veil_diag(d, "%s: the image config's 'config' is not an object", where);
		goto fail;
	}
	const json_t *env = json_object_get(cfg, "Env");
	if (env && !json_is_array(env) && !json_is_null(env)) {
		veil_diag(d, "%s: the image config's Env is not a list", where);
		goto fail;
	}
	json_array_foreach(env, i, e)
	{
		if (!json_is_string(e)) {
			veil_diag(d, "%s: the image config's Env holds a non-string", where);
			goto fail;
		}
	}
	const json_t *hist = json_object_get(doc, "history");
	if (hist && !json_is_array(hist)) {
		veil_diag(d, "%s: the image config's history is not a list", where);
		goto fail;
	}
	*out = doc;
	return 0;
fail:
	json_decref(doc);
	return VEIL_EINVAL;
}

int oci_ref_split(const char *ref, char **dir, char **tag, struct veil_diags *d)
{
	*dir = *tag = NULL;
	if (strncmp(ref, "oci:", 4) || !ref[4]) {
		veil_diag(d, "'%s' is not oci:DIR[:TAG]", ref);
		return VEIL_EINVAL;
	}
	const char *p = ref + 4, *colon = strchr(p, ':');
	*dir = colon ? strndup(p, (size_t)(colon - p)) : strdup(p);
	if (colon && !(*tag = strdup(colon + 1))) {
		free(*dir);
		*dir = NULL;
	}
	if (!*dir)
		return VEIL_ENOMEM;
	if (!**dir || (*tag && !**tag)) {
		veil_diag(d, "'%s': an empty folder or tag (oci:DIR[:TAG])", ref);
		free(*dir);
		free(*tag);
		*dir = *tag = NULL;
		return VEIL_EINVAL;
	}
	return 0;
}

static char *blob_path(const char *dir, const char *digest)
{
	struct veil_buf b;
	veil_buf_init(&b, 0);
	veil_buf_printf(&b, "%s/blobs/sha256/%s", dir, digest + 7);
	if (b.failed) {
		veil_buf_free(&b);
		return NULL;
	}
	return b.data;
}

/* A small blob (JSON) read whole, size and digest checked. */
static int blob_read(const char *dir, const struct oci_desc *desc, const char *where,
		     const char *what, char **data, size_t *size, struct veil_diags *d)
{
	if (desc->size > OCI_MAX_JSON) {
		veil_diag(d, "%s: %s %s is larger than %u bytes", where, what, desc->digest,
			  OCI_MAX_JSON);
		return VEIL_ELIMIT;
	}
	char *path = blob_path(dir, desc->digest);
	if (!path)
		return VEIL_ENOMEM;
	struct veil_diags local;
	veil_diags_init(&local);
	int rc = veil_read_file(path, OCI_MAX_JSON, data, size, &local);
	if (rc) {
		veil_diag(d, "%s: %s %s is missing or unreadable (%s)", where, what, desc->digest,
			  local.count ? local.msgs[0] : "read failed");
		veil_diags_free(&local);
		free(path);
		return rc;
	}
	veil_diags_free(&local);
	free(path);
	uint8_t h[VEIL_SHA256_SIZE];
	char hex[2 * VEIL_SHA256_SIZE + 1];
	if ((rc = veil_sha256(*data, *size, h)))
		goto fail;
	veil_hex(h, sizeof(h), hex);
	if (*size != desc->size || strcmp(hex, desc->digest + 7)) {
		veil_diag(d,
			  "%s: %s blob %s does not match its digest or size (corrupt or "
			  "changed)",
			  where, what, desc->digest);
		rc = VEIL_EINVAL;
		goto fail;
	}
	return 0;
fail:
	free(*data);
	*data = NULL;
	return rc;
}

static int media_is_list(const char *mt)
{
	return !strcmp(mt, OCI_MT_INDEX) || !strcmp(mt, DOCKER_MT_LIST);
}

int oci_base_load(const char *dir, const char *tag, const char *where, struct oci_base *out,
		  struct veil_diags *d)
{
	struct oci_base b = {0};
	json_t *idx = NULL, *list = NULL;
	char *data = NULL, *path = veil_path_join(dir, "index.json");
	size_t size = 0;
	struct oci_desc desc;
	int rc = VEIL_ENOMEM;
	if (!path || !(b.dir = strdup(dir)))
		goto out;
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		veil_diag(d, "%s: the base image's folder %s does not exist", where, dir);
		rc = VEIL_ENOENT;
		goto out;
	}
	struct veil_diags local;
	veil_diags_init(&local);
	rc = veil_read_file(path, OCI_MAX_JSON, &data, &size, &local);
	if (rc)
		veil_diag(d, "%s: not an OCI image layout (%s)", where,
			  local.count ? local.msgs[0] : "index.json unreadable");
	veil_diags_free(&local);
	if (rc)
		goto out;
	if ((rc = oci_index_select(data, size, where, tag, &idx, &desc, d)))
		goto out;
	free(data);
	data = NULL;
	if (media_is_list(desc.media_type)) {
		if ((rc = blob_read(dir, &desc, where, "manifest list", &data, &size, d)) ||
		    (rc = oci_list_select(data, size, where, &list, &desc, d)))
			goto out;
		free(data);
		data = NULL;
	}
	if (strcmp(desc.media_type, OCI_MT_MANIFEST) &&
	    strcmp(desc.media_type, DOCKER_MT_MANIFEST)) {
		veil_diag(d, "%s: the image is a '%.100s', not an image manifest", where,
			  desc.media_type);
		rc = VEIL_EINVAL;
		goto out;
	}
	if ((rc = blob_read(dir, &desc, where, "manifest", &data, &size, d)) ||
	    (rc = oci_manifest_parse(data, size, where, &b, d)))
		goto out;
	free(data);
	data = NULL;
	if ((rc = blob_read(dir, &b.config_desc, where, "config", &data, &size, d)) ||
	    (rc = oci_config_parse(data, size, where, b.layer_count, &b.config, d)))
		goto out;
	*out = b;
	memset(&b, 0, sizeof(b));
out:
	oci_base_free(&b);
	json_decref(idx);
	json_decref(list);
	free(data);
	free(path);
	return rc;
}

static int write_all_fd(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return VEIL_EIO;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int oci_blob_copy(const char *src_dir, const struct oci_desc *desc, const char *where,
		  const char *dst_dir, struct veil_diags *d)
{
	char *src = blob_path(src_dir, desc->digest), *dst = blob_path(dst_dir, desc->digest);
	int in = -1, out = -1, created = 0, rc = VEIL_ENOMEM;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const size_t bufsize = 1 << 20;
	uint8_t *buf = malloc(bufsize);
	uint64_t total = 0;
	if (!src || !dst || !ctx || !buf || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	if (access(dst, F_OK) == 0) { /* shared by content: the same layer twice */
		rc = 0;
		goto out;
	}
	rc = VEIL_EIO;
	if ((in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		veil_diag(d, "%s: layer blob %s is missing or unreadable: %s", where, desc->digest,
			  strerror(errno));
		goto out;
	}
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
		veil_diag(d, "%s: cannot create: %s", dst, strerror(errno));
		goto out;
	}
	created = 1;
	for (;;) {
		ssize_t n = read(in, buf, bufsize);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			veil_diag(d, "%s: layer blob %s: read failed: %s", where, desc->digest,
				  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > desc->size)
			break;
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
			goto out;
		if (write_all_fd(out, buf, (size_t)n)) {
			veil_diag(d, "%s: write failed: %s", dst, strerror(errno));
			goto out;
		}
	}
	uint8_t h[VEIL_SHA256_SIZE];
	char hex[2 * VEIL_SHA256_SIZE + 1];
	unsigned len = 0;
	if (!EVP_DigestFinal_ex(ctx, h, &len))
		goto out;
	veil_hex(h, sizeof(h), hex);
	if (total != desc->size || strcmp(hex, desc->digest + 7)) {
		veil_diag(d,
			  "%s: layer blob %s does not match its digest or size (corrupt or "
			  "changed)",
			  where, desc->digest);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (close(out) < 0) {
		out = -1;
		veil_diag(d, "%s: write failed: %s", dst, strerror(errno));
		goto out;
	}
	out = -1;
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (rc && created)
		unlink(dst);
	EVP_MD_CTX_free(ctx);
	free(buf);
	free(src);
	free(dst);
	return rc;
}

int oci_blob_write(const char *dir, const void *data, size_t size,
		   char digest[static VEIL_DIGEST_SIZE], struct veil_diags *d)
{
	uint8_t h[VEIL_SHA256_SIZE];
	char hex[2 * VEIL_SHA256_SIZE + 1];
	int rc = veil_sha256(data, size, h);
	if (rc)
		return rc;
	veil_hex(h, sizeof(h), hex);
	snprintf(digest, VEIL_DIGEST_SIZE, "sha256:%s", hex);
	char *path = blob_path(dir, digest);
	if (!path)
		return VEIL_ENOMEM;
	rc = veil_write_file_plain(path, data, size, 0644, d);
	free(path);
	return rc;
}
