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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "cas.h"
#include "recovery.h"
#include "veil/collateral.h"
#include "veil/evidence.h"
#include "veil/args.h"
#include "veil/collect.h"
#include "veil/evidence.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: veil-cas --data DIR [--init] [--store URL] [--listen HOST:PORT]\n"
		   "                [--threads N]\n"
		   "       veil-cas backup --data DIR DEST\n"
		   "       veil-cas restore SRC --data NEWDIR\n"
		   "       veil-cas rotate-master-key --data DIR [--store URL] [--pin-file FILE]\n"
		   "       veil-cas recovery-share open --key HOLDER.pem SHARE.json\n"
		   "       veil-cas recover --data DIR --share FILE --share FILE ...\n"
		   "       veil-cas audit export|verify --store URL [--data DIR] [-o FILE]\n\n"
		   "The Configuration and Attestation Service: stores policies encrypted at rest,\n"
		   "generates their secrets, and (with veil-run) provisions attested services.\n\n"
		   "  --data DIR          state folder: SQLite store (cas.db), master key, TLS\n"
		   "                      identity, audit log (made mode 0700)\n"
		   "  --store URL         keep policies in PostgreSQL instead of DIR/cas.db:\n"
		   "                      postgresql://... (or postgres://...), a libpq URI\n"
		   "                      (TLS: sslmode, sslcert, sslkey, sslrootcert; several\n"
		   "                      hosts with target_session_attrs=read-write); replicas\n"
		   "                      on one database share DIR's master.key and tls/\n"
		   "  --store-timeout S   seconds one store statement may wait (a lock, a\n"
		   "                      database that does not answer) before its request\n"
		   "                      is answered 503, 1 to 600 (default 10)\n"
		   "  --init              create a new CAS in DIR (refused if DIR holds one),\n"
		   "                      then serve; without it DIR must hold a CAS\n"
		   "  --listen HOST:PORT  HTTPS address (default 127.0.0.1:8081); HOST may be a\n"
		   "                      name (localhost) or [IPv6]; :PORT is every interface\n"
		   "  --master-key URI    with --init: where the master key is: file (default,\n"
		   "                      DIR/master.key) or pkcs11:token=T;object=O (RFC 7512;\n"
		   "                      module-path=, else $VEIL_PKCS11_MODULE, else\n"
		   "                      softhsm2); recorded in DIR, later starts use it\n"
		   "  --pin-file FILE     the PKCS#11 token's PIN (else $VEIL_PKCS11_PIN)\n"
		   "  --san NAME          with --init: one more subjectAltName (DNS name or IP)\n"
		   "                      in the TLS certificate; repeatable\n"
		   "  --recovery-key FILE  with --init: a recovery holder's P-256 public key\n"
		   "                      (PEM); repeatable, one per holder (at most 255)\n"
		   "  --recovery-threshold K  with --init and --recovery-key: split the master\n"
		   "                      key so that any K holders recover it (2 to the\n"
		   "                      number of keys); DIR/recovery/share-X.json holds\n"
		   "                      share X, sealed to the X-th key; with a pkcs11:\n"
		   "                      key, the split key is a recovery key every data\n"
		   "                      key is also sealed to\n"
		   "  --threads N         event loops, 1 to 256 (default: number of cores)\n"
		   "  --body-max BYTES    largest request body (default 4194304)\n"
		   "  --buffered-max BYTES  request bytes all connections may hold before\n"
		   "                      their requests are complete; over it 503 (default\n"
		   "                      67108864)\n"
		   "  --max-connections N  connections at once (default: what the file-\n"
		   "                      descriptor limit allows, raised to its hard limit)\n"
		   "  --max-connections-per-client N  from one client address (default 256)\n"
		   "  --request-timeout S  seconds from accept (or the previous reply) to a\n"
		   "                      complete request (default 30)\n"
		   "  --trust-platform H  accept evidence signed by the platform key with hash H\n"
		   "                      (veil-las --print-key-hash prints it); repeatable\n"
		   "  --allow-policy-platforms\n"
		   "                      also trust the platform keys a service's policy\n"
		   "                      lists in `platforms` (off: only --trust-platform)\n"
		   "  --evidence-max-age SECONDS\n"
		   "                      refuse evidence made longer ago (or further ahead)\n"
		   "                      than this, 1 to 3600 (default 60)\n"
		   "  --collateral DIR    Intel collateral (TCB Info, QE Identity, CRLs and\n"
		   "                      their chains; dcap-qvl bundles or PCS files) for\n"
		   "                      the TCB status of SGX and TDX quotes, verified at\n"
		   "                      start; stale collateral refuses those quotes\n"
		   "  --max-namespaces-per-client N\n"
		   "                      namespaces one client identity may own, 1 to\n"
		   "                      1000000 (default 1000)\n"
		   "  --log-format F      request log as logfmt (default) or json\n"
		   "  --log-level L       debug, info (default), warn or error\n"
		   "  --log-file PATH     request log file (default stderr); SIGHUP reopens it\n"
		   "  --print-key-hash    print the CAS's TLS key hash and exit\n"
		   "  -h, --help          this help\n"
		   "  --version           print the version\n\n"
		   "Commands:\n"
		   "  backup   a consistent copy of a running CAS, key material included\n"
		   "  restore  a backup into a new data folder\n"
		   "  rotate-master-key  a new PKCS#11 master key re-wraps every data key\n"
		   "           (veil-cas stopped or running; with --store, every replica on\n"
		   "           the database loads each step); the old key is then destroyed\n"
		   "  recovery-share  open a recovery share with its holder's key\n"
		   "  recover  the master key back from K opened recovery shares\n"
		   "  audit    the change chain in PostgreSQL (--store): export it as\n"
		   "           audit.log lines, or verify it and its signed checkpoints\n\n"
		   "HTTPS only (TLS 1.3), client certificates requested; a client's identity is\n"
		   "the SHA-256 of its certificate's public key. SIGTERM stops it cleanly;\n"
		   "SIGUSR1 loads the master key again (rotate-master-key sends it).\n");
}

