/* veil apply -f service.yaml | -f Meshfile */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "client.h"
#include "veil/deploy.h"
#include "veil/image.h"
#include "veil/policy.h"
#include "veil/secrets.h"

struct apply_opts {
	const char *target;
	const char *base; /* --base */
	int no_push, no_upload, debug_mode, print_defaults;
	const char *cas;
	unsigned outputs;
	enum cli_format fmt;
	json_t *items;                /* -o json|yaml: one result per input */
	struct cli_registry registry; /* where and how build.to is pushed */
};

static void apply_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: veil apply -f FILE... [--output-dir DIR] [options]\n\n"
	    "-f takes a file, a folder (its *.yaml, *.yml and Meshfile, not recursive) or\n"
	    "- (stdin), and can be repeated. Every input is parsed before anything is\n"
	    "written; service manifests are applied before Meshfiles. Of several\n"
	    "Meshfiles, every one is checked (and the CAS read) before the first is\n"
	    "written, and every one is written before the first upload.\n\n"
	    "With a service manifest (kind: genservice):\n"
	    "  Resolves the 'copy' files relative to the manifest's folder (the current\n"
	    "  folder for stdin) and writes the service's measurement record to\n"
	    "  DIR/images/<build.name>/: per protected file its image path, mode and\n"
	    "  SHA-256, the file-set root, the protected command and pwd, and the runtime\n"
	    "  measurement (SHA-256 of veil-run). It also records the runtime files: the\n"
	    "  program the command resolves to, its loader and shared objects, and a\n"
	    "  Python interpreter's folders (their listings and .pth and site files),\n"
	    "  looked up under $VEIL_IMAGE_ROOT (default /); veil-run checks them before\n"
	    "  it execs the program. Then it builds the OCI image, reproducibly: the\n"
	    "  base image's layers, a layer with the copy files under pwd and one with\n"
	    "  veil-run (" VEIL_IMAGE_RUNTIME_PATH ", the entrypoint; no Cmd), written\n"
	    "  as the OCI image layout DIR/images/<build.name>/oci (tagged with\n"
	    "  build.to's tag), and prints its digest. The base is --base, else\n"
	    "  build.from, else $VEIL_BASE, else build.kind's default (python:\n"
	    "  docker://docker.io/library/python:3.11-slim-bookworm). A base is\n"
	    "  oci:FOLDER[:TAG] (an OCI image layout), [docker://]HOST/REPO[:TAG] (a\n"
	    "  registry image, pulled into DIR/cache/base) or scratch. Unless\n"
	    "  --no-push, the image is then pushed to build.to and the digest the\n"
	    "  registry holds is printed; a push that fails exits 1 and leaves the\n"
	    "  built image in DIR/images/<build.name>/oci. The registry flags apply\n"
	    "  to the base's pull and to the push; no other host is contacted.\n\n"
	    "With a Meshfile (kind: mesh):\n"
	    "  Finds each service's measurement record in DIR by its image (build.to) and\n"
	    "  derives the security policy. Unless --no-upload, it reads the namespace on\n"
	    "  the CAS (on first contact it attests the CAS with the Meshfile's 'tolerance'\n"
	    "  flags and pins its key): a stored policy equal to the derived one, ignoring\n"
	    "  'predecessor', leaves everything as it is ('unchanged'); else the update\n"
	    "  names the stored hash as predecessor. Every check runs before the first\n"
	    "  write; then DIR/policies/<namespace>.yaml and the chart are written (each\n"
	    "  swapped in whole), and the CAS is changed last. If that upload fails, the\n"
	    "  local files are already written and the CAS is unchanged: run apply again.\n"
	    "  No secret value is generated or written: the CAS generates secrets.\n\n"
	    "Options:\n"
	    "  -f, --file FILE          manifest, Meshfile, folder or - (required; repeatable)\n"
	    "      --output-dir DIR     output folder (default: ./target); also -t, --target\n"
	    "      --base REF           service: the base image (oci:FOLDER[:TAG],\n"
	    "                           [docker://]HOST/REPO[:TAG] or scratch)\n"
	    "      --no-push            service: do not push the image (it stays in DIR)\n"
	    "      --registry-auth FILE service: a file holding USER:PASSWORD (one line) for\n"
	    "                           the base's and build.to's registry (else\n"
	    "                           $VEIL_REGISTRY_AUTH, else the auth files); never a\n"
	    "                           password on the command line\n"
	    "      --authfile FILE      service: the auth file to read (default:\n"
	    "                           $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/\n"
	    "                           auth.json, ~/.docker/config.json)\n"
	    "      --insecure-registry HOST[:PORT]\n"
	    "                           service: allow plain HTTP and unverified TLS for\n"
	    "                           exactly this registry (repeatable)\n"
	    "      --registry-mirror FROM=TO\n"
	    "                           service: send pulls and pushes for registry FROM\n"
	    "                           to registry TO (HOST[:PORT] each; repeatable)\n"
	    "  -v, --verbose            service: one line per registry request on stderr\n"
	    "      --mode MODE          mesh: production (default) or debug; debug adds\n"
	    "                           security.attestation.tolerate: [debug-mode]\n"
	    "      --no-upload          mesh: do not read or change the CAS\n"
	    "      --cas URL            the CAS address (default: $VEIL_CAS, else the\n"
	    "                           Meshfile's cas_url or the CAS pinned last; default\n"
	    "                           port 8081); a service with build.encrypt gets its\n"
	    "                           code key there\n"
	    "      --format FILES       mesh: helm (DIR/helm, the default) and/or manifests\n"
	    "                           (plain Kubernetes YAML in DIR/manifests):\n"
	    "                           'helm,manifests' or repeat the flag\n"
	    "  -o, --output FORMAT      json or yaml: the results on stdout, {\"items\": [...]}\n"
	    "  -p, --print-defaults     list the global variables each service needs and\n"
	    "                           where their values come from, then exit\n"
	    "  -h, --help               this help\n\n"
	    "Environment: VEIL_RUNTIME overrides the veil-run binary that is measured\n"
	    "and put in the image; VEIL_BASE is the base image when neither --base nor\n"
	    "build.from names one; SOURCE_DATE_EPOCH sets the image's time stamps\n"
	    "(default 0, 1970-01-01); VEIL_CAS is the CAS when --cas is not given.\n");
}

