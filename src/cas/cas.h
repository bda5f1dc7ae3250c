/* veil-cas internals shared by its files: the process-wide context, the
 * per-thread context, routes and metrics. */
#ifndef VEIL_CAS_H
#define VEIL_CAS_H

#include <pthread.h>
#include <stdbool.h>

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "veil/audit_log.h"
#include "veil/store.h"
#include "veil/tls.h"

enum cas_route {
	R_HEALTHZ,
	R_READYZ,
	R_METRICS,
	R_IDENTITY,
	R_POLICY_LIST,
	R_POLICY_CREATE,
	R_POLICY_GET,
	R_POLICY_UPDATE,
	R_POLICY_DELETE,
	R_ATTEST,
	R_ATTEST_REFUSED,
	R_CODE_KEY,
	R_OTHER,
	R_COUNT
};

#define LATENCY_BUCKETS 11
#define STATUS_SLOTS 13 /* metrics.c's status codes and "other" */
struct cas_metrics {
	unsigned long long requests[R_COUNT][STATUS_SLOTS]; /* by status_slot() */
	unsigned long long latency[LATENCY_BUCKETS + 1];
	unsigned long long latency_sum_us;
	unsigned long long latency_count;
	unsigned long long refusals;
	unsigned long long tls_accepts;
};

/* The request log (log.c) */
enum cas_log_level { CAS_LOG_DEBUG, CAS_LOG_INFO, CAS_LOG_WARN, CAS_LOG_ERROR };
enum cas_log_format { CAS_LOG_LOGFMT, CAS_LOG_JSON };
struct cas_log {
	const char *path; /* NULL: stderr */
	int fd;
	enum cas_log_level level;
	enum cas_log_format format;
};
struct cas_log_entry {
	enum cas_log_level level;
	const char *route, *method, *path;
	int status;
	double ms;
	const char *client; /* key hash hex or NULL */
	const char *error;  /* the reason of an error reply, or NULL */
};
int cas_log_parse_level(const char *s, enum cas_log_level *out) VEIL_MUST_CHECK;
int cas_log_open(struct cas_log *l, struct veil_diags *d) VEIL_MUST_CHECK;
int cas_log_reopen(struct cas_log *l, struct veil_diags *d) VEIL_MUST_CHECK; /* SIGHUP */
void cas_log_close(struct cas_log *l);
void cas_log_request(struct cas_log *l, const struct cas_log_entry *e);

struct cas {
	const char *data_dir;
	const char *store_url; /* --store: PostgreSQL; NULL: SQLite in data_dir */
	struct cas_log log;
	struct veil_vault *vault;
	struct veil_audit *audit;
	SSL_CTX *ssl;
	EVP_PKEY *key;
	X509 *cert;
	char key_hash[VEIL_KEY_HASH_HEX];
	char *identity_json; /* GET /v1/cas/identity */
	size_t body_max;
	struct cas_metrics metrics;
	/* bumped after every committed change: read caches older than it are stale
	 * (one CAS process per data folder: the audit log's lock ensures it; on
	 * a store several replicas share, the store's generation is added:
	 * cas_cache_generation) */
	unsigned long long generation;
	char **trusted_platforms; /* --trust-platform key hashes */
	size_t trusted_count;
	/* --allow-policy-platforms: a service's `platforms` count too (off: a
	 * policy cannot make the CAS trust a key its writer made up) */
	bool allow_policy_platforms;
	long evidence_max_age;              /* seconds, --evidence-max-age */
	struct veil_collateral *collateral; /* --collateral: Intel TCB status */
	bool test_recorded_evidence;    /* VEIL_TEST_HOOKS builds only: no report-data binding */
	long max_namespaces_per_client; /* --max-namespaces-per-client */
	/* conn.c: connection limits and what is held now */
	long max_conns;              /* --max-connections (0: what the fd limit allows) */
	long max_conns_per_client;   /* --max-connections-per-client */
	long request_timeout;        /* --request-timeout, seconds */
	size_t buffered_max;         /* --buffered-max, bytes */
	struct cas_workers *workers; /* workers.c: policy create/update */
	long conn_count;             /* atomic */
	size_t buffered;             /* atomic: request bytes received, not yet handled */
};

#define READ_CACHE_SLOTS 512
struct read_cache_entry {
	char ns[129];
	unsigned long long generation;
	char *owner;
	char **read; /* access_policy.read, copied */
	size_t read_count;
	char *response; /* the JSON answer to GET */
	size_t response_size;
};

struct cas_thread {
	struct cas *cas;
	struct event_base *base;
	struct evhttp *http;
	struct veil_store *store;
	struct read_cache_entry *cache;          /* READ_CACHE_SLOTS, this thread's own */
	struct attest_cache_entry *attest_cache; /* caches.c's, allocated on first use */
	unsigned long long attest_gen;           /* the generation its entries belong to */
	struct evconnlistener *listener;         /* evhttp frees it */
	struct event *resume;                    /* conn.c: accepting again after a pause */
	pthread_t tid;
	int fd;
};

