/*
 * loadgen: an HTTPS (TLS 1.3 only, mutual TLS) load generator for veil's
 * benchmarks, so that the CAS and its peer (nginx) are measured by the same
 * client side by side.
 *
 *   loadgen --url https://127.0.0.1:PORT/PATH --cert C.pem --key K.pem
 *           [--method GET|POST|PUT] [--body FILE] [--header 'K: V']...
 *           --mode keepalive|new --connections N --threads T --duration SECONDS
 *           [--expect STATUS] [--timeout SECONDS]
 *           [--las SOCKET --identities N]
 *
 * keepalive: every connection sends HTTP/1.1 requests back to back until the
 *            duration ends (one request in flight per connection).
 * new:       every request opens a new TCP + TLS connection (full handshake,
 *            never a resumed session) and sends "Connection: close".
 *
 * Each thread runs one epoll loop over its share of the connections with
 * non-blocking sockets, so one or two threads keep many connections busy
 * without taking CPU away from the server on the same machine.
 *
 * stdout gets exactly one summary line:
 *   mode=new requests=N errors=N seconds=S rate=R/s p50_ms=.. p99_ms=.. client_cpu=C
 * requests counts responses with the expected status; errors counts failed
 * connects, handshakes, timeouts, malformed responses, connections closed in
 * the middle of a response, and responses with another status. Latency is
 * measured over successful requests: from the start of connect() in mode new
 * (so it includes the handshake), from the start of the request write in mode
 * keepalive. client_cpu is the CPU time loadgen used divided by the wall time
 * (1.00 = one core busy). The SHA-256 of the server's SubjectPublicKeyInfo is
 * printed once on stderr ("server_pubkey_sha256=...").
 *
 * --las/--identities (veil-cas /v1/attest): instead of --cert/--key, N fresh
 * P-256 keys with self-signed certificates, each with evidence from veil-las
 * binding it (report data = SHA-256 of the key's SubjectPublicKeyInfo; the
 * LAS measures this loadgen binary). The body's "@@EVIDENCE@@" is replaced by
 * each key's evidence; connections use the identities in turn, so every
 * request presents evidence bound to its own connection's key.
 *
 * The server certificate is not verified: the peers are self-signed test
 * servers on loopback. This is a benchmark tool, never a client to trust.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MAX_CONNECTIONS 10000
#define MAX_THREADS 64
#define MAX_DURATION_S 3600.0
#define MAX_HEADERS 64
#define MAX_BODY_SIZE (16u << 20)
#define MAX_REQUEST_HEAD_SIZE 16384
#define RBUF_SIZE 16384        /* also the maximum response header size */
#define BACKOFF_NS 10000000ull /* after a transport error, so a dead server does not spin us */
#define SCAN_NS 50000000ull    /* how often timeouts are checked */

/* ---- options and shared read-only state ---------------------------------- */

enum mode { MODE_KEEPALIVE, MODE_NEW };

static struct {
	struct sockaddr_in addr;
	enum mode mode;
	int connections;
	int threads;
	double duration_s;
	int expect; /* 0: any status counts as success */
	uint64_t timeout_ns;
	SSL_CTX *ctx;
	char *request; /* the whole request, head and body, sent as is every time */
	size_t request_size;
	/* a body holding COUNTER_MARK gets a fresh 12-digit number per request
	 * (same length, so Content-Length holds), e.g. for unique names */
	size_t counter_off; /* SIZE_MAX: none */
	atomic_uint_fast64_t counter;
	/* --identities: a client certificate and a request each */
	int nids;
	SSL_CTX **id_ctx;
	char **id_req;
	size_t *id_req_size;
	atomic_uint_fast64_t next_id;
	uint64_t t_end_ns;
	atomic_bool fingerprint_printed;
} g;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "loadgen: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(2);
}

/* ---- latency histogram ----------------------------------------------------- */

/* Log-linear over microseconds: exact below 1024 us, then 512 sub-buckets per
 * power of two (< 0.2% error), bounded memory whatever the duration. */
#define HIST_SUB_BITS 9
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_LINEAR (2u * HIST_SUB)
#define HIST_BUCKETS (HIST_LINEAR + (32u - HIST_SUB_BITS - 1u) * HIST_SUB)

static unsigned hist_index(uint32_t us)
{
	if (us < HIST_LINEAR)
		return us;
	unsigned msb = 31u - (unsigned)__builtin_clz(us);
	unsigned shift = msb - HIST_SUB_BITS;
	return HIST_LINEAR + (shift - 1u) * HIST_SUB + ((us >> shift) - HIST_SUB);
}

