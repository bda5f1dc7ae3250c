#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veil/deploy.h"

int veil_k8s_name(const char *in, char out[static 64])
{
	size_t n = strlen(in);
	if (n == 0 || n > 63)
		return VEIL_EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)in[i]);
		out[i] = (c == '_' || c == '.') ? '-' : c;
		if (!isalnum((unsigned char)out[i]) && out[i] != '-')
			return VEIL_EINVAL;
	}
	out[n] = '\0';
	/* DNS-1035 (Service names): starts with a letter, ends alphanumeric */
	if (!isalpha((unsigned char)out[0]) || !isalnum((unsigned char)out[n - 1]))
		return VEIL_EINVAL;
	return 0;
}

/* DNS-1123 subdomain, what a Secret's name must be. */
static int k8s_subdomain(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return 0;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-' ||
		      *s == '.'))
			return 0;
	return 1;
}

/* Go template identifiers: letters, digits, '_'. */
static void values_key(const char *in, char out[static 129])
{
	size_t i = 0;
	for (; in[i] && i < 128; i++)
		out[i] = isalnum((unsigned char)in[i]) ? in[i] : '_';
	out[i] = '\0';
	if (isdigit((unsigned char)out[0]))
		out[0] = '_';
}

static const struct ynode *values_get(const struct ynode *values, const char *path)
{
	const struct ynode *n = values;
	char seg[129];
	while (*path && n) {
		size_t k = strcspn(path, ".");
		if (k == 0 || k >= sizeof(seg))
			return NULL;
		memcpy(seg, path, k);
		seg[k] = '\0';
		n = ymap_get(n, seg);
		path += k;
		if (*path == '.')
			path++;
	}
	return n;
}

int veil_template_render(const char *tpl, const struct ynode *values, struct veil_buf *out,
			 const char **why)
{
	const char *p = tpl;
	char expr[256];
	for (;;) {
		const char *open = strstr(p, "{{");
		if (!open) {
			veil_buf_puts(out, p);
			break;
		}
		veil_buf_append(out, p, (size_t)(open - p));
		const char *close = strstr(open, "}}");
		if (!close) {
			*why = "unterminated {{";
			return VEIL_EINVAL;
		}
		const char *s = open + 2, *e = close;
		if (*s == '-') {
			s++;
			while (out->size && isspace((unsigned char)out->data[out->size - 1]))
				out->data[--out->size] = '\0';
		}
		int trim_right = e > s && e[-1] == '-';
		if (trim_right)
			e--;
		size_t n = (size_t)(e - s);
		if (n >= sizeof(expr)) {
			*why = "template expression too long";
			return VEIL_EINVAL;
		}
		memcpy(expr, s, n);
		expr[n] = '\0';
		char path[200], fn[16] = "", fn2[16] = "";
		unsigned indent = 0;
		const struct ynode *v;
		if (sscanf(expr, " toYaml .Values.%199s | %15s %u %15s", path, fn, &indent, fn2) ==
			3 &&
		    !strcmp(fn, "nindent")) {
			if (!(v = values_get(values, path))) {
				*why = "toYaml of a missing value";
				return VEIL_EINVAL;
			}
			veil_buf_puts(out, "\n");
			struct veil_buf y;
			veil_buf_init(&y, 0);
			yemit_at(v, indent, &y);
			if (y.size && y.data[y.size - 1] == '\n')
				y.data[--y.size] = '\0';
			veil_buf_append(out, y.data ? y.data : "", y.size);
			veil_buf_free(&y);
		} else {
			int k = sscanf(expr, " .Values.%199s | %15s %15s", path, fn, fn2);
			if (k < 1 || k > 2 || (k == 2 && strcmp(fn, "quote"))) {
				*why = "unsupported template expression";
				return VEIL_EINVAL;
			}
			if (!(v = values_get(values, path)) || v->type != YT_SCALAR) {
				*why = "template names a missing or non-scalar value";
				return VEIL_EINVAL;
			}
			if (k == 2) {
				struct veil_buf q;
				veil_buf_init(&q, 0);
				veil_buf_puts(&q, "\"");
				/* as Go's strconv.Quote, which Helm's quote uses */
				for (const unsigned char *c = (const unsigned char *)v->str; *c;
				     c++) {
					if (*c == '"' || *c == '\\')
						veil_buf_printf(&q, "\\%c", *c);
					else if (*c == '\n')
						veil_buf_puts(&q, "\\n");
					else if (*c == '\t')
						veil_buf_puts(&q, "\\t");
					else if (*c == '\r')
						veil_buf_puts(&q, "\\r");
					else if (*c < 0x20 || *c == 0x7f)
						veil_buf_printf(&q, "\\x%02x", *c);
					else if (*c < 0x80)
						veil_buf_append(&q, c, 1);
					else {
						unsigned cp;
						size_t un = veil_utf8_decode(
						    (const char *)c, strlen((const char *)c), &cp);
						if (un == 0)
							veil_buf_printf(&q, "\\x%02x", *c);
						else if (veil_yaml_printable(cp))
							veil_buf_append(&q, c, un);
						else
							veil_buf_printf(&q, "\\u%04x", cp);
						if (un > 1)
							c += un - 1;
					}
				}
				veil_buf_puts(&q, "\"");
				veil_buf_append(out, q.data, q.size);
				veil_buf_free(&q);
			} else {
				veil_buf_puts(out, v->str);
			}
		}
		p = close + 2;
		if (trim_right)
			while (isspace((unsigned char)*p))
				p++;
	}
	return out->failed ? VEIL_ENOMEM : 0;
}

