/* libFuzzer: the recovery share formats (include/veil/recovery_share.h) and
 * Shamir combination (include/veil/shamir.h). The first byte selects the
 * mode:
 *   0: the rest is a share file; what parses has valid metadata and is
 *      opened with one fixed P-256 key (RFC 9180's recipient key of
 *      DHKEM(P-256), as in fuzz_hpke.c): a share opens to 32 bytes or the
 *      output stays untouched;
 *   1: the rest is an opened share; what parses formats back to exactly
 *      the input (the format has one spelling);
 *   2: the rest is count (1 byte), size (1 byte), then count x's and count
 *      shares of size bytes: combine either refuses or gives size bytes.
 * The seed corpus (tests/fuzz/corpus/shamir) holds a share file sealed to
 * the fixed key (it opens) and an opened share. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzer.h"
#include "veil/common.h"
#include "veil/hpke.h"
#include "veil/recovery_share.h"
#include "veil/shamir.h"

static const uint8_t sk_rm[32] = {0x31, 0x7f, 0x91, 0x5d, 0xb7, 0xbc, 0x62, 0x9c, 0x48, 0xfe, 0x76,
				  0x55, 0x87, 0x89, 0x7e, 0x01, 0xe2, 0x82, 0xd3, 0xe8, 0x44, 0x5f,
				  0x79, 0xf2, 0x7f, 0x65, 0xd0, 0x31, 0xa8, 0x80, 0x82, 0xb2};

static EVP_PKEY *fuzz_key(void)
{
	static EVP_PKEY *key;
	if (!key && veil_hpke_p256_key_for_test(sk_rm, &key))
		abort();
	return key;
}

static void share_file(const uint8_t *data, size_t size)
{
	struct veil_recovery_share_file f;
	uint8_t share[VEIL_RECOVERY_SECRET_SIZE], untouched[VEIL_RECOVERY_SECRET_SIZE];
	char why[200];
	if (veil_recovery_share_parse((const char *)data, size, &f, why, sizeof(why)))
		return;
	if (!veil_recovery_meta_valid(&f.meta))
		__builtin_trap();
	memset(share, 0xa5, sizeof(share));
	memset(untouched, 0xa5, sizeof(untouched));
	if (veil_recovery_share_open(fuzz_key(), &f, share)) {
		/* wiped or untouched: never a partial plaintext */
		for (size_t i = 0; i < sizeof(share); i++)
			if (share[i] != 0 && share[i] != 0xa5)
				__builtin_trap();
	}
}

static void opened_share(const uint8_t *data, size_t size)
{
	struct veil_recovery_meta meta;
	uint8_t share[VEIL_RECOVERY_SECRET_SIZE];
	char why[200], back[VEIL_RECOVERY_OPENED_MAX];
	size_t back_size = 0;
	if (veil_recovery_opened_parse((const char *)data, size, &meta, share, why, sizeof(why)))
		return;
	if (veil_recovery_opened_format(&meta, share, back, sizeof(back), &back_size) ||
	    back_size != size || memcmp(back, data, size))
		__builtin_trap();
}

static void combine(const uint8_t *data, size_t size)
{
	if (size < 2)
		return;
	size_t count = data[0], len = data[1];
	const uint8_t *xs = data + 2, *rest = data + 2 + count;
	const uint8_t *ys[255];
	uint8_t out[255];
	if (!len || size < 2 + count + count * len)
		return;
	for (size_t i = 0; i < count; i++)
		ys[i] = rest + i * len;
	int rc = veil_shamir_combine(xs, ys, count, len, out);
	/* any K shares give the value again: with one more point taken from
	 * the interpolated polynomial itself nothing changes */
	if (!rc && count >= 2 && count < 255) {
		uint8_t x = 0, *extra = malloc(len), again[255], xs2[255];
		const uint8_t *ys2[255];
		for (unsigned c = 1; c < 256 && !x; c++)
			if (!memchr(xs, (int)c, count))
				x = (uint8_t)c;
		if (!extra || veil_shamir_interpolate(xs, ys, count, len, x, extra))
			__builtin_trap();
		memcpy(xs2, xs, count);
		memcpy(ys2, ys, count * sizeof(*ys));
		xs2[count] = x;
		ys2[count] = extra;
		if (veil_shamir_combine(xs2, ys2, count + 1, len, again) || memcmp(again, out, len))
			__builtin_trap();
		free(extra);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0:
		share_file(data + 1, size - 1);
		break;
	case 1:
		opened_share(data + 1, size - 1);
		break;
	default:
		combine(data + 1, size - 1);
	}
	return 0;
}
