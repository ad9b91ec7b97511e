/*
 * check_reload.c - SIGHUP: a valid file applies in place (sizes, settings,
 * the reset's check from the next reset, pools added and removed, a
 * changed conninfo recycles backends), also
 * with leases out, which run to their release untouched (a removed pool's
 * lease_timeout still cuts them); an invalid one changes nothing and every
 * error is logged with FILE:LINE.
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

static struct testbroker broker;

#define POOL(name, min, max, extra) \
	"{ name = \"" name "\"; conninfo = \"$CONNINFO\"; min_size = " #min "; max_size = " #max \
	"; " extra " }"

/* Lines that end the handling of a SIGHUP, whatever its outcome. */
static int
reload_outcomes(void)
{
	return testbroker_log_count(&broker, "reloaded /") +
	       testbroker_log_count(&broker, "the running configuration stays") +
	       testbroker_log_count(&broker, "reload: the broker is stopping");
}

/*
 * Sends SIGHUP and waits for the broker to be done with this one (the
 * log lines are counted: an earlier reload's do not answer); its outcome
 * must be a new line with expect.
 */
static void
hup(const char *expect)
{
	int before = testbroker_log_count(&broker, expect), ended = reload_outcomes();

	ck_assert_int_eq(kill(broker.pid, SIGHUP), 0);
	WAIT_UNTIL(reload_outcomes() > ended, 10000, "SIGHUP not handled within 10 s; see %s",
		   broker.log);
	ck_assert_msg(testbroker_log_count(&broker, expect) > before,
		      "the reload did not end with \"%s\"; see %s", expect, broker.log);
}

static pgl_pool_stats
stats_of(const char *name)
{
	pgl_pool_stats st[8];
	int n = pgl_stats(broker.shm, st, 8);

	ck_assert_int_ge(n, 0);
	for (int i = 0; i < n; i++)
		if (strcmp(st[i].name, name) == 0)
			return st[i];
	ck_abort_msg("no pool %s in %s", name, broker.shm);
}

static long
backend_alive(int pid)
{
	char sql[96];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
	return testutil_sql_long(sql);
}

static void
exec_sql(const char *sql)
{
	char out[256];

	ck_assert_msg(testutil_sql(sql, out, sizeof(out)), "%s: %s", sql, out);
}

/* Runs sql on a held lease; it must succeed and leave the status given. */
static void
raw_ok(pgl_lease *l, const char *sql, char status)
{
	char out[256], st;

	ck_assert_msg(testutil_raw_query(pgl_fd(l), sql, out, sizeof(out), &st), "%s: %s", sql, out);
	ck_assert_msg(st == status, "%s: status %c, not %c", sql, st, status);
}

static int
find_pool(const char *name, pgl_pool_stats *out)
{
	pgl_pool_stats st[8];
	int n = pgl_stats(broker.shm, st, 8);

	ck_assert_int_ge(n, 0);
	for (int i = 0; i < n; i++)
		if (strcmp(st[i].name, name) == 0) {
			*out = st[i];
			return 1;
		}
	return 0;
}

