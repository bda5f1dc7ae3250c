/* veil image push DIR REF | pull REF DIR, and the registry flags they share
 * with `veil apply` (cli_registry_*). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "veil/image.h"

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
		   "builds the same way. 'control-plane' builds veil-cas's and veil-las's\n"
		   "own images.\n\n");
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

/* --- veil image control-plane: veil-cas's and veil-las's own images --- */

/* What each component's image holds besides its binary and the shared
 * objects the binary needs. */
static const struct cp_component {
	const char *name;       /* cas, las */
	const char *binary;     /* veil-cas, veil-las: next to veil, and in /usr/bin */
	const char *user;       /* config.User: the chart's runAsUser (veil-las: root) */
	const char *shell;      /* a /bin/sh for the chart's first-start script, or NULL */
	const char *folders[3]; /* mount points: the chart's volumes */
} cp_components[] = {
    {"cas", "veil-cas", "10001:10001", "/bin/sh", {"/tmp", "/var/lib/veil-cas", NULL}},
    {"las", "veil-las", NULL, NULL, {"/run/veil", "/var/lib/veil-las", NULL}},
};

struct cp_files {
	struct veil_image_file *v;
	size_t count, cap;
};

static void cp_files_free(struct cp_files *f)
{
	for (size_t i = 0; i < f->count; i++) {
		free((char *)f->v[i].path);
		free((char *)f->v[i].src);
	}
	free(f->v);
	memset(f, 0, sizeof(*f));
}

