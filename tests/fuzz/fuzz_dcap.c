/* libFuzzer: the Intel DCAP quote parser and verifier (src/evidence/dcap.c,
 * dcap_verify.c): any bytes are parsed by their declared lengths, and what
 * parses goes through the whole verification (PEM chain, X.509 path, the SGX
 * extension's DER, both signatures) at a fixed time. */
#include <stdint.h>
#include <string.h>

#include "veil/dcap.h"
#include "fuzzer.h"

/* 2026-06-01, inside the validity of every seed quote's PCK chain */
#define FUZZ_AT ((time_t)1780272000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil_dcap_quote q;
	struct veil_dcap_pck pck;
	char why[256];
	if (veil_dcap_parse(data, size, &q, why, sizeof(why)) == 0) {
		/* what a parsed quote borrows lies inside the input */
		if (q.quote_size > size || q.signed_size > q.quote_size)
			__builtin_trap();
		if (veil_dcap_verify(&q, FUZZ_AT, &pck, why, sizeof(why)) == 0 &&
		    pck.serial_size > sizeof(pck.serial))
			__builtin_trap();
	}
	return 0;
}