static int load_doc(struct ydoc *doc, const struct cli_input *in, struct veil_diags *d)
{
	int rc = ydoc_init(doc, in->name);
	if (rc)
		return rc;
	return in->is_stdin ? ydoc_parse(doc, in->data, in->size, NULL, d)
			    : ydoc_load(doc, in->name, NULL, d);
}

static void print_globals(const char *label, const struct veil_service_manifest *m,
			  const struct veil_mesh *mesh, const char *svc)
{
	printf("%s:\n", label);
	if (!m->global_count)
		printf("  (no global variables)\n");
	for (size_t i = 0; i < m->global_count; i++) {
		const struct veil_env_var *v = &m->global[i];
		const struct veil_env_var *mv =
		    mesh ? veil_mesh_lookup(mesh, svc, v->name, NULL) : NULL;
		/* Values are integrity-protected, not secret: the Meshfile is readable by
		 * the application owner's admins anyway. */
		if (mv && mv->value)
			printf("  %-24s set in the Meshfile: %s\n", v->name, mv->value);
		else if (v->value)
			printf("  %-24s default: %s\n", v->name, v->value);
		else
			printf("  %-24s REQUIRED: no default, set it in the Meshfile's env\n",
			       v->name);
	}
}

/* --base, else build.from (an oci: folder relative to the manifest's, as
 * copy files are), else $VEIL_BASE, else the kind's default. *out: caller
 * frees. */
static int choose_base(const struct apply_opts *o, const struct veil_service_manifest *m,
		       const char *manifest_dir, char **out, struct veil_diags *d)
{
	const char *env = getenv("VEIL_BASE"), *base;
	*out = NULL;
	if (o->base)
		base = o->base;
	else if (m->build.from)
		base = m->build.from;
	else if (env && *env)
		base = env;
	else if (!(base = veil_image_kind_base(m->build.kind))) {
		if (m->build.kind)
			veil_diag(d,
				  "%s: build.kind '%s' has no default base image (python has); "
				  "name one with build.from or --base",
				  m->file, m->build.kind);
		else
			veil_diag(d,
				  "%s: no base image: set build.kind (python), build.from, or "
				  "--base (oci:FOLDER[:TAG], [docker://]HOST/REPO[:TAG] or "
				  "scratch)",
				  m->file);
		return VEIL_EINVAL;
	}
	struct veil_image_ref ref;
	if ((strncmp(base, "oci:", 4) && !veil_base_is_registry(base) && strcmp(base, "scratch")) ||
	    (veil_base_is_registry(base) && veil_image_ref_parse(base, &ref, NULL))) {
		veil_diag(d,
			  "base image '%s': not oci:FOLDER[:TAG], [docker://]HOST/REPO[:TAG] or "
			  "scratch",
			  base);
		return VEIL_EINVAL;
	}
	if (base == m->build.from && !strncmp(base, "oci:", 4) && base[4] != '/' &&
	    strcmp(manifest_dir, ".")) {
		if (asprintf(out, "oci:%s/%s", manifest_dir, base + 4) < 0)
			*out = NULL;
	} else {
		*out = strdup(base);
	}
	return *out ? 0 : VEIL_ENOMEM;
}

/* The registry that ref's host stands for after --registry-mirror. */
static const char *mirrored_host(const struct veil_registry_opts *o, const char *host)
{
	for (size_t i = 0; i < o->mirror_count; i++)
		if (!strcmp(o->mirrors[i].from, host))
			return o->mirrors[i].to;
	return host;
}

/* Pushes the built image (the layout's image named tag) to ref, build.to.
 * When the base was pulled from the same registry, its blobs are mounted
 * from the base's repository there, not sent. pushed: the digest the
 * registry holds. A failure leaves the layout as it is and says so. */
static int push_image(const struct apply_opts *o, const char *layout, const char *tag,
		      const char *ref, const char *base, char pushed[VEIL_DIGEST_MAX],
		      struct veil_diags *d)
{
	struct veil_registry_opts ro = o->registry.o;
	struct veil_image_ref to, from;
	if (veil_base_is_registry(base) && !veil_image_ref_parse(ref, &to, NULL) &&
	    !veil_image_ref_parse(base, &from, NULL) &&
	    !strcmp(mirrored_host(&ro, to.host), mirrored_host(&ro, from.host)))
		ro.mount_from = from.repo;
	int rc = veil_image_push(layout, tag, ref, &ro, pushed, d);
	if (rc)
		veil_diag(d,
			  "image not pushed to %s; it is built and kept in %s (push it with "
			  "'veil image push %s %s', or run 'veil apply' again)",
			  ref, layout, layout, ref);
	return rc;
}

/* build.encrypt: the code key from the CAS (POST /v1/code-keys; the id of
 * the previous build of this image again, so a rebuild gives the same
 * image), then the named copy files encrypted into
 * target/images/<name>/encrypted. The key lives on this stack only. */
