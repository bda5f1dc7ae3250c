/* What a probe or a client asks of the CAS itself: /healthz, /readyz,
 * /metrics (Prometheus) and /v1/cas/identity (routes.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "routes.h"
#include "veil/secure.h"

void route_healthz(struct route_ctx *c, const char *name)
{
	route_reply(c, 200, "text/plain", "ok\n", 3);
}

/* 200 only when a restart would succeed and requests can be served: the
 * store answers, the master key wraps and unwraps, and master.key is still
 * in the data folder (without it the next start is refused). */
void route_readyz(struct route_ctx *c, const char *name)
{
	struct cas *cas = c->t->cas;
	long long n;
	uint8_t *wrapped = NULL, *sealed = NULL, *opened = NULL;
	size_t wrapped_size = 0, sealed_size = 0, opened_size = 0;
	/* a payload frame (payload.h) with the policy text "readyz", no secrets */
	static const uint8_t probe[] = {'V', 'P', 'A', 'Y', 1,   0,   0,   0, 6, 0, 0,
					0,   'r', 'e', 'a', 'd', 'y', 'z', 0, 0, 0, 0};
	char *keyfile = veil_path_join(cas->data_dir, "master.key");
	const char *reason = NULL;
	if (!keyfile)
		reason = "out of memory";
	else if (c->t->store->ops->count(c->t->store, &n))
		reason = "the store does not answer";
	else if (access(keyfile, R_OK))
		reason = "master.key is missing from the data folder (a restart would refuse to "
			 "start)";
	else if (veil_vault_new_key(cas->vault, "readyz", &wrapped, &wrapped_size) ||
		 veil_vault_seal(cas->vault, "readyz", wrapped, wrapped_size, probe, sizeof(probe),
				 &sealed, &sealed_size) ||
		 cas_kp_open_policy(cas->vault,
				    &(struct veil_record){.namespace_ = "readyz",
							  .wrapped_key = wrapped,
							  .wrapped_size = wrapped_size,
							  .blob = sealed,
							  .blob_size = sealed_size},
				    &opened, &opened_size) ||
		 /* not secret: the probe's fixed text */
		 opened_size != 6 || memcmp(opened, "readyz", 6))
		reason = "the master key does not wrap and unwrap a data key";
	if (reason) {
		snprintf(c->error, sizeof(c->error), "not ready: %s", reason);
		route_reply_json(c, 503, json_pack("{s:s}", "error", c->error));
	} else {
		route_reply(c, 200, "text/plain", "ok\n", 3);
	}
	if (opened)
		veil_secure_free(opened, opened_size);
	free(sealed);
	free(wrapped);
	free(keyfile);
}

void route_metrics(struct route_ctx *c, const char *name)
{
	char *text = cas_metrics_render(c->t->cas, c->t->store);
	if (text)
		route_reply(c, 200, "text/plain; version=0.0.4", text, strlen(text));
	else
		route_fail(c, 500, NULL, "out of memory");
	free(text);
}

void route_identity(struct route_ctx *c, const char *name)
{
	const char *j = c->t->cas->identity_json;
	route_reply(c, 200, "application/json", j, strlen(j));
}
