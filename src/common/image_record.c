/* The image measurement record's parser and escaping (format in
 * include/veil/image_record.h). Every byte of a record is untrusted: each
 * field is read through a cursor bounded by its line, and the only form
 * accepted is the one the writer produces. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "veil/image_record.h"

static const char hexdig[] = "0123456789abcdef";

static int must_escape(unsigned char c)
{
	return c < 0x21 || c > 0x7e || c == '\\';
}

int veil_image_record_escape(struct veil_buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[4] = {'\\', 'x', hexdig[c >> 4], hexdig[c & 15]};
		if (must_escape(c) ? veil_buf_append(out, e, 4) : veil_buf_append(out, &s[i], 1))
			return VEIL_ENOMEM;
	}
	return 0;
}

void veil_image_listing_sha256(const char *const *names, size_t count,
			       uint8_t out[static VEIL_SHA256_SIZE])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned n = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (size_t i = 0; ok && i < count; i++)
		ok = EVP_DigestUpdate(ctx, names[i], strlen(names[i]) + 1);
	if (!ok || !EVP_DigestFinal_ex(ctx, out, &n))
		memset(out, 0, VEIL_SHA256_SIZE); /* matches no listing */
	EVP_MD_CTX_free(ctx);
}

/* the rest of one line: [p, end) */
struct rec_cursor {
	const char *p, *end;
	size_t line;
	char *why;
	size_t cap;
};

static int rec_fail(struct rec_cursor *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int rec_fail(struct rec_cursor *c, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->why, c->cap, "image measurement record, line %zu: %s", c->line, msg);
	return VEIL_EINVAL;
}

/* a field up to the next space (or the line's end when last) */
static int next_field(struct rec_cursor *c, int last, const char **f, size_t *n)
{
	const char *sp = memchr(c->p, ' ', (size_t)(c->end - c->p));
	if (last && sp)
		return rec_fail(c, "more fields than the entry has");
	if (!last && !sp)
		return rec_fail(c, "fewer fields than the entry has");
	const char *e = last ? c->end : sp;
	if (e == c->p)
		return rec_fail(c, "an empty field");
	*f = c->p;
	*n = (size_t)(e - c->p);
	c->p = last ? e : e + 1;
	return 0;
}

static int hexval(char h)
{
	return h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
}

/* unescapes n bytes at f into out (NUL-terminated); *len: bytes */
static int unescape(struct rec_cursor *c, const char *f, size_t n, char *out, size_t *len)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)f[i];
		if (b == '\\') {
			int hi, lo;
			if (n - i < 4 || f[i + 1] != 'x' || (hi = hexval(f[i + 2])) < 0 ||
			    (lo = hexval(f[i + 3])) < 0)
				return rec_fail(c, "a malformed escape");
			b = (unsigned char)(hi << 4 | lo);
			if (!must_escape(b))
				return rec_fail(c, "an escape of a byte written as itself");
			i += 3;
		} else if (must_escape(b)) {
			return rec_fail(c, "a byte that must be escaped");
		}
		if (!b)
			return rec_fail(c, "a NUL byte");
		if (k >= VEIL_IMAGE_RECORD_MAX_PATH)
			return rec_fail(c, "a path or target longer than %u bytes",
					VEIL_IMAGE_RECORD_MAX_PATH);
		out[k++] = (char)b;
	}
	out[k] = '\0';
	*len = k;
	return 0;
}

static int path_valid(const char *p, size_t n)
{
	if (n == 1 && p[0] == '/')
		return 1;
	if (!n || p[0] != '/' || p[n - 1] == '/')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '/')
			continue;
		size_t j = i + 1;
		while (j < n && p[j] != '/')
			j++;
		size_t clen = j - i - 1;
		if (!clen || (clen == 1 && p[i + 1] == '.') ||
		    (clen == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
			return 0;
	}
	return 1;
}

static int read_mode(struct rec_cursor *c, unsigned *mode)
{
	const char *f;
	size_t n;
	if (next_field(c, 0, &f, &n))
		return VEIL_EINVAL;
	unsigned m = 0;
	if (n != 4)
		return rec_fail(c, "a mode that is not 4 octal digits");
	for (size_t i = 0; i < 4; i++) {
		if (f[i] < '0' || f[i] > '7')
			return rec_fail(c, "a mode that is not 4 octal digits");
		m = m << 3 | (unsigned)(f[i] - '0');
	}
	*mode = m;
	return 0;
}

