/* Encrypted code files (src/common/codecrypt.c) and the CAS's code key
 * derivation (veil_vault_code_key in src/cas/vault.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "veil/codecrypt.h"
#include "veil/common.h"
#include "veil/secrets.h"
#include "veil/store.h"

#define NONCE_AT 8
#define NONCE_SIZE 12
#define CT_AT (NONCE_AT + NONCE_SIZE)
#define TAG_SIZE 16

static const char code_path[] = "/app/secret_model.py";
/* a plaintext marker no refusal may ever repeat */
static const char marker[] = "PLAINTEXT-MARKER-7f3a";

static void fill_key(uint8_t key[static VEIL_CODE_KEY_SIZE], uint8_t seed)
{
	for (int i = 0; i < VEIL_CODE_KEY_SIZE; i++)
		key[i] = (uint8_t)(seed + 31 * i);
}

static void fill_plain(uint8_t *p, size_t size)
{
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static void test_round_trip_for_each_size(void **state)
{
	(void)state;
	static const size_t sizes[] = {0, 1, 15, 16, 17, 4096, 1 << 20};
	uint8_t key[VEIL_CODE_KEY_SIZE];
	fill_key(key, 1);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t size = sizes[k];
		uint8_t *plain = malloc(size ? size : 1);
		assert_non_null(plain);
		fill_plain(plain, size);
		uint8_t *enc = NULL;
		size_t enc_size = 0;
		assert_int_equal(veil_code_encrypt(key, code_path, plain, size, &enc, &enc_size),
				 0);
		assert_int_equal(enc_size, size + VEIL_CODE_OVERHEAD);
		assert_memory_equal(enc, VEIL_CODE_MAGIC, 8);
		if (size >= 16) /* the ciphertext is not the plaintext */
			assert_memory_not_equal(enc + CT_AT, plain, size);

		uint8_t *out = NULL;
		size_t out_size = 12345;
		char why[256] = "";
		assert_int_equal(veil_code_decrypt(key, code_path, enc, enc_size, &out, &out_size,
						   why, sizeof(why)),
				 0);
		assert_non_null(out);
		assert_int_equal(out_size, size);
		if (size)
			assert_memory_equal(out, plain, size);
		assert_int_equal(out[size], 0);
		veil_secure_free(out, size + 1);
		free(enc);
		free(plain);
	}
}

static void encrypt_text(const uint8_t *key, const char *path, const char *text, uint8_t **enc,
			 size_t *enc_size)
{
	assert_int_equal(
	    veil_code_encrypt(key, path, (const uint8_t *)text, strlen(text), enc, enc_size), 0);
}

static void test_same_input_gives_same_bytes_and_nonce_follows_path_and_content(void **state)
{
	(void)state;
	uint8_t key[VEIL_CODE_KEY_SIZE];
	fill_key(key, 2);
	const char *text = "print('hello')\n";
	uint8_t *a = NULL, *b = NULL, *c = NULL, *d = NULL;
	size_t as = 0, bs = 0, cs = 0, ds = 0;
	encrypt_text(key, code_path, text, &a, &as);
	encrypt_text(key, code_path, text, &b, &bs);
	assert_int_equal(as, bs);
	assert_memory_equal(a, b, as);

	/* one character changed: another nonce */
	encrypt_text(key, code_path, "print('hellp')\n", &c, &cs);
	assert_int_equal(cs, as);
	assert_memory_not_equal(a + NONCE_AT, c + NONCE_AT, NONCE_SIZE);

	/* the same file at another path: another nonce */
	encrypt_text(key, "/app/other.py", text, &d, &ds);
	assert_int_equal(ds, as);
	assert_memory_not_equal(a + NONCE_AT, d + NONCE_AT, NONCE_SIZE);
	assert_memory_not_equal(c + NONCE_AT, d + NONCE_AT, NONCE_SIZE);

	/* another key: another nonce and other bytes */
	uint8_t key2[VEIL_CODE_KEY_SIZE];
	fill_key(key2, 3);
	free(b);
	encrypt_text(key2, code_path, text, &b, &bs);
	assert_memory_not_equal(a + NONCE_AT, b + NONCE_AT, NONCE_SIZE);
	assert_memory_not_equal(a + CT_AT, b + CT_AT, as - CT_AT);
	free(a);
	free(b);
	free(c);
	free(d);
}

/* decrypt must refuse with VEIL_EINVAL, leave the outputs alone, name the
 * path and hold no plaintext; returns the reason for more checks */
static const char *assert_refused(const uint8_t *key, const char *path, const uint8_t *in,
				  size_t in_size)
{
	static char why[512];
	memset(why, 'x', sizeof(why));
	uint8_t sentinel = 0;
	uint8_t *out = &sentinel;
	size_t out_size = 777;
	assert_int_equal(
	    veil_code_decrypt(key, path, in, in_size, &out, &out_size, why, sizeof(why)),
	    VEIL_EINVAL);
	assert_ptr_equal(out, &sentinel);
	assert_int_equal(out_size, 777);
	assert_non_null(memchr(why, '\0', sizeof(why)));
	assert_non_null(strstr(why, path));
	assert_null(strstr(why, marker));
	return why;
}

