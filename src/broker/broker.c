/*
 * broker.c - the daemon around the pools: shared memory, the listening
 * socket, signals, heartbeat, drain and stop.
 */
#include "autoconf.h"

#include "broker/broker.h"
#include "broker/crash.h"
#include "broker/admin.h"
#include "broker/exchange.h"
#include "broker/helper.h"
#include "broker/pool.h"
#include "broker/limits.h"
#include "broker/listener.h"
#include "broker/notify.h"
#include "broker/pidfile.h"
#include "broker/reload.h"
#include "broker/session.h"
#include "broker/slot.h"
#include "broker/waitq.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rand.h"
#include "pglease.h"

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

/* common/rand's generator on the state struct broker keeps (seeded in broker_run). */
/* --- stopping ----------------------------------------------------------- */

/*
 * After each loop iteration while draining: once every lease came back the
 * backends close; once they are all gone the loop ends.
 */
static void
done_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct broker *b = w->data;

	(void)revents;
	if (!b->stopping && pool_total_leased(b) == 0) {
		log_info("every lease came back; closing");
		b->stopping = true;
		ev_timer_stop(loop, &b->drain_timer);
		pool_close_all(b, true);
	}
	if (b->stopping && pool_total_size(b) == 0)
		ev_break(loop, EVBREAK_ALL);
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
}

/* Refuses what waits, and every new lease. */
static void
stop_serving(struct broker *b)
{
	b->draining = true;
	listener_stop(b);
	for (size_t i = 0; i < b->npools; i++) {
		waitq_fail_all(b->pools[i], PGL_EDRAINING, "the broker is shutting down");
		ev_timer_stop(b->loop, &b->pools[i]->retry_timer);
	}
}

/* SIGTERM: no new clients or leases; wait for leases up to shutdown_timeout. */
static void
drain(struct broker *b)
{
	double t = b->cfg->broker.shutdown_timeout;

	if (b->draining)
		return;
	log_info("draining: %d leases out, waiting up to %g s", pool_total_leased(b), t);
	stop_serving(b);
	notify_stopping(b);
	pool_close_all(b, false);
	ev_timer_init(&b->drain_timer, drain_timeout_cb, t, 0.);
	b->drain_timer.data = b;
	if (t > 0)
		ev_timer_start(b->loop, &b->drain_timer);
	else
		b->stopping = true, pool_close_all(b, true);
	ev_check_init(&b->done_check, done_check_cb);
	b->done_check.data = b;
	ev_check_start(b->loop, &b->done_check);
}

/* SIGINT, SIGQUIT: every backend closed now, leases cut, the loop ends. */
static void
fast_stop(struct broker *b, const char *why)
{
	log_info("%s: closing every connection now", why);
	stop_serving(b);
	b->stopping = true;
	notify_stopping(b);
	pool_close_all(b, true);
	ev_break(b->loop, EVBREAK_ALL);
}

/* SIGHUP: the log file reopened (logrotate), then the configuration reloaded. */
static void
reload(struct broker *b)
{
	log_reopen();
	notify_reloading(b);
	notify_reloaded(b, reload_run(b));
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct broker *b = w->data;

	(void)loop;
	(void)revents;
	switch (w->signum) {
	case SIGTERM:
		drain(b);
		break;
	case SIGXCPU:
		log_warnx("SIGXCPU: the CPU time limit is near; draining");
		drain(b);
		break;
	case SIGINT:
		fast_stop(b, "SIGINT");
		break;
	case SIGQUIT:
		fast_stop(b, "SIGQUIT");
		break;
	case SIGHUP:
		reload(b);
		break;
	}
}

/*
 * Signals whose default action would end the broker without removing its
 * socket and segment, and that mean nothing to it: a stray kill, a timer a
 * library left behind, a file grown past RLIMIT_FSIZE (then write() fails
 * with EFBIG instead).  SIGUSR1 and SIGUSR2 are not here: they are the
 * broker's own (pause and resume).  The faults (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT, SIGTRAP, SIGSYS) stay fatal: going on after one would
 * serve from a corrupt state; crash.c removes the socket and the segment
 * on the way down.
 */
static void
ignore_signals(void)
{
	static const int ignored[] = {
		SIGPIPE, SIGALRM, SIGVTALRM, SIGPROF, SIGXFSZ, SIGIO,
#ifdef SIGSTKFLT
		SIGSTKFLT,
#endif
#ifdef SIGPWR
		SIGPWR,
#endif
	};
	struct sigaction sa = { .sa_handler = SIG_IGN };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		sigaction(ignored[i], &sa, NULL);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaction(sig, &sa, NULL);
}

