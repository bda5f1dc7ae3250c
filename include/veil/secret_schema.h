/* The secret schema: what a secret definition is, which kinds exist, which
 * definition keys each kind takes and needs, what the CAS produces for it,
 * which placeholder suffixes render it, and the checks of names, values and
 * placeholders. One table (src/policy/secret_schema.c) read by `veil check`
 * (src/manifest), the policy validator (src/policy/model.c), the policy
 * derivation (src/policy/derive.c) and the CAS (src/cas/secrets_*.c), so the
 * three cannot disagree on a definition.
 *
 * The policy layer: the CAS includes this header, never veil/manifest.h. */
#ifndef VEIL_SECRET_SCHEMA_H
#define VEIL_SECRET_SCHEMA_H

#include <stddef.h>

#include <openssl/types.h>

#include "veil/common.h"

struct veil_pos {
	unsigned line, col;
};

/* A secret definition as written in a manifest or a policy. Strings are
 * borrowed (from the YAML document's arena, or the caller's); kind is the
 * text as written, looked up with veil_secret_kind_find. */
struct veil_secret {
	const char *name;
	const char *kind; /* ascii binary private-key public-key x509 x509-ca explicit */
	unsigned long long size;
	int has_size;
	const char *value; /* explicit value written by the owner */
	const char *private_key;
	const char *issuer;
	const char *common_name;
	const char *valid_for;
	const char *algorithm; /* private-key: P-256, P-384, Ed25519, RSA-2048, RSA-3072 */
	char **dns;
	size_t dns_count;
	/* export entries: the importer namespace and its identity, consent
	 * being bound to the identity, not to the name: export_owner[i] (the
	 * importer's owner key hash) and/or export_session_hash[i] (the
	 * importer's policy hash), NULL when the entry does not name one */
	char **export_to;
	char **export_owner;
	char **export_session_hash;
	size_t export_count;
	int migrate;
	int is_global;
	const char *import_namespace; /* policy secrets: import: {namespace, secret} */
	const char *import_secret;
	struct veil_pos pos;
};

/* ---- Kinds ---- */

enum veil_secret_kind {
	VEIL_SECRET_KIND_UNKNOWN = 0,
	VEIL_SECRET_ASCII,
	VEIL_SECRET_BINARY,
	VEIL_SECRET_EXPLICIT,
	VEIL_SECRET_PRIVATE_KEY,
	VEIL_SECRET_PUBLIC_KEY,
	VEIL_SECRET_X509,
	VEIL_SECRET_X509_CA,
};

/* Definition keys, as bits of veil_secret_kind_info.keys_allowed/required,
 * in the order veil_secret_keys_misfit reports them. */
enum veil_secret_key {
	VEIL_SKEY_SIZE = 1 << 0,
	VEIL_SKEY_VALUE = 1 << 1,
	VEIL_SKEY_PRIVATE_KEY = 1 << 2,
	VEIL_SKEY_ISSUER = 1 << 3,
	VEIL_SKEY_COMMON_NAME = 1 << 4,
	VEIL_SKEY_VALID_FOR = 1 << 5,
	VEIL_SKEY_ALGORITHM = 1 << 6,
	VEIL_SKEY_DNS = 1 << 7,
};

/* What the CAS holds for a secret of the kind (struct veil_secret_value,
 * include/veil/secrets.h): each field present exactly when its bit is set,
 * which is also what a stored secret set must show. */
enum veil_secret_output {
	VEIL_SOUT_BYTES = 1 << 0, /* bytes/size: the text or raw bytes */
	VEIL_SOUT_KEY = 1 << 1,   /* key_pem: PKCS#8 private key */
	VEIL_SOUT_PUB = 1 << 2,   /* pub_pem: SubjectPublicKeyInfo */
	VEIL_SOUT_CERT = 1 << 3,  /* cert_pem */
	VEIL_SOUT_CHAIN = 1 << 4, /* chain_pem: the certificate and its issuers */
};

/* How a placeholder renders a secret (veil_secret_render). */
enum veil_render_as {
	VEIL_RENDER_NONE = 0, /* does not fit */
	VEIL_RENDER_TEXT,     /* the bytes as they are */
	VEIL_RENDER_HEX,
	VEIL_RENDER_BASE64,
	VEIL_RENDER_BASE64URL,
	VEIL_RENDER_KEY,   /* key_pem */
	VEIL_RENDER_PUB,   /* pub_pem */
	VEIL_RENDER_CERT,  /* cert_pem */
	VEIL_RENDER_CHAIN, /* the issuers' certificates (SCONE's :chain) */
};