struct svc_out {
	const struct veil_mesh_member *mm;
	char k8s[64];
	char key[129];
	long port; /* 0: none */
	const char *cas_addr;
};

/* veil-las's socket folder on the node, shared with the pods */
#define LAS_DIR "/run/veil"

/* The volumes of a service's pod: veil-las's socket folder (hostPath) and a
 * memory-backed emptyDir at each folder of its injection files, where
 * veil-run writes them when it cannot make a private mount namespace. A
 * folder that is, or contains, the protected folder would hide it: refused. */
static int pod_volumes(struct yarena *a, const struct veil_mesh_member *mm, struct ynode *sv,
		       struct veil_diags *d)
{
	struct ynode *vols = ynew_seq(a), *mounts = ynew_seq(a), *las = ynew_map(a),
		     *hp = ynew_map(a), *lasm = ynew_map(a);
	ymap_put_str(a, hp, "path", LAS_DIR);
	ymap_put_str(a, hp, "type", "Directory");
	ymap_put_str(a, las, "name", "veil-las");
	ymap_put(a, las, "hostPath", hp);
	yseq_push(a, vols, las);
	ymap_put_str(a, lasm, "name", "veil-las");
	ymap_put_str(a, lasm, "mountPath", LAS_DIR);
	ymap_put(a, lasm, "readOnly", ynew_bool(a, 1));
	yseq_push(a, mounts, lasm);
	const struct veil_service_manifest *m = mm->manifest;
	const char *pwd = m && m->build.pwd ? m->build.pwd : "/";
	int rc = 0;
	for (size_t i = 0; m && i < m->inject_count; i++) {
		const struct veil_injection_file *f = &m->inject[i];
		const char *slash = strrchr(f->path, '/');
		char *dir = yarena_printf(a, "%.*s", slash == f->path ? 1 : (int)(slash - f->path),
					  f->path);
		size_t dl = strlen(dir);
		if (!strcmp(dir, "/") ||
		    (!strncmp(pwd, dir, dl) && (pwd[dl] == '\0' || pwd[dl] == '/'))) {
			veil_diag_at(
			    d, m->file, f->pos.line, f->pos.col,
			    "injection file %s: in Kubernetes its folder %s becomes a "
			    "memory volume, which would hide the protected folder %s; give "
			    "injection files a folder of their own",
			    f->path, dir, pwd);
			rc = VEIL_EINVAL;
			continue;
		}
		int seen = 0;
		for (size_t k = 1; k < mounts->count; k++)
			seen |= !strcmp(ymap_get(mounts->items[k], "mountPath")->str, dir);
		if (seen)
			continue;
		char *name = yarena_printf(a, "veil-inject-%zu", mounts->count);
		struct ynode *v = ynew_map(a), *ed = ynew_map(a), *vm = ynew_map(a);
		ymap_put_str(a, ed, "medium", "Memory");
		ymap_put_str(a, ed, "sizeLimit", "64Mi");
		ymap_put_str(a, v, "name", name);
		ymap_put(a, v, "emptyDir", ed);
		yseq_push(a, vols, v);
		ymap_put_str(a, vm, "name", name);
		ymap_put_str(a, vm, "mountPath", dir);
		yseq_push(a, mounts, vm);
	}
	ymap_put(a, sv, "volumeMounts", mounts);
	ymap_put(a, sv, "volumes", vols);
	return rc;
}

