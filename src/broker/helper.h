/*
 * helper.h - the broker's helper threads: cancel requests, and
 * pg_terminate_backend() through a connection of its own.  libpq blocks in
 * both, so they run beside the loop and hand their end back to it through
 * an ev_async.
 */
#ifndef PGL_HELPER_H
#define PGL_HELPER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>

struct cancel_job;
struct pool;
struct slot;
struct terminate_job;

/* The helpers' state, a member of struct broker; jobs point at it. */
struct helpers {
	pthread_mutex_t lock;		/* guards the lists and closed */
	struct cancel_job *running;	/* in helper threads */
	struct cancel_job *done;	/* finished, for the loop */
	struct terminate_job *terminated; /* finished terminate helpers, for the loop */
	bool closed;			/* the loop is gone: jobs free themselves */
	struct ev_loop *loop;
	ev_async async;
	void (*landed)(struct slot *slot); /* see helper_setup() */
};

/*
 * Starts handing finished jobs back to loop.  When a cancel has landed on a
 * backend the slot still holds, its cancel_in_flight is cleared and
 * landed(slot) runs in the loop.  h must outlive every helper thread (threads
 * still running after helper_teardown() lock h->lock to free their job).
 */
void helper_setup(struct helpers *h, struct ev_loop *loop, void (*landed)(struct slot *slot));

/* Stops handing back: jobs finished or finishing later free themselves. */
void helper_teardown(struct helpers *h);

/*
 * Sends a cancel request for the slot's backend from a helper thread; at
 * most one per backend is in flight (slot->cancel_in_flight).  A backend
 * replaced meanwhile (slot->backend_gen) is not held up by its
 * predecessor's cancel.
 */
void helper_cancel(struct slot *slot);

/*
 * Runs pg_terminate_backend(pid) for pool p through a connection of its
 * own, opened with kw and val (NULL-terminated, copied; the copy of any
 * secret is wiped once the thread is done with it) and closed in a helper
 * thread.  Returns 0 when the helper started; it ends in the broker's
 * backend_events->terminated(p) once its connection is closed.
 */
int helper_terminate_apart(struct pool *p, int pid, const char *const *kw, const char *const *val)
	__attribute__((warn_unused_result));

/* The slot's memory is about to go: cancels still running forget it. */
void helper_forget(struct slot *slot);

#endif
