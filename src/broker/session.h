/*
 * session.h - one client connection to the broker: its peer identity, its
 * requests and the leases it holds.
 */
#ifndef PGL_SESSION_H
#define PGL_SESSION_H

#include "broker/access.h"
#include "broker/broker.h"
#include "broker/holder.h"

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

struct session {
	struct holder holder;		/* what the pools see of it: pid, requests */
	struct broker *broker;
	TAILQ_ENTRY(session) link;
	int fd;
	ev_io io;
	int pidfd;			/* the peer process, -1 when unknown */
	ev_io pid_io;
	ev_timer hello_timer;		/* HELLO must come soon after connecting */
	pid_t pid;			/* from SO_PEERCRED; also holder.pid */
	uid_t uid;
	gid_t gid;
	bool welcomed;
	uint16_t version;		/* the protocol version WELCOME chose */
	double acquire_cap;		/* seconds: the bound WELCOME announced for
					 * timeout -1 (version >= 2), else 0 */
	bool closing;
	bool unanswerable;		/* a send failed: closed after this loop pass */
	int refusal;			/* PGL_E*: answer HELLO with this, then close */
	struct access_verdict access;	/* decided again after each reload */
	bool denied_logged;
	uint64_t pools_denied_logged;	/* refusals said once per pool */
	struct slot **leases;		/* lease_cap of them; grows after a reload */
	int nleases;
	int lease_cap;
};

/*
 * A new client on fd (accepted, non-blocking), peer as SO_PEERCRED tells,
 * with the verdicts decided at accept.  refusal 0: served; else a PGL_E*
 * code its HELLO is answered with before it is closed.  The session owns fd
 * from here on, whatever happens.
 */
void session_open(struct broker *b, int fd, const struct ucred *peer, int refusal,
		  const struct access_verdict *verdict);

/* Closes the connection; its leases are orphaned, its requests dropped. */
void session_close(struct session *s, const char *why);

void session_close_all(struct broker *b);

#endif
