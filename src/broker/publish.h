/*
 * publish.h - what the pools show in shared memory: each slot's record, each
 * pool's record (name, sizes, identity, gauges) and counters.
 *
 * Only the broker's loop thread writes, each change under shm_begin().
 */
#ifndef PGL_PUBLISH_H
#define PGL_PUBLISH_H

#include "broker/broker.h"

struct pool;
struct slot;

/* Adds n to a counter of the pool's record. */
#define PUBLISH_COUNT(p, field, n)                                          \
	do {                                                                \
		shm_begin(&(p)->broker->shm);                               \
		(p)->broker->shm.pools[(p)->index].field += (n);            \
		shm_end(&(p)->broker->shm);                                 \
	} while (0)

/* The slot's record and its pool's gauges. */
void publish_slot(struct slot *slot);

/* The same, for a caller that holds shm_begin() already. */
void publish_slot_locked(struct slot *slot);

/* The pool's gauges: size, idle, leased, waiting. */
void publish_gauges(struct pool *p);

/* The server a newly connected backend is on (host, port, standby or not), in its slot record. */
void publish_server(struct slot *slot);

/* The pool's name, sizes and slot range, and its identity as the conninfo says. */
void publish_config(struct pool *p);

/* The role, database and server of the pool's backends, as a backend told. */
void publish_identity(struct pool *p, const char *user, const char *db, const char *host,
		      const char *port);

/* How many pool records readers should look at. */
void publish_npools(struct broker *b);

/* The pool's record and its slots' records, emptied (the pool goes). */
void publish_clear(struct pool *p);

/* The clients gauge (b->nsessions), and one more accepted when accepted. */
void publish_clients(struct broker *b, bool accepted);

/* A client refused at accept: reason PGL_EDENIED, or PGL_ELIMIT (max_clients). */
void publish_refused(struct broker *b, int reason);

#endif
