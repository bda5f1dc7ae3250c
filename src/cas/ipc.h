/* Messages between veil-cas's network process and its key process
 * (src/cas/keyproc.c). Over a SOCK_SEQPACKET socketpair, one message is one
 * or more datagrams ("fragments"), each:
 *
 *   type u16 | flags u16 | len u32 | id u32 | len bytes      (little-endian)
 *
 * flags bit 0 (IPC_MORE): another fragment of the same message follows (same
 * type and id); every other flag bit must be 0. A fragment carries at most
 * IPC_FRAGMENT_MAX bytes, a whole message at most IPC_MESSAGE_MAX. The
 * reassembled payload is a list of fields, each
 *
 *   tag u16 | size u32 | size bytes                          (little-endian)
 *
 * in increasing tag order, every tag at most once, no other bytes. Which
 * tags a type needs or may carry (and which sizes are fixed) is in ipc.c's
 * table; a
 * message with a missing, unknown, repeated, misordered or wrongly sized
 * field is malformed, and a malformed message is fatal to the receiver's
 * peer link (OpenSMTPD's imsg habit): nothing is ever guessed at.
 *
 * Ownership: struct ipc_msg owns its payload buffer (ipc_msg_clear wipes and
 * frees it); field views point into it. */
#ifndef VEIL_CAS_IPC_H
#define VEIL_CAS_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/common.h"

#define IPC_HEADER_SIZE 12
#define IPC_MORE 0x0001u
#define IPC_FRAGMENT_MAX (60u * 1024)
#define IPC_MESSAGE_MAX (64u << 20)
#define IPC_RESPONSE 0x8000u

enum ipc_type {
	IPC_READY = 1,   /* key process -> network: serving (text: what it loaded) */
	IPC_NEW_KEY = 2, /* ns -> wrapped */
	IPC_SEAL = 3,    /* ns, wrapped, data (plain) -> data (sealed) */
	/* 4: reserved (a whole payload opened for the network process: gone) */
	IPC_CODE_KEY = 5,         /* key_id, owner -> key (32 bytes) */
	IPC_TEST_SOCKET = 6,      /* test builds only: the key process calls socket(AF_INET) */
	IPC_TEST_BAD_ANSWER = 10, /* test builds only: it answers with another type */
	IPC_OPEN_POLICY = 7,      /* ns, wrapped, data (sealed) -> data (the policy's YAML only) */
	IPC_GENERATE = 8,         /* ns, wrapped, data (canonical YAML), [prev (sealed)] -> data
				   * (the new sealed payload, secrets generated) */
	IPC_RENDER = 9,           /* ns, wrapped, data (sealed), [owner], service, [imports],
				   * peer_key, config_id, evidence_hash -> data (the /v1/attest
				   * answer: the configuration sealed to peer_key, sealed.h) */
	IPC_ERROR = 0x7fff,       /* response: status (4 bytes, a negative veil_err), [text] */
};

enum ipc_tag {
	IPC_F_NS = 1,
	IPC_F_WRAPPED = 2,
	IPC_F_DATA = 3,
	IPC_F_KEY_ID = 4,
	IPC_F_OWNER = 5,
	IPC_F_KEY = 6,
	IPC_F_STATUS = 7,
	IPC_F_PREV = 8,
	IPC_F_SERVICE = 9,
	IPC_F_IMPORTS = 10,       /* per import, each le32-prefixed: local name, exporter ns,
				   * its wrapped key, its sealed payload, the secret's name */
	IPC_F_TEXT = 11,          /* a reason a user can read (never a value) */
	IPC_F_PEER_KEY = 12,      /* the attested runtime's public key: its P-256 point, 65 bytes */
	IPC_F_CONFIG_ID = 13,     /* namespace/service, HPKE info of the sealed answer */
	IPC_F_EVIDENCE_HASH = 14, /* SHA-256 of the evidence, AAD of the sealed answer */
	IPC_F_COUNT = 15,
};

struct ipc_field {
	const uint8_t *data; /* NULL when absent */
	uint32_t size;
};

struct ipc_msg {
	uint16_t type;
	uint32_t id;
	uint8_t *buf; /* the payload (malloc'd, wiped on clear) */
	size_t size, cap;
	struct ipc_field f[IPC_F_COUNT];
};

/* Checks msg's payload against the field table of its type (requests, and
 * responses with IPC_RESPONSE set) and fills msg->f. 0, or VEIL_EINVAL with
 * a reason in why. Reads only through the bounded cursor. */
int ipc_decode(struct ipc_msg *msg, char *why, size_t cap) VEIL_MUST_CHECK;

/* Parses one fragment's header: 0, or VEIL_EINVAL with why. */
int ipc_header(const uint8_t *frag, size_t size, uint16_t *type, uint16_t *flags, uint32_t *len,
	       uint32_t *id, char *why, size_t cap) VEIL_MUST_CHECK;

/* Building a message: append fields in tag order, then send. */
int ipc_put(struct ipc_msg *msg, uint16_t tag, const void *data, size_t size) VEIL_MUST_CHECK;
int ipc_put_str(struct ipc_msg *msg, uint16_t tag, const char *s) VEIL_MUST_CHECK;

/* Sends msg as fragments on fd. 0, or VEIL_EIO (peer gone). */
int ipc_send(int fd, const struct ipc_msg *msg) VEIL_MUST_CHECK;
/* Receives one whole message: 0; 1 at EOF before a message; VEIL_EIO on a
 * read error; VEIL_EINVAL (with why) when malformed. Decodes it (ipc_decode). */
int ipc_recv(int fd, struct ipc_msg *msg, char *why, size_t cap) VEIL_MUST_CHECK;

void ipc_msg_clear(struct ipc_msg *msg);

/* A field as a NUL-terminated string in buf (cap bytes); false when it
 * does not fit or holds a NUL. */
bool ipc_field_str(const struct ipc_field *f, char *buf, size_t cap) VEIL_MUST_CHECK;

#endif
