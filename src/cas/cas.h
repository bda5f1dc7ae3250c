/* veil-cas internals shared by its files: the process-wide context, the
 * per-thread context, routes and metrics. */
#ifndef VEIL_CAS_H
#define VEIL_CAS_H

#include <pthread.h>

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "veil/audit.h"
#include "veil/store.h"
#include "veil/tls.h"

enum cas_route {
	R_HEALTHZ,
	R_METRICS,
	R_IDENTITY,
	R_POLICY_LIST,
	R_POLICY_CREATE,
	R_POLICY_GET,
	R_POLICY_UPDATE,
	R_POLICY_DELETE,
	R_ATTEST,
	R_OTHER,
	R_COUNT
};

#define LATENCY_BUCKETS 11
struct cas_metrics {
	unsigned long long requests[R_COUNT][10]; /* by status_slot() */
	unsigned long long latency[LATENCY_BUCKETS + 1];
	unsigned long long latency_sum_us;
	unsigned long long latency_count;
	unsigned long long refusals;
	unsigned long long tls_accepts;
};

struct cas {
	const char *data_dir;
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
	 * (one CAS process per data folder: the audit log's lock ensures it) */
	unsigned long long generation;
	char **trusted_platforms; /* --trust-platform key hashes */
	size_t trusted_count;
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
	struct attest_cache_entry *attest_cache; /* routes.c's, allocated on first use */
	unsigned long long attest_gen;           /* the generation its entries belong to */
	pthread_t tid;
	int fd;
};

void cas_handle(struct evhttp_request *req, void *arg); /* routes.c */
void cas_cache_free(struct cas_thread *t);
void cas_metrics_record(struct cas_metrics *m, enum cas_route r, int status, double seconds);
char *cas_metrics_render(struct cas *cas, struct veil_store *store); /* caller frees */

#endif
