/* Memory for secrets (src/common/secmem.c): mlock'd where possible, excluded
 * from core dumps (MADV_DONTDUMP), wiped with OPENSSL_cleanse before it is
 * released. A block is owned by whoever allocated it and freed with
 * veil_secure_free (strings: veil_secure_strfree); freeing a pointer that
 * did not come from veil_secure_alloc, or with a size larger than it was
 * allocated with, aborts. */
#ifndef VEIL_SECMEM_H
#define VEIL_SECMEM_H

#include <stddef.h>

/* size bytes, zeroed; NULL when out of memory */
void *veil_secure_alloc(size_t size);
/* size: as allocated, or 0 (the block knows its size); p may be NULL */
void veil_secure_free(void *p, size_t size);
/* a copy of s in secure memory; NULL for NULL or out of memory */
char *veil_secure_strdup(const char *s);
void veil_secure_strfree(char *s);

#endif
