/* Unit tests: the OCI layout reader's parsers (src/image/oci.c), malformed
 * documents first, and the layer writer's check that a file archived is the
 * file measured (src/image/layer.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
