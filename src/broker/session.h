/*
 * session.h - one client connection to the broker: its peer identity, its
 * requests and the leases it holds.
 */
#ifndef PGL_SESSION_H
#define PGL_SESSION_H

#include "broker/access.h"
#include "broker/broker.h"
#include "broker/holder.h"
#include "common/wire.h"

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
	bool admin_only;		/* a refused connection served as an administrator's */
	struct access_verdict access;	/* decided again after each reload */
	bool denied_logged;
	uint64_t pools_denied_logged;	/* refusals said once per pool */
	struct slot **leases;		/* lease_cap of them; grows after a reload */
	int nleases;
	int lease_cap;
	int64_t connected_at_ms;	/* realtime */

	/* admin.c: a PAUSE waiting for its pool(s) to be quiet */
	bool admin_waiting;
	uint64_t admin_request;
	double admin_timeout;		/* seconds */
	char admin_pool[WIRE_POOL_NAME_MAX + 1];	/* "" : every pool */
	ev_timer admin_timer;
};

/* A new session for the client on fd, not yet served (control_open does that); NULL when out of memory. */
struct session *session_new(struct broker *b, int fd, const struct ucred *peer);

/* Sends m (with fd, unless -1) to the client.  -1 when it could not be sent (logged). */
int session_send(struct session *s, const struct wire_msg *m, int fd);

/* Sends an ERROR answering request_id; a client that cannot take it is closed after this loop pass. */
void session_error(struct session *s, uint64_t request_id, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A client's fault: said once, in the log and to the client, then it is closed. */
void session_protocol_error(struct session *s, uint64_t request_id, const char *why);

/* The lease on slot ended (released, orphaned, cut): forgets it. */
void session_drop_lease(struct session *s, struct slot *slot);

/* Closes the connection; its leases are orphaned, its requests dropped. */
void session_close(struct session *s, const char *why);

void session_close_all(struct broker *b);

#endif
