/* libFuzzer: the PKCS#11 master-key provider record (master.key of a
 * token-backed CAS) and the --master-key pkcs11: URI (src/cas/vault.c).
 * The whole input is parsed as both. An accepted URI names a token of at
 * most 32 bytes and an object of at most 100, neither with a newline (they
 * go into the record line by line); an accepted record formats again to a
 * text that parses to the same record (one encoding: nothing is guessed
 * at). */
#include <stdlib.h>
#include <string.h>

#include "veil/common.h"

#include "../../src/cas/vault_record.h"
#include "fuzzer.h"

static void check_label(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (!n || n > max || strchr(s, '\n'))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	struct p11_record r, again;
	struct veil_diags d;
	memcpy(text, data, size);
	text[size] = 0;
	memset(&r, 0, sizeof(r));
	veil_diags_init(&d);
	if (!cas_mk_parse_uri(text, &r, &d)) {
		check_label(r.token, 32);
		check_label(r.object, 100);
		if (strchr(r.module, '\n'))
			__builtin_trap();
	} else if (!d.count) {
		__builtin_trap(); /* a refusal says why */
	}
	veil_diags_free(&d);
	memcpy(text, data, size);
	if (!cas_mk_record_parse(text, size, &r)) {
		struct veil_buf b = {.max = RECORD_MAX * 2};
		if (cas_mk_record_format(&r, &b))
			__builtin_trap();
		if (cas_mk_record_parse(b.data, b.size, &again) ||
		    memcmp(&r, &again, sizeof(r))) /* not secret: a fuzzer's check */
			__builtin_trap();
		veil_buf_free(&b);
	}
	free(text);
	return 0;
}
