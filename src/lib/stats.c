/*
 * stats.c - pgl_stats(): pool counters read from the broker's shared memory.
 */
#include "autoconf.h"

#include "common/defaults.h"
#include "common/ident.h"
#include "common/shm.h"
#include "pglease.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int
pgl_stats(const char *shm_name, pgl_pool_stats *out, int max)
{
	struct shm_snapshot snap;

	if (shm_name == NULL || shm_name[0] == '\0')
		shm_name = PGL_DEFAULT_SHM_NAME;
	if (max < 0 || (max > 0 && out == NULL)) {
		errno = EINVAL;
		return -1;
	}
	/* A segment only root, this user or $PGLEASE_BROKER_UID could have made. */
	if (shm_snapshot_owned(shm_name, ident_broker_uid(), NULL, &snap) != 0)
		return -1;
	if (!snap.broker_alive) {
		shm_snapshot_free(&snap);
		errno = ESRCH;
		return -1;
	}

	int n = 0;
	for (uint32_t i = 0; i < snap.hdr.npools; i++) {
		const struct shm_pool *p = &snap.pools[i];
		if (p->name[0] == '\0')
			continue;	/* a record no pool uses (one removed by a reload) */
		if (n >= max) {
			n++;
			continue;
		}
		pgl_pool_stats *o = &out[n++];

		memset(o, 0, sizeof(*o));
		snprintf(o->name, sizeof(o->name), "%.*s", (int)sizeof(p->name) - 1, p->name);
		o->min_size = p->min_size;
		o->max_size = p->max_size;
		o->size = p->size;
		o->idle = p->idle;
		o->leased = p->leased;
		o->waiting = p->waiting;
		o->leases = p->leases;
		o->acquire_timeouts = p->acquire_timeouts;
		o->acquire_wait_us_total = p->acquire_wait_us_total;
		o->acquire_wait_us_max = p->acquire_wait_us_max;
		o->connects = p->connects;
		o->connect_failures = p->connect_failures;
		o->health_check_failures = p->health_check_failures;
		o->resets = p->resets;
		o->reset_failures = p->reset_failures;
		o->orphaned_leases = p->orphaned_leases;
		o->lease_timeouts = p->lease_timeouts;
		o->backoff_until_ms = p->backoff_until_ms;
	}
	shm_snapshot_free(&snap);
	return n;
}
