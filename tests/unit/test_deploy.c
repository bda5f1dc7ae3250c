/* Unit tests: Kubernetes names, the Helm template subset veil renders itself
 * and the chart writer (src/deploy/helm.c). */
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

#include "veil/deploy.h"

#ifndef VEIL_SOURCE_ROOT
#error "VEIL_SOURCE_ROOT must name the repository root"
#endif
#define SEED_DIR VEIL_SOURCE_ROOT "/examples/python-hello-user/"

static struct ydoc doc; /* arena for values trees */
static struct ynode *values;
static struct veil_buf out;
static struct veil_diags diags;
static struct ydoc back; /* a rendered text read back */
static const struct veil_release release = {.name = "rel", .service = "Helm"};
static struct veil_diags back_diags;

static int setup(void **state)
{
	(void)state;
	veil_diags_init(&diags);
	veil_buf_init(&out, 0);
	if (ydoc_init(&doc, "values.yaml"))
		return -1;
	/* values: {a: {b: "hello"}, q: 'say "hi" \ bye', l: [{name: x}, y], n: 8080,
	 *          empty: {}} */
	struct yarena *a = doc.arena;
	values = ynew_map(a);
	struct ynode *am = ynew_map(a), *l = ynew_seq(a), *e = ynew_map(a);
	ymap_put_str(a, am, "b", "hello");
	ymap_put(a, values, "a", am);
	ymap_put_str(a, values, "q", "say \"hi\" \\ bye");
	ymap_put_str(a, e, "name", "x");
	yseq_push(a, l, e);
	yseq_push(a, l, ynew_str(a, "y"));
	ymap_put(a, values, "l", l);
	ymap_put(a, values, "n", ynew_int(a, 8080));
	ymap_put(a, values, "empty", ynew_map(a));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	veil_buf_free(&out);
	ydoc_free(&doc);
	ydoc_free(&back);
	veil_diags_free(&diags);
	veil_diags_free(&back_diags);
	return 0;
}

static int render(const char *tpl, const char **why)
{
	*why = NULL;
	out.size = 0;
	if (out.data)
		out.data[0] = '\0';
	return veil_template_render(tpl, values, &release, &out, why);
}

static void assert_renders(const char *tpl, const char *want)
{
	const char *why = NULL;
	int rc = render(tpl, &why);
	if (rc)
		print_message("why: %s\n", why ? why : "(none)");
	assert_int_equal(rc, 0);
	assert_non_null(out.data);
	assert_string_equal(out.data, want);
}

static void assert_refused(const char *tpl, const char *want_why)
{
	const char *why = NULL;
	assert_int_equal(render(tpl, &why), VEIL_EINVAL);
	assert_non_null(why);
	assert_string_equal(why, want_why);
}

/* ---- veil_k8s_name ---- */

static void assert_k8s(const char *in, const char *want)
{
	char buf[64];
	memset(buf, 'Z', sizeof(buf));
	int rc = veil_k8s_name(in, buf);
	if (rc)
		fail_msg("veil_k8s_name refused '%s'", in);
	assert_string_equal(buf, want);
}

static void assert_k8s_refused(const char *in)
{
	char buf[64];
	if (veil_k8s_name(in, buf) != VEIL_EINVAL)
		fail_msg("veil_k8s_name accepted '%s'", in);
}

static void test_k8s_name_too_long_refused(void **state)
{
	(void)state;
	char s[65];
	memset(s, 'a', 64);
	s[64] = '\0';
	assert_k8s_refused(s);
	s[63] = '\0';
	char buf[64];
	assert_int_equal(veil_k8s_name(s, buf), 0);
	assert_string_equal(buf, s);
}

static void test_k8s_name_bad_edges_refused(void **state)
{
	(void)state;
	assert_k8s_refused("");
	assert_k8s_refused("-app");
	assert_k8s_refused("app-");
	assert_k8s_refused("_app");
	assert_k8s_refused("app_");
	assert_k8s_refused(".app");
	assert_k8s_refused("app.");
	assert_k8s_refused("1app"); /* DNS-1035: starts with a letter */
}

static void test_k8s_name_bad_characters_refused(void **state)
{
	(void)state;
	assert_k8s_refused("a b");
	assert_k8s_refused("a/b");
	assert_k8s_refused("a:b");
	assert_k8s_refused("caf\xc3\xa9");
	assert_k8s_refused("a$b");
}

static void test_k8s_name_lowercases_and_maps_separators(void **state)
{
	(void)state;
	assert_k8s("myPythonApp", "mypythonapp");
	assert_k8s("python_hello.user", "python-hello-user");
	assert_k8s("A1", "a1");
	assert_k8s("a__b", "a--b");
	assert_k8s("x", "x");
	assert_k8s("svc-2", "svc-2");
}

/* ---- veil_template_render: refusals ---- */

static void test_render_unsupported_if(void **state)
{
	(void)state;
	assert_refused("x: {{ if .Values.a.b }}y{{ end }}", "unsupported template expression");
}

