/*
 * pool.c - pools, slots and their state machine, the FIFO wait queue.
 *
 * Everything here runs in the broker's single event loop thread.  Each
 * transition of a slot is published to shared memory right away.
 */
#include "autoconf.h"

#include "broker/pool.h"
#include "broker/backend.h"
#include "broker/exchange.h"
#include "broker/helper.h"
#include "broker/session.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/log.h"
#include "pglease.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds to a counter of the pool's shm record. */
#define POOL_COUNT(p, field, n)                                             \
	do {                                                                \
		shm_begin(&(p)->broker->shm);                               \
		(p)->broker->shm.pools[(p)->index].field += (n);            \
		shm_end(&(p)->broker->shm);                                 \
	} while (0)

static void pool_fill(struct pool *p);
static void dispatch(struct acquire_req *req);
static void dispatch_to(struct slot *slot, struct acquire_req *req);
static void pool_slot_ready(struct slot *slot);
static void pool_slot_lost(struct slot *slot, const char *why);
static void reap_pools_soon(struct broker *b);

/* --- shared memory ------------------------------------------------------ */

static void
publish_gauges(struct pool *p)
{
	struct shm_pool *sp = &p->broker->shm.pools[p->index];

	sp->size = p->size;
	sp->idle = p->nidle;
	sp->leased = p->nleased;
	sp->waiting = p->nwaiting;
}

/* Writes the slot's record and the pool's gauges; the caller holds shm_begin(). */
static void
publish_locked(struct slot *slot)
{
	struct pool *p = slot->pool;
	struct shm_slot *r = &p->broker->shm.slots[slot->index];

	r->state = slot->state;
	r->pool = p->index;
	r->backend_pid = slot->backend_pid;
	r->holder_pid = slot->state == SHM_SLOT_LEASED && slot->holder != NULL ?
			(int32_t)slot->holder->pid : 0;
	r->lease_id = slot->state == SHM_SLOT_LEASED ? slot->lease_id : 0;
	if (slot->state == SHM_SLOT_CONNECTING)
		r->created_at_ms = clock_real_ms();
	r->leased_at_ms = slot->state == SHM_SLOT_LEASED ? clock_real_ms() : 0;
	r->lease_count = slot->lease_count;
	publish_gauges(p);
}

void
pool_publish(struct slot *slot)
{
	struct shm *shm = &slot->pool->broker->shm;

	shm_begin(shm);
	publish_locked(slot);
	shm_end(shm);
}

static void
publish_pool(struct pool *p)
{
	shm_begin(&p->broker->shm);
	publish_gauges(p);
	shm_end(&p->broker->shm);
}

static void
set_state(struct slot *slot, int state)
{
	slot->state = state;
	pool_publish(slot);
}

/* --- setup -------------------------------------------------------------- */

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void housekeeping_cb(struct ev_loop *loop, ev_timer *w, int revents);

/*
 * How often the housekeeping runs: every second, or more often when a
 * configured duration is shorter, so that none is overshot by much.
 */
static double
housekeeping_period(const struct pool_config *pc)
{
	double period = 1.0;
	const double d[] = { pc->idle_timeout, pc->max_lifetime, pc->health_check_interval,
			     pc->lease_timeout };

	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
		if (d[i] > 0 && d[i] / 4 < period)
			period = d[i] / 4;
	return period < 0.02 ? 0.02 : period;
}

/* A free shm slot record, claimed; -1 when the segment is full. */
static int
claim_record(struct broker *b)
{
	for (uint32_t i = 0; i < b->shm.hdr->nslots; i++) {
		if (!b->record_used[i]) {
			b->record_used[i] = true;
			return (int)i;
		}
	}
	return -1;
}

/* Grows p to n slots (each with its own shm record).  -1 when out of records or memory. */
static int
add_slots(struct pool *p, int n)
{
	struct broker *b = p->broker;

	if (n <= p->nslots)
		return 0;
	struct slot **slots = realloc(p->slots, (size_t)n * sizeof(*slots));
	if (slots == NULL)
		return -1;
	p->slots = slots;
	while (p->nslots < n) {
		struct slot *slot = calloc(1, sizeof(*slot));
		int record = claim_record(b);
		if (slot == NULL || record < 0) {
			free(slot);
			if (record >= 0)
				b->record_used[record] = false;
			return -1;
		}
		slot->pool = p;
		slot->index = (uint32_t)record;
		slot->fd = -1;
		slot->state = SHM_SLOT_EMPTY;
		backend_init(slot);
		p->slots[p->nslots++] = slot;
		pool_publish(slot);
	}
	return 0;
}

/* The role, database and server of the pool's backends, for clients. */
static void
publish_identity(struct pool *p, const char *user, const char *db, const char *host,
		 const char *port)
{
	struct shm_pool *sp = &p->broker->shm.pools[p->index];

	if (strcmp(sp->user, user) == 0 && strcmp(sp->database, db) == 0 &&
	    strcmp(sp->host, host) == 0 && strcmp(sp->port, port) == 0)
		return;
	shm_begin(&p->broker->shm);
	snprintf(sp->user, sizeof(sp->user), "%s", user);
	snprintf(sp->database, sizeof(sp->database), "%s", db);
	snprintf(sp->host, sizeof(sp->host), "%s", host);
	snprintf(sp->port, sizeof(sp->port), "%s", port);
	shm_end(&p->broker->shm);
}

