/* Heap blocks wiped when freed (common.h): the allocator veil gives the
 * libraries whose buffers may hold a secret value or a rendered
 * configuration, jansson (json_set_alloc_funcs) and libevent
 * (event_set_mem_functions). The whole usable size is wiped, not the size
 * asked for: a block glibc rounded up may hold bytes of an earlier use. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "veil/common.h"

void *veil_wipe_malloc(size_t size)
{
	return malloc(size);
}

void veil_wipe_block(void *p)
{
	if (p)
		OPENSSL_cleanse(p, malloc_usable_size(p));
}

void veil_wipe_free(void *p)
{
	veil_wipe_block(p);
	free(p);
}

/* realloc() may move the block and free the old one unwiped: this one
 * always takes a new block when it grows, copies, and wipes the old. A
 * block that is large enough already is kept as it is. */
void *veil_wipe_realloc(void *p, size_t size)
{
	if (!p)
		return malloc(size);
	if (!size) { /* as glibc's realloc(p, 0): freed */
		veil_wipe_free(p);
		return NULL;
	}
	size_t have = malloc_usable_size(p);
	if (size <= have)
		return p;
	void *n = malloc(size);
	if (!n)
		return NULL; /* p stays the caller's, as with realloc */
	memcpy(n, p, have);
	veil_wipe_free(p);
	return n;
}
