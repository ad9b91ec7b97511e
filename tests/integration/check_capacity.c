/*
 * check_capacity.c - the pool's room is used when a backend cannot come
 * back promptly, and never more than max_size backends exist: a release
 * with a query still running, a query that ignores the cancel, a burst of
 * acquires while idle backends are being health-checked.  And what comes
 * back is whole: a reset_query cannot weaken the reset.  The reset cases
 * run with either reset_check (test case "reset_query": the SELECT).
 */
#include "autoconf.h"

#include "common/clock.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static struct testbroker broker;

static pgl_pool_stats
stats(void)
{
	pgl_pool_stats st;

	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	return st;
}

/* Waits up to ms for sql's integer result to equal want. */
static void
wait_sql(const char *sql, long want, int ms)
{
	int64_t deadline = clock_mono_ms() + ms;
	long got;

	while ((got = testutil_sql_long(sql)) != want) {
		ck_assert_msg(clock_mono_ms() < deadline, "%s: %ld, expected %ld", sql, got, want);
		usleep(10000);
	}
}

#define SLEEPERS "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND " \
		 "query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()"

/*
 * Issue 9 item 1: a holder leaves SELECT pg_sleep(20) running on its raw
 * fd and releases.  The next acquire is served from the pool's room at
 * at once (not after the reset's 10 s deadline); the running query is
 * cancelled and the backend, reset, comes back.
 */