/* The pool's record in shared memory: name, sizes, role and database. */
static void
publish_config(struct pool *p)
{
	struct shm_pool *sp = &p->broker->shm.pools[p->index];
	char user[SHM_NAME_LEN], db[SHM_NAME_LEN], host[128], port[16];

	/* As the conninfo says until a backend tells (pool_slot_connected). */
	backend_identity(p->cfg, user, sizeof(user), db, sizeof(db), host, sizeof(host), port,
			 sizeof(port));
	publish_identity(p, user, db, host, port);
	shm_begin(&p->broker->shm);
	snprintf(sp->name, sizeof(sp->name), "%s", p->cfg->name);
	sp->min_size = p->cfg->min_size;
	sp->max_size = p->cfg->max_size;
	sp->restricted = p->cfg->restricted;
	sp->first_slot = p->nslots > 0 ? p->slots[0]->index : 0;
	sp->nslots = (uint32_t)p->nslots;
	shm_end(&p->broker->shm);
}

/* Counts the shm pool records in use, for readers. */
static void
publish_npools(struct broker *b)
{
	uint32_t n = 0;

	for (size_t i = 0; i < b->npools; i++)
		if ((uint32_t)b->pools[i]->index + 1 > n)
			n = (uint32_t)b->pools[i]->index + 1;
	shm_begin(&b->shm);
	b->shm.hdr->npools = n;
	shm_end(&b->shm);
}

/* A new pool for pc, with max_size slots; NULL when out of records or memory. */
static struct pool *
pool_create(struct broker *b, const struct pool_config *pc)
{
	bool taken[SHM_MAX_POOLS] = { false };
	struct pool *p;
	int index = -1;

	for (size_t i = 0; i < b->npools; i++)
		taken[b->pools[i]->index] = true;
	for (int i = 0; i < SHM_MAX_POOLS && index < 0; i++)
		if (!taken[i])
			index = i;
	if (index < 0) {
		log_error("pool %s: a broker serves at most %d pools", pc->name, SHM_MAX_POOLS);
		return NULL;
	}
	struct pool **pools = realloc(b->pools, (b->npools + 1) * sizeof(*pools));
	if (pools == NULL || (p = calloc(1, sizeof(*p))) == NULL) {
		if (pools != NULL)
			b->pools = pools;
		return NULL;
	}
	b->pools = pools;
	b->pools[b->npools++] = p;
	p->broker = b;
	p->cfg = pc;
	p->index = index;
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->waiters);
	ev_init(&p->retry_timer, retry_cb);
	p->retry_timer.data = p;
	double period = housekeeping_period(pc);
	ev_timer_init(&p->housekeeping, housekeeping_cb, period, period);
	p->housekeeping.data = p;
	ev_timer_start(b->loop, &p->housekeeping);

	shm_begin(&b->shm);
	memset(&b->shm.pools[index], 0, sizeof(b->shm.pools[index]));
	shm_end(&b->shm);
	if (add_slots(p, pc->max_size) != 0) {
		log_error("pool %s: no room for %d slots in shared memory (max_total_slots)",
			  pc->name, pc->max_size);
		return NULL;	/* freed with the others by pool_free_all() */
	}
	publish_config(p);
	publish_npools(b);
	return p;
}

int
pool_init_all(struct broker *b)
{
	b->record_used = calloc(b->shm.hdr->nslots > 0 ? b->shm.hdr->nslots : 1,
				sizeof(*b->record_used));
	if (b->record_used == NULL)
		return -1;
	if (b->cfg->npools > SHM_MAX_POOLS) {
		log_error("%zu pools configured; a broker serves at most %d", b->cfg->npools,
			  SHM_MAX_POOLS);
		return -1;
	}
	for (size_t i = 0; i < b->cfg->npools; i++)
		if (pool_create(b, &b->cfg->pools[i]) == NULL)
			return -1;
	for (size_t i = 0; i < b->npools; i++)
		pool_fill(b->pools[i]);
	return 0;
}

/* Frees what the pool holds (no I/O), and the pool. */
static void
pool_destroy(struct pool *p)
{
	struct broker *b = p->broker;

	ev_timer_stop(b->loop, &p->retry_timer);
	ev_timer_stop(b->loop, &p->housekeeping);
	while (!TAILQ_EMPTY(&p->waiters))
		pool_forget_request(TAILQ_FIRST(&p->waiters));
	for (int j = 0; j < p->nslots; j++) {
		struct slot *slot = p->slots[j];
		backend_free(slot);
		helper_forget(slot);
		shm_begin(&b->shm);
		memset(&b->shm.slots[slot->index], 0, sizeof(b->shm.slots[slot->index]));
		b->shm.slots[slot->index].pool = -1;
		shm_end(&b->shm);
		if (b->record_used != NULL)
			b->record_used[slot->index] = false;
		free(slot);
	}
	free(p->slots);
	shm_begin(&b->shm);
	memset(&b->shm.pools[p->index], 0, sizeof(b->shm.pools[p->index]));
	shm_end(&b->shm);
	free(p);
}

