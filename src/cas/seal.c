/* The /v1/attest answer sealed to the runtime that attested (include/veil/
 * sealed.h has the format): the rendered configuration leaves the CAS as
 * HPKE ciphertext to the public key of this very connection's client
 * certificate, the key the evidence binds. What this protects: the answer
 * on the wire past TLS and in libevent's output buffers and any proxy that
 * ends TLS; the rendered plaintext still exists in this process until it is
 * sealed (docs/security.md). */
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cas.h"
#include "veil/sealed.h"

int cas_seal_config(struct evhttp_request *req, const char *config_id, const char *evidence,
		    const char *config, size_t config_size, char **answer, size_t *answer_size,
		    char *why, size_t why_size)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	EVP_PKEY *pub = cert ? X509_get0_pubkey(cert) : NULL;
	uint8_t ev_hash[VEIL_SHA256_SIZE];
	if (!pub) {
		snprintf(why, why_size, "no client certificate key to seal the configuration to");
		return 400;
	}
	if (veil_sha256(evidence, strlen(evidence), ev_hash)) {
		snprintf(why, why_size, "cannot hash the evidence");
		return 500;
	}
	int rc =
	    veil_seal_config(pub, config_id, ev_hash, config, config_size, answer, answer_size);
	if (rc == VEIL_EINVAL) {
		snprintf(why, why_size,
			 "the client certificate's key is not an EC P-256 key: the configuration "
			 "is sealed to it with HPKE, DHKEM(P-256)");
		return 400;
	}
	if (rc) {
		snprintf(why, why_size, "%s",
			 rc == VEIL_ELIMIT ? "the configuration is too large to seal"
					   : "cannot seal the configuration");
		return 500;
	}
	return 0;
}
