/* Unit tests: the whole image's measurement record (src/image/rootfs.c) made
 * from layers written here with libarchive: whiteouts, opaque folders, hard
 * links, exclusions, later layers winning; and the layers it refuses. */
#include <archive.h>
#include <archive_entry.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci.h"
#include "veil/image_record.h"

static char layout[64];
static struct veil_diags diags;

/* one tar entry: kind 'd', 'f', 'l' (target), 'h' (hard link to target),
 * 'c' (a character device) */
struct tar_entry {
	char kind;
	const char *path, *data; /* data: a file's content, a link's target */
	unsigned mode;
};

static int setup(void **state)
{
	(void)state;
	snprintf(layout, sizeof(layout), "/tmp/veil-rootfs-XXXXXX");
	assert_non_null(mkdtemp(layout));
	char blobs[128];
	snprintf(blobs, sizeof(blobs), "%s/blobs/sha256", layout);
	assert_int_equal(veil_mkdirs(blobs, 0755, NULL), 0);
	veil_diags_init(&diags);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(veil_remove_tree(layout), 0);
	veil_diags_free(&diags);
	return 0;
}

/* writes the entries as the gzip tar blob named by 64 times hexdigit */
static void write_layer(char hexdigit, const struct tar_entry *e, size_t n, json_t *layers)
{
	char hex[65], path[256], digest[80];
	memset(hex, hexdigit, 64);
	hex[64] = '\0';
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", layout, hex);
	snprintf(digest, sizeof(digest), "sha256:%s", hex);
	struct archive *a = archive_write_new();
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		archive_entry_set_pathname(ae, e[i].path);
		archive_entry_set_perm(ae, e[i].mode ? e[i].mode : 0644);
		switch (e[i].kind) {
		case 'd':
			archive_entry_set_filetype(ae, AE_IFDIR);
			break;
		case 'f':
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_size(ae, (la_int64_t)strlen(e[i].data));
			break;
		case 'l':
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_symlink(ae, e[i].data);
			break;
		case 'h':
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_hardlink(ae, e[i].data);
			break;
		default:
			archive_entry_set_filetype(ae, AE_IFCHR);
		}
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (e[i].kind == 'f')
			assert_int_equal(archive_write_data(a, e[i].data, strlen(e[i].data)),
					 (la_ssize_t)strlen(e[i].data));
		archive_entry_free(ae);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	json_array_append_new(layers, json_pack("{s:s}", "digest", digest));
}

static char *record_of(json_t *layers, const char *const *exclude, size_t n, int *rc)
{
	struct veil_buf out;
	veil_buf_init(&out, 0);
	*rc = oci_rootfs_record(layout, layers, exclude, n, &out, &diags);
	veil_buf_append(&out, "", 1);
	return out.data;
}

static void has_line(const char *rec, const char *line)
{
	char want[512];
	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(rec, want))
		fail_msg("no line '%s' in:\n%s", line, rec);
}

static void lacks_path(const char *rec, const char *path)
{
	char want[512];
	snprintf(want, sizeof(want), " %s\n", path);
	if (strstr(rec, want))
		fail_msg("'%s' listed in:\n%s", path, rec);
}

static void file_line(char *out, size_t cap, const char *path, const char *content, unsigned mode)
{
	uint8_t h[VEIL_SHA256_SIZE];
	char hex[65];
	assert_int_equal(veil_sha256(content, strlen(content), h), 0);
	veil_hex(h, sizeof(h), hex);
	snprintf(out, cap, "f %04o %zu %s %s", mode, strlen(content), hex, path);
}

