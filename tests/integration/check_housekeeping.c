/*
 * check_housekeeping.c - the broker's timers against a real server:
 * idle_timeout shrinks a pool to min_size, max_lifetime recycles backends
 * (a leased one when it comes back), health_check_interval validates idle
 * backends in the background, lease_timeout warns or cuts.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct testbroker broker;

static pgl_pool_stats
stats(void)
{
	pgl_pool_stats st;

	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	return st;
}

START_TEST(test_idle_timeout_shrinks)
{
	testbroker_start(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; "
			 "max_size = 4; idle_timeout = 0.3; }", true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l[4];

	for (int i = 0; i < 4; i++) {
		l[i] = pgl_acquire(c, NULL, -1);
		ck_assert_msg(l[i] != NULL, "%s", pgl_error(c));
	}
	ck_assert_int_eq(stats().size, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pgl_release(l[i]), 0);

	int64_t deadline = clock_mono_ms() + 5000;
	while (stats().size > 1) {
		ck_assert_msg(clock_mono_ms() < deadline, "still %d backends", stats().size);
		usleep(20000);
	}
	usleep(600000);		/* and it stays at min_size */
	ck_assert_int_eq(stats().size, 1);
	/* a closed backend's process ends a little later */
	WAIT_UNTIL(testutil_pool_backends() == 1, 10000, "the server has %ld pool backends",
		   testutil_pool_backends());
	ck_assert(testbroker_log_has(&broker, "idle_timeout"));
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* Frequent background checks do not keep a pool from shrinking; min_size holds. */
START_TEST(test_idle_timeout_with_health_checks)
{
	testbroker_start(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 2; "
			 "max_size = 4; idle_timeout = 0.6; health_check_interval = 0.15; }", true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l[4];

	for (int i = 0; i < 4; i++) {
		l[i] = pgl_acquire(c, NULL, -1);
		ck_assert_msg(l[i] != NULL, "%s", pgl_error(c));
	}
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pgl_release(l[i]), 0);
	uint64_t connects = stats().connects;
	int64_t deadline = clock_mono_ms() + 5000;
	while (stats().size > 2) {
		ck_assert_msg(clock_mono_ms() < deadline, "still %d backends", stats().size);
		usleep(20000);
	}
	usleep(800000);
	ck_assert_int_eq(stats().size, 2);
	/* nothing below min_size was closed and opened again */
	ck_assert_uint_eq(stats().connects, connects);
	ck_assert_uint_eq(stats().health_check_failures, 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_max_lifetime_recycles)
{
	testbroker_start(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 2; "
			 "max_size = 2; max_lifetime = 0.5; jitter = 0.0; }", true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *held = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(held);
	int held_pid = pgl_backend_pid(held);
	uint64_t connects = stats().connects;

	/* the idle one is replaced meanwhile; the leased one is replaced on release */
	WAIT_UNTIL(stats().connects >= connects + 1, 10000, "the idle backend was not recycled");
	ck_assert_int_eq(pgl_release(held), 0);
	int64_t deadline = clock_mono_ms() + 5000;
	for (;;) {
		pgl_lease *l = pgl_acquire(c, NULL, 0);
		if (l != NULL) {
			int pid = pgl_backend_pid(l);
			ck_assert_int_eq(pgl_release(l), 0);
			if (pid != held_pid && stats().connects >= connects + 2)
				break;
		}
		ck_assert_msg(clock_mono_ms() < deadline, "the old backend was not recycled");
		usleep(20000);
	}
	char sql[96];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", held_pid);
	ck_assert_int_eq(testutil_sql_long(sql), 0);
	ck_assert_int_le(testutil_pool_backends(), 2);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_health_check_interval)
{
	char out[64];

	ck_assert(testutil_sql("CREATE TABLE bg_checks (at timestamptz, pid int)", out, sizeof(out)));
	testbroker_start(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 2; "
			 "max_size = 2; health_check_interval = 0.2; validate_after = 60; "
			 "health_query = \"INSERT INTO bg_checks VALUES (clock_timestamp(), "
			 "pg_backend_pid())\"; }", true);
	uint64_t connects = stats().connects;
	/* two idle backends, each checked again and again, with no client at all */
	WAIT_UNTIL(testutil_sql_long("SELECT count(*) FROM (SELECT pid FROM bg_checks GROUP BY pid "
				     "HAVING count(*) >= 3) t") == 2, 15000,
		   "not both backends were checked 3 times: %ld checks",
		   testutil_sql_long("SELECT count(*) FROM bg_checks"));
	/* ...but never sooner than health_check_interval after the last check */
	ck_assert(testutil_sql("SELECT coalesce(min(gap), 1) FROM (SELECT extract(epoch FROM at - "
			       "lag(at) OVER (PARTITION BY pid ORDER BY at)) AS gap FROM bg_checks) t",
			       out, sizeof(out)));
	ck_assert_msg(atof(out) >= 0.19, "a backend was checked again after %s s (interval 0.2 s)",
		      out);
	ck_assert_int_eq(stats().size, 2);
	ck_assert_uint_eq(stats().connects, connects);
	ck_assert_uint_eq(stats().health_check_failures, 0);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_lease_timeout_warn)
{
	testbroker_start(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; "
			 "max_size = 1; lease_timeout = 0.3; }", true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	WAIT_UNTIL(stats().lease_timeouts >= 1, 10000, "no lease timeout counted");
	/* said once, not on every tick (one per 0.075 s here) */
	usleep(500000);
	ck_assert_uint_eq(stats().lease_timeouts, 1);

	char out[32], st;
	ck_assert(testutil_raw_query(pgl_fd(l), "SELECT 'still mine'", out, sizeof(out), &st));
	ck_assert_str_eq(out, "still mine");
	char holder[64];
	snprintf(holder, sizeof(holder), "holder_pid=%d", (int)getpid());
	ck_assert(testbroker_log_has(&broker, "lease held past lease_timeout"));
	ck_assert(testbroker_log_has(&broker, holder));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_lease_timeout_terminate)
{
	char out[128], st;

	ck_assert(testutil_sql("CREATE TABLE cut (x int)", out, sizeof(out)));
	testbroker_start(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; "
			 "max_size = 1; lease_timeout = 0.3; lease_timeout_action = \"terminate\"; }",
			 true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	int pid = pgl_backend_pid(l);
	ck_assert(testutil_raw_query(pgl_fd(l), "BEGIN; INSERT INTO cut VALUES (1)", out,
				     sizeof(out), &st));
	char sql[96];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
	WAIT_UNTIL(stats().lease_timeouts == 1 && testutil_sql_long(sql) == 0, 10000,
		   "the overdue lease was not cut: %llu lease timeouts, backend %d %s",
		   (unsigned long long)stats().lease_timeouts, pid,
		   testutil_sql_long(sql) == 0 ? "gone" : "alive");

	/* the holder's next use fails cleanly; its release does no harm */
	ck_assert(!testutil_raw_query(pgl_fd(l), "SELECT 1", out, sizeof(out), &st));
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert_uint_eq(stats().lease_timeouts, 1);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM cut"), 0);

	/* and the pool serves again, with a new backend */
	l = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_ne(pgl_backend_pid(l), pid);
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
housekeeping_suite(void)
{
	Suite *s = suite_create("housekeeping");
	TCase *tc = tcase_create("timers");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_idle_timeout_shrinks);
	tcase_add_test(tc, test_idle_timeout_with_health_checks);
	tcase_add_test(tc, test_max_lifetime_recycles);
	tcase_add_test(tc, test_health_check_interval);
	tcase_add_test(tc, test_lease_timeout_warn);
	tcase_add_test(tc, test_lease_timeout_terminate);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(housekeeping_suite());
}
