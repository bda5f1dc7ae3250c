/* Unit tests: service manifests, Meshfiles, names and secret placeholders
 * (src/manifest). Adversarial inputs first; the seed's own files last. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "veil/manifest.h"

#ifndef VEIL_SOURCE_ROOT
#error "VEIL_SOURCE_ROOT must name the repository root"
#endif
#define SEED_DIR VEIL_SOURCE_ROOT "/examples/python-hello-user/"

static struct ydoc doc;
static struct veil_diags diags;
static struct veil_service_manifest sm;
static struct veil_mesh mesh;

static int setup(void **state)
{
	(void)state;
	veil_diags_init(&diags);
	memset(&sm, 0, sizeof(sm));
	memset(&mesh, 0, sizeof(mesh));
	return ydoc_init(&doc, "t.yaml");
}

static int teardown(void **state)
{
	(void)state;
	ydoc_free(&doc);
	veil_diags_free(&diags);
	return 0;
}

static void print_diags(void)
{
	for (size_t i = 0; i < diags.count; i++)
		print_message("diag[%zu]: %s\n", i, diags.msgs[i]);
}

static void load_yaml(const char *text)
{
	if (ydoc_parse(&doc, text, strlen(text), NULL, &diags)) {
		print_diags();
		fail_msg("test YAML does not parse");
	}
}

static int service(const char *text)
{
	load_yaml(text);
	return veil_service_parse(&doc, &sm, &diags);
}

static int meshfile(const char *text)
{
	load_yaml(text);
	return veil_mesh_parse(&doc, &mesh, &diags);
}

/* `want` is one of the diagnostics, exactly. */
static void assert_has_diag(const char *want)
{
	for (size_t i = 0; i < diags.count; i++)
		if (!strcmp(diags.msgs[i], want))
			return;
	print_diags();
	fail_msg("missing diagnostic: %s", want);
}

static void assert_only_diag(const char *want)
{
	if (diags.count != 1)
		print_diags();
	assert_int_equal(diags.count, 1);
	assert_string_equal(diags.msgs[0], want);
}

static void assert_no_diags(void)
{
	if (diags.count)
		print_diags();
	assert_int_equal(diags.count, 0);
}

/* A valid manifest of 6 lines; tests append top-level keys from line 7. */
#define SVC_BASE                                                                                   \
	"apiVersion: scone/5.8\n"                                                                  \
	"kind: genservice\n"                                                                       \
	"build:\n"                                                                                 \
	"  name: app\n"                                                                            \
	"  to: reg.example/app:1\n"                                                                \
	"  command: python3 app.py\n"

/* A Meshfile head of 4 lines; tests append services/env/cas from line 5. */
#define MESH_HEAD                                                                                  \
	"apiVersion: scone/5.8\n"                                                                  \
	"kind: mesh\n"                                                                             \
	"policy:\n"                                                                                \
	"  namespace: ns\n"

#define ONE_SERVICE                                                                                \
	"services:\n"                                                                              \
	"  - name: app\n"                                                                          \
	"    image: reg.example/app:1\n"

/* ---- document kind ---- */

static void test_unknown_api_version_refused(void **state)
{
	(void)state;
	assert_int_equal(service("apiVersion: scone/6.0\nkind: genservice\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:1:13: unsupported apiVersion 'scone/6.0' (supported: scone/5.8, "
			 "its patch versions such as scone/5.8.0, veil/v1)");
}

/* SCONE writes patch versions too: scone/5.8.0 is the scone/5.8 format */
static void test_api_version_patch_levels(void **state)
{
	(void)state;
	static const char *const ok[] = {"scone/5.8", "scone/5.8.0", "scone/5.8.12", "veil/v1"};
	static const char *const bad[] = {"scone/5.8.",  "scone/5.8.x",         "scone/5.80",
					  "scone/5.9",   "scone/5.8.0.1",       "scone/5",
					  "scone/5.8-1", "scone/5.8.1234567890"};
	char text[256], want[256];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text),
			 "apiVersion: %s\nkind: genservice\nbuild: {name: a, to: r, "
			 "command: a}\n",
			 ok[i]);
		assert_int_equal(service(text), 0);
		assert_no_diags();
		teardown(NULL);
		setup(NULL);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "apiVersion: %s\nkind: mesh\n", bad[i]);
		assert_int_equal(meshfile(text), VEIL_EINVAL);
		snprintf(
		    want, sizeof(want),
		    "t.yaml:1:13: unsupported apiVersion '%s' (supported: scone/5.8, its patch "
		    "versions such as scone/5.8.0, veil/v1)",
		    bad[i]);
		assert_only_diag(want);
		teardown(NULL);
		setup(NULL);
	}
}

static void test_unknown_kind_refused(void **state)
{
	(void)state;
	assert_int_equal(service("apiVersion: veil/v1\nkind: service\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:2:7: unknown kind 'service' (supported: genservice, mesh)");
}

static void test_missing_kind_refused(void **state)
{
	(void)state;
	assert_int_equal(service("apiVersion: veil/v1\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:1:1: top level: required key 'kind' is missing");
}

static void test_non_mapping_document_refused(void **state)
{
	(void)state;
	assert_int_equal(service("- a\n- b\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:1:1: the document must be a mapping, found a list");
}

static void test_meshfile_given_as_service_refused(void **state)
{
	(void)state;
	assert_int_equal(service(MESH_HEAD ONE_SERVICE), VEIL_EINVAL);
	assert_only_diag("t.yaml: not a service manifest (kind: genservice)");
}

static void test_service_given_as_meshfile_refused(void **state)
{
	(void)state;
	assert_int_equal(meshfile(SVC_BASE), VEIL_EINVAL);
	assert_only_diag("t.yaml: not a Meshfile (kind: mesh)");
}

static void test_doc_kind(void **state)
{
	(void)state;
	load_yaml("apiVersion: veil/v1\nkind: mesh\n");
	assert_int_equal(veil_doc_kind(&doc, &diags), VEIL_DOC_MESH);
	assert_no_diags();
}

/* ---- service manifest: keys and types ---- */

static void test_service_unknown_key_suggests(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "enviroment:\n  local: []\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:7:1: unknown key 'enviroment' in the service manifest (did you "
			 "mean 'environment'?)");
}

static void test_service_unknown_build_key_suggests(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  comand: x\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:7:3: unknown key 'comand' in build (did you mean 'command'?)");
}

/* build.user/group: the program's own uid (a veil extension) */
static void test_service_build_user_and_group(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  user: 64123\n"), 0);
	assert_no_diags();
	assert_int_equal(sm.build.user, 64123);
	assert_int_equal(sm.build.group, 0);
}

static void test_service_build_root_user_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  user: 0\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:7:9: build: user 0 is root's, which separates the program from "
			 "nothing: name a dedicated uid from 1 to 4294967294, or leave 'user' out");
}

static void test_service_build_lone_group_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  group: 64123\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:7:10: build: 'group' needs 'user': the uid is what keeps other "
			 "processes out of the program's environment");
}

/* build.from: the base image (a veil extension; docs/images.md) */
static void test_service_build_from(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  from: oci:bases:python\n"), 0);
	assert_no_diags();
	assert_string_equal(sm.build.from, "oci:bases:python");
	assert_int_equal(service(SVC_BASE "  from: scratch\n"), 0);
	assert_int_equal(service(SVC_BASE "  from: docker://r.example/p:1\n"), 0);
	assert_int_equal(service(SVC_BASE "  from: 127.0.0.1:5000/base:1\n"), 0);
	assert_int_equal(service(SVC_BASE "  from: localhost/base\n"), 0);
}

