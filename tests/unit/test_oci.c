/* Unit tests: the OCI layout reader's parsers (src/image/oci.c), malformed
 * documents first, the layer writer's check that a file archived is the
 * file measured (src/image/layer.c), and the plain-files image of the
 * control plane (src/image/files.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "oci.h"

static struct veil_diags diags;

static int setup(void **state)
{
	(void)state;
	veil_diags_init(&diags);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	veil_diags_free(&diags);
	return 0;
}

/* the last message holds want */
static void said(const char *want)
{
	assert_true(diags.count > 0);
	if (!strstr(diags.msgs[diags.count - 1], want))
		fail_msg("expected '%s' in '%s'", want, diags.msgs[diags.count - 1]);
}

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DESC(mt) "{\"mediaType\":\"" mt "\",\"digest\":\"sha256:" D64 "\",\"size\":5"

static int index_select(const char *json, const char *tag)
{
	json_t *doc = NULL;
	struct oci_desc desc;
	int rc = oci_index_select(json, strlen(json), "L", tag, &doc, &desc, &diags);
	json_decref(doc);
	return rc;
}

static void test_index_malformed_refused(void **state)
{
	(void)state;
	assert_int_not_equal(index_select("", "v1"), 0);
	said("L: index.json is not valid JSON");
	assert_int_not_equal(index_select("[]", "v1"), 0);
	said("L: index.json is not a JSON object");
	assert_int_not_equal(index_select("{\"manifests\":[]}", "v1"), 0);
	said("L: index.json has no schemaVersion 2");
	assert_int_not_equal(index_select("{\"schemaVersion\":2}", "v1"), 0);
	said("L: index.json has no 'manifests' list");
	assert_int_not_equal(index_select("{\"schemaVersion\":2,\"schemaVersion\":2}", "v1"), 0);
	said("not valid JSON"); /* duplicate keys */
	assert_int_not_equal(index_select("{\"schemaVersion\":2,\"manifests\":[]}", NULL), 0);
	said("L: index.json holds no image");
}

static void test_index_digest_must_be_sha256_hex(void **state)
{
	(void)state;
	/* a digest names a file: nothing but 64 hex digits may reach a path */
	const char *bad[] = {
	    "sha256:../../etc/passwd",
	    "sha512:" D64,
	    "sha256:" D64 "0",
	    "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	    "",
	    NULL};
	for (size_t i = 0; bad[i]; i++) {
		char json[512];
		snprintf(
		    json, sizeof(json),
		    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"m\",\"digest\":\"%s\","
		    "\"size\":1}]}",
		    bad[i]);
		assert_int_not_equal(index_select(json, NULL), 0);
		said("veil reads sha256:<64 lower-case hex digits> only");
	}
	assert_int_not_equal(
	    index_select("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"m\",\"digest\":"
			 "\"sha256:" D64 "\",\"size\":-1}]}",
			 NULL),
	    0);
	said("has a negative size");
	assert_int_not_equal(index_select("{\"schemaVersion\":2,\"manifests\":[{\"digest\":"
					  "\"sha256:" D64 "\",\"size\":1}]}",
					  NULL),
			     0);
	said("lacks mediaType, digest or size");
}

/* an index entry tagged t */
#define TAGGED(t) DESC("m") ",\"annotations\":{\"" OCI_REF_NAME "\":\"" t "\"}}"

static void test_index_tags(void **state)
{
	(void)state;
	const char *two = "{\"schemaVersion\":2,\"manifests\":[" TAGGED("a") "," TAGGED("b") "]}";
	assert_int_equal(index_select(two, "b"), 0);
	assert_int_not_equal(index_select(two, "c"), 0);
	said("L: no image tagged 'c' in index.json (tags: 'a', 'b')");
	assert_int_not_equal(index_select(two, NULL), 0);
	said("L: index.json holds 2 images; name one (oci:DIR:TAG)");
	const char *dup = "{\"schemaVersion\":2,\"manifests\":[" TAGGED("a") "," TAGGED("a") "]}";
	assert_int_not_equal(index_select(dup, "a"), 0);
	said("index.json tags two images 'a'");
}

static void test_list_without_amd64_refused(void **state)
{
	(void)state;
	json_t *doc = NULL;
	struct oci_desc desc;
	const char *arm = "{\"schemaVersion\":2,\"manifests\":[" DESC(
	    "m") ",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}," DESC("m") "}]}";
	assert_int_not_equal(oci_list_select(arm, strlen(arm), "L", &doc, &desc, &diags), 0);
	said("L: a manifest list without a linux/amd64 image (it has: linux/arm64, ?/?)");
	const char *ok = "{\"schemaVersion\":2,\"manifests\":[" DESC(
	    "x") ",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	assert_int_equal(oci_list_select(ok, strlen(ok), "L", &doc, &desc, &diags), 0);
	assert_string_equal(desc.media_type, "x");
	json_decref(doc);
}