static void test_render_unsupported_release_field(void **state)
{
	(void)state;
	assert_refused("ns: {{ .Release.Namespace }}", "unsupported template expression");
	assert_refused("n: {{ .Release.Name | trunc }}", "unsupported template expression");
	assert_refused("n: {{ .Release.Name | trunc -1 }}", "unsupported template expression");
	assert_refused("n: {{ .Release.Name | trimSuffix - }}", "unsupported template expression");
	assert_refused("n: {{ .Release.Name | trimSuffix \"-\" x }}",
		       "unsupported template expression");
	assert_refused("n: {{ .Release.Name .Values.a.b }}", "unsupported template expression");
	assert_refused("n: {{ .Release.Name | quote | trunc 3 }}",
		       "unsupported template expression");
	assert_refused("n: {{ .Release.Name | trunc 3x }}", "unsupported template expression");
	assert_refused("n: {{ .Release.Name | trunc 99999999999999999999 }}",
		       "unsupported template expression");
	assert_refused("n: {{ .Release.Name | trimSuffix \"\" }}",
		       "unsupported template expression");
	assert_refused("n: {{ .Release.Name | trimSuffix \"-", "unterminated {{");
	assert_refused("n: {{ .Release.Name | trimSuffix \"- }}",
		       "unsupported template expression");
	/* an indent far past any chart's is refused, not allocated */
	assert_refused("l: {{- toYaml .Values.a | nindent 4294967295 }}",
		       "unsupported template expression");
	assert_refused("l: {{- toYaml .Values.a | nindent -2 }}",
		       "unsupported template expression");
	assert_refused("l: {{- toYaml .Values. | nindent 2 }}", "unsupported template expression");
	assert_refused("l: {{- toYaml .Values.a | nindent 2 | quote }}",
		       "unsupported template expression");
	const char *why = NULL;
	out.size = 0;
	assert_int_equal(veil_template_render("{{ .Release.Name }}", values, NULL, &out, &why),
			 VEIL_EINVAL);
	assert_string_equal(why, "unsupported template expression");
}

static void test_render_unsupported_pipeline(void **state)
{
	(void)state;
	assert_refused("{{ .Values.a.b | upper }}", "unsupported template expression");
	assert_refused("{{ .Values.a.b | quote | upper }}", "unsupported template expression");
	assert_refused("{{ toYaml .Values.l | indent 4 }}", "unsupported template expression");
	assert_refused("{{ include \"x\" . }}", "unsupported template expression");
	assert_refused("{{ }}", "unsupported template expression");
}

static void test_render_missing_value(void **state)
{
	(void)state;
	assert_refused("v: {{ .Values.a.nope }}", "template names a missing or non-scalar value");
	assert_refused("v: {{ .Values.zzz | quote }}",
		       "template names a missing or non-scalar value");
	assert_refused("v: {{ .Values.a..b }}", "template names a missing or non-scalar value");
}

static void test_render_non_scalar_value(void **state)
{
	(void)state;
	assert_refused("v: {{ .Values.a }}", "template names a missing or non-scalar value");
	assert_refused("v: {{ .Values.l | quote }}",
		       "template names a missing or non-scalar value");
}

static void test_render_scalar_is_not_a_mapping(void **state)
{
	(void)state;
	assert_refused("v: {{ .Values.a.b.c }}", "template names a missing or non-scalar value");
}

static void test_render_toyaml_missing_value(void **state)
{
	(void)state;
	assert_refused("l:\n  {{- toYaml .Values.nope | nindent 2 }}\n",
		       "toYaml of a missing value");
}

static void test_render_unterminated(void **state)
{
	(void)state;
	assert_refused("a: {{ .Values.a.b", "unterminated {{");
	assert_refused("a: {{ .Values.a.b }} {{", "unterminated {{");
}

static void test_render_expression_too_long(void **state)
{
	(void)state;
	char tpl[400];
	memset(tpl, 'x', sizeof(tpl));
	memcpy(tpl, "{{ .Values.", 11);
	memcpy(tpl + sizeof(tpl) - 3, "}}", 3);
	assert_refused(tpl, "template expression too long");
}

/* ---- veil_template_render: output ---- */

static void test_render_plain_text_unchanged(void **state)
{
	(void)state;
	assert_renders("", "");
	assert_renders("a: b\n  c: } { d\n", "a: b\n  c: } { d\n");
}

static void test_render_value(void **state)
{
	(void)state;
	assert_renders("v: {{ .Values.a.b }}\n", "v: hello\n");
	assert_renders("v: {{.Values.a.b}}-{{ .Values.n }}\n", "v: hello-8080\n");
}

static void test_render_quote_escapes_quotes_and_backslashes(void **state)
{
	(void)state;
	assert_renders("v: {{ .Values.q | quote }}\n", "v: \"say \\\"hi\\\" \\\\ bye\"\n");
	assert_renders("v: {{ .Values.a.b | quote }}\n", "v: \"hello\"\n");
	assert_renders("v: {{ .Values.n | quote }}\n", "v: \"8080\"\n");
}