static void assert_not_authentic(const uint8_t *key, const char *path, const uint8_t *in,
				 size_t in_size)
{
	const char *why = assert_refused(key, path, in, in_size);
	assert_non_null(strstr(why, "does not decrypt"));
}

static void test_changed_moved_or_foreign_file_refused_without_plaintext(void **state)
{
	(void)state;
	uint8_t key[VEIL_CODE_KEY_SIZE], other_key[VEIL_CODE_KEY_SIZE];
	fill_key(key, 4);
	fill_key(other_key, 5);
	char text[128];
	snprintf(text, sizeof(text), "API_TOKEN = '%s'\nprint(API_TOKEN)\n", marker);
	uint8_t *enc = NULL;
	size_t es = 0;
	encrypt_text(key, code_path, text, &enc, &es);
	uint8_t *copy = malloc(es + 1);
	assert_non_null(copy);

	/* wrong key */
	assert_not_authentic(other_key, code_path, enc, es);
	/* the file moved to another path */
	assert_not_authentic(key, "/app/moved.py", enc, es);

	/* one flipped bit in the first and last nonce byte, the first, middle and last ciphertext
	 * byte, the first and last tag byte */
	const size_t flips[] = {NONCE_AT,
				NONCE_AT + NONCE_SIZE - 1,
				CT_AT,
				CT_AT + (es - VEIL_CODE_OVERHEAD) / 2,
				es - TAG_SIZE - 1,
				es - TAG_SIZE,
				es - 1};
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		memcpy(copy, enc, es);
		copy[flips[i]] ^= 0x01;
		assert_not_authentic(key, code_path, copy, es);
	}

	/* cut by one byte, one byte appended */
	memcpy(copy, enc, es);
	assert_not_authentic(key, code_path, copy, es - 1);
	copy[es] = 0;
	assert_not_authentic(key, code_path, copy, es + 1);
	/* the untouched file still decrypts (the refusals above were not luck) */
	uint8_t *out = NULL;
	size_t os = 0;
	char why[256];
	assert_int_equal(veil_code_decrypt(key, code_path, enc, es, &out, &os, why, sizeof(why)),
			 0);
	assert_string_equal((const char *)out, text);
	veil_secure_free(out, os + 1);
	free(copy);
	free(enc);
}

static void test_no_magic_or_short_input_is_not_a_veil_file(void **state)
{
	(void)state;
	uint8_t key[VEIL_CODE_KEY_SIZE];
	fill_key(key, 6);
	uint8_t *enc = NULL;
	size_t es = 0;
	encrypt_text(key, code_path, marker, &enc, &es);

	/* another magic at full length */
	uint8_t *copy = malloc(es);
	assert_non_null(copy);
	memcpy(copy, enc, es);
	copy[7] = '2'; /* "VEILENC2" */
	assert_non_null(
	    strstr(assert_refused(key, code_path, copy, es), "not a veil-encrypted file"));
	/* a plaintext file that happens to be long enough */
	char plain_file[128];
	snprintf(plain_file, sizeof(plain_file), "#!/usr/bin/env python3\n# %s\n", marker);
	assert_non_null(
	    strstr(assert_refused(key, code_path, (const uint8_t *)plain_file, strlen(plain_file)),
		   "not a veil-encrypted file"));

	/* the magic, but shorter than magic + nonce + tag (36 bytes), down to
	 * nothing (an ASan build sees any read past the end) */
	assert_int_equal(VEIL_CODE_OVERHEAD, 36);
	for (size_t n = 0; n < VEIL_CODE_OVERHEAD; n++) {
		uint8_t *shortin = malloc(n ? n : 1);
		assert_non_null(shortin);
		memcpy(shortin, enc, n);
		assert_non_null(strstr(assert_refused(key, code_path, shortin, n),
				       "not a veil-encrypted file"));
		free(shortin);
	}
	/* exactly 36 bytes with the magic is the empty file's size: not authentic */
	assert_not_authentic(key, code_path, enc, VEIL_CODE_OVERHEAD);
	free(copy);
	free(enc);
}

static void test_oversized_plaintext_refused_before_allocating(void **state)
{
	(void)state;
	/* A small buffer with a huge size: veil_code_encrypt checks the size
	 * before it allocates, hashes or reads (its first statement), so this
	 * reads none of the 16 bytes past VEIL_CODE_MAX_SIZE. */
	uint8_t key[VEIL_CODE_KEY_SIZE];
	fill_key(key, 7);
	uint8_t small[16] = {0};
	uint8_t sentinel = 0;
	uint8_t *out = &sentinel;
	size_t out_size = 777;
	assert_int_equal(
	    veil_code_encrypt(key, code_path, small, VEIL_CODE_MAX_SIZE + 1, &out, &out_size),
	    VEIL_ELIMIT);
	assert_int_equal(veil_code_encrypt(key, code_path, small, SIZE_MAX, &out, &out_size),
			 VEIL_ELIMIT);
	assert_int_equal(veil_code_encrypt(key, code_path, small, SIZE_MAX - VEIL_CODE_OVERHEAD + 1,
					   &out, &out_size),
			 VEIL_ELIMIT);
	assert_ptr_equal(out, &sentinel);
	assert_int_equal(out_size, 777);
}

