/* PKCS#11 master keys (vault_p11.h). The module is dlopen'd and driven
 * through its C_GetFunctionList table (p11-kit's pkcs11.h for the types; no
 * wrapper library). Data keys are wrapped with C_Encrypt/C_Decrypt and
 * CKM_AES_GCM inside the token: a 12-byte nonce made here, a 128-bit tag,
 * the namespace binding as AAD (vault.c).
 *
 * Sessions: a PKCS#11 session serves one call at a time, the key process
 * serves many channels at once, so there is a pool of SESSIONS logged-in
 * sessions, taken with a trylock as the channels are. Each loaded key is
 * copied into every session as a session object (C_CopyObject with
 * CKA_TOKEN false; CKA_SENSITIVE and CKA_EXTRACTABLE are kept, the copy is
 * in the token too): softhsm2 re-reads a token object's file (open, fcntl
 * locks) at every use to see whether another process changed it, which the
 * key process's seccomp filter refuses; a session object is in memory. With
 * the copies made before the filter, C_Encrypt and C_Decrypt make no system
 * call beyond the filter's (keyproc.c; measured with strace). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <p11-kit/pkcs11.h>

#include "veil/store.h"

#include "vault_p11.h"

#define SESSIONS 8
#define NONCE_SIZE 12
#define TAG_SIZE 16

struct p11_session {
	pthread_mutex_t lock;
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE key[P11_KEYS_MAX]; /* the session copies, by slot */
};

struct p11 {
	void *module;
	CK_FUNCTION_LIST_PTR f;
	bool initialized;
	CK_SLOT_ID slot;
	char token[33];
	struct p11_session s[SESSIONS];
	size_t nsessions;
	uint32_t version[P11_KEYS_MAX]; /* 0: slot free */
};

static const char *rv_name(CK_RV rv)
{
	switch (rv) {
	case CKR_PIN_INCORRECT:
		return "CKR_PIN_INCORRECT";
	case CKR_PIN_LOCKED:
		return "CKR_PIN_LOCKED";
	case CKR_PIN_LEN_RANGE:
		return "CKR_PIN_LEN_RANGE";
	case CKR_USER_PIN_NOT_INITIALIZED:
		return "CKR_USER_PIN_NOT_INITIALIZED";
	case CKR_TOKEN_NOT_PRESENT:
		return "CKR_TOKEN_NOT_PRESENT";
	case CKR_MECHANISM_INVALID:
		return "CKR_MECHANISM_INVALID";
	case CKR_ENCRYPTED_DATA_INVALID:
		return "CKR_ENCRYPTED_DATA_INVALID";
	case CKR_ATTRIBUTE_SENSITIVE:
		return "CKR_ATTRIBUTE_SENSITIVE";
	case CKR_DEVICE_ERROR:
		return "CKR_DEVICE_ERROR";
	case CKR_GENERAL_ERROR:
		return "CKR_GENERAL_ERROR";
	default:
		return "a PKCS#11 error";
	}
}

/* the token's label: 32 bytes padded with blanks */
static void label_of(const CK_UTF8CHAR in[32], char out[33])
{
	size_t n = 32;
	while (n && in[n - 1] == ' ')
		n--;
	memcpy(out, in, n);
	out[n] = 0;
}

static struct p11_session *session_take(struct p11 *p)
{
	static __thread size_t hint;
	for (size_t i = 0; i < p->nsessions; i++) {
		struct p11_session *s = &p->s[(hint + i) % p->nsessions];
		if (!pthread_mutex_trylock(&s->lock)) {
			hint = (size_t)(s - p->s);
			return s;
		}
	}
	struct p11_session *s = &p->s[hint % p->nsessions];
	pthread_mutex_lock(&s->lock);
	return s;
}