START_TEST(test_sizes_change_in_place)
{
	/* the client connects under a limit of 2 leases, and holds 4 after the reload */
	testbroker_start(&broker, "max_leases_per_client = 2;", POOL("main", 1, 2, ""), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l[4];

	l[0] = pgl_acquire(c, NULL, -1);
	l[1] = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l[0]);
	ck_assert_ptr_nonnull(l[1]);
	ck_assert_ptr_null(pgl_acquire(c, NULL, 0));	/* full */

	testbroker_write_config(&broker, "max_leases_per_client = 8;",
				POOL("main", 1, 4, "acquire_timeout = 2.0;"));
	hup("reloaded /");
	l[2] = pgl_acquire(c, NULL, -1);
	l[3] = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l[2] != NULL && l[3] != NULL, "%s", pgl_error(c));
	pgl_pool_stats st;
	ck_assert(find_pool("main", &st));
	ck_assert_int_eq(st.max_size, 4);
	ck_assert_int_eq(st.leased, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pgl_release(l[i]), 0);

	/* and down again: the pool sheds to the new max_size */
	testbroker_write_config(&broker, NULL, POOL("main", 1, 1, ""));
	hup("reloaded /");
	WAIT_UNTIL(stats_of("main").size <= 1, 10000, "still %d backends", stats_of("main").size);
	ck_assert_int_eq(stats_of("main").max_size, 1);
	/* a backend's process ends a little after the broker closed it */
	WAIT_UNTIL(testutil_pool_backends() <= 1, 10000, "the server still has %ld pool backends",
		   testutil_pool_backends());
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_invalid_file_changes_nothing)
{
	testbroker_start(&broker, NULL, POOL("main", 1, 2, ""), true);
	FILE *f = fopen(broker.conf, "w");
	ck_assert_ptr_nonnull(f);
	fputs("pools = ( {\n  name = \"main\";\n  conninfo = \"dbname=x\";\n  max_sise = 3;\n"
	      "  jitter = 2.0;\n} );\n", f);
	fclose(f);
	hup("the running configuration stays");

	char where[400];
	snprintf(where, sizeof(where), "%s:4: pools[0].max_sise", broker.conf);
	ck_assert(testbroker_log_has(&broker, where));
	snprintf(where, sizeof(where), "%s:5: pools[0].jitter", broker.conf);
	ck_assert(testbroker_log_has(&broker, where));

	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, "main", -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_pool_stats st;
	ck_assert(find_pool("main", &st));
	ck_assert_int_eq(st.max_size, 2);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_pools_added_and_removed)
{
	testbroker_start(&broker, NULL, POOL("a", 1, 2, "") "," POOL("b", 1, 1, ""), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *held = pgl_acquire(c, "a", -1);
	ck_assert_ptr_nonnull(held);
	int held_pid = pgl_backend_pid(held);

	testbroker_write_config(&broker, NULL, POOL("b", 1, 1, "") "," POOL("c", 1, 2, ""));
	hup("reloaded /");
	ck_assert(testbroker_log_has(&broker, "pool a is removed by the reload"));

	ck_assert_ptr_null(pgl_acquire(c, "a", -1));
	ck_assert_int_eq(pgl_errcode(c), PGL_ENOPOOL);
	pgl_lease *l = pgl_acquire(c, "c", 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	l = pgl_acquire(c, NULL, -1);		/* the default is now the first pool, b */
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);

	/* the lease of the removed pool still works, and its backend ends on release */
	char out[32], st;
	ck_assert(testutil_raw_query(pgl_fd(held), "SELECT 'kept'", out, sizeof(out), &st));
	ck_assert_int_eq(pgl_release(held), 0);
	char sql[96];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", held_pid);
	int64_t deadline = clock_mono_ms() + 5000;
	pgl_pool_stats ps;
	while (testutil_sql_long(sql) != 0 || find_pool("a", &ps)) {
		ck_assert_msg(clock_mono_ms() < deadline, "pool a did not drain away");
		usleep(20000);
	}
	ck_assert(testbroker_log_has(&broker, "pool a removed"));
	ck_assert(find_pool("b", &ps) && find_pool("c", &ps));
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_conninfo_change_recycles)
{
	testbroker_start(&broker, NULL, POOL("main", 2, 2, ""), true);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM pg_stat_activity "
					   "WHERE application_name = 'pgleased'"), 2);
	char pools[512];
	snprintf(pools, sizeof(pools), "{ name = \"main\"; conninfo = \"$CONNINFO "
		 "application_name=renamed\"; min_size = 2; max_size = 2; }");
	testbroker_write_config(&broker, NULL, pools);
	hup("reloaded /");
	WAIT_UNTIL(testutil_sql_long("SELECT count(*) FROM pg_stat_activity "
				     "WHERE application_name = 'renamed'") == 2 &&
		   testutil_pool_backends() == 0, 10000, "backends were not replaced");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * Releases the lease and waits for its reset to end, which must keep the
 * backend; returns the backend's last query as pg_stat_activity shows it.
 */
