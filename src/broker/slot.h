/*
 * slot.h - one backend connection of a pool, and its state machine.
 *
 *   EMPTY -> CONNECTING -> IDLE -> [VALIDATING ->] LEASED -> RESETTING -> IDLE
 *   any -> CLOSING -> EMPTY
 *
 * slot.c owns every transition: the pool layer asks for one (connect, check,
 * lend, release, close), backend I/O reports how it ended (struct
 * backend_events), and the state machine tells the wait queue when a slot
 * is fit to lend (struct slot_hooks).  A slot counts towards its pool's size
 * in every state but EMPTY, so a pool never holds more than max_size
 * backends, closing ones included.  Each transition is published to shared
 * memory at once.
 */
#ifndef PGL_SLOT_H
#define PGL_SLOT_H

#include "broker/config.h"
#include "common/wire.h"

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct pool;
struct holder;
struct acquire_req;
struct exchange;

enum slot_close_how {
	SLOT_CLOSE_TERMINATE,		/* the stream is ours: say goodbye */
	SLOT_CLOSE_ABORT,		/* anything may be running: cancel, shut down */
};

struct slot {
	struct pool *pool;
	uint32_t index;			/* the shm slot record */
	int state;			/* enum shm_slot_state */
	PGconn *conn;
	int fd;				/* PQsocket, -1 when EMPTY */
	ev_io io;
	ev_timer timer;			/* connect / reset / close deadline */
	int io_events;

	double created_at;		/* ev_now */
	double idle_since;
	double checked_at;		/* last background health check (ev_now) */
	double leased_at;
	uint64_t lease_id;
	struct holder *holder;
	struct acquire_req *req;	/* VALIDATING for this request */
	int backend_pid;
	uint64_t lease_count;
	bool with_check_interval;	/* client_connection_check_interval sent */
	bool recycle;			/* close rather than reuse when idle */
	/*
	 * The server's own report (in_hot_standby, default_transaction_read_only)
	 * as last seen: at the connect, then in every ParameterStatus.  unfit:
	 * that server does not serve the pool's target_session_attrs; such a
	 * backend is never lent (slot_lendable()) and is closed at the end of
	 * the exchange that showed it.
	 */
	bool hot_standby;
	bool read_only;
	bool reports_state;		/* the server reports in_hot_standby (14+) */
	bool unfit;
	bool confirming;		/* CONNECTING: the confirm query runs (backend.c) */
	bool confirm_answered, confirm_recovery;	/* ... and what it said so far */
	bool pid_confirmed;		/* pg_backend_pid() on this connection said backend_pid */
	int terminate_attempts;		/* CLOSING: pg_terminate_backend asked so often */
	bool cancel_in_flight;		/* a helper thread is cancelling this backend */
	uint64_t backend_gen;		/* bumped when the backend goes: cancels name it */
	bool stalled;			/* RESETTING, not promptly: not counted as coming */
	bool lease_warned;		/* lease_timeout logged for this lease */
	double lifetime;		/* max_lifetime with this slot's jitter; 0 = none */
	const char *close_reason;

	/* The broker's own I/O on the backend (exchange.h): from the connect to backend_free(). */
	struct exchange *exchange;
	struct slot *terminate_for;	/* running pg_terminate_backend for that slot */

	/* The role and database of the backend, and its server parameters as
	 * sent in a GRANT: "name\0value\0"... */
	char user[WIRE_NAME_MAX + 1];
	char database[WIRE_NAME_MAX + 1];
	/* Where the backend is: PQhost, PQport and PQhostaddr after its connect ("" before). */
	char host[128];
	char port[16];
	char hostaddr[64];
	char params[WIRE_PARAMS_MAX];
	uint16_t params_len;

	TAILQ_ENTRY(slot) idle_link;	/* the pool's idle list, most recent first */
};
TAILQ_HEAD(slot_list, slot);

/*
 * What the state machine tells the wait queue (waitq.c implements it; the
 * broker holds the table).  Called from the loop thread.
 */
struct slot_hooks {
	/* slot has just become IDLE (on the idle list): true when a waiter took it */
	bool (*idle)(struct slot *slot);
	/*
	 * The health check made for req ended.  ok: slot (VALIDATING, off the
	 * idle list) is req's to grant; else slot is closing and req must be
	 * served otherwise.
	 */
	void (*checked)(struct slot *slot, struct acquire_req *req, bool ok);
};

/* The backend events the state machine handles, for the broker to hand to backend I/O. */
extern const struct backend_events slot_backend_events;

/* --- asked by the pool layer --- */

/*
 * Opens backends while the pool is under min_size or has more waiters than
 * backends on their way, never beyond max_size, never while backing off.
 */
void slot_fill(struct pool *p);

/* An IDLE slot leaves the idle list and its watch: about to be lent or checked. */
void slot_take_idle(struct slot *slot);

/* Whether an IDLE slot can be lent as it is; one that cannot is replaced. */
bool slot_lendable(struct slot *slot);

/* Checks a taken slot (VALIDATING): for req, or in the background when req is NULL. */
void slot_check(struct slot *slot, struct acquire_req *req);

/*
 * Leases a taken (or just checked) slot to h: LEASED, counted, published.
 * started (ev_now) is when the request came.  slot_unlease() undoes it when
 * the GRANT could not be sent: the backend never left and is offered again.
 */
void slot_lease(struct slot *slot, struct holder *h, double started);
void slot_unlease(struct slot *slot, double started);

/* The holder gives the slot back in state (enum wire_release_state). */
void slot_release(struct slot *slot, int state);

/* The holder is gone (connection closed, process dead): never reuse the slot. */
void slot_orphan(struct slot *slot, const char *why);

/* The broker ends a lease itself (lease_timeout, stop): the holder is told, the backend closed. */
void slot_cut(struct slot *slot, const char *why);

/* Cancels the query running on a leased slot (asynchronously). */
void slot_cancel_query(struct slot *slot);

/* Closes the backend (any state but EMPTY and CLOSING); why names the cause in logs. */
void slot_close(struct slot *slot, enum slot_close_how how, const char *why);

/*
 * One more failure in a row (a connect, or a health check): no new backend
 * before the backoff delay; why is kept for the ERROR of acquires that time
 * out meanwhile.
 */
void slot_back_off(struct pool *p, const char *why);

#endif