int p11_open(const char *module, const char *token, const char *pin, struct p11 **out,
	     struct veil_diags *d)
{
	struct p11 *p = calloc(1, sizeof(*p));
	CK_SLOT_ID *slots = NULL;
	int rc = VEIL_EIO;
	if (!p)
		return VEIL_ENOMEM;
	snprintf(p->token, sizeof(p->token), "%s", token);
	if (strlen(token) > 32) {
		veil_diag(d, "PKCS#11 token label '%s' is longer than 32 bytes", token);
		rc = VEIL_EINVAL;
		goto out;
	}
	if (!(p->module = dlopen(module, RTLD_NOW | RTLD_LOCAL))) {
		veil_diag(d, "PKCS#11 module %s cannot be loaded: %s", module, dlerror());
		goto out;
	}
	CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(p->module, "C_GetFunctionList");
	if (!get || get(&p->f) != CKR_OK || !p->f) {
		veil_diag(d, "%s is not a PKCS#11 module (no C_GetFunctionList)", module);
		goto out;
	}
	CK_C_INITIALIZE_ARGS ia = {.flags = CKF_OS_LOCKING_OK};
	CK_RV rv = p->f->C_Initialize(&ia);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		veil_diag(d, "PKCS#11 module %s does not initialise (%s, 0x%lx)", module,
			  rv_name(rv), (unsigned long)rv);
		goto out;
	}
	p->initialized = rv == CKR_OK;
	CK_ULONG n = 0;
	if (p->f->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK ||
	    !(slots = calloc(n ? n : 1, sizeof(*slots))) ||
	    p->f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) {
		veil_diag(d, "PKCS#11 module %s lists no slots", module);
		goto out;
	}
	bool found = false;
	for (CK_ULONG i = 0; i < n && !found; i++) {
		CK_TOKEN_INFO ti;
		char label[33];
		if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		label_of(ti.label, label);
		if (!strcmp(label, token)) {
			found = true;
			p->slot = slots[i];
		}
	}
	if (!found) {
		veil_diag(d, "PKCS#11 token '%s' not found (module %s has %lu token%s)", token,
			  module, (unsigned long)n, n == 1 ? "" : "s");
		goto out;
	}
	for (size_t i = 0; i < SESSIONS; i++) {
		rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
					 &p->s[i].h);
		if (rv != CKR_OK) {
			veil_diag(d, "PKCS#11 token '%s': cannot open a session (%s)", token,
				  rv_name(rv));
			goto out;
		}
		pthread_mutex_init(&p->s[i].lock, NULL);
		p->nsessions++;
	}
	/* one login covers every session of the application */
	rv = p->f->C_Login(p->s[0].h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		veil_diag(d, "PKCS#11 token '%s': login refused (%s%s)", token, rv_name(rv),
			  rv == CKR_PIN_INCORRECT ? ": wrong PIN" : "");
		goto out;
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	free(slots);
	p11_close(p);
	return rc;
}

void p11_close(struct p11 *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nsessions; i++) {
		p->f->C_CloseSession(p->s[i].h);
		pthread_mutex_destroy(&p->s[i].lock);
	}
	if (p->initialized)
		p->f->C_Finalize(NULL);
	/* not dlclose'd: a module's threads or atexit handlers may outlive it */
	free(p);
}

static int find_key(struct p11 *p, CK_SESSION_HANDLE s, const char *label, CK_OBJECT_HANDLE *out,
		    CK_ULONG *count)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_TOKEN, &yes, sizeof(yes)},
			    {CKA_LABEL, (void *)label, strlen(label)}};
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	if (p->f->C_FindObjectsInit(s, t, VEIL_ARRAY_LEN(t)) != CKR_OK)
		return VEIL_EIO;
	CK_RV rv = p->f->C_FindObjects(s, h, 2, &n);
	p->f->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		return VEIL_EIO;
	*count = n;
	if (n)
		*out = h[0];
	return 0;
}

