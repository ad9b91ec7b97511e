/*
 * client.c - a libpglease client: its control connection to the broker,
 * the answers read on it, and its errors.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/defaults.h"
#include "common/fdpass.h"
#include "common/ident.h"
#include "lib/client.h"
#include "lib/process.h"
#include "lib/shell.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How long HELLO may take before the broker is called unresponsive. */
#define HELLO_TIMEOUT_MS 10000

int
client_fail(pgl_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	c->errcode = code;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	return -1;
}

/* --- the connection ----------------------------------------------------- */

pgl_client *
pgl_open(const char *socket_path)
{
	pgl_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (socket_path == NULL || socket_path[0] == '\0')
		socket_path = getenv("PGLEASE_SOCKET");
	if (socket_path == NULL || socket_path[0] == '\0')
		socket_path = PGL_DEFAULT_SOCKET;
	c->path = strdup(socket_path);
	if (c->path == NULL) {
		free(c);
		return NULL;
	}
	c->fd = -1;
	c->inflight_fd = -1;
	process_add(c);
	return c;
}

void
pgl_close(pgl_client *c)
{
	if (c == NULL)
		return;
	while (c->held != NULL)
		pgl_release(c->held);
	shell_cache_free(c);
	client_disconnect(c);
	process_remove(c);
	while (c->spare != NULL) {
		pgl_lease *l = c->spare;
		c->spare = l->next;
		l->magic = 0;
		free(l);
	}
	free(c->path);
	free(c);
}

void
client_disconnect(pgl_client *c)
{
	process_lock();
	/* Not ready first: a signal handler must never send on a closed or reused number. */
	c->ready = 0;
	atomic_signal_fence(memory_order_seq_cst);
	if (c->fd >= 0 && c->pid == process_pid())
		close(c->fd);
	c->fd = -1;
	c->nabandoned = 0;	/* the broker forgets them with the connection */
	process_unlock();
}

int
client_send(pgl_client *c, const struct wire_msg *m, int64_t deadline_ms)
{
	uint8_t buf[WIRE_MESSAGE_MAX];
	size_t len = wire_encode(m, buf, sizeof(buf));

	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		if (fdpass_send_nowait(c->fd, buf, len, -1) >= 0)
			return 0;
		if (errno != EAGAIN || deadline_ms < 0)
			return -1;
		/* A broker busy for a moment: wait for room, never past the deadline. */
		int64_t left = deadline_ms - clock_mono_ms();
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
		if (left <= 0 || (poll(&pfd, 1, left > 1000 ? 1000 : (int)left) < 0 && errno != EINTR)) {
			errno = EAGAIN;
			return -1;
		}
	}
}

/*
 * Whether the broker whose socket is held by uid may be trusted with this
 * process's requests (and trusted to hand it descriptors and parameters):
 * root, this process's own user, or the user $PGLEASE_BROKER_UID names, a
 * number or a user name.  0, or -1 with the client's error set.
 */
static int
check_broker_uid(pgl_client *c, uid_t uid)
{
	const char *env = getenv("PGLEASE_BROKER_UID");

	if (uid == 0 || uid == geteuid() || uid == getuid())
		return 0;
	if (env != NULL && env[0] != '\0') {
		uid_t named;
		if (ident_parse_uid(env, &named) != 0)
			return client_fail(c, PGL_EINVAL, "PGLEASE_BROKER_UID=%s is neither a user id "
					   "nor a user name", env);
		if (uid == named)
			return 0;
	}
	return client_fail(c, PGL_EBROKER, "refusing the broker at %s: its socket is held by "
			   "uid %u, which is neither root, this process's uid %u, nor "
			   "PGLEASE_BROKER_UID%s%s", c->path, (unsigned)uid, (unsigned)geteuid(),
			   env != NULL && env[0] != '\0' ? "=" : " (unset)",
			   env != NULL && env[0] != '\0' ? env : "");
}

/*
 * Connects without blocking: a broker whose listen queue is full (stopped,
 * say) makes a blocking connect() wait for ever, so the attempt is repeated
 * until deadline_ms instead.
 */
