/*
 * backoff.c - reconnect delays.
 */
#include "autoconf.h"

#include "common/backoff.h"

double
backoff_delay(double initial, double max, double jitter, unsigned failures, double u)
{
	double d = initial;

	for (unsigned i = 1; i < failures && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	d *= 1.0 + jitter * (2.0 * u - 1.0);
	return d > 0 ? d : 0;
}