void
pool_free_all(struct broker *b)
{
	for (size_t i = 0; i < b->npools; i++)
		pool_destroy(b->pools[i]);
	free(b->pools);
	b->pools = NULL;
	b->npools = 0;
	free(b->record_used);
	b->record_used = NULL;
}

struct pool *
pool_find(struct broker *b, const char *name)
{
	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		if (p->removed)
			continue;
		/* "": the first pool of the configuration */
		if (name[0] == '\0' ? p->cfg == &b->cfg->pools[0] : strcmp(p->cfg->name, name) == 0)
			return p;
	}
	return NULL;
}

int
pool_total_size(const struct broker *b)
{
	int n = 0;

	for (size_t i = 0; i < b->npools; i++)
		n += b->pools[i]->size;
	return n;
}

int
pool_total_leased(const struct broker *b)
{
	int n = 0;

	for (size_t i = 0; i < b->npools; i++)
		n += b->pools[i]->nleased;
	return n;
}

/* --- growing and reconnecting ------------------------------------------- */

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pool *p = w->data;

	(void)loop;
	(void)revents;
	p->retry_at = 0;
	pool_fill(p);
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
 * Opens backends while the pool is under min_size or has more waiters than
 * backends on their way (connecting, resetting promptly, or in a background
 * health check: those take far less than a connect), never beyond max_size,
 * never while backing off.
 * Until a connection has shown the server's version, one connects alone:
 * the version decides the startup options of the others.
 */
static void
pool_fill(struct pool *p)
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
		/* A prompt reset, or a background check, ends in IDLE soon. */
		if (slot->recycle)
			continue;
		coming += (slot->state == SHM_SLOT_RESETTING && !slot->stalled) ||
			  (slot->state == SHM_SLOT_VALIDATING && slot->req == NULL);
	}
	want = p->cfg->min_size - p->size;
	if (p->nwaiting - coming > want)
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

/*
 * One more failure in a row (a connect, or a health check): no new backend
 * before the backoff delay.  why is kept for the ERROR of acquires that time
 * out meanwhile.
 */
static void
back_off(struct pool *p, const char *why)
{
	struct broker *b = p->broker;
	double delay;

	if (why != p->last_error)
		snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	p->failures++;
	delay = backoff_delay(p->cfg->initial_backoff, p->cfg->max_backoff, p->cfg->jitter,
			      p->failures, broker_random01(b));
	log_warnx("backing off pool=%s failures=%u retry_in=%.3fs: %s", p->cfg->name,
		  p->failures, delay, why);
	shm_begin(&b->shm);
	b->shm.pools[p->index].backoff_until_ms = clock_real_ms() + (int64_t)(delay * 1000);
	shm_end(&b->shm);
	p->retry_at = ev_now(b->loop) + delay;
	ev_timer_stop(b->loop, &p->retry_timer);
	ev_timer_set(&p->retry_timer, delay, 0.);
	ev_timer_start(b->loop, &p->retry_timer);
}

static void
pool_slot_connected(struct slot *slot, bool ok, const char *error)
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
		POOL_COUNT(p, connect_failures, 1);
		if (b->stopping) {
			broker_check_done(b);
			return;
		}
		if (p->removed) {
			reap_pools_soon(b);
			return;
		}
		back_off(p, p->last_error);
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
			 p->cfg->max_lifetime * (1.0 + p->cfg->jitter * (2.0 * broker_random01(b) - 1.0)) : 0;
	bool first = p->server_version == 0;
	p->server_version = PQserverVersion(slot->conn);
	if (first && p->server_version >= 140000 && p->cfg->connection_check_interval > 0 &&
	    !slot->with_check_interval) {
		/* The probe lacks client_connection_check_interval: open it again. */
		slot->recycle = true;
	}
	if (b->stopping || b->draining)
		slot->recycle = true;
	pool_slot_ready(slot);
	pool_fill(p);
}

/* --- leasing ------------------------------------------------------------ */

static void
idle_remove(struct slot *slot)
{
	struct pool *p = slot->pool;

	TAILQ_REMOVE(&p->idle, slot, idle_link);
	p->nidle--;
}

static void
slot_close(struct slot *slot, enum slot_close_how how, const char *why)
{
	if (slot->state == SHM_SLOT_IDLE)
		idle_remove(slot);
	slot->close_reason = why;
	set_state(slot, SHM_SLOT_CLOSING);
	backend_close(slot, how);
}

static void
req_free(struct acquire_req *req)
{
	struct broker *b = req->pool->broker;

	ev_timer_stop(b->loop, &req->timer);
	if (req->queued) {
		TAILQ_REMOVE(&req->pool->waiters, req, queue);
		req->pool->nwaiting--;
		req->queued = false;
		publish_pool(req->pool);
	}
	if (req->validating != NULL)
		req->validating->req = NULL;
	TAILQ_REMOVE(&req->session->requests, req, owner);
	req->session->nrequests--;
	free(req);
}

void
pool_forget_request(struct acquire_req *req)
{
	req_free(req);
}

