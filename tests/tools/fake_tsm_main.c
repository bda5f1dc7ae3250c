/* fake-tsm ROOT PROVIDER OUTBLOB [AUXBLOB]: serves a fake configfs-tsm tree
 * (fake_tsm.h) until SIGTERM or SIGINT, for the end-to-end tests. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_tsm.h"

static struct fake_tsm tsm = {.bump = 1};

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&tsm.stop, 1);
}

static uint8_t *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = f ? malloc(1 << 20) : NULL;
	*size = p ? fread(p, 1, 1 << 20, f) : 0;
	if (f)
		fclose(f);
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: fake-tsm ROOT PROVIDER OUTBLOB [AUXBLOB]\n");
		return 2;
	}
	tsm.root = argv[1];
	tsm.provider = argv[2];
	uint8_t *out = slurp(argv[3], &tsm.outblob_size), *aux = NULL;
	tsm.outblob = out;
	if (argc == 5) {
		aux = slurp(argv[4], &tsm.auxblob_size);
		tsm.auxblob = aux;
	}
	if (!out || (argc == 5 && !aux)) {
		fprintf(stderr, "fake-tsm: cannot read the blobs\n");
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	int rc = fake_tsm_serve(&tsm);
	free(out);
	free(aux);
	if (rc)
		fprintf(stderr, "fake-tsm: cannot watch %s/report\n", tsm.root);
	return rc ? 1 : 0;
}
