/* Audit log: tampering of every kind is found at the right line, odd strings
 * stay on one line and verify, the chain survives reopen and concurrency. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "veil/audit_log.h"

static char tmp[64];
static char path[128];
static struct veil_diags diags;

static int setup(void **state)
{
	(void)state;
	veil_diags_init(&diags);
	snprintf(tmp, sizeof(tmp), "/tmp/veil-audit-XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	snprintf(path, sizeof(path), "%s/audit.log", tmp);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	veil_diags_free(&diags);
	assert_int_equal(veil_remove_tree(tmp), 0);
	return 0;
}

static void print_diags(void)
{
	for (size_t i = 0; i < diags.count; i++)
		print_message("diag: %s\n", diags.msgs[i]);
}

static int diags_have(const char *needle)
{
	for (size_t i = 0; i < diags.count; i++)
		if (strstr(diags.msgs[i], needle))
			return 1;
	print_diags();
	print_message("no diagnostic contains \"%s\"\n", needle);
	return 0;
}

__attribute__((noinline)) static char *slurp(size_t *size)
{
	char *data = NULL;
	size_t n = 0;
	assert_int_equal(veil_read_file(path, 64 << 20, &data, &n, NULL), 0);
	if (size)
		*size = n;
	return data;
}

static void spill(const char *data, size_t size)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, size, f), size);
	assert_int_equal(fclose(f), 0);
}

static void append_n(struct veil_audit *a, int n, int from)
{
	static const char *const events[] = {"create", "read",   "update",
					     "delete", "attest", "refuse"};
	for (int i = from; i < from + n; i++) {
		char ns[32], detail[64];
		snprintf(ns, sizeof(ns), "ns-%d", i);
		snprintf(detail, sizeof(detail), "entry %d", i);
		struct veil_audit_event ev = {
		    .event = events[i % 6],
		    .namespace_ = i % 5 == 4 ? NULL : ns,
		    .client =
			i % 7 == 6
			    ? NULL
			    : "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		    .status = i % 2 ? 200 : 403,
		    .detail = i % 3 == 2 ? NULL : detail,
		};
		assert_int_equal(veil_audit_append(a, &ev), 0);
	}
}

/* Writes a fresh log of n entries. */
static void make_log(int n)
{
	struct veil_audit *a = NULL;
	int rc = veil_audit_open(path, &a, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
	append_n(a, n, 1);
	veil_audit_close(a);
}

static void assert_verifies(size_t want)
{
	size_t entries = 12345, bad = 12345;
	int rc = veil_audit_verify_file(path, &entries, &bad, &diags);
	if (rc)
		print_diags();
	assert_int_equal(rc, 0);
	assert_int_equal(entries, want);
	assert_int_equal(diags.count, 0);
}

static void assert_bad_at(size_t line, const char *why)
{
	size_t entries = 12345, bad = 12345;
	veil_diags_free(&diags);
	veil_diags_init(&diags);
	int rc = veil_audit_verify_file(path, &entries, &bad, &diags);
	assert_int_not_equal(rc, 0);
	if (bad != line)
		print_diags();
	assert_int_equal(bad, line);
	assert_int_equal(entries, 12345); /* set only on success */
	if (why)
		assert_true(diags_have(why));
}

/* Offset of the start of 1-based line k, and its size without the '\n'. */
static size_t line_at(const char *data, size_t size, size_t k, size_t *len)
{
	size_t off = 0;
	for (size_t i = 1; i < k; i++) {
		const char *nl = memchr(data + off, '\n', size - off);
		assert_non_null(nl);
		off = (size_t)(nl - data) + 1;
	}
	const char *nl = memchr(data + off, '\n', size - off);
	*len = nl ? (size_t)(nl - (data + off)) : size - off;
	return off;
}

static size_t count_lines(const char *data, size_t size)
{
	size_t n = 0;
	for (size_t i = 0; i < size; i++)
		n += data[i] == '\n';
	return n;
}

/* A complete line (with hash and '\n') over the given prefix. */
static char *hashed_line(const char *prefix)
{
	uint8_t digest[VEIL_SHA256_SIZE];
	char hex[2 * VEIL_SHA256_SIZE + 1];
	assert_int_equal(veil_sha256(prefix, strlen(prefix), digest), 0);
	veil_hex(digest, sizeof(digest), hex);
	char *line = NULL;
	assert_true(asprintf(&line, "%s,\"hash\":\"%s\"}\n", prefix, hex) > 0);
	return line;
}

#define ZERO64 "0000000000000000000000000000000000000000000000000000000000000000"
#define PREFIX1(event_json)                                                                        \
	"{\"seq\":1,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"" ZERO64                      \
	"\",\"event\":" event_json ",\"namespace\":null,\"client\":null,\"status\":0,"             \
	"\"detail\":null"

/* ---- tampering ---- */

static void test_changed_byte_anywhere_in_middle_line_fails_there(void **state)
{
	(void)state;
	make_log(9);
	size_t size, len;
	char *orig = slurp(&size);
	size_t off = line_at(orig, size, 5, &len);
	char *data = malloc(size);
	assert_non_null(data);
	/* every byte of line 5, and its '\n' (which joins it to line 6) */
	for (size_t i = 0; i <= len; i++) {
		memcpy(data, orig, size);
		data[off + i] ^= (i == len) ? ('\n' ^ ' ') : 1;
		spill(data, size);
		assert_bad_at(5, NULL);
	}
	free(data);
	free(orig);
}

static char next_in_class(char c)
{
	if (c >= '0' && c <= '9')
		return c == '9' ? '8' : (char)(c + 1);
	if (c >= 'a' && c <= 'f')
		return c == 'f' ? 'e' : (char)(c + 1);
	return c == 'z' ? 'y' : (char)(c + 1);
}

static void test_changed_field_values_fail_as_changed_entry(void **state)
{
	(void)state;
	make_log(9);
	/* well-formed edits of each field of line 7 (all its fields are set): only
	 * the hash can tell */
	static const char *const anchors[] = {
	    "\"seq\":",     "\"time\":\"",         "\"prev\":\"",
	    "\"event\":\"", "\"namespace\":\"ns-", "\"client\":\"",
	    "\"status\":",  "\"detail\":\"entry ", "\"hash\":\"",
	};
	size_t size, len;
	char *orig = slurp(&size);
	size_t off = line_at(orig, size, 7, &len);
	char *data = malloc(size + 1);
	assert_non_null(data);
	for (size_t e = 0; e < VEIL_ARRAY_LEN(anchors); e++) {
		memcpy(data, orig, size + 1);
		char *at = strstr(data + off, anchors[e]);
		assert_non_null(at);
		assert_true(at < data + off + len);
		at += strlen(anchors[e]);
		*at = next_in_class(*at);
		spill(data, size);
		assert_bad_at(7, "entry changed");
	}
	free(data);
	free(orig);
}

static void test_removed_line_fails(void **state)
{
	(void)state;
	make_log(9);
	size_t size, len;
	char *data = slurp(&size);
	size_t off = line_at(data, size, 4, &len);
	memmove(data + off, data + off + len + 1, size - off - len - 1);
	spill(data, size - len - 1);
	assert_bad_at(4, "removed");
	free(data);
}

static void test_removed_first_line_fails(void **state)
{
	(void)state;
	make_log(3);
	size_t size, len;
	char *data = slurp(&size);
	line_at(data, size, 1, &len);
	spill(data + len + 1, size - len - 1);
	assert_bad_at(1, "removed");
	free(data);
}

static void test_swapped_lines_fail(void **state)
{
	(void)state;
	make_log(9);
	size_t size, len3, len4;
	char *data = slurp(&size);
	size_t off3 = line_at(data, size, 3, &len3);
	size_t off4 = line_at(data, size, 4, &len4);
	char *swapped = malloc(size);
	assert_non_null(swapped);
	memcpy(swapped, data, off3);
	memcpy(swapped + off3, data + off4, len4 + 1);
	memcpy(swapped + off3 + len4 + 1, data + off3, len3 + 1);
	memcpy(swapped + off4 + len4 + 1, data + off4 + len4 + 1, size - off4 - len4 - 1);
	spill(swapped, size);
	assert_bad_at(3, "reordered");
	free(swapped);
	free(data);
}

static void test_repeated_line_fails(void **state)
{
	(void)state;
	make_log(5);
	size_t size, len;
	char *data = slurp(&size);
	size_t off = line_at(data, size, 3, &len);
	char *dup = NULL;
	assert_true(asprintf(&dup, "%.*s%.*s", (int)(off + len + 1), data, (int)(size - off),
			     data + off) > 0);
	spill(dup, strlen(dup));
	assert_bad_at(4, "repeated");
	free(dup);
	free(data);
}

/* A line moved to the end with its seq and hash recomputed still breaks prev. */
static void test_forged_line_with_right_seq_but_wrong_prev_fails(void **state)
{
	(void)state;
	make_log(2);
	size_t size;
	char *data = slurp(&size);
	char *line =
	    hashed_line("{\"seq\":3,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"" ZERO64
			"\",\"event\":\"read\",\"namespace\":null,\"client\":null,"
			"\"status\":0,\"detail\":null");
	char *all = NULL;
	assert_true(asprintf(&all, "%s%s", data, line) > 0);
	spill(all, strlen(all));
	assert_bad_at(3, "prev is not the hash of line 2");
	free(all);
	free(line);
	free(data);
}

static void test_first_line_prev_not_zero_fails(void **state)
{
	(void)state;
	/* well-formed and rightly hashed: only the chain can tell */
	char *line = hashed_line("{\"seq\":1,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"1"
				 "000000000000000000000000000000000000000000000000000000000000000"
				 "\",\"event\":\"read\",\"namespace\":null,\"client\":null,"
				 "\"status\":0,\"detail\":null");
	spill(line, strlen(line));
	assert_bad_at(1, "not 64 zeros");
	free(line);
}

static void test_truncated_last_line_fails_and_open_refuses(void **state)
{
	(void)state;
	make_log(4);
	size_t size, len;
	char *data = slurp(&size);
	size_t off = line_at(data, size, 4, &len);
	/* cut inside the last line, as a crash in the middle of a write would */
	size_t cuts[] = {1, 10, len / 2, len - 1, len};
	for (size_t c = 0; c < VEIL_ARRAY_LEN(cuts); c++) {
		spill(data, off + cuts[c]);
		assert_bad_at(4, "incomplete last line");
		veil_diags_free(&diags);
		veil_diags_init(&diags);
		struct veil_audit *a = (struct veil_audit *)1;
		assert_int_equal(veil_audit_open(path, &a, &diags), VEIL_EINVAL);
		assert_ptr_equal(a, (struct veil_audit *)1);
		assert_true(diags_have("audit.log:4: the last line is incomplete"));
		char want[64];
		snprintf(want, sizeof(want), "truncate it to %zu bytes", off);
		assert_true(diags_have(want));
	}
	/* truncated at a line boundary is a shorter, valid log */
	spill(data, off);
	veil_diags_free(&diags);
	veil_diags_init(&diags);
	assert_verifies(3);
	free(data);
}

static void test_open_refuses_changed_last_line(void **state)
{
	(void)state;
	make_log(4);
	size_t size, len;
	char *data = slurp(&size);
	size_t off = line_at(data, size, 4, &len);
	char *p = strstr(data + off, "\"detail\":\"entry 4\"");
	assert_non_null(p);
	p[strlen("\"detail\":\"entry ")] = '5';
	spill(data, size);
	struct veil_audit *a = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), VEIL_EINVAL);
	assert_null(a);
	assert_true(diags_have("audit.log:4: the last entry does not verify: entry changed"));
	free(data);
}

