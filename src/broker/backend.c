/*
 * backend.c - one backend connection's I/O.
 *
 * libpq opens the connection (non-blocking, PQconnectPoll in the loop).
 * After that the broker never reads the stream through libpq again: a leased
 * socket may come back anywhere, and libpq would silently discard what it
 * does not expect.  Health checks, resets and closes are the broker's own
 * simple-protocol exchanges, checked message by message.
 */
#include "autoconf.h"

#include "broker/backend.h"
#include "broker/exchange.h"
#include "broker/params.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* The replies an exchange expects, one step per query sent (slot->exchange->plan). */
enum step {
	STEP_ANY,		/* rows, notices, one CommandComplete or none; ReadyForQuery idle */
	STEP_ROLLBACK,		/* CommandComplete "ROLLBACK"; ReadyForQuery idle */
	STEP_DISCARD,		/* CommandComplete "DISCARD ALL"; ReadyForQuery idle */
	STEP_NONCE,		/* one row holding the nonce; ReadyForQuery idle */
};

enum op {
	OP_NONE = 0,
	OP_VALIDATE,
	OP_RESET,
	OP_TERMINATE,
};

static const double close_grace_min = 1.0;	/* seconds to wait for a backend's end */

static const struct backend_events *
events_of(const struct slot *slot)
{
	return slot->pool->broker->backend_events;
}

/*
 * A reset takes a millisecond or so.  One that has not ended after this long
 * is stuck behind something (most often a query the holder left running):
 * the slot stops counting as about to come free, so waiters are served from
 * the pool's room, and the backend's query is cancelled.
 */
static const double reset_prompt = 0.2;

static double
deadline_of(const struct slot *slot)
{
	double t = slot->pool->cfg->connect_timeout;

	return t > 0 ? t : 10.0;
}

/* A reset's timer is first set for the stall check, then for the rest of its deadline. */
static double
reset_first_wait(const struct slot *slot)
{
	return deadline_of(slot) > reset_prompt ? reset_prompt : deadline_of(slot);
}

static void
set_io(struct slot *slot, int fd, int events)
{
	struct ev_loop *loop = slot->pool->broker->loop;

	if (ev_is_active(&slot->io) && slot->io.fd == fd && slot->io_events == events)
		return;
	ev_io_stop(loop, &slot->io);
	if (events == 0)
		return;
	ev_io_set(&slot->io, fd, events);
	slot->io_events = events;
	ev_io_start(loop, &slot->io);
}

/* After the n-th attempt to end a closing backend: the deadline, doubling, at most a minute. */
static double
closing_retry(const struct slot *slot)
{
	double t = deadline_of(slot);

	for (int i = 1; i < slot->terminate_attempts && t < 60.0; i++)
		t *= 2;
	return t < 60.0 ? t : 60.0;
}

static void
set_timer(struct slot *slot, double after)
{
	struct ev_loop *loop = slot->pool->broker->loop;

	ev_timer_stop(loop, &slot->timer);
	if (after > 0) {
		ev_timer_set(&slot->timer, after, 0.);
		ev_timer_start(loop, &slot->timer);
	}
}

void
backend_stop(struct slot *slot)
{
	set_io(slot, -1, 0);
	set_timer(slot, 0);
}

/* --- connect ------------------------------------------------------------ */

static void
connect_done(struct slot *slot, bool ok, const char *error)
{
	backend_stop(slot);
	events_of(slot)->connected(slot, ok, error);
}

static void
connect_fail(struct slot *slot, const char *error)
{
	char msg[512];

	log_one_line(msg, sizeof(msg), error);
	connect_done(slot, false, msg);
}

