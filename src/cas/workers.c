/* The worker pool of veil-cas: policy create and update off the event
 * loops (routes.h, cas.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "routes.h"

/* ---- the worker pool: policy create and update off the event loops ----
 * Generating a policy's keys (RSA-3072 takes ~0.3-1 s each) on an event loop
 * stalled every other connection of that loop: /healthz waited 6 s behind a
 * policy with 8 of them. A create or update is read on the loop, done by a
 * worker (its own store connection), and its reply sent back on the loop. */
#define JOBS_MAX 1024

struct cas_job {
	struct cas_job *next;
	struct route_ctx c;
	struct cas_thread *home; /* the event loop that answers */
	enum evhttp_cmd_type m;
	struct timespec t0;
	char path[256];
	route_handler *handle;
	size_t name_at; /* the namespace in path, for a /v1/policies/NAME route */
	bool has_name;
	char *body;
};

struct cas_workers {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cas_job *head, *tail;
	long queued;      /* in the queue or on a worker */
	long outstanding; /* not answered yet */
	bool stop;
	size_t count;
	struct cas_thread *threads; /* a worker's store and the cas */
	pthread_t *tids;
};

static void job_free(struct cas_job *j)
{
	free(j->c.reply_body);
	if (j->body) {
		OPENSSL_cleanse(j->body, j->c.body_size);
		free(j->body);
	}
	free(j);
}

/* On the event loop: the worker's reply goes out. */
static void job_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct cas_job *j = arg;
	struct route_ctx *c = &j->c;
	struct cas_workers *w = c->t->cas->workers;
	c->deferred = false;
	/* a request whose connection is gone is freed by the reply itself */
	bool gone = !evhttp_request_get_connection(c->req);
	if (c->reply_body)
		route_reply(c, c->status, c->reply_type, c->reply_body, c->reply_size);
	else
		route_reply(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
	if (gone)
		c->req = NULL;
	route_finish(c, j->m, j->path, &j->t0);
	job_free(j);
	pthread_mutex_lock(&w->lock);
	w->outstanding--;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void *worker_main(void *arg)
{
	struct cas_thread *wt = arg;
	struct cas_workers *w = wt->cas->workers;
	for (;;) {
		pthread_mutex_lock(&w->lock);
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		struct cas_job *j = w->head;
		if (!j) {
			pthread_mutex_unlock(&w->lock);
			return NULL;
		}
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		j->c.t = wt;
		j->handle(&j->c, j->has_name ? j->path + j->name_at : NULL);
		j->c.t = j->home;
		pthread_mutex_lock(&w->lock);
		w->queued--;
		pthread_mutex_unlock(&w->lock);
		struct timeval now = {0, 0};
		if (event_base_once(j->home->base, -1, EV_TIMEOUT, job_done, j, &now)) {
			pthread_mutex_lock(&w->lock);
			w->outstanding--;
			pthread_mutex_unlock(&w->lock);
			job_free(j); /* the loop is gone: evhttp frees the request */
		}
	}
}

int route_defer(struct route_ctx *c, enum evhttp_cmd_type m, const char *path, const char *name,
		route_handler *handle, const struct timespec *t0)
{
	struct cas_workers *w = c->t->cas->workers;
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t n = evbuffer_get_length(in);
	struct cas_job *j = w ? calloc(1, sizeof(*j)) : NULL;
	if (!j || strlen(path) >= sizeof(j->path) || (n && !(j->body = malloc(n)))) {
		if (j)
			job_free(j);
		return -1; /* done on the loop */
	}
	if (n && evbuffer_copyout(in, j->body, n) != (ev_ssize_t)n) {
		job_free(j);
		return -1;
	}
	j->c = *c;
	if (c->identity == c->identity_buf)
		j->c.identity = j->c.identity_buf;
	j->c.deferred = true;
	j->c.body = j->body;
	j->c.body_size = n;
	j->home = c->t;
	j->m = m;
	j->t0 = *t0;
	snprintf(j->path, sizeof(j->path), "%s", path);
	j->handle = handle;
	j->has_name = name != NULL;
	j->name_at = name ? (size_t)(name - path) : 0;
	pthread_mutex_lock(&w->lock);
	bool full = w->stop || w->queued >= JOBS_MAX;
	if (!full) {
		if (w->tail)
			w->tail->next = j;
		else
			w->head = j;
		w->tail = j;
		w->queued++;
		w->outstanding++;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	if (full) {
		job_free(j);
		snprintf(c->error, sizeof(c->error), "busy");
		route_reply_json(
		    c, 503, json_pack("{s:s}", "error", "too many policy changes queued; retry"));
		return 1;
	}
	return 0;
}

int cas_workers_start(struct cas *cas, size_t count, struct veil_diags *d)
{
	struct cas_workers *w = calloc(1, sizeof(*w));
	if (!w)
		return VEIL_ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->threads = calloc(count, sizeof(*w->threads));
	w->tids = calloc(count, sizeof(*w->tids));
	cas->workers = w;
	if (!w->threads || !w->tids)
		return VEIL_ENOMEM;
	for (size_t i = 0; i < count; i++) {
		w->threads[i].cas = cas;
		w->threads[i].fd = -1;
		struct veil_store_opener o = {cas_policy_exports, cas->vault};
		if (veil_store_open(cas->store_url, cas->data_dir, false, &o, &w->threads[i].store,
				    d))
			return VEIL_EIO;
		if (pthread_create(&w->tids[i], NULL, worker_main, &w->threads[i]))
			return VEIL_EIO;
		w->count++;
	}
	return 0;
}

/* Before the event loops stop: the queue is worked off, its answers sent
 * (up to 10 s), then the workers end. */
void cas_workers_stop(struct cas *cas)
{
	struct cas_workers *w = cas->workers;
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (size_t i = 0; i < w->count; i++)
		pthread_join(w->tids[i], NULL);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&w->lock);
	while (w->outstanding > 0 && !pthread_cond_timedwait(&w->cond, &w->lock, &until))
		;
	pthread_mutex_unlock(&w->lock);
}

void cas_workers_free(struct cas *cas)
{
	struct cas_workers *w = cas->workers;
	if (!w)
		return;
	for (size_t i = 0; w->threads && i < w->count; i++)
		if (w->threads[i].store)
			w->threads[i].store->ops->close(w->threads[i].store);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->threads);
	free(w->tids);
	free(w);
	cas->workers = NULL;
}
