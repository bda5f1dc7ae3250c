/* veil-cas: the Configuration and Attestation Service. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/pem.h>

#include "cas.h"
#include "veil/evidence.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: veil-cas --data DIR [--init] [--listen HOST:PORT] [--threads N]\n\n"
		   "The Configuration and Attestation Service: stores policies encrypted at rest,\n"
		   "generates their secrets, and (with veil-run) provisions attested services.\n\n"
		   "  --data DIR          state folder: SQLite store (cas.db), master key, TLS\n"
		   "                      identity, audit log\n"
		   "  --init              create a new CAS in DIR (refused if DIR holds one),\n"
		   "                      then serve; without it DIR must hold a CAS\n"
		   "  --listen HOST:PORT  HTTPS address (default 127.0.0.1:8081)\n"
		   "  --threads N         event loops (default: number of cores)\n"
		   "  --body-max BYTES    largest request body (default 4194304)\n"
		   "  --trust-platform H  accept evidence signed by the platform key with hash H\n"
		   "                      (veil-las prints it); repeatable\n"
		   "  -h, --help          this help\n\n"
		   "HTTPS only (TLS 1.3), client certificates requested; a client's identity is\n"
		   "the SHA-256 of its certificate's public key. SIGTERM stops it cleanly.\n");
}

static int listen_socket(const char *addr, struct veil_diags *d)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host) || !colon[1]) {
		veil_diag(d, "--listen '%s': expected HOST:PORT", addr);
		return -1;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV},
			*ai = NULL;
	int e = getaddrinfo(host, colon + 1, &hints, &ai);
	if (e) {
		veil_diag(d, "--listen '%s': %s (give a numeric address and port)", addr,
			  gai_strerror(e));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    /* inherited by accepted sockets: a response's TLS records must not wait
	     * for the client's delayed ACK (40 ms a request on keep-alive) */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 4096)) {
		veil_diag(d, "--listen '%s': %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Self-signed client certificates are the norm: the identity is the key hash,
 * and authorisation is by access_policy, not by a CA. So no chain is built at
 * all (OpenSSL would build and check one for every handshake only for a
 * verify callback to overrule it); TLS still proves the client holds the
 * certificate's key (CertificateVerify). */
static int accept_any_chain(X509_STORE_CTX *x, void *arg)
{
	(void)x;
	(void)arg;
	return 1;
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
	struct cas *cas = arg;
	SSL *ssl = SSL_new(cas->ssl);
	if (!ssl)
		return NULL;
	__atomic_fetch_add(&cas->metrics.tls_accepts, 1, __ATOMIC_RELAXED);
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

static SSL_CTX *make_ssl(struct cas *cas)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate(ctx, cas->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, cas->key) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_any_chain, NULL);
	static const unsigned char sid[] = "veil-cas";
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	/* Clients come with fresh keys and do not resume: tickets would only cost
	 * a signature-free but non-trivial encryption per handshake. */
	SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
}

/* GET /v1/cas/identity: certificate, key hash and simulation evidence binding
 * the TLS key (report_data = SHA-256 of its SubjectPublicKeyInfo). */
static int make_identity(struct cas *cas, struct veil_diags *d)
{
	EVP_PKEY *platform = NULL;
	X509 *platform_cert = NULL;
	char *pdir = veil_path_join(cas->data_dir, "sim-platform");
	char *evidence = NULL, measurement[VEIL_KEY_HASH_HEX];
	uint8_t rd[VEIL_SHA256_SIZE], m[VEIL_SHA256_SIZE];
	int rc = pdir ? veil_identity_load_or_create(pdir, "veil simulated platform", &platform,
						     &platform_cert, d)
		      : VEIL_ENOMEM;
	if (!rc)
		rc = veil_sha256_file("/proc/self/exe", m, d);
	if (!rc) {
		veil_hex(m, sizeof(m), measurement);
		rc = veil_pubkey_digest(cas->key, rd);
	}
	if (!rc)
		rc = veil_evidence_sim_sign(platform, measurement, rd, &evidence);
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long n = !rc && b && PEM_write_bio_X509(b, cas->cert) ? BIO_get_mem_data(b, &pem) : 0;
	json_t *j = n > 0 ? json_pack("{s:s%, s:s, s:s}", "certificate", pem, (size_t)n, "key_hash",
				      cas->key_hash, "evidence", evidence)
			  : NULL;
	if (!rc && !(j && (cas->identity_json = json_dumps(j, JSON_COMPACT))))
		rc = VEIL_ENOMEM;
	json_decref(j);
	BIO_free(b);
	free(evidence);
	free(pdir);
	EVP_PKEY_free(platform);
	X509_free(platform_cert);
	return rc;
}

/* A CAS is its master key plus what it wraps. A new one is made only on
 * request: silently making a fresh key beside policies sealed under a lost one
 * left a CAS that reported healthy and answered 500 to every read. */
static int check_data_dir(const char *data, bool init, struct veil_diags *d)
{
	static const char *const parts[] = {"master.key", "cas.db", "audit.log", "tls"};
	bool present[VEIL_ARRAY_LEN(parts)], any = false;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(parts); i++) {
		char *p = veil_path_join(data, parts[i]);
		if (!p)
			return VEIL_ENOMEM;
		present[i] = access(p, F_OK) == 0;
		any |= present[i];
		free(p);
	}
	if (init && any) {
		veil_diag(d, "%s already holds a CAS; start it without --init", data);
		return VEIL_EINVAL;
	}
	if (!init && !any) {
		veil_diag(d, "%s holds no CAS; create one with 'veil-cas --init --data %s'", data,
			  data);
		return VEIL_EINVAL;
	}
	if (!init && !present[0]) {
		veil_diag(
		    d,
		    "%s/master.key is missing: the policies in %s cannot be decrypted without "
		    "it; restore the key from your backup (--init would not bring it back)",
		    data, data);
		return VEIL_EINVAL;
	}
	return 0;
}

