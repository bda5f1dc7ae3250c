/* veil-cas connection limits: what one client, or many, may hold.
 *
 * libevent 2.1's evhttp shows a request only once it is complete, so the
 * limits hang on what the CAS does see of every connection: its TLS object.
 * make_bev (main.c) calls cas_conn_new for each accepted connection; the
 * state below lives in the SSL's ex_data and is freed with it, i.e. when
 * evhttp closes the connection.
 *
 * - Global cap (--max-connections): at the cap a thread stops accepting
 *   (its listener is disabled) and looks again every CONN_RESUME_MS; a
 *   connection waits in the kernel's backlog meanwhile. The same back-off
 *   follows an accept() that failed for lack of descriptors or memory
 *   (EMFILE spun a core at 100% and logged 284 MB in seconds before).
 * - Per client address (--max-connections-per-client): the TLS handshake of
 *   a connection over it is refused at its ClientHello.
 * - Whole-request deadline (--request-timeout): from accept, or from the
 *   previous reply on a keep-alive connection, to a complete request. A
 *   client sending a byte every few seconds restarted evhttp's per-read
 *   timeout forever; at the deadline its socket is shut down, which evhttp
 *   sees as the peer's EOF and cleans up as usual.
 * - Buffered request bytes (--buffered-max): the TLS records a connection
 *   received since its last complete request are counted (the record
 *   headers, as the message callback sees them); a connection that takes the
 *   total over the cap with more than CONN_SMALL bytes of its own is answered
 *   503 and closed (30 connections of 4 MiB bodies took +120 MB before). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>

#include "cas.h"

#define CONN_RESUME_MS 100
#define CONN_SMALL ((size_t)64 << 10) /* a connection's own bytes never refused */
#define ADDR_BUCKETS 4096

struct cas_conn {
	struct cas_thread *t;
	struct bufferevent *bev;
	struct event *deadline;
	unsigned char addr[16]; /* IPv6, or IPv4-mapped */
	bool addr_counted;
	int refused;    /* 1: to be answered 503; 2: answered, closing */
	size_t pending; /* record bytes since the last complete request */
};

/* per client address counts: one table for the process */
struct addr_count {
	struct addr_count *next;
	unsigned char addr[16];
	long count;
};
static struct addr_count *addr_table[ADDR_BUCKETS];
static pthread_mutex_t addr_lock = PTHREAD_MUTEX_INITIALIZER;

static int conn_index = -1;

static size_t addr_bucket(const unsigned char a[16])
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		h = (h ^ a[i]) * 16777619u;
	return h % ADDR_BUCKETS;
}

/* +1 or -1 on addr's count; returns the new count */
static long addr_add(const unsigned char a[16], long delta)
{
	long n = 0;
	pthread_mutex_lock(&addr_lock);
	struct addr_count **pp = &addr_table[addr_bucket(a)], *e;
	/* not secret: a peer IP address */
	while ((e = *pp) && memcmp(e->addr, a, 16))
		pp = &e->next;
	if (!e && delta > 0 && (e = calloc(1, sizeof(*e)))) {
		memcpy(e->addr, a, 16);
		*pp = e;
	}
	if (e) {
		e->count += delta;
		n = e->count;
		if (n <= 0) {
			*pp = e->next;
			free(e);
		}
	}
	pthread_mutex_unlock(&addr_lock);
	return n;
}

/* ---- rate-limited messages: the same one at most once a second ---- */

static pthread_mutex_t warn_lock = PTHREAD_MUTEX_INITIALIZER;

void cas_warn_limited(const char *fmt, ...)
{
	static char last[256];
	static time_t last_time;
	static unsigned long suppressed;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	time_t now = time(NULL);
	pthread_mutex_lock(&warn_lock);
	if (now == last_time && !strcmp(msg, last)) {
		suppressed++;
	} else {
		if (suppressed)
			fprintf(stderr, "veil-cas: (the last message %lu more times)\n",
				suppressed);
		fprintf(stderr, "veil-cas: %s\n", msg);
		snprintf(last, sizeof(last), "%s", msg);
		last_time = now;
		suppressed = 0;
	}
	pthread_mutex_unlock(&warn_lock);
}

