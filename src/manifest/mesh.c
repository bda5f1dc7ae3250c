/* kind: mesh -> struct veil_mesh */
#include <string.h>

#include "internal.h"

static const char *const cas_flags[] = {"-C",
					"-G",
					"-S",
					"--insecure-configuration",
					"--outdated-tcb",
					"--software-hardening-needed",
					"--only_for_testing-debug",
					"--only_for_testing-ignore-signer",
					"--only_for_testing-trust-any",
					NULL};

static const char *const tolerations[] = {"debug-mode",
					  "outdated-tcb",
					  "software-hardening-needed",
					  "insecure-configuration",
					  "hyperthreading",
					  "insecure-igpu",
					  "aepic-leak",
					  "insecure-unpinned-files",
					  "insecure-unmeasured-program",
					  NULL};

static int in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (!strcmp(*list, s))
			return 1;
	return 0;
}

/* SCONE's upload modes. Upload and NoUpload mean what they say; veil
 * neither signs nor encrypts manifests or policies, so the modes that ask
 * for that are refused rather than accepted and ignored. */
static void check_mode(struct yctx *c, const struct ynode *at, const char *mode)
{
	static const char *const refused[] = {"SignedManifest", "EncryptedManifest",
					      "EncryptedOnly", NULL};
	if (!strcmp(mode, "Upload") || !strcmp(mode, "NoUpload"))
		return;
	if (in_list(refused, mode))
		yerr(c, at,
		     "cas entry: mode '%s' is not supported: veil neither signs nor encrypts "
		     "manifests or policies; it uploads the policy over mutual TLS to the CAS it "
		     "attested (mode Upload, the default) or not at all (mode NoUpload)",
		     mode);
	else
		yerr(c, at, "cas entry: unknown mode '%s' (Upload, NoUpload)", mode);
}

static void parse_cas(struct yctx *c, const struct ynode *seq, struct veil_mesh *m)
{
	static const char *const keys[] = {
	    "name", "alias", "cas_url", "cas_key", "tolerance", "mode", "cas_encryption_key", NULL};
	m->cas = yarena_alloc(c->arena, (seq->count + 1) * sizeof(*m->cas));
	if (!m->cas)
		return;
	for (size_t i = 0; i < seq->count; i++) {
		const struct ynode *e = seq->items[i];
		if (yexpect(c, e, YT_MAP, "a cas entry"))
			continue;
		ycheck_keys(c, e, keys, "a cas entry");
		struct veil_mesh_cas *x = &m->cas[m->cas_count];
		x->pos = POS(e);
		x->name = yget_str(c, e, "name", 1, "cas entry");
		x->cas_url = yget_str(c, e, "cas_url", 1, "cas entry");
		x->cas_key = yget_str(c, e, "cas_key", 0, "cas entry");
		x->tolerance = yget_str(c, e, "tolerance", 0, "cas entry");
		x->mode = yget_str(c, e, "mode", 0, "cas entry");
		x->cas_encryption_key = yget_str(c, e, "cas_encryption_key", 0, "cas entry");
		x->alias = yget_strlist(c, e, "alias", 0, &x->alias_count, "cas entry");
		if (x->mode)
			check_mode(c, ymap_get(e, "mode"), x->mode);
		if (x->tolerance) {
			size_t n = 0;
			char **flags = yget_strlist(c, e, "tolerance", 1, &n, "cas entry");
			for (size_t k = 0; k < n; k++)
				if (!in_list(cas_flags, flags[k]))
					yerr(c, ymap_get(e, "tolerance"),
					     "cas entry: unknown tolerance flag '%s' (known: -C, "
					     "-G, "
					     "-S, --insecure-configuration, --outdated-tcb, "
					     "--software-hardening-needed, "
					     "--only_for_testing-debug, "
					     "--only_for_testing-ignore-signer, "
					     "--only_for_testing-trust-any)",
					     flags[k]);
		}
		if (!x->name)
			continue;
		if (!veil_valid_env_name(x->name))
			yerr(c, ymap_get(e, "name"),
			     "cas entry: name '%s' must be letters, digits and '_' (it names "
			     "template variables such as {{cas_%s_cas_url}})",
			     x->name, x->name);
		for (size_t k = 0; k < m->cas_count; k++)
			if (!strcmp(m->cas[k].name, x->name))
				yerr(c, ymap_get(e, "name"),
				     "cas '%s' defined twice (first at line %u)", x->name,
				     m->cas[k].pos.line);
		m->cas_count++;
	}
}

