/*
 * lease.c - acquire and release leases: the hot path; and the lease
 * objects' bookkeeping.
 *
 * acquire is one ACQUIRE out and one GRANT (with the fd) in; release is one
 * RELEASE out and a close(), with no answer awaited: the broker resets the
 * backend after the worker has moved on.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/fdpass.h"
#include "lib/client.h"
#include "lib/lease.h"
#include "lib/process.h"
#include "lib/shell.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * How long past the broker's own timeout the library waits for its answer
 * before it calls the broker stuck (stopped, wedged) and gives up: a live
 * broker answers every ACQUIRE within its timeout.
 */
#define GRACE_MS 2000

/*
 * The longest wait of timeout -1 the library assumes from a broker of
 * protocol version 1, which does not announce its acquire_timeout (the
 * default is 5 s).
 */
#define V1_DEFAULT_WAIT_MS 60000

/*
 * Released lease objects wait in the client's spare list, oldest first,
 * and are reused only once more than this many wait: a second release of
 * a pointer just released finds it poisoned instead of lent again.
 */
#define SPARE_QUARANTINE 4

/* --- lease objects ------------------------------------------------------ */

/*
 * A new lease (LEASE_LIVE) holding the GRANT's descriptor fd, linked to
 * its client; NULL when out of memory (fd is still in flight).
 */
static pgl_lease *
lease_new(pgl_client *c, int fd)
{
	pgl_lease *l;

	if (c->nspare > SPARE_QUARANTINE) {
		l = c->spare;
		c->spare = l->next;
		if (c->spare == NULL)
			c->spare_tail = NULL;
		c->nspare--;
	} else if ((l = malloc(sizeof(*l))) == NULL) {
		return NULL;
	}
	l->magic = LEASE_LIVE;
	l->client = c;
	l->inert = false;
	l->shell_borrowed = false;
	l->shell = NULL;
	l->prev = NULL;
	process_lock();
	l->fd = fd;
	if (c->inflight_fd == fd)
		c->inflight_fd = -1;	/* the lease has it now */
	l->next = c->held;
	if (c->held != NULL)
		c->held->prev = l;
	c->held = l;
	process_unlock();
	return l;
}

/*
 * Closes l's descriptor, unlinks l, poisons it (LEASE_FREED, no fd, no
 * shell) and keeps it for reuse.
 */
static void
lease_free(pgl_lease *l)
{
	pgl_client *c = l->client;

	process_lock();
	if (l->fd >= 0)
		close(l->fd);
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		c->held = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	l->magic = LEASE_FREED;
	l->fd = -1;
	l->shell = NULL;
	l->prev = l->next = NULL;
	if (c->spare_tail != NULL)
		c->spare_tail->next = l;
	else
		c->spare = l;
	c->spare_tail = l;
	c->nspare++;
	process_unlock();
}

/* Closes a GRANT's descriptor that no lease will hold (fd < 0: nothing to close). */
static void
inflight_close(pgl_client *c, int fd)
{
	process_lock();
	if (fd >= 0)
		close(fd);
	if (c->inflight_fd == fd)
		c->inflight_fd = -1;
	process_unlock();
}

#ifdef PGLEASE_DEBUG
/* The debug build's answer to a misuse: say it on stderr and abort.  Async-signal-safe. */
static void
misuse_abort(const char *what, const char *why)
{
#define PIECE(s, n) { .iov_base = (void *)(uintptr_t)(s), .iov_len = (n) }
	static const char head[] = "libpglease: ", sep[] = ": ",
		tail[] = " (built with PGLEASE_DEBUG: aborting)\n";
	struct iovec iov[] = {
		PIECE(head, sizeof(head) - 1), PIECE(what, strlen(what)),
		PIECE(sep, sizeof(sep) - 1), PIECE(why, strlen(why)),
		PIECE(tail, sizeof(tail) - 1),
	};
#undef PIECE
	ssize_t rc = writev(STDERR_FILENO, iov, sizeof(iov) / sizeof(iov[0]));
	(void)rc;
	abort();
}
#endif

