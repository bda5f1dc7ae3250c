/* The registry client's parsers of untrusted text (src/image/registry.c):
 * image references, WWW-Authenticate challenges, manifests and indexes.
 * Refusals first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "veil/registry.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int ref_refused(const char *s)
{
	struct veil_image_ref r;
	struct veil_diags d;
	memset(&r, 0x5a, sizeof(r));
	veil_diags_init(&d);
	int rc = veil_image_ref_parse(s, &r, &d);
	int untouched = ((unsigned char *)&r)[0] == 0x5a; /* output set only on success */
	int named = d.count == 1 && strstr(d.msgs[0], "is not an image reference") != NULL;
	veil_diags_free(&d);
	return rc == VEIL_EINVAL && untouched && named;
}

static void test_bad_references_are_refused(void **state)
{
	(void)state;
	const char *bad[] = {
	    "",
	    "docker://",
	    "127.0.0.1:5000/",
	    "127.0.0.1:5000/Upper",
	    "127.0.0.1:5000/a//b",
	    "127.0.0.1:5000/a/",
	    "127.0.0.1:5000/-a",
	    "127.0.0.1:5000/a:",
	    "127.0.0.1:5000/a:-tag",
	    "127.0.0.1:5000/a:t@g",
	    "127.0.0.1:99999/a",
	    "127.0.0.1:/a",
	    "127.0.0.1:5x/a",
	    "ho st:5000/a",
	    "127.0.0.1:5000/a@sha256:abc",
	    "127.0.0.1:5000/a@sha512:" HEX64,
	    "127.0.0.1:5000/a@sha256:" HEX64 "00",
	    "127.0.0.1:5000/a@SHA256:" HEX64,
	    "user:pw@host.example/a",
	    /* folders, not hosts: never looked up in DNS */
	    "./x",
	    "../x/y",
	    ".host.example/a",
	    "host..example/a",
	    "-host.example/a",
	    "host.example./a",
	    "127.0.0.1:5000/a:"
	    "t12345678901234567890123456789012345678901234567890123456789012345678901234567890"
	    "12345678901234567890123456789012345678901234567890",
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(bad); i++) {
		if (!ref_refused(bad[i]))
			fail_msg("accepted: '%s'", bad[i]);
	}
}

static void test_references_are_split(void **state)
{
	(void)state;
	struct veil_image_ref r;
	assert_int_equal(veil_image_ref_parse("docker://127.0.0.1:5000/a/b-c:v1.2", &r, NULL), 0);
	assert_string_equal(r.host, "127.0.0.1:5000");
	assert_string_equal(r.repo, "a/b-c");
	assert_string_equal(r.tag, "v1.2");
	assert_string_equal(r.digest, "");
	/* the seed's build.to, verbatim */
	assert_int_equal(
	    veil_image_ref_parse("registry.scontain.com:5050/cosmos/python_hello_user", &r, NULL),
	    0);
	assert_string_equal(r.host, "registry.scontain.com:5050");
	assert_string_equal(r.repo, "cosmos/python_hello_user");
	assert_string_equal(r.tag, "latest");
	assert_int_equal(veil_image_ref_parse("localhost/x@sha256:" HEX64, &r, NULL), 0);
	assert_string_equal(r.host, "localhost");
	assert_string_equal(r.digest, "sha256:" HEX64);
	assert_string_equal(r.tag, "");
	/* a tag and a digest: the digest decides */
	assert_int_equal(veil_image_ref_parse("h.example/x:1@sha256:" HEX64, &r, NULL), 0);
	assert_string_equal(r.tag, "");
	/* Docker Hub names */
	assert_int_equal(veil_image_ref_parse("python:3", &r, NULL), 0);
	assert_string_equal(r.host, "docker.io");
	assert_string_equal(r.repo, "library/python");
	assert_string_equal(r.tag, "3");
	assert_int_equal(veil_image_ref_parse("user/app", &r, NULL), 0);
	assert_string_equal(r.repo, "user/app");
}

static void test_bad_challenges_are_refused(void **state)
{
	(void)state;
	const char *bad[] = {
	    "",
	    "Digest realm=\"x\"",
	    "Bearer",                         /* no realm */
	    "Bearer service=\"s\"",           /* no realm */
	    "Bearer realm=\"https://a/token", /* unterminated */
	    "Bearer realm",                   /* no value */
	    "Bearer =x",
	    "Negotiate",
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(bad); i++) {
		struct veil_auth_challenge c;
		if (veil_auth_challenge_parse(bad[i], &c) != VEIL_EINVAL)
			fail_msg("accepted: '%s'", bad[i]);
	}
	/* a realm longer than its field is refused, not cut */
	char big[3000] = "Bearer realm=\"";
	memset(big + strlen(big), 'a', 2000);
	big[2014] = '"';
	big[2015] = '\0';
	struct veil_auth_challenge c;
	assert_int_equal(veil_auth_challenge_parse(big, &c), VEIL_EINVAL);
}