static int encrypt_code(const struct apply_opts *o, const struct veil_service_manifest *m,
			const char *dir, struct veil_measurement *meas, struct veil_diags *d)
{
	if (!m->build.encrypt_count)
		return 0;
	char *images = veil_path_join(o->target, "images");
	char *idir = images ? veil_path_join(images, meas->name) : NULL;
	char *rec = idir ? veil_path_join(idir, "measurement.yaml") : NULL;
	char *edir = idir ? veil_path_join(idir, "encrypted") : NULL;
	char body[80] = "{}", id[VEIL_CODE_KEY_ID_HEX + 1] = "";
	/* locked, never in a core dump (and this process dumps no core) */
	uint8_t *key = veil_secure_alloc(VEIL_CODE_KEY_SIZE);
	struct client c;
	struct response r = {0};
	struct veil_measurement prev = {0};
	struct veil_diags quiet;
	json_t *j = NULL;
	int rc = rec && edir && key ? 0 : VEIL_ENOMEM, opened = 0;
	prctl(PR_SET_DUMPABLE, 0);
	veil_diags_init(&quiet);
	if (!rc && !veil_measurement_load(rec, &prev, &quiet) && prev.code_key_id[0])
		snprintf(body, sizeof(body), "{\"key_id\":\"%s\"}", prev.code_key_id);
	veil_diags_free(&quiet);
	veil_measurement_free(&prev);
	if (!rc) {
		rc = client_open(&c, cli_cas_url(o->cas), d);
		opened = !rc;
		if (rc)
			veil_diag(d,
				  "build.encrypt needs the CAS that makes the code key: give --cas "
				  "URL or $VEIL_CAS");
	}
	if (!rc && !(rc = client_request(&c, "POST", "/v1/code-keys", body, 0, &r, d)) &&
	    r.status != 200) {
		response_error(&r, "the code key", d);
		rc = VEIL_EIO;
	}
	if (!rc) {
		json_error_t je;
		const char *kid = NULL, *khex = NULL;
		j = json_loadb(r.body.data ? r.body.data : "", r.body.size, 0, &je);
		if (json_unpack(j, "{s:s, s:s}", "key_id", &kid, "key", &khex) ||
		    !veil_code_key_id_valid(kid) || veil_unhex(khex, key, VEIL_CODE_KEY_SIZE)) {
			veil_diag(d, "the CAS's code key answer is malformed");
			rc = VEIL_EIO;
		} else {
			snprintf(id, sizeof(id), "%s", kid);
		}
		if (khex)
			OPENSSL_cleanse((char *)khex, strlen(khex));
	}
	if (r.body.data)
		OPENSSL_cleanse(r.body.data, r.body.size);
	if (!rc)
		rc = veil_measure_encrypt(meas, m, dir, id, key, edir, d);
	if (key)
		veil_secure_free(key, VEIL_CODE_KEY_SIZE);
	json_decref(j);
	response_free(&r);
	if (opened)
		client_close(&c);
	free(images);
	free(idir);
	free(rec);
	free(edir);
	return rc;
}

