/* Unit tests: policy derivation from a Meshfile, manifests and measurement
 * records (src/policy/derive.c). Members are built from inline YAML with
 * hand-filled measurements. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "veil/policy.h"

#ifndef VEIL_SOURCE_ROOT
#error "VEIL_SOURCE_ROOT must name the repository root"
#endif
#define SEED_DIR VEIL_SOURCE_ROOT "/examples/python-hello-user/"
#define GOLDEN_DIR VEIL_SOURCE_ROOT "/tests/e2e/golden/"

#define MAX_MEMBERS 4
#define RUNTIME_HEX "8ceeba9608d95ac21020e9a1fa9d0916a447fad79e5febfc9e5e62f00cb7487b"
#define ROOT_HEX "082cccc685171910e434780cb94f6416452e8bd5756eb04785dff38d29654fb9"

static struct {
	struct ydoc mesh_doc;
	struct veil_mesh mesh;
	struct ydoc svc_doc[MAX_MEMBERS];
	struct veil_service_manifest sm[MAX_MEMBERS];
	struct veil_measurement meas[MAX_MEMBERS];
	struct veil_mesh_member mm[MAX_MEMBERS];
	size_t n;
	struct ydoc out; /* arena of the derived policy */
	struct ynode *policy;
	struct veil_buf text;
	struct veil_diags d;
} w;

static int setup(void **state)
{
	(void)state;
	memset(&w, 0, sizeof(w));
	veil_diags_init(&w.d);
	return ydoc_init(&w.out, "policy");
}

static int teardown(void **state)
{
	(void)state;
	ydoc_free(&w.mesh_doc);
	for (size_t i = 0; i < MAX_MEMBERS; i++)
		ydoc_free(&w.svc_doc[i]);
	ydoc_free(&w.out);
	veil_buf_free(&w.text);
	veil_diags_free(&w.d);
	return 0;
}

static void print_diags(void)
{
	for (size_t i = 0; i < w.d.count; i++)
		print_message("diag[%zu]: %s\n", i, w.d.msgs[i]);
}

static void assert_has_diag(const char *want)
{
	for (size_t i = 0; i < w.d.count; i++)
		if (!strcmp(w.d.msgs[i], want))
			return;
	print_diags();
	fail_msg("missing diagnostic: %s", want);
}

static void assert_only_diag(const char *want)
{
	if (w.d.count != 1)
		print_diags();
	assert_int_equal(w.d.count, 1);
	assert_string_equal(w.d.msgs[0], want);
}

static void load_mesh(const char *text)
{
	assert_int_equal(ydoc_init(&w.mesh_doc, "Meshfile"), 0);
	int rc = ydoc_parse(&w.mesh_doc, text, strlen(text), NULL, &w.d);
	if (!rc)
		rc = veil_mesh_parse(&w.mesh_doc, &w.mesh, &w.d);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
}

/* Adds the mesh service `name` with the manifest `text` (file "<name>.yaml")
 * and a hand-made measurement. */
static void add_member(const char *name, const char *text)
{
	assert_true(w.n < MAX_MEMBERS);
	size_t i = w.n;
	char file[64];
	snprintf(file, sizeof(file), "%s.yaml", name);
	assert_int_equal(ydoc_init(&w.svc_doc[i], file), 0);
	int rc = ydoc_parse(&w.svc_doc[i], text, strlen(text), NULL, &w.d);
	if (!rc)
		rc = veil_service_parse(&w.svc_doc[i], &w.sm[i], &w.d);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
	const struct veil_mesh_service *svc = NULL;
	for (size_t k = 0; k < w.mesh.service_count; k++)
		if (!strcmp(w.mesh.services[k].name, name))
			svc = &w.mesh.services[k];
	assert_non_null(svc);
	struct veil_measurement *m = &w.meas[i];
	m->name = (char *)w.sm[i].build.name;
	m->image = (char *)w.sm[i].build.to;
	m->command = (char *)w.sm[i].build.command;
	m->pwd = (char *)w.sm[i].build.pwd;
	snprintf(m->runtime_sha256, sizeof(m->runtime_sha256), "%s", RUNTIME_HEX);
	snprintf(m->file_set_root, sizeof(m->file_set_root), "%s", ROOT_HEX);
	w.mm[i] = (struct veil_mesh_member){.svc = svc, .manifest = &w.sm[i], .meas = m};
	w.n++;
}

/* Adds the mesh service `name` built from the manifest of member `owner`
 * (one manifest serving two services). */
static void add_member_sharing(const char *name, size_t owner)
{
	assert_true(w.n < MAX_MEMBERS && owner < w.n);
	size_t i = w.n;
	const struct veil_mesh_service *svc = NULL;
	for (size_t k = 0; k < w.mesh.service_count; k++)
		if (!strcmp(w.mesh.services[k].name, name))
			svc = &w.mesh.services[k];
	assert_non_null(svc);
	w.meas[i] = w.meas[owner];
	w.mm[i] =
	    (struct veil_mesh_member){.svc = svc, .manifest = &w.sm[owner], .meas = &w.meas[i]};
	w.n++;
}

static int derive_mode(int debug)
{
	struct veil_derive_opts o = {.debug_mode = debug};
	w.policy = NULL;
	return veil_policy_derive(w.out.arena, &w.mesh, w.mm, w.n, &o, &w.policy, &w.d);
}

static void derive_ok(void)
{
	int rc = derive_mode(0);
	if (rc || w.d.count)
		print_diags();
	assert_int_equal(rc, 0);
	assert_int_equal(w.d.count, 0);
	assert_non_null(w.policy);
}

