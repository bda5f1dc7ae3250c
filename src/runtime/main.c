/* veil-run: the entrypoint of every confidential image.
 *
 * It makes a fresh key, gets evidence binding it from the platform
 * (configfs-tsm in a TDX or SNP guest, Gramine in an SGX enclave) or else
 * from veil-las, measures the
 * protected files, attests to the CAS over mutual TLS with that key (the CAS
 * authenticated by its pinned key), and only then builds the environment from
 * the policy alone and execs the policy's command in the policy's pwd. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <getopt.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "veil/args.h"
#include "veil/collect.h"
#include "veil/cursor.h"
#include "veil/evidence.h"
#include "veil/image.h"
#include "veil/image_record.h"
#include "veil/lasproto.h"
#include "veil/sealed.h"
#include "veil/secrets.h"
#include "veil/tls.h"
#include "decrypt.h"
#include "image_verify.h"
#include "inject.h"
#include "pin.h"
#include "verify.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_ARGS 256
/* where an image keeps its prefetch list (see verify.h) */
#define DEFAULT_RUNTIME_LIST "/etc/veil/runtime-files"

static int verbose;
static struct timespec t_start;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	fprintf(stderr, "veil-run: [%6.2f ms] ",
		(double)(now.tv_sec - t_start.tv_sec) * 1e3 +
		    (double)(now.tv_nsec - t_start.tv_nsec) / 1e6);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

/* VEIL_X, else SCONE_X */
static const char *setting(const char *name)
{
	char v[64], s[64];
	snprintf(v, sizeof(v), "VEIL_%s", name);
	snprintf(s, sizeof(s), "SCONE_%s", name);
	const char *x = getenv(v);
	if (x && *x)
		return x;
	x = getenv(s);
	return x && *x ? x : NULL;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: veil-run   (configured by the environment; takes no arguments)\n\n"
	    "The entrypoint of confidential images. The command, its arguments, pwd and\n"
	    "environment come from the CAS policy after attestation; the host's\n"
	    "environment is not passed on.\n\n"
	    "  SCONE_CONFIG_ID / VEIL_CONFIG_ID   NAMESPACE/SERVICE (required)\n"
	    "  SCONE_CAS_ADDR  / VEIL_CAS_ADDR    the CAS, HOST[:PORT] (default port 8081)\n"
	    "  VEIL_CAS_KEY                       the CAS key hash to pin (required)\n"
	    "  SCONE_LAS_ADDR  / VEIL_LAS_ADDR    veil-las socket (default /run/veil/las.sock)\n"
	    "  VEIL_FILES_DIR                     the protected folder (default: the\n"
	    "                                     policy's pwd must be this folder; /python\n"
	    "                                     if unset)\n"
	    "  VEIL_RUNTIME_LIST                  the prefetch list: runtime files to copy\n"
	    "                                     while attesting, a hint checked against\n"
	    "                                     the policy (default " DEFAULT_RUNTIME_LIST ")\n"
	    "  VEIL_IMAGE_RECORD                  the image's measurement record (default\n"
	    "                                     " VEIL_IMAGE_RECORD_PATH "); every entry\n"
	    "                                     is checked before the program starts\n"
	    "  VEIL_IMAGE_ROOT                    the root the record is checked under\n"
	    "                                     (default /; other roots only for a\n"
	    "                                     policy that tolerates debug-mode)\n"
	    "  SCONE_LOG       / VEIL_LOG         'debug' or 'info' for progress messages\n\n"
	    "  -h, --help   this help\n"
	    "  --version    print the version\n");
}

/* veil-las answers in well under a millisecond when it is up; one that
 * accepts and never answers (hung, or a slow caller's victim) must not hold
 * the start forever: the whole exchange, connect included, has this long. */
#define LAS_SECONDS 10

/* Reads what veil-las sends until a newline (line) or its end (!line), by
 * the deadline, into b. 0, 1 on a closed connection or error, 2 on time out. */
static int las_read(int fd, const struct timespec *deadline, struct veil_buf *b, int line)
{
	char tmp[4096];
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
			       (deadline->tv_nsec - now.tv_nsec) / 1000000;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = ms > 0 ? poll(&p, 1, (int)ms) : 0;
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			return 2;
		/* veil-las sends nothing after its challenge until it is answered */
		ssize_t r = read(fd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return 1;
		if (r == 0)
			return line ? 1 : 0;
		if (veil_buf_append(b, tmp, (size_t)r))
			return 1;
		if (line && memchr(tmp, '\n', (size_t)r))
			return 0;
	}
}

/* The evidence for report data rd from veil-las at sock (protocol in
 * src/las/main.c): "REPORT" with the config id the evidence is made for (the
 * CAS accepts it for that configuration only, and only for a short while),
 * answer its challenge from this process, then the evidence. */