struct veil_secret_kind_info {
	const char *name; /* as written in manifests and policies */
	enum veil_secret_kind kind;
	unsigned keys_allowed;  /* enum veil_secret_key bits the kind takes */
	unsigned keys_required; /* ... and needs */
	unsigned outputs;       /* enum veil_secret_output bits the CAS produces */
	size_t default_size;    /* bytes generated without size or value; 0: none */
	/* a placeholder without a suffix, and with :pem (NONE: does not fit) */
	enum veil_render_as plain, pem;
};

/* The kind named `name` (NULL and unknown names: NULL). */
const struct veil_secret_kind_info *veil_secret_kind_find(const char *name);
/* The table's entry of a known kind (NULL for VEIL_SECRET_KIND_UNKNOWN). */
const struct veil_secret_kind_info *veil_secret_kind_get(enum veil_secret_kind kind);
/* The kinds, in the order messages list them: ascii, binary, private-key,
 * public-key, x509, x509-ca, explicit. */
#define VEIL_SECRET_KINDS "ascii, binary, private-key, public-key, x509, x509-ca, explicit"

/* The keys of a secret definition that do not fit its kind: fn is called
 * for each key given that does not apply to the kind (needed 0) and each key
 * the kind needs that is missing (needed 1). Returns how many, -1 for an
 * unknown kind. Keys: size, value, private_key, issuer, common_name,
 * valid_for, algorithm, dns. */
int veil_secret_keys_misfit(const struct veil_secret *s,
			    void (*fn)(const char *key, int needed, void *arg), void *arg);

/* ---- References between definitions ---- */

/* Where definition i's private_key (issuer 0) or issuer (issuer 1) points
 * among defs[0..count): *target is the index of the definition named, or
 *   VEIL_SECRET_REF_NONE: the key is not given (and, for issuer, the kind is
 *     not x509);
 *   VEIL_SECRET_REF_NAMESPACE_CA: the namespace CA (issuer: namespace_ca, or
 *     an x509 without issuer).
 * VEIL_EINVAL with the reason in why (for messages after the secret's name)
 * when it names no definition, an imported one, one of a kind that cannot
 * serve (a private_key must hold a private key, an issuer be an x509-ca), or
 * the namespace CA's key. The policy validator and the CAS both resolve with
 * it. */
#define VEIL_SECRET_REF_NONE ((size_t)-1)
#define VEIL_SECRET_REF_NAMESPACE_CA ((size_t)-2)
int veil_secret_ref_resolve(const struct veil_secret *defs, size_t count, size_t i, int issuer,
			    size_t *target, char *why, size_t cap) VEIL_MUST_CHECK;

/* The generated (not imported) definitions in an order where each comes
 * after its private_key and issuer: order (room for count) gets their
 * indices, *n how many. References that do not resolve are left out (the
 * caller reports them). VEIL_EINVAL when some form a cycle, why naming up to
 * 8 of them ("'a', 'b': their private_key/issuer references form a cycle");
 * VEIL_ENOMEM. */
int veil_secret_order(const struct veil_secret *defs, size_t count, size_t *order, size_t *n,
		      char *why, size_t cap) VEIL_MUST_CHECK;

/* ---- Names and values ---- */

/* Secret names: [A-Za-z0-9_-]+, at most 128 bytes (no dots: a dot starts a
 * placeholder suffix). */
int veil_valid_secret_name(const char *s) VEIL_MUST_CHECK;

/* The namespace CA: an x509-ca secret the CAS makes on demand to issue x509
 * secrets without an issuer; `issuer` may name it, no definition may. */
#define VEIL_NAMESPACE_CA_NAME "namespace_ca"
#define VEIL_NAMESPACE_CA_WHY                                                                      \
	" (the CA the CAS makes for x509 secrets without an issuer: name it in 'issuer', do not "  \
	"define it)"

/* A generated secret's size: 1 to VEIL_SECRET_SIZE_MAX bytes. */
#define VEIL_SECRET_SIZE_MAX 65536

/* Key algorithms of private-key, x509 and x509-ca secrets (default P-256). */
int veil_secret_algorithm_valid(const char *alg) VEIL_MUST_CHECK;
#define VEIL_SECRET_ALGORITHMS "P-256, P-384, Ed25519, RSA-2048, RSA-3072"

/* An unencrypted PEM private key (an encrypted one is refused, never
 * prompted for); NULL when pem holds none. Freed by the caller
 * (EVP_PKEY_free). */
EVP_PKEY *veil_secret_key_parse(const char *pem);
/* A key's algorithm name (of VEIL_SECRET_ALGORITHMS), NULL for any other
 * key. */
