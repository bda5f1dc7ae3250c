/* veil image push DIR REF | pull REF DIR, and the registry flags they share
 * with `veil apply` (cli_registry_*). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum { OPT_MOUNT_FROM = 256 };

void cli_registry_usage(FILE *f)
{
	fprintf(
	    f,
	    "      --registry-auth FILE      a file holding USER:PASSWORD (one line) for the\n"
	    "                                registry (else $VEIL_REGISTRY_AUTH, else the\n"
	    "                                auth files); never a password on the command line\n"
	    "      --authfile FILE           the auth file to read (default: $REGISTRY_AUTH_FILE,\n"
	    "                                ${XDG_RUNTIME_DIR}/containers/auth.json,\n"
	    "                                ~/.docker/config.json)\n"
	    "      --insecure-registry HOST[:PORT]\n"
	    "                                allow plain HTTP and unverified TLS for exactly\n"
	    "                                this registry (repeatable)\n"
	    "      --registry-mirror FROM=TO  contact registry TO for references to FROM\n"
	    "                                (HOST[:PORT] each; repeatable)\n");
}

int cli_registry_option(const struct cli_cmd *cmd, struct cli_registry *r, int c, const char *arg)
{
	switch (c) {
	case CLI_OPT_REGISTRY_AUTH:
		r->o.credentials_file = arg;
		return 1;
	case CLI_OPT_AUTHFILE:
		r->o.auth_file = arg;
		return 1;
	case CLI_OPT_INSECURE_REGISTRY: {
		if (!*arg || strchr(arg, '/'))
			return cli_usage_error(
			    cmd, "--insecure-registry takes HOST[:PORT], not '%s'", arg);
		const char **p = realloc(r->insecure, (r->insecure_count + 1) * sizeof(*p));
		if (!p)
			return cli_usage_error(cmd, "out of memory");
		r->insecure = p;
		p[r->insecure_count++] = arg;
		r->o.insecure = r->insecure;
		r->o.insecure_count = r->insecure_count;
		return 1;
	}
	case CLI_OPT_REGISTRY_MIRROR: {
		const char *eq = strchr(arg, '=');
		if (!eq || eq == arg || !eq[1] || strchr(arg, '/'))
			return cli_usage_error(cmd,
					       "--registry-mirror takes FROM=TO (HOST[:PORT] "
					       "each), not '%s'",
					       arg);
		struct veil_registry_mirror *p =
		    realloc(r->mirrors, (r->mirror_count + 1) * sizeof(*p));
		char *from = strndup(arg, (size_t)(eq - arg));
		if (!p || !from) {
			free(from);
			if (p)
				r->mirrors = p;
			return cli_usage_error(cmd, "out of memory");
		}
		r->mirrors = p;
		p[r->mirror_count].from = from;
		p[r->mirror_count++].to = eq + 1;
		r->o.mirrors = r->mirrors;
		r->o.mirror_count = r->mirror_count;
		return 1;
	}
	}
	return 0;
}

void cli_registry_free(struct cli_registry *r)
{
	for (size_t i = 0; i < r->mirror_count; i++)
		free((char *)r->mirrors[i].from);
	free(r->mirrors);
	free(r->insecure);
	memset(r, 0, sizeof(*r));
}

static void image_group_usage(FILE *f)
{
	fprintf(f, "Copies images between an OCI image layout folder and a registry (the OCI\n"
		   "distribution API). 'veil apply -f service.yaml' pushes the images it\n"
		   "builds the same way.\n\n");
}

static void push_usage(FILE *f)
{
	fprintf(f,
		"Usage: veil image push DIR REF [options]\n\n"
		"Pushes the image of the OCI image layout folder DIR to REF\n"
		"([docker://]HOST[:PORT]/REPO[:TAG]). Blobs the registry has are not sent\n"
		"again. Prints the pushed manifest's digest.\n\n"
		"Options:\n"
		"  -n, --name NAME               the image in DIR (its index.json's\n"
		"                                org.opencontainers.image.ref.name; default: the\n"
		"                                only one)\n"
		"      --mount-from REPO         a repository of the same registry that may hold\n"
		"                                the blobs (the base image's): those it has are\n"
		"                                mounted, not sent\n");
	cli_registry_usage(f);
	fprintf(
	    f,
	    "  -o, --output FORMAT           json or yaml: {\"digest\", \"reference\",\n"
	    "                                \"blobs_sent\", \"blobs_present\", \"bytes_sent\",\n"
	    "                                \"blobs_mounted\"}\n"
	    "  -v, --verbose                 one line per HTTP request on stderr\n"
	    "  -h, --help                    this help\n");
}

static void pull_usage(FILE *f)
{
	fprintf(f,
		"Usage: veil image pull REF DIR [options]\n\n"
		"Pulls REF ([docker://]HOST[:PORT]/REPO[:TAG|@sha256:HEX]; of an index, its\n"
		"linux/amd64 image) into the OCI image layout folder DIR (created if missing;\n"
		"the other images in it are kept). Every blob is checked against its digest\n"
		"before it is kept; index.json is written last. Prints the manifest's digest.\n\n"
		"Options:\n"
		"  -n, --name NAME               the image's name in DIR (default: REF's tag)\n");
	cli_registry_usage(f);
	fprintf(
	    f,
	    "  -o, --output FORMAT           json or yaml: {\"digest\", \"reference\",\n"
	    "                                \"blobs_sent\", \"blobs_present\", \"bytes_sent\"}\n"
	    "  -v, --verbose                 one line per HTTP request on stderr\n"
	    "  -h, --help                    this help\n");
}

static int image_main(const struct cli_cmd *cmd, int push, int argc, char **argv)
{
	struct cli_registry reg;
	memset(&reg, 0, sizeof(reg));
	struct veil_registry_stats stats;
	memset(&stats, 0, sizeof(stats));
	enum cli_format fmt = CLI_FMT_TEXT;
	const char *name = NULL;
	int c, usage = 0;
	while (!usage && (c = getopt_long(argc, argv, cmd->shortopts, cmd->opts, NULL)) != -1) {
		int r = cli_registry_option(cmd, &reg, c, optarg);
		if (r)
			usage = r == 1 ? 0 : r;
		else if (c == 'o')
			usage = cli_parse_format(cmd, optarg, &fmt);
		else if (c == 'n')
			name = optarg;
		else if (c == 'v')
			reg.o.verbose = 1;
		else if (c == OPT_MOUNT_FROM && push)
			reg.o.mount_from = optarg;
		else {
			cli_registry_free(&reg);
			return cli_option_default(cmd, c, argv);
		}
	}
	if (!usage && argc - optind != 2)
		usage =
		    cli_usage_error(cmd, push ? "expected DIR and REF" : "expected REF and DIR");
	if (usage) {
		cli_registry_free(&reg);
		return usage;
	}
	const char *dir = push ? argv[optind] : argv[optind + 1];
	const char *ref = push ? argv[optind + 1] : argv[optind];
	reg.o.progress = fmt == CLI_FMT_TEXT;
	reg.o.stats = &stats;
	struct veil_diags d;
	veil_diags_init(&d);
	char digest[VEIL_DIGEST_MAX] = "";
	int rc = push ? veil_image_push(dir, name, ref, &reg.o, digest, &d)
		      : veil_image_pull_digest(ref, dir, name, &reg.o, digest, &d);
	if (!rc && fmt != CLI_FMT_TEXT) {
		json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I}", "digest", digest, "reference",
				      ref, "blobs_sent", (json_int_t)stats.blobs_sent,
				      "blobs_present", (json_int_t)stats.blobs_present,
				      "bytes_sent", (json_int_t)stats.bytes_sent);
		if (j && push &&
		    json_object_set_new(j, "blobs_mounted",
					json_integer((json_int_t)stats.blobs_mounted))) {
			json_decref(j);
			j = NULL;
		}
		rc = cli_print_result(j, fmt);
	} else if (!rc) {
		printf("%s\n", digest);
		fprintf(stderr, "%s %s: %zu blob%s %s (%llu bytes), %zu already %s",
			push ? "pushed" : "pulled", ref, stats.blobs_sent,
			stats.blobs_sent == 1 ? "" : "s", push ? "sent" : "received",
			(unsigned long long)stats.bytes_sent, stats.blobs_present,
			push ? "in the registry" : "in the layout");
		if (stats.blobs_mounted)
			fprintf(stderr, ", %zu mounted from %s", stats.blobs_mounted,
				reg.o.mount_from);
		fputc('\n', stderr);
	}
	cli_registry_free(&reg);
	return cli_report(&d, rc);
}

static int push_main(int argc, char **argv);
static int pull_main(int argc, char **argv);

#define IMAGE_OPTS                                                                                 \
	{"name", required_argument, NULL, 'n'}, {"output", required_argument, NULL, 'o'},          \
	    {"verbose", no_argument, NULL, 'v'}, CLI_REGISTRY_OPTS, CLI_STD_OPTS,                  \
	{                                                                                          \
		0                                                                                  \
	}

static const struct cli_cmd push_cmd = {
    .name = "push",
    .path = "veil image push",
    .summary = "push an OCI image layout folder to a registry",
    .run = push_main,
    .usage = push_usage,
    .opts = (const struct option[]){{"mount-from", required_argument, NULL, OPT_MOUNT_FROM},
				    IMAGE_OPTS},
    .shortopts = ":n:o:vh",
    .file_flags = "registry-auth authfile",
    .file_args = 1,
};

static const struct cli_cmd pull_cmd = {
    .name = "pull",
    .path = "veil image pull",
    .summary = "pull an image into an OCI image layout folder",
    .run = pull_main,
    .usage = pull_usage,
    .opts = (const struct option[]){IMAGE_OPTS},
    .shortopts = ":n:o:vh",
    .file_flags = "registry-auth authfile",
    .file_args = 1,
};

static int push_main(int argc, char **argv)
{
	return image_main(&push_cmd, 1, argc, argv);
}

static int pull_main(int argc, char **argv)
{
	return image_main(&pull_cmd, 0, argc, argv);
}

const struct cli_cmd image_cmd = {
    .name = "image",
    .path = "veil image",
    .summary = "push and pull images (image push DIR REF, image pull REF DIR)",
    .usage = image_group_usage,
    .subs = (const struct cli_cmd *const[]){&push_cmd, &pull_cmd, NULL},
};
