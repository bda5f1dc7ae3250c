/* Shared helpers: error codes, diagnostics, bounded buffers, files, hashing.
 *
 * Ownership: a struct veil_buf owns its data; veil_buf_free() releases it. A
 * struct veil_diags owns its messages; veil_diags_free() releases them. */
#ifndef VEIL_COMMON_H
#define VEIL_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum veil_err {
	VEIL_OK = 0,
	VEIL_EINVAL = -1, /* input rejected; diagnostics say why */
	VEIL_ENOMEM = -2,
	VEIL_EIO = -3,
	VEIL_ELIMIT = -4, /* a size, depth or count limit was exceeded */
	VEIL_ENOENT = -5,
};

/* On every fallible function (one that returns a veil_err, a status or a
 * pointer that is NULL on failure): a caller that drops the result is a
 * compile error under -Werror. Where dropping it is right, the call is
 * wrapped in VEIL_UNCHECKED() with a comment saying why. APIs with sticky
 * failure (struct veil_buf, struct veil_cursor, the ytree builders) do not
 * carry it: their callers check once at the end, by design. */
#define VEIL_MUST_CHECK __attribute__((warn_unused_result))
/* Drops a VEIL_MUST_CHECK result on purpose; a comment at the call says why.
 * A plain (void) cast does not silence GCC (its bug 66425). */
#define VEIL_UNCHECKED(call) ((void)!(call))

#define VEIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Diagnostics: every user-facing error, collected so a command can list all. */
#define VEIL_DIAGS_MAX 200
struct veil_diags {
	char **msgs;
	size_t count;
	size_t cap;
	size_t dropped; /* messages past VEIL_DIAGS_MAX */
};

void veil_diags_init(struct veil_diags *d);
void veil_diags_free(struct veil_diags *d);
void veil_diag(struct veil_diags *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void veil_vdiag(struct veil_diags *d, const char *fmt, va_list ap);
/* "file:line:col: message" */
void veil_diag_at(struct veil_diags *d, const char *file, unsigned line, unsigned col,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void veil_diags_print(const struct veil_diags *d, void *stream /* FILE* */);

/* Growable byte buffer with a hard maximum; always NUL-terminated. Failure
 * is sticky (failed), so the appends' results need not be checked one by
 * one (they carry no VEIL_MUST_CHECK): a writer checks failed once. */
struct veil_buf {
	char *data;
	size_t size;
	size_t cap;
	size_t max; /* 0 means VEIL_BUF_DEFAULT_MAX */
	int failed; /* sticky: an append failed (ENOMEM or over max) */
};
#define VEIL_BUF_DEFAULT_MAX ((size_t)256 << 20)

void veil_buf_init(struct veil_buf *b, size_t max);
void veil_buf_free(struct veil_buf *b);
int veil_buf_append(struct veil_buf *b, const void *p, size_t n);
int veil_buf_puts(struct veil_buf *b, const char *s);
int veil_buf_printf(struct veil_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Files. veil_read_file refuses files larger than max_size. */
int veil_read_file(const char *path, size_t max_size, char **out, size_t *out_size,
		   struct veil_diags *d) VEIL_MUST_CHECK;
/* Write atomically: temp file in the same folder, fsync, rename, fsync folder. */
int veil_write_file(const char *path, const void *data, size_t size, unsigned mode,
		    struct veil_diags *d) VEIL_MUST_CHECK;
/* Atomic (temp file + rename) but not yet durable: for writing many files,
 * followed by one veil_sync_fs() instead of a fsync per file. */
int veil_write_file_nosync(const char *path, const void *data, size_t size, unsigned mode,
			   struct veil_diags *d) VEIL_MUST_CHECK;
/* Plain create-or-truncate, for files in a folder that is itself swapped in
 * atomically (veil_swap_dir). */
int veil_write_file_plain(const char *path, const void *data, size_t size, unsigned mode,
			  struct veil_diags *d) VEIL_MUST_CHECK;
/* Replace folder `dst` by `src` in one step (the old tree is then removed). */
int veil_swap_dir(const char *src, const char *dst, struct veil_diags *d) VEIL_MUST_CHECK;
/* rm -rf */
int veil_remove_tree(const char *path) VEIL_MUST_CHECK;
/* Makes everything written on the file system holding `path` durable. */
int veil_sync_fs(const char *path, struct veil_diags *d) VEIL_MUST_CHECK;
/* mkdir -p */
int veil_mkdirs(const char *path, unsigned mode, struct veil_diags *d) VEIL_MUST_CHECK;
/* Folder part of a path ("." if none); caller frees. */
char *veil_dirname(const char *path) VEIL_MUST_CHECK;
/* a + "/" + b; caller frees. */
char *veil_path_join(const char *a, const char *b) VEIL_MUST_CHECK;
/* Folder holding the running executable; caller frees. */
char *veil_self_dir(void) VEIL_MUST_CHECK;

/* SHA-256 */
#define VEIL_SHA256_SIZE 32
int veil_sha256(const void *data, size_t size,
		uint8_t out[static VEIL_SHA256_SIZE]) VEIL_MUST_CHECK;
int veil_sha256_file(const char *path, uint8_t out[static VEIL_SHA256_SIZE],
		     struct veil_diags *d) VEIL_MUST_CHECK;
/* The rest of an open file from its current offset; path only names it in
 * messages. The caller keeps fd. */
int veil_sha256_fd(int fd, const char *path, uint8_t out[static VEIL_SHA256_SIZE],
		   struct veil_diags *d) VEIL_MUST_CHECK;
/* lower-case hex, out must hold 2*size+1 bytes */
void veil_hex(const uint8_t *in, size_t size, char *out);
/* exactly 2*size lower-case hex digits -> size bytes; 0 or VEIL_EINVAL
 * (out untouched then) */
int veil_unhex(const char *hex, uint8_t *out, size_t size) VEIL_MUST_CHECK;
/* base64 (RFC 4648, padded): encode -> a malloc'd NUL-terminated string
 * (NULL: out of memory); decode -> *out malloc'd (*n bytes), 0 or
 * VEIL_EINVAL for anything but canonical padded base64 (no white space),
 * VEIL_ELIMIT past max bytes */
char *veil_b64_encode(const uint8_t *p, size_t n) VEIL_MUST_CHECK;
int veil_b64_decode(const char *s, size_t max, uint8_t **out, size_t *n) VEIL_MUST_CHECK;
/* s is a SHA-256 in veil's hex (64 lower-case digits), e.g. a key hash */
int veil_is_sha256_hex(const char *s);

/* Edit distance, for "did you mean" suggestions; capped at 255. */
unsigned veil_edit_distance(const char *a, const char *b);

char *veil_strdup(const char *s) VEIL_MUST_CHECK;

/* Heap blocks wiped when freed, for the libraries whose buffers may hold a
 * secret value or a rendered configuration: jansson (json_set_alloc_funcs
 * with veil_wipe_malloc, veil_wipe_free) and libevent
 * (event_set_mem_functions with all three). free wipes the block's whole
 * usable size; realloc never leaves an unwiped copy behind (it moves by
 * malloc, copy, wipe, free). Memory a library hands its caller (json_dumps)
 * is freed with veil_wipe_free too where it may hold a secret.
 * veil_wipe_block wipes without freeing (for tests). Secrets veil itself
 * holds live in veil_secure_alloc memory instead (secrets.h). */
void *veil_wipe_malloc(size_t size) VEIL_MUST_CHECK;
void *veil_wipe_realloc(void *p, size_t size) VEIL_MUST_CHECK;
void veil_wipe_free(void *p);
void veil_wipe_block(void *p);

#endif