static const struct ynode *policy_service(const char *name)
{
	const struct ynode *s = ymap_get(w.policy, "services");
	assert_non_null(s);
	for (size_t i = 0; i < s->count; i++)
		if (!strcmp(ymap_get(s->items[i], "name")->str, name))
			return s->items[i];
	fail_msg("no service '%s' in the policy", name);
	return NULL;
}

/* Value of environment variable `var` of service `svc` in the policy; NULL if absent. */
static const char *env_of(const char *svc, const char *var)
{
	const struct ynode *env = ymap_get(policy_service(svc), "environment");
	assert_non_null(env);
	const struct ynode *v = ymap_get(env, var);
	return v ? v->str : NULL;
}

/* Canonical text of the derived policy; owned by the fixture. */
static const char *emit_policy(void)
{
	veil_buf_free(&w.text);
	veil_buf_init(&w.text, 0);
	assert_int_equal(yemit(w.policy, &w.text), 0);
	assert_non_null(w.text.data);
	return w.text.data;
}

static void assert_contains(const char *text, const char *want)
{
	assert_non_null(text);
	if (strstr(text, want))
		return;
	print_message("policy:\n%s\n", text);
	fail_msg("policy lacks:\n%s", want);
}

/* A manifest building image `bname`; tests append top-level keys from line 8. */
#define SVC(bname)                                                                                 \
	"apiVersion: scone/5.8\n"                                                                  \
	"kind: genservice\n"                                                                       \
	"build:\n"                                                                                 \
	"  name: " bname "\n"                                                                      \
	"  to: reg.example/" bname ":1\n"                                                          \
	"  command: python3 " bname ".py\n"                                                        \
	"  pwd: /srv\n"

#define MESH(services_and_env)                                                                     \
	"apiVersion: scone/5.8\n"                                                                  \
	"kind: mesh\n"                                                                             \
	"policy:\n"                                                                                \
	"  namespace: ns\n" services_and_env

#define TWO_SERVICES                                                                               \
	"services:\n"                                                                              \
	"  - name: a\n"                                                                            \
	"    image: reg.example/a:1\n"                                                             \
	"  - name: b\n"                                                                            \
	"    image: reg.example/b:1\n"

/* manifest with one global variable A, default "dflt" */
#define GLOBAL_A_DEFAULT                                                                           \
	"environment:\n"                                                                           \
	"  global:\n"                                                                              \
	"    - name: A\n"                                                                          \
	"      value: dflt\n"

#define GLOBAL_A_NO_DEFAULT                                                                        \
	"environment:\n"                                                                           \
	"  global:\n"                                                                              \
	"    - name: A\n"

/* ---- refusals ---- */

static void test_meshfile_setting_local_variable_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - name: SCONE_LOG\n"
				    "    value: debug\n"));
	add_member("a", SVC("a") "environment:\n"
				 "  local:\n"
				 "    - name: SCONE_LOG\n"
				 "      value: error\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("Meshfile:11:11: the Meshfile sets 'SCONE_LOG' (env list), but "
			 "'SCONE_LOG' is a local variable of service 'a' (a.yaml:10) and cannot "
			 "be set from the Meshfile");
	assert_null(w.policy);
}

static void test_meshfile_block_setting_local_variable_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: a\n"
				    "    env:\n"
				    "      - name: SCONE_LOG\n"
				    "        value: debug\n"));
	add_member("a", SVC("a") "environment:\n"
				 "  local:\n"
				 "    - name: SCONE_LOG\n"
				 "      value: error\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("Meshfile:13:15: the Meshfile sets 'SCONE_LOG' (env block of a), but "
			 "'SCONE_LOG' is a local variable of service 'a' (a.yaml:10) and cannot "
			 "be set from the Meshfile");
}

static void test_meshfile_global_block_setting_local_variable_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: global\n"
				    "    env:\n"
				    "      - name: SCONE_LOG\n"
				    "        value: debug\n"));
	add_member("a", SVC("a") "environment:\n"
				 "  local:\n"
				 "    - name: SCONE_LOG\n"
				 "      value: error\n");
	add_member("b", SVC("b") "environment:\n"
				 "  local:\n"
				 "    - name: SCONE_LOG\n"
				 "      value: error\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_int_equal(w.d.count, 2);
	assert_has_diag("Meshfile:13:15: the Meshfile sets 'SCONE_LOG' (env block of global), but "
			"'SCONE_LOG' is a local variable of service 'a' (a.yaml:10) and cannot be "
			"set from the Meshfile");
	assert_has_diag("Meshfile:13:15: the Meshfile sets 'SCONE_LOG' (env block of global), but "
			"'SCONE_LOG' is a local variable of service 'b' (b.yaml:10) and cannot be "
			"set from the Meshfile");
}

static void test_other_services_block_may_name_local_variable(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: b\n"
				    "    env:\n"
				    "      - name: SCONE_LOG\n"
				    "        value: debug\n"));
	add_member("a", SVC("a") "environment:\n"
				 "  local:\n"
				 "    - name: SCONE_LOG\n"
				 "      value: error\n");
	derive_ok();
	assert_string_equal(env_of("a", "SCONE_LOG"), "error");
}

static void test_missing_global_value_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("b", SVC("b") GLOBAL_A_NO_DEFAULT);
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("Meshfile:8:5: service 'b': global variable 'A' has no value; set it in "
			 "the Meshfile's env or give a default in b.yaml");
}

static void test_unknown_template_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "environment:\n"
				 "  local:\n"
				 "    - name: URL\n"
				 "      value: \"http://{{NOPE}}/\"\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("a.yaml:11:14: variable 'URL' of service 'a': template {{NOPE}} names no "
			 "Meshfile variable or cas field");
}

