/*
 * broker.c - the daemon around the pools: shared memory, the listening
 * socket, signals, heartbeat, drain and stop.
 */
#include "autoconf.h"

#include "broker/broker.h"
#include "broker/exchange.h"
#include "broker/helper.h"
#include "broker/pool.h"
#include "broker/session.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

uint64_t
broker_random(struct broker *b)
{
	/* xorshift64*: fast, and good enough for jitter and reset nonces */
	uint64_t x = b->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	b->rng = x;
	return x * UINT64_C(2685821657736338717);
}

double
broker_random01(struct broker *b)
{
	return (double)(broker_random(b) >> 11) / 9007199254740992.0;
}

/* --- the listening socket ----------------------------------------------- */

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

static void
listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct broker *b = w->data;

	(void)revents;
	if (session_accept(b) < 0) {
		/* EMFILE leaves the connection queued: the socket stays readable. */
		ev_io_stop(loop, &b->listen_io);
		ev_timer_init(&b->accept_pause, accept_resume_cb, ACCEPT_PAUSE, 0.);
		b->accept_pause.data = b;
		ev_timer_start(loop, &b->accept_pause);
	}
}

static int
listen_start(struct broker *b)
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

static void
listen_stop(struct broker *b)
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

/* --- stopping ----------------------------------------------------------- */

void
broker_check_done(struct broker *b)
{
	if (!b->draining && !b->stopping)
		return;
	if (b->draining && !b->stopping && pool_total_leased(b) == 0) {
		log_info("every lease came back; closing");
		b->stopping = true;
		ev_timer_stop(b->loop, &b->drain_timer);
		pool_close_all(b, true);
	}
	if (b->stopping && pool_total_size(b) == 0)
		ev_break(b->loop, EVBREAK_ALL);
}

static void
drain_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct broker *b = w->data;

	(void)loop;
	(void)revents;
	log_warnx("shutdown_timeout reached with %d leases out; closing them",
		  pool_total_leased(b));
	b->stopping = true;
	pool_close_all(b, true);
	broker_check_done(b);
}

/* SIGTERM: no new clients or leases; wait for leases up to shutdown_timeout. */
static void
drain(struct broker *b)
{
	double t = b->cfg->broker.shutdown_timeout;

	if (b->draining)
		return;
	log_info("draining: %d leases out, waiting up to %g s", pool_total_leased(b), t);
	b->draining = true;
	listen_stop(b);
	pool_drain_waiters(b);
	pool_close_all(b, false);
	ev_timer_init(&b->drain_timer, drain_timeout_cb, t, 0.);
	b->drain_timer.data = b;
	if (t > 0)
		ev_timer_start(b->loop, &b->drain_timer);
	else
		b->stopping = true, pool_close_all(b, true);
	broker_check_done(b);
}

static void
report_log(void *arg, bool is_error, const char *msg)
{
	(void)arg;
	if (is_error)
		log_error("reload: %s", msg);
	else
		log_warnx("reload: %s", msg);
}

/* Settings only a restart changes: kept as they are, with a warning. */
static void
keep_restart_only(struct broker *b, struct config *nc)
{
	struct broker_config *now = &b->cfg->broker, *next = &nc->broker;

	if (strcmp(now->socket, next->socket) != 0 || now->socket_mode != next->socket_mode ||
	    now->socket_gid != next->socket_gid ||
	    (now->socket_group == NULL) != (next->socket_group == NULL))
		log_warnx("reload: socket, socket_mode and socket_group change only with a "
			  "restart; keeping %s", now->socket);
	if (strcmp(now->shm_name, next->shm_name) != 0 || now->shm_mode != next->shm_mode)
		log_warnx("reload: shm_name and shm_mode change only with a restart; keeping %s",
			  now->shm_name);
	if (now->max_total_slots != next->max_total_slots)
		log_warnx("reload: max_total_slots changes only with a restart; keeping %d",
			  now->max_total_slots);
	char *socket = strdup(now->socket), *shm = strdup(now->shm_name);
	if (socket != NULL && shm != NULL) {
		free(next->socket);
		free(next->shm_name);
		next->socket = socket;
		next->shm_name = shm;
	} else {
		free(socket);
		free(shm);
	}
	next->socket_mode = now->socket_mode;
	next->socket_gid = now->socket_gid;
	free(next->socket_group);
	next->socket_group = now->socket_group != NULL ? strdup(now->socket_group) : NULL;
	next->shm_mode = now->shm_mode;
	next->max_total_slots = now->max_total_slots;
}

