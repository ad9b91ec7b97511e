/*
 * control.h - the broker's side of the control protocol, per client.
 */
#ifndef PGL_CONTROL_H
#define PGL_CONTROL_H

#include "broker/access.h"

#include <sys/socket.h>

struct broker;

/*
 * Logs a refused connection (PGL_EDENIED or PGL_ELIMIT) at warn and counts
 * it in the shared memory; how: what became of it, or NULL (answered).
 * Called where the refusal is acted on, not at accept: an administrator's
 * HELLO is let in past both.
 */
void control_refused(struct broker *b, int refusal, uid_t uid, gid_t gid, pid_t pid,
		     const char *how);

/*
 * Serves a new client on fd (accepted, non-blocking), peer as SO_PEERCRED
 * tells, with the verdicts decided at accept.  refusal 0: served; else a
 * PGL_E* code its HELLO is answered with before it is closed.  fd is the
 * session's from here on, whatever happens.
 */
void control_open(struct broker *b, int fd, const struct ucred *peer, int refusal,
		  const struct access_verdict *verdict);

#endif