static void test_open_refuses_garbage_last_line(void **state)
{
	(void)state;
	make_log(2);
	size_t size;
	char *data = slurp(&size);
	char *all = NULL;
	assert_true(asprintf(&all, "%shello world\n", data) > 0);
	spill(all, strlen(all));
	struct veil_audit *a = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), VEIL_EINVAL);
	assert_true(diags_have("audit.log:3:1: the last entry does not verify"));
	/* an empty last line too */
	free(all);
	assert_true(asprintf(&all, "%s\n", data) > 0);
	spill(all, strlen(all));
	assert_int_equal(veil_audit_open(path, &a, &diags), VEIL_EINVAL);
	assert_true(diags_have("audit.log:3:1: the last entry does not verify: empty line"));
	free(all);
	free(data);
}

static void test_open_refuses_overlong_last_line(void **state)
{
	(void)state;
	make_log(2);
	size_t size;
	char *data = slurp(&size);
	size_t big = 20000;
	char *all = malloc(size + big + 1);
	assert_non_null(all);
	memcpy(all, data, size);
	memset(all + size, 'x', big);
	all[size + big] = '\n';
	spill(all, size + big + 1);
	struct veil_audit *a = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), VEIL_ELIMIT);
	assert_true(diags_have("audit.log:3: the last line is longer than"));
	assert_bad_at(3, "longer than the limit");
	/* and without a newline: found by the streaming verify too */
	spill(all, size + big);
	assert_bad_at(3, "longer than the limit");
	free(all);
	free(data);
}