static void test_render_quote_escapes_control_characters(void **state)
{
	(void)state;
	ymap_put_str(doc.arena, values, "c", "l1\nl2\tx\ry\x01z\x7f");
	assert_renders("v: {{ .Values.c | quote }}\n", "v: \"l1\\nl2\\tx\\ry\\x01z\\x7f\"\n");
}

/* Whatever `quote` renders must read back, as YAML, as the original value. */
static void test_render_quote_reads_back_as_yaml(void **state)
{
	(void)state;
	static const char *const strs[] = {"plain",
					   "",
					   "say \"hi\" \\ bye",
					   "a: b # c",
					   "l1\nl2",
					   "tab\t",
					   "\x01\x1f\x7f",
					   "caf\xc3\xa9",
					   "- x",
					   "{{ not a template }}",
					   "c1 \xc2\x80 \xc2\x9f"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(strs); i++) {
		struct ynode *only = ynew_map(doc.arena);
		ymap_put_str(doc.arena, only, "s", strs[i]);
		const char *why = NULL;
		out.size = 0;
		assert_int_equal(veil_template_render("v: {{ .Values.s | quote }}\n", only,
						      &release, &out, &why),
				 0);
		ydoc_free(&back);
		veil_diags_free(&back_diags);
		assert_int_equal(ydoc_init(&back, "rendered.yaml"), 0);
		int rc = ydoc_parse(&back, out.data, out.size, NULL, &back_diags);
		if (rc) {
			print_message("rendered %zu: %s", i, out.data);
			for (size_t k = 0; k < back_diags.count; k++)
				print_message("diag: %s\n", back_diags.msgs[k]);
		}
		assert_int_equal(rc, 0);
		assert_string_equal(ymap_get(back.root, "v")->str, strs[i]);
	}
}

static void test_render_toyaml_nindent_trims_preceding_whitespace(void **state)
{
	(void)state;
	assert_renders("spec:\n"
		       "  items:\n"
		       "    {{- toYaml .Values.l | nindent 4 }}\n"
		       "  next: 1\n",
		       "spec:\n"
		       "  items:\n"
		       "    - name: x\n"
		       "    - \"y\"\n"
		       "  next: 1\n");
}

static void test_render_toyaml_trims_blank_lines_too(void **state)
{
	(void)state;
	assert_renders("k:  \n\n\t  {{- toYaml .Values.a | nindent 2 }}\nz: 0\n",
		       "k:\n  b: hello\nz: 0\n");
}

static void test_render_toyaml_empty_mapping(void **state)
{
	(void)state;
	assert_renders("e: {{- toYaml .Values.empty | nindent 2 }}\n", "e:\n  {}\n");
}

static void test_render_toyaml_scalar(void **state)
{
	(void)state;
	assert_renders("n: {{- toYaml .Values.n | nindent 0 }}\n", "n:\n8080\n");
}

static void test_render_trim_right(void **state)
{
	(void)state;
	assert_renders("a: {{ .Values.a.b -}}  \n  \nb: 1\n", "a: hellob: 1\n");
}

/* The object names: <release>-<service>, the release cut as sprig's trunc
 * (bytes) and trimSuffix (once) do. */
static void test_render_release_pipeline(void **state)
{
	(void)state;
	assert_renders("{{ .Release.Name }}/{{ .Release.Service | quote }}", "rel/\"Helm\"");
	assert_renders("{{ .Release.Name | trunc 2 }}", "re");
	assert_renders("{{ .Release.Name | trunc 0 }}x", "x");
	assert_renders("{{ .Release.Name | trunc 99 | trimSuffix \"l\" }}", "re");
	assert_renders("{{ .Release.Name | trimSuffix \"rel\" }}.", ".");
	assert_renders("{{ .Release.Name | trimSuffix \"x\" | quote }}", "\"rel\"");
	assert_renders("{{.Release.Name|trimSuffix \"el\"|quote}}", "\"r\"");
	assert_renders("{{ .Release.Name | trimSuffix \" rel\" }}", "rel");
	assert_renders("{{ .Values.a.b | trunc 4 | quote }}", "\"hell\"");
	static const struct veil_release dashes = {.name = "ab--", .service = "veil"};
	const char *why = NULL;
	out.size = 0;
	assert_int_equal(veil_template_render("{{ .Release.Name | trunc 3 | trimSuffix \"-\" }}",
					      values, &dashes, &out, &why),
			 0);
	assert_string_equal(out.data, "ab");
}

/* No length limit of its own: an image reference with a digest is long. */
static void test_render_long_value(void **state)
{
	(void)state;
	char big[601];
	memset(big, 'x', 600);
	big[600] = '\0';
	ymap_put_str(doc.arena, values, "big", big);
	char want[700];
	snprintf(want, sizeof(want), "\"%s\"", big);
	assert_renders("{{ .Values.big | quote }}", want);
	assert_renders("{{ .Values.big | trunc 3 }}", "xxx");
}

static void test_render_plain_dash_value_not_trimmed(void **state)
{
	(void)state;
	assert_renders("a:\n  - {{ .Values.a.b }}\n", "a:\n  - hello\n");
}

