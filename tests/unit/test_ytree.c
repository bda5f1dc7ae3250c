/* Unit tests: the bounded YAML tree (ytree.c), the canonical emitter (yemit.c)
 * and the schema helpers (yschema.c). Adversarial inputs first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "veil/ytree.h"

/* Every test gets a fresh document named "t.yaml" and an empty diags list. */
static struct ydoc doc;
static struct veil_diags diags;
/* for round trips: owned by the fixture so a failed assertion leaks nothing */
static struct ydoc back;
static struct veil_buf first, second;

static int setup(void **state)
{
	(void)state;
	veil_diags_init(&diags);
	return ydoc_init(&doc, "t.yaml");
}

static int teardown(void **state)
{
	(void)state;
	ydoc_free(&doc);
	ydoc_free(&back);
	veil_buf_free(&first);
	veil_buf_free(&second);
	veil_diags_free(&diags);
	return 0;
}

static int parse_lim(const char *text, const struct ylimits *lim)
{
	return ydoc_parse(&doc, text, strlen(text), lim, &diags);
}

static int parse(const char *text)
{
	return parse_lim(text, NULL);
}

/* The only diagnostic is exactly `want`. */
static void assert_one_diag(const char *want)
{
	if (diags.count != 1)
		for (size_t i = 0; i < diags.count; i++)
			print_message("diag[%zu]: %s\n", i, diags.msgs[i]);
	assert_int_equal(diags.count, 1);
	assert_string_equal(diags.msgs[0], want);
}

static void assert_no_diags(void)
{
	for (size_t i = 0; i < diags.count; i++)
		print_message("unexpected diag: %s\n", diags.msgs[i]);
	assert_int_equal(diags.count, 0);
}

static struct ylimits base_limits(void)
{
	struct ylimits l = ylimits_default;
	return l;
}

/* Emit `n` and compare with `want`. */
static void assert_emits(const struct ynode *n, const char *want)
{
	struct veil_buf b;
	veil_buf_init(&b, 0);
	assert_int_equal(yemit(n, &b), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, want);
	veil_buf_free(&b);
}

/* Value emitted for one string under key "k". */
static char *emitted_value(const char *s)
{
	struct ynode *m = ynew_map(doc.arena);
	assert_int_equal(ymap_put_str(doc.arena, m, "k", s), 0);
	struct veil_buf b;
	veil_buf_init(&b, 0);
	assert_int_equal(yemit(m, &b), 0);
	assert_true(b.size >= 4);
	assert_memory_equal(b.data, "k: ", 3);
	assert_int_equal(b.data[b.size - 1], '\n');
	char *v = strndup(b.data + 3, b.size - 4);
	veil_buf_free(&b);
	return v;
}

static void assert_emitted_value(const char *s, const char *want)
{
	char *v = emitted_value(s);
	assert_string_equal(v, want);
	free(v);
}

/* ---- parser: refusals ---- */

static void test_parse_duplicate_key_names_first_line(void **state)
{
	(void)state;
	assert_int_equal(parse("x: 1\ny: 2\nx: 3\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:3:1: duplicate key 'x' (first at line 1)");
	assert_null(doc.root);
}

static void test_parse_duplicate_key_in_nested_map(void **state)
{
	(void)state;
	assert_int_equal(parse("top:\n  a: 1\n  b: 2\n  a: 3\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:4:3: duplicate key 'a' (first at line 2)");
}

static void test_parse_duplicate_key_quoted_and_plain(void **state)
{
	(void)state;
	assert_int_equal(parse("x: 1\n\"x\": 2\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:2:1: duplicate key 'x' (first at line 1)");
}

/* A key given three times: every repeat should point at the first one. */
static void test_parse_duplicate_key_thrice_names_first_line(void **state)
{
	(void)state;
	assert_int_equal(parse("x: 1\nx: 2\nx: 3\n"), VEIL_EINVAL);
	assert_int_equal(diags.count, 2);
	assert_string_equal(diags.msgs[0], "t.yaml:2:1: duplicate key 'x' (first at line 1)");
	assert_string_equal(diags.msgs[1], "t.yaml:3:1: duplicate key 'x' (first at line 1)");
}

static void test_parse_alias_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("a: &anc 1\nb: *anc\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:2:4: YAML aliases (*anc) are not supported");
	assert_null(doc.root);
}

static void test_parse_merge_key_alias_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("base: &b {x: 1}\nderived:\n  <<: *b\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:3:7: YAML aliases (*b) are not supported");
}

static void test_parse_depth_limit(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_depth = 2;
	assert_int_equal(parse_lim("a:\n  b:\n    c: 1\n", &l), VEIL_ELIMIT);
	assert_one_diag("t.yaml:3:5: nesting deeper than the limit of 2 levels");
	assert_null(doc.root);
}

static void test_parse_depth_limit_flow_lists(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_depth = 3;
	assert_int_equal(parse_lim("[[[[1]]]]", &l), VEIL_ELIMIT);
	assert_one_diag("t.yaml:1:4: nesting deeper than the limit of 3 levels");
}

static void test_parse_depth_exactly_at_limit_accepted(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_depth = 2;
	assert_int_equal(parse_lim("a:\n  b: 1\n", &l), 0);
	assert_no_diags();
	assert_string_equal(ymap_get(ymap_get(doc.root, "a"), "b")->str, "1");
}

static void test_parse_doc_size_limit(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_doc_size = 8;
	assert_int_equal(parse_lim("abc: 1234\n", &l), VEIL_ELIMIT);
	assert_one_diag("t.yaml: document is 10 bytes, larger than the limit of 8 bytes");
	assert_null(doc.root);
}

static void test_parse_doc_size_exactly_at_limit_accepted(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_doc_size = 6;
	assert_int_equal(parse_lim("a: 12\n", &l), 0);
	assert_no_diags();
}

static void test_parse_max_items_list(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_items = 2;
	assert_int_equal(parse_lim("[1, 2, 3]", &l), VEIL_ELIMIT);
	assert_one_diag("t.yaml:1:8: more than 2 entries in one list");
}

static void test_parse_max_items_mapping(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_items = 2;
	assert_int_equal(parse_lim("a: 1\nb: 2\nc: 3\n", &l), VEIL_ELIMIT);
	assert_one_diag("t.yaml:3:1: more than 2 entries in one mapping");
}

static void test_parse_max_items_exactly_at_limit_accepted(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_items = 2;
	assert_int_equal(parse_lim("a: [1, 2]\nb: 2\n", &l), 0);
	assert_no_diags();
	assert_int_equal(doc.root->count, 2);
}

static void test_parse_max_str(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_str = 4;
	assert_int_equal(parse_lim("a: 12345\n", &l), VEIL_ELIMIT);
	assert_one_diag("t.yaml:1:4: string of 5 bytes is longer than the limit of 4");
}

static void test_parse_max_str_applies_to_keys(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_str = 4;
	assert_int_equal(parse_lim("abcde: 1\n", &l), VEIL_ELIMIT);
	assert_one_diag("t.yaml:1:1: string of 5 bytes is longer than the limit of 4");
}

static void test_parse_max_nodes(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_nodes = 3; /* the mapping, "a", "1" */
	assert_int_equal(parse_lim("a: 1\nb: 2\n", &l), VEIL_ELIMIT);
	assert_one_diag("t.yaml:2:1: document has more than 3 nodes");
}

static void test_parse_max_nodes_exactly_at_limit_accepted(void **state)
{
	(void)state;
	struct ylimits l = base_limits();
	l.max_nodes = 5;
	assert_int_equal(parse_lim("a: 1\nb: 2\n", &l), 0);
	assert_no_diags();
}

static void test_parse_nul_escape_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("a: \"x\\0y\"\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:1:4: NUL character in string");
}

