/* The bounded cursor (src/common/cursor.c): every read is checked against
 * what remains, failure is sticky and yields zeros, slices never read past
 * their end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "veil/cursor.h"
#include "veil/lasproto.h"

static const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
			       0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};

static void test_integers_both_orders(void **state)
{
	(void)state;
	struct veil_cursor c;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	veil_cur_init(&c, data, sizeof(data));
	assert_true(veil_cur_u8(&c, &u8));
	assert_int_equal(u8, 0x01);
	assert_true(veil_cur_le16(&c, &u16));
	assert_int_equal(u16, 0x0302);
	assert_true(veil_cur_be16(&c, &u16));
	assert_int_equal(u16, 0x0405);
	assert_true(veil_cur_le32(&c, &u32));
	assert_int_equal(u32, 0x09080706);
	assert_int_equal(veil_cur_pos(&c), 9);
	veil_cur_init(&c, data, sizeof(data));
	assert_true(veil_cur_le64(&c, &u64));
	assert_true(u64 == 0x0807060504030201ull);
	assert_true(veil_cur_be64(&c, &u64));
	assert_true(u64 == 0x090a0b0c0d0e0f10ull);
	assert_true(veil_cur_done(&c));
	veil_cur_init(&c, data, sizeof(data));
	assert_true(veil_cur_be32(&c, &u32));
	assert_int_equal(u32, 0x01020304);
}

static void test_overrun_is_sticky_and_zero(void **state)
{
	(void)state;
	struct veil_cursor c;
	uint32_t u32 = 7;
	uint8_t u8 = 7, buf[4] = {1, 2, 3, 4};
	veil_cur_init(&c, data, 3);
	assert_false(veil_cur_le32(&c, &u32));
	assert_int_equal(u32, 0);
	assert_false(veil_cur_ok(&c));
	/* a read that would fit on its own fails after the first failure */
	assert_false(veil_cur_u8(&c, &u8));
	assert_int_equal(u8, 0);
	assert_false(veil_cur_copy(&c, buf, sizeof(buf)));
	assert_int_equal(buf[0] | buf[1] | buf[2] | buf[3], 0);
	assert_int_equal(veil_cur_left(&c), 0);
	assert_false(veil_cur_done(&c));
	/* a huge length does not wrap */
	veil_cur_init(&c, data, sizeof(data));
	assert_true(veil_cur_skip(&c, 1));
	assert_false(veil_cur_skip(&c, SIZE_MAX));
	assert_false(veil_cur_ok(&c));
}

static void test_slices(void **state)
{
	(void)state;
	/* le16 length 3, then 3 bytes, then 1 more */
	static const uint8_t lp[] = {0x03, 0x00, 0xaa, 0xbb, 0xcc, 0xdd};
	struct veil_cursor c, s;
	uint8_t u8;
	uint32_t u32;
	veil_cur_init(&c, lp, sizeof(lp));
	assert_true(veil_cur_sub_le16(&c, &s));
	assert_int_equal(veil_cur_left(&s), 3);
	/* the slice ends where its length says, not where the parent does */
	assert_false(veil_cur_le32(&s, &u32));
	assert_true(veil_cur_ok(&c));
	assert_true(veil_cur_u8(&c, &u8));
	assert_int_equal(u8, 0xdd);
	assert_true(veil_cur_done(&c));
	/* a declared length past the end fails the parent and the slice */
	static const uint8_t bad[] = {0x09, 0x00, 0x00, 0x00, 0xaa};
	veil_cur_init(&c, bad, sizeof(bad));
	assert_false(veil_cur_sub_le32(&c, &s));
	assert_false(veil_cur_ok(&s));
	assert_false(veil_cur_ok(&c));
	static const uint8_t be[] = {0x00, 0x00, 0x00, 0x01, 0x42};
	veil_cur_init(&c, be, sizeof(be));
	assert_true(veil_cur_sub_be32(&c, &s));
	assert_true(veil_cur_u8(&s, &u8));
	assert_int_equal(u8, 0x42);
	assert_true(veil_cur_done(&s));
}

static void test_expect_view_span(void **state)
{
	(void)state;
	struct veil_cursor c;
	const uint8_t *p;
	size_t n;
	veil_cur_init(&c, "MAGICrest", 9);
	assert_true(veil_cur_expect(&c, "MAGIC", 5));
	assert_true(veil_cur_view(&c, 2, &p));
	assert_memory_equal(p, "re", 2);
	assert_true(veil_cur_span(&c, 0, &p, &n));
	assert_int_equal(n, 7);
	assert_memory_equal(p, "MAGICre", 7);
	assert_false(veil_cur_span(&c, 8, &p, &n));
	veil_cur_init(&c, "MAGIX", 5);
	assert_false(veil_cur_expect(&c, "MAGIC", 5));
	assert_false(veil_cur_ok(&c));
	assert_false(veil_cur_view(&c, 0, &p));
	assert_null(p);
}

static void test_lines(void **state)
{
	(void)state;
	struct veil_cursor c;
	const uint8_t *p;
	size_t n;
	veil_cur_init(&c, "ab\ncd\nxyz", 9);
	assert_true(veil_cur_line(&c, 10, &p, &n));
	assert_int_equal(n, 2);
	assert_memory_equal(p, "ab", 2);
	assert_true(veil_cur_line(&c, 2, &p, &n));
	assert_memory_equal(p, "cd", 2);
	/* no newline: refused, nothing returned */
	assert_false(veil_cur_line(&c, 10, &p, &n));
	assert_null(p);
	/* longer than max */
	veil_cur_init(&c, "abcdef\n", 7);
	assert_false(veil_cur_line(&c, 5, &p, &n));
	veil_cur_init(&c, "abcde\n", 6);
	assert_true(veil_cur_line(&c, 5, &p, &n));
	assert_true(veil_cur_done(&c));
}