static void test_garbage_lines_fail(void **state)
{
	(void)state;
	make_log(3);
	size_t size, len;
	char *data = slurp(&size);
	size_t off = line_at(data, size, 2, &len);
	static const char *const garbage[] = {
	    "hello\n", "\n", "{}\n", "{\"seq\":2}\n", "\x00\x01\x02\n", "[1,2,3]\n",
	};
	for (size_t g = 0; g < VEIL_ARRAY_LEN(garbage); g++) {
		size_t glen = g == 4 ? 4 : strlen(garbage[g]);
		char *all = malloc(size + glen);
		assert_non_null(all);
		memcpy(all, data, off);
		memcpy(all + off, garbage[g], glen);
		memcpy(all + off + glen, data + off, size - off);
		spill(all, size + glen);
		assert_bad_at(2, "not an audit entry");
		free(all);
	}
	free(data);
}

static void test_binary_garbage_file_fails_at_line_1(void **state)
{
	(void)state;
	char junk[3000];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	spill(junk, sizeof(junk));
	assert_bad_at(1, NULL);
	struct veil_audit *a = NULL;
	assert_int_not_equal(veil_audit_open(path, &a, &diags), 0);
	assert_null(a);
}

/* Lines that would hash fine but are not in the exact format written. */
static void test_non_canonical_lines_refused_even_with_right_hash(void **state)
{
	(void)state;
	static const struct {
		const char *prefix, *why;
	} cases[] = {
	    {PREFIX1("\"a\\nb\""), "escape other than"},
	    {PREFIX1("\"a\\/b\""), "escape other than"},
	    {PREFIX1("\"a\\u00410\""), "printable ASCII written as a \\u escape"},
	    {PREFIX1("\"a\\u00E9\""), "escape other than"},
	    {PREFIX1("\"\\udc00\""), "lone low surrogate"},
	    {PREFIX1("\"\\ud83d\""), "high surrogate escape without its low surrogate"},
	    {PREFIX1("\"\\ud83d\\u0041\""), "high surrogate escape without its low surrogate"},
	    {PREFIX1("\"caf\xc3\xa9\""), "byte that must be escaped"},
	    {PREFIX1("\"tab\there\""), "byte that must be escaped"},
	    {PREFIX1("\"\""), "empty event"},
	    {PREFIX1("null"), "expected a string"},
	    {PREFIX1("\"unterminated"), "expected ,\"namespace\""},
	    {"{\"seq\": 1,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"" ZERO64
	     "\",\"event\":\"a\",\"namespace\":null,\"client\":null,\"status\":0,\"detail\":null",
	     "seq is not"},
	    {"{\"seq\":01,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"" ZERO64
	     "\",\"event\":\"a\",\"namespace\":null,\"client\":null,\"status\":0,\"detail\":null",
	     "seq is not"},
	    {"{\"seq\":0,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"" ZERO64
	     "\",\"event\":\"a\",\"namespace\":null,\"client\":null,\"status\":0,\"detail\":null",
	     "seq is 0"},
	    {"{\"seq\":1,\"time\":\"2024-13-06T07:08:09.123Z\",\"prev\":\"" ZERO64
	     "\",\"event\":\"a\",\"namespace\":null,\"client\":null,\"status\":0,\"detail\":null",
	     "time is not"},
	    {"{\"seq\":1,\"time\":\"2024-05-06 07:08:09.123Z\",\"prev\":\"" ZERO64
	     "\",\"event\":\"a\",\"namespace\":null,\"client\":null,\"status\":0,\"detail\":null",
	     "time is not"},
	    {"{\"seq\":1,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"" ZERO64
	     "\",\"event\":\"a\",\"namespace\":null,\"client\":null,\"status\":-0,\"detail\":null",
	     "status is not"},
	    {"{\"seq\":1,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"" ZERO64
	     "\",\"event\":\"a\",\"namespace\":null,\"client\":null,\"status\":2147483648,"
	     "\"detail\":null",
	     "status is not"},
	    {"{\"seq\":1,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"" ZERO64
	     "\",\"event\":\"a\",\"client\":null,\"namespace\":null,\"status\":0,\"detail\":null",
	     "expected ,\"namespace\":"},
	    {"{\"seq\":1,\"time\":\"2024-05-06T07:08:09.123Z\",\"prev\":\"" ZERO64
	     "\",\"event\":\"a\",\"namespace\":null,\"client\":null,\"status\":0,\"detail\":null,"
	     "\"extra\":1",
	     "expected ,\"hash\""},
	};
	for (size_t c = 0; c < VEIL_ARRAY_LEN(cases); c++) {
		char *line = hashed_line(cases[c].prefix);
		spill(line, strlen(line));
		assert_bad_at(1, cases[c].why);
		free(line);
	}
	/* upper-case hex in the hash, a space before the end, bytes after it */
	char *line = hashed_line(PREFIX1("\"a\""));
	char *h = strstr(line, "\"hash\":\"") + strlen("\"hash\":\"");
	for (char *q = h; q < h + 64; q++)
		if (*q >= 'a' && *q <= 'f') {
			*q = (char)(*q - 'a' + 'A');
			break;
		}
	spill(line, strlen(line));
	assert_bad_at(1, "hash is not 64 lower-case hex digits");
	free(line);
	line = hashed_line(PREFIX1("\"a\""));
	char *spaced = NULL;
	assert_true(asprintf(&spaced, "%.*s \n", (int)(strlen(line) - 1), line) > 0);
	spill(spaced, strlen(spaced));
	assert_bad_at(1, "bytes after the end of the entry");
	free(spaced);
	free(line);
	/* and the accepted forms: the escapes the writer uses */
	line = hashed_line(PREFIX1("\"q\\\" b\\\\ c\\u0001 d\\u007f e\\u00e9 f\\ud83d\\ude00\""));
	spill(line, strlen(line));
	veil_diags_free(&diags);
	veil_diags_init(&diags);
	assert_verifies(1);
	free(line);
}

