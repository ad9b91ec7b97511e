/*
 * waitq.c - ACQUIRE requests and the pools' FIFO wait queues.
 *
 * A request is served at once from an idle slot when one is fresh enough;
 * otherwise it waits in its pool's queue, first come first served, until
 * the state machine offers a slot (waitq_slot_hooks) or its deadline passes.
 * The common case, an idle slot that needs no check, allocates nothing.
 */
#include "autoconf.h"

#include "broker/waitq.h"
#include "broker/holder.h"
#include "broker/pool.h"
#include "broker/publish.h"
#include "broker/slot.h"
#include "common/log.h"
#include "pglease.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Sends the holder an ERROR for request_id. */
static void __attribute__((format(printf, 4, 5)))
answer(struct holder *h, uint64_t request_id, int code, const char *fmt, ...)
{
	char msg[WIRE_TEXT_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	h->ops->error(h, request_id, code, msg);
}

/* Takes req off its queue. */
static void
unqueue(struct acquire_req *req)
{
	struct pool *p = req->pool;

	TAILQ_REMOVE(&p->waiters, req, queue);
	p->nwaiting--;
	req->queued = false;
}

static void
req_free(struct acquire_req *req)
{
	struct broker *b = req->pool->broker;

	ev_timer_stop(b->loop, &req->timer);
	if (req->queued) {
		unqueue(req);
		publish_gauges(req->pool);
	}
	if (req->validating != NULL)
		req->validating->req = NULL;
	TAILQ_REMOVE(&req->holder->requests, req, owner);
	req->holder->nrequests--;
	free(req);
}

void
waitq_forget(struct acquire_req *req)
{
	req_free(req);
}

/* Grants slot (taken off the idle list, or just checked) to h. */
static void
grant(struct slot *slot, struct holder *h, uint64_t request_id, double started)
{
	slot_lease(slot, h, started);
	if (h->ops->grant(h, request_id, slot) == 0) {
		h->last_used[slot->pool->index] = slot->index + 1;
		return;
	}
	/* The fd never left: the backend is as clean as before. */
	slot_unlease(slot, started);
}

/* Grants slot to req, which is answered and freed. */
static void
grant_request(struct slot *slot, struct acquire_req *req)
{
	struct holder *h = req->holder;
	uint64_t id = req->request_id;
	double started = req->started;

	req_free(req);
	grant(slot, h, id, started);
}

static bool
needs_validation(const struct slot *slot, double now)
{
	double after = slot->pool->cfg->validate_after;

	return after == 0 || now - slot->idle_since > after;
}

/* The idle slot to lease to h: the one it used last, else the most recent. */
static struct slot *
pick_idle(struct pool *p, struct holder *h)
{
	uint32_t last = h->last_used[p->index];
	struct slot *slot;

	if (last != 0) {
		slot = p->broker->record_slot[last - 1];
		if (slot != NULL && slot->pool == p && slot->state == SHM_SLOT_IDLE &&
		    slot_lendable(slot))
			return slot;
	}
	while ((slot = TAILQ_FIRST(&p->idle)) != NULL && !slot_lendable(slot))
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
	PUBLISH_COUNT(p, acquire_timeouts, 1);
	if (p->failures > 0 && p->last_error[0] != '\0')
		answer(req->holder, req->request_id, PGL_EUNAVAILABLE,
		       "pool \"%s\" cannot connect to PostgreSQL: %s", p->cfg->name, p->last_error);
	else
		answer(req->holder, req->request_id, PGL_ETIMEOUT,
		       "no backend of pool \"%s\" became free within %.0f ms", p->cfg->name,
		       waited * 1000);
	req_free(req);
}

static struct acquire_req *
req_new(struct pool *p, struct holder *h, uint64_t request_id, double timeout)
{
	struct broker *b = p->broker;
	struct acquire_req *req = calloc(1, sizeof(*req));

	if (req == NULL)
		return NULL;
	req->pool = p;
	req->holder = h;
	req->request_id = request_id;
	req->started = ev_now(b->loop);
	ev_init(&req->timer, req_timeout_cb);
	req->timer.data = req;
	if (timeout > 0) {
		ev_timer_set(&req->timer, timeout, 0.);
		ev_timer_start(b->loop, &req->timer);
	}
	TAILQ_INSERT_TAIL(&h->requests, req, owner);
	h->nrequests++;
	return req;
}

/* Hands the idle slot to req: checked first when it needs it. */
static void
dispatch_to(struct slot *slot, struct acquire_req *req)
{
	slot_take_idle(slot);
	if (needs_validation(slot, ev_now(slot->pool->broker->loop))) {
		req->validating = slot;
		slot_check(slot, req);
		return;
	}
	grant_request(slot, req);
}

/* Serves a request that has a deadline: an idle slot, or the queue (always, while paused). */
static void
dispatch(struct acquire_req *req)
{
	struct pool *p = req->pool;
	struct slot *slot = p->paused ? NULL : pick_idle(p, req->holder);

	if (slot != NULL) {
		dispatch_to(slot, req);
		return;
	}
	TAILQ_INSERT_TAIL(&p->waiters, req, queue);
	req->queued = true;
	p->nwaiting++;
	publish_gauges(p);
	slot_fill(p);
}

void
waitq_acquire(struct pool *p, struct holder *h, uint64_t request_id, double timeout)
{
	struct broker *b = p->broker;
	double now = ev_now(b->loop);

	/* A paused pool lends nothing: its acquires queue (FIFO, within their deadline). */
	struct slot *slot = p->paused ? NULL : pick_idle(p, h);

	/* The common case allocates nothing: an idle slot, fresh enough. */
	if (slot != NULL && !needs_validation(slot, now)) {
		slot_take_idle(slot);
		grant(slot, h, request_id, now);
		return;
	}
	if (timeout <= 0) {
		/*
		 * No wait: only an idle backend that needs no check will do.  A
		 * check could outlast the caller's patience, and its answer would
		 * come after the library gave up.
		 */
		PUBLISH_COUNT(p, acquire_timeouts, 1);
		if (p->paused)
			answer(h, request_id, PGL_ETIMEOUT, "pool \"%s\" is paused", p->cfg->name);
		else if (p->size == 0 && p->failures > 0)
			answer(h, request_id, PGL_EUNAVAILABLE,
			       "pool \"%s\" cannot connect to PostgreSQL: %s", p->cfg->name,
			       p->last_error);
		else if (slot != NULL)
			answer(h, request_id, PGL_ETIMEOUT, "no idle backend of pool \"%s\" can be "
			       "lent without a health check (validate_after)", p->cfg->name);
		else
			answer(h, request_id, PGL_ETIMEOUT, "no idle backend in pool \"%s\"",
			       p->cfg->name);
		slot_fill(p);
		return;
	}

	struct acquire_req *req = req_new(p, h, request_id, timeout);
	if (req == NULL) {
		answer(h, request_id, PGL_ENOMEM, "the broker is out of memory");
		return;
	}
	dispatch(req);
}

void
waitq_fail_all(struct pool *p, int code, const char *msg)
{
	while (!TAILQ_EMPTY(&p->waiters)) {
		struct acquire_req *req = TAILQ_FIRST(&p->waiters);
		req->holder->ops->error(req->holder, req->request_id, code, msg);
		req_free(req);
	}
	for (int j = 0; j < p->nslots; j++) {
		struct acquire_req *req = p->slots[j]->req;
		if (req != NULL) {
			req->holder->ops->error(req->holder, req->request_id, code, msg);
			req_free(req);
		}
	}
}

void
waitq_pause(struct pool *p, bool paused)
{
	if (p->paused == paused)
		return;
	p->paused = paused;
	publish_gauges(p);
	if (paused)
		return;
	/* The queue in its order, as long as idle backends last; then grow for the rest. */
	while (!TAILQ_EMPTY(&p->waiters)) {
		struct slot *slot = pick_idle(p, TAILQ_FIRST(&p->waiters)->holder);
		if (slot == NULL)
			break;
		struct acquire_req *req = TAILQ_FIRST(&p->waiters);
		unqueue(req);
		dispatch_to(slot, req);
	}
	publish_gauges(p);
	slot_fill(p);
}

/* --- offered by the state machine ------------------------------------------- */

/* Straight to the first waiter: idle for no time, so checked only when
 * validate_after = 0 asks for it on every borrow. */
static bool
offer_idle(struct slot *slot)
{
	struct pool *p = slot->pool;
	struct acquire_req *req = TAILQ_FIRST(&p->waiters);

	if (req == NULL || p->paused)
		return false;
	unqueue(req);
	dispatch_to(slot, req);
	return true;
}

static void
offer_checked(struct slot *slot, struct acquire_req *req, bool ok)
{
	req->validating = NULL;
	if (!ok) {
		dispatch(req);
		return;
	}
	grant_request(slot, req);
}

const struct slot_hooks waitq_slot_hooks = {
	.idle = offer_idle,
	.checked = offer_checked,
};