static void test_unknown_cas_field_template_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "cas:\n"
				    "  - name: cas\n"
				    "    cas_url: cas.example\n"));
	add_member("a", SVC("a") "environment:\n"
				 "  local:\n"
				 "    - name: K\n"
				 "      value: \"{{cas_cas_cas_key}}{{cas_other_cas_url}}\"\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("a.yaml:11:14: variable 'K' of service 'a': template {{cas_cas_cas_key}} "
			 "names no Meshfile variable or cas field");
}

static void test_unterminated_template_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "environment:\n"
				 "  local:\n"
				 "    - name: U\n"
				 "      value: \"x {{HOST\"\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("a.yaml:11:14: variable 'U' of service 'a': '{{' without closing '}}'");
}

static void test_empty_template_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "environment:\n"
				 "  local:\n"
				 "    - name: U\n"
				 "      value: \"x {{ }}\"\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("a.yaml:11:14: variable 'U' of service 'a': empty or too long {{ }} "
			 "template");
}

static void test_conflicting_global_secrets_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  global:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n"
				 "      size: 10\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  global:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n"
				 "      size: 12\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("b.yaml:10:7: secret 'pw' of service 'b' conflicts with the global "
			 "secret 'pw' of service 'a' (a.yaml); global secrets of the same name "
			 "must be defined identically");
}

static void test_same_named_local_secrets_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  local:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  local:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("b.yaml:10:7: secret 'pw' of service 'b' conflicts with the local secret "
			 "'pw' of service 'a' (a.yaml); rename one of them");
}

static void test_global_and_local_secret_same_name_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  global:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  local:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("b.yaml:10:7: secret 'pw' of service 'b' conflicts with the global "
			 "secret 'pw' of service 'a' (a.yaml); rename one of them");
}

static void test_local_secret_used_by_other_service_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: b\n"
				    "    env:\n"
				    "      - name: V\n"
				    "        value: \"$$SCONE::apw$$\"\n"));
	add_member("a", SVC("a") "secrets:\n"
				 "  local:\n"
				 "    - name: apw\n"
				 "      kind: ascii\n");
	add_member("b", SVC("b") "environment:\n"
				 "  global:\n"
				 "    - name: V\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("Meshfile:14:16: variable 'V' of service 'b' refers to secret 'apw', "
			 "which is local to service 'a'");
}

static void test_local_secret_reached_through_template_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - name: PW\n"
				    "    value: \"$$SCONE::apw$$\"\n"));
	add_member("a", SVC("a") "secrets:\n"
				 "  local:\n"
				 "    - name: apw\n"
				 "      kind: ascii\n");
	add_member("b", SVC("b") "environment:\n"
				 "  local:\n"
				 "    - name: CONF\n"
				 "      value: \"pw={{PW}}\"\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("b.yaml:11:14: variable 'CONF' of service 'b' refers to secret 'apw', "
			 "which is local to service 'a'");
}

static void test_mesh_value_naming_undeclared_secret_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - name: V\n"
				    "    value: \"$$SCONE::nope:hex$$\"\n"));
	add_member("b", SVC("b") "environment:\n"
				 "  global:\n"
				 "    - name: V\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("Meshfile:12:12: variable 'V' of service 'b' refers to secret 'nope', "
			 "which is not declared in 'secrets' or 'secrets.import'");
}

static void test_mesh_value_malformed_placeholder_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - name: V\n"
				    "    value: \"$$SCONE::pw\"\n"));
	add_member("b", SVC("b") "environment:\n"
				 "  global:\n"
				 "    - name: V\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("Meshfile:12:12: variable 'V' of service 'b': unterminated secret "
			 "placeholder (missing closing '$$')");
}

static void test_private_key_of_other_service_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  local:\n"
				 "    - name: cert\n"
				 "      kind: x509\n"
				 "      private_key: bkey\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  local:\n"
				 "    - name: bkey\n"
				 "      kind: private-key\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("a.yaml:10:7: secret 'cert': private_key 'bkey' names no secret "
			 "declared for service 'a'");
}

static void test_conflicting_imports_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  import:\n"
				 "    - name: db\n"
				 "      namespace: one\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  import:\n"
				 "    - name: db\n"
				 "      namespace: two\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("b.yaml:10:7: imported secret 'db' of service 'b' conflicts with secret "
			 "'db' of service 'a'");
}

/* SCONE's flask/redis tutorial: `secrets: import: [name]` inside a mesh names
 * a global secret another service declares; one secret, referred to by both. */
static void test_import_within_mesh_names_global_secret(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  import:\n"
				 "    - db\n"
				 "environment:\n"
				 "  local:\n"
				 "    - name: DB\n"
				 "      value: \"$$SCONE::db$$\"\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  global:\n"
				 "    - name: db\n"
				 "      kind: ascii\n"
				 "      size: 12\n"
				 "environment:\n"
				 "  local:\n"
				 "    - name: DB\n"
				 "      value: \"$$SCONE::db$$\"\n");
	derive_ok();
	const char *text = emit_policy();
	assert_contains(text, "secrets:\n"
			      "  - kind: ascii\n"
			      "    name: db\n"
			      "    size: 12\n"
			      "services:\n");
	assert_null(strstr(text, "import"));
	assert_int_equal(ymap_get(w.policy, "secrets")->count, 1);
	assert_string_equal(env_of("a", "DB"), "$$SCONE::db$$");
	assert_string_equal(env_of("b", "DB"), "$$SCONE::db$$");
}

static void test_import_within_mesh_without_declaration_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  import:\n"
				 "    - db\n"
				 "environment:\n"
				 "  local:\n"
				 "    - name: DB\n"
				 "      value: \"$$SCONE::db$$\"\n");
	add_member("b", SVC("b"));
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("a.yaml:10:7: service 'a' imports secret 'db', but no service of the mesh "
			 "declares a global secret 'db' (to import from another namespace, give "
			 "{name, namespace, secret})");
}

