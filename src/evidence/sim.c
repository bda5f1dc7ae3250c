/* The simulation platform: evidence signed by a local platform key.
 *
 * {"platform":"sim","version":1,"platform_key":"<SPKI PEM>",
 *  "claims":"<JSON text>","signature":"<base64 ECDSA-SHA256 over the claims text>"}
 * claims: {"measurement":hex,"report_data":hex,"debug":true,"timestamp":N,
 *          "tcb_status":"up-to-date","config_id":"NAMESPACE/SERVICE"}
 * timestamp: seconds since the epoch when veil-las signed; config_id: the
 * configuration veil-run asked evidence for (absent in an older veil-las's
 * evidence, which the CAS refuses).
 * The claims travel as a string so the signed bytes are exactly the sent ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "internal.h"
#include "veil/evidence.h"
#include "veil/tls.h"

int veil_evidence_sim_sign(EVP_PKEY *platform_key, const char *measurement_hex,
			   const uint8_t report_data[static VEIL_SHA256_SIZE],
			   const char *config_id, char **out)
{
	char rd[2 * VEIL_SHA256_SIZE + 1];
	veil_hex(report_data, VEIL_SHA256_SIZE, rd);
	if (!config_id || strlen(config_id) > VEIL_EVIDENCE_CONFIG_ID_MAX)
		return VEIL_EINVAL;
	json_t *cj = json_pack("{s:s, s:s, s:b, s:I, s:s, s:s}", "measurement", measurement_hex,
			       "report_data", rd, "debug", 1, "timestamp", (json_int_t)time(NULL),
			       "tcb_status", "up-to-date", "config_id", config_id);
	char *claims = cj ? json_dumps(cj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(cj);
	if (!claims)
		return VEIL_ENOMEM;
	int rc = VEIL_EIO;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t sig[256];
	size_t sig_len = sizeof(sig);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL, *sig64 = NULL;
	json_t *j = NULL;
	if (!ctx || !bio || !EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, platform_key) ||
	    !EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)claims, strlen(claims)) ||
	    !PEM_write_bio_PUBKEY(bio, platform_key))
		goto out;
	long n = BIO_get_mem_data(bio, &pem);
	if (n <= 0 || !(sig64 = veil_b64_encode(sig, sig_len)))
		goto out;
	j = json_pack("{s:s, s:i, s:s%, s:s, s:s}", "platform", "sim", "version", 1, "platform_key",
		      pem, (size_t)n, "claims", claims, "signature", sig64);
	if (!j || !(*out = json_dumps(j, JSON_COMPACT)))
		goto out;
	rc = 0;
out:
	json_decref(j);
	free(sig64);
	free(claims);
	BIO_free(bio);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* Platform keys seen lately, parsed: a node's veil-las signs every start with
 * the same key, and OpenSSL 3's PEM decoder (provider lookups under rwlocks)
 * was a fifth of the CAS's time per attestation. Global, so that the
 * entries stay reachable (no leak) whichever thread filled them. */
#define PK_CACHE 8
static struct {
	char *pem;
	EVP_PKEY *pk;
	char hash[VEIL_KEY_HASH_HEX];
} pk_cache[PK_CACHE];
static unsigned pk_next;
static pthread_mutex_t pk_lock = PTHREAD_MUTEX_INITIALIZER;

/* The key of pem (a reference the caller frees) and its hash, or NULL. */
static EVP_PKEY *platform_key(const char *pem, char hash[static VEIL_KEY_HASH_HEX])
{
	EVP_PKEY *pk = NULL;
	pthread_mutex_lock(&pk_lock);
	for (unsigned i = 0; i < PK_CACHE && !pk; i++)
		if (pk_cache[i].pem && !strcmp(pk_cache[i].pem, pem) &&
		    EVP_PKEY_up_ref(pk_cache[i].pk)) {
			pk = pk_cache[i].pk;
			memcpy(hash, pk_cache[i].hash, VEIL_KEY_HASH_HEX);
		}
	pthread_mutex_unlock(&pk_lock);
	if (pk)
		return pk;
	BIO *bio = BIO_new_mem_buf(pem, -1);
	pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	char *copy = pk ? strdup(pem) : NULL;
	if (!copy || veil_pubkey_hash(pk, hash) || !EVP_PKEY_up_ref(pk)) {
		free(copy);
		EVP_PKEY_free(pk);
		return NULL;
	}
	pthread_mutex_lock(&pk_lock);
	unsigned k = pk_next++ % PK_CACHE;
	free(pk_cache[k].pem);
	EVP_PKEY_free(pk_cache[k].pk);
	pk_cache[k].pem = copy;
	pk_cache[k].pk = pk; /* the extra reference */
	memcpy(pk_cache[k].hash, hash, VEIL_KEY_HASH_HEX);
	pthread_mutex_unlock(&pk_lock);
	return pk;
}

