/* Policy YAML -> struct veil_policy, with the checks the CAS relies on. */
#include <ctype.h>
#include <string.h>

#include <stdio.h>
#include <stdlib.h>

#include "veil/image.h"
#include "veil/policy.h"
#include "veil/codecrypt.h"
#include "veil/policy_model.h"

const struct ylimits veil_policy_limits = {
    .max_doc_size = 4u << 20,
    .max_depth = 16,
    .max_str = 1u << 20,
    .max_nodes = 200000,
    .max_items = 4096,
};

int veil_valid_env_name(const char *s)
{
	if (!s || !(isalpha((unsigned char)*s) || *s == '_') || strlen(s) > 256)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

int veil_valid_object_name(const char *s)
{
	if (!s || !isalnum((unsigned char)*s) || strlen(s) > 128)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return 0;
	return 1;
}

int veil_valid_namespace(const char *s)
{
	if (!s || !*s || strlen(s) > 255)
		return 0;
	char seg[256];
	int levels = 0;
	for (const char *p = s;; p++) {
		size_t n = strcspn(p, "/");
		if (n == 0 || ++levels > 8)
			return 0;
		memcpy(seg, p, n);
		seg[n] = '\0';
		if (!veil_valid_object_name(seg) || !strcmp(seg, "..") || seg[0] == '.')
			return 0;
		p += n;
		if (!*p)
			return 1;
	}
}

static int is_hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s) && !(*s >= 'a' && *s <= 'f'))
			return 0;
	return 1;
}

/* SCONE writes its session language's version as "0.3" or with a patch
 * level, "0.3.10"; veil's policy is that language. */
