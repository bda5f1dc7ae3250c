/* The key process's message format (ipc.h): framing, the field table and
 * the decoder. Every received byte is read through the bounded cursor. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "veil/common.h"
#include "veil/cursor.h"

#include "ipc.h"

#define BIT(t) (1u << (t))
#define NAME_MAX_SIZE 1024u

/* the fields each type carries: every required one, optional ones, no other */
struct ipc_shape {
	uint16_t type;
	uint32_t request, request_optional, response, response_optional;
};
#define SEALED (BIT(IPC_F_NS) | BIT(IPC_F_WRAPPED) | BIT(IPC_F_DATA))
static const struct ipc_shape shapes[] = {
    {IPC_READY, 0, BIT(IPC_F_TEXT), 0, 0},
    {IPC_NEW_KEY, BIT(IPC_F_NS), 0, BIT(IPC_F_WRAPPED), 0},
    {IPC_SEAL, SEALED, 0, BIT(IPC_F_DATA), 0},
    {IPC_CODE_KEY, BIT(IPC_F_KEY_ID) | BIT(IPC_F_OWNER), 0, BIT(IPC_F_KEY), 0},
#ifdef VEIL_TEST_HOOKS
    {IPC_TEST_SOCKET, 0, 0, 0, 0},
    {IPC_TEST_BAD_ANSWER, 0, 0, 0, 0},
#endif
    {IPC_OPEN_POLICY, SEALED, 0, BIT(IPC_F_DATA), 0},
    {IPC_GENERATE, SEALED, BIT(IPC_F_PREV), BIT(IPC_F_DATA), 0},
    {IPC_RENDER,
     SEALED | BIT(IPC_F_SERVICE) | BIT(IPC_F_PEER_KEY) | BIT(IPC_F_CONFIG_ID) |
	 BIT(IPC_F_EVIDENCE_HASH),
     BIT(IPC_F_OWNER) | BIT(IPC_F_IMPORTS), BIT(IPC_F_DATA), 0},
    {IPC_ERROR, 0, 0, BIT(IPC_F_STATUS), BIT(IPC_F_TEXT)},
};

/* fixed sizes (0: any size up to the message's) */
static uint32_t fixed_size(uint16_t tag)
{
	switch (tag) {
	case IPC_F_KEY:
	case IPC_F_EVIDENCE_HASH:
		return 32;
	case IPC_F_PEER_KEY:
		return 65;
	case IPC_F_STATUS:
		return 4;
	default:
		return 0;
	}
}

static uint32_t max_size(uint16_t tag)
{
	switch (tag) {
	case IPC_F_NS:
	case IPC_F_KEY_ID:
	case IPC_F_OWNER:
	case IPC_F_SERVICE:
	case IPC_F_CONFIG_ID:
		return NAME_MAX_SIZE;
	case IPC_F_TEXT:
		return 2048;
	case IPC_F_WRAPPED:
		return 256;
	default:
		return IPC_MESSAGE_MAX;
	}
}

int ipc_header(const uint8_t *frag, size_t size, uint16_t *type, uint16_t *flags, uint32_t *len,
	       uint32_t *id, char *why, size_t cap)
{
	struct veil_cursor c;
	veil_cur_init(&c, frag, size);
	veil_cur_le16(&c, type);
	veil_cur_le16(&c, flags);
	veil_cur_le32(&c, len);
	veil_cur_le32(&c, id);
	if (!veil_cur_ok(&c)) {
		snprintf(why, cap, "a fragment of %zu bytes, shorter than a header", size);
		return VEIL_EINVAL;
	}
	if (*flags & ~IPC_MORE) {
		snprintf(why, cap, "unknown flags 0x%x", *flags);
		return VEIL_EINVAL;
	}
	if (*len != veil_cur_left(&c) || *len > IPC_FRAGMENT_MAX) {
		snprintf(why, cap, "a fragment announcing %u bytes carries %zu", *len,
			 veil_cur_left(&c));
		return VEIL_EINVAL;
	}
	return 0;
}

