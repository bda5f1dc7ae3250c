/* A reproducible image layer, streamed: libarchive writes the tar into a
 * callback that hashes it (the diff_id) and feeds zlib, whose output is
 * hashed (the digest) and written to a temporary blob, renamed to its digest
 * at the end. No layer is ever held in memory.
 *
 * What makes two builds byte-identical (docs/images.md, "Reproducible"):
 * - the caller adds entries in a fixed order (sorted paths, folders first);
 * - every entry has uid/gid 0, no user or group name, the one mtime given
 *   (no atime, ctime or sub-second part), and a mode the caller chose;
 * - the tar format is libarchive's "pax restricted": plain ustar headers,
 *   and a pax extended header only for what ustar cannot hold (a path over
 *   100/155 bytes, a non-ASCII name, a file of 8 GiB or more), itself made
 *   only of those fields; blocks of 10240 bytes as GNU tar writes them;
 * - gzip is zlib's deflate at level 6 (gzip's default) with a fixed header:
 *   mtime 0, no file name, no extra field, OS byte 255 (unknown). The bytes
 *   are those of this zlib's deflate; zlib 1.2.x and 1.3 produce the same
 *   stream (a zlib-ng in zlib's place may not, and the digest then differs;
 *   the diff_ids, over the tar, do not). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/evp.h>

#include "oci.h"

#define GZIP_LEVEL 6
#define OUT_SIZE (256 << 10)
#define READ_SIZE (1 << 20)

struct oci_layer {
	struct archive *a;
	z_stream z;
	int z_ready;
	gz_header gzh;
	int fd;
	char *tmp, *layout;
	EVP_MD_CTX *tar_sha, *gz_sha, *file_sha;
	uint64_t gz_size;
	time_t mtime;
	int failed; /* a write to the blob failed (errno kept in err) */
	int err;
	struct veil_diags *d;
	uint8_t *out, *buf;
	/* libarchive converts names through the locale's character set; veil
	 * never calls setlocale(), so that is ASCII and a non-ASCII name made
	 * libarchive 3.6.2's pax writer crash (strlen(NULL)). Every libarchive
	 * call runs in C.UTF-8: names (valid UTF-8, checked when measured) pass
	 * unchanged, whatever LANG the builder has. */
	locale_t utf8;
};

/* the calling thread in C.UTF-8 until the matching leave_utf8() */
static locale_t enter_utf8(const struct oci_layer *l)
{
	return uselocale(l->utf8);
}

static void leave_utf8(locale_t old)
{
	uselocale(old);
}

static int flush_out(struct oci_layer *l)
{
	size_t n = OUT_SIZE - l->z.avail_out;
	const uint8_t *p = l->out;
	if (!EVP_DigestUpdate(l->gz_sha, p, n))
		return VEIL_EIO;
	l->gz_size += n;
	while (n) {
		ssize_t w = write(l->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			l->err = errno ? errno : EIO;
			return VEIL_EIO;
		}
		p += w;
		n -= (size_t)w;
	}
	l->z.next_out = l->out;
	l->z.avail_out = OUT_SIZE;
	return 0;
}

static int deflate_some(struct oci_layer *l, const void *data, size_t size, int flush)
{
	l->z.next_in = (Bytef *)(uintptr_t)data;
	l->z.avail_in = (uInt)size;
	for (;;) {
		int zr = deflate(&l->z, flush);
		if (zr == Z_STREAM_ERROR)
			return VEIL_EIO;
		if (l->z.avail_out == 0 || (flush == Z_FINISH && zr == Z_STREAM_END)) {
			if (flush_out(l))
				return VEIL_EIO;
		}
		if (flush == Z_FINISH ? zr == Z_STREAM_END
				      : (l->z.avail_in == 0 && l->z.avail_out != 0))
			return 0;
	}
}

static la_ssize_t tar_out(struct archive *a, void *arg, const void *data, size_t size)
{
	(void)a;
	struct oci_layer *l = arg;
	if (l->failed || !EVP_DigestUpdate(l->tar_sha, data, size) ||
	    deflate_some(l, data, size, Z_NO_FLUSH)) {
		l->failed = 1;
		archive_set_error(a, l->err ? l->err : EIO, "layer write failed");
		return -1;
	}
	return (la_ssize_t)size;
}

void oci_layer_abort(struct oci_layer *l)
{
	if (!l)
		return;
	if (l->a) {
		locale_t old = enter_utf8(l);
		archive_write_free(l->a); /* closes, and flushes into tar_out */
		leave_utf8(old);
	}
	if (l->utf8)
		freelocale(l->utf8);
	if (l->z_ready)
		deflateEnd(&l->z);
	if (l->fd >= 0)
		close(l->fd);
	if (l->tmp)
		unlink(l->tmp);
	free(l->tmp);
	free(l->layout);
	EVP_MD_CTX_free(l->tar_sha);
	EVP_MD_CTX_free(l->gz_sha);
	EVP_MD_CTX_free(l->file_sha);
	free(l->out);
	free(l->buf);
	free(l);
}

