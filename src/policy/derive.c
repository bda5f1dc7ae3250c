/* Meshfile + manifests + measurement records -> security policy */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/policy.h"

static const struct veil_env_var *block_lookup(const struct veil_mesh_env_block *b,
					       const char *name)
{
	for (size_t i = 0; i < b->count; i++)
		if (!strcmp(b->vars[i].name, name))
			return &b->vars[i];
	return NULL;
}

const struct veil_env_var *veil_mesh_lookup(const struct veil_mesh *mesh, const char *service,
					    const char *name, const char **block)
{
	const struct veil_env_var *shared = NULL;
	for (size_t i = 0; i < mesh->env_count; i++) {
		const struct veil_mesh_env_block *b = &mesh->env[i];
		const struct veil_env_var *v = block_lookup(b, name);
		if (!v)
			continue;
		if (b->service && service && !strcmp(b->service, service)) {
			if (block)
				*block = b->service;
			return v;
		}
		if (!b->service || !strcmp(b->service, "global") || !strcmp(b->service, "helm")) {
			if (!shared && block)
				*block = b->service;
			if (!shared)
				shared = v;
		}
	}
	return shared;
}

static const char *cas_field(const struct veil_mesh *mesh, const char *var)
{
	/* cas_<name>_<field> */
	if (strncmp(var, "cas_", 4))
		return NULL;
	for (size_t i = 0; i < mesh->cas_count; i++) {
		const struct veil_mesh_cas *c = &mesh->cas[i];
		size_t n = strlen(c->name);
		if (strncmp(var + 4, c->name, n) || var[4 + n] != '_')
			continue;
		const char *f = var + 5 + n;
		if (!strcmp(f, "cas_url"))
			return c->cas_url;
		if (!strcmp(f, "cas_key"))
			return c->cas_key;
		if (!strcmp(f, "name"))
			return c->name;
		if (!strcmp(f, "tolerance"))
			return c->tolerance;
		if (!strcmp(f, "mode"))
			return c->mode;
	}
	return NULL;
}

char *veil_template_fill(struct yarena *a, const struct veil_mesh *mesh, const char *service,
			 const char *in, const char **why)
{
	*why = NULL;
	if (!strstr(in, "{{"))
		return (char *)in;
	struct veil_buf b;
	veil_buf_init(&b, 16u << 20);
	const char *p = in;
	char *res = NULL;
	char var[257];
	for (;;) {
		const char *open = strstr(p, "{{");
		if (!open) {
			veil_buf_puts(&b, p);
			break;
		}
		veil_buf_append(&b, p, (size_t)(open - p));
		const char *close = strstr(open + 2, "}}");
		if (!close) {
			*why = "'{{' without closing '}}'";
			goto out;
		}
		const char *s = open + 2, *e = close;
		while (s < e && *s == ' ')
			s++;
		while (e > s && e[-1] == ' ')
			e--;
		size_t n = (size_t)(e - s);
		if (n == 0 || n >= sizeof(var)) {
			*why = "empty or too long {{ }} template";
			goto out;
		}
		memcpy(var, s, n);
		var[n] = '\0';
		const struct veil_env_var *v = veil_mesh_lookup(mesh, service, var, NULL);
		const char *val = v ? v->value : cas_field(mesh, var);
		if (!val) {
			*why = yarena_printf(a,
					     "template {{%s}} names no Meshfile variable or cas "
					     "field",
					     var);
			if (!*why)
				*why = "out of memory";
			goto out;
		}
		veil_buf_puts(&b, val);
		p = close + 2;
	}
	if (!b.failed)
		res = yarena_strdup(a, b.data ? b.data : "");
out:
	veil_buf_free(&b);
	return res;
}

/* ---- secrets ---- */

struct secret_ref {
	const struct veil_secret *s;
	const struct veil_secret_import *imp;
	const struct veil_mesh_member *owner; /* declaring service */
};

