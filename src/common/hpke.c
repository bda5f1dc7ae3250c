/* HPKE, RFC 9180 base mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256,
 * AES-256-GCM (see hpke.h). Section numbers are the RFC's. */
#include "veil/hpke.h"
#include "veil/common.h"
#include "veil/secrets.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#define NH 32 /* HKDF-SHA256's output size, and DHKEM(P-256)'s Nsecret */
#define LABEL_V1 "HPKE-v1"
/* the longest label below ("shared_secret") */
#define LABEL_MAX 13

/* suite_id, section 4.1 and 5.1 */
static const uint8_t kem_suite[] = {'K', 'E', 'M', 0x00, 0x10};
static const uint8_t hpke_suite[] = {'H', 'P', 'K', 'E', 0x00, 0x10, 0x00, 0x01, 0x00, 0x02};

struct suite {
	const uint8_t *id;
	size_t len;
};
static const struct suite suite_kem = {kem_suite, sizeof(kem_suite)};
static const struct suite suite_hpke = {hpke_suite, sizeof(hpke_suite)};

/* HKDF, fetched once: fetching it by name for each of a seal's eight HKDF
 * calls cost more than the calls (OpenSSL 3.0's HKDF cannot be duplicated
 * with its digest set, so the digest is still named each time) */
static EVP_KDF *hkdf_kdf;
static pthread_once_t hkdf_once = PTHREAD_ONCE_INIT;

static void hkdf_init(void)
{
	hkdf_kdf = EVP_KDF_fetch(NULL, "HKDF", NULL); /* kept for the process's life */
}

static int hkdf(int mode, const uint8_t *salt, size_t salt_len, const uint8_t *key, size_t key_len,
		const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
	pthread_once(&hkdf_once, hkdf_init);
	EVP_KDF_CTX *c = hkdf_kdf ? EVP_KDF_CTX_new(hkdf_kdf) : NULL;
	OSSL_PARAM p[6], *q = p;
	*q++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
	/* an empty salt is HMAC's zero-length key, which is what OpenSSL uses
	 * without one */
	if (salt_len)
		*q++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	if (info_len)
		*q++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	*q = OSSL_PARAM_construct_end();
	int ok = c && EVP_KDF_derive(c, out, out_len, p) > 0;
	EVP_KDF_CTX_free(c); /* wipes its copies of key, salt and info */
	return ok ? 0 : VEIL_EIO;
}

/* LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id ||
 * label || ikm), section 4 */
static int labeled_extract(const struct suite *s, const uint8_t *salt, size_t salt_len,
			   const char *label, const uint8_t *ikm, size_t ikm_len,
			   uint8_t out[static NH])
{
	size_t ll = strlen(label), n = sizeof(LABEL_V1) - 1 + s->len + ll + ikm_len;
	if (ikm_len > VEIL_HPKE_PT_MAX)
		return VEIL_ELIMIT;
	uint8_t *in = malloc(n), *w = in;
	if (!in)
		return VEIL_ENOMEM;
	memcpy(w, LABEL_V1, sizeof(LABEL_V1) - 1);
	w += sizeof(LABEL_V1) - 1;
	memcpy(w, s->id, s->len);
	w += s->len;
	memcpy(w, label, ll);
	w += ll;
	if (ikm_len)
		memcpy(w, ikm, ikm_len);
	int rc = hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, salt_len, in, n, NULL, 0, out, NH);
	OPENSSL_cleanse(in, n); /* the DH output, for eae_prk */
	free(in);
	return rc;
}

/* LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) || "HPKE-v1" ||
 * suite_id || label || info, L), section 4. info here is at most a KEM
 * context (130 bytes) or a key schedule context (65). */
static int labeled_expand(const struct suite *s, const uint8_t prk[static NH], const char *label,
			  const uint8_t *info, size_t info_len, uint8_t *out, size_t len)
{
	uint8_t
	    in[2 + sizeof(LABEL_V1) - 1 + sizeof(hpke_suite) + LABEL_MAX + 2 * VEIL_HPKE_ENC_SIZE];
	size_t ll = strlen(label), n = 2 + sizeof(LABEL_V1) - 1 + s->len + ll + info_len;
	if (ll > LABEL_MAX || n > sizeof(in))
		return VEIL_EINVAL;
	uint8_t *w = in;
	*w++ = (uint8_t)(len >> 8);
	*w++ = (uint8_t)len;
	memcpy(w, LABEL_V1, sizeof(LABEL_V1) - 1);
	w += sizeof(LABEL_V1) - 1;
	memcpy(w, s->id, s->len);
	w += s->len;
	memcpy(w, label, ll);
	w += ll;
	if (info_len)
		memcpy(w, info, info_len);
	int rc = hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, NULL, 0, prk, NH, in, n, out, len);
	OPENSSL_cleanse(in, sizeof(in));
	return rc;
}

