#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/common.h"

void veil_buf_init(struct veil_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max ? max : VEIL_BUF_DEFAULT_MAX;
}

void veil_buf_free(struct veil_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->size = b->cap = 0;
}

static int reserve(struct veil_buf *b, size_t extra)
{
	if (b->failed)
		return VEIL_ENOMEM;
	if (extra > b->max || b->size + extra + 1 > b->max) {
		b->failed = 1;
		return VEIL_ELIMIT;
	}
	size_t need = b->size + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > b->max)
		cap = b->max;
	char *p = realloc(b->data, cap);
	if (!p) {
		b->failed = 1;
		return VEIL_ENOMEM;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int veil_buf_append(struct veil_buf *b, const void *p, size_t n)
{
	int rc = reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->size, p, n);
	b->size += n;
	b->data[b->size] = '\0';
	return 0;
}

int veil_buf_puts(struct veil_buf *b, const char *s)
{
	return veil_buf_append(b, s, strlen(s));
}

int veil_buf_printf(struct veil_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char tmp[256];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return VEIL_EINVAL;
	}
	if ((size_t)n < sizeof(tmp))
		return veil_buf_append(b, tmp, (size_t)n);
	int rc = reserve(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->size, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->size += (size_t)n;
	return 0;
}
