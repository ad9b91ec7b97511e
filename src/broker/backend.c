/*
 * backend.c - one backend connection: connect, watch while idle, close.
 *
 * libpq opens the connection (non-blocking, PQconnectPoll in the loop).
 * After that the broker never reads the stream through libpq again: a leased
 * socket may come back anywhere, and libpq would silently discard what it
 * does not expect.  The broker's own exchanges on it (exchange.c) borrow the
 * slot's watchers while they run; this file takes them back for the idle
 * watch and the closing.
 */
#include "autoconf.h"

#include "broker/backend.h"
#include "broker/conninfo.h"
#include "broker/exchange.h"
#include "broker/helper.h"
#include "broker/params.h"
#include "common/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const double close_grace_min = 1.0;	/* seconds to wait for a backend's end */

static const struct backend_events *
events_of(const struct slot *slot)
{
	return slot->pool->broker->backend_events;
}

/* --- the slot's watchers ------------------------------------------------ */

double
backend_deadline(const struct slot *slot)
{
	double t = slot->pool->cfg->connect_timeout;

	return t > 0 ? t : 10.0;
}

void
backend_set_io(struct slot *slot, int fd, int events)
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
	double t = backend_deadline(slot);

	for (int i = 1; i < slot->terminate_attempts && t < 60.0; i++)
		t *= 2;
	return t < 60.0 ? t : 60.0;
}

void
backend_set_timer(struct slot *slot, double after)
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
	backend_set_io(slot, -1, 0);
	backend_set_timer(slot, 0);
}

void
backend_set_handlers(struct slot *slot, void (*io_cb)(struct ev_loop *, ev_io *, int),
		     void (*timer_cb)(struct ev_loop *, ev_timer *, int))
{
	ev_set_cb(&slot->io, io_cb);
	ev_set_cb(&slot->timer, timer_cb);
}

static void
slot_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void
slot_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* The connect, the idle watch and the closing handle the slot's watchers here. */
static void
own_watchers(struct slot *slot)
{
	backend_set_handlers(slot, slot_io_cb, slot_timer_cb);
}

void
backend_init(struct slot *slot)
{
	ev_init(&slot->io, slot_io_cb);
	slot->io.data = slot;
	ev_init(&slot->timer, slot_timer_cb);
	slot->timer.data = slot;
	slot->io_events = 0;
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

static void confirm_start(struct slot *slot);

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
		backend_set_io(slot, -1, 0);
		backend_set_io(slot, PQsocket(slot->conn), EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		backend_set_io(slot, -1, 0);
		backend_set_io(slot, PQsocket(slot->conn), EV_WRITE);
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
	/* Which of the conninfo's hosts libpq settled on: shown in shm, and where a
	 * pg_terminate_backend() for this backend must go. */
	const char *v = PQhost(slot->conn);
	snprintf(slot->host, sizeof(slot->host), "%s", v != NULL ? v : "");
	v = PQport(slot->conn);
	snprintf(slot->port, sizeof(slot->port), "%s", v != NULL ? v : "");
	v = PQhostaddr(slot->conn);
	snprintf(slot->hostaddr, sizeof(slot->hostaddr), "%s", v != NULL ? v : "");
	confirm_start(slot);
}

/*
 * One query before the backend is ready: which backend this connection
 * really is, and whether its server is in recovery.  Through a proxy
 * (PgBouncer) the pid of the startup's BackendKeyData is the proxy's cancel
 * key, not a server pid: only a pid that pg_backend_pid() confirms here is
 * ever passed to pg_terminate_backend().  pg_is_in_recovery() stands in for
 * in_hot_standby on a server that does not report it (before 14).  A server
 * that refuses the query still serves: nothing is confirmed, that is all.
 */
static const char confirm_sql[] = "SELECT pg_backend_pid(), pg_is_in_recovery()";

static void
confirm_start(struct slot *slot)
{
	slot->pid_confirmed = slot->confirm_answered = slot->confirm_recovery = false;
	if (!PQsendQuery(slot->conn, confirm_sql)) {
		connect_fail(slot, PQerrorMessage(slot->conn));
		return;
	}
	slot->confirming = true;
	backend_set_io(slot, -1, 0);
	backend_set_io(slot, slot->fd, EV_READ);
}

static void
confirm_read(struct slot *slot)
{
	if (!PQconsumeInput(slot->conn)) {
		connect_fail(slot, PQerrorMessage(slot->conn));
		return;
	}
	while (!PQisBusy(slot->conn)) {
		PGresult *r = PQgetResult(slot->conn);
		if (r == NULL)
			break;
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 2) {
			slot->pid_confirmed = atoi(PQgetvalue(r, 0, 0)) == slot->backend_pid;
			slot->confirm_recovery = PQgetvalue(r, 0, 1)[0] == 't';
			slot->confirm_answered = true;
		}
		PQclear(r);
		if (PQstatus(slot->conn) == CONNECTION_BAD) {
			connect_fail(slot, PQerrorMessage(slot->conn));
			return;
		}
	}
	if (PQisBusy(slot->conn))
		return;		/* more to read */
	slot->confirming = false;
	if (PQtransactionStatus(slot->conn) != PQTRANS_IDLE) {
		connect_fail(slot, "the session is not idle after the broker's first query");
		return;
	}
	if (slot->confirm_answered && !slot->pid_confirmed && !slot->pool->proxy_warned) {
		/* Once per pool: what it means is the pool's, not the backend's. */
		slot->pool->proxy_warned = true;
		log_warnx("pool=%s: the startup's backend pid is not pg_backend_pid(): a proxy "
			  "(PgBouncer?) is in between.  It must pool in session mode: in "
			  "transaction or statement mode DISCARD ALL and the reset's nonce cannot "
			  "keep one lease's session state from the next.  pg_terminate_backend() "
			  "is never used on this pool's backends", slot->pool->cfg->name);
	}
	params_from_libpq(slot);
	if (slot->confirm_answered && !slot->reports_state)
		params_server_state(slot, slot->confirm_recovery, slot->read_only);
	pgproto_reset(&slot->exchange->rd);
	connect_done(slot, true, NULL);
}