int p11_key_create(struct p11 *p, const char *label, struct veil_diags *d)
{
	struct p11_session *s = session_take(p);
	CK_OBJECT_HANDLE h = 0;
	CK_ULONG n = 0;
	int rc = find_key(p, s->h, label, &h, &n);
	if (!rc && n)
		rc = VEIL_EEXIST; /* the caller says what it means */
	if (!rc) {
		CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
		CK_KEY_TYPE kt = CKK_AES;
		CK_ULONG len = 32;
		CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
		CK_ATTRIBUTE t[] = {
		    {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &kt, sizeof(kt)},
		    {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &yes, sizeof(yes)},
		    {CKA_PRIVATE, &yes, sizeof(yes)},   {CKA_SENSITIVE, &yes, sizeof(yes)},
		    {CKA_EXTRACTABLE, &no, sizeof(no)}, {CKA_ENCRYPT, &yes, sizeof(yes)},
		    {CKA_DECRYPT, &yes, sizeof(yes)},   {CKA_WRAP, &no, sizeof(no)},
		    {CKA_UNWRAP, &no, sizeof(no)},      {CKA_LABEL, (void *)label, strlen(label)}};
		CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
		CK_RV rv = p->f->C_GenerateKey(s->h, &m, t, VEIL_ARRAY_LEN(t), &h);
		if (rv != CKR_OK) {
			veil_diag(d, "PKCS#11 token '%s': cannot make an AES-256 key (%s, 0x%lx)",
				  p->token, rv_name(rv), (unsigned long)rv);
			rc = VEIL_EIO;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int p11_key_load(struct p11 *p, uint32_t version, const char *label, struct veil_diags *d)
{
	size_t slot = P11_KEYS_MAX;
	for (size_t i = 0; i < P11_KEYS_MAX; i++)
		if (p->version[i] == version || (!p->version[i] && slot == P11_KEYS_MAX))
			slot = i;
	if (slot == P11_KEYS_MAX || !version)
		return VEIL_ELIMIT;
	CK_OBJECT_HANDLE h = 0;
	CK_ULONG n = 0;
	int rc = find_key(p, p->s[0].h, label, &h, &n);
	if (!rc && n != 1) {
		veil_diag(d, "PKCS#11 token '%s' holds %s key labelled '%s' (the master key)",
			  p->token, n ? "more than one" : "no", label);
		return VEIL_EINVAL;
	}
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE t[] = {{CKA_TOKEN, &no, sizeof(no)}};
	for (size_t i = 0; !rc && i < p->nsessions; i++) {
		CK_RV rv = p->f->C_CopyObject(p->s[i].h, h, t, 1, &p->s[i].key[slot]);
		if (rv != CKR_OK) {
			veil_diag(d, "PKCS#11 token '%s': key '%s' cannot be used (%s, 0x%lx)",
				  p->token, label, rv_name(rv), (unsigned long)rv);
			rc = VEIL_EIO;
		}
	}
	if (!rc)
		p->version[slot] = version;
	return rc;
}

int p11_key_destroy(struct p11 *p, const char *label, struct veil_diags *d)
{
	struct p11_session *s = session_take(p);
	CK_OBJECT_HANDLE h = 0;
	CK_ULONG n = 0;
	int rc = find_key(p, s->h, label, &h, &n);
	if (!rc && n && p->f->C_DestroyObject(s->h, h) != CKR_OK) {
		veil_diag(d, "PKCS#11 token '%s': cannot destroy key '%s'", p->token, label);
		rc = VEIL_EIO;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int slot_of(const struct p11 *p, uint32_t version)
{
	for (int i = 0; i < P11_KEYS_MAX; i++)
		if (version && p->version[i] == version)
			return i;
	return -1;
}

int p11_wrap(struct p11 *p, uint32_t version, const uint8_t *aad, size_t aad_len,
	     const uint8_t key[static 32], uint8_t out[static P11_WRAPPED_SIZE])
{
	int slot = slot_of(p, version);
	if (slot < 0)
		return VEIL_EINVAL;
	if (RAND_bytes(out, NONCE_SIZE) != 1)
		return VEIL_EIO;
	CK_GCM_PARAMS gp = {.iv_ptr = out,
			    .iv_len = NONCE_SIZE,
			    .iv_bits = NONCE_SIZE * 8,
			    .aad_ptr = (unsigned char *)aad,
			    .aad_len = aad_len,
			    .tag_bits = TAG_SIZE * 8};
	CK_MECHANISM m = {CKM_AES_GCM, &gp, sizeof(gp)};
	CK_ULONG n = 32 + TAG_SIZE;
	struct p11_session *s = session_take(p);
	CK_RV rv = p->f->C_EncryptInit(s->h, &m, s->key[slot]);
	if (rv == CKR_OK)
		rv = p->f->C_Encrypt(s->h, (CK_BYTE_PTR)key, 32, out + NONCE_SIZE, &n);
	pthread_mutex_unlock(&s->lock);
	return rv == CKR_OK && n == 32 + TAG_SIZE ? 0 : VEIL_EIO;
}

int p11_unwrap(struct p11 *p, uint32_t version, const uint8_t *aad, size_t aad_len,
	       const uint8_t in[static P11_WRAPPED_SIZE], uint8_t key[static 32])
{
	int slot = slot_of(p, version);
	if (slot < 0)
		return VEIL_EINVAL;
	CK_GCM_PARAMS gp = {.iv_ptr = (unsigned char *)in,
			    .iv_len = NONCE_SIZE,
			    .iv_bits = NONCE_SIZE * 8,
			    .aad_ptr = (unsigned char *)aad,
			    .aad_len = aad_len,
			    .tag_bits = TAG_SIZE * 8};
	CK_MECHANISM m = {CKM_AES_GCM, &gp, sizeof(gp)};
	/* room for the tag too: some modules ask for it before they check it */
	uint8_t buf[32 + TAG_SIZE];
	CK_ULONG n = sizeof(buf);
	struct p11_session *s = session_take(p);
	CK_RV rv = p->f->C_DecryptInit(s->h, &m, s->key[slot]);
	if (rv == CKR_OK)
		rv = p->f->C_Decrypt(s->h, (CK_BYTE_PTR)in + NONCE_SIZE, 32 + TAG_SIZE, buf, &n);
	pthread_mutex_unlock(&s->lock);
	int rc = rv == CKR_OK && n == 32 ? 0 : VEIL_EINVAL;
	if (!rc)
		memcpy(key, buf, 32);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}
