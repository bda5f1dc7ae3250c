/* CAS storage: a small interface with SQLite as the embedded default and
 * PostgreSQL for several replicas sharing one database (store_pg.c), plus
 * the vault that encrypts what is stored.
 *
 * A row holds a namespace's name, its policy hash, its creator's key hash, the
 * namespace data key wrapped by the master key, and the encrypted payload
 * (policy YAML and generated secrets). Beside it, the export index holds the
 * names and identity hashes its policy's exports name (struct
 * veil_store_export). Nothing else is stored in clear.
 *
 * Ownership: struct veil_record owns its strings and buffers
 * (veil_record_free). A store handle is used by one thread at a time: each
 * CAS thread opens its own. */
#ifndef VEIL_STORE_H
#define VEIL_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/types.h>

#include "veil/common.h"

enum {
	VEIL_EEXIST = -10,    /* create: the namespace exists */
	VEIL_ECONFLICT = -11, /* update: the stored hash is not the expected one */
};

struct veil_record {
	char *namespace_;
	char *hash;
	char *owner;
	uint8_t *wrapped_key;
	size_t wrapped_size;
	uint8_t *blob;
	size_t blob_size;
};
void veil_record_free(struct veil_record *r);

/* The audit log's head as the store last saw it commit (audit.h): the entry
 * numbered seq, with hash, ends at byte size of the log; signature is the
 * CAS key's over it (veil_audit_head_sign), "" where none. */
struct veil_store_head {
	uint64_t seq;
	uint64_t size;
	char hash[65];
	char signature[512];
};

/* One entry of the export index (schema 4): a secret of the exporting
 * namespace is exported to the namespace named importer, bound to the
 * importer's owner key hash and/or its policy hash (NULL where unbound; an
 * entry binding neither grants nothing and is not indexed). Names and hashes
 * only, as the exporter's policy states them: the index lets a create see
 * that its name is reserved without opening every policy. Borrowed strings. */
struct veil_store_export {
	const char *importer;
	const char *owner;
	const char *session_hash;
};

/* What only the CAS can do for the store: open a stored policy with the
 * master key and pass each of its indexed export entries to add(sink, e)
 * (non-zero from add stops and is returned). A migration that builds the
 * export index from existing policies needs it; without one (NULL), a store
 * that has policies to index is refused with the reason. */
struct veil_store_opener {
	int (*exports_of)(void *arg, const struct veil_record *r,
			  int (*add)(void *sink, const struct veil_store_export *e), void *sink);
	void *arg;
};

/* The database server a handle talks to (PostgreSQL): role "primary" or
 * "standby" (pg_is_in_recovery()), server "host:port" as libpq connected
 * (of a multi-host URI, the one it follows). */
struct veil_store_info {
	char role[16];
	char server[128];
};