static double hist_value_us(unsigned i)
{
	if (i < HIST_LINEAR)
		return i;
	unsigned shift = (i - HIST_LINEAR) / HIST_SUB + 1u;
	unsigned sub = (i - HIST_LINEAR) % HIST_SUB;
	double low = (double)((uint64_t)(HIST_SUB + sub) << shift);
	return low + (double)(1ull << shift) / 2.0;
}

static double hist_percentile_ms(const uint64_t *hist, uint64_t count, double p)
{
	if (count == 0)
		return 0.0;
	uint64_t rank = (uint64_t)(p * (double)count);
	if ((double)rank < p * (double)count)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= rank)
			return hist_value_us(i) / 1000.0;
	}
	return hist_value_us(HIST_BUCKETS - 1) / 1000.0;
}

/* ---- response parser --------------------------------------------------------- */

enum rstate { R_HEAD, R_BODY_LEN, R_CHUNK_SIZE, R_CHUNK_DATA, R_CHUNK_CRLF, R_TRAILER, R_BODY_EOF };

struct resp {
	enum rstate st;
	int status;
	bool close;         /* the server will close after this response */
	uint64_t remaining; /* body or chunk bytes still expected */
};

static bool token_has(const char *v, size_t n, const char *tok)
{
	size_t t = strlen(tok);
	for (size_t i = 0; i + t <= n; i++)
		if (strncasecmp(v + i, tok, t) == 0)
			return true;
	return false;
}

/* Parses the head in buf[0..n) (ending with the empty line). 0 or -1. */
static int parse_head(struct resp *r, const char *buf, size_t n)
{
	const char *end = buf + n;
	const char *eol = memmem(buf, n, "\r\n", 2);
	if (!eol || eol - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
		return -1;
	if (buf[9] < '1' || buf[9] > '9' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' ||
	    buf[11] > '9')
		return -1;
	r->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	r->close = buf[7] == '0';
	bool have_len = false, chunked = false;
	uint64_t len = 0;
	const char *p = eol + 2;
	while (p < end) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			return -1;
		if (eol == p)
			break; /* empty line: end of the head */
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon)
			return -1;
		size_t klen = (size_t)(colon - p);
		const char *v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		size_t vlen = (size_t)(eol - v);
		if (klen == 14 && strncasecmp(p, "content-length", 14) == 0) {
			if (vlen == 0 || vlen > 15)
				return -1;
			len = 0;
			for (size_t i = 0; i < vlen && v[i] != ' ' && v[i] != '\t'; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -1;
				len = len * 10 + (uint64_t)(v[i] - '0');
			}
			have_len = true;
		} else if (klen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
			chunked = token_has(v, vlen, "chunked");
		} else if (klen == 10 && strncasecmp(p, "connection", 10) == 0) {
			if (token_has(v, vlen, "close"))
				r->close = true;
			else if (token_has(v, vlen, "keep-alive"))
				r->close = false;
		}
		p = eol + 2;
	}
	if (r->status == 204 || r->status == 304 || r->status < 200) {
		r->st = R_BODY_LEN;
		r->remaining = 0;
	} else if (chunked) {
		r->st = R_CHUNK_SIZE;
	} else if (have_len) {
		r->st = R_BODY_LEN;
		r->remaining = len;
	} else {
		r->st = R_BODY_EOF;
		r->close = true;
	}
	return 0;
}

/* Consumes what it can of buf[*pos..len). 1: response complete, 0: needs more
 * bytes, -1: malformed. */
static int parse_resp(struct resp *r, const char *buf, size_t *pos, size_t len)
{
	for (;;) {
		const char *p = buf + *pos;
		size_t avail = len - *pos;
		const char *eol;
		switch (r->st) {
		case R_HEAD:
			eol = memmem(p, avail, "\r\n\r\n", 4);
			if (!eol)
				return avail >= RBUF_SIZE ? -1 : 0;
			if (parse_head(r, p, (size_t)(eol - p) + 4) < 0)
				return -1;
			*pos += (size_t)(eol - p) + 4;
			break;
		case R_BODY_LEN:
			if (avail >= r->remaining) {
				*pos += r->remaining;
				r->remaining = 0;
				return 1;
			}
			r->remaining -= avail;
			*pos = len;
			return 0;
		case R_CHUNK_SIZE: {
			eol = memmem(p, avail, "\r\n", 2);
			if (!eol)
				return avail > 256 ? -1 : 0;
			uint64_t size = 0;
			size_t digits = 0;
			for (const char *q = p; q < eol && *q != ';' && *q != ' '; q++, digits++) {
				int d;
				if (*q >= '0' && *q <= '9')
					d = *q - '0';
				else if ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'f')
					d = (*q | 0x20) - 'a' + 10;
				else
					return -1;
				if (digits >= 15)
					return -1;
				size = size * 16 + (uint64_t)d;
			}
			if (digits == 0)
				return -1;
			*pos += (size_t)(eol - p) + 2;
			r->remaining = size;
			r->st = size == 0 ? R_TRAILER : R_CHUNK_DATA;
			break;
		}
		case R_CHUNK_DATA:
			if (avail < r->remaining) {
				r->remaining -= avail;
				*pos = len;
				return 0;
			}
			*pos += r->remaining;
			r->remaining = 0;
			r->st = R_CHUNK_CRLF;
			break;
		case R_CHUNK_CRLF:
			if (avail < 2)
				return 0;
			if (p[0] != '\r' || p[1] != '\n')
				return -1;
			*pos += 2;
			r->st = R_CHUNK_SIZE;
			break;
		case R_TRAILER:
			eol = memmem(p, avail, "\r\n", 2);
			if (!eol)
				return avail >= RBUF_SIZE ? -1 : 0;
			*pos += (size_t)(eol - p) + 2;
			if (eol == p)
				return 1;
			break;
		case R_BODY_EOF:
			*pos = len; /* complete only at EOF, decided by the caller */
			return 0;
		}
	}
}

