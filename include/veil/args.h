/* Command-line helpers shared by the daemons (veil-cas, veil-las, veil-run):
 * one error prefix, one-line usage errors, strict integers.
 *
 * Every message a user sees starts with "error: " or "warning: "; a usage
 * error is that one line plus "See 'PROG --help'." and exit status 2. */
#ifndef VEIL_ARGS_H
#define VEIL_ARGS_H

#include <stdarg.h>

#include "veil/common.h"

/* VEIL_VERSION comes from meson's project version (never a literal here). */
#ifndef VEIL_VERSION
#error "VEIL_VERSION is set by meson.build"
#endif

/* Prints "error: <message>\nSee '<prog> --help'.\n" to stderr; returns 2 (the
 * exit status of a usage error). */
int veil_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int veil_usage_verror(const char *prog, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* After getopt_long (optstring starting with ':') returned '?' or ':': the
 * one-line message naming the flag ("-x" for a short one, even bundled in
 * "-xh"; "--name" for a long one). Returns 2. */
int veil_getopt_error(const char *prog, int c, int argc, char **argv, int optind_now);

/* "PROG VERSION\n" on stdout; returns 0. */
int veil_print_version(const char *prog);

/* s as a decimal integer in [min, max]: digits only (no sign, blanks, suffix
 * or overflow). 0, or VEIL_EINVAL with "FLAG: 'S' is not a number from MIN to
 * MAX" in d. */
int veil_parse_long(const char *flag, const char *s, long min, long max, long *out,
		    struct veil_diags *d) VEIL_MUST_CHECK;

#endif