static int apply_service(const struct apply_opts *o, const struct cli_input *in, struct ydoc *doc,
			 struct veil_diags *d)
{
	struct veil_service_manifest m;
	struct veil_measurement meas = {0};
	struct veil_image_staged img = {0};
	char *dir = NULL, *runtime = NULL, *data = NULL, *out_dir = NULL, *layout = NULL;
	char digest[VEIL_DIGEST_SIZE] = "", *tag = NULL, *base = NULL;
	char pushed[VEIL_DIGEST_MAX] = "";
	size_t size = 0;
	int rc = veil_service_parse(doc, &m, d);
	if (rc)
		goto out;
	if (o->print_defaults) {
		print_globals(m.build.name, &m, NULL, NULL);
		goto out;
	}
	/* from stdin, 'copy' files are relative to the current folder */
	dir = in->is_stdin ? strdup(".") : veil_dirname(in->name);
	runtime = veil_default_runtime_path();
	if (!dir || !runtime) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	struct veil_image_opts iopts = {.manifest_dir = dir,
					.runtime_path = runtime,
					.target = o->target,
					.registry = &o->registry.o};
	if ((rc = choose_base(o, &m, dir, &base, d)) || (rc = veil_image_epoch(&iopts.epoch, d)))
		goto out;
	iopts.base = base;
	if ((rc = veil_measure_service(&m, dir, runtime, &meas, d)) ||
	    (rc = encrypt_code(o, &m, dir, &meas, d)))
		goto out;
	if (in->is_stdin) {
		if (!(data = malloc(in->size + 1))) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		memcpy(data, in->data, in->size);
		size = in->size;
	} else {
		meas.manifest = realpath(in->name, NULL);
		if ((rc = veil_read_file(in->name, ylimits_default.max_doc_size, &data, &size, d)))
			goto out;
	}
	/* the image first, staged: a build that fails leaves the record and the
	 * old image as they were */
	if ((rc = veil_image_build(&meas, &iopts, &img, d)))
		goto out;
	memcpy(meas.image_root, img.image_root, sizeof(meas.image_root));
	if ((rc = veil_measurement_write(&meas, o->target, data, size, &out_dir, d)))
		goto out;
	memcpy(digest, img.digest, sizeof(digest));
	if (!(layout = strdup(img.layout)) || !(tag = strdup(img.tag))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if ((rc = veil_image_commit(&img, d)))
		goto out;
	if (!o->no_push && (rc = push_image(o, layout, tag, meas.image, base, pushed, d)))
		goto out;
	if (o->fmt != CLI_FMT_TEXT) {
		char *record = veil_path_join(out_dir, "measurement.yaml");
		if (!record ||
		    json_array_append_new(
			o->items,
			json_pack(
			    "{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?}",
			    "file", in->name, "kind", "service", "name", meas.name, "image",
			    meas.image, "files", (json_int_t)meas.file_count, "mrenclave",
			    meas.runtime_sha256, "file_set_root", meas.file_set_root, "record",
			    record, "digest", digest, "layout", layout, "tag", tag, "base", base,
			    "pushed_digest", *pushed ? pushed : NULL)))
			rc = VEIL_ENOMEM;
		free(record);
		/* the whole image's record (docs/images.md, section 8) */
		json_t *item = json_array_get(o->items, json_array_size(o->items) - 1);
		if (!rc && json_object_set_new(item, "image_root", json_string(meas.image_root)))
			rc = VEIL_ENOMEM;
		/* build.encrypt: the CAS's key id and the encrypted image paths */
		if (!rc && meas.code_key_id[0]) {
			json_t *ef = json_array();
			for (size_t i = 0; ef && i < meas.encrypted_count; i++)
				if (json_array_append_new(ef, json_string(meas.encrypted[i])))
					ef = (json_decref(ef), NULL);
			if (!ef || json_object_set_new(item, "encryption",
						       json_pack("{s:s, s:o}", "key_id",
								 meas.code_key_id, "files", ef)))
				rc = VEIL_ENOMEM;
		}
		goto out;
	}
	printf("service %s: measured %zu protected file%s\n", meas.name, meas.file_count,
	       meas.file_count == 1 ? "" : "s");
	printf("  image          %s\n", meas.image);
	printf("  command        %s (pwd %s)\n", meas.command, meas.pwd);
	printf("  mrenclave      %s\n", meas.runtime_sha256);
	printf("  file-set root  %s\n", meas.file_set_root);
	if (meas.code_key_id[0])
		printf("  encrypted      %zu file%s (code key %s, from the CAS)\n",
		       meas.encrypted_count, meas.encrypted_count == 1 ? "" : "s",
		       meas.code_key_id);
	if (meas.program)
		printf("  program        %s (%zu runtime file%s)\n", meas.program,
		       meas.runtime_file_count, meas.runtime_file_count == 1 ? "" : "s");
	else
		fprintf(stderr,
			"warning: the command's program is not in the image (looked up with "
			"PATH=%s%s%s) or is a protected file: nothing outside pwd is measured, and "
			"veil-run will not start it unless the policy tolerates "
			"insecure-unmeasured-program\n",
			VEIL_DEFAULT_PATH,
			getenv("VEIL_IMAGE_ROOT") ? " under VEIL_IMAGE_ROOT=" : "",
			getenv("VEIL_IMAGE_ROOT") ? getenv("VEIL_IMAGE_ROOT") : "");
	printf("  record         %s/measurement.yaml\n", out_dir);
	printf("  image digest   %s\n", digest);
	printf("  image root     %s\n", meas.image_root);
	printf("  image layout   %s (tag %s, base %s)\n", layout, tag, base);
	if (*pushed)
		printf("  pushed         %s@%s\n", meas.image, pushed);
out:
	veil_image_discard(&img);
	veil_measurement_free(&meas);
	free(dir);
	free(runtime);
	free(data);
	free(out_dir);
	free(layout);
	free(tag);
	free(base);
	return rc;
}

/* Everything one mesh service needs, loaded from the target folder. */
struct member_src {
	struct ydoc doc;
	struct veil_service_manifest manifest;
	struct veil_measurement meas;
	char *dir;
	int used;
};

/* Parse the manifest copy taken when the service was measured. Messages name
 * the user's own file while it is unchanged; else the copy, with a warning. */
static int load_copy(struct member_src *s, const char *copy, struct veil_diags *d)
{
	char *data = NULL, *orig = NULL;
	size_t size = 0, osize = 0;
	const char *name = copy;
	int rc = veil_read_file(copy, ylimits_default.max_doc_size, &data, &size, d);
	if (rc)
		return rc;
	if (s->meas.manifest) {
		if (!veil_read_file(s->meas.manifest, ylimits_default.max_doc_size, &orig, &osize,
				    NULL) &&
		    /* not secret: a manifest the user holds, compared on the client */
		    osize == size && !memcmp(orig, data, size))
			name = s->meas.manifest;
		else
			fprintf(stderr,
				"warning: %s changed since it was measured; using the measured "
				"copy %s (run 'veil apply -f %s' to measure it again)\n",
				s->meas.manifest, copy, s->meas.manifest);
	}
	rc = ydoc_init(&s->doc, name);
	if (!rc)
		rc = ydoc_parse(&s->doc, data, size, NULL, d);
	free(data);
	free(orig);
	return rc;
}

static int load_records(const char *target, struct member_src **out, size_t *count,
			struct veil_diags *d)
{
	char *images = veil_path_join(target, "images");
	struct member_src *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	*out = NULL;
	*count = 0;
	if (!images)
		return VEIL_ENOMEM;
	DIR *dir = opendir(images);
	if (!dir) {
		free(images);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(dir)) && !rc) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct member_src *p = realloc(v, cap * sizeof(*p));
			if (!p) {
				rc = VEIL_ENOMEM;
				break;
			}
			v = p;
		}
		struct member_src *s = &v[n];
		memset(s, 0, sizeof(*s));
		s->dir = veil_path_join(images, de->d_name);
		char *rec = s->dir ? veil_path_join(s->dir, "measurement.yaml") : NULL;
		char *man = s->dir ? veil_path_join(s->dir, "service.yaml") : NULL;
		if (!rec || !man) {
			rc = VEIL_ENOMEM;
		} else {
			/* A broken or foreign folder only matters to a mesh that uses
			 * it: warn, skip it, and let the lookup name what is missing. */
			struct veil_diags local;
			veil_diags_init(&local);
			int bad = veil_measurement_load(rec, &s->meas, &local);
			if (!bad)
				bad = load_copy(s, man, &local);
			if (!bad)
				bad = veil_service_parse(&s->doc, &s->manifest, &local);
			if (bad) {
				fprintf(stderr, "warning: skipping the record in %s:\n", s->dir);
				veil_diags_print(&local, stderr);
				ydoc_free(&s->doc);
				veil_measurement_free(&s->meas);
				free(s->dir);
			} else {
				n++;
			}
			veil_diags_free(&local);
		}
		free(rec);
		free(man);
	}
	closedir(dir);
	free(images);
	*out = v;
	*count = n;
	return rc;
}

static void free_records(struct member_src *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ydoc_free(&v[i].doc);
		veil_measurement_free(&v[i].meas);
		free(v[i].dir);
	}
	free(v);
}

/* What the upload will do, decided before the first write. */
enum cas_action { CAS_NONE = 0, CAS_CREATE, CAS_UPDATE, CAS_UNCHANGED };

struct cas_plan {
	struct client c;
	int open;
	enum cas_action action;
	char *stored; /* CAS_UNCHANGED: the stored text, which is the local file */
};

static void cas_plan_free(struct cas_plan *p)
{
	if (p->open)
		client_close(&p->c);
	free(p->stored);
	memset(p, 0, sizeof(*p));
}

