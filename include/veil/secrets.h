/* Secrets generated inside the CAS, and placeholder rendering.
 *
 * Definitions are struct veil_secret (include/veil/secret_schema.h, the
 * policy layer), as parsed from a policy's `secrets:` list. Generated
 * material lives in a struct veil_secret_set, which owns every byte it
 * points to; all of it is held in memory allocated by veil_secure_alloc()
 * (include/veil/secure.h) and wiped on free.
 *
 * src/cas/: secrets_gen.c (generation, update rules, the set), secrets_x509.c
 * (the key and certificate factory), secrets_serial.c (the stored form),
 * secrets_render.c (placeholders). */
#ifndef VEIL_SECRETS_H
#define VEIL_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"
#include "veil/secure.h"
#include "veil/secret_schema.h"

struct veil_secret_value {
	char *name;
	char *kind;     /* as in the definition; its fields: the kind's outputs */
	uint8_t *bytes; /* ascii: the characters; binary: raw bytes; explicit: the value */
	size_t size;
	char *key_pem;   /* private-key, x509, x509-ca: PKCS#8 PEM private key */
	char *pub_pem;   /* private-key, public-key, x509, x509-ca: SubjectPublicKeyInfo PEM */
	char *cert_pem;  /* x509, x509-ca: the certificate */
	char *chain_pem; /* x509, x509-ca: certificate followed by its issuers up to the root */
};

struct veil_secret_set {
	struct veil_secret_value *v;
	size_t count;
};

/* Generates every secret of defs with the OpenSSL CSPRNG. With `previous`
 * (an update), ascii and binary secrets keep their values, private keys with
 * migrate: true are kept, and certificates are issued again (the rules in
 * full: update_rule in src/cas/secrets_gen.c). Issuers: `issuer`
 * names an x509-ca secret of the same set; without it an x509 secret is issued
 * by the namespace CA: an x509-ca secret named "namespace_ca" (P-256), generated
 * on demand and kept in the set. A definition named "namespace_ca" is refused.
 * Imported secrets (import_namespace set) are skipped: the CAS resolves them. */
int veil_secrets_generate(const struct veil_secret *defs, size_t count, const char *namespace_,
			  const struct veil_secret_set *previous, struct veil_secret_set *out,
			  struct veil_diags *d) VEIL_MUST_CHECK;
void veil_secret_set_free(struct veil_secret_set *set);
const struct veil_secret_value *veil_secret_find(const struct veil_secret_set *set,
						 const char *name);

/* Appends a copy of src under `name`: an imported secret under the importer's
 * local name, for rendering. */
int veil_secret_set_append(struct veil_secret_set *set, const char *name,
			   const struct veil_secret_value *src) VEIL_MUST_CHECK;

/* Serialised form for encrypted storage (and back). The buffer is secure
 * memory: free with veil_secure_free(buf, size). */
int veil_secret_set_serialize(const struct veil_secret_set *set, uint8_t **buf,
			      size_t *size) VEIL_MUST_CHECK;
int veil_secret_set_deserialize(const uint8_t *buf, size_t size,
				struct veil_secret_set *out) VEIL_MUST_CHECK;

/* Replaces every $$SCONE::name[:suffix]$$ (or .suffix) in `in`. Suffixes:
 * none (ascii/explicit: the text; binary: hex; keys: private key PEM; certs:
 * certificate PEM), hex, base64, base64url, crt/cert (certificate PEM),
 * key/privatekey (private key PEM), publickey (public key PEM), chain (as
 * in SCONE: the issuers' certificates, direct issuer first, without the
 * certificate itself; a self-signed certificate's is itself), pem (the
 * secret's natural PEM). *out is secure
 * memory (veil_secure_strfree). An unknown secret or a suffix that does not
 * fit the kind is an error naming them, never the value. */
int veil_secret_render(const char *in, const struct veil_secret_set *set, char **out,
		       struct veil_diags *d) VEIL_MUST_CHECK;

#endif
