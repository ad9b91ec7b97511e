/*
 * check_preload.c - the preload shim's contract with a libpq program that
 * knows nothing of pglease (pq-probe, run under pglease-run): PQreset under
 * the same PGconn, the asynchronous connect, a cancel from a signal
 * handler, a forked child's PQfinish, startup options and what PQhost and
 * friends report, a pool that refuses, an exit inside a transaction; and
 * programs that load libpq at run time (psycopg 3, ctypes, dlopen), which
 * only the audit library reaches.
 * (The real clients, psql, pgbench, Apache with PHP, Perl and Python, have
 * suites of their own in tests/clients.)
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
#include <sys/wait.h>
#include <unistd.h>

#define POOLS "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 2; }"

static struct testbroker broker;

/* Runs pq-probe MODE under pglease-run; its output in out; its exit status. */
static int
probe(const char *mode, char *out, size_t len)
{
	char *argv[] = { (char *)TOP_BUILDDIR "/pglease-run", (char *)TOP_BUILDDIR "/tests/preload/pq-probe",
			 (char *)mode, NULL };

	setenv("PGLEASE_SOCKET", broker.socket, 1);
	setenv("PGLEASE_PRELOAD_LIB", TOP_BUILDDIR "/src/preload/.libs/libpglease_preload.so", 1);
	return testutil_run(argv, out, len);
}

/* Runs argv (a program loading libpq at run time) under pglease-run. */
static int
run_under(char *const *argv, char *out, size_t len)
{
	char *full[8];
	int n = 0;

	full[n++] = (char *)TOP_BUILDDIR "/pglease-run";
	for (int i = 0; argv[i] != NULL && n < 7; i++)
		full[n++] = argv[i];
	full[n] = NULL;
	setenv("PGLEASE_SOCKET", broker.socket, 1);
	setenv("PGLEASE_PRELOAD_LIB", TOP_BUILDDIR "/src/preload/.libs/libpglease_preload.so", 1);
	setenv("PGLEASE_AUDIT_LIB", TOP_BUILDDIR "/src/preload/.libs/libpglease_audit.so", 1);
	return testutil_run(full, out, len);
}

static pgl_pool_stats
stats(void)
{
	pgl_pool_stats st;

	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	return st;
}

static void
start(void)
{
	unsetenv("PGLEASE_POOL");
	unsetenv("PGLEASE_STRICT");
	testbroker_start(&broker, NULL, POOLS, true);
}