static void test_service_build_from_unknown_form_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  from: python:3.11\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:7:9: build: from 'python:3.11' is not oci:DIR[:TAG], "
			 "[docker://]HOST/REPO[:TAG] or scratch");
}

/* a Docker Hub short name or another scheme is not guessed at */
static void test_service_build_from_not_a_registry_host_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  from: library/python:3.11\n"), VEIL_EINVAL);
	assert_int_equal(service(SVC_BASE "  from: ftp://r.example/p\n"), VEIL_EINVAL);
	assert_int_equal(service(SVC_BASE "  from: /abs/dir\n"), VEIL_EINVAL);
	assert_true(veil_base_is_registry("127.0.0.1:5000/base:1"));
	assert_false(veil_base_is_registry("oci:../base:v1"));
	assert_false(veil_base_is_registry("scratch"));
	assert_false(veil_base_is_registry("./x"));
	assert_false(veil_base_is_registry("../x/y"));
}

static void test_service_unknown_env_entry_key(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n"
					  "  local:\n"
					  "    - name: A\n"
					  "      valeu: x\n"),
			 VEIL_EINVAL);
	assert_has_diag("t.yaml:10:7: unknown key 'valeu' in an environment entry (did you mean "
			"'value'?)");
}

static void test_service_missing_build_refused(void **state)
{
	(void)state;
	assert_int_equal(service("apiVersion: scone/5.8\nkind: genservice\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:1:1: top level: required key 'build' is missing");
}

static void test_service_build_required_fields(void **state)
{
	(void)state;
	assert_int_equal(service("apiVersion: scone/5.8\nkind: genservice\nbuild:\n  kind: x\n"),
			 VEIL_EINVAL);
	assert_int_equal(diags.count, 3);
	assert_has_diag("t.yaml:4:3: build: required key 'name' is missing");
	assert_has_diag("t.yaml:4:3: build: required key 'to' is missing");
	assert_has_diag("t.yaml:4:3: build: required key 'command' is missing");
}

static void test_service_environment_wrong_type(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment: [a]\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:7:14: top level: 'environment' must be a mapping, found a list");
}

static void test_service_env_list_wrong_type(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n  local: A=1\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:8:10: environment: 'local' must be a list, found a scalar");
}

static void test_service_env_entry_wrong_type(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n  local:\n    - A=1\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:9:7: an environment entry must be a mapping, found a scalar");
}

static void test_service_env_value_wrong_type(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n"
					  "  local:\n"
					  "    - name: A\n"
					  "      value: [1]\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:10:14: environment.local: value of 'A' must be a string, found a "
			 "list");
}

static void test_service_secrets_wrong_type(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n  global: pw\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:8:11: secrets: 'global' must be a list, found a scalar");
}

static void test_service_secret_size_not_a_number(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  global:\n"
					  "    - name: pw\n"
					  "      kind: ascii\n"
					  "      size: ten\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:13: secrets.global entry: 'size' must be an integer from 0 to "
			 "65536, found 'ten'");
}

static void test_service_secret_size_too_large(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  local:\n"
					  "    - name: pw\n"
					  "      kind: binary\n"
					  "      size: 65537\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:13: secrets.local entry: 'size' must be an integer from 0 to "
			 "65536, found '65537'");
}

static void test_service_copy_wrong_type(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  copy: {a: 1}\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:7:9: build: 'copy' must be a list of strings, found a mapping");
}

static void test_service_signature_sign_not_bool(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  signature:\n    sign: yes\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:8:11: build.signature: 'sign' must be true or false, found yes");
}

static void test_service_relative_pwd_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "  pwd: app\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:7:8: build: pwd 'app' must be an absolute path");
}

static void test_service_invalid_build_name_refused(void **state)
{
	(void)state;
	assert_int_equal(service("apiVersion: scone/5.8\nkind: genservice\nbuild:\n"
				 "  name: -app\n  to: x\n  command: c\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:4:9: build: name '-app' must start with a letter or digit and "
			 "hold only letters, digits, '_', '.', '-'");
}

/* ---- service manifest: variables ---- */

static void test_service_local_variable_without_value(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n  local:\n    - name: SECRET_LEVEL\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:13: local variable 'SECRET_LEVEL' needs a value: local "
			 "variables cannot be set from the Meshfile");
}

static void test_service_local_variable_null_value(void **state)
{
	(void)state;
	assert_int_equal(
	    service(SVC_BASE "environment:\n  local:\n    - name: A\n      value: ~\n"),
	    VEIL_EINVAL);
	assert_only_diag("t.yaml:9:13: local variable 'A' needs a value: local variables cannot "
			 "be set from the Meshfile");
}

static void test_service_local_variable_explicit_empty_value_accepted(void **state)
{
	(void)state;
	assert_int_equal(
	    service(SVC_BASE "environment:\n  local:\n    - name: A\n      value: \"\"\n"), 0);
	assert_no_diags();
	assert_int_equal(sm.local_count, 1);
	assert_non_null(sm.local[0].value);
	assert_string_equal(sm.local[0].value, "");
}

static void test_service_variable_local_and_global(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n"
					  "  local:\n"
					  "    - name: X\n"
					  "      value: a\n"
					  "  global:\n"
					  "    - name: X\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:12:13: variable 'X' is both local (line 9) and global");
}

static void test_service_variable_defined_twice(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n"
					  "  global:\n"
					  "    - name: X\n"
					  "    - name: X\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:10:13: environment.global: variable 'X' defined twice (first at "
			 "line 9)");
}

static void test_service_invalid_env_names(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n"
					  "  global:\n"
					  "    - name: 1ABC\n"
					  "    - name: A-B\n"
					  "    - name: A.B\n"),
			 VEIL_EINVAL);
	assert_int_equal(diags.count, 3);
	assert_string_equal(diags.msgs[0],
			    "t.yaml:9:13: environment.global: '1ABC' is not a valid variable name "
			    "(letters, digits, '_'; not starting with a digit)");
	assert_string_equal(diags.msgs[1],
			    "t.yaml:10:13: environment.global: 'A-B' is not a valid variable name "
			    "(letters, digits, '_'; not starting with a digit)");
	assert_string_equal(diags.msgs[2],
			    "t.yaml:11:13: environment.global: 'A.B' is not a valid variable name "
			    "(letters, digits, '_'; not starting with a digit)");
	assert_int_equal(sm.global_count, 0);
}

static void test_service_env_entry_without_name(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n  global:\n    - value: x\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:7: environment.global: required key 'name' is missing");
}

/* ---- service manifest: secrets ---- */

static void test_service_invalid_secret_name(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  global:\n"
					  "    - name: pass.word\n"
					  "      kind: ascii\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:13: secrets.global entry: 'pass.word' is not a valid secret "
			 "name (letters, digits, '_', '-')");
}

static void test_service_duplicate_secret(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  global:\n"
					  "    - name: pw\n"
					  "      kind: ascii\n"
					  "  local:\n"
					  "    - name: pw\n"
					  "      kind: binary\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:12:13: secret 'pw' defined twice (first at line 9)");
}

static void test_service_import_of_defined_secret(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  global:\n"
					  "    - name: pw\n"
					  "      kind: ascii\n"
					  "  import:\n"
					  "    - pw\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:12:7: secret 'pw' is both imported and defined (line 9)");
}

static void test_service_import_twice(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  import:\n"
					  "    - pw\n"
					  "    - name: pw\n"
					  "      namespace: other\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:10:7: secret 'pw' imported twice");
}

