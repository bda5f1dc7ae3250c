#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "veil/ytree.h"

static int int_like(const char *s)
{
	const char *p = s;
	if (*p == '-')
		p++;
	if (!*p || strlen(p) > 18)
		return 0;
	if (p[0] == '0' && p[1])
		return 0;
	for (; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	return 1;
}

/* Would a YAML 1.1 or 1.2 reader see something other than this string? */
static int ambiguous(const char *s)
{
	static const char *const words[] = {"true", "false", "yes",  "no", "on",   "off",
					    "y",    "n",     "null", "~",  ".inf", ".nan"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(words); i++)
		if (!strcasecmp(s, words[i]))
			return 1;
	char *end = NULL;
	strtod(s, &end);
	if (end != s && *end == '\0')
		return 1;
	/* YAML 1.1 numbers with '_', sexagesimal numbers, dates, 0b/0o/0x */
	const char *p = s + (*s == '-' || *s == '+');
	if (isdigit((unsigned char)*p) && strspn(p, "0123456789_.:eE+-") == strlen(p))
		return 1;
	if (p[0] == '0' && p[1] && strchr("bBoOxX", p[1]))
		return 1;
	return 0;
}

static int plain_safe(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 512)
		return 0;
	unsigned char c0 = (unsigned char)s[0];
	if (!isalnum(c0) && c0 != '_' && c0 != '/')
		return 0;
	if (s[n - 1] == ' ')
		return 0;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!isalnum(c) && !strchr("_./@- ", c))
			return 0;
	}
	return !ambiguous(s);
}

int veil_yaml_printable(unsigned c)
{
	/* NEL, LS and PS are line breaks to a YAML reader: escaped too */
	return c == 0x09 || c == 0x0a || c == 0x0d || (c >= 0x20 && c <= 0x7e) ||
	       (c >= 0xa0 && c <= 0xd7ff && c != 0x2028 && c != 0x2029) ||
	       (c >= 0xe000 && c <= 0xfffd && c != 0xfeff) || (c >= 0x10000 && c <= 0x10ffff);
}

void yemit_scalar(const char *s, int raw, struct veil_buf *out)
{
	if (raw || plain_safe(s)) {
		veil_buf_puts(out, s);
		return;
	}
	veil_buf_puts(out, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			veil_buf_puts(out, "\\\"");
			break;
		case '\\':
			veil_buf_puts(out, "\\\\");
			break;
		case '\n':
			veil_buf_puts(out, "\\n");
			break;
		case '\t':
			veil_buf_puts(out, "\\t");
			break;
		case '\r':
			veil_buf_puts(out, "\\r");
			break;
		default: {
			unsigned cp;
			size_t n = veil_utf8_decode((const char *)p, strlen((const char *)p), &cp);
			if (n == 0) /* not UTF-8: the byte as U+00NN, the best YAML can do */
				veil_buf_printf(out, "\\x%02x", *p);
			else if (veil_yaml_printable(cp))
				veil_buf_append(out, p, n);
			else if (cp <= 0xff)
				veil_buf_printf(out, "\\x%02x", cp);
			else if (cp <= 0xffff)
				veil_buf_printf(out, "\\u%04x", cp);
			else
				veil_buf_printf(out, "\\U%08x", cp);
			if (n > 1)
				p += n - 1;
		}
		}
	}
	veil_buf_puts(out, "\"");
}

static void emit_scalar_node(const struct ynode *n, struct veil_buf *out)
{
	int raw =
	    n->plain && (int_like(n->str) || !strcmp(n->str, "true") || !strcmp(n->str, "false"));
	yemit_scalar(n->str, raw, out);
}

static void pad(struct veil_buf *out, size_t indent)
{
	static const char spaces[] =
	    "                                                                ";
	while (indent > 0) {
		size_t k = indent < sizeof(spaces) - 1 ? indent : sizeof(spaces) - 1;
		veil_buf_append(out, spaces, k);
		indent -= k;
	}
}

static int sort_cmp(const void *a, const void *b)
{
	const struct ynode *const *x = a;
	const struct ynode *const *y = b;
	return strcmp(x[0]->str, y[0]->str);
}

static void emit_node(const struct ynode *n, size_t indent, int inline_first, struct veil_buf *out);

/* After "key:" or "-": the value on the same line or nested below. */
static void emit_value(const struct ynode *v, size_t indent, struct veil_buf *out)
{
	if (v->type == YT_SCALAR) {
		veil_buf_puts(out, " ");
		emit_scalar_node(v, out);
		veil_buf_puts(out, "\n");
	} else if (v->count == 0) {
		veil_buf_puts(out, v->type == YT_MAP ? " {}\n" : " []\n");
	} else {
		veil_buf_puts(out, "\n");
		emit_node(v, indent + 2, 0, out);
	}
}

static void emit_node(const struct ynode *n, size_t indent, int inline_first, struct veil_buf *out)
{
	if (n->type == YT_SCALAR) {
		pad(out, indent);
		emit_scalar_node(n, out);
		veil_buf_puts(out, "\n");
		return;
	}
	if (n->type == YT_SEQ) {
		for (size_t i = 0; i < n->count; i++) {
			const struct ynode *v = n->items[i];
			if (!(i == 0 && inline_first))
				pad(out, indent);
			if (v->type == YT_MAP && v->count) {
				veil_buf_puts(out, "- ");
				emit_node(v, indent + 2, 1, out);
			} else {
				veil_buf_puts(out, "-");
				emit_value(v, indent, out);
			}
		}
		return;
	}
	/* mapping: (key, value) pairs sorted by key */
	const struct ynode **pairs = malloc(n->count * 2 * sizeof(*pairs));
	if (!pairs) {
		out->failed = 1;
		return;
	}
	for (size_t i = 0; i < n->count; i++) {
		pairs[2 * i] = n->keys[i];
		pairs[2 * i + 1] = n->items[i];
	}
	qsort(pairs, n->count, 2 * sizeof(*pairs), sort_cmp);
	for (size_t i = 0; i < n->count; i++) {
		if (!(i == 0 && inline_first))
			pad(out, indent);
		yemit_scalar(pairs[2 * i]->str, 0, out);
		veil_buf_puts(out, ":");
		emit_value(pairs[2 * i + 1], indent, out);
	}
	free(pairs);
}

int yemit_at(const struct ynode *root, size_t indent, struct veil_buf *out)
{
	if (root->type != YT_SCALAR && root->count == 0) {
		pad(out, indent);
		veil_buf_puts(out, root->type == YT_MAP ? "{}\n" : "[]\n");
	} else {
		emit_node(root, indent, 0, out);
	}
	return out->failed ? VEIL_ENOMEM : 0;
}

int yemit(const struct ynode *root, struct veil_buf *out)
{
	return yemit_at(root, 0, out);
}