void
backend_connect(struct slot *slot)
{
	const struct pool_config *pc = slot->pool->cfg;

	own_watchers(slot);
	slot->with_check_interval = slot->pool->server_version >= 140000;
	/* Only a backend has them (about 10 KB): not an EMPTY slot. */
	if ((slot->exchange = calloc(1, sizeof(*slot->exchange))) == NULL) {
		connect_fail(slot, "out of memory");
		return;
	}
	/* Built once, at load: the conninfo is not parsed again per connect. */
	const char *const *kw = conninfo_keywords(pc, slot->with_check_interval);
	const char *const *val = conninfo_values(pc, slot->with_check_interval);
	if (kw == NULL || val == NULL) {
		connect_fail(slot, "the conninfo's options are too long");
		return;
	}
	slot->conn = PQconnectStartParams(kw, val, 0);
	if (slot->conn == NULL) {
		connect_fail(slot, "out of memory");
		return;
	}
	if (PQstatus(slot->conn) == CONNECTION_BAD) {
		connect_fail(slot, PQerrorMessage(slot->conn));
		return;
	}
	if (pc->connect_timeout > 0)
		backend_set_timer(slot, pc->connect_timeout);
	backend_set_io(slot, PQsocket(slot->conn), EV_WRITE);
}

/* --- idle watch --------------------------------------------------------- */

