/* kind: genservice -> struct veil_service_manifest */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int manifest_env_list(struct yctx *c, const struct ynode *seq, const char *where,
		      struct veil_env_var **out, size_t *count)
{
	static const char *const keys[] = {"name", "value", NULL};
	*out = NULL;
	*count = 0;
	if (!seq)
		return 0;
	struct veil_env_var *v = yarena_alloc(c->arena, (seq->count + 1) * sizeof(*v));
	if (!v)
		return VEIL_ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < seq->count; i++) {
		const struct ynode *e = seq->items[i];
		if (yexpect(c, e, YT_MAP, "an environment entry"))
			continue;
		ycheck_keys(c, e, keys, "an environment entry");
		const char *name = yget_str(c, e, "name", 1, where);
		if (!name)
			continue;
		if (!veil_valid_env_name(name)) {
			yerr(c, ymap_get(e, "name"),
			     "%s: '%s' is not a valid variable name (letters, digits, '_'; not "
			     "starting with a digit)",
			     where, name);
			continue;
		}
		for (size_t k = 0; k < n; k++)
			if (!strcmp(v[k].name, name))
				yerr(c, ymap_get(e, "name"),
				     "%s: variable '%s' defined twice (first at line %u)", where,
				     name, v[k].pos.line);
		const struct ynode *val = ymap_get(e, "value");
		if (val && !ynode_is_null(val) && val->type != YT_SCALAR) {
			yerr(c, val, "%s: value of '%s' must be a string, found %s", where, name,
			     ytype_name(val));
			continue;
		}
		v[n].name = name;
		v[n].value = val && !ynode_is_null(val) ? val->str : NULL;
		if (val && val->type == YT_SCALAR && !val->plain && val->len == 0)
			v[n].value = ""; /* explicit "" */
		v[n].pos = POS(ymap_get(e, "name"));
		v[n].vpos = val && val->line ? POS(val) : v[n].pos;
		n++;
	}
	*out = v;
	*count = n;
	return 0;
}

/* A key that does not fit the secret's kind, by the table the CAS uses. */
struct misfit_at {
	struct yctx *c;
	const struct ynode *entry;
	const char *where, *kind;
};

static void report_misfit(const char *key, int needed, void *arg)
{
	struct misfit_at *m = arg;
	if (needed)
		yerr(m->c, m->entry, "%s: kind '%s' needs '%s'", m->where, m->kind, key);
	else
		yerr(m->c, ymap_get(m->entry, key), "%s: '%s' does not apply to kind '%s'",
		     m->where, key, m->kind);
}

static int is_hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

/* export: one entry or a list; an entry is {namespace, owner, session_hash}.
 * Consent goes to an identity, not a name (whoever creates the name later
 * would get the secret), so an entry names the importer's owner key hash
 * and/or its policy hash; a bare name is refused with the form to write. */
static void parse_exports(struct yctx *c, const struct ynode *e, const char *where,
			  struct veil_secret *s)
{
	const struct ynode *ex = ymap_get(e, "export");
	if (!ex || ynode_is_null(ex))
		return;
	const struct ynode *const *items = &ex;
	size_t n = 1;
	if (ex->type == YT_SEQ) {
		items = (const struct ynode *const *)ex->items;
		n = ex->count;
	}
	size_t cap = (n + 1) * sizeof(char *);
	s->export_to = yarena_alloc(c->arena, cap);
	s->export_owner = yarena_alloc(c->arena, cap);
	s->export_session_hash = yarena_alloc(c->arena, cap);
	if (!s->export_to || !s->export_owner || !s->export_session_hash)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct ynode *x = items[i];
		if (x->type == YT_SCALAR) {
			yerr(c, x,
			     "%s: export to '%s' needs the importer's identity: write "
			     "{namespace: %s, owner: KEYHASH} ('veil whoami' prints a client's key "
			     "hash) and/or session_hash: POLICYHASH",
			     where, x->str, x->str);
			continue;
		}
		if (yexpect(c, x, YT_MAP, "an export entry"))
			continue;
		static const char *const xkeys[] = {"namespace", "owner", "session_hash", NULL};
		ycheck_keys(c, x, xkeys, "an export entry");
		const char *ns = yget_str(c, x, "namespace", 1, "export entry");
		const char *owner = yget_str(c, x, "owner", 0, "export entry");
		const char *sh = yget_str(c, x, "session_hash", 0, "export entry");
		if (ns && !veil_valid_object_name(ns))
			yerr(c, ymap_get(x, "namespace"), "%s: '%s' is not a valid namespace name",
			     where, ns);
		if (owner && !is_hex64(owner))
			yerr(c, ymap_get(x, "owner"),
			     "%s: export owner '%s' must be a 64-hex-digit client key hash", where,
			     owner);
		if (sh && !is_hex64(sh))
			yerr(c, ymap_get(x, "session_hash"),
			     "%s: export session_hash '%s' must be a 64-hex-digit policy hash",
			     where, sh);
		if (ns && !owner && !sh)
			yerr(c, x,
			     "%s: export to '%s' needs the importer's identity: 'owner' (its "
			     "owner's "
			     "client key hash) and/or 'session_hash' (its policy hash)",
			     where, ns);
		if (ns) {
			s->export_to[s->export_count] = (char *)ns;
			s->export_owner[s->export_count] = (char *)owner;
			s->export_session_hash[s->export_count++] = (char *)sh;
		}
	}
}