int veil_hpke_key_is_p256(EVP_PKEY *key)
{
	char group[32];
	size_t n = 0;
	return key && EVP_PKEY_is_a(key, "EC") &&
	       EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					      &n) &&
	       !strcmp(group, SN_X9_62_prime256v1);
}

/* SerializePublicKey: the uncompressed point */
static int serialize_public(EVP_PKEY *key, uint8_t out[static VEIL_HPKE_ENC_SIZE])
{
	uint8_t buf[VEIL_HPKE_ENC_SIZE + 8];
	size_t n = 0;
	if (!EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf,
					     sizeof(buf), &n) ||
	    n != VEIL_HPKE_ENC_SIZE || buf[0] != 0x04)
		return VEIL_EIO;
	memcpy(out, buf, VEIL_HPKE_ENC_SIZE);
	return 0;
}

/* P-256's domain parameters as a key without key material, made once:
 * the template a public key from its point is made on */
static EVP_PKEY *p256_params;
static pthread_once_t p256_once = PTHREAD_ONCE_INIT;

static void make_p256_params(void)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (c && EVP_PKEY_paramgen_init(c) > 0 &&
	    EVP_PKEY_CTX_set_group_name(c, SN_X9_62_prime256v1) > 0)
		(void)EVP_PKEY_paramgen(c, &p256_params); /* NULL on failure: checked by the user */
	EVP_PKEY_CTX_free(c);
}

/* DeserializePublicKey: an uncompressed point on P-256 (OpenSSL refuses a
 * point off the curve and the point at infinity). The parameters are
 * copied from a template, not built from the group's name each time:
 * 12 us instead of 44 (EVP_PKEY_fromdata, measured on the 2-core VM). */
int veil_hpke_public_from_point(const uint8_t enc[static VEIL_HPKE_ENC_SIZE], EVP_PKEY **out)
{
	if (enc[0] != 0x04)
		return VEIL_EINVAL;
	if (pthread_once(&p256_once, make_p256_params) || !p256_params)
		return VEIL_EIO;
	EVP_PKEY *k = EVP_PKEY_new();
	if (!k)
		return VEIL_ENOMEM;
	if (EVP_PKEY_copy_parameters(k, p256_params) != 1 ||
	    EVP_PKEY_set1_encoded_public_key(k, enc, VEIL_HPKE_ENC_SIZE) != 1) {
		EVP_PKEY_free(k);
		return VEIL_EINVAL;
	}
	*out = k;
	return 0;
}

/* DH(sk, pk): the x coordinate, 32 bytes. pk is not validated again here:
 * OpenSSL decoded it (a certificate's key, or deserialize_public) through
 * EC_POINT_oct2point, which refuses a point off the curve, and P-256's
 * cofactor is 1, so every point on it has the group's order. The full check
 * EVP_PKEY_derive_set_peer makes is another scalar multiplication: it was
 * half of a seal's time. */
static int dh(EVP_PKEY *sk, EVP_PKEY *pk, uint8_t out[static NH])
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, sk, NULL);
	size_t n = NH;
	int ok = c && EVP_PKEY_derive_init(c) > 0 && EVP_PKEY_derive_set_peer_ex(c, pk, 0) > 0 &&
		 EVP_PKEY_derive(c, out, &n) > 0 && n == NH;
	EVP_PKEY_CTX_free(c);
	if (!ok)
		OPENSSL_cleanse(out, NH);
	return ok ? 0 : VEIL_EINVAL;
}

