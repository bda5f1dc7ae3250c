#include <getopt.h>
#include <stdbool.h>
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

/* A word of bundled short options ("-xh") holding ch. */
static bool short_word_holds(const char *word, int ch)
{
	return word && word[0] == '-' && word[1] && word[1] != '-' && strchr(word + 1, ch);
}

int veil_getopt_error(const char *prog, int c, int argc, char **argv, int optind_now)
{
	/* getopt_long moves optind past a word only when it is used up: the
	 * offending word is argv[optind - 1], except for a short option in the
	 * middle of a bundle ("-xh"), whose word is still argv[optind] (and
	 * argv[optind - 1] is whatever came before, the value of --data). A
	 * short option is named by optopt: "-x", not the word holding it. */
	const char *word = optind_now > 0 && optind_now <= argc ? argv[optind_now - 1] : "?";
	const char *next = optind_now >= 0 && optind_now < argc ? argv[optind_now] : NULL;
	size_t n = strcspn(word, "=");
	bool is_short = optopt > 0 && optopt < 128 &&
			(short_word_holds(next, optopt) || short_word_holds(word, optopt));
	if (c == ':' && is_short)
		return veil_usage_error(prog, "-%c needs a value", optopt);
	if (c == ':')
		return veil_usage_error(prog, "%.*s needs a value", (int)n, word);
	if (is_short)
		return veil_usage_error(prog, "unknown flag -%c", optopt);
	if (optopt && !strncmp(word, "--", 2) && word[n] == '=')
		return veil_usage_error(prog, "%.*s takes no value", (int)n, word);
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