static void test_service_import_invalid_entry(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  import:\n"
					  "    - [pw]\n"
					  "    - bad.name\n"),
			 VEIL_EINVAL);
	assert_int_equal(diags.count, 2);
	assert_string_equal(diags.msgs[0], "t.yaml:9:7: secrets.import entries must be a secret "
					   "name or a mapping, found a list");
	assert_string_equal(diags.msgs[1],
			    "t.yaml:10:7: secrets.import: 'bad.name' is not a valid secret name");
}

/* Within a mesh an import names a global secret by its own name; renaming
 * needs the namespace the secret comes from. */
static void test_service_import_renaming_without_namespace_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  import:\n"
					  "    - name: pw\n"
					  "      secret: db_pw\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:10:15: secrets.import entry: 'secret' renames a secret of another "
			 "namespace and needs 'namespace' (within a mesh, import a global secret "
			 "by its own name)");
}

/* A secret refused for a missing name must not leak its fields into the
 * next entry's checks. */
static void test_service_nameless_secret_does_not_taint_next(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  local:\n"
					  "    - kind: ascii\n"
					  "      size: 8\n"
					  "    - name: token\n"
					  "      kind: explicit\n"
					  "      value: abc\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:7: secrets.local entry: required key 'name' is missing");
}

static void test_service_unknown_secret_kind(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  local:\n"
					  "    - name: pw\n"
					  "      kind: password\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:10:13: secrets.local entry: unknown secret kind 'password' "
			 "(ascii, binary, private-key, public-key, x509, x509-ca, explicit)");
}

static void test_service_secret_without_kind(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n  local:\n    - name: pw\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:9:7: secrets.local entry: required key 'kind' is missing");
}

static void test_service_size_with_non_ascii_kind(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  local:\n"
					  "    - name: cert\n"
					  "      kind: x509\n"
					  "      size: 10\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:13: secrets.local entry: 'size' does not apply to kind 'x509'");
}

static void test_service_size_zero_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  local:\n"
					  "    - name: pw\n"
					  "      kind: binary\n"
					  "      size: 0\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:13: secrets.local entry: size must be at least 1");
}

static void test_service_size_and_value_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  local:\n"
					  "    - name: pw\n"
					  "      kind: ascii\n"
					  "      size: 4\n"
					  "      value: abcd\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:12:14: secrets.local entry: give either 'size' or 'value', not "
			 "both");
}

/* SCONE's explicit binary values are hex (its java tutorial: feedfeed00) */
static void test_service_binary_value_must_be_hex(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  global:\n"
					  "    - name: store\n"
					  "      kind: binary\n"
					  "      value: |\n"
					  "        feedfeed00\n"
					  "    - name: bad\n"
					  "      kind: binary\n"
					  "      value: not hex\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:15:14: secrets.global entry: value must be an even number of hex "
			 "digits (an explicit binary value is hex, as in SCONE)");
	assert_string_equal(sm.secrets[0].value, "feedfeed00\n");
}

/* SCONE's command is one string; veil-run splits it at blanks */
static void test_service_command_list_refused(void **state)
{
	(void)state;
	assert_int_equal(service("apiVersion: scone/5.8\n"
				 "kind: genservice\n"
				 "build:\n"
				 "  name: app\n"
				 "  to: reg.example/app:1\n"
				 "  command: [python3, app.py]\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:6:12: build: 'command' must be one string, found a list (the "
			 "program and its arguments separated by blanks, as in SCONE: command: "
			 "python3 app.py --port 80)");
}

/* SCONE would render it; on veil's command line the node could read it */
static void test_service_command_placeholder_refused(void **state)
{
	(void)state;
	assert_int_equal(service("apiVersion: scone/5.8\n"
				 "kind: genservice\n"
				 "secrets:\n"
				 "  local:\n"
				 "    - {name: pw, kind: ascii}\n"
				 "build:\n"
				 "  name: app\n"
				 "  to: reg.example/app:1\n"
				 "  command: python3 app.py --password $$SCONE::pw$$\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:12: build: 'command' holds a secret placeholder; veil does not "
			 "put secrets on a command line, which the node can read (ps, "
			 "/proc/PID/cmdline): pass the secret in the environment or an injection "
			 "file");
}

static void test_service_explicit_secret_needs_value(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  local:\n"
					  "    - name: pw\n"
					  "      kind: explicit\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:7: secrets.local entry: kind 'explicit' needs 'value'");
}

static void test_service_unknown_algorithm(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  local:\n"
					  "    - name: k\n"
					  "      kind: private-key\n"
					  "      algorithm: RSA-1024\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:18: secrets.local entry: unknown algorithm 'RSA-1024' (P-256, "
			 "P-384, Ed25519, RSA-2048, RSA-3072)");
}

static void test_service_invalid_export_namespace(void **state)
{
	(void)state;
	assert_int_equal(
	    service(SVC_BASE
		    "secrets:\n"
		    "  global:\n"
		    "    - name: pw\n"
		    "      kind: ascii\n"
		    "      export: [{namespace: -bad, owner: "
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}]\n"),
	    VEIL_EINVAL);
	assert_only_diag("t.yaml:11:28: secrets.global entry: '-bad' is not a valid namespace "
			 "name");
}

/* consent by a name alone would go to whoever creates that name */
static void test_service_export_by_name_alone_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  global:\n"
					  "    - name: pw\n"
					  "      kind: ascii\n"
					  "      export: [partner]\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:16: secrets.global entry: export to 'partner' needs the "
			 "importer's identity: write {namespace: partner, owner: KEYHASH} ('veil "
			 "whoami' prints a client's key hash) and/or session_hash: POLICYHASH");
}

static void test_service_export_entry_without_identity_refused(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "secrets:\n"
					  "  global:\n"
					  "    - name: pw\n"
					  "      kind: ascii\n"
					  "      export: [{namespace: partner}]\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:16: secrets.global entry: export to 'partner' needs the "
			 "importer's identity: 'owner' (its owner's client key hash) and/or "
			 "'session_hash' (its policy hash)");
}

static void test_service_placeholder_names_undeclared_secret(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n"
					  "  local:\n"
					  "    - name: A\n"
					  "      value: \"x$$SCONE::nope$$\"\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:10:14: variable 'A' refers to secret 'nope', which is not "
			 "declared in 'secrets' or 'secrets.import'");
}

static void test_service_malformed_placeholder(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "environment:\n"
					  "  global:\n"
					  "    - name: A\n"
					  "      value: \"$$SCONE::pw:zip$$\"\n"
					  "secrets:\n"
					  "  global:\n"
					  "    - name: pw\n"
					  "      kind: ascii\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:10:14: variable 'A': secret placeholder has an unknown suffix "
			 "(known: hex, base64, base64url, crt, cert, key, privatekey, publickey, "
			 "chain, pem)");
}

static void test_service_injection_placeholder_undeclared(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "injection_files:\n"
					  "  - path: /etc/app.conf\n"
					  "    content: \"pw=$$SCONE::nope$$\"\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:8:5: injection file '/etc/app.conf' refers to secret 'nope', "
			 "which is not declared in 'secrets' or 'secrets.import'");
}

/* ---- service manifest: injection files ---- */

static void test_service_injection_relative_path(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "injection_files:\n"
					  "  - path: etc/app.conf\n"
					  "    content: x\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:8:11: injection_files: path 'etc/app.conf' must be absolute "
			 "without '..'");
}

