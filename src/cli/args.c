/* The command tree's shared parts: dispatch, usage errors, -o, inputs. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "veil/ytree.h"

int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	veil_usage_verror(cmd->path, fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

const char *cli_suggest(const struct cli_cmd *group, const char *word)
{
	const char *best = NULL;
	unsigned best_dist = 3; /* more than two edits is a different word */
	for (const struct cli_cmd *const *s = group->subs; s && *s; s++) {
		unsigned dist = veil_edit_distance(word, (*s)->name);
		/* a prefix ("po" for "policy") is as good a hint as a typo */
		if (strlen(word) >= 2 && !strncmp(word, (*s)->name, strlen(word)))
			dist = 1;
		if (dist < best_dist) {
			best_dist = dist;
			best = (*s)->name;
		}
	}
	return best;
}

static void group_usage(const struct cli_cmd *g, FILE *f)
{
	fprintf(f, "Usage: %s COMMAND [OPTIONS]\n\n", g->path);
	if (g->usage)
		g->usage(f);
	fprintf(f, "Commands:\n");
	for (const struct cli_cmd *const *s = g->subs; *s; s++)
		fprintf(f, "  %-12s %s\n", (*s)->name, (*s)->summary);
	fprintf(f, "\nOptions:\n  -h, --help   this help\n  --version    veil's version\n");
	fprintf(f, "\nRun '%s COMMAND --help' for a command's options.\n", g->path);
}

int cli_dispatch(const struct cli_cmd *group, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error(group, "'%s' needs a command", group->path);
	const char *word = argv[1];
	if (!strcmp(word, "--help") || !strcmp(word, "-h") || !strcmp(word, "help")) {
		group_usage(group, stdout);
		return 0;
	}
	if (!strcmp(word, "--version")) {
		printf("veil %s\n", VEIL_VERSION);
		return 0;
	}
	if (word[0] == '-')
		return cli_usage_error(group, "unknown flag %s (give the command first)", word);
	for (const struct cli_cmd *const *s = group->subs; *s; s++) {
		if (strcmp(word, (*s)->name))
			continue;
		if ((*s)->subs)
			return cli_dispatch(*s, argc - 1, argv + 1);
		optind = 0; /* glibc: start a fresh getopt scan */
		opterr = 0;
		return (*s)->run(argc - 1, argv + 1);
	}
	const char *hint = cli_suggest(group, word);
	if (hint)
		return cli_usage_error(group, "unknown command '%s %s' (did you mean '%s'?)",
				       group->path, word, hint);
	return cli_usage_error(group, "unknown command '%s %s'", group->path, word);
}

int cli_option_default(const struct cli_cmd *cmd, int c, char **argv)
{
	if (c == 'h') {
		cmd->usage(stdout);
		return 0;
	}
	if (c == CLI_OPT_VERSION) {
		printf("veil %s\n", VEIL_VERSION);
		return 0;
	}
	/* getopt just consumed the offending word; a long flag is named by it
	 * (without any "=value"), a short one by optopt */
	const char *word = argv[optind - 1];
	size_t n = strcspn(word, "=");
	if (!strncmp(word, "--", 2)) {
		if (c == ':')
			return cli_usage_error(cmd, "flag %.*s needs a value", (int)n, word);
		if (optopt) /* known, but given a value it does not take */
			return cli_usage_error(cmd, "flag %.*s takes no value", (int)n, word);
		size_t matches = 0;
		for (const struct option *o = cmd->opts; o->name; o++)
			if (n > 2 && !strncmp(o->name, word + 2, n - 2))
				matches++;
		if (matches > 1)
			return cli_usage_error(cmd, "ambiguous flag %.*s: give more of its name",
					       (int)n, word);
		return cli_usage_error(cmd, "unknown flag %.*s", (int)n, word);
	}
	char flag[3] = {'-', (char)optopt, '\0'};
	if (c == ':')
		return cli_usage_error(cmd, "flag %s needs a value", flag);
	return cli_usage_error(cmd, "unknown flag %s", flag);
}

int cli_parse_format(const struct cli_cmd *cmd, const char *arg, enum cli_format *out)
{
	if (!strcmp(arg, "json"))
		*out = CLI_FMT_JSON;
	else if (!strcmp(arg, "yaml"))
		*out = CLI_FMT_YAML;
	else if (!strcmp(arg, "text"))
		*out = CLI_FMT_TEXT;
	else
		return cli_usage_error(cmd, "-o must be json, yaml or text, not '%s'", arg);
	return 0;
}

static struct ynode *json_to_ynode(struct yarena *a, json_t *j, int depth)
{
	if (depth > 32)
		return NULL;
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		struct ynode *m = ynew_map(a);
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v)
		{
			struct ynode *y = json_to_ynode(a, v, depth + 1);
			if (!m || !y || ymap_put(a, m, k, y))
				return NULL;
		}
		return m;
	}
	case JSON_ARRAY: {
		struct ynode *s = ynew_seq(a);
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v)
		{
			struct ynode *y = json_to_ynode(a, v, depth + 1);
			if (!s || !y || yseq_push(a, s, y))
				return NULL;
		}
		return s;
	}
	case JSON_STRING:
		return ynew_str(a, json_string_value(j));
	case JSON_INTEGER:
		return ynew_int(a, json_integer_value(j));
	case JSON_TRUE:
	case JSON_FALSE:
		return ynew_bool(a, json_is_true(j));
	default: { /* null; no reals in our results */
		struct ynode *n = ynew_str(a, "null");
		if (n)
			n->plain = 1;
		return n;
	}
	}
}