/* ---- veil_deploy_write over the seed ---- */

static char tmp[64];
static struct ydoc mesh_doc;
static struct veil_mesh mesh;
static struct veil_mesh_member members[2];

static int setup_dir(void **state)
{
	if (setup(state))
		return -1;
	snprintf(tmp, sizeof(tmp), "/tmp/veil-deploy-XXXXXX");
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	ydoc_free(&mesh_doc);
	assert_int_equal(veil_remove_tree(tmp), 0);
	return teardown(state);
}

static int load_mesh_text(const char *text)
{
	int rc = ydoc_init(&mesh_doc, "Meshfile");
	if (!rc)
		rc = ydoc_parse(&mesh_doc, text, strlen(text), NULL, &diags);
	if (!rc)
		rc = veil_mesh_parse(&mesh_doc, &mesh, &diags);
	for (size_t i = 0; rc && i < diags.count; i++)
		print_message("diag: %s\n", diags.msgs[i]);
	assert_int_equal(rc, 0);
	memset(members, 0, sizeof(members));
	for (size_t i = 0; i < mesh.service_count && i < 2; i++)
		members[i].svc = &mesh.services[i];
	return (int)mesh.service_count;
}

static char *slurp(const char *rel)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	char *data = NULL;
	size_t n = 0;
	int rc = veil_read_file(path, 1 << 20, &data, &n, &diags);
	if (rc)
		fail_msg("cannot read %s", path);
	return data;
}

