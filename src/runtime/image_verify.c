/* veil-run's whole-image check (image_verify.h). Each entry is opened
 * beneath the root with no symbolic link followed on the way (openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so a path resolves to the entry the
 * record names or fails. Files are hashed with OpenSSL's SHA-256 from 1 MiB
 * reads; workers take entries in batches from one atomic index, and the
 * difference reported is the first in path order, whatever the threads'
 * timing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "image_verify.h"
#include "veil/image_record.h"

#define VERIFY_MAX_THREADS 16
#define VERIFY_BATCH 8
#define VERIFY_READ_SIZE (1u << 20)

struct image_check {
	struct veil_image_record rec;
	int root_fd;
	EVP_MD *sha256; /* fetched once: an implicit fetch per file costs a lock */
	unsigned nthreads;
	pthread_t threads[VERIFY_MAX_THREADS];
	atomic_size_t next;
	atomic_uint_fast64_t bytes;
	pthread_mutex_t lock;
	size_t first_bad; /* rec.count: none */
	char why[1200];
};

static int open_beneath(int root_fd, const char *path, int flags)
{
	const char *rel = path[1] ? path + 1 : ".";
	/* openat2 refuses O_PATH with any flag but these */
	flags |= O_CLOEXEC | O_NOFOLLOW | (flags & O_PATH ? 0 : O_NOCTTY);
	struct open_how how = {
	    .flags = (uint64_t)flags,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS) /* before Linux 5.6: the last component only */
		fd = openat(root_fd, rel, flags);
	return (int)fd;
}

static void report(struct image_check *c, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(struct image_check *c, size_t i, const char *fmt, ...)
{
	pthread_mutex_lock(&c->lock);
	if (i < c->first_bad) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->why, sizeof(c->why), fmt, ap);
		va_end(ap);
		c->first_bad = i;
	}
	pthread_mutex_unlock(&c->lock);
}

static int excluded(const struct image_check *c, const char *path)
{
	size_t lo = 0, hi = c->rec.count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(c->rec.entries[mid].path, path);
		if (!r)
			return c->rec.entries[mid].kind == VEIL_IMAGE_EXCLUDED;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_dir(struct image_check *c, size_t i)
{
	const struct veil_image_entry *e = &c->rec.entries[i];
	int fd = open_beneath(c->root_fd, e->path, O_RDONLY | O_DIRECTORY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		report(c, i, "image folder %s: %s", e->path,
		       errno == ENOTDIR || errno == ELOOP ? "not a folder" : strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	/* the root's own mode is the runtime's (a bundle's rootfs folder) */
	if (strcmp(e->path, "/") && (st.st_mode & 07777) != e->mode) {
		report(c, i, "image folder %s: mode %04o, measured %04o", e->path,
		       (unsigned)(st.st_mode & 07777), e->mode);
		close(fd);
		return;
	}
	DIR *d = fdopendir(fd);
	char **names = NULL, path[VEIL_IMAGE_RECORD_MAX_PATH + 2];
	size_t n = 0, cap = 0;
	int failed = !d;
	for (struct dirent *de; !failed && (errno = 0, de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", strcmp(e->path, "/") ? e->path : "",
			     de->d_name) >= (int)sizeof(path)) {
			failed = 1;
			break;
		}
		if (excluded(c, path))
			continue;
		if (n == cap) {
			char **g = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));
			failed = !g;
			names = g ? g : names;
		}
		if (!failed && !(names[n++] = strdup(de->d_name)))
			failed = 1;
	}
	if (!failed && errno)
		failed = 1;
	uint8_t h[VEIL_SHA256_SIZE];
	if (failed) {
		report(c, i, "image folder %s: cannot list it", e->path);
	} else {
		qsort(names, n, sizeof(*names), by_name);
		veil_image_listing_sha256((const char *const *)names, n, h);
		if (CRYPTO_memcmp(h, e->sha256, sizeof(h)))
			report(c, i,
			       "image folder %s: its entries differ from the image's measurement "
			       "(a file added, removed or renamed)",
			       e->path);
	}
	for (size_t k = 0; k < n; k++)
		free(names[k]);
	free(names);
	if (d)
		closedir(d);
	else
		close(fd);
}

