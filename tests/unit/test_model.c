/* Policy model (src/policy/model.c): what veil-cas accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "veil/policy_model.h"

static int parse(const char *yaml, struct ydoc *doc, struct veil_policy *p, struct veil_diags *d)
{
	veil_diags_init(d);
	assert_int_equal(ydoc_init(doc, "p.yaml"), 0);
	int rc = ydoc_parse(doc, yaml, strlen(yaml), &veil_policy_limits, d);
	return rc ? rc : veil_policy_parse(doc, p, d);
}

static int has_diag(const struct veil_diags *d, const char *text)
{
	for (size_t i = 0; i < d->count; i++)
		if (strstr(d->msgs[i], text))
			return 1;
	return 0;
}

/* found by fuzzing: a rejected service's slot was reused with its env count */
static void test_nameless_service_does_not_taint_next(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	int rc = parse("name: n\n"
		       "services:\n"
		       "  - command: a\n"
		       "    environment: {A: x, B: y, C: z}\n"
		       "  - name: s\n"
		       "    command: b\n",
		       &doc, &p, &d);
	assert_int_equal(rc, VEIL_EINVAL);
	assert_true(has_diag(&d, "required key 'name' is missing"));
	ydoc_free(&doc);
	veil_diags_free(&d);
}

static void test_predecessor_must_be_a_hash(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	assert_int_equal(parse("name: n\npredecessor: abc\n", &doc, &p, &d), VEIL_EINVAL);
	assert_true(has_diag(&d, "predecessor must be the 64-hex-digit hash"));
	ydoc_free(&doc);
	veil_diags_free(&d);
}

static void test_access_lists(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	assert_int_equal(
	    parse("name: n\naccess_policy: {read: [ANY], update: [NONE]}\n", &doc, &p, &d), 0);
	assert_true(veil_policy_allows(p.read, p.read_count, "owner", "other"));
	assert_false(veil_policy_allows(p.read, p.read_count, "owner", NULL));
	assert_false(veil_policy_allows(p.update, p.update_count, "owner", "owner"));
	/* create_sessions defaults to the creator */
	assert_true(veil_policy_allows(p.create_sessions, p.create_sessions_count, "o", "o"));
	assert_false(veil_policy_allows(p.create_sessions, p.create_sessions_count, "o", "x"));
	ydoc_free(&doc);
	veil_diags_free(&d);
	assert_int_equal(parse("name: n\naccess_policy: {read: [NONE, ANY]}\n", &doc, &p, &d),
			 VEIL_EINVAL);
	assert_true(has_diag(&d, "NONE cannot be combined"));
	ydoc_free(&doc);
	veil_diags_free(&d);
	assert_int_equal(parse("name: n\naccess_policy: {read: [bob]}\n", &doc, &p, &d),
			 VEIL_EINVAL);
	assert_true(has_diag(&d, "must be CREATOR, ANY, NONE or a 64-hex-digit"));
	ydoc_free(&doc);
	veil_diags_free(&d);
}

static void test_placeholder_must_name_a_policy_secret(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	assert_int_equal(parse("name: n\nservices:\n  - name: s\n    command: c\n"
			       "    environment: {P: \"$$SCONE::nope$$\"}\n",
			       &doc, &p, &d),
			 VEIL_EINVAL);
	assert_true(has_diag(&d, "refers to secret 'nope', which the policy does not declare"));
	ydoc_free(&doc);
	veil_diags_free(&d);
}

