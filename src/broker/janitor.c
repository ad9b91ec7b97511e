/*
 * janitor.c - each pool's periodic round over its slots: idle backends past
 * idle_timeout or max_lifetime are closed, idle ones not checked for
 * health_check_interval are checked in the background, leases held past
 * lease_timeout are reported (and cut, with lease_timeout_action =
 * "terminate").
 */
#include "autoconf.h"

#include "broker/janitor.h"
#include "broker/holder.h"
#include "broker/pool.h"
#include "broker/publish.h"
#include "broker/slot.h"
#include "common/log.h"

/*
 * How often the round runs: every second, or more often when a configured
 * duration is shorter, so that none is overshot by much.
 */
static double
period_of(const struct pool_config *pc)
{
	double period = 1.0;
	const double d[] = { pc->idle_timeout, pc->max_lifetime, pc->health_check_interval,
			     pc->lease_timeout };

	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
		if (d[i] > 0 && d[i] / 4 < period)
			period = d[i] / 4;
	return period < 0.02 ? 0.02 : period;
}

/* A lease held past lease_timeout: said once; with "terminate", also cut. */
static void
lease_overdue(struct slot *slot, double age)
{
	struct pool *p = slot->pool;

	if (slot->lease_warned)
		return;
	slot->lease_warned = true;
	PUBLISH_COUNT(p, lease_timeouts, 1);
	log_warnx("lease held past lease_timeout pool=%s slot=%u backend_pid=%d holder_pid=%d "
		  "age=%.1fs%s", p->cfg->name, slot->index, slot->backend_pid,
		  slot->holder != NULL ? (int)slot->holder->pid : 0, age,
		  p->cfg->lease_timeout_action == LEASE_TIMEOUT_TERMINATE ? ": terminating it" : "");
	if (p->cfg->lease_timeout_action == LEASE_TIMEOUT_TERMINATE)
		slot_cut(slot, "lease_timeout");
}

static void
round_cb(struct ev_loop *loop, ev_timer *w, int revents)
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
				slot_take_idle(slot);
				slot_check(slot, NULL);
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

void
janitor_start(struct pool *p)
{
	struct ev_loop *loop = p->broker->loop;
	double period = period_of(p->cfg);

	ev_timer_stop(loop, &p->housekeeping);
	ev_timer_init(&p->housekeeping, round_cb, period, period);
	p->housekeeping.data = p;
	ev_timer_start(loop, &p->housekeeping);
}

void
janitor_stop(struct pool *p)
{
	ev_timer_stop(p->broker->loop, &p->housekeeping);
}