static void parse_env(struct yctx *c, const struct ynode *seq, struct veil_mesh *m)
{
	/* Entries are either {name, value} (the flat list of the seed) or
	 * {service, env: [...]} blocks; flat entries form one block. */
	static const char *const bkeys[] = {"service", "env", NULL};
	m->env = yarena_alloc(c->arena, (seq->count + 2) * sizeof(*m->env));
	if (!m->env)
		return;
	struct ynode *flat = ynew_seq(c->arena);
	const struct ynode *first_flat = NULL;
	for (size_t i = 0; i < seq->count; i++) {
		const struct ynode *e = seq->items[i];
		if (yexpect(c, e, YT_MAP, "an env entry"))
			continue;
		if (!ymap_get(e, "service")) {
			if (!ymap_get(e, "name") && ymap_get(e, "env"))
				yerr(c, e, "env block: required key 'service' is missing");
			else if (flat)
				yseq_push(c->arena, flat, (struct ynode *)e);
			if (!first_flat)
				first_flat = e;
			continue;
		}
		ycheck_keys(c, e, bkeys, "an env block");
		struct veil_mesh_env_block *b = &m->env[m->env_count];
		b->service = yget_str(c, e, "service", 1, "env block");
		b->pos = POS(e);
		const struct ynode *list = yget_coll(c, e, "env", YT_SEQ, 0, "env block");
		if (!b->service)
			continue;
		for (size_t k = 0; k < m->env_count; k++)
			if (m->env[k].service && !strcmp(m->env[k].service, b->service))
				yerr(c, ymap_get(e, "service"),
				     "env block for '%s' given twice (first at line %u)",
				     b->service, m->env[k].pos.line);
		char *where = yarena_printf(c->arena, "env block of '%s'", b->service);
		manifest_env_list(c, list, where ? where : "env block", &b->vars, &b->count);
		m->env_count++;
	}
	if (flat && flat->count) {
		struct veil_mesh_env_block *b = &m->env[m->env_count++];
		b->service = NULL;
		b->pos = POS(first_flat);
		manifest_env_list(c, flat, "env", &b->vars, &b->count);
	}
}

static void parse_services(struct yctx *c, const struct ynode *seq, struct veil_mesh *m)
{
	static const char *const keys[] = {"name", "image", "image_secrets", NULL};
	m->services = yarena_alloc(c->arena, (seq->count + 1) * sizeof(*m->services));
	if (!m->services)
		return;
	for (size_t i = 0; i < seq->count; i++) {
		const struct ynode *e = seq->items[i];
		if (yexpect(c, e, YT_MAP, "a services entry"))
			continue;
		ycheck_keys(c, e, keys, "a services entry");
		struct veil_mesh_service *s = &m->services[m->service_count];
		s->pos = POS(e);
		s->name = yget_str(c, e, "name", 1, "services entry");
		s->image = yget_str(c, e, "image", 1, "services entry");
		s->image_secrets = yget_strlist(c, e, "image_secrets", 0, &s->image_secrets_count,
						"services entry");
		if (!s->name)
			continue;
		if (!veil_valid_object_name(s->name)) {
			yerr(c, ymap_get(e, "name"),
			     "services entry: name '%s' must start with a letter or digit and "
			     "hold only letters, digits, '_', '.', '-'",
			     s->name);
			continue;
		}
		if (!strcmp(s->name, "global") || !strcmp(s->name, "helm")) {
			yerr(c, ymap_get(e, "name"),
			     "services entry: '%s' is reserved for env blocks", s->name);
			continue;
		}
		for (size_t k = 0; k < m->service_count; k++)
			if (!strcmp(m->services[k].name, s->name))
				yerr(c, ymap_get(e, "name"),
				     "duplicate service name '%s' (first at line %u)", s->name,
				     m->services[k].pos.line);
		m->service_count++;
	}
}