/* --listen, resolved once: every thread's socket binds the same address. */
struct listen_addr {
	struct sockaddr_storage sa;
	socklen_t len;
	char host[256]; /* as given, without brackets; "" for :PORT */
};

/* VEIL_EINVAL: not an address (a usage error); VEIL_ENOENT: a name that does
 * not resolve */
static int listen_parse(const char *arg, struct listen_addr *out, struct veil_diags *d)
{
	const char *colon = strrchr(arg, ':');
	long port;
	memset(out, 0, sizeof(*out));
	if (!colon || (size_t)(colon - arg) >= sizeof(out->host)) {
		veil_diag(d, "--listen '%s': expected HOST:PORT, [IPv6]:PORT or :PORT", arg);
		return VEIL_EINVAL;
	}
	if (veil_parse_long("--listen port", colon + 1, 1, 65535, &port, d))
		return VEIL_EINVAL;
	size_t n = (size_t)(colon - arg);
	if (n >= 2 && arg[0] == '[' && arg[n - 1] == ']') {
		memcpy(out->host, arg + 1, n - 2);
		out->host[n - 2] = '\0';
	} else if (memchr(arg, ':', n)) {
		veil_diag(d, "--listen '%s': write an IPv6 address in brackets, [::1]:PORT", arg);
		return VEIL_EINVAL;
	} else {
		memcpy(out->host, arg, n);
		out->host[n] = '\0';
	}
	if (!out->host[0]) {
		/* every interface, both stacks where the kernel has IPv6 (as Go's
		 * ":8081"); bound as [::] with IPV6_V6ONLY off */
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->sa;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		a6->sin6_addr = in6addr_any;
		out->len = sizeof(*a6);
		return 0;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG},
			*ai = NULL;
	int e = getaddrinfo(out->host, colon + 1, &hints, &ai);
	if (e) {
		veil_diag(d, "--listen '%s': cannot resolve %s: %s", arg, out->host,
			  gai_strerror(e));
		return VEIL_ENOENT; /* not a usage error: the name may resolve later */
	}
	/* One address: the first IPv4 one, else the first. A name such as
	 * "localhost" often resolves to ::1 first (RFC 6724 ordering with the
	 * usual "::1 localhost" line of /etc/hosts), and a CAS on ::1 alone is
	 * neither what 127.0.0.1 clients reach nor in the way of a second CAS
	 * on 127.0.0.1 (Go's net.Listen prefers IPv4 the same way). */
	const struct addrinfo *pick = ai;
	for (const struct addrinfo *p = ai; p; p = p->ai_next)
		if (p->ai_family == AF_INET) {
			pick = p;
			break;
		}
	memcpy(&out->sa, pick->ai_addr, pick->ai_addrlen);
	out->len = pick->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* One listening socket per thread, all bound to the same address in one
 * SO_REUSEPORT group, so the kernel spreads connections over the threads.
 * The first is bound WITHOUT SO_REUSEPORT and only then joins the group:
 * that bind fails with EADDRINUSE when anyone already listens there (a
 * second veil-cas used to join the first one's group and take half of its
 * connections). The accept path is unchanged. */
static int listen_socket(const char *arg, const struct listen_addr *la, bool first,
			 struct veil_diags *d)
{
	int fd = socket(la->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1,
	    off = 0;
	if (fd < 0 && la->sa.ss_family == AF_INET6 && !la->host[0]) {
		veil_diag(d, "--listen '%s': this kernel has no IPv6; give 0.0.0.0:PORT", arg);
		return -1;
	}
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (la->sa.ss_family == AF_INET6 && !la->host[0] &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off))) ||
	    (!first && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    /* inherited by accepted sockets: a response's TLS records must not wait
	     * for the client's delayed ACK (40 ms a request on keep-alive) */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		veil_diag(d, "--listen '%s': %s", arg, strerror(errno));
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&la->sa, la->len)) {
		if (errno == EADDRINUSE)
			veil_diag(d,
				  "--listen '%s': the address is already in use (another "
				  "veil-cas, or another server, listens there)",
				  arg);
		else
			veil_diag(d, "--listen '%s': %s", arg, strerror(errno));
		goto fail;
	}
	if ((first && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    listen(fd, 4096)) {
		veil_diag(d, "--listen '%s': %s", arg, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
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
	struct cas_thread *t = arg;
	SSL *ssl = SSL_new(t->cas->ssl);
	if (!ssl)
		return NULL;
	__atomic_fetch_add(&t->cas->metrics.tls_accepts, 1, __ATOMIC_RELAXED);
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev && cas_conn_new(t, ssl, bev)) {
		/* the connection's limits cannot be kept: a handshake that fails
		 * (evhttp would serve a NULL bufferevent as plain HTTP) */
		SSL_set_max_proto_version(ssl, TLS1_2_VERSION); /* below the minimum */
	}
	return bev;
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

/* GET /v1/cas/identity: certificate, key hash and evidence binding the TLS
 * key (report data: the SHA-256 of its SubjectPublicKeyInfo, then zeros):
 * the platform's (configfs-tsm, Gramine; src/evidence/collect.c) where there
 * is one, else simulation evidence from the CAS's own simulated platform. A
 * platform that is there and fails stops the CAS: it never presents
 * simulation evidence inside a confidential VM. */
static int make_identity(struct cas *cas, struct veil_diags *d)
{
	EVP_PKEY *platform = NULL;
	X509 *platform_cert = NULL;
	char *pdir = NULL;
	char *evidence = NULL, measurement[VEIL_KEY_HASH_HEX];
	char provider[VEIL_COLLECT_PROVIDER_MAX], why[1024];
	uint8_t rd[VEIL_REPORT_DATA_SIZE] = {0}, m[VEIL_SHA256_SIZE];
	int rc = veil_pubkey_digest(cas->key, rd);
	if (!rc) {
		rc = veil_collect(rd, &evidence, provider, why, sizeof(why));
		if (rc && rc != VEIL_ENOENT)
			veil_diag(d, "the CAS's evidence from the platform failed: %s", why);
		else if (!rc)
			fprintf(stderr, "veil-cas: evidence from %s\n", provider);
	}
	if (rc == VEIL_ENOENT) {
		pdir = veil_path_join(cas->data_dir, "sim-platform");
		rc = pdir ? veil_identity_load_or_create(pdir, "veil simulated platform", &platform,
							 &platform_cert, d)
			  : VEIL_ENOMEM;
		if (!rc)
			rc = veil_sha256_file("/proc/self/exe", m, d);
		if (!rc) {
			veil_hex(m, sizeof(m), measurement);
			rc = veil_evidence_sim_sign(platform, measurement, rd, "", &evidence);
		}
	}
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
int cas_check_data_dir(const char *data, bool init, bool sqlite, struct veil_diags *d)
{
	static const char *const parts[] = {"master.key", "cas.db", "audit.log", "tls"};
	bool present[VEIL_ARRAY_LEN(parts)], any = false;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(parts); i++) {
		char *p = veil_path_join(data, parts[i]);
		if (!p)
			return VEIL_ENOMEM;
		present[i] = access(p, F_OK) == 0;
		if (i == 1 && !sqlite)
			present[i] = true; /* the policies are in PostgreSQL */
		else
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
	/* Without them the CAS used to start as an empty store with a fresh
	 * audit chain: every policy gone, and a log that no longer tells. */
	int rc = 0;
	char *replica = !init && !present[1] ? veil_path_join(data, "replica.id") : NULL;
	if (replica && !access(replica, F_OK)) {
		veil_diag(d,
			  "%s holds no cas.db but a replica.id: its policies are in PostgreSQL; "
			  "give the database with --store postgresql://...",
			  data);
		rc = VEIL_EINVAL;
	} else if (!init && !present[1]) {
		veil_diag(d,
			  "%s/cas.db is missing: it holds every policy of this CAS; restore it "
			  "from your backup with 'veil-cas restore' (--init would not bring it "
			  "back, it makes an empty CAS)",
			  data);
		rc = VEIL_EINVAL;
	}
	free(replica);
	if (!init && !present[2]) {
		veil_diag(d,
			  "%s/audit.log is missing: it is the history of every change to this "
			  "CAS; restore it from your backup with 'veil-cas restore' (--init "
			  "would not bring it back, it starts a new chain)",
			  data);
		rc = VEIL_EINVAL;
	}
	return rc;
}

/* The data folder holds the master key: group or other access is taken away
 * (with a warning), whoever made the folder. A folder we cannot chmod (not
 * ours) is refused. */
static int tighten_data_dir(const char *data, struct veil_diags *d)
{
	struct stat st;
	if (stat(data, &st)) {
		veil_diag(d, "%s: %s", data, strerror(errno));
		return VEIL_EIO;
	}
	if (!S_ISDIR(st.st_mode)) {
		veil_diag(d, "--data %s is not a folder", data);
		return VEIL_EINVAL;
	}
	if (!(st.st_mode & 077))
		return 0;
	if (chmod(data, 0700)) {
		veil_diag(
		    d, "%s is mode %04o (group or others have access) and cannot be made 0700: %s",
		    data, (unsigned)(st.st_mode & 07777), strerror(errno));
		return VEIL_EINVAL;
	}
	fprintf(stderr, "warning: %s was mode %04o (group or others had access); it is now 0700\n",
		data, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* The files of an older data folder keep the modes they were made with
 * (cas.db was 0644 in a 0755 folder): group and other access is taken away
 * from each, with a warning, before anything is opened. */
static int tighten_data_files(const char *data, struct veil_diags *d)
{
	static const char *const files[] = {"cas.db", "cas.db-wal", "cas.db-shm", "audit.log",
					    "master.key"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(files); i++) {
		char *p = veil_path_join(data, files[i]);
		struct stat st;
		if (!p)
			return VEIL_ENOMEM;
		if (!lstat(p, &st) && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
			if (chmod(p, st.st_mode & 0700)) {
				veil_diag(d, "%s is mode %04o and cannot be made private: %s", p,
					  (unsigned)(st.st_mode & 07777), strerror(errno));
				free(p);
				return VEIL_EINVAL;
			}
			fprintf(stderr, "warning: %s was mode %04o; it is now %04o\n", p,
				(unsigned)(st.st_mode & 07777), (unsigned)(st.st_mode & 0700));
		}
		free(p);
	}
	return 0;
}

/* DATA/master-key.loaded (0600, no secret): this veil-cas's pid, how many
 * master-key reloads it did, what its key process loaded
 * (veil_vault_describe) and, after a reload that failed, why. Written at
 * start and at each SIGUSR1, removed at a clean stop; veil-cas
 * rotate-master-key reads it to find and follow a running CAS. */
static void write_loaded(const char *data, unsigned long reloads, const char *error)
{
	struct veil_diags d;
	veil_diags_init(&d);
	char text[1024];
	int n = snprintf(text, sizeof(text), "veil-cas %ld\nreload %lu\nloaded %s\n%s%.400s%s",
			 (long)getpid(), reloads, cas_keyproc_loaded(), error ? "error " : "",
			 error ? error : "", error ? "\n" : "");
	char *path = veil_path_join(data, "master-key.loaded");
	if (!path || n < 0 || veil_write_file(path, text, strlen(text), 0600, &d)) {
		veil_diags_print(&d, stderr);
		cas_warn_limited("cannot write master-key.loaded");
	}
	free(path);
	veil_diags_free(&d);
}

/* SIGUSR1: the master key opened again by a fresh key process, swapped in
 * for the serving one (cas_keyproc_reload), the caches emptied (a rotation
 * re-wrote data keys under them), an audit entry "master-key-reload" (what
 * is loaded now, and the line veil-cas rotate-master-key left in
 * DATA/master-key.reload, if any), master-key.loaded rewritten once every
 * request begun before the swap has been answered. On failure to start
 * the new process the old key process keeps serving (non-zero). ks learns
 * what was loaded (keysync.c); db_note: the step, when the database's
 * record asked for the reload rather than SIGUSR1. */
/* Each statement is bounded by --store-timeout and a request does a few:
 * longer is a request stuck elsewhere, and the reload reports it. */
#define RELOAD_DRAIN_SECONDS 120.0

static int reload_master_key(struct cas *cas, const char *data, unsigned long *reloads,
			     struct cas_keysync *ks, const char *keyfile, const char *db_note)
{
	struct veil_diags d;
	veil_diags_init(&d);
	char what[128] = "", note[256] = "", detail[700];
	char *note_path = veil_path_join(data, "master-key.reload");
	FILE *f = note_path ? fopen(note_path, "re") : NULL;
	if (f) {
		if (!fgets(note, sizeof(note), f))
			note[0] = 0;
		fclose(f);
		unlink(note_path);
		/* one line of printable ASCII into the log, nothing else */
		note[strcspn(note, "\r\n")] = 0;
		for (char *p = note; *p; p++)
			if (*p < 0x20 || *p > 0x7e)
				*p = '?';
	}
	free(note_path);
	/* a reload the database's record asked for (keysync.c) */
	if (!note[0] && db_note) {
		snprintf(note, sizeof(note), "%s", db_note);
		for (char *p = note; *p; p++)
			if (*p < 0x20 || *p > 0x7e)
				*p = '?';
	}
	cas_keysync_loading(ks, keyfile);
	int rc = cas_keyproc_reload(what, sizeof(what), &d);
	/* swapped: the caches (which may hold wrapped keys a rotation
	 * re-wrote) are stale, whatever the drain below finds */
	if (!rc)
		__atomic_add_fetch(&cas->generation, 1, __ATOMIC_RELEASE);
	/* and no request begun before it still holds what the old one made
	 * (a data key under a key the rotation is about to retire) */
	if (!rc)
		rc = cas_requests_drain(RELOAD_DRAIN_SECONDS, &d);
	(*reloads)++;
	if (!rc) {
		snprintf(detail, sizeof(detail), "%s%s%s", what, note[0] ? "; " : "", note);
		fprintf(stderr, "veil-cas: master key reloaded: %s\n", detail);
	} else {
		cas_keysync_failed(ks);
		snprintf(detail, sizeof(detail), "%s",
			 d.count ? d.msgs[0] : "the key process did not start");
		fprintf(stderr, "veil-cas: master key reload failed: %s\n", detail);
	}
	struct veil_audit_event ev = {
	    .event = "master-key-reload", .status = rc ? 500 : 200, .detail = detail};
	if (veil_audit_append(cas->audit, &ev))
		cas_warn_limited("cannot write the audit log");
	write_loaded(data, *reloads, rc ? detail : NULL);
	veil_diags_free(&d);
	return rc;
}

/* --print-key-hash: the key hash of DIR's CAS, nothing created or started */
static int print_key_hash(const char *data, bool sqlite, struct veil_diags *d)
{
	char *cert_path = veil_path_join(data, "tls/cert.pem");
	char hash[VEIL_KEY_HASH_HEX];
	X509 *cert = NULL;
	FILE *f = NULL;
	int rc = cert_path ? cas_check_data_dir(data, false, sqlite, d) : VEIL_ENOMEM;
	if (rc)
		goto out;
	if (!(f = fopen(cert_path, "re")) || !(cert = PEM_read_X509(f, NULL, NULL, NULL))) {
		veil_diag(d, "%s: cannot read the CAS certificate%s%s", cert_path, f ? "" : ": ",
			  f ? "" : strerror(errno));
		rc = VEIL_EIO;
		goto out;
	}
	if ((rc = veil_cert_key_hash(cert, hash)))
		goto out;
	printf("%s\n", hash);
out:
	if (f)
		fclose(f);
	X509_free(cert);
	free(cert_path);
	return rc;
}

static void *run_thread(void *arg)
{
	struct cas_thread *t = arg;
	event_base_dispatch(t->base);
	return NULL;
}

/* Store and audit log agree at start: the log holds the head the store
 * committed last (else it was cut or rewritten: refused), and changes
 * logged after it that never committed get a "rollback" entry. */
static int hash_in_store(void *arg, const char *ns, char hash[static 65])
{
	struct veil_store *st = arg;
	struct veil_record r = {0};
	int rc = st->ops->get(st, ns, &r);
	if (!rc)
		snprintf(hash, 65, "%s", r.hash);
	veil_record_free(&r);
	return rc;
}

static int reconcile_audit(struct cas *cas, struct veil_store *st, const char *path,
			   struct veil_diags *d)
{
	struct veil_store_head sh;
	int rc = st->ops->get_head(st, &sh);
	if (rc == VEIL_ENOENT)
		return 0; /* an older CAS: no head yet */
	if (rc) {
		veil_diag(d, "%s: cannot read the audit head from cas.db", path);
		return rc;
	}
	struct veil_audit_head h = {.seq = sh.seq, .size = sh.size};
	memcpy(h.hash, sh.hash, sizeof(h.hash));
	if (veil_audit_head_verify(cas->key, &h, sh.signature)) {
		veil_diag(d, "%s: the audit head in cas.db is not signed by this CAS's key", path);
		return VEIL_EINVAL;
	}
	rc = veil_audit_reconcile(cas->audit, &h, hash_in_store, st, d);
	if (rc)
		veil_diag(d, "the audit log does not hold what the store committed; veil-cas does "
			     "not start on it ('veil audit verify --data DIR' says more)");
	return rc;
}

/* --init --store: a database that holds policies holds another CAS's, sealed
 * under its master key: a replica of it starts on a copy of its data folder */
static int refuse_populated_database(struct veil_store *st, struct veil_diags *d)
{
	long long n = 0;
	if (st->ops->count(st, &n)) {
		veil_diag(d, "--store: cannot count the policies in the database");
		return VEIL_EIO;
	}
	if (!n)
		return 0;
	veil_diag(d,
		  "--init --store: the database already holds %lld namespaces of another CAS "
		  "(sealed under its master key); to add a replica of that CAS, start on a copy "
		  "of its data folder (without replica.id) instead of --init",
		  n);
	return VEIL_EINVAL;
}

#define CHECKPOINT_SECONDS 60
#define MAX_TRUSTED 64
#define MAX_SANS 32

/* No core files and no ptrace by the same uid: the process holds the master
 * key and renders secrets (/proc/PID/mem and the like become root's). */
static void no_dumps(void)
{
	struct rlimit none = {0, 0};
	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int main(int argc, char **argv)
{
	no_dumps();
	umask(077); /* cas.db and its WAL as SQLite makes them: 0600, not 0644 */
	/* jansson's and libevent's memory is wiped when freed (common.h):
	 * rendered configurations (secret values) pass through jansson's
	 * strings and json_dumps buffers, and a core or a later heap reuse found
	 * 3 copies of a rendered password before; a policy's YAML (explicit
	 * values) passes through libevent's request and reply buffers. First,
	 * before anything allocates from either. */
	json_set_alloc_funcs(veil_wipe_malloc, veil_wipe_free);
	event_set_mem_functions(veil_wipe_malloc, veil_wipe_realloc, veil_wipe_free);
	if (argc > 1 && !strcmp(argv[1], "--key-process"))
		return cas_keyproc_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "backup"))
		return cas_backup_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "restore"))
		return cas_restore_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "rotate-master-key"))
		return cas_rotate_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "recovery-share"))
		return cas_recovery_share_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "recover"))
		return cas_recover_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "audit"))
		return cas_audit_main(argc - 1, argv + 1);
	enum {
		OPT_INIT = 256,
		OPT_MASTER_KEY,
		OPT_PIN_FILE,
		OPT_DATA,
		OPT_LISTEN,
		OPT_THREADS,
		OPT_BODY_MAX,
		OPT_TRUST,
		OPT_SAN,
		OPT_LOG_FORMAT,
		OPT_LOG_LEVEL,
		OPT_LOG_FILE,
		OPT_PRINT_KEY_HASH,
		OPT_VERSION,
		OPT_ALLOW_POLICY_PLATFORMS,
		OPT_EVIDENCE_MAX_AGE,
		OPT_COLLATERAL,
		OPT_TEST_RECORDED,
		OPT_MAX_NAMESPACES,
		OPT_BUFFERED_MAX,
		OPT_MAX_CONNS,
		OPT_MAX_CONNS_CLIENT,
		OPT_REQUEST_TIMEOUT,
		OPT_RECOVERY_KEY,
		OPT_RECOVERY_THRESHOLD,
		OPT_STORE,
		OPT_STORE_TIMEOUT,
	};
	static const struct option opts[] = {
	    {"data", required_argument, NULL, OPT_DATA},
	    {"store", required_argument, NULL, OPT_STORE},
	    {"store-timeout", required_argument, NULL, OPT_STORE_TIMEOUT},
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"body-max", required_argument, NULL, OPT_BODY_MAX},
	    {"trust-platform", required_argument, NULL, OPT_TRUST},
	    {"allow-policy-platforms", no_argument, NULL, OPT_ALLOW_POLICY_PLATFORMS},
	    {"evidence-max-age", required_argument, NULL, OPT_EVIDENCE_MAX_AGE},
	    {"collateral", required_argument, NULL, OPT_COLLATERAL},