static void libevent_log(int severity, const char *msg)
{
	(void)severity;
	cas_warn_limited("libevent: %s", msg);
}

/* ---- the listener: back off at the cap and on EMFILE ---- */

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct cas_thread *t = arg;
	struct cas *cas = t->cas;
	if (__atomic_load_n(&cas->conn_count, __ATOMIC_RELAXED) < cas->max_conns) {
		evconnlistener_enable(t->listener);
		return;
	}
	struct timeval tv = {0, CONN_RESUME_MS * 1000};
	evtimer_add(t->resume, &tv);
}

static void pause_accepting(struct cas_thread *t)
{
	struct timeval tv = {0, CONN_RESUME_MS * 1000};
	evconnlistener_disable(t->listener);
	if (!evtimer_pending(t->resume, NULL))
		evtimer_add(t->resume, &tv);
}

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	(void)lev;
	int e = errno;
	struct cas_thread *t = arg;
	cas_warn_limited("accept: %s; not accepting for %d ms", strerror(e), CONN_RESUME_MS);
	pause_accepting(t);
}

int cas_conn_listen(struct cas_thread *t, int fd)
{
	t->resume = evtimer_new(t->base, resume_cb, t);
	if (!t->resume)
		return VEIL_ENOMEM;
	/* backlog 0: fd already listens */
	t->listener = evconnlistener_new(t->base, NULL, NULL,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!t->listener)
		return VEIL_EIO;
	if (!evhttp_bind_listener(t->http, t->listener)) {
		evconnlistener_free(t->listener);
		t->listener = NULL;
		return VEIL_EIO;
	}
	evconnlistener_set_error_cb(t->listener, accept_error_cb);
	return 0;
}

/* ---- per connection ---- */

static void arm_deadline(struct cas_conn *c)
{
	struct timeval tv = {c->t->cas->request_timeout, 0};
	evtimer_add(c->deadline, &tv);
}

static const char refusal_503[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    "Connection: close\r\nContent-Length: 66\r\n\r\n"
    "{\"error\":\"too many request bytes buffered; retry in a moment\"}\n\n\n\n";
_Static_assert(
    sizeof("{\"error\":\"too many request bytes buffered; retry in a moment\"}\n\n\n\n") - 1 == 66,
    "Content-Length");

static void deadline_cb(evutil_socket_t fd_unused, short what, void *arg)
{
	(void)fd_unused, (void)what;
	struct cas_conn *c = arg;
	int fd = bufferevent_getfd(c->bev);
	if (c->refused == 1) {
		/* the 503, then the end of the connection a moment later, once the
		 * reply is written; its bytes no longer count */
		c->refused = 2;
		__atomic_sub_fetch(&c->t->cas->buffered, c->pending, __ATOMIC_RELAXED);
		c->pending = 0;
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_enable(c->bev, EV_WRITE); /* evhttp disables it while reading */
		bufferevent_write(c->bev, refusal_503, sizeof(refusal_503) - 1);
		struct timeval tv = {1, 0};
		evtimer_add(c->deadline, &tv);
		return;
	}
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static void conn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	struct cas_conn *c = ptr;
	if (!c)
		return;
	struct cas *cas = c->t->cas;
	if (c->deadline)
		event_free(c->deadline);
	if (c->addr_counted)
		addr_add(c->addr, -1);
	if (c->pending)
		__atomic_sub_fetch(&cas->buffered, c->pending, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&cas->conn_count, 1, __ATOMIC_RELAXED);
	free(c);
}

static void peer_key(int fd, unsigned char out[16])
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	memset(out, 0, 16);
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len))
		return;
	if (ss.ss_family == AF_INET) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else if (ss.ss_family == AF_INET6) {
		memcpy(out, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	}
}

