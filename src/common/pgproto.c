/*
 * pgproto.c - PostgreSQL v3 framing: a bounded message writer, the
 * broker's queries, and its reader of a backend's replies.
 */
#include "autoconf.h"

#include "common/pgproto.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- writing ------------------------------------------------------------ */

void
pgproto_out_init(struct pgproto_out *o, uint8_t *buf, size_t cap)
{
	*o = (struct pgproto_out){ .buf = buf, .cap = cap };
}

bool
pgproto_begin(struct pgproto_out *o, char type, size_t body_len)
{
	if (o->full || o->len != o->end || body_len > UINT32_MAX - 4 ||
	    o->cap - o->len < PGPROTO_HEADER_SIZE + body_len) {
		o->full = true;
		return false;
	}
	const uint8_t h[PGPROTO_HEADER_SIZE] = { PGPROTO_HEADER(type, body_len) };

	memcpy(o->buf + o->len, h, sizeof(h));
	o->len += sizeof(h);
	o->end = o->len + body_len;
	return true;
}

void
pgproto_put(struct pgproto_out *o, const void *data, size_t len)
{
	if (o->full || o->end - o->len < len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, data, len);
	o->len += len;
}

void
pgproto_put16(struct pgproto_out *o, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	pgproto_put(o, b, sizeof(b));
}

void
pgproto_put32(struct pgproto_out *o, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	pgproto_put(o, b, sizeof(b));
}

void
pgproto_put64(struct pgproto_out *o, uint64_t v)
{
	pgproto_put32(o, (uint32_t)(v >> 32));
	pgproto_put32(o, (uint32_t)v);
}

void
pgproto_put_cstring(struct pgproto_out *o, const char *s)
{
	pgproto_put(o, s, strlen(s) + 1);
}

size_t
pgproto_out_len(const struct pgproto_out *o)
{
	return o->full || o->len != o->end ? 0 : o->len;
}

/* --- the broker's queries ------------------------------------------------ */

const uint8_t pgproto_terminate[PGPROTO_HEADER_SIZE] = { PGPROTO_HEADER('X', 0) };

size_t
pgproto_query(uint8_t *buf, size_t cap, const char *sql)
{
	struct pgproto_out o;

	pgproto_out_init(&o, buf, cap);
	if (pgproto_begin(&o, 'Q', strlen(sql) + 1))
		pgproto_put_cstring(&o, sql);
	return pgproto_out_len(&o);
}

size_t
pgproto_function_call_int8(uint8_t *buf, size_t cap, uint32_t fn_oid, uint64_t arg)
{
	struct pgproto_out o;

	pgproto_out_init(&o, buf, cap);
	/* oid, 1 format code, 1 argument of 4 + 8 bytes, the result's format */
	if (pgproto_begin(&o, 'F', 4 + 2 + 2 + 2 + 4 + 8 + 2)) {
		pgproto_put32(&o, fn_oid);
		pgproto_put16(&o, 1);
		pgproto_put16(&o, 1);		/* binary */
		pgproto_put16(&o, 1);
		pgproto_put32(&o, 8);
		pgproto_put64(&o, arg);
		pgproto_put16(&o, 1);		/* binary */
	}
	return pgproto_out_len(&o);
}

/* --- reading a backend's replies ----------------------------------------- */

/* The big-endian 32-bit word at p. */
static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void
pgproto_reset(struct pgproto_reader *r)
{
	r->len = 0;
	r->off = 0;
}

int
pgproto_fill(struct pgproto_reader *r, int fd)
{
	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->len == sizeof(r->buf))
		return -2;

	ssize_t n;
	do
		n = recv(fd, r->buf + r->len, sizeof(r->buf) - r->len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		r->len += (size_t)n;
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n == 0)
		errno = 0;
	return -1;
}

int
pgproto_next(struct pgproto_reader *r, struct pgproto_msg *m)
{
	size_t avail = r->len - r->off;
	const uint8_t *p = r->buf + r->off;

	if (avail < 5)
		return 0;

	uint32_t len = get32(p + 1);
	if (len < 4)
		return -1;
	if ((size_t)len + 1 > sizeof(r->buf))
		return avail == sizeof(r->buf) || r->off == 0 ? -1 : 0;
	if (avail < (size_t)len + 1)
		return 0;
	m->type = (char)p[0];
	m->body = p + 5;
	m->len = len - 4;
	r->off += (size_t)len + 1;
	return 1;
}

bool
pgproto_pending(const struct pgproto_reader *r)
{
	return r->len > r->off;
}

const char *
pgproto_cstring(const struct pgproto_msg *m, size_t *next)
{
	const uint8_t *nul = memchr(m->body, '\0', m->len);

	if (nul == NULL)
		return NULL;
	if (next != NULL)
		*next = (size_t)(nul - m->body) + 1;
	return (const char *)m->body;
}

bool
pgproto_datarow_is(const struct pgproto_msg *m, const char *value)
{
	size_t vlen = strlen(value);

	if (m->type != 'D' || m->len != 2 + 4 + vlen)
		return false;
	const uint8_t *b = m->body;
	if (b[0] != 0 || b[1] != 1)
		return false;
	uint32_t clen = get32(b + 2);
	return clen == vlen && memcmp(b + 6, value, vlen) == 0;
}

bool
pgproto_function_result_is(const struct pgproto_msg *m, uint64_t value)
{
	if (m->type != 'V' || m->len != 4 + 8)
		return false;
	uint64_t v = (uint64_t)get32(m->body + 4) << 32 | get32(m->body + 8);

	return get32(m->body) == 8 && v == value;
}

const char *
pgproto_error_field(const struct pgproto_msg *m, char code)
{
	size_t i = 0;

	while (i < m->len && m->body[i] != 0) {
		char c = (char)m->body[i++];
		const uint8_t *nul = memchr(m->body + i, '\0', m->len - i);
		if (nul == NULL)
			return NULL;
		if (c == code)
			return (const char *)m->body + i;
		i = (size_t)(nul - m->body) + 1;
	}
	return NULL;
}
