/*
 * stat_servers.c - pglease-stat: backends counted per server (see
 * stat_servers.h).
 */
#include "autoconf.h"

#include "tools/stat_servers.h"

#include <string.h>

const char *
stat_server_role(int32_t server)
{
	static const char *const names[] = { "", "primary", "standby", "read-only" };

	return server >= 0 && server <= SHM_SERVER_READ_ONLY ? names[server] : "?";
}

int
stat_servers(const struct shm_snapshot *s, int32_t pool, struct stat_server *out)
{
	int n = 0;

	for (uint32_t i = 0; i < s->hdr.nslots; i++) {
		const struct shm_slot *sl = &s->slots[i];
		int k;
		if (sl->pool < 0 || (uint32_t)sl->pool >= s->hdr.npools || sl->host[0] == '\0' ||
		    (pool >= 0 && sl->pool != pool))
			continue;
		for (k = 0; k < n; k++)
			if (strcmp(out[k].host, sl->host) == 0 && strcmp(out[k].port, sl->port) == 0)
				break;
		if (k == n) {
			if (n == STAT_MAX_SERVERS)
				continue;
			out[n++] = (struct stat_server){ .host = sl->host, .port = sl->port };
		}
		out[k].backends++;
		out[k].standby += sl->server == SHM_SERVER_STANDBY;
	}
	return n;
}
