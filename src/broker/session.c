/*
 * session.c - one client connection: accept, identity, requests, leases.
 *
 * A client's fault (a malformed message, a send that cannot go through) is
 * logged once and closes that client only: its leases are orphaned, its
 * queued requests dropped; everyone else is served on.
 */
#include "autoconf.h"

#include "broker/session.h"
#include "broker/access.h"
#include "broker/pool.h"
#include "broker/slot.h"
#include "broker/waitq.h"
#include "common/fdpass.h"
#include "common/log.h"
#include "common/wire.h"
#include "pglease.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void session_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void session_pid_cb(struct ev_loop *loop, ev_io *w, int revents);

/* Seconds a connection may stay without HELLO before it is dropped. */
#define HELLO_TIMEOUT 10.0

static void
session_hello_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	(void)loop;
	(void)revents;
	log_info("client pid=%d uid=%u sent no HELLO within %.0f s; disconnecting it",
		 (int)s->pid, (unsigned)s->uid, HELLO_TIMEOUT);
	session_close(s, "no HELLO");
}

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

static int
send_msg(struct session *s, const struct wire_msg *m, int fd)
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

/* Sends an ERROR answering request_id. */
static void __attribute__((format(printf, 4, 5)))
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
	if (send_msg(s, &m, -1) != 0)
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
	if (send_msg(s, &m, slot->fd) != 0)
		return -1;
	s->leases[s->nleases++] = slot;
	return 0;
}

/* The lease on slot ended (released, orphaned, cut): forgets it. */
static void
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
	if (s->refusal != 0)
		b->nrefused--;
	else
		b->nsessions--;
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

/* A client's fault: said once, in the log and to the client, then it is closed. */
static void
protocol_error(struct session *s, uint64_t request_id, const char *why)
{
	log_warnx("protocol error from client pid=%d uid=%u: %s; disconnecting it",
		  (int)s->pid, (unsigned)s->uid, why);
	session_error(s, request_id, PGL_EPROTO, "protocol error: %s", why);
	session_close(s, why);
}

/* --- identity ----------------------------------------------------------- */

/*
 * Whether the session's peer passes the broker's lists as they are now.
 * Decided at accept and again after each reload, so a reload that drops a
 * uid or gid refuses that peer's next ACQUIRE.
 */
static bool
session_allowed(struct session *s)
{
	if (access_refresh(&s->access, s->broker, s->fd, s->uid, s->gid))
		s->pools_denied_logged = 0;
	return s->access.broker_ok;
}

/* Whether the session's peer may lease from p; session_allowed() was asked first. */
static bool
session_may_use(const struct session *s, const struct pool *p)
{
	return (s->access.pools_ok >> p->index) & 1;
}

/* --- requests ----------------------------------------------------------- */

static struct slot *
find_lease(struct session *s, uint64_t lease_id)
{
	for (int i = 0; i < s->nleases; i++)
		if (s->leases[i]->lease_id == lease_id)
			return s->leases[i];
	return NULL;
}

static void
on_hello(struct session *s, const struct wire_msg *m)
{
	struct broker *b = s->broker;
	uint16_t lo = m->u.hello.version_min > WIRE_VERSION_MIN ? m->u.hello.version_min :
		      WIRE_VERSION_MIN;
	uint16_t hi = m->u.hello.version_max < WIRE_VERSION_MAX ? m->u.hello.version_max :
		      WIRE_VERSION_MAX;

	if (s->welcomed) {
		protocol_error(s, m->h.request_id, "a second HELLO");
		return;
	}
	if (s->refusal == PGL_EDENIED) {
		session_error(s, m->h.request_id, PGL_EDENIED, "user %u may not use this broker "
			      "(allowed_uids, allowed_gids)", (unsigned)s->uid);
		session_close(s, "denied");
		return;
	}
	if (s->refusal == PGL_ELIMIT) {
		session_error(s, m->h.request_id, PGL_ELIMIT, "the broker serves max_clients "
			      "(%d) clients already", b->cfg->broker.max_clients);
		session_close(s, "max_clients reached");
		return;
	}
	if (lo > hi) {
		char why[128];
		snprintf(why, sizeof(why), "client speaks protocol %u..%u, the broker %d..%d",
			 m->u.hello.version_min, m->u.hello.version_max, WIRE_VERSION_MIN,
			 WIRE_VERSION_MAX);
		protocol_error(s, m->h.request_id, why);
		return;
	}
	struct wire_msg w = { .h = { .type = PGL_MSG_SESSION_WELCOME,
				     .request_id = m->h.request_id } };
	w.u.welcome.version = hi;
	if (hi >= 2) {
		/* The library waits this long (plus a grace) for an ACQUIRE with
		 * timeout -1; on_acquire() never makes it wait longer, even after a
		 * reload raises acquire_timeout. */
		double longest = 0;
		for (size_t i = 0; i < b->cfg->npools; i++)
			if (b->cfg->pools[i].acquire_timeout > longest)
				longest = b->cfg->pools[i].acquire_timeout;
		if (longest > 86400.0)
			longest = 86400.0;
		w.u.welcome.acquire_timeout_ms = (uint32_t)ceil(longest * 1000);
		s->acquire_cap = w.u.welcome.acquire_timeout_ms / 1000.0;
	}
	w.u.welcome.broker_pid = (uint32_t)getpid();
	w.u.welcome.incarnation = b->incarnation;
	snprintf(w.u.welcome.shm_name, sizeof(w.u.welcome.shm_name), "%s", b->cfg->broker.shm_name);
	if (send_msg(s, &w, -1) != 0) {
		session_close(s, "cannot send WELCOME");
		return;
	}
	s->welcomed = true;
	s->version = hi;
	ev_timer_stop(b->loop, &s->hello_timer);
}