static void test_import_within_mesh_of_local_secret_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  import:\n"
				 "    - db\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  local:\n"
				 "    - name: db\n"
				 "      kind: ascii\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("a.yaml:10:7: service 'a' imports secret 'db', which is local to service "
			 "'b' (b.yaml); only global secrets can be imported within a mesh");
}

static void test_import_within_mesh_clashing_with_namespace_import_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  import:\n"
				 "    - db\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  import:\n"
				 "    - name: db\n"
				 "      namespace: other\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("a.yaml:10:7: imported secret 'db' of service 'a' conflicts with secret "
			 "'db' of service 'b'");
}

/* ---- precedence ---- */

static void test_precedence_service_block_over_global_block(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: a\n"
				    "    env:\n"
				    "      - name: A\n"
				    "        value: mine\n"
				    "  - service: global\n"
				    "    env:\n"
				    "      - name: A\n"
				    "        value: shared\n"));
	add_member("a", SVC("a") GLOBAL_A_DEFAULT);
	add_member("b", SVC("b") GLOBAL_A_DEFAULT);
	derive_ok();
	assert_string_equal(env_of("a", "A"), "mine");
	assert_string_equal(env_of("b", "A"), "shared");
}

static void test_precedence_global_block_over_default(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: global\n"
				    "    env:\n"
				    "      - name: A\n"
				    "        value: shared\n"));
	add_member("a", SVC("a") GLOBAL_A_DEFAULT);
	derive_ok();
	assert_string_equal(env_of("a", "A"), "shared");
}

static void test_precedence_helm_block_over_default(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: helm\n"
				    "    env:\n"
				    "      - name: A\n"
				    "        value: fromhelm\n"));
	add_member("a", SVC("a") GLOBAL_A_DEFAULT);
	derive_ok();
	assert_string_equal(env_of("a", "A"), "fromhelm");
}

static void test_precedence_flat_list_over_default(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - name: A\n"
				    "    value: flat\n"));
	add_member("a", SVC("a") GLOBAL_A_DEFAULT);
	derive_ok();
	assert_string_equal(env_of("a", "A"), "flat");
}

static void test_precedence_default_when_mesh_silent(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: b\n"
				    "    env:\n"
				    "      - name: A\n"
				    "        value: only-b\n"));
	add_member("a", SVC("a") GLOBAL_A_DEFAULT);
	add_member("b", SVC("b") GLOBAL_A_DEFAULT);
	derive_ok();
	assert_string_equal(env_of("a", "A"), "dflt");
	assert_string_equal(env_of("b", "A"), "only-b");
}

static void test_mesh_lookup_reports_block(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: helm\n"
				    "    env:\n"
				    "      - name: H\n"
				    "        value: h\n"
				    "  - service: b\n"
				    "    env:\n"
				    "      - name: H\n"
				    "        value: hb\n"));
	const char *block = NULL;
	const struct veil_env_var *v = veil_mesh_lookup(&w.mesh, "a", "H", &block);
	assert_non_null(v);
	assert_string_equal(v->value, "h");
	assert_string_equal(block, "helm");
	v = veil_mesh_lookup(&w.mesh, "b", "H", &block);
	assert_string_equal(v->value, "hb");
	assert_string_equal(block, "b");
	assert_null(veil_mesh_lookup(&w.mesh, "a", "NOPE", &block));
	assert_non_null(veil_mesh_lookup(&w.mesh, NULL, "H", NULL));
}

/* ---- templates ---- */

static void test_template_fill_variables_and_cas_fields(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "cas:\n"
				    "  - name: cas\n"
				    "    cas_url: edge.example\n"
				    "env:\n"
				    "  - name: HOST\n"
				    "    value: backend\n"
				    "  - name: PORT\n"
				    "    value: 8080\n"));
	add_member("a", SVC("a") "environment:\n"
				 "  local:\n"
				 "    - name: URL\n"
				 "      value: \"http://{{HOST}}:{{ PORT }}/x\"\n"
				 "    - name: CAS\n"
				 "      value: \"{{cas_cas_cas_url}}\"\n"
				 "    - name: CASNAME\n"
				 "      value: \"{{cas_cas_name}}\"\n");
	derive_ok();
	assert_string_equal(env_of("a", "URL"), "http://backend:8080/x");
	assert_string_equal(env_of("a", "CAS"), "edge.example");
	assert_string_equal(env_of("a", "CASNAME"), "cas");
}

static void test_template_fill_in_mesh_value(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "cas:\n"
				    "  - name: cas\n"
				    "    cas_url: edge.example\n"
				    "env:\n"
				    "  - name: A\n"
				    "    value: \"https://{{cas_cas_cas_url}}:8081\"\n"));
	add_member("a", SVC("a") GLOBAL_A_NO_DEFAULT);
	derive_ok();
	assert_string_equal(env_of("a", "A"), "https://edge.example:8081");
}

static void test_template_fill_is_not_recursive(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - name: X\n"
				    "    value: \"{{X}}\"\n"));
	const char *missing = NULL;
	char *r = veil_template_fill(w.out.arena, &w.mesh, "a", "<{{X}}>", &missing);
	assert_non_null(r);
	assert_null(missing);
	assert_string_equal(r, "<{{X}}>");
}

static void test_template_fill_without_templates_returns_input(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	const char *in = "plain } { text";
	const char *missing = "x";
	assert_ptr_equal(veil_template_fill(w.out.arena, &w.mesh, "a", in, &missing), in);
	assert_null(missing);
}

static void test_template_fill_unknown_names_variable(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	const char *missing = NULL;
	assert_null(veil_template_fill(w.out.arena, &w.mesh, "a", "a{{  WHO  }}b", &missing));
	assert_string_equal(missing, "template {{WHO}} names no Meshfile variable or cas field");
}

