/* What veil-cas's key process does with a namespace's payload: the payload
 * frame, opening and parsing it, generating its secrets and rendering a
 * service's configuration. Only the key process calls these (keyproc.c);
 * the network process gets back the policy's YAML, a sealed blob or a
 * rendered configuration, never the secret set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "veil/codecrypt.h"
#include "veil/cursor.h"
#include "veil/secrets.h"

#include "cas.h"
#include "payload.h"
#include "render.h"

static int in_list(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return 1;
	return 0;
}

/* the frame itself is payload.c's */
int cas_payload_build(const char *yaml, size_t yaml_size, const struct veil_secret_set *set,
		      uint8_t **out, size_t *out_size)
{
	uint8_t *sec = NULL;
	size_t sec_size = 0;
	int rc = veil_secret_set_serialize(set, &sec, &sec_size);
	if (rc)
		return rc;
	rc = cas_payload_pack((const uint8_t *)yaml, yaml_size, sec, sec_size, out, out_size);
	veil_secure_free(sec, sec_size);
	return rc;
}

void cas_opened_free(struct cas_opened *o)
{
	if (o->have_doc)
		ydoc_free(&o->doc);
	veil_secret_set_free(&o->secrets);
	if (o->plain)
		veil_secure_free(o->plain, o->plain_size);
	memset(o, 0, sizeof(*o));
}

int cas_payload_open(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
		     size_t wrapped_size, const uint8_t *sealed, size_t sealed_size, bool parse,
		     struct cas_opened *o)
{
	memset(o, 0, sizeof(*o));
	int rc = veil_vault_open(v, ns, wrapped, wrapped_size, sealed, sealed_size, &o->plain,
				 &o->plain_size);
	if (rc)
		return rc;
	const uint8_t *y, *z;
	size_t z_size;
	if ((rc = cas_payload_frame(o->plain, o->plain_size, &y, &o->yaml_size, &z, &z_size)))
		return rc;
	o->yaml = (const char *)y;
	if (!parse)
		return 0;
	if ((rc = veil_secret_set_deserialize(z, z_size, &o->secrets)))
		return rc;
	if ((rc = ydoc_init(&o->doc, ns)))
		return rc;
	o->have_doc = 1;
	struct veil_diags d;
	veil_diags_init(&d);
	rc = ydoc_parse(&o->doc, o->yaml, o->yaml_size, &veil_policy_limits, &d);
	if (!rc)
		rc = veil_policy_parse(&o->doc, &o->policy, &d);
	veil_diags_free(&d);
	return rc;
}

