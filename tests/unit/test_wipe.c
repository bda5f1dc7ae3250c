/* The wiping allocator (src/common/wipe.c) veil gives jansson and libevent:
 * a freed block holds no copy of what it held, a realloc that moves leaves
 * none behind, and the realloc keeps the bytes as realloc does.
 *
 * What a freed block held is read back through the next malloc of the same
 * size, which glibc's tcache hands out again (LIFO); where the allocator
 * hands out another block (ASan's quarantine) the check has nothing to
 * look at and passes. The plain-free control shows the check would see a
 * copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <malloc.h>

#include "veil/common.h"

#define SECRET "veil-test-secret-9f1c2e"

static void fill(char *p, size_t size)
{
	for (size_t i = 0; i + strlen(SECRET) <= size; i += strlen(SECRET))
		memcpy(p + i, SECRET, strlen(SECRET));
}

/* the bytes a block of size holds when handed out again after was was freed */
static int reused_block_holds_secret(const void *was, size_t size)
{
	char *q = malloc(size);
	assert_non_null(q);
	int found = q == was && memmem(q, size, SECRET, strlen(SECRET)) != NULL;
	free(q);
	return found;
}

static void test_wipe_block_clears_the_usable_size(void **state)
{
	(void)state;
	char *p = malloc(100);
	assert_non_null(p);
	/* all of it ours to write, also to _FORTIFY_SOURCE=3 */
	size_t usable = malloc_usable_size(p);
	p = realloc(p, usable);
	assert_non_null(p);
	memset(p, 0xa5, usable);
	veil_wipe_block(p);
	for (size_t i = 0; i < usable; i++)
		assert_int_equal(p[i], 0);
	free(p);
	veil_wipe_block(NULL); /* nothing */
}

/* through a pointer the compiler cannot see through: a fill followed by a
 * known free() is a dead store it may drop */
static void (*volatile plain_free)(void *) = free;

static void test_plain_free_leaves_a_copy(void **state)
{
	(void)state;
	char *p = malloc(256);
	assert_non_null(p);
	fill(p, 256);
	plain_free(p);
	char *q = malloc(256);
	assert_non_null(q);
	if (q == p) /* glibc without ASan: the copy is still there */
		assert_non_null(memmem(q, 256, SECRET, strlen(SECRET)));
	free(q);
}

static void test_freed_block_holds_no_secret(void **state)
{
	(void)state;
	char *p = veil_wipe_malloc(256);
	assert_non_null(p);
	fill(p, 256);
	veil_wipe_free(p);
	assert_false(reused_block_holds_secret(p, 256));
	veil_wipe_free(NULL); /* nothing */
}

static void test_realloc_that_moves_leaves_no_copy(void **state)
{
	(void)state;
	char *p = veil_wipe_malloc(64);
	assert_non_null(p);
	fill(p, 64);
	char *q = veil_wipe_realloc(p, 1 << 20);
	assert_non_null(q);
	assert_ptr_not_equal(q, p);
	assert_memory_equal(q, SECRET, strlen(SECRET)); /* kept, as realloc */
	assert_false(reused_block_holds_secret(p, 64));
	veil_wipe_free(q);
}

static void test_realloc_edges(void **state)
{
	(void)state;
	char *p = veil_wipe_realloc(NULL, 32); /* malloc */
	assert_non_null(p);
	memcpy(p, "abc", 4);
	assert_ptr_equal(veil_wipe_realloc(p, 8), p); /* fits: kept */
	assert_string_equal(p, "abc");
	assert_null(veil_wipe_realloc(p, 0)); /* freed, as glibc's realloc(p, 0) */
}

static void test_jansson_strings_are_wiped(void **state)
{
	(void)state;
	json_set_alloc_funcs(veil_wipe_malloc, veil_wipe_free);
	/* longer than the allocator's own bookkeeping at a freed block's start */
	char value[200];
	memset(value, 'x', sizeof(value));
	fill(value, sizeof(value));
	json_t *s = json_stringn(value, sizeof(value));
	assert_non_null(s);
	const char *v = json_string_value(s);
	json_decref(s);
	assert_false(reused_block_holds_secret(v, sizeof(value) + 1));
	json_set_alloc_funcs(malloc, free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wipe_block_clears_the_usable_size),
	    cmocka_unit_test(test_plain_free_leaves_a_copy),
	    cmocka_unit_test(test_freed_block_holds_no_secret),
	    cmocka_unit_test(test_realloc_that_moves_leaves_no_copy),
	    cmocka_unit_test(test_realloc_edges),
	    cmocka_unit_test(test_jansson_strings_are_wiped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
