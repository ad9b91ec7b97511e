/*
 * slot.c - the slot state machine: every transition of a pool's backend
 * connections, what starts it and what ends it.
 *
 * The pool layer asks for transitions (connect, check, lend, release,
 * close); backend I/O reports how its operations ended through
 * slot_backend_events; a slot fit to lend is offered to the wait queue
 * through the broker's slot_hooks.  Everything runs in the broker's single
 * event loop thread, and each transition is published to shared memory at
 * once.
 */
#include "autoconf.h"

#include "broker/slot.h"
#include "broker/backend.h"
#include "broker/exchange.h"
#include "broker/helper.h"
#include "broker/holder.h"
#include "broker/pool.h"
#include "broker/publish.h"
#include "broker/target.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

static void
set_state(struct slot *slot, int state)
{
	slot->state = state;
	publish_slot(slot);
}

static void
idle_remove(struct slot *slot)
{
	struct pool *p = slot->pool;

	TAILQ_REMOVE(&p->idle, slot, idle_link);
	p->nidle--;
}

void
slot_close(struct slot *slot, enum slot_close_how how, const char *why)
{
	if (slot->state == SHM_SLOT_IDLE)
		idle_remove(slot);
	slot->close_reason = why;
	set_state(slot, SHM_SLOT_CLOSING);
	backend_close(slot, how);
}

/* --- growing and backing off ---------------------------------------------- */

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pool *p = w->data;

	(void)loop;
	(void)revents;
	p->retry_at = 0;
	slot_fill(p);
}

void
slot_back_off(struct pool *p, const char *why)
{
	struct broker *b = p->broker;
	double delay;

	if (why != p->last_error)
		snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	p->failures++;
	delay = backoff_delay(p->cfg->initial_backoff, p->cfg->max_backoff, p->cfg->jitter,
			      p->failures, rng_unit(&b->rng));
	log_warnx("backing off pool=%s failures=%u retry_in=%.3fs: %s", p->cfg->name,
		  p->failures, delay, why);
	shm_begin(&b->shm);
	b->shm.pools[p->index].backoff_until_ms = clock_real_ms() + (int64_t)(delay * 1000);
	shm_end(&b->shm);
	p->retry_at = ev_now(b->loop) + delay;
	ev_timer_stop(b->loop, &p->retry_timer);
	ev_timer_init(&p->retry_timer, retry_cb, delay, 0.);
	p->retry_timer.data = p;
	ev_timer_start(b->loop, &p->retry_timer);
}

static void
slot_connect(struct slot *slot)
{
	struct pool *p = slot->pool;

	p->size++;
	p->connecting++;
	slot->created_at = ev_now(p->broker->loop);
	slot->recycle = false;
	set_state(slot, SHM_SLOT_CONNECTING);
	backend_connect(slot);
}

/*
 * Backends on their way count against the waiters: connecting ones, prompt
 * resets and background health checks (those take far less than a connect).
 * Until a connection has shown the server's version, one connects alone:
 * the version decides the startup options of the others.
 */
void
slot_fill(struct pool *p)
{
	struct broker *b = p->broker;
	int want;

	if (b->draining || b->stopping || p->removed)
		return;
	if (p->retry_at > 0)
		return;		/* the retry timer calls again */
	int coming = p->connecting;
	for (int j = 0; j < p->nslots; j++) {
		const struct slot *slot = p->slots[j];
		if (slot->recycle)
			continue;
		coming += (slot->state == SHM_SLOT_RESETTING && !slot->stalled) ||
			  (slot->state == SHM_SLOT_VALIDATING && slot->req == NULL);
	}
	want = p->cfg->min_size - p->size;
	/* A paused pool lends nothing: its waiters need no new backend yet. */
	if (!p->paused && p->nwaiting - coming > want)
		want = p->nwaiting - coming;
	if (want > p->cfg->max_size - p->size)
		want = p->cfg->max_size - p->size;
	if (p->server_version == 0) {
		if (p->connecting > 0)
			return;
		if (want > 1)
			want = 1;
	}
	for (int j = 0; j < p->nslots && want > 0 && p->retry_at == 0; j++) {
		if (p->slots[j]->state == SHM_SLOT_EMPTY) {
			slot_connect(p->slots[j]);	/* may fail at once and back off */
			want--;
		}
	}
}

