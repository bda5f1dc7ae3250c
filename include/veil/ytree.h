/* A bounded YAML document tree (libyaml underneath), the schema helpers that
 * turn it into typed models with file:line:column errors, and the canonical
 * emitter every file veil writes goes through.
 *
 * Ownership: every node and string of a document lives in its arena and is
 * released by ydoc_free(); nothing in a tree is freed on its own. */
#ifndef VEIL_YTREE_H
#define VEIL_YTREE_H

#include <stddef.h>

#include "veil/common.h"

enum ytype { YT_SCALAR = 1, YT_MAP, YT_SEQ };

struct ynode {
	enum ytype type;
	unsigned line, col; /* 1-based; 0 for built nodes */
	unsigned plain : 1; /* scalar written without quotes (numbers/null/bool may be plain) */
	char *str;          /* scalar: NUL-terminated, never contains NUL */
	size_t len;         /* scalar: bytes */
	size_t count;       /* map: pairs; seq: items */
	size_t cap;
	struct ynode **keys;  /* map: scalar key nodes */
	struct ynode **items; /* map: values; seq: items */
};

struct ylimits {
	size_t max_doc_size; /* bytes */
	size_t max_depth;    /* nested collections */
	size_t max_str;      /* bytes of one scalar */
	size_t max_nodes;    /* nodes in the document */
	size_t max_items;    /* entries of one mapping or list */
};
extern const struct ylimits ylimits_default;

struct yarena;

struct ydoc {
	struct yarena *arena;
	struct ynode *root;
	char *file; /* in the arena */
};

int ydoc_init(struct ydoc *doc, const char *file) VEIL_MUST_CHECK;
/* Parse one YAML document. Aliases, multiple documents, NUL in strings and
 * duplicate mapping keys are errors. */
int ydoc_parse(struct ydoc *doc, const char *data, size_t size, const struct ylimits *lim,
	       struct veil_diags *d) VEIL_MUST_CHECK;
int ydoc_load(struct ydoc *doc, const char *path, const struct ylimits *lim,
	      struct veil_diags *d) VEIL_MUST_CHECK;
void ydoc_free(struct ydoc *doc);

void *yarena_alloc(struct yarena *a, size_t size) VEIL_MUST_CHECK; /* zeroed */
/* Sticky: 1 once an allocation from a, or a put of a node that failed to be
 * made (or into one), failed. A builder checks it before it uses the tree:
 * a tree built through a failure is incomplete, never a result. */
int yarena_failed(const struct yarena *a);
/* Tests only: the n-th allocation from now fails (0: none). */
void yarena_fail_after(struct yarena *a, long n);
char *yarena_strdup(struct yarena *a, const char *s) VEIL_MUST_CHECK;
char *yarena_printf(struct yarena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) VEIL_MUST_CHECK;

/* Building trees (NULL on ENOMEM, and the arena marked failed; a put into
 * or of NULL is an error that marks it too). The puts' results need not be
 * checked one by one (they carry no VEIL_MUST_CHECK): a builder checks
 * yarena_failed() once before it uses the tree. */
struct ynode *ynew_map(struct yarena *a) VEIL_MUST_CHECK;
struct ynode *ynew_seq(struct yarena *a) VEIL_MUST_CHECK;
struct ynode *ynew_str(struct yarena *a, const char *s) VEIL_MUST_CHECK;
struct ynode *ynew_int(struct yarena *a, long long v) VEIL_MUST_CHECK;
struct ynode *ynew_bool(struct yarena *a, int v) VEIL_MUST_CHECK;
int ymap_put(struct yarena *a, struct ynode *map, const char *key, struct ynode *val);
int ymap_put_str(struct yarena *a, struct ynode *map, const char *key, const char *val);
int yseq_push(struct yarena *a, struct ynode *seq, struct ynode *val);

struct ynode *ymap_get(const struct ynode *map, const char *key);
int ynode_is_null(const struct ynode *n);
const char *ytype_name(const struct ynode *n);

/* Canonical form: block style, two-space indent, mapping keys sorted bytewise,
 * lists in order, strings plain when unambiguous and double-quoted otherwise.
 * The same tree always gives the same bytes. */
int yemit(const struct ynode *root, struct veil_buf *out) VEIL_MUST_CHECK;
/* Emit a tree as block YAML nested at `indent` spaces (for templates). */
int yemit_at(const struct ynode *root, size_t indent, struct veil_buf *out) VEIL_MUST_CHECK;
void yemit_scalar(const char *s, int raw, struct veil_buf *out);

/* Schema helpers: each reports file:line:column errors into ctx->d. */
struct yctx {
	const char *file;
	struct veil_diags *d;
	struct yarena *arena;
	unsigned errors;
};
void yerr(struct yctx *c, const struct ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 0 if n has type t; otherwise an error naming `what` and the found type. */
int yexpect(struct yctx *c, const struct ynode *n, enum ytype t, const char *what) VEIL_MUST_CHECK;
/* Unknown keys are errors naming the key and suggesting the closest allowed one. */
void ycheck_keys(struct yctx *c, const struct ynode *map, const char *const *allowed,
		 const char *where);
/* Scalar value of key as a string; NULL if absent or null (error if required). */
const char *yget_str(struct yctx *c, const struct ynode *map, const char *key, int required,
		     const char *where);
/* Unsigned integer value of key: 1 if present (*out set), 0 if absent,
 * VEIL_EINVAL on error. Errors are reported and counted in c->errors, which a
 * model checks once at the end, so these two do not carry VEIL_MUST_CHECK. */
int yget_uint(struct yctx *c, const struct ynode *map, const char *key, unsigned long long max,
	      unsigned long long *out, const char *where);
/* Boolean (true/false); same returns as yget_uint. */
int yget_bool(struct yctx *c, const struct ynode *map, const char *key, int *out,
	      const char *where);
/* Collection value of key; NULL if absent/null or wrong type (error). */
const struct ynode *yget_coll(struct yctx *c, const struct ynode *map, const char *key,
			      enum ytype t, int required, const char *where);
/* A list of strings, or a single string, or a comma/space separated string
 * (split_string): array of arena strings, count in *count. */
char **yget_strlist(struct yctx *c, const struct ynode *map, const char *key, int split_string,
		    size_t *count, const char *where);

int veil_utf8_valid(const char *s, size_t len);
/* One code point: its byte length, or 0 if s does not start with valid UTF-8. */
size_t veil_utf8_decode(const char *s, size_t len, unsigned *cp);
/* May a double-quoted YAML string hold this code point unescaped? (YAML's
 * printable set less the line breaks NEL, LS, PS) */
int veil_yaml_printable(unsigned cp);

#endif