static void
on_acquire(struct session *s, const struct wire_msg *m)
{
	struct broker *b = s->broker;
	uint64_t id = m->h.request_id;

	if (b->draining) {
		session_error(s, id, PGL_EDRAINING, "the broker is shutting down");
		return;
	}

	if (!session_allowed(s)) {
		if (!s->denied_logged)
			log_warnx("client denied uid=%u pid=%d: no longer in allowed_uids/allowed_gids "
				  "since a reload", (unsigned)s->uid, (int)s->pid);
		s->denied_logged = true;
		session_error(s, id, PGL_EDENIED, "user %u may no longer use this broker "
			      "(allowed_uids, allowed_gids changed by a reload)", (unsigned)s->uid);
		return;
	}
	struct pool *p = pool_find(b, m->u.acquire.pool);
	if (p == NULL) {
		session_error(s, id, PGL_ENOPOOL, "no pool named \"%s\"", m->u.acquire.pool);
		return;
	}
	if (!session_may_use(s, p)) {
		uint64_t bit = UINT64_C(1) << p->index;
		if ((s->pools_denied_logged & bit) == 0)
			log_warnx("client denied pool=%s uid=%u pid=%d: not in the pool's "
				  "allowed_uids/allowed_gids", p->cfg->name, (unsigned)s->uid,
				  (int)s->pid);
		s->pools_denied_logged |= bit;
		session_error(s, id, PGL_EDENIED, "user %u may not use pool \"%s\"",
			      (unsigned)s->uid, p->cfg->name);
		return;
	}
	int max = b->cfg->broker.max_leases_per_client;
	int held = s->nleases + s->holder.nrequests;
	if (held >= max) {
		session_error(s, id, PGL_ELIMIT, "this client already holds or awaits %d leases "
			      "(max_leases_per_client = %d)", held, max);
		return;
	}
	int32_t ms = m->u.acquire.timeout_ms;
	double timeout = ms >= 0 ? ms / 1000.0 : p->cfg->acquire_timeout;
	/* The library gives up on -1 after what WELCOME announced (plus a grace). */
	if (ms < 0 && s->version >= 2 && timeout > s->acquire_cap)
		timeout = s->acquire_cap;
	waitq_acquire(p, &s->holder, id, timeout);
}

static void
on_release(struct session *s, const struct wire_msg *m)
{
	uint64_t lease = m->u.release.lease_id;
	struct slot *slot;

	if (wire_lease_incarnation(lease) != s->broker->incarnation) {
		session_error(s, m->h.request_id, PGL_ESTALE, "lease %016" PRIx64 " belongs to "
			      "another run of the broker", lease);
		return;
	}
	slot = find_lease(s, lease);
	if (slot == NULL) {
		session_error(s, m->h.request_id, PGL_ESTALE,
			      "lease %016" PRIx64 " is not held by this client", lease);
		return;
	}
	session_drop_lease(s, slot);
	slot_release(slot, m->u.release.state);
}

static void
on_cancel(struct session *s, const struct wire_msg *m)
{
	/* Only a live lease of this very client: a late cancel never hits the next holder. */
	struct slot *slot = find_lease(s, m->u.cancel.lease_id);

	if (slot != NULL)
		slot_cancel_query(slot);
}

static void
handle(struct session *s, const struct wire_msg *m)
{
	if (!s->welcomed && m->h.type != PGL_MSG_SESSION_HELLO) {
		protocol_error(s, m->h.request_id, "a request before HELLO");
		return;
	}
	switch (m->h.type) {
	case PGL_MSG_SESSION_HELLO:
		on_hello(s, m);
		break;
	case PGL_MSG_LEASE_ACQUIRE:
		on_acquire(s, m);
		break;
	case PGL_MSG_LEASE_RELEASE:
		on_release(s, m);
		break;
	case PGL_MSG_LEASE_CANCEL:
		on_cancel(s, m);
		break;
	default:
		protocol_error(s, m->h.request_id, "a message only the broker sends");
		break;
	}
}

