/* veil policy create FILE | get NAME | update FILE | edit NAME | delete NAME | list */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "veil/policy.h"
#include "veil/policy_model.h"

enum { O_CAS = 256, O_PREDECESSOR };

/* Removes every `key` entry of a mapping (yemit would print duplicates). */
static void map_remove(struct ynode *map, const char *key)
{
	size_t k = 0;
	for (size_t i = 0; i < map->count; i++) {
		if (!strcmp(map->keys[i]->str, key))
			continue;
		map->keys[k] = map->keys[i];
		map->items[k++] = map->items[i];
	}
	map->count = k;
}

int cli_policy_rewrite(const char *label, const char *text, size_t size, const char *predecessor,
		       struct veil_buf *canon, char hash[static 2 * VEIL_SHA256_SIZE + 1],
		       char **name, struct veil_diags *d)
{
	struct ydoc doc;
	struct veil_policy p;
	int rc = ydoc_init(&doc, label);
	if (rc)
		return rc;
	if ((rc = ydoc_parse(&doc, text, size, &veil_policy_limits, d)))
		goto out;
	if ((rc = veil_policy_parse(&doc, &p, d)))
		goto out;
	if (name && !(*name = strdup(p.name))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	map_remove(doc.root, "predecessor");
	if (predecessor && (rc = ymap_put_str(doc.arena, doc.root, "predecessor", predecessor)))
		goto out;
	canon->size = 0;
	rc = veil_policy_canonical(doc.root, canon, hash);
out:
	if (rc && name) {
		free(*name);
		*name = NULL;
	}
	ydoc_free(&doc);
	return rc;
}

static void policy_group_usage(FILE *f)
{
	fprintf(f, "Manages policies on a CAS attested with 'veil cas attest'. The CAS is --cas\n"
		   "URL, else $VEIL_CAS, else the one pinned last. The client's identity is a\n"
		   "key in $VEIL_HOME/identity, created on first use ('veil whoami').\n\n");
}

static void create_usage(FILE *f)
{
	fprintf(f,
		"Usage: veil policy create FILE [--cas URL]\n\n"
		"Creates the namespace FILE's policy names, owned by this client. FILE must\n"
		"not name a 'predecessor'. Prints the namespace, the CAS and the policy hash.\n\n"
		"  --cas URL     the CAS (default: $VEIL_CAS, else the one pinned last)\n"
		"  -h, --help    this help\n");
}

static void get_usage(FILE *f)
{
	fprintf(f,
		"Usage: veil policy get NAME [--cas URL] [-o json|yaml]\n\n"
		"Prints the policy of namespace NAME with 'predecessor' set to its current\n"
		"hash, so the output, edited, can be given to 'veil policy update'.\n\n"
		"  --cas URL             the CAS (default: $VEIL_CAS, else the one pinned last)\n"
		"  -o, --output FORMAT   json or yaml: name, hash and policy (the text above)\n"
		"  -h, --help            this help\n");
}

static void update_usage(FILE *f)
{
	fprintf(f, "Usage: veil policy update FILE [--predecessor HASH] [--cas URL]\n\n"
		   "Replaces a policy. The update names the hash of the policy it replaces as\n"
		   "'predecessor' (FILE's, or --predecessor HASH, which overrides it); a\n"
		   "concurrent update makes this one fail with 409.\n\n"
		   "  --predecessor HASH  the current policy hash ('veil policy list' shows it)\n"
		   "  --cas URL           the CAS (default: $VEIL_CAS, else the one pinned last)\n"
		   "  -h, --help          this help\n");
}

static void edit_usage(FILE *f)
{
	fprintf(f, "Usage: veil policy edit NAME [--cas URL]\n\n"
		   "Opens the policy of namespace NAME in $VISUAL, else $EDITOR, else vi, in a\n"
		   "temporary file only this user can read (0600), and uploads it when the editor\n"
		   "exits with status 0. A policy left unchanged is not uploaded ('unchanged').\n"
		   "If the upload fails (invalid, refused, or another update came first: 409)\n"
		   "the edited file is kept and its path printed.\n\n"
		   "  --cas URL     the CAS (default: $VEIL_CAS, else the one pinned last)\n"
		   "  -h, --help    this help\n");
}

static void delete_usage(FILE *f)
{
	fprintf(f, "Usage: veil policy delete NAME [--cas URL]\n\n"
		   "Deletes namespace NAME, its policy and its secrets.\n\n"
		   "  --cas URL     the CAS (default: $VEIL_CAS, else the one pinned last)\n"
		   "  -h, --help    this help\n");
}

static void list_usage(FILE *f)
{
	fprintf(f,
		"Usage: veil policy list [--cas URL] [-o json|yaml]\n\n"
		"Lists the namespaces this client created, with their current hashes.\n\n"
		"  --cas URL             the CAS (default: $VEIL_CAS, else the one pinned last)\n"
		"  -o, --output FORMAT   json or yaml: {\"policies\": [{name, hash}]}\n"
		"  -h, --help            this help\n");
}

/* The parsed command line of one policy sub-command. */
struct policy_args {
	const struct cli_cmd *cmd;
	const char *arg; /* FILE or NAME */
	const char *cas;
	const char *predecessor;
	enum cli_format fmt;
};

/* Parses flags and the one argument (none for list); 0, or an exit code + 1
 * in *exit_code when the command ends here. */
static int parse(const struct cli_cmd *cmd, int argc, char **argv, struct policy_args *a,
		 int *exit_code)
{
	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	int c;
	while ((c = getopt_long(argc, argv, cmd->shortopts, cmd->opts, NULL)) != -1) {
		if (c == O_CAS) {
			a->cas = optarg;
		} else if (c == O_PREDECESSOR) {
			if (!veil_is_sha256_hex(optarg)) {
				*exit_code = cli_usage_error(
				    cmd,
				    "--predecessor needs a policy hash (64 lower-case hex "
				    "digits), not '%s'",
				    optarg);
				return -1;
			}
			a->predecessor = optarg;
		} else if (c == 'o') {
			if (cli_parse_format(cmd, optarg, &a->fmt)) {
				*exit_code = EXIT_USAGE;
				return -1;
			}
		} else {
			*exit_code = cli_option_default(cmd, c, argv);
			return -1;
		}
	}
	int want = !strcmp(cmd->name, "list") ? 0 : 1;
	if (argc - optind != want) {
		if (argc - optind > want)
			*exit_code =
			    cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + want]);
		else
			*exit_code = cli_usage_error(
			    cmd, "give the %s", cmd->file_args ? "policy FILE" : "namespace NAME");
		return -1;
	}
	a->arg = want ? argv[optind] : NULL;
	if (!cmd->file_args && want && !veil_valid_namespace(a->arg)) {
		*exit_code = cli_usage_error(cmd, "'%s' is not a namespace name", a->arg);
		return -1;
	}
	return 0;
}