/* Grants slot (not idle-listed, watchers stopped) to a session. */
static void
grant(struct slot *slot, struct session *s, uint64_t request_id, double started)
{
	struct pool *p = slot->pool;
	struct broker *b = p->broker;
	double now = ev_now(b->loop);

	do
		slot->lease_id = (uint64_t)b->incarnation << 32 | ++b->lease_seq;
	while ((uint32_t)slot->lease_id == 0);
	slot->holder = s;
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
	publish_locked(slot);
	shm_end(&b->shm);

	if (session_grant(s, request_id, slot) != 0) {
		/* The fd never left: the backend is as clean as before. */
		shm_begin(&b->shm);
		sp->leases--;
		sp->acquire_wait_us_total -= wait_us;
		shm_end(&b->shm);
		p->nleased--;
		slot->lease_count--;
		slot->holder = NULL;
		pool_slot_ready(slot);
		session_close(s, "cannot send to the client");
	}
}

static bool
needs_validation(const struct slot *slot, double now)
{
	double after = slot->pool->cfg->validate_after;

	return after == 0 || now - slot->idle_since > after;
}

/*
 * Whether an idle slot can be lent as it is.  The broker may have read part
 * of a server message (the start of an ErrorResponse, say) that the holder
 * would never see: such a backend is replaced instead.
 */
static bool
lendable(struct slot *slot)
{
	if (!backend_has_unread(slot))
		return true;
	pool_slot_lost(slot, "part of a server message is unread");
	return false;
}

/* The idle slot to lease to session s: the one it used last, else the most recent. */
static struct slot *
pick_idle(struct pool *p, struct session *s)
{
	struct slot *last = s->last_used[p->index], *slot;

	if (last != NULL && last->state == SHM_SLOT_IDLE && lendable(last))
		return last;
	while ((slot = TAILQ_FIRST(&p->idle)) != NULL && !lendable(slot))
		;
	return slot;
}

static void
req_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct acquire_req *req = w->data;
	struct pool *p = req->pool;
	double waited = ev_now(loop) - req->started;

	(void)revents;
	POOL_COUNT(p, acquire_timeouts, 1);
	if (p->failures > 0 && p->last_error[0] != '\0')
		session_error(req->session, req->request_id, PGL_EUNAVAILABLE,
			      "pool \"%s\" cannot connect to PostgreSQL: %s", p->cfg->name,
			      p->last_error);
	else
		session_error(req->session, req->request_id, PGL_ETIMEOUT,
			      "no backend of pool \"%s\" became free within %.0f ms",
			      p->cfg->name, waited * 1000);
	req_free(req);
}

static struct acquire_req *
req_new(struct pool *p, struct session *s, uint64_t request_id, double timeout)
{
	struct broker *b = p->broker;
	struct acquire_req *req = calloc(1, sizeof(*req));

	if (req == NULL)
		return NULL;
	req->pool = p;
	req->session = s;
	req->request_id = request_id;
	req->started = ev_now(b->loop);
	ev_init(&req->timer, req_timeout_cb);
	req->timer.data = req;
	if (timeout > 0) {
		ev_timer_set(&req->timer, timeout, 0.);
		ev_timer_start(b->loop, &req->timer);
	}
	TAILQ_INSERT_TAIL(&s->requests, req, owner);
	s->nrequests++;
	return req;
}

/* Starts validating slot for req. */
static void
validate_for(struct slot *slot, struct acquire_req *req)
{
	idle_remove(slot);
	backend_stop(slot);
	slot->req = req;
	req->validating = slot;
	set_state(slot, SHM_SLOT_VALIDATING);
	exchange_validate(slot);
}

/* Hands the idle slot to req: validated first when it needs it. */
static void
dispatch_to(struct slot *slot, struct acquire_req *req)
{
	if (needs_validation(slot, ev_now(slot->pool->broker->loop))) {
		validate_for(slot, req);
		return;
	}

	struct session *s = req->session;
	uint64_t id = req->request_id;
	double started = req->started;

	req_free(req);
	idle_remove(slot);
	backend_stop(slot);
	grant(slot, s, id, started);
}

/* Serves a request that has a deadline: an idle slot, or the queue. */
static void
dispatch(struct acquire_req *req)
{
	struct pool *p = req->pool;
	struct slot *slot = pick_idle(p, req->session);

	if (slot != NULL) {
		dispatch_to(slot, req);
		return;
	}
	TAILQ_INSERT_TAIL(&p->waiters, req, queue);
	req->queued = true;
	p->nwaiting++;
	publish_pool(p);
	pool_fill(p);
}

