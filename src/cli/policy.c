/* veil policy create FILE | get NAME | update FILE | delete NAME | list */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "client.h"
#include "veil/policy_model.h"

static void policy_usage(FILE *f)
{
	fprintf(f, "Usage: veil policy COMMAND [--cas URL]\n\n"
		   "  create FILE   create the namespace FILE's policy names\n"
		   "  get NAME      print the policy of namespace NAME\n"
		   "  update FILE   replace a policy; FILE must name the current hash as its\n"
		   "                'predecessor' (a concurrent update makes this one fail)\n"
		   "  delete NAME   delete namespace NAME and its secrets\n"
		   "  list          the namespaces this client created\n\n"
		   "  --cas URL     the CAS (default: the one pinned last by 'veil cas attest')\n"
		   "The CAS must have been attested with 'veil cas attest' first. The client's\n"
		   "identity is a key in $VEIL_HOME/identity, created on first use.\n");
}

/* Reads and validates a policy file; *name receives its namespace. */
static int load_policy(const char *file, char **text, char **name, struct veil_diags *d)
{
	size_t size;
	int rc = veil_read_file(file, veil_policy_limits.max_doc_size, text, &size, d);
	if (rc)
		return rc;
	struct ydoc doc;
	struct veil_policy p;
	rc = ydoc_init(&doc, file);
	if (!rc)
		rc = ydoc_parse(&doc, *text, size, &veil_policy_limits, d);
	if (!rc)
		rc = veil_policy_parse(&doc, &p, d);
	if (!rc && !(*name = strdup(p.name)))
		rc = VEIL_ENOMEM;
	ydoc_free(&doc);
	if (rc) {
		free(*text);
		*text = NULL;
	}
	return rc;
}

static int run(const char *cmd, const char *arg, const char *cas, struct veil_diags *d)
{
	struct client c;
	struct response r = {0};
	char *text = NULL, *name = NULL, *body = NULL, path[300];
	json_t *j = NULL;
	int rc = client_open(&c, cas, d);
	if (rc)
		return rc;
	int create = !strcmp(cmd, "create"), update = !strcmp(cmd, "update");
	if (create || update) {
		if ((rc = load_policy(arg, &text, &name, d)))
			goto out;
		j = json_pack("{s:s}", "policy", text);
		if (!j || !(body = json_dumps(j, JSON_COMPACT))) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		snprintf(path, sizeof(path), create ? "/v1/policies" : "/v1/policies/%s", name);
		rc = client_request(&c, create ? "POST" : "PUT", path, body, 0, &r, d);
	} else if (!strcmp(cmd, "list")) {
		rc = client_request(&c, "GET", "/v1/policies", NULL, 0, &r, d);
	} else {
		if (!veil_valid_namespace(arg)) {
			veil_diag(d, "'%s' is not a namespace name", arg);
			rc = VEIL_EINVAL;
			goto out;
		}
		snprintf(path, sizeof(path), "/v1/policies/%s", arg);
		rc = client_request(&c, !strcmp(cmd, "get") ? "GET" : "DELETE", path, NULL, 0, &r,
				    d);
	}
	if (rc)
		goto out;
	if (r.status < 200 || r.status > 299) {
		char what[400];
		snprintf(what, sizeof(what), "policy %s %s", cmd, arg ? arg : "");
		response_error(&r, what, d);
		rc = VEIL_EINVAL;
		goto out;
	}
	json_decref(j);
	json_error_t err;
	j = json_loadb(r.body.data, r.body.size, 0, &err);
	const char *n = NULL, *h = NULL, *pol = NULL;
	json_t *list = NULL;
	if (!j) {
		veil_diag(d, "the CAS answered with malformed JSON");
		rc = VEIL_EIO;
	} else if (create || update) {
		json_unpack(j, "{s:s, s:s}", "name", &n, "hash", &h);
		printf("%s %s\npolicy hash %s\n", create ? "created" : "updated", n ? n : "?",
		       h ? h : "?");
	} else if (!strcmp(cmd, "get") && !json_unpack(j, "{s:s}", "policy", &pol)) {
		fputs(pol, stdout);
	} else if (!strcmp(cmd, "list") && !json_unpack(j, "{s:o}", "policies", &list)) {
		size_t i;
		json_t *e;
		json_array_foreach(list, i, e)
		{
			if (!json_unpack(e, "{s:s, s:s}", "name", &n, "hash", &h))
				printf("%s %s\n", n, h);
		}
	} else if (!strcmp(cmd, "delete")) {
		printf("deleted %s\n", arg);
	}
out:
	json_decref(j);
	free(body);
	free(text);
	free(name);
	response_free(&r);
	client_close(&c);
	return rc;
}

int policy_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cas", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {0}};
	const char *cas = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'c') {
			cas = optarg;
		} else if (c == 'h') {
			policy_usage(stdout);
			return 0;
		} else {
			policy_usage(stderr);
			return EXIT_USAGE;
		}
	}
	const char *cmd = optind < argc ? argv[optind] : NULL;
	int nargs = argc - optind - 1;
	int ok = cmd && ((!strcmp(cmd, "list") && nargs == 0) ||
			 ((!strcmp(cmd, "create") || !strcmp(cmd, "get") ||
			   !strcmp(cmd, "update") || !strcmp(cmd, "delete")) &&
			  nargs == 1));
	if (!ok) {
		policy_usage(stderr);
		return EXIT_USAGE;
	}
	struct veil_diags d;
	veil_diags_init(&d);
	return cli_report(&d, run(cmd, nargs ? argv[optind + 1] : NULL, cas, &d));
}