/*
 * Requests are read in batches, one system call for all a client has queued
 * (a worker's RELEASE and its next ACQUIRE usually come together), and a
 * batch short of READ_BATCH says the queue is empty: no read is spent on
 * EAGAIN.  At most READ_ROUNDS batches per wakeup: one busy client must not
 * starve the others.  The buffers are the loop's; handling a request never
 * reads another session's socket.
 */
#define READ_BATCH 8
#define READ_ROUNDS 4
static uint8_t read_bufs[READ_BATCH][WIRE_MESSAGE_MAX];

static void
session_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = w->data;
	ssize_t lens[READ_BATCH];
	bool reset = false;

	(void)loop;
	(void)revents;
	for (int round = 0; round < READ_ROUNDS && !s->closing && !s->unanswerable; round++) {
		int n = fdpass_recv_batch(s->fd, read_bufs, sizeof(read_bufs[0]), lens, READ_BATCH);

		if (n < 0) {
			if (errno == ECONNRESET && !reset) {
				/* It went with answers of ours unread: the kernel says so
				 * before what it sent last (its RELEASE, say), which is
				 * still read, up to the end of the stream. */
				reset = true;
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				session_close(s, strerror(errno));
			else if (reset)
				session_close(s, "connection reset by the client");
			return;
		}
		for (int i = 0; i < n && !s->closing && !s->unanswerable; i++) {
			struct wire_msg m;
			const char *why;

			if (lens[i] == 0) {
				session_close(s, "connection closed by the client");
				return;
			}
			if (lens[i] == -EPROTO) {
				protocol_error(s, 0, "a message carrying file descriptors");
				return;
			}
			if (lens[i] < 0) {
				protocol_error(s, 0, "a message longer than any request");
				return;
			}
			if (wire_decode(read_bufs[i], (size_t)lens[i], &m, &why) != 0) {
				protocol_error(s, 0, why);
				return;
			}
			handle(s, &m);
		}
		if (n < READ_BATCH)
			return;
	}
}

static void
session_pid_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = w->data;

	(void)revents;
	/*
	 * A dead process has sent all it ever will: what it queued before
	 * exiting (its last RELEASE, say) is read first, or a lease given back
	 * properly would be taken for an orphan.
	 */
	while (!s->closing && !s->unanswerable) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
			break;
		session_read_cb(loop, &s->io, EV_READ);
	}
	session_close(s, "the client process exited");
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

/* --- accepting ---------------------------------------------------------- */

static int
pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

static void
refuse(int fd, int code, const char *text)
{
	struct wire_msg m = { .h = { .type = PGL_MSG_SESSION_ERROR } };
	uint8_t buf[WIRE_MESSAGE_MAX];
	size_t len;

	m.u.error.code = (uint16_t)code;
	snprintf(m.u.error.message, sizeof(m.u.error.message), "%s", text);
	len = wire_encode(&m, buf, sizeof(buf));
	if (len > 0 && fdpass_send(fd, buf, len, -1) < 0)
		log_debug("cannot tell a refused client why: %s", strerror(errno));
	close(fd);
}

void
session_open(struct broker *b, int fd, const struct ucred *peer, int refusal,
	     const struct access_verdict *verdict)
{
	struct ucred cred = *peer;

	struct session *s = calloc(1, sizeof(*s));
	int max = b->cfg->broker.max_leases_per_client;
	if (s == NULL || (s->leases = calloc((size_t)max, sizeof(*s->leases))) == NULL) {
		free(s);
		refuse(fd, PGL_ENOMEM, "the broker is out of memory");
		return;
	}
	s->broker = b;
	s->fd = fd;
	s->lease_cap = max;
	s->refusal = refusal;
	s->access = *verdict;		/* stands until the next reload */
	s->pid = cred.pid;
	s->uid = cred.uid;
	s->gid = cred.gid;
	s->pidfd = -1;
	s->holder.ops = &holder_ops;
	s->holder.pid = cred.pid;
	TAILQ_INIT(&s->holder.requests);
	TAILQ_INSERT_TAIL(&b->sessions, s, link);
	if (refusal != 0)
		b->nrefused++;
	else
		b->nsessions++;
	ev_io_init(&s->io, session_read_cb, fd, EV_READ);
	s->io.data = s;
	ev_io_start(b->loop, &s->io);
	ev_timer_init(&s->hello_timer, session_hello_timeout_cb, HELLO_TIMEOUT, 0.);
	s->hello_timer.data = s;
	ev_timer_start(b->loop, &s->hello_timer);

	/* The process itself, not the socket: a forked child may keep that open. */
	if (cred.pid > 0 && refusal == 0) {
		s->pidfd = pidfd_open(cred.pid);
		if (s->pidfd >= 0) {
			ev_io_init(&s->pid_io, session_pid_cb, s->pidfd, EV_READ);
			s->pid_io.data = s;
			ev_io_start(b->loop, &s->pid_io);
		} else {
			log_debug("pidfd_open(%d): %s", (int)cred.pid, strerror(errno));
		}
	}
	log_debug("client connected pid=%d uid=%u", (int)s->pid, (unsigned)s->uid);
}
