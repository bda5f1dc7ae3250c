/* recovery.c: the master key split into recovery shares at --init, and the
 * offline commands that open a share and recover the key (docs/cas.md,
 * "Recovery"). */
#ifndef VEIL_CAS_RECOVERY_H
#define VEIL_CAS_RECOVERY_H

#include <stdbool.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "veil/common.h"
#include "veil/shamir.h"

/* --recovery-key (keys[i] the caller's until cas_recovery_plan_free; paths
 * point into argv) and --recovery-threshold (0: not given) */
struct cas_recovery_plan {
	EVP_PKEY *keys[VEIL_SHAMIR_MAX_SHARES];
	const char *paths[VEIL_SHAMIR_MAX_SHARES];
	unsigned count;
	long threshold;
};

/* one --recovery-key: a PEM public key on P-256 */
int cas_recovery_add_key(struct cas_recovery_plan *p, const char *path,
			 struct veil_diags *d) VEIL_MUST_CHECK;
/* the options agree: both or neither, only with --init, 2 <= K <= N, no key
 * twice */
int cas_recovery_check(const struct cas_recovery_plan *p, bool init,
		       struct veil_diags *d) VEIL_MUST_CHECK;
/* DATA/recovery/share-X.json for a plan with keys (none: nothing done);
 * key_hash is the new CAS's TLS key hash */
int cas_recovery_write_shares(const struct cas_recovery_plan *p, const char *data,
			      const char *key_hash, struct veil_diags *d) VEIL_MUST_CHECK;
void cas_recovery_plan_free(struct cas_recovery_plan *p);
/* With a PKCS#11 master key the split key is a recovery key (recovery.c,
 * "a token's recovery key"): begin (before the key process starts, no
 * thread yet) forks the child that makes it and sets point_hex, its public
 * point for the key process's --init; finish (once the TLS key hash
 * exists) has the child write the shares; abort (after finish: nothing)
 * ends a child whose --init failed, no share written. */
struct cas_recovery_token {
	pid_t pid;
	int to_child;
	char point_hex[2 * 65 + 2];
};
int cas_recovery_token_begin(const struct cas_recovery_plan *p, const char *data,
			     struct cas_recovery_token *t, struct veil_diags *d) VEIL_MUST_CHECK;
int cas_recovery_token_finish(const struct cas_recovery_plan *p, struct cas_recovery_token *t,
			      const char *data, const char *key_hash,
			      struct veil_diags *d) VEIL_MUST_CHECK;
void cas_recovery_token_abort(struct cas_recovery_token *t);

/* `veil-cas recovery-share ...` and `veil-cas recover ...` (argv[0] is the
 * command's name); exit statuses */
int cas_recovery_share_main(int argc, char **argv) VEIL_MUST_CHECK;
int cas_recover_main(int argc, char **argv) VEIL_MUST_CHECK;

#endif
