/*
 * stat_text.c - pglease-stat's reading of the segment, and its output for
 * people and scripts: a table, or JSON.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/shm.h"
#include "tools/stat_servers.h"
#include "tools/stat_text.h"
#include "tools/toolutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int
stat_read(const char *name, uid_t owner, struct shm_snapshot *snap, char *why, size_t whylen)
{
	uid_t found = 0;

	why[0] = '\0';
	if (shm_snapshot_owned(name, owner, &found, snap) != 0) {
		int err = errno;
		if (err == EPERM)
			snprintf(why, whylen, "%s belongs to uid %u, not to root, you or the broker's "
				 "user: not trusted (--owner names the broker's user)", name,
				 (unsigned)found);
		else if (err == ENOENT)
			snprintf(why, whylen, "no shared memory segment %s: is pgleased running "
				 "(with this shm_name)?", name);
		else if (err == EPROTO)
			snprintf(why, whylen, "%s is not a pglease segment of layout version %d",
				 name, SHM_LAYOUT_VERSION);
		else
			snprintf(why, whylen, "cannot read %s: %s", name, strerror(err));
		return err == ENOENT ? STAT_DOWN : STAT_ERROR;
	}
	if (!snap->broker_alive) {
		snprintf(why, whylen, "the broker of %s (pid %d) is down: no heartbeat for %.1f s",
			 name, snap->hdr.broker_pid,
			 (double)(clock_real_ms() - snap->hdr.heartbeat_ms) / 1000);
		return STAT_DOWN;
	}
	return STAT_UP;
}

void
stat_print_table(const char *name, const struct shm_snapshot *s, int64_t now)
{
	const struct shm_header *h = &s->hdr;
	struct stat_server sv[STAT_MAX_SERVERS];
	int nsv;

	printf("pgleased pid %d, shared memory %s, socket %s, up %" PRId64 " s, "
	       "heartbeat %.1f s ago\n", h->broker_pid, name, h->socket,
	       (now - h->start_time_ms) / 1000, (double)(now - h->heartbeat_ms) / 1000);
	printf("clients %d, accepted %" PRIu64 ", refused: %" PRIu64 " denied, %" PRIu64
	       " over max_clients\n\n", h->clients, h->clients_accepted, h->clients_denied,
	       h->clients_over_limit);
	printf("%-20s %5s %5s %5s %5s %6s %7s %10s %8s %8s %9s %7s %9s %9s %8s %11s %11s\n",
	       "POOL", "MIN", "MAX", "SIZE", "IDLE", "LEASED", "WAITING", "LEASES", "TIMEOUTS",
	       "CONNECTS", "CONN_FAIL", "HC_FAIL", "RESETS", "RESET_FAIL", "ORPHANED",
	       "WAIT_AVG_US", "WAIT_MAX_US");
	for (uint32_t i = 0; i < h->npools; i++) {
		const struct shm_pool *p = &s->pools[i];
		if (p->name[0] == '\0')
			continue;
		printf("%-20.63s %5d %5d %5d %5d %6d %7d %10" PRIu64 " %8" PRIu64 " %8" PRIu64
		       " %9" PRIu64 " %7" PRIu64 " %9" PRIu64 " %9" PRIu64 " %8" PRIu64
		       " %11" PRIu64 " %11" PRIu64 "\n",
		       p->name, p->min_size, p->max_size, p->size, p->idle, p->leased, p->waiting,
		       p->leases, p->acquire_timeouts, p->connects, p->connect_failures,
		       p->health_check_failures, p->resets, p->reset_failures, p->orphaned_leases,
		       p->leases > 0 ? p->acquire_wait_us_total / p->leases : 0,
		       p->acquire_wait_us_max);
		if (p->backoff_until_ms > now)
			printf("%-20s backing off: next connect in %.1f s\n", "",
			       (double)(p->backoff_until_ms - now) / 1000);
		if (p->paused)
			printf("%-20s paused: acquires wait until pglease-ctl resume (or SIGUSR2)\n",
			       "");
		if (p->restricted)
			printf("%-20s restricted: only the users its allowed_uids/allowed_gids "
			       "name may lease\n", "");
		nsv = stat_servers(s, (int32_t)i, sv);
		for (int k = 0; k < nsv; k++)
			printf("%-20s on host=%s port=%s: %d backend%s%s\n", "", sv[k].host,
			       sv[k].port, sv[k].backends, sv[k].backends == 1 ? "" : "s",
			       sv[k].standby > 0 ? " (standby)" : "");
	}
	nsv = stat_servers(s, -1, sv);
	if (nsv > 0)
		printf("\n%-40s %-6s %8s\n", "SERVER (host, every pool)", "PORT", "BACKENDS");
	for (int k = 0; k < nsv; k++)
		printf("%-40.127s %-6s %8d\n", sv[k].host, sv[k].port, sv[k].backends);
	printf("\n%5s %-20s %-11s %11s %10s %12s %10s %-9s %s\n", "SLOT", "POOL", "STATE",
	       "BACKEND_PID", "HOLDER_PID", "LEASE_AGE_MS", "LEASES", "SERVER", "HOST:PORT");
	for (uint32_t i = 0; i < h->nslots; i++) {
		const struct shm_slot *sl = &s->slots[i];
		if (sl->pool < 0 || (uint32_t)sl->pool >= h->npools)
			continue;
		printf("%5u %-20.63s %-11s %11d %10d %12" PRId64 " %10" PRIu64 " %-9s %s%s%s\n", i,
		       s->pools[sl->pool].name, shm_slot_state_name(sl->state), sl->backend_pid,
		       sl->holder_pid, sl->leased_at_ms > 0 ? now - sl->leased_at_ms : 0,
		       sl->lease_count, sl->host[0] != '\0' ? stat_server_role(sl->server) : "-",
		       sl->host, sl->host[0] != '\0' ? ":" : "", sl->port);
	}
}

/* ,"servers":[{"host":..,"port":..,"backends":N,"standby":N},...] of pool (-1: all) */
static void
json_servers(const struct shm_snapshot *s, int32_t pool)
{
	struct stat_server sv[STAT_MAX_SERVERS];
	int n = stat_servers(s, pool, sv);

	printf(",\"servers\":[");
	for (int k = 0; k < n; k++) {
		printf("%s{\"host\":", k > 0 ? "," : "");
		tool_json_string(sv[k].host);
		printf(",\"port\":");
		tool_json_string(sv[k].port);
		printf(",\"backends\":%d,\"standby\":%d}", sv[k].backends, sv[k].standby);
	}
	printf("]");
}

