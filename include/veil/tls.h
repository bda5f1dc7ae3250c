/* TLS identities: a P-256 key and a self-signed certificate kept in a folder,
 * and the identity of a peer, which is the SHA-256 of its certificate's
 * SubjectPublicKeyInfo (DER), as in SCONE and MarbleRun. */
#ifndef VEIL_TLS_H
#define VEIL_TLS_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "veil/common.h"

#define VEIL_KEY_HASH_HEX (2 * VEIL_SHA256_SIZE + 1)

/* dir/key.pem (0600) and dir/cert.pem, created on first use (CN = cn). The
 * caller owns *key and *cert (EVP_PKEY_free, X509_free). */
int veil_identity_load_or_create(const char *dir, const char *cn, EVP_PKEY **key, X509 **cert,
				 struct veil_diags *d) VEIL_MUST_CHECK;
/* The same, and a new certificate carries subjectAltName entries: each of
 * sans[0..san_count) as an IP address where it parses as one, else as a DNS
 * name. An existing certificate is loaded as it is. */
int veil_identity_load_or_create_san(const char *dir, const char *cn, const char *const *sans,
				     size_t san_count, EVP_PKEY **key, X509 **cert,
				     struct veil_diags *d) VEIL_MUST_CHECK;
int veil_pubkey_hash(EVP_PKEY *pkey, char out[static VEIL_KEY_HASH_HEX]) VEIL_MUST_CHECK;
int veil_cert_key_hash(X509 *cert, char out[static VEIL_KEY_HASH_HEX]) VEIL_MUST_CHECK;
/* SHA-256 of the SPKI DER as raw bytes */
int veil_pubkey_digest(EVP_PKEY *pkey, uint8_t out[static VEIL_SHA256_SIZE]) VEIL_MUST_CHECK;

#endif