static void test_parse_nul_escape_in_key_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("\"k\\x00\": 1\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:1:1: NUL character in string");
}

static void test_parse_raw_nul_byte_refused(void **state)
{
	(void)state;
	static const char text[] = "a: x\0y\n";
	int rc = ydoc_parse(&doc, text, sizeof(text) - 1, NULL, &diags);
	assert_int_equal(rc, VEIL_EINVAL);
	assert_int_equal(diags.count, 1);
	assert_non_null(
	    strstr(diags.msgs[0], ": not valid YAML: control characters are not allowed"));
	assert_null(doc.root);
}

static void test_parse_two_documents_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("a: 1\n---\nb: 2\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:2:1: more than one YAML document ('---') in one file");
	assert_null(doc.root);
}

static void test_parse_empty_input(void **state)
{
	(void)state;
	assert_int_equal(parse(""), VEIL_EINVAL);
	assert_one_diag("t.yaml: file is empty (no YAML document)");
	assert_null(doc.root);
}

static void test_parse_comment_only_input(void **state)
{
	(void)state;
	assert_int_equal(parse("# nothing here\n\n   # still nothing\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml: file is empty (no YAML document)");
}

static void test_parse_null_document(void **state)
{
	(void)state;
	assert_int_equal(parse("~\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml: file is empty (no YAML document)");
}

static void test_parse_invalid_utf8_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("a: caf\xe9\n"), VEIL_EINVAL);
	assert_int_equal(diags.count, 1);
	assert_true(strncmp(diags.msgs[0], "t.yaml:", 7) == 0);
	assert_non_null(strstr(diags.msgs[0], ": not valid YAML: incomplete UTF-8 octet sequence"));
	assert_null(doc.root);
}

/* libyaml reports reader errors (bad encoding, control characters) by byte
 * offset; the message must still point at the line of the bad byte. */
static void test_parse_invalid_utf8_reports_its_line(void **state)
{
	(void)state;
	assert_int_equal(parse("a: 1\nb: 2\nc: \xff\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:3:4: not valid YAML: invalid leading UTF-8 octet");
}

static void test_parse_utf8_surrogate_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("a: \xed\xa0\x80\n"), VEIL_EINVAL);
	assert_int_equal(diags.count, 1);
	assert_non_null(strstr(diags.msgs[0], "not valid YAML: invalid"));
}

static void test_parse_sequence_as_key_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("? [a, b]\n: 1\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:1:3: mapping keys must be plain strings, found a list");
	assert_null(doc.root);
}

static void test_parse_mapping_as_key_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("{a: 1}: 2\n"), VEIL_EINVAL);
	assert_one_diag("t.yaml:1:1: mapping keys must be plain strings, found a mapping");
}

static void test_parse_syntax_error_has_position(void **state)
{
	(void)state;
	assert_int_equal(parse("a: [1, 2\nb: 3\n"), VEIL_EINVAL);
	assert_int_equal(diags.count, 1);
	assert_true(strncmp(diags.msgs[0], "t.yaml:", 7) == 0);
	assert_non_null(strstr(diags.msgs[0], ": not valid YAML: "));
	assert_null(doc.root);
}

static void test_load_missing_file(void **state)
{
	(void)state;
	assert_int_equal(ydoc_load(&doc, "/nonexistent/veil-test.yaml", NULL, &diags), VEIL_ENOENT);
	assert_one_diag("/nonexistent/veil-test.yaml: cannot open: No such file or directory");
}

/* ---- parser: accepted documents ---- */

static void test_parse_map_seq_scalars_with_positions(void **state)
{
	(void)state;
	const char *text = "name: app\n"
			   "list:\n"
			   "  - one\n"
			   "  - \"two words\"\n"
			   "nested:\n"
			   "  port: 443\n"
			   "  flag: 'true'\n";
	assert_int_equal(parse(text), 0);
	assert_no_diags();
	const struct ynode *r = doc.root;
	assert_non_null(r);
	assert_int_equal(r->type, YT_MAP);
	assert_int_equal(r->line, 1);
	assert_int_equal(r->col, 1);
	assert_int_equal(r->count, 3);
	/* keys keep document order */
	assert_string_equal(r->keys[0]->str, "name");
	assert_string_equal(r->keys[1]->str, "list");
	assert_string_equal(r->keys[2]->str, "nested");
	assert_int_equal(r->keys[1]->line, 2);
	assert_int_equal(r->keys[1]->col, 1);

	const struct ynode *name = ymap_get(r, "name");
	assert_int_equal(name->type, YT_SCALAR);
	assert_string_equal(name->str, "app");
	assert_int_equal(name->len, 3);
	assert_int_equal(name->line, 1);
	assert_int_equal(name->col, 7);
	assert_true(name->plain);

	const struct ynode *list = ymap_get(r, "list");
	assert_int_equal(list->type, YT_SEQ);
	assert_int_equal(list->count, 2);
	assert_int_equal(list->line, 3);
	assert_int_equal(list->col, 3);
	assert_string_equal(list->items[0]->str, "one");
	assert_int_equal(list->items[0]->line, 3);
	assert_int_equal(list->items[0]->col, 5);
	assert_string_equal(list->items[1]->str, "two words");
	assert_false(list->items[1]->plain);
	assert_int_equal(list->items[1]->line, 4);
	assert_int_equal(list->items[1]->col, 5);

	const struct ynode *nested = ymap_get(r, "nested");
	assert_int_equal(nested->type, YT_MAP);
	const struct ynode *port = ymap_get(nested, "port");
	assert_string_equal(port->str, "443");
	assert_true(port->plain);
	assert_int_equal(port->line, 6);
	assert_int_equal(port->col, 9);
	const struct ynode *flag = ymap_get(nested, "flag");
	assert_string_equal(flag->str, "true");
	assert_false(flag->plain);
	assert_null(ymap_get(r, "missing"));
}