static int manifest(const char *json)
{
	struct oci_base b = {0};
	int rc = oci_manifest_parse(json, strlen(json), "L", &b, &diags);
	if (!rc)
		assert_int_equal(b.layer_count, json_array_size(b.layers));
	oci_base_free(&b);
	return rc;
}

static void test_manifest_malformed_refused(void **state)
{
	(void)state;
	assert_int_not_equal(manifest("{\"schemaVersion\":2}"), 0);
	said("the manifest's config is not a descriptor");
	assert_int_not_equal(manifest("{\"schemaVersion\":2,\"config\":" DESC(OCI_MT_CONFIG) "}}"),
			     0);
	said("the image manifest has no 'layers' list");
	assert_int_not_equal(
	    manifest("{\"schemaVersion\":2,\"config\":" DESC("text/plain") "},\"layers\":[]}"), 0);
	said("the config has media type 'text/plain'");
	assert_int_not_equal(manifest("{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_INDEX
				      "\",\"config\":" DESC(OCI_MT_CONFIG) "},\"layers\":[]}"),
			     0);
	said("the image manifest has media type");
	assert_int_not_equal(manifest("{\"schemaVersion\":2,\"config\":" DESC(
				 OCI_MT_CONFIG) "},\"layers\":[" DESC("text/plain") "}]}"),
			     0);
	said("layer 1 has media type 'text/plain', not a layer veil knows");
	assert_int_not_equal(manifest("{\"schemaVersion\":2,\"config\":" DESC(
				 OCI_MT_CONFIG) "},\"layers\":[" DESC(OCI_MT_LAYER_GZIP) "},7]}"),
			     0);
	said("layer 2 is not a descriptor");
	assert_int_equal(manifest("{\"schemaVersion\":2,\"config\":" DESC(
			     OCI_MT_CONFIG) "},\"layers\":[" DESC(DOCKER_MT_LAYER_GZIP) "}]}"),
			 0);
}

static int config(const char *json, size_t layers)
{
	json_t *doc = NULL;
	int rc = oci_config_parse(json, strlen(json), "L", layers, &doc, &diags);
	json_decref(doc);
	return rc;
}

static void test_config_malformed_refused(void **state)
{
	(void)state;
	assert_int_not_equal(config("{\"os\":\"linux\"}", 0), 0);
	said("names no os or architecture");
	assert_int_not_equal(config("{\"os\":\"windows\",\"architecture\":\"amd64\"}", 0), 0);
	said("the image is for windows/amd64");
	assert_int_not_equal(config("{\"os\":\"linux\",\"architecture\":\"amd64\"}", 0), 0);
	said("no rootfs of type 'layers'");
	const char *one = "{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":"
			  "\"layers\",\"diff_ids\":[\"sha256:" D64 "\"]}";
	char json[512];
	snprintf(json, sizeof(json), "%s}", one);
	assert_int_not_equal(config(json, 2), 0);
	said("lists 1 diff_ids for 2 layers");
	assert_int_equal(config(json, 1), 0);
	snprintf(json, sizeof(json), "%s,\"config\":{\"Env\":[1]}}", one);
	assert_int_not_equal(config(json, 1), 0);
	said("Env holds a non-string");
	snprintf(json, sizeof(json), "%s,\"config\":[]}", one);
	assert_int_not_equal(config(json, 1), 0);
	said("'config' is not an object");
	snprintf(json, sizeof(json), "%s,\"history\":{}}", one);
	assert_int_not_equal(config(json, 1), 0);
	said("history is not a list");
	assert_int_not_equal(config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{"
				    "\"type\":\"layers\",\"diff_ids\":[\"md5:00\"]}}",
				    1),
			     0);
	said("diff_id 1 is not sha256");
}

static void test_ref_split(void **state)
{
	(void)state;
	char *dir, *tag;
	assert_int_equal(oci_ref_split("oci:/a/b:v1", &dir, &tag, &diags), 0);
	assert_string_equal(dir, "/a/b");
	assert_string_equal(tag, "v1");
	free(dir);
	free(tag);
	assert_int_equal(oci_ref_split("oci:rel", &dir, &tag, &diags), 0);
	assert_string_equal(dir, "rel");
	assert_null(tag);
	free(dir);
	assert_int_not_equal(oci_ref_split("oci:", &dir, &tag, &diags), 0);
	assert_int_not_equal(oci_ref_split("oci:d:", &dir, &tag, &diags), 0);
	said("an empty folder or tag");
	assert_int_not_equal(oci_ref_split("oci::t", &dir, &tag, &diags), 0);
	assert_int_not_equal(oci_ref_split("dir:x", &dir, &tag, &diags), 0);
}

