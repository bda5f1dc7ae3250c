/* Memory for secrets: mlock'd where possible, excluded from core dumps
 * (MADV_DONTDUMP), wiped with OPENSSL_cleanse before it is released
 * (src/common/secure.c). veil/secrets.h declares the same functions for its
 * older users.
 *
 * Ownership: what veil_secure_alloc and veil_secure_strdup return belongs to
 * the caller, who gives it back with veil_secure_free (size: at most the
 * size asked for, 0 for "all of it") or veil_secure_strfree. */
#ifndef VEIL_SECURE_H
#define VEIL_SECURE_H

#include <stddef.h>

#include "veil/common.h"

void *veil_secure_alloc(size_t size) VEIL_MUST_CHECK;
void veil_secure_free(void *p, size_t size);
char *veil_secure_strdup(const char *s) VEIL_MUST_CHECK;
void veil_secure_strfree(char *s);

#endif
