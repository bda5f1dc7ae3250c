#ifndef VEIL_CLI_H
#define VEIL_CLI_H

#include "veil/common.h"

#define VEIL_VERSION "0.1.0"

int check_main(int argc, char **argv);
int apply_main(int argc, char **argv);
int policy_main(int argc, char **argv);
int cas_main(int argc, char **argv);
int audit_main(int argc, char **argv);

/* Exit codes: 0 success, 1 the input was rejected, 2 usage error. */
enum { EXIT_REJECTED = 1, EXIT_USAGE = 2 };

int cli_report(struct veil_diags *d, int rc);

/* What a client tolerates when it attests a CAS (SCONE's flags). */
struct tolerance {
	int C, G, S, debug, ignore_signer, trust_any;
	const char *mrenclave;
};
int cli_tolerance_parse(const char *flags, struct tolerance *t, struct veil_diags *d);
/* Attests the CAS at url and pins its key (cas.c). */
int cli_attest(const char *url, const struct tolerance *t, struct veil_diags *d);

#endif