START_TEST(test_release_with_query_running)
{
	testbroker_start(&broker, NULL, testutil_pool_checked(
			 "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 4; "
			 "connect_timeout = 10.0; validate_after = 60.0; }"), true);
	pgl_client *a = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(a, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(a));
	int busy = pgl_backend_pid(l);
	ck_assert(testutil_raw_send(pgl_fd(l), "SELECT pg_sleep(20)"));
	wait_sql(SLEEPERS, 1, 5000);
	ck_assert_int_eq(pgl_release(l), 0);

	pgl_client *b = pgl_open(broker.socket);
	int64_t t0 = clock_mono_ms();
	pgl_lease *m = pgl_acquire(b, NULL, 3000);
	ck_assert_msg(m != NULL, "not served while the pool has room: %s", pgl_error(b));
	/* Far below the reset's 10 s deadline: by the cancelled backend or a new one. */
	ck_assert_int_lt(clock_mono_ms() - t0, 3000);
	ck_assert_int_eq(pgl_release(m), 0);

	/* The sleeper was cancelled, and its backend reset and kept. */
	wait_sql(SLEEPERS, 0, 5000);
	int64_t deadline = clock_mono_ms() + 5000;
	pgl_pool_stats st;
	while ((st = stats()).resets < 2 || st.leased > 0 || st.idle != st.size)
		ck_assert_msg(clock_mono_ms() < deadline, "resets %llu idle %d size %d",
			      (unsigned long long)st.resets, st.idle, st.size), usleep(10000);
	ck_assert_uint_eq(st.reset_failures, 0);
	ck_assert_int_le(st.size, 4);
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", busy);
	ck_assert_int_eq(testutil_sql_long(sql), 1);
	ck_assert(testbroker_log_has(&broker, "reset stalled"));
	pgl_close(a);
	pgl_close(b);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * The same with a query that ignores the cancel: the waiter is still served
 * from the room (not after the reset's 5 s deadline); the backend is
 * replaced once that deadline passes, and the pool never holds more than
 * max_size backends.
 */
START_TEST(test_release_with_uncancelable_query)
{
	testbroker_start(&broker, NULL, testutil_pool_checked(
			 "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 2; "
			 "connect_timeout = 5.0; validate_after = 60.0; "
			 "connection_check_interval = 0.2; }"), true);
	pgl_client *a = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(a, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(a));
	int busy = pgl_backend_pid(l);
	ck_assert(testutil_raw_send(pgl_fd(l),
				    "DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(0.05); "
				    "EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$"));
	ck_assert_int_eq(pgl_release(l), 0);

	pgl_client *b = pgl_open(broker.socket);
	pgl_lease *m = pgl_acquire(b, NULL, 3000);
	ck_assert_msg(m != NULL, "served from the room below max_size: %s", pgl_error(b));
	ck_assert_int_ne(pgl_backend_pid(m), busy);
	ck_assert_int_eq(pgl_release(m), 0);

	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", busy);
	wait_sql(sql, 0, 15000);
	int64_t deadline = clock_mono_ms() + 10000;
	pgl_pool_stats st;
	while ((st = stats()).reset_failures < 1 || st.idle != st.size)
		ck_assert_msg(clock_mono_ms() < deadline, "reset_failures %llu idle %d size %d",
			      (unsigned long long)st.reset_failures, st.idle, st.size),
		usleep(10000);
	ck_assert_uint_eq(st.reset_failures, 1);
	ck_assert_int_le(testutil_pool_backends(), 2);
	pgl_close(a);
	pgl_close(b);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * Backends in a background health check come back in a moment: a burst of
 * acquires that finds them all checking waits for them instead of opening
 * backends it does not need.
 */
START_TEST(test_burst_during_health_checks)
{
	enum { N = 2 };

	testbroker_start(&broker, NULL,
			 "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 2; max_size = 8; "
			 "health_query = \"SELECT pg_sleep(0.3)\"; health_check_interval = 0.05; "
			 "validate_after = 60.0; acquire_timeout = 5.0; }", true);
	pgl_pool_stats st;
	int64_t deadline = clock_mono_ms() + 10000;
	/* Both backends in their check, none idle. */
	while ((st = stats()).idle != 0 || st.size != 2 || st.leased != 0)
		ck_assert_msg(clock_mono_ms() < deadline, "never both checking: idle %d size %d",
			      st.idle, st.size), usleep(2000);
	uint64_t connects = st.connects;

	pid_t w[N];
	for (int i = 0; i < N; i++) {
		w[i] = fork();
		ck_assert_int_ge(w[i], 0);
		if (w[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			pgl_client *c = pgl_open(broker.socket);
			pgl_lease *l = pgl_acquire(c, NULL, -1);
			REQUIRE(l != NULL, "acquire: %s", pgl_error(c));
			usleep(100000);	/* both held at once */
			REQUIRE(pgl_release(l) == 0, "release: %s", pgl_error(c));
			pgl_close(c);
			_exit(0);
		}
	}
	for (int i = 0; i < N; i++)
		testutil_reap(w[i], "worker");
	st = stats();
	ck_assert_msg(st.connects == connects, "the burst opened %llu backends it did not need",
		      (unsigned long long)(st.connects - connects));
	ck_assert_int_eq(st.size, 2);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * Issue 9 item 7: reset_query = "RESET ALL" runs in addition to DISCARD
 * ALL, never instead: a holder's role, temp table, prepared statement,
 * advisory lock and LISTEN do not pass to the next holder.
 */
START_TEST(test_reset_query_cannot_weaken)
{
	char out[256], st;

	testutil_sql("DROP ROLE IF EXISTS pgl_tenant", out, sizeof(out));
	ck_assert_msg(testutil_sql("CREATE ROLE pgl_tenant", out, sizeof(out)), "%s", out);
	testbroker_start(&broker, NULL, testutil_pool_checked(
			 "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 1; "
			 "reset_query = \"RESET ALL\"; }"), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	int pid = pgl_backend_pid(l);
	ck_assert_msg(testutil_raw_query(pgl_fd(l),
					 "CREATE TEMP TABLE t (x int); PREPARE p AS SELECT 1; "
					 "SELECT pg_advisory_lock(42); LISTEN chan; SET ROLE pgl_tenant",
					 out, sizeof(out), &st), "%s", out);
	ck_assert_int_eq(st, 'I');
	ck_assert_int_eq(pgl_release(l), 0);

	l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_backend_pid(l), pid);
	ck_assert(testutil_raw_query(pgl_fd(l),
				     "SELECT concat_ws(' ', current_user = session_user, "
				     "to_regclass('pg_temp.t') IS NULL, "
				     "(SELECT count(*) FROM pg_prepared_statements), "
				     "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
				     "AND pid = pg_backend_pid()), "
				     "(SELECT count(*) FROM pg_listening_channels()))",
				     out, sizeof(out), &st));
	ck_assert_str_eq(out, "t t 0 0 0");
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	testutil_sql("DROP ROLE pgl_tenant", out, sizeof(out));
}
END_TEST

/*
 * Issue 9 item 3: a backend that does not end (stopped, so it can take
 * neither the cancel nor pg_terminate_backend) keeps its slot: the pool is
 * not refilled while it may still run.  Every backend of this pool of one
 * is stuck, so the one terminate connection goes above max_size (the case
 * pgleased(8) documents).  Once the backend ends, the slot is refilled.
 */
START_TEST(test_stuck_backend_keeps_its_slot)
{
	int p[2];

	ck_assert_msg(geteuid() == 0, "this test runs as root (as CI does), to stop a backend");
	testbroker_start(&broker, NULL,
			 "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 1; "
			 "connect_timeout = 1.0; connection_check_interval = 0; "
			 "initial_backoff = 0.1; }", true);
	ck_assert_int_eq(pipe(p), 0);
	pid_t w = fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pgl_client *c = pgl_open(broker.socket);
		pgl_lease *l = pgl_acquire(c, NULL, -1);
		REQUIRE(l != NULL, "acquire: %s", pgl_error(c));
		int pid = pgl_backend_pid(l);
		REQUIRE(write(p[1], &pid, sizeof(pid)) == sizeof(pid), "pipe");
		for (;;)
			pause();
	}
	close(p[1]);
	int backend;
	ck_assert_int_eq(read(p[0], &backend, sizeof(backend)), sizeof(backend));
	close(p[0]);
	ck_assert_int_eq(kill(backend, SIGSTOP), 0);
	ck_assert_int_eq(kill(w, SIGKILL), 0);		/* orphaned: cancel, shut down */
	int status;
	ck_assert_int_eq(waitpid(w, &status, 0), w);

	/* It is asked to end, more than once, and nothing replaces it meanwhile. */
	int64_t deadline = clock_mono_ms() + 15000;
	while (!testbroker_log_has(&broker, "still has not ended after")) {
		long n = testutil_pool_backends();
		ck_assert_msg(n <= 1, "%ld backends for a pool of 1: the slot was refilled", n);
		ck_assert_msg(clock_mono_ms() < deadline, "no second attempt to end it");
		usleep(50000);
	}
	ck_assert(testbroker_log_has(&broker, "every backend of pool=main is stuck"));
	ck_assert_int_le(testutil_pool_backends(), 1);
	/* the stuck one, and at times the terminate helper's own connection */
	pgl_pool_stats st = stats();
	ck_assert_int_ge(st.size, 1);
	ck_assert_int_le(st.size, 2);

	ck_assert_int_eq(kill(backend, SIGCONT), 0);	/* the pending terminate lands */
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", backend);
	wait_sql(sql, 0, 10000);
	ck_assert(testbroker_wait_idle(&broker, 0, 1, 10000));
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_ne(pgl_backend_pid(l), backend);
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * Issue 9 item 2 (the broker's part): an acquire that may not wait takes
 * only an idle backend that needs no health check; with validate_after = 0
 * every one needs it, so the answer is PGL_ETIMEOUT at once, never a check
 * whose answer comes after the caller stopped waiting.
 */
START_TEST(test_no_wait_never_validates)
{
	testbroker_start(&broker, NULL,
			 "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 1; "
			 "validate_after = 0; health_query = \"SELECT pg_sleep(3)\"; }", true);
	pgl_client *c = pgl_open(broker.socket);
	int64_t t0 = clock_mono_ms();
	ck_assert_ptr_null(pgl_acquire(c, NULL, 0));
	ck_assert_int_eq(pgl_errcode(c), PGL_ETIMEOUT);
	ck_assert_msg(strstr(pgl_error(c), "validate_after") != NULL, "%s", pgl_error(c));
	/* not after the 3 s health query */
	ck_assert_int_lt(clock_mono_ms() - t0, 2500);
	ck_assert_int_eq(stats().leased, 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
capacity_suite(void)
{
	Suite *s = suite_create("capacity");
	TCase *tc = tcase_create("capacity");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_release_with_query_running);
	tcase_add_test(tc, test_release_with_uncancelable_query);
	tcase_add_test(tc, test_burst_during_health_checks);
	tcase_add_test(tc, test_reset_query_cannot_weaken);
	tcase_add_test(tc, test_stuck_backend_keeps_its_slot);
	tcase_add_test(tc, test_no_wait_never_validates);
	suite_add_tcase(s, tc);

	/* The reset's cases again, the nonce sent as SELECT '<nonce>'. */
	tc = tcase_create("reset_query");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, testutil_setup_query_check, NULL);
	tcase_add_test(tc, test_release_with_query_running);
	tcase_add_test(tc, test_release_with_uncancelable_query);
	tcase_add_test(tc, test_reset_query_cannot_weaken);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(capacity_suite());
}
