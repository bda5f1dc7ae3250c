/* veil-run's whole-image check on its own, for tests and bench/image_verify.sh:
 *   veil-image-verify ROOT [RECORD [THREADS]]
 * checks the tree under ROOT against RECORD (default the image's
 * /etc/veil/image-measurement) with THREADS workers (0: as veil-run, one per
 * core up to 16). Prints "ok ENTRIES BYTES IMAGE_ROOT" and exits 0, or the
 * difference and exits 1; no record: "no record", exit 2. */
#include <stdio.h>
#include <stdlib.h>

#include "image_verify.h"
#include "veil/image_record.h"

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: veil-image-verify ROOT [RECORD [THREADS]]\n");
		return 64;
	}
	struct image_check *c = NULL;
	char root[2 * VEIL_SHA256_SIZE + 1], why[1200];
	unsigned threads = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 0;
	if (image_verify_start(argv[1], argc > 2 ? argv[2] : VEIL_IMAGE_RECORD_PATH, threads, &c,
			       root, why, sizeof(why))) {
		fprintf(stderr, "refused: %s\n", why);
		return 1;
	}
	if (!c) {
		puts("no record");
		return 2;
	}
	size_t n = 0;
	uint64_t bytes = 0;
	if (image_verify_wait(c, &n, &bytes, why, sizeof(why))) {
		fprintf(stderr, "refused: %s\n", why);
		return 1;
	}
	printf("ok %zu %llu %s\n", n, (unsigned long long)bytes, root);
	return 0;
}