/* ExtractAndExpand(dh, enc || pkRm), section 4.1 */
static int extract_and_expand(uint8_t dh_out[static NH],
			      const uint8_t enc[static VEIL_HPKE_ENC_SIZE],
			      const uint8_t pkrm[static VEIL_HPKE_ENC_SIZE],
			      uint8_t shared_secret[static NH])
{
	uint8_t prk[NH], ctx[2 * VEIL_HPKE_ENC_SIZE];
	memcpy(ctx, enc, VEIL_HPKE_ENC_SIZE);
	memcpy(ctx + VEIL_HPKE_ENC_SIZE, pkrm, VEIL_HPKE_ENC_SIZE);
	int rc = labeled_extract(&suite_kem, NULL, 0, "eae_prk", dh_out, NH, prk);
	if (!rc)
		rc = labeled_expand(&suite_kem, prk, "shared_secret", ctx, sizeof(ctx),
				    shared_secret, NH);
	OPENSSL_cleanse(prk, sizeof(prk));
	return rc;
}

/* A fresh key pair on pkR's group (P-256, checked by the caller), made with
 * pkR as the template: the provider copies its group. EVP_EC_gen builds the
 * group from its name every time, 12% of a seal's time in the key process
 * (perf, bench/cas_vs_nginx.sh's attestations). */
static int ephemeral_for(EVP_PKEY *pkr, EVP_PKEY **out)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkr, NULL);
	int ok = c && EVP_PKEY_keygen_init(c) > 0 && EVP_PKEY_keygen(c, out) > 0;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : VEIL_EIO;
}

/* Encap(pkR) with the ephemeral key skE (made here when NULL) */
static int encap(EVP_PKEY *pkr, EVP_PKEY *ske, uint8_t enc[static VEIL_HPKE_ENC_SIZE],
		 uint8_t shared_secret[static NH])
{
	uint8_t pkrm[VEIL_HPKE_ENC_SIZE], dh_out[NH];
	EVP_PKEY *made = NULL;
	int rc;
	if (!veil_hpke_key_is_p256(pkr) || (ske && !veil_hpke_key_is_p256(ske)))
		return VEIL_EINVAL;
	if (!ske && (rc = ephemeral_for(pkr, &made)))
		return rc;
	if (!ske)
		ske = made;
	rc = serialize_public(ske, enc);
	if (!rc)
		rc = serialize_public(pkr, pkrm);
	if (!rc)
		rc = dh(ske, pkr, dh_out);
	if (!rc)
		rc = extract_and_expand(dh_out, enc, pkrm, shared_secret);
	OPENSSL_cleanse(dh_out, sizeof(dh_out));
	EVP_PKEY_free(made); /* OpenSSL wipes the private scalar */
	return rc;
}

/* Decap(enc, skR) */
static int decap(EVP_PKEY *skr, const uint8_t enc[static VEIL_HPKE_ENC_SIZE],
		 uint8_t shared_secret[static NH])
{
	uint8_t pkrm[VEIL_HPKE_ENC_SIZE], dh_out[NH];
	EVP_PKEY *pke = NULL;
	if (!veil_hpke_key_is_p256(skr))
		return VEIL_EINVAL;
	int rc = veil_hpke_public_from_point(enc, &pke);
	if (!rc)
		rc = serialize_public(skr, pkrm);
	if (!rc)
		rc = dh(skr, pke, dh_out);
	if (!rc)
		rc = extract_and_expand(dh_out, enc, pkrm, shared_secret);
	OPENSSL_cleanse(dh_out, sizeof(dh_out));
	EVP_PKEY_free(pke);
	return rc;
}

/* KeySchedule(mode_base, shared_secret, info, psk = "", psk_id = ""),
 * section 5.1 (the exporter secret is not needed) */
static int key_schedule(const uint8_t shared_secret[static NH], const uint8_t *info,
			size_t info_len, uint8_t key[static VEIL_HPKE_KEY_SIZE],
			uint8_t base_nonce[static VEIL_HPKE_NONCE_SIZE])
{
	uint8_t ctx[1 + 2 * NH], secret[NH];
	ctx[0] = 0x00; /* mode_base */
	int rc = labeled_extract(&suite_hpke, NULL, 0, "psk_id_hash", NULL, 0, ctx + 1);
	if (!rc)
		rc = labeled_extract(&suite_hpke, NULL, 0, "info_hash", info, info_len,
				     ctx + 1 + NH);
	if (!rc)
		rc = labeled_extract(&suite_hpke, shared_secret, NH, "secret", NULL, 0, secret);
	if (!rc)
		rc = labeled_expand(&suite_hpke, secret, "key", ctx, sizeof(ctx), key,
				    VEIL_HPKE_KEY_SIZE);
	if (!rc)
		rc = labeled_expand(&suite_hpke, secret, "base_nonce", ctx, sizeof(ctx), base_nonce,
				    VEIL_HPKE_NONCE_SIZE);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc) {
		OPENSSL_cleanse(key, VEIL_HPKE_KEY_SIZE);
		OPENSSL_cleanse(base_nonce, VEIL_HPKE_NONCE_SIZE);
	}
	return rc;
}