/* Contacts the CAS (attesting and pinning it on first contact) and compares
 * the stored policy with the derived one, ignoring 'predecessor'. Changes
 * nothing on the CAS. For an update, puts the stored hash as predecessor into
 * `policy` and recomputes *canon and hash. */
static int cas_prepare(const struct apply_opts *o, const struct veil_mesh *mesh, struct yarena *a,
		       struct ynode *policy, struct veil_buf *canon, char hash[static 65],
		       struct cas_plan *plan, struct veil_diags *d)
{
	const struct veil_mesh_cas *mc = veil_mesh_policy_cas(mesh);
	const char *url = cli_cas_url(o->cas);
	struct response r = {0};
	json_t *j = NULL;
	char path[300];
	struct veil_buf stored_canon;
	veil_buf_init(&stored_canon, 0);
	if (!url)
		url = mc ? mc->cas_url : NULL;
	if (!url) {
		veil_diag(d, "%s names no CAS: give --cas URL (or $VEIL_CAS), or --no-upload",
			  mesh->file);
		return VEIL_EINVAL;
	}
	int rc = client_open(&plan->c, url, d);
	if (!rc && !plan->c.pinned[0]) {
		/* first contact: attest with the Meshfile's tolerance, then pin */
		struct cas_tolerance t;
		rc = cli_tolerance_parse(mc ? mc->tolerance : NULL, &t, d);
		if (!rc)
			rc = cli_attest(url, &t, o->fmt != CLI_FMT_TEXT, NULL, d);
		client_close(&plan->c);
		if (!rc)
			rc = client_open(&plan->c, url, d);
	}
	if (rc)
		goto out;
	plan->open = 1;
	snprintf(path, sizeof(path), "/v1/policies/%s", mesh->namespace_);
	if ((rc = client_request(&plan->c, "GET", path, NULL, 0, &r, d)))
		goto out;
	if (r.status == 404) {
		plan->action = CAS_CREATE;
		goto out;
	}
	const char *text = NULL, *current = NULL;
	j = r.status == 200 ? json_loadb(r.body.data, r.body.size, 0, NULL) : NULL;
	if (!j || json_unpack(j, "{s:s, s:s}", "policy", &text, "hash", &current) ||
	    !veil_is_sha256_hex(current)) {
		response_error(&r, "reading the current policy", d);
		rc = VEIL_EINVAL;
		goto out;
	}
	char stored_hash[65];
	if ((rc = cli_policy_rewrite(path, text, strlen(text), NULL, &stored_canon, stored_hash,
				     NULL, d)))
		goto out;
	if (stored_canon.size == canon->size &&
	    /* not secret: policy text the user holds, compared on the client */
	    !memcmp(stored_canon.data, canon->data, canon->size)) {
		/* the stored text is canonical: its bytes are the current hash */
		uint8_t raw[VEIL_SHA256_SIZE];
		char h[65];
		if ((rc = veil_sha256(text, strlen(text), raw))) {
			veil_diag(d, "%s: cannot hash the stored policy", plan->c.url);
			goto out;
		}
		veil_hex(raw, sizeof(raw), h);
		if (strcmp(h, current)) {
			veil_diag(d, "%s: the stored policy does not hash to %s", plan->c.url,
				  current);
			rc = VEIL_EIO;
			goto out;
		}
		if (!(plan->stored = strdup(text))) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		plan->action = CAS_UNCHANGED;
		canon->size = 0;
		if (veil_buf_puts(canon, text)) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		memcpy(hash, current, 65);
		goto out;
	}
	plan->action = CAS_UPDATE;
	if ((rc = ymap_put_str(a, policy, "predecessor", current)))
		goto out;
	canon->size = 0;
	rc = veil_policy_canonical(policy, canon, hash);
out:
	veil_buf_free(&stored_canon);
	json_decref(j);
	response_free(&r);
	return rc;
}

/* The CAS changes last: POST or PUT the policy whose files are written. */
static int cas_upload(const struct veil_mesh *mesh, struct cas_plan *plan,
		      const struct veil_buf *canon, struct veil_diags *d)
{
	struct response r = {0};
	char path[300], *body = NULL;
	json_t *j = json_pack("{s:s%}", "policy", canon->data, canon->size);
	int create = plan->action == CAS_CREATE;
	int rc = j && (body = json_dumps(j, JSON_COMPACT)) ? 0 : VEIL_ENOMEM;
	snprintf(path, sizeof(path), create ? "/v1/policies" : "/v1/policies/%s", mesh->namespace_);
	if (!rc)
		rc = client_request(&plan->c, create ? "POST" : "PUT", path, body, 0, &r, d);
	if (!rc && r.status != (create ? 201 : 200)) {
		response_error(&r, create ? "upload (create)" : "upload (update)", d);
		rc = VEIL_EINVAL;
	}
	json_decref(j);
	free(body);
	response_free(&r);
	return rc;
}

static const char *const action_names[] = {"", "created", "updated", "unchanged"};

/* One Meshfile through apply's three steps. mesh_prepare checks everything and
 * only reads (records, the CAS); mesh_write writes the local files; mesh_upload
 * changes the CAS. apply runs each step for every Meshfile before the next, so
 * a Meshfile refused anywhere leaves target/ and the CAS as they were. */
struct mesh_apply {
	struct ydoc *doc;
	struct veil_mesh mesh;
	struct member_src *src;
	size_t nsrc;
	struct veil_mesh_member *members;
	struct veil_buf canon;
	char hash[2 * VEIL_SHA256_SIZE + 1];
	struct cas_plan plan;
	char *pdir, *pfile;
	char cas_key[VEIL_KEY_HASH_HEX];
};

static void mesh_apply_free(struct mesh_apply *m)
{
	cas_plan_free(&m->plan);
	veil_buf_free(&m->canon);
	free(m->pdir);
	free(m->pfile);
	free(m->members);
	free_records(m->src, m->nsrc);
	memset(m, 0, sizeof(*m));
}

/* Parses, finds the records, derives the policy, checks the chart without
 * writing it and reads the CAS: every check, no write. With -p it prints the
 * globals instead. */
