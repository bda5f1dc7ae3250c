/* The CAS's audit log file: the writer (src/cas/audit_log.c, in libveilcas
 * only: `veil` verifies logs, it never writes one). The format and the
 * verifier are include/veil/audit.h's.
 *
 * Ownership: struct veil_audit owns its file descriptor and lock. */
#ifndef VEIL_AUDIT_LOG_H
#define VEIL_AUDIT_LOG_H

#include "veil/audit.h"

struct veil_audit;

/* Opens (creates) the log at path and reads its tail to continue the chain;
 * refuses to open a log whose last line does not verify. An exclusive
 * flock() refuses a second writer, whose appends would fork the chain. */
int veil_audit_open(const char *path, struct veil_audit **out,
		    struct veil_diags *d) VEIL_MUST_CHECK;
void veil_audit_close(struct veil_audit *a);

/* Appends one entry, thread-safe. Unless ev->nosync it is durable (fdatasync,
 * which also flushes every earlier nosync entry) before this returns: a crash
 * can lose the last unsynced read or refusal entries, never a change's. */
int veil_audit_append(struct veil_audit *a, const struct veil_audit_event *ev) VEIL_MUST_CHECK;

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

/* A signature of head by key (the CAS's TLS key), base64 into out (NUL
 * terminated); veil_audit_head_verify checks it. */
int veil_audit_head_sign(EVP_PKEY *key, const struct veil_audit_head *head, char *out,
			 size_t cap) VEIL_MUST_CHECK;

#endif