/*
 * SIGHUP: a valid file applies in place; an invalid one changes nothing and
 * every error is logged with its FILE:LINE.
 */
/*
 * Frees the configurations that reloads replaced and that no pool points
 * into any more (a removed pool keeps its own until it is reaped), secrets
 * zeroed.
 */
void
broker_release_configs(struct broker *b)
{
	size_t keep = 0;

	for (size_t i = 0; i < b->nold_configs; i++) {
		struct config *old = b->old_configs[i];
		bool used = false;
		for (size_t j = 0; j < b->npools && !used; j++)
			used = b->pools[j]->cfg >= old->pools &&
			       b->pools[j]->cfg < old->pools + old->npools;
		if (used)
			b->old_configs[keep++] = old;
		else
			config_free(old);
	}
	b->nold_configs = keep;
}

static void
reload(struct broker *b)
{
	const char *path = b->cfg->path;
	int nerrors = 0;
	char err[512];

	log_info("SIGHUP: reloading %s", path);
	if (b->draining || b->stopping) {
		log_warnx("reload: the broker is stopping; ignored");
		return;
	}
	struct config *nc = config_load(path, report_log, NULL, &nerrors);
	if (nc == NULL) {
		log_error("reload: %s has %d error%s; the running configuration stays", path,
			  nerrors, nerrors == 1 ? "" : "s");
		return;
	}
	keep_restart_only(b, nc);
	if (pool_reload(b, nc, err, sizeof(err)) != 0) {
		log_error("reload refused: %s; the running configuration stays", err);
		config_free(nc);
		return;
	}
	/* Pools still draining may point into the old configuration: it stays
	 * until broker_release_configs() finds nothing pointing into it. */
	struct config **old = realloc(b->old_configs, (b->nold_configs + 1) * sizeof(*old));
	if (old == NULL) {
		log_error("reload refused: out of memory; the running configuration stays");
		config_free(nc);
		return;
	}
	old[b->nold_configs++] = b->cfg;
	b->old_configs = old;
	b->cfg = nc;
	b->cfg_gen++;
	log_init("pgleased", nc->broker.log_level,
		 nc->broker.log_target == CONFIG_LOG_SYSLOG ? LOG_TARGET_SYSLOG : LOG_TARGET_STDERR);
	broker_release_configs(b);
	log_info("reloaded %s: %zu pools", nc->path, nc->npools);
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct broker *b = w->data;

	(void)revents;
	switch (w->signum) {
	case SIGTERM:
		drain(b);
		break;
	case SIGINT:
		log_info("SIGINT: closing every connection now");
		b->draining = b->stopping = true;
		listen_stop(b);
		pool_drain_waiters(b);
		pool_close_all(b, true);
		ev_break(loop, EVBREAK_ALL);
		break;
	case SIGHUP:
		reload(b);
		break;
	}
}

static void
heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct broker *b = w->data;

	(void)loop;
	(void)revents;
	shm_begin(&b->shm);
	b->shm.hdr->heartbeat_ms = clock_real_ms();
	shm_end(&b->shm);
}