/* ---- connections ------------------------------------------------------------ */

enum cstate { C_IDLE, C_BACKOFF, C_CONNECTING, C_HANDSHAKE, C_WRITING, C_READING, C_STOPPED };

struct conn {
	int fd;
	SSL *ssl;
	enum cstate st;
	uint32_t events;      /* current epoll interest, 0 when not registered */
	uint64_t t_start_ns;  /* latency origin */
	uint64_t deadline_ns; /* timeout of the current step, or end of the backoff */
	size_t woff;
	char *req; /* this connection's copy of the request when it has a counter */
	int id;    /* --identities: which one this connection presents */
	size_t rpos, rlen;
	struct resp resp;
	char rbuf[RBUF_SIZE];
};

struct worker {
	pthread_t tid;
	int ep;
	struct conn *conns;
	int nconns;
	uint64_t requests, errors;
	uint64_t *hist;
};

static void print_fingerprint(SSL *ssl)
{
	if (atomic_exchange(&g.fingerprint_printed, true))
		return;
	X509 *cert = SSL_get0_peer_certificate(ssl);
	unsigned char *der = NULL;
	int n = cert ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der) : -1;
	unsigned char md[32];
	if (n <= 0 || !EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL)) {
		fprintf(stderr, "loadgen: server_pubkey_sha256=unavailable\n");
	} else {
		char hex[65];
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		fprintf(stderr, "loadgen: server_pubkey_sha256=%s\n", hex);
	}
	OPENSSL_free(der);
}

static void conn_close(struct worker *w, struct conn *c)
{
	(void)w;
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd); /* also leaves the epoll set */
		c->fd = -1;
	}
	c->events = 0;
	c->st = C_IDLE;
}

static void conn_fail(struct worker *w, struct conn *c, uint64_t now)
{
	w->errors++;
	conn_close(w, c);
	ERR_clear_error();
	c->st = C_BACKOFF;
	c->deadline_ns = now + BACKOFF_NS;
}

static int want(struct worker *w, struct conn *c, uint32_t events)
{
	if (c->events == events)
		return 0;
	struct epoll_event ev = {.events = events, .data.ptr = c};
	int op = c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(w->ep, op, c->fd, &ev) < 0)
		return -1;
	c->events = events;
	return 0;
}

static const char *conn_request(const struct conn *c, size_t *size)
{
	*size = g.nids ? g.id_req_size[c->id] : g.request_size;
	return c->req ? c->req : g.nids ? g.id_req[c->id] : g.request;
}

static void start_request(struct conn *c, uint64_t now)
{
	c->st = C_WRITING;
	c->woff = 0;
	if (g.counter_off != SIZE_MAX) {
		if (!c->req && !(c->req = malloc(g.request_size)))
			die("out of memory%s", "");
		memcpy(c->req, g.request, g.request_size);
		char digits[16];
		snprintf(digits, sizeof(digits), "%012llu",
			 (unsigned long long)(atomic_fetch_add(&g.counter, 1) % 1000000000000ull));
		memcpy(c->req + g.counter_off, digits, 12);
	}
	c->rpos = c->rlen = 0;
	memset(&c->resp, 0, sizeof(c->resp));
	c->deadline_ns = now + g.timeout_ns;
	if (g.mode == MODE_KEEPALIVE)
		c->t_start_ns = now;
}

static void conn_drive(struct worker *w, struct conn *c);

/* After an SSL call returned r: wait for the socket when OpenSSL asks to,
 * otherwise the connection failed. */
static void ssl_wait_or_fail(struct worker *w, struct conn *c, int r)
{
	int e = SSL_get_error(c->ssl, r);
	if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
	    want(w, c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT) == 0)
		return;
	conn_fail(w, c, now_ns());
}

