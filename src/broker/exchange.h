/*
 * exchange.h - the broker's own simple-protocol exchanges on a backend: the
 * health check, the reset after a lease, pg_terminate_backend() run for
 * another slot.  Their buffers and state, allocated with each backend.
 */
#ifndef PGL_EXCHANGE_H
#define PGL_EXCHANGE_H

#include "broker/config.h"
#include "broker/pgproto.h"

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
	uint8_t out[3 * 6 + 2 * CONFIG_QUERY_MAX + 64];	/* ROLLBACK, DISCARD ALL, reset_query, nonce */
	size_t out_len, out_off;
	int op;				/* the exchange under way (backend.c), 0 = none */
	int step;			/* the query whose replies come next */
	int nsteps;			/* queries sent */
	int sub;			/* position inside the current reply */
	uint8_t plan[4];		/* the reset's steps (backend.c enum step) */
	bool rollback;
	char nonce[24];
	double deadline;		/* ev_now: the exchange must end by then */
	bool skip_prefix;		/* a stalled reset: the cancelled query's replies first */
	bool prefix_cancelled;		/* ... and its cancel was seen */
	bool reset_held;		/* reset done; waits for the cancel to land */
	bool reset_pending;		/* released; the reset waits for the cancel */
};

#endif
