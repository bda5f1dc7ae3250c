/* Memory for secrets (include/veil/secmem.h): locked, left out of core dumps
 * and wiped before it is released. Every secret in veil (the CAS's secret
 * sets, data keys, code keys, rendered configurations, registry passwords)
 * lives in it. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "veil/secmem.h"

/* Each allocation is preceded by this header so that strings can be freed
 * without their size and a stray pointer is caught instead of unmapped. */
struct sec_hdr {
	uint64_t magic;
	size_t map_size; /* its own mapping (large); 0: a pool block or malloc'd */
	size_t user_size;
	size_t pool_class; /* 1 + the pool class of a pool block; 0: not a pool block */
};
_Static_assert(sizeof(struct sec_hdr) % 16 == 0, "keeps allocations 16-byte aligned");
#define SEC_MAGIC 0x7665696c2d736563ULL

/* Under AddressSanitizer, allocations come from malloc so that ASan sees
 * overflows of secret buffers. Otherwise small allocations (header included,
 * up to 4 KiB) come from pools of blocks in 64 KiB mappings that are locked
 * and excluded from core dumps, and larger ones get a mapping of their own.
 * The pools never give memory back: a mapping per allocation cost a munmap,
 * and with it a TLB shootdown on every CPU, per secret string, which was a
 * sixth of the CAS's time per attestation. Blocks are wiped when freed. */
#if defined(__SANITIZE_ADDRESS__)
#define SEC_USE_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEC_USE_MALLOC 1
#endif
#endif
#ifndef SEC_USE_MALLOC
#define SEC_USE_MALLOC 0
#endif

#define SEC_POOL_MIN_SHIFT 6 /* 64-byte blocks */
#define SEC_POOL_CLASSES 7   /* ... up to 4096 */
#define SEC_POOL_CHUNK ((size_t)64 << 10)

struct sec_free_block {
	struct sec_free_block *next;
};

static pthread_mutex_t sec_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sec_free_block *sec_pool[SEC_POOL_CLASSES];

static void *sec_map(size_t size)
{
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	/* Best effort: RLIMIT_MEMLOCK may be small; the memory is still wiped
	 * on free and left out of core dumps. */
	(void)mlock(m, size);
	(void)madvise(m, size, MADV_DONTDUMP);
	return m;
}

/* A block of class k (64 << k bytes), zeroed; called with the lock held. */
static void *sec_pool_take(unsigned k)
{
	size_t bs = (size_t)1 << (SEC_POOL_MIN_SHIFT + k);
	if (!sec_pool[k]) {
		uint8_t *m = sec_map(SEC_POOL_CHUNK);
		if (!m)
			return NULL;
		for (size_t off = SEC_POOL_CHUNK; off >= bs; off -= bs) {
			struct sec_free_block *f = (struct sec_free_block *)(m + off - bs);
			f->next = sec_pool[k];
			sec_pool[k] = f;
		}
	}
	struct sec_free_block *f = sec_pool[k];
	sec_pool[k] = f->next;
	f->next = NULL; /* the rest of a free block is already zero */
	return f;
}

void *veil_secure_alloc(size_t size)
{
	const size_t hdr = sizeof(struct sec_hdr);
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	struct sec_hdr *h = NULL;
	if (size > SIZE_MAX - hdr - page)
		return NULL;
	if (SEC_USE_MALLOC) {
		h = calloc(1, hdr + size);
		if (!h)
			return NULL;
	} else if (hdr + size <= (size_t)1 << (SEC_POOL_MIN_SHIFT + SEC_POOL_CLASSES - 1)) {
		unsigned k = 0;
		while (((size_t)1 << (SEC_POOL_MIN_SHIFT + k)) < hdr + size)
			k++;
		pthread_mutex_lock(&sec_pool_lock);
		h = sec_pool_take(k);
		pthread_mutex_unlock(&sec_pool_lock);
		if (!h)
			return NULL;
		h->pool_class = k + 1;
	} else {
		size_t map = (hdr + size + page - 1) / page * page;
		if (!(h = sec_map(map)))
			return NULL;
		h->map_size = map;
	}
	h->magic = SEC_MAGIC;
	h->user_size = size;
	return (uint8_t *)h + hdr;
}

void veil_secure_free(void *p, size_t size)
{
	if (!p)
		return;
	struct sec_hdr *h = (struct sec_hdr *)((uint8_t *)p - sizeof(struct sec_hdr));
	/* Not ours, or freed with a size it never had: memory corruption. */
	if (h->magic != SEC_MAGIC || size > h->user_size || h->pool_class > SEC_POOL_CLASSES)
		abort();
	if (h->pool_class) {
		unsigned k = (unsigned)h->pool_class - 1;
		OPENSSL_cleanse(h, (size_t)1 << (SEC_POOL_MIN_SHIFT + k));
		struct sec_free_block *f = (struct sec_free_block *)h;
		pthread_mutex_lock(&sec_pool_lock);
		f->next = sec_pool[k];
		sec_pool[k] = f;
		pthread_mutex_unlock(&sec_pool_lock);
		return;
	}
	if (h->map_size == 0) {
		OPENSSL_cleanse(h, sizeof(*h) + h->user_size);
		free(h);
		return;
	}
	size_t map = h->map_size;
	OPENSSL_cleanse(h, map);
	munmap(h, map);
}

char *veil_secure_strdup(const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *p = veil_secure_alloc(n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n + 1);
	return p;
}

void veil_secure_strfree(char *s)
{
	veil_secure_free(s, 0);
}
