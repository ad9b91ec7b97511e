/*
 * exchange.c - the broker's own simple-protocol exchanges on a backend.
 *
 * A health check, a reset or a pg_terminate_backend() for another slot sends
 * its queries in one write and checks every reply against what those
 * queries must answer: the stream may have been left anywhere by the
 * process that held it, and only exactly the expected replies prove it is
 * back where the broker wants it.  A reset ends with a random nonce that
 * only its own last reply can carry.  While an exchange runs it handles the
 * slot's watchers itself (backend_set_handlers()).
 */
#include "autoconf.h"

#include "broker/exchange.h"
#include "broker/backend.h"
#include "broker/helper.h"
#include "broker/params.h"
#include "broker/target.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* The replies an exchange expects, one step per query sent (exchange->plan). */
enum step {
	STEP_ANY,		/* rows, notices, one CommandComplete or none; ReadyForQuery idle */
	STEP_ROLLBACK,		/* CommandComplete "ROLLBACK"; ReadyForQuery idle */
	STEP_DISCARD,		/* CommandComplete "DISCARD ALL"; ReadyForQuery idle */
	STEP_NONCE_QUERY,	/* one row holding the nonce in hex; ReadyForQuery idle */
	STEP_NONCE_CALL,	/* FunctionCallResponse: the nonce's 8 bytes; ReadyForQuery idle */
	STEP_STATE,		/* one row: 's' standby, 'r' read-only, 'w' writable; ReadyForQuery idle */
};

/*
 * What the server is now, asked in every reset of a pool whose
 * target_session_attrs depends on it (pipelined with the rest: no round
 * trip of its own).  ParameterStatus reports in_hot_standby and
 * default_transaction_read_only when they change, but a holder may have
 * read that report: the broker would never see it again.
 */
static const char state_sql[] = "SELECT CASE WHEN pg_is_in_recovery() THEN 's' WHEN "
				"current_setting('default_transaction_read_only')::bool THEN 'r' "
				"ELSE 'w' END";

/*
 * The function a reset_check = "function" reset calls with its nonce, on
 * the fast path (no parser, no planner): int8up(int8), unary plus on
 * bigint, an immutable identity on every 64-bit value.
 * Built-in OIDs below 10000 are fixed in PostgreSQL's catalog source
 * (src/include/catalog/pg_proc.dat; fmgroids.h's F_INT8UP) and never
 * reassigned, and a built-in function is pinned: no DROP removes it.  1910
 * is its oid in 15 (SELECT 'int8up(int8)'::regprocedure::oid) as in the
 * current catalog, so a constant serves; looking it up per pool would cost
 * a query on the first backend and trust its search_path.  A server that
 * is PostgreSQL in name only, or a proxy that refuses FunctionCall, fails
 * every reset with its error: reset_check = "query" is for those.
 */
#define NONCE_FUNCTION_OID 1910u

enum op {
	OP_NONE = 0,
	OP_VALIDATE,
	OP_RESET,
	OP_TERMINATE,
};

/*
 * A reset takes a millisecond or so.  One that has not ended after this long
 * is stuck behind something (most often a query the holder left running):
 * the slot stops counting as about to come free, so waiters are served from
 * the pool's room, and the backend's query is cancelled.
 */
static const double reset_prompt = 0.2;

static const struct backend_events *
events_of(const struct slot *slot)
{
	return slot->pool->broker->backend_events;
}

/* A reset's timer is first set for the stall check, then for the rest of its deadline. */
static double
reset_first_wait(const struct slot *slot)
{
	return backend_deadline(slot) > reset_prompt ? reset_prompt : backend_deadline(slot);
}

/* Whether an exchange runs on the slot (its backend still there). */
static bool
running(const struct slot *slot)
{
	return slot->exchange != NULL && slot->exchange->op != OP_NONE;
}