static void conn_start(struct worker *w, struct conn *c, uint64_t now)
{
	if (now >= g.t_end_ns) {
		c->st = C_STOPPED;
		return;
	}
	c->t_start_ns = now;
	c->deadline_ns = now + g.timeout_ns;
	if (g.nids)
		c->id = (int)(atomic_fetch_add(&g.next_id, 1) % (uint64_t)g.nids);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_fail(w, c, now);
		return;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->st = C_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) < 0) {
		if (errno != EINPROGRESS) {
			conn_fail(w, c, now);
			return;
		}
		if (want(w, c, EPOLLOUT) < 0)
			conn_fail(w, c, now);
		return;
	}
	conn_drive(w, c); /* connected at once, as is usual on loopback */
}

static void request_done(struct worker *w, struct conn *c, uint64_t now)
{
	if (g.expect == 0 || c->resp.status == g.expect) {
		w->requests++;
		uint64_t us = (now - c->t_start_ns) / 1000u;
		w->hist[hist_index(us > UINT32_MAX ? UINT32_MAX : (uint32_t)us)]++;
	} else {
		w->errors++;
	}
}

/* Runs the connection's state machine until it would block. */
static void conn_drive(struct worker *w, struct conn *c)
{
	for (;;) {
		uint64_t now;
		int r, e;
		switch (c->st) {
		case C_IDLE:
		case C_BACKOFF:
		case C_STOPPED:
			return;
		case C_CONNECTING: {
			int err = 0;
			socklen_t len = sizeof(err);
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
				conn_fail(w, c, now_ns());
				return;
			}
			c->ssl = SSL_new(g.nids ? g.id_ctx[c->id] : g.ctx);
			if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
				conn_fail(w, c, now_ns());
				return;
			}
			SSL_set_connect_state(c->ssl);
			c->st = C_HANDSHAKE;
			break;
		}
		case C_HANDSHAKE:
			r = SSL_do_handshake(c->ssl);
			if (r == 1) {
				print_fingerprint(c->ssl);
				start_request(c, now_ns());
				break;
			}
			ssl_wait_or_fail(w, c, r);
			return;
		case C_WRITING: {
			size_t rsize;
			const char *rq = conn_request(c, &rsize);
			r = SSL_write(c->ssl, rq + c->woff, (int)(rsize - c->woff));
			if (r > 0) {
				c->woff += (size_t)r;
				if (c->woff < rsize)
					break;
				c->st = C_READING;
				if (SSL_has_pending(c->ssl))
					break;
				/* The response cannot be here yet: wait for it rather than
				 * spend a read() that would only say EAGAIN. */
				if (want(w, c, EPOLLIN) < 0)
					conn_fail(w, c, now_ns());
				return;
			}
			ssl_wait_or_fail(w, c, r);
			return;
		}
		case C_READING: {
			if (c->rpos > 0) { /* keep unparsed bytes at the front */
				memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
				c->rlen -= c->rpos;
				c->rpos = 0;
			}
			bool eof = false;
			r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - c->rlen));
			if (r > 0) {
				c->rlen += (size_t)r;
			} else {
				e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
					if (want(w, c,
						 e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT) < 0)
						conn_fail(w, c, now_ns());
					return;
				}
				if (e != SSL_ERROR_ZERO_RETURN && e != SSL_ERROR_SYSCALL) {
					conn_fail(w, c, now_ns());
					return;
				}
				eof = true; /* close_notify, or a plain TCP close */
			}
			int p = parse_resp(&c->resp, c->rbuf, &c->rpos, c->rlen);
			if (p < 0) {
				conn_fail(w, c, now_ns());
				return;
			}
			if (p == 0 && !eof)
				break; /* read more */
			if (p == 0 && c->resp.st != R_BODY_EOF) {
				conn_fail(w, c, now_ns()); /* closed in the middle of a response */
				return;
			}
			now = now_ns();
			request_done(w, c, now);
			if (g.mode == MODE_NEW || c->resp.close || eof || c->rpos != c->rlen) {
				/* c->rpos != c->rlen: bytes we did not ask for; start clean */
				conn_close(w, c);
				conn_start(w, c, now);
				return;
			}
			if (now >= g.t_end_ns) {
				c->st = C_STOPPED;
				return;
			}
			start_request(c, now);
			break;
		}
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[128];
	uint64_t now = now_ns(), last_scan = now;

	for (int i = 0; i < w->nconns; i++)
		conn_start(w, &w->conns[i], now);
	while ((now = now_ns()) < g.t_end_ns) {
		uint64_t left_ms = (g.t_end_ns - now) / 1000000u + 1u;
		int timeout_ms =
		    left_ms < SCAN_NS / 1000000u ? (int)left_ms : (int)(SCAN_NS / 1000000u);
		int n = epoll_wait(w->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout_ms);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++)
			conn_drive(w, evs[i].data.ptr);
		now = now_ns();
		if (now - last_scan < SCAN_NS)
			continue;
		last_scan = now;
		for (int i = 0; i < w->nconns; i++) {
			struct conn *c = &w->conns[i];
			if (c->st == C_BACKOFF && now >= c->deadline_ns)
				conn_start(w, c, now);
			else if (c->st >= C_CONNECTING && c->st <= C_READING &&
				 now >= c->deadline_ns)
				conn_fail(w, c, now); /* timeout */
		}
	}
	/* Requests still in flight at the end are neither counted nor errors. */
	for (int i = 0; i < w->nconns; i++)
		conn_close(w, &w->conns[i]);
	return NULL;
}

