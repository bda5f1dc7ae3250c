/* Master key (file backend) and AES-256-GCM sealing of namespace payloads.
 *
 * wrapped key = nonce(12) || GCM(master, data key 32) || tag(16), AAD "veil-key-v1\0" ns
 * sealed blob = nonce(12) || GCM(data key, payload) || tag(16),  AAD "veil-blob-v1\0" ns */
#include <errno.h>
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

#include "veil/secrets.h"
#include "veil/store.h"

#define KEY_SIZE 32
#define NONCE_SIZE 12
#define TAG_SIZE 16

struct veil_vault {
	uint8_t *master; /* secure memory; NULL in a remote vault */
	const struct veil_vault_remote *remote;
};

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
