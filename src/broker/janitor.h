/*
 * janitor.h - each pool's periodic round: idle_timeout, max_lifetime,
 * background health checks, lease_timeout.
 */
#ifndef PGL_JANITOR_H
#define PGL_JANITOR_H

struct pool;

/* Starts (or restarts, after a reload changed the durations) the pool's round. */
void janitor_start(struct pool *p);

void janitor_stop(struct pool *p);

#endif