static void parse_secret(struct yctx *c, const struct ynode *e, int is_global,
			 struct veil_secret *s)
{
	static const char *const keys[] = {
	    "name", "kind",      "size",      "value",   "private_key", "issuer", "common_name",
	    "dns",  "valid_for", "algorithm", "migrate", "export",      NULL};
	const char *where = is_global ? "secrets.global entry" : "secrets.local entry";
	memset(s, 0, sizeof(*s));
	ycheck_keys(c, e, keys, where);
	s->pos = POS(e);
	s->is_global = is_global;
	s->name = yget_str(c, e, "name", 1, where);
	if (s->name && !veil_valid_secret_name(s->name))
		yerr(c, ymap_get(e, "name"),
		     "%s: '%s' is not a valid secret name (letters, digits, '_', '-')", where,
		     s->name);
	else if (s->name && !strcmp(s->name, VEIL_NAMESPACE_CA_NAME))
		yerr(c, ymap_get(e, "name"),
		     "%s: the name '%s' is reserved for the namespace CA" VEIL_NAMESPACE_CA_WHY,
		     where, s->name);
	s->kind = yget_str(c, e, "kind", 1, where);
	const struct veil_secret_kind_info *kind = veil_secret_kind_find(s->kind);
	if (s->kind && !kind)
		yerr(c, ymap_get(e, "kind"), "%s: unknown secret kind '%s' (" VEIL_SECRET_KINDS ")",
		     where, s->kind);
	unsigned long long size = 0;
	int r = yget_uint(c, e, "size", VEIL_SECRET_SIZE_MAX, &size, where);
	if (r == 1) {
		if (size == 0)
			yerr(c, ymap_get(e, "size"), "%s: size must be at least 1", where);
		s->size = size;
		s->has_size = 1;
	}
	s->value = yget_str(c, e, "value", 0, where);
	if (s->value && s->has_size)
		yerr(c, ymap_get(e, "value"), "%s: give either 'size' or 'value', not both", where);
	size_t start, len;
	if (s->value && kind && kind->kind == VEIL_SECRET_BINARY &&
	    veil_binary_value_span(s->value, &start, &len))
		yerr(c, ymap_get(e, "value"), "%s: value must be " VEIL_BINARY_VALUE_FORM, where);
	s->private_key = yget_str(c, e, "private_key", 0, where);
	s->issuer = yget_str(c, e, "issuer", 0, where);
	s->common_name = yget_str(c, e, "common_name", 0, where);
	if (s->common_name && !veil_secret_common_name_valid(s->common_name))
		yerr(c, ymap_get(e, "common_name"),
		     "%s: common_name must be " VEIL_SECRET_COMMON_NAME_FORM, where);
	s->valid_for = yget_str(c, e, "valid_for", 0, where);
	long long seconds;
	if (s->valid_for && veil_valid_for_parse(s->valid_for, &seconds))
		yerr(c, ymap_get(e, "valid_for"), "%s: valid_for '%s' is not " VEIL_VALID_FOR_FORMS,
		     where, s->valid_for);
	s->algorithm = yget_str(c, e, "algorithm", 0, where);
	if (s->algorithm && !veil_secret_algorithm_valid(s->algorithm))
		yerr(c, ymap_get(e, "algorithm"),
		     "%s: unknown algorithm '%s' (" VEIL_SECRET_ALGORITHMS ")", where,
		     s->algorithm);
	char why[512];
	if (kind && kind->kind == VEIL_SECRET_PRIVATE_KEY && s->value &&
	    veil_secret_key_value_check(
		s->value, veil_secret_algorithm_valid(s->algorithm) ? s->algorithm : NULL, why,
		sizeof(why)))
		yerr(c, ymap_get(e, "value"), "%s: %s", where, why);
	s->dns = yget_strlist(c, e, "dns", 0, &s->dns_count, where);
	for (size_t i = 0; i < s->dns_count; i++)
		if (!veil_secret_dns_entry_valid(s->dns[i]))
			yerr(c, ymap_get(e, "dns"), "%s: dns entry #%zu is " VEIL_SECRET_DNS_FORM,
			     where, i + 1);
	parse_exports(c, e, where, s);
	yget_bool(c, e, "migrate", &s->migrate, where);
	struct misfit_at m = {c, e, where, s->kind};
	veil_secret_keys_misfit(s, report_misfit, &m);
}

