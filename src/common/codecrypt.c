/* Encrypted code files (see codecrypt.h). */
#include "veil/codecrypt.h"
#include "veil/common.h"
#include "veil/secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#define MAGIC_SIZE 8
#define NONCE_SIZE 12
#define TAG_SIZE 16

int veil_code_key_id_valid(const char *s)
{
	size_t n = 0;
	for (; s && s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return s && n == VEIL_CODE_KEY_ID_HEX;
}

/* "veil-code-v1\0" path "\0" size(8, big-endian) */
static uint8_t *make_aad(const char *path, size_t size, size_t *len)
{
	static const char label[] = "veil-code-v1";
	size_t pl = strlen(path);
	uint8_t *a = malloc(sizeof(label) + pl + 1 + 8);
	if (!a)
		return NULL;
	memcpy(a, label, sizeof(label));
	memcpy(a + sizeof(label), path, pl + 1);
	uint8_t *s = a + sizeof(label) + pl + 1;
	for (int i = 7; i >= 0; i--, size >>= 8)
		s[i] = (uint8_t)(size & 0xff);
	*len = sizeof(label) + pl + 1 + 8;
	return a;
}

static int make_nonce(const uint8_t *key, const char *path, const uint8_t *plain, size_t size,
		      uint8_t nonce[static NONCE_SIZE])
{
	static const char label[] = "veil-code-nonce-v1";
	uint8_t mac[EVP_MAX_MD_SIZE], nkey[32];
	unsigned nlen = 0;
	/* a key of its own for the nonce: HMAC(key, label) */
	if (!HMAC(EVP_sha256(), key, VEIL_CODE_KEY_SIZE, (const uint8_t *)label, sizeof(label),
		  nkey, &nlen) ||
	    nlen != sizeof(nkey))
		return VEIL_EIO;
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
			       OSSL_PARAM_construct_end()};
	size_t outl = 0;
	int ok = c && EVP_MAC_init(c, nkey, sizeof(nkey), params) &&
		 EVP_MAC_update(c, (const uint8_t *)label, sizeof(label)) &&
		 EVP_MAC_update(c, (const uint8_t *)path, strlen(path) + 1) &&
		 (!size || EVP_MAC_update(c, plain, size)) &&
		 EVP_MAC_final(c, mac, &outl, sizeof(mac)) && outl >= NONCE_SIZE;
	if (ok)
		memcpy(nonce, mac, NONCE_SIZE);
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(nkey, sizeof(nkey));
	EVP_MAC_CTX_free(c);
	EVP_MAC_free(m);
	return ok ? 0 : VEIL_EIO;
}

int veil_code_encrypt(const uint8_t key[static VEIL_CODE_KEY_SIZE], const char *path,
		      const uint8_t *plain, size_t size, uint8_t **out, size_t *out_size)
{
	if (size > VEIL_CODE_MAX_SIZE)
		return VEIL_ELIMIT;
	size_t alen = 0;
	uint8_t *aad = make_aad(path, size, &alen);
	uint8_t *buf = malloc(size + VEIL_CODE_OVERHEAD);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int rc = aad && buf && ctx ? 0 : VEIL_ENOMEM, n = 0, m = 0;
	uint8_t *nonce = NULL, *ct = NULL;
	if (!rc) {
		nonce = buf + MAGIC_SIZE;
		ct = nonce + NONCE_SIZE;
		memcpy(buf, VEIL_CODE_MAGIC, MAGIC_SIZE);
		rc = make_nonce(key, path, plain, size, nonce);
	}
	if (!rc && (!EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) ||
		    !EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)alen) ||
		    (size && !EVP_EncryptUpdate(ctx, ct, &n, plain, (int)size)) ||
		    !EVP_EncryptFinal_ex(ctx, ct + (size ? n : 0), &m) ||
		    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, ct + size)))
		rc = VEIL_EIO;
	EVP_CIPHER_CTX_free(ctx);
	free(aad);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*out_size = size + VEIL_CODE_OVERHEAD;
	return 0;
}

int veil_code_decrypt(const uint8_t key[static VEIL_CODE_KEY_SIZE], const char *path,
		      const uint8_t *in, size_t in_size, uint8_t **out, size_t *out_size, char *why,
		      size_t cap)
{
	/* not secret: the file magic */
	if (in_size < VEIL_CODE_OVERHEAD || memcmp(in, VEIL_CODE_MAGIC, MAGIC_SIZE)) {
		snprintf(why, cap, "%.200s is not a veil-encrypted file (no %s header)", path,
			 VEIL_CODE_MAGIC);
		return VEIL_EINVAL;
	}
	size_t size = in_size - VEIL_CODE_OVERHEAD;
	if (size > VEIL_CODE_MAX_SIZE) {
		snprintf(why, cap, "%.200s: larger than %zu MiB", path, VEIL_CODE_MAX_SIZE >> 20);
		return VEIL_EINVAL;
	}
	const uint8_t *nonce = in + MAGIC_SIZE, *ct = nonce + NONCE_SIZE, *tag = ct + size;
	size_t alen = 0;
	uint8_t *aad = make_aad(path, size, &alen);
	uint8_t *buf = veil_secure_alloc(size + 1);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int rc = aad && buf && ctx ? 0 : VEIL_ENOMEM, n = 0, m = 0;
	if (!rc && (!EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) ||
		    !EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)alen) ||
		    (size && !EVP_DecryptUpdate(ctx, buf, &n, ct, (int)size)) ||
		    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, (void *)tag) ||
		    EVP_DecryptFinal_ex(ctx, buf + (size ? n : 0), &m) != 1)) {
		snprintf(why, cap,
			 "%.200s does not decrypt: it was changed, moved, or encrypted under "
			 "another code key",
			 path);
		rc = VEIL_EINVAL;
	} else if (rc) {
		snprintf(why, cap, "%.200s: out of memory", path);
	}
	EVP_CIPHER_CTX_free(ctx);
	free(aad);
	if (rc) {
		if (buf)
			veil_secure_free(buf, size + 1);
		return rc;
	}
	buf[size] = 0;
	*out = buf;
	*out_size = size;
	return 0;
}
