#ifndef VEIL_CLI_H
#define VEIL_CLI_H

#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "veil/args.h"
#include "veil/common.h"
#include "veil/registry.h"

/* VEIL_VERSION comes from meson.build (project version), nowhere else */
#ifndef VEIL_VERSION
#error "VEIL_VERSION must be defined by the build (meson.build)"
#endif

/* Exit codes: 0 success, 1 the input was rejected, 2 usage error. */
enum { EXIT_REJECTED = 1, EXIT_USAGE = 2 };

/* A node of the command tree (veil, veil policy, veil policy get, ...). The
 * same tables drive dispatch, --help of groups, "did you mean" and the bash
 * completion (completion.c), so a command or flag exists in all or none.
 *
 * A group has `subs` (NULL-terminated); a leaf has `run`, which gets argv with
 * argv[0] = its own name and getopt reset. Flags with a file or folder value
 * are listed in `file_flags` (long names, space separated); `file_args` says
 * the positional arguments are files. */
struct cli_cmd {
	const char *name;
	const char *path; /* "veil policy get": for messages and hints */
	const char *summary;
	int (*run)(int argc, char **argv);
	void (*usage)(FILE *f); /* leaves: full help; groups: text after the list */
	const struct cli_cmd *const *subs;
	const struct option *opts; /* leaves: getopt_long's table */
	const char *shortopts;     /* leaves: starts with ':' (missing values reported) */
	const char *file_flags;
	int file_args;
};

/* The value getopt returns for --version; every leaf's table has it. */
enum {
	CLI_OPT_VERSION = 0x7f00,
	CLI_OPT_OUTPUT,
	CLI_OPT_REGISTRY_AUTH,
	CLI_OPT_AUTHFILE,
	CLI_OPT_INSECURE_REGISTRY,
	CLI_OPT_REGISTRY_MIRROR,
};
#define CLI_STD_OPTS                                                                               \
	{"help", no_argument, NULL, 'h'},                                                          \
	{                                                                                          \
		"version", no_argument, NULL, CLI_OPT_VERSION                                      \
	}

extern const struct cli_cmd cli_root;
extern const struct cli_cmd check_cmd, apply_cmd, policy_cmd, cas_cmd, audit_cmd, whoami_cmd,
    completion_cmd, image_cmd, evidence_cmd;

/* The registry flags of `veil apply` and `veil image` (image.c): put
 * CLI_REGISTRY_OPTS in the getopt table, give every option to
 * cli_registry_option first, and pass `o` to veil_image_push/pull. The
 * struct points into argv; cli_registry_free releases its arrays. */
struct cli_registry {
	struct veil_registry_opts o;
	const char **insecure;
	size_t insecure_count;
	struct veil_registry_mirror *mirrors;
	size_t mirror_count;
};
#define CLI_REGISTRY_OPTS                                                                          \
	{"registry-auth", required_argument, NULL, CLI_OPT_REGISTRY_AUTH},                         \
	    {"authfile", required_argument, NULL, CLI_OPT_AUTHFILE},                               \
	    {"insecure-registry", required_argument, NULL, CLI_OPT_INSECURE_REGISTRY},             \
	{                                                                                          \
		"registry-mirror", required_argument, NULL, CLI_OPT_REGISTRY_MIRROR                \
	}
/* 1: c was a registry flag (taken), 0: it was not, EXIT_USAGE: a bad value
 * (message printed). */
int cli_registry_option(const struct cli_cmd *cmd, struct cli_registry *r, int c, const char *arg);
void cli_registry_free(struct cli_registry *r);
/* The flags' lines for a --help text. */
void cli_registry_usage(FILE *f);

/* Runs a group: its sub-command, --help, --version, or a usage error. */
int cli_dispatch(const struct cli_cmd *group, int argc, char **argv);
/* What a leaf's getopt loop does with an option it does not handle itself:
 * -h/--help (help on stdout, 0), --version (0), an unknown flag or a missing
 * value (one line on stderr, a hint, EXIT_USAGE). */
int cli_option_default(const struct cli_cmd *cmd, int c, char **argv);
/* A usage error: "error: <msg>" and "See '<path> --help'."; returns EXIT_USAGE. */
int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Closest name of a group's sub-commands within a small edit distance, or NULL. */
const char *cli_suggest(const struct cli_cmd *group, const char *word);

/* -o json|yaml */
enum cli_format { CLI_FMT_TEXT = 0, CLI_FMT_JSON, CLI_FMT_YAML };
/* Parses -o's value; a usage error (message printed) returns EXIT_USAGE. */
int cli_parse_format(const struct cli_cmd *cmd, const char *arg, enum cli_format *out);
/* Prints j (consumed) on stdout as JSON or YAML; 0 or a veil_err. */
int cli_print_result(json_t *j, enum cli_format fmt);
/* The diagnostics as a JSON array of strings (new reference; NULL on ENOMEM). */
json_t *cli_diags_json(const struct veil_diags *d);

/* Prints d (and frees it) and turns a veil_err into the command's exit
 * status: 0 for 0, EXIT_REJECTED otherwise. Returns an exit status, not a
 * veil_err: a command's last statement. */
int cli_report(struct veil_diags *d, int rc);

/* Parses and validates a policy's YAML text, sets its 'predecessor' (NULL:
 * removes it) and gives its canonical bytes and hash. name (optional)
 * receives the namespace (caller frees). label names the text in messages. */
int cli_policy_rewrite(const char *label, const char *text, size_t size, const char *predecessor,
		       struct veil_buf *canon, char hash[static 2 * VEIL_SHA256_SIZE + 1],
		       char **name, struct veil_diags *d);

/* Files named on the command line: a file, a folder (its *.yaml, *.yml and
 * Meshfile, sorted, not recursive) or "-" (stdin, at most once). */
struct cli_input {
	char *name; /* the path, or "<stdin>" */
	char *data; /* the bytes, for stdin only; else NULL */
	size_t size;
	int is_stdin;
};
int cli_inputs_add(struct cli_input **v, size_t *count, const char *arg, size_t max_size,
		   struct veil_diags *d);
void cli_inputs_free(struct cli_input *v, size_t count);

/* The CAS URL a command talks to: --cas, else $VEIL_CAS, else NULL. */
const char *cli_cas_url(const char *flag);

/* What a client tolerates when it attests a CAS (SCONE's flags). */
struct cas_tolerance {
	int configuration_needed; /* -C */
	int outdated_tcb;         /* -G */
	int sw_hardening_needed;  /* -S */
	int debug, ignore_signer, trust_any;
	const char *mrenclave;
};
int cli_tolerance_parse(const char *flags, struct cas_tolerance *t, struct veil_diags *d);
/* Attests the CAS at url and pins its key (cas.c). *result (optional)
 * receives a JSON object describing the CAS (new reference). */
int cli_attest(const char *url, const struct cas_tolerance *t, int quiet, json_t **result,
	       struct veil_diags *d);

#endif
