/*
 * backend.h - one backend connection's I/O: connect with libpq, then the
 * broker's own exchanges on it (health check, reset, terminate) and its
 * closing.  Each operation ends in one of the broker's backend_events.
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

/* Sets up (and tears down) what all backends share: cancel completions. */
void backend_setup(struct ev_loop *loop);
void backend_teardown(void);

/*
 * The role and database a backend of pool pc will run as, as libpq will
 * resolve them from the conninfo and the broker's environment (PGUSER,
 * PGDATABASE, a service file, the OS user).  Empty strings when unknown.
 */
void backend_identity(const struct pool_config *pc, char *user, size_t ulen, char *db,
		      size_t dlen, char *host, size_t hlen, char *port, size_t plen);

/* Prepares the slot's watchers; once, before anything else. */
void backend_init(struct slot *slot);

/*
 * Starts a non-blocking connect, with the slot's exchange buffers (struct
 * exchange, kept until backend_free()); ends in backend_events->connected.
 */
void backend_connect(struct slot *slot);

/* Runs the pool's health_query; ends in backend_events->checked. */
void backend_validate(struct slot *slot);

/*
 * Resets a released backend: ROLLBACK when rollback, DISCARD ALL, the
 * pool's reset_query if any, and a query returning a random nonce; ends in
 * backend_events->reset, ok only when the replies were exactly the expected
 * ones.  A reset that does not end promptly calls backend_events->stalled
 * and cancels what runs on the backend; it ends when the cancel has landed.
 */
void backend_reset(struct slot *slot, bool rollback);

/* Runs pg_terminate_backend(victim's pid) on an idle slot; ends in backend_events->checked. */
void backend_terminate_other(struct slot *slot, struct slot *victim);

/* Watches an idle backend: a close or message from the server ends in backend_events->lost. */
void backend_watch_idle(struct slot *slot);

/* Whether the broker holds bytes of the backend's stream that it has not consumed. */
bool backend_has_unread(const struct slot *slot);

/* Stops every watcher and timer on the slot (before its fd is leased). */
void backend_stop(struct slot *slot);

/*
 * Closes the backend; the slot stays CLOSING until the server's end of the
 * stream is seen (or, failing that, pg_terminate_backend got it), then
 * backend_events->closed; meanwhile backend_events->stuck says, less and
 * less often, that it has not ended.  ABORT cancels what runs and shuts the socket down for
 * every holder of a copy.
 */
void backend_close(struct slot *slot, enum slot_close_how how);

/*
 * Sends a cancel request for the slot's backend from a helper thread; at
 * most one per backend is in flight, and a reset waits for it to land (at
 * most until the reset's deadline).  A backend replaced meanwhile is not
 * held up by its predecessor's cancel.
 */
void backend_cancel(struct slot *slot);

/*
 * Ends victim's backend with pg_terminate_backend() through a connection of
 * its own, opened and closed in a helper thread: for when the pool has no
 * idle connection to run it on.  Returns 0 when the helper started; it ends
 * in backend_events->terminated (the victim's end of stream comes on its
 * own).
 */
int backend_terminate_apart(struct slot *victim) __attribute__((warn_unused_result));

/* Frees what libpq holds and the exchange buffers; the slot becomes EMPTY.  No I/O. */
void backend_free(struct slot *slot);

/* The slot's memory is about to go: cancels still running forget it. */
void backend_forget(struct slot *slot);

#endif