/* A JSON answer of a 2xx response, or a message naming `what`. */
static int answer(const struct response *r, const char *what, json_t **out, struct veil_diags *d)
{
	*out = NULL;
	if (r->status < 200 || r->status > 299) {
		response_error(r, what, d);
		return VEIL_EINVAL;
	}
	json_error_t err;
	if (!(*out = json_loadb(r->body.data, r->body.size, 0, &err))) {
		veil_diag(d, "%s: the CAS answered with malformed JSON", what);
		return VEIL_EIO;
	}
	return 0;
}

/* GETs namespace `ns`: its stored text and current hash (both strdup'd). */
static int fetch_policy(struct client *c, const char *ns, char **text, char **hash,
			struct veil_diags *d)
{
	struct response r = {0};
	json_t *j = NULL;
	char path[300], what[300];
	const char *t = NULL, *h = NULL;
	snprintf(path, sizeof(path), "/v1/policies/%s", ns);
	snprintf(what, sizeof(what), "policy get %s", ns);
	int rc = client_request(c, "GET", path, NULL, 0, &r, d);
	if (!rc)
		rc = answer(&r, what, &j, d);
	if (!rc &&
	    (json_unpack(j, "{s:s, s:s}", "policy", &t, "hash", &h) || !veil_is_sha256_hex(h))) {
		veil_diag(d, "%s: the CAS's answer lacks the policy or its hash", what);
		rc = VEIL_EIO;
	}
	if (!rc && (!(*text = strdup(t)) || !(*hash = strdup(h)))) {
		free(*text);
		*text = NULL;
		rc = VEIL_ENOMEM;
	}
	json_decref(j);
	response_free(&r);
	return rc;
}