#ifdef VEIL_TEST_HOOKS
	    {"test-recorded-evidence", no_argument, NULL, OPT_TEST_RECORDED},
#endif
	    {"max-namespaces-per-client", required_argument, NULL, OPT_MAX_NAMESPACES},
	    {"san", required_argument, NULL, OPT_SAN},
	    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	    {"log-file", required_argument, NULL, OPT_LOG_FILE},
	    {"print-key-hash", no_argument, NULL, OPT_PRINT_KEY_HASH},
	    {"buffered-max", required_argument, NULL, OPT_BUFFERED_MAX},
	    {"max-connections", required_argument, NULL, OPT_MAX_CONNS},
	    {"max-connections-per-client", required_argument, NULL, OPT_MAX_CONNS_CLIENT},
	    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
	    {"recovery-key", required_argument, NULL, OPT_RECOVERY_KEY},
	    {"recovery-threshold", required_argument, NULL, OPT_RECOVERY_THRESHOLD},
	    {"init", no_argument, NULL, OPT_INIT},
	    {"master-key", required_argument, NULL, OPT_MASTER_KEY},
	    {"pin-file", required_argument, NULL, OPT_PIN_FILE},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {0}};
	const char *prog = "veil-cas";
	const char *data = NULL, *listen_arg = "127.0.0.1:8081", *collateral_dir = NULL;
	char *trusted[MAX_TRUSTED];
	const char *sans[MAX_SANS + 3];
	size_t ntrusted = 0, nsans = 0;
	long nthreads = sysconf(_SC_NPROCESSORS_ONLN), body_max = 4 << 20, buffered_max = 64L << 20;
	int c;
	bool init = false, key_hash_only = false;
	struct cas_master_key master_key = {0};
	struct cas cas = {.log = {.fd = -1, .level = CAS_LOG_INFO, .format = CAS_LOG_LOGFMT},
			  .evidence_max_age = 60,
			  .max_namespaces_per_client = 1000,
			  .max_conns_per_client = 256,
			  .request_timeout = 30};
	struct cas_recovery_plan recovery = {.count = 0};
	struct veil_diags d;
	veil_diags_init(&d);
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > 256)
		nthreads = 256;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_INIT:
			init = true;
			break;
		case OPT_MASTER_KEY:
			master_key.uri = optarg;
			break;
		case OPT_PIN_FILE:
			master_key.pin_file = optarg;
			break;
		case OPT_DATA:
			data = optarg;
			break;
		case OPT_STORE:
			if (!veil_store_url_is_pg(optarg)) {
				veil_diag(&d, "--store: expected postgresql://... or "
					      "postgres://... (without --store: SQLite in the "
					      "data folder)");
				goto usage_error;
			}
			cas.store_url = optarg;
			break;
		case OPT_LISTEN:
			listen_arg = optarg;
			break;
		case OPT_THREADS:
			if (veil_parse_long("--threads", optarg, 1, 256, &nthreads, &d))
				goto usage_error;
			break;
		case OPT_BODY_MAX:
			if (veil_parse_long("--body-max", optarg, 1024, 1L << 30, &body_max, &d))
				goto usage_error;
			break;
		case OPT_BUFFERED_MAX:
			if (veil_parse_long("--buffered-max", optarg, 1L << 20, 1L << 40,
					    &buffered_max, &d))
				goto usage_error;
			break;
		case OPT_MAX_CONNS:
			if (veil_parse_long("--max-connections", optarg, 1, 1L << 20,
					    &cas.max_conns, &d))
				goto usage_error;
			break;
		case OPT_MAX_CONNS_CLIENT:
			if (veil_parse_long("--max-connections-per-client", optarg, 1, 1L << 20,
					    &cas.max_conns_per_client, &d))
				goto usage_error;
			break;
		case OPT_STORE_TIMEOUT: {
			long secs;
			if (veil_parse_long("--store-timeout", optarg, 1, 600, &secs, &d))
				goto usage_error;
			veil_store_set_timeout_ms((unsigned)secs * 1000u);
			break;
		}
		case OPT_REQUEST_TIMEOUT:
			if (veil_parse_long("--request-timeout", optarg, 1, 3600,
					    &cas.request_timeout, &d))
				goto usage_error;
			break;
		case OPT_TRUST:
			if (!veil_is_sha256_hex(optarg) || ntrusted == MAX_TRUSTED) {
				veil_diag(&d,
					  "--trust-platform takes a 64-hex-digit key hash "
					  "(veil-las --print-key-hash prints it), at most %d times",
					  MAX_TRUSTED);
				goto usage_error;
			}
			trusted[ntrusted++] = optarg;
			break;
		case OPT_ALLOW_POLICY_PLATFORMS:
			cas.allow_policy_platforms = true;
			break;
		case OPT_EVIDENCE_MAX_AGE:
			if (veil_parse_long("--evidence-max-age", optarg, 1, 3600,
					    &cas.evidence_max_age, &d))
				goto usage_error;
			break;
		case OPT_COLLATERAL:
			collateral_dir = optarg;
			break;