static int mesh_tolerates(const struct veil_mesh *mesh, const char *what)
{
	for (size_t i = 0; i < mesh->tolerate_count; i++)
		if (!strcmp(mesh->tolerate[i], what))
			return 1;
	return 0;
}

/* The container's securityContext (docs/manifests.md, 9.3): every
 * capability dropped, then exactly what veil-run needs for this service
 * added back. Without them a default pod's start is refused after
 * attestation: pinning the protected folder and the runtime files takes a
 * private mount namespace (CAP_SYS_ADMIN, and an AppArmor profile that
 * allows mount(2): the runtimes' default one denies it), and running the
 * program under the policy's uid takes CAP_SETUID and CAP_SETGID (CAP_CHOWN
 * to give it its injection files, CAP_SETPCAP to empty the bounding set so
 * that no file capability in the image gives any back). The capabilities
 * work only for uid 0, so runAsUser 0 comes with them. Kubernetes refuses
 * allowPrivilegeEscalation: false next to CAP_SYS_ADMIN (which can undo it),
 * so it is set only where SYS_ADMIN is not added. */
static void security_context(struct yarena *a, const struct veil_mesh *mesh,
			     const struct veil_mesh_member *mm, long port, struct ynode *sv)
{
	const struct veil_service_manifest *m = mm->manifest;
	int pins = !mesh_tolerates(mesh, "insecure-unpinned-files");
	int own_uid = m && m->build.user;
	struct ynode *sc = ynew_map(a), *caps = ynew_map(a), *drop = ynew_seq(a),
		     *add = ynew_seq(a);
	yseq_push(a, drop, ynew_str(a, "ALL"));
	ymap_put(a, caps, "drop", drop);
	/* sorted, as Kubernetes lists them */
	if (own_uid && m->inject_count)
		yseq_push(a, add, ynew_str(a, "CHOWN"));
	/* a program that runs as root keeps the container's capabilities: one
	 * that serves a port below 1024 needs this one of the runtime's defaults */
	if (!own_uid && port > 0 && port < 1024)
		yseq_push(a, add, ynew_str(a, "NET_BIND_SERVICE"));
	if (own_uid) {
		yseq_push(a, add, ynew_str(a, "SETGID"));
		yseq_push(a, add, ynew_str(a, "SETPCAP"));
		yseq_push(a, add, ynew_str(a, "SETUID"));
	}
	if (pins)
		yseq_push(a, add, ynew_str(a, "SYS_ADMIN"));
	if (add->count)
		ymap_put(a, caps, "add", add);
	if (!pins)
		ymap_put(a, sc, "allowPrivilegeEscalation", ynew_bool(a, 0));
	if (pins) {
		struct ynode *aa = ynew_map(a);
		ymap_put_str(a, aa, "type", "Unconfined");
		ymap_put(a, sc, "appArmorProfile", aa);
	}
	ymap_put(a, sc, "capabilities", caps);
	if (pins || own_uid)
		ymap_put(a, sc, "runAsUser", ynew_int(a, 0));
	ymap_put(a, sv, "securityContext", sc);
}

