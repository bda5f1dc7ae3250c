/* libFuzzer: encrypted code files (include/veil/codecrypt.h), which veil-run
 * reads from the image. The first byte selects the mode:
 *   even: the rest is a file veil-run decrypts under a fixed key and path;
 *         what decrypts re-encrypts to the same bytes (the nonce is derived,
 *         so only an encryption under that key and path can get there);
 *   odd:  the rest is a plaintext; it encrypts and decrypts back to itself.
 * The seed corpus (tests/fuzz/corpus/codecrypt) holds an encryption made
 * under fuzz_key and fuzz_path below: change either and remake it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil/codecrypt.h"
#include "veil/secrets.h"
#include "fuzzer.h"

static const char fuzz_path[] = "/app/fuzz.py";

static void fuzz_key(uint8_t key[static VEIL_CODE_KEY_SIZE])
{
	for (int i = 0; i < VEIL_CODE_KEY_SIZE; i++)
		key[i] = (uint8_t)i; /* 00 01 .. 1f */
}

static void decrypt_input(const uint8_t *key, const uint8_t *data, size_t size)
{
	uint8_t *plain = NULL, *again = NULL;
	size_t plain_size = 0, again_size = 0;
	char why[300];
	memset(why, 'x', sizeof(why));
	if (veil_code_decrypt(key, fuzz_path, data, size, &plain, &plain_size, why, sizeof(why))) {
		if (!memchr(why, '\0', sizeof(why)))
			__builtin_trap(); /* an unterminated reason */
		return;
	}
	if (plain_size + VEIL_CODE_OVERHEAD != size || plain[plain_size] != 0)
		__builtin_trap();
	if (veil_code_encrypt(key, fuzz_path, plain, plain_size, &again, &again_size) ||
	    again_size != size || memcmp(again, data, size))
		__builtin_trap(); /* decrypted, but not what encrypt makes */
	free(again);
	veil_secure_free(plain, plain_size + 1);
}

static void round_trip(const uint8_t *key, const uint8_t *data, size_t size)
{
	uint8_t *enc = NULL, *plain = NULL;
	size_t enc_size = 0, plain_size = 0;
	char why[300];
	if (veil_code_encrypt(key, fuzz_path, data, size, &enc, &enc_size) ||
	    enc_size != size + VEIL_CODE_OVERHEAD ||
	    memcmp(enc, VEIL_CODE_MAGIC, strlen(VEIL_CODE_MAGIC)))
		__builtin_trap();
	if (veil_code_decrypt(key, fuzz_path, enc, enc_size, &plain, &plain_size, why,
			      sizeof(why)) ||
	    plain_size != size || (size && memcmp(plain, data, size)) || plain[size] != 0)
		__builtin_trap();
	veil_secure_free(plain, plain_size + 1);
	free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[VEIL_CODE_KEY_SIZE];
	if (!size)
		return 0;
	fuzz_key(key);
	if (data[0] & 1)
		round_trip(key, data + 1, size - 1);
	else
		decrypt_input(key, data + 1, size - 1);
	return 0;
}
