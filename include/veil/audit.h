/* The CAS audit log: append-only, one JSON object a line, hash-chained.
 *
 * Each line is {"seq":N,"time":"RFC3339","prev":"<hex of the previous line's
 * hash>","event":"create|read|update|delete|attest|refuse|...","namespace":..,
 * "client":"<key hash>","status":N,"detail":"..","hash":"<hex>"} where hash =
 * SHA-256 over the line's bytes without the ,"hash":"..." member (documented in
 * audit.c); the first line's prev is 64 zeros. Never holds a secret or a policy
 * body: callers pass names, hashes and reasons only.
 *
 * Ownership: struct veil_audit owns its file descriptor and lock. */
#ifndef VEIL_AUDIT_H
#define VEIL_AUDIT_H

#include <stdint.h>

#include <openssl/evp.h>

#include "veil/common.h"

struct veil_audit;

/* Opens (creates) the log at path and reads its tail to continue the chain;
 * refuses to open a log whose last line does not verify. */
int veil_audit_open(const char *path, struct veil_audit **out,
		    struct veil_diags *d) VEIL_MUST_CHECK;
void veil_audit_close(struct veil_audit *a);

struct veil_audit_event {
	const char *event;      /* required */
	const char *namespace_; /* may be NULL */
	const char *client;     /* key hash hex, or NULL for none */
	int status;             /* HTTP status or 0 */
	const char *detail;     /* short reason, may be NULL */
	int nosync;             /* reads and refusals: written, not waited for on disk */
};

/* Appends one entry, thread-safe. Unless ev->nosync it is durable (fdatasync,
 * which also flushes every earlier nosync entry) before this returns: a crash
 * can lose the last unsynced read or refusal entries, never a change's. */
int veil_audit_append(struct veil_audit *a, const struct veil_audit_event *ev) VEIL_MUST_CHECK;

/* The head: the last entry's seq and hash, and the log's size after it. */
struct veil_audit_head {
	uint64_t seq;
	uint64_t size;
	char hash[65];
};

/* The head now. */
int veil_audit_head_get(struct veil_audit *a, struct veil_audit_head *out) VEIL_MUST_CHECK;

/* veil_audit_append, and the head right after this entry in *head (a
 * change's: its store transaction records it, see store.h). */
int veil_audit_append_at(struct veil_audit *a, const struct veil_audit_event *ev,
			 struct veil_audit_head *head) VEIL_MUST_CHECK;

/* At start, against the head the store committed last (NULL: none yet):
 * the log must hold that entry, unchanged, ending at that size (else it was
 * cut or rewritten: refused, the reason in d). An entry of a change
 * (create, update, delete) after it belongs to a store transaction that
 * never committed (a crash between the two): for each, a "rollback" entry
 * (status 200) names its namespace and, as detail, the hash the store holds
 * for it (stored_hash: 0, or VEIL_ENOENT for none: detail null), so a replay
 * of the log ends in the store's state again. */
int veil_audit_reconcile(struct veil_audit *a, const struct veil_audit_head *stored,
			 int (*stored_hash)(void *arg, const char *ns, char hash[static 65]),
			 void *arg, struct veil_diags *d) VEIL_MUST_CHECK;

/* Offline: the head of the log at path (its last entry). */
int veil_audit_tail_head(const char *path, struct veil_audit_head *out,
			 struct veil_diags *d) VEIL_MUST_CHECK;

/* Offline: the log at path holds the entry head names, unchanged, at its
 * place (VEIL_EINVAL and why in d otherwise). */
int veil_audit_check_head_file(const char *path, const struct veil_audit_head *head,
			       struct veil_diags *d) VEIL_MUST_CHECK;

/* A signature of head by key (the CAS's TLS key), base64 into out (NUL
 * terminated); and its check with a certificate's key. The signed bytes are
 * "veil-audit-head-v1\n<seq>\n<hash>\n" (SHA-256 digest, or Ed25519's own). */
int veil_audit_head_sign(EVP_PKEY *key, const struct veil_audit_head *head, char *out,
			 size_t cap) VEIL_MUST_CHECK;
int veil_audit_head_verify(EVP_PKEY *key, const struct veil_audit_head *head,
			   const char *sig) VEIL_MUST_CHECK;

/* Offline verification of a whole log: every line parses, seq counts up from
 * 1, prev chains, hash matches. On failure *bad_line is the first bad line
 * (1-based) and d says why. *entries gets the count on success. */
int veil_audit_verify_file(const char *path, size_t *entries, size_t *bad_line,
			   struct veil_diags *d) VEIL_MUST_CHECK;

#endif