static void test_service_injection_dotdot_path(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "injection_files:\n"
					  "  - path: /etc/../root/x\n"
					  "  - path: /etc/..\n"
					  "  - path: /..\n"),
			 VEIL_EINVAL);
	assert_int_equal(diags.count, 3);
	assert_string_equal(diags.msgs[0], "t.yaml:8:11: injection_files: path '/etc/../root/x' "
					   "must be absolute without '..'");
	assert_string_equal(diags.msgs[1], "t.yaml:9:11: injection_files: path '/etc/..' must be "
					   "absolute without '..'");
	assert_string_equal(diags.msgs[2], "t.yaml:10:11: injection_files: path '/..' must be "
					   "absolute without '..'");
}

static void test_service_injection_duplicate_path(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "injection_files:\n"
					  "  - path: /etc/a\n"
					  "  - path: /etc/a\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:11: injection_files: '/etc/a' listed twice (first at line 8)");
}

static void test_service_injection_dotted_names_accepted(void **state)
{
	(void)state;
	assert_int_equal(service(SVC_BASE "injection_files:\n"
					  "  - path: /etc/..hidden\n"
					  "  - path: /etc/a..b/c\n"),
			 0);
	assert_no_diags();
	assert_int_equal(sm.inject_count, 2);
	assert_string_equal(sm.inject[0].content, "");
}

/* ---- service manifest: a full valid one ---- */

static void test_service_all_fields(void **state)
{
	(void)state;
	assert_int_equal(
	    service("apiVersion: veil/v1\n"
		    "kind: genservice\n"
		    "environment:\n"
		    "  global:\n"
		    "    - name: G\n"
		    "      value: dflt\n"
		    "secrets:\n"
		    "  global:\n"
		    "    - name: ca_key\n"
		    "      kind: private-key\n"
		    "      algorithm: P-256\n"
		    "    - name: ca\n"
		    "      kind: x509-ca\n"
		    "      private_key: ca_key\n"
		    "      common_name: my ca\n"
		    "      valid_for: 365d\n"
		    "      dns: [a.example, b.example]\n"
		    "      export: [{namespace: other, owner: "
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}]\n"
		    "      migrate: true\n"
		    "  local:\n"
		    "    - name: token\n"
		    "      kind: explicit\n"
		    "      value: s3cret\n"
		    "  import:\n"
		    "    - shared\n"
		    "    - name: db\n"
		    "      namespace: dbns\n"
		    "      secret: db_pw\n"
		    "injection_files:\n"
		    "  - path: /etc/app.conf\n"
		    "    content: \"t=$$SCONE::token$$ db=$$SCONE::db:hex$$\"\n"
		    "build:\n"
		    "  name: app.v2\n"
		    "  to: reg.example/app:2\n"
		    "  command: ./run\n"
		    "  requirements: requirements.txt\n"
		    "  copy: src\n"
		    "  run: [pip install x, make]\n"
		    "  host_paths: [/dev/sgx]\n"
		    "  signature:\n"
		    "    sign: true\n"),
	    0);
	assert_no_diags();
	assert_string_equal(sm.api_version, "veil/v1");
	assert_int_equal(sm.global_count, 1);
	assert_string_equal(sm.global[0].value, "dflt");
	assert_int_equal(sm.global[0].vpos.line, 6);
	assert_int_equal(sm.global[0].vpos.col, 14);
	assert_int_equal(sm.secret_count, 3);
	assert_string_equal(sm.secrets[0].name, "ca_key");
	assert_string_equal(sm.secrets[0].algorithm, "P-256");
	assert_true(sm.secrets[0].is_global);
	const struct veil_secret *ca = &sm.secrets[1];
	assert_string_equal(ca->kind, "x509-ca");
	assert_string_equal(ca->private_key, "ca_key");
	assert_string_equal(ca->common_name, "my ca");
	assert_string_equal(ca->valid_for, "365d");
	assert_int_equal(ca->dns_count, 2);
	assert_string_equal(ca->dns[1], "b.example");
	assert_int_equal(ca->export_count, 1);
	assert_string_equal(ca->export_to[0], "other");
	assert_string_equal(ca->export_owner[0],
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_null(ca->export_session_hash[0]);
	assert_true(ca->migrate);
	assert_false(ca->has_size);
	assert_string_equal(sm.secrets[2].name, "token");
	assert_false(sm.secrets[2].is_global);
	assert_string_equal(sm.secrets[2].value, "s3cret");
	assert_int_equal(sm.import_count, 2);
	assert_string_equal(sm.imports[0].name, "shared");
	assert_null(sm.imports[0].from_namespace);
	assert_null(sm.imports[0].secret);
	assert_string_equal(sm.imports[1].name, "db");
	assert_string_equal(sm.imports[1].from_namespace, "dbns");
	assert_string_equal(sm.imports[1].secret, "db_pw");
	assert_int_equal(sm.inject_count, 1);
	assert_string_equal(sm.inject[0].path, "/etc/app.conf");
	assert_int_equal(sm.inject[0].pos.line, 30);
	assert_string_equal(sm.build.name, "app.v2");
	assert_null(sm.build.kind);
	assert_string_equal(sm.build.pwd, "/");
	assert_string_equal(sm.build.requirements, "requirements.txt");
	assert_int_equal(sm.build.copy_count, 1);
	assert_string_equal(sm.build.copy[0], "src");
	assert_int_equal(sm.build.run_count, 2);
	assert_string_equal(sm.build.run[0], "pip install x");
	assert_int_equal(sm.build.host_paths_count, 1);
	assert_string_equal(sm.build.host_paths[0], "/dev/sgx");
	assert_true(sm.build.sign);
}

/* ---- Meshfile ---- */

static void test_mesh_duplicate_service(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD "services:\n"
					    "  - name: app\n"
					    "    image: a\n"
					    "  - name: app\n"
					    "    image: b\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:8:11: duplicate service name 'app' (first at line 6)");
}

static void test_mesh_reserved_service_name_global(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD "services:\n  - name: global\n    image: a\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:6:11: services entry: 'global' is reserved for env blocks");
}

static void test_mesh_reserved_service_name_helm(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD "services:\n  - name: helm\n    image: a\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:6:11: services entry: 'helm' is reserved for env blocks");
}

static void test_mesh_invalid_service_name(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD "services:\n  - name: a/b\n    image: a\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:6:11: services entry: name 'a/b' must start with a letter or "
			 "digit and hold only letters, digits, '_', '.', '-'");
}

static void test_mesh_service_without_image(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD "services:\n  - name: app\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:6:5: services entry: required key 'image' is missing");
}

static void test_mesh_no_services(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD "services: []\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:5:11: services: the mesh needs at least one service");
}

static void test_mesh_missing_services(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD), VEIL_EINVAL);
	assert_only_diag("t.yaml:1:1: top level: required key 'services' is missing");
}

static void test_mesh_missing_policy(void **state)
{
	(void)state;
	assert_int_equal(meshfile("apiVersion: scone/5.8\nkind: mesh\n" ONE_SERVICE), VEIL_EINVAL);
	assert_only_diag("t.yaml:1:1: top level: required key 'policy' is missing");
}

static void test_mesh_invalid_namespace(void **state)
{
	(void)state;
	assert_int_equal(
	    meshfile("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: a b\n" ONE_SERVICE),
	    VEIL_EINVAL);
	assert_only_diag("t.yaml:4:14: policy: namespace 'a b' must start with a letter or digit "
			 "and hold only letters, digits, '_', '.', '-' (at most 128)");
}

static void test_mesh_unknown_policy_key_suggests(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD "  tolerates: debug-mode\n" ONE_SERVICE), VEIL_EINVAL);
	assert_only_diag(
	    "t.yaml:5:3: unknown key 'tolerates' in policy (did you mean 'tolerate'?)");
}

static void test_mesh_env_block_unknown_service(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - service: nope\n"
							"    env:\n"
							"      - name: A\n"
							"        value: b\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:5: env block names service 'nope', which is not in services");
}