static int
connect_until(int fd, const struct sockaddr_un *sun, int64_t deadline_ms)
{
	for (;;) {
		if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 || errno == EISCONN)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		int64_t left = deadline_ms - clock_mono_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct timespec ts = { .tv_nsec = (left > 10 ? 10 : left) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int
client_hello_send(pgl_client *c)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int64_t deadline = clock_mono_ms() + HELLO_TIMEOUT_MS;

	if (strlen(c->path) >= sizeof(sun.sun_path))
		return client_fail(c, PGL_EINVAL, "broker socket path too long: %s", c->path);
	memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
	/* Non-blocking for good: no call of the library waits on it unbounded. */
	process_lock();		/* a fork() must find the socket recorded, or not made yet */
	c->ready = 0;
	c->hello_id = 0;
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	c->pid = process_pid();
	process_unlock();
	if (c->fd < 0)
		return client_fail(c, PGL_EBROKER, "socket: %s", strerror(errno));
	if (connect_until(c->fd, &sun, deadline) != 0) {
		int saved = errno;
		client_disconnect(c);
		return client_fail(c, PGL_EBROKER, "cannot connect to the broker at %s: %s",
				   c->path, saved == ETIMEDOUT ? "it accepts no connection (its "
				   "listen queue stays full)" : strerror(saved));
	}

	/* Nothing is said to, or taken from, a listener of the wrong user. */
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) != 0) {
		int saved = errno;
		client_disconnect(c);
		return client_fail(c, PGL_EBROKER, "cannot tell who holds the broker socket %s: %s",
				   c->path, strerror(saved));
	}
	if (check_broker_uid(c, cred.uid) != 0) {
		client_disconnect(c);
		return -1;
	}

	struct wire_msg m = { .h = { .type = PGL_MSG_SESSION_HELLO,
				     .request_id = ++c->next_request } };
	m.u.hello.version_min = WIRE_VERSION_MIN;
	m.u.hello.version_max = WIRE_VERSION_MAX;
	m.u.hello.pid = (uint32_t)process_pid();
	if (client_send(c, &m, deadline) != 0) {
		int saved = errno;
		/* A broker that refused us at once has said why before closing. */
		ssize_t n = fdpass_recv(c->fd, c->buf, sizeof(c->buf), NULL);
		const char *why;
		if (n > 0 && wire_decode(c->buf, (size_t)n, &m, &why) == 0 &&
		    m.h.type == PGL_MSG_SESSION_ERROR) {
			client_disconnect(c);
			return client_fail(c, m.u.error.code, "%s", m.u.error.message);
		}
		client_disconnect(c);
		return client_fail(c, PGL_EBROKER, "cannot talk to the broker at %s: %s",
				   c->path, strerror(saved));
	}
	c->hello_id = m.h.request_id;
	c->hello_deadline = deadline;
	return 0;
}

int
client_hello_wait(pgl_client *c)
{
	struct wire_msg m;

	if (client_wait(c, c->hello_id, c->hello_deadline, &m, NULL) != 0) {
		client_disconnect(c);
		if (c->errcode == PGL_ETIMEOUT)
			return client_fail(c, PGL_EBROKER, "the broker at %s did not answer HELLO "
					   "within %d ms: it is stopped or overloaded", c->path,
					   HELLO_TIMEOUT_MS);
		return -1;
	}
	c->hello_id = 0;
	if (m.h.type == PGL_MSG_SESSION_ERROR) {
		client_disconnect(c);
		return client_fail(c, m.u.error.code, "%s", m.u.error.message);
	}
	if (m.h.type != PGL_MSG_SESSION_WELCOME || m.u.welcome.version < WIRE_VERSION_MIN ||
	    m.u.welcome.version > WIRE_VERSION_MAX) {
		client_disconnect(c);
		return client_fail(c, PGL_EPROTO, "the broker at %s answered HELLO with %s",
				   c->path, wire_type_name(m.h.type));
	}
	c->incarnation = m.u.welcome.incarnation;
	c->version = m.u.welcome.version;
	memcpy(c->shm_name, m.u.welcome.shm_name, sizeof(c->shm_name));
	c->acquire_timeout_ms = m.u.welcome.acquire_timeout_ms;
	c->conn_gen++;
	/* Last: from here a signal handler may send on fd (pgl_cancel). */
	atomic_signal_fence(memory_order_seq_cst);
	c->ready = 1;
	return 0;
}

bool
client_unconnected(pgl_client *c)
{
	if (c->fd >= 0 && c->pid != process_pid()) {
		c->ready = 0;
		c->fd = -1;	/* the parent's: never ours to use or close */
	}
	return c->fd < 0;
}

int
client_ensure(pgl_client *c)
{
	if (!client_unconnected(c))
		return 0;
	if (client_hello_send(c) != 0)
		return -1;
	return client_hello_wait(c);
}

/* --- answers ------------------------------------------------------------- */

/*
 * Receives one message, if one is queued, into m (*got: its descriptor,
 * closed already unless it came with a GRANT).  1 when one came, 0 when
 * none was queued, -1 with the client's error set and the connection
 * closed when the stream ended or broke.
 */
