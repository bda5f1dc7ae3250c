#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/common.h"

void veil_diags_init(struct veil_diags *d)
{
	memset(d, 0, sizeof(*d));
}

void veil_diags_free(struct veil_diags *d)
{
	for (size_t i = 0; i < d->count; i++)
		free(d->msgs[i]);
	free(d->msgs);
	memset(d, 0, sizeof(*d));
}

void veil_vdiag(struct veil_diags *d, const char *fmt, va_list ap)
{
	if (!d)
		return;
	if (d->count >= VEIL_DIAGS_MAX) {
		d->dropped++;
		return;
	}
	if (d->count == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		char **m = realloc(d->msgs, cap * sizeof(*m));
		if (!m) {
			d->dropped++;
			return;
		}
		d->msgs = m;
		d->cap = cap;
	}
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0) {
		d->dropped++;
		return;
	}
	d->msgs[d->count++] = s;
}

void veil_diag(struct veil_diags *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	veil_vdiag(d, fmt, ap);
	va_end(ap);
}

void veil_diag_at(struct veil_diags *d, const char *file, unsigned line, unsigned col,
		  const char *fmt, ...)
{
	struct veil_buf b;
	veil_buf_init(&b, 64 * 1024);
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int rc = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		if (d)
			d->dropped++;
		veil_buf_free(&b);
		return;
	}
	veil_buf_printf(&b, "%s:%u:%u: %s", file ? file : "<input>", line, col, msg);
	free(msg);
	veil_diag(d, "%s", b.failed ? "error message too long" : b.data);
	veil_buf_free(&b);
}

void veil_diags_print(const struct veil_diags *d, void *stream)
{
	FILE *f = stream;
	for (size_t i = 0; i < d->count; i++)
		fprintf(f, "error: %s\n", d->msgs[i]);
	if (d->dropped)
		fprintf(f, "error: ... and %zu more errors\n", d->dropped);
}

unsigned veil_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 255;
	unsigned row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned prev = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned cur = row[j];
			unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
			unsigned v = prev + cost;
			if (row[j] + 1 < v)
				v = row[j] + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			prev = cur;
		}
	}
	return row[lb] > 255 ? 255 : row[lb];
}

char *veil_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}