struct derive {
	struct yarena *a;
	const struct veil_mesh *mesh;
	struct veil_diags *d;
	unsigned errors;
	struct secret_ref *secrets;
	size_t secret_count;
};

static void derr_at(struct derive *x, const char *file, struct veil_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void derr_at(struct derive *x, const char *file, struct veil_pos pos, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) >= 0) {
		if (pos.line)
			veil_diag_at(x->d, file, pos.line, pos.col, "%s", msg);
		else
			veil_diag(x->d, "%s: %s", file, msg);
		free(msg);
	}
	va_end(ap);
	x->errors++;
}

static int str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static int list_eq(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]))
			return 0;
	return 1;
}

/* two lists of n entries that may be NULL (absent entries) */
static int opt_list_eq(char *const *a, char *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!str_eq(a ? a[i] : NULL, b ? b[i] : NULL))
			return 0;
	return 1;
}

static int secret_eq(const struct veil_secret *a, const struct veil_secret *b)
{
	return str_eq(a->kind, b->kind) && a->has_size == b->has_size && a->size == b->size &&
	       str_eq(a->value, b->value) && str_eq(a->private_key, b->private_key) &&
	       str_eq(a->issuer, b->issuer) && str_eq(a->common_name, b->common_name) &&
	       str_eq(a->valid_for, b->valid_for) && str_eq(a->algorithm, b->algorithm) &&
	       a->migrate == b->migrate && list_eq(a->dns, a->dns_count, b->dns, b->dns_count) &&
	       list_eq(a->export_to, a->export_count, b->export_to, b->export_count) &&
	       opt_list_eq(a->export_owner, b->export_owner, a->export_count) &&
	       opt_list_eq(a->export_session_hash, b->export_session_hash, a->export_count);
}

static struct secret_ref *find_secret(struct derive *x, const char *name)
{
	for (size_t i = 0; i < x->secret_count; i++) {
		const char *n = x->secrets[i].s ? x->secrets[i].s->name : x->secrets[i].imp->name;
		if (!strcmp(n, name))
			return &x->secrets[i];
	}
	return NULL;
}

/* An import without a namespace names, as in SCONE's meshes (the flask/redis
 * tutorial), a global secret another service of the same mesh declares: the
 * policy holds that one secret and both services refer to it, so both get
 * the same value. Nothing is added; `prev` is what the mesh declares. */
static void import_within_mesh(struct derive *x, const struct veil_mesh_member *mm,
			       const struct veil_secret_import *imp, const struct secret_ref *prev)
{
	const char *file = mm->manifest->file;
	if (prev && prev->s && prev->s->is_global)
		return;
	if (!prev)
		derr_at(x, file, imp->pos,
			"service '%s' imports secret '%s', but no service of the mesh declares a "
			"global secret '%s' (to import from another namespace, give "
			"{name, namespace, secret})",
			mm->svc->name, imp->name, imp->name);
	else if (prev->s)
		derr_at(x, file, imp->pos,
			"service '%s' imports secret '%s', which is local to service '%s' (%s); "
			"only global secrets can be imported within a mesh",
			mm->svc->name, imp->name, prev->owner->svc->name,
			prev->owner->manifest->file);
	else
		derr_at(x, file, imp->pos,
			"imported secret '%s' of service '%s' conflicts with secret '%s' of "
			"service '%s'",
			imp->name, mm->svc->name, imp->name, prev->owner->svc->name);
}