static int
recv_one(pgl_client *c, struct wire_msg *m, int *got)
{
	ssize_t n;

	do
		n = fdpass_recv(c->fd, c->buf, sizeof(c->buf), got);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0) {
		int saved = n < 0 ? errno : 0;
		client_disconnect(c);
		if (saved == EPROTO || saved == EMSGSIZE)
			return client_fail(c, PGL_EPROTO, "malformed message from the broker at %s",
					   c->path);
		return client_fail(c, PGL_EBROKER, "the broker at %s closed the connection%s%s",
				   c->path, saved ? ": " : "", saved ? strerror(saved) : "");
	}

	const char *why;
	if (wire_decode(c->buf, (size_t)n, m, &why) != 0) {
		if (*got >= 0)
			close(*got);
		client_disconnect(c);
		return client_fail(c, PGL_EPROTO, "malformed message from the broker at %s: %s",
				   c->path, why);
	}
	/* Only a GRANT carries a descriptor: any other one is closed here. */
	if (m->h.type != PGL_MSG_LEASE_GRANT) {
		if (*got >= 0)
			close(*got);
		*got = -1;
	}
	return 1;
}

void
client_abandon(pgl_client *c, uint64_t id)
{
	if (c->nabandoned == ABANDONED_MAX) {
		/* The oldest is forgotten; its GRANT is still given back when read. */
		memmove(c->abandoned, c->abandoned + 1, (ABANDONED_MAX - 1) * sizeof(c->abandoned[0]));
		c->nabandoned--;
	}
	c->abandoned[c->nabandoned++] = id;
}

/* The answer to request id came: it is no longer awaited by anyone. */
static void
answered(pgl_client *c, uint64_t id)
{
	for (int i = 0; i < c->nabandoned; i++)
		if (c->abandoned[i] == id) {
			c->abandoned[i] = c->abandoned[--c->nabandoned];
			return;
		}
}

/*
 * A message nobody waits for: the answer to an abandoned ACQUIRE, whose
 * GRANT is given straight back (RELEASE, descriptor closed), or an ERROR
 * about a RELEASE.  -1 with the connection closed when the RELEASE could
 * not go (the broker then takes the lease back as an orphan).
 */
static int
unawaited(pgl_client *c, const struct wire_msg *m, int fd)
{
	if (m->h.type == PGL_MSG_SESSION_ERROR && m->h.request_id == 0) {
		/* The broker says why it ends the session: nothing more to wait for. */
		client_disconnect(c);
		return client_fail(c, m->u.error.code, "%s", m->u.error.message);
	}
	answered(c, m->h.request_id);
	if (m->h.type != PGL_MSG_LEASE_GRANT)
		return 0;

	struct wire_msg r = { .h = { .type = PGL_MSG_LEASE_RELEASE,
				     .request_id = ++c->next_request } };
	r.u.release.lease_id = m->u.grant.lease_id;
	r.u.release.state = WIRE_RELEASE_CLEAN;
	if (fd >= 0)
		close(fd);
	if (client_send(c, &r, -1) != 0) {
		int saved = errno;
		client_disconnect(c);
		return client_fail(c, PGL_EBROKER, "cannot give a late GRANT back to the broker "
				   "at %s (%s): the connection was closed, and the broker takes "
				   "its leases back as orphans", c->path, saved == EAGAIN ?
				   "it does not read its socket" : strerror(saved));
	}
	return 0;
}

void
client_drain(pgl_client *c)
{
	struct wire_msg m;
	int got;

	if (c->nabandoned == 0)
		return;		/* the common case: no lock, no system call */
	process_lock();
	while (c->nabandoned > 0 && c->fd >= 0 && c->ready && c->pid == process_pid() &&
	       recv_one(c, &m, &got) > 0)
		if (unawaited(c, &m, got) != 0)
			break;
	process_unlock();
}

int
client_wait(pgl_client *c, uint64_t id, int64_t deadline_ms, struct wire_msg *m, int *fd)
{
	for (;;) {
		int64_t left = deadline_ms - clock_mono_ms();
		if (left <= 0)
			return client_fail(c, PGL_ETIMEOUT, "the broker at %s did not answer in "
					   "time", c->path);

		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return client_fail(c, PGL_EBROKER, "poll: %s", strerror(errno));
		if (rc == 0)
			continue;

		/*
		 * From the receive until the descriptor is recorded (as in flight,
		 * or closed), a fork() in another thread waits: the child must know
		 * of every backend socket it inherits.
		 */
		int got;
		process_lock();
		rc = recv_one(c, m, &got);
		if (rc > 0 && (m->h.request_id == id || (m->h.type == PGL_MSG_SESSION_ERROR &&
							 m->h.request_id == 0))) {
			if (fd != NULL && got >= 0)
				c->inflight_fd = got;
			else if (got >= 0)
				close(got);
			if (fd != NULL)
				*fd = got;
			process_unlock();
			return 0;
		}
		if (rc > 0)
			rc = unawaited(c, m, got) == 0 ? 0 : -1;
		process_unlock();
		if (rc < 0)
			return -1;
	}
}

const char *
pgl_error(const pgl_client *c)
{
	return c != NULL ? c->error : "no client (pgl_open failed)";
}

int
pgl_errcode(const pgl_client *c)
{
	return c != NULL ? c->errcode : PGL_EINVAL;
}