static void test_deploy_seed_chart_and_manifests(void **state)
{
	(void)state;
	char *text = NULL;
	size_t n = 0;
	assert_int_equal(veil_read_file(SEED_DIR "Meshfile", 1 << 20, &text, &n, &diags), 0);
	int count = load_mesh_text(text);
	free(text);
	const char *hash = "b60513e07bb591d7aab67bf7fb90fdedea450d473c8cd9a9a4125544fdf5e718";
	const char *key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	int rc = veil_deploy_write(&mesh, members, (size_t)count, hash, key, tmp,
				   VEIL_OUT_HELM | VEIL_OUT_YAML, &diags);
	for (size_t i = 0; rc && i < diags.count; i++)
		print_message("diag: %s\n", diags.msgs[i]);
	assert_int_equal(rc, 0);

	char *chart = slurp("helm/Chart.yaml");
	assert_non_null(strstr(chart, "name: mypythonapp\n"));
	/* the chart version follows the policy */
	assert_non_null(strstr(chart, "version: 0.1.0+b60513e07bb5\n"));
	assert_non_null(strstr(chart, "appVersion: \"b60513e07bb5\"\n"));
	free(chart);

	char *vals = slurp("helm/values.yaml");
	assert_non_null(strstr(vals, "    configId: myPythonApp/pythonapp\n"));
	assert_non_null(strstr(vals, "    port: 443\n"));
	assert_non_null(strstr(vals, "      - name: SconeApps\n"));
	free(vals);

	char *dep = slurp("manifests/pythonapp-deployment.yaml");
	struct ydoc y;
	assert_int_equal(ydoc_init(&y, "deployment"), 0);
	rc = ydoc_parse(&y, dep, strlen(dep), NULL, &diags);
	if (rc)
		print_message("%s\n", dep);
	assert_int_equal(rc, 0);
	/* as `helm install mypythonapp target/helm` names it, managed by veil */
	const struct ynode *md = ymap_get(y.root, "metadata");
	assert_string_equal(ymap_get(md, "name")->str, "mypythonapp-pythonapp");
	const struct ynode *lab = ymap_get(md, "labels");
	assert_string_equal(ymap_get(lab, "app.kubernetes.io/instance")->str, "mypythonapp");
	assert_string_equal(ymap_get(lab, "app.kubernetes.io/managed-by")->str, "veil");
	assert_string_equal(ymap_get(lab, "app.kubernetes.io/version")->str, "b60513e07bb5");
	assert_string_equal(ymap_get(lab, "helm.sh/chart")->str, "mypythonapp-0.1.0_b60513e07bb5");
	const struct ynode *tmd =
	    ymap_get(ymap_get(ymap_get(y.root, "spec"), "template"), "metadata");
	assert_string_equal(ymap_get(ymap_get(tmd, "annotations"), "checksum/policy")->str, hash);
	const struct ynode *spec = ymap_get(ymap_get(ymap_get(y.root, "spec"), "template"), "spec");
	const struct ynode *c0 = ymap_get(spec, "containers")->items[0];
	assert_string_equal(ymap_get(c0, "image")->str,
			    "registry.scontain.com:5050/cicd/python_hello_user:latest");
	const struct ynode *res = ymap_get(c0, "resources");
	assert_string_equal(ymap_get(ymap_get(res, "limits"), "memory")->str, "512Mi");
	assert_string_equal(ymap_get(ymap_get(res, "requests"), "cpu")->str, "100m");
	assert_string_equal(ymap_get(ymap_get(c0, "ports")->items[0], "containerPort")->str, "443");
	const struct ynode *env = ymap_get(c0, "env");
	assert_string_equal(ymap_get(env->items[0], "name")->str, "SCONE_CONFIG_ID");
	assert_string_equal(ymap_get(env->items[0], "value")->str, "myPythonApp/pythonapp");
	assert_string_equal(ymap_get(env->items[1], "value")->str, "edge.scone-cas.cf");
	/* veil-run pins the CAS key; veil-las is a unix socket in a hostPath */
	assert_string_equal(ymap_get(env->items[2], "name")->str, "VEIL_CAS_KEY");
	assert_string_equal(ymap_get(env->items[2], "value")->str, key);
	assert_string_equal(ymap_get(env->items[3], "name")->str, "SCONE_LAS_ADDR");
	assert_string_equal(ymap_get(env->items[3], "value")->str, "/run/veil/las.sock");
	const struct ynode *vm = ymap_get(c0, "volumeMounts"), *vols = ymap_get(spec, "volumes");
	assert_int_equal(vm->count, 1);
	assert_string_equal(ymap_get(vm->items[0], "mountPath")->str, "/run/veil");
	assert_string_equal(ymap_get(vm->items[0], "readOnly")->str, "true");
	assert_int_equal(vols->count, 1);
	assert_string_equal(ymap_get(ymap_get(vols->items[0], "hostPath"), "path")->str,
			    "/run/veil");
	assert_string_equal(ymap_get(ymap_get(spec, "imagePullSecrets")->items[0], "name")->str,
			    "SconeApps");
	/* veil-run pins files (SYS_ADMIN, mount(2) past AppArmor) as root; the
	 * program, root too, serves port 443 */
	const struct ynode *sc = ymap_get(c0, "securityContext");
	const struct ynode *caps = ymap_get(sc, "capabilities");
	assert_int_equal(ymap_get(caps, "drop")->count, 1);
	assert_string_equal(ymap_get(caps, "drop")->items[0]->str, "ALL");
	assert_int_equal(ymap_get(caps, "add")->count, 2);
	assert_string_equal(ymap_get(caps, "add")->items[0]->str, "NET_BIND_SERVICE");
	assert_string_equal(ymap_get(caps, "add")->items[1]->str, "SYS_ADMIN");
	assert_string_equal(ymap_get(ymap_get(sc, "appArmorProfile"), "type")->str, "Unconfined");
	assert_string_equal(ymap_get(sc, "runAsUser")->str, "0");
	assert_string_equal(ymap_get(sc, "readOnlyRootFilesystem")->str, "true");
	assert_null(ymap_get(sc, "allowPrivilegeEscalation"));
	ydoc_free(&y);
	free(dep);

	char *svc = slurp("manifests/pythonapp-service.yaml");
	assert_non_null(strstr(svc, "      port: 443\n"));
	free(svc);
	/* Helm checks the values against the schema: the policy's own values are fixed */
	char *schema = slurp("helm/values.schema.json");
	assert_non_null(strstr(
	    schema,
	    "\"const\": \"b60513e07bb591d7aab67bf7fb90fdedea450d473c8cd9a9a4125544fdf5e718\""));
	assert_non_null(strstr(schema, "\"const\": \"myPythonApp/pythonapp\""));
	assert_non_null(strstr(schema, "\"pattern\": \"^([0-9a-f]{64})?$\""));
	free(schema);
	char *tpl = slurp("helm/templates/pythonapp-deployment.yaml");
	assert_non_null(strstr(tpl, "{{ .Values.services.pythonapp.image | quote }}"));
	assert_non_null(
	    strstr(tpl, "  name: {{ .Release.Name | trunc 53 | trimSuffix \"-\" }}-pythonapp\n"));
	free(tpl);
}

static void test_deploy_namespace_not_a_chart_name(void **state)
{
	(void)state;
	int count = load_mesh_text("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: 1ns\n"
				   "services:\n  - name: app\n    image: x\n");
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_HELM, &diags),
			 VEIL_EINVAL);
	assert_int_equal(diags.count, 1);
	assert_string_equal(
	    diags.msgs[0], "Meshfile:4:14: namespace '1ns' cannot name a Helm chart (it must start "
			   "with a letter; at most 63 letters, digits, '-', '_', '.')");
}

static void test_deploy_bad_port(void **state)
{
	(void)state;
	int count = load_mesh_text("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n"
				   "services:\n  - name: app\n    image: x\n"
				   "env:\n  - name: APP_SERVICE_PORT\n    value: \"+443\"\n");
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_HELM, &diags),
			 VEIL_EINVAL);
	assert_int_equal(diags.count, 1);
	assert_string_equal(diags.msgs[0], "Meshfile:9:11: APP_SERVICE_PORT '+443' for service "
					   "'app' must be a port number from 1 to 65535");
}