static void deployment_tpl(struct veil_buf *b, const struct svc_out *s, const char *part_of,
			   int pull_secrets)
{
	const char *k = s->key, *n = s->k8s;
	veil_buf_printf(b,
			"apiVersion: apps/v1\n"
			"kind: Deployment\n"
			"metadata:\n"
			"  name: %s\n"
			"  labels:\n"
			"    app.kubernetes.io/name: %s\n"
			"    app.kubernetes.io/part-of: %s\n"
			"    app.kubernetes.io/managed-by: veil\n"
			"spec:\n"
			"  replicas: {{ .Values.services.%s.replicas }}\n"
			"  selector:\n"
			"    matchLabels:\n"
			"      app.kubernetes.io/name: %s\n"
			"      app.kubernetes.io/part-of: %s\n"
			"  template:\n"
			"    metadata:\n"
			"      labels:\n"
			"        app.kubernetes.io/name: %s\n"
			"        app.kubernetes.io/part-of: %s\n"
			"    spec:\n",
			n, n, part_of, k, n, part_of, n, part_of);
	if (pull_secrets)
		veil_buf_printf(
		    b,
		    "      imagePullSecrets:\n"
		    "        {{- toYaml .Values.services.%s.imagePullSecrets | nindent 8 }}\n",
		    k);
	veil_buf_printf(b,
			"      containers:\n"
			"        - name: %s\n"
			"          image: {{ .Values.services.%s.image | quote }}\n"
			"          imagePullPolicy: IfNotPresent\n",
			n, k);
	if (s->port)
		veil_buf_printf(b,
				"          ports:\n"
				"            - name: service\n"
				"              containerPort: {{ .Values.services.%s.port }}\n",
				k);
	veil_buf_printf(
	    b,
	    "          env:\n"
	    "            - name: SCONE_CONFIG_ID\n"
	    "              value: {{ .Values.services.%s.configId | quote }}\n"
	    "            - name: SCONE_CAS_ADDR\n"
	    "              value: {{ .Values.cas.addr | quote }}\n"
	    "            - name: VEIL_CAS_KEY\n"
	    "              value: {{ .Values.cas.key | quote }}\n"
	    "            - name: SCONE_LAS_ADDR\n"
	    "              value: \"" LAS_DIR "/las.sock\"\n"
	    "          securityContext:\n"
	    "            {{- toYaml .Values.services.%s.securityContext | nindent 12 }}\n"
	    "          volumeMounts:\n"
	    "            {{- toYaml .Values.services.%s.volumeMounts | nindent 12 }}\n"
	    "      volumes:\n"
	    "        {{- toYaml .Values.services.%s.volumes | nindent 8 }}\n",
	    k, k, k, k);
}

static void service_tpl(struct veil_buf *b, const struct svc_out *s, const char *part_of)
{
	veil_buf_printf(b,
			"apiVersion: v1\n"
			"kind: Service\n"
			"metadata:\n"
			"  name: %s\n"
			"  labels:\n"
			"    app.kubernetes.io/name: %s\n"
			"    app.kubernetes.io/part-of: %s\n"
			"    app.kubernetes.io/managed-by: veil\n"
			"spec:\n"
			"  selector:\n"
			"    app.kubernetes.io/name: %s\n"
			"    app.kubernetes.io/part-of: %s\n"
			"  ports:\n"
			"    - name: service\n"
			"      port: {{ .Values.services.%s.port }}\n"
			"      targetPort: service\n",
			s->k8s, s->k8s, part_of, s->k8s, part_of, s->key);
}

static int write_buf(const char *dir, const char *name, struct veil_buf *b, struct veil_diags *d)
{
	if (b->failed)
		return VEIL_ENOMEM;
	char *p = veil_path_join(dir, name);
	int rc =
	    p ? veil_write_file_plain(p, b->data ? b->data : "", b->size, 0644, d) : VEIL_ENOMEM;
	free(p);
	return rc;
}

static int write_object(const char *helm_tpl_dir, const char *yaml_dir, const char *file,
			struct veil_buf *tpl, const struct ynode *values, struct veil_diags *d)
{
	int rc = 0;
	if (helm_tpl_dir && (rc = write_buf(helm_tpl_dir, file, tpl, d)))
		return rc;
	if (!yaml_dir)
		return 0;
	struct veil_buf r;
	veil_buf_init(&r, 0);
	const char *why = NULL;
	rc = veil_template_render(tpl->data, values, &r, &why);
	if (rc)
		veil_diag(d, "internal error rendering %s: %s", file, why ? why : "out of memory");
	else
		rc = write_buf(yaml_dir, file, &r, d);
	veil_buf_free(&r);
	return rc;
}