/* SIGUSR1 pauses every pool, SIGUSR2 resumes them (as PgBouncer does). */
static void
pause_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	admin_pause_all(w->data, w->signum == SIGUSR1, w->signum == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
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
	notify_status(b);	/* at most once a second, and only when it changed */
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
	b.pid = getpid();
	b.notify.fd = -1;

	struct log_options lo;
	config_log_options(cfg, &lo);
	if (log_configure(&lo, err, sizeof(err)) != 0) {
		log_error("%s", err);
		config_free(cfg);
		return 1;
	}
	ignore_signals();
	if (limits_raise_nofile(cfg, err, sizeof(err)) != 0)
		log_warnx("%s", err);
	if (cfg->broker.pid_file != NULL && pidfile_check(cfg->broker.pid_file, err, sizeof(err)) != 0) {
		log_error("%s", err);
		config_free(cfg);
		return 1;
	}
	TAILQ_INIT(&b.sessions);
	TAILQ_INIT(&b.graveyard);

	if (rng_seed(&b.rng) != 0 ||
	    getrandom(&b.incarnation, sizeof(b.incarnation), 0) != sizeof(b.incarnation)) {
		log_error("getrandom: %s", strerror(errno));
		config_free(cfg);
		return 1;
	}
	if (b.incarnation == 0)
		b.incarnation = 1;

	b.loop = ev_default_loop(EVFLAG_AUTO);
	if (b.loop == NULL) {
		log_error("cannot start the event loop");
		config_free(cfg);
		return 1;
	}
	/*
	 * The signals before the socket exists: one that comes while the
	 * broker starts waits for the loop's first iteration instead of
	 * killing it with its socket and segment left behind.
	 */
	ev_signal_init(&b.sig_term, signal_cb, SIGTERM);
	ev_signal_init(&b.sig_int, signal_cb, SIGINT);
	ev_signal_init(&b.sig_hup, signal_cb, SIGHUP);
	ev_signal_init(&b.sig_quit, signal_cb, SIGQUIT);
	ev_signal_init(&b.sig_xcpu, signal_cb, SIGXCPU);
	b.sig_term.data = b.sig_int.data = b.sig_hup.data = &b;
	b.sig_quit.data = b.sig_xcpu.data = &b;
	ev_signal_start(b.loop, &b.sig_term);
	ev_signal_start(b.loop, &b.sig_int);
	ev_signal_start(b.loop, &b.sig_hup);
	ev_signal_start(b.loop, &b.sig_quit);
	ev_signal_start(b.loop, &b.sig_xcpu);
	ev_signal_init(&b.sig_usr1, pause_signal_cb, SIGUSR1);
	ev_signal_init(&b.sig_usr2, pause_signal_cb, SIGUSR2);
	b.sig_usr1.data = b.sig_usr2.data = &b;
	ev_signal_start(b.loop, &b.sig_usr1);
	ev_signal_start(b.loop, &b.sig_usr2);

	/* The socket first: a live broker on it keeps its segment too. */
	b.shm.fd = -1;
	if (listener_start(&b) != 0)
		goto out;
	if (cfg->broker.pid_file != NULL) {
		if (pidfile_write(cfg->broker.pid_file, b.pid, err, sizeof(err)) != 0) {
			log_error("%s", err);
			goto out;
		}
		b.wrote_pid_file = true;
	}
	if (shm_create(&b.shm, cfg->broker.shm_name, cfg->broker.shm_mode, cfg->broker.shm_gid,
		       (uint32_t)cfg->broker.max_total_slots, b.incarnation, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	crash_arm(cfg->broker.socket, cfg->broker.shm_name);
	shm_begin(&b.shm);
	snprintf(b.shm.hdr->socket, sizeof(b.shm.hdr->socket), "%s", cfg->broker.socket);
	shm_end(&b.shm);
	b.backend_events = &slot_backend_events;
	b.slot_hooks = &waitq_slot_hooks;
	helper_setup(&b.helpers, b.loop, exchange_cancel_landed);
	if (pool_init_all(&b) != 0) {
		log_error("cannot set the pools up: out of memory");
		goto out;
	}

	ev_timer_init(&b.heartbeat, heartbeat_cb, 1., 1.);
	b.heartbeat.data = &b;
	ev_timer_start(b.loop, &b.heartbeat);

	log_info("pgleased %s started pid=%d socket=%s shm=%s pools=%zu incarnation=%08x",
		 PACKAGE_VERSION, (int)getpid(), cfg->broker.socket, cfg->broker.shm_name,
		 cfg->npools, b.incarnation);
	notify_init(&b);	/* READY=1 once the pools are */
	ev_run(b.loop, 0);
	log_info("pgleased stopped");
	status = 0;
out:
	session_close_all(&b);
	notify_stop(&b);
	if (b.wrote_pid_file)
		pidfile_remove(b.cfg->broker.pid_file, b.pid);
	if (b.shm.hdr == NULL) {	/* never got that far */
		listener_stop(&b);
		ev_loop_destroy(b.loop);
		config_free(b.cfg);
		return status;
	}
	if (b.pools != NULL)
		pool_free_all(&b);
	listener_stop(&b);
	ev_timer_stop(b.loop, &b.heartbeat);
	ev_timer_stop(b.loop, &b.drain_timer);
	ev_check_stop(b.loop, &b.done_check);
	ev_check_stop(b.loop, &b.reaper);
	ev_signal_stop(b.loop, &b.sig_term);
	ev_signal_stop(b.loop, &b.sig_int);
	ev_signal_stop(b.loop, &b.sig_hup);
	ev_signal_stop(b.loop, &b.sig_quit);
	ev_signal_stop(b.loop, &b.sig_xcpu);
	ev_signal_stop(b.loop, &b.sig_usr1);
	ev_signal_stop(b.loop, &b.sig_usr2);
	/* Stopping a watcher restores the default action, which would end the
	 * broker before the segment goes: ignore them for the last steps. */
	static const int late[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGXCPU, SIGUSR1, SIGUSR2 };
	for (size_t i = 0; i < sizeof(late) / sizeof(late[0]); i++)
		signal(late[i], SIG_IGN);
	ev_check_stop(b.loop, &b.admin_quiet);
	helper_teardown(&b.helpers);
	shm_destroy(&b.shm);
	crash_disarm();
	ev_loop_destroy(b.loop);
	reload_free_configs(&b);
	config_free(b.cfg);
	return status;
}
