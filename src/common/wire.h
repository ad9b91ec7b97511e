/*
 * wire.h - the control protocol between libpglease and pgleased.
 *
 * One AF_UNIX SOCK_SEQPACKET message per protocol message: a fixed 16-byte
 * header followed by the payload.  Integers are little-endian; a string is a
 * u16 length and that many bytes, no NUL.  Decoding is exact: the payload
 * must hold every field and nothing more, and each length is checked against
 * its maximum before anything is read.
 */
#ifndef PGL_WIRE_H
#define PGL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol versions this code speaks.  Bump WIRE_VERSION_MAX when the message
 * table below or a payload changes; keep the old decoder while it is in range. */
#define WIRE_VERSION_MIN 1
#define WIRE_VERSION_MAX 3	/* 2: WELCOME carries acquire_timeout_ms;
				 * 3: the ADMIN messages (pglease-ctl) */

#define WIRE_HEADER_SIZE 16
#define WIRE_POOL_NAME_MAX 63
#define WIRE_NAME_MAX 63	/* PostgreSQL identifiers: NAMEDATALEN - 1 */
#define WIRE_SHM_NAME_MAX 200
#define WIRE_TEXT_MAX 1024	/* ERROR messages */
#define WIRE_PARAMS_MAX 4096	/* GRANT's server parameters */
#define WIRE_ROWS_MAX 4096	/* ADMIN_ROWS' block */
/* The largest message: a GRANT with the longest names and parameter block. */
#define WIRE_MESSAGE_MAX (WIRE_HEADER_SIZE + 32 + 2 * (2 + WIRE_NAME_MAX) + WIRE_PARAMS_MAX)

/* Message types.  Bump the protocol version when this changes. */
enum wire_type {
	PGL_MSG_SESSION_HELLO = 1,	/* w -> b */
	PGL_MSG_SESSION_WELCOME = 2,	/* b -> w */
	PGL_MSG_LEASE_ACQUIRE = 3,	/* w -> b */
	PGL_MSG_LEASE_GRANT = 4,	/* b -> w, carries the backend's fd */
	PGL_MSG_LEASE_RELEASE = 5,	/* w -> b, no reply */
	PGL_MSG_LEASE_CANCEL = 6,	/* w -> b, no reply */
	PGL_MSG_SESSION_ERROR = 7,	/* b -> w */
	/* Version 3 on, for administrators only (admin_uids, admin_gids). */
	PGL_MSG_ADMIN_COMMAND = 8,	/* ctl -> b; answered by ROWS..., DONE or ERROR */
	PGL_MSG_ADMIN_ROWS = 9,		/* b -> ctl: rows of a "show" */
	PGL_MSG_ADMIN_DONE = 10,	/* b -> ctl: the command succeeded */
};

/* ADMIN_COMMAND commands.  Bump the protocol version when this changes. */
enum wire_admin_cmd {
	WIRE_ADMIN_SHOW_POOLS = 1,
	WIRE_ADMIN_SHOW_CLIENTS = 2,
	WIRE_ADMIN_SHOW_LEASES = 3,
	WIRE_ADMIN_PAUSE = 4,		/* target: a pool, "" all; timeout_ms: until quiet */
	WIRE_ADMIN_RESUME = 5,		/* target: a pool, "" all */
	WIRE_ADMIN_RECONNECT = 6,	/* target: a pool */
	WIRE_ADMIN_KILL_LEASE = 7,	/* id: the lease id */
	WIRE_ADMIN_KILL_CLIENT = 8,	/* id: the client's pid */
	WIRE_ADMIN_RELOAD = 9,
	WIRE_ADMIN_DRAIN = 10,
	WIRE_ADMIN_CMD_MAX = WIRE_ADMIN_DRAIN
};

/* RELEASE states: what the holder knows of the session it gives back. */
enum wire_release_state {
	WIRE_RELEASE_CLEAN = 0,		/* idle, no transaction */
	WIRE_RELEASE_IN_TRANSACTION = 1, /* a transaction is open or failed */
	WIRE_RELEASE_UNKNOWN = 2,	/* raw-fd lease: the library cannot see */
	WIRE_RELEASE_BROKEN = 3,	/* unusable: replace it */
};

struct wire_header {
	uint16_t type;
	uint16_t flags;			/* 0; reserved */
	uint32_t payload_len;
	uint64_t request_id;
};