/* ComputeNonce(seq): base_nonce XOR I2OSP(seq, Nn), section 5.2 */
static void compute_nonce(const uint8_t base[static VEIL_HPKE_NONCE_SIZE], uint64_t seq,
			  uint8_t out[static VEIL_HPKE_NONCE_SIZE])
{
	memcpy(out, base, VEIL_HPKE_NONCE_SIZE);
	for (int i = VEIL_HPKE_NONCE_SIZE - 1; i >= VEIL_HPKE_NONCE_SIZE - 8; i--, seq >>= 8)
		out[i] ^= (uint8_t)(seq & 0xff);
}

/* AES-256-GCM: ct is pt_len + 16 bytes (the tag last) */
static int aead_seal(const uint8_t key[static VEIL_HPKE_KEY_SIZE],
		     const uint8_t nonce[static VEIL_HPKE_NONCE_SIZE], const uint8_t *aad,
		     size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *ct)
{
	if (pt_len > VEIL_HPKE_PT_MAX || aad_len > VEIL_HPKE_PT_MAX)
		return VEIL_ELIMIT;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, m = 0;
	int ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) &&
		 (!aad_len || EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len)) &&
		 (!pt_len || EVP_EncryptUpdate(c, ct, &n, pt, (int)pt_len)) &&
		 EVP_EncryptFinal_ex(c, ct + (pt_len ? n : 0), &m) &&
		 EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, VEIL_HPKE_TAG_SIZE, ct + pt_len);
	EVP_CIPHER_CTX_free(c); /* wipes the key schedule */
	return ok ? 0 : VEIL_EIO;
}

/* the reverse; pt (ct_len - 16 bytes) is wiped when the tag is wrong */
static int aead_open(const uint8_t key[static VEIL_HPKE_KEY_SIZE],
		     const uint8_t nonce[static VEIL_HPKE_NONCE_SIZE], const uint8_t *aad,
		     size_t aad_len, const uint8_t *ct, size_t ct_len, uint8_t *pt)
{
	if (ct_len < VEIL_HPKE_TAG_SIZE)
		return VEIL_EINVAL;
	size_t pt_len = ct_len - VEIL_HPKE_TAG_SIZE;
	if (pt_len > VEIL_HPKE_PT_MAX || aad_len > VEIL_HPKE_PT_MAX)
		return VEIL_ELIMIT;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, m = 0;
	int ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) &&
		 (!aad_len || EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len)) &&
		 (!pt_len || EVP_DecryptUpdate(c, pt, &n, ct, (int)pt_len)) &&
		 EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, VEIL_HPKE_TAG_SIZE,
				     (void *)(ct + pt_len)) &&
		 EVP_DecryptFinal_ex(c, pt + (pt_len ? n : 0), &m) > 0;
	EVP_CIPHER_CTX_free(c);
	if (!ok && pt_len)
		OPENSSL_cleanse(pt, pt_len);
	return ok ? 0 : VEIL_EINVAL;
}

int veil_hpke_seal(EVP_PKEY *recipient_pub, const uint8_t *info, size_t info_len,
		   const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
		   uint8_t enc[static VEIL_HPKE_ENC_SIZE], uint8_t **ct, size_t *ct_len)
{
	uint8_t ss[NH], key[VEIL_HPKE_KEY_SIZE], nonce[VEIL_HPKE_NONCE_SIZE], e[VEIL_HPKE_ENC_SIZE];
	uint8_t *out = NULL;
	if (pt_len > VEIL_HPKE_PT_MAX)
		return VEIL_ELIMIT;
	int rc = encap(recipient_pub, NULL, e, ss);
	if (!rc)
		rc = key_schedule(ss, info, info_len, key, nonce);
	if (!rc && !(out = malloc(pt_len + VEIL_HPKE_TAG_SIZE)))
		rc = VEIL_ENOMEM;
	/* sequence number 0: the nonce is the base nonce */
	if (!rc)
		rc = aead_seal(key, nonce, aad, aad_len, pt, pt_len, out);
	OPENSSL_cleanse(ss, sizeof(ss));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	if (rc) {
		if (out)
			OPENSSL_cleanse(out, pt_len + VEIL_HPKE_TAG_SIZE);
		free(out);
		return rc;
	}
	memcpy(enc, e, sizeof(e));
	*ct = out;
	*ct_len = pt_len + VEIL_HPKE_TAG_SIZE;
	return 0;
}

