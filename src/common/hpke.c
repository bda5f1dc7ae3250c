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

/* HKDF-SHA256 as HMAC-SHA256 (RFC 5869) over SHA-256 fetched once.
 * OpenSSL 3.0's EVP_KDF names its digest on every call, which fetched it
 * again each time: 9% of the key process's time per attestation (perf).
 * Every output here is at most one block of Expand (32 bytes), and every
 * key at most 64 bytes (a salt or PRK of 32, or none). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_init(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); /* kept for the process's life */
}

#define HMAC_BLOCK 64

/* HMAC-SHA256(key, m1 || m2) */
static int hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *m1, size_t m1_len,
		       const uint8_t *m2, size_t m2_len, uint8_t out[static NH])
{
	uint8_t pad[HMAC_BLOCK], inner[NH];
	unsigned n = 0;
	if (key_len > HMAC_BLOCK)
		return VEIL_EINVAL;
	if (pthread_once(&sha256_once, sha256_init) || !sha256_md)
		return VEIL_EIO;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return VEIL_ENOMEM;
	memset(pad, 0x36, sizeof(pad));
	for (size_t i = 0; i < key_len; i++)
		pad[i] ^= key[i];
	int ok = EVP_DigestInit_ex2(c, sha256_md, NULL) && EVP_DigestUpdate(c, pad, sizeof(pad)) &&
		 (!m1_len || EVP_DigestUpdate(c, m1, m1_len)) &&
		 (!m2_len || EVP_DigestUpdate(c, m2, m2_len)) && EVP_DigestFinal_ex(c, inner, &n) &&
		 n == NH;
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36 ^ 0x5c; /* the ipad key becomes the opad key */
	ok = ok && EVP_DigestInit_ex2(c, sha256_md, NULL) &&
	     EVP_DigestUpdate(c, pad, sizeof(pad)) && EVP_DigestUpdate(c, inner, NH) &&
	     EVP_DigestFinal_ex(c, out, &n) && n == NH;
	EVP_MD_CTX_free(c);
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(inner, sizeof(inner));
	if (!ok)
		OPENSSL_cleanse(out, NH);
	return ok ? 0 : VEIL_EIO;
}

/* Extract(salt, ikm): an empty salt is HashLen zero bytes, which HMAC's
 * zero padding makes the same key as none */
static int hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
			uint8_t out[static NH])
{
	return hmac_sha256(salt, salt_len, ikm, ikm_len, NULL, 0, out);
}

