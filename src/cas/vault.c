/* Master key providers and AES-256-GCM sealing of namespace payloads.
 *
 * The key file (master.key, 32 bytes):
 *   wrapped key = nonce(12) || GCM(master, data key 32) || tag(16), AAD "veil-key-v1\0" ns
 * PKCS#11 (master.key is then the provider record below, no key):
 *   wrapped key = "VK" 01 02 || version(4, big endian) || nonce(12) ||
 *                 GCM(token key `version`, data key 32) || tag(16),      AAD as above
 *   (01: this format; 02: the PKCS#11 provider; the GCM runs in the token)
 *   With a recovery key (--init --recovery-key with a token, recovery.c),
 *   a copy of the data key follows, sealed to the recovery public key:
 *     ... || enc(65) || HPKE ct(data key 32 || tag 16)
 *   (HPKE base mode, DHKEM P-256, info "veil-recovery-copy-v1", AAD as
 *   above): 181 bytes instead of 68. A rotation re-wraps the first 68 and
 *   carries the copy along; veil-cas recover opens the copies with the
 *   recovery private key rebuilt from K shares.
 * Both:
 *   sealed blob = nonce(12) || GCM(data key, payload) || tag(16),  AAD "veil-blob-v1\0" ns
 *
 * By hand, a PKCS#11 wrapped key's version:
 *   sqlite3 DATA/cas.db "SELECT namespace, substr(hex(wrapped_key),1,16) FROM policies" */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "veil/hpke.h"
#include "veil/secrets.h"
#include "veil/store.h"

#include "vault_p11.h"
#include "vault_record.h"

#define KEY_SIZE 32
#define NONCE_SIZE 12
#define TAG_SIZE 16

struct p11_record;
struct veil_vault {
	/* secure memory; NULL in a remote vault. The key file's master key,
	 * or with PKCS#11 the code-key root (unwrapped by the token): the
	 * HKDF input of veil_vault_code_key either way */
	uint8_t *master;
	const struct veil_vault_remote *remote;
	struct p11 *p11; /* the PKCS#11 provider, else NULL */
	struct p11_record *rec;
	char *rec_path;
	EVP_PKEY *recovery; /* veil-cas recover: the recovery private key (borrowed) */
};

static int p11_wrap_key(struct veil_vault *v, const char *label, const char *ns,
			const uint8_t key[static KEY_SIZE], uint8_t **wrapped, size_t *size);
static int p11_unwrap_key(struct veil_vault *v, const char *label, const char *ns,
			  const uint8_t *wrapped, size_t size, uint8_t key[static KEY_SIZE]);
static void p11_vault_free(struct veil_vault *v);

int veil_vault_remote(const struct veil_vault_remote *ops, struct veil_vault **out)
{
	struct veil_vault *v = calloc(1, sizeof(*v));
	if (!v)
		return VEIL_ENOMEM;
	v->remote = ops;
	*out = v;
	return 0;
}

int veil_vault_open_file(const char *path, bool create, struct veil_vault **out,
			 struct veil_diags *d)
{
	struct veil_vault *v = calloc(1, sizeof(*v));
	int rc = VEIL_EIO, fd = -1;
	if (!v || !(v->master = veil_secure_alloc(KEY_SIZE))) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (create) {
		/* --init: a new master key, created exclusively, 0600 */
		if (RAND_priv_bytes(v->master, KEY_SIZE) != 1)
			goto out;
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, v->master, KEY_SIZE) != KEY_SIZE || fsync(fd) < 0) {
			veil_diag(d, "%s: cannot create the master key: %s", path, strerror(errno));
			goto out;
		}
		*out = v;
		v = NULL;
		rc = 0;
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		veil_diag(d, "%s: cannot open the master key: %s", path, strerror(errno));
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		veil_diag(d,
			  "%s: the master key file must not be readable by group or others "
			  "(chmod 600)",
			  path);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (st.st_size != KEY_SIZE || read(fd, v->master, KEY_SIZE) != KEY_SIZE) {
		veil_diag(d, "%s: not a veil master key (%d bytes expected)", path, KEY_SIZE);
		rc = VEIL_EINVAL;
		goto out;
	}
	*out = v;
	v = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	veil_vault_close(v);
	return rc;
}

void veil_vault_close(struct veil_vault *v)
{
	if (!v)
		return;
	if (v->master)
		veil_secure_free(v->master, KEY_SIZE);
	p11_vault_free(v);
	free(v);
}

static int aad_for(const char *label, const char *ns, uint8_t *buf, size_t cap, size_t *len)
{
	size_t a = strlen(label) + 1, b = strlen(ns);
	if (a + b > cap)
		return VEIL_ELIMIT;
	memcpy(buf, label, a);
	memcpy(buf + a, ns, b);
	*len = a + b;
	return 0;
}

