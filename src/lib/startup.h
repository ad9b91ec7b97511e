/*
 * startup.h - the server's half of the shell's startup handshake: what
 * pgl_conn() answers libpq on the private listener, built from a GRANT.
 */
#ifndef PGL_LIB_STARTUP_H
#define PGL_LIB_STARTUP_H

#include "common/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Room for the reply to any GRANT a real broker sends: the parameter block
 * itself, 5 bytes of framing per parameter for some 80 parameters, and the
 * fixed messages.  A GRANT that needs more (thousands of one-letter
 * parameters) is refused, not answered.
 */
#define STARTUP_REPLY_MAX (WIRE_PARAMS_MAX + 512)

/*
 * Writes into out, at most cap bytes, what a PostgreSQL 3.0 server answers
 * a startup message: NegotiateProtocolVersion (3.0, no options) when
 * negotiate, AuthenticationOk, one ParameterStatus per "name\0value\0" pair
 * of params, BackendKeyData with backend_pid and a key of 0, ReadyForQuery
 * (idle).  Returns the length written, or 0 when the reply does not fit in
 * cap or params is not a whole number of pairs with non-empty names.
 */
size_t startup_reply(uint8_t *out, size_t cap, const char *params, size_t params_len,
		     uint32_t backend_pid, bool negotiate)
	__attribute__((warn_unused_result));

#endif