static void test_challenges_are_parsed(void **state)
{
	(void)state;
	struct veil_auth_challenge c;
	assert_int_equal(
	    veil_auth_challenge_parse(
		"Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
		"scope=\"repository:samalba/my-app:pull,push\"",
		&c),
	    0);
	assert_string_equal(c.scheme, "Bearer");
	assert_string_equal(c.realm, "https://auth.example/token");
	assert_string_equal(c.service, "registry.example");
	assert_string_equal(c.scope, "repository:samalba/my-app:pull,push");
	assert_int_equal(
	    veil_auth_challenge_parse("basic realm=\"Registry \\\"R\\\"\", charset=UTF-8", &c), 0);
	assert_string_equal(c.scheme, "Basic");
	assert_string_equal(c.realm, "Registry \"R\"");
	assert_int_equal(veil_auth_challenge_parse("Bearer realm=https://a/t", &c), 0);
	assert_string_equal(c.realm, "https://a/t");
}

static int manifest_rc(const char *json, const char *ct)
{
	struct veil_manifest_info m;
	struct veil_diags d;
	veil_diags_init(&d);
	int rc = veil_manifest_parse(json, strlen(json), ct, &m, &d);
	if (!rc)
		veil_manifest_info_free(&m);
	else
		assert_true(d.count >= 1);
	veil_diags_free(&d);
	return rc;
}

#define DESC(t) "{\"mediaType\":\"" t "\",\"digest\":\"sha256:" HEX64 "\",\"size\":3}"
#define CONFIG DESC("application/vnd.oci.image.config.v1+json")
#define LAYER DESC("application/vnd.oci.image.layer.v1.tar+gzip")

static void test_bad_manifests_are_refused(void **state)
{
	(void)state;
	const char *bad[] = {
	    "",
	    "[]",
	    "{\"schemaVersion\":1,\"config\":" CONFIG ",\"layers\":[]}",
	    "{\"schemaVersion\":2,\"layers\":[]}",         /* no config */
	    "{\"schemaVersion\":2,\"config\":" CONFIG "}", /* no layers */
	    "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":{}}",
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:"
	    "00\",\"size\":1},\"layers\":[]}",
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX64
	    "\",\"size\":-1},\"layers\":[]}",
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX64
	    "\",\"size\":\"3\"},\"layers\":[]}",
	    "{\"schemaVersion\":2,\"mediaType\":\"application/"
	    "vnd.docker.distribution.manifest.v1+json\","
	    "\"config\":" CONFIG ",\"layers\":[]}",
	    "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[" LAYER ",7]}",
	    "{\"schemaVersion\":2,\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[]}",
	    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"md5:1\","
	    "\"size\":1}]}",
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(bad); i++)
		if (manifest_rc(bad[i], NULL) == 0)
			fail_msg("accepted: %s", bad[i]);
}

static void test_manifests_and_indexes_are_parsed(void **state)
{
	(void)state;
	struct veil_manifest_info m;
	const char *man =
	    "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[" LAYER "," LAYER "]}";
	assert_int_equal(veil_manifest_parse(man, strlen(man), NULL, &m, NULL), 0);
	assert_false(m.is_index);
	assert_string_equal(m.media_type, "application/vnd.oci.image.manifest.v1+json");
	assert_int_equal(m.count, 2);
	assert_int_equal(m.config.size, 3);
	veil_manifest_info_free(&m);
	/* the registry's content type names a Docker manifest */
	assert_int_equal(veil_manifest_parse(
			     man, strlen(man),
			     "application/vnd.docker.distribution.manifest.v2+json; x=y", &m, NULL),
			 0);
	assert_string_equal(m.media_type, "application/vnd.docker.distribution.manifest.v2+json");
	veil_manifest_info_free(&m);
	const char *idx =
	    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
	    "vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" HEX64
	    "\",\"size\":9,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"},"
	    "\"annotations\":{\"org.opencontainers.image.ref.name\":\"t1\"}}]}";
	assert_int_equal(veil_manifest_parse(idx, strlen(idx), NULL, &m, NULL), 0);
	assert_true(m.is_index);
	assert_int_equal(m.count, 1);
	assert_string_equal(m.items[0].os, "linux");
	assert_string_equal(m.items[0].arch, "amd64");
	assert_string_equal(m.items[0].ref_name, "t1");
	veil_manifest_info_free(&m);
}

static void test_oversized_manifest_is_refused(void **state)
{
	(void)state;
	struct veil_manifest_info m;
	assert_int_equal(veil_manifest_parse("{}", VEIL_MANIFEST_MAX + 1, NULL, &m, NULL),
			 VEIL_ELIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_references_are_refused),
	    cmocka_unit_test(test_references_are_split),
	    cmocka_unit_test(test_bad_challenges_are_refused),
	    cmocka_unit_test(test_challenges_are_parsed),
	    cmocka_unit_test(test_bad_manifests_are_refused),
	    cmocka_unit_test(test_manifests_and_indexes_are_parsed),
	    cmocka_unit_test(test_oversized_manifest_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