/* POST (create) or PUT (update) a policy text; prints the result. */
static int send_policy(struct client *c, int create, const char *name, const char *text,
		       size_t size, long *status, struct veil_diags *d)
{
	struct response r = {0};
	char path[300], what[300];
	char *body = NULL;
	json_t *j = json_pack("{s:s%}", "policy", text, size), *ans = NULL;
	int rc = j && (body = json_dumps(j, JSON_COMPACT)) ? 0 : VEIL_ENOMEM;
	snprintf(path, sizeof(path), create ? "/v1/policies" : "/v1/policies/%s", name);
	snprintf(what, sizeof(what), "policy %s %s", create ? "create" : "update", name);
	if (!rc)
		rc = client_request(c, create ? "POST" : "PUT", path, body, 0, &r, d);
	if (status)
		*status = r.status;
	if (!rc)
		rc = answer(&r, what, &ans, d);
	const char *n = NULL, *h = NULL;
	if (!rc && json_unpack(ans, "{s:s, s:s}", "name", &n, "hash", &h)) {
		veil_diag(d, "%s: the CAS's answer lacks the name or hash", what);
		rc = VEIL_EIO;
	}
	if (!rc)
		printf("%s %s on %s\npolicy hash %s\n", create ? "created" : "updated", n, c->url,
		       h);
	json_decref(ans);
	json_decref(j);
	free(body);
	response_free(&r);
	return rc;
}

static int create_or_update(const struct policy_args *a, int create, struct veil_diags *d)
{
	struct client c;
	char *text = NULL, *name = NULL;
	size_t size = 0;
	char hash[2 * VEIL_SHA256_SIZE + 1];
	struct veil_buf canon;
	veil_buf_init(&canon, 0);
	int rc = veil_read_file(a->arg, veil_policy_limits.max_doc_size, &text, &size, d);
	if (rc)
		goto out;
	/* the file is checked before the CAS sees it; --predecessor rewrites it
	 * (in memory) to the canonical form with that predecessor */
	if ((rc = cli_policy_rewrite(a->arg, text, size, a->predecessor, &canon, hash, &name, d)))
		goto out;
	if ((rc = client_open(&c, cli_cas_url(a->cas), d)))
		goto out;
	if (a->predecessor)
		rc = send_policy(&c, create, name, canon.data, canon.size, NULL, d);
	else
		rc = send_policy(&c, create, name, text, size, NULL, d);
	client_close(&c);
out:
	veil_buf_free(&canon);
	free(text);
	free(name);
	return rc;
}

static int get_or_delete_or_list(const struct policy_args *a, struct veil_diags *d)
{
	struct client c;
	struct response r = {0};
	json_t *j = NULL, *out = NULL;
	char *text = NULL, *hash = NULL, path[300], what[300];
	struct veil_buf canon;
	veil_buf_init(&canon, 0);
	int rc = client_open(&c, cli_cas_url(a->cas), d);
	if (rc)
		return rc;
	if (!strcmp(a->cmd->name, "get")) {
		char h[2 * VEIL_SHA256_SIZE + 1];
		if ((rc = fetch_policy(&c, a->arg, &text, &hash, d)))
			goto out;
		/* the current hash as predecessor: get, edit, update just works */
		if ((rc = cli_policy_rewrite(a->arg, text, strlen(text), hash, &canon, h, NULL, d)))
			goto out;
		if (a->fmt == CLI_FMT_TEXT)
			fwrite(canon.data, 1, canon.size, stdout);
		else
			rc = cli_print_result(json_pack("{s:s, s:s, s:s%}", "name", a->arg, "hash",
							hash, "policy", canon.data, canon.size),
					      a->fmt);
		goto out;
	}
	if (!strcmp(a->cmd->name, "delete")) {
		snprintf(path, sizeof(path), "/v1/policies/%s", a->arg);
		snprintf(what, sizeof(what), "policy delete %s", a->arg);
		if (!(rc = client_request(&c, "DELETE", path, NULL, 0, &r, d)) &&
		    !(rc = answer(&r, what, &j, d)))
			printf("deleted %s on %s\n", a->arg, c.url);
		goto out;
	}
	json_t *list = NULL;
	if ((rc = client_request(&c, "GET", "/v1/policies", NULL, 0, &r, d)) ||
	    (rc = answer(&r, "policy list", &j, d)))
		goto out;
	if (json_unpack(j, "{s:o}", "policies", &list) || !json_is_array(list)) {
		veil_diag(d, "policy list: the CAS's answer lacks the list");
		rc = VEIL_EIO;
		goto out;
	}
	out = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e)
	{
		const char *n = NULL, *h = NULL;
		if (json_unpack(e, "{s:s, s:s}", "name", &n, "hash", &h))
			continue;
		if (a->fmt == CLI_FMT_TEXT)
			printf("%s %s\n", n, h);
		else if (!out ||
			 json_array_append_new(out, json_pack("{s:s, s:s}", "name", n, "hash", h)))
			rc = VEIL_ENOMEM;
	}
	if (!rc && a->fmt != CLI_FMT_TEXT) {
		rc = cli_print_result(json_pack("{s:O}", "policies", out), a->fmt);
	}
