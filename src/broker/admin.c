/*
 * admin.c - pglease-ctl's commands, broker side.
 *
 * An administrator is a client of the control socket like any other (it
 * says HELLO at protocol version 3) whose peer uid or groups are in
 * admin_uids/admin_gids (by default root and the broker's own uid), asked
 * again at every command, so that a reload that drops one takes effect at
 * once.  Every command is logged at info with its uid and pid; a refusal
 * at warn.
 *
 * Pause: the pool lends nothing more; acquires queue in its FIFO within
 * their own deadlines, leases out finish and are reset as always.  The
 * PAUSE answers once no lease is out, no reset and no check for a request
 * runs (quiet), or fails after its timeout with the pool left paused.
 * Resume serves the queue in its order.
 */
#include "autoconf.h"

#include "broker/admin.h"
#include "broker/access.h"
#include "broker/pool.h"
#include "broker/session.h"
#include "broker/slot.h"
#include "broker/waitq.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/wire.h"
#include "pglease.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* --- answering ------------------------------------------------------------ */

static void __attribute__((format(printf, 3, 4)))
done(struct session *s, uint64_t request_id, const char *fmt, ...)
{
	struct wire_msg m = { .h = { .type = PGL_MSG_ADMIN_DONE, .request_id = request_id } };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m.u.done.message, sizeof(m.u.done.message), fmt, ap);
	va_end(ap);
	if (session_send(s, &m, -1) != 0)
		session_close(s, "cannot answer the administrator");
}

/*
 * A table's rows, sent in as few ROWS messages as fit: each row is built
 * apart, then appended to the block, which goes when the next row would
 * not fit.  Values are JSON literals (wire.h).
 */
struct rows {
	struct session *s;
	uint64_t request_id;
	char block[WIRE_ROWS_MAX];
	size_t len;
	char row[1024];
	size_t rlen;
	bool failed;
};

static void
rows_flush(struct rows *r)
{
	struct wire_msg m = { .h = { .type = PGL_MSG_ADMIN_ROWS, .request_id = r->request_id } };

	if (r->len == 0 || r->failed)
		return;
	m.u.rows.block = r->block;
	m.u.rows.len = (uint16_t)r->len;
	if (session_send(r->s, &m, -1) != 0) {
		r->failed = true;
		session_close(r->s, "cannot answer the administrator");
	}
	r->len = 0;
}

/* Adds name = value (a JSON literal already) to the row under way. */
static void __attribute__((format(printf, 3, 4)))
field(struct rows *r, const char *name, const char *fmt, ...)
{
	char value[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	size_t n = strlen(name) + 1, v = strlen(value) + 1;
	if (r->rlen + n + v + 1 > sizeof(r->row) || value[0] == '\0')
		return;		/* rows are far shorter; never a malformed one */
	memcpy(r->row + r->rlen, name, n);
	memcpy(r->row + r->rlen + n, value, v);
	r->rlen += n + v;
}

/* A string field: quoted and escaped as JSON. */
static void
field_str(struct rows *r, const char *name, const char *s)
{
	char out[200];
	size_t o = 0;

	out[o++] = '"';
	for (; *s != '\0' && o < sizeof(out) - 8; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\%c", c);
		else if (c < 0x20)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\u%04x", c);
		else
			out[o++] = (char)c;
	}
	out[o++] = '"';
	out[o] = '\0';
	field(r, name, "%s", out);
}

static void
row_end(struct rows *r)
{
	r->row[r->rlen++] = '\0';
	if (r->len + r->rlen > sizeof(r->block))
		rows_flush(r);
	memcpy(r->block + r->len, r->row, r->rlen);
	r->len += r->rlen;
	r->rlen = 0;
}

/* --- show --------------------------------------------------------------- */

static void
show_pools(struct session *s, struct rows *r)
{
	struct broker *b = s->broker;
	double now = ev_now(b->loop);

	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		if (p->removed)
			continue;
		field_str(r, "name", p->cfg->name);
		field(r, "size", "%d", p->size);
		field(r, "min_size", "%d", p->cfg->min_size);
		field(r, "max_size", "%d", p->cfg->max_size);
		field(r, "idle", "%d", p->nidle);
		field(r, "leased", "%d", p->nleased);
		field(r, "waiting", "%d", p->nwaiting);
		field(r, "paused", "%s", p->paused ? "true" : "false");
		field(r, "backoff", "%.3f", p->retry_at > now ? p->retry_at - now : 0.0);
		field(r, "failures", "%u", p->failures);
		row_end(r);
	}
}

