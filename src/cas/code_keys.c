/* /v1/code-keys: the key an image build encrypts code with (routes.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "routes.h"
#include "veil/codecrypt.h"

/* POST /v1/code-keys {"key_id"?: HEX}: the code key of that id (a new
 * random id without one) for this client, {"key_id", "key"}. The key is
 * derived, not stored (veil_vault_code_key): the same id and client give
 * the same key, so a rebuild is reproducible, and a runtime gets it after
 * attestation from a policy whose creator is that client. It is the one
 * secret the CAS gives to a client: the owner's builder holds the code in
 * plaintext anyway (docs/security.md). */
void route_code_key(struct route_ctx *c, const char *name)
{
	char id[VEIL_CODE_KEY_ID_HEX + 1];
	uint8_t raw[VEIL_CODE_KEY_ID_HEX / 2], key[VEIL_CODE_KEY_SIZE];
	char key_hex[2 * VEIL_CODE_KEY_SIZE + 1];
	if (!c->identity) {
		route_fail(c, 403, NULL, "a client certificate is required");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t n = evbuffer_get_length(in);
	const char *given = NULL;
	json_error_t je;
	json_t *j = n ? json_loadb((const char *)evbuffer_pullup(in, -1), n, 0, &je) : NULL;
	if (n && (!json_is_object(j) || json_unpack(j, "{s?s !}", "key_id", &given) ||
		  (given && !veil_code_key_id_valid(given)))) {
		json_decref(j);
		route_fail(c, 400, NULL,
			   "expected {} or {\"key_id\": \"%d lower-case hex digits\"}",
			   VEIL_CODE_KEY_ID_HEX);
		return;
	}
	if (given) {
		snprintf(id, sizeof(id), "%s", given);
	} else if (RAND_bytes(raw, sizeof(raw)) != 1) {
		json_decref(j);
		route_fail(c, 500, NULL, "no randomness");
		return;
	} else {
		veil_hex(raw, sizeof(raw), id);
	}
	json_decref(j);
	if (veil_vault_code_key(c->t->cas->vault, id, c->identity, key)) {
		route_fail(c, 500, NULL, "cannot derive the code key");
		return;
	}
	veil_hex(key, sizeof(key), key_hex);
	OPENSSL_cleanse(key, sizeof(key));
	char *body = NULL;
	if (asprintf(&body, "{\"key_id\":\"%s\",\"key\":\"%s\"}\n", id, key_hex) < 0)
		body = NULL;
	OPENSSL_cleanse(key_hex, sizeof(key_hex));
	if (!body) {
		route_fail(c, 500, NULL, "out of memory");
		return;
	}
	char detail[120];
	snprintf(detail, sizeof(detail), "code key %s given to its owner for an image build", id);
	route_audit(c, "code-key", NULL, 200, detail);
	route_reply_secret(c, 200, body, strlen(body));
}