static void test_parse_escapes_decoded(void **state)
{
	(void)state;
	assert_int_equal(parse("a: \"x\\ty\\n\\\"\\\\\\u00e9\"\n"), 0);
	const struct ynode *a = ymap_get(doc.root, "a");
	assert_string_equal(a->str, "x\ty\n\"\\\xc3\xa9");
	assert_int_equal(a->len, 8);
}

static void test_parse_null_forms(void **state)
{
	(void)state;
	assert_int_equal(parse("a:\nb: ~\nc: null\nd: NULL\ne: \"null\"\nf: ''\n"), 0);
	assert_true(ynode_is_null(ymap_get(doc.root, "a")));
	assert_true(ynode_is_null(ymap_get(doc.root, "b")));
	assert_true(ynode_is_null(ymap_get(doc.root, "c")));
	assert_true(ynode_is_null(ymap_get(doc.root, "d")));
	assert_false(ynode_is_null(ymap_get(doc.root, "e")));
	assert_false(ynode_is_null(ymap_get(doc.root, "f")));
	assert_true(ynode_is_null(NULL));
	assert_string_equal(ytype_name(ymap_get(doc.root, "b")), "nothing (null)");
	assert_string_equal(ytype_name(ymap_get(doc.root, "e")), "a scalar");
}

static void test_parse_anchor_without_alias_accepted(void **state)
{
	(void)state;
	assert_int_equal(parse("a: &x 1\n"), 0);
	assert_string_equal(ymap_get(doc.root, "a")->str, "1");
}

static void test_parse_explicit_document_markers_accepted(void **state)
{
	(void)state;
	assert_int_equal(parse("---\na: 1\n...\n"), 0);
	assert_no_diags();
	assert_string_equal(ymap_get(doc.root, "a")->str, "1");
}

/* ---- emitter ---- */

static void test_emit_keys_sorted_bytewise(void **state)
{
	(void)state;
	struct yarena *a = doc.arena;
	struct ynode *m = ynew_map(a);
	const char *keys[] = {"b", "a1", "B", "_x", "a", "Z"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(keys); i++)
		assert_int_equal(ymap_put_str(a, m, keys[i], "v"), 0);
	assert_emits(m, "B: v\nZ: v\n_x: v\na: v\na1: v\nb: v\n");
}

static void test_emit_nested_seq_of_maps_layout(void **state)
{
	(void)state;
	struct yarena *a = doc.arena;
	struct ynode *root = ynew_map(a), *items = ynew_seq(a);
	struct ynode *m1 = ynew_map(a), *m2 = ynew_map(a), *tags = ynew_seq(a);
	ymap_put_str(a, m1, "name", "one");
	ymap_put(a, m1, "port", ynew_int(a, 8080));
	yseq_push(a, tags, ynew_str(a, "x"));
	yseq_push(a, tags, ynew_str(a, "y")); /* YAML 1.1 boolean */
	ymap_put(a, m2, "tags", tags);
	ymap_put_str(a, m2, "name", "two");
	yseq_push(a, items, m1);
	yseq_push(a, items, m2);
	ymap_put(a, root, "items", items);
	struct ynode *inner = ynew_map(a);
	ymap_put_str(a, inner, "k", "v");
	struct ynode *outer = ynew_map(a);
	ymap_put(a, outer, "inner", inner);
	ymap_put(a, root, "outer", outer);
	assert_emits(root, "items:\n"
			   "  - name: one\n"
			   "    port: 8080\n"
			   "  - name: two\n"
			   "    tags:\n"
			   "      - x\n"
			   "      - \"y\"\n"
			   "outer:\n"
			   "  inner:\n"
			   "    k: v\n");
}

static void test_emit_seq_in_seq_layout(void **state)
{
	(void)state;
	struct yarena *a = doc.arena;
	struct ynode *outer = ynew_seq(a), *inner = ynew_seq(a);
	yseq_push(a, inner, ynew_str(a, "a"));
	yseq_push(a, inner, ynew_str(a, "b"));
	yseq_push(a, outer, inner);
	yseq_push(a, outer, ynew_str(a, "c"));
	assert_emits(outer, "-\n  - a\n  - b\n- c\n");
}

static void test_emit_empty_collections(void **state)
{
	(void)state;
	struct yarena *a = doc.arena;
	struct ynode *root = ynew_map(a), *seq = ynew_seq(a);
	ymap_put(a, root, "m", ynew_map(a));
	ymap_put(a, root, "s", ynew_seq(a));
	yseq_push(a, seq, ynew_map(a));
	yseq_push(a, seq, ynew_seq(a));
	ymap_put(a, root, "t", seq);
	assert_emits(root, "m: {}\ns: []\nt:\n  - {}\n  - []\n");
	assert_emits(ynew_map(a), "{}\n");
	assert_emits(ynew_seq(a), "[]\n");
}

static void test_emit_scalar_root(void **state)
{
	(void)state;
	assert_emits(ynew_str(doc.arena, "hello"), "hello\n");
	assert_emits(ynew_str(doc.arena, "yes"), "\"yes\"\n");
}

static void test_emit_quotes_ambiguous_words(void **state)
{
	(void)state;
	assert_emitted_value("yes", "\"yes\"");
	assert_emitted_value("no", "\"no\"");
	assert_emitted_value("No", "\"No\"");
	assert_emitted_value("on", "\"on\"");
	assert_emitted_value("OFF", "\"OFF\"");
	assert_emitted_value("y", "\"y\"");
	assert_emitted_value("true", "\"true\"");
	assert_emitted_value("False", "\"False\"");
	assert_emitted_value("null", "\"null\"");
	assert_emitted_value("Null", "\"Null\"");
	assert_emitted_value("~", "\"~\"");
	assert_emitted_value(".inf", "\".inf\"");
	assert_emitted_value(".NaN", "\".NaN\"");
}