static void
show_clients(struct session *s, struct rows *r)
{
	struct broker *b = s->broker;
	struct session *c;

	TAILQ_FOREACH(c, &b->sessions, link) {
		char since[32];
		time_t t = (time_t)(c->connected_at_ms / 1000);
		struct tm tm;

		if (c->refusal != 0 || c->closing)
			continue;
		gmtime_r(&t, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		field(r, "pid", "%d", (int)c->pid);
		field(r, "uid", "%u", (unsigned)c->uid);
		field(r, "leases", "%d", c->nleases);
		field(r, "waiting", "%d", c->holder.nrequests);
		field_str(r, "connected_since", since);
		row_end(r);
	}
}

static void
show_leases(struct session *s, struct rows *r)
{
	struct broker *b = s->broker;
	double now = ev_now(b->loop);

	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		for (int j = 0; j < p->nslots; j++) {
			struct slot *slot = p->slots[j];
			char id[24];
			double age = now - slot->leased_at;

			if (slot->state != SHM_SLOT_LEASED)
				continue;
			snprintf(id, sizeof(id), "%016" PRIx64, slot->lease_id);
			field_str(r, "lease_id", id);
			field(r, "slot", "%u", slot->index);
			field_str(r, "pool", p->cfg->name);
			field(r, "holder_pid", "%d", slot->holder != NULL ? (int)slot->holder->pid : 0);
			field(r, "backend_pid", "%d", slot->backend_pid);
			field(r, "age", "%.3f", age);
			field_str(r, "state", p->cfg->lease_timeout > 0 && age > p->cfg->lease_timeout ?
				  "overdue" : "active");
			row_end(r);
		}
	}
}

/* --- pause and resume ------------------------------------------------------ */

/* No lease out, no reset running, no check made for a request. */
static bool
pool_quiet(const struct pool *p, int *resets)
{
	*resets = 0;
	for (int j = 0; j < p->nslots; j++) {
		const struct slot *slot = p->slots[j];
		*resets += slot->state == SHM_SLOT_RESETTING ||
			   (slot->state == SHM_SLOT_VALIDATING && slot->req != NULL);
	}
	return p->nleased == 0 && *resets == 0;
}

/* Whether the pools a PAUSE named (name, "" = all) are quiet; what is out, in why. */
static bool
pools_quiet(struct broker *b, const char *name, char *why, size_t len)
{
	int leased = 0, resets = 0;

	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		int r;
		if (p->removed || (name[0] != '\0' && strcmp(p->cfg->name, name) != 0))
			continue;
		if (!pool_quiet(p, &r)) {
			leased += p->nleased;
			resets += r;
		}
	}
	snprintf(why, len, "%d lease%s out, %d reset%s or check%s running", leased,
		 leased == 1 ? "" : "s", resets, resets == 1 ? "" : "s", resets == 1 ? "" : "s");
	return leased == 0 && resets == 0;
}

