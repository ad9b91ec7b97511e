/*
 * pool.h - pools, their slots and the slot state machine, the wait queue.
 *
 * A slot is one backend connection:
 *   EMPTY -> CONNECTING -> IDLE -> [VALIDATING ->] LEASED -> RESETTING -> IDLE
 *   any -> CLOSING -> EMPTY
 * A slot counts towards the pool's size in every state but EMPTY, so the
 * pool never holds more than max_size backends, closing ones included.
 */
#ifndef PGL_POOL_H
#define PGL_POOL_H

#include "broker/broker.h"
#include "common/shm.h"
#include "common/wire.h"

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct backend_events;
struct exchange;
struct session;

/* An ACQUIRE waiting in a pool's queue, or for the slot validating for it. */
struct acquire_req {
	struct pool *pool;
	struct session *session;
	uint64_t request_id;
	double started;			/* ev_now */
	ev_timer timer;			/* the deadline; inactive for "no deadline" */
	struct slot *validating;	/* the slot checked for this request, or NULL */
	TAILQ_ENTRY(acquire_req) queue;	/* the pool's FIFO (when queued) */
	TAILQ_ENTRY(acquire_req) owner;	/* the session's requests */
	bool queued;
};
TAILQ_HEAD(acquire_queue, acquire_req);

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
	struct session *holder;
	struct acquire_req *req;	/* VALIDATING for this request */
	int backend_pid;
	uint64_t lease_count;
	bool with_check_interval;	/* client_connection_check_interval sent */
	bool recycle;			/* close rather than reuse when idle */
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
	char params[WIRE_PARAMS_MAX];
	uint16_t params_len;

	TAILQ_ENTRY(slot) idle_link;	/* the pool's idle list, most recent first */
};
TAILQ_HEAD(slot_list, slot);

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

	unsigned failures;		/* connect or health-check failures in a row */
	bool health_failing;		/* the last health check failed */
	double retry_at;		/* ev_now; 0 when not backing off */
	ev_timer retry_timer;
	ev_timer housekeeping;		/* idle_timeout, max_lifetime, health checks, lease_timeout */
	char last_error[512];		/* the last libpq failure, for ERROR unavailable */
	int server_version;		/* 0 until a connection showed it */
};

/* --- for the broker --- */

/* Creates the pools of b->cfg and starts opening min_size backends each. */
int pool_init_all(struct broker *b) __attribute__((warn_unused_result));
void pool_free_all(struct broker *b);

/* The pool named name ("" = the first), or NULL. */
struct pool *pool_find(struct broker *b, const char *name);

/*
 * Applies a new, valid configuration's pools: added ones are opened,
 * removed ones refuse new acquires and drain, sizes and settings change in
 * place, a changed conninfo replaces backends as they come free.  Nothing
 * changes and -1 is returned (err says why) when the shared memory segment
 * has no room for the new pools.
 */
int pool_reload(struct broker *b, const struct config *nc, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Answers every queued request with ERROR draining. */
void pool_drain_waiters(struct broker *b);

/* Closes every backend that is not leased (all of them when force). */
void pool_close_all(struct broker *b, bool force);

/* Backends not EMPTY, and leases, over all pools. */
int pool_total_size(const struct broker *b);
int pool_total_leased(const struct broker *b);

/* --- for sessions --- */

/*
 * Serves an ACQUIRE: a GRANT or ERROR goes to the session now, or later from
 * the queue.  timeout_ms as in the protocol.
 */
void pool_acquire(struct pool *p, struct session *s, uint64_t request_id, int32_t timeout_ms);

/* The holder gives the slot back in state (enum wire_release_state). */
void pool_release(struct slot *slot, int state);

/* The holder is gone (connection closed, process dead): never reuse the slot. */
void pool_orphan(struct slot *slot, const char *why);

/* Cancels the query running on a leased slot (asynchronously). */
void pool_cancel_query(struct slot *slot);

/* Forgets a request whose session is going away. */
void pool_forget_request(struct acquire_req *req);

/* --- for the broker: the end of each asynchronous step of a backend --- */

/* The slot state machine's side of the backends' I/O (broker->backend_events). */
extern const struct backend_events pool_backend_events;

/* Publishes the slot's state and the pool's gauges to shared memory. */
void pool_publish(struct slot *slot);

#endif