static void
connect_poll(struct slot *slot)
{
	PostgresPollingStatusType st = PQconnectPoll(slot->conn);

	/*
	 * libpq may have closed one attempt's socket and opened the next on the
	 * same fd number (another host or address): epoll forgot the old one,
	 * so always register anew.
	 */
	switch (st) {
	case PGRES_POLLING_READING:
		set_io(slot, -1, 0);
		set_io(slot, PQsocket(slot->conn), EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		set_io(slot, -1, 0);
		set_io(slot, PQsocket(slot->conn), EV_WRITE);
		return;
	case PGRES_POLLING_FAILED:
		connect_fail(slot, PQerrorMessage(slot->conn));
		return;
	case PGRES_POLLING_OK:
	default:
		break;
	}

	/* Encryption was forced off; a leased socket cannot carry its state. */
	if (PQsslInUse(slot->conn) || PQgssEncInUse(slot->conn)) {
		connect_fail(slot, "the connection is encrypted although the broker asked for "
			     "sslmode=disable and gssencmode=disable; a leased socket cannot "
			     "carry encryption state");
		return;
	}
	slot->fd = PQsocket(slot->conn);
	slot->backend_pid = PQbackendPID(slot->conn);
	snprintf(slot->user, sizeof(slot->user), "%s", PQuser(slot->conn));
	snprintf(slot->database, sizeof(slot->database), "%s", PQdb(slot->conn));
	params_from_libpq(slot);
	pgproto_reset(&slot->exchange->rd);
	connect_done(slot, true, NULL);
}

static void
slot_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void
slot_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

void
backend_init(struct slot *slot)
{
	ev_init(&slot->io, slot_io_cb);
	slot->io.data = slot;
	ev_init(&slot->timer, slot_timer_cb);
	slot->timer.data = slot;
	slot->io_events = 0;
}

void
backend_identity(const struct pool_config *pc, char *user, size_t ulen, char *db, size_t dlen,
		 char *host, size_t hlen, char *port, size_t plen)
{
	PQconninfoOption *given = PQconninfoParse(pc->conninfo, NULL);
	PQconninfoOption *defaults = PQconndefaults();
	const char *u = NULL, *d = NULL, *h = NULL, *p = NULL;

	for (PQconninfoOption *o = given; o != NULL && o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "user") == 0)
			u = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			d = o->val;
		else if (strcmp(o->keyword, "host") == 0)
			h = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			p = o->val;
	}
	/* libpq's defaults: environment, service file, the OS user */
	for (PQconninfoOption *o = defaults; o != NULL && o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (u == NULL && strcmp(o->keyword, "user") == 0)
			u = o->val;
		else if (d == NULL && strcmp(o->keyword, "dbname") == 0)
			d = o->val;
		else if (h == NULL && strcmp(o->keyword, "host") == 0)
			h = o->val;
		else if (p == NULL && strcmp(o->keyword, "port") == 0)
			p = o->val;
	}
	snprintf(host, hlen, "%s", h != NULL ? h : "");
	snprintf(port, plen, "%s", p != NULL ? p : "");
	snprintf(user, ulen, "%s", u != NULL ? u : "");
	/* a database named like a conninfo is not one we can match */
	snprintf(db, dlen, "%s", d != NULL && strchr(d, '=') == NULL ? d : u != NULL ? u : "");
	PQconninfoFree(given);
	PQconninfoFree(defaults);
}

/* Room for the parameters of a backend connection, terminator included. */
#define CONNECT_PARAMS_MAX 64

/*
 * The keywords and values a backend of pool p connects with (the pool's
 * conninfo, encryption off, the broker's startup options, its password),
 * into kw and val, NULL-terminated: they point into *opts (free with
 * PQconninfoFree), options and the configuration.  connect_timeout is left
 * out: the caller bounds the connect its own way.  Returns 0, or -1 with a
 * reason in *why.
 */
static int
connect_params(const struct pool *p, bool with_check_interval, PQconninfoOption **opts,
	       const char **kw, const char **val, char *options, size_t optlen, const char **why)
{
	const struct pool_config *pc = p->cfg;
	int n = 0;

	if ((*opts = PQconninfoParse(pc->conninfo, NULL)) == NULL) {
		*why = "the pool's conninfo cannot be parsed";
		return -1;
	}
	if (config_backend_options(pc, with_check_interval, options, optlen) < 0) {
		PQconninfoFree(*opts);
		*opts = NULL;
		*why = "the conninfo's options are too long";
		return -1;
	}
	for (PQconninfoOption *o = *opts; o->keyword != NULL && n < CONNECT_PARAMS_MAX - 8; o++) {
		if (o->val == NULL)
			continue;
		/* Replaced below, or enforced by the broker itself. */
		if (strcmp(o->keyword, "sslmode") == 0 || strcmp(o->keyword, "gssencmode") == 0 ||
		    strcmp(o->keyword, "options") == 0 || strcmp(o->keyword, "connect_timeout") == 0 ||
		    (pc->password != NULL && strcmp(o->keyword, "password") == 0))
			continue;
		kw[n] = o->keyword;
		val[n++] = o->val;
	}
	kw[n] = "sslmode", val[n++] = "disable";
	kw[n] = "gssencmode", val[n++] = "disable";
	kw[n] = "fallback_application_name", val[n++] = "pgleased";
	if (options[0] != '\0')
		kw[n] = "options", val[n++] = options;
	if (pc->password != NULL)
		kw[n] = "password", val[n++] = pc->password;
	kw[n] = NULL;
	val[n] = NULL;
	return 0;
}