/* After each loop iteration while a PAUSE waits: answers those whose pools are quiet. */
static void
quiet_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct broker *b = w->data;
	struct session *s, *next;
	bool waiting = false;
	char why[128];

	(void)revents;
	for (s = TAILQ_FIRST(&b->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		if (!s->admin_waiting)
			continue;
		if (!pools_quiet(b, s->admin_pool, why, sizeof(why))) {
			waiting = true;
			continue;
		}
		s->admin_waiting = false;
		ev_timer_stop(loop, &s->admin_timer);
		log_info("admin pause done pool=%s uid=%u pid=%d: quiet",
			 s->admin_pool[0] != '\0' ? s->admin_pool : "*", (unsigned)s->uid,
			 (int)s->pid);
		done(s, s->admin_request, "paused %s; quiet",
		     s->admin_pool[0] != '\0' ? s->admin_pool : "every pool");
	}
	if (!waiting)
		ev_check_stop(loop, w);
}

static void
pause_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;
	char why[128];

	(void)loop;
	(void)revents;
	if (!s->admin_waiting)
		return;
	s->admin_waiting = false;
	(void)pools_quiet(s->broker, s->admin_pool, why, sizeof(why));
	log_warnx("admin pause timed out pool=%s uid=%u pid=%d: %s; it stays paused",
		  s->admin_pool[0] != '\0' ? s->admin_pool : "*", (unsigned)s->uid, (int)s->pid,
		  why);
	session_error(s, s->admin_request, PGL_ETIMEOUT, "%s%s paused but not quiet after %g s "
		      "(%s); it stays paused until resumed", s->admin_pool[0] != '\0' ?
		      "pool " : "", s->admin_pool[0] != '\0' ? s->admin_pool : "every pool",
		      s->admin_timeout, why);
}

/*
 * A resume of pool name ("" = all) answers the pauses still waiting for it
 * to be quiet: they failed, it never was.
 */
