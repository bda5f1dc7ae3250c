/* The store a veil-cas runs on, by its --store URL, and what every store
 * shares: the timeout of a statement and the counts /metrics shows
 * (store.h). */
#include <time.h>

#include "veil/store.h"

int veil_store_open(const char *url, const char *data_dir, bool first,
		    const struct veil_store_opener *opener, struct veil_store **out,
		    struct veil_diags *d)
{
	if (!url)
		return veil_store_sqlite_open(data_dir, opener, out, d);
	if (veil_store_url_is_pg(url))
		/* a new database has no policies to index: no opener */
		return veil_store_pg_open(url, data_dir, first, out, d);
	veil_diag(d, "--store: expected postgresql://... or postgres://... (without --store: "
		     "SQLite in the data folder)");
	return VEIL_EINVAL;
}

/* ---- the timeout ---- */

static unsigned timeout_ms = VEIL_STORE_TIMEOUT_DEFAULT_MS;

void veil_store_set_timeout_ms(unsigned ms)
{
	timeout_ms = ms;
}

unsigned veil_store_timeout_ms(void)
{
	return timeout_ms;
}

/* ---- statistics: relaxed atomics, read one by one (a scrape may mix
 * counts a statement apart) ---- */

const double veil_store_latency_bounds[VEIL_STORE_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0};

static struct veil_store_stats stats;

double veil_store_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void veil_store_stats_statement(double seconds, enum veil_store_outcome outcome)
{
	int b = 0;
	while (b < VEIL_STORE_LATENCY_BUCKETS && seconds > veil_store_latency_bounds[b])
		b++;
	__atomic_fetch_add(&stats.statements, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&stats.latency[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&stats.latency_sum_us, (unsigned long long)(seconds * 1e6),
			   __ATOMIC_RELAXED);
	if (outcome != VEIL_STORE_OK)
		__atomic_fetch_add(&stats.failures, 1, __ATOMIC_RELAXED);
	if (outcome == VEIL_STORE_TIMED_OUT)
		__atomic_fetch_add(&stats.timeouts, 1, __ATOMIC_RELAXED);
}

void veil_store_stats_timed_out(void)
{
	__atomic_fetch_add(&stats.failures, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&stats.timeouts, 1, __ATOMIC_RELAXED);
}

void veil_store_stats_reconnect(void)
{
	__atomic_fetch_add(&stats.reconnects, 1, __ATOMIC_RELAXED);
}

void veil_store_stats_conns(int open_delta, int busy_delta)
{
	if (open_delta)
		__atomic_fetch_add(&stats.open, open_delta, __ATOMIC_RELAXED);
	if (busy_delta)
		__atomic_fetch_add(&stats.busy, busy_delta, __ATOMIC_RELAXED);
}

void veil_store_stats_get(struct veil_store_stats *out)
{
	out->statements = __atomic_load_n(&stats.statements, __ATOMIC_RELAXED);
	for (int i = 0; i <= VEIL_STORE_LATENCY_BUCKETS; i++)
		out->latency[i] = __atomic_load_n(&stats.latency[i], __ATOMIC_RELAXED);
	out->latency_sum_us = __atomic_load_n(&stats.latency_sum_us, __ATOMIC_RELAXED);
	out->failures = __atomic_load_n(&stats.failures, __ATOMIC_RELAXED);
	out->timeouts = __atomic_load_n(&stats.timeouts, __ATOMIC_RELAXED);
	out->reconnects = __atomic_load_n(&stats.reconnects, __ATOMIC_RELAXED);
	out->open = __atomic_load_n(&stats.open, __ATOMIC_RELAXED);
	out->busy = __atomic_load_n(&stats.busy, __ATOMIC_RELAXED);
}