void
pool_acquire(struct pool *p, struct session *s, uint64_t request_id, int32_t timeout_ms)
{
	struct broker *b = p->broker;
	double now = ev_now(b->loop);
	double timeout = timeout_ms >= 0 ? timeout_ms / 1000.0 : p->cfg->acquire_timeout;
	struct slot *slot = pick_idle(p, s);

	/* The library gives up on -1 after what WELCOME announced (plus a grace). */
	if (timeout_ms < 0 && s->version >= 2 && timeout > s->acquire_cap)
		timeout = s->acquire_cap;

	/* The common case allocates nothing: an idle slot, fresh enough. */
	if (slot != NULL && !needs_validation(slot, now)) {
		idle_remove(slot);
		backend_stop(slot);
		grant(slot, s, request_id, now);
		return;
	}
	if (timeout <= 0) {
		/*
		 * No wait: only an idle backend that needs no check will do.  A
		 * validation could outlast the caller's patience, and its answer
		 * would come after the library gave up.
		 */
		POOL_COUNT(p, acquire_timeouts, 1);
		if (p->size == 0 && p->failures > 0)
			session_error(s, request_id, PGL_EUNAVAILABLE,
				      "pool \"%s\" cannot connect to PostgreSQL: %s", p->cfg->name,
				      p->last_error);
		else if (slot != NULL)
			session_error(s, request_id, PGL_ETIMEOUT,
				      "no idle backend of pool \"%s\" can be lent without a health "
				      "check (validate_after)", p->cfg->name);
		else
			session_error(s, request_id, PGL_ETIMEOUT,
				      "no idle backend in pool \"%s\"", p->cfg->name);
		pool_fill(p);
		return;
	}

	struct acquire_req *req = req_new(p, s, request_id, timeout);
	if (req == NULL) {
		session_error(s, request_id, PGL_ENOMEM, "the broker is out of memory");
		return;
	}
	dispatch(req);
}

/* --- the slot comes back ------------------------------------------------ */

/* A slot fit to lend: to the first waiter, else onto the idle list. */
static void
pool_slot_ready(struct slot *slot)
{
	struct pool *p = slot->pool;
	struct broker *b = p->broker;
	double now = ev_now(b->loop);

	if (slot->recycle || b->draining || b->stopping) {
		slot_close(slot, SLOT_CLOSE_TERMINATE, slot->recycle ? "recycled" : "shutting down");
		return;
	}
	slot->idle_since = now;
	TAILQ_INSERT_HEAD(&p->idle, slot, idle_link);
	p->nidle++;
	set_state(slot, SHM_SLOT_IDLE);
	if (!TAILQ_EMPTY(&p->waiters)) {
		struct acquire_req *req = TAILQ_FIRST(&p->waiters);

		/* Straight to the first waiter: idle for no time, so validated
		 * only when validate_after = 0 asks for it on every borrow. */
		TAILQ_REMOVE(&p->waiters, req, queue);
		req->queued = false;
		p->nwaiting--;
		dispatch_to(slot, req);
		return;
	}
	backend_watch_idle(slot);
}

static void
pool_slot_validated(struct slot *slot, bool ok, const char *why)
{
	struct pool *p = slot->pool;
	struct acquire_req *req = slot->req;

	slot->req = NULL;
	if (req != NULL)
		req->validating = NULL;

	if (slot->terminate_for != NULL) {
		/* It ran pg_terminate_backend() for a backend that would not end. */
		slot->terminate_for = NULL;
		if (!ok) {
			log_warnx("pg_terminate_backend failed pool=%s: %s", p->cfg->name, why);
			slot_close(slot, SLOT_CLOSE_ABORT, "pg_terminate_backend failed");
		} else {
			pool_slot_ready(slot);
		}
		return;
	}

	if (!ok) {
		char reason[600];

		POOL_COUNT(p, health_check_failures, 1);
		log_warnx("health check failed pool=%s slot=%u backend_pid=%d: %s; replacing",
			  p->cfg->name, slot->index, slot->backend_pid, why);
		slot_close(slot, SLOT_CLOSE_ABORT, "health check failed");
		/* A check that keeps failing must not turn into a connect storm. */
		p->health_failing = true;
		snprintf(reason, sizeof(reason), "health check failed: %s", why);
		if (p->retry_at == 0)
			back_off(p, reason);
		if (req != NULL) {
			dispatch(req);
		}
		return;
	}

	if (p->health_failing) {
		p->health_failing = false;
		p->failures = 0;
		p->last_error[0] = '\0';
	}
	if (req == NULL) {
		/* A background check: the backend stays as idle as it was, or
		 * idle_timeout would never come while checks run more often. */
		double idle_since = slot->idle_since;
		pool_slot_ready(slot);
		if (slot->state == SHM_SLOT_IDLE) {
			slot->idle_since = idle_since;
			slot->checked_at = ev_now(p->broker->loop);
		}
		return;
	}

	struct session *s = req->session;
	uint64_t id = req->request_id;
	double started = req->started;

	req_free(req);
	grant(slot, s, id, started);
}

void
pool_release(struct slot *slot, int state)
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

static void
pool_slot_reset(struct slot *slot, bool ok, const char *why)
{
	struct pool *p = slot->pool;

	if (ok) {
		POOL_COUNT(p, resets, 1);
		pool_slot_ready(slot);
		return;
	}
	POOL_COUNT(p, reset_failures, 1);
	log_warnx("reset failed pool=%s slot=%u backend_pid=%d: %s; replacing", p->cfg->name,
		  slot->index, slot->backend_pid, why);
	slot_close(slot, SLOT_CLOSE_ABORT, "reset failed");
}

