/*
 * startup.c - the server's half of the shell's startup handshake.
 *
 * The parameters come from the broker's GRANT: untrusted input, whose size
 * is checked against the room left before each message is written.
 */
#include "autoconf.h"

#include "lib/startup.h"

#include <string.h>

struct out {
	uint8_t *p;
	size_t cap, len;
	bool full;
};

/* Starts a message of type with body_len bytes after its length word; false when it does not fit. */
static bool
begin(struct out *o, char type, size_t body_len)
{
	if (o->full || body_len > UINT32_MAX - 4 || o->cap - o->len < 5 + body_len) {
		o->full = true;
		return false;
	}
	uint32_t v = (uint32_t)(4 + body_len);
	uint8_t *p = o->p + o->len;

	p[0] = (uint8_t)type;
	p[1] = (uint8_t)(v >> 24);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 8);
	p[4] = (uint8_t)v;
	o->len += 5;
	return true;
}

static void
put(struct out *o, const void *data, size_t len)
{
	memcpy(o->p + o->len, data, len);
	o->len += len;
}

static void
put32(struct out *o, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	put(o, b, 4);
}

size_t
startup_reply(uint8_t *out, size_t cap, const char *params, size_t params_len,
	      uint32_t backend_pid, bool negotiate)
{
	struct out o = { .p = out, .cap = cap };

	if (negotiate && begin(&o, 'v', 8)) {
		put32(&o, 0);		/* the newest minor version we speak: 3.0 */
		put32(&o, 0);		/* no protocol options understood */
	}
	if (begin(&o, 'R', 4))
		put32(&o, 0);		/* AuthenticationOk */
	for (size_t i = 0; i < params_len && !o.full;) {
		const char *name = params + i;
		const char *name_end = memchr(name, '\0', params_len - i);
		if (name_end == NULL || name_end == name)
			return 0;
		const char *value = name_end + 1;
		const char *value_end = memchr(value, '\0', params_len - (size_t)(value - params));
		if (value_end == NULL)
			return 0;
		size_t pair = (size_t)(value_end + 1 - name);
		if (begin(&o, 'S', pair))
			put(&o, name, pair);
		i += pair;
	}
	if (begin(&o, 'K', 8)) {
		put32(&o, backend_pid);
		put32(&o, 0);		/* worthless: cancels go through the broker */
	}
	if (begin(&o, 'Z', 1))
		put(&o, "I", 1);
	return o.full ? 0 : o.len;
}
