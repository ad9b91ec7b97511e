/*
 * startup.c - the server's half of the shell's startup handshake.
 *
 * The parameters come from the broker's GRANT: untrusted input, whose size
 * is checked against the room left before each message is written.
 */
#include "autoconf.h"

#include "common/pgproto.h"
#include "lib/startup.h"

#include <string.h>

size_t
startup_reply(uint8_t *out, size_t cap, const char *params, size_t params_len,
	      uint32_t backend_pid, bool negotiate)
{
	struct pgproto_out o;

	pgproto_out_init(&o, out, cap);
	if (negotiate && pgproto_begin(&o, 'v', 8)) {
		pgproto_put32(&o, 0);	/* the newest minor version we speak: 3.0 */
		pgproto_put32(&o, 0);	/* no protocol options understood */
	}
	if (pgproto_begin(&o, 'R', 4))
		pgproto_put32(&o, 0);	/* AuthenticationOk */
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
		if (pgproto_begin(&o, 'S', pair))
			pgproto_put(&o, name, pair);
		i += pair;
	}
	if (pgproto_begin(&o, 'K', 8)) {
		pgproto_put32(&o, backend_pid);
		pgproto_put32(&o, 0);	/* worthless: cancels go through the broker */
	}
	if (pgproto_begin(&o, 'Z', 1))
		pgproto_put(&o, "I", 1);
	return pgproto_out_len(&o);
}