static int read_hash(struct rec_cursor *c, uint8_t out[static VEIL_SHA256_SIZE])
{
	const char *f;
	size_t n;
	if (next_field(c, 0, &f, &n))
		return VEIL_EINVAL;
	if (n != 2 * VEIL_SHA256_SIZE)
		return rec_fail(c, "a hash that is not 64 lower-case hex digits");
	for (size_t i = 0; i < VEIL_SHA256_SIZE; i++) {
		int hi = hexval(f[2 * i]), lo = hexval(f[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return rec_fail(c, "a hash that is not 64 lower-case hex digits");
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int read_size(struct rec_cursor *c, uint64_t *out)
{
	const char *f;
	size_t n;
	if (next_field(c, 0, &f, &n))
		return VEIL_EINVAL;
	uint64_t v = 0;
	if (n > 19 || (n > 1 && f[0] == '0'))
		return rec_fail(c, "a size that is not a decimal number");
	for (size_t i = 0; i < n; i++) {
		if (f[i] < '0' || f[i] > '9')
			return rec_fail(c, "a size that is not a decimal number");
		v = v * 10 + (uint64_t)(f[i] - '0');
	}
	*out = v;
	return 0;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct veil_image_entry *)a)->path,
		      ((const struct veil_image_entry *)b)->path);
}

void veil_image_record_free(struct veil_image_record *r)
{
	free(r->entries);
	free(r->strings);
	memset(r, 0, sizeof(*r));
}

int veil_image_record_parse(const char *data, size_t size, struct veil_image_record *out, char *why,
			    size_t cap)
{
	struct rec_cursor c = {.why = why, .cap = cap, .line = 1};
	size_t ml = strlen(VEIL_IMAGE_RECORD_MAGIC);
	struct veil_image_record r = {0};
	if (size > VEIL_IMAGE_RECORD_MAX_SIZE)
		return rec_fail(&c, "larger than %u bytes", VEIL_IMAGE_RECORD_MAX_SIZE);
	/* not secret: the record magic */
	if (size < ml || memcmp(data, VEIL_IMAGE_RECORD_MAGIC, ml))
		return rec_fail(&c, "not a veil-image-measurement 1 record");
	if (data[size - 1] != '\n')
		return rec_fail(&c, "the last line is not terminated");
	size_t lines = 0;
	for (size_t i = ml; i < size; i++)
		lines += data[i] == '\n';
	if (lines > VEIL_IMAGE_RECORD_MAX_ENTRIES)
		return rec_fail(&c, "more than %u entries", VEIL_IMAGE_RECORD_MAX_ENTRIES);
	/* unescaping never grows a field: the record's size bounds the strings */
	r.entries = calloc(lines + 1, sizeof(*r.entries));
	r.strings = malloc(size + 2 * lines + 1);
	if (!r.entries || !r.strings) {
		veil_image_record_free(&r);
		snprintf(why, cap, "image measurement record: out of memory");
		return VEIL_ENOMEM;
	}
	char *s = r.strings;
	int rc = 0;
	for (const char *p = data + ml; p < data + size && !rc;) {
		const char *nl = memchr(p, '\n', (size_t)(data + size - p));
		c.line++;
		c.p = p;
		c.end = nl;
		p = nl + 1;
		struct veil_image_entry *e = &r.entries[r.count];
		const char *f;
		size_t n, len;
		if (c.end - c.p < 2 || c.p[1] != ' ') {
			rc = rec_fail(&c, "not an entry");
			break;
		}
		e->kind = c.p[0];
		c.p += 2;
		switch (e->kind) {
		case VEIL_IMAGE_DIR:
			rc = read_mode(&c, &e->mode) || read_hash(&c, e->sha256) ? VEIL_EINVAL : 0;
			break;
		case VEIL_IMAGE_FILE:
			rc = read_mode(&c, &e->mode) || read_size(&c, &e->size) ||
				     read_hash(&c, e->sha256)
				 ? VEIL_EINVAL
				 : 0;
			break;
		case VEIL_IMAGE_LINK:
			rc = next_field(&c, 0, &f, &n);
			if (!rc && !(rc = unescape(&c, f, n, s, &len))) {
				e->target = s;
				s += len + 1;
			}
			break;
		case VEIL_IMAGE_EXCLUDED:
			break;
		default:
			rc = rec_fail(&c, "an entry kind other than d, f, l or x");
		}
		if (rc || (rc = next_field(&c, 1, &f, &n)) || (rc = unescape(&c, f, n, s, &len)))
			break;
		e->path = s;
		s += len + 1;
		if (!path_valid(e->path, len)) {
			rc = rec_fail(&c, "a path that is not absolute and normal");
			break;
		}
		if (r.count && strcmp(r.entries[r.count - 1].path, e->path) >= 0) {
			rc = rec_fail(&c, "a path out of order or listed twice");
			break;
		}
		r.count++;
	}
	if (rc) {
		veil_image_record_free(&r);
		return rc;
	}
	/* every checked entry lies in a listed folder */
	if (!r.count || strcmp(r.entries[0].path, "/") || r.entries[0].kind != VEIL_IMAGE_DIR) {
		veil_image_record_free(&r);
		c.line = 2;
		return rec_fail(&c, "the first entry is not the root folder");
	}
	for (size_t i = 1; i < r.count; i++) {
		struct veil_image_entry *e = &r.entries[i];
		if (e->kind == VEIL_IMAGE_EXCLUDED)
			continue;
		char *slash = strrchr(e->path, '/');
		char parent[VEIL_IMAGE_RECORD_MAX_PATH + 1];
		size_t pl = slash == e->path ? 1 : (size_t)(slash - e->path);
		memcpy(parent, e->path, pl);
		parent[pl] = '\0';
		struct veil_image_entry key = {.path = parent};
		const struct veil_image_entry *pe =
		    bsearch(&key, r.entries, i, sizeof(key), by_path);
		if (!pe || pe->kind != VEIL_IMAGE_DIR) {
			veil_image_record_free(&r);
			c.line = i + 2;
			return rec_fail(&c, "an entry whose folder is not listed");
		}
	}
	if (veil_sha256(data, size, r.root)) {
		veil_image_record_free(&r);
		snprintf(why, cap, "image measurement record: cannot compute its SHA-256");
		return VEIL_EIO;
	}
	*out = r;
	return 0;
}
