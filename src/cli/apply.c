/* veil apply -f service.yaml | -f Meshfile */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "client.h"
#include "veil/deploy.h"
#include "veil/image.h"
#include "veil/policy.h"

struct apply_opts {
	const char *file;
	const char *target;
	int no_push, no_upload, debug_mode, print_defaults;
	const char *cas;
	unsigned outputs;
};

static void apply_usage(FILE *f)
{
	fprintf(f,
		"Usage: veil apply -f FILE [-t TARGET] [options]\n\n"
		"With a service manifest (kind: genservice):\n"
		"  Resolves the 'copy' files relative to the manifest's folder and writes the\n"
		"  service's measurement record to TARGET/images/<build.name>/: per protected\n"
		"  file its image path, mode and SHA-256, the file-set root, the protected\n"
		"  command and pwd, and the runtime measurement (SHA-256 of veil-run).\n"
		"  Building and pushing the OCI image is not implemented yet (a later issue):\n"
		"  today only the measurement record is written, with or without --no-push.\n\n"
		"With a Meshfile (kind: mesh):\n"
		"  Finds each service's measurement record in TARGET by its image (build.to),\n"
		"  derives the security policy into TARGET/policies/<namespace>.yaml, prints its\n"
		"  hash, and writes a Helm chart to TARGET/helm (or plain manifests to\n"
		"  TARGET/manifests with -o yaml). No secret value is generated or written:\n"
		"  the CAS generates secrets. Then it uploads the policy to the CAS of the\n"
		"  Meshfile (the cas entry with alias 'security', else the first): on first\n"
		"  contact it attests that CAS with the entry's 'tolerance' flags and pins its\n"
		"  key; an existing namespace is updated with its current hash as predecessor.\n\n"
		"Options:\n"
		"  -f, --file FILE         service manifest or Meshfile (required)\n"
		"  -t, --target DIR        output folder (default: ./target)\n"
		"      --no-push           service: do not push the image\n"
		"      --mode MODE         mesh: production (default) or debug; debug adds\n"
		"                          security.attestation.tolerate: [debug-mode]\n"
		"      --no-upload         mesh: do not upload the policy to the CAS\n"
		"      --cas URL           mesh: the CAS address (overrides the Meshfile's\n"
		"                          cas_url; default port 8081)\n"
		"  -o, --output FORMAT     mesh: helm (default) or yaml; repeat or use\n"
		"                          'helm,yaml' for both\n"
		"  -p, --print-defaults    list the global variables each service needs and\n"
		"                          where their values come from, then exit\n"
		"  -h, --help              this help\n\n"
		"Environment: VEIL_RUNTIME overrides the veil-run binary that is measured.\n");
}

