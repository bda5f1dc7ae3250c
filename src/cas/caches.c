/* The per-thread caches of the routes: GET /v1/policies/NAME's answers (the
 * read cache) and /v1/attest's opened policies, both valid until the next
 * committed change anywhere (the generation; routes.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"

/* This process's counter (commit.c) plus, on a shared store, the store's
 * (veil_generation, moved by every replica's changes in their
 * transactions): both only grow, so their sum moves when either does. The
 * shared one costs a query per cached request (a primary-key read of one
 * row), still far less than opening the policy again. */
int cas_cache_generation(struct cas_thread *t, unsigned long long *out)
{
	unsigned long long local = __atomic_load_n(&t->cas->generation, __ATOMIC_ACQUIRE);
	unsigned long long shared = 0;
	struct veil_store *st = t->store;
	if (st->ops->generation && st->ops->generation(st, &shared))
		return VEIL_EIO;
	*out = local + shared;
	return 0;
}

/* ---- the read cache: decrypting and parsing a policy once per change ---- */

struct read_cache_entry *read_cache_slot(struct cas_thread *t, const char *ns)
{
	if (!t->cache)
		return NULL;
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = ns; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return &t->cache[h % READ_CACHE_SLOTS];
}

static void read_cache_clear(struct read_cache_entry *e)
{
	free(e->owner);
	for (size_t i = 0; i < e->read_count; i++)
		free(e->read[i]);
	free(e->read);
	veil_wipe_free(e->response); /* a policy's YAML: explicit values */
	memset(e, 0, sizeof(*e));
}

/* ---- the attest cache (routes.h) ---- */

void attest_cache_clear(struct attest_cache_entry *e)
{
	if (e->used)
		stored_policy_free(&e->st);
	veil_record_free(&e->rec);
	memset(e, 0, sizeof(*e));
}

void cas_cache_free(struct cas_thread *t)
{
	for (size_t i = 0; t->cache && i < READ_CACHE_SLOTS; i++)
		read_cache_clear(&t->cache[i]);
	free(t->cache);
	t->cache = NULL;
	for (size_t i = 0; t->attest_cache && i < ATTEST_CACHE_SLOTS; i++)
		attest_cache_clear(&t->attest_cache[i]);
	free(t->attest_cache);
	t->attest_cache = NULL;
}

/* The slot for ns. After any committed change every entry of this thread is
 * wiped at once, not only the one looked up: a deleted or updated
 * namespace's secrets do not linger in slots nobody asks for again. */
struct attest_cache_entry *attest_cache_slot(struct cas_thread *t, const char *ns,
					     unsigned long long gen)
{
	if (t->attest_cache && t->attest_gen != gen)
		for (size_t i = 0; i < ATTEST_CACHE_SLOTS; i++)
			attest_cache_clear(&t->attest_cache[i]);
	t->attest_gen = gen;
	if (!t->attest_cache &&
	    !(t->attest_cache = calloc(ATTEST_CACHE_SLOTS, sizeof(*t->attest_cache))))
		return NULL;
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = ns; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return &t->attest_cache[h % ATTEST_CACHE_SLOTS];
}
void read_cache_fill(struct read_cache_entry *e, const char *ns, unsigned long long gen,
		     const char *owner, const struct veil_policy *p, const char *response,
		     size_t size)
{
	read_cache_clear(e);
	if (strlen(ns) >= sizeof(e->ns))
		return;
	e->read = calloc(p->read_count + 1, sizeof(char *));
	e->owner = strdup(owner);
	e->response = malloc(size);
	if (!e->read || !e->owner || !e->response) {
		read_cache_clear(e);
		return;
	}
	for (size_t i = 0; i < p->read_count; i++)
		if (!(e->read[e->read_count++] = strdup(p->read[i]))) {
			read_cache_clear(e);
			return;
		}
	memcpy(e->response, response, size);
	e->response_size = size;
	snprintf(e->ns, sizeof(e->ns), "%s", ns);
	e->generation = gen;
}
