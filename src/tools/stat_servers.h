/*
 * stat_servers.h - pglease-stat: the servers a broker's backends are on
 * (host and port as libpq connected), counted from the slot records; what
 * an operator sums across application hosts against max_connections.
 */
#ifndef PGL_STAT_SERVERS_H
#define PGL_STAT_SERVERS_H

#include "common/shm.h"

#include <stdint.h>

#define STAT_MAX_SERVERS 64

/* One server and the backends on it. */
struct stat_server {
	const char *host, *port;	/* into the snapshot */
	int backends;			/* slots with a backend on it */
	int standby;			/* of which the server said it was in hot standby */
};

/*
 * The servers the backends of pool (-1: every pool) are on, in the order
 * first seen, into out (at most STAT_MAX_SERVERS); returns how many.
 */
int stat_servers(const struct shm_snapshot *s, int32_t pool, struct stat_server *out);

/* "primary", "standby", "read-only", or "" (not known yet). */
const char *stat_server_role(int32_t server);

#endif