static int version_of_0_3_family(const char *v)
{
	if (strncmp(v, "0.3", 3))
		return 0;
	if (!v[3])
		return 1;
	if (v[3] != '.' || !v[4] || strlen(v + 4) > 9)
		return 0;
	for (const char *p = v + 4; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	return 1;
}

static void parse_acl(struct yctx *c, const struct ynode *ap, const char *key, char ***out,
		      size_t *count)
{
	*out = yget_strlist(c, ap, key, 0, count, "access_policy");
	if (!ymap_get(ap, key)) {
		/* default: the creator only */
		static char *creator[] = {"CREATOR"};
		*out = creator;
		*count = 1;
		return;
	}
	for (size_t i = 0; i < *count; i++) {
		const char *e = (*out)[i];
		if (strcmp(e, "CREATOR") && strcmp(e, "ANY") && strcmp(e, "NONE") && !is_hex64(e))
			yerr(c, ymap_get(ap, key),
			     "access_policy.%s: '%s' must be CREATOR, ANY, NONE or a 64-hex-digit "
			     "client key hash",
			     key, e);
		if (!strcmp(e, "NONE") && *count > 1)
			yerr(c, ymap_get(ap, key), "access_policy.%s: NONE cannot be combined",
			     key);
	}
}

/* A key that does not fit the secret's kind, by the table the CAS's
 * generator uses (veil_secret_keys_misfit). */
struct misfit_at {
	struct yctx *c;
	const struct ynode *entry;
	const char *kind;
};

static void report_misfit(const char *key, int needed, void *arg)
{
	struct misfit_at *m = arg;
	if (needed)
		yerr(m->c, m->entry, "secrets: kind '%s' needs '%s'", m->kind, key);
	else
		yerr(m->c, ymap_get(m->entry, key), "secrets: '%s' does not apply to kind '%s'",
		     key, m->kind);
}

static void parse_secret_def(struct yctx *c, const struct ynode *e, struct veil_secret *s)
{
	static const char *const keys[] = {
	    "name", "kind",      "size",      "value",   "private_key", "issuer", "common_name",
	    "dns",  "valid_for", "algorithm", "migrate", "export",      "import", NULL};
	const char *w = "secrets entry";
	memset(s, 0, sizeof(*s));
	s->pos = (struct veil_pos){e->line, e->col};
	ycheck_keys(c, e, keys, w);
	s->name = yget_str(c, e, "name", 1, w);
	if (s->name && !veil_valid_secret_name(s->name))
		yerr(c, ymap_get(e, "name"), "secrets: '%s' is not a valid secret name", s->name);
	else if (s->name && !strcmp(s->name, VEIL_NAMESPACE_CA_NAME))
		yerr(
		    c, ymap_get(e, "name"),
		    "secrets: the name '%s' is reserved for the namespace CA" VEIL_NAMESPACE_CA_WHY,
		    s->name);
	const struct ynode *imp = yget_coll(c, e, "import", YT_MAP, 0, w);
	if (imp) {
		static const char *const ikeys[] = {"namespace", "secret", NULL};
		ycheck_keys(c, imp, ikeys, "secrets import");
		s->import_namespace = yget_str(c, imp, "namespace", 1, "secrets import");
		s->import_secret = yget_str(c, imp, "secret", 0, "secrets import");
		if (!s->import_secret)
			s->import_secret = s->name;
		s->kind = "import";
		return;
	}
	s->kind = yget_str(c, e, "kind", 1, w);
	const struct veil_secret_kind_info *kind = veil_secret_kind_find(s->kind);
	if (s->kind && !kind)
		yerr(c, ymap_get(e, "kind"), "secrets: unknown kind '%s'", s->kind);
	unsigned long long size;
	if (yget_uint(c, e, "size", VEIL_SECRET_SIZE_MAX, &size, w) == 1) {
		s->size = size;
		s->has_size = 1;
		if (size == 0)
			yerr(c, ymap_get(e, "size"), "secrets: size must be at least 1");
	}
	s->value = yget_str(c, e, "value", 0, w);
	if (s->value && s->has_size)
		yerr(c, ymap_get(e, "value"), "secrets: give either 'size' or 'value', not both");
	size_t start, len;
	if (s->value && kind && kind->kind == VEIL_SECRET_BINARY &&
	    veil_binary_value_span(s->value, &start, &len))
		yerr(c, ymap_get(e, "value"), "secrets: value must be " VEIL_BINARY_VALUE_FORM);
	s->private_key = yget_str(c, e, "private_key", 0, w);
	s->issuer = yget_str(c, e, "issuer", 0, w);
	s->common_name = yget_str(c, e, "common_name", 0, w);
	if (s->common_name && !veil_secret_common_name_valid(s->common_name))
		yerr(c, ymap_get(e, "common_name"),
		     "secrets: common_name must be " VEIL_SECRET_COMMON_NAME_FORM);
	s->valid_for = yget_str(c, e, "valid_for", 0, w);
	long long seconds;
	if (s->valid_for && veil_valid_for_parse(s->valid_for, &seconds))
		yerr(c, ymap_get(e, "valid_for"),
		     "secrets: valid_for '%s' is not " VEIL_VALID_FOR_FORMS, s->valid_for);
	s->algorithm = yget_str(c, e, "algorithm", 0, w);
	if (s->algorithm && !veil_secret_algorithm_valid(s->algorithm))
		yerr(c, ymap_get(e, "algorithm"),
		     "secrets: unknown algorithm '%s' (" VEIL_SECRET_ALGORITHMS ")", s->algorithm);
	char why[512];
	if (kind && kind->kind == VEIL_SECRET_PRIVATE_KEY && s->value &&
	    veil_secret_key_value_check(
		s->value, veil_secret_algorithm_valid(s->algorithm) ? s->algorithm : NULL, why,
		sizeof(why)))
		yerr(c, ymap_get(e, "value"), "secrets: %s", why);
	s->dns = yget_strlist(c, e, "dns", 0, &s->dns_count, w);
	for (size_t i = 0; i < s->dns_count; i++)
		if (!veil_secret_dns_entry_valid(s->dns[i]))
			yerr(c, ymap_get(e, "dns"),
			     "secrets: dns entry #%zu is " VEIL_SECRET_DNS_FORM, i + 1);
	yget_bool(c, e, "migrate", &s->migrate, w);
	struct misfit_at m = {c, e, s->kind};
	veil_secret_keys_misfit(s, report_misfit, &m);
	const struct ynode *ex = yget_coll(c, e, "export", YT_SEQ, 0, w);
	if (ex) {
		size_t cap = (ex->count + 1) * sizeof(char *);
		s->export_to = yarena_alloc(c->arena, cap);
		s->export_owner = yarena_alloc(c->arena, cap);
		s->export_session_hash = yarena_alloc(c->arena, cap);
		for (size_t i = 0;
		     s->export_to && s->export_owner && s->export_session_hash && i < ex->count;
		     i++) {
			const struct ynode *x = ex->items[i];
			if (yexpect(c, x, YT_MAP, "an export entry"))
				continue;
			static const char *const xkeys[] = {"namespace", "owner", "session_hash",
							    NULL};
			ycheck_keys(c, x, xkeys, "an export entry");
			const char *ns = yget_str(c, x, "namespace", 1, "export entry");
			const char *owner = yget_str(c, x, "owner", 0, "export entry");
			const char *sh = yget_str(c, x, "session_hash", 0, "export entry");
			if (owner && !is_hex64(owner))
				yerr(c, ymap_get(x, "owner"),
				     "secrets: export owner '%s' must be a 64-hex-digit client key "
				     "hash",
				     owner);
			if (sh && !is_hex64(sh))
				yerr(c, ymap_get(x, "session_hash"),
				     "secrets: export session_hash '%s' must be a 64-hex-digit "
				     "policy hash",
				     sh);
			/* a bare name is parsed (a policy stored before names had to be
			 * bound still opens) but grants nothing: veil_policy_check_new
			 * refuses it in an upload, the CAS ignores it in a stored one */
			if (ns) {
				s->export_to[s->export_count] = (char *)ns;
				s->export_owner[s->export_count] = (char *)owner;
				s->export_session_hash[s->export_count++] = (char *)sh;
			}
		}
	}
}

/* private_key and issuer name definitions that can serve, without a cycle:
 * what the CAS checks before it generates anything (veil_secret_ref_resolve,
 * veil_secret_order). */
static void check_secret_refs(struct yctx *c, const struct veil_policy *p)
{
	char why[2048];
	int bad = 0;
	for (size_t i = 0; i < p->secret_count; i++) {
		const struct veil_secret *s = &p->secrets[i];
		if (s->import_namespace || !veil_secret_kind_find(s->kind))
			continue;
		for (int issuer = 0; issuer < 2; issuer++) {
			size_t t;
			if (!veil_secret_ref_resolve(p->secrets, p->secret_count, i, issuer, &t,
						     why, sizeof(why)))
				continue;
			veil_diag_at(c->d, c->file, s->pos.line, s->pos.col, "secrets: '%s': %s",
				     s->name, why);
			c->errors++;
			bad = 1;
		}
	}
	if (bad || !p->secret_count)
		return;
	size_t *order = calloc(p->secret_count, sizeof(*order)), n = 0;
	int rc = order ? veil_secret_order(p->secrets, p->secret_count, order, &n, why, sizeof(why))
		       : VEIL_ENOMEM;
	if (rc) {
		const struct veil_secret *s = &p->secrets[0];
		veil_diag_at(c->d, c->file, s->pos.line, s->pos.col, "secrets: %s",
			     rc == VEIL_EINVAL ? why : "out of memory");
		c->errors++;
	}
	free(order);
}

struct ph_ctx {
	struct yctx *c;
	const struct veil_policy *p;
	const struct ynode *at;
	const char *what;
};

static int ph_known(const struct veil_placeholder *ph, void *arg)
{
	struct ph_ctx *x = arg;
	char why[512];
	for (size_t i = 0; i < x->p->secret_count; i++) {
		const struct veil_secret *s = &x->p->secrets[i];
		if (strcmp(s->name, ph->name))
			continue;
		/* what the CAS could not render at attestation */
		if (!s->import_namespace && veil_placeholder_fits(ph, s->kind, why, sizeof(why)))
			yerr(x->c, x->at, "%s: %s", x->what, why);
		return 0;
	}
	yerr(x->c, x->at, "%s refers to secret '%s', which the policy does not declare", x->what,
	     ph->name);
	return 0;
}

static void check_ph(struct yctx *c, const struct veil_policy *p, const struct ynode *at,
		     const char *value, const char *what)
{
	struct ph_ctx x = {c, p, at, what};
	const char *why = NULL;
	if (veil_placeholders(value, ph_known, &x, &why) == VEIL_EINVAL)
		yerr(c, at, "%s: %s", what, why);
}

/* encryption: {key_id: HEX, files: [ABSOLUTE PATH under pwd, ...]}: what
 * veil-run decrypts with the CAS's code key after attestation. */
static void parse_encryption(struct yctx *c, const struct ynode *e, struct veil_policy_service *s)
{
	static const char *const keys[] = {"key_id", "files", NULL};
	const char *w = "services: encryption";
	const struct ynode *en = yget_coll(c, e, "encryption", YT_MAP, 0, "services entry");
	if (!en)
		return;
	ycheck_keys(c, en, keys, w);
	s->code_key_id = yget_str(c, en, "key_id", 1, w);
	if (s->code_key_id && !veil_code_key_id_valid(s->code_key_id))
		yerr(c, ymap_get(en, "key_id"),
		     "services: encryption key_id must be %d lower-case hex digits (from 'veil "
		     "apply -f service.yaml')",
		     VEIL_CODE_KEY_ID_HEX);
	s->encrypted = yget_strlist(c, en, "files", 1, &s->encrypted_count, w);
	if (s->encrypted && !s->encrypted_count)
		yerr(c, ymap_get(en, "files"), "services: encryption files must not be empty");
	const char *pwd = s->pwd ? s->pwd : "/";
	size_t pl = strcmp(pwd, "/") ? strlen(pwd) : 0;
	for (size_t i = 0; i < s->encrypted_count; i++) {
		const char *f = s->encrypted[i];
		if (f[0] != '/' || strncmp(f, pwd, pl) || f[pl] != '/' || strstr(f, "/../") ||
		    strstr(f, "/./") || strstr(f, "//"))
			yerr(c, ymap_get(en, "files"),
			     "services: encrypted file '%s' must be an absolute path under pwd %s",
			     f, pwd);
		for (size_t k = 0; k < i; k++)
			if (!strcmp(s->encrypted[k], f))
				yerr(c, ymap_get(en, "files"),
				     "services: encrypted file '%s' is listed twice", f);
	}
}

static int is_hex_n(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s) && !(*s >= 'a' && *s <= 'f'))
			return 0;
	return 1;
}