void
pool_orphan(struct slot *slot, const char *why)
{
	struct pool *p = slot->pool;
	double age = ev_now(p->broker->loop) - slot->leased_at;

	POOL_COUNT(p, orphaned_leases, 1);
	log_info("lease orphaned pool=%s slot=%u backend_pid=%d holder_pid=%d age=%.3fs: %s",
		 p->cfg->name, slot->index, slot->backend_pid,
		 slot->holder != NULL ? (int)slot->holder->pid : 0, age, why);
	p->nleased--;
	slot->holder = NULL;
	slot_close(slot, SLOT_CLOSE_ABORT, "orphaned");
}

void
pool_cancel_query(struct slot *slot)
{
	if (slot->state == SHM_SLOT_LEASED)
		helper_cancel(slot);
}

static void
pool_slot_lost(struct slot *slot, const char *why)
{
	struct pool *p = slot->pool;

	log_info("idle backend lost pool=%s slot=%u backend_pid=%d: %s; replacing",
		 p->cfg->name, slot->index, slot->backend_pid, why);
	slot_close(slot, SLOT_CLOSE_TERMINATE, "lost");
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

static void
pool_slot_stuck(struct slot *victim)
{
	struct pool *p = victim->pool;
	struct slot *slot = TAILQ_FIRST(&p->idle);

	log_warnx("backend did not end pool=%s slot=%u backend_pid=%d; terminating it",
		  p->cfg->name, victim->index, victim->backend_pid);
	if (slot == NULL) {
		/*
		 * A connection of its own, counted in the pool's size like any
		 * other.  One at a time; with no room it waits (the victim asks
		 * again), unless every backend of the pool is stuck: then nothing
		 * would ever make room, and one goes above max_size.
		 */
		if (p->terminating > 0)
			return;
		bool room = p->size < p->cfg->max_size;
		if (!room && !all_stuck(p)) {
			log_warnx("no idle connection of pool=%s and no room below max_size=%d to "
				  "run pg_terminate_backend(%d): waiting for one", p->cfg->name,
				  p->cfg->max_size, victim->backend_pid);
			return;
		}
		if (room)
			log_warnx("no idle connection of pool=%s to run pg_terminate_backend(%d) "
				  "on: opening one for it", p->cfg->name, victim->backend_pid);
		else
			log_warnx("every backend of pool=%s is stuck: opening one connection above "
				  "max_size=%d to run pg_terminate_backend(%d)", p->cfg->name,
				  p->cfg->max_size, victim->backend_pid);
		if (backend_terminate_apart(victim) == 0) {
			p->terminating++;
			p->size++;
			publish_pool(p);
		}
		return;
	}
	idle_remove(slot);
	backend_stop(slot);
	set_state(slot, SHM_SLOT_VALIDATING);
	exchange_terminate_other(slot, victim);
}

/* A backend of p is gone: a stopping broker may be done, a removed pool may go, else refill. */
static void
room_freed(struct pool *p)
{
	struct broker *b = p->broker;

	if (b->stopping || b->draining)
		broker_check_done(b);
	else if (p->removed)
		reap_pools_soon(b);
	else
		pool_fill(p);
}

static void
pool_terminate_done(struct pool *p)
{
	p->terminating--;
	p->size--;
	publish_pool(p);
	room_freed(p);
}

static void
pool_slot_closed(struct slot *slot)
{
	struct pool *p = slot->pool;

	log_debug("closed pool=%s slot=%u: %s", p->cfg->name, slot->index,
		  slot->close_reason != NULL ? slot->close_reason : "-");
	slot->close_reason = NULL;
	p->size--;
	set_state(slot, SHM_SLOT_EMPTY);
	room_freed(p);
}

/* --- housekeeping ------------------------------------------------------- */

/* A lease held past lease_timeout: said once; with "terminate", also cut. */
static void
lease_overdue(struct slot *slot, double age)
{
	struct pool *p = slot->pool;
	struct session *s = slot->holder;

	if (slot->lease_warned)
		return;
	slot->lease_warned = true;
	POOL_COUNT(p, lease_timeouts, 1);
	log_warnx("lease held past lease_timeout pool=%s slot=%u backend_pid=%d holder_pid=%d "
		  "age=%.1fs%s", p->cfg->name, slot->index, slot->backend_pid,
		  s != NULL ? (int)s->pid : 0, age,
		  p->cfg->lease_timeout_action == LEASE_TIMEOUT_TERMINATE ? ": terminating it" : "");
	if (p->cfg->lease_timeout_action != LEASE_TIMEOUT_TERMINATE)
		return;
	/* As for an orphan: the holder's next use fails, its RELEASE is refused harmlessly. */
	if (s != NULL)
		session_drop_lease(s, slot);
	p->nleased--;
	slot->holder = NULL;
	slot_close(slot, SLOT_CLOSE_ABORT, "lease_timeout");
}

static void
housekeeping_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pool *p = w->data;
	const struct pool_config *pc = p->cfg;
	struct broker *b = p->broker;
	double now = ev_now(loop);

	(void)revents;
	if (b->draining || b->stopping)
		return;
	/* Backends that stay: closing ones already count for nothing. */
	int staying = p->size;
	for (int j = 0; j < p->nslots; j++)
		staying -= p->slots[j]->state == SHM_SLOT_CLOSING;
	for (int j = 0; j < p->nslots; j++) {
		struct slot *slot = p->slots[j];
		bool expired = slot->lifetime > 0 && now - slot->created_at > slot->lifetime;
		double checked = slot->checked_at > slot->idle_since ? slot->checked_at :
				 slot->idle_since;

		/* A removed pool only drains, but a lease held for ever must still end. */
		if (p->removed && slot->state != SHM_SLOT_LEASED)
			continue;
		switch (slot->state) {
		case SHM_SLOT_IDLE:
			if (expired) {
				slot_close(slot, SLOT_CLOSE_TERMINATE, "max_lifetime");
				staying--;
			} else if (pc->idle_timeout > 0 && now - slot->idle_since > pc->idle_timeout &&
				   staying > pc->min_size) {
				slot_close(slot, SLOT_CLOSE_TERMINATE, "idle_timeout");
				staying--;
			} else if (pc->health_check_interval > 0 &&
				   now - checked > pc->health_check_interval) {
				/* In the background: no request waits on it. */
				idle_remove(slot);
				backend_stop(slot);
				set_state(slot, SHM_SLOT_VALIDATING);
				exchange_validate(slot);
			}
			break;
		case SHM_SLOT_LEASED:
			if (expired)
				slot->recycle = true;	/* closed, not reset, when it comes back */
			if (pc->lease_timeout > 0 && now - slot->leased_at > pc->lease_timeout)
				lease_overdue(slot, now - slot->leased_at);
			break;
		default:
			break;
		}
	}
}

