/*
 * waitq.h - ACQUIRE requests: served from an idle slot at once, or queued
 * in their pool's FIFO until a slot comes free or their deadline passes;
 * the GRANT.
 */
#ifndef PGL_WAITQ_H
#define PGL_WAITQ_H

#include "broker/broker.h"

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct pool;
struct slot;
struct holder;

/* An ACQUIRE waiting in a pool's queue, or for the slot checked for it. */
struct acquire_req {
	struct pool *pool;
	struct holder *holder;
	uint64_t request_id;
	double started;			/* ev_now */
	ev_timer timer;			/* the deadline; inactive for "no deadline" */
	struct slot *validating;	/* the slot checked for this request, or NULL */
	TAILQ_ENTRY(acquire_req) queue;	/* the pool's FIFO (when queued) */
	TAILQ_ENTRY(acquire_req) owner;	/* the holder's requests */
	bool queued;
};
TAILQ_HEAD(acquire_queue, acquire_req);

/* What the wait queue does when the state machine has a slot to offer. */
extern const struct slot_hooks waitq_slot_hooks;

/*
 * Serves an ACQUIRE of h: a GRANT or an ERROR goes out now, or later from
 * the queue.  timeout in seconds; 0 = only an idle backend that needs no
 * check will do.
 */
void waitq_acquire(struct pool *p, struct holder *h, uint64_t request_id, double timeout);

/* Forgets a request whose holder is going away. */
void waitq_forget(struct acquire_req *req);

/* Answers every request of p, queued or being checked for, with an ERROR. */
void waitq_fail_all(struct pool *p, int code, const char *msg);

/*
 * Pauses p (new acquires queue, no backend is lent; leases out finish) or
 * resumes it: the queue is then served in its order.
 */
void waitq_pause(struct pool *p, bool paused);

#endif