/* At the ClientHello the socket is known: count its address. */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
	(void)arg;
	struct cas_conn *c = SSL_get_ex_data(ssl, conn_index);
	if (!c || c->addr_counted)
		return SSL_CLIENT_HELLO_SUCCESS;
	peer_key(SSL_get_fd(ssl), c->addr);
	c->addr_counted = true;
	if (addr_add(c->addr, 1) > c->t->cas->max_conns_per_client) {
		cas_warn_limited("a client address holds more than %ld connections: refused",
				 c->t->cas->max_conns_per_client);
		*alert = SSL_AD_HANDSHAKE_FAILURE;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* Every received TLS record header: its length counts as buffered request
 * bytes until the request is complete (cas_conn_request_done). */
static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
		   SSL *ssl, void *arg)
{
	(void)version, (void)arg;
	const unsigned char *h = buf;
	if (write_p || content_type != SSL3_RT_HEADER || len != 5 || h[0] != 23 /* app data */)
		return;
	struct cas_conn *c = SSL_get_ex_data(ssl, conn_index);
	if (!c || c->refused)
		return;
	size_t n = (size_t)h[3] << 8 | h[4];
	struct cas *cas = c->t->cas;
	c->pending += n;
	size_t total = __atomic_add_fetch(&cas->buffered, n, __ATOMIC_RELAXED);
	if (total > cas->buffered_max && c->pending > CONN_SMALL) {
		/* not from inside SSL_read: the deadline event, at once */
		c->refused = 1;
		cas_warn_limited("more than %zu request bytes buffered: a request refused (503)",
				 cas->buffered_max);
		event_active(c->deadline, EV_TIMEOUT, 0);
	}
}

int cas_conn_new(struct cas_thread *t, SSL *ssl, struct bufferevent *bev)
{
	struct cas *cas = t->cas;
	struct cas_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return VEIL_ENOMEM;
	c->t = t;
	c->bev = bev;
	if (!(c->deadline = evtimer_new(t->base, deadline_cb, c)) ||
	    !SSL_set_ex_data(ssl, conn_index, c)) {
		if (c->deadline)
			event_free(c->deadline);
		free(c);
		return VEIL_ENOMEM;
	}
	long n = __atomic_add_fetch(&cas->conn_count, 1, __ATOMIC_RELAXED);
	if (n >= cas->max_conns)
		pause_accepting(t);
	arm_deadline(c);
	return 0;
}

static struct cas_conn *conn_of(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	return ssl ? SSL_get_ex_data(ssl, conn_index) : NULL;
}

void cas_conn_request_done(struct evhttp_request *req)
{
	struct cas_conn *c = conn_of(req);
	if (!c)
		return;
	/* complete after all: no refusal (event_del takes an event_active'd
	 * one back too) */
	evtimer_del(c->deadline);
	if (c->refused == 1)
		c->refused = 0;
	if (c->pending)
		__atomic_sub_fetch(&c->t->cas->buffered, c->pending, __ATOMIC_RELAXED);
	c->pending = 0;
}

void cas_conn_request_next(struct evhttp_request *req)
{
	struct cas_conn *c = conn_of(req);
	if (c && !c->refused)
		arm_deadline(c);
}

int cas_conn_setup(struct cas *cas, SSL_CTX *ctx, long nthreads, struct veil_diags *d)
{
	conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_free);
	if (conn_index < 0)
		return VEIL_ENOMEM;
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
	SSL_CTX_set_msg_callback(ctx, msg_cb);
	event_set_log_callback(libevent_log);
	/* as many descriptors as the hard limit allows; then connections are
	 * what is left after the stores, logs and listeners */
	struct rlimit rl;
	long fds = 1024;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		fds = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 20) ? 1L << 20
									       : (long)rl.rlim_cur;
	}
	long room = fds - 32 - 8 * nthreads;
	if (room < 8) {
		veil_diag(d, "the file-descriptor limit (%ld) leaves no room for connections", fds);
		return VEIL_ELIMIT;
	}
	if (!cas->max_conns || cas->max_conns > room)
		cas->max_conns = room;
	if (cas->max_conns_per_client > cas->max_conns)
		cas->max_conns_per_client = cas->max_conns;
	return 0;
}