bool
lease_ok(const pgl_lease *l, const char *what, bool signal_safe)
{
	if (l == NULL)
		return false;
	if (l->magic == LEASE_LIVE)
		return true;
	const char *why = l->magic == LEASE_FREED ?
			  "the lease was released or discarded already" :
			  "this is not a lease (or one freed by pgl_close)";
#ifdef PGLEASE_DEBUG
	misuse_abort(what, why);
#endif
	if (l->magic == LEASE_FREED && !signal_safe)
		client_fail(l->client, PGL_EINVAL, "%s: %s; a lease is not to be used after "
			    "pgl_release() or pgl_discard()", what, why);
	return false;
}

/* --- acquire ------------------------------------------------------------ */


/*
 * When the library stops waiting for the answer to an ACQUIRE with
 * timeout_ms, sent now: always a finite time.  The broker keeps the time;
 * this only bounds the wait for a broker that does not answer at all.
 */
static int64_t
acquire_deadline(const pgl_client *c, int timeout_ms, int64_t *wait_ms)
{
	if (timeout_ms >= 0)
		*wait_ms = timeout_ms;
	else if (c->version >= 2)
		*wait_ms = c->acquire_timeout_ms;
	else
		*wait_ms = V1_DEFAULT_WAIT_MS;
	return clock_mono_ms() + *wait_ms + GRACE_MS;
}

/* Gives a granted lease back untouched, so that the broker does not count it as ours. */
static void
return_grant(pgl_client *c, uint64_t lease_id)
{
	struct wire_msg r = { .h = { .type = PGL_MSG_LEASE_RELEASE,
				     .request_id = ++c->next_request } };

	r.u.release.lease_id = lease_id;
	r.u.release.state = WIRE_RELEASE_CLEAN;
	if (client_send(c, &r, -1) != 0)
		client_disconnect(c);	/* the broker takes it back as an orphan */
}