/* ---- secrets and imports in the output ---- */

static void test_global_secret_shared_collected_once(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  global:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n"
				 "      size: 10\n"
				 "environment:\n"
				 "  local:\n"
				 "    - name: P\n"
				 "      value: \"$$SCONE::pw$$\"\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  global:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n"
				 "      size: 10\n"
				 "environment:\n"
				 "  local:\n"
				 "    - name: Q\n"
				 "      value: \"$$SCONE::pw:hex$$\"\n");
	derive_ok();
	const struct ynode *secrets = ymap_get(w.policy, "secrets");
	assert_non_null(secrets);
	assert_int_equal(secrets->count, 1);
	assert_string_equal(ymap_get(secrets->items[0], "name")->str, "pw");
	assert_string_equal(ymap_get(secrets->items[0], "kind")->str, "ascii");
	assert_string_equal(ymap_get(secrets->items[0], "size")->str, "10");
	assert_string_equal(env_of("b", "Q"), "$$SCONE::pw:hex$$");
}

static void test_global_secret_visible_to_other_service(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - name: V\n"
				    "    value: \"$$SCONE::gpw$$\"\n"));
	add_member("a", SVC("a") "secrets:\n"
				 "  global:\n"
				 "    - name: gpw\n"
				 "      kind: binary\n");
	add_member("b", SVC("b") "environment:\n"
				 "  global:\n"
				 "    - name: V\n");
	derive_ok();
	assert_string_equal(env_of("b", "V"), "$$SCONE::gpw$$");
	const struct ynode *s = ymap_get(w.policy, "secrets")->items[0];
	assert_string_equal(ymap_get(s, "size")->str, "32"); /* binary default */
}

static void test_imports_in_output(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  import:\n"
				 "    - name: db\n"
				 "      namespace: dbns\n"
				 "      secret: db_pw\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  import:\n"
				 "    - name: db\n"
				 "      namespace: dbns\n"
				 "      secret: db_pw\n");
	derive_ok();
	const char *text = emit_policy();
	const char *want = "secrets:\n"
			   "  - import:\n"
			   "      namespace: dbns\n"
			   "      secret: db_pw\n"
			   "    name: db\n"
			   "services:\n";
	assert_contains(text, want);
}

static void test_secret_defaults_and_fields_in_output(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a",
		   SVC("a") "secrets:\n"
			    "  local:\n"
			    "    - name: k\n"
			    "      kind: private-key\n"
			    "      algorithm: Ed25519\n"
			    "    - name: c\n"
			    "      kind: x509\n"
			    "      private_key: k\n"
			    "      common_name: svc\n"
			    "      dns: [a.example]\n"
			    "      export: [{namespace: other, session_hash: "
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}]\n"
			    "      migrate: true\n"
			    "    - name: e\n"
			    "      kind: explicit\n"
			    "      value: \"443\"\n"
			    "    - name: s\n"
			    "      kind: ascii\n");
	derive_ok();
	const char *text = emit_policy();
	const char *want = "secrets:\n"
			   "  - common_name: svc\n"
			   "    dns:\n"
			   "      - a.example\n"
			   "    export:\n"
			   "      - namespace: other\n"
			   "        session_hash: "
			   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
			   "    kind: x509\n"
			   "    migrate: true\n"
			   "    name: c\n"
			   "    private_key: k\n"
			   "  - kind: explicit\n"
			   "    name: e\n"
			   "    value: \"443\"\n"
			   "  - algorithm: Ed25519\n"
			   "    kind: private-key\n"
			   "    name: k\n"
			   "  - kind: ascii\n"
			   "    name: s\n"
			   "    size: 20\n"
			   "services:\n";
	assert_contains(text, want);
}

static void test_injection_files_in_images(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - name: HOST\n"
				    "    value: db.internal\n"));
	add_member("a", SVC("a") "secrets:\n"
				 "  local:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n"
				 "injection_files:\n"
				 "  - path: /etc/a.conf\n"
				 "    content: \"host={{HOST}}\\npw=$$SCONE::pw$$\\n\"\n");
	derive_ok();
	const struct ynode *images = ymap_get(w.policy, "images");
	assert_non_null(images);
	assert_int_equal(images->count, 1);
	assert_string_equal(ymap_get(images->items[0], "name")->str, "a");
	const struct ynode *files = ymap_get(images->items[0], "injection_files");
	assert_int_equal(files->count, 1);
	assert_string_equal(ymap_get(files->items[0], "path")->str, "/etc/a.conf");
	assert_string_equal(ymap_get(files->items[0], "content")->str,
			    "host=db.internal\npw=$$SCONE::pw$$\n");
}

/* Issue 12: an allocation failure anywhere while the policy is built is an
 * error, never a half-built policy returned as success. Every allocation of
 * the derivation fails once in turn (yarena_fail_after): each run returns the
 * whole policy (byte for byte the one without failures) or VEIL_ENOMEM. */
