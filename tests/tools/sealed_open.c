/* sealed_open KEY_PEM REQUEST_JSON < ANSWER: opens a /v1/attest answer as
 * captured (include/veil/sealed.h) with the private key in KEY_PEM, for the
 * config id and evidence of the request body in REQUEST_JSON, and prints the
 * configuration. Exits 0 only when it opens; 1 and a reason otherwise. For
 * the e2e tests (tests/e2e/attest.sh, attack_cas_robust.sh); not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "veil/common.h"
#include "veil/sealed.h"
#include "veil/secrets.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fputs("usage: sealed_open KEY_PEM REQUEST_JSON < ANSWER\n", stderr);
		return 2;
	}
	FILE *f = fopen(argv[1], "r");
	EVP_PKEY *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	json_t *req = json_load_file(argv[2], 0, NULL);
	const char *config_id = NULL, *evidence = NULL;
	struct veil_buf answer;
	veil_buf_init(&answer, VEIL_SEALED_ANSWER_MAX);
	char *config = NULL;
	size_t size = 0;
	int rc = 1;
	/* every path frees what it holds: under ASan a leak is exit code 23,
	 * which the tests would read as something other than a refusal */
	if (!key || !req ||
	    json_unpack(req, "{s:s, s:s}", "config_id", &config_id, "evidence", &evidence)) {
		fputs("sealed_open: cannot read the key or the request\n", stderr);
		goto out;
	}
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		if (veil_buf_append(&answer, chunk, n)) {
			fputs("sealed_open: answer too large\n", stderr);
			goto out;
		}
	uint8_t ev[VEIL_SHA256_SIZE];
	if (veil_sha256(evidence, strlen(evidence), ev) ||
	    veil_open_config(key, config_id, ev, answer.data ? answer.data : "", answer.size,
			     &config, &size)) {
		fputs("sealed_open: the answer does not open with this key\n", stderr);
		goto out;
	}
	fwrite(config, 1, size, stdout);
	putchar('\n');
	veil_secure_free(config, size + 1);
	rc = 0;
out:
	veil_buf_free(&answer);
	json_decref(req);
	EVP_PKEY_free(key);
	return rc;
}