/* the listed protected files must be the ones the root was computed over */
static void test_files_must_give_the_root(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	const char *good =
	    "name: n\nservices:\n  - name: s\n    command: c\n"
	    "    file_set_root: 082cccc685171910e434780cb94f6416452e8bd5756eb04785dff38d29654fb9\n"
	    "    files:\n      - {path: /python/print_env.py, mode: \"0644\", sha256: "
	    "596b0171eb632e646d0d49d72d469a7ebc8895b5b2ac9788b7931a56fe4fb0c6}\n";
	assert_int_equal(parse(good, &doc, &p, &d), 0);
	assert_int_equal(p.services[0].file_count, 1);
	ydoc_free(&doc);
	veil_diags_free(&d);
	char bad[1024];
	snprintf(bad, sizeof(bad), "%s", good);
	bad[strlen(bad) - 3] = '0'; /* one hex digit of the file's hash */
	assert_int_equal(parse(bad, &doc, &p, &d), VEIL_EINVAL);
	assert_true(has_diag(&d, "the files listed do not give the file_set_root"));
	ydoc_free(&doc);
	veil_diags_free(&d);
}

/* image_root: 64 lower-case hex digits, or the policy is refused */
static void test_image_root_must_be_a_hash(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	const char *root = "afcf633070d2917b0c0e4992ea01889a948b64454845f2e534b09c1fe87af505";
	const char *bad[] = {"AFCF633070d2917b0c0e4992ea01889a948b64454845f2e534b09c1fe87af505",
			     "afcf63", "[a]", "\"\""};
	char text[512];
	snprintf(text, sizeof(text),
		 "name: n\nservices:\n  - name: s\n    command: c\n"
		 "    image_root: %s\n",
		 root);
	assert_int_equal(parse(text, &doc, &p, &d), 0);
	assert_string_equal(p.services[0].image_root, root);
	ydoc_free(&doc);
	veil_diags_free(&d);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 "name: n\nservices:\n  - name: s\n    command: c\n"
			 "    image_root: %s\n",
			 bad[i]);
		assert_int_equal(parse(text, &doc, &p, &d), VEIL_EINVAL);
		ydoc_free(&doc);
		veil_diags_free(&d);
	}
}

static void test_runtime_files(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	const char *h = "596b0171eb632e646d0d49d72d469a7ebc8895b5b2ac9788b7931a56fe4fb0c6";
	char y[2048];
	snprintf(y, sizeof(y),
		 "name: n\nservices:\n  - name: s\n    command: python3 a.py\n"
		 "    program: /usr/bin/python3.11\n    runtime_files:\n"
		 "      - {path: /usr/bin/python3.11, mode: \"0755\", sha256: %s}\n"
		 "      - {path: /usr/lib/python3.11/, mode: \"0755\", sha256: %s}\n"
		 "      - {path: /etc/ld.so.preload, mode: \"0000\", sha256: %s}\n",
		 h, h, h);
	assert_int_equal(parse(y, &doc, &p, &d), 0);
	assert_string_equal(p.services[0].program, "/usr/bin/python3.11");
	assert_int_equal(p.services[0].runtime_file_count, 3);
	assert_int_equal(p.services[0].runtime_files[2].mode, 0);
	ydoc_free(&doc);
	veil_diags_free(&d);
	/* a relative path, a mode that is none of the three, no program */
	const char *bad[] = {
	    "    program: /usr/bin/p\n    runtime_files:\n      - {path: usr/bin/p, mode: "
	    "\"0755\", "
	    "sha256: ",
	    "    program: /usr/bin/p\n    runtime_files:\n      - {path: /usr/bin/p, mode: "
	    "\"0777\", "
	    "sha256: ",
	    "    runtime_files:\n      - {path: /usr/bin/p, mode: \"0755\", sha256: ",
	    "    program: bin/p\n    runtime_files: []\n# ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(y, sizeof(y), "name: n\nservices:\n  - name: s\n    command: p\n%s%s%s\n",
			 bad[i], h, bad[i][strlen(bad[i]) - 1] == ' ' ? "}" : "");
		assert_int_equal(parse(y, &doc, &p, &d), VEIL_EINVAL);
		ydoc_free(&doc);
		veil_diags_free(&d);
	}
}

static void assert_only_diag(const struct veil_diags *d, const char *want)
{
	for (size_t i = 0; d->count != 1 && i < d->count; i++)
		print_message("diag[%zu]: %s\n", i, d->msgs[i]);
	assert_int_equal(d->count, 1);
	assert_string_equal(d->msgs[0], want);
}