/* ---- writing ---- */

static void test_empty_file_verifies_with_zero_entries(void **state)
{
	(void)state;
	spill("", 0);
	assert_verifies(0);
	/* open creates an empty log, which also verifies */
	assert_int_equal(unlink(path), 0);
	struct veil_audit *a = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), 0);
	veil_audit_close(a);
	assert_verifies(0);
}

static void test_append_then_verify(void **state)
{
	(void)state;
	make_log(50);
	assert_verifies(50);
	size_t size, len;
	char *data = slurp(&size);
	assert_int_equal(count_lines(data, size), 50);
	line_at(data, size, 1, &len);
	assert_true(strncmp(data, "{\"seq\":1,\"time\":\"", 17) == 0);
	assert_non_null(strstr(data, "\"prev\":\"" ZERO64 "\""));
	/* line 2's prev is line 1's hash */
	char *h1 = strstr(data, "\"hash\":\"") + 8;
	size_t off2 = line_at(data, size, 2, &len);
	char *p2 = strstr(data + off2, "\"prev\":\"") + 8;
	assert_memory_equal(h1, p2, 64);
	/* NULLs are written as null */
	assert_non_null(strstr(data, "\"namespace\":null"));
	assert_non_null(strstr(data, "\"client\":null"));
	assert_non_null(strstr(data, "\"detail\":null"));
	assert_non_null(strstr(data, "\"status\":403"));
	free(data);
}