static void
resumed_waits(struct broker *b, const char *name, const char *by)
{
	struct session *s, *next;

	for (s = TAILQ_FIRST(&b->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		if (!s->admin_waiting || (name[0] != '\0' && s->admin_pool[0] != '\0' &&
					  strcmp(name, s->admin_pool) != 0))
			continue;
		s->admin_waiting = false;
		ev_timer_stop(b->loop, &s->admin_timer);
		session_error(s, s->admin_request, PGL_EINVAL, "resumed (%s) before %s%s was quiet",
			      by, s->admin_pool[0] != '\0' ? "pool " : "",
			      s->admin_pool[0] != '\0' ? s->admin_pool : "every pool");
	}
}

void
admin_pause_all(struct broker *b, bool pause, const char *why)
{
	log_info("%s every pool (%s)", pause ? "pausing" : "resuming", why);
	for (size_t i = 0; i < b->npools; i++)
		if (!b->pools[i]->removed)
			waitq_pause(b->pools[i], pause);
	if (!pause)
		resumed_waits(b, "", why);
}

/* The pools a command names: one, or all for "".  NULL and an ERROR when there is no such pool. */
static bool
target_ok(struct session *s, const struct wire_msg *m, struct pool **one)
{
	*one = NULL;
	if (m->u.admin.target[0] == '\0')
		return true;
	*one = pool_find(s->broker, m->u.admin.target);
	if (*one == NULL) {
		session_error(s, m->h.request_id, PGL_ENOPOOL, "no pool named \"%s\"",
			      m->u.admin.target);
		return false;
	}
	return true;
}

static void
do_pause(struct session *s, const struct wire_msg *m, bool pause)
{
	struct broker *b = s->broker;
	struct pool *one;
	char why[128];

	if (!target_ok(s, m, &one))
		return;
	if (pause && b->draining) {
		session_error(s, m->h.request_id, PGL_EDRAINING, "the broker is draining: "
			      "nothing to pause");
		return;
	}
	if (one != NULL) {
		waitq_pause(one, pause);
		if (!pause)
			resumed_waits(b, one->cfg->name, "pglease-ctl");
	} else {
		admin_pause_all(b, pause, "pglease-ctl");
	}
	const char *what = one != NULL ? one->cfg->name : "every pool";
	if (!pause) {
		done(s, m->h.request_id, "resumed %s", what);
		return;
	}
	if (pools_quiet(b, m->u.admin.target, why, sizeof(why)) || m->u.admin.timeout_ms == 0) {
		done(s, m->h.request_id, "paused %s; %s", what, why);
		return;
	}
	if (s->admin_waiting) {		/* a second PAUSE: only the last one is answered */
		ev_timer_stop(b->loop, &s->admin_timer);
		session_error(s, s->admin_request, PGL_EINVAL, "superseded by another pause");
	}
	s->admin_waiting = true;
	s->admin_request = m->h.request_id;
	s->admin_timeout = m->u.admin.timeout_ms / 1000.0;
	snprintf(s->admin_pool, sizeof(s->admin_pool), "%s", m->u.admin.target);
	ev_timer_init(&s->admin_timer, pause_timeout_cb, m->u.admin.timeout_ms / 1000.0, 0.);
	s->admin_timer.data = s;
	ev_timer_start(b->loop, &s->admin_timer);
	if (!ev_is_active(&b->admin_quiet)) {
		ev_check_init(&b->admin_quiet, quiet_check_cb);
		b->admin_quiet.data = b;
		ev_check_start(b->loop, &b->admin_quiet);
	}
}

/* --- the other commands ---------------------------------------------------- */

/* Every backend replaced: idle ones now, the others when they come free. */
static void
do_reconnect(struct session *s, const struct wire_msg *m)
{
	struct pool *p;
	int now = 0, later = 0;

	if (!target_ok(s, m, &p))
		return;
	if (p == NULL) {
		session_error(s, m->h.request_id, PGL_EINVAL, "reconnect needs a pool name");
		return;
	}
	for (int j = 0; j < p->nslots; j++) {
		struct slot *slot = p->slots[j];
		if (slot->state == SHM_SLOT_IDLE) {
			slot_close(slot, SLOT_CLOSE_TERMINATE, "reconnect");
			now++;
		} else if (slot->state != SHM_SLOT_EMPTY && slot->state != SHM_SLOT_CLOSING) {
			slot->recycle = true;
			later++;
		}
	}
	slot_fill(p);
	done(s, m->h.request_id, "pool %s: %d idle backends replaced now, %d when they come free",
	     p->cfg->name, now, later);
}

static void
do_kill_lease(struct session *s, const struct wire_msg *m)
{
	struct broker *b = s->broker;
	uint64_t id = m->u.admin.id;

	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		for (int j = 0; j < p->nslots; j++) {
			struct slot *slot = p->slots[j];
			if (slot->state != SHM_SLOT_LEASED || slot->lease_id != id)
				continue;
			int holder = slot->holder != NULL ? (int)slot->holder->pid : 0;
			log_info("lease killed pool=%s slot=%u backend_pid=%d holder_pid=%d by "
				 "uid=%u pid=%d", p->cfg->name, slot->index, slot->backend_pid,
				 holder, (unsigned)s->uid, (int)s->pid);
			/* As an orphan: its transaction ends with the backend, which is
			 * never lent again; the holder's next RELEASE is refused harmlessly. */
			slot_cut(slot, "killed by an administrator");
			done(s, m->h.request_id, "lease %016" PRIx64 " of pid %d killed; its backend "
			     "is being replaced", id, holder);
			return;
		}
	}
	session_error(s, m->h.request_id, PGL_EINVAL, "no lease %016" PRIx64 " is out", id);
}