/* SCONE writes "0.3" or a patch level of it */
static void test_version_of_the_0_3_family_accepted(void **state)
{
	(void)state;
	static const char *const ok[] = {"version: \"0.3\"\n", "version: 0.3\n",
					 "version: \"0.3.10\"\n", "version: 0.3.0\n"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct ydoc doc;
		struct veil_policy p;
		struct veil_diags d;
		char yaml[128];
		snprintf(yaml, sizeof(yaml), "name: n\n%s", ok[i]);
		assert_int_equal(parse(yaml, &doc, &p, &d), 0);
		assert_int_equal(d.count, 0);
		ydoc_free(&doc);
		veil_diags_free(&d);
	}
}

static void test_other_versions_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {"0.4",   "0.2",      "0.30",          "0.3.",
					  "0.3.x", "0.3.10.1", "1.0",           "0",
					  "0.3-1", "\"\"",     "0.3.1234567890"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ydoc doc;
		struct veil_policy p;
		struct veil_diags d;
		char yaml[128], want[160];
		snprintf(yaml, sizeof(yaml), "name: n\nversion: %s\n", bad[i]);
		assert_int_equal(parse(yaml, &doc, &p, &d), VEIL_EINVAL);
		snprintf(want, sizeof(want),
			 "p.yaml:2:10: policy: unsupported version '%s' (the 0.3 family: 0.3 or "
			 "0.3.N)",
			 bad[i][0] == '"' ? "" : bad[i]);
		assert_only_diag(&d, want);
		ydoc_free(&doc);
		veil_diags_free(&d);
	}
}

static void test_binary_value_must_be_hex(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	assert_int_equal(
	    parse("name: n\nsecrets:\n  - {name: b, kind: binary, value: FEEDfeed00}\n", &doc, &p,
		  &d),
	    0);
	ydoc_free(&doc);
	veil_diags_free(&d);
	assert_int_equal(
	    parse("name: n\nsecrets:\n  - {name: b, kind: binary, value: feedfee}\n", &doc, &p, &d),
	    VEIL_EINVAL);
	assert_only_diag(&d, "p.yaml:3:36: secrets: value must be an even number of hex digits (an "
			     "explicit binary value is hex, as in SCONE)");
	ydoc_free(&doc);
	veil_diags_free(&d);
}

/* the CAS refuses what veil check refuses in a command */
static void test_command_list_and_placeholder_refused(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	assert_int_equal(
	    parse("name: n\nservices:\n  - name: s\n    command: [a, b]\n", &doc, &p, &d),
	    VEIL_EINVAL);
	assert_only_diag(&d, "p.yaml:4:14: services: 'command' must be one string, found a list "
			     "(the program and its arguments separated by blanks, as in SCONE: "
			     "command: python3 app.py --port 80)");
	ydoc_free(&doc);
	veil_diags_free(&d);
	assert_int_equal(parse("name: n\nsecrets:\n  - {name: pw, kind: ascii}\nservices:\n"
			       "  - name: s\n    command: app $$SCONE::pw$$\n",
			       &doc, &p, &d),
			 VEIL_EINVAL);
	assert_only_diag(&d, "p.yaml:6:14: services: 'command' holds a secret placeholder; veil "
			     "does not put secrets on a command line, which the node can read (ps, "
			     "/proc/PID/cmdline): pass the secret in the environment or an "
			     "injection file");
	ydoc_free(&doc);
	veil_diags_free(&d);
}