struct veil_store;
struct veil_audit_event;
struct veil_audit_head;
struct veil_store_ops {
	int (*get)(struct veil_store *s, const char *ns, struct veil_record *out);
	int (*create)(struct veil_store *s, const struct veil_record *r);
	/* compare-and-swap on the hash; hash, owner and blob only: the wrapped
	 * key stays as stored (a master-key rotation re-wraps it meanwhile) */
	int (*update)(struct veil_store *s, const struct veil_record *r, const char *expected_hash);
	/* VEIL_ENOENT when ns is absent or has child namespaces (in the same
	 * statement: a child created meanwhile keeps its parent). Removes ns's
	 * own export entries too, not those naming ns: a deleted name stays
	 * reserved while another namespace's export names it. */
	int (*remove)(struct veil_store *s, const char *ns);
	/* The export index: clear_exports drops exporter's entries, add_export
	 * adds one (both in the caller's transaction, with the policy change);
	 * exports_to passes each entry of another namespace naming importer to
	 * fn, which may stop the walk by returning non-zero. */
	int (*clear_exports)(struct veil_store *s, const char *exporter);
	int (*add_export)(struct veil_store *s, const char *exporter,
			  const struct veil_store_export *e);
	int (*exports_to)(struct veil_store *s, const char *importer,
			  int (*fn)(const struct veil_store_export *e, void *arg), void *arg);
	/* namespaces created by owner, sorted; fn may stop the walk by returning non-zero */
	int (*list)(struct veil_store *s, const char *owner,
		    int (*fn)(const char *ns, const char *hash, void *arg), void *arg);
	int (*count)(struct veil_store *s, long long *out);
	/* namespaces under ns ("ns/..."), and namespaces created by owner */
	int (*count_children)(struct veil_store *s, const char *ns, long long *out);
	int (*count_owned)(struct veil_store *s, const char *owner, long long *out);
	int (*check)(struct veil_store *s, struct veil_diags *d); /* integrity check */
	/* One write transaction: a change and the audit head it was logged at
	 * commit together or not at all; one writer at a time (SQLite: BEGIN
	 * IMMEDIATE; PostgreSQL: an advisory lock, across every replica) */
	int (*begin)(struct veil_store *s);
	int (*commit)(struct veil_store *s);
	void (*rollback)(struct veil_store *s);
	int (*set_head)(struct veil_store *s, const struct veil_store_head *h);
	int (*get_head)(struct veil_store *s, struct veil_store_head *out); /* VEIL_ENOENT: none */
	/* A counter every committed change of the policies moves, whichever
	 * process made it: the caches of a store shared by several processes
	 * check it (caches.c). NULL where one process owns the store (SQLite:
	 * the process's own counter says it all). */
	int (*generation)(struct veil_store *s, unsigned long long *out);
	/* The change chain in the database (PostgreSQL, table veil_audit):
	 * one audit chain for every replica, whose entries are audit.log lines
	 * (audit.h). Both run inside the open write transaction (begin), under
	 * its writer lock. audit_last: the chain's last entry, seq and hash
	 * (seq 0 and 64 zeros: empty; size is 0), and whether it is a
	 * "checkpoint". audit_append: ev as the entry after it, which commits
	 * or vanishes with the transaction's change; *head (may be NULL) is
	 * the new entry's. NULL where the audit log is the data folder's file
	 * alone (SQLite), whose head set_head keeps. */
	int (*audit_last)(struct veil_store *s, struct veil_audit_head *out, bool *checkpoint);
	int (*audit_append)(struct veil_store *s, const struct veil_audit_event *ev,
			    struct veil_audit_head *head);
	/* Where this handle's statements go, for /metrics (NULL: one local
	 * file, SQLite). 0, or VEIL_EIO when the database does not answer. */
	int (*info)(struct veil_store *s, struct veil_store_info *out);
	void (*close)(struct veil_store *s);
};
struct veil_store {
	const struct veil_store_ops *ops;
	/* set by the last operation that failed because the database could not
	 * be reached (the request is answered 503, retry later), cleared by the
	 * next one that reached it */
	bool unavailable;
};

/* How long one store statement may wait, for a lock or for a database that
 * does not answer, before it fails and its request is answered 503:
 * on PostgreSQL a cancel request at that time (store_pg.c: exec_within),
 * SQLite's busy timeout. Process-wide: set once at
 * start, before the first store is opened (veil-cas --store-timeout). */
#define VEIL_STORE_TIMEOUT_DEFAULT_MS 10000
void veil_store_set_timeout_ms(unsigned ms);
unsigned veil_store_timeout_ms(void);

/* Process-wide counts of the store's use, for /metrics (store.c); the
 * stores report each statement as it ends. "busy": connections running a
 * statement or holding a transaction open, of "open" connections. */