int veil_mesh_parse(const struct ydoc *doc, struct veil_mesh *m, struct veil_diags *d)
{
	static const char *const keys[] = {"apiVersion", "kind",     "cas", "policy",
					   "env",        "services", NULL};
	static const char *const pkeys[] = {"namespace", "tolerate", "ignore_advisories", NULL};
	struct yctx c = {.file = doc->file, .d = d, .arena = doc->arena};
	memset(m, 0, sizeof(*m));
	m->file = doc->file;
	if (veil_doc_kind(doc, d) != VEIL_DOC_MESH) {
		if (!d || d->count == 0)
			veil_diag(d, "%s: not a Meshfile (kind: mesh)", doc->file);
		return VEIL_EINVAL;
	}
	const struct ynode *root = doc->root;
	ycheck_keys(&c, root, keys, "the Meshfile");
	m->api_version = yget_str(&c, root, "apiVersion", 1, "top level");
	const struct ynode *cas = yget_coll(&c, root, "cas", YT_SEQ, 0, "top level");
	if (cas)
		parse_cas(&c, cas, m);
	const struct ynode *pol = yget_coll(&c, root, "policy", YT_MAP, 1, "top level");
	if (pol) {
		ycheck_keys(&c, pol, pkeys, "policy");
		m->namespace_ = yget_str(&c, pol, "namespace", 1, "policy");
		m->namespace_pos = POS(ymap_get(pol, "namespace"));
		if (m->namespace_ && !veil_valid_object_name(m->namespace_))
			yerr(&c, ymap_get(pol, "namespace"),
			     "policy: namespace '%s' must start with a letter or digit and hold "
			     "only letters, digits, '_', '.', '-' (at most 128)",
			     m->namespace_);
		m->tolerate = yget_strlist(&c, pol, "tolerate", 1, &m->tolerate_count, "policy");
		for (size_t i = 0; i < m->tolerate_count; i++)
			if (!in_list(tolerations, m->tolerate[i]))
				yerr(&c, ymap_get(pol, "tolerate"),
				     "policy: unknown tolerate value '%s' (known: debug-mode, "
				     "outdated-tcb, software-hardening-needed, "
				     "insecure-configuration, hyperthreading, insecure-igpu, "
				     "aepic-leak, insecure-unpinned-files, "
				     "insecure-unmeasured-program)",
				     m->tolerate[i]);
		m->ignore_advisories = yget_strlist(&c, pol, "ignore_advisories", 1,
						    &m->ignore_advisories_count, "policy");
	}
	const struct ynode *env = yget_coll(&c, root, "env", YT_SEQ, 0, "top level");
	if (env)
		parse_env(&c, env, m);
	const struct ynode *svcs = yget_coll(&c, root, "services", YT_SEQ, 1, "top level");
	if (svcs)
		parse_services(&c, svcs, m);
	if (svcs && m->service_count == 0 && !c.errors)
		yerr(&c, svcs, "services: the mesh needs at least one service");
	/* The flat list and the "global" and "helm" blocks are one shared scope. */
	for (size_t i = 0; i < m->env_count; i++) {
		const struct veil_mesh_env_block *b = &m->env[i];
		int shared =
		    !b->service || !strcmp(b->service, "global") || !strcmp(b->service, "helm");
		for (size_t k = 0; k < b->count; k++) {
			const struct veil_env_var *v = &b->vars[k];
			if (!v->value) {
				veil_diag_at(d, c.file, v->pos.line, v->pos.col,
					     "env: '%s' needs a value", v->name),
				    c.errors++;
				continue;
			}
			for (size_t j = 0; shared && j < i; j++) {
				const struct veil_mesh_env_block *o = &m->env[j];
				if (o->service && strcmp(o->service, "global") &&
				    strcmp(o->service, "helm"))
					continue;
				for (size_t q = 0; q < o->count; q++) {
					if (strcmp(o->vars[q].name, v->name))
						continue;
					/* report the later one, pointing back */
					const struct veil_env_var *later = v,
								  *earlier = &o->vars[q];
					if (later->pos.line < earlier->pos.line)
						later = &o->vars[q], earlier = v;
					veil_diag_at(
					    d, c.file, later->pos.line, later->pos.col,
					    "env: '%s' is already set at line %u (the env "
					    "list and the 'global' and 'helm' blocks share "
					    "one scope)",
					    v->name, earlier->pos.line),
					    c.errors++;
				}
			}
		}
	}
	for (size_t i = 0; i < m->env_count; i++) {
		const char *s = m->env[i].service;
		if (!s || !strcmp(s, "global") || !strcmp(s, "helm"))
			continue;
		int found = 0;
		for (size_t k = 0; k < m->service_count; k++)
			found |= !strcmp(m->services[k].name, s);
		if (!found)
			veil_diag_at(d, c.file, m->env[i].pos.line, m->env[i].pos.col,
				     "env block names service '%s', which is not in services", s),
			    c.errors++;
	}
	return c.errors ? VEIL_EINVAL : 0;
}

int veil_mesh_uploads(const struct veil_mesh *mesh)
{
	const struct veil_mesh_cas *mc = veil_mesh_policy_cas(mesh);
	return !mc || !mc->mode || strcmp(mc->mode, "NoUpload");
}

const struct veil_mesh_cas *veil_mesh_policy_cas(const struct veil_mesh *mesh)
{
	for (size_t i = 0; i < mesh->cas_count; i++)
		for (size_t k = 0; k < mesh->cas[i].alias_count; k++)
			if (!strcmp(mesh->cas[i].alias[k], "security"))
				return &mesh->cas[i];
	return mesh->cas_count ? &mesh->cas[0] : NULL;
}