static void test_emit_quotes_number_like_strings(void **state)
{
	(void)state;
	assert_emitted_value("443", "\"443\"");
	assert_emitted_value("-1", "\"-1\"");
	assert_emitted_value("1e3", "\"1e3\"");
	assert_emitted_value("0x10", "\"0x10\"");
	assert_emitted_value("3.14", "\"3.14\"");
	assert_emitted_value("0755", "\"0755\"");
	assert_emitted_value("inf", "\"inf\"");
}

/* YAML 1.1 readers (PyYAML, Go yaml.v2) take these as numbers or dates. */
static void test_emit_quotes_yaml11_number_and_date_lookalikes(void **state)
{
	(void)state;
	assert_emitted_value("1_000", "\"1_000\"");
	assert_emitted_value("12:30", "\"12:30\"");
	assert_emitted_value("2024-01-01", "\"2024-01-01\"");
	assert_emitted_value("0b101", "\"0b101\"");
	assert_emitted_value("0o17", "\"0o17\"");
	assert_emitted_value("+1", "\"+1\"");
	assert_emitted_value("v1.2", "v1.2");
	assert_emitted_value("1a", "1a");
}

static void test_emit_quotes_structural_strings(void **state)
{
	(void)state;
	assert_emitted_value("", "\"\"");
	assert_emitted_value(" lead", "\" lead\"");
	assert_emitted_value("trail ", "\"trail \"");
	assert_emitted_value("a: b", "\"a: b\"");
	assert_emitted_value("-x", "\"-x\"");
	assert_emitted_value("- x", "\"- x\"");
	assert_emitted_value("#c", "\"#c\"");
	assert_emitted_value("a #c", "\"a #c\"");
	assert_emitted_value("{x}", "\"{x}\"");
	assert_emitted_value("[x]", "\"[x]\"");
	assert_emitted_value("*x", "\"*x\"");
	assert_emitted_value("&x", "\"&x\"");
	assert_emitted_value("!x", "\"!x\"");
	assert_emitted_value("%x", "\"%x\"");
	assert_emitted_value("@x", "\"@x\"");
	assert_emitted_value("`x", "\"`x\"");
	assert_emitted_value("'x'", "\"'x'\"");
	assert_emitted_value("x,y", "\"x,y\"");
	assert_emitted_value("$$SCONE::pw$$", "\"$$SCONE::pw$$\"");
	assert_emitted_value("caf\xc3\xa9", "\"caf\xc3\xa9\"");
}

static void test_emit_escapes_control_and_quote_characters(void **state)
{
	(void)state;
	assert_emitted_value("l1\n\"q\" \\ \x01\t\r\x7f",
			     "\"l1\\n\\\"q\\\" \\\\ \\x01\\t\\r\\x7f\"");
	assert_emitted_value("\x1b[0m", "\"\\x1b[0m\"");
}

static void test_emit_plain_safe_strings_unquoted(void **state)
{
	(void)state;
	assert_emitted_value("myself", "myself");
	assert_emitted_value("/python", "/python");
	assert_emitted_value("python3 print_env.py", "python3 print_env.py");
	assert_emitted_value("760M", "760M");
	assert_emitted_value("_under", "_under");
	assert_emitted_value("registry.example:5050/x", "\"registry.example:5050/x\"");
	assert_emitted_value("a-b_c.d@e/f g", "a-b_c.d@e/f g");
	assert_emitted_value("yesterday", "yesterday");
	assert_emitted_value("null_value", "null_value");
}

static void test_emit_quotes_ambiguous_keys(void **state)
{
	(void)state;
	struct yarena *a = doc.arena;
	struct ynode *m = ynew_map(a);
	ymap_put_str(a, m, "443", "v");
	ymap_put_str(a, m, "yes", "v");
	ymap_put_str(a, m, "a b", "v");
	assert_emits(m, "\"443\": v\na b: v\n\"yes\": v\n");
}

static void test_emit_int_and_bool_raw(void **state)
{
	(void)state;
	struct yarena *a = doc.arena;
	struct ynode *m = ynew_map(a);
	ymap_put(a, m, "a", ynew_int(a, 443));
	ymap_put(a, m, "b", ynew_int(a, -12));
	ymap_put(a, m, "c", ynew_int(a, 0));
	ymap_put(a, m, "d", ynew_bool(a, 1));
	ymap_put(a, m, "e", ynew_bool(a, 0));
	ymap_put_str(a, m, "f", "443");
	assert_emits(m, "a: 443\nb: -12\nc: 0\nd: true\ne: false\nf: \"443\"\n");
}

static void test_emit_parsed_plain_number_stays_raw(void **state)
{
	(void)state;
	assert_int_equal(parse("port: 443\nname: '443'\nneg: -7\n"), 0);
	assert_emits(doc.root, "name: \"443\"\nneg: -7\nport: 443\n");
}

static void test_emit_scalar_raw_flag(void **state)
{
	(void)state;
	struct veil_buf b;
	veil_buf_init(&b, 0);
	yemit_scalar("a: b", 1, &b);
	yemit_scalar("a: b", 0, &b);
	assert_string_equal(b.data, "a: b\"a: b\"");
	veil_buf_free(&b);
}

static void test_emit_at_indent(void **state)
{
	(void)state;
	struct yarena *a = doc.arena;
	struct ynode *l = ynew_seq(a), *e = ynew_map(a);
	ymap_put_str(a, e, "name", "x");
	ymap_put_str(a, e, "b", "w");
	yseq_push(a, l, e);
	struct veil_buf b;
	veil_buf_init(&b, 0);
	assert_int_equal(yemit_at(l, 4, &b), 0);
	assert_string_equal(b.data, "    - b: w\n      name: x\n");
	veil_buf_free(&b);
	veil_buf_init(&b, 0);
	assert_int_equal(yemit_at(ynew_seq(a), 2, &b), 0);
	assert_string_equal(b.data, "  []\n");
	veil_buf_free(&b);
}

static void test_emit_over_buffer_max_fails(void **state)
{
	(void)state;
	struct yarena *a = doc.arena;
	struct ynode *m = ynew_map(a);
	ymap_put_str(a, m, "key", "a value longer than the buffer");
	struct veil_buf b;
	veil_buf_init(&b, 16);
	assert_int_not_equal(yemit(m, &b), 0);
	assert_true(b.failed);
	veil_buf_free(&b);
}