/* A backend of p is gone: refill, unless the pool or the broker is on its way out. */
static void
room_freed(struct pool *p)
{
	struct broker *b = p->broker;

	if (!b->stopping && !b->draining && !p->removed)
		slot_fill(p);
}

/* --- fit to lend ------------------------------------------------------------ */

/* A slot fit to lend: to the first waiter, else onto the idle list. */
static void
slot_ready(struct slot *slot)
{
	struct pool *p = slot->pool;
	struct broker *b = p->broker;

	if (slot->recycle || b->draining || b->stopping) {
		slot_close(slot, SLOT_CLOSE_TERMINATE, slot->recycle ? "recycled" : "shutting down");
		return;
	}
	slot->idle_since = ev_now(b->loop);
	TAILQ_INSERT_HEAD(&p->idle, slot, idle_link);
	p->nidle++;
	set_state(slot, SHM_SLOT_IDLE);
	if (!b->slot_hooks->idle(slot))
		backend_watch_idle(slot);
}

void
slot_take_idle(struct slot *slot)
{
	idle_remove(slot);
	backend_stop(slot);
}

/*
 * The broker may have read part of a server message (the start of an
 * ErrorResponse, say) that the holder would never see: such a backend is
 * replaced instead.
 */
static void on_lost(struct slot *slot, const char *why);
static void close_unfit(struct slot *slot);

bool
slot_lendable(struct slot *slot)
{
	/* The server's last-known state: one branch on a flag kept by params.c. */
	if (__builtin_expect(slot->unfit, 0)) {
		close_unfit(slot);
		return false;
	}
	if (!backend_has_unread(slot))
		return true;
	on_lost(slot, "part of a server message is unread");
	return false;
}

void
slot_check(struct slot *slot, struct acquire_req *req)
{
	slot->req = req;
	set_state(slot, SHM_SLOT_VALIDATING);
	exchange_validate(slot);
}

/* --- leases ----------------------------------------------------------------- */

void
slot_lease(struct slot *slot, struct holder *h, double started)
{
	struct pool *p = slot->pool;
	struct broker *b = p->broker;
	double now = ev_now(b->loop);

	do
		slot->lease_id = (uint64_t)b->incarnation << 32 | ++b->lease_seq;
	while ((uint32_t)slot->lease_id == 0);
	slot->req = NULL;
	slot->holder = h;
	slot->leased_at = now;
	slot->lease_warned = false;
	slot->lease_count++;
	p->nleased++;
	slot->state = SHM_SLOT_LEASED;

	/* Counted before the GRANT goes: a holder reading the segment sees its lease. */
	uint64_t wait_us = (uint64_t)((now - started) * 1e6);
	struct shm_pool *sp = &b->shm.pools[p->index];
	shm_begin(&b->shm);
	sp->leases++;
	sp->acquire_wait_us_total += wait_us;
	if (wait_us > sp->acquire_wait_us_max)
		sp->acquire_wait_us_max = wait_us;
	publish_slot_locked(slot);
	shm_end(&b->shm);
}

void
slot_unlease(struct slot *slot, double started)
{
	struct pool *p = slot->pool;
	struct broker *b = p->broker;
	uint64_t wait_us = (uint64_t)((slot->leased_at - started) * 1e6);

	shm_begin(&b->shm);
	b->shm.pools[p->index].leases--;
	b->shm.pools[p->index].acquire_wait_us_total -= wait_us;
	shm_end(&b->shm);
	p->nleased--;
	slot->lease_count--;
	slot->holder = NULL;
	slot_ready(slot);
}