static void parse_secrets(struct yctx *c, const struct ynode *sec, struct veil_service_manifest *m)
{
	static const char *const keys[] = {"global", "local", "import", NULL};
	if (!sec)
		return;
	ycheck_keys(c, sec, keys, "secrets");
	const struct ynode *g = yget_coll(c, sec, "global", YT_SEQ, 0, "secrets");
	const struct ynode *l = yget_coll(c, sec, "local", YT_SEQ, 0, "secrets");
	const struct ynode *im = yget_coll(c, sec, "import", YT_SEQ, 0, "secrets");
	size_t total = (g ? g->count : 0) + (l ? l->count : 0);
	m->secrets = yarena_alloc(c->arena, (total + 1) * sizeof(*m->secrets));
	if (!m->secrets)
		return;
	const struct ynode *lists[2] = {g, l};
	for (int li = 0; li < 2; li++) {
		const struct ynode *list = lists[li];
		for (size_t i = 0; list && i < list->count; i++) {
			const struct ynode *e = list->items[i];
			if (yexpect(c, e, YT_MAP, "a secret entry"))
				continue;
			struct veil_secret *s = &m->secrets[m->secret_count];
			parse_secret(c, e, li == 0, s);
			if (!s->name)
				continue;
			for (size_t k = 0; k < m->secret_count; k++)
				if (!strcmp(m->secrets[k].name, s->name))
					yerr(c, ymap_get(e, "name"),
					     "secret '%s' defined twice (first at line %u)",
					     s->name, m->secrets[k].pos.line);
			m->secret_count++;
		}
	}
	if (!im)
		return;
	m->imports = yarena_alloc(c->arena, (im->count + 1) * sizeof(*m->imports));
	if (!m->imports)
		return;
	static const char *const ikeys[] = {"name", "namespace", "secret", NULL};
	for (size_t i = 0; i < im->count; i++) {
		const struct ynode *e = im->items[i];
		struct veil_secret_import *x = &m->imports[m->import_count];
		x->pos = POS(e);
		if (e->type == YT_SCALAR && !ynode_is_null(e)) {
			x->name = e->str;
		} else if (e->type == YT_MAP) {
			ycheck_keys(c, e, ikeys, "secrets.import entry");
			x->name = yget_str(c, e, "name", 1, "secrets.import entry");
			x->from_namespace = yget_str(c, e, "namespace", 0, "secrets.import entry");
			x->secret = yget_str(c, e, "secret", 0, "secrets.import entry");
			if (x->secret && !x->from_namespace)
				yerr(c, ymap_get(e, "secret"),
				     "secrets.import entry: 'secret' renames a secret of another "
				     "namespace and needs 'namespace' (within a mesh, import a "
				     "global secret by its own name)");
		} else {
			yerr(c, e,
			     "secrets.import entries must be a secret name or a mapping, found %s",
			     ytype_name(e));
			continue;
		}
		if (!x->name)
			continue;
		if (!veil_valid_secret_name(x->name)) {
			yerr(c, e, "secrets.import: '%s' is not a valid secret name", x->name);
			continue;
		}
		for (size_t k = 0; k < m->secret_count; k++)
			if (!strcmp(m->secrets[k].name, x->name))
				yerr(c, e, "secret '%s' is both imported and defined (line %u)",
				     x->name, m->secrets[k].pos.line);
		for (size_t k = 0; k < m->import_count; k++)
			if (!strcmp(m->imports[k].name, x->name))
				yerr(c, e, "secret '%s' imported twice", x->name);
		m->import_count++;
	}
}