static void test_hash_is_sha256_of_prefix(void **state)
{
	(void)state;
	make_log(1);
	size_t size;
	char *data = slurp(&size);
	char *member = strstr(data, ",\"hash\":\"");
	assert_non_null(member);
	uint8_t digest[VEIL_SHA256_SIZE];
	char hex[65];
	assert_int_equal(veil_sha256(data, (size_t)(member - data), digest), 0);
	veil_hex(digest, sizeof(digest), hex);
	assert_memory_equal(member + 9, hex, 64);
	assert_string_equal(member + 9 + 64, "\"}\n");
	free(data);
}

static void test_file_created_0600(void **state)
{
	(void)state;
	mode_t old = umask(0);
	make_log(1);
	umask(old);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_odd_strings_are_escaped_and_verify(void **state)
{
	(void)state;
	struct veil_audit *a = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), 0);
	struct veil_audit_event ev = {
	    .event = "refuse",
	    .namespace_ = "we\"ird\\ns",
	    .client = "line1\nline2\r\t\x01\x1f\x7f",
	    .status = -1,
	    .detail = "bad \xff\xfe utf8 \xc3\x28 \xe2\x82 over\xc0\xaf long \xed\xa0\x80 sur, "
		      "good caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end\x80",
	};
	assert_int_equal(veil_audit_append(a, &ev), 0);
	struct veil_audit_event ev2 = {.event = "\"}\n{\"seq\":99", .detail = ",\"hash\":\""};
	assert_int_equal(veil_audit_append(a, &ev2), 0);
	veil_audit_close(a);
	assert_verifies(2);
	size_t size;
	char *data = slurp(&size);
	assert_int_equal(count_lines(data, size), 2);
	for (size_t i = 0; i < size; i++)
		assert_true(data[i] == '\n' || (data[i] >= 0x20 && data[i] < 0x7f));
	assert_non_null(strstr(data, "\"namespace\":\"we\\\"ird\\\\ns\""));
	assert_non_null(
	    strstr(data, "\"client\":\"line1\\u000aline2\\u000d\\u0009\\u0001\\u001f\\u007f\""));
	assert_non_null(strstr(data, "\"status\":-1,"));
	assert_non_null(strstr(data, "\"detail\":\"bad \\ufffd\\ufffd utf8 \\ufffd( \\ufffd\\ufffd "
				     "over\\ufffd\\ufffd long \\ufffd\\ufffd\\ufffd sur, good "
				     "caf\\u00e9 \\u20ac \\ud83d\\ude00 end\\ufffd\""));
	assert_non_null(strstr(data, "\"event\":\"\\\"}\\u000a{\\\"seq\\\":99\""));
	assert_non_null(strstr(data, "\"detail\":\",\\\"hash\\\":\\\"\""));
	free(data);
}

static void test_invalid_events_refused(void **state)
{
	(void)state;
	struct veil_audit *a = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), 0);
	struct veil_audit_event ev = {.event = NULL};
	assert_int_equal(veil_audit_append(a, &ev), VEIL_EINVAL);
	ev.event = "";
	assert_int_equal(veil_audit_append(a, &ev), VEIL_EINVAL);
	assert_int_equal(veil_audit_append(a, NULL), VEIL_EINVAL);
	ev.event = "read";
	assert_int_equal(veil_audit_append(NULL, &ev), VEIL_EINVAL);
	assert_int_equal(veil_audit_append(a, &ev), 0);
	veil_audit_close(a);
	veil_audit_close(NULL);
	assert_verifies(1);
}

static void test_very_long_strings_truncated_not_overflowed(void **state)
{
	(void)state;
	size_t big = 1 << 20;
	char *detail = malloc(big + 1);
	char *ctl = malloc(big + 1);
	char *emoji = malloc(big + 1);
	assert_non_null(detail);
	assert_non_null(ctl);
	assert_non_null(emoji);
	memset(detail, 'A', big);
	detail[big] = '\0';
	memset(ctl, '\x01', big); /* 6 bytes each once escaped */
	ctl[big] = '\0';
	for (size_t i = 0; i + 4 <= big; i += 4)
		memcpy(emoji + i, "\xf0\x9f\x98\x80", 4); /* 12 bytes each */
	emoji[big] = '\0';
	struct veil_audit *a = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), 0);
	struct veil_audit_event ev = {.event = "update", .detail = detail};
	assert_int_equal(veil_audit_append(a, &ev), 0);
	struct veil_audit_event worst = {.event = ctl,
					 .namespace_ = emoji,
					 .client = ctl,
					 .status = -2147483647 - 1,
					 .detail = emoji};
	assert_int_equal(veil_audit_append(a, &worst), 0);
	/* exactly at the limit: not truncated */
	detail[1024] = '\0';
	assert_int_equal(veil_audit_append(a, &ev), 0);
	detail[1025 - 1] = 'A';
	detail[1025] = '\0';
	assert_int_equal(veil_audit_append(a, &ev), 0);
	veil_audit_close(a);
	assert_verifies(4);

	size_t size, len;
	char *data = slurp(&size);
	line_at(data, size, 1, &len);
	assert_true(len < 2000);
	char *d = strstr(data, "\"detail\":\"") + 10;
	char *q = strchr(d, '"');
	assert_int_equal(q - d, 1024);
	assert_memory_equal(q - 14, "...[truncated]", 14);
	size_t off = line_at(data, size, 2, &len);
	assert_true(len < 8192);
	/* each string at most 1024 bytes, cut between whole escapes */
	const char *keys[] = {"\"event\":\"", "\"namespace\":\"", "\"client\":\"", "\"detail\":\""};
	for (size_t k = 0; k < 4; k++) {
		char *s = strstr(data + off, keys[k]) + strlen(keys[k]);
		char *e = strstr(s, "...[truncated]\"");
		assert_non_null(e);
		assert_true(e + 15 - s - 1 <= 1024);
		assert_true((e - s) % (k % 2 ? 12 : 6) == 0);
	}
	off = line_at(data, size, 3, &len);
	d = strstr(data + off, "\"detail\":\"") + 10;
	assert_int_equal(strchr(d, '"') - d, 1024);
	assert_int_equal(strspn(d, "A"), 1024);
	off = line_at(data, size, 4, &len);
	d = strstr(data + off, "\"detail\":\"") + 10;
	assert_int_equal(strchr(d, '"') - d, 1024);
	assert_memory_equal(d + 1024 - 14, "...[truncated]", 14);
	free(data);
	free(detail);
	free(ctl);
	free(emoji);
}