static void test_empty_and_null(void **state)
{
	(void)state;
	struct veil_cursor c;
	uint8_t u8;
	veil_cur_init(&c, NULL, 100);
	assert_int_equal(veil_cur_left(&c), 0);
	assert_true(veil_cur_done(&c));
	assert_false(veil_cur_u8(&c, &u8));
	veil_cur_init(&c, data, 0);
	assert_true(veil_cur_skip(&c, 0));
	assert_true(veil_cur_done(&c));
	veil_cur_fail(&c);
	assert_false(veil_cur_done(&c));
}

/* veil-las's line protocol (src/common/lasproto.c), parsed through the cursor */
static void test_las_report(void **state)
{
	(void)state;
	uint8_t rd[32];
	char id[VEIL_EVIDENCE_CONFIG_ID_MAX + 1];
	char hex[65], line[600];
	memset(hex, 'a', 64);
	hex[64] = 0;
	snprintf(line, sizeof(line), "REPORT %s ns/app\n", hex);
	assert_int_equal(veil_las_parse_report(line, strlen(line), rd, id), 0);
	assert_string_equal(id, "ns/app");
	assert_int_equal(rd[0], 0xaa);
	/* {before the hex, after it} */
	static const char *const bad[][2] = {
	    {"REPORT ", " ns/app"},    /* no newline */
	    {"REPORT ", " ns/app\nX"}, /* data after the line */
	    {"REPORT ", " \n"},        /* empty config id */
	    {"REPORT ", " ns app\n"},  /* a blank in the config id */
	    {"REPORT ", " ns/$x\n"},   /* a character outside the set */
	    {"REPORT  ", " ns/app\n"}, /* two blanks */
	    {"report ", " ns/app\n"},  /* the word */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		snprintf(line, sizeof(line), "%s%s%s", bad[i][0], hex, bad[i][1]);
		assert_int_not_equal(veil_las_parse_report(line, strlen(line), rd, id), 0);
		assert_string_equal(id, "");
	}
	/* upper-case, short and non-hex report data */
	snprintf(line, sizeof(line), "REPORT %.63s ns/app\n", hex);
	assert_int_not_equal(veil_las_parse_report(line, strlen(line), rd, id), 0);
	hex[5] = 'A';
	snprintf(line, sizeof(line), "REPORT %s ns/app\n", hex);
	assert_int_not_equal(veil_las_parse_report(line, strlen(line), rd, id), 0);
	hex[5] = 'g';
	snprintf(line, sizeof(line), "REPORT %s ns/app\n", hex);
	assert_int_not_equal(veil_las_parse_report(line, strlen(line), rd, id), 0);
	hex[5] = 'a';
	/* a NUL inside the line */
	snprintf(line, sizeof(line), "REPORT %s ns/app\n", hex);
	line[80] = '\0';
	assert_int_not_equal(veil_las_parse_report(line, strlen(line) + 6, rd, id), 0);
	/* the longest config id, and one more */
	char longid[VEIL_EVIDENCE_CONFIG_ID_MAX + 2];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[VEIL_EVIDENCE_CONFIG_ID_MAX] = 0;
	snprintf(line, sizeof(line), "REPORT %s %s\n", hex, longid);
	assert_int_equal(veil_las_parse_report(line, strlen(line), rd, id), 0);
	longid[VEIL_EVIDENCE_CONFIG_ID_MAX] = 'x';
	longid[VEIL_EVIDENCE_CONFIG_ID_MAX + 1] = 0;
	snprintf(line, sizeof(line), "REPORT %s %s\n", hex, longid);
	assert_int_not_equal(veil_las_parse_report(line, strlen(line), rd, id), 0);
}

static void test_las_hex_line(void **state)
{
	(void)state;
	uint8_t n[16];
	const char *ok = "CHALLENGE 000102030405060708090a0b0c0d0e0f\n";
	assert_int_equal(veil_las_parse_hex_line(ok, strlen(ok), "CHALLENGE", n, sizeof(n)), 0);
	assert_int_equal(n[15], 0x0f);
	static const char *const bad[] = {
	    "CHALLENGE 000102030405060708090a0b0c0d0e0f",     /* no newline */
	    "CHALLENGE 000102030405060708090a0b0c0d0e\n",     /* short */
	    "CHALLENGE 000102030405060708090a0b0c0d0e0f00\n", /* long */
	    "RESPONSE 000102030405060708090a0b0c0d0e0f\n",    /* another word */
	    "CHALLENGE 000102030405060708090A0B0C0D0E0F\n",   /* upper case */
	    "CHALLENGE000102030405060708090a0b0c0d0e0f\n",    /* no blank */
	    "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_not_equal(
		    veil_las_parse_hex_line(bad[i], strlen(bad[i]), "CHALLENGE", n, sizeof(n)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_integers_both_orders),
	    cmocka_unit_test(test_overrun_is_sticky_and_zero),
	    cmocka_unit_test(test_slices),
	    cmocka_unit_test(test_expect_view_span),
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_empty_and_null),
	    cmocka_unit_test(test_las_report),
	    cmocka_unit_test(test_las_hex_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
