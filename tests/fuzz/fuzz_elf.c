/* libFuzzer: the ELF reader of the runtime-file measurement
 * (src/image/runtime.c): the input is the program of a one-file stand-in
 * image, measured as `veil apply` would, with its loader and libraries
 * looked up (and absent) in that image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "veil/image.h"
#include "fuzzer.h"

static char root[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[128];
	if (!root[0]) {
		snprintf(root, sizeof(root), "/tmp/veil-fuzz-elf-XXXXXX");
		if (!mkdtemp(root))
			abort();
		snprintf(path, sizeof(path), "%s/bin", root);
		mkdir(path, 0755);
	}
	snprintf(path, sizeof(path), "%s/bin/prog", root);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f))
		abort();
	chmod(path, 0755);
	struct veil_diags d;
	veil_diags_init(&d);
	char *program = NULL;
	struct veil_file_entry *files = NULL;
	size_t count = 0;
	if (veil_measure_runtime_files(root, "/bin/prog", &program, &files, &count, &d) == 0) {
		for (size_t i = 0; i < count; i++)
			free(files[i].path);
		free(files);
		free(program);
	}
	veil_diags_free(&d);
	return 0;
}