/* A file that is not the one measured never ends up in a layer. */
static void test_layer_refuses_a_changed_file(void **state)
{
	(void)state;
	char tmp[] = "/tmp/veil-oci-XXXXXX";
	assert_non_null(mkdtemp(tmp));
	char *blobs = veil_path_join(tmp, "blobs/sha256"), *src = veil_path_join(tmp, "f");
	assert_int_equal(veil_mkdirs(blobs, 0755, &diags), 0);
	assert_int_equal(veil_write_file_plain(src, "new", 3, 0644, &diags), 0);
	uint8_t measured[VEIL_SHA256_SIZE];
	assert_int_equal(veil_sha256("old", 3, measured), 0);
	struct oci_layer *l = NULL;
	assert_int_equal(oci_layer_open(&l, tmp, 0, &diags), 0);
	assert_int_not_equal(oci_layer_add_file(l, "/app/f", src, 0644, measured), 0);
	said("changed between measuring and building the image");
	oci_layer_abort(l);
	/* the same file as measured: a layer, and no temporary file left */
	assert_int_equal(veil_sha256("new", 3, measured), 0);
	assert_int_equal(oci_layer_open(&l, tmp, 0, &diags), 0);
	assert_int_equal(oci_layer_add_dir(l, "/app"), 0);
	assert_int_equal(oci_layer_add_file(l, "/app/f", src, 0644, measured), 0);
	char diff_id[VEIL_DIGEST_SIZE];
	struct oci_desc desc;
	assert_int_equal(oci_layer_close(l, diff_id, &desc), 0);
	assert_true(oci_digest_valid(diff_id));
	assert_string_equal(desc.media_type, OCI_MT_LAYER_GZIP);
	char *blob = veil_path_join(blobs, desc.digest + 7);
	struct stat st;
	assert_int_equal(stat(blob, &st), 0);
	assert_int_equal((uint64_t)st.st_size, desc.size);
	assert_int_equal(veil_remove_tree(tmp), 0);
	free(blob);
	free(blobs);
	free(src);
}

/* files_build DIR FILES N EPOCH: veil_image_build_files into DIR/NAME */
static int files_build(const char *layout, const struct veil_image_file *files, size_t n,
		       long long epoch, char digest[static VEIL_DIGEST_SIZE])
{
	const char *entrypoint[] = {"/usr/bin/app", NULL}, *env[] = {"PATH=/usr/bin", NULL};
	struct veil_image_files_opts o = {
	    .files = files,
	    .file_count = n,
	    .entrypoint = entrypoint,
	    .env = env,
	    .user = "10001:10001",
	    .created_by = "test",
	    .layout = layout,
	    .tag = "t",
	    .epoch = epoch,
	};
	struct veil_image_staged s;
	int rc = veil_image_build_files(&o, &s, &diags);
	if (!rc) {
		snprintf(digest, VEIL_DIGEST_SIZE, "%s", s.digest);
		rc = veil_image_commit(&s, &diags);
	}
	return rc;
}

static void test_files_image_refuses_bad_paths(void **state)
{
	(void)state;
	char tmp[] = "/tmp/veil-oci-XXXXXX";
	assert_non_null(mkdtemp(tmp));
	char *src = veil_path_join(tmp, "f"), *layout = veil_path_join(tmp, "out");
	assert_int_equal(veil_write_file_plain(src, "x", 1, 0644, &diags), 0);
	const char *bad[] = {"rel/f", "/", "/a/../f", "/a//f", "/a/", "/a/./f", "/..", ""};
	char digest[VEIL_DIGEST_SIZE];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct veil_image_file f = {bad[i], src, 0644};
		assert_int_not_equal(files_build(layout, &f, 1, 0, digest), 0);
		said("is not an absolute, normalised path");
	}
	struct veil_image_file twice[] = {
	    {"/a/f", src, 0644}, {"/b", NULL, 0}, {"/a/f", src, 0755}};
	assert_int_not_equal(files_build(layout, twice, 3, 0, digest), 0);
	said("'/a/f' is named twice");
	/* nothing written: no layout, no staging folder left beside it */
	struct stat st;
	assert_int_not_equal(stat(layout, &st), 0);
	char *staging = NULL;
	assert_true(asprintf(&staging, "%s.new-%ld", layout, (long)getpid()) > 0);
	assert_int_not_equal(stat(staging, &st), 0);
	assert_int_equal(veil_remove_tree(tmp), 0);
	free(staging);
	free(src);
	free(layout);
}