int ipc_decode(struct ipc_msg *msg, char *why, size_t cap)
{
	const struct ipc_shape *shape = NULL;
	bool response = msg->type & IPC_RESPONSE;
	uint16_t base = msg->type & (uint16_t)~IPC_RESPONSE;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		if (shapes[i].type == base)
			shape = &shapes[i];
	memset(msg->f, 0, sizeof(msg->f));
	if (!shape || (base == IPC_ERROR && !response)) {
		snprintf(why, cap, "unknown message type 0x%x", msg->type);
		return VEIL_EINVAL;
	}
	uint32_t want = response ? shape->response : shape->request, seen = 0;
	uint32_t may = want | (response ? shape->response_optional : shape->request_optional);
	struct veil_cursor c;
	veil_cur_init(&c, msg->buf, msg->size);
	int last = 0;
	while (veil_cur_ok(&c) && veil_cur_left(&c) > 0) {
		uint16_t tag = 0;
		struct veil_cursor v;
		veil_cur_le16(&c, &tag);
		if (!veil_cur_sub_le32(&c, &v))
			break;
		if (tag <= last || tag >= IPC_F_COUNT || !(may & BIT(tag))) {
			snprintf(why, cap, "type 0x%x: unexpected field %u", msg->type, tag);
			return VEIL_EINVAL;
		}
		size_t n = veil_cur_left(&v);
		if ((fixed_size(tag) && n != fixed_size(tag)) || n > max_size(tag)) {
			snprintf(why, cap, "type 0x%x: field %u of %zu bytes", msg->type, tag, n);
			return VEIL_EINVAL;
		}
		const uint8_t *p = NULL;
		if (n && !veil_cur_view(&v, n, &p))
			break;
		msg->f[tag].data = p ? p : msg->buf; /* present, maybe empty */
		msg->f[tag].size = (uint32_t)n;
		seen |= BIT(tag);
		last = tag;
	}
	if (!veil_cur_ok(&c)) {
		memset(msg->f, 0, sizeof(msg->f));
		snprintf(why, cap, "type 0x%x: a field runs past the message", msg->type);
		return VEIL_EINVAL;
	}
	if ((seen & want) != want) {
		memset(msg->f, 0, sizeof(msg->f));
		snprintf(why, cap, "type 0x%x: fields 0x%x missing", msg->type, want & ~seen);
		return VEIL_EINVAL;
	}
	return 0;
}

static int reserve(struct ipc_msg *msg, size_t more)
{
	if (more > IPC_MESSAGE_MAX - msg->size)
		return VEIL_ELIMIT;
	if (msg->size + more <= msg->cap)
		return 0;
	size_t cap = msg->cap ? msg->cap : 256;
	while (cap < msg->size + more)
		cap *= 2;
	/* grown by copy so the old bytes can be wiped (they may be secret) */
	uint8_t *b = malloc(cap);
	if (!b)
		return VEIL_ENOMEM;
	if (msg->size)
		memcpy(b, msg->buf, msg->size);
	if (msg->buf)
		OPENSSL_cleanse(msg->buf, msg->cap);
	free(msg->buf);
	msg->buf = b;
	msg->cap = cap;
	return 0;
}

int ipc_put(struct ipc_msg *msg, uint16_t tag, const void *data, size_t size)
{
	if (size > UINT32_MAX)
		return VEIL_ELIMIT;
	int rc = reserve(msg, 6 + size);
	if (rc)
		return rc;
	uint8_t *p = msg->buf + msg->size;
	p[0] = (uint8_t)tag;
	p[1] = (uint8_t)(tag >> 8);
	for (int i = 0; i < 4; i++)
		p[2 + i] = (uint8_t)(size >> (8 * i));
	if (size)
		memcpy(p + 6, data, size);
	msg->size += 6 + size;
	return 0;
}

int ipc_put_str(struct ipc_msg *msg, uint16_t tag, const char *s)
{
	return ipc_put(msg, tag, s, strlen(s));
}