static void test_deploy_names_colliding_in_kubernetes(void **state)
{
	(void)state;
	int count = load_mesh_text("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n"
				   "services:\n  - name: a_b\n    image: x\n"
				   "  - name: a.b\n    image: y\n");
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_HELM, &diags),
			 VEIL_EINVAL);
	assert_int_equal(diags.count, 1);
	assert_string_equal(diags.msgs[0], "Meshfile:8:5: services 'a_b' and 'a.b' map to the same "
					   "Kubernetes name 'a-b'");
	struct stat st;
	char helm[128];
	snprintf(helm, sizeof(helm), "%s/helm", tmp);
	assert_int_not_equal(stat(helm, &st), 0);
}

/* The image is named by the digest of the OCI layout the builder wrote; a
 * missing, ambiguous or broken layout falls back to the tag. */
static void test_deploy_image_by_digest(void **state)
{
	(void)state;
	int count =
	    load_mesh_text("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n"
			   "services:\n  - name: app\n    image: reg.example:5000/a/app:1.0\n");
	struct veil_service_manifest m = {.file = "service.yaml"};
	m.build.name = "app_build";
	members[0].manifest = &m;
	char dir[128], index[192];
	snprintf(dir, sizeof(dir), "%s/images/app_build/oci", tmp);
	snprintf(index, sizeof(index), "%s/index.json", dir);
	assert_int_equal(veil_mkdirs(dir, 0755, &diags), 0);
	static const struct {
		const char *index, *image;
	} cases[] = {
	    {"{\"manifests\":[{\"digest\":\"sha256:"
	     "1111111111111111111111111111111111111111111111111111111111111111\"}]}",
	     "reg.example:5000/a/"
	     "app@sha256:1111111111111111111111111111111111111111111111111111111111111111"},
	    /* several: the one tagged with the reference's tag */
	    {"{\"manifests\":[{\"digest\":\"sha256:"
	     "1111111111111111111111111111111111111111111111111111111111111111\",\"annotations\":{"
	     "\"org.opencontainers.image.ref.name\":"
	     "\"0.9\"}},{\"digest\":\"sha256:"
	     "2222222222222222222222222222222222222222222222222222222222222222\",\"annotations\":{"
	     "\"org.opencontainers.image.ref.name\":\"1.0\"}}]}",
	     "reg.example:5000/a/"
	     "app@sha256:2222222222222222222222222222222222222222222222222222222222222222"},
	    {"{\"manifests\":[{\"digest\":\"sha256:"
	     "1111111111111111111111111111111111111111111111111111111111111111\"},{\"digest\":"
	     "\"sha256:2222222222222222222222222222222222222222222222222222222222222222\"}]}",
	     "reg.example:5000/a/app:1.0"},
	    {"{\"manifests\":[{\"digest\":\"sha256:abc\"}]}", "reg.example:5000/a/app:1.0"},
	    {"{\"manifests\":[]}", "reg.example:5000/a/app:1.0"},
	    {"not json", "reg.example:5000/a/app:1.0"},
	    {NULL, "reg.example:5000/a/app:1.0"},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(cases); i++) {
		unlink(index);
		if (cases[i].index)
			assert_int_equal(veil_write_file_plain(index, cases[i].index,
							       strlen(cases[i].index), 0644,
							       &diags),
					 0);
		assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
						   VEIL_OUT_HELM, &diags),
				 0);
		char *vals = slurp("helm/values.yaml");
		char want[256];
		snprintf(want, sizeof(want), "    image: \"%s\"\n", cases[i].image);
		if (!strstr(vals, want))
			fail_msg("case %zu: no '%s' in\n%s", i, want, vals);
		free(vals);
	}
	/* a layout built for another repository than the Meshfile names: the tag */
	const char *one = "{\"manifests\":[{\"digest\":\"sha256:"
			  "1111111111111111111111111111111111111111111111111111111111111111\"}]}";
	assert_int_equal(veil_write_file_plain(index, one, strlen(one), 0644, &diags), 0);
	m.build.to = "reg.example:5000/other/app:1.0";
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_HELM, &diags),
			 0);
	char *vals = slurp("helm/values.yaml");
	assert_non_null(strstr(vals, "    image: \"reg.example:5000/a/app:1.0\"\n"));
	free(vals);
	m.build.to = "reg.example:5000/a/app:2.0"; /* same repository, another tag */
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_HELM, &diags),
			 0);
	vals = slurp("helm/values.yaml");
	assert_non_null(strstr(vals, "    image: \"reg.example:5000/a/app@sha256:1111"));
	free(vals);
	members[0].manifest = NULL;
}

/* An image the Meshfile names by digest is kept as written. */
static void test_deploy_image_named_by_digest_kept(void **state)
{
	(void)state;
	int count =
	    load_mesh_text("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n"
			   "services:\n  - name: app\n    image: reg.example/a/app@sha256:"
			   "3333333333333333333333333333333333333333333333333333333333333333\n");
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_HELM, &diags),
			 0);
	char *vals = slurp("helm/values.yaml");
	assert_non_null(strstr(vals, "    image: \"reg.example/a/app@sha256:3333"));
	free(vals);
}

