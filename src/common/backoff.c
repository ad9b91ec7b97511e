/*
 * backoff.c - reconnect delays.
 */
#include "autoconf.h"

#include "common/backoff.h"

/*
 * More doublings than any positive double survives: the smallest subnormal
 * (2^-1074) doubled this often is past DBL_MAX (about 2^1024).  The loop
 * below stops there at the latest, whatever failures says.
 */
#define DOUBLINGS_MAX 2100

double
backoff_delay(double initial, double max, double jitter, unsigned failures, double u)
{
	/*
	 * A zero (or negative, or NaN) initial delay never grows: without this,
	 * doubling zero towards max would take one step per failure.
	 */
	if (!(initial > 0))
		return 0;

	double d = initial;
	for (unsigned i = 1; i < failures && i <= DOUBLINGS_MAX && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	d *= 1.0 + jitter * (2.0 * u - 1.0);
	return d > 0 ? d : 0;
}