/* build.user / build.group: 1 to 4294967294 (-1 means "unchanged" to
 * setuid); 0 is root, no separation from anything. 0 if absent or refused. */
static unsigned get_program_id(struct yctx *c, const struct ynode *b, const char *key,
			       const char *what)
{
	unsigned long long v = 0;
	if (yget_uint(c, b, key, 4294967294ull, &v, "build") != 1)
		return 0;
	if (!v)
		yerr(c, ymap_get(b, key),
		     "build: %s 0 is root's, which separates the program from nothing: name a "
		     "dedicated %s from 1 to 4294967294, or leave '%s' out",
		     key, what, key);
	return (unsigned)v;
}

static void parse_build(struct yctx *c, const struct ynode *b, struct veil_build *out)
{
	static const char *const keys[] = {
	    "name", "kind",         "to",   "pwd",       "command",
	    "copy", "requirements", "run",  "signature", "host_paths",
	    "user", "group",        "from", "encrypt",   NULL};
	ycheck_keys(c, b, keys, "build");
	out->name = yget_str(c, b, "name", 1, "build");
	if (out->name && !veil_valid_object_name(out->name))
		yerr(c, ymap_get(b, "name"),
		     "build: name '%s' must start with a letter or digit and hold only letters, "
		     "digits, '_', '.', '-'",
		     out->name);
	out->kind = yget_str(c, b, "kind", 0, "build");
	out->to = yget_str(c, b, "to", 1, "build");
	out->pwd = yget_str(c, b, "pwd", 0, "build");
	if (out->pwd && out->pwd[0] != '/')
		yerr(c, ymap_get(b, "pwd"), "build: pwd '%s' must be an absolute path", out->pwd);
	if (!out->pwd)
		out->pwd = "/";
	const struct ynode *cmd = ymap_get(b, "command");
	if (cmd && cmd->type == YT_SEQ)
		yerr(c, cmd, "build: 'command' must be one string, found a list" VEIL_COMMAND_FORM);
	else
		out->command = yget_str(c, b, "command", 1, "build");
	if (out->command && strstr(out->command, "$$SCONE::"))
		yerr(
		    c, ymap_get(b, "command"),
		    "build: 'command' holds a secret placeholder" VEIL_COMMAND_PLACEHOLDER_REFUSED);
	out->user = get_program_id(c, b, "user", "uid");
	out->group = get_program_id(c, b, "group", "gid");
	if (out->group && !ymap_get(b, "user"))
		yerr(c, ymap_get(b, "group"),
		     "build: 'group' needs 'user': the uid is what keeps other processes out of "
		     "the program's environment");
	out->requirements = yget_str(c, b, "requirements", 0, "build");
	out->from = yget_str(c, b, "from", 0, "build");
	if (out->from && strncmp(out->from, "oci:", 4) && !veil_base_is_registry(out->from) &&
	    strcmp(out->from, "scratch"))
		yerr(c, ymap_get(b, "from"),
		     "build: from '%s' is not oci:DIR[:TAG], [docker://]HOST/REPO[:TAG] or scratch",
		     out->from);
	out->copy = yget_strlist(c, b, "copy", 0, &out->copy_count, "build");
	out->copy_pos = POS(ymap_get(b, "copy"));
	out->encrypt = yget_strlist(c, b, "encrypt", 0, &out->encrypt_count, "build");
	out->encrypt_pos = POS(ymap_get(b, "encrypt"));
	for (size_t i = 0; i < out->encrypt_count; i++) {
		const char *g = out->encrypt[i];
		if (!*g || g[0] == '/' || !strncmp(g, "../", 3) || strstr(g, "/../") ||
		    !strcmp(g, ".."))
			yerr(c, ymap_get(b, "encrypt"),
			     "build: encrypt '%s' must be a glob relative to pwd, like the copy "
			     "files (e.g. '*.py', 'app/**')",
			     g);
	}
	out->run = yget_strlist(c, b, "run", 0, &out->run_count, "build");
	out->host_paths = yget_strlist(c, b, "host_paths", 0, &out->host_paths_count, "build");
	const struct ynode *sig = yget_coll(c, b, "signature", YT_MAP, 0, "build");
	if (sig) {
		static const char *const skeys[] = {"sign", NULL};
		ycheck_keys(c, sig, skeys, "build.signature");
		yget_bool(c, sig, "sign", &out->sign, "build.signature");
	}
}