/* the entries of layout's only layer, in tar order, "path mode" each */
static char *layer_entries(const char *layout)
{
	char *index_path = veil_path_join(layout, "index.json"), *blob = NULL, *out = NULL;
	json_t *idx = json_load_file(index_path, 0, NULL), *man = NULL;
	const char *md = json_string_value(
	    json_object_get(json_array_get(json_object_get(idx, "manifests"), 0), "digest"));
	assert_non_null(md);
	assert_true(asprintf(&blob, "%s/blobs/sha256/%s", layout, md + 7) > 0);
	man = json_load_file(blob, 0, NULL);
	free(blob);
	const char *ld = json_string_value(
	    json_object_get(json_array_get(json_object_get(man, "layers"), 0), "digest"));
	assert_non_null(ld);
	assert_true(asprintf(&blob, "%s/blobs/sha256/%s", layout, ld + 7) > 0);
	struct archive *a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_filename(a, blob, 10240), ARCHIVE_OK);
	struct veil_buf b;
	veil_buf_init(&b, 0);
	struct archive_entry *e;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK)
		veil_buf_printf(&b, "%s %o %ld:%ld %lld\n", archive_entry_pathname(e),
				(unsigned)archive_entry_mode(e) & 07777, (long)archive_entry_uid(e),
				(long)archive_entry_gid(e), (long long)archive_entry_mtime(e));
	archive_read_free(a);
	out = strndup(b.data ? b.data : "", b.size);
	veil_buf_free(&b);
	free(blob);
	free(index_path);
	json_decref(idx);
	json_decref(man);
	return out;
}

/* The same files in any order give the same image; the layer lists each
 * folder once, right before its first entry, owned by 0:0 at the epoch. */
static void test_files_image_is_reproducible(void **state)
{
	(void)state;
	char tmp[] = "/tmp/veil-oci-XXXXXX";
	assert_non_null(mkdtemp(tmp));
	char *bin = veil_path_join(tmp, "bin"), *lib = veil_path_join(tmp, "lib");
	char *one = veil_path_join(tmp, "one"), *two = veil_path_join(tmp, "two/x");
	char *three = veil_path_join(tmp, "three");
	assert_int_equal(veil_write_file_plain(bin, "#!", 2, 0700, &diags), 0);
	assert_int_equal(veil_write_file_plain(lib, "elf", 3, 0600, &diags), 0);
	struct veil_image_file files[] = {
	    {"/usr/bin/app", bin, 0755}, {"/lib/x86_64-linux-gnu/libc.so.6", lib, 0644},
	    {"/tmp", NULL, 0},           {"/lib64/ld-linux-x86-64.so.2", lib, 0755},
	    {"/usr/lib-x", lib, 0644},
	};
	struct veil_image_file reversed[5];
	for (size_t i = 0; i < 5; i++)
		reversed[i] = files[4 - i];
	char d1[VEIL_DIGEST_SIZE], d2[VEIL_DIGEST_SIZE], d3[VEIL_DIGEST_SIZE];
	assert_int_equal(files_build(one, files, 5, 0, d1), 0);
	assert_int_equal(files_build(two, reversed, 5, 0, d2), 0);
	assert_string_equal(d1, d2);
	assert_true(oci_digest_valid(d1));
	/* the time stamp is an input */
	assert_int_equal(files_build(three, files, 5, 1700000000, d3), 0);
	assert_string_not_equal(d1, d3);
	char *entries = layer_entries(one);
	assert_string_equal(entries, "lib/ 755 0:0 0\n"
				     "lib/x86_64-linux-gnu/ 755 0:0 0\n"
				     "lib/x86_64-linux-gnu/libc.so.6 644 0:0 0\n"
				     "lib64/ 755 0:0 0\n"
				     "lib64/ld-linux-x86-64.so.2 755 0:0 0\n"
				     "tmp/ 755 0:0 0\n"
				     "usr/ 755 0:0 0\n"
				     "usr/bin/ 755 0:0 0\n"
				     "usr/bin/app 755 0:0 0\n"
				     "usr/lib-x 644 0:0 0\n");
	/* built again in place: replaced whole, the same digest */
	assert_int_equal(files_build(one, reversed, 5, 0, d2), 0);
	assert_string_equal(d1, d2);
	assert_int_equal(veil_remove_tree(tmp), 0);
	free(entries);
	free(bin);
	free(lib);
	free(one);
	free(two);
	free(three);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_index_malformed_refused),
	    T(test_index_digest_must_be_sha256_hex),
	    T(test_index_tags),
	    T(test_list_without_amd64_refused),
	    T(test_manifest_malformed_refused),
	    T(test_config_malformed_refused),
	    T(test_ref_split),
	    T(test_layer_refuses_a_changed_file),
	    T(test_files_image_refuses_bad_paths),
	    T(test_files_image_is_reproducible),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
