/*
 * target.c - a pool's target_session_attrs, applied to what a server
 * reports about itself.
 */
#include "autoconf.h"

#include "broker/target.h"

#include <stdio.h>
#include <string.h>

static const char *const names[] = {
	[TARGET_ANY] = "any",
	[TARGET_READ_WRITE] = "read-write",
	[TARGET_READ_ONLY] = "read-only",
	[TARGET_PRIMARY] = "primary",
	[TARGET_STANDBY] = "standby",
	[TARGET_PREFER_STANDBY] = "prefer-standby",
};

int
target_parse(const char *name)
{
	for (int t = 0; t < (int)(sizeof(names) / sizeof(names[0])); t++)
		if (strcmp(name, names[t]) == 0)
			return t;
	return -1;
}

bool
target_watched(int t)
{
	return t != TARGET_ANY && t != TARGET_PREFER_STANDBY;
}

const char *
target_name(int t)
{
	return t >= 0 && t < (int)(sizeof(names) / sizeof(names[0])) ? names[t] : "?";
}

/* As libpq judges at connect: read-only is either of the two. */
bool
target_fits(int t, struct target_state s)
{
	switch (t) {
	case TARGET_READ_WRITE:
		return !s.hot_standby && !s.read_only;
	case TARGET_READ_ONLY:
		return s.hot_standby || s.read_only;
	case TARGET_PRIMARY:
		return !s.hot_standby;
	case TARGET_STANDBY:
		return s.hot_standby;
	default:
		return true;
	}
}

void
target_refusal(int t, struct target_state s, const char *host, const char *port, char *buf,
	       unsigned len)
{
	const char *what = s.hot_standby ? "is in hot standby" :
			   s.read_only ? "is read-only (default_transaction_read_only = on)" :
			   t == TARGET_STANDBY ? "is not in hot standby (promoted)" :
			   "accepts writes";
	const char *want = t == TARGET_READ_WRITE ? "read-write sessions" :
			   t == TARGET_READ_ONLY ? "read-only sessions" :
			   t == TARGET_PRIMARY ? "sessions as a primary" :
			   t == TARGET_STANDBY ? "sessions as a standby" : "sessions";

	snprintf(buf, len, "no server accepts %s (target_session_attrs=%s): the one at "
		 "host=%s port=%s %s", want, target_name(t), host, port, what);
}