#define VEIL_STORE_LATENCY_BUCKETS 10
extern const double veil_store_latency_bounds[VEIL_STORE_LATENCY_BUCKETS];
struct veil_store_stats {
	unsigned long long statements;
	unsigned long long latency[VEIL_STORE_LATENCY_BUCKETS + 1]; /* the last: +Inf */
	unsigned long long latency_sum_us;
	unsigned long long failures; /* any statement that failed, timeouts included */
	unsigned long long timeouts; /* of those: cancelled at --store-timeout */
	unsigned long long reconnects;
	long long open, busy;
};
enum veil_store_outcome { VEIL_STORE_OK, VEIL_STORE_FAILED, VEIL_STORE_TIMED_OUT };
void veil_store_stats_statement(double seconds, enum veil_store_outcome outcome);
/* a statement counted as done that turned out a timeout (a COMMIT whose
 * wait for a synchronous standby was cancelled) */
void veil_store_stats_timed_out(void);
void veil_store_stats_reconnect(void);
void veil_store_stats_conns(int open_delta, int busy_delta);
void veil_store_stats_get(struct veil_store_stats *out);
double veil_store_clock(void); /* monotonic seconds, to time a statement */

/* SQLite in dir/cas.db: WAL, synchronous=FULL (an acknowledged write survives
 * a crash or power loss). opener (may be NULL) is used while migrating only. */
int veil_store_sqlite_open(const char *dir, const struct veil_store_opener *opener,
			   struct veil_store **out, struct veil_diags *d) VEIL_MUST_CHECK;
/* cas.db's schema version (PRAGMA user_version) this code writes. */
#define VEIL_STORE_SCHEMA_VERSION 4
/* Brings db (a sqlite3 *, named path in messages) to VEIL_STORE_SCHEMA_VERSION
 * by the migration steps above its version; refuses a newer one. */
struct sqlite3;
int veil_store_sqlite_migrate(struct sqlite3 *db, const char *path,
			      const struct veil_store_opener *opener,
			      struct veil_diags *d) VEIL_MUST_CHECK;

/* A store by its URL: NULL is SQLite in data_dir/cas.db; postgresql://...
 * or postgres://... is PostgreSQL (veil_store_pg_open). first: the process's
 * first store (main.c's), which migrates the schema and, on PostgreSQL,
 * claims the replica's audit head. */
int veil_store_open(const char *url, const char *data_dir, bool first,
		    const struct veil_store_opener *opener, struct veil_store **out,
		    struct veil_diags *d) VEIL_MUST_CHECK;
bool veil_store_url_is_pg(const char *url);

/* PostgreSQL (libpq): url is a libpq connection URI, passed on unchanged
 * (TLS with sslmode/sslcert/sslkey/sslrootcert, several hosts with
 * target_session_attrs=read-write). The changes' audit chain is one table
 * for every replica (audit_last, audit_append); the head of each replica's
 * own audit.log (its requests) is kept per replica, under the id in
 * data_dir/replica.id (made at the first start). first: applies the schema
 * migrations (veil_schema, under an advisory lock) and refuses to start
 * when a running replica holds the same id. */
int veil_store_pg_open(const char *url, const char *data_dir, bool first, struct veil_store **out,
		       struct veil_diags *d) VEIL_MUST_CHECK;
/* The schema version (table veil_schema) this code writes. */
#define VEIL_STORE_PG_SCHEMA_VERSION 3
/* The master key's PKCS#11 record a rotation publishes for every replica
 * (table veil_master_key, schema 3): *version 0 and NULLs when there is
 * none yet; record and note (the rotation's step) are the caller's to
 * free. key_loaded: this replica (s's replica.id) loaded what the record
 * of that version says; loaded is veil_vault_describe's text (table
 * veil_replica_keys). s: the store opened first (main thread). */
int veil_store_pg_master_key(struct veil_store *s, long long *version, char **record,
			     char **note) VEIL_MUST_CHECK;
int veil_store_pg_key_loaded(struct veil_store *s, long long version,
			     const char *loaded) VEIL_MUST_CHECK;