/* ---- setup -------------------------------------------------------------------- */

static void parse_url(const char *url, char *path, size_t path_size)
{
	const char *prefix = "https://";
	if (strncmp(url, prefix, strlen(prefix)) != 0)
		die("--url must start with https:// (got %s)", url);
	const char *host = url + strlen(prefix);
	const char *colon = strchr(host, ':');
	const char *slash = strchr(host, '/');
	if (!slash)
		slash = host + strlen(host);
	if (!colon || colon > slash)
		die("--url needs an explicit port: https://127.0.0.1:PORT/PATH (got %s)", url);
	char hbuf[64];
	if ((size_t)(colon - host) >= sizeof(hbuf))
		die("host too long in %s", url);
	memcpy(hbuf, host, (size_t)(colon - host));
	hbuf[colon - host] = '\0';
	if (strcmp(hbuf, "localhost") == 0)
		snprintf(hbuf, sizeof(hbuf), "127.0.0.1");
	memset(&g.addr, 0, sizeof(g.addr));
	g.addr.sin_family = AF_INET;
	if (inet_pton(AF_INET, hbuf, &g.addr.sin_addr) != 1)
		die("the host must be an IPv4 address (no name lookups): %s", url);
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end != slash || port < 1 || port > 65535)
		die("bad port in %s", url);
	g.addr.sin_port = htons((uint16_t)port);
	if (strlen(*slash ? slash : "/") >= path_size)
		die("path too long in %s", url);
	snprintf(path, path_size, "%s", *slash ? slash : "/");
}

static double parse_number(const char *s, const char *what, double min, double max)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < min || v > max)
		die("bad value for %s", what);
	return v;
}

static char *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open --body file %s", path);
	struct stat st;
	if (fstat(fileno(f), &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size > MAX_BODY_SIZE)
		die("--body file %s is missing or larger than 16 MiB", path);
	char *buf = malloc((size_t)st.st_size + 1u);
	if (!buf)
		die("out of memory reading %s", path);
	*size = fread(buf, 1, (size_t)st.st_size, f);
	if (*size != (size_t)st.st_size)
		die("short read on %s", path);
	fclose(f);
	return buf;
}

static char *make_request(const char *method, const char *path, const char *host_header,
			  const char **headers, int nheaders, const char *body, size_t body_size,
			  size_t *size)
{
	char *head = malloc(MAX_REQUEST_HEAD_SIZE);
	if (!head)
		die("out of memory%s", "");
	size_t n = 0;
	int r = snprintf(head, MAX_REQUEST_HEAD_SIZE, "%s %s HTTP/1.1\r\nHost: %s\r\n", method,
			 path, host_header);
	if (r < 0 || (size_t)r >= MAX_REQUEST_HEAD_SIZE)
		die("request head too long%s", "");
	n = (size_t)r;
	for (int i = 0; i < nheaders; i++) {
		if (strchr(headers[i], '\r') || strchr(headers[i], '\n') ||
		    !strchr(headers[i], ':'))
			die("--header must be one 'Name: value' line (got %s)", headers[i]);
		r = snprintf(head + n, MAX_REQUEST_HEAD_SIZE - n, "%s\r\n", headers[i]);
		if (r < 0 || (size_t)r >= MAX_REQUEST_HEAD_SIZE - n)
			die("request head too long%s", "");
		n += (size_t)r;
	}
	if (body || strcmp(method, "GET") != 0) {
		r = snprintf(head + n, MAX_REQUEST_HEAD_SIZE - n, "Content-Length: %zu\r\n",
			     body_size);
		if (r < 0 || (size_t)r >= MAX_REQUEST_HEAD_SIZE - n)
			die("request head too long%s", "");
		n += (size_t)r;
	}
	r = snprintf(head + n, MAX_REQUEST_HEAD_SIZE - n, "%s\r\n",
		     g.mode == MODE_NEW ? "Connection: close\r\n" : "");
	if (r < 0 || (size_t)r >= MAX_REQUEST_HEAD_SIZE - n)
		die("request head too long%s", "");
	n += (size_t)r;
	char *req = malloc(n + body_size);
	if (!req)
		die("out of memory%s", "");
	memcpy(req, head, n);
	if (body_size)
		memcpy(req + n, body, body_size);
	*size = n + body_size;
	free(head);
	return req;
}