static int load_doc(struct ydoc *doc, const char *path, struct veil_diags *d)
{
	int rc = ydoc_init(doc, path);
	return rc ? rc : ydoc_load(doc, path, NULL, d);
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

static int apply_service(const struct apply_opts *o, struct ydoc *doc, struct veil_diags *d)
{
	struct veil_service_manifest m;
	struct veil_measurement meas = {0};
	char *dir = NULL, *runtime = NULL, *data = NULL, *out_dir = NULL;
	size_t size = 0;
	int rc = veil_service_parse(doc, &m, d);
	if (rc)
		goto out;
	if (o->print_defaults) {
		print_globals(m.build.name, &m, NULL, NULL);
		goto out;
	}
	dir = veil_dirname(o->file);
	runtime = veil_default_runtime_path();
	if (!dir || !runtime) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if ((rc = veil_measure_service(&m, dir, runtime, &meas, d)))
		goto out;
	meas.manifest = realpath(o->file, NULL);
	if ((rc = veil_read_file(o->file, ylimits_default.max_doc_size, &data, &size, d)))
		goto out;
	if ((rc = veil_measurement_write(&meas, o->target, data, size, &out_dir, d)))
		goto out;
	printf("service %s: measured %zu protected file%s\n", meas.name, meas.file_count,
	       meas.file_count == 1 ? "" : "s");
	printf("  image          %s\n", meas.image);
	printf("  command        %s (pwd %s)\n", meas.command, meas.pwd);
	printf("  mrenclave      %s\n", meas.runtime_sha256);
	printf("  file-set root  %s\n", meas.file_set_root);
	printf("  record         %s/measurement.yaml\n", out_dir);
	if (!o->no_push)
		fprintf(stderr,
			"note: building and pushing the OCI image is not implemented yet; "
			"only the measurement record was written (--no-push silences this)\n");
out:
	veil_measurement_free(&meas);
	free(dir);
	free(runtime);
	free(data);
	free(out_dir);
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

/* POST the policy; if the namespace exists, name its current hash as the
 * predecessor and PUT. Updates *policy, *canon and hash accordingly. */
static int upload(const struct apply_opts *o, const struct veil_mesh *mesh, struct yarena *a,
		  struct ynode *policy, struct veil_buf *canon, char hash[static 65],
		  char cas_key[static VEIL_KEY_HASH_HEX], struct veil_diags *d)
{
	const struct veil_mesh_cas *mc = veil_mesh_policy_cas(mesh);
	const char *url = o->cas ? o->cas : mc ? mc->cas_url : NULL;
	struct client c = {0};
	struct response r = {0};
	json_t *j = NULL;
	char *body = NULL, path[300];
	if (!url) {
		veil_diag(d, "%s names no CAS: give --cas URL, or --no-upload", mesh->file);
		return VEIL_EINVAL;
	}
	int rc = client_open(&c, url, d);
	if (!rc && !c.pinned[0]) {
		/* first contact: attest with the Meshfile's tolerance, then pin */
		struct tolerance t;
		rc = cli_tolerance_parse(mc ? mc->tolerance : NULL, &t, d);
		if (!rc)
			rc = cli_attest(url, &t, d);
		client_close(&c);
		if (!rc)
			rc = client_open(&c, url, d);
	}
	if (rc)
		goto out;
	memcpy(cas_key, c.pinned, VEIL_KEY_HASH_HEX);
	if (!(j = json_pack("{s:s%}", "policy", canon->data, canon->size)) ||
	    !(body = json_dumps(j, JSON_COMPACT))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if ((rc = client_request(&c, "POST", "/v1/policies", body, 0, &r, d)))
		goto out;
	if (r.status == 201) {
		printf("uploaded to %s: created namespace %s\n", c.url, mesh->namespace_);
		goto out;
	}
	if (r.status != 409) {
		response_error(&r, "upload", d);
		rc = VEIL_EINVAL;
		goto out;
	}
	/* the namespace exists: update it from its current hash */
	response_free(&r);
	snprintf(path, sizeof(path), "/v1/policies/%s", mesh->namespace_);
	if ((rc = client_request(&c, "GET", path, NULL, 0, &r, d)))
		goto out;
	json_t *cur = r.status == 200 ? json_loadb(r.body.data, r.body.size, 0, NULL) : NULL;
	const char *current = NULL;
	if (!cur || json_unpack(cur, "{s:s}", "hash", &current)) {
		json_decref(cur);
		response_error(&r, "reading the current policy", d);
		rc = VEIL_EINVAL;
		goto out;
	}
	ymap_put_str(a, policy, "predecessor", current);
	json_decref(cur);
	canon->size = 0;
	if ((rc = veil_policy_canonical(policy, canon, hash)))
		goto out;
	json_decref(j);
	free(body);
	body = NULL;
	if (!(j = json_pack("{s:s%}", "policy", canon->data, canon->size)) ||
	    !(body = json_dumps(j, JSON_COMPACT))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	response_free(&r);
	if ((rc = client_request(&c, "PUT", path, body, 0, &r, d)))
		goto out;
	if (r.status != 200) {
		response_error(&r, "upload (update)", d);
		rc = VEIL_EINVAL;
		goto out;
	}
	printf("uploaded to %s: updated namespace %s\n", c.url, mesh->namespace_);
out:
	json_decref(j);
	free(body);
	response_free(&r);
	client_close(&c);
	return rc;
}

static int apply_mesh(const struct apply_opts *o, struct ydoc *doc, struct veil_diags *d)
{
	struct veil_mesh mesh;
	struct member_src *src = NULL;
	size_t nsrc = 0;
	struct veil_mesh_member *members = NULL;
	struct veil_buf canon;
	veil_buf_init(&canon, 0);
	char *pdir = NULL, *pfile = NULL;
	int rc = veil_mesh_parse(doc, &mesh, d);
	if (rc)
		goto out;
	if ((rc = load_records(o->target, &src, &nsrc, d)))
		goto out;
	members = calloc(mesh.service_count + 1, sizeof(*members));
	if (!members) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < mesh.service_count; i++) {
		const struct veil_mesh_service *s = &mesh.services[i];
		struct member_src *found = NULL;
		for (size_t k = 0; k < nsrc; k++) {
			if (strcmp(src[k].meas.image, s->image))
				continue;
			if (found) {
				veil_diag_at(d, mesh.file, s->pos.line, s->pos.col,
					     "service '%s': image '%s' has two measurement records "
					     "(%s, %s); remove the stale one",
					     s->name, s->image, found->dir, src[k].dir);
				rc = VEIL_EINVAL;
			}
			found = &src[k];
		}
		if (!found) {
			veil_diag_at(
			    d, mesh.file, s->pos.line, s->pos.col,
			    "service '%s': no measurement record for image '%s' in "
			    "%s/images; run 'veil apply -f <its service.yaml> -t %s' first",
			    s->name, s->image, o->target, o->target);
			rc = VEIL_EINVAL;
			continue;
		}
		members[i] = (struct veil_mesh_member){
		    .svc = s, .manifest = &found->manifest, .meas = &found->meas};
	}
	if (rc)
		goto out;
	if (o->print_defaults) {
		printf("# global variables of mesh %s, per service\n", mesh.namespace_);
		for (size_t i = 0; i < mesh.service_count; i++) {
			char label[300];
			snprintf(label, sizeof(label), "%s (%s)", members[i].svc->name,
				 members[i].manifest->file);
			print_globals(label, members[i].manifest, &mesh, members[i].svc->name);
		}
		goto out;
	}
	struct veil_derive_opts dopts = {.debug_mode = o->debug_mode};
	struct ynode *policy = NULL;
	if ((rc = veil_policy_derive(doc->arena, &mesh, members, mesh.service_count, &dopts,
				     &policy, d)))
		goto out;
	for (size_t i = 0; i < mesh.service_count; i++) {
		const struct veil_service_manifest *m = members[i].manifest;
		for (size_t k = 0; k < m->secret_count; k++)
			if (m->secrets[k].value)
				fprintf(stderr,
					"warning: secret '%s' has an explicit value in %s: it is "
					"copied into the policy and readable by whoever reads the "
					"manifest; prefer a CAS-generated or imported secret\n",
					m->secrets[k].name, m->file);
	}
	char hash[2 * VEIL_SHA256_SIZE + 1];
	if ((rc = veil_policy_canonical(policy, &canon, hash)))
		goto out;
	pdir = veil_path_join(o->target, "policies");
	char *name = yarena_printf(doc->arena, "%s.yaml", mesh.namespace_);
	pfile = pdir && name ? veil_path_join(pdir, name) : NULL;
	if (!pfile) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if ((rc = veil_mkdirs(pdir, 0755, d)))
		goto out;
	/* the key the pods' veil-run pins: the CAS attested and pinned by the
	 * upload, else the Meshfile's cas_key when it is a key hash */
	char cas_key[VEIL_KEY_HASH_HEX] = "";
	const struct veil_mesh_cas *mc = veil_mesh_policy_cas(&mesh);
	if (!o->no_upload && veil_mesh_uploads(&mesh) &&
	    (rc = upload(o, &mesh, doc->arena, policy, &canon, hash, cas_key, d)))
		goto out;
	if (!cas_key[0] && mc && veil_is_sha256_hex(mc->cas_key))
		memcpy(cas_key, mc->cas_key, sizeof(cas_key));
	if (!cas_key[0] && o->outputs)
		fprintf(stderr,
			"warning: the chart's cas.key is empty: veil-run pins the CAS by "
			"its key hash and will not start without it; set cas.key (e.g. helm "
			"--set cas.key=HASH, the hash 'veil cas attest' prints) or upload "
			"the policy\n");
	/* the chart first: a mesh it refuses leaves no new policy behind */
	if ((rc = veil_deploy_write(&mesh, members, mesh.service_count, hash, cas_key, o->target,
				    o->outputs, d)))
		goto out;
	if ((rc = veil_write_file_nosync(pfile, canon.data, canon.size, 0644, d)))
		goto out;
	/* one sync for the policy and every chart file instead of a fsync each */
	if ((rc = veil_sync_fs(o->target, d)))
		goto out;
	printf("policy %s: %zu service%s, written to %s\n", mesh.namespace_, mesh.service_count,
	       mesh.service_count == 1 ? "" : "s", pfile);
	printf("policy hash %s\n", hash);
	if (o->outputs & VEIL_OUT_HELM)
		printf("helm chart %s/helm\n", o->target);
	if (o->outputs & VEIL_OUT_YAML)
		printf("kubernetes manifests %s/manifests\n", o->target);
out:
	veil_buf_free(&canon);
	free(pdir);
	free(pfile);
	free(members);
	free_records(src, nsrc);
	return rc;
}

int apply_main(int argc, char **argv)
{
	enum { OPT_NO_PUSH = 256, OPT_NO_UPLOAD, OPT_MODE, OPT_CAS };
	static const struct option opts[] = {
	    {"file", required_argument, NULL, 'f'},
	    {"target", required_argument, NULL, 't'},
	    {"output", required_argument, NULL, 'o'},
	    {"print-defaults", no_argument, NULL, 'p'},
	    {"no-push", no_argument, NULL, OPT_NO_PUSH},
	    {"no-upload", no_argument, NULL, OPT_NO_UPLOAD},
	    {"mode", required_argument, NULL, OPT_MODE},
	    {"cas", required_argument, NULL, OPT_CAS},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct apply_opts o = {.target = "target"};
	int c;
	while ((c = getopt_long(argc, argv, "f:t:o:ph", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o.file = optarg;
			break;
		case 't':
			o.target = optarg;
			break;
		case 'p':
			o.print_defaults = 1;
			break;
		case 'o': {
			char *save = NULL, *arg = strdup(optarg);
			for (char *t = arg ? strtok_r(arg, ",", &save) : NULL; t;
			     t = strtok_r(NULL, ",", &save)) {
				if (!strcmp(t, "helm")) {
					o.outputs |= VEIL_OUT_HELM;
				} else if (!strcmp(t, "yaml")) {
					o.outputs |= VEIL_OUT_YAML;
				} else {
					fprintf(stderr,
						"veil apply: unknown output '%s' (helm, yaml)\n",
						t);
					free(arg);
					return EXIT_USAGE;
				}
			}
			free(arg);
			break;
		}
		case OPT_NO_PUSH:
			o.no_push = 1;
			break;
		case OPT_NO_UPLOAD:
			o.no_upload = 1;
			break;
		case OPT_CAS:
			o.cas = optarg;
			break;
		case OPT_MODE:
			if (!strcmp(optarg, "debug")) {
				o.debug_mode = 1;
			} else if (strcmp(optarg, "production")) {
				fprintf(stderr, "veil apply: --mode must be debug or production\n");
				return EXIT_USAGE;
			}
			break;
		case 'h':
			apply_usage(stdout);
			return 0;
		default:
			apply_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!o.file || optind < argc) {
		fprintf(stderr, "veil apply: %s\n\n",
			!o.file ? "-f FILE is required" : "unexpected argument");
		apply_usage(stderr);
		return EXIT_USAGE;
	}
	if (!o.outputs)
		o.outputs = VEIL_OUT_HELM;
	struct veil_diags d;
	veil_diags_init(&d);
	struct ydoc doc;
	int rc = load_doc(&doc, o.file, &d);
	if (!rc) {
		switch (veil_doc_kind(&doc, &d)) {
		case VEIL_DOC_SERVICE:
			rc = apply_service(&o, &doc, &d);
			break;
		case VEIL_DOC_MESH:
			rc = apply_mesh(&o, &doc, &d);
			break;
		default:
			rc = VEIL_EINVAL;
		}
	}
	ydoc_free(&doc);
	return cli_report(&d, rc);
}