static int las_evidence(const char *sock, const uint8_t rd[static VEIL_SHA256_SIZE],
			const char *config_id, char **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(sock) >= sizeof(sa.sun_path))
		return die("LAS address %s is too long", sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += LAS_SECONDS;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* bounds connect (a full backlog) and the writes */
	struct timeval tv = {.tv_sec = LAS_SECONDS};
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (e == EAGAIN || e == EWOULDBLOCK)
			return die("veil-las at %s did not answer within %d s", sock, LAS_SECONDS);
		return die("cannot reach veil-las at %s: %s", sock, strerror(e));
	}
	char req[80 + VEIL_EVIDENCE_CONFIG_ID_MAX], hex[65];
	veil_hex(rd, VEIL_SHA256_SIZE, hex);
	int n = snprintf(req, sizeof(req), "REPORT %s %s\n", hex, config_id);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		close(fd);
		return die("SCONE_CONFIG_ID is longer than %d bytes", VEIL_EVIDENCE_CONFIG_ID_MAX);
	}
	struct veil_buf b;
	veil_buf_init(&b, 64 * 1024);
	int rc = write(fd, req, (size_t)n) == n ? 0 : 1;
	if (!rc)
		rc = las_read(fd, &deadline, &b, 1);
	uint8_t nonce[16];
	char nonce_hex[33];
	if (!rc && b.data &&
	    !veil_las_parse_hex_line(b.data, b.size, "CHALLENGE", nonce, sizeof(nonce))) {
		veil_hex(nonce, sizeof(nonce), nonce_hex);
		n = snprintf(req, sizeof(req), "RESPONSE %s\n", nonce_hex);
		rc = write(fd, req, (size_t)n) == n ? 0 : 1;
		b.size = 0;
		if (!rc)
			rc = las_read(fd, &deadline, &b, 0);
	}
	close(fd);
	if (rc == 2)
		rc = die("veil-las at %s did not answer within %d s", sock, LAS_SECONDS);
	else if (rc || !b.data || !b.size)
		rc = die("veil-las at %s gave no evidence", sock);
	else if (!strncmp(b.data, "ERROR ", 6))
		rc = die("veil-las refused: %.*s", (int)strcspn(b.data + 6, "\n"), b.data + 6);
	else if (!strncmp(b.data, "CHALLENGE ", 10))
		rc = die("veil-las at %s sent a malformed challenge", sock);
	if (rc) {
		veil_buf_free(&b);
		return rc;
	}
	b.data[strcspn(b.data, "\n")] = '\0';
	*out = b.data;
	return 0;
}

/* The CAS's addresses. A numeric address is used as it is; a name
 * (Kubernetes service names) goes through c-ares, which reads
 * /etc/resolv.conf and /etc/hosts itself: glibc's getaddrinfo in a static
 * executable dlopens NSS modules at run time, code veil-las never measured. */
#define MAX_CAS_ADDRS 8
struct cas_addrs {
	struct sockaddr_storage addr[MAX_CAS_ADDRS];
	socklen_t len[MAX_CAS_ADDRS];
	size_t count;
	int status; /* c-ares's */
};

static void add_cas_addr(struct cas_addrs *a, const struct sockaddr *sa, size_t len, uint16_t port)
{
	if (a->count >= MAX_CAS_ADDRS || len > sizeof(a->addr[0]) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return;
	memcpy(&a->addr[a->count], sa, len);
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&a->addr[a->count])->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&a->addr[a->count])->sin6_port = htons(port);
	a->len[a->count++] = (socklen_t)len;
}

static void on_cas_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct cas_addrs *a = arg;
	a->status = status;
	for (struct ares_addrinfo_node *n = res ? res->nodes : NULL; n; n = n->ai_next)
		add_cas_addr(a, n->ai_addr, n->ai_addrlen, 0);
	ares_freeaddrinfo(res);
}

static int resolve_cas(const char *host, uint16_t port, struct cas_addrs *a, const char **why)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	char bare[256];
	size_t hl = strlen(host);
	/* [v6]: the brackets are not part of the address */
	snprintf(bare, sizeof(bare), "%.*s", host[0] == '[' && hl > 2 ? (int)hl - 2 : (int)hl,
		 host + (host[0] == '[' && hl > 2));
	a->count = 0;
	*why = "no address";
	if (inet_pton(AF_INET, bare, &s4.sin_addr) == 1)
		add_cas_addr(a, (struct sockaddr *)&s4, sizeof(s4), port);
	else if (inet_pton(AF_INET6, bare, &s6.sin6_addr) == 1)
		add_cas_addr(a, (struct sockaddr *)&s6, sizeof(s6), port);
	if (a->count)
		return 0;
	ares_channel ch;
	struct ares_options opt = {.timeout = 2000, .tries = 2};
	if (ares_library_init(ARES_LIB_INIT_ALL) ||
	    ares_init_options(&ch, &opt, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)) {
		*why = "cannot start the resolver";
		return 1;
	}
	struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	a->status = ARES_ENOTFOUND;
	ares_getaddrinfo(ch, bare, NULL, &hints, on_cas_addrinfo, a);
	for (;;) {
		fd_set r, w;
		FD_ZERO(&r);
		FD_ZERO(&w);
		int nfds = ares_fds(ch, &r, &w);
		if (!nfds)
			break;
		struct timeval tv, *tvp = ares_timeout(ch, NULL, &tv);
		select(nfds, &r, &w, NULL, tvp);
		ares_process(ch, &r, &w);
	}
	ares_destroy(ch);
	ares_library_cleanup();
	for (size_t i = 0; i < a->count; i++)
		if (a->addr[i].ss_family == AF_INET)
			((struct sockaddr_in *)&a->addr[i])->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&a->addr[i])->sin6_port = htons(port);
	if (a->status != ARES_SUCCESS)
		*why = ares_strerror(a->status);
	return a->count ? 0 : 1;
}