/* A tree holding every tricky string, numbers, booleans and empty collections. */
static struct ynode *tricky_tree(struct yarena *a)
{
	static const char *const strs[] = {"yes",
					   "no",
					   "null",
					   "~",
					   "443",
					   "1e3",
					   "0x10",
					   "",
					   " lead",
					   "a: b",
					   "-x",
					   "#c",
					   "l1\n\"q\" \\ \x01 end",
					   "myself",
					   "/python",
					   "python3 print_env.py",
					   "caf\xc3\xa9",
					   "tab\there",
					   "$$SCONE::pw:hex$$",
					   "{{VAR}}",
					   "x\x7fy",
					   "trail "};
	struct ynode *root = ynew_map(a), *list = ynew_seq(a), *objs = ynew_seq(a);
	for (size_t i = 0; i < VEIL_ARRAY_LEN(strs); i++) {
		yseq_push(a, list, ynew_str(a, strs[i]));
		struct ynode *m = ynew_map(a);
		ymap_put_str(a, m, strs[i], strs[i]);
		ymap_put(a, m, "i", ynew_int(a, (long long)i));
		yseq_push(a, objs, m);
	}
	ymap_put(a, root, "strings", list);
	ymap_put(a, root, "objects", objs);
	ymap_put(a, root, "n", ynew_int(a, 443));
	ymap_put(a, root, "neg", ynew_int(a, -1));
	ymap_put(a, root, "t", ynew_bool(a, 1));
	ymap_put(a, root, "empty_map", ynew_map(a));
	ymap_put(a, root, "empty_seq", ynew_seq(a));
	struct ynode *deep = ynew_seq(a), *deeper = ynew_seq(a);
	yseq_push(a, deeper, ynew_str(a, "z"));
	yseq_push(a, deep, deeper);
	yseq_push(a, deep, ynew_map(a));
	ymap_put(a, root, "deep", deep);
	return root;
}

static void test_emit_round_trip_is_stable(void **state)
{
	(void)state;
	struct ynode *root = tricky_tree(doc.arena);
	veil_buf_init(&first, 0);
	veil_buf_init(&second, 0);
	assert_int_equal(yemit(root, &first), 0);

	assert_int_equal(ydoc_init(&back, "emitted.yaml"), 0);
	int rc = ydoc_parse(&back, first.data, first.size, NULL, &diags);
	if (rc)
		print_message("emitted:\n%s\n", first.data);
	assert_int_equal(rc, 0);
	assert_no_diags();
	assert_int_equal(yemit(back.root, &second), 0);
	assert_int_equal(first.size, second.size);
	assert_string_equal(first.data, second.data);

	/* and the strings came back unchanged */
	const struct ynode *strs = ymap_get(back.root, "strings");
	const struct ynode *orig = ymap_get(root, "strings");
	assert_int_equal(strs->count, orig->count);
	for (size_t i = 0; i < strs->count; i++) {
		assert_string_equal(strs->items[i]->str, orig->items[i]->str);
		assert_int_equal(strs->items[i]->type, YT_SCALAR);
	}
	assert_string_equal(ymap_get(back.root, "n")->str, "443");
	assert_true(ymap_get(back.root, "n")->plain);
	assert_int_equal(ymap_get(back.root, "empty_map")->type, YT_MAP);
	assert_int_equal(ymap_get(back.root, "empty_map")->count, 0);
	assert_int_equal(ymap_get(back.root, "empty_seq")->type, YT_SEQ);
}

static void test_emit_same_tree_same_bytes(void **state)
{
	(void)state;
	struct veil_buf x, y;
	veil_buf_init(&x, 0);
	veil_buf_init(&y, 0);
	assert_int_equal(yemit(tricky_tree(doc.arena), &x), 0);
	assert_int_equal(yemit(tricky_tree(doc.arena), &y), 0);
	assert_string_equal(x.data, y.data);
	veil_buf_free(&x);
	veil_buf_free(&y);
}

/* Characters YAML forbids unescaped (C1 controls U+0080..U+009F other than
 * U+0085, and U+FFFE/U+FFFF) are valid in a parsed string via escapes; the
 * canonical form of such a string must parse back. */
static void test_emit_round_trips_yaml_non_printable_characters(void **state)
{
	(void)state;
	assert_int_equal(parse("k: \"a\\x80b\\u0085c\\u009fd\\uFFFEe\\uFFFFf\"\n"), 0);
	veil_buf_init(&first, 0);
	assert_int_equal(yemit(doc.root, &first), 0);
	assert_int_equal(ydoc_init(&back, "emitted.yaml"), 0);
	int rc = ydoc_parse(&back, first.data, first.size, NULL, &diags);
	for (size_t i = 0; i < diags.count; i++)
		print_message("diag: %s\n", diags.msgs[i]);
	assert_int_equal(rc, 0);
	assert_string_equal(ymap_get(back.root, "k")->str, ymap_get(doc.root, "k")->str);
}

/* ---- UTF-8 and edit distance ---- */

static int utf8(const char *s)
{
	return veil_utf8_valid(s, strlen(s));
}

static void test_utf8_overlong_refused(void **state)
{
	(void)state;
	assert_false(utf8("\xc0\xaf"));
	assert_false(utf8("\xc1\xbf"));
	assert_false(utf8("\xe0\x80\xaf"));
	assert_false(utf8("\xe0\x9f\xbf"));
	assert_false(utf8("\xf0\x80\x80\xaf"));
	assert_false(utf8("\xf0\x8f\xbf\xbf"));
}

static void test_utf8_surrogates_refused(void **state)
{
	(void)state;
	assert_false(utf8("\xed\xa0\x80"));
	assert_false(utf8("\xed\xbf\xbf"));
	assert_false(utf8("a\xed\xb0\x80z"));
}

static void test_utf8_truncated_refused(void **state)
{
	(void)state;
	assert_false(utf8("\xc3"));
	assert_false(utf8("\xe2\x82"));
	assert_false(utf8("\xf0\x9f\x98"));
	assert_false(utf8("ok\xe2\x82"));
	assert_false(veil_utf8_valid("\xc3\xa9", 1));
	assert_false(utf8("\xe2\x28\xa1")); /* continuation byte replaced */
}

static void test_utf8_above_max_code_point_refused(void **state)
{
	(void)state;
	assert_false(utf8("\xf4\x90\x80\x80"));
	assert_false(utf8("\xf5\x80\x80\x80"));
	assert_false(utf8("\xf7\xbf\xbf\xbf"));
	assert_false(utf8("\xf8\x88\x80\x80\x80"));
	assert_false(utf8("\xfe"));
	assert_false(utf8("\xff"));
}

static void test_utf8_stray_continuation_refused(void **state)
{
	(void)state;
	assert_false(utf8("\x80"));
	assert_false(utf8("a\xbfz"));
}

