#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "veil/args.h"

int veil_usage_verror(const char *prog, const char *fmt, va_list ap)
{
	fputs("error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nSee '%s --help'.\n", prog);
	return 2;
}

int veil_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = veil_usage_verror(prog, fmt, ap);
	va_end(ap);
	return rc;
}

int veil_getopt_error(const char *prog, int c, char **argv, int optind_now)
{
	/* getopt_long leaves the offending word just before optind; a short
	 * option bundled in a word ("-hx") is reported as that word */
	const char *word = optind_now > 0 ? argv[optind_now - 1] : "?";
	size_t n = strcspn(word, "=");
	if (c == ':')
		return veil_usage_error(prog, "%.*s needs a value", (int)n, word);
	return veil_usage_error(prog, "unknown flag %.*s", (int)n, word);
}

int veil_print_version(const char *prog)
{
	printf("%s %s\n", prog, VEIL_VERSION);
	return 0;
}

int veil_parse_long(const char *flag, const char *s, long min, long max, long *out,
		    struct veil_diags *d)
{
	long v = 0;
	size_t i = 0;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		int digit = s[i] - '0';
		/* v * 10 + digit <= max, without computing it: (max - digit) / 10
		 * rounded "7" under max 5 down to 0 and let it through */
		if (max < 0 || v > max / 10 || (v == max / 10 && digit > max % 10)) {
			i = 0; /* over max: refused below, never wrapped */
			break;
		}
		v = v * 10 + digit;
	}
	if (i == 0 || s[i] || v < min) {
		veil_diag(d, "%s: '%s' is not a number from %ld to %ld", flag, s, min, max);
		return VEIL_EINVAL;
	}
	*out = v;
	return 0;
}
