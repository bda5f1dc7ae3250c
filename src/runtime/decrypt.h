/* veil-run's encrypted code files (include/veil/codecrypt.h): after
 * attestation the CAS's configuration carries {"decrypt": {"key": HEX,
 * "files": [PATH...]}}; each file is read as veil-run verified it (the pinned
 * copy, else in place) and decrypted into secure memory, to be placed at its
 * path as an injection file (memory only, never a disk). */
#ifndef VEIL_RUNTIME_DECRYPT_H
#define VEIL_RUNTIME_DECRYPT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "veil/common.h"

struct decrypted {
	const char *path; /* the configuration's */
	uint8_t *data;    /* secure memory, NUL-terminated */
	size_t size;
};

/* dec: the configuration's "decrypt" object (NULL: nothing to do, *n = 0).
 * 0, or VEIL_EINVAL with the reason in why (naming the file, never its content). */
int decrypt_code(json_t *dec, struct decrypted **out, size_t *n, char *why,
		 size_t cap) VEIL_MUST_CHECK;
void decrypted_free(struct decrypted *d, size_t n);

#endif