/* <release>-<service> must fit 63 characters with some of the release name. */
static void test_deploy_service_name_leaves_room_for_the_release(void **state)
{
	(void)state;
	char text[512], name[64];
	memset(name, 'a', 53);
	name[53] = '\0';
	snprintf(text, sizeof(text),
		 "apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n"
		 "services:\n  - name: %s\n    image: x\n",
		 name);
	int count = load_mesh_text(text);
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_HELM, &diags),
			 VEIL_EINVAL);
	assert_int_equal(diags.count, 1);
	assert_non_null(strstr(diags.msgs[0], "Meshfile:6:5: service name 'aaaa"));
	assert_non_null(strstr(diags.msgs[0], "so a service name has at most 52"));
	ydoc_free(&mesh_doc);
	veil_diags_free(&diags);
	veil_diags_init(&diags);
	name[52] = '\0';
	snprintf(text, sizeof(text),
		 "apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n"
		 "services:\n  - name: %s\n    image: x\n",
		 name);
	count = load_mesh_text(text);
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_HELM | VEIL_OUT_YAML, &diags),
			 0);
	char rel[128];
	snprintf(rel, sizeof(rel), "manifests/%s-deployment.yaml", name);
	char *dep = slurp(rel);
	char want[128];
	snprintf(want, sizeof(want), "  name: ns-%s\n", name);
	assert_non_null(strstr(dep, want));
	free(dep);
}

/* Injection files: a memory-backed emptyDir at each of their folders (once
 * per folder), where veil-run writes them in an ordinary container. */
static void test_deploy_injection_folders_are_memory(void **state)
{
	(void)state;
	int count = load_mesh_text("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n"
				   "services:\n  - name: app\n    image: x\n");
	struct veil_injection_file inj[] = {
	    {.path = "/etc/app/a.conf"}, {.path = "/run/secrets/c"}, {.path = "/etc/app/b.conf"}};
	struct veil_service_manifest m = {.file = "service.yaml", .inject = inj, .inject_count = 3};
	m.build.pwd = "/python";
	members[0].manifest = &m;
	int rc = veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp, VEIL_OUT_YAML,
				   &diags);
	for (size_t i = 0; rc && i < diags.count; i++)
		print_message("diag: %s\n", diags.msgs[i]);
	assert_int_equal(rc, 0);
	char *dep = slurp("manifests/app-deployment.yaml");
	struct ydoc y;
	assert_int_equal(ydoc_init(&y, "deployment"), 0);
	assert_int_equal(ydoc_parse(&y, dep, strlen(dep), NULL, &diags), 0);
	const struct ynode *spec = ymap_get(ymap_get(ymap_get(y.root, "spec"), "template"), "spec");
	const struct ynode *vm = ymap_get(ymap_get(spec, "containers")->items[0], "volumeMounts");
	const struct ynode *vols = ymap_get(spec, "volumes");
	assert_int_equal(vm->count, 3);
	assert_int_equal(vols->count, 3);
	const char *want[] = {"/run/veil", "/etc/app", "/run/secrets"};
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(ymap_get(vm->items[i], "mountPath")->str, want[i]);
		assert_string_equal(ymap_get(vm->items[i], "name")->str,
				    ymap_get(vols->items[i], "name")->str);
	}
	for (size_t i = 1; i < 3; i++)
		assert_string_equal(ymap_get(ymap_get(vols->items[i], "emptyDir"), "medium")->str,
				    "Memory");
	ydoc_free(&y);
	free(dep);
	members[0].manifest = NULL;
}

/* The capabilities a container gets, as one line ("ADD..|escalation|apparmor|uid"). */
static void security_of(const char *rel, char *line, size_t cap)
{
	char *dep = slurp(rel);
	struct ydoc y;
	assert_int_equal(ydoc_init(&y, "deployment"), 0);
	assert_int_equal(ydoc_parse(&y, dep, strlen(dep), NULL, &diags), 0);
	const struct ynode *spec = ymap_get(ymap_get(ymap_get(y.root, "spec"), "template"), "spec");
	const struct ynode *sc =
	    ymap_get(ymap_get(spec, "containers")->items[0], "securityContext");
	const struct ynode *caps = ymap_get(sc, "capabilities"), *add = ymap_get(caps, "add");
	const struct ynode *esc = ymap_get(sc, "allowPrivilegeEscalation");
	const struct ynode *aa = ymap_get(sc, "appArmorProfile"), *uid = ymap_get(sc, "runAsUser");
	assert_string_equal(ymap_get(caps, "drop")->items[0]->str, "ALL");
	size_t n = 0;
	line[0] = '\0';
	for (size_t i = 0; add && i < add->count; i++)
		n += (size_t)snprintf(line + n, cap - n, "%s%s", i ? "," : "", add->items[i]->str);
	snprintf(line + n, cap - n, "|%s|%s|%s", esc ? esc->str : "-",
		 aa ? ymap_get(aa, "type")->str : "-", uid ? uid->str : "-");
	ydoc_free(&y);
	free(dep);
}