static void ssl_die(const char *what, const char *arg)
{
	fprintf(stderr, "loadgen: ");
	fprintf(stderr, what, arg);
	fprintf(stderr, "\n");
	ERR_print_errors_fp(stderr);
	exit(2);
}

static int accept_any_chain(X509_STORE_CTX *store, void *arg)
{
	(void)store;
	(void)arg;
	return 1;
}

static SSL_CTX *new_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		ssl_die("SSL_CTX_new failed%s", "");
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		ssl_die("cannot restrict to TLS 1.3%s", "");
	/* Every handshake in mode new must be a full one: no session is ever kept. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	/* Servers that end a close-delimited body with a plain TCP close (no
	 * close_notify) would otherwise fail every such response; truncation of
	 * a framed body is still caught by the parser. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* One read() per arriving flight instead of one for each record header
	 * and one for each record body: fewer syscalls, less client CPU. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Self-signed test peers: skip chain building altogether, which OpenSSL
	 * would otherwise still run (and ignore) for every handshake. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_any_chain, NULL);
	return ctx;
}

static void setup_tls(const char *cert, const char *key)
{
	g.ctx = new_ctx();
	if (SSL_CTX_use_certificate_chain_file(g.ctx, cert) != 1)
		ssl_die("cannot load --cert %s", cert);
	if (SSL_CTX_use_PrivateKey_file(g.ctx, key, SSL_FILETYPE_PEM) != 1)
		ssl_die("cannot load --key %s", key);
	if (SSL_CTX_check_private_key(g.ctx) != 1)
		ssl_die("--key does not match --cert %s", cert);
}

/* Evidence from veil-las binding rd, made for config_id (protocol in
 * src/las/main.c): "REPORT <hex> <config id>\n", the challenge answered, the
 * evidence up to EOF. veil-cas accepts it for that config id only, and only
 * --evidence-max-age seconds (default 60) after it was signed: a run must not
 * outlast that. */
static char *las_evidence(const char *sock, const unsigned char rd[32], const char *config_id)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(sock) >= sizeof(sa.sun_path))
		die("--las %s: path too long", sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("cannot reach veil-las at %s", sock);
	char req[512];
	int n = snprintf(req, sizeof(req), "REPORT ");
	for (int i = 0; i < 32; i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "%02x", rd[i]);
	n += snprintf(req + n, sizeof(req) - (size_t)n, " %.400s\n", config_id);
	if (write(fd, req, (size_t)n) != n)
		die("cannot write to veil-las at %s", sock);
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1), nonce[33];
	ssize_t r;
	/* its challenge line: nothing more comes until it is answered */
	while (buf && !memchr(buf, '\n', len) && (r = read(fd, buf + len, cap - len)) > 0)
		if ((len += (size_t)r) == cap)
			die("veil-las at %s answers too much", sock);
	if (buf)
		buf[len] = '\0';
	if (buf && sscanf(buf, "CHALLENGE %32[0-9a-f]\n", nonce) == 1) {
		n = snprintf(req, sizeof(req), "RESPONSE %s\n", nonce);
		if (write(fd, req, (size_t)n) != n)
			die("cannot write to veil-las at %s", sock);
		len = 0;
		while ((r = read(fd, buf + len, cap - len)) > 0)
			if ((len += (size_t)r) == cap)
				die("veil-las at %s answers too much", sock);
	}
	close(fd);
	if (!buf || !len || !strncmp(buf, "ERROR ", 6))
		die("veil-las at %s gave no evidence", sock);
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* s as the inside of a JSON string (the evidence is itself JSON); frees s. */
static char *json_escape(char *s)
{
	size_t n = strlen(s);
	char *out = malloc(6 * n + 1), *w = out;
	if (!out)
		die("out of memory%s", "");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			*w++ = '\\';
			*w++ = (char)*p;
		} else if (*p < 0x20) {
			w += snprintf(w, 7, "\\u%04x", *p);
		} else {
			*w++ = (char)*p;
		}
	}
	*w = '\0';
	free(s);
	return out;
}

