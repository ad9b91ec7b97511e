/*
 * pool.c - pools: creating them with their slots and shared memory records,
 * finding and counting them, closing their backends when the broker stops,
 * freeing them.
 */
#include "autoconf.h"

#include "broker/pool.h"
#include "broker/backend.h"
#include "broker/helper.h"
#include "broker/janitor.h"
#include "broker/publish.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

/* A free shm slot record, claimed for slot; -1 when the segment is full. */
static int
claim_record(struct broker *b, struct slot *slot)
{
	for (uint32_t i = 0; i < b->shm.hdr->nslots; i++) {
		if (b->record_slot[i] == NULL) {
			b->record_slot[i] = slot;
			return (int)i;
		}
	}
	return -1;
}

int
pool_add_slots(struct pool *p, int n)
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
		int record = slot != NULL ? claim_record(b, slot) : -1;
		if (record < 0) {
			free(slot);
			return -1;
		}
		slot->pool = p;
		slot->index = (uint32_t)record;
		slot->fd = -1;
		slot->state = SHM_SLOT_EMPTY;
		backend_init(slot);
		p->slots[p->nslots++] = slot;
		publish_slot(slot);
	}
	return 0;
}

struct pool *
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
	janitor_start(p);

	shm_begin(&b->shm);
	memset(&b->shm.pools[index], 0, sizeof(b->shm.pools[index]));
	shm_end(&b->shm);
	if (pool_add_slots(p, pc->max_size) != 0) {
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
	b->record_slot = calloc(b->shm.hdr->nslots > 0 ? b->shm.hdr->nslots : 1,
				sizeof(*b->record_slot));
	if (b->record_slot == NULL)
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
		slot_fill(b->pools[i]);
	return 0;
}

void
pool_destroy(struct pool *p)
{
	struct broker *b = p->broker;

	ev_timer_stop(b->loop, &p->retry_timer);
	janitor_stop(p);
	while (!TAILQ_EMPTY(&p->waiters))
		waitq_forget(TAILQ_FIRST(&p->waiters));
	for (int j = 0; j < p->nslots; j++) {
		backend_free(p->slots[j]);
		helper_forget(p->slots[j]);
	}
	publish_clear(p);
	for (int j = 0; j < p->nslots; j++) {
		if (b->record_slot != NULL)
			b->record_slot[p->slots[j]->index] = NULL;
		free(p->slots[j]);
	}
	free(p->slots);
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
	free(b->record_slot);
	b->record_slot = NULL;
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
				if (force)
					slot_cut(slot, "broker stopped");
				break;
			default:
				break;
			}
		}
	}
}
