/* libFuzzer: the key process's messages (src/cas/ipc.c): the fragment
 * header, reassembly over a real SOCK_SEQPACKET socketpair, and the field
 * decoder, whose accepted payloads must re-encode to the same bytes (one
 * encoding per message: nothing is guessed at).
 *
 * Input: fragments, each a 2-byte little-endian length and that many bytes
 * (sent as one datagram each); the whole input is also decoded as the
 * payload of every message type, request and response, and as a payload
 * frame (src/cas/payload.c), whose accepted frames must pack again to the
 * same bytes when they carry the header. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "veil/common.h"
#include "veil/secure.h"
#include "veil/cursor.h"

#include "../../src/cas/ipc.h"
#include "../../src/cas/payload.h"

static const uint16_t types[] = {IPC_READY,    IPC_NEW_KEY, IPC_SEAL,     IPC_OPEN_POLICY,
				 IPC_GENERATE, IPC_RENDER,  IPC_CODE_KEY, IPC_TEST_SOCKET,
				 IPC_ERROR,    0x1234};

/* an accepted message's fields, written again in tag order, are its payload */
static void check_canonical(const struct ipc_msg *m)
{
	struct ipc_msg again = {.type = m->type};
	for (uint16_t t = 1; t < IPC_F_COUNT; t++) {
		const struct ipc_field *f = &m->f[t];
		if (!f->data)
			continue;
		if (f->data < m->buf || f->data + f->size > m->buf + m->size)
			__builtin_trap();
		if (ipc_put(&again, t, f->data, f->size))
			__builtin_trap();
	}
	if (again.size != m->size || (m->size && memcmp(again.buf, m->buf, m->size)))
		__builtin_trap();
	ipc_msg_clear(&again);
}

static void check_frame(const uint8_t *data, size_t size)
{
	const uint8_t *y, *z;
	size_t ys, zs;
	if (cas_payload_frame(data, size, &y, &ys, &z, &zs))
		return;
	if (y < data || y + ys > data + size || z < y + ys || z + zs > data + size)
		__builtin_trap();
	uint8_t *again = NULL;
	size_t n = 0;
	if (cas_payload_pack(y, ys, z, zs, &again, &n))
		__builtin_trap();
	/* a version 0 frame (no header) packs to the header and the same bytes */
	size_t skip = memcmp(data, CAS_PAYLOAD_MAGIC, 4) ? CAS_PAYLOAD_HEADER_SIZE : 0;
	if (n != size + skip || memcmp(again + skip, data, size))
		__builtin_trap();
	veil_secure_free(again, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[200];
	check_frame(data, size);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		for (int resp = 0; resp < 2; resp++) {
			struct ipc_msg m = {.type =
						(uint16_t)(types[i] | (resp ? IPC_RESPONSE : 0))};
			if (size) {
				m.buf = malloc(size);
				memcpy(m.buf, data, size);
				m.size = m.cap = size;
			}
			if (!ipc_decode(&m, why, sizeof(why)))
				check_canonical(&m);
			ipc_msg_clear(&m);
		}
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv))
		return 0;
	struct veil_cursor c;
	veil_cur_init(&c, data, size);
	struct veil_cursor frag;
	while (veil_cur_sub_le16(&c, &frag)) {
		const uint8_t *p = NULL;
		size_t n = veil_cur_left(&frag);
		if (n)
			veil_cur_view(&frag, n, &p);
		if (send(sv[0], p ? (const void *)p : "", n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			break;
	}
	shutdown(sv[0], SHUT_WR);
	struct ipc_msg m = {0};
	int rc;
	while (!(rc = ipc_recv(sv[1], &m, why, sizeof(why)))) {
		if (m.size > IPC_MESSAGE_MAX)
			__builtin_trap();
		check_canonical(&m);
		ipc_msg_clear(&m);
	}
	ipc_msg_clear(&m);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