static void setup_identities(const char *las, int n, const char *method, const char *path,
			     const char *host, const char **headers, int nheaders, const char *body,
			     size_t body_size)
{
	const char *mark = body ? memmem(body, body_size, "@@EVIDENCE@@", 12) : NULL;
	if (!mark)
		die("--identities needs a --body with @@EVIDENCE@@ in it%s", "");
	size_t pre = (size_t)(mark - body), post = body_size - pre - 12;
	/* the evidence names the body's config id */
	const char *cfg = memmem(body, body_size, "\"config_id\":\"", 13);
	char config_id[401];
	size_t cl = 0;
	for (cfg = cfg ? cfg + 13 : NULL;
	     cfg && cfg < body + body_size && *cfg != '"' && cl < sizeof(config_id) - 1; cfg++)
		config_id[cl++] = *cfg;
	config_id[cl] = '\0';
	if (!cl)
		die("--identities needs a --body with \"config_id\":\"NS/SERVICE\" in it%s", "");
	g.nids = n;
	g.id_ctx = calloc((size_t)n, sizeof(*g.id_ctx));
	g.id_req = calloc((size_t)n, sizeof(*g.id_req));
	g.id_req_size = calloc((size_t)n, sizeof(*g.id_req_size));
	if (!g.id_ctx || !g.id_req || !g.id_req_size)
		die("out of memory%s", "");
	for (int i = 0; i < n; i++) {
		EVP_PKEY *k = EVP_EC_gen("P-256");
		X509 *x = X509_new();
		unsigned char *der = NULL, rd[32];
		int dl = k ? i2d_PUBKEY(k, &der) : -1;
		if (!x || dl <= 0 || !EVP_Digest(der, (size_t)dl, rd, NULL, EVP_sha256(), NULL))
			ssl_die("cannot make identity key%s", "");
		OPENSSL_free(der);
		X509_set_version(x, 2);
		ASN1_INTEGER_set(X509_get_serialNumber(x), i + 1);
		X509_gmtime_adj(X509_getm_notBefore(x), -60);
		X509_gmtime_adj(X509_getm_notAfter(x), 86400);
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
					   (const unsigned char *)"loadgen", -1, -1, 0);
		X509_set_issuer_name(x, X509_get_subject_name(x));
		if (!X509_set_pubkey(x, k) || !X509_sign(x, k, EVP_sha256()))
			ssl_die("cannot make identity certificate%s", "");
		g.id_ctx[i] = new_ctx();
		if (SSL_CTX_use_certificate(g.id_ctx[i], x) != 1 ||
		    SSL_CTX_use_PrivateKey(g.id_ctx[i], k) != 1)
			ssl_die("cannot use identity%s", "");
		X509_free(x);
		EVP_PKEY_free(k);
		char *ev = json_escape(las_evidence(las, rd, config_id));
		size_t el = strlen(ev), bs = pre + el + post;
		char *b = malloc(bs);
		if (!b)
			die("out of memory%s", "");
		memcpy(b, body, pre);
		memcpy(b + pre, ev, el);
		memcpy(b + pre + el, mark + 12, post);
		g.id_req[i] =
		    make_request(method, path, host, headers, nheaders, b, bs, &g.id_req_size[i]);
		free(b);
		free(ev);
	}
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: loadgen --url https://127.0.0.1:PORT/PATH --cert C.pem --key K.pem\n"
	    "               [--method GET|POST|PUT] [--body FILE] [--header 'K: V']...\n"
	    "               --mode keepalive|new --connections N --threads T --duration SECONDS\n"
	    "               [--expect STATUS (default 200, 0 = any)] [--timeout SECONDS (5)]\n"
	    "               [--las SOCKET --identities N  (instead of --cert/--key)]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *url = NULL, *cert = NULL, *key = NULL, *method = "GET", *body_file = NULL;
	const char *mode = NULL, *las = NULL;
	int identities = 0;
	const char *headers[MAX_HEADERS];
	int nheaders = 0;
	g.connections = 0;
	g.threads = 1;
	g.duration_s = 0;
	g.expect = 200;
	g.timeout_ns = 5000000000ull;

	static const struct option longopts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"method", required_argument, NULL, 'm'},
	    {"body", required_argument, NULL, 'b'},
	    {"header", required_argument, NULL, 'H'},
	    {"mode", required_argument, NULL, 'M'},
	    {"connections", required_argument, NULL, 'n'},
	    {"threads", required_argument, NULL, 't'},
	    {"duration", required_argument, NULL, 'd'},
	    {"expect", required_argument, NULL, 'e'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"las", required_argument, NULL, 'L'},
	    {"identities", required_argument, NULL, 'I'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'm':
			method = optarg;
			break;
		case 'b':
			body_file = optarg;
			break;
		case 'H':
			if (nheaders == MAX_HEADERS)
				die("at most 64 --header options%s", "");
			headers[nheaders++] = optarg;
			break;
		case 'M':
			mode = optarg;
			break;
		case 'n':
			g.connections =
			    (int)parse_number(optarg, "--connections", 1, MAX_CONNECTIONS);
			break;
		case 't':
			g.threads = (int)parse_number(optarg, "--threads", 1, MAX_THREADS);
			break;
		case 'd':
			g.duration_s = parse_number(optarg, "--duration", 0.001, MAX_DURATION_S);
			break;
		case 'e':
			g.expect = (int)parse_number(optarg, "--expect", 0, 999);
			break;
		case 'T':
			g.timeout_ns =
			    (uint64_t)(parse_number(optarg, "--timeout", 0.001, 600) * 1e9);
			break;
		case 'L':
			las = optarg;
			break;
		case 'I':
			identities = (int)parse_number(optarg, "--identities", 1, 4096);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || !url || (!las && (!cert || !key)) || !!las != !!identities || !mode ||
	    g.connections == 0 || g.duration_s == 0)
		usage();
	if (strcmp(mode, "keepalive") == 0)
		g.mode = MODE_KEEPALIVE;
	else if (strcmp(mode, "new") == 0)
		g.mode = MODE_NEW;
	else
		die("--mode must be keepalive or new (got %s)", mode);
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
		die("--method must be GET, POST or PUT (got %s)", method);
	if (g.threads > g.connections)
		g.threads = g.connections;

	char path[4096];
	parse_url(url, path, sizeof(path));
	char host_header[80];
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &g.addr.sin_addr, ip, sizeof(ip));
	snprintf(host_header, sizeof(host_header), "%s:%u", ip, ntohs(g.addr.sin_port));
	size_t body_size = 0;
	char *body = body_file ? read_file(body_file, &body_size) : NULL;
	g.counter_off = SIZE_MAX;
	if (las) {
		setup_identities(las, identities, method, path, host_header, headers, nheaders,
				 body, body_size);
	} else {
		g.request = make_request(method, path, host_header, headers, nheaders, body,
					 body_size, &g.request_size);
		char *mark = body_size ? memmem(g.request + g.request_size - body_size, body_size,
						"@@@@@@@@@@@@", 12)
				       : NULL;
		if (mark)
			g.counter_off = (size_t)(mark - g.request);
		setup_tls(cert, key);
	}
	free(body);
	signal(SIGPIPE, SIG_IGN);

	struct worker *workers = calloc((size_t)g.threads, sizeof(*workers));
	struct conn *conns = calloc((size_t)g.connections, sizeof(*conns));
	if (!workers || !conns)
		die("out of memory%s", "");
	for (int i = 0; i < g.connections; i++)
		conns[i].fd = -1;
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	uint64_t t0 = now_ns();
	g.t_end_ns = t0 + (uint64_t)(g.duration_s * 1e9);
	int first = 0;
	for (int t = 0; t < g.threads; t++) {
		struct worker *w = &workers[t];
		w->nconns = g.connections / g.threads + (t < g.connections % g.threads ? 1 : 0);
		w->conns = conns + first;
		first += w->nconns;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		w->hist = calloc(HIST_BUCKETS, sizeof(uint64_t));
		if (w->ep < 0 || !w->hist)
			die("cannot set up a worker%s", "");
		if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
			die("cannot start a thread%s", "");
	}
	uint64_t requests = 0, errors = 0;
	uint64_t *hist = calloc(HIST_BUCKETS, sizeof(uint64_t));
	if (!hist)
		die("out of memory%s", "");
	for (int t = 0; t < g.threads; t++) {
		struct worker *w = &workers[t];
		pthread_join(w->tid, NULL);
		requests += w->requests;
		errors += w->errors;
		for (unsigned i = 0; i < HIST_BUCKETS; i++)
			hist[i] += w->hist[i];
		close(w->ep);
		free(w->hist);
	}
	double seconds = (double)(now_ns() - t0) / 1e9;
	getrusage(RUSAGE_SELF, &ru1);
	double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
		     (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
		     (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
		     (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
	printf("mode=%s requests=%llu errors=%llu seconds=%.3f rate=%.1f/s p50_ms=%.3f "
	       "p99_ms=%.3f client_cpu=%.2f\n",
	       g.mode == MODE_NEW ? "new" : "keepalive", (unsigned long long)requests,
	       (unsigned long long)errors, seconds, (double)requests / seconds,
	       hist_percentile_ms(hist, requests, 0.50), hist_percentile_ms(hist, requests, 0.99),
	       cpu / seconds);
	free(hist);
	free(conns);
	free(workers);
	free(g.request);
	SSL_CTX_free(g.ctx);
	for (int i = 0; i < g.nids; i++) {
		SSL_CTX_free(g.id_ctx[i]);
		free(g.id_req[i]);
	}
	free(g.id_ctx);
	free(g.id_req);
	free(g.id_req_size);
	return 0;
}