/* the program's uid and gid: root's and a lone group are no separation */
static void test_program_user_and_group(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	assert_int_equal(
	    parse("name: n\nservices:\n  - {name: s, command: a, user: 64123}\n", &doc, &p, &d), 0);
	assert_int_equal(p.services[0].user, 64123);
	assert_int_equal(p.services[0].group, 0);
	ydoc_free(&doc);
	veil_diags_free(&d);
	static const char *const bad[][2] = {
	    {"user: 0", "services: user 0 is root's"},
	    {"user: 64123, group: 0", "services: group 0 is root's"},
	    {"group: 64123", "services: 'group' needs 'user'"},
	    {"user: -1", "'user' must be an integer from 0 to 4294967294"},
	    {"user: 4294967295", "'user' must be an integer from 0 to 4294967294"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char y[256];
		snprintf(y, sizeof(y), "name: n\nservices:\n  - {name: s, command: a, %s}\n",
			 bad[i][0]);
		assert_int_equal(parse(y, &doc, &p, &d), VEIL_EINVAL);
		if (!has_diag(&d, bad[i][1]))
			fail_msg("%s: wanted '%s'", bad[i][0], bad[i][1]);
		ydoc_free(&doc);
		veil_diags_free(&d);
	}
}

static void test_hash_is_canonical(void **state)
{
	(void)state;
	struct ydoc a, b;
	struct veil_policy pa, pb;
	struct veil_diags d;
	assert_int_equal(parse("name: n\nversion: \"0.3\"\n", &a, &pa, &d), 0);
	veil_diags_free(&d);
	/* same policy, other key order and quoting */
	assert_int_equal(parse("version: '0.3'\nname: \"n\"\n", &b, &pb, &d), 0);
	assert_string_equal(pa.hash, pb.hash);
	ydoc_free(&a);
	ydoc_free(&b);
	veil_diags_free(&d);
}

/* consent by a namespace's name alone would go to whoever creates that name:
 * an upload must bind the importer's identity; a stored policy with a bare
 * entry (from an older CAS) still parses, and the CAS grants it nothing */
static void test_export_needs_the_importers_identity(void **state)
{
	(void)state;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_diags d;
	assert_int_equal(parse("name: n\n"
			       "secrets:\n"
			       "  - {name: s, kind: ascii, export: [{namespace: partner}]}\n",
			       &doc, &p, &d),
			 0);
	assert_null(p.secrets[0].export_owner[0]);
	assert_int_equal(veil_policy_check_new(&p, &d), VEIL_EINVAL);
	assert_true(has_diag(&d, "secrets: s: export to partner needs the importer's identity"));
	ydoc_free(&doc);
	veil_diags_free(&d);
	assert_int_equal(
	    parse("name: n\n"
		  "secrets:\n"
		  "  - {name: s, kind: ascii, export: [{namespace: partner, owner: "
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}, "
		  "{namespace: other, session_hash: "
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}]}\n",
		  &doc, &p, &d),
	    0);
	assert_string_equal(p.secrets[0].export_owner[0],
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_null(p.secrets[0].export_session_hash[0]);
	assert_string_equal(p.secrets[0].export_session_hash[1],
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(veil_policy_check_new(&p, &d), 0);
	ydoc_free(&doc);
	veil_diags_free(&d);
	assert_int_equal(parse("name: n\n"
			       "secrets:\n"
			       "  - {name: s, kind: ascii, export: [{namespace: p, owner: ABC}]}\n",
			       &doc, &p, &d),
			 VEIL_EINVAL);
	assert_true(has_diag(&d, "export owner 'ABC' must be a 64-hex-digit client key hash"));
	ydoc_free(&doc);
	veil_diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nameless_service_does_not_taint_next),
	    cmocka_unit_test(test_predecessor_must_be_a_hash),
	    cmocka_unit_test(test_access_lists),
	    cmocka_unit_test(test_placeholder_must_name_a_policy_secret),
	    cmocka_unit_test(test_program_user_and_group),
	    cmocka_unit_test(test_hash_is_canonical),
	    cmocka_unit_test(test_version_of_the_0_3_family_accepted),
	    cmocka_unit_test(test_other_versions_refused),
	    cmocka_unit_test(test_binary_value_must_be_hex),
	    cmocka_unit_test(test_command_list_and_placeholder_refused),
	    cmocka_unit_test(test_files_must_give_the_root),
	    cmocka_unit_test(test_image_root_must_be_a_hash),
	    cmocka_unit_test(test_runtime_files),
	    cmocka_unit_test(test_export_needs_the_importers_identity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
