/*
 * pgproto.h - PostgreSQL v3 framing: every message pglease writes itself
 * (the broker's queries on a pooled backend, the library's answers to
 * libpq on a shell's private listener) and the broker's reading of a
 * backend's replies.
 *
 * The broker reads a backend's replies itself, byte for byte, because the
 * stream may have been left anywhere by the process that held it: libpq
 * would quietly drop what it does not expect, where the broker must notice.
 */
#ifndef PGL_PGPROTO_H
#define PGL_PGPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Replies larger than this are never expected: the stream is not ours. */
#define PGPROTO_BUFFER 8192

/*
 * A message's header: its type byte, then its length word (big-endian,
 * itself included, the type byte not).  For messages spelled as constants.
 */
#define PGPROTO_HEADER(type, body_len) \
	(uint8_t)(type), (uint8_t)((4 + (body_len)) >> 24), (uint8_t)((4 + (body_len)) >> 16), \
	(uint8_t)((4 + (body_len)) >> 8), (uint8_t)(4 + (body_len))
#define PGPROTO_HEADER_SIZE 5

/* --- writing ---------------------------------------------------------- */

/*
 * Messages written into a caller's buffer, never past its end.  Each
 * message is begun with the exact size of its body, which the puts then
 * fill.  A message that does not fit, or a put past the body it was begun
 * with, sets full: nothing more is written, and pgproto_out_len() says 0.
 */
struct pgproto_out {
	uint8_t *buf;
	size_t cap;
	size_t len;		/* bytes written */
	size_t end;		/* where the message begun last ends */
	bool full;
};

void pgproto_out_init(struct pgproto_out *o, uint8_t *buf, size_t cap);

/* Starts a message of type with body_len bytes of body; false when it does not fit. */
bool pgproto_begin(struct pgproto_out *o, char type, size_t body_len);

/* Appends to the message begun last: len bytes of data, a big-endian v, s with its NUL. */
void pgproto_put(struct pgproto_out *o, const void *data, size_t len);
void pgproto_put16(struct pgproto_out *o, uint16_t v);
void pgproto_put32(struct pgproto_out *o, uint32_t v);
void pgproto_put64(struct pgproto_out *o, uint64_t v);
void pgproto_put_cstring(struct pgproto_out *o, const char *s);

/*
 * The length of what o holds: whole messages only.  0 when a message did
 * not fit or the last one is short of the body it was begun with.
 */
size_t pgproto_out_len(const struct pgproto_out *o) __attribute__((warn_unused_result));

/* --- the broker's queries --------------------------------------------- */

/* Writes a simple Query message for sql into buf; returns its size, 0 if it does not fit. */
size_t pgproto_query(uint8_t *buf, size_t cap, const char *sql);

/*
 * Writes a FunctionCall message (the fast-path interface: no parser, no
 * planner) of the function fn_oid with one int8 argument, arg, sent in
 * binary, the result asked for in binary; returns its size, 0 if it does
 * not fit.
 */
size_t pgproto_function_call_int8(uint8_t *buf, size_t cap, uint32_t fn_oid, uint64_t arg);

/* The Terminate message. */
extern const uint8_t pgproto_terminate[PGPROTO_HEADER_SIZE];

/* --- reading a backend's replies -------------------------------------- */

struct pgproto_reader {
	uint8_t buf[PGPROTO_BUFFER];
	size_t len;		/* bytes in buf */
	size_t off;		/* start of the next message */
};

struct pgproto_msg {
	char type;
	const uint8_t *body;
	uint32_t len;		/* body length */
};

void pgproto_reset(struct pgproto_reader *r);

/*
 * Reads what fd has (non-blocking).  Returns 1 when bytes arrived, 0 when
 * none were ready, -1 at end of stream or on error (errno set; 0 for EOF),
 * -2 when a message does not fit the buffer.
 */
int pgproto_fill(struct pgproto_reader *r, int fd);

/*
 * The next whole message.  Returns 1 with *m set (valid until the next
 * fill), 0 when more bytes are needed, -1 when the framing is impossible.
 */
int pgproto_next(struct pgproto_reader *r, struct pgproto_msg *m);

/* Whether unread bytes remain. */
bool pgproto_pending(const struct pgproto_reader *r);

/* The first NUL-terminated string of a body (CommandComplete's tag), or NULL. */
const char *pgproto_cstring(const struct pgproto_msg *m, size_t *next);

/*
 * A DataRow holding exactly one non-NULL column equal to value: true.
 */
bool pgproto_datarow_is(const struct pgproto_msg *m, const char *value);

/*
 * A FunctionCallResponse holding exactly one 8-byte binary value equal to
 * value (an int8 in network order): true.
 */
bool pgproto_function_result_is(const struct pgproto_msg *m, uint64_t value);

/* An ErrorResponse's or NoticeResponse's field (code 'S', 'C', 'M'), or NULL. */
const char *pgproto_error_field(const struct pgproto_msg *m, char code);

#endif