/* systemd Type=notify readiness, without linking libsystemd. */
static void
notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static const char msg[] = "READY=1";

	if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sun.sun_path))
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if (sendto(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
		log_debug("sd_notify: %s", strerror(errno));
	close(fd);
}

/* --- running ------------------------------------------------------------ */

int
broker_run(struct config *cfg)
{
	/*
	 * Static: a helper thread still blocked in libpq when this returns
	 * locks b.helpers.lock to free its job, so b must outlive the call.
	 */
	static struct broker b;
	char err[512];
	int status = 1;

	b = (struct broker){ .cfg = cfg, .listen_fd = -1 };
	b.uid = getuid();
	log_init("pgleased", cfg->broker.log_level,
		 cfg->broker.log_target == CONFIG_LOG_SYSLOG ? LOG_TARGET_SYSLOG : LOG_TARGET_STDERR);
	signal(SIGPIPE, SIG_IGN);
	TAILQ_INIT(&b.sessions);

	if (getrandom(&b.rng, sizeof(b.rng), 0) != sizeof(b.rng) ||
	    getrandom(&b.incarnation, sizeof(b.incarnation), 0) != sizeof(b.incarnation)) {
		log_error("getrandom: %s", strerror(errno));
		config_free(cfg);
		return 1;
	}
	b.rng |= 1;
	if (b.incarnation == 0)
		b.incarnation = 1;

	b.loop = ev_default_loop(EVFLAG_AUTO);
	if (b.loop == NULL) {
		log_error("cannot start the event loop");
		config_free(cfg);
		return 1;
	}
	/* The socket first: a live broker on it keeps its segment too. */
	b.shm.fd = -1;
	if (listen_start(&b) != 0)
		goto out;
	if (shm_create(&b.shm, cfg->broker.shm_name, cfg->broker.shm_mode,
		       (uint32_t)cfg->broker.max_total_slots, b.incarnation, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	shm_begin(&b.shm);
	snprintf(b.shm.hdr->socket, sizeof(b.shm.hdr->socket), "%s", cfg->broker.socket);
	shm_end(&b.shm);
	b.backend_events = &pool_backend_events;
	helper_setup(&b.helpers, b.loop, exchange_cancel_landed);
	if (pool_init_all(&b) != 0) {
		log_error("cannot set the pools up: out of memory");
		goto out;
	}

	ev_signal_init(&b.sig_term, signal_cb, SIGTERM);
	ev_signal_init(&b.sig_int, signal_cb, SIGINT);
	ev_signal_init(&b.sig_hup, signal_cb, SIGHUP);
	b.sig_term.data = b.sig_int.data = b.sig_hup.data = &b;
	ev_signal_start(b.loop, &b.sig_term);
	ev_signal_start(b.loop, &b.sig_int);
	ev_signal_start(b.loop, &b.sig_hup);
	ev_timer_init(&b.heartbeat, heartbeat_cb, 1., 1.);
	b.heartbeat.data = &b;
	ev_timer_start(b.loop, &b.heartbeat);

	log_info("pgleased %s started pid=%d socket=%s shm=%s pools=%zu incarnation=%08x",
		 PACKAGE_VERSION, (int)getpid(), cfg->broker.socket, cfg->broker.shm_name,
		 cfg->npools, b.incarnation);
	notify_ready();
	ev_run(b.loop, 0);
	log_info("pgleased stopped");
	status = 0;
out:
	session_close_all(&b);
	if (b.shm.hdr == NULL) {	/* never got that far */
		listen_stop(&b);
		ev_loop_destroy(b.loop);
		return status;
	}
	if (b.pools != NULL)
		pool_free_all(&b);
	listen_stop(&b);
	ev_timer_stop(b.loop, &b.heartbeat);
	ev_timer_stop(b.loop, &b.drain_timer);
	ev_signal_stop(b.loop, &b.sig_term);
	ev_signal_stop(b.loop, &b.sig_int);
	ev_signal_stop(b.loop, &b.sig_hup);
	helper_teardown(&b.helpers);
	shm_destroy(&b.shm);
	ev_loop_destroy(b.loop);
	for (size_t i = 0; i < b.nold_configs; i++)
		config_free(b.old_configs[i]);
	config_free(b.cfg);
	free(b.old_configs);
	return status;
}
