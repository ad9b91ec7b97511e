/*
 * control.h - the broker's side of the control protocol, per client.
 */
#ifndef PGL_CONTROL_H
#define PGL_CONTROL_H

#include "broker/access.h"

#include <sys/socket.h>

struct broker;

/*
 * Serves a new client on fd (accepted, non-blocking), peer as SO_PEERCRED
 * tells, with the verdicts decided at accept.  refusal 0: served; else a
 * PGL_E* code its HELLO is answered with before it is closed.  fd is the
 * session's from here on, whatever happens.
 */
void control_open(struct broker *b, int fd, const struct ucred *peer, int refusal,
		  const struct access_verdict *verdict);

#endif