static void test_utf8_valid_sequences_accepted(void **state)
{
	(void)state;
	assert_true(utf8(""));
	assert_true(utf8("plain ascii"));
	assert_true(utf8("caf\xc3\xa9"));
	assert_true(utf8("\xc2\x80"));
	assert_true(utf8("\xe2\x82\xac"));
	assert_true(utf8("\xed\x9f\xbf"));     /* U+D7FF */
	assert_true(utf8("\xee\x80\x80"));     /* U+E000 */
	assert_true(utf8("\xef\xbf\xbf"));     /* U+FFFF */
	assert_true(utf8("\xf0\x90\x80\x80")); /* U+10000 */
	assert_true(utf8("\xf0\x9f\x98\x80"));
	assert_true(utf8("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
	assert_true(veil_utf8_valid("a\0b", 3));
}

static void test_edit_distance(void **state)
{
	(void)state;
	assert_int_equal(veil_edit_distance("", ""), 0);
	assert_int_equal(veil_edit_distance("abc", ""), 3);
	assert_int_equal(veil_edit_distance("", "abcd"), 4);
	assert_int_equal(veil_edit_distance("same", "same"), 0);
	assert_int_equal(veil_edit_distance("kitten", "sitting"), 3);
	assert_int_equal(veil_edit_distance("sitting", "kitten"), 3);
	assert_int_equal(veil_edit_distance("flaw", "lawn"), 2);
	assert_int_equal(veil_edit_distance("nmae", "name"), 2);
	assert_int_equal(veil_edit_distance("Name", "name"), 1);
}

static void test_edit_distance_long_strings_capped(void **state)
{
	(void)state;
	char a[66], b[66];
	memset(a, 'a', 65);
	a[65] = '\0';
	memset(b, 'a', 64);
	b[64] = '\0';
	assert_int_equal(veil_edit_distance(a, "a"), 255);
	assert_int_equal(veil_edit_distance("a", a), 255);
	assert_int_equal(veil_edit_distance(b, b), 0);
	assert_int_equal(veil_edit_distance(b, ""), 64);
}

/* ---- schema helpers ---- */

static struct yctx ctx(void)
{
	struct yctx c = {.file = doc.file, .d = &diags, .arena = doc.arena};
	return c;
}

static void test_check_keys_suggests_close_key(void **state)
{
	(void)state;
	static const char *const allowed[] = {"name", "value", NULL};
	assert_int_equal(parse("nmae: x\nvalue: y\n"), 0);
	struct yctx c = ctx();
	ycheck_keys(&c, doc.root, allowed, "an entry");
	assert_int_equal(c.errors, 1);
	assert_one_diag("t.yaml:1:1: unknown key 'nmae' in an entry (did you mean 'name'?)");
}

static void test_check_keys_no_suggestion_for_far_key(void **state)
{
	(void)state;
	static const char *const allowed[] = {"name", "value", NULL};
	assert_int_equal(parse("name: x\nzzzzzz: y\n"), 0);
	struct yctx c = ctx();
	ycheck_keys(&c, doc.root, allowed, "an entry");
	assert_int_equal(c.errors, 1);
	assert_one_diag("t.yaml:2:1: unknown key 'zzzzzz' in an entry");
}

static void test_check_keys_reports_every_unknown_key(void **state)
{
	(void)state;
	static const char *const allowed[] = {"name", NULL};
	assert_int_equal(parse("a: 1\nname: 2\nqqqqqq: 3\n"), 0);
	struct yctx c = ctx();
	ycheck_keys(&c, doc.root, allowed, "x");
	assert_int_equal(c.errors, 2);
	assert_int_equal(diags.count, 2);
	assert_string_equal(diags.msgs[0], "t.yaml:1:1: unknown key 'a' in x");
	assert_string_equal(diags.msgs[1], "t.yaml:3:1: unknown key 'qqqqqq' in x");
}

static void test_check_keys_known_keys_silent(void **state)
{
	(void)state;
	static const char *const allowed[] = {"name", "value", NULL};
	assert_int_equal(parse("value: 1\nname: 2\n"), 0);
	struct yctx c = ctx();
	ycheck_keys(&c, doc.root, allowed, "x");
	assert_int_equal(c.errors, 0);
	assert_no_diags();
}

static void test_expect_names_found_type(void **state)
{
	(void)state;
	assert_int_equal(parse("[1]"), 0);
	struct yctx c = ctx();
	assert_int_equal(yexpect(&c, doc.root, YT_MAP, "the document"), VEIL_EINVAL);
	assert_one_diag("t.yaml:1:1: the document must be a mapping, found a list");
}

static void test_expect_null_scalar_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("a: ~\n"), 0);
	struct yctx c = ctx();
	assert_int_equal(yexpect(&c, ymap_get(doc.root, "a"), YT_SCALAR, "a"), VEIL_EINVAL);
	assert_one_diag("t.yaml:1:4: a must be a scalar, found nothing (null)");
}

static void test_get_str_required_missing(void **state)
{
	(void)state;
	assert_int_equal(parse("a: 1\n"), 0);
	struct yctx c = ctx();
	assert_null(yget_str(&c, doc.root, "b", 1, "top"));
	assert_one_diag("t.yaml:1:1: top: required key 'b' is missing");
}

static void test_get_str_required_empty(void **state)
{
	(void)state;
	assert_int_equal(parse("a: 1\nb:\n"), 0);
	struct yctx c = ctx();
	assert_null(yget_str(&c, doc.root, "b", 1, "top"));
	assert_one_diag("t.yaml:2:3: top: required key 'b' is empty");
}

static void test_get_str_wrong_type(void **state)
{
	(void)state;
	assert_int_equal(parse("a: [x]\n"), 0);
	struct yctx c = ctx();
	assert_null(yget_str(&c, doc.root, "a", 0, "top"));
	assert_one_diag("t.yaml:1:4: top: 'a' must be a string, found a list");
}

static void test_get_str_optional_absent_silent(void **state)
{
	(void)state;
	assert_int_equal(parse("a: x\n"), 0);
	struct yctx c = ctx();
	assert_null(yget_str(&c, doc.root, "b", 0, "top"));
	assert_string_equal(yget_str(&c, doc.root, "a", 1, "top"), "x");
	assert_int_equal(c.errors, 0);
	assert_no_diags();
}

static void test_get_uint_above_max_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("port: 65536\n"), 0);
	struct yctx c = ctx();
	unsigned long long v = 7;
	assert_int_equal(yget_uint(&c, doc.root, "port", 65535, &v, "svc"), -1);
	assert_int_equal(v, 7);
	assert_one_diag(
	    "t.yaml:1:7: svc: 'port' must be an integer from 0 to 65535, found '65536'");
}

