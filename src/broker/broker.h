/*
 * broker.h - pgleased as a whole: the event loop, the listening socket,
 * signals, the shared memory segment, and the lists of pools and sessions.
 */
#ifndef PGL_BROKER_H
#define PGL_BROKER_H

#include "broker/config.h"
#include "broker/helper.h"
#include "broker/notify.h"
#include "common/rand.h"
#include "common/shm_writer.h"

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct pool;
struct session;
struct slot;
struct backend_events;
struct slot_hooks;

struct broker {
	struct ev_loop *loop;
	struct config *cfg;
	unsigned cfg_gen;		/* bumped by each reload */
	struct config **old_configs;	/* replaced by reloads; pools may point into them */
	size_t nold_configs;
	struct shm shm;
	uint32_t incarnation;		/* random, never 0; in every lease id */
	uint32_t lease_seq;
	struct rng rng;			/* jitter, reset nonces */

	struct pool **pools;
	size_t npools;
	struct slot **record_slot;	/* the slot of each shm slot record, or NULL */
	ev_check reaper;		/* reload.c: frees removed pools once drained */

	/* The callback interfaces between the layers (slot.h, backend.h). */
	const struct backend_events *backend_events;	/* backend I/O -> state machine */
	const struct slot_hooks *slot_hooks;		/* state machine -> wait queue */

	int listen_fd;
	ev_io listen_io;
	ev_timer accept_pause;		/* out of descriptors: accept later */
	bool listening;
	TAILQ_HEAD(, session) sessions;
	int nsessions;			/* served clients, bounded by max_clients */
	int nrefused;			/* connections waiting to be told no */
	TAILQ_HEAD(, session) graveyard; /* closed this loop iteration, freed after it */
	ev_check session_reaper;	/* session.c: empties the graveyard */
	ev_check session_closer;	/* session.c: closes clients that cannot be answered */

	bool draining;			/* SIGTERM: no new leases */
	bool stopping;			/* closing every backend, then exit */
	ev_timer heartbeat;
	ev_timer drain_timer;
	ev_check done_check;		/* draining: stops when every lease and backend is gone */
	ev_signal sig_term, sig_int, sig_hup, sig_quit, sig_xcpu;
	struct notify notify;		/* systemd's notification socket (notify.c) */
	bool wrote_pid_file;
	ev_signal sig_usr1, sig_usr2;	/* pause, resume every pool (admin.c) */
	ev_check admin_quiet;		/* admin.c: answers a PAUSE once its pools are quiet */
	uid_t uid;
	pid_t pid;			/* for WELCOME, without a system call each */
	struct helpers helpers;		/* cancel and terminate threads (helper.c) */
};

/*
 * Loads nothing: runs the broker on a validated config until it stops, and
 * frees it (and every configuration a reload made).  Returns the exit status.
 */
int broker_run(struct config *cfg);

#endif
