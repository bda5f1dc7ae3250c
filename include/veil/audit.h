/* The CAS audit log's format and its verifier: what the CAS writes
 * (src/cas/audit_log.c, include/veil/audit_log.h) and what `veil audit
 * verify` checks, in one place (src/audit/).
 *
 * The log is append-only, one JSON object a line, hash-chained. Each line is
 * {"seq":N,"time":"RFC3339","prev":"<hex of the previous line's hash>",
 * "event":"create|read|update|delete|attest|refuse|...","namespace":..,
 * "client":"<key hash>","status":N,"detail":"..","hash":"<hex>"} where hash =
 * SHA-256 over the line's bytes without the ,"hash":"..." member (byte for
 * byte in src/audit/format.c); the first line's prev is 64 zeros. Never holds
 * a secret or a policy body: callers pass names, hashes and reasons only.
 *
 * The format functions are pure (bytes in, bytes out, no file): a log kept
 * elsewhere than in a file (rows of a database) can build and check its
 * entries with them. */
#ifndef VEIL_AUDIT_H
#define VEIL_AUDIT_H

#include <stdint.h>

#include <openssl/evp.h>

#include "veil/common.h"

#define VEIL_AUDIT_LINE_MAX 8192 /* bytes of a line, its '\n' included */
#define VEIL_AUDIT_HASH_HEX 65   /* 64 lower-case hex digits and a NUL */
#define VEIL_AUDIT_TIME_SIZE 25  /* YYYY-MM-DDTHH:MM:SS.mmmZ and a NUL */

struct veil_audit_event {
	const char *event;      /* required */
	const char *namespace_; /* may be NULL */
	const char *client;     /* key hash hex, or NULL for none */
	int status;             /* HTTP status or 0 */
	const char *detail;     /* short reason, may be NULL */
	int nosync;             /* the file writer's: written, not waited for on disk */
};

/* ---- one line ---- */

/* The prev of the first entry: 64 zeros. */
extern const char veil_audit_zero_hash[VEIL_AUDIT_HASH_HEX];

/* The time now as a line holds it (UTC, milliseconds). */
int veil_audit_time_now(char out[static VEIL_AUDIT_TIME_SIZE]) VEIL_MUST_CHECK;

/* Entry seq of ev at time (as veil_audit_time_now writes it) after the
 * entry whose hash is prev (64 zeros for the first): the line with its '\n'
 * into line (*size bytes, not NUL-terminated) and its hash into hash.
 * VEIL_EINVAL for a missing event or a malformed time or prev. */
int veil_audit_format_line(const char prev[static VEIL_AUDIT_HASH_HEX], uint64_t seq,
			   const char *time, const struct veil_audit_event *ev,
			   char line[static VEIL_AUDIT_LINE_MAX], size_t *size,
			   char hash[static VEIL_AUDIT_HASH_HEX]) VEIL_MUST_CHECK;

/* What a line says of itself. */
struct veil_audit_entry {
	uint64_t seq;
	char prev[VEIL_AUDIT_HASH_HEX];
	char hash[VEIL_AUDIT_HASH_HEX];
	size_t hashed_size; /* bytes before ,"hash":" */
};

/* The line (size bytes, without its '\n') is exactly what a writer makes of
 * some entry, and its hash matches its bytes: 0 and *e. Else VEIL_EINVAL,
 * *why and the 1-based column of the first bad byte in *col (0: the line as
 * a whole, e.g. its hash). Whether it chains is veil_audit_link's. */
int veil_audit_check_line(const char *line, size_t size, struct veil_audit_entry *e,
			  const char **why, size_t *col) VEIL_MUST_CHECK;

/* How entry e follows the one before it, which had number seq - 1 and hash
 * prev (seq 1 and 64 zeros for the first). */
enum veil_audit_link {
	VEIL_AUDIT_LINKED,
	VEIL_AUDIT_SEQ_SKIPPED,  /* e->seq > seq: entries before e were removed */
	VEIL_AUDIT_SEQ_REPEATED, /* e->seq < seq: reordered or repeated */
	VEIL_AUDIT_PREV_CHANGED, /* e->prev is not prev: the entry before was changed */
};
enum veil_audit_link veil_audit_link(const struct veil_audit_entry *e, uint64_t seq,
				     const char prev[static VEIL_AUDIT_HASH_HEX]);

