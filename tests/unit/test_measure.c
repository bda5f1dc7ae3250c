/* Unit tests: file-set root, measuring a service's files and the measurement
 * record (src/image/measure.c). Every filesystem test runs in its own mkdtemp
 * folder:
 *   <tmp>/app/       the manifest's folder (copy entries are relative to it)
 *   <tmp>/veil-run   a stand-in runtime binary
 *   <tmp>/outside/   files that must never be reachable from a copy entry */
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
#include <openssl/sha.h>

#include "veil/image.h"

static char tmp[64];
static char app[128];
static char runtime[128];
static struct veil_diags diags;
static struct ydoc doc;
static struct veil_service_manifest sm;
static struct veil_measurement meas, loaded;

static char *path_in(const char *dir, const char *rel)
{
	char *p = veil_path_join(dir, rel);
	assert_non_null(p);
	return p;
}

static void put_file(const char *rel, const char *content, mode_t mode)
{
	char *p = path_in(tmp, rel);
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

static void put_dir(const char *rel)
{
	char *p = path_in(tmp, rel);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
}

static void put_link(const char *rel, const char *target)
{
	char *p = path_in(tmp, rel);
	assert_int_equal(symlink(target, p), 0);
	free(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/veil-measure-XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	snprintf(app, sizeof(app), "%s/app", tmp);
	snprintf(runtime, sizeof(runtime), "%s/veil-run", tmp);
	veil_diags_init(&diags);
	memset(&sm, 0, sizeof(sm));
	memset(&meas, 0, sizeof(meas));
	memset(&loaded, 0, sizeof(loaded));
	put_dir("app");
	put_dir("outside");
	put_file("veil-run", "#!runtime v1\n", 0755);
	put_file("outside/secret.txt", "not for the image\n", 0644);
	put_file("app/app.py", "print('hello')\n", 0644);
	put_file("app/run.sh", "#!/bin/sh\nexec python3 app.py\n", 0700);
	put_dir("app/lib");
	put_file("app/lib/b.py", "B = 2\n", 0600);
	put_file("app/lib/a.py", "A = 1\n", 0744);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	veil_measurement_free(&meas);
	veil_measurement_free(&loaded);
	ydoc_free(&doc);
	veil_diags_free(&diags);
	assert_int_equal(veil_remove_tree(tmp), 0);
	return 0;
}

static void print_diags(void)
{
	for (size_t i = 0; i < diags.count; i++)
		print_message("diag[%zu]: %s\n", i, diags.msgs[i]);
}

static void assert_only_diag(const char *want)
{
	if (diags.count != 1)
		print_diags();
	assert_int_equal(diags.count, 1);
	assert_string_equal(diags.msgs[0], want);
}

static void assert_has_diag(const char *want)
{
	for (size_t i = 0; i < diags.count; i++)
		if (!strcmp(diags.msgs[i], want))
			return;
	print_diags();
	fail_msg("missing diagnostic: %s", want);
}

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

static void sha256_hex(const void *data, size_t n, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data, n, md);
	hex(md, sizeof(md), out);
}

/* One expected file: image path, normalised mode and content. */
struct want_file {
	const char *path;
	unsigned mode;
	const char *content;
};

static int want_cmp(const void *a, const void *b)
{
	return strcmp(((const struct want_file *)a)->path, ((const struct want_file *)b)->path);
}

/* The documented file-set root, computed without veil's code. */
static void expected_root(struct want_file *f, size_t n, char out[65])
{
	qsort(f, n, sizeof(*f), want_cmp);
	size_t cap = 64 + n * 600, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	len += (size_t)snprintf(s, cap, "veil-fileset-v1\n");
	for (size_t i = 0; i < n; i++) {
		char h[65];
		sha256_hex(f[i].content, strlen(f[i].content), h);
		len +=
		    (size_t)snprintf(s + len, cap - len, "%s %04o %s\n", h, f[i].mode, f[i].path);
	}
	assert_true(len < cap);
	sha256_hex(s, len, out);
	free(s);
}

/* Parses a manifest with `pwd` and the flow list `copy` (line 8, column 9). */
static void load_manifest(const char *pwd, const char *copy)
{
	char text[1024], file[256];
	snprintf(text, sizeof(text),
		 "apiVersion: veil/v1\n"
		 "kind: genservice\n"
		 "build:\n"
		 "  name: app\n"
		 "  to: reg.example/app:1\n"
		 "  command: python3 app.py\n"
		 "  pwd: %s\n"
		 "  copy: %s\n",
		 pwd, copy);
	snprintf(file, sizeof(file), "%s/service.yaml", app);
	assert_int_equal(ydoc_init(&doc, file), 0);
	int rc = ydoc_parse(&doc, text, strlen(text), NULL, &diags);
	if (!rc)
		rc = veil_service_parse(&doc, &sm, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
}

static int measure(const char *pwd, const char *copy)
{
	load_manifest(pwd, copy);
	return veil_measure_service(&sm, app, runtime, &meas, &diags);
}

static void measure_ok(const char *pwd, const char *copy)
{
	int rc = measure(pwd, copy);
	if (rc || diags.count)
		print_diags();
	assert_int_equal(rc, 0);
	assert_int_equal(diags.count, 0);
}

/* ---- veil_fileset_root ---- */

static void test_fileset_root_empty_set(void **state)
{
	(void)state;
	char got[65], want[65];
	assert_int_equal(veil_fileset_root(NULL, 0, got), 0);
	sha256_hex("veil-fileset-v1\n", 16, want);
	assert_string_equal(got, want);
}

static void fill_entry(struct veil_file_entry *e, const char *path, unsigned mode,
		       const char *content)
{
	e->path = (char *)path;
	e->mode = mode;
	SHA256((const unsigned char *)content, strlen(content), e->sha256);
}

static void test_fileset_root_matches_documented_form(void **state)
{
	(void)state;
	struct want_file w[] = {
	    {"/python/a b.py", 0644, "x"},
	    {"/python/lib/z.py", 0755, "zz"},
	    {"/python/print_env.py", 0644, "print(1)\n"},
	};
	struct veil_file_entry e[3];
	for (size_t i = 0; i < 3; i++)
		fill_entry(&e[i], w[i].path, w[i].mode, w[i].content);
	char got[65], want[65];
	assert_int_equal(veil_fileset_root(e, 3, got), 0);
	expected_root(w, 3, want);
	assert_string_equal(got, want);
}

static void test_fileset_root_depends_on_mode_path_and_content(void **state)
{
	(void)state;
	struct veil_file_entry e;
	char base[65], other[65];
	fill_entry(&e, "/a", 0644, "x");
	assert_int_equal(veil_fileset_root(&e, 1, base), 0);
	e.mode = 0755;
	assert_int_equal(veil_fileset_root(&e, 1, other), 0);
	assert_string_not_equal(base, other);
	fill_entry(&e, "/b", 0644, "x");
	assert_int_equal(veil_fileset_root(&e, 1, other), 0);
	assert_string_not_equal(base, other);
	fill_entry(&e, "/a", 0644, "y");
	assert_int_equal(veil_fileset_root(&e, 1, other), 0);
	assert_string_not_equal(base, other);
	fill_entry(&e, "/a", 0644, "x");
	assert_int_equal(veil_fileset_root(&e, 1, other), 0);
	assert_string_equal(base, other);
}

/* The root is defined over the files sorted by path; the order a caller
 * happens to hold them in must not change it. */
static void test_fileset_root_independent_of_input_order(void **state)
{
	(void)state;
	struct want_file w[] = {{"/b", 0644, "b"}, {"/a", 0644, "a"}};
	struct veil_file_entry e[2];
	fill_entry(&e[0], "/b", 0644, "b");
	fill_entry(&e[1], "/a", 0644, "a");
	char got[65], want[65];
	assert_int_equal(veil_fileset_root(e, 2, got), 0);
	expected_root(w, 2, want);
	assert_string_equal(got, want);
}

/* ---- veil_measure_service: refusals ---- */

static void test_measure_symlink_refused(void **state)
{
	(void)state;
	put_link("app/link.py", "app.py");
	assert_int_equal(measure("/python", "[link.py]"), VEIL_EINVAL);
	char want[512];
	snprintf(want, sizeof(want),
		 "copy: '%s/link.py' is a symbolic link; copy the file it points to", app);
	assert_only_diag(want);
	assert_null(meas.name);
}

static void test_measure_symlink_inside_folder_refused(void **state)
{
	(void)state;
	put_link("app/lib/evil.py", "../../outside/secret.txt");
	assert_int_equal(measure("/python", "[lib]"), VEIL_EINVAL);
	char want[512];
	snprintf(want, sizeof(want),
		 "copy: '%s/lib/evil.py' is a symbolic link; copy the file it points to", app);
	assert_only_diag(want);
}

/* A symbolic link in the middle of a copy entry reaches outside the manifest's
 * folder just like a linked file does. */
static void test_measure_symlinked_parent_folder_refused(void **state)
{
	(void)state;
	put_link("app/ext", "../outside");
	int rc = measure("/python", "[ext/secret.txt]");
	if (rc == 0)
		print_message("accepted: %s from %s/outside\n", meas.files[0].path, tmp);
	assert_int_equal(rc, VEIL_EINVAL);
	assert_null(meas.name);
}

static void test_measure_missing_copy_entry(void **state)
{
	(void)state;
	assert_int_equal(measure("/python", "[app.py, nope.py]"), VEIL_ENOENT);
	char want[512];
	snprintf(want, sizeof(want),
		 "%s/service.yaml:8:9: copy file 'nope.py' not found next to the manifest", app);
	assert_only_diag(want);
	assert_null(meas.name);
	assert_int_equal(meas.file_count, 0);
}

static void test_measure_parent_relative_entry_refused(void **state)
{
	(void)state;
	assert_int_equal(measure("/python", "[../outside/secret.txt]"), VEIL_EINVAL);
	char want[512];
	snprintf(want, sizeof(want),
		 "%s/service.yaml:8:9: copy: '../outside/secret.txt' must be a path relative to "
		 "the manifest's folder without '..'",
		 app);
	assert_only_diag(want);
}

static void test_measure_inner_dotdot_entry_refused(void **state)
{
	(void)state;
	assert_int_equal(measure("/python", "[lib/../../outside/secret.txt]"), VEIL_EINVAL);
	assert_int_equal(diags.count, 1);
	assert_non_null(strstr(diags.msgs[0], "must be a path relative to the manifest's folder "
					      "without '..'"));
}

static void test_measure_absolute_entry_refused(void **state)
{
	(void)state;
	char copy[256];
	snprintf(copy, sizeof(copy), "[%s/outside/secret.txt]", tmp);
	assert_int_equal(measure("/python", copy), VEIL_EINVAL);
	char want[512];
	snprintf(want, sizeof(want),
		 "%s/service.yaml:8:9: copy: '%s/outside/secret.txt' must be a path relative to "
		 "the manifest's folder without '..'",
		 app, tmp);
	assert_only_diag(want);
}

static void test_measure_missing_runtime(void **state)
{
	(void)state;
	load_manifest("/python", "[app.py]");
	char missing[256];
	snprintf(missing, sizeof(missing), "%s/no-runtime", tmp);
	assert_int_equal(veil_measure_service(&sm, app, missing, &meas, &diags), VEIL_ENOENT);
	char want[512];
	snprintf(want, sizeof(want),
		 "cannot measure the runtime '%s' (build veil-run, or set VEIL_RUNTIME)", missing);
	assert_has_diag(want);
}

static void test_measure_file_copied_twice_refused(void **state)
{
	(void)state;
	assert_int_equal(measure("/python", "[lib, lib/a.py]"), VEIL_EINVAL);
	char want[512];
	snprintf(want, sizeof(want),
		 "%s/service.yaml:8:9: copy: '/python/lib/a.py' is copied twice", app);
	assert_only_diag(want);
}

static void test_measure_control_character_in_name_refused(void **state)
{
	(void)state;
	put_file("app/bad\nname", "x", 0644);
	assert_int_equal(measure("/python", "[.]"), VEIL_EINVAL);
	char want[512];
	snprintf(want, sizeof(want),
		 "copy '.': file name '%s/./bad\nname' holds a control character", app);
	assert_only_diag(want);
}

static void test_measure_invalid_utf8_name_refused(void **state)
{
	(void)state;
	put_file("app/lib/caf\xe9.py", "x", 0644);
	assert_int_equal(measure("/python", "[lib]"), VEIL_EINVAL);
	char want[512];
	snprintf(want, sizeof(want), "copy 'lib': file name '%s/lib/caf\xe9.py' is not valid UTF-8",
		 app);
	assert_only_diag(want);
}

/* ---- veil_measure_service: what is measured ---- */

static void test_measure_files_modes_and_order(void **state)
{
	(void)state;
	measure_ok("/python", "[run.sh, lib, app.py]");
	assert_string_equal(meas.name, "app");
	assert_string_equal(meas.image, "reg.example/app:1");
	assert_string_equal(meas.command, "python3 app.py");
	assert_string_equal(meas.pwd, "/python");
	char rt[65];
	sha256_hex("#!runtime v1\n", 13, rt);
	assert_string_equal(meas.runtime_sha256, rt);

	struct want_file w[] = {
	    {"/python/app.py", 0644, "print('hello')\n"},
	    {"/python/lib/a.py", 0755, "A = 1\n"},
	    {"/python/lib/b.py", 0644, "B = 2\n"},
	    {"/python/run.sh", 0755, "#!/bin/sh\nexec python3 app.py\n"},
	};
	assert_int_equal(meas.file_count, 4);
	for (size_t i = 0; i < 4; i++) {
		char h[65], want_h[65];
		assert_string_equal(meas.files[i].path, w[i].path);
		assert_int_equal(meas.files[i].mode, w[i].mode);
		hex(meas.files[i].sha256, 32, h);
		sha256_hex(w[i].content, strlen(w[i].content), want_h);
		assert_string_equal(h, want_h);
	}
	char root[65];
	expected_root(w, 4, root);
	assert_string_equal(meas.file_set_root, root);
}

static void test_measure_group_exec_bit_counts_as_executable(void **state)
{
	(void)state;
	put_file("app/tool", "t", 0610);
	measure_ok("/python", "[tool]");
	assert_int_equal(meas.files[0].mode, 0755);
}

static void test_measure_subfolder_sorted_image_paths(void **state)
{
	(void)state;
	put_dir("app/lib/sub");
	put_file("app/lib/sub/c.py", "c", 0644);
	put_file("app/lib/Z.py", "z", 0644);
	measure_ok("/srv/app", "[lib]");
	assert_int_equal(meas.file_count, 4);
	assert_string_equal(meas.files[0].path, "/srv/app/lib/Z.py");
	assert_string_equal(meas.files[1].path, "/srv/app/lib/a.py");
	assert_string_equal(meas.files[2].path, "/srv/app/lib/b.py");
	assert_string_equal(meas.files[3].path, "/srv/app/lib/sub/c.py");
}

static void test_measure_dot_slash_and_double_slash_cleaned(void **state)
{
	(void)state;
	measure_ok("//python/./", "[./lib//a.py, ./app.py]");
	assert_string_equal(meas.pwd, "/python");
	assert_int_equal(meas.file_count, 2);
	assert_string_equal(meas.files[0].path, "/python/app.py");
	assert_string_equal(meas.files[1].path, "/python/lib/a.py");
}

static void test_measure_whole_folder_with_dot(void **state)
{
	(void)state;
	measure_ok("/", "[.]");
	assert_int_equal(meas.file_count, 4);
	assert_string_equal(meas.files[0].path, "/app.py");
	assert_string_equal(meas.files[1].path, "/lib/a.py");
	assert_string_equal(meas.files[2].path, "/lib/b.py");
	assert_string_equal(meas.files[3].path, "/run.sh");
}

static void test_measure_no_copy_entries(void **state)
{
	(void)state;
	measure_ok("/python", "[]");
	assert_int_equal(meas.file_count, 0);
	char want[65];
	sha256_hex("veil-fileset-v1\n", 16, want);
	assert_string_equal(meas.file_set_root, want);
}

/* An image's absolute link names a path in the image, not on the host
 * measuring it: /bin/prog -> /opt/veil-test-prog resolves under the root
 * (a merged-/usr Debian's loader link, /usr/lib64/ld-linux-x86-64.so.2 ->
 * /lib/x86_64-linux-gnu/..., was recorded absent by realpath(3)). */
static void test_runtime_absolute_link_resolved_inside_root(void **state)
{
	(void)state;
	put_dir("root");
	put_dir("root/bin");
	put_dir("root/opt");
	put_file("root/opt/veil-test-prog", "#!/bin/sh\n", 0755);
	put_link("root/bin/prog", "/opt/veil-test-prog");
	char *root = path_in(tmp, "root"), *program = NULL;
	struct veil_file_entry *files = NULL;
	size_t count = 0;
	assert_int_equal(
	    veil_measure_runtime_files(root, "/bin/prog arg", &program, &files, &count, &diags), 0);
	assert_non_null(program);
	assert_string_equal(program, "/opt/veil-test-prog");
	assert_true(count >= 1);
	assert_string_equal(files[0].path, "/opt/veil-test-prog");
	uint8_t want[VEIL_SHA256_SIZE];
	SHA256((const unsigned char *)"#!/bin/sh\n", 10, want);
	assert_memory_equal(files[0].sha256, want, VEIL_SHA256_SIZE);
	for (size_t i = 0; i < count; i++)
		free(files[i].path);
	free(files);
	free(program);
	free(root);
}

/* ---- measurement record ---- */

static char *record_path(void)
{
	char *p = malloc(512);
	assert_non_null(p);
	snprintf(p, 512, "%s/target/images/app/measurement.yaml", tmp);
	return p;
}

static void write_record(void)
{
	char target[256];
	snprintf(target, sizeof(target), "%s/target", tmp);
	char *dir = NULL;
	const char *manifest = "kind: genservice\n";
	int rc = veil_measurement_write(&meas, target, manifest, strlen(manifest), &dir, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
	char want[512];
	snprintf(want, sizeof(want), "%s/images/app", target);
	assert_string_equal(dir, want);
	free(dir);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *text = calloc(1, 1 << 16);
	assert_non_null(text);
	size_t n = fread(text, 1, (1 << 16) - 1, f);
	assert_true(n < (1 << 16) - 1);
	fclose(f);
	return text;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void test_record_round_trip(void **state)
{
	(void)state;
	measure_ok("/python", "[app.py, run.sh, lib]");
	meas.manifest = strdup("/somewhere/service.yaml");
	write_record();
	char *rec = record_path();
	int rc = veil_measurement_load(rec, &loaded, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
	assert_string_equal(loaded.name, meas.name);
	assert_string_equal(loaded.image, meas.image);
	assert_string_equal(loaded.command, meas.command);
	assert_string_equal(loaded.pwd, meas.pwd);
	assert_string_equal(loaded.manifest, meas.manifest);
	assert_string_equal(loaded.runtime_sha256, meas.runtime_sha256);
	assert_string_equal(loaded.file_set_root, meas.file_set_root);
	assert_int_equal(loaded.file_count, meas.file_count);
	for (size_t i = 0; i < meas.file_count; i++) {
		assert_string_equal(loaded.files[i].path, meas.files[i].path);
		assert_int_equal(loaded.files[i].mode, meas.files[i].mode);
		assert_memory_equal(loaded.files[i].sha256, meas.files[i].sha256, 32);
	}
	/* the manifest copy sits beside the record */
	char man[512];
	snprintf(man, sizeof(man), "%s/target/images/app/service.yaml", tmp);
	char *copy = read_text(man);
	assert_string_equal(copy, "kind: genservice\n");
	free(copy);
	free(rec);
}

static void test_record_without_manifest_field(void **state)
{
	(void)state;
	measure_ok("/python", "[app.py]");
	write_record();
	char *rec = record_path();
	assert_int_equal(veil_measurement_load(rec, &loaded, &diags), 0);
	assert_null(loaded.manifest);
	free(rec);
}

/* Replace the first occurrence of `from` in the record by `to`. */
static void tamper(const char *from, const char *to)
{
	char *rec = record_path();
	char *text = read_text(rec);
	char *at = strstr(text, from);
	if (!at)
		print_message("record:\n%s\n", text);
	assert_non_null(at);
	size_t n = strlen(text) + strlen(to) + 1;
	char *out = malloc(n);
	assert_non_null(out);
	snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	write_text(rec, out);
	free(out);
	free(text);
	free(rec);
}

static void assert_load_refused(const char *message)
{
	char *rec = record_path();
	assert_int_equal(veil_measurement_load(rec, &loaded, &diags), VEIL_EINVAL);
	char want[768];
	snprintf(want, sizeof(want), "%s:1:1: %s", rec, message);
	assert_only_diag(want);
	assert_null(loaded.name);
	free(rec);
}

static void test_record_tampered_file_hash_refused(void **state)
{
	(void)state;
	measure_ok("/python", "[app.py, lib]");
	write_record();
	char h[65], evil[65];
	hex(meas.files[1].sha256, 32, h);
	memcpy(evil, h, sizeof(evil));
	evil[0] = evil[0] == '0' ? '1' : '0';
	tamper(h, evil);
	assert_load_refused("file_set_root does not match the files listed; the record was "
			    "changed after 'veil apply'");
}

static void test_record_tampered_mode_refused(void **state)
{
	(void)state;
	measure_ok("/python", "[app.py]");
	write_record();
	tamper("\"0644\"", "\"0755\"");
	assert_load_refused("file_set_root does not match the files listed; the record was "
			    "changed after 'veil apply'");
}

static void test_record_tampered_path_refused(void **state)
{
	(void)state;
	measure_ok("/python", "[app.py]");
	write_record();
	tamper("/python/app.py", "/python/evil.py");
	assert_load_refused("file_set_root does not match the files listed; the record was "
			    "changed after 'veil apply'");
}

static void test_record_malformed_root_refused(void **state)
{
	(void)state;
	measure_ok("/python", "[app.py]");
	write_record();
	tamper(meas.file_set_root, "ABCD");
	assert_load_refused("measurement record is incomplete or has malformed hashes; run 'veil "
			    "apply -f service.yaml' again");
}

static void test_record_uppercase_hash_refused(void **state)
{
	(void)state;
	measure_ok("/python", "[app.py]");
	write_record();
	char upper[65];
	for (size_t i = 0; i < 65; i++)
		upper[i] = (char)(meas.runtime_sha256[i] >= 'a' ? meas.runtime_sha256[i] - 32
								: meas.runtime_sha256[i]);
	tamper(meas.runtime_sha256, upper);
	assert_load_refused("measurement record is incomplete or has malformed hashes; run 'veil "
			    "apply -f service.yaml' again");
}

static void test_record_wrong_version_refused(void **state)
{
	(void)state;
	measure_ok("/python", "[app.py]");
	write_record();
	tamper("veil_measurement: 1", "veil_measurement: 2");
	assert_load_refused("not a version 1 veil measurement record");
}

static void test_record_parse_from_memory(void **state)
{
	(void)state;
	struct want_file w[] = {{"/p/x", 0644, "x"}};
	char root[65], h[65];
	expected_root(w, 1, root);
	sha256_hex("x", 1, h);
	char text[1024];
	snprintf(text, sizeof(text),
		 "veil_measurement: 1\n"
		 "name: n\n"
		 "image: i\n"
		 "command: c\n"
		 "pwd: /p\n"
		 "runtime:\n"
		 "  sha256: %s\n"
		 "file_set_root: %s\n"
		 "files:\n"
		 "  - path: /p/x\n"
		 "    mode: \"0644\"\n"
		 "    sha256: %s\n",
		 h, root, h);
	assert_int_equal(ydoc_init(&doc, "rec.yaml"), 0);
	assert_int_equal(ydoc_parse(&doc, text, strlen(text), NULL, &diags), 0);
	int rc = veil_measurement_parse(&doc, &loaded, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
	assert_string_equal(loaded.file_set_root, root);
	assert_int_equal(loaded.files[0].mode, 0644);
	assert_string_equal(loaded.runtime_sha256, h);
}

static void test_record_missing_files_refused(void **state)
{
	(void)state;
	struct want_file w[] = {{"/p/x", 0644, "x"}};
	char root[65], h[65];
	expected_root(w, 1, root);
	sha256_hex("x", 1, h);
	char text[1024];
	snprintf(text, sizeof(text),
		 "veil_measurement: 1\n"
		 "name: n\n"
		 "image: i\n"
		 "command: c\n"
		 "pwd: /p\n"
		 "runtime:\n"
		 "  sha256: %s\n"
		 "file_set_root: %s\n"
		 "files: []\n",
		 h, root);
	assert_int_equal(ydoc_init(&doc, "rec.yaml"), 0);
	assert_int_equal(ydoc_parse(&doc, text, strlen(text), NULL, &diags), 0);
	assert_int_equal(veil_measurement_parse(&doc, &loaded, &diags), VEIL_EINVAL);
	assert_only_diag("rec.yaml:1:1: file_set_root does not match the files listed; the record "
			 "was changed after 'veil apply'");
	assert_null(loaded.name);
}

static void test_record_unknown_key_refused(void **state)
{
	(void)state;
	measure_ok("/python", "[app.py]");
	write_record();
	tamper("name: app\n", "name: app\nnmae: x\n");
	char *rec = record_path();
	assert_int_equal(veil_measurement_load(rec, &loaded, &diags), VEIL_EINVAL);
	char want[768];
	snprintf(want, sizeof(want),
		 "%s:9:1: unknown key 'nmae' in the measurement record (did you mean 'name'?)",
		 rec);
	assert_has_diag(want);
	free(rec);
}

/* A file name with a C1 control character (U+0080) is valid UTF-8 and is
 * measured; its record must then load back. */
static void test_record_round_trip_c1_file_name(void **state)
{
	(void)state;
	put_file("app/a\xc2\x80z.txt", "c1", 0644);
	measure_ok("/python", "[\"a\\x80z.txt\"]");
	assert_string_equal(meas.files[0].path, "/python/a\xc2\x80z.txt");
	write_record();
	char rec[512];
	snprintf(rec, sizeof(rec), "%s/target/images/app/measurement.yaml", tmp);
	int rc = veil_measurement_load(rec, &loaded, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
	assert_string_equal(loaded.files[0].path, meas.files[0].path);
}

/* ---- runtime files (src/image/runtime.c), in a stand-in image <tmp>/img ---- */

static char img[160];
static char *rt_program;
static struct veil_file_entry *rt_files;
static size_t rt_count;

static void rt_measure(const char *command)
{
	snprintf(img, sizeof(img), "%s/img", tmp);
	int rc =
	    veil_measure_runtime_files(img, command, &rt_program, &rt_files, &rt_count, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
}

static void rt_free(void)
{
	for (size_t i = 0; i < rt_count; i++)
		free(rt_files[i].path);
	free(rt_files);
	free(rt_program);
	rt_files = NULL;
	rt_program = NULL;
	rt_count = 0;
}

static const struct veil_file_entry *rt_find(const char *path)
{
	for (size_t i = 0; i < rt_count; i++)
		if (!strcmp(rt_files[i].path, path))
			return &rt_files[i];
	return NULL;
}

static void put_bytes(const char *rel, const void *data, size_t n, mode_t mode)
{
	char *p = path_in(tmp, rel);
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

static void put_img_dirs(void)
{
	put_dir("img");
	put_dir("img/usr");
	put_dir("img/usr/bin");
	put_dir("img/lib");
	put_dir("img/lib/x86_64-linux-gnu");
}

static void le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* A minimal ELF64 with PT_INTERP, PT_LOAD and PT_DYNAMIC naming needed. */
static size_t make_elf(unsigned char *b, size_t cap, const char *const *needed, size_t n,
		       uint64_t bad_offset)
{
	assert_true(cap >= 0x1000);
	memset(b, 0, 0x1000);
	memcpy(b, "\177ELF", 4);
	b[4] = 2, b[5] = 1, b[6] = 1;
	le64(b + 32, 64); /* e_phoff */
	b[54] = 56, b[56] = 3;
	unsigned char *ph = b + 64;
	const char *interp = "/lib64/ld-test.so.2";
	ph[0] = 3; /* PT_INTERP */
	le64(ph + 8, 0x200);
	le64(ph + 32, strlen(interp) + 1);
	memcpy(b + 0x200, interp, strlen(interp) + 1);
	ph += 56;
	ph[0] = 1; /* PT_LOAD */
	le64(ph + 16, 0x400000);
	le64(ph + 32, 0x1000);
	ph += 56;
	ph[0] = 2; /* PT_DYNAMIC */
	le64(ph + 8, 0x300);
	le64(ph + 32, (n + 3) * 16);
	size_t str = 1;
	unsigned char *dyn = b + 0x300;
	for (size_t i = 0; i < n; i++, dyn += 16) {
		le64(dyn, 1);
		le64(dyn + 8, str);
		memcpy(b + 0x400 + str, needed[i], strlen(needed[i]) + 1);
		str += strlen(needed[i]) + 1;
	}
	le64(dyn, 1); /* a DT_NEEDED pointing past the file */
	le64(dyn + 8, bad_offset);
	dyn += 16;
	le64(dyn, 5); /* DT_STRTAB */
	le64(dyn + 8, 0x400400);
	return 0x1000;
}

static void test_runtime_elf_loader_and_libraries(void **state)
{
	(void)state;
	static unsigned char b[0x1000];
	const char *const needed[] = {"libx.so.1", "/abs/libz.so", "libmissing.so.9"};
	put_img_dirs();
	size_t n = make_elf(b, sizeof(b), needed, 3, 1ull << 40);
	put_bytes("img/usr/bin/prog", b, n, 0755);
	put_file("img/lib/x86_64-linux-gnu/libx.so.1", "not an elf", 0644);
	rt_measure("prog --flag");
	assert_string_equal(rt_program, "/usr/bin/prog");
	const struct veil_file_entry *e = rt_find("/usr/bin/prog");
	assert_non_null(e);
	assert_int_equal(e->mode, 0755);
	assert_non_null((e = rt_find("/lib/x86_64-linux-gnu/libx.so.1")));
	assert_int_equal(e->mode, 0644);
	/* the loader is not in the image: recorded absent, as are the files that
	 * steer the loader; a path and a missing library are not searched */
	assert_non_null((e = rt_find("/lib64/ld-test.so.2")));
	assert_int_equal(e->mode, 0);
	assert_non_null((e = rt_find("/etc/ld.so.preload")));
	assert_int_equal(e->mode, 0);
	assert_null(rt_find("/abs/libz.so"));
	assert_int_equal(rt_count, 5);
	rt_free();
}

static void test_runtime_truncated_and_garbage_elf(void **state)
{
	(void)state;
	static unsigned char b[0x1000];
	const char *const needed[] = {"libx.so.1"};
	put_img_dirs();
	make_elf(b, sizeof(b), needed, 1, 0);
	/* cut inside the program headers, then inside the dynamic section */
	const size_t cuts[] = {4, 63, 100, 0x310, 0x401};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		put_bytes("img/usr/bin/prog", b, cuts[i], 0755);
		rt_measure("prog");
		assert_string_equal(rt_program, "/usr/bin/prog");
		rt_free();
	}
	/* absurd counts and offsets */
	make_elf(b, sizeof(b), needed, 1, 0);
	b[56] = 0xff, b[57] = 0xff;
	le64(b + 32, ~0ull);
	put_bytes("img/usr/bin/prog", b, sizeof(b), 0755);
	rt_measure("prog");
	assert_int_equal(rt_count, 1);
	rt_free();
}

static void test_runtime_python_folders(void **state)
{
	(void)state;
	put_img_dirs();
	put_file("img/usr/bin/python3.11", "#!/bin/false\n", 0755);
	put_link("img/usr/bin/python3", "python3.11");
	put_dir("img/usr/lib");
	put_dir("img/usr/lib/python3.11");
	put_file("img/usr/lib/python3.11/site.py", "# site\n", 0644);
	put_file("img/usr/lib/python3.11/os.py", "# os\n", 0644);
	put_file("img/usr/lib/python3.11/a.pth", "import x\n", 0644);
	put_dir("img/usr/lib/python3.11/encodings");
	rt_measure("python3 app.py");
	assert_string_equal(rt_program, "/usr/bin/python3.11");
	const struct veil_file_entry *e = rt_find("/usr/lib/python3.11/");
	assert_non_null(e);
	assert_int_equal(e->mode, 0755);
	/* the listing: names sorted, '/' after a folder */
	unsigned char want[32];
	const char *listing = "veil-listing-v1\na.pth\nencodings/\nos.py\nsite.py\n";
	SHA256((const unsigned char *)listing, strlen(listing), want);
	assert_memory_equal(e->sha256, want, 32);
	assert_non_null(rt_find("/usr/lib/python3.11/a.pth"));
	assert_non_null(rt_find("/usr/lib/python3.11/site.py"));
	assert_null(rt_find("/usr/lib/python3.11/os.py")); /* listed, not hashed */
	assert_non_null((e = rt_find("/usr/lib/python3.11/site-packages/")));
	assert_int_equal(e->mode, 0);
	assert_non_null((e = rt_find("/usr/lib/python311.zip")));
	assert_int_equal(e->mode, 0);
	rt_free();
}

static void test_runtime_program_outside_image_not_followed(void **state)
{
	(void)state;
	put_img_dirs();
	put_dir("img2");
	put_file("img2/prog", "#!/bin/false\n", 0755);
	put_link("img/usr/bin/prog", "../../../img2/prog");
	rt_measure("prog");
	assert_null(rt_program);
	assert_int_equal(rt_count, 0);
	/* not found, and a path relative to pwd (a protected file) */
	rt_measure("nosuch");
	assert_null(rt_program);
	rt_measure("./run.sh");
	assert_null(rt_program);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_fileset_root_empty_set),
	    T(test_fileset_root_matches_documented_form),
	    T(test_fileset_root_depends_on_mode_path_and_content),
	    T(test_fileset_root_independent_of_input_order),
	    T(test_measure_symlink_refused),
	    T(test_measure_symlink_inside_folder_refused),
	    T(test_measure_symlinked_parent_folder_refused),
	    T(test_measure_missing_copy_entry),
	    T(test_measure_parent_relative_entry_refused),
	    T(test_measure_inner_dotdot_entry_refused),
	    T(test_measure_absolute_entry_refused),
	    T(test_measure_missing_runtime),
	    T(test_measure_file_copied_twice_refused),
	    T(test_measure_control_character_in_name_refused),
	    T(test_measure_invalid_utf8_name_refused),
	    T(test_measure_files_modes_and_order),
	    T(test_measure_group_exec_bit_counts_as_executable),
	    T(test_measure_subfolder_sorted_image_paths),
	    T(test_measure_dot_slash_and_double_slash_cleaned),
	    T(test_measure_whole_folder_with_dot),
	    T(test_measure_no_copy_entries),
	    T(test_record_round_trip),
	    T(test_runtime_elf_loader_and_libraries),
	    T(test_runtime_absolute_link_resolved_inside_root),
	    T(test_runtime_truncated_and_garbage_elf),
	    T(test_runtime_python_folders),
	    T(test_runtime_program_outside_image_not_followed),
	    T(test_record_without_manifest_field),
	    T(test_record_tampered_file_hash_refused),
	    T(test_record_tampered_mode_refused),
	    T(test_record_tampered_path_refused),
	    T(test_record_malformed_root_refused),
	    T(test_record_uppercase_hash_refused),
	    T(test_record_wrong_version_refused),
	    T(test_record_parse_from_memory),
	    T(test_record_missing_files_refused),
	    T(test_record_unknown_key_refused),
	    T(test_record_round_trip_c1_file_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
