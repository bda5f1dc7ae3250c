/* A fake configfs-tsm tree for tests (tests/unit/test_collect.c,
 * tests/e2e/collect.sh through fake-tsm).
 *
 * Real configfs makes an entry's attribute files at mkdir and produces the
 * report when outblob is read; a plain folder does neither. This helper
 * watches ROOT/report/ and plays the kernel's part for every new entry:
 *   1. on a new folder: generation ("0\n" or as set), an empty inblob, then provider
 *      (last: once provider is there, so is the rest);
 *   2. once inblob has been written: auxblob (if configured), generation
 *      (the first plus bump), then outblob (last).
 * Each file is written under ROOT/staging/ and renamed into place, so a
 * reader never sees half of one. veil_collect (built with VEIL_TEST_HOOKS)
 * waits up to ~1 s for these files to appear. */
#ifndef VEIL_TEST_FAKE_TSM_H
#define VEIL_TEST_FAKE_TSM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct fake_tsm {
	/* set by the caller */
	const char *root;     /* has report/; staging/ is made beside it */
	const char *provider; /* "tdx_guest", "sev_guest", anything */
	const uint8_t *outblob;
	size_t outblob_size;
	const uint8_t *auxblob; /* NULL: no auxblob file */
	size_t auxblob_size;
	const char *generation; /* a new entry's generation as text; NULL: "0\n" */
	unsigned bump;       /* added to it when inblob is written: 1, or 2 for "another writer" */
	unsigned bump_times; /* entries that get `bump`; later ones get 1. 0: all */
	atomic_int stop;     /* fake_tsm_serve returns once this is non-zero */
	/* filled in by the helper */
	uint8_t inblob[64]; /* what the last entry's inblob held */
	size_t inblob_size;
	atomic_uint entries; /* entries seen */
};

/* Serves until t->stop; 0, or -1 if ROOT/report cannot be read. */
int fake_tsm_serve(struct fake_tsm *t);

#endif