out:
	json_decref(out);
	json_decref(j);
	veil_buf_free(&canon);
	free(text);
	free(hash);
	response_free(&r);
	client_close(&c);
	return rc;
}

/* The temporary file of 'policy edit' holds the whole policy, explicit secret
 * values included. While it exists, a signal that ends veil removes it and ends
 * the editor too (which would write the file again on save), then ends veil by
 * the same signal. Its path and the editor's pid change only while these
 * signals are blocked, so the handler never sees them half-written. */
static const int edit_exit_signals[] = {SIGHUP, SIGINT, SIGTERM, SIGPIPE};
enum { EDIT_EXIT_SIGNAL_COUNT = sizeof(edit_exit_signals) / sizeof(edit_exit_signals[0]) };
static char edit_temp_path[512];
static volatile sig_atomic_t edit_editor_pid;
static struct sigaction edit_old_actions[EDIT_EXIT_SIGNAL_COUNT];

static void remove_edit_temp_file_and_die(int sig)
{
	if (edit_editor_pid > 0)
		kill((pid_t)edit_editor_pid, sig);
	if (edit_temp_path[0])
		unlink(edit_temp_path);
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	raise(sig); /* delivered when the handler returns: veil ends by `sig` */
}

static void block_edit_exit_signals(sigset_t *saved)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < EDIT_EXIT_SIGNAL_COUNT; i++)
		sigaddset(&set, edit_exit_signals[i]);
	sigprocmask(SIG_BLOCK, &set, saved);
}

/* Called with the signals blocked. A signal veil was started ignoring (nohup)
 * stays ignored. */
static void arm_edit_exit_signals(void)
{
	struct sigaction act = {.sa_handler = remove_edit_temp_file_and_die};
	sigfillset(&act.sa_mask);
	for (size_t i = 0; i < EDIT_EXIT_SIGNAL_COUNT; i++) {
		sigaction(edit_exit_signals[i], NULL, &edit_old_actions[i]);
		if (edit_old_actions[i].sa_handler != SIG_IGN)
			sigaction(edit_exit_signals[i], &act, NULL);
	}
}

/* Called with the signals blocked: the dispositions veil was started with. */
static void disarm_edit_exit_signals(void)
{
	for (size_t i = 0; i < EDIT_EXIT_SIGNAL_COUNT; i++)
		sigaction(edit_exit_signals[i], &edit_old_actions[i], NULL);
}

/* Runs the user's editor on path, as git does: through the shell, so
 * EDITOR may hold arguments ("code --wait"). */