static void put_header(uint8_t *h, uint16_t type, uint16_t flags, uint32_t len, uint32_t id)
{
	h[0] = (uint8_t)type;
	h[1] = (uint8_t)(type >> 8);
	h[2] = (uint8_t)flags;
	h[3] = (uint8_t)(flags >> 8);
	for (int i = 0; i < 4; i++) {
		h[4 + i] = (uint8_t)(len >> (8 * i));
		h[8 + i] = (uint8_t)(id >> (8 * i));
	}
}

int ipc_send(int fd, const struct ipc_msg *msg)
{
	size_t off = 0;
	do {
		size_t n = msg->size - off > IPC_FRAGMENT_MAX ? IPC_FRAGMENT_MAX : msg->size - off;
		uint8_t h[IPC_HEADER_SIZE];
		put_header(h, msg->type, off + n < msg->size ? IPC_MORE : 0, (uint32_t)n, msg->id);
		struct iovec iov[2] = {{h, sizeof(h)}, {msg->buf ? msg->buf + off : h, n}};
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
		ssize_t w;
		do
			w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		if (w != (ssize_t)(sizeof(h) + n))
			return VEIL_EIO;
		off += n;
	} while (off < msg->size);
	return 0;
}

int ipc_recv(int fd, struct ipc_msg *msg, char *why, size_t cap)
{
	static __thread uint8_t frag[IPC_HEADER_SIZE + IPC_FRAGMENT_MAX + 1];
	ipc_msg_clear(msg);
	bool first = true;
	for (;;) {
		ssize_t r;
		do
			r = recv(fd, frag, sizeof(frag), MSG_TRUNC);
		while (r < 0 && errno == EINTR);
		if (r == 0 && first)
			return 1;
		if (r <= 0) {
			snprintf(why, cap, r == 0 ? "end of stream inside a message" : "%s",
				 strerror(errno));
			return r == 0 ? VEIL_EINVAL : VEIL_EIO;
		}
		uint16_t type, flags;
		uint32_t len, id;
		size_t got = (size_t)r > sizeof(frag) ? sizeof(frag) : (size_t)r;
		int rc = VEIL_EINVAL;
		if ((size_t)r >= sizeof(frag))
			snprintf(why, cap, "a fragment of %zd bytes", r);
		else
			rc = ipc_header(frag, got, &type, &flags, &len, &id, why, cap);
		if (!rc && !first && (type != msg->type || id != msg->id)) {
			snprintf(why, cap, "a fragment of another message inside type 0x%x",
				 msg->type);
			rc = VEIL_EINVAL;
		}
		if (!rc)
			rc = reserve(msg, len);
		if (rc) {
			OPENSSL_cleanse(frag, sizeof(frag));
			ipc_msg_clear(msg);
			if (rc == VEIL_ELIMIT)
				snprintf(why, cap, "a message over %u bytes", IPC_MESSAGE_MAX);
			return rc == VEIL_ENOMEM ? VEIL_ENOMEM : VEIL_EINVAL;
		}
		msg->type = type;
		msg->id = id;
		if (len)
			memcpy(msg->buf + msg->size, frag + IPC_HEADER_SIZE, len);
		msg->size += len;
		OPENSSL_cleanse(frag + IPC_HEADER_SIZE, len);
		first = false;
		if (!(flags & IPC_MORE))
			break;
	}
	int rc = ipc_decode(msg, why, cap);
	if (rc)
		ipc_msg_clear(msg);
	return rc;
}

void ipc_msg_clear(struct ipc_msg *msg)
{
	if (msg->buf)
		OPENSSL_cleanse(msg->buf, msg->cap);
	free(msg->buf);
	memset(msg, 0, sizeof(*msg));
}

bool ipc_field_str(const struct ipc_field *f, char *buf, size_t cap)
{
	if (!f->data || f->size >= cap || memchr(f->data, 0, f->size))
		return false;
	memcpy(buf, f->data, f->size);
	buf[f->size] = 0;
	return true;
}