int oci_layer_open(struct oci_layer **out, const char *layout, time_t mtime, struct veil_diags *d)
{
	static unsigned serial;
	struct oci_layer *l = calloc(1, sizeof(*l));
	struct veil_buf tmp;
	veil_buf_init(&tmp, 0);
	if (!l)
		return VEIL_ENOMEM;
	l->fd = -1;
	l->mtime = mtime;
	l->d = d;
	veil_buf_printf(&tmp, "%s/blobs/sha256/.layer-%u.tmp", layout, serial++);
	l->tmp = tmp.failed ? NULL : tmp.data;
	if (tmp.failed)
		veil_buf_free(&tmp);
	l->layout = strdup(layout);
	l->tar_sha = EVP_MD_CTX_new();
	l->gz_sha = EVP_MD_CTX_new();
	l->file_sha = EVP_MD_CTX_new();
	l->out = malloc(OUT_SIZE);
	l->buf = malloc(READ_SIZE);
	if (!(l->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0))) {
		veil_diag(d, "image layer: the C.UTF-8 locale is missing: %s", strerror(errno));
		oci_layer_abort(l);
		return VEIL_EIO;
	}
	if (!l->tmp || !l->layout || !l->tar_sha || !l->gz_sha || !l->file_sha || !l->out ||
	    !l->buf || !EVP_DigestInit_ex(l->tar_sha, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(l->gz_sha, EVP_sha256(), NULL))
		goto nomem;
	/* windowBits 15 + 16: a gzip wrapper; memLevel 8 as gzip */
	if (deflateInit2(&l->z, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		goto nomem;
	l->z_ready = 1;
	l->gzh.os = 255; /* "unknown": the same on every build machine */
	if (deflateSetHeader(&l->z, &l->gzh) != Z_OK)
		goto nomem;
	l->z.next_out = l->out;
	l->z.avail_out = OUT_SIZE;
	l->fd = open(l->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (l->fd < 0) {
		veil_diag(d, "%s: cannot create: %s", l->tmp, strerror(errno));
		oci_layer_abort(l);
		return VEIL_EIO;
	}
	locale_t old = enter_utf8(l);
	int bad = !(l->a = archive_write_new()) ||
		  archive_write_set_format_pax_restricted(l->a) != ARCHIVE_OK ||
		  archive_write_open2(l->a, l, NULL, tar_out, NULL, NULL) != ARCHIVE_OK;
	leave_utf8(old);
	if (bad)
		goto nomem;
	*out = l;
	return 0;
nomem:
	oci_layer_abort(l);
	return VEIL_ENOMEM;
}

static struct archive_entry *new_entry(struct oci_layer *l, const char *image_path, unsigned type,
				       unsigned mode)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return NULL;
	/* tar paths are relative: "python/print_env.py" for /python/print_env.py */
	while (*image_path == '/')
		image_path++;
	archive_entry_set_pathname_utf8(e, image_path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, mode);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_mtime(e, l->mtime, 0);
	return e;
}

static int archive_failed(struct oci_layer *l, const char *what)
{
	if (l->failed)
		veil_diag(l->d, "%s: write failed: %s", l->tmp, strerror(l->err ? l->err : EIO));
	else
		veil_diag(l->d, "image layer: %s: %s", what, archive_error_string(l->a));
	return VEIL_EIO;
}

int oci_layer_add_dir(struct oci_layer *l, const char *image_path)
{
	locale_t old = enter_utf8(l);
	struct archive_entry *e = new_entry(l, image_path, AE_IFDIR, 0755);
	int r = e ? archive_write_header(l->a, e) : ARCHIVE_FATAL;
	archive_entry_free(e);
	leave_utf8(old);
	if (!e)
		return VEIL_ENOMEM;
	return r == ARCHIVE_OK ? 0 : archive_failed(l, image_path);
}

int oci_layer_add_file(struct oci_layer *l, const char *image_path, const char *src, unsigned mode,
		       const uint8_t *expect)
{
	struct archive_entry *e = NULL;
	int rc = VEIL_EIO;
	locale_t old = enter_utf8(l);
	int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		veil_diag(l->d, "%s: cannot open: %s", src, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		veil_diag(l->d, "%s: not a regular file any more", src);
		goto out;
	}
	if (!(e = new_entry(l, image_path, AE_IFREG, mode)) ||
	    !EVP_DigestInit_ex(l->file_sha, EVP_sha256(), NULL)) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	archive_entry_set_size(e, st.st_size);
	if (archive_write_header(l->a, e) != ARCHIVE_OK) {
		rc = archive_failed(l, image_path);
		goto out;
	}
	uint64_t left = (uint64_t)st.st_size;
	while (left) {
		ssize_t n = read(fd, l->buf, left < READ_SIZE ? (size_t)left : READ_SIZE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			veil_diag(l->d, "%s: read failed: %s", src, strerror(errno));
			goto out;
		}
		if (n == 0) {
			veil_diag(l->d,
				  "%s: changed while the image was built (shorter); run "
				  "'veil apply' again",
				  src);
			rc = VEIL_EINVAL;
			goto out;
		}
		if (!EVP_DigestUpdate(l->file_sha, l->buf, (size_t)n) ||
		    archive_write_data(l->a, l->buf, (size_t)n) != n) {
			rc = archive_failed(l, image_path);
			goto out;
		}
		left -= (uint64_t)n;
	}
	uint8_t h[VEIL_SHA256_SIZE];
	unsigned len = 0;
	if (!EVP_DigestFinal_ex(l->file_sha, h, &len))
		goto out;
	/* the layer must hold what was measured, not what is there now */
	/* not secret: a layer hash at build time, on the builder machine */
	if (expect && memcmp(h, expect, sizeof(h))) {
		veil_diag(l->d,
			  "%s: changed between measuring and building the image; run 'veil "
			  "apply' again",
			  src);
		rc = VEIL_EINVAL;
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	archive_entry_free(e);
	leave_utf8(old);
	return rc;
}

int oci_layer_add_bytes(struct oci_layer *l, const char *image_path, const void *data, size_t size,
			unsigned mode)
{
	locale_t old = enter_utf8(l);
	struct archive_entry *e = new_entry(l, image_path, AE_IFREG, mode);
	int rc = e ? 0 : VEIL_ENOMEM;
	if (e) {
		archive_entry_set_size(e, (la_int64_t)size);
		if (archive_write_header(l->a, e) != ARCHIVE_OK ||
		    (size && archive_write_data(l->a, data, size) != (la_ssize_t)size))
			rc = archive_failed(l, image_path);
	}
	archive_entry_free(e);
	leave_utf8(old);
	return rc;
}

int oci_layer_close(struct oci_layer *l, char diff_id[static VEIL_DIGEST_SIZE],
		    struct oci_desc *out)
{
	int rc = VEIL_EIO;
	uint8_t h[VEIL_SHA256_SIZE];
	char hex[2 * VEIL_SHA256_SIZE + 1];
	unsigned len = 0;
	locale_t old = enter_utf8(l);
	int closed = archive_write_close(l->a);
	if (closed == ARCHIVE_OK) {
		archive_write_free(l->a);
		l->a = NULL;
	}
	leave_utf8(old);
	if (closed != ARCHIVE_OK) {
		rc = archive_failed(l, "closing the tar");
		goto out;
	}
	if (deflate_some(l, NULL, 0, Z_FINISH)) {
		veil_diag(l->d, "%s: write failed: %s", l->tmp, strerror(l->err ? l->err : EIO));
		goto out;
	}
	if (close(l->fd) < 0) {
		l->fd = -1;
		veil_diag(l->d, "%s: write failed: %s", l->tmp, strerror(errno));
		goto out;
	}
	l->fd = -1;
	if (!EVP_DigestFinal_ex(l->tar_sha, h, &len))
		goto out;
	veil_hex(h, sizeof(h), hex);
	snprintf(diff_id, VEIL_DIGEST_SIZE, "sha256:%s", hex);
	if (!EVP_DigestFinal_ex(l->gz_sha, h, &len))
		goto out;
	veil_hex(h, sizeof(h), hex);
	out->media_type = OCI_MT_LAYER_GZIP;
	snprintf(out->digest, sizeof(out->digest), "sha256:%s", hex);
	out->size = l->gz_size;
	struct veil_buf dst;
	veil_buf_init(&dst, 0);
	veil_buf_printf(&dst, "%s/blobs/sha256/%s", l->layout, hex);
	if (dst.failed) {
		rc = VEIL_ENOMEM;
	} else if (rename(l->tmp, dst.data) < 0) {
		veil_diag(l->d, "%s: rename failed: %s", dst.data, strerror(errno));
	} else {
		free(l->tmp);
		l->tmp = NULL;
		rc = 0;
	}
	veil_buf_free(&dst);
out:
	oci_layer_abort(l);
	return rc;
}

/* Each folder of dir ("/a/b") not in done ("/a" emitted before), and dir.
 * Files come sorted, so the files of one folder are contiguous and a folder
 * is never needed again once the walk has left it. */
int oci_layer_add_parents(struct oci_layer *l, const char *dir, char **done)
{
	size_t n = strlen(dir);
	char *p = strdup(dir);
	int rc = p ? 0 : VEIL_ENOMEM;
	for (size_t i = 1; !rc && i <= n; i++) {
		if (dir[i] != '/' && dir[i] != '\0')
			continue;
		p[i] = '\0';
		size_t dl = *done ? strlen(*done) : 0;
		int seen = *done && dl >= i && !strncmp(*done, p, i) &&
			   ((*done)[i] == '\0' || (*done)[i] == '/');
		if (!seen)
			rc = oci_layer_add_dir(l, p);
		p[i] = dir[i];
	}
	free(*done);
	*done = p;
	return rc;
}