/* --- reload ------------------------------------------------------------- */

/* Pools a reload removed are freed once empty, after the loop iteration. */
static ev_check pool_reaper;

static void
reap_pools_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct broker *b = w->data;
	size_t keep = 0;

	(void)revents;
	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		if (!p->removed || p->size > 0) {
			b->pools[keep++] = p;
			continue;
		}
		/* No session may keep a pointer into it. */
		struct session *s;
		TAILQ_FOREACH(s, &b->sessions, link)
			if (s->last_used[p->index] != NULL && s->last_used[p->index]->pool == p)
				s->last_used[p->index] = NULL;
		log_info("pool %s removed", p->cfg->name);
		pool_destroy(p);
	}
	b->npools = keep;
	publish_npools(b);
	broker_release_configs(b);
	ev_check_stop(loop, w);
}

static void
pool_slot_stalled(struct slot *slot)
{
	pool_fill(slot->pool);
}

static void
reap_pools_soon(struct broker *b)
{
	if (!ev_is_active(&pool_reaper)) {
		ev_check_init(&pool_reaper, reap_pools_cb);
		pool_reaper.data = b;
		ev_check_start(b->loop, &pool_reaper);
	}
}

/*
 * Brings the pool down to at most max backends: idle ones are closed now,
 * others when they are next free (recycle).  why names the cause in logs.
 */
static void
shed(struct pool *p, int max, const char *why)
{
	int excess = p->size - max;

	/* closing ones and ones already marked go anyway */
	for (int j = 0; j < p->nslots; j++)
		excess -= p->slots[j]->state == SHM_SLOT_CLOSING ||
			  (p->slots[j]->state != SHM_SLOT_EMPTY && p->slots[j]->recycle);

	for (int j = 0; j < p->nslots && excess > 0; j++) {
		struct slot *slot = p->slots[j];
		if (slot->state == SHM_SLOT_IDLE) {
			slot_close(slot, SLOT_CLOSE_TERMINATE, why);
			excess--;
		}
	}
	for (int j = 0; j < p->nslots && excess > 0; j++) {
		struct slot *slot = p->slots[j];
		if (slot->state != SHM_SLOT_EMPTY && slot->state != SHM_SLOT_CLOSING &&
		    !slot->recycle) {
			slot->recycle = true;
			excess--;
		}
	}
}

static void
pool_remove(struct pool *p)
{
	struct broker *b = p->broker;

	p->removed = true;
	ev_timer_stop(b->loop, &p->retry_timer);	/* housekeeping goes on: lease_timeout */
	while (!TAILQ_EMPTY(&p->waiters)) {
		struct acquire_req *req = TAILQ_FIRST(&p->waiters);
		session_error(req->session, req->request_id, PGL_ENOPOOL,
			      "pool \"%s\" was removed by a reload", p->cfg->name);
		req_free(req);
	}
	for (int j = 0; j < p->nslots; j++) {
		struct acquire_req *req = p->slots[j]->req;
		if (req != NULL) {
			session_error(req->session, req->request_id, PGL_ENOPOOL,
				      "pool \"%s\" was removed by a reload", p->cfg->name);
			req_free(req);
		}
	}
	log_info("pool %s is removed by the reload: draining %d backends (%d leased)",
		 p->cfg->name, p->size, p->nleased);
	shed(p, 0, "pool removed");
	reap_pools_soon(b);
}

