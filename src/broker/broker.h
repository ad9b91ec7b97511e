/*
 * broker.h - pgleased as a whole: the event loop, the listening socket,
 * signals, the shared memory segment, and the lists of pools and sessions.
 */
#ifndef PGL_BROKER_H
#define PGL_BROKER_H

#include "broker/config.h"
#include "broker/helper.h"
#include "common/shm.h"

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct backend_events;
struct pool;
struct session;

struct broker {
	struct ev_loop *loop;
	struct config *cfg;
	unsigned cfg_gen;		/* bumped by each reload */
	struct config **old_configs;	/* replaced by reloads; pools may point into them */
	size_t nold_configs;
	struct shm shm;
	uint32_t incarnation;		/* random, never 0; in every lease id */
	uint32_t lease_seq;
	uint64_t rng;			/* xorshift state */

	struct pool **pools;
	size_t npools;
	bool *record_used;		/* shm slot records taken, by index */

	int listen_fd;
	ev_io listen_io;
	ev_timer accept_pause;		/* out of descriptors: accept later */
	bool listening;
	TAILQ_HEAD(, session) sessions;
	int nsessions;			/* served clients, bounded by max_clients */
	int nrefused;			/* connections waiting to be told no */

	bool draining;			/* SIGTERM: no new leases */
	bool stopping;			/* closing every backend, then exit */
	ev_timer heartbeat;
	ev_timer drain_timer;
	ev_signal sig_term, sig_int, sig_hup;
	uid_t uid;

	const struct backend_events *backend_events; /* what backends report, to the pools */
	struct helpers helpers;		/* cancel and terminate threads (helper.c) */
};

/*
 * Loads nothing: runs the broker on a validated config until it stops, and
 * frees it (and every configuration a reload made).  Returns the exit status.
 */
int broker_run(struct config *cfg);

/* A uniform random 64-bit number (not for secrets). */
uint64_t broker_random(struct broker *b);

/* A uniform random number in [0, 1). */
double broker_random01(struct broker *b);

/* Frees replaced configurations nothing points into any more. */
void broker_release_configs(struct broker *b);

/* Called when a lease or a backend went away: a stopping broker may be done. */
void broker_check_done(struct broker *b);

#endif
