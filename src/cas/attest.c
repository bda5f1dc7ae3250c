/* /v1/attest: a runtime proves what it is (evidence bound to its TLS key,
 * fresh, from a trusted platform, as the policy wants it) and gets its
 * configuration, rendered by the key process and sealed to that key; and
 * /v1/attest/refused: that runtime's report that it then refused to start
 * (routes.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "routes.h"
#include "veil/evidence.h"

static int in_list(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return 1;
	return 0;
}

/* The files a runtime may list in /v1/attest: a policy holds at most 4096
 * (veil_policy_limits); more than this is no runtime's list. */
#define ATTEST_FILES_MAX 16384

static int file_ptr_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct veil_policy_file *const *)a)->path,
		      (*(const struct veil_policy_file *const *)b)->path);
}

/* Names the first protected file that differs between the policy and the
 * list the runtime sent ({path, sha256} entries), as ": FILE changed" etc.
 * The policy's files are sorted once and each sent one found by binary
 * search: comparing every pair took 19 s for a 3.9 MB list on the loop. */
static void name_changed_file(const struct veil_policy_service *svc, json_t *sent, char *out,
			      size_t cap)
{
	out[0] = '\0';
	if (!svc->file_count || !json_is_array(sent))
		return;
	size_t n = svc->file_count, i;
	const struct veil_policy_file **sorted = malloc(n * sizeof(*sorted));
	unsigned char *seen = calloc(n, 1);
	json_t *e;
	if (!sorted || !seen)
		goto out;
	for (size_t k = 0; k < n; k++)
		sorted[k] = &svc->files[k];
	qsort(sorted, n, sizeof(*sorted), file_ptr_cmp);
	json_array_foreach(sent, i, e)
	{
		const char *path = NULL, *h = NULL;
		if (json_unpack(e, "{s:s, s:s}", "path", &path, "sha256", &h))
			continue;
		size_t lo = 0, hi = n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(sorted[mid]->path, path) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == n || strcmp(sorted[lo]->path, path)) {
			snprintf(out, cap, ": %.200s is not a protected file of the policy", path);
			goto out;
		}
		if (strcmp(sorted[lo]->sha256, h)) {
			snprintf(out, cap, ": %.200s changed", path);
			goto out;
		}
		seen[lo] = 1;
	}
	for (size_t k = 0; k < n; k++)
		if (!seen[k]) {
			snprintf(out, cap, ": %.200s is missing", sorted[k]->path);
			goto out;
		}
	snprintf(out, cap, ": a file's mode changed");
out:
	free(sorted);
	free(seen);
}

/* The configurations released lately, so that a runtime that then refuses
 * to start can say so (POST /v1/attest/refused) and nobody else can: a
 * report counts only from the client key the configuration was released to,
 * for that config id, within RELEASE_REPORT_SECONDS, once. An entry is the
 * SHA-256 of "KEYHASH\nCONFIG_ID" and the time. The ring holds the last
 * RELEASES_KEPT releases (160 KiB); a report after more than that many
 * releases is refused like a stranger's, which costs only the audit entry. */
#define RELEASES_KEPT 4096
#define RELEASE_REPORT_SECONDS 60
struct release {
	uint8_t id[VEIL_SHA256_SIZE];
	time_t at; /* 0: free or reported */
};
static pthread_mutex_t releases_lock = PTHREAD_MUTEX_INITIALIZER;
static struct release releases[RELEASES_KEPT];
static size_t releases_next;

static int release_id(const char *client, const char *config_id, uint8_t id[VEIL_SHA256_SIZE])
{
	char buf[VEIL_KEY_HASH_HEX + 1 + VEIL_EVIDENCE_CONFIG_ID_MAX + 1];
	int n = snprintf(buf, sizeof(buf), "%s\n%s", client, config_id);
	return n < 0 || (size_t)n >= sizeof(buf) || veil_sha256(buf, (size_t)n, id) ? -1 : 0;
}

static void release_remember(const char *client, const char *config_id)
{
	struct release r = {.at = time(NULL)};
	if (release_id(client, config_id, r.id))
		return;
	pthread_mutex_lock(&releases_lock);
	releases[releases_next] = r;
	releases_next = (releases_next + 1) % RELEASES_KEPT;
	pthread_mutex_unlock(&releases_lock);
}