static void test_allocation_failure_never_half_a_policy(void **state)
{
	(void)state;
	load_mesh(MESH("  tolerate: [outdated-tcb]\n" TWO_SERVICES "env:\n"
		       "  - name: HOST\n"
		       "    value: db.internal\n"));
	add_member("a", SVC("a") "secrets:\n"
				 "  local:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n"
				 "injection_files:\n"
				 "  - path: /etc/a.conf\n"
				 "    content: \"host={{HOST}}\\npw=$$SCONE::pw$$\\n\"\n");
	add_member("b", SVC("b") "secrets:\n"
				 "  global:\n"
				 "    - name: key\n"
				 "      kind: private-key\n");
	derive_ok();
	struct veil_buf want;
	char hash[2 * VEIL_SHA256_SIZE + 1];
	veil_buf_init(&want, 0);
	assert_int_equal(veil_policy_canonical(w.policy, &want, hash), 0);
	size_t failed = 0, whole = 0;
	for (long n = 1; n < 100000; n++) {
		struct ydoc out;
		struct ynode *policy = NULL;
		struct veil_diags d;
		veil_diags_init(&d);
		assert_int_equal(ydoc_init(&out, "policy"), 0);
		yarena_fail_after(out.arena, n);
		int rc = veil_policy_derive(out.arena, &w.mesh, w.mm, w.n, NULL, &policy, &d);
		int injected = yarena_failed(out.arena);
		if (!injected) {
			/* n is past the derivation's last allocation: done */
			assert_int_equal(rc, 0);
			ydoc_free(&out);
			veil_diags_free(&d);
			break;
		}
		if (rc == 0) {
			/* a failure the builder recovered from must not show */
			struct veil_buf got;
			veil_buf_init(&got, 0);
			assert_int_equal(veil_policy_canonical(policy, &got, hash), 0);
			assert_int_equal(got.size, want.size);
			assert_memory_equal(got.data, want.data, want.size);
			veil_buf_free(&got);
			whole++;
		} else {
			assert_int_equal(rc, VEIL_ENOMEM);
			failed++;
		}
		ydoc_free(&out);
		veil_diags_free(&d);
	}
	assert_true(failed > 20); /* the derivation allocates, and each one was tried */
	veil_buf_free(&want);
}

static void test_injection_template_unknown_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "injection_files:\n"
				 "  - path: /etc/a.conf\n"
				 "    content: \"host={{HOST}}\"\n");
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("a.yaml:9:5: injection file '/etc/a.conf' of service 'a': template "
			 "{{HOST}} names no Meshfile variable or cas field");
}

static void test_no_images_key_without_injection_files(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a"));
	derive_ok();
	assert_null(ymap_get(w.policy, "images"));
	assert_null(ymap_get(w.policy, "secrets"));
	assert_null(ymap_get(w.policy, "security"));
}

static void test_one_manifest_two_services_shares_local_secret(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a") "secrets:\n"
				 "  local:\n"
				 "    - name: pw\n"
				 "      kind: ascii\n"
				 "environment:\n"
				 "  local:\n"
				 "    - name: P\n"
				 "      value: \"$$SCONE::pw$$\"\n");
	add_member_sharing("b", 0);
	derive_ok();
	assert_int_equal(ymap_get(w.policy, "secrets")->count, 1);
	assert_string_equal(env_of("a", "P"), "$$SCONE::pw$$");
	assert_string_equal(env_of("b", "P"), "$$SCONE::pw$$");
	assert_string_equal(ymap_get(policy_service("b"), "image_name")->str, "a");
}

static void test_shared_image_injection_rendered_differently_refused(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - service: a\n"
				    "    env:\n"
				    "      - name: HOST\n"
				    "        value: x\n"
				    "  - service: b\n"
				    "    env:\n"
				    "      - name: HOST\n"
				    "        value: y\n"));
	add_member("a", SVC("a") "injection_files:\n"
				 "  - path: /etc/h\n"
				 "    content: \"{{HOST}}\"\n");
	add_member_sharing("b", 0);
	assert_int_equal(derive_mode(0), VEIL_EINVAL);
	assert_only_diag("Meshfile:8:5: services 'a' and 'b' share image 'a' but their injection "
			 "files render differently (per-service Meshfile values); give them "
			 "separate images");
}

static void test_shared_image_injection_rendered_alike_once(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES "env:\n"
				    "  - name: HOST\n"
				    "    value: x\n"));
	add_member("a", SVC("a") "injection_files:\n"
				 "  - path: /etc/h\n"
				 "    content: \"{{HOST}}\"\n");
	add_member_sharing("b", 0);
	derive_ok();
	const struct ynode *images = ymap_get(w.policy, "images");
	assert_int_equal(images->count, 1);
	const struct ynode *f = ymap_get(images->items[0], "injection_files")->items[0];
	assert_string_equal(ymap_get(f, "content")->str, "x");
}

/* ---- mode and ordering ---- */

static void test_debug_mode_adds_tolerate(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a"));
	assert_int_equal(derive_mode(1), 0);
	const char *text = emit_policy();
	assert_contains(text, "security:\n  attestation:\n    tolerate:\n      - debug-mode\n");
}

static void test_production_mode_tolerates_nothing(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a"));
	assert_int_equal(derive_mode(0), 0);
	assert_null(ymap_get(w.policy, "security"));
	const char *text = emit_policy();
	assert_null(strstr(text, "tolerate"));
	assert_null(strstr(text, "debug"));
}

static void test_null_opts_is_production(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a"));
	assert_int_equal(veil_policy_derive(w.out.arena, &w.mesh, w.mm, w.n, NULL, &w.policy, &w.d),
			 0);
	assert_null(ymap_get(w.policy, "security"));
}

static void test_debug_mode_merges_with_mesh_tolerate(void **state)
{
	(void)state;
	load_mesh("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n"
		  "  tolerate: hyperthreading debug-mode\n"
		  "  ignore_advisories: [INTEL-SA-2, INTEL-SA-1, INTEL-SA-2]\n" TWO_SERVICES);
	add_member("a", SVC("a"));
	assert_int_equal(derive_mode(1), 0);
	const char *text = emit_policy();
	const char *want = "security:\n"
			   "  attestation:\n"
			   "    ignore_advisories:\n"
			   "      - INTEL-SA-1\n"
			   "      - INTEL-SA-2\n"
			   "    tolerate:\n"
			   "      - debug-mode\n"
			   "      - hyperthreading\n";
	assert_contains(text, want);
}