struct wire_hello {
	uint16_t version_min;
	uint16_t version_max;
	uint32_t pid;			/* informative: identity comes from SO_PEERCRED */
};

struct wire_welcome {
	uint16_t version;
	uint32_t broker_pid;
	uint32_t incarnation;		/* random at start, never 0 */
	char shm_name[WIRE_SHM_NAME_MAX + 1];
	/*
	 * Version 2 on: the longest wait an ACQUIRE with timeout -1 can get from
	 * this broker for this session, in ms.  The library's deadline for -1 is
	 * this plus a grace period.  Absent (0) in version 1.
	 */
	uint32_t acquire_timeout_ms;
};

struct wire_acquire {
	char pool[WIRE_POOL_NAME_MAX + 1];	/* "" : the default pool */
	int32_t timeout_ms;		/* -1 pool default, 0 no wait, > 0 ms */
};

struct wire_grant {
	uint64_t lease_id;
	uint32_t slot;
	uint32_t backend_pid;
	char user[WIRE_NAME_MAX + 1];	/* the role the backend runs as */
	char database[WIRE_NAME_MAX + 1];
	/* "name\0value\0" pairs; decoded in place: points into the input buffer */
	const char *params;
	uint16_t params_len;
};

struct wire_release {
	uint64_t lease_id;
	uint8_t state;			/* enum wire_release_state */
};

struct wire_cancel {
	uint64_t lease_id;
};

struct wire_error {
	uint16_t code;			/* PGL_E* */
	char message[WIRE_TEXT_MAX + 1];
};

struct wire_admin_command {
	uint16_t cmd;			/* enum wire_admin_cmd */
	uint32_t timeout_ms;		/* PAUSE: how long to wait for quiet */
	uint64_t id;			/* KILL_LEASE: lease id; KILL_CLIENT: pid */
	char target[WIRE_POOL_NAME_MAX + 1];	/* a pool name, "" = all */
};

/*
 * Rows of a table: each row is "name\0value\0" pairs ended by one more
 * "\0" (an empty name).  Every value is a JSON literal ("\"main\"", 3,
 * true), so a reader prints JSON as it comes and a table unquoted.  A
 * reply sends as many ROWS as it takes, then DONE.  Decoded in place.
 */
struct wire_admin_rows {
	const char *block;
	uint16_t len;
};

struct wire_admin_done {
	char message[WIRE_TEXT_MAX + 1];
};

struct wire_msg {
	struct wire_header h;
	union {
		struct wire_hello hello;
		struct wire_welcome welcome;
		struct wire_acquire acquire;
		struct wire_grant grant;
		struct wire_release release;
		struct wire_cancel cancel;
		struct wire_error error;
		struct wire_admin_command admin;
		struct wire_admin_rows rows;
		struct wire_admin_done done;
	} u;
};

/*
 * Encodes m (its h.type and h.request_id; payload_len is computed) into buf.
 * Returns the message length, or 0 when a field exceeds its maximum or buf
 * is too small.
 */
size_t wire_encode(const struct wire_msg *m, uint8_t *buf, size_t cap)
	__attribute__((warn_unused_result));

/*
 * Decodes one message of len bytes.  Returns 0, or -1 with *why set to a
 * static sentence.  A GRANT's params point into buf.
 */
int wire_decode(const uint8_t *buf, size_t len, struct wire_msg *m, const char **why)
	__attribute__((warn_unused_result));

/* Name of a message type, for logs ("ACQUIRE"); "unknown" otherwise. */
const char *wire_type_name(uint16_t type);

/* Name of a release state ("clean"); "unknown" for anything else. */
const char *wire_release_state_name(uint8_t state);

/* Lease ids carry the broker's incarnation in their upper 32 bits. */
static inline uint32_t
wire_lease_incarnation(uint64_t lease_id)
{
	return (uint32_t)(lease_id >> 32);
}

/*
 * Looks a parameter up in a "name\0value\0" block; NULL when absent.
 * The block must have been accepted by wire_decode (or built by the broker).
 */
const char *wire_param(const char *params, size_t len, const char *name);

/* Whether block (len bytes) is a whole number of ADMIN_ROWS rows. */
bool wire_rows_valid(const char *block, size_t len);

/* Name of an admin command ("pause"); "unknown" otherwise. */
const char *wire_admin_cmd_name(uint16_t cmd);

#endif