void
backend_connect(struct slot *slot)
{
	const struct pool_config *pc = slot->pool->cfg;
	PQconninfoOption *opts;
	const char *kw[CONNECT_PARAMS_MAX], *val[CONNECT_PARAMS_MAX], *why;
	char options[2048];

	slot->with_check_interval = slot->pool->server_version >= 140000;
	/* Only a backend has them (about 10 KB): not an EMPTY slot. */
	if ((slot->exchange = calloc(1, sizeof(*slot->exchange))) == NULL) {
		connect_fail(slot, "out of memory");
		return;
	}
	if (connect_params(slot->pool, slot->with_check_interval, &opts, kw, val, options,
			   sizeof(options), &why) != 0) {
		connect_fail(slot, why);
		return;
	}
	slot->conn = PQconnectStartParams(kw, val, 0);
	PQconninfoFree(opts);
	if (slot->conn == NULL) {
		connect_fail(slot, "out of memory");
		return;
	}
	if (PQstatus(slot->conn) == CONNECTION_BAD) {
		connect_fail(slot, PQerrorMessage(slot->conn));
		return;
	}
	if (pc->connect_timeout > 0)
		set_timer(slot, pc->connect_timeout);
	set_io(slot, PQsocket(slot->conn), EV_WRITE);
}

/* --- the broker's exchanges --------------------------------------------- */