static void test_services_and_secrets_sorted_by_name(void **state)
{
	(void)state;
	load_mesh(MESH("services:\n"
		       "  - name: zeta\n"
		       "    image: z\n"
		       "  - name: alpha\n"
		       "    image: a\n"
		       "  - name: Mid\n"
		       "    image: m\n"));
	add_member("zeta", SVC("zeta") "secrets:\n"
				       "  local:\n"
				       "    - name: z_secret\n"
				       "      kind: ascii\n"
				       "    - name: B_secret\n"
				       "      kind: ascii\n");
	add_member("alpha", SVC("alpha") "secrets:\n"
					 "  global:\n"
					 "    - name: a_secret\n"
					 "      kind: ascii\n");
	add_member("Mid", SVC("mid"));
	derive_ok();
	const struct ynode *s = ymap_get(w.policy, "services");
	assert_int_equal(s->count, 3);
	assert_string_equal(ymap_get(s->items[0], "name")->str, "Mid");
	assert_string_equal(ymap_get(s->items[1], "name")->str, "alpha");
	assert_string_equal(ymap_get(s->items[2], "name")->str, "zeta");
	const struct ynode *sec = ymap_get(w.policy, "secrets");
	assert_int_equal(sec->count, 3);
	assert_string_equal(ymap_get(sec->items[0], "name")->str, "B_secret");
	assert_string_equal(ymap_get(sec->items[1], "name")->str, "a_secret");
	assert_string_equal(ymap_get(sec->items[2], "name")->str, "z_secret");
}

static void test_service_fields_from_measurement(void **state)
{
	(void)state;
	load_mesh(MESH(TWO_SERVICES));
	add_member("a", SVC("a"));
	w.meas[0].name = "img_a";
	w.meas[0].command = "python3 -u a.py";
	w.meas[0].pwd = "/work";
	derive_ok();
	const struct ynode *s = policy_service("a");
	assert_string_equal(ymap_get(s, "image_name")->str, "img_a");
	assert_string_equal(ymap_get(s, "command")->str, "python3 -u a.py");
	assert_string_equal(ymap_get(s, "pwd")->str, "/work");
	assert_string_equal(ymap_get(s, "file_set_root")->str, ROOT_HEX);
	const struct ynode *mr = ymap_get(s, "mrenclaves");
	assert_int_equal(mr->count, 1);
	assert_string_equal(mr->items[0]->str, RUNTIME_HEX);
	assert_string_equal(ymap_get(w.policy, "name")->str, "ns");
	assert_string_equal(ymap_get(w.policy, "version")->str, "0.3");
}

/* ---- canonical form and hash ---- */

static void build_for_hash(const char *value, struct veil_buf *canon, char *hash)
{
	char mesh_text[512];
	snprintf(mesh_text, sizeof(mesh_text),
		 MESH(TWO_SERVICES "env:\n"
				   "  - name: A\n"
				   "    value: \"%s\"\n"),
		 value);
	load_mesh(mesh_text);
	add_member("b", SVC("b") GLOBAL_A_DEFAULT "secrets:\n"
						  "  global:\n"
						  "    - name: pw\n"
						  "      kind: ascii\n");
	add_member("a", SVC("a") GLOBAL_A_DEFAULT);
	derive_ok();
	veil_buf_init(canon, 0);
	assert_int_equal(veil_policy_canonical(w.policy, canon, hash), 0);
}

static void reset_world(void)
{
	teardown(NULL);
	setup(NULL);
}

static void test_canonical_same_input_same_bytes_and_hash(void **state)
{
	(void)state;
	struct veil_buf x, y;
	char hx[65], hy[65];
	build_for_hash("v1", &x, hx);
	reset_world();
	build_for_hash("v1", &y, hy);
	assert_int_equal(x.size, y.size);
	assert_string_equal(x.data, y.data);
	assert_string_equal(hx, hy);
	veil_buf_free(&x);
	veil_buf_free(&y);
}

static void test_canonical_env_change_changes_hash(void **state)
{
	(void)state;
	struct veil_buf x, y;
	char hx[65], hy[65];
	build_for_hash("v1", &x, hx);
	reset_world();
	build_for_hash("v2", &y, hy);
	assert_string_not_equal(x.data, y.data);
	assert_string_not_equal(hx, hy);
	veil_buf_free(&x);
	veil_buf_free(&y);
}

static void test_canonical_hash_is_sha256_of_bytes(void **state)
{
	(void)state;
	struct veil_buf x;
	char hx[65];
	build_for_hash("v1", &x, hx);
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)x.data, x.size, md);
	char want[65];
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	assert_string_equal(hx, want);
	assert_int_equal(strlen(hx), 64);
	veil_buf_free(&x);
}

static void test_canonical_independent_of_member_order(void **state)
{
	(void)state;
	struct veil_buf x, y;
	char hx[65], hy[65];
	build_for_hash("v1", &x, hx);
	/* the same members, given in the other order */
	struct veil_mesh_member t = w.mm[0];
	w.mm[0] = w.mm[1];
	w.mm[1] = t;
	derive_ok();
	veil_buf_init(&y, 0);
	assert_int_equal(veil_policy_canonical(w.policy, &y, hy), 0);
	assert_string_equal(x.data, y.data);
	assert_string_equal(hx, hy);
	veil_buf_free(&x);
	veil_buf_free(&y);
}

static int runtime_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct veil_file_entry *)a)->path,
		      ((const struct veil_file_entry *)b)->path);
}