/* a hex field of n digits in block b, or NULL (an error when malformed or,
 * with required, absent) */
static const char *hex_field(struct yctx *c, const struct ynode *b, const char *key, size_t n,
			     int required, const char *what)
{
	const char *v = yget_str(c, b, key, required, what);
	if (v && !is_hex_n(v, n)) {
		yerr(c, ymap_get(b, key), "%s: %s must be %zu lower-case hex digits", what, key, n);
		return NULL;
	}
	return v;
}

/* What hardware evidence must show (issue 11; docs/manifests.md):
 *   signer: {mrsigner: 64 hex, isvprodid: N, isvsvn_min: N}     (SGX)
 *   tdx: {mrtd: 96 hex, rtmr0..rtmr3, mrconfigid, mrowner}     (TDX)
 *   snp: {measurement: 96 hex, host_data: 64 hex, guest_svn_min} (SEV-SNP) */
static void parse_hardware(struct yctx *c, const struct ynode *e, struct veil_policy_service *s)
{
	const struct ynode *b = yget_coll(c, e, "signer", YT_MAP, 0, "services entry");
	unsigned long long v = 0;
	if (b) {
		static const char *const k[] = {"mrsigner", "isvprodid", "isvsvn_min", NULL};
		ycheck_keys(c, b, k, "services: signer");
		s->has_signer = 1;
		s->signer_mrsigner = hex_field(c, b, "mrsigner", 64, 1, "services: signer");
		if (yget_uint(c, b, "isvprodid", 65535, &v, "services: signer") == 1)
			s->signer_isvprodid = (unsigned)v, s->has_isvprodid = 1;
		v = 0;
		yget_uint(c, b, "isvsvn_min", 65535, &v, "services: signer");
		s->signer_isvsvn_min = (unsigned)v;
		/* one signing key signs many enclaves */
		if (!s->has_isvprodid && !ymap_get(e, "mrenclaves"))
			yerr(c, b,
			     "services: a signer block without mrenclaves needs isvprodid: "
			     "otherwise every enclave that key ever signed is accepted");
	}
	if ((b = yget_coll(c, e, "tdx", YT_MAP, 0, "services entry"))) {
		static const char *const k[] = {"mrtd",  "rtmr0",      "rtmr1",   "rtmr2",
						"rtmr3", "mrconfigid", "mrowner", NULL};
		ycheck_keys(c, b, k, "services: tdx");
		s->tdx_mrtd = hex_field(c, b, "mrtd", 96, 1, "services: tdx");
		for (int i = 0; i < 4; i++)
			s->tdx_rtmr[i] = hex_field(c, b, k[1 + i], 96, 0, "services: tdx");
		s->tdx_mrconfigid = hex_field(c, b, "mrconfigid", 96, 0, "services: tdx");
		s->tdx_mrowner = hex_field(c, b, "mrowner", 96, 0, "services: tdx");
		/* MRTD measures the TD's firmware, which every TD on it shares: the
		 * kernel, its command line and the workload are in the RTMRs */
		if (s->tdx_mrtd && !s->tdx_mrconfigid &&
		    (!s->tdx_rtmr[0] || !s->tdx_rtmr[1] || !s->tdx_rtmr[2]))
			yerr(c, b,
			     "services: tdx names mrtd without rtmr0, rtmr1 and rtmr2 (or "
			     "mrconfigid): MRTD measures only the firmware, which any TD on it "
			     "shares");
	}
	if ((b = yget_coll(c, e, "snp", YT_MAP, 0, "services entry"))) {
		static const char *const k[] = {"measurement", "host_data", "guest_svn_min",
						"vmpl",        "tcb_min",   NULL};
		ycheck_keys(c, b, k, "services: snp");
		s->snp_measurement = hex_field(c, b, "measurement", 96, 1, "services: snp");
		s->snp_host_data = hex_field(c, b, "host_data", 64, 0, "services: snp");
		v = 0;
		yget_uint(c, b, "guest_svn_min", 4294967295ull, &v, "services: snp");
		s->snp_guest_svn_min = (unsigned)v;
		v = 0;
		yget_uint(c, b, "vmpl", 3, &v, "services: snp");
		s->snp_vmpl = (unsigned)v;
		const struct ynode *t = yget_coll(c, b, "tcb_min", YT_MAP, 0, "services: snp");
		if (t) {
			static const char *const tk[] = {"bl_spl",        "tee_spl", "snp_spl",
							 "microcode_spl", "fmc_spl", NULL};
			unsigned *dst[] = {&s->snp_tcb_min_bl, &s->snp_tcb_min_tee,
					   &s->snp_tcb_min_snp, &s->snp_tcb_min_ucode,
					   &s->snp_tcb_min_fmc};
			ycheck_keys(c, t, tk, "services: snp.tcb_min");
			s->has_snp_tcb_min = 1;
			for (int i = 0; i < 5; i++) {
				v = 0;
				yget_uint(c, t, tk[i], 255, &v, "services: snp.tcb_min");
				*dst[i] = (unsigned)v;
			}
		}
	}
}