static int mesh_prepare(const struct apply_opts *o, struct ydoc *doc, struct mesh_apply *m,
			struct veil_diags *d)
{
	struct veil_mesh *mesh = &m->mesh;
	m->doc = doc;
	veil_buf_init(&m->canon, 0);
	int rc = veil_mesh_parse(doc, mesh, d);
	if (rc)
		return rc;
	if ((rc = load_records(o->target, &m->src, &m->nsrc, d)))
		return rc;
	if (!(m->members = calloc(mesh->service_count + 1, sizeof(*m->members))))
		return VEIL_ENOMEM;
	for (size_t i = 0; i < mesh->service_count; i++) {
		const struct veil_mesh_service *s = &mesh->services[i];
		struct member_src *found = NULL;
		for (size_t k = 0; k < m->nsrc; k++) {
			if (strcmp(m->src[k].meas.image, s->image))
				continue;
			if (found) {
				veil_diag_at(d, mesh->file, s->pos.line, s->pos.col,
					     "service '%s': image '%s' has two measurement records "
					     "(%s, %s); remove the stale one",
					     s->name, s->image, found->dir, m->src[k].dir);
				rc = VEIL_EINVAL;
			}
			found = &m->src[k];
		}
		if (!found) {
			veil_diag_at(
			    d, mesh->file, s->pos.line, s->pos.col,
			    "service '%s': no measurement record for image '%s' in "
			    "%s/images; run 'veil apply -f <its service.yaml> -t %s' first",
			    s->name, s->image, o->target, o->target);
			rc = VEIL_EINVAL;
			continue;
		}
		m->members[i] = (struct veil_mesh_member){
		    .svc = s, .manifest = &found->manifest, .meas = &found->meas};
	}
	if (rc)
		return rc;
	if (o->print_defaults) {
		printf("# global variables of mesh %s, per service\n", mesh->namespace_);
		for (size_t i = 0; i < mesh->service_count; i++) {
			char label[300];
			snprintf(label, sizeof(label), "%s (%s)", m->members[i].svc->name,
				 m->members[i].manifest->file);
			print_globals(label, m->members[i].manifest, mesh, m->members[i].svc->name);
		}
		return 0;
	}
	struct veil_derive_opts dopts = {.debug_mode = o->debug_mode};
	struct ynode *policy = NULL;
	if ((rc = veil_policy_derive(doc->arena, mesh, m->members, mesh->service_count, &dopts,
				     &policy, d)))
		return rc;
	for (size_t i = 0; i < mesh->service_count; i++) {
		const struct veil_service_manifest *sm = m->members[i].manifest;
		for (size_t k = 0; k < sm->secret_count; k++)
			if (sm->secrets[k].value)
				fprintf(stderr,
					"warning: secret '%s' has an explicit value in %s: it is "
					"copied into the policy and readable by whoever reads the "
					"manifest; prefer a CAS-generated or imported secret\n",
					sm->secrets[k].name, sm->file);
	}
	if ((rc = veil_policy_canonical(policy, &m->canon, m->hash)))
		return rc;
	m->pdir = veil_path_join(o->target, "policies");
	char *name = yarena_printf(doc->arena, "%s.yaml", mesh->namespace_);
	m->pfile = m->pdir && name ? veil_path_join(m->pdir, name) : NULL;
	if (!m->pfile)
		return VEIL_ENOMEM;
	/* the chart's names, ports and volumes (no output selected: nothing is
	 * written), then the CAS, which is only read here */
	if ((rc = veil_deploy_write(mesh, m->members, mesh->service_count, m->hash, "", o->target,
				    0, d)))
		return rc;
	if (!o->no_upload && veil_mesh_uploads(mesh) &&
	    (rc = cas_prepare(o, mesh, doc->arena, policy, &m->canon, m->hash, &m->plan, d)))
		return rc;
	/* the key the pods' veil-run pins: the CAS attested and pinned, else the
	 * Meshfile's cas_key when it is a key hash */
	const struct veil_mesh_cas *mc = veil_mesh_policy_cas(mesh);
	if (m->plan.open)
		memcpy(m->cas_key, m->plan.c.pinned, sizeof(m->cas_key));
	if (!m->cas_key[0] && mc && veil_is_sha256_hex(mc->cas_key))
		memcpy(m->cas_key, mc->cas_key, sizeof(m->cas_key));
	if (!m->cas_key[0])
		fprintf(stderr,
			"warning: the chart's cas.key is empty: veil-run pins the CAS by "
			"its key hash and will not start without it; set cas.key (e.g. helm "
			"--set cas.key=HASH, the hash 'veil cas attest' prints) or upload "
			"the policy\n");
	return 0;
}

/* The local files, each swapped in whole; apply syncs them once for all. */
static int mesh_write(const struct apply_opts *o, const struct mesh_apply *m, struct veil_diags *d)
{
	int rc = veil_mkdirs(m->pdir, 0755, d);
	if (!rc)
		rc = veil_deploy_write(&m->mesh, m->members, m->mesh.service_count, m->hash,
				       m->cas_key, o->target, o->outputs, d);
	if (!rc)
		rc = veil_write_file_nosync(m->pfile, m->canon.data, m->canon.size, 0644, d);
	return rc;
}

/* The CAS last: a CAS change always has the local files describing it. Then
 * the result, so each namespace changed is reported even if a later one's
 * upload fails. */
