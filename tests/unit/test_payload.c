/* The payload frame (src/cas/payload.c): what a namespace's sealed blob
 * holds. Adversarial cases first: frames of another version, with flags,
 * cut short or with bytes after them are refused; a frame without the
 * header (stores written before it) still reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "veil/common.h"
#include "veil/secure.h"

#include "../../src/cas/payload.h"

static const uint8_t v1[] = {'V', 'P', 'A', 'Y', 1, 0, 0, 0, 3,    0,   0,
			     0,   'a', ':', '1', 2, 0, 0, 0, 0xde, 0xad};

static int frame(const uint8_t *p, size_t n)
{
	const uint8_t *y, *z;
	size_t ys, zs;
	return cas_payload_frame(p, n, &y, &ys, &z, &zs);
}

static void test_another_version_is_refused(void **state)
{
	(void)state;
	uint8_t f[sizeof(v1)];
	memcpy(f, v1, sizeof(f));
	f[4] = 2;
	assert_int_equal(frame(f, sizeof(f)), VEIL_EINVAL);
	f[4] = 0;
	assert_int_equal(frame(f, sizeof(f)), VEIL_EINVAL);
	f[4] = 1;
	f[5] = 1; /* version 257 */
	assert_int_equal(frame(f, sizeof(f)), VEIL_EINVAL);
}

static void test_flags_are_refused(void **state)
{
	(void)state;
	uint8_t f[sizeof(v1)];
	memcpy(f, v1, sizeof(f));
	f[6] = 1;
	assert_int_equal(frame(f, sizeof(f)), VEIL_EINVAL);
}

static void test_every_cut_and_extra_byte_is_refused(void **state)
{
	(void)state;
	for (size_t n = 0; n < sizeof(v1); n++)
		assert_int_equal(frame(v1, n), VEIL_EINVAL);
	uint8_t f[sizeof(v1) + 1];
	memcpy(f, v1, sizeof(v1));
	f[sizeof(v1)] = 0;
	assert_int_equal(frame(f, sizeof(f)), VEIL_EINVAL);
}

static void test_pack_writes_version_1(void **state)
{
	(void)state;
	uint8_t *out = NULL;
	size_t n = 0;
	assert_int_equal(cas_payload_pack((const uint8_t *)"a:1", 3, v1 + 19, 2, &out, &n), 0);
	assert_int_equal(n, sizeof(v1));
	assert_memory_equal(out, v1, sizeof(v1));
	const uint8_t *y, *z;
	size_t ys, zs;
	assert_int_equal(cas_payload_frame(out, n, &y, &ys, &z, &zs), 0);
	assert_int_equal(ys, 3);
	assert_memory_equal(y, "a:1", 3);
	assert_int_equal(zs, 2);
	assert_memory_equal(z, v1 + 19, 2);
	veil_secure_free(out, n);
}

static void test_version_0_frame_still_reads(void **state)
{
	(void)state;
	const uint8_t *v0 = v1 + CAS_PAYLOAD_HEADER_SIZE, *y, *z;
	size_t n0 = sizeof(v1) - CAS_PAYLOAD_HEADER_SIZE, ys, zs;
	assert_int_equal(cas_payload_frame(v0, n0, &y, &ys, &z, &zs), 0);
	assert_int_equal(ys, 3);
	assert_memory_equal(y, "a:1", 3);
	assert_int_equal(zs, 2);
	/* and the empty one the first stores' /readyz probe wrote */
	static const uint8_t empty[] = {0, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(cas_payload_frame(empty, sizeof(empty), &y, &ys, &z, &zs), 0);
	assert_int_equal(ys + zs, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_another_version_is_refused),
	    cmocka_unit_test(test_flags_are_refused),
	    cmocka_unit_test(test_every_cut_and_extra_byte_is_refused),
	    cmocka_unit_test(test_pack_writes_version_1),
	    cmocka_unit_test(test_version_0_frame_still_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