void
slot_release(struct slot *slot, int state)
{
	struct pool *p = slot->pool;
	struct broker *b = p->broker;

	p->nleased--;
	slot->holder = NULL;
	if (state == WIRE_RELEASE_BROKEN) {
		log_info("lease discarded pool=%s slot=%u backend_pid=%d: replacing", p->cfg->name,
			 slot->index, slot->backend_pid);
		slot_close(slot, SLOT_CLOSE_ABORT, "discarded by its holder");
		return;
	}
	if (b->draining || b->stopping || slot->recycle) {
		/* No reset for a backend that is closed anyway. */
		slot_close(slot, state == WIRE_RELEASE_UNKNOWN ? SLOT_CLOSE_ABORT :
			   SLOT_CLOSE_TERMINATE, slot->recycle ? "max_lifetime" : "shutting down");
		return;
	}
	set_state(slot, SHM_SLOT_RESETTING);
	exchange_reset(slot, state != WIRE_RELEASE_CLEAN);
}

void
slot_orphan(struct slot *slot, const char *why)
{
	struct pool *p = slot->pool;
	double age = ev_now(p->broker->loop) - slot->leased_at;

	PUBLISH_COUNT(p, orphaned_leases, 1);
	log_info("lease orphaned pool=%s slot=%u backend_pid=%d holder_pid=%d age=%.3fs: %s",
		 p->cfg->name, slot->index, slot->backend_pid,
		 slot->holder != NULL ? (int)slot->holder->pid : 0, age, why);
	p->nleased--;
	slot->holder = NULL;
	slot_close(slot, SLOT_CLOSE_ABORT, "orphaned");
}

void
slot_cut(struct slot *slot, const char *why)
{
	struct holder *h = slot->holder;

	/* As for an orphan: the holder's next use fails, its RELEASE is refused harmlessly. */
	if (h != NULL)
		h->ops->cut(h, slot);
	slot->pool->nleased--;
	slot->holder = NULL;
	slot_close(slot, SLOT_CLOSE_ABORT, why);
}

void
slot_cancel_query(struct slot *slot)
{
	if (slot->state == SHM_SLOT_LEASED)
		helper_cancel(slot);
}

/* --- how backend operations ended -------------------------------------------- */

/* The backend's server no longer serves the pool's target_session_attrs: closed; the
 * pool backs off (waiters told why), the refill (libpq) finds the server that does. */
static void
close_unfit(struct slot *slot)
{
	struct pool *p = slot->pool;
	char why[400];

	target_refusal(p->cfg->target, (struct target_state){ .hot_standby = slot->hot_standby,
		       .read_only = slot->read_only }, slot->host, slot->port, why, sizeof(why));
	log_warnx("backend unfit pool=%s slot=%u backend_pid=%d: %s; closing", p->cfg->name,
		  slot->index, slot->backend_pid, why);
	slot_close(slot, SLOT_CLOSE_TERMINATE, "unfit for target_session_attrs");
	if (p->retry_at == 0)
		slot_back_off(p, why);
	else
		snprintf(p->last_error, sizeof(p->last_error), "%s", why);
}