static void collect_secrets(struct derive *x, const struct veil_mesh_member *mm, size_t count)
{
	size_t cap = 0;
	for (size_t i = 0; i < count; i++)
		cap += mm[i].manifest->secret_count + mm[i].manifest->import_count;
	x->secrets = yarena_alloc(x->a, (cap + 1) * sizeof(*x->secrets));
	if (!x->secrets) {
		x->errors++;
		return;
	}
	for (size_t i = 0; i < count; i++) {
		const struct veil_service_manifest *m = mm[i].manifest;
		for (size_t k = 0; k < m->secret_count; k++) {
			const struct veil_secret *s = &m->secrets[k];
			struct secret_ref *prev = find_secret(x, s->name);
			if (!prev) {
				x->secrets[x->secret_count++] =
				    (struct secret_ref){.s = s, .owner = &mm[i]};
				continue;
			}
			if (s->is_global && prev->s && prev->s->is_global && secret_eq(s, prev->s))
				continue; /* the same global secret, shared once per mesh */
			if (prev->s == s)
				continue; /* two mesh services built from one manifest */
			derr_at(x, m->file, s->pos,
				"secret '%s' of service '%s' conflicts with the %s secret '%s' of "
				"service '%s' (%s); %s",
				s->name, mm[i].svc->name,
				prev->imp ? "imported" : (prev->s->is_global ? "global" : "local"),
				s->name, prev->owner->svc->name, prev->owner->manifest->file,
				s->is_global && prev->s && prev->s->is_global
				    ? "global secrets of the same name must be defined "
				      "identically"
				    : "rename one of them");
		}
	}
	for (size_t i = 0; i < count; i++) {
		const struct veil_service_manifest *m = mm[i].manifest;
		for (size_t k = 0; k < m->import_count; k++) {
			const struct veil_secret_import *imp = &m->imports[k];
			struct secret_ref *prev = find_secret(x, imp->name);
			if (!imp->from_namespace)
				continue;
			if (!prev) {
				x->secrets[x->secret_count++] =
				    (struct secret_ref){.imp = imp, .owner = &mm[i]};
				continue;
			}
			if (prev->imp && str_eq(prev->imp->from_namespace, imp->from_namespace) &&
			    str_eq(prev->imp->secret, imp->secret))
				continue;
			derr_at(
			    x, m->file, imp->pos,
			    "imported secret '%s' of service '%s' conflicts with secret '%s' of "
			    "service '%s'",
			    imp->name, mm[i].svc->name, imp->name, prev->owner->svc->name);
		}
	}
	/* imports within the mesh last: they must see every secret the policy
	 * holds, imports from other namespaces included */
	for (size_t i = 0; i < count; i++) {
		const struct veil_service_manifest *m = mm[i].manifest;
		for (size_t k = 0; k < m->import_count; k++)
			if (!m->imports[k].from_namespace)
				import_within_mesh(x, &mm[i], &m->imports[k],
						   find_secret(x, m->imports[k].name));
	}
}

/* May service `mm` use secret `name`? Global and imported secrets are
 * mesh-wide; a local secret only for the service that declares it. */
static const struct secret_ref *visible_secret(struct derive *x, const struct veil_mesh_member *mm,
					       const char *name)
{
	struct secret_ref *r = find_secret(x, name);
	if (!r)
		return NULL;
	if (r->s && !r->s->is_global && r->owner->manifest != mm->manifest)
		return NULL;
	return r;
}

struct ph_check {
	struct derive *x;
	const struct veil_mesh_member *mm;
	const char *what;
	const char *file;
	struct veil_pos pos;
};

static int check_placeholder(const struct veil_placeholder *ph, void *arg)
{
	struct ph_check *pc = arg;
	if (visible_secret(pc->x, pc->mm, ph->name))
		return 0;
	struct secret_ref *r = find_secret(pc->x, ph->name);
	for (size_t i = 0; !r && i < pc->mm->manifest->import_count; i++)
		if (!strcmp(pc->mm->manifest->imports[i].name, ph->name))
			return 0; /* an unresolved import, reported at the import */
	if (r)
		derr_at(pc->x, pc->file, pc->pos,
			"%s of service '%s' refers to secret '%s', which is local to service "
			"'%s'",
			pc->what, pc->mm->svc->name, ph->name, r->owner->svc->name);
	else
		derr_at(pc->x, pc->file, pc->pos,
			"%s of service '%s' refers to secret '%s', which is not declared in "
			"'secrets' or 'secrets.import'",
			pc->what, pc->mm->svc->name, ph->name);
	return 0;
}

