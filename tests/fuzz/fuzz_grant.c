/*
 * fuzz_grant.c - libFuzzer target for the path from a broker's GRANT to
 * the startup reply pgl_conn() writes to libpq: untrusted bytes from the
 * control socket, then a buffer of fixed size in the client.
 *
 * Input: a control message as the broker would send it.  Whatever wire_decode()
 * accepts as a GRANT goes to startup_reply(), once into the shell's own
 * buffer size and once into an exact-size heap buffer of a capacity taken
 * from the input, so that a write past either end is a sanitizer error.
 * Property: the reply is refused only when it really does not fit, and an
 * accepted one parses back into exactly the expected messages: 'v' when
 * negotiating, 'R' ok, one 'S' per parameter pair in order, 'K' with the
 * backend pid, 'Z' idle.
 */
#include "autoconf.h"

#include "common/wire.h"
#include "lib/startup.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What the reply takes: 5 bytes of framing per message plus the bodies. */
static size_t
needed(const struct wire_grant *g, bool negotiate)
{
	size_t n = (negotiate ? 13 : 0) + 9 + 13 + 6;

	for (size_t i = 0; i < g->params_len;) {
		size_t pair = strlen(g->params + i) + 1;
		pair += strlen(g->params + i + pair) + 1;
		n += 5 + pair;
		i += pair;
	}
	return n;
}

/* The next message of reply; aborts unless it is of type with body_len bytes. */
static const uint8_t *
expect(const uint8_t *p, const uint8_t *end, char type, size_t body_len)
{
	if ((size_t)(end - p) < 5 + body_len || p[0] != (uint8_t)type ||
	    get32(p + 1) != 4 + body_len)
		abort();
	return p + 5;
}

static void
check_reply(const uint8_t *reply, size_t n, const struct wire_grant *g, bool negotiate)
{
	const uint8_t *p = reply, *end = reply + n;

	if (negotiate) {
		p = expect(p, end, 'v', 8);
		if (get32(p) != 0 || get32(p + 4) != 0)
			abort();
		p += 8;
	}
	p = expect(p, end, 'R', 4);
	if (get32(p) != 0)
		abort();
	p += 4;
	for (size_t i = 0; i < g->params_len;) {
		size_t pair = strlen(g->params + i) + 1;
		pair += strlen(g->params + i + pair) + 1;
		p = expect(p, end, 'S', pair);
		if (memcmp(p, g->params + i, pair) != 0)
			abort();
		p += pair;
		i += pair;
	}
	p = expect(p, end, 'K', 8);
	if (get32(p) != g->backend_pid || get32(p + 4) != 0)
		abort();
	p += 8;
	p = expect(p, end, 'Z', 1);
	if (p[0] != 'I' || p + 1 != end)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_msg m;
	const char *why;

	if (wire_decode(data, size, &m, &why) != 0 || m.h.type != PGL_MSG_LEASE_GRANT)
		return 0;
	const struct wire_grant *g = &m.u.grant;
	bool negotiate = (m.h.request_id & 1) != 0;
	size_t want = needed(g, negotiate);

	/* the shell's buffer */
	static uint8_t out[STARTUP_REPLY_MAX];
	size_t n = startup_reply(out, sizeof(out), g->params, g->params_len, g->backend_pid,
				 negotiate);
	if (want <= sizeof(out) ? n != want : n != 0)
		abort();
	if (n > 0)
		check_reply(out, n, g, negotiate);

	/* an exact-size buffer of a capacity the input chooses: nothing past its end */
	size_t cap = (size_t)(g->slot % (STARTUP_REPLY_MAX + 1));
	uint8_t *exact = malloc(cap > 0 ? cap : 1);
	if (exact == NULL)
		return 0;
	n = startup_reply(exact, cap, g->params, g->params_len, g->backend_pid, negotiate);
	if (want <= cap ? n != want : n != 0)
		abort();
	if (n > 0)
		check_reply(exact, n, g, negotiate);
	free(exact);
	return 0;
}