#ifdef VEIL_TEST_HOOKS
		case OPT_TEST_RECORDED:
			cas.test_recorded_evidence = true;
			break;
#endif
		case OPT_MAX_NAMESPACES:
			if (veil_parse_long("--max-namespaces-per-client", optarg, 1, 1000000,
					    &cas.max_namespaces_per_client, &d))
				goto usage_error;
			break;
		case OPT_SAN:
			if (!*optarg || strlen(optarg) > 253 || nsans == MAX_SANS) {
				veil_diag(&d,
					  "--san takes a DNS name or an IP address, at most %d "
					  "times",
					  MAX_SANS);
				goto usage_error;
			}
			sans[nsans++] = optarg;
			break;
		case OPT_LOG_FORMAT:
			if (!strcmp(optarg, "json")) {
				cas.log.format = CAS_LOG_JSON;
			} else if (!strcmp(optarg, "logfmt")) {
				cas.log.format = CAS_LOG_LOGFMT;
			} else {
				veil_diag(&d, "--log-format: '%s' is not logfmt or json", optarg);
				goto usage_error;
			}
			break;
		case OPT_LOG_LEVEL:
			if (cas_log_parse_level(optarg, &cas.log.level)) {
				veil_diag(&d, "--log-level: '%s' is not debug, info, warn or error",
					  optarg);
				goto usage_error;
			}
			break;
		case OPT_LOG_FILE:
			cas.log.path = optarg;
			break;
		case OPT_RECOVERY_KEY:
			if (cas_recovery_add_key(&recovery, optarg, &d))
				goto usage_error;
			break;
		case OPT_RECOVERY_THRESHOLD:
			if (veil_parse_long("--recovery-threshold", optarg, 2, 255,
					    &recovery.threshold, &d))
				goto usage_error;
			break;
		case OPT_PRINT_KEY_HASH:
			key_hash_only = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			return veil_print_version(prog);
		default:
			veil_diags_free(&d);
			return veil_getopt_error(prog, c, argc, argv, optind);
		}
	}
	if (optind < argc) {
		veil_diags_free(&d);
		return veil_usage_error(prog, "unexpected argument '%s'", argv[optind]);
	}
	if (!data) {
		veil_diag(&d, "--data DIR is required");
		goto usage_error;
	}
	if (master_key.uri && !init) {
		veil_diag(&d, "--master-key applies to --init; a CAS keeps the provider it was "
			      "made with (DIR/master.key records it)");
		goto usage_error;
	}
	if (nsans && !init) {
		veil_diag(&d, "--san applies to the certificate --init makes; give it with --init");
		goto usage_error;
	}
	if (cas_recovery_check(&recovery, init, &d))
		goto usage_error;
	/* a token's key never leaves the token: the shares are then of a
	 * recovery key that every data key is also sealed to (recovery.c) */
	bool token_recovery = recovery.count && master_key.uri && strcmp(master_key.uri, "file");
	if (token_recovery && cas.store_url) {
		/* veil-cas recover re-wraps the rows of DATA/cas.db only: shares
		 * made here could not bring this CAS back */
		veil_diag(&d, "--recovery-key with a PKCS#11 master key needs the SQLite store: "
			      "veil-cas recover cannot yet re-wrap the data keys of a PostgreSQL "
			      "store (--store); back the token up with its vendor's tools instead");
		goto usage_error;
	}
	struct cas_recovery_token rtok = {.pid = -1, .to_child = -1};
	struct listen_addr la;
	int lrc = key_hash_only ? 0 : listen_parse(listen_arg, &la, &d);
	if (lrc == VEIL_EINVAL)
		goto usage_error;
	if (key_hash_only) {
		int r = print_key_hash(data, !cas.store_url, &d);
		cas_recovery_plan_free(&recovery);
		veil_diags_print(&d, stderr);
		veil_diags_free(&d);
		return r ? 1 : 0;
	}
	signal(SIGPIPE, SIG_IGN);
	cas.data_dir = data;
	cas.body_max = (size_t)body_max;
	cas.buffered_max = (size_t)buffered_max;
	cas.trusted_platforms = trusted;
	cas.trusted_count = ntrusted;
	struct cas_thread *threads = calloc((size_t)nthreads, sizeof(*threads));
	char *keyfile = veil_path_join(data, "master.key");
	char *tlsdir = veil_path_join(data, "tls");
	char *auditlog = veil_path_join(data, "audit.log");
	int rc = threads && keyfile && tlsdir && auditlog
		     ? cas_check_data_dir(data, init, !cas.store_url, &d)
		     : VEIL_ENOMEM;
	if (!rc)
		rc = lrc;
	/* the address first: a CAS already serving it stops this one before
	 * anything is created or opened */
	int first_fd = rc ? -1 : listen_socket(listen_arg, &la, true, &d);
	if (!rc && first_fd < 0)
		rc = VEIL_EIO;
	if (!rc && init)
		rc = veil_mkdirs(data, 0700, &d);
	if (!rc)
		rc = tighten_data_dir(data, &d);
	if (!rc)
		rc = tighten_data_files(data, &d);
	if (!rc)
		rc = cas_log_open(&cas.log, &d);
	if (!rc && token_recovery && !(rc = cas_recovery_token_begin(&recovery, data, &rtok, &d)))
		master_key.recovery_point = rtok.point_hex;
	/* a replica on PostgreSQL: a rotation that moved on while it was
	 * stopped left a newer record in the database (keysync.c) */
	struct cas_keysync keysync = {0};
	if (!rc && !init)
		rc = cas_keysync_start(&keysync, cas.store_url, keyfile, true, &d);
	if (!rc)
		/* the master key lives in the key process only; one channel for
		 * each event loop, each worker and the main thread */
		rc = cas_keyproc_start(keyfile, init, &master_key, (size_t)nthreads + 3, &cas.vault,
				       &d);
	if (!rc && init) /* master.key made now */
		rc = cas_keysync_start(&keysync, cas.store_url, keyfile, false, &d);
	cas_keysync_loading(&keysync, keyfile);
	if (!rc) {
		/* names clients may use: loopback, and the --listen host */
		sans[nsans++] = "127.0.0.1";
		sans[nsans++] = "localhost";
		if (la.host[0] && strcmp(la.host, "127.0.0.1") && strcmp(la.host, "localhost"))
			sans[nsans++] = la.host;
		rc = veil_identity_load_or_create_san(tlsdir, "veil-cas", sans, nsans, &cas.key,
						      &cas.cert, &d);
	}
	if (!rc)
		rc = veil_cert_key_hash(cas.cert, cas.key_hash);
	if (!rc && init)
		rc = token_recovery
			 ? cas_recovery_token_finish(&recovery, &rtok, data, cas.key_hash, &d)
			 : cas_recovery_write_shares(&recovery, data, cas.key_hash, &d);
	cas_recovery_token_abort(&rtok);
	cas_recovery_plan_free(&recovery);
	if (!rc)
		rc = veil_audit_open(auditlog, &cas.audit, &d);
	/* the main thread's store: the audit head (start, checkpoints, stop);
	 * the first to open it, it runs the migrations (the export index is
	 * built with the master key) */
	struct veil_store *main_store = NULL;
	struct veil_store_opener opener = {cas_policy_exports, cas.vault};
	if (!rc)
		rc = veil_store_open(cas.store_url, data, true, &opener, &main_store, &d);
	if (!rc && init && cas.store_url)
		rc = refuse_populated_database(main_store, &d);
	if (!rc)
		rc = reconcile_audit(&cas, main_store, auditlog, &d);
	if (!rc && collateral_dir) {
		char why[600] = "";
		if (veil_collateral_load_dir(collateral_dir, &cas.collateral, why, sizeof(why))) {
			veil_diag(&d, "--collateral %s: %s", collateral_dir, why);
			rc = VEIL_EINVAL;
		} else {
			veil_evidence_set_collateral(cas.collateral);
			fprintf(stderr, "veil-cas: Intel collateral from %s\n", collateral_dir);
		}
	}
