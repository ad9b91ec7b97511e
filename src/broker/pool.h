/*
 * pool.h - a pool: its slots, its counters, its wait queue; creating,
 * finding and freeing pools, and closing their backends when the broker
 * stops.
 *
 * The slot state machine is slot.c's, the wait queue waitq.c's, the periodic
 * checks janitor.c's, reloads reload.c's.
 */
#ifndef PGL_POOL_H
#define PGL_POOL_H

#include "broker/broker.h"
#include "broker/slot.h"
#include "broker/waitq.h"

#include <ev.h>
#include <stdbool.h>

struct pool {
	struct broker *broker;
	const struct pool_config *cfg;
	int index;			/* the shm pool record */
	struct slot **slots;		/* at least cfg->max_size of them */
	int nslots;
	bool removed;			/* dropped by a reload: drains, then goes */
	int size;			/* slots not EMPTY */
	int connecting;
	int terminating;		/* terminate helpers' own connections (in size) */
	struct slot_list idle;
	int nidle;
	int nleased;
	struct acquire_queue waiters;
	int nwaiting;
	bool paused;			/* admin.c: acquires queue, nothing is lent */

	unsigned failures;		/* connect or health-check failures in a row */
	bool health_failing;		/* the last health check failed */
	double retry_at;		/* ev_now; 0 when not backing off */
	ev_timer retry_timer;
	ev_timer housekeeping;		/* janitor.c */
	char last_error[512];		/* the last libpq failure, for ERROR unavailable */
	int server_version;		/* 0 until a connection showed it */
	bool proxy_warned;		/* a proxy in between was logged (backend.c) */
};

/* Creates the pools of b->cfg and starts opening min_size backends each. */
int pool_init_all(struct broker *b) __attribute__((warn_unused_result));

/* Frees every pool (no I/O). */
void pool_free_all(struct broker *b);

/*
 * A new pool for pc, with max_size slots, each with its own shm record;
 * opens no backend yet.  NULL when out of records or memory (logged).
 */
struct pool *pool_create(struct broker *b, const struct pool_config *pc);

/* Frees what the pool holds (no I/O) and the pool; it leaves b->pools to the caller. */
void pool_destroy(struct pool *p);

/* Grows p to n slots (each with its own shm record).  -1 when out of records or memory. */
int pool_add_slots(struct pool *p, int n) __attribute__((warn_unused_result));

/* The pool named name ("" = the first of the configuration), or NULL. */
struct pool *pool_find(struct broker *b, const char *name);

/* Backends not EMPTY, and leases, over all pools. */
int pool_total_size(const struct broker *b);
int pool_total_leased(const struct broker *b);

/* Closes every backend that is not leased (all of them when force). */
void pool_close_all(struct broker *b, bool force);

#endif
