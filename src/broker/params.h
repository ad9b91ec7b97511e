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
 * For a server that does not report in_hot_standby: what pg_is_in_recovery()
 * said after the connect stands for it.
 */
void params_recovery(struct slot *slot, bool in_recovery);

#endif