static void check_placeholders(struct derive *x, const struct veil_mesh_member *mm,
			       const char *value, const char *what, const char *file,
			       struct veil_pos pos)
{
	struct ph_check pc = {.x = x, .mm = mm, .what = what, .file = file, .pos = pos};
	const char *why = NULL;
	if (veil_placeholders(value, check_placeholder, &pc, &why) == VEIL_EINVAL)
		derr_at(x, file, pos, "%s of service '%s': %s", what, mm->svc->name, why);
}

static struct ynode *secret_node(struct derive *x, const struct secret_ref *r)
{
	struct yarena *a = x->a;
	struct ynode *n = ynew_map(a);
	if (r->imp) {
		struct ynode *imp = ynew_map(a);
		ymap_put_str(a, n, "name", r->imp->name);
		if (r->imp->from_namespace)
			ymap_put_str(a, imp, "namespace", r->imp->from_namespace);
		ymap_put_str(a, imp, "secret", r->imp->secret ? r->imp->secret : r->imp->name);
		ymap_put(a, n, "import", imp);
		return n;
	}
	const struct veil_secret *s = r->s;
	ymap_put_str(a, n, "name", s->name);
	ymap_put_str(a, n, "kind", s->kind);
	const struct veil_secret_kind_info *kind = veil_secret_kind_find(s->kind);
	if (s->has_size)
		ymap_put(a, n, "size", ynew_int(a, (long long)s->size));
	else if (!s->value && kind && kind->default_size)
		ymap_put(a, n, "size", ynew_int(a, (long long)kind->default_size));
	if (s->value)
		ymap_put_str(a, n, "value", s->value);
	if (s->private_key)
		ymap_put_str(a, n, "private_key", s->private_key);
	if (s->issuer)
		ymap_put_str(a, n, "issuer", s->issuer);
	if (s->common_name)
		ymap_put_str(a, n, "common_name", s->common_name);
	if (s->valid_for)
		ymap_put_str(a, n, "valid_for", s->valid_for);
	if (s->algorithm)
		ymap_put_str(a, n, "algorithm", s->algorithm);
	if (s->migrate)
		ymap_put(a, n, "migrate", ynew_bool(a, 1));
	if (s->dns_count) {
		struct ynode *l = ynew_seq(a);
		for (size_t i = 0; i < s->dns_count; i++)
			yseq_push(a, l, ynew_str(a, s->dns[i]));
		ymap_put(a, n, "dns", l);
	}
	if (s->export_count) {
		struct ynode *l = ynew_seq(a);
		for (size_t i = 0; i < s->export_count; i++) {
			struct ynode *e = ynew_map(a);
			ymap_put_str(a, e, "namespace", s->export_to[i]);
			if (s->export_owner && s->export_owner[i])
				ymap_put_str(a, e, "owner", s->export_owner[i]);
			if (s->export_session_hash && s->export_session_hash[i])
				ymap_put_str(a, e, "session_hash", s->export_session_hash[i]);
			yseq_push(a, l, e);
		}
		ymap_put(a, n, "export", l);
	}
	return n;
}

static void check_secret_refs(struct derive *x, const struct secret_ref *r)
{
	const struct veil_secret *s = r->s;
	if (!s)
		return;
	const char *refs[2] = {s->private_key, s->issuer};
	const char *names[2] = {"private_key", "issuer"};
	for (int i = 0; i < 2; i++) {
		if (!refs[i])
			continue;
		if (!visible_secret(x, r->owner, refs[i]))
			derr_at(x, r->owner->manifest->file, s->pos,
				"secret '%s': %s '%s' names no secret declared for service '%s'",
				s->name, names[i], refs[i], r->owner->svc->name);
	}
}

/* ---- services ---- */