void
stat_print_json(const char *name, const struct shm_snapshot *s, int64_t now)
{
	const struct shm_header *h = &s->hdr;

	printf("{\"shm_name\":");
	tool_json_string(name);
	printf(",\"socket\":");
	tool_json_string(h->socket);
	printf(",\"broker_pid\":%d,\"incarnation\":%u,\"uptime_ms\":%" PRId64
	       ",\"heartbeat_age_ms\":%" PRId64 ",\"clients\":%d,\"clients_accepted\":%" PRIu64
	       ",\"clients_denied\":%" PRIu64 ",\"clients_over_limit\":%" PRIu64 ",\"pools\":[",
	       h->broker_pid, h->incarnation, now - h->start_time_ms, now - h->heartbeat_ms,
	       h->clients, h->clients_accepted, h->clients_denied, h->clients_over_limit);
	bool first_pool = true;
	for (uint32_t i = 0; i < h->npools; i++) {
		const struct shm_pool *p = &s->pools[i];
		if (p->name[0] == '\0')
			continue;
		printf("%s{\"name\":", first_pool ? "" : ",");
		first_pool = false;
		tool_json_string(p->name);
		printf(",\"database\":");
		tool_json_string(p->database);
		printf(",\"user\":");
		tool_json_string(p->user);
		printf(",\"restricted\":%s", p->restricted ? "true" : "false");
		printf(",\"paused\":%s", p->paused ? "true" : "false");
		json_servers(s, (int32_t)i);
		printf(",\"min_size\":%d,\"max_size\":%d,\"size\":%d,\"idle\":%d,\"leased\":%d,"
		       "\"waiting\":%d,\"leases\":%" PRIu64 ",\"acquire_timeouts\":%" PRIu64
		       ",\"acquire_wait_us_total\":%" PRIu64 ",\"acquire_wait_us_max\":%" PRIu64
		       ",\"connects\":%" PRIu64 ",\"connect_failures\":%" PRIu64
		       ",\"health_check_failures\":%" PRIu64 ",\"resets\":%" PRIu64
		       ",\"reset_failures\":%" PRIu64 ",\"orphaned_leases\":%" PRIu64
		       ",\"lease_timeouts\":%" PRIu64 ",\"backoff_until_ms\":%" PRId64 "}",
		       p->min_size, p->max_size, p->size, p->idle, p->leased, p->waiting,
		       p->leases, p->acquire_timeouts, p->acquire_wait_us_total,
		       p->acquire_wait_us_max, p->connects, p->connect_failures,
		       p->health_check_failures, p->resets, p->reset_failures,
		       p->orphaned_leases, p->lease_timeouts, p->backoff_until_ms);
	}
	printf("],\"slots\":[");
	bool first = true;
	for (uint32_t i = 0; i < h->nslots; i++) {
		const struct shm_slot *sl = &s->slots[i];
		if (sl->pool < 0 || (uint32_t)sl->pool >= h->npools)
			continue;
		printf("%s{\"slot\":%u,\"pool\":", first ? "" : ",", i);
		tool_json_string(s->pools[sl->pool].name);
		printf(",\"state\":\"%s\",\"backend_pid\":%d,\"holder_pid\":%d,"
		       "\"lease_age_ms\":%" PRId64 ",\"lease_count\":%" PRIu64 ",\"host\":",
		       shm_slot_state_name(sl->state), sl->backend_pid, sl->holder_pid,
		       sl->leased_at_ms > 0 ? now - sl->leased_at_ms : 0, sl->lease_count);
		tool_json_string(sl->host);
		printf(",\"port\":");
		tool_json_string(sl->port);
		printf(",\"server\":\"%s\"}", stat_server_role(sl->server));
		first = false;
	}
	printf("]");
	json_servers(s, -1);
	printf("}\n");
}