/* Minimal HTTPS over OpenSSL for the one request veil-run makes: a small
 * runtime (no libcurl in the TCB, ~20 ms less start-up) that pins the CAS by
 * its key hash and presents the fresh key. */
/* "HTTP/1.x NNN ..." read through the bounded cursor: 0 with the status */
static int http_status(const char *head, size_t n, long *status)
{
	struct veil_cursor c;
	uint8_t minor, d[3];
	veil_cur_init(&c, head, n);
	veil_cur_expect(&c, "HTTP/1.", 7);
	veil_cur_u8(&c, &minor);
	veil_cur_expect(&c, " ", 1);
	veil_cur_copy(&c, d, sizeof(d));
	if (!veil_cur_ok(&c) || (minor != '0' && minor != '1'))
		return -1;
	for (size_t i = 0; i < 3; i++)
		if (d[i] < '0' || d[i] > '9')
			return -1;
	*status = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
	return 0;
}

static int https_post(const char *hostport, const char *cas_key, EVP_PKEY *key, X509 *cert,
		      const char *path, int timeout_s, const char *body, struct veil_buf *resp,
		      long *status, int *retry)
{
	char host[256], port[16] = "8081";
	const char *colon = strrchr(hostport, ':');
	if (colon && hostport[0] == '[' && colon[-1] != ']')
		colon = NULL; /* [v6] without a port */
	size_t hl = colon ? (size_t)(colon - hostport) : strlen(hostport);
	*retry = 0;
	if (hl == 0 || hl >= sizeof(host) || (colon && strlen(colon + 1) >= sizeof(port)))
		return die("SCONE_CAS_ADDR '%s' is not HOST[:PORT]", hostport);
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	if (colon)
		snprintf(port, sizeof(port), "%s", colon + 1);
	char *end = NULL;
	long portnum = strtol(port, &end, 10);
	if (port[0] < '0' || port[0] > '9' || *end || portnum < 1 || portnum > 65535)
		return die("SCONE_CAS_ADDR '%s': the port must be a number from 1 to 65535",
			   hostport);
	struct cas_addrs addrs;
	const char *why = NULL;
	if (resolve_cas(host, (uint16_t)portnum, &addrs, &why)) {
		*retry = 1;
		return die("cannot resolve the CAS address %s: %s", hostport, why);
	}
	int fd = -1, rc = 1, err = 0;
	for (size_t i = 0; i < addrs.count && fd < 0; i++) {
		fd = socket(addrs.addr[i].ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct timeval tv = {.tv_sec = timeout_s};
		if (fd >= 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		}
		if (fd >= 0 && connect(fd, (struct sockaddr *)&addrs.addr[i], addrs.len[i])) {
			err = errno;
			close(fd);
			fd = -1;
		} else if (fd < 0) {
			err = errno;
		}
	}
	if (fd < 0) {
		*retry = 1;
		fprintf(stderr, "warning: CAS %s unreachable: %s\n", hostport, strerror(err));
		return 1;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    !(ssl = SSL_new(ctx)) || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1) {
		die("TLS with the CAS at %s failed", hostport);
		*retry = 1;
		goto out;
	}
	/* the CAS is who the pin says, whatever its (self-signed) certificate */
	X509 *peer = SSL_get0_peer_certificate(ssl);
	char seen[VEIL_KEY_HASH_HEX];
	if (!peer || veil_cert_key_hash(peer, seen) || strcmp(seen, cas_key)) {
		die("the CAS at %s does not have the pinned key %.16s...: refusing", hostport,
		    cas_key);
		goto out;
	}
	/* one write, one TLS record: a second small segment would wait for the
	 * server's delayed ACK (Nagle) */
	struct veil_buf req;
	veil_buf_init(&req, 1u << 20);
	veil_buf_printf(&req,
			"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			"Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			path, host, strlen(body), body);
	int sent = !req.failed && SSL_write(ssl, req.data, (int)req.size) == (int)req.size;
	veil_buf_free(&req);
	if (!sent) {
		die("cannot send to the CAS at %s", hostport);
		goto out;
	}
	char buf[16384];
	int r;
	while ((r = SSL_read(ssl, buf, sizeof(buf))) > 0)
		if (veil_buf_append(resp, buf, (size_t)r)) {
			die("the CAS's answer is too large");
			goto out;
		}
	/* status line, then the body after the blank line (Connection: close) */
	char *hdr_end = resp->data ? strstr(resp->data, "\r\n\r\n") : NULL;
	if (!hdr_end || http_status(resp->data, (size_t)(hdr_end - resp->data), status)) {
		die("malformed answer from the CAS at %s", hostport);
		goto out;
	}
	size_t hsize = (size_t)(hdr_end + 4 - resp->data);
	OPENSSL_cleanse(resp->data, hsize);
	memmove(resp->data, resp->data + hsize, resp->size - hsize + 1);
	resp->size -= hsize;
	rc = 0;
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return rc;
}

/* POST /v1/attest, retrying with backoff while the CAS is unreachable. */
static int cas_attest(const char *cas, const char *cas_key, EVP_PKEY *key, X509 *cert,
		      const char *body, struct veil_buf *resp, long *status)
{
	for (int attempt = 1, delay_ms = 200; attempt <= 8; attempt++, delay_ms *= 2) {
		int retry = 0;
		resp->size = 0;
		if (!https_post(cas, cas_key, key, cert, "/v1/attest", 30, body, resp, status,
				&retry))
			return 0;
		if (!retry)
			return 1;
		fprintf(stderr, "warning: attempt %d of 8 failed%s\n", attempt,
			attempt < 8 ? ", retrying" : "");
		struct timespec ts = {.tv_sec = delay_ms / 1000,
				      .tv_nsec = (delay_ms % 1000) * 1000000L};
		if (attempt < 8)
			nanosleep(&ts, NULL);
	}
	return die("giving up on the CAS at %s", cas);
}

/* After the CAS released the configuration, a refusal to start is reported
 * to it (POST /v1/attest/refused, docs/cas.md) with the same key, which the
 * CAS accepts from the client it released to, once: its audit log then says
 * start-refused with the reason. The reason is the message printed, made of
 * names and errors, never a value of the configuration; bytes outside
 * printable ASCII are sent as '?'. One attempt, 5 s: a report that cannot be
 * sent is only a warning (whoever controls the node can suppress it). */
#define REFUSAL_REASON_MAX 512 /* the CAS's limit, VEIL_REFUSAL_REASON_MAX */
static struct {
	const char *cas, *cas_key, *config_id;
	EVP_PKEY *key;
	X509 *cert;
} released;

static void report_refusal(const char *reason)
{
	char sent[REFUSAL_REASON_MAX + 1];
	size_t n = 0;
	for (; reason[n] && n < REFUSAL_REASON_MAX; n++)
		sent[n] = reason[n] >= 0x20 && reason[n] < 0x7f ? reason[n] : '?';
	sent[n] = '\0';
	json_t *j = json_pack("{s:s, s:s}", "config_id", released.config_id, "reason", sent);
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	struct veil_buf resp;
	veil_buf_init(&resp, 64 * 1024);
	long status = 0;
	int retry = 0;
	if (!body || https_post(released.cas, released.cas_key, released.key, released.cert,
				"/v1/attest/refused", 5, body, &resp, &status, &retry))
		fprintf(stderr, "warning: the refusal could not be reported to the CAS\n");
	else if (status != 200)
		fprintf(stderr, "warning: the CAS did not record the refusal (%ld): %.*s\n", status,
			(int)(resp.size < 300 ? resp.size : 300), resp.data ? resp.data : "");
	else
		logmsg("refusal reported to the CAS");
	veil_buf_free(&resp);
	free(body);
}

/* Refuses the start after attestation: prints the reason, reports it. */
static int refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int refuse(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	die("%s", msg);
	if (released.key)
		report_refusal(msg);
	return 1;
}

/* The file-set root and the list of files the CAS compares with its policy. */
static int describe_files(const struct veil_file_entry *files, size_t count, char root[static 65],
			  json_t *list)
{
	if (veil_fileset_root(files, count, root))
		return 1;
	for (size_t i = 0; i < count; i++) {
		char hex[65];
		veil_hex(files[i].sha256, VEIL_SHA256_SIZE, hex);
		if (json_array_append_new(
			list, json_pack("{s:s, s:s}", "path", files[i].path, "sha256", hex)))
			return 1;
	}
	return 0;
}

/* The files of dir hashed in place (an unpinned start), exactly as `veil
 * apply` measured them. */
static int files_root(const char *dir, char root[static 65], json_t *list)
{
	char *copy[] = {"."};
	struct veil_service_manifest m = {.file = "the protected folder"};
	m.build = (struct veil_build){.name = "run",
				      .to = "run",
				      .pwd = dir,
				      .command = "run",
				      .copy = copy,
				      .copy_count = 1};
	struct veil_measurement meas = {0};
	struct veil_diags d;
	veil_diags_init(&d);
	/* our own executable is veil-las's to measure, not ours */
	int rc = veil_measure_service(&m, dir, NULL, &meas, &d);
	if (rc) {
		for (size_t i = 0; i < d.count; i++)
			die("%s", d.msgs[i]);
	} else {
		rc = describe_files(meas.files, meas.file_count, root, list);
	}
	veil_measurement_free(&meas);
	veil_diags_free(&d);
	return rc ? 1 : 0;
}

/* The policy's user and group (docs/manifests.md, build.user): the program
 * runs under a uid of its own so that processes of the container's other
 * uids cannot read its environment (/proc/PID/environ) or trace it. The
 * switch drops supplementary groups and every capability (bounding set
 * while veil-run may, ambient, permitted, effective, inheritable): the
 * program cannot switch back. Refused, not skipped, where veil-run may not
 * switch. After execve the program is dumpable again (the kernel resets it
 * when the credentials match the executable's), i.e. readable by its own
 * uid and by root: the uid must be the program's alone. */
static int become(uid_t uid, gid_t gid)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;
	getresuid(&r, &e, &s);
	getresgid(&rg, &eg, &sg);
	int already = r == uid && e == uid && s == uid && rg == gid && eg == gid && sg == gid &&
		      getgroups(0, NULL) == 0;
	if (!already) {
		/* needs CAP_SETPCAP, which a start as root has; the capset below
		 * empties the sets the program starts with either way */
		for (int c = 0; c <= CAP_LAST_CAP; c++)
			prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
		if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
			return refuse(
			    "the policy runs the program as uid %u, gid %u: veil-run (uid %u) "
			    "cannot switch to them (%s); start it as root or with "
			    "CAP_SETUID and CAP_SETGID",
			    (unsigned)uid, (unsigned)gid, (unsigned)r, strerror(errno));
	}
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct none[2] = {{0}};
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) ||
	    syscall(SYS_capset, &hdr, none))
		return refuse("cannot drop capabilities before running as uid %u: %s",
			      (unsigned)uid, strerror(errno));
	if (setuid(0) == 0 || setgid(0) == 0)
		return refuse("could switch back to root after running as uid %u: refusing",
			      (unsigned)uid);
	return 0;
}