int veil_hpke_open(EVP_PKEY *recipient_priv, const uint8_t enc[static VEIL_HPKE_ENC_SIZE],
		   const uint8_t *info, size_t info_len, const uint8_t *aad, size_t aad_len,
		   const uint8_t *ct, size_t ct_len, uint8_t **pt, size_t *pt_len)
{
	uint8_t ss[NH], key[VEIL_HPKE_KEY_SIZE], nonce[VEIL_HPKE_NONCE_SIZE];
	uint8_t *out = NULL;
	if (ct_len < VEIL_HPKE_TAG_SIZE)
		return VEIL_EINVAL;
	size_t n = ct_len - VEIL_HPKE_TAG_SIZE;
	if (n > VEIL_HPKE_PT_MAX)
		return VEIL_ELIMIT;
	int rc = decap(recipient_priv, enc, ss);
	if (!rc)
		rc = key_schedule(ss, info, info_len, key, nonce);
	if (!rc && !(out = veil_secure_alloc(n + 1)))
		rc = VEIL_ENOMEM;
	if (!rc)
		rc = aead_open(key, nonce, aad, aad_len, ct, ct_len, out);
	OPENSSL_cleanse(ss, sizeof(ss));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	if (rc) {
		if (out)
			veil_secure_free(out, n + 1);
		return rc;
	}
	out[n] = 0;
	*pt = out;
	*pt_len = n;
	return 0;
}

/* ---- tests only ---- */

int veil_hpke_p256_key_for_test(const uint8_t sk[static 32], EVP_PKEY **out)
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pub = g ? EC_POINT_new(g) : NULL;
	BIGNUM *d = BN_bin2bn(sk, 32, NULL);
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *p = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;
	uint8_t pt[VEIL_HPKE_ENC_SIZE];
	int ok = pub && d && b && c && EC_POINT_mul(g, pub, d, NULL, NULL, NULL) &&
		 EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, pt, sizeof(pt), NULL) ==
		     sizeof(pt) &&
		 OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
						 0) &&
		 OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, d) &&
		 OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)) &&
		 (p = OSSL_PARAM_BLD_to_param(b)) && EVP_PKEY_fromdata_init(c) > 0 &&
		 EVP_PKEY_fromdata(c, &k, EVP_PKEY_KEYPAIR, p) > 0;
	OSSL_PARAM_free(p);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_CTX_free(c);
	BN_clear_free(d);
	EC_POINT_free(pub);
	EC_GROUP_free(g);
	if (!ok) {
		EVP_PKEY_free(k);
		return VEIL_EIO;
	}
	*out = k;
	return 0;
}

int veil_hpke_setup_base_s_for_test(EVP_PKEY *recipient_pub, EVP_PKEY *ephemeral,
				    const uint8_t *info, size_t info_len,
				    uint8_t enc[static VEIL_HPKE_ENC_SIZE],
				    uint8_t shared_secret[static 32],
				    uint8_t key[static VEIL_HPKE_KEY_SIZE],
				    uint8_t base_nonce[static VEIL_HPKE_NONCE_SIZE])
{
	if (!ephemeral)
		return VEIL_EINVAL;
	int rc = encap(recipient_pub, ephemeral, enc, shared_secret);
	if (!rc)
		rc = key_schedule(shared_secret, info, info_len, key, base_nonce);
	return rc;
}

int veil_hpke_seal_seq_for_test(const uint8_t key[static VEIL_HPKE_KEY_SIZE],
				const uint8_t base_nonce[static VEIL_HPKE_NONCE_SIZE], uint64_t seq,
				const uint8_t *aad, size_t aad_len, const uint8_t *pt,
				size_t pt_len, uint8_t *ct)
{
	uint8_t nonce[VEIL_HPKE_NONCE_SIZE];
	compute_nonce(base_nonce, seq, nonce);
	return aead_seal(key, nonce, aad, aad_len, pt, pt_len, ct);
}