/* A write cut short (here by RLIMIT_FSIZE, as by a full disk) is cut back off,
 * so the log stays a valid chain and later appends continue it. */
static void test_failed_write_is_rolled_back(void **state)
{
	(void)state;
	make_log(2);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	struct veil_audit *a = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), 0);
	struct rlimit old, small;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	small = old;
	small.rlim_cur = (rlim_t)st.st_size + 40; /* room for part of one line */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	struct veil_audit_event ev = {.event = "update", .detail = "does not fit"};
	int rc = veil_audit_append(a, &ev);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);
	assert_int_equal(rc, VEIL_EIO);
	struct stat st2;
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st2.st_size, st.st_size);
	assert_verifies(2);
	/* not broken: the next append is seq 3 on the old chain */
	assert_int_equal(veil_audit_append(a, &ev), 0);
	veil_audit_close(a);
	assert_verifies(3);
}

static void test_reopen_continues_chain(void **state)
{
	(void)state;
	make_log(3);
	size_t size, len;
	char *before = slurp(&size);
	size_t off = line_at(before, size, 3, &len);
	char *h3 = strstr(before + off, "\"hash\":\"") + 8;
	for (int round = 0; round < 3; round++) {
		struct veil_audit *a = NULL;
		assert_int_equal(veil_audit_open(path, &a, &diags), 0);
		append_n(a, 2, 4 + 2 * round);
		veil_audit_close(a);
	}
	assert_verifies(9);
	size_t size2;
	char *after = slurp(&size2);
	assert_memory_equal(after, before, size); /* existing lines untouched */
	off = line_at(after, size2, 4, &len);
	assert_true(strncmp(after + off, "{\"seq\":4,", 9) == 0);
	char *p4 = strstr(after + off, "\"prev\":\"") + 8;
	assert_memory_equal(p4, h3, 64);
	off = line_at(after, size2, 9, &len);
	assert_true(strncmp(after + off, "{\"seq\":9,", 9) == 0);
	free(after);
	free(before);
}

static void test_second_writer_refused(void **state)
{
	(void)state;
	struct veil_audit *a = NULL, *b = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), 0);
	assert_int_not_equal(veil_audit_open(path, &b, &diags), 0);
	assert_null(b);
	assert_true(diags_have("open for writing elsewhere"));
	append_n(a, 1, 1);
	veil_audit_close(a);
	veil_diags_free(&diags);
	veil_diags_init(&diags);
	assert_int_equal(veil_audit_open(path, &b, &diags), 0);
	veil_audit_close(b);
	assert_verifies(1);
}

static void test_open_errors(void **state)
{
	(void)state;
	struct veil_audit *a = NULL;
	char bad[192];
	snprintf(bad, sizeof(bad), "%s/missing/audit.log", tmp);
	assert_int_equal(veil_audit_open(bad, &a, &diags), VEIL_ENOENT);
	assert_null(a);
	assert_int_not_equal(veil_audit_open(tmp, &a, &diags), 0);
	assert_null(a);
	size_t entries = 7, line = 7;
	assert_int_equal(veil_audit_verify_file(bad, &entries, &line, &diags), VEIL_ENOENT);
	assert_int_equal(entries, 7);
	assert_int_equal(line, 0);
}

#define THREADS 4
#define PER_THREAD 100

struct worker {
	struct veil_audit *a;
	int id;
	int failures;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char detail[32];
		snprintf(detail, sizeof(detail), "t%d-%d", w->id, i);
		struct veil_audit_event ev = {.event = "read", .client = "c", .detail = detail};
		if (veil_audit_append(w->a, &ev))
			w->failures++;
	}
	return NULL;
}