const char *veil_secret_key_algorithm(const EVP_PKEY *k);
/* The value of a private-key secret: an unencrypted PEM private key of a
 * supported algorithm, and of `algorithm` when that is given (NULL: any).
 * 0, or VEIL_EINVAL with why, for messages after the secret's name. */
int veil_secret_key_value_check(const char *pem, const char *algorithm, char *why,
				size_t cap) VEIL_MUST_CHECK;

/* A certificate's common_name: 1 to 64 characters of UTF-8, what X.509
 * allows (RFC 5280's ub-common-name). */
int veil_secret_common_name_valid(const char *cn) VEIL_MUST_CHECK;
#define VEIL_SECRET_COMMON_NAME_FORM                                                               \
	"1 to 64 characters of UTF-8 (the common name is not valid in a certificate otherwise)"

/* A dns entry of a certificate: an IP literal or a DNS name of letters,
 * digits, '-', '.', '_' and '*' (wildcards), 1 to 253 bytes; the CAS builds
 * the SAN from it by hand, so an entry cannot smuggle in other names. */
int veil_secret_dns_entry_valid(const char *s) VEIL_MUST_CHECK;
#define VEIL_SECRET_DNS_FORM                                                                       \
	"neither a DNS name (letters, digits, '-', '.', '_', '*'; at most 253) nor an IP address"

/* valid_for of a certificate secret, read the same way by `veil check`, the
 * policy validator and the CAS: one or more "<number> <unit>" parts as SCONE
 * writes them ("90 days", "1 year 6 months", "36h"; units s, m, h, d, w, M,
 * y and their long names, a month 30.44 days, a year 365.25), or a bare
 * number of days. 0 and *seconds (1 s to VEIL_VALID_FOR_MAX_DAYS days) or
 * VEIL_EINVAL. VEIL_VALID_FOR_FORMS says so in messages. */
#define VEIL_VALID_FOR_MAX_DAYS 36500LL
#define VEIL_VALID_FOR_FORMS                                                                       \
	"a duration such as 90 days, 1 year 6 months or 36h (units s, m, h, d, w, M, y or "        \
	"their names: seconds, minutes, hours, days, weeks, months, years), or a number of days; " \
	"at most 36500 days"
int veil_valid_for_parse(const char *s, long long *seconds) VEIL_MUST_CHECK;

/* An explicit value of a binary secret is hex, as SCONE writes it (its java
 * tutorial: `value: |` then `feedfeed00`): an even number of hex digits of
 * either case, at least two, blanks and line breaks around them ignored.
 * 0 with the digits' offset and length, or VEIL_EINVAL. */
int veil_binary_value_span(const char *value, size_t *start, size_t *len) VEIL_MUST_CHECK;
#define VEIL_BINARY_VALUE_FORM                                                                     \
	"an even number of hex digits (an explicit binary value is hex, as in SCONE)"

/* ---- Placeholders ---- */

/* Secret placeholders: $$SCONE::name$$ or $$SCONE::name:suffix$$ (also .suffix) */
struct veil_placeholder {
	size_t start, end; /* byte range of the whole placeholder in the string */
	char name[129];
	char suffix[17]; /* "" for none */
};
/* Calls fn for each placeholder in s; returns VEIL_EINVAL with *why set for a
 * malformed one. fn returning non-zero stops the walk with that value. */
int veil_placeholders(const char *s, int (*fn)(const struct veil_placeholder *, void *), void *arg,
		      const char **why) VEIL_MUST_CHECK;
/* A known suffix: hex, base64, base64url, crt, cert, key, privatekey,
 * publickey, chain, pem. */
int veil_placeholder_suffix_valid(const char *suffix) VEIL_MUST_CHECK;

/* How suffix ("" for none) renders a secret of kind k (NULL: unknown kind).
 * A suffix renders one output of the table, so it fits exactly the kinds
 * that produce it; VEIL_RENDER_NONE when it does not fit, with the kinds it
 * fits written to fits (for messages; cap 128 holds every list). */
enum veil_render_as veil_placeholder_render_as(const struct veil_secret_kind_info *k,
					       const char *suffix, char *fits, size_t cap);
/* Whether placeholder ph renders a secret of kind `kind` (an unknown kind,
 * or NULL for an imported secret, is not judged here): 0, or VEIL_EINVAL
 * with why: "suffix 'crt' does not fit secret 's' of kind 'ascii' (it fits
 * x509, x509-ca)", the words the CAS's rendering uses. */
int veil_placeholder_fits(const struct veil_placeholder *ph, const char *kind, char *why,
			  size_t cap) VEIL_MUST_CHECK;

#endif
