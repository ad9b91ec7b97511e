/*
 * lease.h - what lease.c offers the rest of the library besides the pgl_*
 * lease calls.
 */
#ifndef PGL_LIB_LEASE_H
#define PGL_LIB_LEASE_H

#include "pglease.h"

#include <stdbool.h>

/*
 * Whether l is a lease in use.  Otherwise a misuse of the API (a lease
 * used after pgl_release() or pgl_discard()): false, with the client's
 * error set when l is recognisably a released lease (never from a signal
 * handler: signal_safe).  Built with PGLEASE_DEBUG, a misuse writes a line
 * to stderr and aborts instead.
 */
bool lease_ok(const pgl_lease *l, const char *what, bool signal_safe);

#endif