static int gcm(int enc, const uint8_t *key, const uint8_t *aad, size_t aad_len, const uint8_t *in,
	       size_t in_size, uint8_t *out, size_t *out_size)
{
	int rc = VEIL_EIO, n = 0, m = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return VEIL_ENOMEM;
	if (in_size > (1u << 30))
		goto out;
	if (enc) {
		uint8_t *nonce = out, *ct = out + NONCE_SIZE;
		if (RAND_bytes(nonce, NONCE_SIZE) != 1 ||
		    !EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) ||
		    !EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) ||
		    !EVP_EncryptUpdate(ctx, ct, &n, in, (int)in_size) ||
		    !EVP_EncryptFinal_ex(ctx, ct + n, &m) ||
		    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, ct + n + m))
			goto out;
		*out_size = NONCE_SIZE + (size_t)(n + m) + TAG_SIZE;
	} else {
		if (in_size < NONCE_SIZE + TAG_SIZE)
			goto out;
		size_t ct_size = in_size - NONCE_SIZE - TAG_SIZE;
		uint8_t tag[TAG_SIZE];
		memcpy(tag, in + in_size - TAG_SIZE, TAG_SIZE);
		if (!EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in) ||
		    !EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) ||
		    !EVP_DecryptUpdate(ctx, out, &n, in + NONCE_SIZE, (int)ct_size) ||
		    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, tag) ||
		    EVP_DecryptFinal_ex(ctx, out + n, &m) != 1) {
			OPENSSL_cleanse(out, ct_size);
			goto out;
		}
		*out_size = (size_t)(n + m);
	}
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int veil_vault_new_key(struct veil_vault *v, const char *ns, uint8_t **wrapped, size_t *size)
{
	if (v->remote)
		return v->remote->new_key(v->remote->arg, ns, wrapped, size);
	uint8_t key[KEY_SIZE], aad[300];
	size_t aad_len;
	if (v->p11) {
		int r = RAND_priv_bytes(key, KEY_SIZE) == 1 ? 0 : VEIL_EIO;
		if (!r)
			r = p11_wrap_key(v, "veil-key-v1", ns, key, wrapped, size);
		OPENSSL_cleanse(key, sizeof(key));
		return r;
	}
	int rc = aad_for("veil-key-v1", ns, aad, sizeof(aad), &aad_len);
	uint8_t *w = malloc(NONCE_SIZE + KEY_SIZE + TAG_SIZE);
	if (!rc && !w)
		rc = VEIL_ENOMEM;
	if (!rc && RAND_priv_bytes(key, KEY_SIZE) != 1)
		rc = VEIL_EIO;
	if (!rc)
		rc = gcm(1, v->master, aad, aad_len, key, KEY_SIZE, w, size);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc) {
		free(w);
		return rc;
	}
	*wrapped = w;
	return 0;
}

static int unwrap(struct veil_vault *v, const char *ns, const uint8_t *wrapped, size_t size,
		  uint8_t key[static KEY_SIZE])
{
	uint8_t aad[300];
	size_t aad_len, n = 0;
	if (v->p11)
		return p11_unwrap_key(v, "veil-key-v1", ns, wrapped, size, key);
	if (size != NONCE_SIZE + KEY_SIZE + TAG_SIZE)
		return VEIL_EINVAL;
	int rc = aad_for("veil-key-v1", ns, aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = gcm(0, v->master, aad, aad_len, wrapped, size, key, &n);
	return rc ? rc : (n == KEY_SIZE ? 0 : VEIL_EINVAL);
}

int veil_vault_seal(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
		    size_t wrapped_size, const uint8_t *plain, size_t plain_size, uint8_t **out,
		    size_t *out_size)
{
	if (v->remote)
		return v->remote->seal(v->remote->arg, ns, wrapped, wrapped_size, plain, plain_size,
				       out, out_size);
	uint8_t *key = veil_secure_alloc(KEY_SIZE), aad[300];
	size_t aad_len;
	uint8_t *buf = malloc(plain_size + NONCE_SIZE + TAG_SIZE);
	int rc = key && buf ? unwrap(v, ns, wrapped, wrapped_size, key) : VEIL_ENOMEM;
	if (!rc)
		rc = aad_for("veil-blob-v1", ns, aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = gcm(1, key, aad, aad_len, plain, plain_size, buf, out_size);
	veil_secure_free(key, KEY_SIZE);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

int veil_vault_open(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
		    size_t wrapped_size, const uint8_t *sealed, size_t sealed_size, uint8_t **out,
		    size_t *out_size)
{
	if (v->remote)
		return v->remote->open(v->remote->arg, ns, wrapped, wrapped_size, sealed,
				       sealed_size, out, out_size);
	if (sealed_size <= NONCE_SIZE + TAG_SIZE)
		return VEIL_EINVAL;
	/* GCM: the plaintext is exactly as long as the ciphertext */
	size_t cap = sealed_size - NONCE_SIZE - TAG_SIZE, aad_len;
	uint8_t *key = veil_secure_alloc(KEY_SIZE), aad[300];
	uint8_t *buf = veil_secure_alloc(cap);
	int rc = key && buf ? unwrap(v, ns, wrapped, wrapped_size, key) : VEIL_ENOMEM;
	if (!rc)
		rc = aad_for("veil-blob-v1", ns, aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = gcm(0, key, aad, aad_len, sealed, sealed_size, buf, out_size);
	veil_secure_free(key, KEY_SIZE);
	if (rc) {
		veil_secure_free(buf, cap);
		return rc;
	}
	*out = buf;
	return 0;
}

int veil_vault_code_key(struct veil_vault *v, const char *key_id, const char *owner,
			uint8_t out[static 32])
{
	if (v->remote)
		return v->remote->code_key(v->remote->arg, key_id, owner, out);
	static const char salt[] = "veil-code-key-v1";
	size_t il = strlen(key_id), ol = strlen(owner);
	uint8_t info[512];
	if (il + 1 + ol > sizeof(info))
		return VEIL_ELIMIT;
	memcpy(info, key_id, il);
	info[il] = 0;
	memcpy(info + il + 1, owner, ol);
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, v->master, KEY_SIZE),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, sizeof(salt) - 1),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, il + 1 + ol),
	    OSSL_PARAM_construct_end()};
	int rc = c && EVP_KDF_derive(c, out, 32, p) == 1 ? 0 : VEIL_EIO;
	EVP_KDF_CTX_free(c);
	EVP_KDF_free(kdf);
	return rc;
}