static void test_get_uint_negative_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("port: -1\n"), 0);
	struct yctx c = ctx();
	unsigned long long v = 0;
	assert_int_equal(yget_uint(&c, doc.root, "port", 10, &v, "svc"), -1);
	assert_one_diag("t.yaml:1:7: svc: 'port' must be an integer from 0 to 10, found '-1'");
}

static void test_get_uint_malformed_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {"p: +5\n",    "p: 0x10\n", "p: 1e3\n",
					  "p: 12abc\n", "p: ' 5'\n", "p: 99999999999999999999999\n",
					  "p: ''\n"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(bad); i++) {
		struct ydoc d2;
		struct veil_diags dd;
		veil_diags_init(&dd);
		assert_int_equal(ydoc_init(&d2, "t.yaml"), 0);
		assert_int_equal(ydoc_parse(&d2, bad[i], strlen(bad[i]), NULL, &dd), 0);
		struct yctx c = {.file = d2.file, .d = &dd, .arena = d2.arena};
		unsigned long long v = 0;
		if (yget_uint(&c, d2.root, "p", ~0ull, &v, "x") != -1)
			fail_msg("accepted %s", bad[i]);
		assert_int_equal(dd.count, 1);
		assert_non_null(strstr(dd.msgs[0], "'p' must be an integer from 0 to "));
		ydoc_free(&d2);
		veil_diags_free(&dd);
	}
}

static void test_get_uint_wrong_type(void **state)
{
	(void)state;
	assert_int_equal(parse("p: {a: 1}\n"), 0);
	struct yctx c = ctx();
	unsigned long long v = 0;
	assert_int_equal(yget_uint(&c, doc.root, "p", 10, &v, "x"), -1);
	assert_one_diag("t.yaml:1:4: x: 'p' must be an integer, found a mapping");
}

static void test_get_uint_bounds_accepted(void **state)
{
	(void)state;
	assert_int_equal(parse("lo: 0\nhi: 65535\nq: \"12\"\nn: ~\n"), 0);
	struct yctx c = ctx();
	unsigned long long v = 99;
	assert_int_equal(yget_uint(&c, doc.root, "lo", 65535, &v, "x"), 1);
	assert_int_equal(v, 0);
	assert_int_equal(yget_uint(&c, doc.root, "hi", 65535, &v, "x"), 1);
	assert_int_equal(v, 65535);
	assert_int_equal(yget_uint(&c, doc.root, "q", 65535, &v, "x"), 1);
	assert_int_equal(v, 12);
	v = 5;
	assert_int_equal(yget_uint(&c, doc.root, "n", 65535, &v, "x"), 0);
	assert_int_equal(yget_uint(&c, doc.root, "absent", 65535, &v, "x"), 0);
	assert_int_equal(v, 5);
	assert_no_diags();
}

static void test_get_bool(void **state)
{
	(void)state;
	assert_int_equal(parse("t: true\nf: false\nq: 'true'\n"), 0);
	struct yctx c = ctx();
	int v = -1;
	assert_int_equal(yget_bool(&c, doc.root, "t", &v, "x"), 1);
	assert_int_equal(v, 1);
	assert_int_equal(yget_bool(&c, doc.root, "f", &v, "x"), 1);
	assert_int_equal(v, 0);
	assert_int_equal(yget_bool(&c, doc.root, "q", &v, "x"), 1);
	assert_int_equal(v, 1);
	v = 7;
	assert_int_equal(yget_bool(&c, doc.root, "absent", &v, "x"), 0);
	assert_int_equal(v, 7);
	assert_no_diags();
}

static void test_get_bool_yes_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("b: yes\n"), 0);
	struct yctx c = ctx();
	int v = 7;
	assert_int_equal(yget_bool(&c, doc.root, "b", &v, "x"), -1);
	assert_int_equal(v, 7);
	assert_one_diag("t.yaml:1:4: x: 'b' must be true or false, found yes");
}

static void test_get_bool_list_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("b: [true]\n"), 0);
	struct yctx c = ctx();
	int v = 0;
	assert_int_equal(yget_bool(&c, doc.root, "b", &v, "x"), -1);
	assert_one_diag("t.yaml:1:4: x: 'b' must be true or false, found a list");
}

static void test_get_strlist_splits_string(void **state)
{
	(void)state;
	assert_int_equal(parse("l: \"a, b  c\"\n"), 0);
	struct yctx c = ctx();
	size_t n = 0;
	char **l = yget_strlist(&c, doc.root, "l", 1, &n, "x");
	assert_int_equal(n, 3);
	assert_string_equal(l[0], "a");
	assert_string_equal(l[1], "b");
	assert_string_equal(l[2], "c");
	assert_no_diags();
}

static void test_get_strlist_split_many_words_grows(void **state)
{
	(void)state;
	assert_int_equal(parse("l: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n"), 0);
	struct yctx c = ctx();
	size_t n = 0;
	char **l = yget_strlist(&c, doc.root, "l", 1, &n, "x");
	assert_int_equal(n, 17);
	assert_string_equal(l[0], "1");
	assert_string_equal(l[16], "17");
}

static void test_get_strlist_separators_only_is_empty(void **state)
{
	(void)state;
	assert_int_equal(parse("l: \" , ,\t\"\n"), 0);
	struct yctx c = ctx();
	size_t n = 9;
	yget_strlist(&c, doc.root, "l", 1, &n, "x");
	assert_int_equal(n, 0);
	assert_no_diags();
}

static void test_get_strlist_unsplit_string_is_one_entry(void **state)
{
	(void)state;
	assert_int_equal(parse("l: \"a, b  c\"\n"), 0);
	struct yctx c = ctx();
	size_t n = 0;
	char **l = yget_strlist(&c, doc.root, "l", 0, &n, "x");
	assert_int_equal(n, 1);
	assert_string_equal(l[0], "a, b  c");
}

static void test_get_strlist_list(void **state)
{
	(void)state;
	assert_int_equal(parse("l: [x, 'y z']\n"), 0);
	struct yctx c = ctx();
	size_t n = 0;
	char **l = yget_strlist(&c, doc.root, "l", 1, &n, "x");
	assert_int_equal(n, 2);
	assert_string_equal(l[0], "x");
	assert_string_equal(l[1], "y z");
}

