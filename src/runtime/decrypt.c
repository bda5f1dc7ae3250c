/* Encrypted code files (see decrypt.h). */
#include "decrypt.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "veil/codecrypt.h"
#include "veil/common.h"
#include "veil/secrets.h"

#define MAX_FILES 256

/* The whole file, as one regular file read through one descriptor. */
static int read_ciphertext(const char *path, uint8_t **out, size_t *size, char *why, size_t cap)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0)
		return rt_failf(why, cap, "encrypted file %.200s: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > VEIL_CODE_MAX_SIZE + VEIL_CODE_OVERHEAD) {
		close(fd);
		return rt_failf(why, cap,
				"encrypted file %.200s is not a regular file of at most "
				"64 MiB",
				path);
	}
	size_t n = (size_t)st.st_size, got = 0;
	uint8_t *buf = malloc(n + 1);
	while (buf && got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!buf || got != n) {
		free(buf);
		return rt_failf(why, cap, "encrypted file %.200s: cannot read it", path);
	}
	*out = buf;
	*size = n;
	return 0;
}

int decrypt_code(json_t *dec, struct decrypted **out, size_t *n, char *why, size_t cap)
{
	*out = NULL;
	*n = 0;
	if (!dec)
		return 0;
	const char *khex = NULL;
	json_t *files = NULL;
	uint8_t key[VEIL_CODE_KEY_SIZE];
	if (json_unpack(dec, "{s:s, s:o}", "key", &khex, "files", &files) ||
	    !json_is_array(files) || json_array_size(files) > MAX_FILES ||
	    veil_unhex(khex, key, sizeof(key)))
		return rt_failf(why, cap, "malformed code key from the CAS");
	size_t count = json_array_size(files);
	/* the budget of the injection files' memory, checked before anything
	 * is read (inject_files checks it again with the policy's files) */
	uint64_t total = 0;
	for (size_t i = 0; i < count; i++) {
		const char *path = json_string_value(json_array_get(files, i));
		struct stat st;
		if (path && !lstat(path, &st) && S_ISREG(st.st_mode))
			total += (uint64_t)st.st_size;
	}
	if (total > VEIL_CODE_MAX_SIZE + count * (uint64_t)VEIL_CODE_OVERHEAD) {
		OPENSSL_cleanse(key, sizeof(key));
		return rt_failf(why, cap, "the encrypted files exceed %zu MiB in total",
				VEIL_CODE_MAX_SIZE >> 20);
	}
	struct decrypted *d = calloc(count + 1, sizeof(*d));
	int rc = d ? 0 : rt_failf(why, cap, "out of memory");
	for (size_t i = 0; !rc && i < count; i++) {
		const char *path = json_string_value(json_array_get(files, i));
		uint8_t *ct = NULL;
		size_t csize = 0;
		if (!path || path[0] != '/') {
			rc = rt_failf(why, cap, "malformed encrypted file list from the CAS");
			break;
		}
		if ((rc = read_ciphertext(path, &ct, &csize, why, cap)))
			break;
		d[i].path = path;
		if (veil_code_decrypt(key, path, ct, csize, &d[i].data, &d[i].size, why, cap))
			rc = VEIL_EINVAL;
		free(ct);
		*n = i + 1;
	}
	OPENSSL_cleanse(key, sizeof(key));
	if (rc) {
		decrypted_free(d, *n);
		*n = 0;
		return VEIL_EINVAL;
	}
	*out = d;
	*n = count;
	return 0;
}

void decrypted_free(struct decrypted *d, size_t n)
{
	for (size_t i = 0; d && i < n; i++)
		if (d[i].data)
			veil_secure_free(d[i].data, d[i].size + 1);
	free(d);
}