static void test_mesh_env_block_twice(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - service: app\n"
							"    env: []\n"
							"  - service: app\n"
							"    env: []\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:14: env block for 'app' given twice (first at line 9)");
}

static void test_mesh_env_block_without_service(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - env:\n"
							"      - name: A\n"
							"        value: b\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:5: env block: required key 'service' is missing");
}

static void test_mesh_env_block_unknown_key(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - service: app\n"
							"    envs: []\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:10:5: unknown key 'envs' in an env block (did you mean 'env'?)");
}

static void test_mesh_env_invalid_variable_name(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - service: app\n"
							"    env:\n"
							"      - name: 9LIVES\n"
							"        value: x\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:15: env block of 'app': '9LIVES' is not a valid variable name "
			 "(letters, digits, '_'; not starting with a digit)");
}

static void test_mesh_unknown_tolerate_value(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD "  tolerate: debug-mode, outdated_tcb\n" ONE_SERVICE),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:5:13: policy: unknown tolerate value 'outdated_tcb' (known: "
			 "debug-mode, outdated-tcb, software-hardening-needed, "
			 "insecure-configuration, hyperthreading, insecure-igpu, aepic-leak, "
			 "insecure-unpinned-files, insecure-unmeasured-program)");
}

static void test_mesh_unknown_cas_tolerance_flag(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "cas:\n"
							"  - name: cas\n"
							"    cas_url: cas.example\n"
							"    tolerance: \"-C --trust-me -S\"\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:16: cas entry: unknown tolerance flag '--trust-me' (known: -C, "
			 "-G, -S, --insecure-configuration, --outdated-tcb, "
			 "--software-hardening-needed, --only_for_testing-debug, "
			 "--only_for_testing-ignore-signer, --only_for_testing-trust-any)");
}

static void test_mesh_unknown_cas_mode(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "cas:\n"
							"  - name: cas\n"
							"    cas_url: cas.example\n"
							"    mode: Plain\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:11: cas entry: unknown mode 'Plain' (Upload, NoUpload)");
}

/* SCONE's Upload and NoUpload mean what they say; the modes that ask veil to
 * sign or encrypt are refused, never accepted and ignored */
static void test_mesh_cas_modes(void **state)
{
	(void)state;
	static const char *const ok[] = {"Upload", "NoUpload"};
	static const char *const refused[] = {"SignedManifest", "EncryptedManifest",
					      "EncryptedOnly"};
	char text[512], want[512];
	for (size_t i = 0; i < 2; i++) {
		snprintf(text, sizeof(text),
			 MESH_HEAD ONE_SERVICE "cas:\n  - name: cas\n    cas_url: c.example\n"
					       "    mode: %s\n",
			 ok[i]);
		assert_int_equal(meshfile(text), 0);
		assert_no_diags();
		assert_int_equal(veil_mesh_uploads(&mesh), i == 0);
		teardown(NULL);
		setup(NULL);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(text, sizeof(text),
			 MESH_HEAD ONE_SERVICE "cas:\n  - name: cas\n    cas_url: c.example\n"
					       "    mode: %s\n",
			 refused[i]);
		assert_int_equal(meshfile(text), VEIL_EINVAL);
		snprintf(
		    want, sizeof(want),
		    "t.yaml:11:11: cas entry: mode '%s' is not supported: veil neither signs "
		    "nor encrypts manifests or policies; it uploads the policy over mutual TLS "
		    "to the CAS it attested (mode Upload, the default) or not at all (mode "
		    "NoUpload)",
		    refused[i]);
		assert_only_diag(want);
		teardown(NULL);
		setup(NULL);
	}
	/* the mode of the CAS that holds the policy (alias security) decides */
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "cas:\n"
							"  - name: img\n"
							"    cas_url: a\n"
							"    mode: NoUpload\n"
							"  - name: sec\n"
							"    cas_url: b\n"
							"    alias: security\n"),
			 0);
	assert_int_equal(veil_mesh_uploads(&mesh), 1);
	teardown(NULL);
	setup(NULL);
	/* no cas at all: uploading is the default (the CLI then needs --cas) */
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE), 0);
	assert_int_equal(veil_mesh_uploads(&mesh), 1);
}

static void test_mesh_cas_name_not_an_identifier(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "cas:\n"
							"  - name: my-cas\n"
							"    cas_url: cas.example\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:9:11: cas entry: name 'my-cas' must be letters, digits and '_' "
			 "(it names template variables such as {{cas_my-cas_cas_url}})");
}

static void test_mesh_cas_defined_twice(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "cas:\n"
							"  - name: c\n"
							"    cas_url: a\n"
							"  - name: c\n"
							"    cas_url: b\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:11:11: cas 'c' defined twice (first at line 9)");
}

static void test_mesh_cas_without_url(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "cas:\n  - name: c\n"), VEIL_EINVAL);
	assert_only_diag("t.yaml:9:5: cas entry: required key 'cas_url' is missing");
}

/* The flat list and the "global" and "helm" blocks are one scope: a variable
 * set in two of them would depend on layout, so it is refused. The message
 * sits on the later entry and points back at the earlier one, whichever
 * list the parser happens to store first. */
static void test_mesh_flat_env_and_global_block_same_variable_refused(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - name: A\n"
							"    value: flat\n"
							"  - service: global\n"
							"    env:\n"
							"      - name: A\n"
							"        value: block\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:13:15: env: 'A' is already set at line 9 (the env list and the "
			 "'global' and 'helm' blocks share one scope)");
}

static void test_mesh_global_and_helm_blocks_same_variable_refused(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - service: helm\n"
							"    env:\n"
							"      - name: A\n"
							"        value: h\n"
							"  - service: global\n"
							"    env:\n"
							"      - name: A\n"
							"        value: g\n"),
			 VEIL_EINVAL);
	assert_only_diag("t.yaml:15:15: env: 'A' is already set at line 11 (the env list and the "
			 "'global' and 'helm' blocks share one scope)");
}

static void test_mesh_flat_env_with_service_block_accepted(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - name: A\n"
							"    value: flat\n"
							"  - service: app\n"
							"    env:\n"
							"      - name: A\n"
							"        value: mine\n"),
			 0);
	assert_no_diags();
	assert_int_equal(mesh.env_count, 2);
	assert_string_equal(mesh.env[0].service, "app");
	assert_null(mesh.env[1].service);
	assert_string_equal(mesh.env[1].vars[0].value, "flat");
}

static void test_mesh_env_entry_without_value_refused(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - name: A\n"
							"  - service: app\n"
							"    env:\n"
							"      - name: B\n"
							"        value: ~\n"),
			 VEIL_EINVAL);
	assert_int_equal(diags.count, 2);
	assert_string_equal(diags.msgs[0], "t.yaml:12:15: env: 'B' needs a value");
	assert_string_equal(diags.msgs[1], "t.yaml:9:11: env: 'A' needs a value");
}

static void test_mesh_env_blocks_parsed(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD ONE_SERVICE "env:\n"
							"  - service: global\n"
							"    env:\n"
							"      - name: A\n"
							"        value: g\n"
							"  - service: helm\n"
							"    env: []\n"
							"  - service: app\n"
							"    env:\n"
							"      - name: A\n"
							"        value: s\n"
							"      - name: B\n"
							"        value: \"\"\n"),
			 0);
	assert_no_diags();
	assert_int_equal(mesh.env_count, 3);
	assert_string_equal(mesh.env[0].service, "global");
	assert_int_equal(mesh.env[0].count, 1);
	assert_string_equal(mesh.env[0].vars[0].value, "g");
	assert_int_equal(mesh.env[0].pos.line, 9);
	assert_string_equal(mesh.env[1].service, "helm");
	assert_int_equal(mesh.env[1].count, 0);
	assert_string_equal(mesh.env[2].service, "app");
	assert_int_equal(mesh.env[2].count, 2);
	assert_string_equal(mesh.env[2].vars[0].value, "s");
	assert_string_equal(mesh.env[2].vars[1].value, "");
}