static int mesh_upload(const struct apply_opts *o, struct mesh_apply *m, struct veil_diags *d)
{
	const struct veil_mesh *mesh = &m->mesh;
	struct cas_plan *plan = &m->plan;
	int rc = 0;
	if ((plan->action == CAS_CREATE || plan->action == CAS_UPDATE) &&
	    (rc = cas_upload(mesh, plan, &m->canon, d))) {
		veil_diag(d,
			  "%s and the chart are written, the CAS at %s is unchanged: run 'veil "
			  "apply' again once the CAS accepts the policy",
			  m->pfile, plan->c.url);
		return rc;
	}
	if (o->fmt != CLI_FMT_TEXT) {
		json_t *outs = json_object(), *cas = NULL;
		char *helm = veil_path_join(o->target, "helm");
		char *mans = veil_path_join(o->target, "manifests");
		if (plan->action)
			cas = json_pack("{s:s, s:s, s:s}", "url", plan->c.url, "result",
					action_names[plan->action], "key_hash", plan->c.pinned);
		if (!outs || !helm || !mans ||
		    ((o->outputs & VEIL_OUT_HELM) &&
		     json_object_set_new(outs, "helm", json_string(helm))) ||
		    ((o->outputs & VEIL_OUT_YAML) &&
		     json_object_set_new(outs, "manifests", json_string(mans))) ||
		    json_array_append_new(
			o->items,
			json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:O, s:o?}", "file", mesh->file,
				  "kind", "mesh", "namespace", mesh->namespace_, "services",
				  (json_int_t)mesh->service_count, "policy_file", m->pfile,
				  "policy_hash", m->hash, "outputs", outs, "cas", cas)))
			rc = VEIL_ENOMEM;
		json_decref(outs);
		free(helm);
		free(mans);
		return rc;
	}
	printf("policy %s: %zu service%s, written to %s\n", mesh->namespace_, mesh->service_count,
	       mesh->service_count == 1 ? "" : "s", m->pfile);
	printf("policy hash %s\n", m->hash);
	if (o->outputs & VEIL_OUT_HELM)
		printf("helm chart %s/helm\n", o->target);
	if (o->outputs & VEIL_OUT_YAML)
		printf("kubernetes manifests %s/manifests\n", o->target);
	if (plan->action == CAS_UNCHANGED)
		printf("unchanged: namespace %s on %s holds this policy (nothing uploaded)\n",
		       mesh->namespace_, plan->c.url);
	else if (plan->action)
		printf("%s namespace %s on %s\n", action_names[plan->action], mesh->namespace_,
		       plan->c.url);
	return 0;
}

/* Every Meshfile prepared (all checks, reads only), then every one's local
 * files written and synced, then every one uploaded. */
static int apply_meshes(const struct apply_opts *o, struct ydoc **docs, size_t count,
			struct veil_diags *d)
{
	struct mesh_apply *m = calloc(count + 1, sizeof(*m));
	size_t i;
	int rc = m ? 0 : VEIL_ENOMEM;
	for (i = 0; !rc && i < count; i++)
		rc = mesh_prepare(o, docs[i], &m[i], d);
	size_t prepared = i; /* the one that failed included: partly filled */
	if (o->print_defaults)
		goto out;
	/* one namespace, one policy file: two Meshfiles naming it would write
	 * the same file and race on the CAS */
	for (i = 0; !rc && i < count; i++)
		for (size_t k = 0; !rc && k < i; k++)
			if (!strcmp(m[i].mesh.namespace_, m[k].mesh.namespace_)) {
				veil_diag(d,
					  "%s and %s both name namespace '%s': apply them one at "
					  "a time",
					  m[k].mesh.file, m[i].mesh.file, m[i].mesh.namespace_);
				rc = VEIL_EINVAL;
			}
	for (i = 0; !rc && i < count; i++)
		rc = mesh_write(o, &m[i], d);
	if (!rc && count)
		rc = veil_sync_fs(o->target, d);
	for (i = 0; !rc && i < count; i++) {
		if (!(rc = mesh_upload(o, &m[i], d)))
			continue;
		/* the later namespaces' files are written too, and not uploaded */
		for (size_t k = i + 1; k < count; k++)
			if (m[k].plan.action == CAS_CREATE || m[k].plan.action == CAS_UPDATE)
				veil_diag(d,
					  "%s is written, not uploaded: the CAS at %s is "
					  "unchanged",
					  m[k].pfile, m[k].plan.c.url);
	}
out:
	for (i = 0; m && i < prepared; i++)
		mesh_apply_free(&m[i]);
	free(m);
	return rc;
}

static int parse_files(const char *arg, unsigned *outputs)
{
	char *save = NULL, *copy = strdup(arg);
	int rc = copy ? 0 : VEIL_ENOMEM;
	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && !rc;
	     t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "helm"))
			*outputs |= VEIL_OUT_HELM;
		else if (!strcmp(t, "manifests"))
			*outputs |= VEIL_OUT_YAML;
		else
			rc = cli_usage_error(&apply_cmd,
					     "unknown --format '%s' (helm, manifests, or both: "
					     "helm,manifests)",
					     t);
	}
	if (copy && !*copy)
		rc = cli_usage_error(&apply_cmd, "--format needs helm, manifests or both");
	free(copy);
	return rc;
}

enum { OPT_NO_PUSH = 256, OPT_NO_UPLOAD, OPT_MODE, OPT_CAS, OPT_FORMAT, OPT_BASE };

