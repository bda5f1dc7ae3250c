/* veil-run's check of the runtime files the policy lists (issue 9, H1): the
 * program, its loader and libraries, Python's start-up files, by content;
 * folders by listing; paths that must stay absent. Pinned (a private mount
 * namespace), each file is copied into a detached tmpfs while hashed and the
 * copy mounted over its path, so the loader and Python read exactly what was
 * hashed.
 *
 * Copying and hashing is most of a start's time (the interpreter alone is
 * megabytes), so it can begin before attestation: a prefetch list (paths
 * only, one per line; `veil apply` writes it next to the measurement record)
 * names the files to copy while veil-run makes its key, asks veil-las and
 * attests. The list is a hint and is trusted for nothing: after attestation
 * every file the policy lists is compared with the policy's hash, a file the
 * list missed is copied then, and a copy the policy does not list is never
 * mounted. */
#ifndef VEIL_RUNTIME_VERIFY_H
#define VEIL_RUNTIME_VERIFY_H

#include <stddef.h>

#include <jansson.h>

#include "pin.h"

struct runtime_copies;

/* Starts copying the files the prefetch list at list_path names into pf, on
 * background threads. NULL when there is no list (or it cannot be read, or
 * holds nothing usable): verify_runtime() then copies everything itself. */
struct runtime_copies *runtime_prefetch(struct pinned_files *pf,
					const char *list_path) VEIL_MUST_CHECK;

/* Checks the policy's runtime files (cfg: the CAS's configuration) against
 * what is here now. With pf each file is the copy in pf (prefetched ones
 * reused), mounted over its path, and *prog_fd is the program's copy;
 * without pf each is hashed in place and *prog_fd is the descriptor hashed.
 * *count: files checked. 0, or a negative veil_err with the first difference named in why.
 * Waits for and frees pre (may be NULL). */
int verify_runtime(json_t *cfg, struct pinned_files *pf, struct runtime_copies *pre, int *prog_fd,
		   size_t *count, char *why, size_t cap) VEIL_MUST_CHECK;

#endif