/* ---- PKCS#11 ----
 *
 * master.key of a CAS whose master key is in a PKCS#11 token holds no key,
 * only where the keys are (text, 0600; one "name value" a line):
 *   veil-master-key-provider 1
 *   provider pkcs11
 *   token LABEL          the token (CKA_LABEL of its token info)
 *   object LABEL         the URI's object=: the first key's label
 *   module PATH          the PKCS#11 module (VEIL_PKCS11_MODULE overrides it)
 *   current N LABEL      the key new data keys are wrapped under
 *   pending N LABEL      a rotation under way: its new key (both are loaded)
 *   code-root HEX        32 random bytes wrapped like a data key (AAD
 *                        "veil-code-root-v1\0"): veil_vault_code_key's HKDF
 *                        input, which a rotation re-wraps, so code keys stay
 *   retire LABEL         a rotated-out key still to destroy in the token */

static void p11_vault_free(struct veil_vault *v)
{
	p11_close(v->p11);
	free(v->rec);
	free(v->rec_path);
}

static int put_prefix(uint8_t out[static P11_PREFIX], uint32_t version)
{
	out[0] = 'V', out[1] = 'K', out[2] = 1, out[3] = 2;
	for (int i = 0; i < 4; i++)
		out[4 + i] = (uint8_t)(version >> (24 - 8 * i));
	return 0;
}

static uint32_t version_of(const uint8_t *w, size_t size)
{
	if ((size != P11_WRAPPED && size != P11_WRAPPED + RECOVERY_COPY) || w[0] != 'V' ||
	    w[1] != 'K' || w[2] != 1 || w[3] != 2)
		return 0;
	return (uint32_t)w[4] << 24 | (uint32_t)w[5] << 16 | (uint32_t)w[6] << 8 | w[7];
}

