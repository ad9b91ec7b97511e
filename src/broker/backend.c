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
	params_from_libpq(slot);
	pgproto_reset(&slot->exchange->rd);
	connect_done(slot, true, NULL);
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

	own_watchers(slot);
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
	PQconninfoOption *opts;
	const char *kw[CONNECT_PARAMS_MAX + 1], *val[CONNECT_PARAMS_MAX + 1], *why;
	char options[2048], timeout[32];
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
	int connect_s = (int)ceil(backend_deadline(victim));
	if (connect_s < 2)
		connect_s = 2;
	snprintf(timeout, sizeof(timeout), "%d", connect_s);
	kw[n] = "connect_timeout", val[n++] = timeout;
	kw[n] = "application_name", val[n++] = "pgleased-terminate";	/* overrides the pool's */
	kw[n] = NULL;
	val[n] = NULL;
	int rc = helper_terminate_apart(victim->pool, victim->backend_pid, kw, val);
	PQconninfoFree(opts);
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
