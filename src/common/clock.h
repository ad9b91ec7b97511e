/*
 * clock.h - time sources.
 */
#ifndef PGL_CLOCK_H
#define PGL_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds: for deadlines. */
int64_t clock_mono_ms(void);

/* CLOCK_REALTIME in milliseconds: for timestamps others read. */
int64_t clock_real_ms(void);

#endif