void cas_handle(struct evhttp_request *req, void *arg); /* routes.c */
/* workers.c: the workers that create and update policies (key generation
 * off the event loops); stop before the loops stop, free after */
int cas_workers_start(struct cas *cas, size_t count, struct veil_diags *d) VEIL_MUST_CHECK;
void cas_workers_stop(struct cas *cas);
void cas_workers_free(struct cas *cas);
/* consent.c: the export index's entries of stored record r, opened with vault
 * (a struct veil_vault *), to add (struct veil_store_opener's exports_of) */
int cas_policy_exports(void *vault, const struct veil_record *r,
		       int (*add)(void *sink, const struct veil_store_export *e),
		       void *sink) VEIL_MUST_CHECK;
/* keyproc.c: the key process. main: its entry ("veil-cas --key-process
 * ..."; only veil-cas starts it). start: forks and re-execs it with
 * `channels` channels, opens (or with init creates) keyfile there, and makes
 * *out a vault whose operations it serves. pid: its pid (-1 once reaped).
 * reap: 1 with why set once it exited (after SIGCHLD), else 0. stop: closes
 * the channels (it exits) and waits for it. */
int cas_keyproc_main(int argc, char **argv) VEIL_MUST_CHECK;
/* The master key provider: uri NULL or "file" for the key file, else the
 * --init --master-key pkcs11: URI; pin_file NULL for $VEIL_PKCS11_PIN */
struct cas_master_key {
	const char *uri;
	const char *pin_file;
	/* with --init, a token and --recovery-key: the recovery key's public
	 * point, hex (cas_recovery_token_begin), else NULL */
	const char *recovery_point;
};
int cas_keyproc_start(const char *keyfile, bool init, const struct cas_master_key *mk,
		      size_t channels, struct veil_vault **out,
		      struct veil_diags *d) VEIL_MUST_CHECK;
pid_t cas_keyproc_pid(void);
/* reload: starts a fresh key process (the master key opened again from
 * keyfile: after a rotation's step, src/cas/rotate.c) and swaps it in for
 * the serving one without failing a call under way; the old one exits and
 * is reaped here (its exit does not stop veil-cas). A PKCS#11 key needs
 * --pin-file (the environment's PIN is wiped at start). On failure the old
 * one keeps serving. what: what the new one loaded (veil_vault_describe).
 * loaded: that text of the one serving now. Main thread only. */
int cas_keyproc_reload(char *what, size_t cap, struct veil_diags *d) VEIL_MUST_CHECK;
const char *cas_keyproc_loaded(void);
/* What the network process asks of the key process beyond the vault (see
 * render.h for what each does there). open_policy: the policy's YAML of
 * stored record r, in secure memory (veil_secure_free); without a key
 * process (an offline command) opened with v itself. generate: a new
 * sealed payload (*blob, malloc'd) with the secrets of policy yaml;
 * VEIL_EINVAL: the policy's definitions were refused (why). render: the
 * /v1/attest answer for service, the configuration sealed to `to` for
 * config_id (*answer, malloc'd, not secret: the plaintext stays in the key
 * process), imports as IPC_F_IMPORTS holds them (ipc.h); why on failure. */
int cas_kp_open_policy(struct veil_vault *v, const struct veil_record *r, uint8_t **yaml,
		       size_t *size) VEIL_MUST_CHECK;
int cas_kp_generate(const char *ns, const uint8_t *wrapped, size_t wrapped_size, const char *yaml,
		    size_t yaml_size, const uint8_t *prev, size_t prev_size, uint8_t **blob,
		    size_t *blob_size, char *why, size_t cap) VEIL_MUST_CHECK;
struct cas_seal_to;
int cas_kp_render(const struct veil_record *r, const char *service, const char *owner,
		  const uint8_t *imports, size_t imports_size, const char *config_id,
		  const struct cas_seal_to *to, char **answer, size_t *size, char *why,
		  size_t cap) VEIL_MUST_CHECK;
int cas_keyproc_reap(char *why, size_t cap) VEIL_MUST_CHECK;
void cas_keyproc_stop(void);
#ifdef VEIL_TEST_HOOKS
/* only for testing: "socket" asks the key process for a forbidden system
 * call; "malformed" sends it a malformed message; "bad-answer" has it
 * answer with another type */
