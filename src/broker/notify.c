/*
 * notify.c - telling systemd (Type=notify) where the broker is: ready,
 * reloading, stopping, a one-line status, and watchdog pings.
 *
 * The protocol is one datagram of "KEY=value" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET; sd_notify(3) documents it as a stable interface
 * that may be implemented without libsystemd.  Linking libsystemd for it
 * would add a dependency (and its own dependencies) to a daemon that also
 * runs under other supervisors, for twenty lines of code.
 */
#include "autoconf.h"

#include "broker/notify.h"
#include "broker/broker.h"
#include "broker/pool.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Sends one datagram of KEY=value lines; a failure is logged once. */
PGL_PRINTF(2, 3) static void
send_msg(struct notify *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (n->fd < 0)
		return;
	va_start(ap, fmt);
	int len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(msg))
		return;
	if (sendto(n->fd, msg, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT,
		   (struct sockaddr *)&n->addr, n->addrlen) < 0 && !n->failed) {
		n->failed = true;
		log_warn("cannot notify systemd on %s%s", n->addr.sun_path[0] == '\0' ? "@" : "",
			 n->addr.sun_path[0] == '\0' ? n->addr.sun_path + 1 : n->addr.sun_path);
	}
}

/* The one-line summary STATUS= carries. */
static void
format_status(const struct broker *b, char *buf, size_t len)
{
	int idle = 0, leased = 0, size = 0, waiting = 0;

	for (size_t i = 0; i < b->npools; i++) {
		idle += b->pools[i]->nidle;
		leased += b->pools[i]->nleased;
		size += b->pools[i]->size;
		waiting += b->pools[i]->nwaiting;
	}
	snprintf(buf, len, "%s%zu pools, %d backends (%d idle, %d leased), %d clients, "
		 "%d waiting", b->stopping ? "stopping: " : b->draining ? "draining: " : "",
		 b->npools, size, idle, leased, b->nsessions, waiting);
}

void
notify_status(struct broker *b)
{
	struct notify *n = &b->notify;
	char status[sizeof(n->status)];

	if (n->fd < 0)
		return;
	format_status(b, status, sizeof(status));
	if (strcmp(status, n->status) == 0)
		return;
	memcpy(n->status, status, sizeof(status));
	send_msg(n, "STATUS=%s", status);
}

/*
 * A pool is ready once min_size backends are idle or leased (one that is
 * still connecting, or closing after its first connect, is not), or once it failed to
 * connect: a server that is down must not hold the whole broker (and the
 * units ordered after it) back; the pool keeps retrying and says why.
 */
static bool
pool_ready(const struct pool *p)
{
	return p->removed || p->nidle + p->nleased >= p->cfg->min_size || p->failures > 0 ||
	       p->last_error[0] != '\0';
}

static void
ready_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct broker *b = w->data;
	struct notify *n = &b->notify;

	(void)revents;
	if (b->draining || b->stopping) {
		ev_check_stop(loop, w);
		return;
	}
	for (size_t i = 0; i < b->npools; i++)
		if (!pool_ready(b->pools[i]))
			return;
	ev_check_stop(loop, w);
	n->ready = true;
	format_status(b, n->status, sizeof(n->status));
	send_msg(n, "READY=1\nSTATUS=%s\nMAINPID=%ld", n->status, (long)b->pid);
	log_info("ready: %s", n->status);
}

static void
watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct broker *b = w->data;

	(void)loop;
	(void)revents;
	send_msg(&b->notify, "WATCHDOG=1");
}

/* Microseconds from an environment variable; 0 when unset or not a number. */
static unsigned long long
env_usec(const char *name)
{
	const char *v = getenv(name);
	char *end;

	if (v == NULL || *v == '\0')
		return 0;
	errno = 0;
	unsigned long long u = strtoull(v, &end, 10);
	return errno != 0 || *end != '\0' ? 0 : u;
}

void
notify_init(struct broker *b)
{
	struct notify *n = &b->notify;
	const char *path = getenv("NOTIFY_SOCKET");

	n->fd = -1;
	n->addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
	ev_check_init(&n->ready_check, ready_check_cb);
	n->ready_check.data = b;
	/*
	 * Check watchers run when the loop wakes, before the I/O callbacks of
	 * their priority or lower: at the lowest, it runs after the connect
	 * that completed the last pool in the same iteration, not at the next
	 * wakeup (the heartbeat, up to a second later).
	 */
	ev_set_priority(&n->ready_check, EV_MINPRI);
	/* Without systemd too: the log says when the pools are ready. */
	ev_check_start(b->loop, &n->ready_check);
	ev_timer_init(&n->watchdog, watchdog_cb, 1., 0.);
	n->watchdog.data = b;
	if (path == NULL || path[0] == '\0')
		return;
	size_t len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof(n->addr.sun_path)) {
		log_warnx("NOTIFY_SOCKET=%s is neither a socket path nor an abstract \"@name\": "
			  "not notifying systemd", path);
		return;
	}
	memcpy(n->addr.sun_path, path, len);
	if (path[0] == '@')
		n->addr.sun_path[0] = '\0';	/* abstract: no terminating NUL counts */
	n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		log_warn("socket for NOTIFY_SOCKET");
		return;
	}

	unsigned long long usec = env_usec("WATCHDOG_USEC");
	unsigned long long pid = env_usec("WATCHDOG_PID");
	if (usec > 0 && (pid == 0 || pid == (unsigned long long)b->pid)) {
		double every = (double)usec / 2e6;
		ev_timer_set(&n->watchdog, 0., every);
		ev_timer_start(b->loop, &n->watchdog);
		log_info("systemd watchdog: a ping every %.3f s", every);
	}
}

void
notify_reloading(struct broker *b)
{
	struct timespec ts;

	/* still starting: systemd waits for the first READY=1; stopping: a
	 * reload is ignored, and READY=1 must not follow STOPPING=1 */
	if (!b->notify.ready || b->draining || b->stopping)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	send_msg(&b->notify, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading",
		 (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	b->notify.status[0] = '\0';
}

void
notify_reloaded(struct broker *b, bool applied)
{
	struct notify *n = &b->notify;

	if (!n->ready || b->draining || b->stopping)	/* as notify_reloading() */
		return;
	format_status(b, n->status, sizeof(n->status));
	/* systemctl reload succeeds either way: STATUS= tells a refused file */
	send_msg(n, "READY=1\nSTATUS=%s%s", applied ? "" : "reload refused (see the log); ",
		 n->status);
}

void
notify_stopping(struct broker *b)
{
	struct notify *n = &b->notify;

	format_status(b, n->status, sizeof(n->status));
	send_msg(n, "STOPPING=1\nSTATUS=%s", n->status);
}

void
notify_stop(struct broker *b)
{
	struct notify *n = &b->notify;

	ev_check_stop(b->loop, &n->ready_check);
	ev_timer_stop(b->loop, &n->watchdog);
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}
