/* The daemons' strict integer parsing (src/common/args.c). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "veil/args.h"

static void expect_refused(const char *s)
{
	struct veil_diags d;
	long v = 42;
	veil_diags_init(&d);
	assert_int_equal(veil_parse_long("--threads", s, 1, 256, &v, &d), VEIL_EINVAL);
	assert_int_equal(v, 42); /* output set only on success */
	assert_int_equal(d.count, 1);
	char want[200];
	snprintf(want, sizeof(want), "--threads: '%s' is not a number from 1 to 256", s);
	assert_string_equal(d.msgs[0], want);
	veil_diags_free(&d);
}

static void test_suffix_sign_blank_empty_and_overflow_are_refused(void **state)
{
	(void)state;
	const char *bad[] = {"1x",
			     "",
			     " 2",
			     "2 ",
			     "+2",
			     "-1",
			     "0",
			     "257",
			     "0x10",
			     "1e2",
			     "9223372036854775807",
			     "9223372036854775808",
			     "99999999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_refused(bad[i]);
}

static void test_bounds_are_inclusive(void **state)
{
	(void)state;
	long v = 0;
	assert_int_equal(veil_parse_long("--threads", "1", 1, 256, &v, NULL), 0);
	assert_int_equal(v, 1);
	assert_int_equal(veil_parse_long("--threads", "256", 1, 256, &v, NULL), 0);
	assert_int_equal(v, 256);
	assert_int_equal(veil_parse_long("--threads", "007", 1, 256, &v, NULL), 0);
	assert_int_equal(v, 7);
	assert_int_equal(veil_parse_long("--port", "65535", 1, 65535, &v, NULL), 0);
	assert_int_equal(v, 65535);
}

/* (max - digit) / 10 rounded down to 0 for max < 9: "7" passed max 5 */
static void test_single_digit_above_small_max_is_refused(void **state)
{
	(void)state;
	long v = 42;
	assert_int_equal(veil_parse_long("--n", "7", 0, 5, &v, NULL), VEIL_EINVAL);
	assert_int_equal(veil_parse_long("--n", "6", 0, 5, &v, NULL), VEIL_EINVAL);
	assert_int_equal(veil_parse_long("--n", "9", 0, 0, &v, NULL), VEIL_EINVAL);
	assert_int_equal(veil_parse_long("--n", "1", 0, 0, &v, NULL), VEIL_EINVAL);
	assert_int_equal(v, 42);
	assert_int_equal(veil_parse_long("--n", "5", 0, 5, &v, NULL), 0);
	assert_int_equal(v, 5);
	assert_int_equal(veil_parse_long("--n", "0", 0, 0, &v, NULL), 0);
	assert_int_equal(v, 0);
	assert_int_equal(veil_parse_long("--n", "10", 0, 9, &v, NULL), VEIL_EINVAL);
	assert_int_equal(veil_parse_long("--n", "9", 0, 9, &v, NULL), 0);
	assert_int_equal(v, 9);
	assert_int_equal(veil_parse_long("--n", "15", 0, 14, &v, NULL), VEIL_EINVAL);
	assert_int_equal(veil_parse_long("--n", "14", 0, 14, &v, NULL), 0);
	assert_int_equal(v, 14);
}

static void test_long_max_edges(void **state)
{
	(void)state;
	long v = 42;
	assert_int_equal(veil_parse_long("--n", "9223372036854775807", 0, LONG_MAX, &v, NULL), 0);
	assert_int_equal(v, LONG_MAX);
	assert_int_equal(veil_parse_long("--n", "9223372036854775806", 0, LONG_MAX, &v, NULL), 0);
	assert_int_equal(v, LONG_MAX - 1);
	v = 42;
	assert_int_equal(veil_parse_long("--n", "9223372036854775808", 0, LONG_MAX, &v, NULL),
			 VEIL_EINVAL);
	assert_int_equal(veil_parse_long("--n", "9223372036854775810", 0, LONG_MAX, &v, NULL),
			 VEIL_EINVAL);
	assert_int_equal(veil_parse_long("--n", "92233720368547758070", 0, LONG_MAX, &v, NULL),
			 VEIL_EINVAL);
	assert_int_equal(veil_parse_long("--n", "9223372036854775807", 0, LONG_MAX - 1, &v, NULL),
			 VEIL_EINVAL);
	assert_int_equal(v, 42);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_suffix_sign_blank_empty_and_overflow_are_refused),
	    cmocka_unit_test(test_bounds_are_inclusive),
	    cmocka_unit_test(test_single_digit_above_small_max_is_refused),
	    cmocka_unit_test(test_long_max_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
