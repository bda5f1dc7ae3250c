#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

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

/* The first n bytes of s as Go's strconv.Quote writes them, which Helm's
 * quote uses */
static void go_quote(struct veil_buf *out, const char *s, size_t n)
{
	veil_buf_puts(out, "\"");
	const unsigned char *end = (const unsigned char *)s + n;
	for (const unsigned char *c = (const unsigned char *)s; c < end; c++) {
		if (*c == '"' || *c == '\\')
			veil_buf_printf(out, "\\%c", *c);
		else if (*c == '\n')
			veil_buf_puts(out, "\\n");
		else if (*c == '\t')
			veil_buf_puts(out, "\\t");
		else if (*c == '\r')
			veil_buf_puts(out, "\\r");
		else if (*c < 0x20 || *c == 0x7f)
			veil_buf_printf(out, "\\x%02x", *c);
		else if (*c < 0x80)
			veil_buf_append(out, c, 1);
		else {
			unsigned cp;
			size_t un = veil_utf8_decode((const char *)c, (size_t)(end - c), &cp);
			if (un == 0)
				veil_buf_printf(out, "\\x%02x", *c);
			else if (veil_yaml_printable(cp))
				veil_buf_append(out, c, un);
			else
				veil_buf_printf(out, "\\u%04x", cp);
			if (un > 1)
				c += un - 1;
		}
	}
	veil_buf_puts(out, "\"");
}

/* Template words: the whitespace-separated words of s into w, at most max
 * of them, each shorter than TPL_WORD bytes. Returns how many, or -1 when
 * there are more or one is longer. */
/* a deeper nindent than any chart's; a larger one is refused, not allocated */
enum { TPL_WORD = 200, TPL_MAX_INDENT = 1024 };
static int tpl_words(const char *s, char (*w)[TPL_WORD], int max)
{
	int n = 0;
	for (;;) {
		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			return n;
		size_t len = 0;
		while (s[len] && !isspace((unsigned char)s[len]))
			len++;
		if (n == max || len >= TPL_WORD)
			return -1;
		memcpy(w[n], s, len);
		w[n][len] = '\0';
		n++;
		s += len;
	}
}

/* a count in a template: decimal digits only, at most max */
static int tpl_count(const char *s, unsigned long max, unsigned long *out)
{
	char *e;
	if (!isdigit((unsigned char)*s))
		return 0;
	errno = 0;
	unsigned long v = strtoul(s, &e, 10);
	if (errno || *e || v > max)
		return 0;
	*out = v;
	return 1;
}

/* trimSuffix "S": S of 1 to 63 bytes without a quote, nothing after it; the
 * suffix is copied to arg */
static int tpl_trim_suffix(const char *s, char arg[static 64])
{
	static const char fn[] = "trimSuffix";
	while (isspace((unsigned char)*s))
		s++;
	if (strncmp(s, fn, sizeof(fn) - 1))
		return 0;
	s += sizeof(fn) - 1;
	while (isspace((unsigned char)*s))
		s++;
	const char *end = *s == '"' ? strchr(s + 1, '"') : NULL;
	if (!end || end == s + 1 || end - (s + 1) > 63)
		return 0;
	memcpy(arg, s + 1, (size_t)(end - (s + 1)));
	arg[end - (s + 1)] = '\0';
	for (end++; isspace((unsigned char)*end); end++)
		;
	return !*end;
}

/* "toYaml .Values.PATH | nindent N": PATH copied to path, N to indent */
static int tpl_toyaml(const char *expr, char path[static TPL_WORD], unsigned long *indent)
{
	char left[TPL_WORD], w[2][TPL_WORD];
	const char *bar = strchr(expr, '|');
	if (!bar || strchr(bar + 1, '|') || (size_t)(bar - expr) >= sizeof(left))
		return 0;
	memcpy(left, expr, (size_t)(bar - expr));
	left[bar - expr] = '\0';
	if (tpl_words(left, w, 2) != 2 || strcmp(w[0], "toYaml") || strncmp(w[1], ".Values.", 8) ||
	    !w[1][8])
		return 0;
	memcpy(path, w[1] + 8, strlen(w[1] + 8) + 1);
	return tpl_words(bar + 1, w, 2) == 2 && !strcmp(w[0], "nindent") &&
	       tpl_count(w[1], TPL_MAX_INDENT, indent);
}

/* One pipeline, "SOURCE | FN | FN ...": the source a scalar value or a
 * .Release field, each FN one of quote, trunc N and trimSuffix "S" (sprig's:
 * trunc keeps the first N bytes, trimSuffix removes S once). */
