/*
 * reload.c - applying a new configuration to a running broker, and
 * removing the pools it dropped once they have drained.
 */
#include "autoconf.h"

#include "broker/reload.h"
#include "broker/janitor.h"
#include "broker/pool.h"
#include "broker/publish.h"
#include "broker/slot.h"
#include "broker/waitq.h"
#include "common/log.h"
#include "pglease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Frees the configurations that reloads replaced and that no pool points
 * into any more (a removed pool keeps its own until it is reaped), secrets
 * zeroed.
 */
static void
release_configs(struct broker *b)
{
	size_t keep = 0;

	for (size_t i = 0; i < b->nold_configs; i++) {
		struct config *old = b->old_configs[i];
		bool used = false;
		for (size_t j = 0; j < b->npools && !used; j++)
			used = b->pools[j]->cfg >= old->pools &&
			       b->pools[j]->cfg < old->pools + old->npools;
		if (used)
			b->old_configs[keep++] = old;
		else
			config_free(old);
	}
	b->nold_configs = keep;
}

void
reload_free_configs(struct broker *b)
{
	for (size_t i = 0; i < b->nold_configs; i++)
		config_free(b->old_configs[i]);
	free(b->old_configs);
	b->old_configs = NULL;
	b->nold_configs = 0;
}

/* --- removed pools ------------------------------------------------------ */

/*
 * After each loop iteration while removed pools drain: those with no
 * backend left are freed.
 */
static void
reap_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct broker *b = w->data;
	size_t keep = 0;
	bool draining = false, reaped = false;

	(void)revents;
	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		if (!p->removed || p->size > 0) {
			b->pools[keep++] = p;
			draining |= p->removed;
			continue;
		}
		log_info("pool %s removed", p->cfg->name);
		pool_destroy(p);
		reaped = true;
	}
	b->npools = keep;
	if (reaped) {
		publish_npools(b);
		release_configs(b);
	}
	if (!draining)
		ev_check_stop(loop, w);
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
	char msg[128];

	p->removed = true;
	ev_timer_stop(b->loop, &p->retry_timer);	/* the janitor goes on: lease_timeout */
	snprintf(msg, sizeof(msg), "pool \"%s\" was removed by a reload", p->cfg->name);
	waitq_fail_all(p, PGL_ENOPOOL, msg);
	log_info("pool %s is removed by the reload: draining %d backends (%d leased)",
		 p->cfg->name, p->size, p->nleased);
	shed(p, 0, "pool removed");
	if (!ev_is_active(&b->reaper)) {
		ev_check_init(&b->reaper, reap_cb);
		b->reaper.data = b;
		ev_check_start(b->loop, &b->reaper);
	}
}

/* --- changed pools ---------------------------------------------------------- */

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
	/* Room was checked by apply(): only memory can run out. */
	if (pc->max_size > p->nslots && pool_add_slots(p, pc->max_size) != 0)
		log_error("pool %s: out of memory for max_size=%d; it keeps %d slots", pc->name,
			  pc->max_size, p->nslots);
	janitor_start(p);
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
	slot_fill(p);
}

/* The live pool of that name, or NULL. */
static struct pool *
live_pool(struct broker *b, const char *name)
{
	for (size_t k = 0; k < b->npools; k++)
		if (!b->pools[k]->removed && strcmp(b->pools[k]->cfg->name, name) == 0)
			return b->pools[k];
	return NULL;
}

/*
 * Applies the pools of nc.  Nothing changes and -1 is returned (err says
 * why) when the shared memory segment has no room for them.
 */
static int
apply(struct broker *b, const struct config *nc, char *err, size_t errlen)
{
	size_t records = 0, pools = 0;

	/* Room first: nothing changes unless everything fits. */
	for (size_t i = 0; i < b->npools; i++) {
		struct pool *p = b->pools[i];
		if (p->removed || config_find_pool(nc, p->cfg->name) == NULL) {
			records += (size_t)p->nslots;	/* held until drained */
			pools++;
		}
	}
	for (size_t i = 0; i < nc->npools; i++) {
		const struct pool_config *pc = &nc->pools[i];
		struct pool *p = live_pool(b, pc->name);
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
		struct pool *p = live_pool(b, pc->name);
		if (p != NULL) {
			pool_update(p, pc);
		} else if ((p = pool_create(b, pc)) != NULL) {
			log_info("pool %s added by the reload", pc->name);
			slot_fill(p);
		}
	}
	return 0;
}