static void test_mesh_all_policy_fields(void **state)
{
	(void)state;
	assert_int_equal(meshfile(MESH_HEAD "  tolerate: [hyperthreading, debug-mode]\n"
					    "  ignore_advisories: INTEL-SA-00615 INTEL-SA-00586\n"
					    "services:\n"
					    "  - name: app\n"
					    "    image: reg/app:1\n"
					    "    image_secrets: [pull1, pull2]\n"
					    "cas:\n"
					    "  - name: c\n"
					    "    cas_url: cas.example:8081\n"
					    "    cas_key: abcd\n"
					    "    mode: NoUpload\n"
					    "    cas_encryption_key: ef01\n"
					    "    alias: security\n"),
			 0);
	assert_no_diags();
	assert_string_equal(mesh.namespace_, "ns");
	assert_int_equal(mesh.namespace_pos.line, 4);
	assert_int_equal(mesh.namespace_pos.col, 14);
	assert_int_equal(mesh.tolerate_count, 2);
	assert_string_equal(mesh.tolerate[0], "hyperthreading");
	assert_string_equal(mesh.tolerate[1], "debug-mode");
	assert_int_equal(mesh.ignore_advisories_count, 2);
	assert_string_equal(mesh.ignore_advisories[0], "INTEL-SA-00615");
	assert_int_equal(mesh.services[0].image_secrets_count, 2);
	assert_string_equal(mesh.services[0].image_secrets[1], "pull2");
	assert_int_equal(mesh.cas_count, 1);
	assert_string_equal(mesh.cas[0].cas_key, "abcd");
	assert_string_equal(mesh.cas[0].mode, "NoUpload");
	assert_string_equal(mesh.cas[0].cas_encryption_key, "ef01");
	assert_int_equal(mesh.cas[0].alias_count, 1);
	assert_string_equal(mesh.cas[0].alias[0], "security");
	assert_null(mesh.cas[0].tolerance);
	assert_int_equal(mesh.env_count, 0);
}

/* ---- the seed's files, field by field ---- */

