/* veil-run: the runtime: attests to the CAS, receives its configuration, verifies protected files
 * and execs the protected command. Not implemented yet: this binary exists so the build, the layout
 * and (for veil-run) the runtime measurement are in place. It refuses to run. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("Usage: veil-run [--help]\n\nveil-run is the runtime: attests to the CAS, "
		       "receives its configuration, verifies protected files and execs the "
		       "protected command.\n"
		       "It is not implemented yet; see the project's open issues.\n");
		return 0;
	}
	fprintf(stderr, "veil-run: not implemented yet; see the project's open issues\n");
	return 2;
}
