/*
 * rand.c - xorshift64*: fast, and good enough for jitter and nonces.
 */
#include "autoconf.h"

#include "common/rand.h"

#include <sys/random.h>
#include <unistd.h>

int
rng_seed(struct rng *r)
{
	int rc = 0;

	if (getrandom(&r->s, sizeof(r->s), 0) != sizeof(r->s)) {
		r->s = (uint64_t)getpid() * UINT64_C(0x9e3779b97f4a7c15);
		rc = -1;
	}
	r->s |= 1;		/* xorshift never leaves 0 */
	return rc;
}

uint64_t
rng_next(struct rng *r)
{
	uint64_t x = r->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * UINT64_C(2685821657736338717);
}

double
rng_unit(struct rng *r)
{
	/* the top 53 bits: every double in [0, 1) a multiple of 2^-53 */
	return (double)(rng_next(r) >> 11) / 9007199254740992.0;
}