static int apply_main(int argc, char **argv)
{
	struct apply_opts o = {.target = "target"};
	const char **files = calloc((size_t)argc + 1, sizeof(*files));
	size_t nfiles = 0;
	int c;
	if (!files) {
		fprintf(stderr, "error: out of memory\n");
		return EXIT_REJECTED;
	}
	while ((c = getopt_long(argc, argv, apply_cmd.shortopts, apply_cmd.opts, NULL)) != -1) {
		int usage = cli_registry_option(&apply_cmd, &o.registry, c, optarg);
		if (usage == 1)
			continue;
		if (usage) {
			free(files);
			cli_registry_free(&o.registry);
			return usage;
		}
		switch (c) {
		case 'f':
			files[nfiles++] = optarg;
			break;
		case 't':
			o.target = optarg;
			break;
		case 'p':
			o.print_defaults = 1;
			break;
		case 'o':
			if (strstr(optarg, "helm") || !strcmp(optarg, "manifests"))
				usage = cli_usage_error(&apply_cmd,
							"-o is the result's format (json, yaml); "
							"the files apply writes are chosen with "
							"--format helm,manifests");
			else
				usage = cli_parse_format(&apply_cmd, optarg, &o.fmt);
			break;
		case OPT_FORMAT:
			usage = parse_files(optarg, &o.outputs);
			break;
		case OPT_NO_PUSH:
			o.no_push = 1;
			break;
		case 'v':
			o.registry.o.verbose = 1;
			break;
		case OPT_BASE:
			o.base = optarg;
			break;
		case OPT_NO_UPLOAD:
			o.no_upload = 1;
			break;
		case OPT_CAS:
			o.cas = optarg;
			break;
		case OPT_MODE:
			if (!strcmp(optarg, "debug"))
				o.debug_mode = 1;
			else if (strcmp(optarg, "production"))
				usage = cli_usage_error(&apply_cmd,
							"--mode must be debug or production");
			break;
		default:
			free(files);
			cli_registry_free(&o.registry);
			return cli_option_default(&apply_cmd, c, argv);
		}
		if (usage) {
			free(files);
			cli_registry_free(&o.registry);
			return usage;
		}
	}
	int usage = 0;
	if (!nfiles)
		usage = cli_usage_error(&apply_cmd, "-f FILE is required");
	else if (optind < argc)
		usage = cli_usage_error(&apply_cmd, "unexpected argument '%s' (each file needs -f)",
					argv[optind]);
	else if (o.print_defaults && o.fmt != CLI_FMT_TEXT)
		usage = cli_usage_error(&apply_cmd, "-p prints text; it takes no -o");
	if (usage) {
		free(files);
		cli_registry_free(&o.registry);
		return usage;
	}
	if (!o.outputs)
		o.outputs = VEIL_OUT_HELM;
	/* large blobs' progress on stderr when it is a terminal (the pull of a
	 * base, the push), never with -o */
	o.registry.o.progress = o.fmt == CLI_FMT_TEXT;
	struct veil_diags d;
	veil_diags_init(&d);
	struct cli_input *in = NULL;
	size_t count = 0;
	struct ydoc *docs = NULL, **meshes = NULL;
	enum veil_doc_kind *kinds = NULL;
	int rc = 0;
	for (size_t i = 0; i < nfiles && !rc; i++)
		rc = cli_inputs_add(&in, &count, files[i], ylimits_default.max_doc_size, &d);
	free(files);
	if (!rc && (!(docs = calloc(count + 1, sizeof(*docs))) ||
		    !(kinds = calloc(count + 1, sizeof(*kinds))) ||
		    !(meshes = calloc(count + 1, sizeof(*meshes))) ||
		    (o.fmt != CLI_FMT_TEXT && !(o.items = json_array()))))
		rc = VEIL_ENOMEM;
	/* every input parsed and of a known kind before anything is applied */
	for (size_t i = 0; !rc && i < count; i++) {
		int bad = load_doc(&docs[i], &in[i], &d);
		if (!bad && (kinds[i] = veil_doc_kind(&docs[i], &d)) != VEIL_DOC_SERVICE &&
		    kinds[i] != VEIL_DOC_MESH) {
			if (kinds[i] == VEIL_DOC_POLICY)
				veil_diag(&d,
					  "%s: a policy is not applied; use 'veil policy create' "
					  "or 'veil policy update'",
					  in[i].name);
			bad = VEIL_EINVAL;
		}
		/* the schema too (apply_* parse again, into what they keep) */
		if (!bad && kinds[i] == VEIL_DOC_SERVICE) {
			struct veil_service_manifest m;
			bad = veil_service_parse(&docs[i], &m, &d);
		} else if (!bad) {
			struct veil_mesh m;
			bad = veil_mesh_parse(&docs[i], &m, &d);
		}
		if (bad == VEIL_ENOMEM)
			rc = bad;
		else if (bad)
			kinds[i] = VEIL_DOC_UNKNOWN;
	}
	for (size_t i = 0; !rc && i < count; i++)
		if (kinds[i] == VEIL_DOC_UNKNOWN)
			rc = VEIL_EINVAL;
	/* services first: a Meshfile needs their measurement records */
	for (size_t i = 0; !rc && i < count; i++)
		if (kinds[i] == VEIL_DOC_SERVICE)
			rc = apply_service(&o, &in[i], &docs[i], &d);
	size_t nmesh = 0;
	for (size_t i = 0; !rc && i < count; i++)
		if (kinds[i] == VEIL_DOC_MESH)
			meshes[nmesh++] = &docs[i];
	if (!rc && nmesh)
		rc = apply_meshes(&o, meshes, nmesh, &d);
	if (!rc && o.items) {
		rc = cli_print_result(json_pack("{s:O}", "items", o.items), o.fmt);
	}
	for (size_t i = 0; docs && i < count; i++)
		if (docs[i].arena)
			ydoc_free(&docs[i]);
	json_decref(o.items);
	cli_registry_free(&o.registry);
	free(docs);
	free(meshes);
	free(kinds);
	cli_inputs_free(in, count);
	return cli_report(&d, rc);
}

const struct cli_cmd apply_cmd = {
    .name = "apply",
    .path = "veil apply",
    .summary = "measure a service and build its image, or derive a mesh's policy and chart",
    .run = apply_main,
    .usage = apply_usage,
    .opts =
	(const struct option[]){
	    {"file", required_argument, NULL, 'f'},
	    {"output-dir", required_argument, NULL, 't'},
	    {"target", required_argument, NULL, 't'},
	    {"output", required_argument, NULL, 'o'},
	    {"format", required_argument, NULL, OPT_FORMAT},
	    {"print-defaults", no_argument, NULL, 'p'},
	    {"no-push", no_argument, NULL, OPT_NO_PUSH},
	    {"verbose", no_argument, NULL, 'v'},
	    {"base", required_argument, NULL, OPT_BASE},
	    {"no-upload", no_argument, NULL, OPT_NO_UPLOAD},
	    {"mode", required_argument, NULL, OPT_MODE},
	    {"cas", required_argument, NULL, OPT_CAS},
	    CLI_REGISTRY_OPTS,
	    CLI_STD_OPTS,
	    {0},
	},
    .shortopts = ":f:t:o:phv",
    .file_flags = "file output-dir target registry-auth authfile",
};
