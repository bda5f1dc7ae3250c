/* The bounded cursor (see cursor.h). */
#include "veil/cursor.h"

#include <string.h>

void veil_cur_init(struct veil_cursor *c, const void *data, size_t len)
{
	c->base = data;
	c->len = data ? len : 0;
	c->off = 0;
	c->failed = false;
}

size_t veil_cur_left(const struct veil_cursor *c)
{
	return c->failed ? 0 : c->len - c->off;
}

size_t veil_cur_pos(const struct veil_cursor *c)
{
	return c->off;
}

bool veil_cur_done(const struct veil_cursor *c)
{
	return !c->failed && c->off == c->len;
}

void veil_cur_fail(struct veil_cursor *c)
{
	c->failed = true;
}

/* the one place that moves the offset: n bytes, or failure */
static const uint8_t *take(struct veil_cursor *c, size_t n)
{
	if (c->failed || n > c->len - c->off) {
		c->failed = true;
		return NULL;
	}
	const uint8_t *p = c->base + c->off;
	c->off += n;
	return p;
}

bool veil_cur_copy(struct veil_cursor *c, void *out, size_t n)
{
	const uint8_t *p = take(c, n);
	if (!p) {
		if (n)
			memset(out, 0, n);
		return false;
	}
	if (n)
		memcpy(out, p, n);
	return true;
}

bool veil_cur_view(struct veil_cursor *c, size_t n, const uint8_t **out)
{
	*out = take(c, n);
	return *out != NULL;
}

bool veil_cur_skip(struct veil_cursor *c, size_t n)
{
	return take(c, n) != NULL;
}

static bool uint_n(struct veil_cursor *c, size_t n, int big, uint64_t *out)
{
	const uint8_t *p = take(c, n);
	uint64_t v = 0;
	for (size_t i = 0; p && i < n; i++)
		v |= (uint64_t)p[big ? i : n - 1 - i] << (8 * (n - 1 - i));
	*out = v;
	return p != NULL;
}

bool veil_cur_u8(struct veil_cursor *c, uint8_t *out)
{
	uint64_t v;
	bool ok = uint_n(c, 1, 0, &v);
	*out = (uint8_t)v;
	return ok;
}

#define UINT_READER(name, type, n, big)                                                            \
	bool name(struct veil_cursor *c, type *out)                                                \
	{                                                                                          \
		uint64_t v;                                                                        \
		bool ok = uint_n(c, n, big, &v);                                                   \
		*out = (type)v;                                                                    \
		return ok;                                                                         \
	}
UINT_READER(veil_cur_le16, uint16_t, 2, 0)
UINT_READER(veil_cur_le32, uint32_t, 4, 0)
UINT_READER(veil_cur_le64, uint64_t, 8, 0)
UINT_READER(veil_cur_be16, uint16_t, 2, 1)
UINT_READER(veil_cur_be32, uint32_t, 4, 1)
UINT_READER(veil_cur_be64, uint64_t, 8, 1)

bool veil_cur_sub(struct veil_cursor *c, size_t n, struct veil_cursor *sub)
{
	const uint8_t *p = take(c, n);
	veil_cur_init(sub, p, p ? n : 0);
	sub->failed = p == NULL;
	return p != NULL;
}

bool veil_cur_sub_le16(struct veil_cursor *c, struct veil_cursor *sub)
{
	uint16_t n;
	veil_cur_le16(c, &n);
	return veil_cur_sub(c, n, sub);
}

bool veil_cur_sub_le32(struct veil_cursor *c, struct veil_cursor *sub)
{
	uint32_t n;
	veil_cur_le32(c, &n);
	return veil_cur_sub(c, n, sub);
}

bool veil_cur_sub_be32(struct veil_cursor *c, struct veil_cursor *sub)
{
	uint32_t n;
	veil_cur_be32(c, &n);
	return veil_cur_sub(c, n, sub);
}

bool veil_cur_expect(struct veil_cursor *c, const void *want, size_t n)
{
	const uint8_t *p = take(c, n);
	/* not secret: the expected bytes are a format magic */
	if (p && n && memcmp(p, want, n))
		c->failed = true;
	return !c->failed;
}

bool veil_cur_span(const struct veil_cursor *c, size_t from, const uint8_t **out, size_t *n)
{
	if (c->failed || from > c->off) {
		*out = NULL;
		*n = 0;
		return false;
	}
	*out = c->base + from;
	*n = c->off - from;
	return true;
}

bool veil_cur_line(struct veil_cursor *c, size_t max, const uint8_t **out, size_t *n)
{
	size_t left = veil_cur_left(c), lim = left < max + 1 ? left : max + 1;
	const uint8_t *start = c->failed ? NULL : c->base + c->off;
	const uint8_t *nl = start && lim ? memchr(start, '\n', lim) : NULL;
	*out = NULL;
	*n = 0;
	if (!nl) {
		c->failed = true;
		return false;
	}
	*n = (size_t)(nl - start);
	*out = start;
	take(c, *n + 1);
	return true;
}
