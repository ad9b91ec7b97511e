/*
 * session.c - one client connection as an object: answering it, the leases
 * it holds, closing it, and what the pools call on it (struct holder_ops).
 * control.c reads and serves its requests.
 *
 * A client's fault (a malformed message, a send that cannot go through) is
 * logged once and closes that client only: its leases are orphaned, its
 * queued requests dropped; everyone else is served on.
 */
#include "autoconf.h"

#include "broker/session.h"
#include "broker/publish.h"
#include "broker/slot.h"
#include "broker/waitq.h"
#include "common/clock.h"
#include "common/fdpass.h"
#include "common/log.h"
#include "common/wire.h"
#include "pglease.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sessions closed during a loop iteration are freed once it is over. */
static void
bury(struct broker *b)
{
	while (!TAILQ_EMPTY(&b->graveyard)) {
		struct session *s = TAILQ_FIRST(&b->graveyard);
		TAILQ_REMOVE(&b->graveyard, s, link);
		free(s->leases);
		free(s);
	}
	ev_check_stop(b->loop, &b->session_reaper);
}

static void
reap_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	(void)loop;
	(void)revents;
	bury(w->data);
}

/*
 * A client that cannot be answered (it does not read its socket, or is
 * gone) is closed once the current callbacks are done: callers up the
 * stack may still hold its requests.
 */
static void
closer_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct broker *b = w->data;
	struct session *s, *next;

	(void)revents;
	for (s = TAILQ_FIRST(&b->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->unanswerable)
			session_close(s, "it does not read its socket");
	}
	ev_check_stop(loop, w);
}

/* Starts a check watcher of the broker's, for after this loop iteration. */
static void
after_iteration(struct broker *b, ev_check *w, void (*cb)(struct ev_loop *, ev_check *, int))
{
	if (!ev_is_active(w)) {
		ev_check_init(w, cb);
		w->data = b;
		ev_check_start(b->loop, w);
	}
}

static void
close_soon(struct session *s)
{
	struct broker *b = s->broker;

	if (s->unanswerable || s->closing)
		return;
	s->unanswerable = true;
	ev_io_stop(b->loop, &s->io);	/* no more requests from it */
	after_iteration(b, &b->session_closer, closer_cb);
}

int
session_send(struct session *s, const struct wire_msg *m, int fd)
{
	uint8_t buf[WIRE_MESSAGE_MAX];
	size_t len = wire_encode(m, buf, sizeof(buf));

	if (len == 0) {
		log_error("cannot encode %s for client pid=%d", wire_type_name(m->h.type), (int)s->pid);
		return -1;
	}
	if (fdpass_send(s->fd, buf, len, fd) < 0) {
		log_info("cannot send %s to client pid=%d: %s", wire_type_name(m->h.type),
			 (int)s->pid, errno == EAGAIN ? "it does not read its socket" : strerror(errno));
		return -1;
	}
	return 0;
}

void
session_error(struct session *s, uint64_t request_id, int code, const char *fmt, ...)
{
	struct wire_msg m = { .h = { .type = PGL_MSG_SESSION_ERROR, .request_id = request_id } };
	va_list ap;

	if (s->closing)
		return;
	m.u.error.code = (uint16_t)code;
	va_start(ap, fmt);
	vsnprintf(m.u.error.message, sizeof(m.u.error.message), fmt, ap);
	va_end(ap);
	if (session_send(s, &m, -1) != 0)
		close_soon(s);
}

/* Sends a GRANT with the slot's fd; records the lease.  -1 when the send failed. */
static int
session_grant(struct session *s, uint64_t request_id, struct slot *slot)
{
	struct wire_msg m = { .h = { .type = PGL_MSG_LEASE_GRANT, .request_id = request_id } };

	/* The limit is enforced when the request comes (on_acquire): a reload that
	 * lowered it meanwhile does not turn a queued request into a failure. */
	if (s->closing)
		return -1;
	if (s->nleases == s->lease_cap) {
		/* a reload raised max_leases_per_client */
		int cap = s->broker->cfg->broker.max_leases_per_client;
		if (cap <= s->nleases)
			cap = s->nleases + 1;
		struct slot **more = realloc(s->leases, (size_t)cap * sizeof(*more));
		if (more == NULL)
			return -1;
		s->leases = more;
		s->lease_cap = cap;
	}
	m.u.grant.lease_id = slot->lease_id;
	m.u.grant.slot = slot->index;
	m.u.grant.backend_pid = (uint32_t)slot->backend_pid;
	memcpy(m.u.grant.user, slot->user, sizeof(m.u.grant.user));
	memcpy(m.u.grant.database, slot->database, sizeof(m.u.grant.database));
	m.u.grant.params = slot->params;
	m.u.grant.params_len = slot->params_len;
	if (session_send(s, &m, slot->fd) != 0)
		return -1;
	s->leases[s->nleases++] = slot;
	return 0;
}

