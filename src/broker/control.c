/*
 * control.c - the broker's side of the control protocol: a new client's
 * watchers, its requests read in batches and answered (HELLO, ACQUIRE,
 * RELEASE, CANCEL; ADMIN_COMMAND goes to admin.c), its access decided again after reloads, its process
 * watched so that a dead worker's leases are orphaned at once.
 */
#include "autoconf.h"

#include "broker/control.h"
#include "broker/access.h"
#include "broker/admin.h"
#include "broker/pool.h"
#include "broker/publish.h"
#include "broker/session.h"
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
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void session_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void session_pid_cb(struct ev_loop *loop, ev_io *w, int revents);

/* Seconds a connection may stay without HELLO before it is dropped. */
#define HELLO_TIMEOUT 10.0

void
control_refused(struct broker *b, int refusal, uid_t uid, gid_t gid, pid_t pid, const char *how)
{
	if (refusal == PGL_EDENIED)
		log_warnx("client denied uid=%u gid=%u pid=%d: not in allowed_uids/allowed_gids%s%s",
			  (unsigned)uid, (unsigned)gid, (int)pid, how != NULL ? "; " : "",
			  how != NULL ? how : "");
	else
		log_warnx("client refused uid=%u pid=%d: max_clients=%d reached%s%s",
			  (unsigned)uid, (int)pid, b->cfg->broker.max_clients,
			  how != NULL ? "; " : "", how != NULL ? how : "");
	publish_refused(b, refusal);
}

static void
session_hello_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	(void)loop;
	(void)revents;
	if (s->refusal != 0)
		control_refused(s->broker, s->refusal, s->uid, s->gid, s->pid, "sent no HELLO");
	else
		log_info("client pid=%d uid=%u sent no HELLO within %.0f s; disconnecting it",
			 (int)s->pid, (unsigned)s->uid, HELLO_TIMEOUT);
	session_close(s, "no HELLO");
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
		session_protocol_error(s, m->h.request_id, "a second HELLO");
		return;
	}
	/*
	 * pglease-ctl says HELLO from version 3 on (it needs the ADMIN
	 * messages): an administrator is served even when it is not a client
	 * the lists allow, or max_clients are served.  It stays counted as a
	 * refused connection, and may not lease unless the lists allow it.
	 */
	if (s->refusal != 0 && m->u.hello.version_min >= 3 &&
	    access_is_admin(b, s->fd, s->uid, s->gid)) {
		log_info("administrator let in uid=%u pid=%d (%s)", (unsigned)s->uid, (int)s->pid,
			 s->refusal == PGL_EDENIED ? "not in allowed_uids/allowed_gids" :
			 "beyond max_clients");
		s->refusal = 0;
		s->admin_only = true;
		s->access.broker_ok = false;
	}
	if (s->refusal != 0)
		control_refused(b, s->refusal, s->uid, s->gid, s->pid, NULL);
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
		session_protocol_error(s, m->h.request_id, why);
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
	w.u.welcome.broker_pid = (uint32_t)b->pid;
	w.u.welcome.incarnation = b->incarnation;
	snprintf(w.u.welcome.shm_name, sizeof(w.u.welcome.shm_name), "%s", b->cfg->broker.shm_name);
	if (session_send(s, &w, -1) != 0) {
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

	if (s->admin_only) {
		/* let in past max_clients or the allow lists to administer, not to lease */
		session_error(s, id, PGL_EDENIED, "an administrator's session let in past "
			      "max_clients or allowed_uids/allowed_gids may not lease");
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
		session_protocol_error(s, m->h.request_id, "a request before HELLO");
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
	case PGL_MSG_ADMIN_COMMAND:
		if (s->version < 3)
			session_protocol_error(s, m->h.request_id, "an admin command below "
					       "protocol version 3");
		else
			admin_command(s, m);
		break;
	default:
		session_protocol_error(s, m->h.request_id, "a message only the broker sends");
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
				session_protocol_error(s, 0, "a message carrying file descriptors");
				return;
			}
			if (lens[i] < 0) {
				session_protocol_error(s, 0, "a message longer than any request");
				return;
			}
			if (wire_decode(read_bufs[i], (size_t)lens[i], &m, &why) != 0) {
				session_protocol_error(s, 0, why);
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
control_open(struct broker *b, int fd, const struct ucred *peer, int refusal,
	     const struct access_verdict *verdict)
{
	struct ucred cred = *peer;
	struct session *s = session_new(b, fd, peer);

	if (s == NULL) {
		refuse(fd, PGL_ENOMEM, "the broker is out of memory");
		return;
	}
	s->refusal = refusal;
	s->access = *verdict;		/* stands until the next reload */
	TAILQ_INSERT_TAIL(&b->sessions, s, link);
	if (refusal != 0) {
		b->nrefused++;
	} else {
		b->nsessions++;
		publish_clients(b, true);
	}
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