/* path from src (NULL: a folder); a path already there is kept as it is */
static int cp_add(struct cp_files *f, const char *path, const char *src, unsigned mode)
{
	for (size_t i = 0; i < f->count; i++)
		if (!strcmp(f->v[i].path, path))
			return 0;
	if (f->count == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 32;
		struct veil_image_file *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return VEIL_ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	char *p = strdup(path), *s = src ? strdup(src) : NULL;
	if (!p || (src && !s)) {
		free(p);
		free(s);
		return VEIL_ENOMEM;
	}
	f->v[f->count++] = (struct veil_image_file){.path = p, .src = s, .mode = mode};
	return 0;
}

/* An executable ELF file: what an image's entrypoint (or /bin/sh) must be. */
static int cp_executable_elf(const char *path, struct veil_diags *d)
{
	char magic[4] = {0};
	struct stat st;
	FILE *f = fopen(path, "rbe");
	int elf =
	    /* not secret: the ELF magic */
	    f && fread(magic, 1, sizeof(magic), f) == sizeof(magic) && !memcmp(magic, "\177ELF", 4);
	if (f)
		fclose(f);
	if (elf && !stat(path, &st) && S_ISREG(st.st_mode) && (st.st_mode & 0111))
		return 0;
	veil_diag(d, "%s: not an executable ELF file", path);
	return VEIL_EINVAL;
}

/* The host program at image path `as`, with its loader and the shared
 * objects it needs (DT_NEEDED, recursively) at the paths the loader finds
 * them on this host: src/image/runtime.c's resolution, the one `veil apply`
 * records for a service's program. Neither /etc/ld.so.cache nor
 * /etc/ld.so.preload goes in: without a cache the loader searches its
 * system folders, where the objects are. */
static int cp_add_program(struct cp_files *f, const char *host, const char *as,
			  struct veil_diags *d)
{
	char *program = NULL;
	struct veil_file_entry *deps = NULL;
	size_t n = 0;
	int rc = veil_measure_runtime_files("/", host, &program, &deps, &n, d);
	if (!rc && !program) {
		veil_diag(d, "%s: not found (or not an executable file)", host);
		rc = VEIL_ENOENT;
	}
	if (!rc)
		rc = cp_executable_elf(program, d);
	if (!rc)
		rc = cp_add(f, as, program, 0755);
	for (size_t i = 0; !rc && i < n; i++) {
		const char *p = deps[i].path;
		if (!strcmp(p, program) || !deps[i].mode || !strcmp(p, "/etc/ld.so.cache"))
			continue;
		/* the layer writer refuses to follow a link (/lib64/ld-linux-x86-64.so.2) */
		char *real = realpath(p, NULL);
		if (!real) {
			veil_diag(d, "%s: cannot resolve: %s", p, strerror(errno));
			rc = VEIL_EIO;
		} else {
			rc = cp_add(f, p, real, deps[i].mode);
		}
		free(real);
	}
	for (size_t i = 0; i < n; i++)
		free(deps[i].path);
	free(deps);
	free(program);
	return rc;
}

/* --out is replaced whole, so it must be new, an empty folder or a layout:
 * a mistyped --out never wipes a folder of other files. */
static int cp_out_replaceable(const char *dir, struct veil_diags *d)
{
	struct stat st;
	if (lstat(dir, &st) < 0 && errno == ENOENT)
		return 0;
	if (lstat(dir, &st) < 0) {
		veil_diag(d, "--out %s: %s", dir, strerror(errno));
		return VEIL_EIO;
	}
	DIR *dh = S_ISDIR(st.st_mode) ? opendir(dir) : NULL;
	int empty = 1;
	for (struct dirent *e; dh && (e = readdir(dh));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = 0;
	if (dh)
		closedir(dh);
	char *marker = veil_path_join(dir, "oci-layout");
	int layout = marker && !lstat(marker, &st) && S_ISREG(st.st_mode);
	free(marker);
	if (dh && (empty || layout))
		return 0;
	veil_diag(d,
		  "--out %s: exists and is not an OCI image layout folder (no oci-layout) nor "
		  "an empty folder; it would be replaced whole, so name a new folder",
		  dir);
	return VEIL_EINVAL;
}

static void control_plane_usage(FILE *f)
{
	fprintf(
	    f, "Usage: veil image control-plane --component cas|las --out DIR [options]\n\n"
	       "Builds the image of veil-cas or veil-las that deploy/helm/veil runs, with\n"
	       "the builder of 'veil apply' (the same layer and layout writers, reproducible:\n"
	       "the same binaries give the same digest), as an OCI image layout folder DIR.\n"
	       "One layer, no base: the binary at /usr/bin/veil-cas (or veil-las), its\n"
	       "entrypoint, and the loader and shared objects it needs, copied from this\n"
	       "host; the CAS's image also holds /bin/sh (this host's, with its objects) for\n"
	       "the chart's first-start script, runs as 10001:10001 and has the mount points\n"
	       "/tmp and /var/lib/veil-cas; the LAS's has /run/veil and /var/lib/veil-las.\n"
	       "No veil-run: these two are the root that veil-run attests to.\n"
	       "SOURCE_DATE_EPOCH sets the time stamps (default 0). Prints the digest.\n\n"
	       "Options:\n"
	       "  -c, --component NAME          cas or las\n"
	       "      --out DIR                 the OCI image layout folder: new, empty, or a\n"
	       "                                layout, which is replaced whole\n"
	       "      --binary FILE             the binary (default: veil-cas or veil-las next to\n"
	       "                                veil)\n"
	       "  -t, --tag TAG                 the image's name in DIR (default: veil's\n"
	       "                                version, the chart's default tag)\n"
	       "  -o, --output FORMAT           json or yaml: {\"component\", \"digest\",\n"
	       "                                \"layout\", \"tag\", \"files\"}\n"
	       "  -h, --help                    this help\n");
}

static int control_plane_main(int argc, char **argv);

enum { OPT_OUT = 257, OPT_BINARY };

static const struct cli_cmd control_plane_cmd = {
    .name = "control-plane",
    .path = "veil image control-plane",
    .summary = "build veil-cas's or veil-las's image (an OCI image layout folder)",
    .run = control_plane_main,
    .usage = control_plane_usage,
    .opts = (const struct option[]){{"component", required_argument, NULL, 'c'},
				    {"out", required_argument, NULL, OPT_OUT},
				    {"binary", required_argument, NULL, OPT_BINARY},
				    {"tag", required_argument, NULL, 't'},
				    {"output", required_argument, NULL, 'o'},
				    CLI_STD_OPTS,
				    {0}},
    .shortopts = ":c:t:o:h",
    .file_flags = "out binary",
};

static int control_plane_main(int argc, char **argv)
{
	const struct cli_cmd *cmd = &control_plane_cmd;
	const char *component = NULL, *out_dir = NULL, *binary = NULL, *tag = VEIL_VERSION;
	enum cli_format fmt = CLI_FMT_TEXT;
	int c;
	while ((c = getopt_long(argc, argv, cmd->shortopts, cmd->opts, NULL)) != -1) {
		if (c == 'c')
			component = optarg;
		else if (c == OPT_OUT)
			out_dir = optarg;
		else if (c == OPT_BINARY)
			binary = optarg;
		else if (c == 't')
			tag = optarg;
		else if (c == 'o') {
			if (cli_parse_format(cmd, optarg, &fmt))
				return EXIT_USAGE;
		} else
			return cli_option_default(cmd, c, argv);
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	const struct cp_component *k = NULL;
	for (size_t i = 0; component && i < VEIL_ARRAY_LEN(cp_components); i++)
		if (!strcmp(component, cp_components[i].name))
			k = &cp_components[i];
	if (!k)
		return cli_usage_error(cmd, "--component takes cas or las%s%s%s",
				       component ? ", not '" : "", component ? component : "",
				       component ? "'" : "");
	if (!out_dir || !*out_dir)
		return cli_usage_error(cmd, "--out DIR is required");
	if (!*tag || strlen(tag) > 128 ||
	    strspn(tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
		strlen(tag))
		return cli_usage_error(cmd, "--tag '%s' is not a tag ([A-Za-z0-9_.-], 1 to 128)",
				       tag);
	struct veil_diags d;
	veil_diags_init(&d);
	struct cp_files files = {0};
	struct veil_image_staged staged = {0};
	char *self = NULL, *bin = NULL, *layout = NULL, *usr_bin = NULL;
	long long epoch = 0;
	int rc = veil_image_epoch(&epoch, &d);
	if (!rc && !binary) {
		self = veil_self_dir();
		bin = self ? veil_path_join(self, k->binary) : NULL;
		rc = bin ? 0 : VEIL_ENOMEM;
	} else if (!rc) {
		/* runtime.c resolves a program given by an absolute path only */
		bin = realpath(binary, NULL);
		if (!bin) {
			veil_diag(&d, "--binary %s: %s", binary, strerror(errno));
			rc = VEIL_EINVAL;
		}
	}
	if (!rc && !(layout = realpath(out_dir, NULL))) {
		/* not there yet: its parent must be, or be made */
		layout = out_dir[0] == '/' ? strdup(out_dir) : NULL;
		if (!layout) {
			char *cwd = getcwd(NULL, 0);
			layout = cwd ? veil_path_join(cwd, out_dir) : NULL;
			free(cwd);
		}
		rc = layout ? 0 : VEIL_ENOMEM;
	}
	if (!rc)
		rc = cp_out_replaceable(layout, &d);
	if (!rc && asprintf(&usr_bin, "/usr/bin/%s", k->binary) < 0) {
		usr_bin = NULL;
		rc = VEIL_ENOMEM;
	}
	if (!rc)
		rc = cp_add_program(&files, bin, usr_bin, &d);
	if (!rc && k->shell)
		rc = cp_add_program(&files, k->shell, k->shell, &d);
	for (size_t i = 0; !rc && k->folders[i]; i++)
		rc = cp_add(&files, k->folders[i], NULL, 0755);
	if (!rc) {
		const char *entrypoint[] = {usr_bin, NULL};
		const char *env[] = {"PATH=" VEIL_DEFAULT_PATH, NULL};
		char created_by[64];
		snprintf(created_by, sizeof(created_by), "veil image control-plane: %s", k->binary);
		struct veil_image_files_opts o = {
		    .files = files.v,
		    .file_count = files.count,
		    .entrypoint = entrypoint,
		    .env = env,
		    .user = k->user,
		    .created_by = created_by,
		    .layout = layout,
		    .tag = tag,
		    .epoch = epoch,
		};
		rc = veil_image_build_files(&o, &staged, &d);
	}
	char digest[VEIL_DIGEST_SIZE] = "";
	if (!rc) {
		snprintf(digest, sizeof(digest), "%s", staged.digest);
		rc = veil_image_commit(&staged, &d);
	}
	if (!rc && fmt != CLI_FMT_TEXT) {
		rc = cli_print_result(json_pack("{s:s, s:s, s:s, s:s, s:I}", "component", k->name,
						"digest", digest, "layout", layout, "tag", tag,
						"files", (json_int_t)files.count),
				      fmt);
	} else if (!rc) {
		printf("%s\n", digest);
		fprintf(stderr, "built %s's image: %zu entries, in %s (tag %s)\n", k->binary,
			files.count, layout, tag);
	}
	veil_image_discard(&staged);
	cp_files_free(&files);
	free(self);
	free(bin);
	free(layout);
	free(usr_bin);
	return cli_report(&d, rc);
}

const struct cli_cmd image_cmd = {
    .name = "image",
    .path = "veil image",
    .summary = "push and pull images, build the control plane's",
    .usage = image_group_usage,
    .subs = (const struct cli_cmd *const[]){&push_cmd, &pull_cmd, &control_plane_cmd, NULL},
};
