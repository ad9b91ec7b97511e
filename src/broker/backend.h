/*
 * backend.h - one backend connection: the connect with libpq, the slot's
 * watchers, the idle watch, and the closing.  What happens on the
 * connection reaches the slot state machine through struct backend_events.
 */
#ifndef PGL_BACKEND_H
#define PGL_BACKEND_H

#include "broker/pool.h"

#include <stdbool.h>

/* What a backend's I/O reports to the slot state machine.  Each is called from the loop thread. */
struct backend_events {
	void (*connected)(struct slot *slot, bool ok, const char *error);
	void (*checked)(struct slot *slot, bool ok, const char *why);	/* validate or terminate-other ended */
	void (*reset)(struct slot *slot, bool ok, const char *why);
	void (*stalled)(struct slot *slot);	/* a reset did not end promptly */
	void (*lost)(struct slot *slot, const char *why);	/* an idle backend died or spoke */
	void (*closed)(struct slot *slot);
	void (*stuck)(struct slot *slot);	/* a closing backend did not end in time */
	void (*terminated)(struct pool *p);	/* a terminate helper's own connection is closed */
};

/* Prepares the slot's watchers; once, before anything else. */
void backend_init(struct slot *slot);

/*
 * Starts a non-blocking connect, with the slot's exchange buffers (struct
 * exchange, kept until backend_free()); ends in backend_events->connected.
 */
void backend_connect(struct slot *slot);

/* Watches an idle backend: a close or message from the server ends in backend_events->lost. */
void backend_watch_idle(struct slot *slot);

/* Whether the broker holds bytes of the backend's stream that it has not consumed. */
bool backend_has_unread(const struct slot *slot);

/* Stops every watcher and timer on the slot (before its fd is leased). */
void backend_stop(struct slot *slot);

/*
 * Closes the backend; the slot stays CLOSING until the server's end of the
 * stream is seen (or, failing that, pg_terminate_backend got it), then
 * backend_events->closed.  Meanwhile backend_events->stuck says, less and
 * less often, that it has not ended.  ABORT cancels what runs and shuts the
 * socket down for every holder of a copy.
 */
void backend_close(struct slot *slot, enum slot_close_how how);

/*
 * Ends victim's backend with pg_terminate_backend() through a connection of
 * its own (helper_terminate_apart()): for when the pool has no idle
 * connection to run it on.  Returns 0 when the helper started; the victim
 * stays CLOSING until its end of stream comes.
 */
int backend_terminate_apart(struct slot *victim) __attribute__((warn_unused_result));

/* Frees what libpq holds and the exchange buffers; the slot becomes EMPTY.  No I/O. */
void backend_free(struct slot *slot);

/* --- for exchange.c: the slot's watchers while an exchange drives them --- */

/* How long the broker waits for a backend (connect_timeout, else 10 s). */
double backend_deadline(const struct slot *slot);

/* Watches fd for events (EV_READ, EV_WRITE) on the slot's io watcher; 0 stops it. */
void backend_set_io(struct slot *slot, int fd, int events);

/* (Re)arms the slot's timer to fire after seconds; 0 stops it. */
void backend_set_timer(struct slot *slot, double after);

/*
 * Has io_cb and timer_cb handle the slot's watchers from now on, until the
 * connect, the idle watch or the closing takes them back.
 */
void backend_set_handlers(struct slot *slot, void (*io_cb)(struct ev_loop *, ev_io *, int),
			  void (*timer_cb)(struct ev_loop *, ev_timer *, int));

#endif
