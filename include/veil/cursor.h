/* One bounded cursor for every untrusted byte (DESIGN.md, "Evidence"; the
 * idea is s2n's stuffer): parsers read typed little- or big-endian integers,
 * fixed-size fields and length-prefixed slices through it, each checked
 * against what remains, and never do pointer arithmetic of their own.
 *
 * Failure is sticky: the first read past the end (or a failed expectation)
 * marks the cursor failed; every later read fails too and yields zeros, so a
 * parser may read a whole structure and check veil_cur_ok() once; the reads
 * carry no VEIL_MUST_CHECK (common.h) for that reason. A slice (veil_cur_sub) is a cursor of its
 * own over part of the parent; reading it never moves past the slice's end. */
#ifndef VEIL_CURSOR_H
#define VEIL_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct veil_cursor {
	const uint8_t *base; /* never dereferenced past base[len - 1] */
	size_t len, off;
	bool failed;
};

void veil_cur_init(struct veil_cursor *c, const void *data, size_t len);

/* true while no read failed */
static inline bool veil_cur_ok(const struct veil_cursor *c)
{
	return !c->failed;
}
/* bytes not read yet (0 once failed) */
size_t veil_cur_left(const struct veil_cursor *c);
/* the offset of the next read from the start of this cursor */
size_t veil_cur_pos(const struct veil_cursor *c);
/* true when everything was read and nothing failed */
bool veil_cur_done(const struct veil_cursor *c);

bool veil_cur_u8(struct veil_cursor *c, uint8_t *out);
bool veil_cur_le16(struct veil_cursor *c, uint16_t *out);
bool veil_cur_le32(struct veil_cursor *c, uint32_t *out);
bool veil_cur_le64(struct veil_cursor *c, uint64_t *out);
bool veil_cur_be16(struct veil_cursor *c, uint16_t *out);
bool veil_cur_be32(struct veil_cursor *c, uint32_t *out);
bool veil_cur_be64(struct veil_cursor *c, uint64_t *out);

/* n bytes copied to out (zeroed on failure) */
bool veil_cur_copy(struct veil_cursor *c, void *out, size_t n);
/* n bytes in place: *out points into the cursor's data (NULL on failure) */
bool veil_cur_view(struct veil_cursor *c, size_t n, const uint8_t **out);
bool veil_cur_skip(struct veil_cursor *c, size_t n);
/* the next n bytes as a cursor of their own; the parent moves past them */
bool veil_cur_sub(struct veil_cursor *c, size_t n, struct veil_cursor *sub);
/* a length-prefixed slice: the length as 2 or 4 bytes little-endian, or 4
 * bytes big-endian, then that many bytes */
bool veil_cur_sub_le16(struct veil_cursor *c, struct veil_cursor *sub);
bool veil_cur_sub_le32(struct veil_cursor *c, struct veil_cursor *sub);
bool veil_cur_sub_be32(struct veil_cursor *c, struct veil_cursor *sub);
/* the next n bytes must equal want (a magic); fails the cursor otherwise */
bool veil_cur_expect(struct veil_cursor *c, const void *want, size_t n);
/* the bytes read so far from position `from` (a veil_cur_pos value) up to
 * now, in place: what a signature covers */
bool veil_cur_span(const struct veil_cursor *c, size_t from, const uint8_t **out, size_t *n);
/* a text line: the bytes up to (not including) the next '\n', at most max;
 * the '\n' is consumed. Fails without a '\n' within max + 1 bytes. */
bool veil_cur_line(struct veil_cursor *c, size_t max, const uint8_t **out, size_t *n);
/* marks the cursor failed (a parser's own check refused what it read) */
void veil_cur_fail(struct veil_cursor *c);

#endif
