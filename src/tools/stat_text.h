/*
 * stat_text.h - pglease-stat: reading the segment, and the table and JSON
 * outputs (stat_text.c).  The Prometheus output is stat_prom.h's.
 */
#ifndef PGL_STAT_TEXT_H
#define PGL_STAT_TEXT_H

#include "common/shm.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What reading the segment found; also pglease-stat's exit status. */
enum stat_result {
	STAT_UP = 0,		/* a running broker's snapshot */
	STAT_ERROR = 1,		/* unreadable: untrusted owner, another layout... */
	STAT_DOWN = 2,		/* no segment, or its broker dead or silent */
};

/*
 * Snapshots segment name, trusting owner besides root and the caller (see
 * shm_snapshot_owned()).  STAT_UP: *snap holds a live broker's copy.
 * STAT_DOWN: either no segment (snap->pools is NULL) or a dead broker's
 * copy.  STAT_ERROR: nothing read.  But for STAT_UP, why gets a sentence
 * for stderr.  The caller frees *snap in every case (shm_snapshot_free).
 */
int stat_read(const char *name, uid_t owner, struct shm_snapshot *snap, char *why,
	      size_t whylen) __attribute__((warn_unused_result));

/* The pools and slots of s as a table (name: the segment's), at time now (ms). */
void stat_print_table(const char *name, const struct shm_snapshot *s, int64_t now);

/* The same as one line of JSON. */
void stat_print_json(const char *name, const struct shm_snapshot *s, int64_t now);

#endif