START_TEST(test_reset_leases_again)
{
	char out[4096];

	start();
	uint64_t before = stats().leases;
	ck_assert_msg(probe("reset", out, sizeof(out)) == 0, "%s", out);
	/* a fresh session: the SET before PQreset is gone */
	ck_assert_msg(strstr(out, "after reset work_mem=4MB") != NULL, "%s", out);
	ck_assert_uint_eq(stats().leases, before + 2);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A process keeps its view of the broker's segment between connects: after
 * the broker is restarted (a new segment under the same name) with its pool
 * renamed, the next connect must find the pool in the new segment, not
 * "main" in the stale mapping (which the new broker would refuse).
 */
START_TEST(test_broker_restarted_between_connects)
{
	char out[4096], go[300];

	start();
	snprintf(go, sizeof(go), "%s/probe-go", broker.dir);
	unlink(go);
	setenv("PROBE_GO", go, 1);
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		close(fds[0]);
		int rc = probe("again", out, sizeof(out));
		ssize_t w = write(fds[1], out, strlen(out));
		(void)w;
		_exit(rc == 0 ? 0 : 1);
	}
	close(fds[1]);
	/* the first connect leased from the first broker */
	for (int i = 0; i < 300 && stats().leases == 0; i++)
		usleep(20000);
	ck_assert_uint_ge(stats().leases, 1);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	testbroker_write_config(&broker, NULL, "{ name = \"renamed\"; conninfo = \"$CONNINFO\"; "
				"min_size = 1; max_size = 2; }");
	testbroker_restart(&broker, true);
	ck_assert_uint_eq(stats().leases, 0);
	FILE *f = fopen(go, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ssize_t n = read(fds[0], out, sizeof(out) - 1);
	close(fds[0]);
	out[n > 0 ? n : 0] = '\0';
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
	ck_assert_msg(strstr(out, "connect 2: 42") != NULL, "%s", out);
	/* leased from the new broker, not connected directly past it */
	ck_assert_msg(stats().leases == 1, "the second connect was not leased: %s", out);
	unsetenv("PROBE_GO");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_async_connect)
{
	char out[4096];

	start();
	uint64_t before = stats().leases;
	ck_assert_msg(probe("async", out, sizeof(out)) == 0, "%s", out);
	ck_assert_msg(strstr(out, "async 42") != NULL, "%s", out);
	ck_assert_uint_eq(stats().leases, before + 1);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_cancel_from_signal_handler)
{
	char out[4096];

	start();
	int64_t t0 = clock_mono_ms();
	uint64_t leases = stats().leases;
	ck_assert_msg(probe("cancel", out, sizeof(out)) == 0, "%s", out);
	ck_assert_msg(strstr(out, "sleep ended with 57014") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "still usable") != NULL, "%s", out);
	/* cancelled, not slept through */
	ck_assert_int_lt(clock_mono_ms() - t0, 20000);
	ck_assert_msg(stats().leases > leases, "the connection was not leased");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_forked_child_finish_harmless)
{
	char out[4096];

	start();
	uint64_t leases = stats().leases;
	ck_assert_msg(probe("fork", out, sizeof(out)) == 0, "%s", out);
	ck_assert_msg(strstr(out, "parent still connected") != NULL, "%s", out);
	pgl_pool_stats st = stats();
	ck_assert_uint_eq(st.orphaned_leases, 0);
	ck_assert_uint_eq(st.reset_failures, 0);
	ck_assert_msg(stats().leases > leases, "the connection was not leased");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_startup_options_and_identity)
{
	char out[4096], expect[512];

	start();
	uint64_t leases = stats().leases;
	ck_assert_msg(probe("params", out, sizeof(out)) == 0, "%s", out);
	ck_assert_msg(strstr(out, "work_mem=5MB") != NULL, "%s", out);
	/* the pool's server, never the shell's private socket */
	snprintf(expect, sizeof(expect), "host=%s port=%s db=%s user=%s needs_password=0",
		 getenv("PGHOST"), getenv("PGPORT"), getenv("PGDATABASE"), getenv("PGUSER"));
	ck_assert_msg(strstr(out, expect) != NULL, "want \"%s\" in:\n%s", expect, out);
	ck_assert_msg(stats().leases > leases, "the connection was not leased");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_refusal_is_connection_bad)
{
	char out[4096];

	start();
	setenv("PGLEASE_POOL", "nosuch", 1);
	int rc = probe("refused", out, sizeof(out));
	unsetenv("PGLEASE_POOL");
	ck_assert_msg(rc == 0, "%s", out);
	ck_assert_msg(strstr(out, "status bad") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "pglease: pool \"nosuch\"") != NULL, "%s", out);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_exit_in_transaction_rolls_back)
{
	char out[4096];

	testutil_sql("DROP TABLE IF EXISTS probe_exit", out, sizeof(out));
	ck_assert_msg(testutil_sql("CREATE TABLE probe_exit (x int)", out, sizeof(out)), "%s", out);
	start();
	uint64_t leases = stats().leases;
	ck_assert_msg(probe("exit", out, sizeof(out)) == 0, "%s", out);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM probe_exit"), 0);
	/* released at exit, not orphaned */
	WAIT_UNTIL(stats().leased == 0, 5000, "the lease came back");
	ck_assert_uint_eq(stats().orphaned_leases, 0);
	ck_assert_msg(stats().leases > leases, "the connection was not leased");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* --- programs that load libpq at run time: the audit library ----------- */

/* Issue 15: psycopg 3 (ctypes), sync and async, a server-side cursor, a COPY. */
START_TEST(test_psycopg3)
{
	char out[8192];
	char *argv[] = { (char *)"/usr/bin/python3", (char *)TOP_SRCDIR "/tests/preload/psycopg3-probe.py",
			 NULL };

	start();
	uint64_t leases = stats().leases;
	ck_assert_msg(run_under(argv, out, sizeof(out)) == 0, "%s", out);
	ck_assert_msg(strstr(out, "impl python") != NULL, "psycopg 3 is not the ctypes one:\n%s", out);
	ck_assert_msg(strstr(out, "sync psycopg3-probe") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "server-side cursor 500500") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "copy 4950") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "async 42") != NULL, "%s", out);
	ck_assert_uint_eq(stats().leases, leases + 2);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_ctypes)
{
	char out[4096];
	char *argv[] = { (char *)"/usr/bin/python3", (char *)TOP_SRCDIR "/tests/preload/ctypes-probe.py",
			 NULL };

	start();
	uint64_t leases = stats().leases;
	ck_assert_msg(run_under(argv, out, sizeof(out)) == 0, "%s", out);
	ck_assert_msg(strstr(out, "ctypes 42") != NULL, "%s", out);
	ck_assert_uint_eq(stats().leases, leases + 1);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_dlopen_after_start)
{
	char out[4096];
	char *argv[] = { (char *)TOP_BUILDDIR "/tests/preload/dl-probe", NULL };

	start();
	uint64_t leases = stats().leases;
	ck_assert_msg(run_under(argv, out, sizeof(out)) == 0, "%s", out);
	ck_assert_msg(strstr(out, "dlopened ") != NULL, "%s", out);
	ck_assert_uint_eq(stats().leases, leases + 1);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
preload_suite(void)
{
	Suite *s = suite_create("preload");
	TCase *tc = tcase_create("preload");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reset_leases_again);
	tcase_add_test(tc, test_async_connect);
	tcase_add_test(tc, test_broker_restarted_between_connects);
	tcase_add_test(tc, test_cancel_from_signal_handler);
	tcase_add_test(tc, test_forked_child_finish_harmless);
	tcase_add_test(tc, test_startup_options_and_identity);
	tcase_add_test(tc, test_refusal_is_connection_bad);
	tcase_add_test(tc, test_exit_in_transaction_rolls_back);
	tcase_add_test(tc, test_psycopg3);
	tcase_add_test(tc, test_ctypes);
	tcase_add_test(tc, test_dlopen_after_start);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(preload_suite());
}
