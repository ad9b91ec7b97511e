/*
 * limits.h - the file descriptors the broker needs, and raising
 * RLIMIT_NOFILE's soft limit to its hard limit.
 */
#ifndef PGL_LIMITS_H
#define PGL_LIMITS_H

#include "broker/config.h"

#include <stddef.h>
#include <sys/resource.h>

/* Descriptors besides clients and backends: the listener, the log, libev, helpers. */
#define LIMITS_FD_MARGIN 64

/*
 * The descriptors cfg may need at once: two per client (its socket and the
 * pidfd that watches its process), one per backend slot (max_total_slots),
 * and LIMITS_FD_MARGIN.
 */
rlim_t limits_fds_needed(const struct config *cfg);

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit.  Returns 0 when the
 * limit (raised or not) fits what cfg needs; -1 with a sentence in msg
 * (naming both numbers and the fix) when it does not.
 */
int limits_raise_nofile(const struct config *cfg, char *msg, size_t len);

/* Whether the hard limit would fit cfg (--check-config): as above, changing nothing. */
int limits_check_nofile(const struct config *cfg, char *msg, size_t len);

#endif