static void
exchange_end(struct slot *slot, bool ok, const char *why)
{
	int op = slot->exchange->op;

	if (op == OP_RESET && ok && slot->cancel_in_flight) {
		/*
		 * Clean, but a cancel for this backend is still on its way: lent
		 * now, it could cancel the next holder's query.  cancels_done_cb()
		 * ends the reset when it has landed; the deadline still holds.
		 */
		set_io(slot, -1, 0);
		slot->exchange->reset_held = true;
		return;
	}
	backend_stop(slot);
	slot->exchange->op = OP_NONE;
	slot->stalled = false;
	slot->exchange->skip_prefix = false;
	slot->exchange->reset_held = false;
	if (op == OP_RESET)
		events_of(slot)->reset(slot, ok, why);
	else
		events_of(slot)->checked(slot, ok, why);
}

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
	switch (m->type) {
	case 'T': case 'D': case 'C': case 'I': case 'N': case 'A':
		return 0;
	case 'S':
		params_message(slot, m);
		return 0;
	case 'E': {
		const char *code = pgproto_error_field(m, 'C');
		if (code != NULL && strcmp(code, "57014") == 0 && !slot->exchange->prefix_cancelled) {
			slot->exchange->prefix_cancelled = true;
			return 0;
		}
		break;
	}
	case 'Z':
		if (slot->exchange->prefix_cancelled) {
			slot->exchange->skip_prefix = false;
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
 * Checks one reply against the plan.  Returns 1 when the exchange is
 * complete, 0 to read on, -1 on a mismatch (why set).
 */
static int
expect(struct slot *slot, const struct pgproto_msg *m, const char **why)
{
	int *sub = &slot->exchange->sub;
	enum step st = slot->exchange->op == OP_RESET ? (enum step)slot->exchange->plan[slot->exchange->step] : STEP_ANY;

	if (slot->exchange->skip_prefix) {
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
		static __thread char buf[300];
		snprintf(buf, sizeof(buf), "server error: %s", msg != NULL ? msg : "(no message)");
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
		if (st == STEP_NONCE && *sub != 3) {
			*why = "the nonce query's reply is incomplete";
			return -1;
		}
		*sub = 0;
		slot->exchange->step++;
		return slot->exchange->step == slot->exchange->nsteps ? 1 : 0;
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
	case STEP_NONCE:
		if (*sub == 0 && m->type == 'T') {
			*sub = 1;
			return 0;
		}
		if (*sub == 1 && pgproto_datarow_is(m, slot->exchange->nonce)) {
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
	*why = "unexpected reply: the stream was not where the broker left it";
	return -1;
}

static void
exchange_flush(struct slot *slot)
{
	while (slot->exchange->out_off < slot->exchange->out_len) {
		ssize_t n = send(slot->fd, slot->exchange->out + slot->exchange->out_off, slot->exchange->out_len - slot->exchange->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			slot->exchange->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_io(slot, slot->fd, EV_READ | EV_WRITE);
			return;
		}
		exchange_end(slot, false, n < 0 ? strerror(errno) : "send failed");
		return;
	}
	set_io(slot, slot->fd, EV_READ);
}

static void
exchange_read(struct slot *slot)
{
	struct pgproto_msg m;
	const char *why = NULL;
	int rc;

	rc = pgproto_fill(&slot->exchange->rd, slot->fd);
	if (rc == -1) {
		exchange_end(slot, false, errno == 0 ? "the server closed the connection" :
			     strerror(errno));
		return;
	}
	if (rc == -2) {
		exchange_end(slot, false, "a reply too large to be the broker's");
		return;
	}
	while ((rc = pgproto_next(&slot->exchange->rd, &m)) == 1) {
		int done = expect(slot, &m, &why);
		if (done < 0) {
			exchange_end(slot, false, why);
			return;
		}
		if (done > 0) {
			if (pgproto_pending(&slot->exchange->rd)) {
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

static void
exchange_start(struct slot *slot, int op, const char *const *queries, int nqueries)
{
	size_t len = 0;

	slot->exchange->op = op;
	slot->exchange->nsteps = nqueries;
	slot->exchange->step = 0;
	slot->exchange->sub = 0;
	slot->exchange->out_off = 0;
	slot->exchange->skip_prefix = false;
	slot->exchange->prefix_cancelled = false;
	slot->exchange->reset_held = false;
	pgproto_reset(&slot->exchange->rd);
	for (int i = 0; i < nqueries; i++) {
		size_t n = pgproto_query(slot->exchange->out + len, sizeof(slot->exchange->out) - len, queries[i]);
		if (n == 0) {
			slot->exchange->out_len = 0;
			exchange_end(slot, false, "query too long");
			return;
		}
		len += n;
	}
	slot->exchange->out_len = len;
	slot->exchange->deadline = ev_now(slot->pool->broker->loop) + deadline_of(slot);
	/* A reset is watched for a stall first (slot_timer_cb), then for its deadline. */
	set_timer(slot, op == OP_RESET ? reset_first_wait(slot) : deadline_of(slot));
	exchange_flush(slot);
}

void
backend_validate(struct slot *slot)
{
	const char *q[] = { slot->pool->cfg->health_query };

	exchange_start(slot, OP_VALIDATE, q, 1);
}

void
backend_reset(struct slot *slot, bool rollback)
{
	slot->stalled = false;
	if (slot->cancel_in_flight) {
		/* cancels_done_cb() starts it; the deadline still holds */
		slot->exchange->rollback = rollback;
		slot->exchange->reset_pending = true;
		slot->exchange->op = OP_RESET;
		slot->exchange->deadline = ev_now(slot->pool->broker->loop) + deadline_of(slot);
		set_timer(slot, reset_first_wait(slot));
		return;
	}
	char nonce_sql[64];
	uint64_t r = broker_random(slot->pool->broker);
	const char *extra = slot->pool->cfg->reset_query;
	const char *q[4];
	int n = 0;

	snprintf(slot->exchange->nonce, sizeof(slot->exchange->nonce), "%016" PRIx64, r);
	snprintf(nonce_sql, sizeof(nonce_sql), "SELECT '%s'", slot->exchange->nonce);
	slot->exchange->rollback = rollback;
	if (rollback) {
		slot->exchange->plan[n] = STEP_ROLLBACK;
		q[n++] = "ROLLBACK";
	}
	/* Always: a reset_query adds to DISCARD ALL, never replaces it. */
	slot->exchange->plan[n] = STEP_DISCARD;
	q[n++] = "DISCARD ALL";
	if (extra != NULL && strcasecmp(extra, "DISCARD ALL") != 0) {
		slot->exchange->plan[n] = STEP_ANY;
		q[n++] = extra;
	}
	slot->exchange->plan[n] = STEP_NONCE;
	q[n++] = nonce_sql;
	exchange_start(slot, OP_RESET, q, n);
}

/*
 * A reset that did not end promptly: no longer counted as coming free, and
 * whatever runs on the backend is cancelled.  When none of the reset's own
 * replies came yet, the first ones may be the holder's cancelled query.
 */
static void
reset_stalled(struct slot *slot)
{
	double left = slot->exchange->deadline - ev_now(slot->pool->broker->loop);

	slot->stalled = true;
	if (slot->exchange->step == 0 && slot->exchange->sub == 0) {
		slot->exchange->skip_prefix = true;
		slot->exchange->prefix_cancelled = false;
	}
	log_info("reset stalled pool=%s slot=%u backend_pid=%d: cancelling what runs",
		 slot->pool->cfg->name, slot->index, slot->backend_pid);
	backend_cancel(slot);
	set_timer(slot, left > 0.001 ? left : 0.001);
	events_of(slot)->stalled(slot);
}

void
backend_terminate_other(struct slot *slot, struct slot *victim)
{
	char sql[80];
	const char *q[] = { sql };

	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", victim->backend_pid);
	slot->terminate_for = victim;
	exchange_start(slot, OP_TERMINATE, q, 1);
}

/* --- idle watch --------------------------------------------------------- */

static void
idle_read(struct slot *slot)
{
	struct pgproto_msg m;
	int rc = pgproto_fill(&slot->exchange->rd, slot->fd);

	if (rc == -1) {
		events_of(slot)->lost(slot, errno == 0 ? "the server closed the connection" :
				   strerror(errno));
		return;
	}
	if (rc == -2) {
		events_of(slot)->lost(slot, "unexpected data from an idle backend");
		return;
	}
	while ((rc = pgproto_next(&slot->exchange->rd, &m)) == 1) {
		if (m.type == 'S') {
			params_message(slot, &m);
		} else if (m.type == 'N' || m.type == 'A') {
			continue;
		} else if (m.type == 'E') {
			char why[300];
			const char *msg = pgproto_error_field(&m, 'M');
			snprintf(why, sizeof(why), "server error: %s", msg != NULL ? msg : "(none)");
			events_of(slot)->lost(slot, why);
			return;
		} else {
			events_of(slot)->lost(slot, "unexpected message from an idle backend");
			return;
		}
	}
	if (rc < 0)
		events_of(slot)->lost(slot, "malformed message from an idle backend");
}

void
backend_watch_idle(struct slot *slot)
{
	set_timer(slot, 0);
	slot->exchange->op = OP_NONE;
	set_io(slot, slot->fd, EV_READ);
	/* Bytes may have arrived with the last reply. */
	if (backend_has_unread(slot))
		ev_feed_event(slot->pool->broker->loop, &slot->io, EV_READ);
}

bool
backend_has_unread(const struct slot *slot)
{
	return slot->exchange != NULL && pgproto_pending(&slot->exchange->rd);
}

/* --- closing ------------------------------------------------------------ */

/*
 * Cancels run in helper threads (libpq 15's PQcancel blocks while it
 * connects).  A finished one is handed back to the loop through an ev_async,
 * because a slot released meanwhile must not be reset, and so lent to the
 * next holder, before the cancel has landed: it would cancel that holder's
 * query instead.  One cancel at most is in flight per slot.
 */
struct cancel_job {
	PGcancel *cancel;
	struct slot *slot;		/* NULL once the slot is gone */
	uint64_t backend_gen;		/* the backend it cancels */
	int pid;
	char pool[CONFIG_POOL_NAME_MAX + 1];
	struct cancel_job *next;	/* in cancels.running, then cancels.done */
	struct cancel_job **prevp;
};

/*
 * pg_terminate_backend() for a backend that did not end, when the pool has
 * no idle connection to run it on: a connection of its own, opened in a
 * helper thread (libpq blocks there), used once and closed.  The job owns
 * copies of everything it needs; the slot may be gone before it is done.
 */
struct terminate_job {
	struct pool *pool_ref;		/* told when done: the pool counts this connection */
	struct terminate_job *next;
	int pid;
	char pool[CONFIG_POOL_NAME_MAX + 1];
	const char *kw[CONNECT_PARAMS_MAX + 1];
	const char *val[CONNECT_PARAMS_MAX + 1];
	size_t strings_len;
	char strings[];			/* what kw and val point to */
};

static struct {
	pthread_mutex_t lock;
	struct cancel_job *running;	/* in helper threads */
	struct cancel_job *done;	/* finished, for the loop */
	struct terminate_job *terminated; /* finished terminate helpers, for the loop */
	bool closed;			/* the loop is gone: jobs free themselves */
	struct ev_loop *loop;
	ev_async async;
} cancels = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
job_unlink(struct cancel_job *job)
{
	*job->prevp = job->next;
	if (job->next != NULL)
		job->next->prevp = job->prevp;
}

static void
job_push(struct cancel_job **head, struct cancel_job *job)
{
	job->next = *head;
	job->prevp = head;
	if (*head != NULL)
		(*head)->prevp = &job->next;
	*head = job;
}

static void terminated_done(struct terminate_job *list);

static void
cancels_done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct cancel_job *job;

	(void)loop;
	(void)w;
	(void)revents;
	pthread_mutex_lock(&cancels.lock);
	job = cancels.done;
	cancels.done = NULL;
	struct terminate_job *term = cancels.terminated;
	cancels.terminated = NULL;
	pthread_mutex_unlock(&cancels.lock);
	terminated_done(term);
	while (job != NULL) {
		struct cancel_job *next = job->next;
		struct slot *slot = job->slot;

		/* A slot gone, or a backend replaced since: nothing waits for it. */
		if (slot != NULL && slot->backend_gen == job->backend_gen) {
			slot->cancel_in_flight = false;
			if (slot->state == SHM_SLOT_RESETTING && slot->exchange->reset_held) {
				exchange_end(slot, true, NULL);
			} else if (slot->state == SHM_SLOT_RESETTING && slot->exchange->reset_pending) {
				slot->exchange->reset_pending = false;
				backend_reset(slot, slot->exchange->rollback);
			}
		}
		free(job);
		job = next;
	}
}

void
backend_setup(struct ev_loop *loop)
{
	cancels.loop = loop;
	cancels.closed = false;
	ev_async_init(&cancels.async, cancels_done_cb);
	ev_async_start(loop, &cancels.async);
}

void
backend_teardown(void)
{
	pthread_mutex_lock(&cancels.lock);
	cancels.closed = true;
	for (struct cancel_job *job = cancels.running; job != NULL; job = job->next)
		job->slot = NULL;
	while (cancels.done != NULL) {
		struct cancel_job *job = cancels.done;
		cancels.done = job->next;
		free(job);
	}
	while (cancels.terminated != NULL) {
		struct terminate_job *job = cancels.terminated;
		cancels.terminated = job->next;
		free(job);
	}
	pthread_mutex_unlock(&cancels.lock);
	if (cancels.loop != NULL)
		ev_async_stop(cancels.loop, &cancels.async);
}

/*
 * Starts fn(arg) in a detached helper thread that takes no signals (they
 * are the loop's).  Returns 0 or an errno value.
 */
static int
start_helper(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static void *
cancel_thread(void *arg)
{
	struct cancel_job *job = arg;
	char err[256];

	if (!PQcancel(job->cancel, err, sizeof(err)))
		log_warnx("cancel failed pool=%s backend_pid=%d: %s", job->pool, job->pid, err);
	PQfreeCancel(job->cancel);
	job->cancel = NULL;

	pthread_mutex_lock(&cancels.lock);
	job_unlink(job);
	if (cancels.closed) {
		free(job);
	} else {
		job_push(&cancels.done, job);
		ev_async_send(cancels.loop, &cancels.async);
	}
	pthread_mutex_unlock(&cancels.lock);
	return NULL;
}

void
backend_cancel(struct slot *slot)
{
	struct cancel_job *job;

	if (slot->conn == NULL || slot->cancel_in_flight)
		return;		/* one is on its way already: that is enough */
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return;
	job->cancel = PQgetCancel(slot->conn);
	job->slot = slot;
	job->backend_gen = slot->backend_gen;
	job->pid = slot->backend_pid;
	snprintf(job->pool, sizeof(job->pool), "%s", slot->pool->cfg->name);
	if (job->cancel == NULL) {
		free(job);
		return;
	}
	pthread_mutex_lock(&cancels.lock);
	job_push(&cancels.running, job);
	int rc = start_helper(cancel_thread, job);
	if (rc != 0)
		job_unlink(job);
	pthread_mutex_unlock(&cancels.lock);
	if (rc != 0) {
		log_warnx("cannot start a cancel thread pool=%s backend_pid=%d: %s",
			  job->pool, job->pid, strerror(rc));
		PQfreeCancel(job->cancel);
		free(job);
		return;
	}
	slot->cancel_in_flight = true;
}

/* In the loop: terminate helpers that finished give their room back. */
static void
terminated_done(struct terminate_job *list)
{
	while (list != NULL) {
		struct terminate_job *next = list->next;
		struct pool *p = list->pool_ref;
		free(list);
		p->broker->backend_events->terminated(p);
		list = next;
	}
}

static void *
terminate_thread(void *arg)
{
	struct terminate_job *job = arg;
	char sql[64], msg[512];
	PGconn *conn = PQconnectdbParams(job->kw, job->val, 0);

	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", job->pid);
	if (PQstatus(conn) != CONNECTION_OK) {
		log_one_line(msg, sizeof(msg), conn != NULL ? PQerrorMessage(conn) : "out of memory");
		log_warnx("cannot connect to end backend_pid=%d of pool=%s: %s", job->pid,
			  job->pool, msg);
	} else {
		PGresult *r = PQexec(conn, sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			log_one_line(msg, sizeof(msg), PQresultErrorMessage(r));
			log_warnx("pg_terminate_backend(%d) failed pool=%s: %s", job->pid,
				  job->pool, msg);
		} else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
			log_warnx("pg_terminate_backend(%d) pool=%s: no such backend, or not "
				  "allowed to end it", job->pid, job->pool);
		}
		PQclear(r);
	}
	PQfinish(conn);
	/* The secret in job->strings goes before the memory does. */
	explicit_bzero(job->strings, job->strings_len);
	pthread_mutex_lock(&cancels.lock);
	if (cancels.closed) {
		free(job);
	} else {
		job->next = cancels.terminated;
		cancels.terminated = job;
		ev_async_send(cancels.loop, &cancels.async);
	}
	pthread_mutex_unlock(&cancels.lock);
	return NULL;
}

int
backend_terminate_apart(struct slot *victim)
{
	const struct pool_config *pc = victim->pool->cfg;
	PQconninfoOption *opts;
	const char *kw[CONNECT_PARAMS_MAX + 1], *val[CONNECT_PARAMS_MAX + 1], *why;
	char options[2048], timeout[32];
	size_t need = 0;
	int n;

	if (connect_params(victim->pool, false, &opts, kw, val, options, sizeof(options),
			   &why) != 0) {
		log_warnx("cannot end backend_pid=%d of pool=%s: %s", victim->backend_pid,
			  pc->name, why);
		return -1;
	}
	for (n = 0; kw[n] != NULL; n++)
		;
	/* libpq takes less than 2 s as 2, per host tried */
	int connect_s = (int)ceil(deadline_of(victim));
	if (connect_s < 2)
		connect_s = 2;
	snprintf(timeout, sizeof(timeout), "%d", connect_s);
	kw[n] = "connect_timeout", val[n++] = timeout;
	kw[n] = "application_name", val[n++] = "pgleased-terminate";	/* overrides the pool's */
	kw[n] = NULL;
	val[n] = NULL;
	for (int i = 0; i < n; i++)
		need += strlen(kw[i]) + strlen(val[i]) + 2;

	struct terminate_job *job = calloc(1, sizeof(*job) + need + 1);
	if (job == NULL) {
		PQconninfoFree(opts);
		log_warnx("cannot end backend_pid=%d of pool=%s: out of memory",
			  victim->backend_pid, pc->name);
		return -1;
	}
	job->pool_ref = victim->pool;
	job->pid = victim->backend_pid;
	job->strings_len = need;
	snprintf(job->pool, sizeof(job->pool), "%s", pc->name);
	char *at = job->strings;
	for (int i = 0; i < n; i++) {
		size_t k = strlen(kw[i]) + 1, v = strlen(val[i]) + 1;
		job->kw[i] = memcpy(at, kw[i], k);
		job->val[i] = memcpy(at + k, val[i], v);
		at += k + v;
	}
	PQconninfoFree(opts);

	int rc = start_helper(terminate_thread, job);
	if (rc != 0) {
		log_warnx("cannot start a thread to end backend_pid=%d of pool=%s: %s", job->pid,
			  job->pool, strerror(rc));
		explicit_bzero(job->strings, need);
		free(job);
		return -1;
	}
	/* The slot waits for the end of stream while the helper connects and asks. */
	set_timer(victim, 2.0 * connect_s + deadline_of(victim));
	return 0;
}

static void
close_read(struct slot *slot)
{
	for (;;) {
		int rc = pgproto_fill(&slot->exchange->rd, slot->fd);
		if (rc == 0)
			return;
		if (rc == -2 || rc == 1) {	/* whatever it is, discard it */
			pgproto_reset(&slot->exchange->rd);
			continue;
		}
		break;				/* end of stream: the backend is gone */
	}
	backend_stop(slot);
	backend_free(slot);
	events_of(slot)->closed(slot);
}

void
backend_close(struct slot *slot, enum slot_close_how how)
{
	backend_stop(slot);
	slot->exchange->op = OP_NONE;
	slot->terminate_attempts = 0;
	if (slot->conn == NULL || slot->fd < 0) {
		backend_free(slot);
		events_of(slot)->closed(slot);
		return;
	}
	if (how == SLOT_CLOSE_ABORT) {
		backend_cancel(slot);
	} else {
		ssize_t n = send(slot->fd, pgproto_terminate, sizeof(pgproto_terminate),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;	/* a dead peer is what we want anyway */
	}
	/* Ends the stream for every copy of the fd, unlike close(). */
	shutdown(slot->fd, SHUT_WR);
	pgproto_reset(&slot->exchange->rd);
	double grace = deadline_of(slot);
	set_timer(slot, grace > close_grace_min ? grace : close_grace_min);
	set_io(slot, slot->fd, EV_READ);
}

void
backend_free(struct slot *slot)
{
	backend_stop(slot);
	if (slot->conn != NULL) {
		/* Its Terminate goes to a socket already shut down: harmless. */
		PQfinish(slot->conn);
		slot->conn = NULL;
	}
	slot->fd = -1;
	slot->backend_pid = 0;
	slot->params_len = 0;
	slot->stalled = false;
	/* A cancel still on its way concerns the old backend only. */
	slot->cancel_in_flight = false;
	slot->backend_gen++;
	free(slot->exchange);	/* with the reader, and a reset held or pending */
	slot->exchange = NULL;
}

void
backend_forget(struct slot *slot)
{
	pthread_mutex_lock(&cancels.lock);
	for (struct cancel_job *job = cancels.running; job != NULL; job = job->next)
		if (job->slot == slot)
			job->slot = NULL;
	for (struct cancel_job *job = cancels.done; job != NULL; job = job->next)
		if (job->slot == slot)
			job->slot = NULL;
	pthread_mutex_unlock(&cancels.lock);
}

/* --- callbacks ---------------------------------------------------------- */

static void
slot_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct slot *slot = w->data;

	(void)loop;
	switch (slot->state) {
	case SHM_SLOT_CONNECTING:
		connect_poll(slot);
		break;
	case SHM_SLOT_IDLE:
		if (slot->exchange->op == OP_NONE)
			idle_read(slot);
		else if (revents & EV_WRITE && slot->exchange->out_off < slot->exchange->out_len)
			exchange_flush(slot);
		else
			exchange_read(slot);
		break;
	case SHM_SLOT_VALIDATING:
	case SHM_SLOT_RESETTING:
		if (revents & EV_WRITE && slot->exchange->out_off < slot->exchange->out_len)
			exchange_flush(slot);
		/* The flush may have ended the exchange, or the backend. */
		if (revents & EV_READ && slot->exchange != NULL && slot->exchange->op != OP_NONE)
			exchange_read(slot);
		break;
	case SHM_SLOT_CLOSING:
		close_read(slot);
		break;
	default:
		/* LEASED or EMPTY: no watcher should be running. */
		log_warnx("pool=%s slot=%u: I/O event in state %s", slot->pool->cfg->name,
			  slot->index, shm_slot_state_name(slot->state));
		backend_stop(slot);
		break;
	}
}

static void
slot_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct slot *slot = w->data;

	(void)revents;
	switch (slot->state) {
	case SHM_SLOT_CONNECTING: {
		char msg[128];
		snprintf(msg, sizeof(msg), "connect timed out after %g s",
			 slot->pool->cfg->connect_timeout);
		connect_done(slot, false, msg);
		break;
	}
	case SHM_SLOT_RESETTING:
		if (slot->exchange->reset_held) {
			slot->exchange->reset_held = false;
			exchange_end(slot, false, "the cancel sent during the reset did not land "
				     "in time");
			break;
		}
		if (!slot->stalled && slot->exchange->op == OP_RESET && ev_now(loop) < slot->exchange->deadline) {
			if (slot->exchange->reset_pending) {
				/* Waiting for a cancel to land before it starts. */
				slot->stalled = true;
				set_timer(slot, slot->exchange->deadline - ev_now(loop));
				events_of(slot)->stalled(slot);
			} else {
				reset_stalled(slot);
			}
			break;
		}
		exchange_end(slot, false, "the server did not answer in time");
		break;
	case SHM_SLOT_IDLE:
	case SHM_SLOT_VALIDATING:
		exchange_end(slot, false, "the server did not answer in time");
		break;
	case SHM_SLOT_CLOSING:
		if (slot->terminate_attempts > 0 && slot->pool->broker->stopping) {
			log_warnx("pool=%s slot=%u backend_pid=%d did not end; the broker stops "
				  "without it", slot->pool->cfg->name, slot->index, slot->backend_pid);
			backend_free(slot);
			events_of(slot)->closed(slot);
			break;
		}
		/*
		 * No end of stream: end the backend through another connection, and
		 * again, less and less often, for as long as it lives.  The slot
		 * stays taken meanwhile: the backend may still run, and a
		 * replacement would put the pool above max_size.
		 */
		if (slot->terminate_attempts > 0)
			log_warnx("pool=%s slot=%u backend_pid=%d still has not ended after %d "
				  "attempts to terminate it; its slot stays taken",
				  slot->pool->cfg->name, slot->index, slot->backend_pid,
				  slot->terminate_attempts);
		slot->terminate_attempts++;
		set_timer(slot, closing_retry(slot));
		events_of(slot)->stuck(slot);
		break;
	default:
		break;
	}
}
