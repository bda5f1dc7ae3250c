/* The PKCS#11 provider record (master.key of a token-backed CAS; the format
 * is specified in vault.c) and the --master-key URI, parsed and written.
 * Internal to libveilcas; here for tests/fuzz/fuzz_masterkey.c.
 *
 * Ownership: struct p11_record holds its strings inline. */
#ifndef VEIL_CAS_VAULT_RECORD_H
#define VEIL_CAS_VAULT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

#include "vault_p11.h"

#define P11_PREFIX 8
#define P11_WRAPPED (P11_PREFIX + P11_WRAPPED_SIZE)
/* a recovery copy: HPKE enc (65) || the 32-byte key sealed (32 + tag 16) */
#define RECOVERY_POINT 65
#define RECOVERY_COPY (RECOVERY_POINT + 32 + 16)
#define LABEL_MAX 128
#define RECORD_MAGIC "veil-master-key-provider 1\n"
#define RECORD_MAX 4096
#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define PIN_MAX 256

struct p11_record {
	char token[33];
	char object[LABEL_MAX];
	char module[512];
	uint32_t current, pending;
	char current_label[LABEL_MAX], pending_label[LABEL_MAX];
	uint8_t code_root[P11_WRAPPED];
	char retire[2][LABEL_MAX];
	size_t nretire;
	/* a recovery key (issue 13 item 3): its public point, and the code-key
	 * root sealed to it; data keys then carry a copy sealed to it too */
	bool recovery;
	uint8_t recovery_point[RECOVERY_POINT];
	uint8_t code_root_copy[RECOVERY_COPY];
};

/* RFC 7512 pkcs11: URI (token=, object=, type=secret-key, module-path=,
 * percent-encoded) into r's token, object and module; the reason in d. */
int cas_mk_parse_uri(const char *uri, struct p11_record *r, struct veil_diags *d) VEIL_MUST_CHECK;
/* text: size bytes and a NUL after them (changed while parsing); r is
 * filled only as far as it is valid (VEIL_EINVAL: not a record). */
int cas_mk_record_parse(char *text, size_t size, struct p11_record *r) VEIL_MUST_CHECK;
/* r as the record's text, appended to out */
int cas_mk_record_format(const struct p11_record *r, struct veil_buf *out) VEIL_MUST_CHECK;

#endif
