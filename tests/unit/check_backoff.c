/*
 * check_backoff.c - reconnect delays: exponential from initial, capped at
 * max, jittered within +/- jitter, never negative, never overflowing.
 */
#include "autoconf.h"

#include "common/backoff.h"
#include "testutil.h"

#include <check.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <time.h>

/*
 * The largest double below 1: as close as u gets to its open end.  With it,
 * 1 + j * (2u - 1) may round to 1 + j itself, so "just under" is checked with
 * <= and a tolerance; u = 0.99 must be strictly below.
 */
#define U_MAX (1.0 - DBL_EPSILON / 2)

/* The table: initial, max, failures and the delay before jitter. */
struct delay_case {
	double initial, max;
	unsigned failures;
	double expect;
};

static const struct delay_case delay_cases[] = {
	{ 1.0, 60.0, 1, 1.0 },		/* the first failure: initial */
	{ 1.0, 60.0, 2, 2.0 },		/* then doubling */
	{ 1.0, 60.0, 3, 4.0 },
	{ 1.0, 60.0, 4, 8.0 },
	{ 1.0, 60.0, 5, 16.0 },
	{ 1.0, 60.0, 6, 32.0 },
	{ 1.0, 60.0, 7, 60.0 },		/* 64 capped */
	{ 1.0, 60.0, 8, 60.0 },
	{ 1.0, 60.0, 100, 60.0 },
	{ 0.25, 10.0, 1, 0.25 },
	{ 0.25, 10.0, 3, 1.0 },
	{ 0.25, 10.0, 6, 8.0 },
	{ 0.25, 10.0, 7, 10.0 },
	{ 0.1, 0.1, 1, 0.1 },		/* initial == max */
	{ 0.1, 0.1, 50, 0.1 },
	{ 3.0, 48.0, 5, 48.0 },		/* reaching max exactly */
	{ 3.0, 48.0, 6, 48.0 },
	{ 1.0, 30.0, 1000000, 30.0 },	/* huge counts: capped, no overflow */
	{ 1.0, 30.0, UINT_MAX, 30.0 },
	{ 1e-3, 1e300, 1100, 1e300 },	/* 1e-3 * 2^1099 passes 1e300, not DBL_MAX */
	{ 1e-3, 1e300, UINT_MAX, 1e300 },
};

/* Without jitter, u does not matter: the exact value. */
START_TEST(test_no_jitter)
{
	const struct delay_case *c = &delay_cases[_i];
	static const double us[] = { 0.0, 0.25, 0.5, 0.75, U_MAX };

	for (size_t k = 0; k < sizeof(us) / sizeof(us[0]); k++) {
		double d = backoff_delay(c->initial, c->max, 0.0, c->failures, us[k]);
		ck_assert_msg(d == c->expect, "case %d (initial %g, max %g, failures %u, u %g): %.17g, "
			      "expected %.17g", _i, c->initial, c->max, c->failures, us[k], d,
			      c->expect);
	}
}
END_TEST

/* With jitter j: u = 0 gives d(1-j), u = 0.5 gives d, u -> 1 just under d(1+j). */
START_TEST(test_jitter_bounds)
{
	const struct delay_case *c = &delay_cases[_i];
	static const double jitters[] = { 0.1, 0.2, 0.5, 0.99 };

	for (size_t k = 0; k < sizeof(jitters) / sizeof(jitters[0]); k++) {
		double j = jitters[k], d = c->expect;
		double lo = backoff_delay(c->initial, c->max, j, c->failures, 0.0);
		double mid = backoff_delay(c->initial, c->max, j, c->failures, 0.5);
		double hi = backoff_delay(c->initial, c->max, j, c->failures, U_MAX);

		ck_assert_msg(isfinite(lo) && isfinite(hi), "case %d: %g %g", _i, lo, hi);
		ck_assert_double_eq_tol(lo, d * (1 - j), d * 1e-12);
		ck_assert_double_eq_tol(mid, d, d * 1e-12);
		ck_assert_msg(hi <= d * (1 + j), "case %d, jitter %g: %.17g above %.17g", _i, j,
			      hi, d * (1 + j));
		ck_assert_double_eq_tol(hi, d * (1 + j), d * 1e-12);
		double near = backoff_delay(c->initial, c->max, j, c->failures, 0.99);
		ck_assert_msg(near < d * (1 + j) && near > d * (1 + j) * 0.98,
			      "case %d, jitter %g: u 0.99 gives %.17g", _i, j, near);

		/* and everything in between stays within, rising with u */
		double prev = lo;
		for (int n = 1; n <= 100; n++) {
			double u = n / 100.0 < 1.0 ? n / 100.0 : U_MAX;
			double x = backoff_delay(c->initial, c->max, j, c->failures, u);
			ck_assert_msg(x >= d * (1 - j) * (1 - 1e-12) && x <= d * (1 + j),
				      "case %d: u %g gives %g outside [%g, %g)", _i, u, x,
				      d * (1 - j), d * (1 + j));
			ck_assert_msg(x >= prev, "case %d: u %g gives %g below %g", _i, u, x, prev);
			prev = x;
		}
	}
}
END_TEST

/* The jitter moves the capped delay, not the uncapped one. */
START_TEST(test_jitter_after_cap)
{
	/* 1 * 2^9 = 512, capped to 10: jittered around 10, not 512 */
	double lo = backoff_delay(1.0, 10.0, 0.2, 10, 0.0);
	double hi = backoff_delay(1.0, 10.0, 0.2, 10, U_MAX);

	ck_assert_double_eq_tol(lo, 8.0, 1e-12);
	ck_assert_double_le(hi, 12.0);
	ck_assert_double_gt(hi, 11.999);
	ck_assert_double_lt(backoff_delay(1.0, 10.0, 0.2, 10, 0.99), 12.0);
}
END_TEST

