/*
 * backoff.h - reconnect delays: exponential, capped, jittered.
 */
#ifndef PGL_BACKOFF_H
#define PGL_BACKOFF_H

/*
 * The delay before reconnect attempt number failures (1 after the first
 * failure): min(max, initial * 2^(failures - 1)), moved by up to +/- jitter
 * of itself by u, a uniform random number in [0, 1).  Never negative.
 * Constant time, whatever failures is; an initial of 0 (or less) gives 0.
 */
double backoff_delay(double initial, double max, double jitter, unsigned failures, double u);

#endif
