/* Prometheus text exposition. Labels are fixed sets (route, status class):
 * no label takes a value from a request. */
#include <stdio.h>
#include <stdlib.h>

#include "cas.h"

static const char *const route_names[R_COUNT] = {
    "healthz",        "readyz",     "metrics",       "cas_identity",  "policy_list",
    "policy_create",  "policy_get", "policy_update", "policy_delete", "attest",
    "attest_refused", "code_key",   "other"};
/* the last slot counts every other status as "other" */
static const int status_codes[STATUS_SLOTS] = {200, 201, 400, 401, 403, 404, 405,
					       409, 413, 500, 503, 504, 0};
static const double bounds[LATENCY_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
					       0.05,   0.1,   0.25,   0.5,   1.0};

static int status_slot(int status)
{
	for (int i = 0; i < STATUS_SLOTS - 1; i++)
		if (status_codes[i] == status)
			return i;
	return STATUS_SLOTS - 1; /* other */
}

const char *cas_route_name(enum cas_route r)
{
	return route_names[r];
}

void cas_metrics_record(struct cas_metrics *m, enum cas_route r, int status, double seconds)
{
	__atomic_fetch_add(&m->requests[r][status_slot(status)], 1, __ATOMIC_RELAXED);
	int b = 0;
	while (b < LATENCY_BUCKETS && seconds > bounds[b])
		b++;
	__atomic_fetch_add(&m->latency[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&m->latency_sum_us, (unsigned long long)(seconds * 1e6),
			   __ATOMIC_RELAXED);
	__atomic_fetch_add(&m->latency_count, 1, __ATOMIC_RELAXED);
	if (status == 401 || status == 403)
		__atomic_fetch_add(&m->refusals, 1, __ATOMIC_RELAXED);
}

/* The store, as this replica sees it: which database and its role, the
 * statements' latency, failures and timeouts, reconnections, and the
 * connections (one per thread) open and busy. The counts are PostgreSQL's
 * (SQLite's statements are not timed). */
static void store_metrics(struct veil_buf *b, struct cas *cas, struct veil_store *store)
{
	struct veil_store_info info = {.role = "primary", .server = "local"};
	int up = 1;
	if (store && store->ops->info)
		up = !store->ops->info(store, &info);
	if (!up)
		snprintf(info.role, sizeof(info.role), "unknown");
	veil_buf_printf(b,
			"# HELP veil_cas_store_info The store this replica uses; role as the "
			"database says (pg_is_in_recovery), unknown when it did not answer.\n"
			"# TYPE veil_cas_store_info gauge\n"
			"veil_cas_store_info{engine=\"%s\",role=\"%s\",server=\"%s\"} 1\n"
			"# HELP veil_cas_store_up 1 when the store answered this scrape.\n"
			"# TYPE veil_cas_store_up gauge\nveil_cas_store_up %d\n",
			cas->store_url ? "postgresql" : "sqlite", info.role, info.server, up);
	struct veil_store_stats st;
	veil_store_stats_get(&st);
	veil_buf_puts(b, "# HELP veil_cas_store_statement_seconds Store statement latency.\n"
			 "# TYPE veil_cas_store_statement_seconds histogram\n");
	unsigned long long cum = 0;
	for (int i = 0; i <= VEIL_STORE_LATENCY_BUCKETS; i++) {
		cum += st.latency[i];
		if (i < VEIL_STORE_LATENCY_BUCKETS)
			veil_buf_printf(b,
					"veil_cas_store_statement_seconds_bucket{le=\"%g\"} %llu\n",
					veil_store_latency_bounds[i], cum);
		else
			veil_buf_printf(
			    b, "veil_cas_store_statement_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
	}
	veil_buf_printf(
	    b,
	    "veil_cas_store_statement_seconds_sum %.6f\n"
	    "veil_cas_store_statement_seconds_count %llu\n"
	    "# HELP veil_cas_store_failures_total Store statements that failed.\n"
	    "# TYPE veil_cas_store_failures_total counter\nveil_cas_store_failures_total %llu\n"
	    "# HELP veil_cas_store_timeouts_total Store statements ended by --store-timeout.\n"
	    "# TYPE veil_cas_store_timeouts_total counter\nveil_cas_store_timeouts_total %llu\n"
	    "# HELP veil_cas_store_reconnects_total New connections after one broke.\n"
	    "# TYPE veil_cas_store_reconnects_total counter\n"
	    "veil_cas_store_reconnects_total %llu\n"
	    "# HELP veil_cas_store_connections Store connections (one per thread) by state.\n"
	    "# TYPE veil_cas_store_connections gauge\n"
	    "veil_cas_store_connections{state=\"open\"} %lld\n"
	    "veil_cas_store_connections{state=\"busy\"} %lld\n",
	    (double)st.latency_sum_us / 1e6, st.statements, st.failures, st.timeouts, st.reconnects,
	    st.open, st.busy);
}

char *cas_metrics_render(struct cas *cas, struct veil_store *store)
{
	struct cas_metrics *m = &cas->metrics;
	struct veil_buf b;
	veil_buf_init(&b, 1 << 20);
	veil_buf_puts(&b, "# HELP veil_cas_build_info The running veil-cas.\n"
			  "# TYPE veil_cas_build_info gauge\n"
			  "veil_cas_build_info{version=\"" VEIL_VERSION "\"} 1\n");
	veil_buf_puts(&b, "# HELP veil_cas_requests_total Requests by route and status.\n"
			  "# TYPE veil_cas_requests_total counter\n");
	for (int r = 0; r < R_COUNT; r++)
		for (int s = 0; s < STATUS_SLOTS; s++) {
			unsigned long long v =
			    __atomic_load_n(&m->requests[r][s], __ATOMIC_RELAXED);
			if (!v)
				continue;
			if (status_codes[s])
				veil_buf_printf(
				    &b,
				    "veil_cas_requests_total{route=\"%s\",status=\"%d\"} "
				    "%llu\n",
				    route_names[r], status_codes[s], v);
			else
				veil_buf_printf(
				    &b,
				    "veil_cas_requests_total{route=\"%s\",status=\"other\"} "
				    "%llu\n",
				    route_names[r], v);
		}
	veil_buf_puts(&b, "# HELP veil_cas_request_seconds Request latency.\n"
			  "# TYPE veil_cas_request_seconds histogram\n");
	unsigned long long cum = 0;
	for (int i = 0; i <= LATENCY_BUCKETS; i++) {
		cum += __atomic_load_n(&m->latency[i], __ATOMIC_RELAXED);
		if (i < LATENCY_BUCKETS)
			veil_buf_printf(&b, "veil_cas_request_seconds_bucket{le=\"%g\"} %llu\n",
					bounds[i], cum);
		else
			veil_buf_printf(&b, "veil_cas_request_seconds_bucket{le=\"+Inf\"} %llu\n",
					cum);
	}
	veil_buf_printf(&b,
			"veil_cas_request_seconds_sum %.6f\nveil_cas_request_seconds_count %llu\n",
			__atomic_load_n(&m->latency_sum_us, __ATOMIC_RELAXED) / 1e6,
			__atomic_load_n(&m->latency_count, __ATOMIC_RELAXED));
	veil_buf_printf(&b,
			"# HELP veil_cas_refusals_total Requests refused for want of identity "
			"or permission.\n# TYPE veil_cas_refusals_total counter\n"
			"veil_cas_refusals_total %llu\n",
			__atomic_load_n(&m->refusals, __ATOMIC_RELAXED));
	long long n = -1;
	if (store && store->ops->count(store, &n) == 0)
		veil_buf_printf(&b,
				"# HELP veil_cas_policies Policies stored.\n"
				"# TYPE veil_cas_policies gauge\nveil_cas_policies %lld\n",
				n);
	store_metrics(&b, cas, store);
	if (b.failed) {
		veil_buf_free(&b);
		return NULL;
	}
	return b.data;
}