static void test_get_strlist_non_string_entry_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("l:\n  - x\n  - {a: 1}\n  - ~\n"), 0);
	struct yctx c = ctx();
	size_t n = 0;
	char **l = yget_strlist(&c, doc.root, "l", 1, &n, "x");
	assert_int_equal(n, 1);
	assert_string_equal(l[0], "x");
	assert_int_equal(c.errors, 2);
	assert_int_equal(diags.count, 2);
	assert_string_equal(diags.msgs[0],
			    "t.yaml:3:5: x: entries of 'l' must be strings, found a mapping");
	assert_string_equal(diags.msgs[1],
			    "t.yaml:4:5: x: entries of 'l' must be strings, found nothing (null)");
}

static void test_get_strlist_mapping_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("l: {a: 1}\n"), 0);
	struct yctx c = ctx();
	size_t n = 5;
	assert_null(yget_strlist(&c, doc.root, "l", 1, &n, "x"));
	assert_int_equal(n, 0);
	assert_one_diag("t.yaml:1:4: x: 'l' must be a list of strings, found a mapping");
}

static void test_get_coll_wrong_type(void **state)
{
	(void)state;
	assert_int_equal(parse("m: [1]\ns: x\n"), 0);
	struct yctx c = ctx();
	assert_null(yget_coll(&c, doc.root, "m", YT_MAP, 0, "top"));
	assert_null(yget_coll(&c, doc.root, "s", YT_SEQ, 0, "top"));
	assert_int_equal(diags.count, 2);
	assert_string_equal(diags.msgs[0], "t.yaml:1:4: top: 'm' must be a mapping, found a list");
	assert_string_equal(diags.msgs[1], "t.yaml:2:4: top: 's' must be a list, found a scalar");
}

static void test_yerr_on_built_node_has_no_position(void **state)
{
	(void)state;
	struct yctx c = ctx();
	yerr(&c, ynew_map(doc.arena), "problem %d", 42);
	yerr(&c, NULL, "other");
	assert_int_equal(c.errors, 2);
	assert_string_equal(diags.msgs[0], "t.yaml: problem 42");
	assert_string_equal(diags.msgs[1], "t.yaml: other");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_parse_duplicate_key_names_first_line),
	    T(test_parse_duplicate_key_in_nested_map),
	    T(test_parse_duplicate_key_quoted_and_plain),
	    T(test_parse_duplicate_key_thrice_names_first_line),
	    T(test_parse_alias_refused),
	    T(test_parse_merge_key_alias_refused),
	    T(test_parse_depth_limit),
	    T(test_parse_depth_limit_flow_lists),
	    T(test_parse_depth_exactly_at_limit_accepted),
	    T(test_parse_doc_size_limit),
	    T(test_parse_doc_size_exactly_at_limit_accepted),
	    T(test_parse_max_items_list),
	    T(test_parse_max_items_mapping),
	    T(test_parse_max_items_exactly_at_limit_accepted),
	    T(test_parse_max_str),
	    T(test_parse_max_str_applies_to_keys),
	    T(test_parse_max_nodes),
	    T(test_parse_max_nodes_exactly_at_limit_accepted),
	    T(test_parse_nul_escape_refused),
	    T(test_parse_nul_escape_in_key_refused),
	    T(test_parse_raw_nul_byte_refused),
	    T(test_parse_two_documents_refused),
	    T(test_parse_empty_input),
	    T(test_parse_comment_only_input),
	    T(test_parse_null_document),
	    T(test_parse_invalid_utf8_refused),
	    T(test_parse_invalid_utf8_reports_its_line),
	    T(test_parse_utf8_surrogate_refused),
	    T(test_parse_sequence_as_key_refused),
	    T(test_parse_mapping_as_key_refused),
	    T(test_parse_syntax_error_has_position),
	    T(test_load_missing_file),
	    T(test_parse_map_seq_scalars_with_positions),
	    T(test_parse_escapes_decoded),
	    T(test_parse_null_forms),
	    T(test_parse_anchor_without_alias_accepted),
	    T(test_parse_explicit_document_markers_accepted),
	    T(test_emit_keys_sorted_bytewise),
	    T(test_emit_nested_seq_of_maps_layout),
	    T(test_emit_seq_in_seq_layout),
	    T(test_emit_empty_collections),
	    T(test_emit_scalar_root),
	    T(test_emit_quotes_ambiguous_words),
	    T(test_emit_quotes_number_like_strings),
	    T(test_emit_quotes_yaml11_number_and_date_lookalikes),
	    T(test_emit_quotes_structural_strings),
	    T(test_emit_escapes_control_and_quote_characters),
	    T(test_emit_plain_safe_strings_unquoted),
	    T(test_emit_quotes_ambiguous_keys),
	    T(test_emit_int_and_bool_raw),
	    T(test_emit_parsed_plain_number_stays_raw),
	    T(test_emit_scalar_raw_flag),
	    T(test_emit_at_indent),
	    T(test_emit_over_buffer_max_fails),
	    T(test_emit_round_trip_is_stable),
	    T(test_emit_same_tree_same_bytes),
	    T(test_emit_round_trips_yaml_non_printable_characters),
	    T(test_utf8_overlong_refused),
	    T(test_utf8_surrogates_refused),
	    T(test_utf8_truncated_refused),
	    T(test_utf8_above_max_code_point_refused),
	    T(test_utf8_stray_continuation_refused),
	    T(test_utf8_valid_sequences_accepted),
	    T(test_edit_distance),
	    T(test_edit_distance_long_strings_capped),
	    T(test_check_keys_suggests_close_key),
	    T(test_check_keys_no_suggestion_for_far_key),
	    T(test_check_keys_reports_every_unknown_key),
	    T(test_check_keys_known_keys_silent),
	    T(test_expect_names_found_type),
	    T(test_expect_null_scalar_refused),
	    T(test_get_str_required_missing),
	    T(test_get_str_required_empty),
	    T(test_get_str_wrong_type),
	    T(test_get_str_optional_absent_silent),
	    T(test_get_uint_above_max_refused),
	    T(test_get_uint_negative_refused),
	    T(test_get_uint_malformed_refused),
	    T(test_get_uint_wrong_type),
	    T(test_get_uint_bounds_accepted),
	    T(test_get_bool),
	    T(test_get_bool_yes_refused),
	    T(test_get_bool_list_refused),
	    T(test_get_strlist_splits_string),
	    T(test_get_strlist_split_many_words_grows),
	    T(test_get_strlist_separators_only_is_empty),
	    T(test_get_strlist_unsplit_string_is_one_entry),
	    T(test_get_strlist_list),
	    T(test_get_strlist_non_string_entry_refused),
	    T(test_get_strlist_mapping_refused),
	    T(test_get_coll_wrong_type),
	    T(test_yerr_on_built_node_has_no_position),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
