/*
 * rand.h - a small, fast random generator (xorshift64*) for jitter, nonces
 * and names that must not collide by chance.  Not for secrets.
 */
#ifndef PGL_RAND_H
#define PGL_RAND_H

#include <stdint.h>

/* A generator's state: never 0.  Not thread-safe: one per thread, or a lock. */
struct rng {
	uint64_t s;
};

/*
 * Seeds r from the kernel (getrandom).  Returns 0; or -1 when the kernel
 * gave nothing, r then seeded from the process id: usable, but predictable.
 */
int rng_seed(struct rng *r);

/* The next uniform 64-bit number. */
uint64_t rng_next(struct rng *r);

/* The next uniform number in [0, 1). */
double rng_unit(struct rng *r);

#endif