static void *run_thread(void *arg)
{
	struct cas_thread *t = arg;
	event_base_dispatch(t->base);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
					     {"listen", required_argument, NULL, 'l'},
					     {"threads", required_argument, NULL, 't'},
					     {"body-max", required_argument, NULL, 'b'},
					     {"trust-platform", required_argument, NULL, 'p'},
					     {"init", no_argument, NULL, 'i'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	const char *data = NULL, *listen_addr = "127.0.0.1:8081";
	char *trusted[64];
	size_t ntrusted = 0;
	long nthreads = sysconf(_SC_NPROCESSORS_ONLN), body_max = 4 << 20;
	int c;
	bool init = false;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			init = true;
			break;
		case 'd':
			data = optarg;
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 't':
			nthreads = strtol(optarg, NULL, 10);
			break;
		case 'b':
			body_max = strtol(optarg, NULL, 10);
			break;
		case 'p':
			if (!veil_is_sha256_hex(optarg) || ntrusted == 64) {
				fprintf(stderr,
					"veil-cas: --trust-platform takes a 64-hex-digit key "
					"hash (veil-las prints it), at most 64 times\n");
				return 2;
			}
			trusted[ntrusted++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!data || optind < argc || nthreads < 1 || nthreads > 256 || body_max < 1024) {
		fprintf(stderr, "veil-cas: %s\n\n",
			!data ? "--data DIR is required" : "bad arguments");
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct veil_diags d;
	veil_diags_init(&d);
	struct cas cas = {.data_dir = data,
			  .body_max = (size_t)body_max,
			  .trusted_platforms = trusted,
			  .trusted_count = ntrusted};
	struct cas_thread *threads = calloc((size_t)nthreads, sizeof(*threads));
	char *keyfile = veil_path_join(data, "master.key");
	char *tlsdir = veil_path_join(data, "tls");
	char *auditlog = veil_path_join(data, "audit.log");
	int rc =
	    threads && keyfile && tlsdir && auditlog ? check_data_dir(data, init, &d) : VEIL_ENOMEM;
	if (!rc && init)
		rc = veil_mkdirs(data, 0700, &d);
	if (!rc)
		rc = veil_vault_open_file(keyfile, init, &cas.vault, &d);
	if (!rc)
		rc = veil_identity_load_or_create(tlsdir, "veil-cas", &cas.key, &cas.cert, &d);
	if (!rc)
		rc = veil_cert_key_hash(cas.cert, cas.key_hash);
	if (!rc)
		rc = veil_audit_open(auditlog, &cas.audit, &d);
	if (!rc)
		rc = make_identity(&cas, &d);
	if (!rc && !(cas.ssl = make_ssl(&cas))) {
		veil_diag(&d, "cannot set up TLS");
		rc = VEIL_EIO;
	}
	if (!rc && evthread_use_pthreads()) {
		veil_diag(&d, "libevent threads unavailable");
		rc = VEIL_EIO;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* the threads inherit it */
	long started = 0;
	for (long i = 0; !rc && i < nthreads; i++) {
		struct cas_thread *t = &threads[i];
		t->cas = &cas;
		t->fd = -1;
		t->cache = calloc(READ_CACHE_SLOTS, sizeof(*t->cache));
		if ((t->fd = listen_socket(listen_addr, &d)) < 0 ||
		    veil_store_sqlite_open(data, &t->store, &d) || !(t->base = event_base_new()) ||
		    !(t->http = evhttp_new(t->base))) {
			rc = VEIL_EIO;
			break;
		}
		evhttp_set_bevcb(t->http, make_bev, &cas);
		evhttp_set_gencb(t->http, cas_handle, t);
		evhttp_set_max_body_size(t->http, (ev_ssize_t)body_max);
		evhttp_set_max_headers_size(t->http, 16 * 1024);
		evhttp_set_timeout(t->http, 30);
		evhttp_set_allowed_methods(t->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
							EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
		if (evhttp_accept_socket(t->http, t->fd)) {
			veil_diag(&d, "cannot accept on %s", listen_addr);
			rc = VEIL_EIO;
			break;
		}
		t->fd = -1; /* evhttp owns it now */
		if (pthread_create(&t->tid, NULL, run_thread, t)) {
			rc = VEIL_EIO;
			break;
		}
		started++;
	}
	if (!rc) {
		printf("veil-cas listening on https://%s (%ld threads)\nveil-cas key hash %s\n",
		       listen_addr, nthreads, cas.key_hash);
		fflush(stdout);
		struct veil_audit_event ev = {.event = "start", .detail = cas.key_hash};
		veil_audit_append(cas.audit, &ev);
		int sig = 0;
		sigwait(&sigs, &sig);
		fprintf(stderr, "veil-cas: signal %d, shutting down\n", sig);
	} else {
		veil_diags_print(&d, stderr);
	}
	for (long i = 0; i < started; i++)
		event_base_loopexit(threads[i].base, NULL);
	for (long i = 0; i < started; i++)
		pthread_join(threads[i].tid, NULL);
	for (long i = 0; threads && i < nthreads; i++) {
		struct cas_thread *t = &threads[i];
		if (t->http)
			evhttp_free(t->http);
		if (t->base)
			event_base_free(t->base);
		if (t->store)
			t->store->ops->close(t->store);
		cas_cache_free(t);
		if (t->fd >= 0)
			close(t->fd);
	}
	if (!rc) {
		struct veil_audit_event ev = {.event = "stop"};
		veil_audit_append(cas.audit, &ev);
	}
	veil_audit_close(cas.audit);
	veil_vault_close(cas.vault);
	SSL_CTX_free(cas.ssl);
	EVP_PKEY_free(cas.key);
	X509_free(cas.cert);
	free(cas.identity_json);
	free(threads);
	free(keyfile);
	free(tlsdir);
	free(auditlog);
	veil_diags_free(&d);
	return rc ? 1 : 0;
}