/* Encrypted code is decrypted for whatever program the policy in force
 * names, and its key is derived for the namespace's creator: a policy that
 * others may change would let them read the creator's code (any image under
 * any of the creator's key ids). So only the creator writes such a policy,
 * and only for a measured image. */
static void check_encryption(struct yctx *c, const struct veil_policy *p, const struct ynode *at,
			     const struct veil_policy_service *s)
{
	int creator_only = p->update_count == 1 &&
			   (!strcmp(p->update[0], "CREATOR") || !strcmp(p->update[0], "NONE"));
	if (!creator_only)
		yerr(c, at,
		     "services: '%s' has encrypted files, so access_policy.update must be "
		     "[CREATOR] or [NONE] (whoever may change the policy could have the code "
		     "decrypted for a program of theirs)",
		     s->name);
	if (!s->image_root)
		yerr(c, at,
		     "services: '%s' has encrypted files but no image_root: the code key is "
		     "given only to a runtime whose whole image is measured",
		     s->name);
}

static void parse_service(struct yctx *c, const struct ynode *e, struct veil_policy_service *s)
{
	static const char *const keys[] = {
	    "name",        "image_name", "mrenclaves", "file_set_root", "command",       "pwd",
	    "environment", "platforms",  "files",      "program",       "runtime_files", "user",
	    "group",       "image_root", "encryption", "signer",        "tdx",           "snp",
	    NULL};
	const char *w = "services entry";
	memset(s, 0, sizeof(*s)); /* the slot of a rejected entry is reused */
	ycheck_keys(c, e, keys, w);
	s->pos = (struct veil_pos){e->line, e->col};
	s->name = yget_str(c, e, "name", 1, w);
	if (s->name && !veil_valid_object_name(s->name))
		yerr(c, ymap_get(e, "name"), "services: '%s' is not a valid service name", s->name);
	s->image_name = yget_str(c, e, "image_name", 0, w);
	const struct ynode *cmd = ymap_get(e, "command");
	if (cmd && cmd->type == YT_SEQ)
		yerr(c, cmd,
		     "services: 'command' must be one string, found a list" VEIL_COMMAND_FORM);
	else
		s->command = yget_str(c, e, "command", 1, w);
	if (s->command && strstr(s->command, "$$SCONE::"))
		yerr(c, ymap_get(e, "command"),
		     "services: 'command' holds a secret "
		     "placeholder" VEIL_COMMAND_PLACEHOLDER_REFUSED);
	s->pwd = yget_str(c, e, "pwd", 0, w);
	if (s->pwd && s->pwd[0] != '/')
		yerr(c, ymap_get(e, "pwd"), "services: pwd '%s' must be absolute", s->pwd);
	static const char *const ids[] = {"user", "group"};
	unsigned *id[] = {&s->user, &s->group};
	for (size_t i = 0; i < 2; i++) {
		unsigned long long v = 0;
		if (yget_uint(c, e, ids[i], 4294967294ull, &v, w) == 1 && !v)
			yerr(c, ymap_get(e, ids[i]),
			     "services: %s 0 is root's: name a dedicated one or leave it out",
			     ids[i]);
		*id[i] = (unsigned)v;
	}
	if (s->group && !s->user)
		yerr(c, ymap_get(e, "group"), "services: 'group' needs 'user'");
	s->file_set_root = yget_str(c, e, "file_set_root", 0, w);
	if (s->file_set_root && !is_hex64(s->file_set_root))
		yerr(c, ymap_get(e, "file_set_root"),
		     "services: file_set_root must be 64 lower-case hex digits");
	s->image_root = yget_str(c, e, "image_root", 0, w);
	if (s->image_root && !is_hex64(s->image_root))
		yerr(c, ymap_get(e, "image_root"),
		     "services: image_root must be 64 lower-case hex digits");
	s->mrenclaves = yget_strlist(c, e, "mrenclaves", 0, &s->mrenclave_count, w);
	for (size_t i = 0; i < s->mrenclave_count; i++)
		if (!is_hex64(s->mrenclaves[i]))
			yerr(c, ymap_get(e, "mrenclaves"),
			     "services: mrenclave '%s' must be 64 lower-case hex digits",
			     s->mrenclaves[i]);
	s->platforms = yget_strlist(c, e, "platforms", 0, &s->platform_count, w);
	for (size_t i = 0; i < s->platform_count; i++)
		if (!is_hex64(s->platforms[i]))
			yerr(c, ymap_get(e, "platforms"),
			     "services: platform '%s' must be a 64-hex-digit key hash",
			     s->platforms[i]);
	const struct ynode *files = yget_coll(c, e, "files", YT_SEQ, 0, w);
	if (files && (s->files = yarena_alloc(c->arena, (files->count + 1) * sizeof(*s->files)))) {
		static const char *const fkeys[] = {"path", "mode", "sha256", NULL};
		struct veil_file_entry *fe = calloc(files->count + 1, sizeof(*fe));
		for (size_t i = 0; fe && i < files->count; i++) {
			const struct ynode *f = files->items[i];
			if (yexpect(c, f, YT_MAP, "a files entry"))
				continue;
			ycheck_keys(c, f, fkeys, "a files entry");
			const char *path = yget_str(c, f, "path", 1, "files entry");
			const char *mode = yget_str(c, f, "mode", 1, "files entry");
			const char *h = yget_str(c, f, "sha256", 1, "files entry");
			if (!path || !mode || !is_hex64(h) ||
			    (strcmp(mode, "0644") && strcmp(mode, "0755"))) {
				yerr(
				    c, f,
				    "services: a files entry needs a path, mode 0644 or 0755 and a "
				    "64-hex-digit sha256");
				continue;
			}
			struct veil_policy_file *pf = &s->files[s->file_count];
			pf->path = path;
			pf->sha256 = h;
			pf->mode = !strcmp(mode, "0755") ? 0755 : 0644;
			fe[s->file_count].path = (char *)path;
			fe[s->file_count].mode = pf->mode;
			VEIL_UNCHECKED(veil_unhex(h, fe[s->file_count].sha256,
						  VEIL_SHA256_SIZE)); /* checked above */
			s->file_count++;
		}
		/* the list must be the one the root was computed over */
		char root[2 * VEIL_SHA256_SIZE + 1];
		if (fe && !c->errors && s->file_set_root &&
		    (veil_fileset_root(fe, s->file_count, root) || strcmp(root, s->file_set_root)))
			yerr(c, files, "services: the files listed do not give the file_set_root");
		free(fe);
	}
	parse_encryption(c, e, s);
	parse_hardware(c, e, s);
	s->program = yget_str(c, e, "program", 0, w);
	if (s->program && s->program[0] != '/')
		yerr(c, ymap_get(e, "program"), "services: program '%s' must be absolute",
		     s->program);
	const struct ynode *rfiles = yget_coll(c, e, "runtime_files", YT_SEQ, 0, w);
	if (rfiles && !s->program)
		yerr(c, rfiles, "services: runtime_files without a program");
	if (rfiles &&
	    (s->runtime_files = yarena_alloc(c->arena, (rfiles->count + 1) * sizeof(*s->files)))) {
		static const char *const fkeys[] = {"path", "mode", "sha256", NULL};
		for (size_t i = 0; i < rfiles->count; i++) {
			const struct ynode *f = rfiles->items[i];
			if (yexpect(c, f, YT_MAP, "a runtime_files entry"))
				continue;
			ycheck_keys(c, f, fkeys, "a runtime_files entry");
			const char *path = yget_str(c, f, "path", 1, "runtime_files entry");
			const char *mode = yget_str(c, f, "mode", 1, "runtime_files entry");
			const char *h = yget_str(c, f, "sha256", 1, "runtime_files entry");
			if (!path || path[0] != '/' || !mode || !is_hex64(h) ||
			    (strcmp(mode, "0644") && strcmp(mode, "0755") &&
			     strcmp(mode, "0000"))) {
				yerr(c, f,
				     "services: a runtime_files entry needs an absolute path, mode "
				     "0644, 0755 or 0000 (absent) and a 64-hex-digit sha256");
				continue;
			}
			struct veil_policy_file *pf = &s->runtime_files[s->runtime_file_count++];
			pf->path = path;
			pf->sha256 = h;
			pf->mode = !strcmp(mode, "0755") ? 0755 : !strcmp(mode, "0644") ? 0644 : 0;
		}
	}
	const struct ynode *env = yget_coll(c, e, "environment", YT_MAP, 0, w);
	if (!env)
		return;
	s->env = yarena_alloc(c->arena, (env->count + 1) * sizeof(*s->env));
	for (size_t i = 0; s->env && i < env->count; i++) {
		const struct ynode *k = env->keys[i], *v = env->items[i];
		if (!veil_valid_env_name(k->str)) {
			yerr(c, k, "environment: '%s' is not a valid variable name", k->str);
			continue;
		}
		if (v->type != YT_SCALAR) {
			yerr(c, v, "environment: value of '%s' must be a string", k->str);
			continue;
		}
		struct veil_env_var *x = &s->env[s->env_count++];
		x->name = k->str;
		x->value = ynode_is_null(v) ? "" : v->str;
		x->pos = (struct veil_pos){k->line, k->col};
		x->vpos = (struct veil_pos){v->line, v->col};
	}
}