static void diags_text(const struct veil_diags *d, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = 0;
	for (size_t i = 0; i < d->count && n + 1 < cap; i++) {
		int w = snprintf(out + n, cap - n, "%s%s", i ? "; " : "", d->msgs[i]);
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

int cas_payload_generate(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
			 size_t wrapped_size, const char *yaml, size_t yaml_size,
			 const uint8_t *prev, size_t prev_size, uint8_t **blob, size_t *blob_size,
			 char *why, size_t cap)
{
	struct cas_opened old;
	struct ydoc doc;
	struct veil_policy p;
	struct veil_secret_set set = {0};
	struct veil_diags d;
	uint8_t *payload = NULL;
	size_t payload_size = 0;
	int have_doc = 0, rc = 0;
	memset(&old, 0, sizeof(old));
	memset(&p, 0, sizeof(p));
	veil_diags_init(&d);
	why[0] = 0;
	if (prev)
		rc = cas_payload_open(v, ns, wrapped, wrapped_size, prev, prev_size, true, &old);
	if (rc) {
		snprintf(why, cap, "cannot open the stored policy");
		goto out;
	}
	if (!(rc = ydoc_init(&doc, ns))) {
		have_doc = 1;
		rc = ydoc_parse(&doc, yaml, yaml_size, &veil_policy_limits, &d);
	}
	if (!rc)
		rc = veil_policy_parse(&doc, &p, &d);
	if (!rc && strcmp(p.name, ns))
		rc = VEIL_EINVAL;
	if (rc) {
		snprintf(why, cap, "the policy to seal does not parse");
		rc = VEIL_EIO;
		goto out;
	}
	rc = veil_secrets_generate(p.secrets, p.secret_count, p.name, prev ? &old.secrets : NULL,
				   &set, &d);
	if (rc) {
		/* a refusal of the policy's definitions: the network process answers 400 */
		diags_text(&d, why, cap);
		rc = VEIL_EINVAL;
		goto out;
	}
	rc = cas_payload_build(yaml, yaml_size, &set, &payload, &payload_size);
	if (!rc)
		rc = veil_vault_seal(v, ns, wrapped, wrapped_size, payload, payload_size, blob,
				     blob_size);
	if (rc) {
		snprintf(why, cap, "cannot seal the policy");
		rc = VEIL_EIO;
	}
out:
	if (payload)
		veil_secure_free(payload, payload_size);
	veil_secret_set_free(&set);
	if (have_doc)
		ydoc_free(&doc);
	cas_opened_free(&old);
	veil_diags_free(&d);
	return rc;
}

/* Renders the service's environment and its image's injection files into
 * resp; 0 or a reason in d (never a value). */
static int render_config(const struct veil_policy *p, const struct veil_policy_service *svc,
			 const struct veil_secret_set *set, json_t *resp, struct veil_diags *d)
{
	json_t *env = json_object(), *files = json_array();
	json_object_set_new(resp, "environment", env);
	json_object_set_new(resp, "injection_files", files);
	json_object_set_new(resp, "command", json_string(svc->command));
	json_object_set_new(resp, "pwd", json_string(svc->pwd ? svc->pwd : "/"));
	if (svc->user) { /* veil-run runs the program as them */
		json_object_set_new(resp, "user", json_integer(svc->user));
		json_object_set_new(resp, "group",
				    json_integer(svc->group ? svc->group : svc->user));
	}
	/* veil-run starts from files it could not pin only with this consent */
	json_object_set_new(
	    resp, "unpinned_files_allowed",
	    json_boolean(in_list(p->tolerate, p->tolerate_count, "insecure-unpinned-files")));
	/* a test's image root elsewhere (VEIL_IMAGE_ROOT) only for debug policies */
	json_object_set_new(resp, "debug_mode",
			    json_boolean(in_list(p->tolerate, p->tolerate_count, "debug-mode")));
	/* and execs a program `veil apply` did not measure only with this one */
	json_object_set_new(
	    resp, "unmeasured_program_allowed",
	    json_boolean(in_list(p->tolerate, p->tolerate_count, "insecure-unmeasured-program")));
	if (!env || !files)
		return VEIL_ENOMEM;
	/* what veil-run verifies before it execs the program (issue 9, H1) */
	if (svc->program) {
		json_t *rf = json_array();
		json_object_set_new(resp, "program", json_string(svc->program));
		json_object_set_new(resp, "runtime_files", rf);
		for (size_t i = 0; rf && i < svc->runtime_file_count; i++) {
			const struct veil_policy_file *f = &svc->runtime_files[i];
			if (json_array_append_new(rf, json_pack("{s:s, s:i, s:s}", "path", f->path,
								"mode", (int)f->mode, "sha256",
								f->sha256)))
				return VEIL_ENOMEM;
		}
		if (!rf)
			return VEIL_ENOMEM;
	}
	for (size_t i = 0; i < svc->env_count; i++) {
		char *v = NULL;
		if (veil_secret_render(svc->env[i].value, set, &v, d))
			return VEIL_EINVAL;
		json_object_set_new(env, svc->env[i].name, json_string(v));
		veil_secure_strfree(v);
	}
	for (size_t i = 0; i < p->image_count; i++) {
		if (!svc->image_name || strcmp(p->images[i].name, svc->image_name))
			continue;
		for (size_t k = 0; k < p->images[i].inject_count; k++) {
			char *v = NULL;
			if (veil_secret_render(p->images[i].inject[k].content, set, &v, d))
				return VEIL_EINVAL;
			json_array_append_new(files,
					      json_pack("{s:s, s:s}", "path",
							p->images[i].inject[k].path, "content", v));
			veil_secure_strfree(v);
		}
	}
	return 0;
}

/* The code key of an encrypted image and the files to decrypt with it:
 * {"decrypt": {"key": HEX, "files": [PATH...]}}. The key is the one the
 * policy's creator got for the image build (code_key). */
static int add_code_key(struct veil_vault *v, const struct veil_policy_service *svc,
			const char *owner, json_t *resp, struct veil_diags *d)
{
	if (!svc->code_key_id)
		return 0;
	uint8_t key[VEIL_CODE_KEY_SIZE];
	char hex[2 * VEIL_CODE_KEY_SIZE + 1];
	if (!owner || veil_vault_code_key(v, svc->code_key_id, owner, key)) {
		veil_diag(d, "cannot derive the code key");
		return VEIL_EIO;
	}
	veil_hex(key, sizeof(key), hex);
	OPENSSL_cleanse(key, sizeof(key));
	json_t *files = json_array();
	json_t *dec = json_pack("{s:s, s:o}", "key", hex, "files", files);
	OPENSSL_cleanse(hex, sizeof(hex));
	int bad = !dec;
	for (size_t i = 0; !bad && i < svc->encrypted_count; i++)
		bad = json_array_append_new(files, json_string(svc->encrypted[i]));
	if (bad) {
		json_decref(dec);
		return VEIL_ENOMEM;
	}
	/* set_new takes dec, also when it fails */
	if (json_object_set_new(resp, "decrypt", dec))
		return VEIL_ENOMEM;
	return 0;
}

/* The render cache, per serving thread of the key process: a namespace's
 * opened, parsed payload by the SHA-256 of its wrapped key and sealed blob
 * (an update seals a new blob: another entry; a stale one is only ever
 * replaced). /v1/attest used to keep this in the network process; here the
 * secrets stay in the key process, in secure memory. Payloads rendered with
 * imports are not cached: the imported values join the set. */
#define RENDER_CACHE_SLOTS 16
struct render_cache_entry {
	uint8_t id[32];
	char ns[129];
	struct cas_opened o;
	int used;
};
static __thread struct render_cache_entry *render_cache;

static int sealed_id(const uint8_t *wrapped, size_t wrapped_size, const uint8_t *sealed,
		     size_t sealed_size, uint8_t id[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned n = 0;
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(c, wrapped, wrapped_size) &&
		 EVP_DigestUpdate(c, sealed, sealed_size) && EVP_DigestFinal_ex(c, id, &n) &&
		 n == 32;
	EVP_MD_CTX_free(c);
	return ok ? 0 : VEIL_EIO;
}

/* the cached opened payload (or NULL: open it for this request alone) */
static struct cas_opened *render_cached(struct veil_vault *v, const char *ns,
					const uint8_t *wrapped, size_t wrapped_size,
					const uint8_t *sealed, size_t sealed_size)
{
	uint8_t id[32];
	if (strlen(ns) >= sizeof(render_cache->ns) ||
	    sealed_id(wrapped, wrapped_size, sealed, sealed_size, id))
		return NULL;
	if (!render_cache && !(render_cache = calloc(RENDER_CACHE_SLOTS, sizeof(*render_cache))))
		return NULL;
	struct render_cache_entry *e = &render_cache[id[0] % RENDER_CACHE_SLOTS];
	/* not secret: the id is a SHA-256 of the wrapped key and sealed blob */
	if (e->used && !memcmp(e->id, id, sizeof(id)) && !strcmp(e->ns, ns))
		return &e->o;
	if (e->used)
		cas_opened_free(&e->o);
	memset(e, 0, sizeof(*e));
	if (cas_payload_open(v, ns, wrapped, wrapped_size, sealed, sealed_size, true, &e->o)) {
		cas_opened_free(&e->o);
		return NULL;
	}
	memcpy(e->id, id, sizeof(id));
	snprintf(e->ns, sizeof(e->ns), "%s", ns);
	e->used = 1;
	return &e->o;
}

int cas_payload_render(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
		       size_t wrapped_size, const uint8_t *sealed, size_t sealed_size,
		       const char *service, const char *owner, struct veil_cursor *imports,
		       char **body, char *why, size_t cap)
{
	struct cas_opened local, *op = NULL;
	struct veil_diags d;
	json_t *resp = NULL;
	int rc = 0;
	memset(&local, 0, sizeof(local));
	veil_diags_init(&d);
	why[0] = 0;
	if (!imports)
		op = render_cached(v, ns, wrapped, wrapped_size, sealed, sealed_size);
	if (!op) {
		op = &local;
		rc = cas_payload_open(v, ns, wrapped, wrapped_size, sealed, sealed_size, true,
				      &local);
	}
	if (rc) {
		snprintf(why, cap, "cannot open the stored policy");
		goto out;
	}
	const struct veil_policy *p = &op->policy;
	const struct veil_policy_service *svc = NULL;
	for (size_t i = 0; i < p->service_count; i++)
		if (!strcmp(p->services[i].name, service))
			svc = &p->services[i];
	if (!svc) {
		snprintf(why, cap, "no service %s", service);
		rc = VEIL_EINVAL;
		goto out;
	}
	/* imported values, each: local name, exporter ns, its wrapped key, its
	 * sealed payload, the exported secret's name (le32-prefixed each); the
	 * network process checked the exporter's consent */
	while (imports && !rc && veil_cur_left(imports)) {
		struct veil_cursor f[5];
		char str[3][1025];
		const uint8_t *w = NULL, *s = NULL;
		for (int i = 0; i < 5; i++)
			veil_cur_sub_le32(imports, &f[i]);
		int ok = veil_cur_ok(imports);
		for (int i = 0, k = 0; ok && i < 5; i++) {
			size_t n = veil_cur_left(&f[i]);
			if (i == 2 || i == 3) {
				ok = veil_cur_view(&f[i], n, i == 2 ? &w : &s) || n == 0;
				continue;
			}
			const uint8_t *t = NULL;
			ok = n > 0 && n < sizeof(str[k]) && veil_cur_view(&f[i], n, &t) &&
			     !memchr(t, 0, n);
			if (ok) {
				memcpy(str[k], t, n);
				str[k][n] = 0;
			}
			k++;
		}
		if (!ok || !w || !s) {
			snprintf(why, cap, "a malformed import");
			rc = VEIL_EINVAL;
			break;
		}
		struct cas_opened ex;
		rc = cas_payload_open(v, str[1], w, f[2].len, s, f[3].len, true, &ex);
		const struct veil_secret_value *val =
		    rc ? NULL : veil_secret_find(&ex.secrets, str[2]);
		if (rc || !val) {
			snprintf(why, cap, "namespace %s holds no value for secret %s", str[1],
				 str[2]);
			rc = VEIL_EIO;
		} else if (veil_secret_set_append(&local.secrets, str[0], val)) {
			snprintf(why, cap, "out of memory");
			rc = VEIL_ENOMEM;
		}
		cas_opened_free(&ex);
	}
	if (rc)
		goto out;
	if (!(resp = json_object()) || render_config(p, svc, &op->secrets, resp, &d) ||
	    add_code_key(v, svc, owner, resp, &d) || !(*body = json_dumps(resp, JSON_COMPACT))) {
		diags_text(&d, why, cap);
		if (!why[0])
			snprintf(why, cap, "out of memory");
		rc = VEIL_EIO;
	}
out:
	json_decref(resp);
	cas_opened_free(&local);
	veil_diags_free(&d);
	return rc;
}
