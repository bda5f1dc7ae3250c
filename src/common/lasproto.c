/* veil-las's line protocol (see lasproto.h). */
#include "veil/lasproto.h"
#include "veil/cursor.h"

#include <string.h>

static int config_id_char(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '.' || ch == '/' || ch == '-';
}

/* the one line of the message, without its '\n', as a cursor of its own */
static int one_line(const char *msg, size_t n, struct veil_cursor *line)
{
	struct veil_cursor c;
	const uint8_t *p;
	size_t len;
	veil_cur_init(&c, msg, n);
	if (!veil_cur_line(&c, n, &p, &len) || !veil_cur_done(&c))
		return VEIL_EINVAL;
	veil_cur_init(line, p, len);
	return 0;
}

/* "<size*2 hex>" from the cursor into out */
static int hex_field(struct veil_cursor *c, uint8_t *out, size_t size)
{
	char hex[2 * 64 + 1];
	if (size > 64 || !veil_cur_copy(c, hex, 2 * size))
		return VEIL_EINVAL;
	hex[2 * size] = '\0';
	return veil_unhex(hex, out, size) ? VEIL_EINVAL : 0;
}

int veil_las_parse_report(const char *msg, size_t n, uint8_t rd[static VEIL_SHA256_SIZE],
			  char config_id[static VEIL_EVIDENCE_CONFIG_ID_MAX + 1])
{
	struct veil_cursor c;
	size_t len;
	const uint8_t *id;
	config_id[0] = '\0';
	if (one_line(msg, n, &c) || !veil_cur_expect(&c, "REPORT ", 7) ||
	    hex_field(&c, rd, VEIL_SHA256_SIZE) || !veil_cur_expect(&c, " ", 1))
		return VEIL_EINVAL;
	len = veil_cur_left(&c);
	if (!len || len > VEIL_EVIDENCE_CONFIG_ID_MAX || !veil_cur_view(&c, len, &id))
		return VEIL_EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!config_id_char(id[i]))
			return VEIL_EINVAL;
	memcpy(config_id, id, len);
	config_id[len] = '\0';
	return 0;
}

int veil_las_parse_hex_line(const char *msg, size_t n, const char *word, uint8_t *out, size_t size)
{
	struct veil_cursor c;
	size_t wl = strlen(word);
	if (one_line(msg, n, &c) || !veil_cur_expect(&c, word, wl) ||
	    !veil_cur_expect(&c, " ", 1) || hex_field(&c, out, size) || !veil_cur_done(&c))
		return VEIL_EINVAL;
	return 0;
}