static struct ynode *service_env(struct derive *x, const struct veil_mesh_member *mm)
{
	const struct veil_service_manifest *m = mm->manifest;
	const struct veil_mesh *mesh = x->mesh;
	const char *svc = mm->svc->name;
	struct yarena *a = x->a;
	struct ynode *env = ynew_map(a);
	for (size_t i = 0; i < m->local_count; i++) {
		const struct veil_env_var *v = &m->local[i];
		const char *block = NULL;
		const struct veil_env_var *mv = veil_mesh_lookup(mesh, svc, v->name, &block);
		if (mv)
			derr_at(x, mesh->file, mv->pos,
				"the Meshfile sets '%s' (env %s%s), but '%s' is a local variable "
				"of service '%s' (%s:%u) and cannot be set from the Meshfile",
				v->name, block ? "block of " : "list", block ? block : "", v->name,
				svc, m->file, v->pos.line);
	}
	for (size_t i = 0; i < m->local_count + m->global_count; i++) {
		int is_local = i < m->local_count;
		const struct veil_env_var *v =
		    is_local ? &m->local[i] : &m->global[i - m->local_count];
		const char *value = v->value;
		/* where the value was written, for messages */
		const char *file = m->file;
		struct veil_pos vpos = v->vpos;
		if (!is_local) {
			const struct veil_env_var *mv = veil_mesh_lookup(mesh, svc, v->name, NULL);
			if (mv && mv->value) {
				value = mv->value;
				file = mesh->file;
				vpos = mv->vpos;
			}
			if (!value) {
				derr_at(x, mesh->file, mm->svc->pos,
					"service '%s': global variable '%s' has no value; set it "
					"in the Meshfile's env or give a default in %s",
					svc, v->name, m->file);
				continue;
			}
		}
		if (!value)
			continue;
		const char *missing = NULL;
		char *filled = veil_template_fill(a, mesh, svc, value, &missing);
		if (!filled) {
			derr_at(x, file, vpos, "variable '%s' of service '%s': %s", v->name, svc,
				missing ? missing : "out of memory");
			continue;
		}
		char *what = yarena_printf(a, "variable '%s'", v->name);
		check_placeholders(x, mm, filled, what ? what : v->name, file, vpos);
		ymap_put_str(a, env, v->name, filled);
	}
	return env;
}

static struct ynode *image_node(struct derive *x, const struct veil_mesh_member *mm)
{
	const struct veil_service_manifest *m = mm->manifest;
	struct yarena *a = x->a;
	struct ynode *img = ynew_map(a);
	ymap_put_str(a, img, "name", mm->meas->name);
	struct ynode *files = ynew_seq(a);
	for (size_t i = 0; i < m->inject_count; i++) {
		const struct veil_injection_file *f = &m->inject[i];
		const char *missing = NULL;
		char *content = veil_template_fill(a, x->mesh, mm->svc->name, f->content, &missing);
		if (!content) {
			derr_at(x, m->file, f->pos, "injection file '%s' of service '%s': %s",
				f->path, mm->svc->name, missing ? missing : "out of memory");
			continue;
		}
		char *what = yarena_printf(a, "injection file '%s'", f->path);
		check_placeholders(x, mm, content, what ? what : f->path, m->file, f->pos);
		struct ynode *e = ynew_map(a);
		ymap_put_str(a, e, "path", f->path);
		ymap_put_str(a, e, "content", content);
		yseq_push(a, files, e);
	}
	ymap_put(a, img, "injection_files", files);
	return img;
}

static int same_tree(const struct ynode *a, const struct ynode *b)
{
	struct veil_buf x, y;
	veil_buf_init(&x, 0);
	veil_buf_init(&y, 0);
	int same =
	    /* not secret: two policy nodes, emitted and compared on the developer machine */
	    !yemit(a, &x) && !yemit(b, &y) && x.size == y.size && !memcmp(x.data, y.data, x.size);
	veil_buf_free(&x);
	veil_buf_free(&y);
	return same;
}

static int member_cmp(const void *p, const void *q)
{
	const struct veil_mesh_member *const *a = p, *const *b = q;
	return strcmp((*a)->svc->name, (*b)->svc->name);
}