int veil_deploy_write(const struct veil_mesh *mesh, const struct veil_mesh_member *members,
		      size_t count, const char *policy_hash, const char *cas_key,
		      const char *target, unsigned outputs, struct veil_diags *d)
{
	struct ydoc doc;
	int rc = ydoc_init(&doc, "values.yaml");
	if (rc)
		return rc;
	struct yarena *a = doc.arena;
	struct svc_out *so = calloc(count + 1, sizeof(*so));
	/* Both outputs are written to fresh folders and swapped in whole, so a
	 * crash leaves the previous output and no stale file of a removed service
	 * survives. */
	char *helm_final = veil_path_join(target, "helm");
	char *yaml_final = veil_path_join(target, "manifests");
	char *helm = yarena_printf(a, "%s/.helm.new-%ld", target, (long)getpid());
	char *yaml = yarena_printf(a, "%s/.manifests.new-%ld", target, (long)getpid());
	char *helm_tpl = helm ? veil_path_join(helm, "templates") : NULL;
	struct veil_buf b;
	veil_buf_init(&b, 0);
	char chart[64];
	if (!so || !helm_tpl || !yaml || !helm_final || !yaml_final) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (veil_k8s_name(mesh->namespace_, chart)) {
		veil_diag_at(d, mesh->file, mesh->namespace_pos.line, mesh->namespace_pos.col,
			     "namespace '%s' cannot name a Helm chart (it must start with a "
			     "letter; at most 63 letters, digits, '-', '_', '.')",
			     mesh->namespace_);
		rc = VEIL_EINVAL;
		goto out;
	}
	const struct veil_mesh_cas *cas = veil_mesh_policy_cas(mesh);
	struct ynode *values = ynew_map(a), *services = ynew_map(a), *casv = ynew_map(a),
		     *pol = ynew_map(a);
	ymap_put_str(a, casv, "addr", cas ? cas->cas_url : "");
	ymap_put_str(a, casv, "key", cas_key ? cas_key : "");
	ymap_put(a, values, "cas", casv);
	ymap_put_str(a, pol, "namespace", mesh->namespace_);
	ymap_put_str(a, pol, "hash", policy_hash);
	ymap_put(a, values, "policy", pol);
	ymap_put(a, values, "services", services);
	for (size_t i = 0; i < count; i++) {
		struct svc_out *s = &so[i];
		const struct veil_mesh_service *ms = members[i].svc;
		s->mm = &members[i];
		values_key(ms->name, s->key);
		if (veil_k8s_name(ms->name, s->k8s)) {
			veil_diag_at(
			    d, mesh->file, ms->pos.line, ms->pos.col,
			    "service name '%s' cannot name a Kubernetes object (it must start "
			    "with a letter; at most 63 letters, digits, '-', '_', '.')",
			    ms->name);
			rc = VEIL_EINVAL;
			continue;
		}
		for (size_t k = 0; k < i; k++)
			if (!strcmp(so[k].k8s, s->k8s) || !strcmp(so[k].key, s->key)) {
				veil_diag_at(d, mesh->file, ms->pos.line, ms->pos.col,
					     "services '%s' and '%s' map to the same Kubernetes "
					     "name '%s'",
					     members[k].svc->name, ms->name, s->k8s);
				rc = VEIL_EINVAL;
			}
		const struct veil_env_var *port =
		    veil_mesh_lookup(mesh, ms->name, "APP_SERVICE_PORT", NULL);
		if (port && port->value) {
			char *end = NULL;
			long v = strtol(port->value, &end, 10);
			if (!isdigit((unsigned char)*port->value) || *end || v < 1 || v > 65535) {
				veil_diag_at(
				    d, mesh->file, port->pos.line, port->pos.col,
				    "APP_SERVICE_PORT '%s' for service '%s' must be a port "
				    "number from 1 to 65535",
				    port->value, ms->name);
				rc = VEIL_EINVAL;
			}
			s->port = v;
		}
		struct ynode *sv = ynew_map(a), *pulls = ynew_seq(a);
		ymap_put_str(a, sv, "image", ms->image);
		ymap_put(a, sv, "replicas", ynew_int(a, 1));
		char *cfg = yarena_printf(a, "%s/%s", mesh->namespace_, ms->name);
		ymap_put_str(a, sv, "configId", cfg);
		if (s->port)
			ymap_put(a, sv, "port", ynew_int(a, s->port));
		if (ms->image_secrets_count) {
			for (size_t k = 0; k < ms->image_secrets_count; k++) {
				struct ynode *e = ynew_map(a);
				ymap_put_str(a, e, "name", ms->image_secrets[k]);
				yseq_push(a, pulls, e);
			}
		} else {
			const struct veil_env_var *ps =
			    veil_mesh_lookup(mesh, ms->name, "imagePullSecrets", NULL);
			if (ps && ps->value) {
				struct ynode *e = ynew_map(a);
				ymap_put_str(a, e, "name", ps->value);
				yseq_push(a, pulls, e);
			}
		}
		for (size_t k = 0; k < pulls->count; k++) {
			const char *ps = ymap_get(pulls->items[k], "name")->str;
			if (outputs && !k8s_subdomain(ps))
				fprintf(
				    stderr,
				    "warning: service '%s': image pull secret '%s' is not a valid "
				    "Kubernetes Secret name (lower case letters, digits, '-', "
				    "'.'); "
				    "Kubernetes will not find it\n",
				    ms->name, ps);
		}
		ymap_put(a, sv, "imagePullSecrets", pulls);
		security_context(a, mesh, &members[i], s->port, sv);
		if (pod_volumes(a, &members[i], sv, d))
			rc = VEIL_EINVAL;
		ymap_put(a, services, s->key, sv);
	}
	if (rc)
		goto out;
	int want_helm = outputs & VEIL_OUT_HELM, want_yaml = outputs & VEIL_OUT_YAML;
	veil_remove_tree(helm);
	veil_remove_tree(yaml);
	if (want_helm && (rc = veil_mkdirs(helm_tpl, 0755, d)))
		goto out;
	if (want_yaml && (rc = veil_mkdirs(yaml, 0755, d)))
		goto out;
	if (want_helm) {
		veil_buf_printf(&b,
				"apiVersion: v2\n"
				"name: %s\n"
				"description: \"veil mesh %s: confidential services attested by "
				"their CAS\"\n"
				"type: application\n"
				"version: 0.1.0\n"
				"appVersion: \"%.12s\"\n",
				chart, mesh->namespace_, policy_hash);
		if ((rc = write_buf(helm, "Chart.yaml", &b, d)))
			goto out;
		b.size = 0;
		veil_buf_puts(&b,
			      "# Generated by veil apply -f Meshfile. The services' environment "
			      "and secrets\n# live in the CAS policy, not here.\n");
		yemit(values, &b);
		if ((rc = write_buf(helm, "values.yaml", &b, d)))
			goto out;
	}
	for (size_t i = 0; i < count; i++) {
		struct svc_out *s = &so[i];
		const struct ynode *sv = ymap_get(services, s->key);
		char file[96];
		b.size = 0;
		deployment_tpl(&b, s, chart, ymap_get(sv, "imagePullSecrets")->count > 0);
		snprintf(file, sizeof(file), "%s-deployment.yaml", s->k8s);
		if ((rc = write_object(want_helm ? helm_tpl : NULL, want_yaml ? yaml : NULL, file,
				       &b, values, d)))
			goto out;
		if (!s->port)
			continue;
		b.size = 0;
		service_tpl(&b, s, chart);
		snprintf(file, sizeof(file), "%s-service.yaml", s->k8s);
		if ((rc = write_object(want_helm ? helm_tpl : NULL, want_yaml ? yaml : NULL, file,
				       &b, values, d)))
			goto out;
	}
	if (want_helm && (rc = veil_swap_dir(helm, helm_final, d)))
		goto out;
	if (want_yaml && (rc = veil_swap_dir(yaml, yaml_final, d)))
		goto out;
out:
	if (rc && helm && yaml) {
		veil_remove_tree(helm);
		veil_remove_tree(yaml);
	}
	veil_buf_free(&b);
	free(so);
	free(helm_final);
	free(helm_tpl);
	free(yaml_final);
	ydoc_free(&doc);
	return rc;
}
