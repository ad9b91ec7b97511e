/*
 * publish.c - the pools' state, written to shared memory for pglease-stat,
 * the client library and the preload shim.
 */
#include "autoconf.h"

#include "broker/publish.h"
#include "broker/conninfo.h"
#include "broker/holder.h"
#include "broker/pool.h"
#include "broker/slot.h"
#include "common/clock.h"
#include "pglease.h"

#include <stdio.h>
#include <string.h>

static void
gauges_locked(struct pool *p)
{
	struct shm_pool *sp = &p->broker->shm.pools[p->index];

	sp->size = p->size;
	sp->idle = p->nidle;
	sp->leased = p->nleased;
	sp->waiting = p->nwaiting;
	sp->paused = p->paused;
}

void
publish_slot_locked(struct slot *slot)
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
	if (slot->state == SHM_SLOT_EMPTY) {
		r->host[0] = r->port[0] = '\0';
		r->server = SHM_SERVER_UNKNOWN;
	}
	gauges_locked(p);
}

void
publish_server(struct slot *slot)
{
	struct shm *shm = &slot->pool->broker->shm;
	struct shm_slot *r = &shm->slots[slot->index];

	shm_begin(shm);
	snprintf(r->host, sizeof(r->host), "%s", slot->host);
	snprintf(r->port, sizeof(r->port), "%s", slot->port);
	r->server = !slot->reports_state && !slot->pid_confirmed ? SHM_SERVER_UNKNOWN :
		    slot->hot_standby ? SHM_SERVER_STANDBY : slot->read_only ? SHM_SERVER_READ_ONLY :
		    SHM_SERVER_PRIMARY;
	shm_end(shm);
}

void
publish_slot(struct slot *slot)
{
	struct shm *shm = &slot->pool->broker->shm;

	shm_begin(shm);
	publish_slot_locked(slot);
	shm_end(shm);
}

void
publish_gauges(struct pool *p)
{
	shm_begin(&p->broker->shm);
	gauges_locked(p);
	shm_end(&p->broker->shm);
}

void
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

void
publish_config(struct pool *p)
{
	struct shm_pool *sp = &p->broker->shm.pools[p->index];
	char user[SHM_NAME_LEN], db[SHM_NAME_LEN], host[128], port[16];

	/* As the conninfo says until a backend tells (slot.c, on connect). */
	conninfo_identity(p->cfg, user, sizeof(user), db, sizeof(db), host, sizeof(host), port,
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

void
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

void
publish_clear(struct pool *p)
{
	struct shm *shm = &p->broker->shm;

	shm_begin(shm);
	for (int j = 0; j < p->nslots; j++) {
		struct shm_slot *r = &shm->slots[p->slots[j]->index];
		memset(r, 0, sizeof(*r));
		r->pool = -1;
	}
	memset(&shm->pools[p->index], 0, sizeof(shm->pools[p->index]));
	shm_end(shm);
}

void
publish_clients(struct broker *b, bool accepted)
{
	if (b->shm.hdr == NULL)
		return;
	shm_begin(&b->shm);
	b->shm.hdr->clients = b->nsessions;
	if (accepted)
		b->shm.hdr->clients_accepted++;
	shm_end(&b->shm);
}

void
publish_refused(struct broker *b, int reason)
{
	if (b->shm.hdr == NULL)
		return;
	shm_begin(&b->shm);
	if (reason == PGL_EDENIED)
		b->shm.hdr->clients_denied++;
	else
		b->shm.hdr->clients_over_limit++;
	shm_end(&b->shm);
}
