#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "veil/ytree.h"

const struct ylimits ylimits_default = {
    .max_doc_size = 4u << 20,
    .max_depth = 64,
    .max_str = 1u << 20,
    .max_nodes = 200000,
    .max_items = 100000,
};

/* Bump allocator: documents are built once and freed whole. */
struct yarena_chunk {
	struct yarena_chunk *next;
	size_t used, cap;
	_Alignas(max_align_t) unsigned char mem[];
};

struct yarena {
	struct yarena_chunk *head;
	int failed;      /* sticky: an allocation or a put failed (yarena_failed) */
	long fail_after; /* tests: the n-th allocation from yarena_fail_after fails */
};

#define YARENA_CHUNK (64u * 1024)

int yarena_failed(const struct yarena *a)
{
	return !a || a->failed;
}

void yarena_fail_after(struct yarena *a, long n)
{
	a->fail_after = n;
}

void *yarena_alloc(struct yarena *a, size_t size)
{
	if (a->fail_after > 0 && --a->fail_after == 0) {
		a->failed = 1;
		return NULL;
	}
	size = (size + 15) & ~(size_t)15;
	struct yarena_chunk *c = a->head;
	if (!c || c->cap - c->used < size) {
		size_t cap = size > YARENA_CHUNK ? size : YARENA_CHUNK;
		c = malloc(sizeof(*c) + cap);
		if (!c) {
			a->failed = 1;
			return NULL;
		}
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->mem + c->used;
	c->used += size;
	memset(p, 0, size);
	return p;
}

static char *arena_strndup(struct yarena *a, const char *s, size_t n)
{
	char *p = yarena_alloc(a, n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *yarena_strdup(struct yarena *a, const char *s)
{
	return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

char *yarena_printf(struct yarena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *tmp = NULL;
	int n = vasprintf(&tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *p = arena_strndup(a, tmp, (size_t)n);
	free(tmp);
	return p;
}

int ydoc_init(struct ydoc *doc, const char *file)
{
	memset(doc, 0, sizeof(*doc));
	doc->arena = calloc(1, sizeof(*doc->arena));
	if (!doc->arena)
		return VEIL_ENOMEM;
	doc->file = yarena_strdup(doc->arena, file ? file : "<input>");
	return doc->file ? 0 : VEIL_ENOMEM;
}

void ydoc_free(struct ydoc *doc)
{
	if (!doc->arena)
		return;
	struct yarena_chunk *c = doc->arena->head;
	while (c) {
		struct yarena_chunk *n = c->next;
		veil_wipe_free(c); /* a policy's explicit values were parsed into it */
		c = n;
	}
	free(doc->arena);
	memset(doc, 0, sizeof(*doc));
}

/* ---- building ---- */

static struct ynode *new_node(struct yarena *a, enum ytype t)
{
	struct ynode *n = yarena_alloc(a, sizeof(*n));
	if (n)
		n->type = t;
	return n;
}

struct ynode *ynew_map(struct yarena *a)
{
	return new_node(a, YT_MAP);
}

struct ynode *ynew_seq(struct yarena *a)
{
	return new_node(a, YT_SEQ);
}

struct ynode *ynew_str(struct yarena *a, const char *s)
{
	struct ynode *n = new_node(a, YT_SCALAR);
	if (!n)
		return NULL;
	n->str = yarena_strdup(a, s ? s : "");
	if (!n->str)
		return NULL;
	n->len = strlen(n->str);
	return n;
}

struct ynode *ynew_int(struct yarena *a, long long v)
{
	char tmp[32];
	snprintf(tmp, sizeof(tmp), "%lld", v);
	struct ynode *n = ynew_str(a, tmp);
	if (n)
		n->plain = 1;
	return n;
}

struct ynode *ynew_bool(struct yarena *a, int v)
{
	struct ynode *n = ynew_str(a, v ? "true" : "false");
	if (n)
		n->plain = 1;
	return n;
}

static int grow(struct yarena *a, struct ynode *n, int with_keys)
{
	if (n->count < n->cap)
		return 0;
	size_t cap = n->cap ? n->cap * 2 : 4;
	struct ynode **items = yarena_alloc(a, cap * sizeof(*items));
	struct ynode **keys = with_keys ? yarena_alloc(a, cap * sizeof(*keys)) : NULL;
	if (!items || (with_keys && !keys))
		return VEIL_ENOMEM;
	if (n->count) {
		memcpy(items, n->items, n->count * sizeof(*items));
		if (with_keys)
			memcpy(keys, n->keys, n->count * sizeof(*keys));
	}
	n->items = items;
	n->keys = keys;
	n->cap = cap;
	return 0;
}

/* A put into a container that failed to be made, or of a node that failed,
 * marks the arena failed: the tree is incomplete, and its builder's caller
 * finds out with yarena_failed() before it uses the tree. */
static int map_put_node(struct yarena *a, struct ynode *map, struct ynode *key, struct ynode *val)
{
	if (!map || !key || !val || grow(a, map, 1)) {
		a->failed = 1;
		return VEIL_ENOMEM;
	}
	map->keys[map->count] = key;
	map->items[map->count++] = val;
	return 0;
}

int ymap_put(struct yarena *a, struct ynode *map, const char *key, struct ynode *val)
{
	return map_put_node(a, map, ynew_str(a, key), val);
}

int ymap_put_str(struct yarena *a, struct ynode *map, const char *key, const char *val)
{
	return ymap_put(a, map, key, ynew_str(a, val));
}

int yseq_push(struct yarena *a, struct ynode *seq, struct ynode *val)
{
	if (!seq || !val || grow(a, seq, 0)) {
		a->failed = 1;
		return VEIL_ENOMEM;
	}
	seq->items[seq->count++] = val;
	return 0;
}

struct ynode *ymap_get(const struct ynode *map, const char *key)
{
	if (!map || map->type != YT_MAP)
		return NULL;
	for (size_t i = 0; i < map->count; i++)
		if (strcmp(map->keys[i]->str, key) == 0)
			return map->items[i];
	return NULL;
}

int ynode_is_null(const struct ynode *n)
{
	if (!n)
		return 1;
	if (n->type != YT_SCALAR || !n->plain)
		return 0;
	return n->len == 0 || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
	       !strcmp(n->str, "Null") || !strcmp(n->str, "NULL");
}

const char *ytype_name(const struct ynode *n)
{
	if (ynode_is_null(n))
		return "nothing (null)";
	switch (n->type) {
	case YT_MAP:
		return "a mapping";
	case YT_SEQ:
		return "a list";
	default:
		return "a scalar";
	}
}

/* ---- parsing ---- */

struct frame {
	struct ynode *node;
	struct ynode *pending_key; /* map: key read, value not yet */
};

struct parser {
	struct ydoc *doc;
	const struct ylimits *lim;
	struct veil_diags *d;
	struct frame *stack;
	size_t depth;
	size_t nodes;
	int failed;
};

static void perr(struct parser *p, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void perr(struct parser *p, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) >= 0) {
		veil_diag_at(p->d, p->doc->file, line, col, "%s", msg);
		free(msg);
	}
	va_end(ap);
	p->failed = 1;
}

static int key_cmp(const void *a, const void *b)
{
	const struct ynode *x = *(const struct ynode *const *)a;
	const struct ynode *y = *(const struct ynode *const *)b;
	int c = strcmp(x->str, y->str);
	if (c)
		return c;
	return x->line != y->line ? (x->line < y->line ? -1 : 1) : (x->col < y->col ? -1 : 1);
}

static int check_duplicates(struct parser *p, struct ynode *map)
{
	if (map->count < 2)
		return 0;
	struct ynode **sorted = malloc(map->count * sizeof(*sorted));
	if (!sorted)
		return VEIL_ENOMEM;
	memcpy(sorted, map->keys, map->count * sizeof(*sorted));
	qsort(sorted, map->count, sizeof(*sorted), key_cmp);
	size_t first = 0;
	for (size_t i = 1; i < map->count; i++) {
		if (strcmp(sorted[first]->str, sorted[i]->str)) {
			first = i;
			continue;
		}
		perr(p, sorted[i]->line, sorted[i]->col, "duplicate key '%s' (first at line %u)",
		     sorted[i]->str, sorted[first]->line);
	}
	free(sorted);
	return 0;
}

/* Attach a finished node to its parent (or make it the root). */
static int attach(struct parser *p, struct ynode *n)
{
	if (p->depth == 0) {
		p->doc->root = n;
		return 0;
	}
	struct frame *f = &p->stack[p->depth - 1];
	struct ynode *parent = f->node;
	if (parent->count >= p->lim->max_items) {
		perr(p, n->line, n->col, "more than %zu entries in one %s", p->lim->max_items,
		     parent->type == YT_MAP ? "mapping" : "list");
		return VEIL_ELIMIT;
	}
	if (parent->type == YT_SEQ)
		return yseq_push(p->doc->arena, parent, n);
	if (!f->pending_key) {
		if (n->type != YT_SCALAR) {
			perr(p, n->line, n->col, "mapping keys must be plain strings, found %s",
			     ytype_name(n));
			return VEIL_EINVAL;
		}
		f->pending_key = n;
		return 0;
	}
	int rc = map_put_node(p->doc->arena, parent, f->pending_key, n);
	f->pending_key = NULL;
	return rc;
}

static struct ynode *node_at(struct parser *p, enum ytype t, const yaml_mark_t *m)
{
	if (++p->nodes > p->lim->max_nodes) {
		perr(p, (unsigned)m->line + 1, (unsigned)m->column + 1,
		     "document has more than %zu nodes", p->lim->max_nodes);
		return NULL;
	}
	struct ynode *n = new_node(p->doc->arena, t);
	if (!n) {
		p->failed = 1;
		return NULL;
	}
	n->line = (unsigned)m->line + 1;
	n->col = (unsigned)m->column + 1;
	return n;
}

static int handle(struct parser *p, yaml_event_t *ev, int *docs, int *done)
{
	const yaml_mark_t *m = &ev->start_mark;
	unsigned line = (unsigned)m->line + 1, col = (unsigned)m->column + 1;
	struct ynode *n;
	switch (ev->type) {
	case YAML_STREAM_START_EVENT:
	case YAML_DOCUMENT_END_EVENT:
		return 0;
	case YAML_STREAM_END_EVENT:
		*done = 1;
		return 0;
	case YAML_DOCUMENT_START_EVENT:
		if (++*docs > 1) {
			perr(p, line, col, "more than one YAML document ('---') in one file");
			return VEIL_EINVAL;
		}
		return 0;
	case YAML_ALIAS_EVENT:
		perr(p, line, col, "YAML aliases (*%s) are not supported",
		     (const char *)ev->data.alias.anchor);
		return VEIL_EINVAL;
	case YAML_SCALAR_EVENT: {
		size_t len = ev->data.scalar.length;
		if (len > p->lim->max_str) {
			perr(p, line, col, "string of %zu bytes is longer than the limit of %zu",
			     len, p->lim->max_str);
			return VEIL_ELIMIT;
		}
		if (memchr(ev->data.scalar.value, '\0', len)) {
			perr(p, line, col, "NUL character in string");
			return VEIL_EINVAL;
		}
		if (!(n = node_at(p, YT_SCALAR, m)))
			return VEIL_ELIMIT;
		n->str = arena_strndup(p->doc->arena, (const char *)ev->data.scalar.value, len);
		if (!n->str)
			return VEIL_ENOMEM;
		n->len = len;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		return attach(p, n);
	}
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (p->depth >= p->lim->max_depth) {
			perr(p, line, col, "nesting deeper than the limit of %zu levels",
			     p->lim->max_depth);
			return VEIL_ELIMIT;
		}
		if (!(n = node_at(p, ev->type == YAML_MAPPING_START_EVENT ? YT_MAP : YT_SEQ, m)))
			return VEIL_ELIMIT;
		p->stack[p->depth].node = n;
		p->stack[p->depth].pending_key = NULL;
		p->depth++;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		n = p->stack[--p->depth].node;
		if (n->type == YT_MAP)
			check_duplicates(p, n);
		return attach(p, n);
	default:
		return 0;
	}
}

int ydoc_parse(struct ydoc *doc, const char *data, size_t size, const struct ylimits *lim,
	       struct veil_diags *d)
{
	if (!lim)
		lim = &ylimits_default;
	if (size > lim->max_doc_size) {
		veil_diag(d, "%s: document is %zu bytes, larger than the limit of %zu bytes",
			  doc->file, size, lim->max_doc_size);
		return VEIL_ELIMIT;
	}
	struct parser p = {.doc = doc, .lim = lim, .d = d};
	p.stack = calloc(lim->max_depth + 1, sizeof(*p.stack));
	if (!p.stack)
		return VEIL_ENOMEM;
	yaml_parser_t yp;
	if (!yaml_parser_initialize(&yp)) {
		free(p.stack);
		return VEIL_ENOMEM;
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)data, size);
	yaml_parser_set_encoding(&yp, YAML_UTF8_ENCODING);
	int docs = 0, done = 0, rc = 0;
	while (!done) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&yp, &ev)) {
			yaml_mark_t mk = yp.problem_mark;
			if (yp.error == YAML_READER_ERROR) {
				/* libyaml gives reader errors as a byte offset only */
				mk.line = mk.column = 0;
				for (size_t i = 0; i < yp.problem_offset && i < size; i++) {
					if (data[i] == '\n')
						mk.line++, mk.column = 0;
					else if (((unsigned char)data[i] & 0xc0) != 0x80)
						mk.column++;
				}
			}
			const yaml_mark_t *m = &mk;
			perr(&p, (unsigned)m->line + 1, (unsigned)m->column + 1,
			     "not valid YAML: %s%s%s", yp.problem ? yp.problem : "parse error",
			     yp.context ? " " : "", yp.context ? yp.context : "");
			rc = VEIL_EINVAL;
			break;
		}
		rc = handle(&p, &ev, &docs, &done);
		yaml_event_delete(&ev);
		if (rc)
			break;
	}
	yaml_parser_delete(&yp);
	free(p.stack);
	if (!rc && p.failed)
		rc = VEIL_EINVAL;
	if (!rc && (!doc->root || ynode_is_null(doc->root))) {
		veil_diag(d, "%s: file is empty (no YAML document)", doc->file);
		rc = VEIL_EINVAL;
	}
	if (rc)
		doc->root = NULL;
	return rc;
}

int ydoc_load(struct ydoc *doc, const char *path, const struct ylimits *lim, struct veil_diags *d)
{
	if (!lim)
		lim = &ylimits_default;
	char *data = NULL;
	size_t size = 0;
	int rc = veil_read_file(path, lim->max_doc_size, &data, &size, d);
	if (rc)
		return rc;
	rc = ydoc_parse(doc, data, size, lim, d);
	free(data);
	return rc;
}

size_t veil_utf8_decode(const char *str, size_t len, unsigned *cp)
{
	const unsigned char *s = (const unsigned char *)str;
	if (len == 0)
		return 0;
	unsigned c = s[0];
	size_t n;
	unsigned min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		n = 1, min = 0x80, c &= 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		n = 2, min = 0x800, c &= 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		n = 3, min = 0x10000, c &= 0x07;
	} else {
		return 0;
	}
	if (len - 1 < n)
		return 0;
	for (size_t k = 1; k <= n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[k] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n + 1;
}

int veil_utf8_valid(const char *s, size_t len)
{
	size_t i = 0;
	unsigned cp;
	while (i < len) {
		size_t n = veil_utf8_decode(s + i, len - i, &cp);
		if (!n)
			return 0;
		i += n;
	}
	return 1;
}
