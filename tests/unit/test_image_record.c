/* The image measurement record's parser (include/veil/image_record.h):
 * every malformed form refused with the line, the writer's form accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "veil/image_record.h"

#define H64 "0000000000000000000000000000000000000000000000000000000000000000"
#define HDR "veil-image-measurement 1\n"
#define ROOTD "d 0755 " H64 " /\n"

static int parse(const char *text, char *why, size_t cap)
{
	struct veil_image_record r;
	int rc = veil_image_record_parse(text, strlen(text), &r, why, cap);
	if (!rc)
		veil_image_record_free(&r);
	return rc;
}

static void assert_refused(const char *text, const char *reason)
{
	char why[300] = "";
	assert_int_equal(parse(text, why, sizeof(why)), VEIL_EINVAL);
	if (!strstr(why, reason))
		fail_msg("'%s' not in '%s'", reason, why);
}

static void test_malformed_records_are_refused(void **state)
{
	(void)state;
	assert_refused("", "not a veil-image-measurement 1 record");
	assert_refused("veil-image-measurement 2\n" ROOTD, "not a veil-image-measurement 1");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a", "not terminated");
	assert_refused(HDR, "the first entry is not the root folder");
	assert_refused(HDR "f 0644 1 " H64 " /a\n", "the first entry is not the root folder");
	assert_refused(HDR ROOTD "q 0644 /a\n", "line 3: an entry kind other than d, f, l or x");
	assert_refused(HDR ROOTD "f 644 1 " H64 " /a\n", "a mode that is not 4 octal digits");
	assert_refused(HDR ROOTD "f 0648 1 " H64 " /a\n", "a mode that is not 4 octal digits");
	assert_refused(HDR ROOTD "f 0644 01 " H64 " /a\n", "a size that is not a decimal number");
	assert_refused(HDR ROOTD "f 0644 -1 " H64 " /a\n", "a size that is not a decimal number");
	assert_refused(HDR ROOTD "f 0644 99999999999999999999 " H64 " /a\n",
		       "a size that is not a decimal number");
	assert_refused(HDR ROOTD "f 0644 1 " H64 "0 /a\n", "a hash that is not 64");
	assert_refused(HDR ROOTD "f 0644 1 " H64 "\n", "fewer fields");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a b\n", "more fields");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a\\x41\n",
		       "an escape of a byte written as itself");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a\\x0\n", "a malformed escape");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a\\x00\n", "a NUL byte");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a\\xZZ\n", "a malformed escape");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a\x7f\n", "a byte that must be escaped");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " a\n", "not absolute and normal");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a/\n", "not absolute and normal");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " //a\n", "not absolute and normal");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /../a\n", "not absolute and normal");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /./a\n", "not absolute and normal");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /b\nf 0644 1 " H64 " /a\n", "out of order");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a\nf 0644 1 " H64 " /a\n", "listed twice");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a/b\n",
		       "line 3: an entry whose folder is not listed");
	assert_refused(HDR ROOTD "f 0644 1 " H64 " /a\nf 0644 1 " H64 " /a/b\n",
		       "an entry whose folder is not listed");
	assert_refused(HDR ROOTD "x /proc\nf 0644 1 " H64 " /proc/a\n", "folder is not listed");
	assert_refused(HDR ROOTD "l  /a\n", "an empty field");
	assert_refused(HDR ROOTD "d 0755 " H64 "\n", "fewer fields");
	assert_refused(HDR ROOTD "\n", "not an entry");
	assert_refused(HDR ROOTD "x\n", "not an entry");
}

static void test_the_writers_form_is_read(void **state)
{
	(void)state;
	const char *text = HDR ROOTD "x /dev\n"
				     "d 0700 " H64 " /etc\n"
				     "f 4755 123 " H64 " /etc/a\\x20b\\x0a\n"
				     "l ../x\\x5c /etc/l\n";
	struct veil_image_record r;
	char why[200] = "";
	assert_int_equal(veil_image_record_parse(text, strlen(text), &r, why, sizeof(why)), 0);
	assert_int_equal(r.count, 5);
	assert_int_equal(r.entries[2].mode, 0700);
	assert_string_equal(r.entries[3].path, "/etc/a b\n");
	assert_int_equal(r.entries[3].mode, 04755);
	assert_int_equal(r.entries[3].size, 123);
	assert_string_equal(r.entries[4].target, "../x\\");
	assert_int_equal(r.entries[1].kind, VEIL_IMAGE_EXCLUDED);
	veil_image_record_free(&r);
}

static void test_escape_round_trips(void **state)
{
	(void)state;
	struct veil_buf b;
	veil_buf_init(&b, 0);
	assert_int_equal(veil_image_record_escape(&b, "a b\\\n\xff~", 7), 0);
	assert_int_equal(veil_buf_append(&b, "", 1), 0);
	assert_string_equal(b.data, "a\\x20b\\x5c\\x0a\\xff~");
	veil_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_malformed_records_are_refused),
	    cmocka_unit_test(test_the_writers_form_is_read),
	    cmocka_unit_test(test_escape_round_trips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