static void
on_connected(struct slot *slot, bool ok, const char *error)
{
	struct pool *p = slot->pool;
	struct broker *b = p->broker;

	p->connecting--;
	if (!ok) {
		snprintf(p->last_error, sizeof(p->last_error), "%s", error);
		log_warnx("connect failed pool=%s slot=%u: %s", p->cfg->name, slot->index, error);
		backend_free(slot);
		p->size--;
		set_state(slot, SHM_SLOT_EMPTY);
		PUBLISH_COUNT(p, connect_failures, 1);
		if (!b->stopping && !p->removed)
			slot_back_off(p, p->last_error);
		return;
	}

	publish_server(slot);
	if (slot->unfit) {	/* changed since libpq judged it: a failed connect */
		PUBLISH_COUNT(p, connect_failures, 1);
		close_unfit(slot);
		return;
	}

	/* Failed health checks are not undone by a connect that works. */
	if (!p->health_failing) {
		if (p->failures > 0)
			log_info("connected again pool=%s after %u failed attempts", p->cfg->name,
				 p->failures);
		p->failures = 0;
		p->last_error[0] = '\0';
	}
	shm_begin(&b->shm);
	b->shm.pools[p->index].connects++;
	b->shm.pools[p->index].backoff_until_ms = 0;
	shm_end(&b->shm);
	log_debug("connected pool=%s slot=%u backend_pid=%d", p->cfg->name, slot->index,
		  slot->backend_pid);
	publish_identity(p, slot->user, slot->database, PQhost(slot->conn), PQport(slot->conn));

	/* Jittered, so that a pool opened at once is not recycled at once. */
	slot->lifetime = p->cfg->max_lifetime > 0 ?
			 p->cfg->max_lifetime * (1.0 + p->cfg->jitter * (2.0 * rng_unit(&b->rng) - 1.0)) : 0;
	bool first = p->server_version == 0;
	p->server_version = PQserverVersion(slot->conn);
	if (first && p->server_version >= 140000 && p->cfg->connection_check_interval > 0 &&
	    !slot->with_check_interval) {
		/* The probe lacks client_connection_check_interval: open it again. */
		slot->recycle = true;
	}
	if (b->stopping || b->draining)
		slot->recycle = true;
	slot_ready(slot);
	slot_fill(p);
}

static void
on_checked(struct slot *slot, bool ok, const char *why)
{
	struct pool *p = slot->pool;
	struct acquire_req *req = slot->req;

	slot->req = NULL;
	if (slot->terminate_for != NULL) {
		/* It ran pg_terminate_backend() for a backend that would not end. */
		slot->terminate_for = NULL;
		if (!ok) {
			log_warnx("pg_terminate_backend failed pool=%s: %s", p->cfg->name, why);
			slot_close(slot, SLOT_CLOSE_ABORT, "pg_terminate_backend failed");
		} else if (slot->unfit) {	/* the exchange carried the server's new role */
			close_unfit(slot);
		} else {
			slot_ready(slot);
		}
		return;
	}

	if (ok && slot->unfit) {
		close_unfit(slot);
		if (req != NULL)
			p->broker->slot_hooks->checked(slot, req, false);
		return;
	}
	if (!ok) {
		char reason[600];

		PUBLISH_COUNT(p, health_check_failures, 1);
		log_warnx("health check failed pool=%s slot=%u backend_pid=%d: %s; replacing",
			  p->cfg->name, slot->index, slot->backend_pid, why);
		slot_close(slot, SLOT_CLOSE_ABORT, "health check failed");
		/* A check that keeps failing must not turn into a connect storm. */
		p->health_failing = true;
		snprintf(reason, sizeof(reason), "health check failed: %s", why);
		if (p->retry_at == 0)
			slot_back_off(p, reason);
		if (req != NULL)
			p->broker->slot_hooks->checked(slot, req, false);
		return;
	}

	if (p->health_failing) {
		p->health_failing = false;
		p->failures = 0;
		p->last_error[0] = '\0';
	}
	if (req != NULL) {
		p->broker->slot_hooks->checked(slot, req, true);
		return;
	}
	/* A background check: the backend stays as idle as it was, or
	 * idle_timeout would never come while checks run more often. */
	double idle_since = slot->idle_since;
	slot_ready(slot);
	if (slot->state == SHM_SLOT_IDLE) {
		slot->idle_since = idle_since;
		slot->checked_at = ev_now(p->broker->loop);
	}
}

static void
on_reset(struct slot *slot, bool ok, const char *why)
{
	struct pool *p = slot->pool;

	if (ok) {
		PUBLISH_COUNT(p, resets, 1);
		if (slot->unfit)
			close_unfit(slot);
		else
			slot_ready(slot);
		return;
	}
	PUBLISH_COUNT(p, reset_failures, 1);
	log_warnx("reset failed pool=%s slot=%u backend_pid=%d: %s; replacing", p->cfg->name,
		  slot->index, slot->backend_pid, why);
	slot_close(slot, SLOT_CLOSE_ABORT, "reset failed");
}

