/* Evidence verifications per second (bench/evidence.sh): the verifier the
 * CAS runs (veil_evidence_verify_opts) on one piece of evidence in a loop,
 * one thread, the Intel collateral loaded once before the loop (as the CAS
 * caches it) and evaluated at every verification.
 *
 *   veil-evidence-bench EVIDENCE_JSON AT SECONDS [COLLATERAL_DIR]
 *
 * AT: seconds since the epoch, the time certificates and collateral are
 * checked at. The report data is not compared (recorded evidence). Prints
 * one line, key=value pairs:
 *   platform=tdx verifications=3120 seconds=2.000 rate=1560.0/s us_per_verification=641.0
 *     tcb_status=up-to-date
 * Exit 1 if a verification fails (the reason on stderr), 2 for bad arguments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "veil/collateral.h"
#include "veil/common.h"
#include "veil/evidence.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int verify_once(const char *ev, size_t n, const struct veil_evidence_opts *o,
		       struct veil_claims *claims)
{
	static const uint8_t unused[VEIL_SHA256_SIZE];
	struct veil_diags d;
	veil_diags_init(&d);
	int rc = veil_evidence_verify_opts(ev, n, unused, o, claims, &d);
	if (rc)
		veil_diags_print(&d, stderr);
	veil_diags_free(&d);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fprintf(stderr,
			"usage: veil-evidence-bench EVIDENCE_JSON AT SECONDS [COLLATERAL_DIR]\n");
		return 2;
	}
	char *end = NULL;
	errno = 0;
	long long at = strtoll(argv[2], &end, 10);
	double seconds = strtod(argv[3], NULL);
	if (errno || !end || *end || at <= 0 || seconds <= 0 || seconds > 600) {
		fprintf(stderr, "error: AT must be seconds since the epoch, SECONDS 0 to 600\n");
		return 2;
	}
	struct veil_diags d;
	veil_diags_init(&d);
	char *ev = NULL;
	size_t n = 0;
	int rc = veil_read_file(argv[1], 1024 * 1024, &ev, &n, &d);
	veil_diags_print(&d, stderr);
	veil_diags_free(&d);
	if (rc)
		return 1;
	struct veil_collateral *col = NULL;
	char why[512] = "";
	if (argc == 5 && veil_collateral_load_dir(argv[4], &col, why, sizeof(why))) {
		fprintf(stderr, "error: %s: %s\n", argv[4], why);
		free(ev);
		return 1;
	}
	struct veil_evidence_opts o = {.collateral = col, .at = at, .no_binding = 1};
	struct veil_claims claims;
	rc = verify_once(ev, n, &o, &claims); /* warm up, and fail early */
	unsigned long count = 0;
	double start = now(), elapsed = 0;
	while (!rc && elapsed < seconds) {
		/* the clock is read every 16 verifications (each takes ~0.1-1 ms) */
		for (int i = 0; i < 16 && !rc; i++, count++)
			rc = verify_once(ev, n, &o, &claims);
		elapsed = now() - start;
	}
	if (!rc)
		printf("platform=%s verifications=%lu seconds=%.3f rate=%.1f/s "
		       "us_per_verification=%.1f tcb_status=%s\n",
		       claims.platform, count, elapsed, (double)count / elapsed,
		       elapsed * 1e6 / (double)count, claims.tcb_status);
	veil_collateral_free(col);
	free(ev);
	return rc ? 1 : 0;
}
