/*
 * pgproto.h - the few PostgreSQL protocol messages the broker speaks on a
 * pooled backend after libpq has connected it: simple Query out, replies in.
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

/* Appends a simple Query message for sql to buf; returns its size, 0 if it does not fit. */
size_t pgproto_query(uint8_t *buf, size_t cap, const char *sql);

/* The Terminate message. */
extern const uint8_t pgproto_terminate[5];

/* The first NUL-terminated string of a body (CommandComplete's tag), or NULL. */
const char *pgproto_cstring(const struct pgproto_msg *m, size_t *next);

/*
 * A DataRow holding exactly one non-NULL column equal to value: true.
 */
bool pgproto_datarow_is(const struct pgproto_msg *m, const char *value);

/* An ErrorResponse's or NoticeResponse's field (code 'S', 'C', 'M'), or NULL. */
const char *pgproto_error_field(const struct pgproto_msg *m, char code);

#endif
