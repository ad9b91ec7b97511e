/*
 * check_pgbouncer.c - a pool whose conninfo points at PgBouncer in session
 * mode in front of the server, as DESIGN.md's "Beyond one machine" puts
 * it: the reset, with either reset_check, goes through PgBouncer and keeps
 * the backend; a holder's pipelined replies and a query left running are
 * still caught.  PgBouncer must be installed (apt-get install pgbouncer;
 * scripts/install-deps.sh --tests does): without it the suite fails.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOUNCER_PORT 6432	/* only names the socket: it listens in its own directory */

static struct testbroker broker;
static pid_t bouncer = -1;
static char bdir[300];

/*
 * Starts PgBouncer in session mode in front of the harness's server, trust
 * authentication, listening only on a UNIX socket in a directory of its
 * own.  It refuses to run as root: as root, it runs as the server's user
 * (PGLEASE_TEST_RUNAS), who can reach the server's socket.
 */
static void
bouncer_start(void)
{
	const char *runas = getenv("PGLEASE_TEST_RUNAS");
	const char *prog = testutil_program("pgbouncer", "/usr/sbin:/usr/local/sbin:/sbin",
					    "pgbouncer");
	struct passwd *pw = NULL;
	char ini[400], users[400], log[400], sock[400], text[2048];

	if (runas != NULL && runas[0] != '\0') {
		pw = getpwnam(runas);
		ck_assert_msg(pw != NULL, "no user %s to run pgbouncer as", runas);
		ck_assert_int_eq(chmod(testutil_tmpdir(), 0711), 0);
	}
	snprintf(bdir, sizeof(bdir), "%s/bouncer.%d", testutil_tmpdir(), (int)getpid());
	ck_assert_int_eq(mkdir(bdir, 0755), 0);
	if (pw != NULL)
		ck_assert_int_eq(chown(bdir, pw->pw_uid, pw->pw_gid), 0);
	snprintf(ini, sizeof(ini), "%s/pgbouncer.ini", bdir);
	snprintf(users, sizeof(users), "%s/userlist.txt", bdir);
	snprintf(log, sizeof(log), "%s/pgbouncer.log", bdir);
	snprintf(sock, sizeof(sock), "%s/.s.PGSQL.%d", bdir, BOUNCER_PORT);

	snprintf(text, sizeof(text), "\"%s\" \"\"\n", getenv("PGUSER"));
	FILE *f = fopen(users, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(text, sizeof(text),
		 "[databases]\n"
		 "* = host=%s port=%s\n"
		 "[pgbouncer]\n"
		 "listen_addr =\n"
		 "listen_port = %d\n"
		 "unix_socket_dir = %s\n"
		 "auth_type = trust\n"
		 "auth_file = %s\n"
		 "pool_mode = session\n"
		 "server_reset_query = DISCARD ALL\n"
		 "pidfile = %s/pgbouncer.pid\n", getenv("PGHOST"), getenv("PGPORT"), BOUNCER_PORT,
		 bdir, users, bdir);
	f = fopen(ini, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);

	char *argv[] = { (char *)prog, ini, NULL };
	bouncer = testutil_spawn(log, pw != NULL ? pw->pw_uid : (uid_t)-1,
				 pw != NULL ? pw->pw_gid : (gid_t)-1, SIGTERM, argv);
	int64_t deadline = clock_mono_ms() + 10000;
	while (!testutil_socket_answers(sock, SOCK_STREAM)) {
		int status = 0;
		ck_assert_msg(waitpid(bouncer, &status, WNOHANG) == 0, "pgbouncer exited at start "
			      "(status 0x%x); see %s", status, log);
		ck_assert_msg(clock_mono_ms() < deadline, "pgbouncer did not listen in time; see %s",
			      log);
		usleep(10000);
	}
}

static void
bouncer_stop(void)
{
	if (bouncer > 0) {
		kill(bouncer, SIGTERM);
		waitpid(bouncer, NULL, 0);
		bouncer = -1;
	}
}

/*
 * pgleased with a pool of one backend through PgBouncer.  PgBouncer 1.18
 * refuses the "options" startup parameter that statement_timeout and
 * connection_check_interval become, so both are off (pglease.conf(5)).
 */
static void
broker_start(const char *reset_check)
{
	char pool[512];

	snprintf(pool, sizeof(pool), "{ name = \"main\"; conninfo = \"host=%s port=%d dbname=%s "
		 "user=%s\"; min_size = 1; max_size = 1; acquire_timeout = 5.0; "
		 "statement_timeout = 0; connection_check_interval = 0; validate_after = 60.0; "
		 "reset_check = \"%s\"; }", bdir, BOUNCER_PORT, getenv("PGDATABASE"),
		 getenv("PGUSER"), reset_check);
	testbroker_start(&broker, NULL, pool, true);
}

static const char *const checks[] = { "function", "query" };

/*
 * Waits until the pool's passed resets number n and its backend is idle
 * again (n = 0: the pool as it started); returns its statistics.
 */
static pgl_pool_stats
wait_reset(uint64_t n)
{
	pgl_pool_stats st;

	WAIT_UNTIL(pgl_stats(broker.shm, &st, 1) == 1 && st.resets == n && st.idle == 1, 10000,
		   "reset %llu did not end: resets %llu idle %d", (unsigned long long)n,
		   (unsigned long long)st.resets, st.idle);
	return st;
}

/* Runs sql on the lease; it must succeed and leave the session idle.  Its first value. */
static const char *
raw_value(pgl_lease *l, const char *sql)
{
	static char out[256];
	char st;

	ck_assert_msg(testutil_raw_query(pgl_fd(l), sql, out, sizeof(out), &st), "%s: %s", sql,
		      out);
	ck_assert_int_eq(st, 'I');
	return out;
}

/*
 * A clean release: the reset goes through PgBouncer and passes; the same
 * server backend comes back, with the holder's setting undone.  Which
 * nonce went shows in the server's last query text: a FunctionCall reports
 * none, so it is the reset's DISCARD ALL.
 */
START_TEST(test_reset_through_pgbouncer)
{
	char sql[128], out[256];

	broker_start(checks[_i]);
	uint64_t connects = wait_reset(0).connects;
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	raw_value(l, "SET work_mem = '7MB'");
	int server_pid = atoi(raw_value(l, "SELECT pg_backend_pid()"));
	ck_assert_int_gt(server_pid, 0);
	ck_assert_int_eq(pgl_release(l), 0);

	pgl_pool_stats st = wait_reset(1);
	ck_assert_uint_eq(st.reset_failures, 0);
	snprintf(sql, sizeof(sql), "SELECT query FROM pg_stat_activity WHERE pid = %d", server_pid);
	ck_assert_msg(testutil_sql(sql, out, sizeof(out)), "%s", out);
	if (_i == 0)
		ck_assert_str_eq(out, "DISCARD ALL");
	else
		ck_assert_msg(strncmp(out, "SELECT '", 8) == 0, "last query: %s", out);

	l = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(atoi(raw_value(l, "SELECT pg_backend_pid()")), server_pid);
	ck_assert_str_eq(raw_value(l, "SHOW work_mem"), "4MB");
	ck_assert_int_eq(pgl_release(l), 0);
	st = wait_reset(2);
	ck_assert_uint_eq(st.reset_failures, 0);
	ck_assert_uint_eq(st.connects, connects);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A raw holder's pipelined query left unread: the reset fails through
 * PgBouncer too, and the next lease is a new connection that answers
 * exactly its own query.  (PgBouncer may pair it with the same server
 * backend once it has reset that itself: the broker's connection is what
 * is replaced.)
 */
START_TEST(test_dirty_through_pgbouncer)
{
	broker_start(checks[_i]);
	uint64_t connects = wait_reset(0).connects;
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert(testutil_raw_send(pgl_fd(l), "SELECT 'left'"));
	ck_assert(testutil_raw_send(pgl_fd(l), "SELECT 'behind'"));
	ck_assert_int_eq(pgl_release(l), 0);

	l = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_str_eq(raw_value(l, "SELECT 'fresh'"), "fresh");
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_pool_stats st = wait_reset(1);	/* the second, the first failed */
	ck_assert_uint_eq(st.reset_failures, 1);
	ck_assert_uint_eq(st.connects, connects + 1);
	ck_assert(testbroker_log_has(&broker, "reset failed"));
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A release with a query still running: the stalled reset's cancel goes
 * through PgBouncer, lands, and the reset after it passes; the server
 * backend is kept.
 */
START_TEST(test_running_query_through_pgbouncer)
{
	broker_start(checks[_i]);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	int server_pid = atoi(raw_value(l, "SELECT pg_backend_pid()"));
	ck_assert(testutil_raw_send(pgl_fd(l), "SELECT pg_sleep(20)"));
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
		 "wait_event = 'PgSleep'", server_pid);
	WAIT_UNTIL(testutil_sql_long(sql) == 1, 5000, "the sleep never started");
	ck_assert_int_eq(pgl_release(l), 0);

	pgl_pool_stats st = wait_reset(1);
	ck_assert_uint_eq(st.reset_failures, 0);
	ck_assert(testbroker_log_has(&broker, "reset stalled"));
	l = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(atoi(raw_value(l, "SELECT pg_backend_pid()")), server_pid);
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * Issue 14 item 4: through PgBouncer the pid of the startup's BackendKeyData
 * is PgBouncer's cancel key, not a server pid.  The broker sees it (the
 * connect's pg_backend_pid() differs), warns once that the proxy must pool
 * in session mode, shows the proxy as the backend's server, and never runs
 * pg_terminate_backend() with that pid: with PgBouncer stopped, a closing
 * backend that does not end is left to end when PgBouncer closes it.  A
 * direct pool of the same broker is not taken for a proxied one.
 */
START_TEST(test_proxy_pid_never_terminated)
{
	char pools[1024], out[16384], want[400];

	snprintf(pools, sizeof(pools), "{ name = \"main\"; conninfo = \"host=%s port=%d dbname=%s "
		 "user=%s\"; min_size = 1; max_size = 1; acquire_timeout = 5.0; "
		 "statement_timeout = 0; connection_check_interval = 0; validate_after = 60.0; "
		 "connect_timeout = 1.0; }, { name = \"direct\"; conninfo = \"$CONNINFO\"; "
		 "min_size = 1; max_size = 1; }", bdir, BOUNCER_PORT, getenv("PGDATABASE"),
		 getenv("PGUSER"));
	testbroker_start(&broker, NULL, pools, true);
	ck_assert(testbroker_log_has(&broker, "pool=main: the startup's backend pid is not "
				     "pg_backend_pid(): a proxy"));
	ck_assert(testbroker_log_has(&broker, "must pool in session mode"));
	ck_assert(!testbroker_log_has(&broker, "pool=direct: the startup's backend pid"));

	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, "main", -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_ne(atoi(raw_value(l, "SELECT pg_backend_pid()")), pgl_backend_pid(l));
	char *json[] = { (char *)TOP_BUILDDIR "/pglease-stat", (char *)"-n", broker.shm,
			 (char *)"--json", NULL };
	ck_assert_int_eq(testutil_run(json, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "\"host\":\"%s\",\"port\":\"%d\"", bdir, BOUNCER_PORT);
	ck_assert_msg(strstr(out, want) != NULL, "%s", out);

	/* PgBouncer stopped: the discarded backend's end of stream never comes. */
	ck_assert_int_eq(kill(bouncer, SIGSTOP), 0);
	ck_assert_int_eq(pgl_discard(l), 0);
	testbroker_wait_log(&broker, "not terminating it", 1, 10000);
	ck_assert_int_eq(kill(bouncer, SIGCONT), 0);
	/* the warning at connect is the only line that names it */
	ck_assert_int_eq(testbroker_log_count(&broker, "pg_terminate_backend"), 1);
	pgl_pool_stats st[2];
	WAIT_UNTIL(pgl_stats(broker.shm, st, 2) == 2 && st[0].idle == 1, 15000,
		   "the pool did not come back after PgBouncer went on");
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
pgbouncer_suite(void)
{
	Suite *s = suite_create("pgbouncer");
	TCase *tc = tcase_create("session");
	int n = (int)(sizeof(checks) / sizeof(checks[0]));

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, bouncer_start, bouncer_stop);
	tcase_add_loop_test(tc, test_reset_through_pgbouncer, 0, n);
	tcase_add_loop_test(tc, test_dirty_through_pgbouncer, 0, n);
	tcase_add_loop_test(tc, test_running_query_through_pgbouncer, 0, n);
	tcase_add_test(tc, test_proxy_pid_never_terminated);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(pgbouncer_suite());
}