static void parse_injection(struct yctx *c, const struct ynode *seq,
			    struct veil_service_manifest *m)
{
	static const char *const keys[] = {"path", "content", NULL};
	m->inject = yarena_alloc(c->arena, (seq->count + 1) * sizeof(*m->inject));
	if (!m->inject)
		return;
	for (size_t i = 0; i < seq->count; i++) {
		const struct ynode *e = seq->items[i];
		if (yexpect(c, e, YT_MAP, "an injection_files entry"))
			continue;
		ycheck_keys(c, e, keys, "an injection_files entry");
		struct veil_injection_file *f = &m->inject[m->inject_count];
		f->path = yget_str(c, e, "path", 1, "injection_files");
		f->content = yget_str(c, e, "content", 0, "injection_files");
		if (!f->content)
			f->content = "";
		f->pos = POS(e);
		if (!f->path)
			continue;
		if (f->path[0] != '/' || strstr(f->path, "/../") ||
		    (strlen(f->path) >= 3 && !strcmp(f->path + strlen(f->path) - 3, "/..")))
			yerr(c, ymap_get(e, "path"),
			     "injection_files: path '%s' must be absolute without '..'", f->path);
		for (size_t k = 0; k < m->inject_count; k++)
			if (!strcmp(m->inject[k].path, f->path))
				yerr(c, ymap_get(e, "path"),
				     "injection_files: '%s' listed twice (first at line %u)",
				     f->path, m->inject[k].pos.line);
		m->inject_count++;
	}
}

struct own_secrets {
	struct yctx *c;
	const struct veil_service_manifest *m;
	const char *what;
	struct veil_pos pos;
};

static int own_placeholder(const struct veil_placeholder *ph, void *arg)
{
	struct own_secrets *o = arg;
	char why[512];
	for (size_t i = 0; i < o->m->secret_count; i++) {
		if (strcmp(o->m->secrets[i].name, ph->name))
			continue;
		/* what the CAS could not render at attestation */
		if (veil_placeholder_fits(ph, o->m->secrets[i].kind, why, sizeof(why))) {
			veil_diag_at(o->c->d, o->c->file, o->pos.line, o->pos.col, "%s: %s",
				     o->what, why);
			o->c->errors++;
		}
		return 0;
	}
	for (size_t i = 0; i < o->m->import_count; i++)
		if (!strcmp(o->m->imports[i].name, ph->name))
			return 0;
	veil_diag_at(o->c->d, o->c->file, o->pos.line, o->pos.col,
		     "%s refers to secret '%s', which is not declared in 'secrets' or "
		     "'secrets.import'",
		     o->what, ph->name);
	o->c->errors++;
	return 0;
}

