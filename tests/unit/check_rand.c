/*
 * check_rand.c - the xorshift64* generator: the same sequence as the
 * broker's and the shell's generators had, a seed never 0, and rng_unit
 * within [0, 1).
 */
#include "autoconf.h"

#include "common/rand.h"
#include "testutil.h"

#include <check.h>

/* xorshift64* from state 1, as computed independently of this code. */
START_TEST(test_sequence)
{
	struct rng r = { .s = 1 };

	ck_assert_uint_eq(rng_next(&r), UINT64_C(0x47e4ce4b896cdd1d));
	ck_assert_uint_eq(rng_next(&r), UINT64_C(0xabcfa6a8e079651d));
	ck_assert_uint_eq(rng_next(&r), UINT64_C(0xb9d10d8feb731f57));
}
END_TEST

START_TEST(test_seed)
{
	struct rng a, b;

	ck_assert_int_eq(rng_seed(&a), 0);	/* the kernel has entropy here */
	ck_assert_int_eq(rng_seed(&b), 0);
	ck_assert_uint_ne(a.s, 0);
	ck_assert_uint_eq(a.s & 1, 1);
	ck_assert_uint_ne(a.s, b.s);		/* 2^-63 of a false alarm */
}
END_TEST

START_TEST(test_unit_range)
{
	struct rng r;
	double lo = 1.0, hi = 0.0;

	(void)rng_seed(&r);
	for (int i = 0; i < 100000; i++) {
		double u = rng_unit(&r);
		ck_assert(u >= 0.0 && u < 1.0);
		lo = u < lo ? u : lo;
		hi = u > hi ? u : hi;
	}
	ck_assert(lo < 0.001 && hi > 0.999);

	/* The top 53 bits of the output: from state 1, 0x47e4ce4b896cdd1d >> 11. */
	struct rng one = { .s = 1 };
	ck_assert(rng_unit(&one) == (double)(UINT64_C(0x47e4ce4b896cdd1d) >> 11) / 9007199254740992.0);
}
END_TEST

static Suite *
rand_suite(void)
{
	Suite *s = suite_create("rand");
	TCase *tc = tcase_create("rng");

	tcase_add_test(tc, test_sequence);
	tcase_add_test(tc, test_seed);
	tcase_add_test(tc, test_unit_range);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run_suite(rand_suite());
}