static const char *
reset_and_last_query(pgl_lease *l, uint64_t resets)
{
	static char out[256];
	char sql[96];
	int pid = pgl_backend_pid(l);

	ck_assert_int_eq(pgl_release(l), 0);
	WAIT_UNTIL(stats_of("main").resets == resets && stats_of("main").idle == 1, 10000,
		   "reset %llu did not end", (unsigned long long)resets);
	ck_assert_uint_eq(stats_of("main").reset_failures, 0);
	ck_assert_int_eq(backend_alive(pid), 1);
	snprintf(sql, sizeof(sql), "SELECT query FROM pg_stat_activity WHERE pid = %d", pid);
	ck_assert_msg(testutil_sql(sql, out, sizeof(out)), "%s", out);
	return out;
}

/*
 * reset_check changes from the next reset on, a lease out included, and
 * no backend is replaced for it.  The FunctionCall reports no query text,
 * so the last one is the reset's DISCARD ALL; the SELECT of the nonce is
 * reported.
 */
START_TEST(test_reset_check_changes_in_place)
{
	testbroker_start(&broker, NULL, POOL("main", 1, 1, ""), true);
	uint64_t connects = stats_of("main").connects;
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	int pid = pgl_backend_pid(l);
	ck_assert_str_eq(reset_and_last_query(l, 1), "DISCARD ALL");

	l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	testbroker_write_config(&broker, NULL, POOL("main", 1, 1, "reset_check = \"query\";"));
	hup("reloaded /");
	const char *q = reset_and_last_query(l, 2);
	ck_assert_msg(strncmp(q, "SELECT '", 8) == 0, "last query: %s", q);

	testbroker_write_config(&broker, NULL, POOL("main", 1, 1, "reset_check = \"function\";"));
	hup("reloaded /");
	l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(pgl_backend_pid(l), pid);
	ck_assert_str_eq(reset_and_last_query(l, 3), "DISCARD ALL");
	ck_assert_uint_eq(stats_of("main").connects, connects);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_restart_only_settings_kept)
{
	testbroker_start(&broker, NULL, POOL("main", 1, 1, ""), true);
	char conf[1024];
	snprintf(conf, sizeof(conf), "broker = { socket = \"%s.other\"; shm_name = \"/pglease.other\"; };\n"
		 "pools = ( { name = \"main\"; conninfo = \"host=%s port=%s user=%s dbname=%s\"; "
		 "min_size = 1; max_size = 1; } );\n", broker.socket, getenv("PGHOST"),
		 getenv("PGPORT"), getenv("PGUSER"), getenv("PGDATABASE"));
	FILE *f = fopen(broker.conf, "w");
	fputs(conf, f);
	fclose(f);
	hup("reloaded /");
	ck_assert(testbroker_log_has(&broker, "socket, socket_mode and socket_group change only with a restart"));
	ck_assert(testbroker_log_has(&broker, "shm_name, shm_mode and shm_group change only with a restart"));
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_pool_stats st;
	ck_assert(find_pool("main", &st));
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_too_big_for_the_segment)
{
	testbroker_start(&broker, "max_total_slots = 4;", POOL("main", 1, 2, ""), true);
	/* valid on its own (max_total_slots back to automatic), too big for the segment */
	testbroker_write_config(&broker, NULL, POOL("main", 1, 3, "") "," POOL("more", 1, 3, ""));
	hup("reload refused");
	ck_assert(testbroker_log_has(&broker, "restart pgleased to resize"));
	pgl_pool_stats st;
	ck_assert(find_pool("main", &st));
	ck_assert_int_eq(st.max_size, 2);
	ck_assert(!find_pool("more", &st));
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * max_size lowered below the leases out: nothing is cut.  Each holder
 * finishes its transaction and gives back without an error, a waiter is
 * served once the pool is under its new size, and the pool ends at it.
 */
START_TEST(test_max_size_lowered_with_leases_out)
{
	enum { HELD = 4 };
	char sql[128];

	exec_sql("CREATE TABLE shrink (x int)");
	testbroker_start(&broker, NULL, POOL("main", 1, 4, "acquire_timeout = 10.0;"), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l[HELD];
	for (int i = 0; i < HELD; i++) {
		l[i] = pgl_acquire(c, NULL, -1);
		ck_assert_msg(l[i] != NULL, "%s", pgl_error(c));
		snprintf(sql, sizeof(sql), "BEGIN; INSERT INTO shrink VALUES (%d)", i);
		raw_ok(l[i], sql, 'T');
	}

	testbroker_write_config(&broker, NULL, POOL("main", 1, 2, "acquire_timeout = 10.0;"));
	hup("reloaded /");
	pgl_pool_stats st = stats_of("main");
	ck_assert_int_eq(st.max_size, 2);
	ck_assert_int_eq(st.leased, HELD);

	/* someone else waits meanwhile */
	pid_t w = fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		pgl_client *wc = pgl_open(broker.socket);
		pgl_lease *wl = pgl_acquire(wc, NULL, 10000);
		REQUIRE(wl != NULL, "the waiter: %s", pgl_error(wc));
		char out[16], wst;
		REQUIRE(testutil_raw_query(pgl_fd(wl), "SELECT count(*) FROM shrink", out,
					   sizeof(out), &wst), "the waiter's query: %s", out);
		/* served after a holder's release, so after its commit: whole transactions only */
		REQUIRE(atoi(out) >= 2 && atoi(out) % 2 == 0, "the waiter sees %s rows", out);
		REQUIRE(pgl_release(wl) == 0, "the waiter's release: %s", pgl_error(wc));
		pgl_close(wc);
		_exit(0);
	}
	WAIT_UNTIL(stats_of("main").waiting == 1, 10000, "the waiter was not queued");

	/* the holders carry on as if nothing happened, and give back cleanly */
	for (int i = 0; i < HELD; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO shrink VALUES (%d); COMMIT", 10 + i);
		raw_ok(l[i], sql, 'I');
		ck_assert_int_eq(pgl_release(l[i]), 0);
	}
	testutil_reap(w, "waiter");
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM shrink"), 2 * HELD);

	WAIT_UNTIL((st = stats_of("main")).size == 2 && st.idle == 2 && st.leased == 0, 10000,
		   "pool not down to 2 idle backends: size %d idle %d leased %d", st.size, st.idle,
		   st.leased);
	WAIT_UNTIL(testutil_pool_backends() == 2, 10000, "the server has %ld pool backends",
		   testutil_pool_backends());
	ck_assert_uint_eq(st.orphaned_leases, 0);
	ck_assert_uint_eq(st.reset_failures, 0);
	ck_assert_uint_eq(st.leases, HELD + 1);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A conninfo changed while leases are out: the holders keep their backends
 * to the end (a transaction open across the reload commits), then every
 * backend is replaced by one with the new settings.
 */
START_TEST(test_conninfo_changed_with_leases_out)
{
	char out[64];

	exec_sql("CREATE TABLE moved (x int)");
	testbroker_start(&broker, NULL, POOL("main", 2, 2, ""), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *a = pgl_acquire(c, NULL, -1), *b = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	int pid_a = pgl_backend_pid(a), pid_b = pgl_backend_pid(b);
	raw_ok(a, "BEGIN; INSERT INTO moved VALUES (1)", 'T');

	testbroker_write_config(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO "
				"application_name=renamed\"; min_size = 2; max_size = 2; }");
	hup("reloaded /");
	ck_assert(testbroker_log_has(&broker, "connection settings changed"));

	raw_ok(a, "INSERT INTO moved VALUES (2); COMMIT", 'I');
	char st;
	ck_assert(testutil_raw_query(pgl_fd(b), "SELECT current_setting('application_name')", out,
				     sizeof(out), &st));
	ck_assert_str_eq(out, "pgleased");	/* still the backend it was given */
	ck_assert_int_eq(pgl_release(a), 0);
	ck_assert_int_eq(pgl_release(b), 0);

	WAIT_UNTIL(testutil_sql_long("SELECT count(*) FROM pg_stat_activity "
				     "WHERE application_name = 'renamed'") == 2 &&
		   testutil_pool_backends() == 0, 10000, "the backends were not replaced");
	ck_assert_int_eq(backend_alive(pid_a), 0);
	ck_assert_int_eq(backend_alive(pid_b), 0);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM moved"), 2);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert(testutil_raw_query(pgl_fd(l), "SELECT current_setting('application_name')", out,
				     sizeof(out), &st));
	ck_assert_str_eq(out, "renamed");
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_pool_stats ps = stats_of("main");
	ck_assert_uint_eq(ps.orphaned_leases, 0);
	ck_assert_uint_eq(ps.reset_failures, 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A pool removed by a reload still enforces its lease_timeout (action
 * terminate) on the lease it drains: the backend is cut, the open
 * transaction rolled back, the holder's next use fails cleanly, and the
 * pool goes once empty.
 */
START_TEST(test_lease_timeout_on_removed_pool)
{
	char out[128], st;

	exec_sql("CREATE TABLE overdue (x int)");
	testbroker_start(&broker, NULL, POOL("a", 1, 1, "lease_timeout = 0.5; "
					     "lease_timeout_action = \"terminate\";") ","
			 POOL("b", 1, 1, ""), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *held = pgl_acquire(c, "a", -1);
	ck_assert_ptr_nonnull(held);
	int pid = pgl_backend_pid(held);
	raw_ok(held, "BEGIN; INSERT INTO overdue VALUES (1)", 'T');

	testbroker_write_config(&broker, NULL, POOL("b", 1, 1, ""));
	hup("reloaded /");
	ck_assert(testbroker_log_has(&broker, "pool a is removed by the reload"));

	testbroker_wait_log(&broker, "lease held past lease_timeout pool=a", 1, 10000);
	WAIT_UNTIL(backend_alive(pid) == 0, 10000, "backend %d of the removed pool outlived its "
		   "lease_timeout", pid);
	ck_assert(!testutil_raw_query(pgl_fd(held), "SELECT 1", out, sizeof(out), &st));
	ck_assert_int_eq(pgl_release(held), 0);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM overdue"), 0);
	pgl_pool_stats ps;
	WAIT_UNTIL(!find_pool("a", &ps), 10000, "pool a is still in %s", broker.shm);
	ck_assert(testbroker_log_has(&broker, "pool a removed"));
	ck_assert(testbroker_log_has(&broker, "terminating it"));

	pgl_lease *l = pgl_acquire(c, "b", 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
reload_suite(void)
{
	Suite *s = suite_create("reload");
	TCase *tc = tcase_create("sighup");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sizes_change_in_place);
	tcase_add_test(tc, test_invalid_file_changes_nothing);
	tcase_add_test(tc, test_pools_added_and_removed);
	tcase_add_test(tc, test_conninfo_change_recycles);
	tcase_add_test(tc, test_reset_check_changes_in_place);
	tcase_add_test(tc, test_restart_only_settings_kept);
	tcase_add_test(tc, test_too_big_for_the_segment);
	tcase_add_test(tc, test_max_size_lowered_with_leases_out);
	tcase_add_test(tc, test_conninfo_changed_with_leases_out);
	tcase_add_test(tc, test_lease_timeout_on_removed_pool);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(reload_suite());
}