/* Every $$SCONE::name$$ of the manifest must name one of its own secrets. */
static void check_own_placeholders(struct yctx *c, const struct veil_service_manifest *m)
{
	struct own_secrets o = {.c = c, .m = m};
	for (size_t i = 0; i < m->local_count + m->global_count + m->inject_count; i++) {
		const char *value;
		char what[300];
		if (i < m->local_count + m->global_count) {
			const struct veil_env_var *v =
			    i < m->local_count ? &m->local[i] : &m->global[i - m->local_count];
			value = v->value;
			o.pos = v->vpos;
			snprintf(what, sizeof(what), "variable '%s'", v->name);
		} else {
			const struct veil_injection_file *f =
			    &m->inject[i - m->local_count - m->global_count];
			value = f->content;
			o.pos = f->pos;
			snprintf(what, sizeof(what), "injection file '%s'", f->path);
		}
		if (!value)
			continue;
		o.what = what;
		const char *why = NULL;
		if (veil_placeholders(value, own_placeholder, &o, &why) == VEIL_EINVAL) {
			veil_diag_at(c->d, c->file, o.pos.line, o.pos.col, "%s: %s", what, why);
			c->errors++;
		}
	}
}

int veil_base_is_registry(const char *ref)
{
	if (!strncmp(ref, "docker://", 9))
		return 1;
	const char *slash = strchr(ref, '/');
	if (!slash || !isalnum((unsigned char)ref[0]) || strstr(ref, "://") ||
	    !strncmp(ref, "oci:", 4))
		return 0;
	size_t n = (size_t)(slash - ref);
	return memchr(ref, '.', n) || memchr(ref, ':', n) ||
	       (n == 9 && !strncmp(ref, "localhost", 9));
}

int veil_service_parse(const struct ydoc *doc, struct veil_service_manifest *m,
		       struct veil_diags *d)
{
	static const char *const keys[] = {"apiVersion",      "kind",  "environment", "secrets",
					   "injection_files", "build", NULL};
	static const char *const env_keys[] = {"local", "global", NULL};
	struct yctx c = {.file = doc->file, .d = d, .arena = doc->arena};
	memset(m, 0, sizeof(*m));
	m->file = doc->file;
	if (veil_doc_kind(doc, d) != VEIL_DOC_SERVICE) {
		if (!d || d->count == 0)
			veil_diag(d, "%s: not a service manifest (kind: genservice)", doc->file);
		return VEIL_EINVAL;
	}
	const struct ynode *root = doc->root;
	ycheck_keys(&c, root, keys, "the service manifest");
	m->api_version = yget_str(&c, root, "apiVersion", 1, "top level");

	const struct ynode *env = yget_coll(&c, root, "environment", YT_MAP, 0, "top level");
	if (env) {
		ycheck_keys(&c, env, env_keys, "environment");
		manifest_env_list(&c, yget_coll(&c, env, "local", YT_SEQ, 0, "environment"),
				  "environment.local", &m->local, &m->local_count);
		manifest_env_list(&c, yget_coll(&c, env, "global", YT_SEQ, 0, "environment"),
				  "environment.global", &m->global, &m->global_count);
		for (size_t i = 0; i < m->local_count; i++) {
			if (!m->local[i].value)
				veil_diag_at(d, c.file, m->local[i].pos.line, m->local[i].pos.col,
					     "local variable '%s' needs a value: local variables "
					     "cannot be set from the Meshfile",
					     m->local[i].name),
				    c.errors++;
			for (size_t k = 0; k < m->global_count; k++)
				if (!strcmp(m->local[i].name, m->global[k].name))
					veil_diag_at(d, c.file, m->global[k].pos.line,
						     m->global[k].pos.col,
						     "variable '%s' is both local (line %u) and "
						     "global",
						     m->global[k].name, m->local[i].pos.line),
					    c.errors++;
		}
	}
	parse_secrets(&c, yget_coll(&c, root, "secrets", YT_MAP, 0, "top level"), m);
	const struct ynode *inj = yget_coll(&c, root, "injection_files", YT_SEQ, 0, "top level");
	if (inj)
		parse_injection(&c, inj, m);
	const struct ynode *build = yget_coll(&c, root, "build", YT_MAP, 1, "top level");
	if (build)
		parse_build(&c, build, &m->build);
	check_own_placeholders(&c, m);
	return c.errors ? VEIL_EINVAL : 0;
}
