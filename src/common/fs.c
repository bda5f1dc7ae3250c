#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "veil/common.h"

int veil_read_file(const char *path, size_t max_size, char **out, size_t *out_size,
		   struct veil_diags *d)
{
	int rc = VEIL_EIO;
	char *data = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		veil_diag(d, "%s: cannot open: %s", path, strerror(errno));
		return errno == ENOENT ? VEIL_ENOENT : VEIL_EIO;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		veil_diag(d, "%s: cannot stat: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		veil_diag(d, "%s: is a folder, not a file", path);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_size) {
		veil_diag(d, "%s: file is %lld bytes, larger than the limit of %zu bytes", path,
			  (long long)st.st_size, max_size);
		rc = VEIL_ELIMIT;
		goto out;
	}
	size_t cap = 4096, size = 0;
	data = malloc(cap + 1);
	if (!data) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	for (;;) {
		if (size == cap) {
			if (cap > max_size) {
				veil_diag(d, "%s: larger than the limit of %zu bytes", path,
					  max_size);
				rc = VEIL_ELIMIT;
				goto out;
			}
			cap *= 2;
			char *p = realloc(data, cap + 1);
			if (!p) {
				rc = VEIL_ENOMEM;
				goto out;
			}
			data = p;
		}
		ssize_t n = read(fd, data + size, cap - size);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			veil_diag(d, "%s: read failed: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		size += (size_t)n;
	}
	if (size > max_size) {
		veil_diag(d, "%s: larger than the limit of %zu bytes", path, max_size);
		rc = VEIL_ELIMIT;
		goto out;
	}
	data[size] = '\0';
	*out = data;
	*out_size = size;
	data = NULL;
	rc = 0;
out:
	free(data);
	close(fd);
	return rc;
}

/* 0, or VEIL_EIO with errno set. A file system that cannot sync a folder
 * (EINVAL) is not an error: there is nothing more to make durable there. */
static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return VEIL_EIO;
	int rc = fsync(fd) && errno != EINVAL ? VEIL_EIO : 0;
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

static int write_all(int fd, const char *path, const void *data, size_t size, struct veil_diags *d)
{
	const char *p = data;
	size_t left = size;
	while (left) {
		ssize_t n = write(fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			veil_diag(d, "%s: write failed: %s", path, strerror(errno));
			return VEIL_EIO;
		}
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

int veil_write_file_plain(const char *path, const void *data, size_t size, unsigned mode,
			  struct veil_diags *d)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		veil_diag(d, "%s: cannot create: %s", path, strerror(errno));
		return VEIL_EIO;
	}
	int rc = write_all(fd, path, data, size, d);
	if (close(fd) < 0 && !rc) {
		veil_diag(d, "%s: write failed: %s", path, strerror(errno));
		rc = VEIL_EIO;
	}
	return rc;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

int veil_remove_tree(const char *path)
{
	if (access(path, F_OK) < 0)
		return 0;
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) ? VEIL_EIO : 0;
}

int veil_swap_dir(const char *src, const char *dst, struct veil_diags *d)
{
	if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_EXCHANGE) == 0) {
		/* src now holds the old tree; dst is the new one already */
		if (veil_remove_tree(src)) {
			veil_diag(d, "%s: replaced, but the old tree stays at %s", dst, src);
			return VEIL_EIO;
		}
		return 0;
	}
	if (errno != ENOENT) {
		veil_diag(d, "%s: cannot replace: %s", dst, strerror(errno));
		return VEIL_EIO;
	}
	if (rename(src, dst) < 0) { /* no old tree */
		veil_diag(d, "%s: cannot create: %s", dst, strerror(errno));
		return VEIL_EIO;
	}
	return 0;
}

static int write_file(const char *path, const void *data, size_t size, unsigned mode, int sync,
		      struct veil_diags *d)
{
	int rc = VEIL_EIO;
	char *dir = veil_dirname(path);
	struct veil_buf tmp;
	veil_buf_init(&tmp, PATH_MAX);
	veil_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	int fd = -1;
	if (!dir || tmp.failed) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		veil_diag(d, "%s: cannot create: %s", path, strerror(errno));
		goto out;
	}
	if (write_all(fd, path, data, size, d))
		goto out;
	if (sync && fsync(fd) < 0) {
		veil_diag(d, "%s: fsync failed: %s", path, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp.data, path) < 0) {
		veil_diag(d, "%s: rename failed: %s", path, strerror(errno));
		goto out;
	}
	/* the file is in place now; an error here says it may not stay so */
	if (sync && fsync_dir(dir)) {
		veil_diag(d, "%s: cannot sync its folder: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc && tmp.data)
		unlink(tmp.data);
	veil_buf_free(&tmp);
	free(dir);
	return rc;
}

int veil_write_file(const char *path, const void *data, size_t size, unsigned mode,
		    struct veil_diags *d)
{
	return write_file(path, data, size, mode, 1, d);
}

int veil_write_file_nosync(const char *path, const void *data, size_t size, unsigned mode,
			   struct veil_diags *d)
{
	return write_file(path, data, size, mode, 0, d);
}

int veil_sync_fs(const char *path, struct veil_diags *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) < 0) {
		veil_diag(d, "%s: cannot sync to disk: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return VEIL_EIO;
	}
	close(fd);
	return 0;
}

int veil_mkdirs(const char *path, unsigned mode, struct veil_diags *d)
{
	char *p = strdup(path);
	if (!p)
		return VEIL_ENOMEM;
	size_t len = strlen(p);
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			veil_diag(d, "%s: cannot create folder: %s", p, strerror(errno));
			free(p);
			return VEIL_EIO;
		}
		p[i] = c;
	}
	free(p);
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		veil_diag(d, "%s: not a folder", path);
		return VEIL_EIO;
	}
	return 0;
}

char *veil_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

char *veil_path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);
	if (!s)
		return NULL;
	memcpy(s, a, la);
	size_t n = la;
	if (la && a[la - 1] != '/')
		s[n++] = '/';
	memcpy(s + n, b, lb + 1);
	return s;
}

char *veil_self_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return veil_dirname(buf);
}