static void test_oversized_file_refused_before_reading_it(void **state)
{
	(void)state;
	/* The same for decrypt: a header that claims more than
	 * VEIL_CODE_MAX_SIZE of ciphertext is refused after reading the magic
	 * and nothing else of the 36 bytes given. */
	uint8_t key[VEIL_CODE_KEY_SIZE];
	fill_key(key, 8);
	uint8_t head[VEIL_CODE_OVERHEAD] = VEIL_CODE_MAGIC;
	const char *why =
	    assert_refused(key, code_path, head, VEIL_CODE_MAX_SIZE + VEIL_CODE_OVERHEAD + 1);
	assert_non_null(strstr(why, "larger than 64 MiB"));
}

static void test_key_id_is_32_lower_hex_digits(void **state)
{
	(void)state;
	assert_true(veil_code_key_id_valid("0123456789abcdef0123456789abcdef"));
	assert_true(veil_code_key_id_valid("ffffffffffffffffffffffffffffffff"));
	assert_false(veil_code_key_id_valid("0123456789abcdef0123456789abcde"));   /* 31 */
	assert_false(veil_code_key_id_valid("0123456789abcdef0123456789abcdef0")); /* 33 */
	assert_false(veil_code_key_id_valid("0123456789ABCDEF0123456789abcdef"));
	assert_false(veil_code_key_id_valid("0123456789abcdef0123456789abcdeg"));
	assert_false(veil_code_key_id_valid("0123456789abcdef 123456789abcdef"));
	assert_false(veil_code_key_id_valid("../../../../../../../../etc/pass"));
	assert_false(veil_code_key_id_valid(""));
	assert_false(veil_code_key_id_valid(NULL));
}

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/veil-codecrypt-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(veil_remove_tree(dir), 0);
	return 0;
}

static struct veil_vault *open_vault(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct veil_vault *v = NULL;
	struct veil_diags d;
	veil_diags_init(&d);
	assert_int_equal(veil_vault_open_file(path, access(path, F_OK) != 0, &v, &d), 0);
	veil_diags_free(&d);
	return v;
}

static void test_code_key_follows_master_id_and_owner(void **state)
{
	(void)state;
	const char *id = "00112233445566778899aabbccddeeff";
	const char *id2 = "00112233445566778899aabbccddeef0";
	const char *owner = "owner-key-hash-1", *owner2 = "owner-key-hash-2";
	static const uint8_t zero[32];
	uint8_t k1[32], k2[32], k3[32], k4[32], k5[32], k6[32];

	struct veil_vault *v = open_vault("master.key");
	assert_int_equal(veil_vault_code_key(v, id, owner, k1), 0);
	assert_int_equal(veil_vault_code_key(v, id, owner, k2), 0);
	assert_memory_equal(k1, k2, 32);
	assert_memory_not_equal(k1, zero, 32);
	assert_int_equal(veil_vault_code_key(v, id, owner2, k3), 0);
	assert_memory_not_equal(k1, k3, 32);
	assert_int_equal(veil_vault_code_key(v, id2, owner, k4), 0);
	assert_memory_not_equal(k1, k4, 32);
	assert_memory_not_equal(k3, k4, 32);
	veil_vault_close(v);

	/* the same master key file reopened: the same key (nothing is stored) */
	v = open_vault("master.key");
	assert_int_equal(veil_vault_code_key(v, id, owner, k5), 0);
	assert_memory_equal(k1, k5, 32);
	veil_vault_close(v);

	/* another vault (a new master key): another key */
	v = open_vault("other-master.key");
	assert_int_equal(veil_vault_code_key(v, id, owner, k6), 0);
	assert_memory_not_equal(k1, k6, 32);
	assert_memory_not_equal(k6, zero, 32);
	veil_vault_close(v);

	/* a key from the vault encrypts and decrypts; a sibling key refuses */
	uint8_t *enc = NULL, *out = NULL;
	size_t es = 0, os = 0;
	char why[256];
	encrypt_text(k1, code_path, marker, &enc, &es);
	assert_int_equal(veil_code_decrypt(k5, code_path, enc, es, &out, &os, why, sizeof(why)), 0);
	veil_secure_free(out, os + 1);
	assert_not_authentic(k3, code_path, enc, es);
	assert_not_authentic(k6, code_path, enc, es);
	free(enc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_for_each_size),
	    cmocka_unit_test(test_same_input_gives_same_bytes_and_nonce_follows_path_and_content),
	    cmocka_unit_test(test_changed_moved_or_foreign_file_refused_without_plaintext),
	    cmocka_unit_test(test_no_magic_or_short_input_is_not_a_veil_file),
	    cmocka_unit_test(test_oversized_plaintext_refused_before_allocating),
	    cmocka_unit_test(test_oversized_file_refused_before_reading_it),
	    cmocka_unit_test(test_key_id_is_32_lower_hex_digits),
	    cmocka_unit_test_setup_teardown(test_code_key_follows_master_id_and_owner, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