static void check_file(struct image_check *c, size_t i, uint8_t *buf, EVP_MD_CTX *ctx)
{
	const struct veil_image_entry *e = &c->rec.entries[i];
	int fd = open_beneath(c->root_fd, e->path, O_RDONLY | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		report(c, i, "image file %s: %s", e->path,
		       fd < 0 && errno != ELOOP ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return;
	}
	if ((st.st_mode & 07777) != e->mode) {
		report(c, i, "image file %s: mode %04o, measured %04o", e->path,
		       (unsigned)(st.st_mode & 07777), e->mode);
		close(fd);
		return;
	}
	if ((uint64_t)st.st_size != e->size) {
		report(c, i, "image file %s changed: %llu bytes, measured %llu", e->path,
		       (unsigned long long)st.st_size, (unsigned long long)e->size);
		close(fd);
		return;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	uint64_t total = 0;
	ssize_t r = 0;
	unsigned hl = 0;
	uint8_t h[VEIL_SHA256_SIZE];
	int ok = EVP_DigestInit_ex(ctx, c->sha256, NULL);
	while (ok && (r = read(fd, buf, VERIFY_READ_SIZE)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		ok = EVP_DigestUpdate(ctx, buf, (size_t)r);
		total += (uint64_t)r;
	}
	close(fd);
	ok = ok && r == 0 && EVP_DigestFinal_ex(ctx, h, &hl);
	atomic_fetch_add(&c->bytes, total);
	if (!ok)
		report(c, i, "image file %s: cannot read it", e->path);
	else if (total != e->size || CRYPTO_memcmp(h, e->sha256, sizeof(h)))
		report(c, i,
		       "image file %s changed: its SHA-256 differs from the image's measurement",
		       e->path);
}

static void check_link(struct image_check *c, size_t i)
{
	const struct veil_image_entry *e = &c->rec.entries[i];
	int fd = open_beneath(c->root_fd, e->path, O_PATH);
	char target[VEIL_IMAGE_RECORD_MAX_PATH + 1];
	ssize_t n = fd < 0 ? -1 : readlinkat(fd, "", target, sizeof(target));
	int err = errno;
	if (fd >= 0)
		close(fd);
	if (n < 0)
		report(c, i, "image symbolic link %s: %s", e->path,
		       err == ENOENT && fd >= 0 ? "not a symbolic link" : strerror(err));
	/* not secret: a symbolic link target, which the image record lists */
	else if ((size_t)n != strlen(e->target) || memcmp(target, e->target, (size_t)n))
		report(c, i, "image symbolic link %s changed: it points elsewhere", e->path);
}

static void *worker(void *arg)
{
	struct image_check *c = arg;
	uint8_t *buf = malloc(VERIFY_READ_SIZE);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	for (;;) {
		size_t from = atomic_fetch_add(&c->next, VERIFY_BATCH);
		if (from >= c->rec.count)
			break;
		size_t to = from + VERIFY_BATCH < c->rec.count ? from + VERIFY_BATCH : c->rec.count;
		for (size_t i = from; i < to; i++) {
			if (!buf || !ctx) {
				report(c, i, "image check: out of memory");
				continue;
			}
			switch (c->rec.entries[i].kind) {
			case VEIL_IMAGE_DIR:
				check_dir(c, i);
				break;
			case VEIL_IMAGE_FILE:
				check_file(c, i, buf, ctx);
				break;
			case VEIL_IMAGE_LINK:
				check_link(c, i);
				break;
			default:
				break;
			}
		}
	}
	free(buf);
	EVP_MD_CTX_free(ctx);
	return NULL;
}

int image_verify_start(const char *root_dir, const char *record_path, unsigned threads,
		       struct image_check **out, char root_hex[static 2 * VEIL_SHA256_SIZE + 1],
		       char *why, size_t cap)
{
	*out = NULL;
	root_hex[0] = '\0';
	if (root_dir[0] != '/' || record_path[0] != '/') {
		snprintf(why, cap, "VEIL_IMAGE_ROOT and VEIL_IMAGE_RECORD must be absolute paths");
		return VEIL_EINVAL;
	}
	struct image_check *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(why, cap, "out of memory");
		return VEIL_ENOMEM;
	}
	c->root_fd = open(root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->root_fd < 0) {
		snprintf(why, cap, "cannot open the image root %s: %s", root_dir, strerror(errno));
		free(c);
		return VEIL_EINVAL;
	}
	/* the record, read once: the bytes hashed are the bytes parsed */
	int fd = open_beneath(c->root_fd, record_path, O_RDONLY | O_NONBLOCK);
	struct stat st;
	if (fd < 0 && errno == ENOENT) {
		close(c->root_fd);
		free(c);
		return 0;
	}
	char *data = NULL;
	size_t size = 0;
	int rc = VEIL_EINVAL;
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(why, cap, "cannot read the image measurement record %s: %s", record_path,
			 fd < 0 ? strerror(errno) : "not a regular file");
	} else if ((uint64_t)st.st_size > VEIL_IMAGE_RECORD_MAX_SIZE) {
		snprintf(why, cap, "the image measurement record %s is larger than %u bytes",
			 record_path, VEIL_IMAGE_RECORD_MAX_SIZE);
	} else if (!(data = malloc((size_t)st.st_size + 1))) {
		snprintf(why, cap, "out of memory");
	} else {
		ssize_t r;
		while (size <= (size_t)st.st_size &&
		       (r = read(fd, data + size, (size_t)st.st_size + 1 - size)) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				break;
			size += (size_t)r;
		}
		if (size != (size_t)st.st_size)
			snprintf(why, cap, "the image measurement record %s changed while read",
				 record_path);
		else
			rc = veil_image_record_parse(data, size, &c->rec, why, cap);
	}
	if (fd >= 0)
		close(fd);
	free(data);
	if (rc) {
		close(c->root_fd);
		free(c);
		return rc;
	}
	veil_hex(c->rec.root, VEIL_SHA256_SIZE, root_hex);
	if (!(c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
		snprintf(why, cap, "no SHA-256 in OpenSSL");
		veil_image_record_free(&c->rec);
		close(c->root_fd);
		free(c);
		return VEIL_EINVAL;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	c->nthreads = threads ? threads : ncpu > 0 ? (unsigned)ncpu : 1;
	if (c->nthreads > VERIFY_MAX_THREADS)
		c->nthreads = VERIFY_MAX_THREADS;
	c->first_bad = c->rec.count;
	atomic_init(&c->next, 0);
	atomic_init(&c->bytes, 0);
	pthread_mutex_init(&c->lock, NULL);
	unsigned started = 0;
	for (; started < c->nthreads; started++)
		if (pthread_create(&c->threads[started], NULL, worker, c))
			break;
	c->nthreads = started;
	*out = c;
	return 0;
}

int image_verify_wait(struct image_check *c, size_t *entries, uint64_t *bytes, char *why,
		      size_t cap)
{
	for (unsigned i = 0; i < c->nthreads; i++)
		pthread_join(c->threads[i], NULL);
	if (!c->nthreads) /* no thread could start: check here */
		worker(c);
	int bad = c->first_bad < c->rec.count;
	if (bad)
		snprintf(why, cap, "%s", c->why);
	if (entries)
		*entries = c->rec.count;
	if (bytes)
		*bytes = atomic_load(&c->bytes);
	pthread_mutex_destroy(&c->lock);
	veil_image_record_free(&c->rec);
	EVP_MD_free(c->sha256);
	close(c->root_fd);
	free(c);
	return bad ? VEIL_EINVAL : 0;
}
