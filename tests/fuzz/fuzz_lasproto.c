/* libFuzzer: veil-las's line protocol (src/common/lasproto.c), both ends;
 * the bounded cursor underneath (src/common/cursor.c) */
#include <stdint.h>
#include <string.h>

#include "veil/cursor.h"
#include "veil/lasproto.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t rd[VEIL_SHA256_SIZE], n[16];
	char id[VEIL_EVIDENCE_CONFIG_ID_MAX + 1];
	if (!veil_las_parse_report((const char *)data, size, rd, id)) {
		/* accepted: one line, the id within its bounds */
		if (!size || data[size - 1] != '\n' || strlen(id) > VEIL_EVIDENCE_CONFIG_ID_MAX)
			__builtin_trap();
	}
	if (!veil_las_parse_hex_line((const char *)data, size, "RESPONSE", n, sizeof(n)) &&
	    size != strlen("RESPONSE ") + 32 + 1)
		__builtin_trap();
	/* the cursor's reads never go past the end, whatever the order */
	struct veil_cursor c, s;
	veil_cur_init(&c, data, size);
	uint32_t v;
	const uint8_t *p;
	size_t len;
	while (veil_cur_ok(&c) && veil_cur_left(&c)) {
		uint8_t op;
		veil_cur_u8(&c, &op);
		switch (op % 5) {
		case 0:
			veil_cur_le32(&c, &v);
			break;
		case 1:
			if (veil_cur_sub_le16(&c, &s) && veil_cur_left(&s) &&
			    (!veil_cur_view(&s, veil_cur_left(&s), &p) || p < data ||
			     p >= data + size))
				__builtin_trap();
			break;
		case 2:
			veil_cur_line(&c, op, &p, &len);
			break;
		case 3:
			veil_cur_skip(&c, op);
			break;
		default:
			if (veil_cur_span(&c, 0, &p, &len) && (p != data || len > size))
				__builtin_trap();
		}
		if (veil_cur_pos(&c) > size)
			__builtin_trap();
	}
	return 0;
}