/* The seed's manifests with the e2e measurement give the golden policy. */
static void test_seed_policy_matches_golden(void **state)
{
	(void)state;
	char *mesh_text = NULL, *svc_text = NULL, *golden = NULL, *golden_hash = NULL;
	size_t n;
	assert_int_equal(veil_read_file(SEED_DIR "Meshfile", 1 << 20, &mesh_text, &n, &w.d), 0);
	assert_int_equal(veil_read_file(SEED_DIR "service.yaml", 1 << 20, &svc_text, &n, &w.d), 0);
	assert_int_equal(veil_read_file(GOLDEN_DIR "myPythonApp.yaml", 1 << 20, &golden, &n, &w.d),
			 0);
	assert_int_equal(
	    veil_read_file(GOLDEN_DIR "myPythonApp.hash", 1 << 20, &golden_hash, &n, &w.d), 0);
	load_mesh(mesh_text);
	add_member("pythonapp", svc_text);
	/* the protected file, as `veil apply -f service.yaml` measured it */
	struct veil_file_entry file = {.path = "/python/print_env.py", .mode = 0644};
	assert_int_equal(veil_sha256_file(SEED_DIR "print_env.py", file.sha256, &w.d), 0);
	w.meas[0].files = &file;
	w.meas[0].file_count = 1;
	/* the image root is the image build's (tests/e2e/run.sh pins it with a
	 * real build); here it is carried over as measured */
	const char *ir = strstr(golden, "image_root: ");
	assert_non_null(ir);
	snprintf(w.meas[0].image_root, sizeof(w.meas[0].image_root), "%.64s", ir + 12);
	/* the runtime files, from the e2e goldens' stand-in image */
	assert_int_equal(veil_measure_runtime_files(GOLDEN_DIR "rootfs", "python3 print_env.py",
						    &w.meas[0].program, &w.meas[0].runtime_files,
						    &w.meas[0].runtime_file_count, &w.d),
			 0);
	assert_non_null(w.meas[0].program);
	qsort(w.meas[0].runtime_files, w.meas[0].runtime_file_count,
	      sizeof(*w.meas[0].runtime_files), runtime_entry_cmp);
	derive_ok();
	w.meas[0].files = NULL;
	w.meas[0].file_count = 0;
	struct veil_buf canon;
	char hash[65];
	veil_buf_init(&canon, 0);
	assert_int_equal(veil_policy_canonical(w.policy, &canon, hash), 0);
	assert_string_equal(canon.data, golden);
	assert_memory_equal(hash, golden_hash, 64);
	assert_string_equal(env_of("pythonapp", "API_USER"), "myself");
	veil_buf_free(&canon);
	for (size_t i = 0; i < w.meas[0].runtime_file_count; i++)
		free(w.meas[0].runtime_files[i].path);
	free(w.meas[0].runtime_files);
	free(w.meas[0].program);
	w.meas[0].runtime_files = NULL;
	w.meas[0].runtime_file_count = 0;
	w.meas[0].program = NULL;
	free(mesh_text);
	free(svc_text);
	free(golden);
	free(golden_hash);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_meshfile_setting_local_variable_refused),
	    T(test_meshfile_block_setting_local_variable_refused),
	    T(test_meshfile_global_block_setting_local_variable_refused),
	    T(test_other_services_block_may_name_local_variable),
	    T(test_missing_global_value_refused),
	    T(test_unknown_template_refused),
	    T(test_unknown_cas_field_template_refused),
	    T(test_unterminated_template_refused),
	    T(test_empty_template_refused),
	    T(test_conflicting_global_secrets_refused),
	    T(test_same_named_local_secrets_refused),
	    T(test_global_and_local_secret_same_name_refused),
	    T(test_local_secret_used_by_other_service_refused),
	    T(test_local_secret_reached_through_template_refused),
	    T(test_mesh_value_naming_undeclared_secret_refused),
	    T(test_mesh_value_malformed_placeholder_refused),
	    T(test_private_key_of_other_service_refused),
	    T(test_conflicting_imports_refused),
	    T(test_import_within_mesh_names_global_secret),
	    T(test_import_within_mesh_without_declaration_refused),
	    T(test_import_within_mesh_of_local_secret_refused),
	    T(test_import_within_mesh_clashing_with_namespace_import_refused),
	    T(test_precedence_service_block_over_global_block),
	    T(test_precedence_global_block_over_default),
	    T(test_precedence_helm_block_over_default),
	    T(test_precedence_flat_list_over_default),
	    T(test_precedence_default_when_mesh_silent),
	    T(test_mesh_lookup_reports_block),
	    T(test_template_fill_variables_and_cas_fields),
	    T(test_template_fill_in_mesh_value),
	    T(test_template_fill_is_not_recursive),
	    T(test_template_fill_without_templates_returns_input),
	    T(test_template_fill_unknown_names_variable),
	    T(test_global_secret_shared_collected_once),
	    T(test_global_secret_visible_to_other_service),
	    T(test_imports_in_output),
	    T(test_secret_defaults_and_fields_in_output),
	    T(test_injection_files_in_images),
	    T(test_allocation_failure_never_half_a_policy),
	    T(test_injection_template_unknown_refused),
	    T(test_no_images_key_without_injection_files),
	    T(test_one_manifest_two_services_shares_local_secret),
	    T(test_shared_image_injection_rendered_differently_refused),
	    T(test_shared_image_injection_rendered_alike_once),
	    T(test_debug_mode_adds_tolerate),
	    T(test_production_mode_tolerates_nothing),
	    T(test_null_opts_is_production),
	    T(test_debug_mode_merges_with_mesh_tolerate),
	    T(test_services_and_secrets_sorted_by_name),
	    T(test_service_fields_from_measurement),
	    T(test_canonical_same_input_same_bytes_and_hash),
	    T(test_canonical_env_change_changes_hash),
	    T(test_canonical_hash_is_sha256_of_bytes),
	    T(test_canonical_independent_of_member_order),
	    T(test_seed_policy_matches_golden),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