pgl_lease *
pgl_acquire(pgl_client *c, const char *pool, int timeout_ms)
{
	struct wire_msg m = { .h = { .type = PGL_MSG_LEASE_ACQUIRE } };
	int fd = -1;

	if (c == NULL)
		return NULL;
	c->errcode = PGL_OK;
	c->error[0] = '\0';
	if (pool == NULL)
		pool = "";
	if (strlen(pool) > WIRE_POOL_NAME_MAX) {
		client_fail(c, PGL_EINVAL, "pool name longer than %d bytes", WIRE_POOL_NAME_MAX);
		return NULL;
	}
	if (timeout_ms < -1) {
		client_fail(c, PGL_EINVAL, "timeout_ms %d: use -1, 0 or a positive number",
			    timeout_ms);
		return NULL;
	}
	memcpy(m.u.acquire.pool, pool, strlen(pool) + 1);
	m.u.acquire.timeout_ms = timeout_ms;

	int64_t deadline, wait_ms;

	/*
	 * A broker that restarted shows as a dead connection: reconnect once.
	 * A new connection's HELLO and this ACQUIRE go out back to back: the
	 * broker reads both in one pass and answers both, one round trip.
	 */
	for (int attempt = 0;; attempt++) {
		bool fresh = client_unconnected(c);
		if (fresh && client_hello_send(c) != 0)
			return NULL;
		if (!fresh)
			client_drain(c);	/* late GRANTs go back first */
		c->errcode = PGL_OK;
		c->error[0] = '\0';
		m.h.request_id = ++c->next_request;
		/* A fresh connection's wait depends on WELCOME: known only after it. */
		if (!fresh)
			deadline = acquire_deadline(c, timeout_ms, &wait_ms);
		int sent = client_send(c, &m, fresh ? c->hello_deadline : deadline);
		int saved = sent == 0 ? 0 : errno;
		if (fresh) {
			/* Refused, the broker said why in answer to HELLO. */
			if (client_hello_wait(c) != 0)
				return NULL;
			deadline = acquire_deadline(c, timeout_ms, &wait_ms);
		}
		if (sent == 0)
			break;
		if (saved == EAGAIN) {
			/* Nothing was sent, so nothing is abandoned: the connection stays. */
			client_fail(c, PGL_ETIMEOUT, "the broker at %s did not take the request "
				    "within %lld ms: it does not read its socket", c->path,
				    (long long)(wait_ms + GRACE_MS));
			return NULL;
		}
		client_disconnect(c);
		if (attempt > 0 || (saved != EPIPE && saved != ECONNRESET && saved != ENOTCONN)) {
			client_fail(c, PGL_EBROKER, "cannot send to the broker at %s: %s", c->path,
				    strerror(saved));
			return NULL;
		}
	}

	uint64_t id = m.h.request_id;
	if (client_wait(c, id, deadline, &m, &fd) != 0) {
		if (c->errcode == PGL_ETIMEOUT) {
			/* Abandoned, not dropped: the connection carries this process's
			 * other leases.  A late GRANT is given back as soon as it is read. */
			client_abandon(c, id);
			client_fail(c, PGL_ETIMEOUT, "the broker at %s did not answer within %lld "
				    "ms (a wait of %lld ms plus %d ms of grace): it is stopped, "
				    "stuck or overloaded", c->path, (long long)(wait_ms + GRACE_MS),
				    (long long)wait_ms, GRACE_MS);
		}
		return NULL;
	}
	if (m.h.type == PGL_MSG_SESSION_ERROR) {
		client_fail(c, m.u.error.code, "%s", m.u.error.message);
		if (m.h.request_id == 0)
			client_disconnect(c);
		return NULL;
	}
	if (m.h.type != PGL_MSG_LEASE_GRANT) {
		client_disconnect(c);
		client_fail(c, PGL_EPROTO, "the broker answered ACQUIRE with %s",
			    wire_type_name(m.h.type));
		return NULL;
	}
	if (fd < 0) {
		bool dropped = fd == FDPASS_DROPPED;
		return_grant(c, m.u.grant.lease_id);
		if (dropped)
			client_fail(c, PGL_EBROKER, "the GRANT's file descriptor could not be "
				    "received: too many open files in this process, or a security "
				    "module (SELinux, AppArmor) refused it");
		else
			client_fail(c, PGL_EBROKER, "the broker's GRANT came without a file "
				    "descriptor");
		return NULL;
	}

	pgl_lease *l = lease_new(c, fd);
	if (l == NULL) {
		return_grant(c, m.u.grant.lease_id);
		inflight_close(c, fd);
		client_fail(c, PGL_ENOMEM, "out of memory");
		return NULL;
	}
	l->lease_id = m.u.grant.lease_id;
	l->conn_gen = c->conn_gen;
	l->slot = m.u.grant.slot;
	l->backend_pid = (int)m.u.grant.backend_pid;
	memcpy(l->user, m.u.grant.user, sizeof(l->user));
	memcpy(l->database, m.u.grant.database, sizeof(l->database));
	l->params_len = m.u.grant.params_len;
	memcpy(l->params, m.u.grant.params, m.u.grant.params_len);
	return l;
}

/* --- release ------------------------------------------------------------ */

