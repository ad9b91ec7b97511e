/*
 * exchange.h - the broker's own simple-protocol exchanges on a backend: the
 * health check, the reset after a lease, pg_terminate_backend() run for
 * another slot.  Each sends its queries, checks the replies message by
 * message, and ends in the broker's backend_events (checked or reset).
 */
#ifndef PGL_EXCHANGE_H
#define PGL_EXCHANGE_H

#include "broker/config.h"
#include "common/pgproto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct slot;

/*
 * The buffers and state of the broker's I/O on one backend: allocated when
 * its connect starts (backend_connect()), freed with it (backend_free()).
 * The idle watch and the closing read through rd too.
 */
struct exchange {
	struct pgproto_reader rd;	/* the backend's replies */
	uint8_t out[4 * 6 + 2 * CONFIG_QUERY_MAX + 256]; /* ROLLBACK, DISCARD ALL, reset_query,
							 * the server's state, nonce */
	size_t out_len, out_off;
	int op;				/* the exchange under way (exchange.c), 0 = none */
	int step;			/* the query whose replies come next */
	int nsteps;			/* queries sent */
	int sub;			/* position inside the current reply */
	uint8_t plan[5];		/* the reset's steps (exchange.c enum step) */
	bool rollback;
	uint64_t nonce;			/* the reset's: only its own last reply carries it */
	double deadline;		/* ev_now: the exchange must end by then */
	bool skip_prefix;		/* a stalled reset: the cancelled query's replies first */
	bool prefix_cancelled;		/* ... and its cancel was seen */
	bool reset_held;		/* reset done; waits for the cancel to land */
	bool reset_pending;		/* released; the reset waits for the cancel */
};

/* Runs the pool's health_query on the slot's backend; ends in backend_events->checked. */
void exchange_validate(struct slot *slot);

/*
 * Resets a released backend: ROLLBACK when rollback, DISCARD ALL, the
 * pool's reset_query if any, and a random nonce echoed by the server (the
 * pool's reset_check: a FunctionCall of int8up, or SELECT '<hex>'); ends in
 * backend_events->reset, ok only when the replies were exactly the expected
 * ones.  A reset that does not end promptly calls backend_events->stalled
 * and cancels what runs on the backend; it ends when the cancel has landed
 * (at most at its deadline).
 */
void exchange_reset(struct slot *slot, bool rollback);

/*
 * Runs pg_terminate_backend(victim's pid) on the slot's idle backend (sets
 * slot->terminate_for); ends in backend_events->checked.
 */
void exchange_terminate_other(struct slot *slot, struct slot *victim);

/*
 * A cancel of the slot's backend has landed (helper_setup()'s callback): a
 * reset that waited for it ends, or starts.
 */
void exchange_cancel_landed(struct slot *slot);

#endif