void
session_drop_lease(struct session *s, struct slot *slot)
{
	for (int i = 0; i < s->nleases; i++) {
		if (s->leases[i] == slot) {
			s->leases[i] = s->leases[--s->nleases];
			return;
		}
	}
}

void
session_close(struct session *s, const char *why)
{
	struct broker *b = s->broker;

	if (s->closing)
		return;
	s->closing = true;
	log_debug("client closed pid=%d uid=%u leases=%d: %s", (int)s->pid, (unsigned)s->uid,
		  s->nleases, why);
	ev_io_stop(b->loop, &s->io);
	ev_timer_stop(b->loop, &s->hello_timer);
	ev_timer_stop(b->loop, &s->admin_timer);
	s->admin_waiting = false;
	if (s->pidfd >= 0) {
		ev_io_stop(b->loop, &s->pid_io);
		close(s->pidfd);
		s->pidfd = -1;
	}
	while (!TAILQ_EMPTY(&s->holder.requests))
		waitq_forget(TAILQ_FIRST(&s->holder.requests));
	while (s->nleases > 0) {
		struct slot *slot = s->leases[--s->nleases];
		slot_orphan(slot, why);
	}
	close(s->fd);
	s->fd = -1;
	TAILQ_REMOVE(&b->sessions, s, link);
	if (s->refusal != 0 || s->admin_only) {
		b->nrefused--;
	} else {
		b->nsessions--;
		publish_clients(b, false);
	}
	TAILQ_INSERT_TAIL(&b->graveyard, s, link);
	after_iteration(b, &b->session_reaper, reap_cb);
}

void
session_close_all(struct broker *b)
{
	while (!TAILQ_EMPTY(&b->sessions))
		session_close(TAILQ_FIRST(&b->sessions), "the broker is stopping");
	bury(b);
}

void
session_protocol_error(struct session *s, uint64_t request_id, const char *why)
{
	log_warnx("protocol error from client pid=%d uid=%u: %s; disconnecting it",
		  (int)s->pid, (unsigned)s->uid, why);
	session_error(s, request_id, PGL_EPROTO, "protocol error: %s", why);
	session_close(s, why);
}

/* --- what the pools call --------------------------------------------------- */

static struct session *
of_holder(struct holder *h)
{
	return (struct session *)((char *)h - offsetof(struct session, holder));
}

static int
holder_grant(struct holder *h, uint64_t request_id, struct slot *slot)
{
	struct session *s = of_holder(h);

	if (session_grant(s, request_id, slot) == 0)
		return 0;
	session_close(s, "cannot send to the client");
	return -1;
}

static void
holder_error(struct holder *h, uint64_t request_id, int code, const char *msg)
{
	session_error(of_holder(h), request_id, code, "%s", msg);
}

static void
holder_cut(struct holder *h, struct slot *slot)
{
	session_drop_lease(of_holder(h), slot);
}

static const struct holder_ops holder_ops = {
	.grant = holder_grant,
	.error = holder_error,
	.cut = holder_cut,
};

struct session *
session_new(struct broker *b, int fd, const struct ucred *peer)
{
	struct session *s = calloc(1, sizeof(*s));
	int max = b->cfg->broker.max_leases_per_client;

	if (s == NULL || (s->leases = calloc((size_t)max, sizeof(*s->leases))) == NULL) {
		free(s);
		return NULL;
	}
	s->broker = b;
	s->fd = fd;
	s->lease_cap = max;
	s->pid = peer->pid;
	s->uid = peer->uid;
	s->gid = peer->gid;
	s->pidfd = -1;
	s->connected_at_ms = clock_real_ms();
	ev_init(&s->admin_timer, NULL);	/* admin.c sets it up; stopping it is always safe */
	s->holder.ops = &holder_ops;
	s->holder.pid = peer->pid;
	TAILQ_INIT(&s->holder.requests);
	return s;
}
