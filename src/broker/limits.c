/*
 * limits.c - RLIMIT_NOFILE: what max_clients and the pools need, and what
 * the process may open.
 *
 * A broker that runs out of descriptors stops accepting clients
 * (listener.c pauses) and cannot open backends; the soft limit is often
 * 1024 while max_clients alone defaults to 1024.  The hard limit is the
 * administrator's (systemd's LimitNOFILE=, ulimit -Hn): the broker takes
 * all of it and says when even that is short.
 */
#include "autoconf.h"

#include "broker/limits.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

rlim_t
limits_fds_needed(const struct config *cfg)
{
	return 2 * (rlim_t)cfg->broker.max_clients + (rlim_t)cfg->broker.max_total_slots +
	       LIMITS_FD_MARGIN;
}

/* -1 with the sentence when have does not fit need. */
static int
judge(const struct config *cfg, rlim_t have, const char *which, char *msg, size_t len)
{
	rlim_t need = limits_fds_needed(cfg);

	if (have == RLIM_INFINITY || have >= need)
		return 0;
	snprintf(msg, len, "the %s file descriptor limit (RLIMIT_NOFILE) is %llu, but "
		 "max_clients=%d and max_total_slots=%d need up to %llu (2 per client, 1 per "
		 "backend, %d more): raise it (LimitNOFILE= in the unit, ulimit -n) or lower "
		 "max_clients", which, (unsigned long long)have, cfg->broker.max_clients,
		 cfg->broker.max_total_slots, (unsigned long long)need, LIMITS_FD_MARGIN);
	return -1;
}

int
limits_raise_nofile(const struct config *cfg, char *msg, size_t len)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(msg, len, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur != rl.rlim_max) {
		struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	return judge(cfg, rl.rlim_cur, rl.rlim_cur == rl.rlim_max ? "hard" : "soft", msg, len);
}

int
limits_check_nofile(const struct config *cfg, char *msg, size_t len)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(msg, len, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -1;
	}
	return judge(cfg, rl.rlim_max, "hard", msg, len);
}