static int p11_wrap_as(struct veil_vault *v, uint32_t version, const char *label, const char *ns,
		       const uint8_t key[static KEY_SIZE], uint8_t out[static P11_WRAPPED])
{
	uint8_t aad[300];
	size_t aad_len;
	int rc = aad_for(label, ns, aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = put_prefix(out, version);
	if (!rc)
		rc = p11_wrap(v->p11, version, aad, aad_len, key, out + P11_PREFIX);
	return rc;
}

static const char recovery_info[] = "veil-recovery-copy-v1";

/* key (32 bytes) sealed to the recovery public key: out = enc || ct */
static int recovery_seal(const uint8_t point[static RECOVERY_POINT], const char *label,
			 const char *ns, const uint8_t key[static KEY_SIZE],
			 uint8_t out[static RECOVERY_COPY])
{
	uint8_t aad[300], *ct = NULL;
	size_t aad_len, ct_len = 0;
	int rc = aad_for(label, ns, aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = veil_hpke_seal_to_point(point, (const uint8_t *)recovery_info,
					     sizeof(recovery_info) - 1, aad, aad_len, key, KEY_SIZE,
					     out, &ct, &ct_len);
	if (!rc && ct_len != RECOVERY_COPY - RECOVERY_POINT)
		rc = VEIL_EIO;
	if (!rc)
		memcpy(out + RECOVERY_POINT, ct, ct_len);
	free(ct);
	return rc;
}

/* the reverse, with the recovery private key */
static int recovery_open(EVP_PKEY *priv, const char *label, const char *ns,
			 const uint8_t in[static RECOVERY_COPY], uint8_t key[static KEY_SIZE])
{
	uint8_t aad[300], *pt = NULL;
	size_t aad_len, pt_len = 0;
	int rc = aad_for(label, ns, aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = veil_hpke_open(priv, in, (const uint8_t *)recovery_info,
				    sizeof(recovery_info) - 1, aad, aad_len, in + RECOVERY_POINT,
				    RECOVERY_COPY - RECOVERY_POINT, &pt, &pt_len);
	if (!rc && pt_len != KEY_SIZE)
		rc = VEIL_EINVAL;
	if (!rc)
		memcpy(key, pt, KEY_SIZE);
	if (pt)
		veil_secure_free(pt, pt_len + 1);
	return rc;
}

static int p11_wrap_key(struct veil_vault *v, const char *label, const char *ns,
			const uint8_t key[static KEY_SIZE], uint8_t **wrapped, size_t *size)
{
	/* during a rotation (its new key loaded) under the new key: the
	 * re-wrap then never has to come back for a key made meanwhile */
	uint32_t version = v->rec->pending ? v->rec->pending : v->rec->current;
	size_t n = P11_WRAPPED + (v->rec->recovery ? RECOVERY_COPY : 0);
	uint8_t *w = malloc(n);
	int rc = w ? p11_wrap_as(v, version, label, ns, key, w) : VEIL_ENOMEM;
	if (!rc && v->rec->recovery)
		rc = recovery_seal(v->rec->recovery_point, label, ns, key, w + P11_WRAPPED);
	if (rc) {
		free(w);
		return rc;
	}
	*wrapped = w;
	*size = n;
	return 0;
}

static int p11_unwrap_key(struct veil_vault *v, const char *label, const char *ns,
			  const uint8_t *wrapped, size_t size, uint8_t key[static KEY_SIZE])
{
	uint8_t aad[300];
	size_t aad_len;
	uint32_t version = version_of(wrapped, size);
	if (!version)
		return VEIL_EINVAL;
	int rc = aad_for(label, ns, aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = p11_unwrap(v->p11, version, aad, aad_len, wrapped + P11_PREFIX, key);
	return rc;
}

/* RFC 7512: pkcs11:token=...;object=...[;type=secret-key][?module-path=...],
 * values percent-encoded */
static int uri_value(const char *in, size_t n, char *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (c == '%') {
			/* %XX, either case */
			char two[3] = {0};
			uint8_t x;
			if (i + 2 >= n)
				return VEIL_EINVAL;
			two[0] = (char)tolower((unsigned char)in[i + 1]);
			two[1] = (char)tolower((unsigned char)in[i + 2]);
			if (veil_unhex(two, &x, 1))
				return VEIL_EINVAL;
			c = (char)x;
			i += 2;
		}
		if (!c || c == '\n' || k + 1 >= cap)
			return VEIL_EINVAL;
		out[k++] = c;
	}
	out[k] = 0;
	return 0;
}

int cas_mk_parse_uri(const char *uri, struct p11_record *r, struct veil_diags *d)
{
	if (strncmp(uri, "pkcs11:", 7)) {
		veil_diag(d, "--master-key '%s': not 'file' or a pkcs11: URI (RFC 7512)", uri);
		return VEIL_EINVAL;
	}
	for (const char *p = uri + 7; *p;) {
		size_t n = strcspn(p, ";?&");
		const char *eq = memchr(p, '=', n);
		char name[32], value[512];
		if (!eq || (size_t)(eq - p) >= sizeof(name) ||
		    uri_value(eq + 1, n - (size_t)(eq + 1 - p), value, sizeof(value))) {
			veil_diag(d, "--master-key: malformed attribute '%.*s' in the pkcs11: URI",
				  (int)n, p);
			return VEIL_EINVAL;
		}
		memcpy(name, p, (size_t)(eq - p));
		name[eq - p] = 0;
		bool bad = false;
		if (!strcmp(name, "token"))
			bad = strlen(value) > 32 ||
			      (size_t)snprintf(r->token, sizeof(r->token), "%s", value) >= 33;
		else if (!strcmp(name, "object"))
			bad = strlen(value) > 100 ||
			      (size_t)snprintf(r->object, sizeof(r->object), "%s", value) >=
				  sizeof(r->object);
		else if (!strcmp(name, "module-path"))
			bad = (size_t)snprintf(r->module, sizeof(r->module), "%s", value) >=
			      sizeof(r->module);
		else if (!strcmp(name, "type"))
			bad = strcmp(value, "secret-key") != 0;
		else {
			veil_diag(
			    d,
			    "--master-key: attribute '%s' of the pkcs11: URI is not supported "
			    "(token, object, type=secret-key, module-path)",
			    name);
			return VEIL_EINVAL;
		}
		if (bad) {
			veil_diag(d, "--master-key: attribute %s='%s' is too long or invalid", name,
				  value);
			return VEIL_EINVAL;
		}
		p += n;
		if (*p)
			p++;
	}
	if (!r->token[0] || !r->object[0]) {
		veil_diag(d, "--master-key: the pkcs11: URI needs token= and object=");
		return VEIL_EINVAL;
	}
	return 0;
}

int cas_mk_record_format(const struct p11_record *r, struct veil_buf *out)
{
	char hex[2 * P11_WRAPPED + 1];
	veil_hex(r->code_root, P11_WRAPPED, hex);
	int rc = veil_buf_printf(out,
				 RECORD_MAGIC "provider pkcs11\ntoken %s\nobject %s\nmodule %s\n"
					      "current %u %s\ncode-root %s\n",
				 r->token, r->object, r->module, r->current, r->current_label, hex);
	if (!rc && r->pending)
		rc = veil_buf_printf(out, "pending %u %s\n", r->pending, r->pending_label);
	for (size_t i = 0; !rc && i < r->nretire; i++)
		rc = veil_buf_printf(out, "retire %s\n", r->retire[i]);
	if (!rc && r->recovery) {
		char p[2 * RECOVERY_POINT + 1], c[2 * RECOVERY_COPY + 1];
		veil_hex(r->recovery_point, RECOVERY_POINT, p);
		veil_hex(r->code_root_copy, RECOVERY_COPY, c);
		rc = veil_buf_printf(out, "recovery-key %s\ncode-root-recovery %s\n", p, c);
	}
	return rc;
}

static int record_write(const char *path, const struct p11_record *r, struct veil_diags *d)
{
	struct veil_buf b = {.max = RECORD_MAX};
	int rc = cas_mk_record_format(r, &b);
	if (!rc)
		rc = veil_write_file(path, b.data, b.size, 0600, d);
	veil_buf_free(&b);
	return rc;
}

static bool copy_value(char *dst, size_t cap, const char *v)
{
	return v[0] && (size_t)snprintf(dst, cap, "%s", v) < cap;
}

static int parse_versioned(const char *v, uint32_t *n, char *label, size_t cap)
{
	char *end;
	unsigned long x = strtoul(v, &end, 10);
	if (end == v || *end != ' ' || !x || x > UINT32_MAX || !copy_value(label, cap, end + 1))
		return VEIL_EINVAL;
	*n = (uint32_t)x;
	return 0;
}

int cas_mk_record_parse(char *text, size_t size, struct p11_record *r)
{
	bool root = false, provider = false, rkey = false, rcopy = false;
	int rc = 0;
	if (size < sizeof(RECORD_MAGIC) - 1 || memchr(text, 0, size))
		return VEIL_EINVAL;
	/* not secret: the record's magic */
	if (memcmp(text, RECORD_MAGIC, sizeof(RECORD_MAGIC) - 1))
		return VEIL_EINVAL;
	memset(r, 0, sizeof(*r));
	for (char *line = text + sizeof(RECORD_MAGIC) - 1, *nl; !rc && *line; line = nl + 1) {
		if (!(nl = strchr(line, '\n')))
			return VEIL_EINVAL;
		*nl = 0;
		char *v = strchr(line, ' ');
		if (!v)
			return VEIL_EINVAL;
		*v++ = 0;
		/* each line at most once (retire: twice) */
		if (!strcmp(line, "provider") && !provider) {
			provider = true;
			rc = strcmp(v, "pkcs11") ? VEIL_EINVAL : 0;
		} else if (!strcmp(line, "token") && !r->token[0]) {
			rc = copy_value(r->token, sizeof(r->token), v) ? 0 : VEIL_EINVAL;
		} else if (!strcmp(line, "object") && !r->object[0]) {
			rc = copy_value(r->object, sizeof(r->object), v) ? 0 : VEIL_EINVAL;
		} else if (!strcmp(line, "module") && !r->module[0]) {
			rc = copy_value(r->module, sizeof(r->module), v) ? 0 : VEIL_EINVAL;
		} else if (!strcmp(line, "current") && !r->current) {
			rc = parse_versioned(v, &r->current, r->current_label,
					     sizeof(r->current_label));
		} else if (!strcmp(line, "pending") && !r->pending) {
			rc = parse_versioned(v, &r->pending, r->pending_label,
					     sizeof(r->pending_label));
		} else if (!strcmp(line, "code-root") && !root) {
			root = true;
			rc = veil_unhex(v, r->code_root, P11_WRAPPED) ? VEIL_EINVAL : 0;
		} else if (!strcmp(line, "recovery-key") && !rkey) {
			rkey = true;
			rc = veil_unhex(v, r->recovery_point, RECOVERY_POINT) ? VEIL_EINVAL : 0;
		} else if (!strcmp(line, "code-root-recovery") && !rcopy) {
			rcopy = true;
			rc = veil_unhex(v, r->code_root_copy, RECOVERY_COPY) ? VEIL_EINVAL : 0;
		} else if (!strcmp(line, "retire") && r->nretire < 2) {
			rc = copy_value(r->retire[r->nretire++], LABEL_MAX, v) ? 0 : VEIL_EINVAL;
		} else {
			rc = VEIL_EINVAL;
		}
	}
	if (!rc && (!provider || !r->token[0] || !r->object[0] || !r->current || !r->module[0] ||
		    !root || r->pending == r->current || rkey != rcopy))
		rc = VEIL_EINVAL;
	r->recovery = !rc && rkey;
	return rc;
}

static int record_read(const char *path, struct p11_record *r, struct veil_diags *d)
{
	char *text = NULL;
	size_t size = 0;
	int rc = veil_read_file(path, RECORD_MAX, &text, &size, d);
	if (rc)
		return rc;
	if ((rc = cas_mk_record_parse(text, size, r)))
		veil_diag(d, "%s: not a veil master-key provider record", path);
	free(text);
	return rc;
}

/* the PIN from pin_file, else from VEIL_PKCS11_PIN, whose value is then
 * wiped from the environment (a child or /proc/PID/environ would see it) */
static int read_pin(const char *pin_file, const char *token, char pin[static PIN_MAX],
		    struct veil_diags *d)
{
	if (pin_file) {
		int fd = open(pin_file, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, pin, PIN_MAX - 1);
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (n < 0) {
			veil_diag(d, "--pin-file %s: %s", pin_file, strerror(e));
			return VEIL_EIO;
		}
		pin[n] = 0;
		pin[strcspn(pin, "\r\n")] = 0; /* its first line */
	} else {
		char *env = getenv("VEIL_PKCS11_PIN");
		if (!env || strlen(env) >= PIN_MAX) {
			veil_diag(d,
				  "no PIN for PKCS#11 token '%s': give --pin-file FILE or set "
				  "VEIL_PKCS11_PIN",
				  token);
			return VEIL_EINVAL;
		}
		memcpy(pin, env, strlen(env) + 1);
		OPENSSL_cleanse(env, strlen(env));
		unsetenv("VEIL_PKCS11_PIN");
	}
	if (!pin[0]) {
		veil_diag(d, "the PIN for PKCS#11 token '%s' is empty", token);
		return VEIL_EINVAL;
	}
	return 0;
}

static const char *module_of(const struct p11_record *r)
{
	const char *env = getenv("VEIL_PKCS11_MODULE");
	return env && env[0] ? env : r->module;
}

/* the code-key root: made at --init, unwrapped at every open */
static int code_root_open(struct veil_vault *v)
{
	uint32_t version = version_of(v->rec->code_root, P11_WRAPPED);
	if (!version)
		return VEIL_EINVAL;
	uint8_t aad[64];
	size_t aad_len;
	int rc = aad_for("veil-code-root-v1", "", aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = p11_unwrap(v->p11, version, aad, aad_len, v->rec->code_root + P11_PREFIX,
				v->master);
	return rc;
}

int veil_vault_open_pkcs11(const char *path, const char *uri, const char *pin_file, bool create,
			   struct veil_vault **out, struct veil_diags *d)
{
	struct veil_vault *v = calloc(1, sizeof(*v));
	char *pin = veil_secure_alloc(PIN_MAX);
	int rc = VEIL_ENOMEM;
	if (!v || !pin || !(v->master = veil_secure_alloc(KEY_SIZE)) ||
	    !(v->rec = calloc(1, sizeof(*v->rec))) || !(v->rec_path = strdup(path)))
		goto out;
	struct p11_record *r = v->rec;
	if (create) {
		rc = cas_mk_parse_uri(uri, r, d);
		if (!rc && !r->module[0])
			snprintf(r->module, sizeof(r->module), "%s",
				 getenv("VEIL_PKCS11_MODULE") && getenv("VEIL_PKCS11_MODULE")[0]
				     ? getenv("VEIL_PKCS11_MODULE")
				     : DEFAULT_MODULE);
		r->current = 1;
		snprintf(r->current_label, sizeof(r->current_label), "%s", r->object);
	} else {
		rc = record_read(path, r, d);
	}
	if (!rc)
		rc = read_pin(pin_file, r->token, pin, d);
	if (!rc)
		rc = p11_open(module_of(r), r->token, pin, &v->p11, d);
	if (!rc && create && (rc = p11_key_create(v->p11, r->current_label, d)) == VEIL_EEXIST)
		veil_diag(d,
			  "PKCS#11 token '%s' already holds a key labelled '%s': choose another "
			  "object= (or delete that key if no CAS uses it)",
			  r->token, r->current_label);
	if (!rc)
		rc = p11_key_load(v->p11, r->current, r->current_label, d);
	/* a rotation stopped half-way: its new key too. Not made yet (stopped
	 * before the token made it): nothing is wrapped under it */
	struct veil_diags ignored;
	veil_diags_init(&ignored);
	if (!rc && r->pending && p11_key_load(v->p11, r->pending, r->pending_label, &ignored))
		r->pending = 0;
	veil_diags_free(&ignored);
	if (!rc && create) {
		uint8_t aad[64];
		size_t aad_len;
		rc = RAND_priv_bytes(v->master, KEY_SIZE) == 1 ? 0 : VEIL_EIO;
		if (!rc)
			rc = aad_for("veil-code-root-v1", "", aad, sizeof(aad), &aad_len);
		if (!rc)
			rc = put_prefix(r->code_root, r->current);
		if (!rc)
			rc = p11_wrap(v->p11, r->current, aad, aad_len, v->master,
				      r->code_root + P11_PREFIX);
		if (!rc)
			rc = record_write(path, r, d);
	} else if (!rc && (rc = code_root_open(v))) {
		veil_diag(d, "%s: the code-key root does not open with the token's key '%s'", path,
			  r->current_label);
	}
	if (!rc) {
		*out = v;
		v = NULL;
	}
out:
	if (pin)
		veil_secure_free(pin, PIN_MAX);
	veil_vault_close(v);
	return rc;
}

int veil_vault_open_any(const char *path, const char *pin_file, struct veil_vault **out,
			struct veil_diags *d)
{
	char head[sizeof(RECORD_MAGIC)] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd < 0 ? -1 : read(fd, head, sizeof(head) - 1);
	if (fd >= 0)
		close(fd);
	/* not secret: the record's magic */
	if (n == (ssize_t)sizeof(head) - 1 && !memcmp(head, RECORD_MAGIC, sizeof(head) - 1))
		return veil_vault_open_pkcs11(path, NULL, pin_file, false, out, d);
	return veil_vault_open_file(path, false, out, d);
}

const char *veil_vault_provider(const struct veil_vault *v)
{
	return v->p11 ? "pkcs11" : v->remote ? "remote" : "file";
}

int veil_vault_describe(const struct veil_vault *v, char *out, size_t cap)
{
	if (!v->p11) {
		snprintf(out, cap, "%s", veil_vault_provider(v));
		return 0;
	}
	const struct p11_record *r = v->rec;
	int n = snprintf(out, cap, "pkcs11 current %u pending %u retire %zu", r->current,
			 r->pending, r->nretire);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

/* ---- rotation ---- */

int veil_vault_rotate_retire(struct veil_vault *v, struct veil_diags *d)
{
	struct p11_record *r = v->rec;
	int rc = 0;
	if (!v->p11)
		return VEIL_EINVAL;
	for (size_t i = 0; !rc && i < r->nretire; i++)
		rc = p11_key_destroy(v->p11, r->retire[i], d);
	if (!rc && r->nretire) {
		r->nretire = 0;
		rc = record_write(v->rec_path, r, d);
	}
	return rc;
}

int veil_vault_rotate_begin(struct veil_vault *v, uint32_t *from, uint32_t *to,
			    struct veil_diags *d)
{
	if (!v->p11) {
		veil_diag(d, "rotation is for a PKCS#11 master key; this CAS's master key is a "
			     "key file");
		return VEIL_EINVAL;
	}
	struct p11_record *r = v->rec;
	int rc = 0;
	/* a rotation that stopped after its record retired the old key: the
	 * rerun finishes it (*from == *to), it does not start another */
	if (r->nretire && !r->pending) {
		rc = veil_vault_rotate_retire(v, d);
		if (!rc)
			*from = *to = r->current;
		return rc;
	}
	if (!r->pending) {
		/* recorded first: a crash after the token made the key finds it */
		r->pending = r->current + 1;
		/* object= is at most 100 bytes (parse_uri): room for ".vN" */
		if ((size_t)snprintf(r->pending_label, sizeof(r->pending_label), "%.100s.v%u",
				     r->object, r->pending) >= sizeof(r->pending_label))
			rc = VEIL_ELIMIT;
		if (!rc)
			rc = record_write(v->rec_path, r, d);
		if (!rc) {
			rc = p11_key_create(v->p11, r->pending_label, d);
			if (rc == VEIL_EEXIST)
				rc = 0; /* a rerun: made before the crash */
		}
		if (!rc)
			rc = p11_key_load(v->p11, r->pending, r->pending_label, d);
	}
	if (!rc) {
		*from = r->current;
		*to = r->pending;
	}
	return rc;
}

int veil_vault_rewrap(struct veil_vault *v, const char *ns, const uint8_t *in, size_t in_size,
		      uint8_t out[static VEIL_VAULT_WRAPPED_MAX], size_t *out_size)
{
	uint32_t version = version_of(in, in_size);
	if (!v->p11 || !version)
		return VEIL_EINVAL;
	/* the new key: pending, or after the switch current (a straggler,
	 * opened with the old key this vault still holds) */
	uint32_t to = v->rec->pending ? v->rec->pending : v->rec->current;
	if (version == to) {
		*out_size = 0; /* already */
		return 0;
	}
	uint8_t *key = veil_secure_alloc(KEY_SIZE);
	int rc = key ? p11_unwrap_key(v, "veil-key-v1", ns, in, in_size, key) : VEIL_ENOMEM;
	if (!rc)
		rc = p11_wrap_as(v, to, "veil-key-v1", ns, key, out);
	/* the recovery copy, if any, does not depend on the token's key */
	if (!rc && in_size > P11_WRAPPED)
		memcpy(out + P11_WRAPPED, in + P11_WRAPPED, in_size - P11_WRAPPED);
	if (!rc)
		*out_size = in_size;
	if (key)
		veil_secure_free(key, KEY_SIZE);
	return rc;
}

int veil_vault_rotate_switch(struct veil_vault *v, struct veil_diags *d)
{
	struct p11_record *r = v->rec;
	if (!v->p11 || !r->pending)
		return VEIL_EINVAL;
	/* the code-key root (in v->master) under the new key */
	uint8_t aad[64];
	size_t aad_len;
	int rc = aad_for("veil-code-root-v1", "", aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = put_prefix(r->code_root, r->pending);
	if (!rc)
		rc = p11_wrap(v->p11, r->pending, aad, aad_len, v->master,
			      r->code_root + P11_PREFIX);
	if (rc)
		return rc;
	snprintf(r->retire[0], LABEL_MAX, "%s", r->current_label);
	r->nretire = 1;
	r->current = r->pending;
	memcpy(r->current_label, r->pending_label, LABEL_MAX);
	r->pending = 0;
	return record_write(v->rec_path, r, d);
}

int veil_vault_rotate_finish(struct veil_vault *v, struct veil_diags *d)
{
	int rc = veil_vault_rotate_switch(v, d);
#ifdef VEIL_TEST_HOOKS
	/* only for testing: a crash between the switch and the destruction */
	if (!rc && getenv("VEIL_TEST_ROTATE_STOP") &&
	    !strcmp(getenv("VEIL_TEST_ROTATE_STOP"), "after-switch"))
		_exit(9);
#endif
	/* the old key goes only now: every data key is wrapped under the new */
	if (!rc)
		rc = veil_vault_rotate_retire(v, d);
	return rc;
}

/* ---- a recovery key (veil-cas --init --recovery-key with a token) ---- */

int veil_vault_set_recovery(struct veil_vault *v, const uint8_t point[static 65],
			    struct veil_diags *d)
{
	if (!v->p11) {
		veil_diag(d, "a recovery key is for a PKCS#11 master key");
		return VEIL_EINVAL;
	}
	struct p11_record *r = v->rec;
	memcpy(r->recovery_point, point, RECOVERY_POINT);
	/* the code-key root (v->master): code keys survive a recovery */
	int rc = recovery_seal(point, "veil-code-root-v1", "", v->master, r->code_root_copy);
	if (!rc) {
		r->recovery = true;
		rc = record_write(v->rec_path, r, d);
	}
	if (rc)
		r->recovery = false;
	return rc;
}

int veil_vault_recovery_open(const char *record_path, EVP_PKEY *priv, struct veil_vault **out,
			     struct veil_diags *d)
{
	struct veil_vault *v = calloc(1, sizeof(*v));
	uint8_t point[RECOVERY_POINT];
	int rc = VEIL_ENOMEM;
	if (!v || !(v->master = veil_secure_alloc(KEY_SIZE)) ||
	    !(v->rec = calloc(1, sizeof(*v->rec))))
		goto out;
	if ((rc = record_read(record_path, v->rec, d)))
		goto out;
	if (!v->rec->recovery) {
		veil_diag(d,
			  "%s: this CAS's token key has no recovery key (--init without "
			  "--recovery-key)",
			  record_path);
		rc = VEIL_EINVAL;
		goto out;
	}
	bool same = !veil_hpke_point_of(priv, point) &&
		    /* not secret: public points */
		    !memcmp(point, v->rec->recovery_point, RECOVERY_POINT);
	if (!same) {
		veil_diag(d, "the shares give a key that is not this CAS's recovery key");
		rc = VEIL_EINVAL;
		goto out;
	}
	if (recovery_open(priv, "veil-code-root-v1", "", v->rec->code_root_copy, v->master)) {
		veil_diag(d, "%s: the code-key root does not open with the recovery key",
			  record_path);
		rc = VEIL_EINVAL;
		goto out;
	}
	v->recovery = priv;
	*out = v;
	v = NULL;
	rc = 0;
out:
	veil_vault_close(v);
	return rc;
}

int veil_vault_recovery_rewrap(struct veil_vault *v, const char *ns, const uint8_t *in,
			       size_t in_size, uint8_t out[static VEIL_VAULT_WRAPPED_MAX],
			       size_t *out_size)
{
	if (!v->recovery)
		return VEIL_EINVAL;
	if (in_size == NONCE_SIZE + KEY_SIZE + TAG_SIZE) {
		*out_size = 0; /* a rerun: already under the key file */
		return 0;
	}
	if (!version_of(in, in_size) || in_size != P11_WRAPPED + RECOVERY_COPY)
		return VEIL_EINVAL; /* no recovery copy */
	uint8_t *key = veil_secure_alloc(KEY_SIZE), aad[300];
	size_t aad_len;
	int rc = key ? recovery_open(v->recovery, "veil-key-v1", ns, in + P11_WRAPPED, key)
		     : VEIL_ENOMEM;
	if (!rc)
		rc = aad_for("veil-key-v1", ns, aad, sizeof(aad), &aad_len);
	if (!rc)
		rc = gcm(1, v->master, aad, aad_len, key, KEY_SIZE, out, out_size);
	if (key)
		veil_secure_free(key, KEY_SIZE);
	return rc;
}

int veil_vault_recovery_write_key(struct veil_vault *v, const char *path, struct veil_diags *d)
{
	if (!v->recovery)
		return VEIL_EINVAL;
	return veil_write_file(path, v->master, KEY_SIZE, 0600, d);
}
