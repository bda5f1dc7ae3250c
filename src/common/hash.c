#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "veil/common.h"

int veil_sha256(const void *data, size_t size, uint8_t out[static VEIL_SHA256_SIZE])
{
	unsigned int len = 0;
	if (!EVP_Digest(data, size, out, &len, EVP_sha256(), NULL) || len != VEIL_SHA256_SIZE)
		return VEIL_EIO;
	return 0;
}

int veil_sha256_file(const char *path, uint8_t out[static VEIL_SHA256_SIZE], struct veil_diags *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		veil_diag(d, "%s: cannot open: %s", path, strerror(errno));
		return errno == ENOENT ? VEIL_ENOENT : VEIL_EIO;
	}
	int rc = veil_sha256_fd(fd, path, out, d);
	close(fd);
	return rc;
}

int veil_sha256_fd(int fd, const char *path, uint8_t out[static VEIL_SHA256_SIZE],
		   struct veil_diags *d)
{
	int rc = VEIL_EIO;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	static __thread uint8_t buf[1 << 16];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			veil_diag(d, "%s: read failed: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
			goto out;
	}
	unsigned int len = 0;
	if (!EVP_DigestFinal_ex(ctx, out, &len) || len != VEIL_SHA256_SIZE)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int veil_unhex(const char *hex, uint8_t *out, size_t size)
{
	if (!hex || strlen(hex) != 2 * size)
		return VEIL_EINVAL;
	for (size_t i = 0; i < 2 * size; i++)
		if (hex_digit(hex[i]) < 0)
			return VEIL_EINVAL;
	for (size_t i = 0; i < size; i++)
		out[i] = (uint8_t)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
	return 0;
}

void veil_hex(const uint8_t *in, size_t size, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < size; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * size] = '\0';
}

int veil_is_sha256_hex(const char *s)
{
	uint8_t scratch[VEIL_SHA256_SIZE];
	return s && !veil_unhex(s, scratch, sizeof(scratch));
}

char *veil_b64_encode(const uint8_t *p, size_t n)
{
	if (n > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	char *s = malloc(4 * ((n + 2) / 3) + 1);
	if (s)
		EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

int veil_b64_decode(const char *s, size_t max, uint8_t **out, size_t *n)
{
	size_t len = s ? strlen(s) : 0;
	*out = NULL;
	*n = 0;
	if (!s || len % 4 || len > (size_t)INT_MAX)
		return VEIL_EINVAL;
	if (len / 4 * 3 > max + 2)
		return VEIL_ELIMIT;
	size_t pad = len && s[len - 1] == '=' ? (len > 1 && s[len - 2] == '=' ? 2 : 1) : 0;
	for (size_t i = 0; i < len - pad; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/'))
			return VEIL_EINVAL;
	}
	uint8_t *b = malloc(len / 4 * 3 + 1);
	if (!b)
		return VEIL_ENOMEM;
	int got = len ? EVP_DecodeBlock(b, (const unsigned char *)s, (int)len) : 0;
	if (got < 0 || (size_t)got < pad || (size_t)got - pad > max) {
		free(b);
		return got < 0 ? VEIL_EINVAL : VEIL_ELIMIT;
	}
	*out = b;
	*n = (size_t)got - pad;
	return 0;
}