#ifdef VEIL_TEST_HOOKS
	if (!rc && cas.test_recorded_evidence)
		fprintf(stderr, "veil-cas: TEST BUILD: hardware evidence is not bound to the "
				"connection (--test-recorded-evidence)\n");
#endif
	if (!rc)
		rc = make_identity(&cas, &d);
	if (!rc && !(cas.ssl = make_ssl(&cas))) {
		veil_diag(&d, "cannot set up TLS");
		rc = VEIL_EIO;
	}
	if (!rc)
		rc = cas_conn_setup(&cas, cas.ssl, nthreads, &d);
	if (!rc && evthread_use_pthreads()) {
		veil_diag(&d, "libevent threads unavailable");
		rc = VEIL_EIO;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);               /* reload the master key */
	sigaddset(&sigs, SIGCHLD);               /* the key process exited */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* the threads inherit it */
	if (!rc)
		rc = cas_workers_start(&cas, nthreads > 1 ? 2 : 1, &d);
	long started = 0;
	bool keyproc_lost = false;
	for (long i = 0; !rc && i < nthreads; i++) {
		struct cas_thread *t = &threads[i];
		t->cas = &cas;
		t->fd = -1;
		t->cache = calloc(READ_CACHE_SLOTS, sizeof(*t->cache));
		t->fd = i == 0 ? first_fd : listen_socket(listen_arg, &la, false, &d);
		first_fd = -1;
		if (t->fd < 0 ||
		    veil_store_open(cas.store_url, data, false, &opener, &t->store, &d) ||
		    !(t->base = event_base_new()) || !(t->http = evhttp_new(t->base))) {
			rc = VEIL_EIO;
			break;
		}
		evhttp_set_bevcb(t->http, make_bev, t);
		evhttp_set_gencb(t->http, cas_handle, t);
		evhttp_set_max_body_size(t->http, (ev_ssize_t)body_max);
		evhttp_set_max_headers_size(t->http, 16 * 1024);
		evhttp_set_timeout(t->http, 30);
		/* every method evhttp knows reaches the routes, which answer a wrong
		 * one with 405 and Allow (evhttp itself would say 501) */
		evhttp_set_allowed_methods(
		    t->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
				 EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
				 EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
		if (cas_conn_listen(t, t->fd)) {
			veil_diag(&d, "cannot accept on %s", listen_arg);
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
		       listen_arg, nthreads, cas.key_hash);
		fflush(stdout);
		struct veil_audit_event ev = {.event = "start", .detail = cas.key_hash};
		if (veil_audit_append(cas.audit, &ev))
			cas_warn_limited("cannot write the audit log");
		if (cas_audit_checkpoint(&cas, main_store) ||
		    cas_audit_checkpoint_chain(&cas, main_store))
			cas_warn_limited("cannot write an audit checkpoint");
#ifdef VEIL_TEST_HOOKS
		if (getenv("VEIL_TEST_KEYPROC"))
			cas_keyproc_test(getenv("VEIL_TEST_KEYPROC"));
#endif
		unsigned long reloads = 0;
		write_loaded(data, reloads, NULL);
		int sig = 0;
		struct veil_audit_head last = {0}, now;
		/* the head is set even when the log is broken (the error); only
		 * its seq is compared here, and appends report the breakage */
		VEIL_UNCHECKED(veil_audit_head_get(cas.audit, &last));
		/* a replica on PostgreSQL looks at the master key's record each
		 * second (keysync.c), the first time now (its row says what it
		 * loaded); else the loop wakes for the checkpoints only */
		const struct timespec every = {keysync.on ? 1 : CHECKPOINT_SECONDS, 0};
		double next_checkpoint = veil_store_clock() + CHECKPOINT_SECONDS, retry_at = 0;
		for (bool first = true;; first = false) {
			sig = first && keysync.on ? -1 : sigtimedwait(&sigs, NULL, &every);
			/* errno now: the store's calls below may change it */
			bool timed_out = sig < 0 && (first || errno == EAGAIN || errno == EINTR);
			if (timed_out && keysync.on && veil_store_clock() >= retry_at) {
				char note[300];
				if (cas_keysync_check(&keysync, main_store, keyfile, note,
						      sizeof(note))) {
					/* a failed reload is tried again in 10 s */
					if (reload_master_key(&cas, data, &reloads, &keysync,
							      keyfile, note))
						retry_at = veil_store_clock() + 10;
					else /* loaded: this check only reports it (0) */
						VEIL_UNCHECKED(
						    cas_keysync_check(&keysync, main_store, keyfile,
								      note, sizeof(note)));
				}
			}
			if (timed_out && keysync.on && veil_store_clock() < next_checkpoint)
				continue;
			if (timed_out) {
				next_checkpoint = veil_store_clock() + CHECKPOINT_SECONDS;
				/* a checkpoint a minute while the log grows */
				if (!veil_audit_head_get(cas.audit, &now) && now.seq != last.seq) {
					if (cas_audit_checkpoint(&cas, main_store))
						cas_warn_limited(
						    "cannot write an audit checkpoint");
					/* as above */
					VEIL_UNCHECKED(veil_audit_head_get(cas.audit, &last));
				}
				/* the database's change chain moves with every
				 * replica's changes: checked each minute, a
				 * checkpoint only when it moved */
				if (cas_audit_checkpoint_chain(&cas, main_store))
					cas_warn_limited("cannot write an audit checkpoint");
				continue;
			}
			if (sig == SIGCHLD) {
				char why[100];
				if (!cas_keyproc_reap(why, sizeof(why)))
					continue;
				fprintf(stderr, "veil-cas: the key process exited (%s); stopping\n",
					why);
				keyproc_lost = true;
				break;
			}
			if (sig == SIGUSR1) {
				/* the outcome is in master-key.loaded and the audit
				 * log, where rotate-master-key looks */
				VEIL_UNCHECKED(reload_master_key(&cas, data, &reloads, &keysync,
								 keyfile, NULL));
				continue;
			}
			if (sig != SIGHUP)
				break;
			/* log rotation: reopen, keep serving */
			struct veil_diags hd;
			veil_diags_init(&hd);
			if (cas_log_reopen(&cas.log, &hd))
				veil_diags_print(&hd, stderr);
			veil_diags_free(&hd);
		}
		if (!keyproc_lost)
			fprintf(stderr, "veil-cas: signal %d, shutting down\n", sig);
		char *loaded = veil_path_join(data, "master-key.loaded");
		if (loaded)
			unlink(loaded);
		free(loaded);
	} else {
		veil_diags_print(&d, stderr);
	}
	cas_workers_stop(&cas); /* their answers go out on the loops */
	for (long i = 0; i < started; i++)
		event_base_loopexit(threads[i].base, NULL);
	for (long i = 0; i < started; i++)
		pthread_join(threads[i].tid, NULL);
	for (long i = 0; threads && i < nthreads; i++) {
		struct cas_thread *t = &threads[i];
		if (t->http)
			evhttp_free(t->http);
		if (t->resume)
			event_free(t->resume);
		if (t->base)
			event_base_free(t->base);
		if (t->store)
			t->store->ops->close(t->store);
		cas_cache_free(t);
		if (t->fd >= 0)
			close(t->fd);
	}
	if (first_fd >= 0)
		close(first_fd);
	if (!rc) {
		struct veil_audit_event ev = {.event = "stop"};
		if (veil_audit_append(cas.audit, &ev))
			cas_warn_limited("cannot write the audit log");
		if (cas_audit_checkpoint(&cas, main_store) ||
		    cas_audit_checkpoint_chain(&cas, main_store))
			cas_warn_limited("cannot write the audit checkpoint at stop");
	}
	if (main_store)
		main_store->ops->close(main_store);
	cas_workers_free(&cas);
	veil_audit_close(cas.audit);
	cas_keyproc_stop();
	cas_keysync_free(&keysync);
	veil_vault_close(cas.vault);
	veil_collateral_free(cas.collateral);
	cas_log_close(&cas.log);
	SSL_CTX_free(cas.ssl);
	EVP_PKEY_free(cas.key);
	X509_free(cas.cert);
	free(cas.identity_json);
	free(threads);
	free(keyfile);
	free(tlsdir);
	free(auditlog);
	veil_diags_free(&d);
	return rc || keyproc_lost ? 1 : 0;
usage_error:
	cas_recovery_plan_free(&recovery);
	for (size_t i = 0; i < d.count; i++)
		veil_usage_error(prog, "%s", d.msgs[i]);
	veil_diags_free(&d);
	return 2;
}