/* 1 (and forgotten: one report per release) if config_id was released to
 * client within the window, else 0 */
static int release_take(const char *client, const char *config_id)
{
	uint8_t id[VEIL_SHA256_SIZE];
	if (release_id(client, config_id, id))
		return 0;
	time_t now = time(NULL);
	int found = 0;
	pthread_mutex_lock(&releases_lock);
	for (size_t i = 0; i < RELEASES_KEPT && !found; i++) {
		struct release *r =
		    &releases[(releases_next + RELEASES_KEPT - 1 - i) % RELEASES_KEPT];
		if (r->at && now - r->at <= RELEASE_REPORT_SECONDS && now >= r->at &&
		    /* not secret: hash of a client key hash and a config id */
		    !memcmp(r->id, id, sizeof(id))) {
			r->at = 0;
			found = 1;
		}
	}
	pthread_mutex_unlock(&releases_lock);
	return found;
}

/* POST /v1/attest/refused: the runtime the configuration was just released
 * to refused to start (a runtime file changed, the folder could not be
 * pinned, ...). Audited as start-refused with its reason, which the runtime
 * writes from names and errors only, never a value. An attacker who controls
 * the node can keep the report from coming: its absence proves nothing. */
void route_attest_refused(struct route_ctx *c, const char *name)
{
	struct veil_refusal_report q;
	struct veil_diags d;
	char msg[600];
	memset(&q, 0, sizeof(q));
	veil_diags_init(&d);
	if (!c->identity) {
		route_fail(c, 403, NULL,
			   "a refusal is reported with the key the configuration was released to");
		goto out;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	if (veil_refusal_report_decode((const char *)evbuffer_pullup(in, -1),
				       evbuffer_get_length(in), &q, &d)) {
		route_diags_text(&d, msg, sizeof(msg));
		route_fail(c, 400, NULL, "%s", msg);
		goto out;
	}
	if (!release_take(c->identity, q.config_id)) {
		route_fail(c, 403, q.ns,
			   "no configuration of %s was released to this client in the last %d s (a "
			   "refusal is reported once, by the runtime that attested, with its key)",
			   q.config_id, RELEASE_REPORT_SECONDS);
		goto out;
	}
	char detail[VEIL_REFUSAL_REASON_MAX + 200]; /* + a service name, 128 */
	snprintf(detail, sizeof(detail), "%s: the attested runtime refused to start: %s", q.service,
		 q.reason);
	route_audit(c, "start-refused", q.ns, 200, detail);
	route_reply_json(c, 200, json_pack("{s:s}", "audited", "start-refused"));
out:
	veil_refusal_report_free(&q);
	veil_diags_free(&d);
}

static int has_imports(const struct veil_policy *p)
{
	for (size_t i = 0; i < p->secret_count; i++)
		if (p->secrets[i].import_namespace)
			return 1;
	return 0;
}

void route_attest(struct route_ctx *c, const char *name)
{
	struct cas *cas = c->t->cas;
	struct veil_record r = {0};
	struct stored_policy st;
	struct veil_diags d;
	memset(&st, 0, sizeof(st));
	veil_diags_init(&d);
	struct veil_attest_request q;
	char msg[600], *sealed = NULL;
	size_t sealed_size = 0;
	struct veil_buf imports = {0};
	struct cas_seal_to to = {0};
	memset(&q, 0, sizeof(q));
	if (!c->identity) {
		route_fail(c, 403, NULL,
			   "attestation needs the client certificate the evidence binds");
		goto out;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	if (veil_attest_request_decode((const char *)evbuffer_pullup(in, -1),
				       evbuffer_get_length(in), &q, &d)) {
		route_diags_text(&d, msg, sizeof(msg));
		route_fail(c, 400, NULL, "%s", msg);
		goto out;
	}
	if (json_array_size(q.files) > ATTEST_FILES_MAX) {
		route_fail(c, 413, NULL, "files: %zu entries, at most %d", json_array_size(q.files),
			   ATTEST_FILES_MAX);
		goto out;
	}
	const char *ns = q.ns, *svc_name = q.service, *config_id = q.config_id;
	const char *evidence = q.evidence, *root = q.file_set_root;
	json_t *sent_files = q.files;
	/* 1. the evidence, before anything about the namespace: a refusal says
	 * nothing about which namespaces and services exist. It verifies and is
	 * bound to the key of this very TLS connection, */
	uint8_t rd[VEIL_SHA256_SIZE];
	if (veil_unhex(c->identity, rd, sizeof(rd))) { /* our own hex of the peer's key */
		route_fail(c, 500, NULL, "internal error: the connection's key hash");
		goto out;
	}
	struct veil_claims cl;
	struct veil_evidence_opts eo = {.collateral = cas->collateral,
					.no_binding = cas->test_recorded_evidence};
	if (veil_evidence_verify_opts(evidence, strlen(evidence), rd, &eo, &cl, &d)) {
		route_diags_text(&d, msg, sizeof(msg));
		route_fail(c, 403, ns, "evidence refused for %s: %s", config_id, msg);
		goto out;
	}
	/* hardware evidence: bound to this TLS key (above) and to this
	 * configuration by the report data's second half; the key is made for
	 * this start, so a replay needs it */
	if (cl.hardware) {
		uint8_t want[VEIL_SHA256_SIZE];
		if (veil_sha256(config_id, strlen(config_id), want)) {
			route_fail(c, 500, ns, "cannot hash the config id");
			goto out;
		}
		if (!cas->test_recorded_evidence &&
		    CRYPTO_memcmp(cl.report_data + VEIL_SHA256_SIZE, want, sizeof(want))) {
			route_fail(c, 403, ns,
				   "evidence refused for %s: its report data was made for another "
				   "configuration (the second 32 bytes are not the SHA-256 of %s)",
				   config_id, config_id);
			goto out;
		}
	}
	/* fresh (a recording replayed later is refused), */
	long long now = (long long)time(NULL), max_age = cas->evidence_max_age;
	if (!cl.hardware && (cl.timestamp < now - max_age || cl.timestamp > now + max_age)) {
		/* no subtraction with the claimed time: it may be any 64-bit value */
		route_fail(
		    c, 403, ns,
		    "evidence refused for %s: evidence is not fresh (made at %lld, the CAS's "
		    "time is %lld; veil-cas accepts %lld s either way, --evidence-max-age)",
		    config_id, cl.timestamp, now, max_age);
		goto out;
	}
	/* made for this configuration, */
	if (!cl.hardware && strcmp(cl.config_id, config_id)) {
		route_fail(c, 403, ns, "evidence refused for %s: evidence was made for %s, not %s",
			   config_id, cl.config_id[0] ? cl.config_id : "(no config id)", config_id);
		goto out;
	}
	/* 2. and signed by a platform the operator trusts (a key the policy
	 * lists counts only with --allow-policy-platforms: a policy's writer
	 * could list a key they made up) */
	/* (hardware evidence is signed by the vendor's chain, checked above) */
	int platform_trusted =
	    cl.hardware || in_list(cas->trusted_platforms, cas->trusted_count, cl.platform_key);
	if (!platform_trusted && !cas->allow_policy_platforms) {
		route_fail(c, 403, ns,
			   "platform %.16s... is not trusted for %s (veil-cas --trust-platform)",
			   cl.platform_key, config_id);
		goto out;
	}
	unsigned long long gen = 0;
	struct attest_cache_entry *slot =
	    cas_cache_generation(c->t, &gen) ? NULL : attest_cache_slot(c->t, ns, gen);
	struct stored_policy *sp = &st;    /* the cached entry, or st (this request's) */
	const struct veil_record *rp = &r; /* likewise */
	if (slot && slot->used && slot->generation == gen && !strcmp(slot->ns, ns)) {
		sp = &slot->st;
		rp = &slot->rec;
	} else {
		int rc = c->t->store->ops->get(c->t->store, ns, &r);
		if (rc == VEIL_ENOENT) {
			route_fail(c, 404, ns, "no namespace %s", ns);
			goto out;
		}
		if (rc || stored_policy_open(cas->vault, &r, &st)) {
			route_fail(c, 500, ns, "cannot open the stored policy");
			goto out;
		}
		if (slot && strlen(ns) < sizeof(slot->ns) && !has_imports(&st.policy)) {
			attest_cache_clear(slot);
			slot->rec = r; /* moved, as st */
			memset(&r, 0, sizeof(r));
			rp = &slot->rec;
			slot->st = st; /* moved: the doc's arena is on the heap, the
					* policy's pointers stay valid */
			memset(&st, 0, sizeof(st));
			snprintf(slot->ns, sizeof(slot->ns), "%s", ns);
			slot->generation = gen;
			slot->used = 1;
			sp = &slot->st;
		}
	}
	const struct veil_policy *p = &sp->policy;
	const struct veil_policy_service *svc = NULL;
	for (size_t i = 0; i < p->service_count; i++)
		if (!strcmp(p->services[i].name, svc_name))
			svc = &p->services[i];
	if (!svc) {
		route_fail(c, 404, ns, "no service %s in policy %s", svc_name, ns);
		goto out;
	}
	if (!platform_trusted && !in_list(svc->platforms, svc->platform_count, cl.platform_key)) {
		route_fail(
		    c, 403, ns,
		    "platform %.16s... is not trusted for %s (veil-cas --trust-platform, or the "
		    "service's platforms with veil-cas --allow-policy-platforms)",
		    cl.platform_key, config_id);
		goto out;
	}
	/* 3. and 4. tolerance (simulation evidence is always debug), the
	 * measurement, the TCB status and advisories: the claims the policy
	 * names (src/policy/decide.c) */
	char decision[600];
	if (veil_attest_decide(p, svc, &cl, config_id, decision, sizeof(decision))) {
		route_fail(c, 403, ns, "%s", decision);
		goto out;
	}
	/* 5. the protected files are the measured ones */
	if (svc->file_set_root && (!root || strcmp(root, svc->file_set_root))) {
		char which[300];
		name_changed_file(svc, sent_files, which, sizeof(which));
		route_fail(c, 403, ns, "file-set root %.16s... does not match policy %s%s",
			   root ? root : "(none)", config_id, which);
		goto out;
	}
	/* 5b. the whole image is the measured one (its record's SHA-256; veil-run
	 * checks the image against the record before the program starts) */
	if (svc->image_root && (!q.image_root || strcmp(q.image_root, svc->image_root))) {
		route_fail(c, 403, ns,
			   "image_root %.16s... does not match policy %s (the image is not the one "
			   "measured by 'veil apply')",
			   q.image_root ? q.image_root : "(none)", config_id);
		goto out;
	}
	/* 6. imported secrets, each with its exporter's consent as of now (a
	 * policy with imports is never the cached entry: rp is this request's);
	 * the key process opens their values */
	veil_buf_init(&imports, 0);
	int status = consent_import_all(c->t, ns, rp->owner, p, has_imports(p) ? &imports : NULL,
					msg, sizeof(msg));
	if (status) {
		route_fail(c, status == 500 ? 500 : 403, ns, "cannot provision %s: %s", config_id,
			   msg);
		goto out;
	}
	/* 7. the key process renders the configuration and seals it to this
	 * connection's client key (src/cas/seal.c): only the runtime that
	 * attested can read it, and the plaintext never comes here */
	int seal_status = cas_seal_target(c->req, evidence, &to, msg, sizeof(msg));
	if (seal_status) {
		route_fail(c, seal_status, ns, "cannot release the configuration of %s: %s",
			   config_id, msg);
		goto out;
	}
	if (cas_kp_render(rp, svc_name, svc->code_key_id ? rp->owner : NULL,
			  has_imports(p) ? (const uint8_t *)imports.data : NULL, imports.size,
			  config_id, &to, &sealed, &sealed_size, msg, sizeof(msg))) {
		route_fail(c, 500, ns, "cannot render the configuration of %s: %s", config_id,
			   msg[0] ? msg : "out of memory");
		goto out;
	}
	/* released, not started: veil-run still checks its runtime files and
	 * pins its folders, and reports a refusal (start-refused) */
	char detail[300];
	snprintf(detail, sizeof(detail),
		 "%s: configuration released to an attested runtime (measurement %.16s platform "
		 "%.16s)",
		 svc_name, cl.measurement, cl.platform_key);
	route_audit(c, "release", ns, 200, detail);
	release_remember(c->identity, config_id);
	route_reply(c, 200, "application/json", sealed, sealed_size);
out:
	free(sealed);
	veil_diags_free(&d);
	veil_buf_free(&imports);
	veil_attest_request_free(&q);
	stored_policy_free(&st);
	veil_record_free(&r);
}