static int run_editor(const char *path, struct veil_diags *d)
{
	const char *ed = getenv("VISUAL");
	if (!ed || !*ed)
		ed = getenv("EDITOR");
	if (!ed || !*ed)
		ed = "vi";
	/* as system() does: Ctrl-C is the editor's, and veil stays to clean up */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	int status = 0, rc = 0;
	sigset_t saved;
	block_edit_exit_signals(&saved);
	pid_t pid = fork();
	if (pid == 0) {
		/* the editor starts with veil's own dispositions; blocked until
		 * then, no signal runs veil's handler in this copy */
		disarm_edit_exit_signals();
		sigaction(SIGQUIT, &old_quit, NULL);
		sigprocmask(SIG_SETMASK, &saved, NULL);
		execl("/bin/sh", "sh", "-c", "exec $0 \"$1\"", ed, path, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		edit_editor_pid = pid;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	if (pid < 0) {
		veil_diag(d, "cannot start the editor: %s", strerror(errno));
		rc = VEIL_EIO;
	}
	while (!rc && waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			veil_diag(d, "waiting for the editor: %s", strerror(errno));
			rc = VEIL_EIO;
		}
	edit_editor_pid = 0;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (!rc && (!WIFEXITED(status) || WEXITSTATUS(status))) {
		veil_diag(d, "the editor '%s' failed (status %d): nothing uploaded", ed,
			  WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		rc = VEIL_EINVAL;
	}
	return rc;
}

static int edit(const struct policy_args *a, struct veil_diags *d)
{
	struct client c;
	char *text = NULL, *hash = NULL, *edited = NULL, *name = NULL;
	char *path = edit_temp_path;
	size_t esize = 0;
	int keep = 0, fd = -1, armed = 0;
	sigset_t saved;
	char h[2 * VEIL_SHA256_SIZE + 1], h2[2 * VEIL_SHA256_SIZE + 1];
	struct veil_buf shown, before, after;
	veil_buf_init(&shown, 0);
	veil_buf_init(&before, 0);
	veil_buf_init(&after, 0);
	int rc = client_open(&c, cli_cas_url(a->cas), d);
	if (rc)
		return rc;
	if ((rc = fetch_policy(&c, a->arg, &text, &hash, d)))
		goto out;
	if ((rc = cli_policy_rewrite(a->arg, text, strlen(text), hash, &shown, h, NULL, d)))
		goto out;
	const char *tmp = getenv("TMPDIR");
	char safe[64];
	size_t k = 0;
	for (const char *p = a->arg; *p && k + 1 < sizeof(safe); p++)
		safe[k++] = *p == '/' ? '_' : *p;
	safe[k] = '\0';
	/* the handlers are in place before the file exists */
	block_edit_exit_signals(&saved);
	arm_edit_exit_signals();
	armed = 1;
	snprintf(path, sizeof(edit_temp_path), "%s/veil-policy-%s-XXXXXX.yaml",
		 tmp && *tmp ? tmp : "/tmp", safe);
	/* mkstemps: a new file, mode 0600 */
	fd = mkstemps(path, 5);
	int mkstemps_errno = errno;
	if (fd < 0)
		path[0] = '\0';
	sigprocmask(SIG_SETMASK, &saved, NULL);
	if (fd < 0) {
		veil_diag(d, "cannot create a temporary file in %s: %s", tmp && *tmp ? tmp : "/tmp",
			  strerror(mkstemps_errno));
		rc = VEIL_EIO;
		goto out;
	}
	if (write(fd, shown.data, shown.size) != (ssize_t)shown.size || close(fd)) {
		fd = -1;
		veil_diag(d, "%s: cannot write: %s", path, strerror(errno));
		rc = VEIL_EIO;
		goto out;
	}
	fd = -1;
	if ((rc = run_editor(path, d)))
		goto out;
	if ((rc = veil_read_file(path, veil_policy_limits.max_doc_size, &edited, &esize, d)))
		goto out;
	keep = 1; /* from here on, a failure must not lose the user's edit */
	if ((rc = cli_policy_rewrite(path, edited, esize, NULL, &after, h2, &name, d)))
		goto out;
	if (strcmp(name, a->arg)) {
		veil_diag(d, "%s: the edited policy names namespace '%s', not '%s'", path, name,
			  a->arg);
		rc = VEIL_EINVAL;
		goto out;
	}
	/* unchanged, ignoring the predecessor and the layout: no new version */
	if ((rc = cli_policy_rewrite(a->arg, text, strlen(text), NULL, &before, h2, NULL, d)))
		goto out;
	/* not secret: policy text the user holds, compared on the client */
	if (before.size == after.size && !memcmp(before.data, after.data, after.size)) {
		printf("unchanged: %s on %s (nothing uploaded)\n", a->arg, c.url);
		keep = 0;
		goto out;
	}
	long status = 0;
	rc = send_policy(&c, 0, a->arg, edited, esize, &status, d);
	if (rc && status == 409)
		veil_diag(d,
			  "%s changed on the CAS while you edited it: run 'veil policy edit %s' "
			  "again and redo the change",
			  a->arg, a->arg);
	if (!rc)
		keep = 0;
out:
	if (fd >= 0)
		close(fd);
	if (armed)
		block_edit_exit_signals(&saved);
	if (keep && rc)
		veil_diag(d, "your edit is kept in %s", path);
	else if (path[0])
		unlink(path);
	path[0] = '\0';
	if (armed) {
		/* a signal that came meanwhile ends veil now, the file handled */
		disarm_edit_exit_signals();
		sigprocmask(SIG_SETMASK, &saved, NULL);
	}
	veil_buf_free(&shown);
	veil_buf_free(&before);
	veil_buf_free(&after);
	free(text);
	free(hash);
	free(edited);
	free(name);
	client_close(&c);
	return rc;
}

static int policy_run(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct policy_args a;
	int exit_code = 0;
	if (parse(cmd, argc, argv, &a, &exit_code))
		return exit_code;
	struct veil_diags d;
	veil_diags_init(&d);
	int rc;
	if (!strcmp(cmd->name, "create") || !strcmp(cmd->name, "update"))
		rc = create_or_update(&a, !strcmp(cmd->name, "create"), &d);
	else if (!strcmp(cmd->name, "edit"))
		rc = edit(&a, &d);
	else
		rc = get_or_delete_or_list(&a, &d);
	return cli_report(&d, rc);
}

#define CAS_OPT                                                                                    \
	{                                                                                          \
		"cas", required_argument, NULL, O_CAS                                              \
	}
#define OUTPUT_OPT                                                                                 \
	{                                                                                          \
		"output", required_argument, NULL, 'o'                                             \
	}

static const struct cli_cmd create_cmd, get_cmd, update_cmd, edit_cmd, delete_cmd, list_cmd;
static int create_main(int argc, char **argv)
{
	return policy_run(&create_cmd, argc, argv);
}
static int get_main(int argc, char **argv)
{
	return policy_run(&get_cmd, argc, argv);
}
static int update_main(int argc, char **argv)
{
	return policy_run(&update_cmd, argc, argv);
}
static int edit_main(int argc, char **argv)
{
	return policy_run(&edit_cmd, argc, argv);
}
static int delete_main(int argc, char **argv)
{
	return policy_run(&delete_cmd, argc, argv);
}
static int list_main(int argc, char **argv)
{
	return policy_run(&list_cmd, argc, argv);
}

static const struct cli_cmd create_cmd = {
    .name = "create",
    .path = "veil policy create",
    .summary = "create the namespace a policy FILE names",
    .run = create_main,
    .usage = create_usage,
    .opts = (const struct option[]){CAS_OPT, CLI_STD_OPTS, {0}},
    .shortopts = ":h",
    .file_args = 1,
};
static const struct cli_cmd get_cmd = {
    .name = "get",
    .path = "veil policy get",
    .summary = "print a policy, with its current hash as predecessor",
    .run = get_main,
    .usage = get_usage,
    .opts = (const struct option[]){CAS_OPT, OUTPUT_OPT, CLI_STD_OPTS, {0}},
    .shortopts = ":o:h",
};
static const struct cli_cmd update_cmd = {
    .name = "update",
    .path = "veil policy update",
    .summary = "replace a policy from FILE",
    .run = update_main,
    .usage = update_usage,
    .opts =
	(const struct option[]){
	    CAS_OPT, {"predecessor", required_argument, NULL, O_PREDECESSOR}, CLI_STD_OPTS, {0}},
    .shortopts = ":h",
    .file_args = 1,
};
static const struct cli_cmd edit_cmd = {
    .name = "edit",
    .path = "veil policy edit",
    .summary = "edit a policy in $VISUAL/$EDITOR and upload it",
    .run = edit_main,
    .usage = edit_usage,
    .opts = (const struct option[]){CAS_OPT, CLI_STD_OPTS, {0}},
    .shortopts = ":h",
};
static const struct cli_cmd delete_cmd = {
    .name = "delete",
    .path = "veil policy delete",
    .summary = "delete a namespace and its secrets",
    .run = delete_main,
    .usage = delete_usage,
    .opts = (const struct option[]){CAS_OPT, CLI_STD_OPTS, {0}},
    .shortopts = ":h",
};
static const struct cli_cmd list_cmd = {
    .name = "list",
    .path = "veil policy list",
    .summary = "the namespaces this client created",
    .run = list_main,
    .usage = list_usage,
    .opts = (const struct option[]){CAS_OPT, OUTPUT_OPT, CLI_STD_OPTS, {0}},
    .shortopts = ":o:h",
};

const struct cli_cmd policy_cmd = {
    .name = "policy",
    .path = "veil policy",
    .summary = "create, get, update, edit, delete and list policies on a CAS",
    .usage = policy_group_usage,
    .subs = (const struct cli_cmd *const[]){&create_cmd, &get_cmd, &update_cmd, &edit_cmd,
					    &delete_cmd, &list_cmd, NULL},
};