static void
do_kill_client(struct session *s, const struct wire_msg *m)
{
	struct broker *b = s->broker;
	struct session *c, *next;
	int killed = 0;

	if (m->u.admin.id == 0 || m->u.admin.id > INT32_MAX || (pid_t)m->u.admin.id == s->pid) {
		session_error(s, m->h.request_id, PGL_EINVAL, "kill-client needs another client's pid");
		return;
	}
	for (c = TAILQ_FIRST(&b->sessions); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->pid != (pid_t)m->u.admin.id || c->refusal != 0 || c->closing)
			continue;
		log_info("client killed pid=%d uid=%u leases=%d by uid=%u pid=%d", (int)c->pid,
			 (unsigned)c->uid, c->nleases, (unsigned)s->uid, (int)s->pid);
		session_close(c, "killed by an administrator");
		killed++;
	}
	if (killed == 0)
		session_error(s, m->h.request_id, PGL_EINVAL, "no client with pid %" PRIu64,
			      m->u.admin.id);
	else
		done(s, m->h.request_id, "client pid %" PRIu64 " disconnected; its leases are "
		     "orphaned", m->u.admin.id);
}

/* reload and drain are the signals' own: whatever SIGHUP and SIGTERM do, these do. */
static void
do_signal(struct session *s, const struct wire_msg *m, int sig)
{
	done(s, m->h.request_id, "%s requested; the broker's log tells how it went",
	     sig == SIGHUP ? "reload" : "drain");
	if (kill(s->broker->pid, sig) != 0)
		log_warn("kill(%d, %d)", (int)s->broker->pid, sig);
}

void
admin_command(struct session *s, const struct wire_msg *m)
{
	struct broker *b = s->broker;
	uint16_t cmd = m->u.admin.cmd;
	const char *name = wire_admin_cmd_name(cmd);

	if (!access_is_admin(b, s->fd, s->uid, s->gid)) {
		log_warnx("admin command refused command=%s uid=%u pid=%d: not in "
			  "admin_uids/admin_gids", name, (unsigned)s->uid, (int)s->pid);
		session_error(s, m->h.request_id, PGL_EDENIED, "user %u may not administer this "
			      "broker (admin_uids, admin_gids)", (unsigned)s->uid);
		return;
	}
	if (cmd == WIRE_ADMIN_KILL_LEASE)
		log_info("admin command=%s lease=%016" PRIx64 " uid=%u pid=%d", name,
			 m->u.admin.id, (unsigned)s->uid, (int)s->pid);
	else if (cmd == WIRE_ADMIN_KILL_CLIENT)
		log_info("admin command=%s client_pid=%" PRIu64 " uid=%u pid=%d", name,
			 m->u.admin.id, (unsigned)s->uid, (int)s->pid);
	else
		log_info("admin command=%s pool=%s uid=%u pid=%d", name,
			 m->u.admin.target[0] != '\0' ? m->u.admin.target : "*", (unsigned)s->uid,
			 (int)s->pid);

	struct rows r = { .s = s, .request_id = m->h.request_id };
	switch (cmd) {
	case WIRE_ADMIN_SHOW_POOLS:
	case WIRE_ADMIN_SHOW_CLIENTS:
	case WIRE_ADMIN_SHOW_LEASES:
		if (cmd == WIRE_ADMIN_SHOW_POOLS)
			show_pools(s, &r);
		else if (cmd == WIRE_ADMIN_SHOW_CLIENTS)
			show_clients(s, &r);
		else
			show_leases(s, &r);
		rows_flush(&r);
		if (!r.failed)
			done(s, m->h.request_id, "%s", name);
		break;
	case WIRE_ADMIN_PAUSE:
		do_pause(s, m, true);
		break;
	case WIRE_ADMIN_RESUME:
		do_pause(s, m, false);
		break;
	case WIRE_ADMIN_RECONNECT:
		do_reconnect(s, m);
		break;
	case WIRE_ADMIN_KILL_LEASE:
		do_kill_lease(s, m);
		break;
	case WIRE_ADMIN_KILL_CLIENT:
		do_kill_client(s, m);
		break;
	case WIRE_ADMIN_RELOAD:
		do_signal(s, m, SIGHUP);
		break;
	case WIRE_ADMIN_DRAIN:
		do_signal(s, m, SIGTERM);
		break;
	default:
		session_protocol_error(s, m->h.request_id, "unknown admin command");
		break;
	}
}
