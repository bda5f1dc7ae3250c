/* The payload frame (payload.h): writing it, and reading it through the
 * bounded cursor. */
#include <string.h>

#include "veil/common.h"
#include "veil/cursor.h"
#include "veil/secure.h"

#include "payload.h"

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)(v & 0xff);
}

int cas_payload_pack(const uint8_t *yaml, size_t yaml_size, const uint8_t *secrets,
		     size_t secrets_size, uint8_t **out, size_t *out_size)
{
	if (yaml_size > UINT32_MAX || secrets_size > UINT32_MAX)
		return VEIL_ELIMIT;
	size_t size = CAS_PAYLOAD_HEADER_SIZE + 8 + yaml_size + secrets_size;
	uint8_t *p = veil_secure_alloc(size);
	if (!p)
		return VEIL_ENOMEM;
	memcpy(p, CAS_PAYLOAD_MAGIC, 4);
	p[4] = CAS_PAYLOAD_VERSION & 0xff;
	p[5] = (CAS_PAYLOAD_VERSION >> 8) & 0xff;
	p[6] = p[7] = 0;
	uint8_t *q = p + CAS_PAYLOAD_HEADER_SIZE;
	put_le32(q, (uint32_t)yaml_size);
	if (yaml_size)
		memcpy(q + 4, yaml, yaml_size);
	put_le32(q + 4 + yaml_size, (uint32_t)secrets_size);
	if (secrets_size)
		memcpy(q + 8 + yaml_size, secrets, secrets_size);
	*out = p;
	*out_size = size;
	return 0;
}

int cas_payload_frame(const uint8_t *plain, size_t size, const uint8_t **yaml, size_t *yaml_size,
		      const uint8_t **secrets, size_t *secrets_size)
{
	struct veil_cursor c, y, z;
	veil_cur_init(&c, plain, size);
	if (size >= 4 && !memcmp(plain, CAS_PAYLOAD_MAGIC, 4)) { /* not secret: a format tag */
		uint16_t version = 0, flags = 0;
		veil_cur_skip(&c, 4);
		veil_cur_le16(&c, &version);
		veil_cur_le16(&c, &flags);
		if (!veil_cur_ok(&c) || version != CAS_PAYLOAD_VERSION || flags)
			return VEIL_EINVAL;
	} /* else version 0: no header */
	veil_cur_sub_le32(&c, &y);
	veil_cur_sub_le32(&c, &z);
	const uint8_t *yv, *zv;
	if (!veil_cur_done(&c) || !veil_cur_view(&y, veil_cur_left(&y), &yv) ||
	    !veil_cur_view(&z, veil_cur_left(&z), &zv))
		return VEIL_EINVAL;
	*yaml = yv;
	*yaml_size = y.len;
	*secrets = zv;
	*secrets_size = z.len;
	return 0;
}