static void
idle_read(struct slot *slot)
{
	struct pgproto_reader *rd = &slot->exchange->rd;
	struct pgproto_msg m;
	int rc = pgproto_fill(rd, slot->fd);

	if (rc == -1) {
		events_of(slot)->lost(slot, errno == 0 ? "the server closed the connection" :
				   strerror(errno));
		return;
	}
	if (rc == -2) {
		events_of(slot)->lost(slot, "unexpected data from an idle backend");
		return;
	}
	while ((rc = pgproto_next(rd, &m)) == 1) {
		if (m.type == 'S') {
			params_message(slot, &m);
			if (slot->unfit) {
				events_of(slot)->lost(slot, "the server no longer serves the pool's "
						      "target_session_attrs");
				return;
			}
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
	backend_set_timer(slot, 0);
	own_watchers(slot);
	backend_set_io(slot, slot->fd, EV_READ);
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

int
backend_terminate_apart(struct slot *victim)
{
	const struct pool_config *pc = victim->pool->cfg;
	const char *const *ckw = conninfo_keywords(pc, false), *const *cval = conninfo_values(pc, false);
	const char *kw[CONNINFO_PARAMS_MAX + 6], *val[CONNINFO_PARAMS_MAX + 6];
	char timeout[32];
	int n;

	if (ckw == NULL || cval == NULL) {
		log_warnx("cannot end backend_pid=%d of pool=%s: the conninfo's options are too "
			  "long", victim->backend_pid, pc->name);
		return -1;
	}
	if (!victim->pid_confirmed) {
		log_warnx("not terminating backend_pid=%d of pool=%s: pg_backend_pid() did not "
			  "confirm that pid on its connection (a proxy such as PgBouncer in "
			  "between?); it ends when the server or the proxy closes it",
			  victim->backend_pid, pc->name);
		return -1;
	}
	for (n = 0; ckw[n] != NULL; n++)
		kw[n] = ckw[n], val[n] = cval[n];
	/* libpq takes less than 2 s as 2, per host tried */
	int connect_s = (int)ceil(backend_deadline(victim));
	if (connect_s < 2)
		connect_s = 2;
	snprintf(timeout, sizeof(timeout), "%d", connect_s);
	kw[n] = "connect_timeout", val[n++] = timeout;
	kw[n] = "application_name", val[n++] = "pgleased-terminate";	/* overrides the pool's */
	/*
	 * The victim's server, not whichever of the conninfo's hosts answers
	 * first: the same pid on another server is another backend.  Later
	 * entries override the conninfo's.
	 */
	kw[n] = "host", val[n++] = victim->host;
	kw[n] = "port", val[n++] = victim->port;
	kw[n] = "hostaddr", val[n++] = victim->hostaddr;
	kw[n] = "target_session_attrs", val[n++] = "any";
	kw[n] = NULL;
	val[n] = NULL;
	int rc = helper_terminate_apart(victim->pool, victim->backend_pid, kw, val);
	if (rc != 0)
		return -1;
	/* The slot waits for the end of stream while the helper connects and asks. */
	backend_set_timer(victim, 2.0 * connect_s + backend_deadline(victim));
	return 0;
}

static void
close_read(struct slot *slot)
{
	struct pgproto_reader *rd = &slot->exchange->rd;

	for (;;) {
		int rc = pgproto_fill(rd, slot->fd);
		if (rc == 0)
			return;
		if (rc == -2 || rc == 1) {	/* whatever it is, discard it */
			pgproto_reset(rd);
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
	own_watchers(slot);
	slot->terminate_attempts = 0;
	if (slot->conn == NULL || slot->fd < 0) {
		backend_free(slot);
		events_of(slot)->closed(slot);
		return;
	}
	if (how == SLOT_CLOSE_ABORT) {
		helper_cancel(slot);
	} else {
		ssize_t n = send(slot->fd, pgproto_terminate, sizeof(pgproto_terminate),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;	/* a dead peer is what we want anyway */
	}
	/* Ends the stream for every copy of the fd, unlike close(). */
	shutdown(slot->fd, SHUT_WR);
	pgproto_reset(&slot->exchange->rd);
	double grace = backend_deadline(slot);
	backend_set_timer(slot, grace > close_grace_min ? grace : close_grace_min);
	backend_set_io(slot, slot->fd, EV_READ);
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
	slot->pid_confirmed = false;
	slot->confirming = false;
	slot->host[0] = slot->port[0] = slot->hostaddr[0] = '\0';
	slot->params_len = 0;
	slot->stalled = false;
	/* A cancel still on its way concerns the old backend only. */
	slot->cancel_in_flight = false;
	slot->backend_gen++;
	free(slot->exchange);	/* with the reader, and a reset held or pending */
	slot->exchange = NULL;
}

/* --- callbacks ---------------------------------------------------------- */

static void
slot_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct slot *slot = w->data;

	(void)loop;
	(void)revents;
	switch (slot->state) {
	case SHM_SLOT_CONNECTING:
		if (slot->confirming)
			confirm_read(slot);
		else
			connect_poll(slot);
		break;
	case SHM_SLOT_IDLE:
		idle_read(slot);
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

	(void)loop;
	(void)revents;
	switch (slot->state) {
	case SHM_SLOT_CONNECTING: {
		char msg[128];
		snprintf(msg, sizeof(msg), "connect timed out after %g s",
			 slot->pool->cfg->connect_timeout);
		connect_done(slot, false, msg);
		break;
	}
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
		backend_set_timer(slot, closing_retry(slot));
		events_of(slot)->stuck(slot);
		break;
	default:
		break;
	}
}