static void
exchange_end(struct slot *slot, bool ok, const char *why)
{
	struct exchange *x = slot->exchange;
	int op = x->op;

	if (op == OP_RESET && ok && slot->cancel_in_flight) {
		/*
		 * Clean, but a cancel for this backend is still on its way: lent
		 * now, it could cancel the next holder's query.
		 * exchange_cancel_landed() ends the reset when it has landed; the
		 * deadline still holds.
		 */
		backend_set_io(slot, -1, 0);
		x->reset_held = true;
		return;
	}
	backend_stop(slot);
	x->op = OP_NONE;
	slot->stalled = false;
	x->skip_prefix = false;
	x->reset_held = false;
	if (op == OP_RESET)
		events_of(slot)->reset(slot, ok, why);
	else
		events_of(slot)->checked(slot, ok, why);
}

/* --- the replies -------------------------------------------------------- */

/*
 * Before the first reply of a stalled reset: what the holder's cancelled
 * query still sends.  Its rows and notices are passed over; it must end in
 * the cancel's ErrorResponse (SQLSTATE 57014) and a ReadyForQuery.  Anything
 * else (no cancel seen, a second query's replies) fails the reset.
 * Returns 1 when the prefix is over, 0 to read on, -1 on a mismatch.
 */
static int
expect_prefix(struct slot *slot, const struct pgproto_msg *m, const char **why)
{
	struct exchange *x = slot->exchange;

	switch (m->type) {
	case 'T': case 'D': case 'C': case 'I': case 'N': case 'A':
		return 0;
	case 'S':
		params_message(slot, m);
		return 0;
	case 'E': {
		const char *code = pgproto_error_field(m, 'C');
		if (code != NULL && strcmp(code, "57014") == 0 && !x->prefix_cancelled) {
			x->prefix_cancelled = true;
			return 0;
		}
		break;
	}
	case 'Z':
		if (x->prefix_cancelled) {
			x->skip_prefix = false;
			return 1;
		}
		break;
	default:
		break;
	}
	*why = "the holder's query was not cancelled: the stream holds its replies";
	return -1;
}

/*
 * Whether an ErrorResponse says the server or a proxy will not run the
 * nonce's FunctionCall at all (no such function, no right to run it, no
 * fast path, a protocol it does not take), rather than that the stream
 * held something else.
 */
