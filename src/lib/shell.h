/*
 * shell.h - the shell (pgl_conn's PGconn) at a lease's release, and the
 * shells a client keeps.
 */
#ifndef PGL_LIB_SHELL_H
#define PGL_LIB_SHELL_H

#include "lib/client.h"

/*
 * What the shell's libpq state says of the session (enum wire_release_state):
 * idle -> clean; in a transaction or a failed one -> in_transaction; a query,
 * COPY, pipeline or unread results, or a bad connection -> broken.
 */
int shell_release_state(pgl_lease *l);

/*
 * Puts /dev/null under the shell's socket, so that nothing can reach the
 * pooled backend through it any more, then keeps the shell for the next
 * lease of the same backend when state is clean, or frees it (PQfinish's
 * Terminate goes to /dev/null).
 */
void shell_detach(pgl_lease *l, int state);

/* Frees every shell the client keeps. */
void shell_cache_free(pgl_client *c);

#endif