static int render_pipeline(char *expr, const struct ynode *values,
			   const struct veil_release *release, struct veil_buf *out,
			   const char **why)
{
	char *stage = expr, *next = strchr(stage, '|');
	if (next)
		*next++ = '\0';
	char w[2][TPL_WORD];
	if (tpl_words(stage, w, 1) != 1) {
		*why = "unsupported template expression";
		return VEIL_EINVAL;
	}
	const char *src = w[0], *from = NULL;
	if (!strncmp(src, ".Values.", 8)) {
		const struct ynode *v = values_get(values, src + 8);
		if (!v || v->type != YT_SCALAR) {
			*why = "template names a missing or non-scalar value";
			return VEIL_EINVAL;
		}
		from = v->str;
	} else if (release && !strcmp(src, ".Release.Name")) {
		from = release->name;
	} else if (release && !strcmp(src, ".Release.Service")) {
		from = release->service;
	} else {
		*why = "unsupported template expression";
		return VEIL_EINVAL;
	}
	if (!from) {
		*why = "template names a missing release field";
		return VEIL_EINVAL;
	}
	/* the functions only shorten it: the value is its first vl bytes */
	size_t vl = strlen(from);
	int quoted = 0;
	while ((stage = next)) {
		if ((next = strchr(stage, '|')))
			*next++ = '\0';
		char arg[64];
		unsigned long n;
		if (quoted) {
			*why = "unsupported template expression";
			return VEIL_EINVAL;
		}
		int words = tpl_words(stage, w, 2);
		if (words == 1 && !strcmp(w[0], "quote")) {
			quoted = 1;
		} else if (words == 2 && !strcmp(w[0], "trunc") && tpl_count(w[1], INT_MAX, &n)) {
			if (vl > n)
				vl = n;
		} else if (tpl_trim_suffix(stage, arg)) {
			size_t al = strlen(arg);
			/* not secret: a chart template suffix */
			if (vl >= al && !memcmp(from + vl - al, arg, al))
				vl -= al;
		} else {
			*why = "unsupported template expression";
			return VEIL_EINVAL;
		}
	}
	if (quoted)
		go_quote(out, from, vl);
	else
		veil_buf_append(out, from, vl);
	return 0;
}

