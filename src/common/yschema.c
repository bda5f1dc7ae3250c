#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/ytree.h"

void yerr(struct yctx *c, const struct ynode *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	c->errors++;
	if (n < 0)
		return;
	if (at && at->line)
		veil_diag_at(c->d, c->file, at->line, at->col, "%s", msg);
	else
		veil_diag(c->d, "%s: %s", c->file, msg);
	free(msg);
}

int yexpect(struct yctx *c, const struct ynode *n, enum ytype t, const char *what)
{
	if (n && n->type == t && !(t == YT_SCALAR && ynode_is_null(n)))
		return 0;
	static const char *const names[] = {"", "a scalar", "a mapping", "a list"};
	yerr(c, n, "%s must be %s, found %s", what, names[t], ytype_name(n));
	return VEIL_EINVAL;
}

void ycheck_keys(struct yctx *c, const struct ynode *map, const char *const *allowed,
		 const char *where)
{
	for (size_t i = 0; i < map->count; i++) {
		const char *k = map->keys[i]->str;
		const char *best = NULL;
		unsigned best_d = 255;
		int ok = 0;
		for (const char *const *a = allowed; *a; a++) {
			if (!strcmp(k, *a)) {
				ok = 1;
				break;
			}
			unsigned dist = veil_edit_distance(k, *a);
			if (dist < best_d) {
				best_d = dist;
				best = *a;
			}
		}
		if (ok)
			continue;
		size_t klen = strlen(k);
		if (best && best_d <= 2 + klen / 4)
			yerr(c, map->keys[i], "unknown key '%s' in %s (did you mean '%s'?)", k,
			     where, best);
		else
			yerr(c, map->keys[i], "unknown key '%s' in %s", k, where);
	}
}

static const struct ynode *lookup(struct yctx *c, const struct ynode *map, const char *key,
				  int required, const char *where)
{
	const struct ynode *v = ymap_get(map, key);
	if (v && !ynode_is_null(v))
		return v;
	if (required)
		yerr(c, v ? v : map, "%s: required key '%s' is %s", where, key,
		     v ? "empty" : "missing");
	return NULL;
}

const char *yget_str(struct yctx *c, const struct ynode *map, const char *key, int required,
		     const char *where)
{
	const struct ynode *v = lookup(c, map, key, required, where);
	if (!v)
		return NULL;
	if (v->type != YT_SCALAR) {
		yerr(c, v, "%s: '%s' must be a string, found %s", where, key, ytype_name(v));
		return NULL;
	}
	return v->str;
}

int yget_uint(struct yctx *c, const struct ynode *map, const char *key, unsigned long long max,
	      unsigned long long *out, const char *where)
{
	const struct ynode *v = lookup(c, map, key, 0, where);
	if (!v)
		return 0;
	if (v->type != YT_SCALAR) {
		yerr(c, v, "%s: '%s' must be an integer, found %s", where, key, ytype_name(v));
		return VEIL_EINVAL;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long x = strtoull(v->str, &end, 10);
	if (v->str[0] < '0' || v->str[0] > '9' || *end || errno || x > max) {
		yerr(c, v, "%s: '%s' must be an integer from 0 to %llu, found '%s'", where, key,
		     max, v->str);
		return VEIL_EINVAL;
	}
	*out = x;
	return 1;
}

int yget_bool(struct yctx *c, const struct ynode *map, const char *key, int *out, const char *where)
{
	const struct ynode *v = lookup(c, map, key, 0, where);
	if (!v)
		return 0;
	if (v->type == YT_SCALAR && !strcmp(v->str, "true")) {
		*out = 1;
		return 1;
	}
	if (v->type == YT_SCALAR && !strcmp(v->str, "false")) {
		*out = 0;
		return 1;
	}
	yerr(c, v, "%s: '%s' must be true or false, found %s", where, key,
	     v->type == YT_SCALAR ? v->str : ytype_name(v));
	return VEIL_EINVAL;
}

const struct ynode *yget_coll(struct yctx *c, const struct ynode *map, const char *key,
			      enum ytype t, int required, const char *where)
{
	const struct ynode *v = lookup(c, map, key, required, where);
	if (!v)
		return NULL;
	if (v->type != t) {
		yerr(c, v, "%s: '%s' must be %s, found %s", where, key,
		     t == YT_MAP ? "a mapping" : "a list", ytype_name(v));
		return NULL;
	}
	return v;
}

static char **split(struct yctx *c, const char *s, size_t *count)
{
	size_t n = 0, cap = 8;
	char **out = yarena_alloc(c->arena, cap * sizeof(*out));
	const char *p = s;
	while (out && *p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *start = p;
		while (*p && *p != ' ' && *p != ',' && *p != '\t')
			p++;
		if (n == cap) {
			char **grown = yarena_alloc(c->arena, 2 * cap * sizeof(*out));
			if (!grown)
				return NULL;
			memcpy(grown, out, n * sizeof(*out));
			out = grown;
			cap *= 2;
		}
		char *w = yarena_alloc(c->arena, (size_t)(p - start) + 1);
		if (!w)
			return NULL;
		memcpy(w, start, (size_t)(p - start));
		out[n++] = w;
	}
	*count = n;
	return out;
}

char **yget_strlist(struct yctx *c, const struct ynode *map, const char *key, int split_string,
		    size_t *count, const char *where)
{
	*count = 0;
	const struct ynode *v = lookup(c, map, key, 0, where);
	if (!v)
		return NULL;
	if (v->type == YT_SCALAR) {
		if (split_string)
			return split(c, v->str, count);
		char **out = yarena_alloc(c->arena, sizeof(*out));
		if (out) {
			out[0] = v->str;
			*count = 1;
		}
		return out;
	}
	if (v->type != YT_SEQ) {
		yerr(c, v, "%s: '%s' must be a list of strings, found %s", where, key,
		     ytype_name(v));
		return NULL;
	}
	char **out = yarena_alloc(c->arena, (v->count + 1) * sizeof(*out));
	if (!out)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < v->count; i++) {
		const struct ynode *it = v->items[i];
		if (it->type != YT_SCALAR || ynode_is_null(it)) {
			yerr(c, it, "%s: entries of '%s' must be strings, found %s", where, key,
			     ytype_name(it));
			continue;
		}
		out[n++] = it->str;
	}
	*count = n;
	return out;
}
