/*
 * stat_prom.h - pglease-stat's Prometheus text exposition and its
 * --textfile output (stat_prom.c).
 */
#ifndef PGL_STAT_PROM_H
#define PGL_STAT_PROM_H

#include "common/shm.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The file --textfile DIR writes, for node_exporter's textfile collector. */
#define STAT_PROM_TEXTFILE "pglease.prom"

/* The content type of the exposition, for HTTP. */
#define STAT_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Writes one complete exposition of s, at time now (realtime ms), to out.
 * s NULL or without records (no segment): pglease_up 0 alone; a dead
 * broker's copy: pglease_up 0 and when it started and last beat.
 */
void stat_prom_write(FILE *out, const struct shm_snapshot *s, int64_t now);

/*
 * Writes the exposition of s (as stat_prom_write) to DIR/pglease.prom
 * atomically: a temporary file in dir, renamed over it.  Returns 0, or -1
 * with a sentence in why (no temporary file left).
 */
int stat_prom_textfile(const char *dir, const struct shm_snapshot *s, int64_t now, char *why,
		       size_t whylen) __attribute__((warn_unused_result));

#endif