int veil_template_render(const char *tpl, const struct ynode *values,
			 const struct veil_release *release, struct veil_buf *out, const char **why)
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
		char path[TPL_WORD];
		unsigned long indent = 0;
		const struct ynode *v;
		if (tpl_toyaml(expr, path, &indent)) {
			if (!(v = values_get(values, path))) {
				*why = "toYaml of a missing value";
				return VEIL_EINVAL;
			}
			veil_buf_puts(out, "\n");
			struct veil_buf y;
			veil_buf_init(&y, 0);
			if (yemit_at(v, indent, &y)) {
				veil_buf_free(&y);
				*why = "out of memory";
				return VEIL_ENOMEM;
			}
			if (y.size && y.data[y.size - 1] == '\n')
				y.data[--y.size] = '\0';
			veil_buf_append(out, y.data ? y.data : "", y.size);
			veil_buf_free(&y);
		} else {
			int rc = render_pipeline(expr, values, release, out, why);
			if (rc)
				return rc;
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

/* What every object of the chart carries. */
struct chart_info {
	char name[64];        /* the chart name: the namespace as a DNS-1035 label */
	char version[32];     /* 0.1.0+<first 12 hex of the policy hash> */
	char app_version[16]; /* the first 12 hex of the policy hash */
	char label[96];       /* helm.sh/chart: <name>-<version>, '+' -> '_', at most 63 */
};

/* A Kubernetes object name is <release>-<service>: the release name is cut
 * so that the whole fits 63 characters (a Service name's limit), and at
 * least this many characters of it are kept. */
#define RELEASE_MIN_CHARS 10
#define SERVICE_NAME_MAX (63 - 1 - RELEASE_MIN_CHARS)

/* The largest index.json read; a layout the builder wrote has a few hundred bytes */
#define OCI_INDEX_MAX (1u << 20)

/* The repository part of an image reference: without its tag (a ':' after
 * the last '/') or digest ('@...'). */
static char *image_repository(struct yarena *a, const char *ref)
{
	size_t n = strcspn(ref, "@");
	const char *slash = memrchr(ref, '/', n), *colon = memrchr(ref, ':', n);
	if (colon && (!slash || colon > slash))
		n = (size_t)(colon - ref);
	return yarena_printf(a, "%.*s", (int)n, ref);
}

/* The manifest digest of the image the builder wrote for a service, from
 * TARGET/images/<build.name>/oci/index.json (an OCI image layout): its only
 * manifest, or the one whose org.opencontainers.image.ref.name is the tag of
 * REF. 0 with "sha256:<64 hex>" in out; 1 when there is no layout; -1 when
 * it cannot be used, *why saying why. */
static int layout_digest(const char *index_path, const char *ref, char out[static 72],
			 const char **why)
{
	char *text = NULL;
	size_t size = 0;
	int rc = -1;
	json_t *j = NULL;
	struct veil_diags quiet;
	veil_diags_init(&quiet);
	if (access(index_path, F_OK)) {
		*why = errno == ENOENT ? "there is no image layout" : "the layout cannot be read";
		rc = errno == ENOENT ? 1 : -1;
		goto out;
	}
	if (veil_read_file(index_path, OCI_INDEX_MAX, &text, &size, &quiet)) {
		*why = "its index.json cannot be read";
		goto out;
	}
	json_error_t err;
	j = json_loadb(text, size, JSON_REJECT_DUPLICATES, &err);
	json_t *ms = json_object_get(j, "manifests");
	if (!json_is_array(ms) || json_array_size(ms) == 0) {
		*why = "its index.json lists no manifest";
		goto out;
	}
	const char *slash = strrchr(ref, '/'), *colon = strrchr(ref, ':');
	const char *tag = colon && (!slash || colon > slash) && !strchr(ref, '@') ? colon + 1 : "";
	json_t *pick = NULL;
	size_t i;
	json_t *m;
	json_array_foreach(ms, i, m)
	{
		const char *name = json_string_value(json_object_get(
		    json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));
		if (json_array_size(ms) == 1 || (name && !strcmp(name, tag)))
			pick = m;
	}
	const char *digest = json_string_value(json_object_get(pick, "digest"));
	if (!pick) {
		*why = "its index.json lists several manifests and none is tagged with the "
		       "image's tag";
		goto out;
	}
	if (!digest || strncmp(digest, "sha256:", 7) || !veil_is_sha256_hex(digest + 7)) {
		*why = "its index.json has no sha256 manifest digest";
		goto out;
	}
	memcpy(out, digest, 7 + 64 + 1);
	rc = 0;
out:
	json_decref(j);
	free(text);
	veil_diags_free(&quiet);
	return rc;
}

/* services[].image, by digest when the builder's OCI layout of the service's
 * image is there and the image was built for that repository:
 * "repository@sha256:..."; an image the Meshfile names by digest as
 * written; else as written, with a warning (a tag can change under a running
 * chart). */
static const char *image_ref(struct yarena *a, const char *target,
			     const struct veil_mesh_member *mm, int warn)
{
	const struct veil_mesh_service *ms = mm->svc;
	const struct veil_service_manifest *m = mm->manifest;
	const char *repo = image_repository(a, ms->image);
	const char *why = "its service manifest names no build.name";
	if (strchr(ms->image, '@'))
		return ms->image;
	if (m && m->build.name) {
		const char *built_for = m->build.to ? image_repository(a, m->build.to) : NULL;
		char *index =
		    yarena_printf(a, "%s/images/%s/oci/index.json", target, m->build.name);
		char digest[72];
		const char *bad = NULL;
		int rc = 0;
		if (built_for && repo && strcmp(built_for, repo))
			why = yarena_printf(a, "its build is for %s (build.to), not %s", built_for,
					    repo);
		else if (index && repo && !(rc = layout_digest(index, ms->image, digest, &bad)))
			return yarena_printf(a, "%s@%s", repo, digest);
		else if (index && bad)
			why =
			    yarena_printf(a, "%s at %s%s", bad, index,
					  rc == 1 ? " (veil apply -f service.yaml writes it)" : "");
	}
	if (warn)
		fprintf(stderr, "warning: service '%s': the chart names its image by tag, %s: %s\n",
			ms->name, ms->image, why ? why : "out of memory");
	return ms->image;
}

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

/* The container's securityContext (docs/manifests.md, 9.2): every
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
	/* veil-run writes only to memory: its private tmpfs mounts and the
	 * injection folders' emptyDirs (pod_volumes) */
	ymap_put(a, sc, "readOnlyRootFilesystem", ynew_bool(a, 1));
	if (pins || own_uid)
		ymap_put(a, sc, "runAsUser", ynew_int(a, 0));
	ymap_put(a, sv, "securityContext", sc);
}

