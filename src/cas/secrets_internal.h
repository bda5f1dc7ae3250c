/* What the CAS's secret files share (include/veil/secrets.h is the API):
 * limits, the X.509/key factory (secrets_x509.c), and the values of a set
 * (secrets_gen.c). Every string and byte buffer here is secure memory
 * (veil/secure.h); diagnostics name secrets, never values. */
#ifndef VEIL_CAS_SECRETS_INTERNAL_H
#define VEIL_CAS_SECRETS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "veil/secrets.h"

/* A policy holds at most SECRETS_MAX secrets (a set one more: the namespace
 * CA), a field of a value at most FIELD_MAX bytes. */
#define SECRETS_MAX 4096
#define FIELD_MAX ((size_t)16 << 20)

/* ---- X.509/key factory (secrets_x509.c) ---- */

/* Reports an OpenSSL failure for secret `name` ("what failed: reason"),
 * clears OpenSSL's error queue; VEIL_EIO. */
int secret_ossl_fail(struct veil_diags *d, const char *name, const char *what) VEIL_MUST_CHECK;

/* A fresh key of a veil algorithm name (veil_secret_algorithm_valid); NULL
 * on failure or an unknown name. */
EVP_PKEY *secret_key_generate(const char *alg);
/* A PEM certificate; NULL when it is not one. (Private keys:
 * veil_secret_key_parse, veil_secret_key_algorithm.) */
X509 *secret_cert_parse(const char *pem);

/* valid_for (veil_valid_for_parse) as days and seconds; NULL: 365 days.
 * -1 when it does not parse. */
int secret_valid_for_days(const char *s, long *days, long *secs) VEIL_MUST_CHECK;

/* What a certificate says; the factory never reads a definition. */
struct secret_cert_spec {
	const char *name; /* the secret, for messages */
	const char *cn;
	const char *org; /* NULL: none */
	int is_ca;
	char *const *dns; /* veil_secret_dns_entry_valid */
	size_t dns_count;
	long days, secs;
	EVP_PKEY *key;
	X509 *issuer; /* NULL: self-signed with key */
	EVP_PKEY *issuer_key;
};
/* Issues a certificate: serial of 16 random bytes, notBefore 5 minutes
 * back, CA or leaf extensions. *out owned by the caller. */
int secret_cert_issue(const struct secret_cert_spec *cs, X509 **out,
		      struct veil_diags *d) VEIL_MUST_CHECK;

/* A value's key_pem (with_private) and pub_pem from k; its cert_pem from x
 * and chain_pem: the certificate then issuer's chain (NULL: self-signed). */
int secret_fill_key(struct veil_secret_value *v, EVP_PKEY *k, int with_private) VEIL_MUST_CHECK;
int secret_fill_cert(struct veil_secret_value *v, X509 *x,
		     const struct veil_secret_value *issuer) VEIL_MUST_CHECK;

/* ---- Values (secrets_gen.c) ---- */

/* frees every field of v (not v itself) and NULLs them */
void secret_value_free(struct veil_secret_value *v);
/* frees n values and the array */
void secret_values_free(struct veil_secret_value *v, size_t n);
/* dst (zeroed) gets copies of src's fields; on failure dst holds what was
 * copied (free it with secret_value_free) */
int secret_value_copy(struct veil_secret_value *dst,
		      const struct veil_secret_value *src) VEIL_MUST_CHECK;

#endif
