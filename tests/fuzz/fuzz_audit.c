/* libFuzzer: the audit line format (include/veil/audit.h) as a verifier
 * reads it from a file or a database row. The input is one line without its
 * '\n'. check_line either refuses it or says what it holds; a checked line
 * that is a checkpoint parses to a detail the writer spells back byte for
 * byte (the format has one spelling); the checkpoint parser stays inside the
 * input whatever it is given. The seed corpus (tests/fuzz/corpus/audit)
 * holds a checkpoint and an update line as veil-cas writes them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzer.h"
#include "veil/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= VEIL_AUDIT_LINE_MAX)
		return 0;
	/* an exact-size copy: a read past the input is ASan's to see */
	char *line = malloc(size ? size : 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	struct veil_audit_checkpoint cp;
	int raw = veil_audit_parse_checkpoint(line, size, &cp);
	if (raw != 0 && raw != VEIL_ENOENT && raw != VEIL_EINVAL)
		abort();
	struct veil_audit_entry e;
	const char *why = NULL;
	size_t col = 0;
	if (veil_audit_check_line(line, size, &e, &why, &col)) {
		if (!why)
			abort();
		free(line);
		return 0;
	}
	if (e.seq == 0 || e.hashed_size >= size)
		abort();
	if (raw == 0) {
		/* the detail as the writer spells it is in the line, as is */
		char detail[800];
		int n = veil_audit_checkpoint_detail(&cp, detail, sizeof(detail));
		if (n <= 0)
			abort();
		size_t dn = (size_t)n;
		const char *p = NULL;
		for (size_t i = 0; i + dn <= size && !p; i++)
			/* not secret: fuzz input */
			if (!memcmp(line + i, detail, dn))
				p = line + i;
		if (!p)
			abort();
	}
	free(line);
	return 0;
}