/* What veil-run needs, added back: SETUID/SETGID/SETPCAP for a program under
 * its own uid (CHOWN with injection files), SYS_ADMIN unless the policy
 * tolerates unpinned files, which then may not escalate. */
static void test_deploy_capabilities_follow_the_service(void **state)
{
	(void)state;
#define TWO_SERVICES(tolerate)                                                                     \
	"apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n" tolerate                   \
	"services:\n  - name: own\n    image: x\n  - name: plain\n    image: y\n"
	struct veil_injection_file inj[] = {{.path = "/run/secrets/c"}};
	struct veil_service_manifest own = {.file = "own.yaml", .inject = inj, .inject_count = 1};
	own.build.pwd = "/python";
	own.build.user = 2000;
	char line[256];

	int count = load_mesh_text(TWO_SERVICES(""));
	members[0].manifest = &own;
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_YAML, &diags),
			 0);
	security_of("manifests/own-deployment.yaml", line, sizeof(line));
	assert_string_equal(line, "CHOWN,SETGID,SETPCAP,SETUID,SYS_ADMIN|-|Unconfined|0");
	security_of("manifests/plain-deployment.yaml", line, sizeof(line));
	assert_string_equal(line, "SYS_ADMIN|-|Unconfined|0");
	ydoc_free(&mesh_doc);

	count = load_mesh_text(TWO_SERVICES("  tolerate: [insecure-unpinned-files]\n"));
	members[0].manifest = &own;
	own.inject_count = 0;
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_YAML, &diags),
			 0);
	members[0].manifest = NULL;
	security_of("manifests/own-deployment.yaml", line, sizeof(line));
	assert_string_equal(line, "SETGID,SETPCAP,SETUID|false|-|0");
	security_of("manifests/plain-deployment.yaml", line, sizeof(line));
	assert_string_equal(line, "|false|-|-");
}

/* A memory volume at a folder that is or holds the protected folder would
 * hide the program: refused, naming the manifest position. */
static void test_deploy_injection_folder_hiding_the_program(void **state)
{
	(void)state;
	int count = load_mesh_text("apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: ns\n"
				   "services:\n  - name: app\n    image: x\n");
	struct veil_injection_file inj[] = {{.path = "/python/conf.yaml", .pos = {3, 5}},
					    {.path = "/top.conf", .pos = {5, 5}},
					    {.path = "/pythonic/ok.conf", .pos = {7, 5}}};
	struct veil_service_manifest m = {.file = "service.yaml", .inject = inj, .inject_count = 3};
	m.build.pwd = "/python";
	members[0].manifest = &m;
	assert_int_equal(veil_deploy_write(&mesh, members, (size_t)count, "00", NULL, tmp,
					   VEIL_OUT_HELM, &diags),
			 VEIL_EINVAL);
	members[0].manifest = NULL;
	assert_int_equal(diags.count, 2);
	assert_string_equal(
	    diags.msgs[0], "service.yaml:3:5: injection file /python/conf.yaml: in Kubernetes its "
			   "folder /python becomes a memory volume, which would hide the protected "
			   "folder /python; give injection files a folder of their own");
	assert_non_null(strstr(diags.msgs[1], "service.yaml:5:5: injection file /top.conf: in "
					      "Kubernetes its folder / becomes"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TD(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_k8s_name_too_long_refused),
	    TD(test_deploy_injection_folders_are_memory),
	    TD(test_deploy_injection_folder_hiding_the_program),
	    TD(test_deploy_capabilities_follow_the_service),
	    T(test_k8s_name_bad_edges_refused),
	    T(test_k8s_name_bad_characters_refused),
	    T(test_k8s_name_lowercases_and_maps_separators),
	    T(test_render_unsupported_if),
	    T(test_render_unsupported_release_field),
	    T(test_render_release_pipeline),
	    T(test_render_long_value),
	    T(test_render_unsupported_pipeline),
	    T(test_render_missing_value),
	    T(test_render_non_scalar_value),
	    T(test_render_scalar_is_not_a_mapping),
	    T(test_render_toyaml_missing_value),
	    T(test_render_unterminated),
	    T(test_render_expression_too_long),
	    T(test_render_plain_text_unchanged),
	    T(test_render_value),
	    T(test_render_quote_escapes_quotes_and_backslashes),
	    T(test_render_quote_escapes_control_characters),
	    T(test_render_quote_reads_back_as_yaml),
	    T(test_render_toyaml_nindent_trims_preceding_whitespace),
	    T(test_render_toyaml_trims_blank_lines_too),
	    T(test_render_toyaml_empty_mapping),
	    T(test_render_toyaml_scalar),
	    T(test_render_trim_right),
	    T(test_render_plain_dash_value_not_trimmed),
	    TD(test_deploy_seed_chart_and_manifests),
	    TD(test_deploy_namespace_not_a_chart_name),
	    TD(test_deploy_bad_port),
	    TD(test_deploy_names_colliding_in_kubernetes),
	    TD(test_deploy_image_by_digest),
	    TD(test_deploy_image_named_by_digest_kept),
	    TD(test_deploy_service_name_leaves_room_for_the_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