/* --- the file ------------------------------------------------------------ */

static void
report_log(void *arg, bool is_error, const char *msg)
{
	(void)arg;
	if (is_error)
		log_error("reload: %s", msg);
	else
		log_warnx("reload: %s", msg);
}

/* Settings only a restart changes: kept as they are, with a warning. */
static void
keep_restart_only(struct broker *b, struct config *nc)
{
	struct broker_config *now = &b->cfg->broker, *next = &nc->broker;

	if (strcmp(now->socket, next->socket) != 0 || now->socket_mode != next->socket_mode ||
	    now->socket_gid != next->socket_gid ||
	    (now->socket_group == NULL) != (next->socket_group == NULL))
		log_warnx("reload: socket, socket_mode and socket_group change only with a "
			  "restart; keeping %s", now->socket);
	if (strcmp(now->shm_name, next->shm_name) != 0 || now->shm_mode != next->shm_mode ||
	    now->shm_gid != next->shm_gid)
		log_warnx("reload: shm_name, shm_mode and shm_group change only with a restart; "
			  "keeping %s", now->shm_name);
	if (now->max_total_slots != next->max_total_slots)
		log_warnx("reload: max_total_slots changes only with a restart; keeping %d",
			  now->max_total_slots);
	char *socket = strdup(now->socket), *shm = strdup(now->shm_name);
	if (socket != NULL && shm != NULL) {
		free(next->socket);
		free(next->shm_name);
		next->socket = socket;
		next->shm_name = shm;
	} else {
		free(socket);
		free(shm);
	}
	next->socket_mode = now->socket_mode;
	next->socket_gid = now->socket_gid;
	free(next->socket_group);
	next->socket_group = now->socket_group != NULL ? strdup(now->socket_group) : NULL;
	next->shm_mode = now->shm_mode;
	if ((now->pid_file == NULL) != (next->pid_file == NULL) ||
	    (now->pid_file != NULL && strcmp(now->pid_file, next->pid_file) != 0))
		log_warnx("reload: pid_file changes only with a restart; keeping %s",
			  now->pid_file != NULL ? now->pid_file : "none");
	free(next->pid_file);
	next->pid_file = now->pid_file != NULL ? strdup(now->pid_file) : NULL;
	next->shm_gid = now->shm_gid;
	free(next->shm_group);
	next->shm_group = now->shm_group != NULL ? strdup(now->shm_group) : NULL;
	next->max_total_slots = now->max_total_slots;
}

bool
reload_run(struct broker *b)
{
	const char *path = b->cfg->path;
	int nerrors = 0;
	char err[512];

	log_info("SIGHUP: reloading %s", path);
	if (b->draining || b->stopping) {
		log_warnx("reload: the broker is stopping; ignored");
		return false;
	}
	struct config *nc = config_load(path, report_log, NULL, &nerrors);
	if (nc == NULL) {
		log_error("reload: %s has %d error%s; the running configuration stays", path,
			  nerrors, nerrors == 1 ? "" : "s");
		return false;
	}
	keep_restart_only(b, nc);
	/* Room for the old configuration first: apply() cannot be undone. */
	struct config **old = realloc(b->old_configs, (b->nold_configs + 1) * sizeof(*old));
	if (old == NULL) {
		log_error("reload refused: out of memory; the running configuration stays");
		config_free(nc);
		return false;
	}
	b->old_configs = old;
	if (apply(b, nc, err, sizeof(err)) != 0) {
		log_error("reload refused: %s; the running configuration stays", err);
		config_free(nc);
		return false;
	}
	/* Pools still draining may point into the old configuration: it stays
	 * until release_configs() finds nothing pointing into it. */
	old[b->nold_configs++] = b->cfg;
	b->cfg = nc;
	b->cfg_gen++;
	struct log_options lo;
	config_log_options(nc, &lo);
	if (log_configure(&lo, err, sizeof(err)) != 0)
		log_error("reload: %s; logging as before", err);
	release_configs(b);
	log_info("reloaded %s: %zu pools", nc->path, nc->npools);
	return true;
}