static bool
refused_call(const struct pgproto_msg *m)
{
	static const char *const codes[] = { "42883", "42501", "0A000", "08P01" };
	const char *code = pgproto_error_field(m, 'C');

	for (size_t i = 0; code != NULL && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

/*
 * Checks one reply against the plan.  Returns 1 when the exchange is
 * complete, 0 to read on, -1 on a mismatch (why set).
 */
static int
expect(struct slot *slot, const struct pgproto_msg *m, const char **why)
{
	struct exchange *x = slot->exchange;
	int *sub = &x->sub;
	enum step st = x->op == OP_RESET || x->op == OP_VALIDATE ? (enum step)x->plan[x->step] :
		       STEP_ANY;

	if (x->skip_prefix) {
		int rc = expect_prefix(slot, m, why);
		return rc < 0 ? -1 : 0;
	}

	/* Asynchronous messages may come anywhere. */
	if (m->type == 'S') {
		params_message(slot, m);
		return 0;
	}
	if (m->type == 'N' || m->type == 'A')
		return 0;
	if (m->type == 'E') {
		const char *msg = pgproto_error_field(m, 'M');
		static __thread char buf[400];
		snprintf(buf, sizeof(buf), "server error: %s%s", msg != NULL ? msg : "(no message)",
			 st == STEP_NONCE_CALL && refused_call(m) ? " (the nonce's fast-path function "
			 "call was refused; a server or proxy that refuses it needs reset_check = "
			 "\"query\")" : "");
		*why = buf;
		return -1;
	}
	if (m->type == 'Z') {
		if (m->len != 1 || m->body[0] != 'I') {
			*why = "the session is not idle after the query";
			return -1;
		}
		if ((st == STEP_ROLLBACK || st == STEP_DISCARD) && *sub != 1) {
			*why = st == STEP_ROLLBACK ? "no ROLLBACK reply" : "no DISCARD ALL reply";
			return -1;
		}
		if (((st == STEP_NONCE_QUERY || st == STEP_STATE) && *sub != 3) ||
		    (st == STEP_NONCE_CALL && *sub != 1)) {
			*why = st == STEP_STATE ? "the server state's reply is incomplete" :
			       "the nonce's reply is incomplete";
			return -1;
		}
		*sub = 0;
		x->step++;
		return x->step == x->nsteps ? 1 : 0;
	}

	switch (st) {
	case STEP_ANY:
		if (m->type == 'T' || m->type == 'D' || m->type == 'C' || m->type == 'I')
			return 0;
		break;
	case STEP_ROLLBACK:
	case STEP_DISCARD:
		if (*sub == 0 && m->type == 'C') {
			const char *tag = pgproto_cstring(m, NULL);
			if (tag != NULL &&
			    strcmp(tag, st == STEP_ROLLBACK ? "ROLLBACK" : "DISCARD ALL") == 0) {
				*sub = 1;
				return 0;
			}
		}
		break;
	case STEP_NONCE_QUERY: {
		char hex[17];

		snprintf(hex, sizeof(hex), "%016" PRIx64, x->nonce);
		if (*sub == 0 && m->type == 'T') {
			*sub = 1;
			return 0;
		}
		if (*sub == 1 && pgproto_datarow_is(m, hex)) {
			*sub = 2;
			return 0;
		}
		if (*sub == 2 && m->type == 'C') {
			const char *tag = pgproto_cstring(m, NULL);
			if (tag != NULL && strcmp(tag, "SELECT 1") == 0) {
				*sub = 3;
				return 0;
			}
		}
		break;
	}
	case STEP_STATE:
		if (*sub == 0 && m->type == 'T') {
			*sub = 1;
			return 0;
		}
		if (*sub == 1 && m->type == 'D') {
			bool s = pgproto_datarow_is(m, "s"), r = pgproto_datarow_is(m, "r");
			if (s || r || pgproto_datarow_is(m, "w")) {
				params_server_state(slot, s, r);
				*sub = 2;
				return 0;
			}
		}
		if (*sub == 2 && m->type == 'C') {
			*sub = 3;
			return 0;
		}
		break;
	case STEP_NONCE_CALL:
		if (*sub == 0 && pgproto_function_result_is(m, x->nonce)) {
			*sub = 1;
			return 0;
		}
		break;
	}
	*why = "unexpected reply: the stream was not where the broker left it";
	return -1;
}

/* --- I/O ---------------------------------------------------------------- */

static void
exchange_flush(struct slot *slot)
{
	struct exchange *x = slot->exchange;

	while (x->out_off < x->out_len) {
		ssize_t n = send(slot->fd, x->out + x->out_off, x->out_len - x->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			x->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			backend_set_io(slot, slot->fd, EV_READ | EV_WRITE);
			return;
		}
		exchange_end(slot, false, n < 0 ? strerror(errno) : "send failed");
		return;
	}
	backend_set_io(slot, slot->fd, EV_READ);
}

static void
exchange_read(struct slot *slot)
{
	struct pgproto_reader *rd = &slot->exchange->rd;
	struct pgproto_msg m;
	const char *why = NULL;
	int rc;

	rc = pgproto_fill(rd, slot->fd);
	if (rc == -1) {
		exchange_end(slot, false, errno == 0 ? "the server closed the connection" :
			     strerror(errno));
		return;
	}
	if (rc == -2) {
		exchange_end(slot, false, "a reply too large to be the broker's");
		return;
	}
	while ((rc = pgproto_next(rd, &m)) == 1) {
		int done = expect(slot, &m, &why);
		if (done < 0) {
			exchange_end(slot, false, why);
			return;
		}
		if (done > 0) {
			if (pgproto_pending(rd)) {
				exchange_end(slot, false, "more replies than queries");
				return;
			}
			exchange_end(slot, true, NULL);
			return;
		}
	}
	if (rc < 0)
		exchange_end(slot, false, "malformed message from the server");
}

static void exchange_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void exchange_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* The exchange handles the slot's watchers until the backend takes them back. */
static void
drive(struct slot *slot)
{
	backend_set_handlers(slot, exchange_io_cb, exchange_timer_cb);
}

/* --- the exchanges ------------------------------------------------------ */

/*
 * Sends queries, each a step of op, in one write; with nonce_call, the
 * reset's FunctionCall of x->nonce follows them as one more step.
 */
static void
exchange_start(struct slot *slot, int op, const char *const *queries, int nqueries,
	       bool nonce_call)
{
	struct exchange *x = slot->exchange;
	size_t len = 0;

	drive(slot);
	x->op = op;
	x->nsteps = nqueries + (nonce_call ? 1 : 0);
	x->step = 0;
	x->sub = 0;
	x->out_off = 0;
	x->skip_prefix = false;
	x->prefix_cancelled = false;
	x->reset_held = false;
	pgproto_reset(&x->rd);
	for (int i = 0; i < nqueries; i++) {
		size_t n = pgproto_query(x->out + len, sizeof(x->out) - len, queries[i]);
		if (n == 0) {
			x->out_len = 0;
			exchange_end(slot, false, "query too long");
			return;
		}
		len += n;
	}
	if (nonce_call) {
		size_t n = pgproto_function_call_int8(x->out + len, sizeof(x->out) - len,
						      NONCE_FUNCTION_OID, x->nonce);
		if (n == 0) {
			x->out_len = 0;
			exchange_end(slot, false, "query too long");
			return;
		}
		len += n;
	}
	x->out_len = len;
	x->deadline = ev_now(slot->pool->broker->loop) + backend_deadline(slot);
	/* A reset is watched for a stall first (exchange_timer_cb), then for its deadline. */
	backend_set_timer(slot, op == OP_RESET ? reset_first_wait(slot) : backend_deadline(slot));
	exchange_flush(slot);
}

void
exchange_validate(struct slot *slot)
{
	struct exchange *x = slot->exchange;
	const char *q[] = { slot->pool->cfg->health_query, state_sql };
	int n = 1;

	/* A watched pool asks the server's state too, as a reset does: a server
	 * before 14 reports no in_hot_standby. */
	x->plan[0] = STEP_ANY;
	if (target_watched(slot->pool->cfg->target)) {
		x->plan[1] = STEP_STATE;
		n = 2;
	}
	exchange_start(slot, OP_VALIDATE, q, n, false);
}

void
exchange_reset(struct slot *slot, bool rollback)
{
	struct exchange *x = slot->exchange;

	slot->stalled = false;
	if (slot->cancel_in_flight) {
		/* exchange_cancel_landed() starts it; the deadline still holds */
		drive(slot);
		x->rollback = rollback;
		x->reset_pending = true;
		x->op = OP_RESET;
		x->deadline = ev_now(slot->pool->broker->loop) + backend_deadline(slot);
		backend_set_timer(slot, reset_first_wait(slot));
		return;
	}
	char nonce_sql[64];
	const char *extra = slot->pool->cfg->reset_query;
	bool call = slot->pool->cfg->reset_check == RESET_CHECK_FUNCTION;
	const char *q[5];
	int n = 0;

	x->nonce = rng_next(&slot->pool->broker->rng);
	x->rollback = rollback;
	if (rollback) {
		x->plan[n] = STEP_ROLLBACK;
		q[n++] = "ROLLBACK";
	}
	/* Always: a reset_query adds to DISCARD ALL, never replaces it. */
	x->plan[n] = STEP_DISCARD;
	q[n++] = "DISCARD ALL";
	if (extra != NULL && strcasecmp(extra, "DISCARD ALL") != 0) {
		x->plan[n] = STEP_ANY;
		q[n++] = extra;
	}
	if (target_watched(slot->pool->cfg->target)) {
		x->plan[n] = STEP_STATE;
		q[n++] = state_sql;
	}
	if (call) {
		x->plan[n] = STEP_NONCE_CALL;	/* not a query: exchange_start() adds it */
		exchange_start(slot, OP_RESET, q, n, true);
		return;
	}
	snprintf(nonce_sql, sizeof(nonce_sql), "SELECT '%016" PRIx64 "'", x->nonce);
	x->plan[n] = STEP_NONCE_QUERY;
	q[n++] = nonce_sql;
	exchange_start(slot, OP_RESET, q, n, false);
}

/*
 * A reset that did not end promptly: no longer counted as coming free, and
 * whatever runs on the backend is cancelled.  When none of the reset's own
 * replies came yet, the first ones may be the holder's cancelled query.
 */
static void
reset_stalled(struct slot *slot)
{
	struct exchange *x = slot->exchange;
	double left = x->deadline - ev_now(slot->pool->broker->loop);

	slot->stalled = true;
	if (x->step == 0 && x->sub == 0) {
		x->skip_prefix = true;
		x->prefix_cancelled = false;
	}
	log_info("reset stalled pool=%s slot=%u backend_pid=%d: cancelling what runs",
		 slot->pool->cfg->name, slot->index, slot->backend_pid);
	helper_cancel(slot);
	backend_set_timer(slot, left > 0.001 ? left : 0.001);
	events_of(slot)->stalled(slot);
}

void
exchange_terminate_other(struct slot *slot, struct slot *victim)
{
	char sql[80];
	const char *q[] = { sql };

	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", victim->backend_pid);
	slot->terminate_for = victim;
	exchange_start(slot, OP_TERMINATE, q, 1, false);
}

void
exchange_cancel_landed(struct slot *slot)
{
	struct exchange *x = slot->exchange;

	if (slot->state != SHM_SLOT_RESETTING || x == NULL)
		return;
	if (x->reset_held) {
		exchange_end(slot, true, NULL);
	} else if (x->reset_pending) {
		x->reset_pending = false;
		exchange_reset(slot, x->rollback);
	}
}

/* --- callbacks ---------------------------------------------------------- */

/*
 * These run while the slot is VALIDATING or RESETTING: an exchange starts
 * only there, and every way out of those states stops the watchers or
 * hands them back (backend_watch_idle(), backend_close()).
 */
static void
exchange_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct slot *slot = w->data;

	(void)loop;
	if (revents & EV_WRITE && slot->exchange->out_off < slot->exchange->out_len)
		exchange_flush(slot);
	/* The flush may have ended the exchange. */
	if (revents & EV_READ && running(slot))
		exchange_read(slot);
}

static void
exchange_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct slot *slot = w->data;
	struct exchange *x = slot->exchange;

	(void)revents;
	switch (slot->state) {
	case SHM_SLOT_RESETTING:
		if (x->reset_held) {
			x->reset_held = false;
			exchange_end(slot, false, "the cancel sent during the reset did not land "
				     "in time");
			break;
		}
		if (!slot->stalled && x->op == OP_RESET && ev_now(loop) < x->deadline) {
			if (x->reset_pending) {
				/* Waiting for a cancel to land before it starts. */
				slot->stalled = true;
				backend_set_timer(slot, x->deadline - ev_now(loop));
				events_of(slot)->stalled(slot);
			} else {
				reset_stalled(slot);
			}
			break;
		}
		exchange_end(slot, false, "the server did not answer in time");
		break;
	case SHM_SLOT_VALIDATING:
		exchange_end(slot, false, "the server did not answer in time");
		break;
	default:
		break;
	}
}