static void test_seed_service_manifest(void **state)
{
	(void)state;
	ydoc_free(&doc);
	assert_int_equal(ydoc_init(&doc, SEED_DIR "service.yaml"), 0);
	int rc = ydoc_load(&doc, SEED_DIR "service.yaml", NULL, &diags);
	if (!rc)
		rc = veil_service_parse(&doc, &sm, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
	assert_no_diags();
	assert_string_equal(sm.file, SEED_DIR "service.yaml");
	assert_string_equal(sm.api_version, "scone/5.8");

	assert_int_equal(sm.local_count, 3);
	assert_string_equal(sm.local[0].name, "SCONE_HEAP");
	assert_string_equal(sm.local[0].value, "760M");
	assert_int_equal(sm.local[0].pos.line, 10);
	assert_int_equal(sm.local[0].pos.col, 13);
	assert_int_equal(sm.local[0].vpos.line, 11);
	assert_int_equal(sm.local[0].vpos.col, 14);
	assert_string_equal(sm.local[1].name, "SCONE_LOG");
	assert_string_equal(sm.local[1].value, "error");
	assert_int_equal(sm.local[1].pos.line, 12);
	assert_string_equal(sm.local[2].name, "API_PASSWORD");
	assert_string_equal(sm.local[2].value, "$$SCONE::password$$");
	assert_int_equal(sm.local[2].pos.line, 14);
	assert_int_equal(sm.local[2].vpos.line, 15);
	assert_int_equal(sm.local[2].vpos.col, 14);

	assert_int_equal(sm.global_count, 1);
	assert_string_equal(sm.global[0].name, "API_USER");
	assert_null(sm.global[0].value);
	assert_int_equal(sm.global[0].pos.line, 17);
	assert_int_equal(sm.global[0].pos.col, 13);
	assert_int_equal(sm.global[0].vpos.line, 17);
	assert_int_equal(sm.global[0].vpos.col, 13);

	assert_int_equal(sm.secret_count, 1);
	const struct veil_secret *pw = &sm.secrets[0];
	assert_string_equal(pw->name, "password");
	assert_string_equal(pw->kind, "ascii");
	assert_true(pw->has_size);
	assert_int_equal(pw->size, 10);
	assert_true(pw->is_global);
	assert_null(pw->value);
	assert_null(pw->private_key);
	assert_null(pw->issuer);
	assert_null(pw->common_name);
	assert_null(pw->valid_for);
	assert_null(pw->algorithm);
	assert_int_equal(pw->dns_count, 0);
	assert_int_equal(pw->export_count, 0);
	assert_false(pw->migrate);
	assert_int_equal(pw->pos.line, 22);
	assert_int_equal(pw->pos.col, 5);
	assert_int_equal(sm.import_count, 0);
	assert_int_equal(sm.inject_count, 0);

	const struct veil_build *b = &sm.build;
	assert_string_equal(b->name, "python_hello_user");
	assert_string_equal(b->kind, "python");
	assert_string_equal(b->to, "registry.scontain.com:5050/cicd/python_hello_user:latest");
	assert_string_equal(b->pwd, "/python");
	assert_string_equal(b->command, "python3 print_env.py");
	assert_null(b->requirements);
	assert_int_equal(b->copy_count, 1);
	assert_string_equal(b->copy[0], "print_env.py");
	assert_int_equal(b->copy_pos.line, 33);
	assert_int_equal(b->copy_pos.col, 5);
	assert_int_equal(b->run_count, 0);
	assert_int_equal(b->host_paths_count, 0);
	assert_false(b->sign);
}

static void test_seed_meshfile(void **state)
{
	(void)state;
	ydoc_free(&doc);
	assert_int_equal(ydoc_init(&doc, SEED_DIR "Meshfile"), 0);
	int rc = ydoc_load(&doc, SEED_DIR "Meshfile", NULL, &diags);
	if (!rc)
		rc = veil_mesh_parse(&doc, &mesh, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
	assert_no_diags();
	assert_string_equal(mesh.file, SEED_DIR "Meshfile");
	assert_string_equal(mesh.api_version, "scone/5.8");

	assert_int_equal(mesh.cas_count, 1);
	const struct veil_mesh_cas *c = &mesh.cas[0];
	assert_string_equal(c->name, "cas");
	assert_int_equal(c->alias_count, 4);
	assert_string_equal(c->alias[0], "image");
	assert_string_equal(c->alias[1], "security");
	assert_string_equal(c->alias[2], "access");
	assert_string_equal(c->alias[3], "attestation");
	assert_string_equal(c->cas_url, "edge.scone-cas.cf");
	assert_string_equal(c->tolerance, "--only_for_testing-trust-any --only_for_testing-debug  "
					  "--only_for_testing-ignore-signer -C -G -S");
	assert_null(c->cas_key);
	assert_null(c->mode);
	assert_null(c->cas_encryption_key);
	assert_int_equal(c->pos.line, 5);
	assert_int_equal(c->pos.col, 5);

	assert_string_equal(mesh.namespace_, "myPythonApp");
	assert_int_equal(mesh.namespace_pos.line, 11);
	assert_int_equal(mesh.namespace_pos.col, 14);
	assert_int_equal(mesh.tolerate_count, 0);
	assert_int_equal(mesh.ignore_advisories_count, 0);

	assert_int_equal(mesh.env_count, 1);
	const struct veil_mesh_env_block *e = &mesh.env[0];
	assert_null(e->service);
	assert_int_equal(e->pos.line, 15);
	assert_int_equal(e->pos.col, 5);
	assert_int_equal(e->count, 3);
	assert_string_equal(e->vars[0].name, "API_USER");
	assert_string_equal(e->vars[0].value, "myself");
	assert_int_equal(e->vars[0].pos.line, 15);
	assert_int_equal(e->vars[0].pos.col, 11);
	assert_int_equal(e->vars[0].vpos.line, 16);
	assert_int_equal(e->vars[0].vpos.col, 12);
	assert_string_equal(e->vars[1].name, "imagePullSecrets");
	assert_string_equal(e->vars[1].value, "SconeApps");
	assert_string_equal(e->vars[2].name, "APP_SERVICE_PORT");
	assert_string_equal(e->vars[2].value, "443");
	assert_int_equal(e->vars[2].vpos.line, 20);

	assert_int_equal(mesh.service_count, 1);
	const struct veil_mesh_service *s = &mesh.services[0];
	assert_string_equal(s->name, "pythonapp");
	assert_string_equal(s->image, "registry.scontain.com:5050/cicd/python_hello_user:latest");
	assert_int_equal(s->image_secrets_count, 0);
	assert_int_equal(s->pos.line, 23);
	assert_int_equal(s->pos.col, 5);
}

/* ---- placeholders ---- */

struct seen {
	struct veil_placeholder ph[8];
	size_t n;
	int stop_with;
};

static int collect(const struct veil_placeholder *ph, void *arg)
{
	struct seen *s = arg;
	if (s->n < VEIL_ARRAY_LEN(s->ph))
		s->ph[s->n] = *ph;
	s->n++;
	return s->stop_with;
}

static int walk(const char *str, struct seen *s, const char **why)
{
	memset(s, 0, sizeof(*s));
	*why = NULL;
	return veil_placeholders(str, collect, s, why);
}

static void test_placeholder_unterminated(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	assert_int_equal(walk("x $$SCONE::pw", &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "unterminated secret placeholder (missing closing '$$')");
	assert_int_equal(s.n, 0);
}

static void test_placeholder_unterminated_after_valid_one(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	assert_int_equal(walk("$$SCONE::a$$ $$SCONE::b", &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "unterminated secret placeholder (missing closing '$$')");
	assert_int_equal(s.n, 1);
}

static void test_placeholder_bad_suffix(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	assert_int_equal(walk("$$SCONE::pw:zip$$", &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "secret placeholder has an unknown suffix (known: hex, base64, "
				 "base64url, crt, cert, key, privatekey, publickey, chain, pem)");
	assert_int_equal(walk("$$SCONE::pw.HEX$$", &s, &why), VEIL_EINVAL);
	assert_int_equal(walk("$$SCONE::pw:hex:x$$", &s, &why), VEIL_EINVAL);
}

static void test_placeholder_empty_or_long_suffix(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	assert_int_equal(walk("$$SCONE::pw:$$", &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "secret placeholder has an empty or too long suffix");
	assert_int_equal(walk("$$SCONE::pw.abcdefghijklmnopq$$", &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "secret placeholder has an empty or too long suffix");
}

static void test_placeholder_invalid_name(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	assert_int_equal(walk("$$SCONE::$$", &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "secret placeholder without a valid secret name");
	assert_int_equal(walk("$$SCONE:::hex$$", &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "secret placeholder without a valid secret name");
	assert_int_equal(walk("$$SCONE::p w$$", &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "secret placeholder names an invalid secret name");
	assert_int_equal(walk("$$SCONE::p/w$$", &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "secret placeholder names an invalid secret name");
	assert_int_equal(s.n, 0);
}

static void test_placeholder_name_too_long(void **state)
{
	(void)state;
	char str[200];
	char name[130];
	memset(name, 'a', 129);
	name[129] = '\0';
	snprintf(str, sizeof(str), "$$SCONE::%s$$", name);
	struct seen s;
	const char *why;
	assert_int_equal(walk(str, &s, &why), VEIL_EINVAL);
	assert_string_equal(why, "secret placeholder without a valid secret name");
	name[128] = '\0';
	snprintf(str, sizeof(str), "$$SCONE::%s$$", name);
	assert_int_equal(walk(str, &s, &why), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ph[0].name, name);
}

static void test_placeholder_plain(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	assert_int_equal(walk("$$SCONE::password$$", &s, &why), 0);
	assert_null(why);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ph[0].name, "password");
	assert_string_equal(s.ph[0].suffix, "");
	assert_int_equal(s.ph[0].start, 0);
	assert_int_equal(s.ph[0].end, 19);
}

static void test_placeholder_colon_suffix(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	assert_int_equal(walk("key=$$SCONE::k-1:hex$$;", &s, &why), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ph[0].name, "k-1");
	assert_string_equal(s.ph[0].suffix, "hex");
	assert_int_equal(s.ph[0].start, 4);
	assert_int_equal(s.ph[0].end, 22);
}

static void test_placeholder_dot_suffix(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	assert_int_equal(walk("$$SCONE::server_cert.crt$$", &s, &why), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ph[0].name, "server_cert");
	assert_string_equal(s.ph[0].suffix, "crt");
}

static void test_placeholder_several(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	const char *str = "a $$SCONE::x$$ b $$SCONE::y:base64url$$$$SCONE::z.chain$$ c";
	assert_int_equal(walk(str, &s, &why), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.ph[0].name, "x");
	assert_int_equal(s.ph[0].start, 2);
	assert_int_equal(s.ph[0].end, 14);
	assert_string_equal(s.ph[1].name, "y");
	assert_string_equal(s.ph[1].suffix, "base64url");
	assert_int_equal(s.ph[1].start, 17);
	assert_int_equal(s.ph[1].end, 39);
	assert_string_equal(s.ph[2].name, "z");
	assert_string_equal(s.ph[2].suffix, "chain");
	assert_int_equal(s.ph[2].start, 39);
	assert_int_equal(s.ph[2].end, 57);
}

static void test_placeholder_callback_stops_walk(void **state)
{
	(void)state;
	struct seen s;
	memset(&s, 0, sizeof(s));
	s.stop_with = 7;
	const char *why = NULL;
	assert_int_equal(veil_placeholders("$$SCONE::a$$ $$SCONE::b$$", collect, &s, &why), 7);
	assert_int_equal(s.n, 1);
}

static void test_placeholder_none(void **state)
{
	(void)state;
	struct seen s;
	const char *why;
	assert_int_equal(walk("no secrets $$ here $SCONE::x$ $$SCONE:x$$", &s, &why), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(veil_placeholders("$$SCONE::ok$$", NULL, NULL, &why), 0);
}

static void test_placeholder_suffix_valid(void **state)
{
	(void)state;
	static const char *const good[] = {"hex", "base64",     "base64url", "crt",   "cert",
					   "key", "privatekey", "publickey", "chain", "pem"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(good); i++)
		assert_true(veil_placeholder_suffix_valid(good[i]));
	assert_false(veil_placeholder_suffix_valid(""));
	assert_false(veil_placeholder_suffix_valid("HEX"));
	assert_false(veil_placeholder_suffix_valid("hexx"));
}

/* ---- names ---- */

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_valid_env_name(void **state)
{
	(void)state;
	assert_true(veil_valid_env_name("A"));
	assert_true(veil_valid_env_name("_a1"));
	assert_true(veil_valid_env_name("imagePullSecrets"));
	assert_false(veil_valid_env_name(NULL));
	assert_false(veil_valid_env_name(""));
	assert_false(veil_valid_env_name("1A"));
	assert_false(veil_valid_env_name("A-B"));
	assert_false(veil_valid_env_name("A.B"));
	assert_false(veil_valid_env_name("A B"));
	assert_false(veil_valid_env_name("A=B"));
	assert_false(veil_valid_env_name("caf\xc3\xa9"));
	char *s = repeat('A', 256);
	assert_true(veil_valid_env_name(s));
	free(s);
	s = repeat('A', 257);
	assert_false(veil_valid_env_name(s));
	free(s);
}

static void test_valid_secret_name(void **state)
{
	(void)state;
	assert_true(veil_valid_secret_name("password"));
	assert_true(veil_valid_secret_name("db-pw_2"));
	assert_true(veil_valid_secret_name("1st"));
	assert_true(veil_valid_secret_name("-"));
	assert_false(veil_valid_secret_name(NULL));
	assert_false(veil_valid_secret_name(""));
	assert_false(veil_valid_secret_name("a.b"));
	assert_false(veil_valid_secret_name("a:b"));
	assert_false(veil_valid_secret_name("a$b"));
	assert_false(veil_valid_secret_name("a b"));
	char *s = repeat('s', 128);
	assert_true(veil_valid_secret_name(s));
	free(s);
	s = repeat('s', 129);
	assert_false(veil_valid_secret_name(s));
	free(s);
}

static void test_valid_object_name(void **state)
{
	(void)state;
	assert_true(veil_valid_object_name("a"));
	assert_true(veil_valid_object_name("myPythonApp"));
	assert_true(veil_valid_object_name("1.a_b-c"));
	assert_false(veil_valid_object_name(NULL));
	assert_false(veil_valid_object_name(""));
	assert_false(veil_valid_object_name("-a"));
	assert_false(veil_valid_object_name("_a"));
	assert_false(veil_valid_object_name(".a"));
	assert_false(veil_valid_object_name("a/b"));
	assert_false(veil_valid_object_name("a b"));
	assert_false(veil_valid_object_name("a:b"));
	char *s = repeat('o', 128);
	assert_true(veil_valid_object_name(s));
	free(s);
	s = repeat('o', 129);
	assert_false(veil_valid_object_name(s));
	free(s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_unknown_api_version_refused),
	    T(test_api_version_patch_levels),
	    T(test_unknown_kind_refused),
	    T(test_missing_kind_refused),
	    T(test_non_mapping_document_refused),
	    T(test_meshfile_given_as_service_refused),
	    T(test_service_given_as_meshfile_refused),
	    T(test_doc_kind),
	    T(test_service_unknown_key_suggests),
	    T(test_service_unknown_build_key_suggests),
	    T(test_service_build_user_and_group),
	    T(test_service_build_root_user_refused),
	    T(test_service_build_lone_group_refused),
	    T(test_service_build_from),
	    T(test_service_build_from_unknown_form_refused),
	    T(test_service_build_from_not_a_registry_host_refused),
	    T(test_service_unknown_env_entry_key),
	    T(test_service_missing_build_refused),
	    T(test_service_build_required_fields),
	    T(test_service_environment_wrong_type),
	    T(test_service_env_list_wrong_type),
	    T(test_service_env_entry_wrong_type),
	    T(test_service_env_value_wrong_type),
	    T(test_service_secrets_wrong_type),
	    T(test_service_secret_size_not_a_number),
	    T(test_service_secret_size_too_large),
	    T(test_service_copy_wrong_type),
	    T(test_service_signature_sign_not_bool),
	    T(test_service_relative_pwd_refused),
	    T(test_service_invalid_build_name_refused),
	    T(test_service_local_variable_without_value),
	    T(test_service_local_variable_null_value),
	    T(test_service_local_variable_explicit_empty_value_accepted),
	    T(test_service_variable_local_and_global),
	    T(test_service_variable_defined_twice),
	    T(test_service_invalid_env_names),
	    T(test_service_env_entry_without_name),
	    T(test_service_invalid_secret_name),
	    T(test_service_duplicate_secret),
	    T(test_service_import_of_defined_secret),
	    T(test_service_import_twice),
	    T(test_service_import_invalid_entry),
	    T(test_service_import_renaming_without_namespace_refused),
	    T(test_service_nameless_secret_does_not_taint_next),
	    T(test_service_unknown_secret_kind),
	    T(test_service_secret_without_kind),
	    T(test_service_size_with_non_ascii_kind),
	    T(test_service_size_zero_refused),
	    T(test_service_size_and_value_refused),
	    T(test_service_explicit_secret_needs_value),
	    T(test_service_binary_value_must_be_hex),
	    T(test_service_command_list_refused),
	    T(test_service_command_placeholder_refused),
	    T(test_service_unknown_algorithm),
	    T(test_service_invalid_export_namespace),
	    T(test_service_export_by_name_alone_refused),
	    T(test_service_export_entry_without_identity_refused),
	    T(test_service_placeholder_names_undeclared_secret),
	    T(test_service_malformed_placeholder),
	    T(test_service_injection_placeholder_undeclared),
	    T(test_service_injection_relative_path),
	    T(test_service_injection_dotdot_path),
	    T(test_service_injection_duplicate_path),
	    T(test_service_injection_dotted_names_accepted),
	    T(test_service_all_fields),
	    T(test_mesh_duplicate_service),
	    T(test_mesh_reserved_service_name_global),
	    T(test_mesh_reserved_service_name_helm),
	    T(test_mesh_invalid_service_name),
	    T(test_mesh_service_without_image),
	    T(test_mesh_no_services),
	    T(test_mesh_missing_services),
	    T(test_mesh_missing_policy),
	    T(test_mesh_invalid_namespace),
	    T(test_mesh_unknown_policy_key_suggests),
	    T(test_mesh_env_block_unknown_service),
	    T(test_mesh_env_block_twice),
	    T(test_mesh_env_block_without_service),
	    T(test_mesh_env_block_unknown_key),
	    T(test_mesh_env_invalid_variable_name),
	    T(test_mesh_unknown_tolerate_value),
	    T(test_mesh_unknown_cas_tolerance_flag),
	    T(test_mesh_unknown_cas_mode),
	    T(test_mesh_cas_modes),
	    T(test_mesh_cas_name_not_an_identifier),
	    T(test_mesh_cas_defined_twice),
	    T(test_mesh_cas_without_url),
	    T(test_mesh_flat_env_and_global_block_same_variable_refused),
	    T(test_mesh_global_and_helm_blocks_same_variable_refused),
	    T(test_mesh_flat_env_with_service_block_accepted),
	    T(test_mesh_env_entry_without_value_refused),
	    T(test_mesh_env_blocks_parsed),
	    T(test_mesh_all_policy_fields),
	    T(test_seed_service_manifest),
	    T(test_seed_meshfile),
	    T(test_placeholder_unterminated),
	    T(test_placeholder_unterminated_after_valid_one),
	    T(test_placeholder_bad_suffix),
	    T(test_placeholder_empty_or_long_suffix),
	    T(test_placeholder_invalid_name),
	    T(test_placeholder_name_too_long),
	    T(test_placeholder_plain),
	    T(test_placeholder_colon_suffix),
	    T(test_placeholder_dot_suffix),
	    T(test_placeholder_several),
	    T(test_placeholder_callback_stops_walk),
	    T(test_placeholder_none),
	    T(test_placeholder_suffix_valid),
	    T(test_valid_env_name),
	    T(test_valid_secret_name),
	    T(test_valid_object_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
