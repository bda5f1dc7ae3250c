/* libFuzzer: HPKE open (include/veil/hpke.h) and the sealed /v1/attest
 * answer veil-run opens (include/veil/sealed.h), under one fixed P-256 key:
 * the recipient key of RFC 9180's test vector for DHKEM(P-256,
 * HKDF-SHA256), HKDF-SHA256, AES-256-GCM (tests/unit/test_hpke.c). The first
 * byte selects the mode:
 *   0: the rest is enc (65 bytes) || ct, opened with the vector's info and
 *      aad "Count-0"; what opens has a plaintext of ct - 16 bytes and a NUL;
 *   1: the rest is a plaintext: sealed to the key, it opens back to itself;
 *   2: the rest is an answer veil_open_config reads.
 * The seed corpus (tests/fuzz/corpus/hpke) holds the vector's encryption 0
 * (mode 0), which opens. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil/common.h"
#include "veil/hpke.h"
#include "veil/sealed.h"
#include "veil/secrets.h"

static const uint8_t sk_rm[32] = {0x31, 0x7f, 0x91, 0x5d, 0xb7, 0xbc, 0x62, 0x9c, 0x48, 0xfe, 0x76,
				  0x55, 0x87, 0x89, 0x7e, 0x01, 0xe2, 0x82, 0xd3, 0xe8, 0x44, 0x5f,
				  0x79, 0xf2, 0x7f, 0x65, 0xd0, 0x31, 0xa8, 0x80, 0x82, 0xb2};
/* "Ode on a Grecian Urn", "Count-0" */
static const uint8_t info[] = "Ode on a Grecian Urn";
static const uint8_t aad[] = "Count-0";

static EVP_PKEY *fuzz_key(void)
{
	static EVP_PKEY *key;
	if (!key && veil_hpke_p256_key_for_test(sk_rm, &key))
		abort();
	return key;
}

static void open_input(const uint8_t *data, size_t size)
{
	uint8_t *pt = NULL;
	size_t pt_len = 0;
	if (size < VEIL_HPKE_ENC_SIZE)
		return;
	if (veil_hpke_open(fuzz_key(), data, info, sizeof(info) - 1, aad, sizeof(aad) - 1,
			   data + VEIL_HPKE_ENC_SIZE, size - VEIL_HPKE_ENC_SIZE, &pt, &pt_len)) {
		if (pt)
			__builtin_trap(); /* an output set on failure */
		return;
	}
	if (pt_len + VEIL_HPKE_ENC_SIZE + VEIL_HPKE_TAG_SIZE != size || pt[pt_len] != 0)
		__builtin_trap();
	veil_secure_free(pt, pt_len + 1);
}

static void round_trip(const uint8_t *data, size_t size)
{
	uint8_t enc[VEIL_HPKE_ENC_SIZE], *ct = NULL, *pt = NULL;
	size_t ct_len = 0, pt_len = 0;
	if (veil_hpke_seal(fuzz_key(), info, sizeof(info) - 1, aad, sizeof(aad) - 1, data, size,
			   enc, &ct, &ct_len) ||
	    ct_len != size + VEIL_HPKE_TAG_SIZE)
		__builtin_trap();
	if (veil_hpke_open(fuzz_key(), enc, info, sizeof(info) - 1, aad, sizeof(aad) - 1, ct,
			   ct_len, &pt, &pt_len) ||
	    pt_len != size || (size && memcmp(pt, data, size)))
		__builtin_trap();
	veil_secure_free(pt, pt_len + 1);
	free(ct);
}

static void open_answer(const uint8_t *data, size_t size)
{
	uint8_t ev[VEIL_SHA256_SIZE] = {0};
	char *config = NULL;
	size_t config_size = 0;
	if (veil_open_config(fuzz_key(), "ns/svc", ev, (const char *)data, size, &config,
			     &config_size)) {
		if (config)
			__builtin_trap();
		return;
	}
	if (config[config_size] != 0)
		__builtin_trap();
	veil_secure_free(config, config_size + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0:
		open_input(data + 1, size - 1);
		break;
	case 1:
		round_trip(data + 1, size - 1);
		break;
	default:
		open_answer(data + 1, size - 1);
	}
	return 0;
}
