/*
 * params.h - the server parameters a GRANT carries: the slot's block of
 * "name\0value\0" pairs, as the backend reported them at startup and since.
 */
#ifndef PGL_PARAMS_H
#define PGL_PARAMS_H

#include "common/pgproto.h"

#include <stdbool.h>

struct slot;

/* Rebuilds the slot's block from what libpq saw at startup (slot->conn). */
void params_from_libpq(struct slot *slot);

/*
 * Applies a ParameterStatus message (name\0value\0) from the backend to the
 * slot's block.  A malformed one, or a parameter a GRANT does not carry, is
 * ignored.
 */
void params_message(struct slot *slot, const struct pgproto_msg *m);

/*
 * What a query of the broker's own said of the server: in recovery
 * (pg_is_in_recovery()), read-only (default_transaction_read_only).
 */
void params_server_state(struct slot *slot, bool in_recovery, bool read_only);

#endif