static bool
same_string(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
pool_update(struct pool *p, const struct pool_config *pc)
{
	struct broker *b = p->broker;
	const struct pool_config *old = p->cfg;
	bool reconnect = strcmp(old->conninfo, pc->conninfo) != 0 ||
			 !same_string(old->password, pc->password) ||
			 old->statement_timeout != pc->statement_timeout ||
			 old->connection_check_interval != pc->connection_check_interval;

	p->cfg = pc;
	if (pc->max_size > p->nslots)
		(void)add_slots(p, pc->max_size);	/* room was checked by pool_reload() */
	double period = housekeeping_period(pc);
	ev_timer_stop(b->loop, &p->housekeeping);
	ev_timer_set(&p->housekeeping, period, period);
	ev_timer_start(b->loop, &p->housekeeping);
	if (reconnect) {
		/* Every backend is replaced as it comes free, from a clean slate. */
		p->failures = 0;
		p->health_failing = false;
		p->retry_at = 0;
		p->server_version = 0;
		ev_timer_stop(b->loop, &p->retry_timer);
		log_info("pool %s: connection settings changed; replacing its backends",
			 pc->name);
		shed(p, 0, "connection settings changed");
	} else if (p->size > pc->max_size) {
		shed(p, pc->max_size, "max_size lowered");
	}
	publish_config(p);
	pool_fill(p);
}

int
pool_reload(struct broker *b, const struct config *nc, char *err, size_t errlen)
{
	size_t records = 0, pools = 0;

	/* Room first: nothing changes unless everything fits. */
	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		const struct pool_config *pc = p->removed ? NULL : config_find_pool(nc, p->cfg->name);
		if (pc == NULL) {
			records += (size_t)p->nslots;	/* held until drained */
			pools++;
		}
	}
	for (size_t i = 0; i < nc->npools; i++) {
		const struct pool_config *pc = &nc->pools[i];
		struct pool *p = NULL;
		for (size_t k = 0; k < b->npools && p == NULL; k++)
			if (!b->pools[k]->removed && strcmp(b->pools[k]->cfg->name, pc->name) == 0)
				p = b->pools[k];
		records += (size_t)(p != NULL && p->nslots > pc->max_size ? p->nslots : pc->max_size);
		pools++;
	}
	if (records > b->shm.hdr->nslots) {
		snprintf(err, errlen, "the pools would need %zu slot records and the shared memory "
			 "segment has %u (max_total_slots): restart pgleased to resize it",
			 records, b->shm.hdr->nslots);
		return -1;
	}
	if (pools > SHM_MAX_POOLS) {
		snprintf(err, errlen, "%zu pools, with those still draining; at most %d",
			 pools, SHM_MAX_POOLS);
		return -1;
	}

	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		if (!p->removed && config_find_pool(nc, p->cfg->name) == NULL)
			pool_remove(p);
	}
	for (size_t i = 0; i < nc->npools; i++) {
		const struct pool_config *pc = &nc->pools[i];
		struct pool *p = NULL;
		for (size_t k = 0; k < b->npools && p == NULL; k++)
			if (!b->pools[k]->removed && strcmp(b->pools[k]->cfg->name, pc->name) == 0)
				p = b->pools[k];
		if (p != NULL) {
			pool_update(p, pc);
		} else if ((p = pool_create(b, pc)) != NULL) {
			log_info("pool %s added by the reload", pc->name);
			pool_fill(p);
		}
	}
	return 0;
}

/* --- stopping ----------------------------------------------------------- */

void
pool_drain_waiters(struct broker *b)
{
	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];

		while (!TAILQ_EMPTY(&p->waiters)) {
			struct acquire_req *req = TAILQ_FIRST(&p->waiters);
			session_error(req->session, req->request_id, PGL_EDRAINING,
				      "the broker is shutting down");
			req_free(req);
		}
		for (int j = 0; j < p->nslots; j++) {
			struct acquire_req *req = p->slots[j]->req;
			if (req != NULL) {
				session_error(req->session, req->request_id, PGL_EDRAINING,
					      "the broker is shutting down");
				req_free(req);
			}
		}
		ev_timer_stop(b->loop, &p->retry_timer);
	}
}

void
pool_close_all(struct broker *b, bool force)
{
	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];

		for (int j = 0; j < p->nslots; j++) {
			struct slot *slot = p->slots[j];

			switch (slot->state) {
			case SHM_SLOT_IDLE:
				slot_close(slot, SLOT_CLOSE_TERMINATE, "shutting down");
				break;
			case SHM_SLOT_CONNECTING:
				p->connecting--;
				slot_close(slot, SLOT_CLOSE_ABORT, "shutting down");
				break;
			case SHM_SLOT_RESETTING:
			case SHM_SLOT_VALIDATING:
				slot_close(slot, SLOT_CLOSE_ABORT, "shutting down");
				break;
			case SHM_SLOT_LEASED:
				if (force) {
					struct session *s = slot->holder;
					if (s != NULL)
						session_drop_lease(s, slot);
					p->nleased--;
					slot->holder = NULL;
					slot_close(slot, SLOT_CLOSE_ABORT, "broker stopped");
				}
				break;
			default:
				break;
			}
		}
	}
}

/* --- what a backend reports --------------------------------------------- */

const struct backend_events pool_backend_events = {
	.connected = pool_slot_connected,
	.checked = pool_slot_validated,
	.reset = pool_slot_reset,
	.stalled = pool_slot_stalled,
	.lost = pool_slot_lost,
	.closed = pool_slot_closed,
	.stuck = pool_slot_stuck,
	.terminated = pool_terminate_done,
};
