/* veil-cas: the Configuration and Attestation Service.
 * Not implemented yet: this binary exists so the build, the layout and (for
 * veil-run) the runtime measurement are in place. It refuses to run. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("Usage: veil-cas [--help]\n\nveil-cas is the Configuration and Attestation "
		       "Service.\n"
		       "It is not implemented yet; see the project's open issues.\n");
		return 0;
	}
	fprintf(stderr, "veil-cas: not implemented yet; see the project's open issues\n");
	return 2;
}