static void test_concurrent_appends_chain(void **state)
{
	(void)state;
	struct veil_audit *a = NULL;
	assert_int_equal(veil_audit_open(path, &a, &diags), 0);
	pthread_t th[THREADS];
	struct worker w[THREADS];
	for (int t = 0; t < THREADS; t++) {
		w[t] = (struct worker){.a = a, .id = t};
		assert_int_equal(pthread_create(&th[t], NULL, work, &w[t]), 0);
	}
	for (int t = 0; t < THREADS; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(w[t].failures, 0);
	}
	veil_audit_close(a);
	assert_verifies(THREADS * PER_THREAD);
	size_t size;
	char *data = slurp(&size);
	for (int t = 0; t < THREADS; t++) {
		int last = -1;
		for (int i = 0; i < PER_THREAD; i++) {
			char needle[48];
			snprintf(needle, sizeof(needle), "\"detail\":\"t%d-%d\"", t, i);
			char *at = strstr(data, needle);
			assert_non_null(at);
			assert_null(strstr(at + 1, needle)); /* exactly once */
			/* each thread's entries in its own order */
			assert_true(at - data > last);
			last = (int)(at - data);
		}
	}
	free(data);
}

/* The format without a file (what a log kept in database rows would use):
 * a line built from a hash, a number and a time is exactly the documented
 * bytes, checks on its own, and the next line links to it. */
static void test_format_line_without_a_file_checks_and_links(void **state)
{
	(void)state;
	char line[VEIL_AUDIT_LINE_MAX], hash[VEIL_AUDIT_HASH_HEX], hash2[VEIL_AUDIT_HASH_HEX];
	size_t size = 0, size2 = 0;
	struct veil_audit_event ev = {.event = "create", .namespace_ = "ns", .status = 201};
	assert_int_equal(veil_audit_format_line(veil_audit_zero_hash, 1, "2026-01-02T03:04:05.678Z",
						&ev, line, &size, hash),
			 0);
	static const char want[] =
	    "{\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\",\"prev\":\"0000000000000000"
	    "000000000000000000000000000000000000000000000000\",\"event\":\"create\","
	    "\"namespace\":\"ns\",\"client\":null,\"status\":201,\"detail\":null";
	assert_true(size > sizeof(want) && line[size - 1] == '\n');
	assert_memory_equal(line, want, sizeof(want) - 1);
	/* the hash is SHA-256 over the bytes before ,"hash":" */
	uint8_t digest[VEIL_SHA256_SIZE];
	char hex[VEIL_AUDIT_HASH_HEX];
	assert_int_equal(veil_sha256(want, sizeof(want) - 1, digest), 0);
	veil_hex(digest, sizeof(digest), hex);
	assert_string_equal(hex, hash);
	struct veil_audit_entry e;
	const char *why = NULL;
	size_t col = 0;
	assert_int_equal(veil_audit_check_line(line, size - 1, &e, &why, &col), 0);
	assert_int_equal(e.seq, 1);
	assert_string_equal(e.hash, hash);
	assert_int_equal(veil_audit_link(&e, 1, veil_audit_zero_hash), VEIL_AUDIT_LINKED);

	ev.event = "delete";
	assert_int_equal(
	    veil_audit_format_line(hash, 2, "2026-01-02T03:04:06.000Z", &ev, line, &size2, hash2),
	    0);
	assert_int_equal(veil_audit_check_line(line, size2 - 1, &e, &why, &col), 0);
	assert_int_equal(veil_audit_link(&e, 2, hash), VEIL_AUDIT_LINKED);
	assert_int_equal(veil_audit_link(&e, 2, veil_audit_zero_hash), VEIL_AUDIT_PREV_CHANGED);
	assert_int_equal(veil_audit_link(&e, 1, hash), VEIL_AUDIT_SEQ_SKIPPED);
	assert_int_equal(veil_audit_link(&e, 3, hash), VEIL_AUDIT_SEQ_REPEATED);
	line[40] ^= 1; /* a byte of the time */
	assert_int_equal(veil_audit_check_line(line, size2 - 1, &e, &why, &col), VEIL_EINVAL);

	/* refused: no event, a time of another shape, a prev that is no hash, seq 0 */
	ev.event = "";
	assert_int_equal(
	    veil_audit_format_line(hash, 2, "2026-01-02T03:04:06.000Z", &ev, line, &size2, hash2),
	    VEIL_EINVAL);
	ev.event = "read";
	char not_hex[VEIL_AUDIT_HASH_HEX];
	memcpy(not_hex, hash, sizeof(not_hex));
	not_hex[7] = 'G';
	assert_int_equal(veil_audit_format_line(hash, 2, "2026-01-02", &ev, line, &size2, hash2),
			 VEIL_EINVAL);
	assert_int_equal(veil_audit_format_line(not_hex, 2, "2026-01-02T03:04:06.000Z", &ev, line,
						&size2, hash2),
			 VEIL_EINVAL);
	assert_int_equal(
	    veil_audit_format_line(hash, 0, "2026-01-02T03:04:06.000Z", &ev, line, &size2, hash2),
	    VEIL_EINVAL);
}

