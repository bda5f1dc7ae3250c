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

#endif
