/*
 * listener.c - the broker's listening socket: taking over a dead broker's,
 * never a live one's; accepting clients in batches, pausing when out of
 * descriptors.
 */
#include "autoconf.h"

#include "broker/listener.h"
#include "broker/access.h"
#include "broker/broker.h"
#include "broker/control.h"
#include "broker/publish.h"
#include "common/log.h"
#include "pglease.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Whether a broker answers on path.  A socket file nobody listens on is a
 * dead broker's and may be replaced.
 */
static int
socket_in_use(const char *path, bool *in_use)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int rc = 0;

	*in_use = false;
	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		*in_use = true;
	else if (errno != ECONNREFUSED && errno != ENOENT)
		rc = -1;
	close(fd);
	return rc;
}

/* Refused connections waiting for their HELLO, at most. */
#define MAX_REFUSED 64

/* Seconds accepting pauses after running out of descriptors. */
#define ACCEPT_PAUSE 0.1

static void
accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct broker *b = w->data;

	(void)revents;
	if (b->listening)
		ev_io_start(loop, &b->listen_io);
}

/*
 * Accepts the clients waiting on the listening socket (a bounded batch).
 * -1 when the process is out of descriptors: accepting should pause.
 */
static int
accept_batch(struct broker *b)
{
	for (int accepted = 0; accepted < 256; accepted++) {
		int fd = accept4(b->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: those served keep being served; the
				 * caller pauses accepting instead of spinning on it. */
				log_warn("accept on %s: pausing new clients", b->cfg->broker.socket);
				return -1;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept on %s", b->cfg->broker.socket);
			return 0;
		}

		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
			log_warn("SO_PEERCRED");
			close(fd);
			continue;
		}
		/*
		 * A stranger, or one client too many, is told why in answer to its
		 * HELLO: closing with the HELLO unread would show the client a reset
		 * instead of the reason.  Such connections never take a client's
		 * place, and only a few may wait (the HELLO timeout bounds each).
		 */
		struct access_verdict verdict = { .gen = b->cfg_gen - 1 };
		int refusal = 0;
		(void)access_refresh(&verdict, b, fd, cred.uid, cred.gid);
		/* Logged and counted when acted on (control.c): an administrator's
		 * HELLO is let in even so. */
		if (!verdict.broker_ok)
			refusal = PGL_EDENIED;
		else if (b->nsessions >= b->cfg->broker.max_clients)
			refusal = PGL_ELIMIT;
		if (refusal != 0 && b->nrefused >= MAX_REFUSED) {
			control_refused(b, refusal, cred.uid, cred.gid, cred.pid, "closed at once: "
					"too many refused connections wait for their HELLO");
			close(fd);
			continue;
		}
		control_open(b, fd, &cred, refusal, &verdict);
	}
	return 0;
}

static void
listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct broker *b = w->data;

	(void)revents;
	if (accept_batch(b) < 0) {
		/* EMFILE leaves the connection queued: the socket stays readable. */
		ev_io_stop(loop, &b->listen_io);
		ev_timer_init(&b->accept_pause, accept_resume_cb, ACCEPT_PAUSE, 0.);
		b->accept_pause.data = b;
		ev_timer_start(loop, &b->accept_pause);
	}
}

int
listener_start(struct broker *b)
{
	const char *path = b->cfg->broker.socket;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	bool in_use;

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("%s exists and is not a socket: not replacing it", path);
			return -1;
		}
		if (socket_in_use(path, &in_use) != 0) {
			log_error("cannot tell whether a broker listens on %s: %s", path,
				  strerror(errno));
			return -1;
		}
		if (in_use) {
			log_error("another broker listens on %s", path);
			return -1;
		}
		log_info("replacing the stale socket %s", path);
		if (unlink(path) != 0 && errno != ENOENT) {
			log_error("cannot remove the stale socket %s: %s", path, strerror(errno));
			return -1;
		}
	}

	b->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->listen_fd < 0) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	/* No window in which the socket is more open than configured. */
	mode_t old = umask(0777 & ~b->cfg->broker.socket_mode);
	int rc = bind(b->listen_fd, (struct sockaddr *)&sun, sizeof(sun));
	int saved = errno;
	umask(old);
	if (rc != 0) {
		log_error("cannot bind %s: %s%s", path, strerror(saved),
			  saved == ENOENT ? " (create its directory first)" : "");
		goto fail;
	}
	if (b->cfg->broker.socket_group != NULL &&
	    chown(path, (uid_t)-1, b->cfg->broker.socket_gid) != 0) {
		log_error("cannot give %s to group %s: %s", path, b->cfg->broker.socket_group,
			  strerror(errno));
		unlink(path);
		goto fail;
	}
	if (chmod(path, b->cfg->broker.socket_mode) != 0) {
		log_error("cannot set the mode of %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	if (listen(b->listen_fd, SOMAXCONN) != 0) {
		log_error("cannot listen on %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	ev_io_init(&b->listen_io, listen_cb, b->listen_fd, EV_READ);
	b->listen_io.data = b;
	ev_io_start(b->loop, &b->listen_io);
	b->listening = true;
	return 0;
fail:
	close(b->listen_fd);
	b->listen_fd = -1;
	return -1;
}

void
listener_stop(struct broker *b)
{
	if (!b->listening)
		return;
	ev_io_stop(b->loop, &b->listen_io);
	ev_timer_stop(b->loop, &b->accept_pause);
	close(b->listen_fd);
	b->listen_fd = -1;
	unlink(b->cfg->broker.socket);
	b->listening = false;
}