/* A line holding a checkpoint with detail (what the CAS writes, or not). */
static size_t checkpoint_line(const char *event, const char *detail,
			      char line[static VEIL_AUDIT_LINE_MAX])
{
	char hash[VEIL_AUDIT_HASH_HEX];
	size_t size = 0;
	struct veil_audit_event ev = {.event = event, .detail = detail};
	assert_int_equal(veil_audit_format_line(veil_audit_zero_hash, 2, "2026-01-02T03:04:05.678Z",
						&ev, line, &size, hash),
			 0);
	return size - 1; /* without its '\n' */
}

/* Checkpoint details: malformed ones are refused (not read as some other
 * head), other events are not checkpoints, and what the writer makes parses
 * back to the same head, key hash and signature. */
static void test_checkpoint_detail_malformed_refused_and_round_trips(void **state)
{
	(void)state;
	char line[VEIL_AUDIT_LINE_MAX], detail[800];
	struct veil_audit_checkpoint cp = {.head.seq = 41}, got;
	memset(cp.head.hash, 'a', 64);
	memset(cp.key_hash, '0', 64);
	snprintf(cp.signature, sizeof(cp.signature), "MEUCIQ+/abc=");
#define KEY " key 0000000000000000000000000000000000000000000000000000000000000000"
#define HASH " hash aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	static const char *const bad[] = {
	    "",
	    "seq 41",
	    "seq 041" HASH KEY " signature MEU=",
	    "seq 41 hash AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" KEY
	    " signature MEU=",
	    "seq 41 hash aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" KEY
	    " signature MEU=",
	    "seq 41" HASH KEY " signature ",
	    "seq 41" HASH KEY " signature MEU= x",
	    "seq 41" HASH " signature MEU=",
	    "seq 99999999999999999999" HASH KEY " signature MEU=",
	};
#undef KEY
#undef HASH
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = checkpoint_line("checkpoint", bad[i], line);
		assert_int_equal(veil_audit_parse_checkpoint(line, n, &got), VEIL_EINVAL);
	}
	size_t n = checkpoint_line("checkpoint", NULL, line);
	assert_int_equal(veil_audit_parse_checkpoint(line, n, &got), VEIL_EINVAL);
	/* another event, even one whose detail reads like a checkpoint's */
	assert_true(veil_audit_checkpoint_detail(&cp, detail, sizeof(detail)) > 0);
	n = checkpoint_line("update", detail, line);
	assert_int_equal(veil_audit_parse_checkpoint(line, n, &got), VEIL_ENOENT);
	n = checkpoint_line("checkpointx", detail, line);
	assert_int_equal(veil_audit_parse_checkpoint(line, n, &got), VEIL_ENOENT);
	/* a cut line is refused, never read past its size */
	n = checkpoint_line("checkpoint", detail, line);
	assert_int_equal(veil_audit_parse_checkpoint(line, n - 80, &got), VEIL_EINVAL);
	/* the writer's own detail parses back */
	assert_int_equal(veil_audit_parse_checkpoint(line, n, &got), 0);
	assert_int_equal(got.head.seq, 41);
	assert_string_equal(got.head.hash, cp.head.hash);
	assert_string_equal(got.key_hash, cp.key_hash);
	assert_string_equal(got.signature, cp.signature);
	/* the writer refuses what the parser would not read, and a short buffer */
	assert_int_equal(veil_audit_checkpoint_detail(&cp, detail, 20), VEIL_ELIMIT);
	cp.signature[3] = '"';
	assert_int_equal(veil_audit_checkpoint_detail(&cp, detail, sizeof(detail)), VEIL_EINVAL);
	cp.signature[3] = 'C';
	cp.key_hash[5] = 'Z';
	assert_int_equal(veil_audit_checkpoint_detail(&cp, detail, sizeof(detail)), VEIL_EINVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_changed_byte_anywhere_in_middle_line_fails_there),
	    T(test_changed_field_values_fail_as_changed_entry),
	    T(test_removed_line_fails),
	    T(test_removed_first_line_fails),
	    T(test_swapped_lines_fail),
	    T(test_repeated_line_fails),
	    T(test_forged_line_with_right_seq_but_wrong_prev_fails),
	    T(test_first_line_prev_not_zero_fails),
	    T(test_truncated_last_line_fails_and_open_refuses),
	    T(test_open_refuses_changed_last_line),
	    T(test_open_refuses_garbage_last_line),
	    T(test_open_refuses_overlong_last_line),
	    T(test_garbage_lines_fail),
	    T(test_binary_garbage_file_fails_at_line_1),
	    T(test_non_canonical_lines_refused_even_with_right_hash),
	    T(test_empty_file_verifies_with_zero_entries),
	    T(test_append_then_verify),
	    T(test_hash_is_sha256_of_prefix),
	    T(test_file_created_0600),
	    T(test_odd_strings_are_escaped_and_verify),
	    T(test_invalid_events_refused),
	    T(test_very_long_strings_truncated_not_overflowed),
	    T(test_failed_write_is_rolled_back),
	    T(test_reopen_continues_chain),
	    T(test_second_writer_refused),
	    T(test_open_errors),
	    T(test_concurrent_appends_chain),
	    T(test_format_line_without_a_file_checks_and_links),
	    T(test_checkpoint_detail_malformed_refused_and_round_trips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
