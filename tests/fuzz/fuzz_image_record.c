/* libFuzzer: the image measurement record parser veil-run runs on the image's
 * /etc/veil/image-measurement (include/veil/image_record.h) */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "veil/image_record.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil_image_record r;
	char why[300];
	if (!veil_image_record_parse((const char *)data, size, &r, why, sizeof(why))) {
		/* what was accepted is what the writer writes: it escapes back */
		struct veil_buf b;
		veil_buf_init(&b, 0);
		for (size_t i = 0; i < r.count; i++)
			if (veil_image_record_escape(&b, r.entries[i].path,
						     strlen(r.entries[i].path)))
				break;
		veil_buf_free(&b);
		veil_image_record_free(&r);
	} else if (!memchr(why, '\0', sizeof(why))) {
		__builtin_trap(); /* an unterminated reason */
	}
	return 0;
}