void cas_keyproc_test(const char *what);
#endif
/* keysync.c: a replica on PostgreSQL follows the master key's record a
 * rotation publishes in the database (the comment there). start: before
 * the key process opens keyfile (take: a newer record is written there
 * first), or with --init after it made keyfile (take false); on only for
 * --store with a PKCS#11 record. loading: keyfile's text is
 * what the key process loads now (start, each reload). check: each
 * second, main thread, st the store opened first: 1 when the record moved
 * and master.key must be loaded again (note: the line for the audit
 * entry), else 0 (this replica's row then says the version it holds). */
struct cas_keysync {
	bool on;
	long long version; /* the database's record version reported loaded */
	char *loaded;      /* master.key's text the key process loaded */
	bool fresh;        /* loaded since that version was reported */
};
int cas_keysync_start(struct cas_keysync *ks, const char *url, const char *keyfile, bool take,
		      struct veil_diags *d) VEIL_MUST_CHECK;
void cas_keysync_loading(struct cas_keysync *ks, const char *keyfile);
/* the reload after loading failed: the old key process serves on */
void cas_keysync_failed(struct cas_keysync *ks);
int cas_keysync_check(struct cas_keysync *ks, struct veil_store *st, const char *keyfile,
		      char *note, size_t cap);
void cas_keysync_free(struct cas_keysync *ks);
/* routes.c: waits until every request begun before this call has been
 * answered (those begun after are not waited for), at most max_seconds:
 * VEIL_EIO then, with how many are left in d. A master-key reload calls it
 * after the swap, so that once it reports done no request holds a data
 * key the previous key process made (rotate.c relies on it). Main thread. */
int cas_requests_drain(double max_seconds, struct veil_diags *d) VEIL_MUST_CHECK;

/* commit.c: a signed checkpoint of the audit log file's head, kept in the
 * store too; and (PostgreSQL; 0 and nothing on SQLite) one of the
 * database's change chain when it moved since its last checkpoint */
int cas_audit_checkpoint(struct cas *cas, struct veil_store *st) VEIL_MUST_CHECK;
int cas_audit_checkpoint_chain(struct cas *cas, struct veil_store *st) VEIL_MUST_CHECK;
/* audit_cmd.c: veil-cas audit export|verify (the database's change chain) */
int cas_audit_main(int argc, char **argv) VEIL_MUST_CHECK;
/* conn.c: connection limits (see there). setup once, after the SSL_CTX and
 * before any thread; new for every accepted connection (make_bev); listen
 * instead of evhttp_accept_socket (takes fd); request_done when a request is
 * complete, request_next once it is answered (the next one's deadline). */
struct bufferevent;
struct evconnlistener;
int cas_conn_setup(struct cas *cas, SSL_CTX *ctx, long nthreads,
		   struct veil_diags *d) VEIL_MUST_CHECK;
int cas_conn_new(struct cas_thread *t, SSL *ssl, struct bufferevent *bev) VEIL_MUST_CHECK;
int cas_conn_listen(struct cas_thread *t, int fd) VEIL_MUST_CHECK;
void cas_conn_request_done(struct evhttp_request *req);
void cas_conn_request_next(struct evhttp_request *req);
/* a message to stderr, the same one at most once a second */
void cas_warn_limited(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* backup.c: `veil-cas backup ...` and `veil-cas restore ...` (argv[0] is the
 * command's name); exit statuses */
int cas_backup_main(int argc, char **argv) VEIL_MUST_CHECK;
/* rotate.c: veil-cas rotate-master-key --data DIR [--pin-file FILE] */
int cas_rotate_main(int argc, char **argv) VEIL_MUST_CHECK;
int cas_restore_main(int argc, char **argv) VEIL_MUST_CHECK;
/* main.c: DIR holds a CAS (or, with init, none yet); the reason in d.
 * sqlite: its policies are in DIR/cas.db (else in --store's database) */
int cas_check_data_dir(const char *data, bool init, bool sqlite,
		       struct veil_diags *d) VEIL_MUST_CHECK;
void cas_cache_free(struct cas_thread *t); /* caches.c: a thread's caches */
const char *cas_route_name(enum cas_route r);
void cas_metrics_record(struct cas_metrics *m, enum cas_route r, int status, double seconds);
char *cas_metrics_render(struct cas *cas,
			 struct veil_store *store) VEIL_MUST_CHECK; /* caller frees */
/* seal.c: whom the /v1/attest answer is sealed to (include/veil/sealed.h):
 * the public key of req's client certificate (its uncompressed P-256
 * point) and SHA-256 of the evidence text as the request sent it. 0, or
 * the HTTP status to refuse with (400: no P-256 client key; 500) and the
 * reason in why. The key process seals (cas_kp_render). */
struct evhttp_request;
struct cas_seal_to {
	uint8_t point[65];
	uint8_t evidence_sha256[VEIL_SHA256_SIZE];
};
int cas_seal_target(struct evhttp_request *req, const char *evidence, struct cas_seal_to *to,
		    char *why, size_t why_size) VEIL_MUST_CHECK;

#endif