/* Reads the database's change chain (table veil_audit) in order, without a
 * data folder and without migrating: fn gets each entry's line (len bytes,
 * no '\n', NUL-terminated) and the replica that wrote it; non-zero from fn
 * stops the walk and is returned. A database without the table (schema
 * 1) has no entries. */
int veil_store_pg_audit_walk(const char *url,
			     int (*fn)(const char *line, size_t len, const char *replica,
				       void *arg),
			     void *arg, struct veil_diags *d) VEIL_MUST_CHECK;

/* The vault: a master key that wraps per-namespace data keys. Providers:
 * a 0600 key file (simulation), or an AES-256 key in a PKCS#11 token that
 * never leaves it (src/cas/vault.c specifies both wrapped-key formats); TEE
 * sealing would be a third opener. Callers use the functions below alike. */
struct veil_vault;
/* create: make a new key (the file must not exist); else open an existing one. */
int veil_vault_open_file(const char *path, bool create, struct veil_vault **out,
			 struct veil_diags *d) VEIL_MUST_CHECK;
/* PKCS#11: path is master.key, which then holds the provider record (the
 * token, the key labels; no key). create: uri is the --master-key
 * pkcs11: URI (RFC 7512: token=, object=, optional module-path=); the key
 * is made in the token and path written. Else uri is NULL and path is read.
 * The PIN is read from pin_file, or (NULL) from $VEIL_PKCS11_PIN, which is
 * then wiped. A missing module, token or key, or a wrong PIN, is refused
 * with a one-line reason in d. */
int veil_vault_open_pkcs11(const char *path, const char *uri, const char *pin_file, bool create,
			   struct veil_vault **out, struct veil_diags *d) VEIL_MUST_CHECK;
/* Opens master.key with whichever provider it records (a 32-byte key file,
 * or a PKCS#11 record; pin_file as above). */
int veil_vault_open_any(const char *path, const char *pin_file, struct veil_vault **out,
			struct veil_diags *d) VEIL_MUST_CHECK;
/* "file", "pkcs11" or "remote" (a static string) */
const char *veil_vault_provider(const struct veil_vault *v);
/* What the vault holds, one line, no secret: "file", "remote", or
 * "pkcs11 current N pending M retire K" (M 0: no rotation under way; K:
 * rotated-out keys still to destroy). veil-cas's key process reports it. */
int veil_vault_describe(const struct veil_vault *v, char *out, size_t cap) VEIL_MUST_CHECK;
/* Rotation (PKCS#11; by veil-cas rotate-master-key, with veil-cas stopped
 * or running: src/cas/rotate.c). begin makes the next key in the token and
 * records it as pending beside the current one (after a crash, finds it: a
 * rerun continues; a rerun after the switch only destroys the old key:
 * *from == *to); while one is pending, new data keys are wrapped under it;
 * rewrap re-wraps one data key under it (*out_size 0: it already is; after
 * the switch, under the new current key); switch re-wraps the code-key
 * root, makes the new key current and marks the old one retired (this
 * vault still holds it); retire destroys the retired keys in the token;
 * finish is switch then retire. Until the switch both keys open data
 * keys. */
#define VEIL_VAULT_WRAPPED_MAX 256
int veil_vault_rotate_begin(struct veil_vault *v, uint32_t *from, uint32_t *to,
			    struct veil_diags *d) VEIL_MUST_CHECK;
int veil_vault_rewrap(struct veil_vault *v, const char *ns, const uint8_t *in, size_t in_size,
		      uint8_t out[static VEIL_VAULT_WRAPPED_MAX], size_t *out_size) VEIL_MUST_CHECK;