/* A reset that does not end promptly no longer counts as coming free. */
static void
on_stalled(struct slot *slot)
{
	slot_fill(slot->pool);
}

static void
on_lost(struct slot *slot, const char *why)
{
	struct pool *p = slot->pool;

	log_info("idle backend lost pool=%s slot=%u backend_pid=%d: %s; replacing",
		 p->cfg->name, slot->index, slot->backend_pid, why);
	slot_close(slot, SLOT_CLOSE_TERMINATE, "lost");
}

static void
on_closed(struct slot *slot)
{
	struct pool *p = slot->pool;

	log_debug("closed pool=%s slot=%u: %s", p->cfg->name, slot->index,
		  slot->close_reason != NULL ? slot->close_reason : "-");
	slot->close_reason = NULL;
	p->size--;
	set_state(slot, SHM_SLOT_EMPTY);
	room_freed(p);
}

/* Whether every backend of the pool is one that would not end. */
static bool
all_stuck(const struct pool *p)
{
	for (int j = 0; j < p->nslots; j++) {
		const struct slot *slot = p->slots[j];
		if (slot->state != SHM_SLOT_EMPTY &&
		    !(slot->state == SHM_SLOT_CLOSING && slot->terminate_attempts > 0))
			return false;
	}
	return true;
}

/* A closing backend did not end in time: another connection terminates it. */
static void
on_stuck(struct slot *victim)
{
	struct pool *p = victim->pool;
	struct slot *slot;

	/* Only a pid pg_backend_pid() confirmed (not a proxy's cancel key), on its own server. */
	log_warnx("backend did not end pool=%s slot=%u backend_pid=%d; %s", p->cfg->name,
		  victim->index, victim->backend_pid, victim->pid_confirmed ? "terminating it" :
		  "not terminating it: pg_backend_pid() never confirmed that pid (a proxy?)");
	if (!victim->pid_confirmed)
		return;
	TAILQ_FOREACH(slot, &p->idle, idle_link)	/* same server: host, port and address */
		if (slot->pid_confirmed && !slot->unfit &&
		    strcmp(slot->host, victim->host) == 0 && strcmp(slot->port, victim->port) == 0 &&
		    strcmp(slot->hostaddr, victim->hostaddr) == 0)
			break;
	if (slot != NULL) {
		slot_take_idle(slot);
		set_state(slot, SHM_SLOT_VALIDATING);
		exchange_terminate_other(slot, victim);
		return;
	}
	/*
	 * A connection of its own, counted in the pool's size like any other.
	 * One at a time; with no room it waits (the victim asks again), unless
	 * every backend of the pool is stuck: then nothing would ever make
	 * room, and one goes above max_size.
	 */
	if (p->terminating > 0)
		return;
	bool room = p->size < p->cfg->max_size;
	if (!room && !all_stuck(p)) {
		log_warnx("no idle connection of pool=%s and no room below max_size=%d to run "
			  "pg_terminate_backend(%d): waiting for one", p->cfg->name,
			  p->cfg->max_size, victim->backend_pid);
		return;
	}
	if (room)
		log_warnx("no idle connection of pool=%s to run pg_terminate_backend(%d) on: "
			  "opening one for it", p->cfg->name, victim->backend_pid);
	else
		log_warnx("every backend of pool=%s is stuck: opening one connection above "
			  "max_size=%d to run pg_terminate_backend(%d)", p->cfg->name,
			  p->cfg->max_size, victim->backend_pid);
	if (backend_terminate_apart(victim) == 0) {
		p->terminating++;
		p->size++;
		publish_gauges(p);
	}
}

/* A terminate helper's connection is closed: its room is free again. */
static void
on_terminated(struct pool *p)
{
	p->terminating--;
	p->size--;
	publish_gauges(p);
	room_freed(p);
}

const struct backend_events slot_backend_events = {
	.connected = on_connected,
	.checked = on_checked,
	.reset = on_reset,
	.stalled = on_stalled,
	.lost = on_lost,
	.closed = on_closed,
	.stuck = on_stuck,
	.terminated = on_terminated,
};