static void test_layers_applied_as_a_runtime_does(void **state)
{
	(void)state;
	const struct tar_entry l1[] = {
	    {'d', "./", NULL, 0755},
	    {'d', "a/", NULL, 0755},
	    {'f', "a/x", "one", 0644},
	    {'f', "a/y", "two", 0644},
	    {'h', "a/h", "a/x", 0644},
	    {'d', "o/", NULL, 0700},
	    {'f', "o/old", "old", 0644},
	    {'l', "l", "a/x", 0777},
	    {'f', "tmp/t", "t", 0644},
	    {'f', "etc/hosts", "h", 0644},
	    {'c', "dev/null", NULL, 0666},
	    {'f', "srv/in/secret.conf", "s", 0600},
	    {'f', "usr/bin/tool", "v1", 04755},
	};
	const struct tar_entry l2[] = {
	    {'f', "a/.wh.x", "", 0644},       {'f', "o/.wh..wh..opq", "", 0644},
	    {'f', "o/new", "new", 0644},      {'f', "usr/bin/tool", "v2", 0755},
	    {'f', "deep/er/file", "d", 0640},
	};
	json_t *layers = json_array();
	write_layer('a', l1, VEIL_ARRAY_LEN(l1), layers);
	write_layer('b', l2, VEIL_ARRAY_LEN(l2), layers);
	const char *exclude[] = {"/srv//in/"};
	int rc;
	char *rec = record_of(layers, exclude, 1, &rc);
	assert_int_equal(rc, 0);
	if (getenv("VEIL_TEST_PRINT"))
		fputs(rec, stderr);
	char line[300];
	assert_true(!strncmp(rec, VEIL_IMAGE_RECORD_MAGIC, strlen(VEIL_IMAGE_RECORD_MAGIC)));
	/* the hard link keeps the content of the file whited out later */
	file_line(line, sizeof(line), "/a/h", "one", 0644);
	has_line(rec, line);
	lacks_path(rec, "/a/x");
	file_line(line, sizeof(line), "/a/y", "two", 0644);
	has_line(rec, line);
	/* an opaque folder hides what lower layers put there, not its own */
	lacks_path(rec, "/o/old");
	file_line(line, sizeof(line), "/o/new", "new", 0644);
	has_line(rec, line);
	/* a later layer wins, mode included */
	file_line(line, sizeof(line), "/usr/bin/tool", "v2", 0755);
	has_line(rec, line);
	has_line(rec, "l a/x /l");
	/* a folder no layer names is made 0755 */
	assert_non_null(strstr(rec, "\nd 0755 "));
	assert_non_null(strstr(rec, " /deep/er\n"));
	/* excluded: neither listed nor below; the exclusion normalised */
	has_line(rec, "x /tmp");
	has_line(rec, "x /etc/hosts");
	has_line(rec, "x /srv/in");
	lacks_path(rec, "/tmp/t");
	lacks_path(rec, "/dev/null");
	lacks_path(rec, "/srv/in/secret.conf");
	/* an excluded entry's folders are the image's (the runtime makes them) */
	assert_non_null(strstr(rec, " /srv\n"));
	has_line(rec, "x /etc/veil/image-measurement");
	/* the record's folders are there, 0755, for its own layer */
	assert_non_null(strstr(rec, " /etc/veil\n"));
	/* /o's listing is {new} (the opaque entry is not a name) */
	const char *names[] = {"new"};
	uint8_t h[VEIL_SHA256_SIZE];
	char hex[65];
	veil_image_listing_sha256(names, 1, h);
	veil_hex(h, sizeof(h), hex);
	snprintf(line, sizeof(line), "d 0700 %s /o", hex);
	has_line(rec, line);
	/* what the writer writes, the reader reads */
	struct veil_image_record parsed;
	char why[300];
	assert_int_equal(veil_image_record_parse(rec, strlen(rec), &parsed, why, sizeof(why)), 0);
	veil_image_record_free(&parsed);
	/* the same layers: the same bytes */
	char *again = record_of(layers, exclude, 1, &rc);
	assert_string_equal(again, rec);
	free(again);
	free(rec);
	json_decref(layers);
}

static void test_unmeasurable_layers_refused(void **state)
{
	(void)state;
	const struct tar_entry dev[] = {{'c', "etc/tty", NULL, 0666}};
	json_t *layers = json_array();
	write_layer('c', dev, 1, layers);
	int rc;
	free(record_of(layers, NULL, 0, &rc));
	assert_int_equal(rc, VEIL_EINVAL);
	assert_non_null(strstr(diags.msgs[diags.count - 1], "a device or FIFO"));
	json_decref(layers);

	const struct tar_entry under_link[] = {{'l', "lib", "usr/lib", 0777},
					       {'f', "lib/x.so", "x", 0644}};
	layers = json_array();
	write_layer('d', under_link, 2, layers);
	free(record_of(layers, NULL, 0, &rc));
	assert_int_equal(rc, VEIL_EINVAL);
	assert_non_null(strstr(diags.msgs[diags.count - 1], "which is not a folder"));
	json_decref(layers);

	const struct tar_entry climb[] = {{'f', "../x", "x", 0644}};
	layers = json_array();
	write_layer('e', climb, 1, layers);
	free(record_of(layers, NULL, 0, &rc));
	assert_int_equal(rc, VEIL_EINVAL);
	json_decref(layers);

	const char *root[] = {"/"};
	layers = json_array();
	free(record_of(layers, root, 1, &rc));
	assert_int_equal(rc, VEIL_EINVAL);
	json_decref(layers);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_layers_applied_as_a_runtime_does, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unmeasurable_layers_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