START_TEST(test_never_negative)
{
	static const double us[] = { 0.0, 1e-9, 0.01, 0.1, 0.3, 0.5, U_MAX };

	/* a jitter beyond 1 would swing below zero: clamped */
	for (size_t k = 0; k < sizeof(us) / sizeof(us[0]); k++) {
		double d = backoff_delay(1.0, 60.0, 1.5, 3, us[k]);
		ck_assert_msg(d >= 0.0, "u %g: %g", us[k], d);
	}
	ck_assert_double_eq(backoff_delay(1.0, 60.0, 1.5, 3, 0.0), 0.0);
	ck_assert_double_eq(backoff_delay(1.0, 60.0, 3.0, 1, 0.0), 0.0);
	/* a jitter of exactly 1 reaches zero at u = 0, and no further */
	ck_assert_double_eq(backoff_delay(4.0, 60.0, 1.0, 1, 0.0), 0.0);
	ck_assert_double_eq_tol(backoff_delay(4.0, 60.0, 1.0, 1, 0.25), 2.0, 1e-12);
	/* u outside its range does not make a negative delay either */
	ck_assert(backoff_delay(1.0, 60.0, 0.5, 1, -3.0) >= 0.0);
	/* nor does a zero initial delay */
	ck_assert_double_eq(backoff_delay(0.0, 60.0, 0.2, 1, 0.0), 0.0);
	ck_assert_double_eq(backoff_delay(0.0, 60.0, 0.2, 30, U_MAX), 0.0);
}
END_TEST

/* Large counts: the delay stays max jittered, finite, within bounds. */
START_TEST(test_large_failures)
{
	static const unsigned counts[] = { 64, 1023, 1024, 1025, 1100, 100000, 1000000,
					   UINT_MAX / 2, UINT_MAX - 1, UINT_MAX };
	const double max = 300.0, j = 0.25;

	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		unsigned f = counts[k];
		double lo = backoff_delay(0.5, max, j, f, 0.0);
		double mid = backoff_delay(0.5, max, j, f, 0.5);
		double hi = backoff_delay(0.5, max, j, f, U_MAX);

		ck_assert_msg(isfinite(lo) && isfinite(mid) && isfinite(hi), "failures %u", f);
		ck_assert_double_eq_tol(lo, max * (1 - j), 1e-9);
		ck_assert_double_eq_tol(mid, max, 1e-9);
		ck_assert_msg(hi <= max * (1 + j) && hi > max * (1 + j) - 1e-9,
			      "failures %u: %.17g", f, hi);
	}

	/* a max no double doubling can reach without overflowing first */
	double d = backoff_delay(1.0, DBL_MAX, 0.0, 1000000, 0.5);
	ck_assert_msg(isfinite(d) && d == DBL_MAX, "%g", d);
	d = backoff_delay(1.0, DBL_MAX, 0.5, 1000000, 0.0);
	ck_assert_msg(isfinite(d) && d > 0, "%g", d);
}
END_TEST

/* Consecutive failures never shorten the base delay. */
START_TEST(test_monotonic)
{
	double prev = 0;

	for (unsigned f = 1; f <= 200; f++) {
		double d = backoff_delay(0.2, 45.0, 0.0, f, 0.5);
		ck_assert_msg(d >= prev, "failures %u: %g after %g", f, d, prev);
		ck_assert_double_le(d, 45.0);
		prev = d;
	}
	ck_assert_double_eq(prev, 45.0);
}
END_TEST

/* Seconds of CLOCK_MONOTONIC, for timing calls. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * A zero or negative initial delay (initial_backoff = 0) costs no more than
 * any other: doubling zero never reaches max, so a loop bounded only by
 * max would take one step per failure, billions for a pool down for long.
 */
START_TEST(test_zero_initial_constant_time)
{
	static const unsigned counts[] = { 1, 2, 1000, 1000000, UINT_MAX - 1, UINT_MAX };
	static const double initials[] = { 0.0, -0.0, -1.0, -1e300 };
	double t0 = now_s();

	for (int round = 0; round < 1000; round++)
		for (size_t i = 0; i < sizeof(initials) / sizeof(initials[0]); i++)
			for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
				double d = backoff_delay(initials[i], 60.0, 0.2, counts[k], 0.7);
				ck_assert_msg(d == 0.0, "initial %g, failures %u: %g", initials[i],
					      counts[k], d);
			}
	double took = now_s() - t0;
	ck_assert_msg(took < 1.0, "24000 delays with initial <= 0 took %.3f s", took);

	/* and a positive initial stays bounded too, however large the count */
	t0 = now_s();
	for (int round = 0; round < 1000; round++)
		ck_assert(backoff_delay(DBL_TRUE_MIN, DBL_MAX, 0.0, UINT_MAX, 0.5) == DBL_MAX);
	took = now_s() - t0;
	ck_assert_msg(took < 1.0, "1000 delays from the smallest initial took %.3f s", took);
}
END_TEST

static Suite *
backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("delay");
	int ncases = (int)(sizeof(delay_cases) / sizeof(delay_cases[0]));

	tcase_add_loop_test(tc, test_no_jitter, 0, ncases);
	tcase_add_loop_test(tc, test_jitter_bounds, 0, ncases);
	tcase_add_test(tc, test_jitter_after_cap);
	tcase_add_test(tc, test_never_negative);
	tcase_add_test(tc, test_large_failures);
	tcase_add_test(tc, test_monotonic);
	tcase_add_test(tc, test_zero_initial_constant_time);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run_suite(backoff_suite());
}
