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
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cas.h"

static bool is_p256(EVP_PKEY *pub)
{
	char group[32];
	size_t len = 0;
	return EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC &&
	       EVP_PKEY_get_group_name(pub, group, sizeof(group), &len) == 1 &&
	       !strcmp(group, SN_X9_62_prime256v1);
}

int cas_seal_target(struct evhttp_request *req, const char *evidence, struct cas_seal_to *to,
		    char *why, size_t why_size)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	EVP_PKEY *pub = cert ? X509_get0_pubkey(cert) : NULL;
	memset(to, 0, sizeof(*to));
	if (!pub) {
		snprintf(why, why_size, "no client certificate key to seal the configuration to");
		return 400;
	}
	if (!is_p256(pub)) {
		snprintf(why, why_size,
			 "the client certificate's key is not an EC P-256 key: the configuration "
			 "is sealed to it with HPKE, DHKEM(P-256)");
		return 400;
	}
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pub, &der);
	if (n <= 0 || veil_sha256(evidence, strlen(evidence), to->evidence_sha256)) {
		OPENSSL_free(der);
		snprintf(why, why_size, "cannot encode the client key or hash the evidence");
		return 500;
	}
	to->key_der = der;
	to->key_der_size = (size_t)n;
	return 0;
}

void cas_seal_to_free(struct cas_seal_to *to)
{
	OPENSSL_free(to->key_der);
	memset(to, 0, sizeof(*to));
}