/* Gives l back in state; frees l and closes its fd whatever happens. */
static int
give_back(pgl_lease *l, int state)
{
	pgl_client *c = l->client;
	int rc = 0;

	/* The shell lets go of the backend before the broker may reset it. */
	shell_detach(l, state);
	client_drain(c);	/* late GRANTs go back now, not at the next wait */
	if (l->inert) {
		rc = client_fail(c, PGL_ESTALE, "this lease was inherited across fork(); "
				 "it belongs to the parent process");
	} else if (wire_lease_incarnation(l->lease_id) != c->incarnation) {
		rc = client_fail(c, PGL_ESTALE, "the broker restarted since this lease was "
				 "granted; its backend is closed");
	} else if (c->fd < 0 || c->pid != process_pid() || !c->ready ||
		   l->conn_gen != c->conn_gen) {
		rc = client_fail(c, PGL_ESTALE, "the connection to the broker this lease was "
				 "granted on is closed, and the broker took the lease back with "
				 "it; its backend is closed");
	} else {
		struct wire_msg m = { .h = { .type = PGL_MSG_LEASE_RELEASE,
					     .request_id = ++c->next_request } };
		m.u.release.lease_id = l->lease_id;
		m.u.release.state = (uint8_t)state;
		/* Never waits: this may run in an exit handler, or with a broker stopped. */
		if (client_send(c, &m, -1) != 0) {
			int saved = errno;
			client_disconnect(c);
			if (saved == EAGAIN)
				rc = client_fail(c, PGL_EBROKER, "the broker at %s does not read its "
						 "socket: the connection was closed instead of "
						 "waiting, and the broker takes this process's "
						 "leases back as orphans", c->path);
			else
				rc = client_fail(c, saved == EPIPE || saved == ECONNRESET ?
						 PGL_ESTALE : PGL_EBROKER, "the broker went away "
						 "before the lease was released (%s); its backend is "
						 "closed", strerror(saved));
		}
	}
	/* Closing our copy ends the backend when the broker's copy is gone. */
	lease_free(l);
	return rc;
}

int
pgl_release(pgl_lease *l)
{
	if (!lease_ok(l, "pgl_release", false))
		return -1;
	/* A raw-fd lease: the library cannot see the stream; a shell can. */
	return give_back(l, l->shell != NULL && !l->inert ? shell_release_state(l) :
			 WIRE_RELEASE_UNKNOWN);
}

int
pgl_discard(pgl_lease *l)
{
	if (!lease_ok(l, "pgl_discard", false))
		return -1;
	return give_back(l, WIRE_RELEASE_BROKEN);
}

/* --- cancel ------------------------------------------------------------- */

int
pgl_cancel(pgl_lease *l)
{
	int saved = errno;
	int rc = -1;

	/*
	 * Async-signal-safe: no locks, no allocation, one send that never
	 * waits (a full socket is a failure), and only on the connection the
	 * lease came on, once it has said WELCOME: a handler that interrupts a
	 * reconnect must not put a CANCEL before the HELLO.
	 */
	pgl_client *c = lease_ok(l, "pgl_cancel", true) ? l->client : NULL;
	if (c != NULL && !l->inert && c->ready) {
		atomic_signal_fence(memory_order_seq_cst);
		int fd = c->fd;
		if (fd >= 0 && c->pid == process_pid() && l->conn_gen == c->conn_gen) {
			struct wire_msg m = { .h = { .type = PGL_MSG_LEASE_CANCEL } };
			uint8_t buf[WIRE_HEADER_SIZE + 16];
			size_t len;

			m.u.cancel.lease_id = l->lease_id;
			len = wire_encode(&m, buf, sizeof(buf));
			if (len > 0 && fdpass_send_nowait(fd, buf, len, -1) == (ssize_t)len)
				rc = 0;
		}
	}
	errno = saved;
	return rc;
}

/* --- what a lease tells ------------------------------------------------- */

int
pgl_fd(const pgl_lease *l)
{
	return lease_ok(l, "pgl_fd", false) ? l->fd : -1;
}

const char *
pgl_param(const pgl_lease *l, const char *name)
{
	if (!lease_ok(l, "pgl_param", false) || name == NULL)
		return NULL;
	return wire_param(l->params, l->params_len, name);
}

int
pgl_backend_pid(const pgl_lease *l)
{
	return lease_ok(l, "pgl_backend_pid", false) ? l->backend_pid : 0;
}
