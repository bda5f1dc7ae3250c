/* Whom the /v1/attest answer is sealed to (include/veil/sealed.h has the
 * format). The network process picks the recipient: the public key of this
 * very connection's client certificate, the key the evidence binds, and the
 * evidence's hash. The key process renders the configuration and seals it
 * to that key in one step (IPC_RENDER), so the rendered configuration never
 * exists in this process: what comes back is HPKE ciphertext, which passes
 * through libevent's buffers, TLS and any proxy that ends TLS as such. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cas.h"
#include "veil/hpke.h"

/* The client key's uncompressed P-256 point, read where the certificate
 * holds it: its SubjectPublicKeyInfo's algorithm id-ecPublicKey with the
 * named curve prime256v1, and a 65-byte 0x04 point. Nothing is encoded or
 * decoded (i2d_PUBKEY runs OpenSSL 3.0's encoder search). */
static bool p256_point(X509 *cert, uint8_t out[static VEIL_HPKE_ENC_SIZE])
{
	X509_PUBKEY *xpk = cert ? X509_get_X509_PUBKEY(cert) : NULL;
	ASN1_OBJECT *alg = NULL;
	const unsigned char *pk = NULL;
	int pk_len = 0, ptype = 0;
	X509_ALGOR *pa = NULL;
	const void *pval = NULL;
	if (!xpk || X509_PUBKEY_get0_param(&alg, &pk, &pk_len, &pa, xpk) != 1 ||
	    OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey)
		return false;
	X509_ALGOR_get0(NULL, &ptype, &pval, pa);
	if (ptype != V_ASN1_OBJECT || OBJ_obj2nid(pval) != NID_X9_62_prime256v1 ||
	    pk_len != VEIL_HPKE_ENC_SIZE || pk[0] != 0x04)
		return false;
	memcpy(out, pk, VEIL_HPKE_ENC_SIZE);
	return true;
}

int cas_seal_target(struct evhttp_request *req, const char *evidence, struct cas_seal_to *to,
		    char *why, size_t why_size)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	memset(to, 0, sizeof(*to));
	if (!cert) {
		snprintf(why, why_size, "no client certificate key to seal the configuration to");
		return 400;
	}
	if (!p256_point(cert, to->point)) {
		snprintf(
		    why, why_size,
		    "the client certificate's key is not an EC P-256 key (uncompressed point): "
		    "the configuration is sealed to it with HPKE, DHKEM(P-256)");
		return 400;
	}
	if (veil_sha256(evidence, strlen(evidence), to->evidence_sha256)) {
		snprintf(why, why_size, "cannot hash the evidence");
		return 500;
	}
	return 0;
}