int veil_vault_rotate_switch(struct veil_vault *v, struct veil_diags *d) VEIL_MUST_CHECK;
int veil_vault_rotate_retire(struct veil_vault *v, struct veil_diags *d) VEIL_MUST_CHECK;
int veil_vault_rotate_finish(struct veil_vault *v, struct veil_diags *d) VEIL_MUST_CHECK;
void veil_vault_close(struct veil_vault *v);
/* A recovery key for a PKCS#11 master key (issue 13 item 3; recovery.c
 * splits its private key into the shares). set_recovery (at --init, in the
 * key process): its P-256 public point goes into the record with the
 * code-key root sealed to it, and every data key wrapped from then on
 * carries a copy sealed to it (vault.c's header). recovery_open (veil-cas
 * recover, the token gone): priv (borrowed; checked against the record's
 * point) opens the code-key root, which becomes a key-file master key;
 * recovery_rewrap opens a data key's copy and wraps it under that key
 * (*out_size 0: it already is); recovery_write_key writes it to path (0600,
 * atomically). */
int veil_vault_set_recovery(struct veil_vault *v, const uint8_t point[static 65],
			    struct veil_diags *d) VEIL_MUST_CHECK;
int veil_vault_recovery_open(const char *record_path, EVP_PKEY *priv, struct veil_vault **out,
			     struct veil_diags *d) VEIL_MUST_CHECK;
int veil_vault_recovery_rewrap(struct veil_vault *v, const char *ns, const uint8_t *in,
			       size_t in_size, uint8_t out[static VEIL_VAULT_WRAPPED_MAX],
			       size_t *out_size) VEIL_MUST_CHECK;
int veil_vault_recovery_write_key(struct veil_vault *v, const char *path,
				  struct veil_diags *d) VEIL_MUST_CHECK;
/* New random data key, returned wrapped (AES-256-GCM under the master key,
 * bound to the namespace). */
int veil_vault_new_key(struct veil_vault *v, const char *ns, uint8_t **wrapped,
		       size_t *size) VEIL_MUST_CHECK;
/* Encrypts/decrypts a payload with the namespace's data key. The opened
 * payload is secure memory: veil_secure_free(*out, *out_size). */
int veil_vault_seal(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
		    size_t wrapped_size, const uint8_t *plain, size_t plain_size, uint8_t **out,
		    size_t *out_size) VEIL_MUST_CHECK;
int veil_vault_open(struct veil_vault *v, const char *ns, const uint8_t *wrapped,
		    size_t wrapped_size, const uint8_t *sealed, size_t sealed_size, uint8_t **out,
		    size_t *out_size) VEIL_MUST_CHECK;
/* A vault whose operations another process performs (veil-cas's key
 * process, src/cas/keyproc.c): it holds no key and passes each call to ops,
 * which behave as the functions above (arg is ops->arg). ops is borrowed
 * and must outlive the vault. */
struct veil_vault_remote {
	int (*new_key)(void *arg, const char *ns, uint8_t **wrapped, size_t *size);
	int (*seal)(void *arg, const char *ns, const uint8_t *wrapped, size_t wrapped_size,
		    const uint8_t *plain, size_t plain_size, uint8_t **out, size_t *out_size);
	int (*open)(void *arg, const char *ns, const uint8_t *wrapped, size_t wrapped_size,
		    const uint8_t *sealed, size_t sealed_size, uint8_t **out, size_t *out_size);
	int (*code_key)(void *arg, const char *key_id, const char *owner, uint8_t out[32]);
	void *arg;
};
int veil_vault_remote(const struct veil_vault_remote *ops, struct veil_vault **out) VEIL_MUST_CHECK;
/* A code key (include/veil/codecrypt.h): HKDF-SHA256 of the master key with
 * salt "veil-code-key-v1" and info key_id || "\0" || owner (the namespace
 * creator's key hash). The same id gives another owner another key, so an id
 * copied into someone else's policy decrypts nothing. Nothing is stored: a
 * new master key (rotation, issue 13) must carry a derivation root along. */
int veil_vault_code_key(struct veil_vault *v, const char *key_id, const char *owner,
			uint8_t out[static 32]) VEIL_MUST_CHECK;

#endif