int veil_sim_verify_json(json_t *j, const uint8_t expected[static VEIL_SHA256_SIZE], int no_binding,
			 struct veil_claims *c, struct veil_diags *d)
{
	const char *pem = NULL, *claims = NULL, *sig64 = NULL;
	int version = 0;
	if (json_unpack(j, "{s:i, s:s, s:s, s:s}", "version", &version, "platform_key", &pem,
			"claims", &claims, "signature", &sig64) ||
	    version != 1) {
		veil_diag(d, "sim evidence: missing or malformed fields");
		return VEIL_EINVAL;
	}
	int rc = VEIL_EINVAL;
	char pk_hash[VEIL_KEY_HASH_HEX];
	EVP_PKEY *pk = platform_key(pem, pk_hash);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	json_t *cj = NULL;
	uint8_t *sig = NULL;
	size_t n = 0;
	if (!pk || !ctx) {
		veil_diag(d, "sim evidence: platform key is not a PEM public key");
		goto out;
	}
	/* an ECDSA P-256 signature is at most 72 bytes */
	if (veil_b64_decode(sig64, 256, &sig, &n) || !n) {
		veil_diag(d, "sim evidence: signature is not base64");
		goto out;
	}
	if (!EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk) ||
	    EVP_DigestVerify(ctx, sig, n, (const uint8_t *)claims, strlen(claims)) != 1) {
		veil_diag(d, "sim evidence: signature does not verify with the platform key");
		goto out;
	}
	json_error_t err;
	cj = json_loads(claims, JSON_REJECT_DUPLICATES, &err);
	const char *meas = NULL, *rd = NULL, *tcb = NULL, *cfg = "";
	int debug = 0;
	json_int_t ts = 0;
	if (!cj || json_unpack(cj, "{s:s, s:s, s:b, s:I, s:s, s?:s}", "measurement", &meas,
			       "report_data", &rd, "debug", &debug, "timestamp", &ts, "tcb_status",
			       &tcb, "config_id", &cfg)) {
		veil_diag(d, "sim evidence: malformed claims");
		goto out;
	}
	uint8_t rdb[VEIL_SHA256_SIZE], mb[VEIL_SHA256_SIZE];
	if (veil_unhex(rd, rdb, sizeof(rdb)) || veil_unhex(meas, mb, sizeof(mb)) ||
	    strlen(tcb) >= sizeof(c->tcb_status) || strlen(cfg) >= sizeof(c->config_id)) {
		veil_diag(d, "sim evidence: malformed claims");
		goto out;
	}
	if (!no_binding && CRYPTO_memcmp(rdb, expected, VEIL_SHA256_SIZE)) {
		veil_diag(d,
			  "evidence is bound to another TLS key (report_data %.16s... does not "
			  "match this connection)",
			  rd);
		goto out;
	}
	memset(c, 0, sizeof(*c));
	snprintf(c->platform, sizeof(c->platform), "sim");
	snprintf(c->measurement, sizeof(c->measurement), "%s", meas);
	snprintf(c->tcb_status, sizeof(c->tcb_status), "%s", tcb);
	snprintf(c->config_id, sizeof(c->config_id), "%s", cfg);
	c->debug = debug;
	c->timestamp = ts;
	memcpy(c->platform_key, pk_hash, sizeof(pk_hash));
	rc = 0;
out:
	json_decref(cj);
	free(sig);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return rc;
}