/* ---- the head: the last entry, kept elsewhere to show a cut end ---- */

/* The head: the last entry's seq and hash, and the log's size after it. */
struct veil_audit_head {
	uint64_t seq;
	uint64_t size;
	char hash[VEIL_AUDIT_HASH_HEX];
};

/* The bytes a head's signature signs, "veil-audit-head-v1\n<seq>\n<hash>\n"
 * (SHA-256 digest, or Ed25519's own): their size, or -1 when cap is short. */
int veil_audit_head_message(const struct veil_audit_head *head, char *out,
			    size_t cap) VEIL_MUST_CHECK;
/* The digest a signature of key uses (NULL: the algorithm's own). */
const EVP_MD *veil_audit_head_md(EVP_PKEY *key);
/* sig (base64, as veil_audit_head_sign writes it) is key's over head. */
int veil_audit_head_verify(EVP_PKEY *key, const struct veil_audit_head *head,
			   const char *sig) VEIL_MUST_CHECK;

/* ---- checkpoints: entries that sign the head before them ---- */

/* A "checkpoint" entry's detail, byte for byte:
 *   seq N hash H key K signature S
 * N (decimal) and H (64 hex) the head before the entry, K the signer's key
 * hash (64 hex: SHA-256 of its public key), S the signature over
 * veil_audit_head_message (base64, at most VEIL_AUDIT_SIG_MAX - 1 chars). */
#define VEIL_AUDIT_SIG_MAX 512
struct veil_audit_checkpoint {
	struct veil_audit_head head; /* size 0: a detail does not say it */
	char key_hash[VEIL_AUDIT_HASH_HEX];
	char signature[VEIL_AUDIT_SIG_MAX];
};
/* The detail for cp into out (cap bytes, NUL-terminated): its length, or
 * VEIL_ELIMIT when out is short / VEIL_EINVAL for a malformed cp. */
int veil_audit_checkpoint_detail(const struct veil_audit_checkpoint *cp, char *out,
				 size_t cap) VEIL_MUST_CHECK;
/* The checkpoint a line (size bytes, without its '\n', already checked by
 * veil_audit_check_line) holds: 0 and *out; VEIL_ENOENT when its event is
 * not "checkpoint"; VEIL_EINVAL for a checkpoint whose detail is not the
 * format above. *out is set only on success. */
int veil_audit_parse_checkpoint(const char *line, size_t size,
				struct veil_audit_checkpoint *out) VEIL_MUST_CHECK;

/* ---- files ---- */

/* size bytes of fd at off: 0, or -errno of a failed read (-EIO: the file
 * ended first). */
int veil_audit_read_at(int fd, void *buf, size_t size, uint64_t off) VEIL_MUST_CHECK;

/* The last entry of the log open at fd, of size bytes (> 0), named path in
 * messages: it must end in '\n' and verify on its own. */
int veil_audit_read_tail(int fd, const char *path, uint64_t size, struct veil_audit_entry *last,
			 struct veil_diags *d) VEIL_MUST_CHECK;

/* The entry that ends at byte head->size of the log open at fd (of size
 * bytes) is head's, unchanged; VEIL_EINVAL and why in d otherwise. */
int veil_audit_check_head_fd(int fd, uint64_t size, const char *path,
			     const struct veil_audit_head *head,
			     struct veil_diags *d) VEIL_MUST_CHECK;

/* Offline: the head of the log at path (its last entry). */
int veil_audit_tail_head(const char *path, struct veil_audit_head *out,
			 struct veil_diags *d) VEIL_MUST_CHECK;

/* Offline: the log at path holds the entry head names, unchanged, at its
 * place (VEIL_EINVAL and why in d otherwise). */
int veil_audit_check_head_file(const char *path, const struct veil_audit_head *head,
			       struct veil_diags *d) VEIL_MUST_CHECK;

/* Offline verification of a whole log: every line parses, seq counts up from
 * 1, prev chains, hash matches. On failure *bad_line is the first bad line
 * (1-based) and d says why. *entries gets the count on success. */
int veil_audit_verify_file(const char *path, size_t *entries, size_t *bad_line,
			   struct veil_diags *d) VEIL_MUST_CHECK;

#endif