int cli_print_result(json_t *j, enum cli_format fmt)
{
	int rc = 0;
	struct ydoc doc = {0};
	struct veil_buf b;
	veil_buf_init(&b, 0);
	if (!j) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (fmt == CLI_FMT_JSON) {
		rc = json_dumpf(j, stdout, JSON_INDENT(2)) ? VEIL_EIO : 0;
		putchar('\n');
		goto out;
	}
	struct ynode *root = NULL;
	if ((rc = ydoc_init(&doc, "result")))
		goto out;
	if (!(root = json_to_ynode(doc.arena, j, 0)) || yemit(root, &b) || b.failed) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	fwrite(b.data, 1, b.size, stdout);
out:
	if (fflush(stdout))
		rc = VEIL_EIO;
	if (doc.arena)
		ydoc_free(&doc);
	veil_buf_free(&b);
	json_decref(j);
	return rc;
}

json_t *cli_diags_json(const struct veil_diags *d)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < d->count; i++)
		if (json_array_append_new(a, json_string(d->msgs[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

int cli_report(struct veil_diags *d, int rc)
{
	veil_diags_print(d, stderr);
	if (rc && d->count == 0)
		fprintf(stderr, "error: %s\n",
			rc == VEIL_ENOMEM ? "out of memory" : "operation failed");
	veil_diags_free(d);
	return rc ? EXIT_REJECTED : 0;
}

const char *cli_cas_url(const char *flag)
{
	if (flag)
		return flag;
	const char *env = getenv("VEIL_CAS");
	return env && *env ? env : NULL;
}

static int push_input(struct cli_input **v, size_t *count, struct cli_input in)
{
	struct cli_input *p = realloc(*v, (*count + 1) * sizeof(*p));
	if (!p)
		return VEIL_ENOMEM;
	p[(*count)++] = in;
	*v = p;
	return 0;
}

static int is_manifest_name(const char *n)
{
	size_t len = strlen(n);
	if (n[0] == '.')
		return 0;
	return !strcmp(n, "Meshfile") || (len > 5 && !strcmp(n + len - 5, ".yaml")) ||
	       (len > 4 && !strcmp(n + len - 4, ".yml"));
}

static int read_stdin(size_t max_size, char **out, size_t *out_size, struct veil_diags *d)
{
	struct veil_buf b;
	veil_buf_init(&b, max_size);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		if (veil_buf_append(&b, chunk, n))
			break;
	if (b.failed || ferror(stdin)) {
		veil_diag(d, "<stdin>: %s",
			  b.failed ? "larger than the limit for one document" : strerror(errno));
		veil_buf_free(&b);
		return b.failed ? VEIL_ELIMIT : VEIL_EIO;
	}
	if (!b.data && veil_buf_append(&b, "", 0)) {
		veil_buf_free(&b);
		return VEIL_ENOMEM;
	}
	*out = b.data;
	*out_size = b.size;
	return 0;
}

int cli_inputs_add(struct cli_input **v, size_t *count, const char *arg, size_t max_size,
		   struct veil_diags *d)
{
	struct cli_input in = {0};
	int rc = 0;
	if (!strcmp(arg, "-")) {
		for (size_t i = 0; i < *count; i++)
			if ((*v)[i].is_stdin) {
				veil_diag(d, "'-' (stdin) is given twice");
				return VEIL_EINVAL;
			}
		in.is_stdin = 1;
		if ((rc = read_stdin(max_size, &in.data, &in.size, d)))
			return rc;
		if (!(in.name = strdup("<stdin>")) || push_input(v, count, in)) {
			free(in.name);
			free(in.data);
			return VEIL_ENOMEM;
		}
		return 0;
	}
	struct stat st;
	if (stat(arg, &st) || !S_ISDIR(st.st_mode)) {
		/* a missing file is reported by whoever reads it, with its name */
		if (!(in.name = strdup(arg)) || push_input(v, count, in)) {
			free(in.name);
			return VEIL_ENOMEM;
		}
		return 0;
	}
	struct dirent **names = NULL;
	int n = scandir(arg, &names, NULL, alphasort);
	if (n < 0) {
		veil_diag(d, "%s: %s", arg, strerror(errno));
		return VEIL_EIO;
	}
	size_t found = 0;
	for (int i = 0; i < n; i++) {
		char *p = NULL;
		struct stat fst;
		if (!rc && is_manifest_name(names[i]->d_name)) {
			p = veil_path_join(arg, names[i]->d_name);
			if (!p)
				rc = VEIL_ENOMEM;
			else if (!stat(p, &fst) && S_ISREG(fst.st_mode)) {
				struct cli_input fin = {.name = p};
				if (push_input(v, count, fin)) {
					rc = VEIL_ENOMEM;
				} else {
					p = NULL; /* owned by the list now */
					found++;
				}
			}
		}
		free(p);
		free(names[i]);
	}
	free(names);
	if (!rc && !found) {
		veil_diag(d, "%s: the folder holds no manifest (*.yaml, *.yml or Meshfile)", arg);
		rc = VEIL_EINVAL;
	}
	return rc;
}

void cli_inputs_free(struct cli_input *v, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(v[i].name);
		free(v[i].data);
	}
	free(v);
}