int veil_policy_parse(const struct ydoc *doc, struct veil_policy *p, struct veil_diags *d)
{
	static const char *const keys[] = {"name",          "version",  "predecessor",
					   "access_policy", "services", "secrets",
					   "images",        "security", NULL};
	struct yctx c = {.file = doc->file, .d = d, .arena = doc->arena};
	const struct ynode *root = doc->root;
	memset(p, 0, sizeof(*p));
	if (yexpect(&c, root, YT_MAP, "a policy"))
		return VEIL_EINVAL;
	ycheck_keys(&c, root, keys, "the policy");
	p->name = yget_str(&c, root, "name", 1, "policy");
	if (p->name && !veil_valid_namespace(p->name))
		yerr(&c, ymap_get(root, "name"),
		     "policy: name '%s' must be names of letters, digits, '_', '.', '-' (each "
		     "starting with a letter or digit) joined by '/', at most 8 levels",
		     p->name);
	p->version = yget_str(&c, root, "version", 0, "policy");
	if (p->version && !version_of_0_3_family(p->version))
		yerr(&c, ymap_get(root, "version"),
		     "policy: unsupported version '%s' (the 0.3 family: 0.3 or 0.3.N)", p->version);
	p->predecessor = yget_str(&c, root, "predecessor", 0, "policy");
	if (p->predecessor && !is_hex64(p->predecessor))
		yerr(&c, ymap_get(root, "predecessor"),
		     "policy: predecessor must be the 64-hex-digit hash of the policy it replaces");
	const struct ynode *ap = yget_coll(&c, root, "access_policy", YT_MAP, 0, "policy");
	static const char *const akeys[] = {"read", "update", "create_sessions", NULL};
	if (ap)
		ycheck_keys(&c, ap, akeys, "access_policy");
	parse_acl(&c, ap, "read", &p->read, &p->read_count);
	parse_acl(&c, ap, "update", &p->update, &p->update_count);
	parse_acl(&c, ap, "create_sessions", &p->create_sessions, &p->create_sessions_count);

	const struct ynode *sec = yget_coll(&c, root, "secrets", YT_SEQ, 0, "policy");
	if (sec) {
		unsigned errors_before = c.errors;
		p->secrets = yarena_alloc(c.arena, (sec->count + 1) * sizeof(*p->secrets));
		for (size_t i = 0; p->secrets && i < sec->count; i++) {
			if (yexpect(&c, sec->items[i], YT_MAP, "a secrets entry"))
				continue;
			struct veil_secret *s = &p->secrets[p->secret_count];
			parse_secret_def(&c, sec->items[i], s);
			if (!s->name)
				continue;
			for (size_t k = 0; k < p->secret_count; k++)
				if (!strcmp(p->secrets[k].name, s->name))
					yerr(&c, sec->items[i], "secrets: '%s' defined twice",
					     s->name);
			p->secret_count++;
		}
		/* as the CAS: references once every definition is well formed */
		if (c.errors == errors_before)
			check_secret_refs(&c, p);
	}
	const struct ynode *svcs = yget_coll(&c, root, "services", YT_SEQ, 0, "policy");
	if (svcs) {
		p->services = yarena_alloc(c.arena, (svcs->count + 1) * sizeof(*p->services));
		for (size_t i = 0; p->services && i < svcs->count; i++) {
			if (yexpect(&c, svcs->items[i], YT_MAP, "a services entry"))
				continue;
			struct veil_policy_service *s = &p->services[p->service_count];
			parse_service(&c, svcs->items[i], s);
			if (!s->name)
				continue;
			for (size_t k = 0; k < p->service_count; k++)
				if (!strcmp(p->services[k].name, s->name))
					yerr(&c, svcs->items[i], "services: '%s' defined twice",
					     s->name);
			for (size_t k = 0; k < s->env_count; k++)
				check_ph(&c, p, svcs->items[i], s->env[k].value, s->env[k].name);
			if (s->code_key_id)
				check_encryption(&c, p, ymap_get(svcs->items[i], "encryption"), s);
			p->service_count++;
		}
	}
	const struct ynode *imgs = yget_coll(&c, root, "images", YT_SEQ, 0, "policy");
	if (imgs) {
		p->images = yarena_alloc(c.arena, (imgs->count + 1) * sizeof(*p->images));
		static const char *const ikeys[] = {"name", "injection_files", NULL};
		static const char *const fkeys[] = {"path", "content", NULL};
		for (size_t i = 0; p->images && i < imgs->count; i++) {
			const struct ynode *e = imgs->items[i];
			if (yexpect(&c, e, YT_MAP, "an images entry"))
				continue;
			ycheck_keys(&c, e, ikeys, "an images entry");
			struct veil_policy_image *im = &p->images[p->image_count++];
			im->name = yget_str(&c, e, "name", 1, "images entry");
			const struct ynode *f =
			    yget_coll(&c, e, "injection_files", YT_SEQ, 0, "images entry");
			if (!f)
				continue;
			im->inject = yarena_alloc(c.arena, (f->count + 1) * sizeof(*im->inject));
			for (size_t k = 0; im->inject && k < f->count; k++) {
				const struct ynode *x = f->items[k];
				if (yexpect(&c, x, YT_MAP, "an injection_files entry"))
					continue;
				ycheck_keys(&c, x, fkeys, "an injection_files entry");
				struct veil_injection_file *inj = &im->inject[im->inject_count++];
				inj->path = yget_str(&c, x, "path", 1, "injection_files entry");
				inj->content =
				    yget_str(&c, x, "content", 0, "injection_files entry");
				if (!inj->content)
					inj->content = "";
				if (inj->path && inj->path[0] != '/')
					yerr(&c, x, "injection_files: path '%s' must be absolute",
					     inj->path);
				check_ph(&c, p, x, inj->content, "an injection file");
			}
		}
	}
	const struct ynode *security = yget_coll(&c, root, "security", YT_MAP, 0, "policy");
	if (security) {
		static const char *const skeys[] = {"attestation", NULL};
		static const char *const tkeys[] = {"tolerate", "ignore_advisories", NULL};
		ycheck_keys(&c, security, skeys, "security");
		const struct ynode *att =
		    yget_coll(&c, security, "attestation", YT_MAP, 0, "security");
		if (att) {
			ycheck_keys(&c, att, tkeys, "security.attestation");
			p->tolerate = yget_strlist(&c, att, "tolerate", 1, &p->tolerate_count,
						   "security.attestation");
			p->ignore_advisories =
			    yget_strlist(&c, att, "ignore_advisories", 1,
					 &p->ignore_advisories_count, "security.attestation");
		}
	}
	if (c.errors)
		return VEIL_EINVAL;
	struct veil_buf canon;
	veil_buf_init(&canon, 0);
	int rc = veil_policy_canonical(root, &canon, p->hash);
	veil_buf_free(&canon);
	return rc;
}

int veil_policy_check_new(const struct veil_policy *p, struct veil_diags *d)
{
	int rc = 0;
	for (size_t i = 0; i < p->secret_count; i++) {
		const struct veil_secret *s = &p->secrets[i];
		for (size_t k = 0; k < s->export_count; k++)
			if (!s->export_owner[k] && !s->export_session_hash[k]) {
				veil_diag(
				    d,
				    "secrets: %s: export to %s needs the importer's identity: "
				    "'owner' (its owner's client key hash) and/or "
				    "'session_hash' (its policy hash); consent by name alone "
				    "would go to whoever creates %s",
				    s->name, s->export_to[k], s->export_to[k]);
				rc = VEIL_EINVAL;
			}
	}
	return rc;
}

int veil_policy_allows(char *const *list, size_t count, const char *owner, const char *identity)
{
	if (!identity)
		return 0;
	for (size_t i = 0; i < count; i++) {
		if (!strcmp(list[i], "NONE"))
			return 0;
		if (!strcmp(list[i], "ANY"))
			return 1;
		if (!strcmp(list[i], "CREATOR") && owner && !strcmp(owner, identity))
			return 1;
		if (!strcmp(list[i], identity))
			return 1;
	}
	return 0;
}