/* veil-run's self-signed certificate for its key (one hour). */
struct cert_job {
	EVP_PKEY *key;
	X509 *cert; /* NULL on failure */
};

static void *make_cert(void *arg)
{
	struct cert_job *j = arg;
	X509 *cert = X509_new();
	if (!cert || !X509_set_version(cert, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(cert), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(cert), 3600) ||
	    !X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
					(const unsigned char *)"veil-run", -1, -1, 0) ||
	    !X509_set_issuer_name(cert, X509_get_subject_name(cert)) ||
	    !X509_set_pubkey(cert, j->key) || !X509_sign(cert, j->key, EVP_sha256())) {
		X509_free(cert);
		cert = NULL;
	}
	j->cert = cert;
	return NULL;
}

int main(int argc, char **argv)
{
	/* no core dump and no ptrace by same-uid processes while veil-run holds
	 * its key and the configuration (execve gives the program its own say);
	 * the first statement: a same-uid tracer can attach only between the
	 * exec and here, and veil-las refuses code written meanwhile (a tracer
	 * still attached, or changed code; docs/security.md) */
	prctl(PR_SET_DUMPABLE, 0);
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "--version"))
		return veil_print_version("veil-run");
	/* "--x" reads as a mistyped flag; anything else ("-c", "app.py") as a
	 * host trying to pass a command line, which only the policy gives */
	if (argc > 1 && !strncmp(argv[1], "--", 2))
		return veil_usage_error("veil-run", "unknown flag %s", argv[1]);
	if (argc > 1)
		return veil_usage_error("veil-run",
					"veil-run takes no arguments: the command comes from the "
					"policy (got '%s')",
					argv[1]);
	const char *log = setting("LOG");
	verbose = log && (!strcmp(log, "debug") || !strcmp(log, "info"));
	const char *config_id = setting("CONFIG_ID"), *cas = setting("CAS_ADDR");
	const char *cas_key = getenv("VEIL_CAS_KEY"), *las = setting("LAS_ADDR");
	const char *files_dir = getenv("VEIL_FILES_DIR");
	if (!files_dir || !*files_dir)
		files_dir = "/python";
	if (!las || las[0] != '/')
		las = "/run/veil/las.sock";
	if (!config_id || !cas || !cas_key)
		return die("%s is not set (see veil-run --help)", !config_id ? "SCONE_CONFIG_ID"
								  : !cas     ? "SCONE_CAS_ADDR"
									     : "VEIL_CAS_KEY");
	if (!veil_is_sha256_hex(cas_key))
		return die("VEIL_CAS_KEY must be the CAS's 64-hex-digit key hash");
	if (!strncmp(cas, "https://", 8))
		cas += 8;
	/* the host's openssl.cnf has no say over the runtime (and costs ms);
	 * no clean-up at exit: a refusal exits while the prefetch thread may
	 * still be hashing, and the exec needs none */
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT, NULL);
	/* the configuration holds secrets: jansson's memory is wiped when freed */
	json_set_alloc_funcs(veil_wipe_malloc, veil_wipe_free);

	logmsg("started");
	/* the private mount namespace first: the runtime files the prefetch list
	 * names are copied into it while the key is made and attested */
	char pin_why[600];
	int unpinned = pin_private_namespace(pin_why, sizeof(pin_why));
	if (unpinned < 0)
		return die("%s", pin_why);
	struct pinned_files pf = {.mnt = -1, .root = -1};
	struct runtime_copies *prefetched = NULL;
	if (!unpinned) {
		const char *list = getenv("VEIL_RUNTIME_LIST");
		if (pin_files_open(&pf, pin_why, sizeof(pin_why)))
			return die("%s", pin_why);
		prefetched = runtime_prefetch(&pf, list && *list ? list : DEFAULT_RUNTIME_LIST);
		if (prefetched)
			logmsg("copying the prefetch list's runtime files");
	}
	/* the whole image, checked in place on all cores while the key is made
	 * and attested (after the unshare, which needs a single thread); the
	 * record's hash goes to the CAS, which refuses a policy's other image */
	const char *image_dir = getenv("VEIL_IMAGE_ROOT"), *image_rec = getenv("VEIL_IMAGE_RECORD");
	image_dir = image_dir && *image_dir ? image_dir : "/";
	struct image_check *image_check = NULL;
	char image_root[2 * VEIL_SHA256_SIZE + 1], image_why[1200];
	if (image_verify_start(image_dir,
			       image_rec && *image_rec ? image_rec : VEIL_IMAGE_RECORD_PATH, 0,
			       &image_check, image_root, image_why, sizeof(image_why)))
		return die("%s: refusing to start", image_why);
	if (image_check)
		logmsg("checking the image under %s (image root %s)", image_dir, image_root);
	/* 1. a fresh key; the evidence binds its SHA-256; its self-signed
	 * certificate (for the TLS handshake only) is made while veil-las works */
	EVP_PKEY *key = EVP_EC_gen("P-256");
	uint8_t rd[VEIL_SHA256_SIZE];
	if (!key || veil_pubkey_digest(key, rd))
		return die("cannot make a key");
	/* the key's hash, then the config id's: the CAS checks both halves */
	uint8_t rd64[VEIL_REPORT_DATA_SIZE] = {0};
	memcpy(rd64, rd, sizeof(rd));
	if (veil_sha256(config_id, strlen(config_id), rd64 + VEIL_SHA256_SIZE))
		return die("cannot hash the config id");
	struct cert_job cj = {.key = key};
	pthread_t cert_thread;
	int cert_async = !pthread_create(&cert_thread, NULL, make_cert, &cj);
	if (!cert_async)
		make_cert(&cj);
	logmsg("key made");
	/* the platform's own evidence first (report data: the key's SHA-256,
	 * then the config id's); veil-las only where there is no platform to ask. A
	 * platform that is there and fails is a refusal: a confidential VM
	 * whose quote fails is not a simulated one. */
	char *evidence = NULL, provider[VEIL_COLLECT_PROVIDER_MAX], collect_why[1024];
	int collected = veil_collect(rd64, &evidence, provider, collect_why, sizeof(collect_why));
	int evidence_failed = 0;
	if (collected == VEIL_ENOENT) {
		if (collect_why[0])
			logmsg("no platform evidence (%s)", collect_why);
		evidence_failed = las_evidence(las, rd, config_id, &evidence);
	} else if (collected) {
		evidence_failed =
		    die("evidence from the platform failed: %s: refusing to start", collect_why);
	}
	/* joined before any return: exit's OpenSSL clean-up under a thread
	 * still signing crashes */
	if (cert_async)
		pthread_join(cert_thread, NULL);
	if (evidence_failed)
		return 1;
	logmsg("evidence from %s", collected ? las : provider);
	X509 *cert = cj.cert;
	if (!cert)
		return die("cannot make a certificate");

	/* 2. the protected files, copied into private memory as they are
	 * hashed: what is verified is what the program will read */
	struct pinned_tree pin = {.mnt = -1};
	if (!unpinned && pin_copy(files_dir, &pin, pin_why, sizeof(pin_why)))
		return die("cannot verify the protected folder %s: %s", files_dir, pin_why);
	char root[65];
	json_t *flist = json_array();
	if (!flist || (unpinned ? files_root(files_dir, root, flist)
				: describe_files(pin.files, pin.file_count, root, flist)))
		return die("cannot measure the protected folder %s", files_dir);
	logmsg("file-set root of %s: %s (%s)", files_dir, root,
	       unpinned ? "hashed in place" : "copied into memory");

	/* 3. attest */
	json_t *req = json_pack("{s:s, s:s, s:s, s:o}", "config_id", config_id, "evidence",
				evidence, "file_set_root", root, "files", flist);
	if (req && image_check && json_object_set_new(req, "image_root", json_string(image_root)))
		return die("out of memory");
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	/* the answer is sealed to key with the evidence's hash as AAD (include/
	 * veil/sealed.h) */
	uint8_t evidence_sha256[VEIL_SHA256_SIZE];
	int hashed = !veil_sha256(evidence, strlen(evidence), evidence_sha256);
	free(evidence);
	if (!hashed)
		return die("cannot hash the evidence");
	if (!body)
		return die("out of memory");
	struct veil_buf resp;
	veil_buf_init(&resp, VEIL_SEALED_ANSWER_MAX);
	long status = 0;
	int rc = cas_attest(cas, cas_key, key, cert, body, &resp, &status);
	free(body);
	if (rc)
		return 1;
	json_error_t err;
	json_t *cfg = NULL;
	char *plain = NULL;
	size_t plain_size = 0;
	int unopened = 0;
	if (status != 200) /* a refusal: plain {"error": ...} */
		cfg = json_loadb(resp.data ? resp.data : "", resp.size, 0, &err);
	else if (!(unopened =
		       veil_open_config(key, config_id, evidence_sha256, resp.data ? resp.data : "",
					resp.size, &plain, &plain_size)))
		cfg = json_loadb(plain, plain_size, 0, &err);
	if (plain)
		veil_secure_free(plain, plain_size + 1); /* jansson's copies are wiped on free */
	OPENSSL_cleanse(resp.data ? resp.data : (char *)&rc, resp.data ? resp.cap : 0);
	veil_buf_free(&resp);
	if (status != 200) {
		const char *why = NULL;
		if (cfg && !json_unpack(cfg, "{s:s}", "error", &why))
			return die("the CAS refused %s: %s", config_id, why);
		return die("the CAS answered %ld for %s", status, config_id);
	}
	/* released: from here on a refusal is reported (the key lives on until
	 * the exec) */
	released.cas = cas;
	released.cas_key = cas_key;
	released.config_id = config_id;
	released.key = key;
	released.cert = cert;
	if (unopened)
		return refuse("the CAS's answer does not open with this runtime's key (%s): "
			      "refusing to start",
			      unopened == VEIL_EINVAL ? "not sealed to it, or changed on the way"
						      : "out of memory or too large");
	const char *command = NULL, *pwd = NULL;
	json_t *env = NULL, *files = NULL;
	if (!cfg || json_unpack(cfg, "{s:s, s:s, s:o, s:o}", "command", &command, "pwd", &pwd,
				"environment", &env, "injection_files", &files))
		return refuse("malformed configuration from the CAS");
	logmsg("attested as %s", config_id);
	/* nothing from the image runs before all of it is as measured */
	if (image_check) {
		int debug_ok = 0;
		size_t nimg = 0;
		uint64_t nbytes = 0;
		if (json_unpack(cfg, "{s?b}", "debug_mode", &debug_ok))
			return refuse("malformed configuration from the CAS");
		/* a test's root elsewhere: never for a production policy, where the
		 * host would choose what is checked */
		if (strcmp(image_dir, "/") && !debug_ok)
			return refuse("VEIL_IMAGE_ROOT=%s is honoured only under a policy that "
				      "tolerates debug-mode: refusing to start",
				      image_dir);
		if (image_verify_wait(image_check, &nimg, &nbytes, image_why, sizeof(image_why)))
			return refuse("%s: refusing to start", image_why);
		logmsg("image verified: %zu entries, %llu bytes hashed", nimg,
		       (unsigned long long)nbytes);
	}
	/* the program's own uid and gid, when the policy names them */
	json_int_t user = -1, group = -1;
	if (json_unpack(cfg, "{s?I, s?I}", "user", &user, "group", &group) || user < -1 ||
	    user == 0 || user >= UINT32_MAX || group < -1 || group == 0 || group >= UINT32_MAX ||
	    (group >= 0 && user < 0))
		return refuse("malformed user or group in the configuration from the CAS");
	if (user > 0 && group < 0)
		group = user;
	uid_t run_uid = user > 0 ? (uid_t)user : (uid_t)-1;
	gid_t run_gid = group > 0 ? (gid_t)group : (gid_t)-1;

	/* 4. the policy's pwd must be the folder that was measured; the
	 * verified copy goes there, seen only in this mount namespace */
	if (strcmp(pwd, files_dir))
		return refuse("the policy's pwd %s is not the measured folder %s", pwd, files_dir);
	char why[1200];
	int unpinned_ok = 0;
	if (json_unpack(cfg, "{s?b}", "unpinned_files_allowed", &unpinned_ok))
		return refuse("malformed configuration from the CAS");
	if (unpinned && !unpinned_ok)
		return refuse("cannot pin the protected folder %s (%s): refusing to start, since "
			      "files could change after verification; a policy that accepts this "
			      "says security.attestation.tolerate: [insecure-unpinned-files]",
			      files_dir, pin_why);
	if (unpinned)
		fprintf(stderr,
			"warning: the protected folder %s is not pinned (%s): files changed "
			"after verification would run (the policy tolerates "
			"insecure-unpinned-files)\n",
			files_dir, pin_why);
	else if (pin_attach(&pin, pwd, why, sizeof(why)))
		return refuse("%s", why);
	/* 5. injection files, in memory only, and the encrypted code files,
	 * decrypted (as verified: the pinned copy) into memory the same way */
	struct decrypted *dec = NULL;
	size_t ndec = 0;
	/* plaintext code only into veil-run's own mount namespace: without
	 * one (no CAP_SYS_ADMIN) it would land in a folder others share */
	if (unpinned && json_object_get(cfg, "decrypt"))
		return refuse("the policy's encrypted files need veil-run's private mount "
			      "namespace (CAP_SYS_ADMIN), which it does not have (%s): refusing "
			      "to start",
			      pin_why);
	if (decrypt_code(json_object_get(cfg, "decrypt"), &dec, &ndec, why, sizeof(why)))
		return refuse("%s", why);
	size_t nfiles = json_array_size(files), ninj = nfiles + ndec;
	struct inject_file *inj = calloc(ninj + 1, sizeof(*inj));
	if (!json_is_array(files) || !inj)
		return refuse("malformed configuration from the CAS");
	for (size_t i = 0; i < ndec; i++)
		inj[nfiles + i] =
		    (struct inject_file){dec[i].path, (const char *)dec[i].data, dec[i].size};
	for (size_t i = 0; i < nfiles; i++) {
		json_t *c = NULL;
		if (json_unpack(json_array_get(files, i), "{s:s, s:o}", "path", &inj[i].path,
				"content", &c) ||
		    !json_is_string(c))
			return refuse("malformed injection file from the CAS");
		inj[i].content = json_string_value(c);
		inj[i].size = json_string_length(c);
	}
	if (inject_files(inj, ninj, run_uid, run_gid, why, sizeof(why)))
		return refuse("%s", why);
	free(inj);
	decrypted_free(dec, ndec);
	if (ndec)
		logmsg("%zu encrypted file%s decrypted into memory", ndec, ndec == 1 ? "" : "s");
	/* read-only after the injection files got their mount points */
	if (!unpinned && pin_seal(pwd, why, sizeof(why)))
		return refuse("%s", why);
	pin_free(&pin);
	if (ninj)
		logmsg("%zu injection file%s placed (%s)", ninj, ninj == 1 ? "" : "s",
		       inject_method());
	if (chdir(pwd))
		return refuse("cannot enter %s: %s", pwd, strerror(errno));

	/* 6. the environment comes from the policy alone */
	size_t nenv = json_object_size(env), k = 0;
	char **envp = calloc(nenv + 2, sizeof(char *));
	const char *name;
	json_t *val;
	int has_path = 0;
	json_object_foreach(env, name, val)
	{
		const char *v = json_string_value(val);
		if (!v || asprintf(&envp[k], "%s=%s", name, v) < 0)
			return refuse("malformed environment from the CAS");
		has_path |= !strcmp(name, "PATH");
		k++;
	}
	if (!has_path)
		envp[k++] = "PATH=" DEFAULT_PATH; /* a fixed default, never the host's */
	envp[k] = NULL;

	/* 7. argv from the policy's command (split on blanks, no shell) */
	char *cmd = strdup(command), *args[MAX_ARGS + 1], *save = NULL;
	size_t nargs = 0;
	for (char *t = strtok_r(cmd, " \t", &save); t && nargs < MAX_ARGS;
	     t = strtok_r(NULL, " \t", &save))
		args[nargs++] = t;
	args[nargs] = NULL;
	if (!nargs)
		return refuse("the policy's command is empty");
	/* 8. what the command execs outside pwd is what was measured */
	int prog_fd = -1;
	size_t nrt = 0;
	char program[4096] = "";
	logmsg("verifying the runtime files");
	if (verify_runtime(cfg, unpinned ? NULL : &pf, prefetched, &prog_fd, &nrt, why,
			   sizeof(why)))
		return refuse("%s: refusing to start", why);
	pin_files_close(&pf);
	const char *pg = NULL;
	if (!json_unpack(cfg, "{s:s}", "program", &pg))
		snprintf(program, sizeof(program), "%s", pg);
	if (prog_fd >= 0)
		logmsg("%zu runtime files verified; exec %s (%s) in %s", nrt, program, args[0],
		       pwd);
	else
		logmsg("exec %s in %s", args[0], pwd);
	json_decref(cfg); /* wiped by veil_wipe_free; pwd pointed into it */
	char *path_env = NULL;
	for (size_t i = 0; envp[i]; i++)
		if (!strncmp(envp[i], "PATH=", 5))
			path_env = envp[i] + 5;
	if (path_env)
		setenv("PATH", path_env, 1); /* execvpe searches the policy's PATH */
	if (run_uid != (uid_t)-1) {
		if (become(run_uid, run_gid))
			return 1;
		logmsg("running as uid %u, gid %u", (unsigned)run_uid, (unsigned)run_gid);
	}
	if (prog_fd >= 0) {
		/* the descriptor that was hashed; a script's (#!) cannot be execed
		 * through a close-on-exec descriptor, so it is execed by its path */
		fexecve(prog_fd, args, envp);
		if (errno == ENOENT)
			execve(program, args, envp);
		return refuse("cannot run %s: %s", program, strerror(errno));
	}
	execvpe(args[0], args, envp);
	return refuse("cannot run %s: %s", args[0], strerror(errno));
}