/* metadata.name: <release>-<service>, the release name cut to what the
 * 63 characters leave (as `helm create`'s fullname does for the whole) */
static void object_name(struct veil_buf *b, const struct svc_out *s)
{
	veil_buf_printf(b, "{{ .Release.Name | trunc %zu | trimSuffix \"-\" }}-%s",
			(size_t)62 - strlen(s->k8s), s->k8s);
}

/* The standard labels (app.kubernetes.io/..., helm.sh/chart), at INDENT.
 * Values that YAML could read as a number or boolean are quoted. */
static void labels(struct veil_buf *b, const struct svc_out *s, const struct chart_info *c,
		   int indent)
{
	veil_buf_printf(b,
			"%*sapp.kubernetes.io/name: %s\n"
			"%*sapp.kubernetes.io/instance: {{ .Release.Name | quote }}\n"
			"%*sapp.kubernetes.io/version: \"%s\"\n"
			"%*sapp.kubernetes.io/component: confidential-service\n"
			"%*sapp.kubernetes.io/part-of: %s\n"
			"%*sapp.kubernetes.io/managed-by: {{ .Release.Service | quote }}\n"
			"%*shelm.sh/chart: \"%s\"\n",
			indent, "", s->k8s, indent, "", indent, "", c->app_version, indent, "",
			indent, "", c->name, indent, "", indent, "", c->label);
}

/* What selects a service's pods: the service and the release, so that two
 * releases in one namespace never select each other's pods. */
static void selector(struct veil_buf *b, const struct svc_out *s, int indent)
{
	veil_buf_printf(b,
			"%*sapp.kubernetes.io/name: %s\n"
			"%*sapp.kubernetes.io/instance: {{ .Release.Name | quote }}\n",
			indent, "", s->k8s, indent, "");
}

/* The container's resources: requests a node must have free, and a memory
 * limit (the injection folders' memory volumes count against it). No CPU
 * limit: throttling a service whose node has idle cores helps nobody. */
static void resources(struct yarena *a, struct ynode *sv)
{
	struct ynode *r = ynew_map(a), *req = ynew_map(a), *lim = ynew_map(a);
	ymap_put_str(a, req, "cpu", "100m");
	ymap_put_str(a, req, "memory", "128Mi");
	ymap_put_str(a, lim, "memory", "512Mi");
	ymap_put(a, r, "limits", lim);
	ymap_put(a, r, "requests", req);
	ymap_put(a, sv, "resources", r);
}

static void deployment_tpl(struct veil_buf *b, const struct svc_out *s, const struct chart_info *c,
			   int pull_secrets)
{
	const char *k = s->key, *n = s->k8s;
	veil_buf_puts(b, "apiVersion: apps/v1\n"
			 "kind: Deployment\n"
			 "metadata:\n"
			 "  name: ");
	object_name(b, s);
	veil_buf_puts(b, "\n  labels:\n");
	labels(b, s, c, 4);
	veil_buf_printf(b,
			"spec:\n"
			"  replicas: {{ .Values.services.%s.replicas }}\n"
			"  selector:\n"
			"    matchLabels:\n",
			k);
	selector(b, s, 6);
	veil_buf_puts(b, "  template:\n"
			 "    metadata:\n"
			 "      labels:\n");
	labels(b, s, c, 8);
	/* a new policy hash rolls the pods: their veil-run attests again and
	 * gets the new configuration */
	veil_buf_puts(b, "      annotations:\n"
			 "        checksum/policy: {{ .Values.policy.hash | quote }}\n"
			 "    spec:\n"
			 "      automountServiceAccountToken: false\n");
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
	    "          resources:\n"
	    "            {{- toYaml .Values.services.%s.resources | nindent 12 }}\n"
	    "          securityContext:\n"
	    "            {{- toYaml .Values.services.%s.securityContext | nindent 12 }}\n"
	    "          volumeMounts:\n"
	    "            {{- toYaml .Values.services.%s.volumeMounts | nindent 12 }}\n"
	    "      volumes:\n"
	    "        {{- toYaml .Values.services.%s.volumes | nindent 8 }}\n",
	    k, k, k, k, k);
}