/* Expand(prk, info, len) for len <= 32: T(1) = HMAC(prk, info || 0x01) */
static int hkdf_expand(const uint8_t prk[static NH], const uint8_t *info, size_t info_len,
		       uint8_t *out, size_t len)
{
	static const uint8_t one = 0x01;
	uint8_t t[NH];
	if (len > NH)
		return VEIL_EINVAL;
	int rc = hmac_sha256(prk, NH, info, info_len, &one, 1, t);
	if (!rc)
		memcpy(out, t, len);
	OPENSSL_cleanse(t, sizeof(t));
	return rc;
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
	int rc = hkdf_extract(salt, salt_len, in, n, out);
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
	int rc = hkdf_expand(prk, in, n, out, len);
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

/* P-256 as a group, made once: Encap works on points and scalars with it
 * (EC_POINT_mul, the same constant-time code ECDH and key generation use
 * underneath), without an EVP_PKEY per key. Through EVP, building the
 * recipient's key, the ephemeral key and the derive context cost more
 * than the two multiplications themselves (perf of the key process). */
static EC_GROUP *p256_group;
static pthread_once_t p256_group_once = PTHREAD_ONCE_INIT;

static void make_p256_group(void)
{
	p256_group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

/* Encap(pkR) for pkR's uncompressed point, with the ephemeral scalar skE
 * (random when NULL; tests fix it). OpenSSL refuses a point off the curve;
 * P-256's cofactor is 1, so skE * pkR is never the point at infinity. */
static int encap_point(const uint8_t pkrm[static VEIL_HPKE_ENC_SIZE], const BIGNUM *fixed_ske,
		       uint8_t enc[static VEIL_HPKE_ENC_SIZE], uint8_t shared_secret[static NH])
{
	if (pkrm[0] != 0x04)
		return VEIL_EINVAL;
	if (pthread_once(&p256_group_once, make_p256_group) || !p256_group)
		return VEIL_EIO;
	const EC_GROUP *g = p256_group;
	BN_CTX *bc = BN_CTX_secure_new();
	EC_POINT *pr = EC_POINT_new(g), *pe = EC_POINT_new(g), *z = EC_POINT_new(g);
	BIGNUM *sk = BN_secure_new(), *x = BN_secure_new();
	uint8_t dh_out[NH];
	int rc = VEIL_EIO;
	if (!bc || !pr || !pe || !z || !sk || !x) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (EC_POINT_oct2point(g, pr, pkrm, VEIL_HPKE_ENC_SIZE, bc) != 1) {
		rc = VEIL_EINVAL;
		goto out;
	}
	BN_set_flags(sk, BN_FLG_CONSTTIME);
	if (fixed_ske) {
		if (!BN_copy(sk, fixed_ske))
			goto out;
	} else {
		do {
			if (!BN_priv_rand_range_ex(sk, EC_GROUP_get0_order(g), 0, bc))
				goto out;
		} while (BN_is_zero(sk));
	}
	if (!EC_POINT_mul(g, pe, sk, NULL, NULL, bc) ||
	    EC_POINT_point2oct(g, pe, POINT_CONVERSION_UNCOMPRESSED, enc, VEIL_HPKE_ENC_SIZE, bc) !=
		VEIL_HPKE_ENC_SIZE ||
	    !EC_POINT_mul(g, z, NULL, pr, sk, bc) ||
	    !EC_POINT_get_affine_coordinates(g, z, x, NULL, bc) ||
	    BN_bn2binpad(x, dh_out, NH) != NH)
		goto out;
	rc = extract_and_expand(dh_out, enc, pkrm, shared_secret);
out:
	OPENSSL_cleanse(dh_out, sizeof(dh_out));
	BN_clear_free(sk);
	BN_clear_free(x);
	EC_POINT_clear_free(z);
	EC_POINT_clear_free(pe);
	EC_POINT_free(pr);
	BN_CTX_free(bc);
	return rc;
}

int veil_hpke_point_of(EVP_PKEY *key, uint8_t point[static VEIL_HPKE_ENC_SIZE])
{
	if (!veil_hpke_key_is_p256(key))
		return VEIL_EINVAL;
	return serialize_public(key, point);
}

/* Encap(pkR) with the ephemeral key skE (a fresh one when NULL) */
static int encap(EVP_PKEY *pkr, EVP_PKEY *ske, uint8_t enc[static VEIL_HPKE_ENC_SIZE],
		 uint8_t shared_secret[static NH])
{
	uint8_t pkrm[VEIL_HPKE_ENC_SIZE];
	BIGNUM *s = NULL;
	if (ske && (!veil_hpke_key_is_p256(ske) ||
		    !EVP_PKEY_get_bn_param(ske, OSSL_PKEY_PARAM_PRIV_KEY, &s)))
		return VEIL_EINVAL;
	int rc = veil_hpke_point_of(pkr, pkrm);
	if (!rc)
		rc = encap_point(pkrm, s, enc, shared_secret);
	BN_clear_free(s);
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

int veil_hpke_seal_to_point(const uint8_t recipient[static VEIL_HPKE_ENC_SIZE], const uint8_t *info,
			    size_t info_len, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
			    size_t pt_len, uint8_t enc[static VEIL_HPKE_ENC_SIZE], uint8_t **ct,
			    size_t *ct_len)
{
	uint8_t ss[NH], key[VEIL_HPKE_KEY_SIZE], nonce[VEIL_HPKE_NONCE_SIZE], e[VEIL_HPKE_ENC_SIZE];
	uint8_t *out = NULL;
	if (pt_len > VEIL_HPKE_PT_MAX)
		return VEIL_ELIMIT;
	int rc = encap_point(recipient, NULL, e, ss);
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

int veil_hpke_seal(EVP_PKEY *recipient_pub, const uint8_t *info, size_t info_len,
		   const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
		   uint8_t enc[static VEIL_HPKE_ENC_SIZE], uint8_t **ct, size_t *ct_len)
{
	uint8_t point[VEIL_HPKE_ENC_SIZE];
	int rc = veil_hpke_point_of(recipient_pub, point);
	return rc ? rc
		  : veil_hpke_seal_to_point(point, info, info_len, aad, aad_len, pt, pt_len, enc,
					    ct, ct_len);
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