static int ref_cmp(const void *p, const void *q)
{
	const struct secret_ref *a = p, *b = q;
	return strcmp(a->s ? a->s->name : a->imp->name, b->s ? b->s->name : b->imp->name);
}

static int str_cmp(const void *p, const void *q)
{
	return strcmp(*(char *const *)p, *(char *const *)q);
}

static struct ynode *sorted_unique_list(struct yarena *a, const char **items, size_t n)
{
	qsort(items, n, sizeof(*items), str_cmp);
	struct ynode *l = ynew_seq(a);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(items[i - 1], items[i]))
			yseq_push(a, l, ynew_str(a, items[i]));
	return l;
}

int veil_policy_derive(struct yarena *a, const struct veil_mesh *mesh,
		       const struct veil_mesh_member *members, size_t count,
		       const struct veil_derive_opts *opts, struct ynode **out,
		       struct veil_diags *d)
{
	struct derive x = {.a = a, .mesh = mesh, .d = d};
	struct ynode *pol = ynew_map(a);
	const struct veil_mesh_member **sorted = calloc(count + 1, sizeof(*sorted));
	if (!pol || !sorted) {
		free(sorted);
		return VEIL_ENOMEM;
	}
	for (size_t i = 0; i < count; i++)
		sorted[i] = &members[i];
	qsort(sorted, count, sizeof(*sorted), member_cmp);

	ymap_put_str(a, pol, "name", mesh->namespace_);
	ymap_put_str(a, pol, "version", "0.3");
	struct ynode *access = ynew_map(a);
	const char *acl[] = {"read", "update", "create_sessions"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(acl); i++) {
		struct ynode *l = ynew_seq(a);
		yseq_push(a, l, ynew_str(a, "CREATOR"));
		ymap_put(a, access, acl[i], l);
	}
	ymap_put(a, pol, "access_policy", access);

	collect_secrets(&x, members, count);
	for (size_t i = 0; i < x.secret_count; i++)
		check_secret_refs(&x, &x.secrets[i]);

	struct ynode *services = ynew_seq(a), *images = ynew_seq(a);
	const char **image_names = calloc(count + 1, sizeof(*image_names));
	const struct veil_mesh_member **image_owner = calloc(count + 1, sizeof(*image_owner));
	size_t image_count = 0;
	for (size_t i = 0; i < count && image_names && image_owner; i++) {
		const struct veil_mesh_member *mm = sorted[i];
		struct ynode *s = ynew_map(a), *mr = ynew_seq(a);
		ymap_put_str(a, s, "name", mm->svc->name);
		ymap_put_str(a, s, "image_name", mm->meas->name);
		yseq_push(a, mr, ynew_str(a, mm->meas->runtime_sha256));
		ymap_put(a, s, "mrenclaves", mr);
		ymap_put_str(a, s, "file_set_root", mm->meas->file_set_root);
		/* the whole image's record (docs/images.md, "Measurement"); a record
		 * from before it was measured has none */
		if (mm->meas->image_root[0])
			ymap_put_str(a, s, "image_root", mm->meas->image_root);
		if (mm->meas->file_count) {
			/* the protected files themselves, so a refusal can name the one
			 * that changed */
			ymap_put(a, s, "files",
				 veil_file_entries_node(a, mm->meas->files, mm->meas->file_count));
		}
		if (mm->meas->program) {
			/* what the command execs outside pwd: veil-run verifies these
			 * before it execs the program (issue 9, H1) */
			ymap_put_str(a, s, "program", mm->meas->program);
			ymap_put(a, s, "runtime_files",
				 veil_file_entries_node(a, mm->meas->runtime_files,
							mm->meas->runtime_file_count));
		}
		ymap_put_str(a, s, "command", mm->meas->command);
		ymap_put_str(a, s, "pwd", mm->meas->pwd);
		if (mm->meas->code_key_id[0]) {
			/* encrypted code: the CAS gives veil-run the key after
			 * attestation (include/veil/codecrypt.h) */
			struct ynode *enc = ynew_map(a), *fl = ynew_seq(a);
			ymap_put_str(a, enc, "key_id", mm->meas->code_key_id);
			for (size_t k = 0; k < mm->meas->encrypted_count; k++)
				yseq_push(a, fl, ynew_str(a, mm->meas->encrypted[k]));
			ymap_put(a, enc, "files", fl);
			ymap_put(a, s, "encryption", enc);
		}
		if (mm->manifest->build.user) {
			const struct veil_build *b = &mm->manifest->build;
			ymap_put_str(a, s, "user", yarena_printf(a, "%u", b->user));
			ymap_put_str(a, s, "group",
				     yarena_printf(a, "%u", b->group ? b->group : b->user));
		}
		ymap_put(a, s, "environment", service_env(&x, mm));
		yseq_push(a, services, s);
		if (!mm->manifest->inject_count)
			continue;
		/* Injection files belong to the image but are rendered per service:
		 * services sharing an image must render them identically. */
		struct ynode *img = image_node(&x, mm);
		size_t k = 0;
		while (k < image_count && strcmp(image_names[k], mm->meas->name))
			k++;
		if (k == image_count) {
			image_names[image_count] = mm->meas->name;
			image_owner[image_count++] = mm;
			yseq_push(a, images, img);
		} else if (!same_tree(images->items[k], img)) {
			derr_at(&x, x.mesh->file, mm->svc->pos,
				"services '%s' and '%s' share image '%s' but their injection files "
				"render differently (per-service Meshfile values); give them "
				"separate images",
				image_owner[k]->svc->name, mm->svc->name, mm->meas->name);
		}
	}
	free(image_names);
	free(image_owner);
	ymap_put(a, pol, "services", services);
	if (images && images->count)
		ymap_put(a, pol, "images", images);