static void service_tpl(struct veil_buf *b, const struct svc_out *s, const struct chart_info *c)
{
	veil_buf_puts(b, "apiVersion: v1\n"
			 "kind: Service\n"
			 "metadata:\n"
			 "  name: ");
	object_name(b, s);
	veil_buf_puts(b, "\n  labels:\n");
	labels(b, s, c, 4);
	veil_buf_puts(b, "spec:\n"
			 "  selector:\n");
	selector(b, s, 4);
	veil_buf_printf(b,
			"  ports:\n"
			"    - name: service\n"
			"      port: {{ .Values.services.%s.port }}\n"
			"      targetPort: service\n",
			s->key);
}

/* JSON Schema of values.yaml, which Helm checks before it renders: a
 * misspelt key, a wrong type, a CAS key that is not a key hash, or a change
 * of what the policy fixed (its hash and namespace, each service's config
 * id) is refused. Sorted keys, so the same mesh gives the same bytes. */
static json_t *object_schema(json_t *props, json_t *required)
{
	return json_pack("{s:s, s:b, s:o, s:o}", "type", "object", "additionalProperties", 0,
			 "properties", props, "required", required);
}

static int values_schema(const struct veil_mesh *mesh, const struct svc_out *so, size_t count,
			 const char *policy_hash, struct veil_buf *out)
{
	json_t *services = json_object(), *service_keys = json_array();
	for (size_t i = 0; i < count; i++) {
		const struct svc_out *s = &so[i];
		char cfg[256];
		snprintf(cfg, sizeof(cfg), "%s/%s", mesh->namespace_, s->mm->svc->name);
		json_t *p = json_pack(
		    "{s:{s:s}, s:{s:s, s:i}, s:{s:s, s:i}, s:{s:s, s:{s:s, s:[s], s:{s:{s:s}}}},"
		    " s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}",
		    "configId", "const", cfg, "image", "type", "string", "minLength", 1, "replicas",
		    "type", "integer", "minimum", 0, "imagePullSecrets", "type", "array", "items",
		    "type", "object", "required", "name", "properties", "name", "type", "string",
		    "resources", "type", "object", "securityContext", "type", "object",
		    "volumeMounts", "type", "array", "volumes", "type", "array");
		json_t *req = json_pack("[s, s, s, s, s, s, s, s]", "configId", "image",
					"imagePullSecrets", "replicas", "resources",
					"securityContext", "volumeMounts", "volumes");
		if (p && req && s->port) {
			json_object_set_new(p, "port",
					    json_pack("{s:s, s:i, s:i}", "type", "integer",
						      "minimum", 1, "maximum", 65535));
			json_array_append_new(req, json_string("port"));
		}
		json_object_set_new(services, s->key, p && req ? object_schema(p, req) : NULL);
		json_array_append_new(service_keys, json_string(s->key));
	}
	json_t *root = object_schema(
	    json_pack(
		"{s:o, s:o, s:o}", "cas",
		object_schema(json_pack("{s:{s:s}, s:{s:s, s:s}}", "addr", "type", "string", "key",
					"type", "string", "pattern", "^([0-9a-f]{64})?$"),
			      json_pack("[s, s]", "addr", "key")),
		"policy",
		object_schema(json_pack("{s:{s:s}, s:{s:s}}", "hash", "const", policy_hash,
					"namespace", "const", mesh->namespace_),
			      json_pack("[s, s]", "hash", "namespace")),
		"services", object_schema(services, service_keys)),
	    json_pack("[s, s, s]", "cas", "policy", "services"));
	char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(root);
	if (!text)
		return VEIL_ENOMEM;
	veil_buf_puts(out, text);
	veil_buf_puts(out, "\n");
	free(text);
	return out->failed ? VEIL_ENOMEM : 0;
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
			struct veil_buf *tpl, const struct ynode *values,
			const struct veil_release *release, struct veil_diags *d)
{
	int rc = 0;
	if (helm_tpl_dir && (rc = write_buf(helm_tpl_dir, file, tpl, d)))
		return rc;
	if (!yaml_dir)
		return 0;
	struct veil_buf r;
	veil_buf_init(&r, 0);
	const char *why = NULL;
	rc = veil_template_render(tpl->data, values, release, &r, &why);
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
	struct chart_info ci;
	const char *chart = ci.name;
	if (!so || !helm_tpl || !yaml || !helm_final || !yaml_final) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (veil_k8s_name(mesh->namespace_, ci.name)) {
		veil_diag_at(d, mesh->file, mesh->namespace_pos.line, mesh->namespace_pos.col,
			     "namespace '%s' cannot name a Helm chart (it must start with a "
			     "letter; at most 63 letters, digits, '-', '_', '.')",
			     mesh->namespace_);
		rc = VEIL_EINVAL;
		goto out;
	}
	/* the chart version follows the policy: a new policy is a new chart */
	snprintf(ci.app_version, sizeof(ci.app_version), "%.12s", policy_hash);
	snprintf(ci.version, sizeof(ci.version), "0.1.0+%s", ci.app_version);
	snprintf(ci.label, sizeof(ci.label), "%s-0.1.0_%s", ci.name, ci.app_version);
	if (strlen(ci.label) > 63)
		ci.label[63] = '\0';
	while (ci.label[0] && ci.label[strlen(ci.label) - 1] == '-')
		ci.label[strlen(ci.label) - 1] = '\0';
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
		if (strlen(s->k8s) > SERVICE_NAME_MAX) {
			veil_diag_at(
			    d, mesh->file, ms->pos.line, ms->pos.col,
			    "service name '%s' is too long for the chart: its objects are "
			    "named <release>-%s, at most 63 characters with at least %d of "
			    "the release name, so a service name has at most %d",
			    ms->name, s->k8s, RELEASE_MIN_CHARS, SERVICE_NAME_MAX);
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
		ymap_put_str(a, sv, "image", image_ref(a, target, &members[i], outputs != 0));
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
		resources(a, sv);
		security_context(a, mesh, &members[i], s->port, sv);
		if (pod_volumes(a, &members[i], sv, d))
			rc = VEIL_EINVAL;
		ymap_put(a, services, s->key, sv);
	}
	/* the values, the manifests and the chart are rendered from the tree:
	 * a tree built through a failed allocation is not written */
	if (!rc && yarena_failed(a))
		rc = VEIL_ENOMEM;
	if (rc)
		goto out;
	int want_helm = outputs & VEIL_OUT_HELM, want_yaml = outputs & VEIL_OUT_YAML;
	/* the manifests are what `helm install <chart name> target/helm` makes,
	 * managed by veil rather than Helm */
	const struct veil_release release = {.name = ci.name, .service = "veil"};
	/* what a killed run left would be swapped in with the new files */
	if (veil_remove_tree(helm) || veil_remove_tree(yaml)) {
		veil_diag(d, "%s, %s: cannot remove what an earlier run left", helm, yaml);
		rc = VEIL_EIO;
		goto out;
	}
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
				"version: %s\n"
				"appVersion: \"%s\"\n",
				chart, mesh->namespace_, ci.version, ci.app_version);
		if ((rc = write_buf(helm, "Chart.yaml", &b, d)))
			goto out;
		b.size = 0;
		veil_buf_puts(&b,
			      "# Generated by veil apply -f Meshfile. The services' environment "
			      "and secrets\n# live in the CAS policy, not here.\n");
		if (yarena_failed(a) || yemit(values, &b)) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		if ((rc = write_buf(helm, "values.yaml", &b, d)))
			goto out;
		b.size = 0;
		if ((rc = values_schema(mesh, so, count, policy_hash, &b)) ||
		    (rc = write_buf(helm, "values.schema.json", &b, d)))
			goto out;
	}
	for (size_t i = 0; i < count; i++) {
		struct svc_out *s = &so[i];
		const struct ynode *sv = ymap_get(services, s->key);
		char file[96];
		b.size = 0;
		deployment_tpl(&b, s, &ci, ymap_get(sv, "imagePullSecrets")->count > 0);
		snprintf(file, sizeof(file), "%s-deployment.yaml", s->k8s);
		if ((rc = write_object(want_helm ? helm_tpl : NULL, want_yaml ? yaml : NULL, file,
				       &b, values, &release, d)))
			goto out;
		if (!s->port)
			continue;
		b.size = 0;
		service_tpl(&b, s, &ci);
		snprintf(file, sizeof(file), "%s-service.yaml", s->k8s);
		if ((rc = write_object(want_helm ? helm_tpl : NULL, want_yaml ? yaml : NULL, file,
				       &b, values, &release, d)))
			goto out;
	}
	if (want_helm && (rc = veil_swap_dir(helm, helm_final, d)))
		goto out;
	if (want_yaml && (rc = veil_swap_dir(yaml, yaml_final, d)))
		goto out;
out:
	if (rc && helm && yaml) {
		/* best effort on an error path: the next run removes them first */
		VEIL_UNCHECKED(veil_remove_tree(helm));
		VEIL_UNCHECKED(veil_remove_tree(yaml));
	}
	veil_buf_free(&b);
	free(so);
	free(helm_final);
	free(helm_tpl);
	free(yaml_final);
	ydoc_free(&doc);
	return rc;
}