	struct ynode *secrets = ynew_seq(a);
	if (x.secrets && x.secret_count)
		qsort(x.secrets, x.secret_count, sizeof(*x.secrets), ref_cmp);
	for (size_t i = 0; i < x.secret_count; i++)
		yseq_push(a, secrets, secret_node(&x, &x.secrets[i]));
	if (secrets && secrets->count)
		ymap_put(a, pol, "secrets", secrets);

	const char **tol = yarena_alloc(a, (mesh->tolerate_count + 2) * sizeof(*tol));
	size_t ntol = 0;
	for (size_t i = 0; tol && i < mesh->tolerate_count; i++)
		tol[ntol++] = mesh->tolerate[i];
	if (tol && opts && opts->debug_mode)
		tol[ntol++] = "debug-mode";
	if (ntol || mesh->ignore_advisories_count) {
		struct ynode *sec = ynew_map(a), *att = ynew_map(a);
		if (ntol)
			ymap_put(a, att, "tolerate", sorted_unique_list(a, tol, ntol));
		if (mesh->ignore_advisories_count)
			ymap_put(a, att, "ignore_advisories",
				 sorted_unique_list(a, (const char **)mesh->ignore_advisories,
						    mesh->ignore_advisories_count));
		ymap_put(a, sec, "attestation", att);
		ymap_put(a, pol, "security", sec);
	}
	free(sorted);
	/* an allocation failed somewhere: the tree is incomplete, and an error
	 * reported on the way may be its echo (a template that "names no
	 * variable" because its copy failed) */
	if (yarena_failed(a))
		return VEIL_ENOMEM;
	if (x.errors)
		return VEIL_EINVAL;
	*out = pol;
	return 0;
}

int veil_policy_canonical(const struct ynode *policy, struct veil_buf *canonical,
			  char hash_hex[static 2 * VEIL_SHA256_SIZE + 1])
{
	int rc = yemit(policy, canonical);
	if (rc)
		return rc;
	uint8_t h[VEIL_SHA256_SIZE];
	if ((rc = veil_sha256(canonical->data, canonical->size, h)))
		return rc;
	veil_hex(h, sizeof(h), hash_hex);
	return 0;
}
