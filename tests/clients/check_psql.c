/*
 * check_psql.c - psql, unmodified, under pglease-run: commands, scripts
 * with \copy both ways, \conninfo, errors under ON_ERROR_STOP, settings in
 * one session and none leaking into the next, what the program asks for
 * at connect (application_name, client_encoding, options, datestyle and
 * timezone), and Ctrl-C.  Every run is compared with a direct run of the
 * same command: same exit status, same stdout, same stderr (only the line
 * of \conninfo may differ).  Pooling itself (leases counted, never more
 * backends than max_size) is asserted apart, at the end of each test.
 */
#include "autoconf.h"

#include "clients/clientutil.h"
#include "common/clock.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE 2
#define TIMEOUT_MS 30000

static struct testbroker broker;
static const char *psql;

static void
setup(void)
{
	psql = strdup(clients_program("psql", "postgresql-client"));
	clients_broker_start(&broker, SIZE, NULL, NULL);
}

/* Runs psql with args both ways; asserts the same status, stdout and stderr. */
static void
same_as_direct(const char *what, const char *const *env, const char *const *args,
	       int want_status, const char *ignore_prefix, struct client_run *pooled_out)
{
	const char *argv[32] = { psql };
	struct client_run pooled, direct;
	size_t n = 1;

	for (size_t i = 0; args[i] != NULL; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	clients_run_both(&pooled, &direct, &broker, SIZE, what, NULL, NULL, env, argv, TIMEOUT_MS, 1);
	clients_assert_status(what, &direct, want_status);
	clients_assert_status(what, &pooled, want_status);
	clients_assert_same(what, direct.out, pooled.out, ignore_prefix);
	clients_assert_same(what, direct.err, pooled.err, ignore_prefix);
	if (pooled_out != NULL)
		*pooled_out = pooled;
	else
		clients_run_free(&pooled);
	clients_run_free(&direct);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define ENV(...) ((const char *const[]){ __VA_ARGS__, NULL })

START_TEST(test_commands)
{
	setup();
	same_as_direct("psql -c", NULL,
		       ARGS("-X", "-c", "SELECT 1 AS one, 'two' AS two, 2.5::numeric AS three"), 0,
		       NULL, NULL);
	same_as_direct("psql -At, 200 rows", NULL,
		       ARGS("-X", "-At", "-F", "|", "-c",
			    "SELECT g, md5(g::text) FROM generate_series(1, 200) g"), 0, NULL, NULL);
	same_as_direct("psql -c, several statements", NULL,
		       ARGS("-X", "-c", "CREATE TEMP TABLE t (a int); INSERT INTO t VALUES (1), (2); "
			    "SELECT sum(a) FROM t"), 0, NULL, NULL);
	same_as_direct("psql -c, an error", NULL, ARGS("-X", "-c", "SELECT * FROM no_such_table"), 1,
		       NULL, NULL);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

/* \conninfo runs and names the database and the user; that line alone may differ. */
START_TEST(test_conninfo)
{
	struct client_run pooled;
	char want[256];

	setup();
	same_as_direct("psql \\conninfo", NULL, ARGS("-X", "-c", "\\conninfo"), 0,
		       "You are connected to database", &pooled);
	snprintf(want, sizeof(want), "You are connected to database \"%s\" as user \"%s\"",
		 getenv("PGDATABASE"), getenv("PGUSER"));
	ck_assert_msg(strstr(pooled.out, want) != NULL, "\\conninfo through pglease-run wrote "
		      "\"%s\", not \"%s...\"", pooled.out, want);
	clients_run_free(&pooled);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

/*
 * SET then SHOW in one session; the next session (most likely on the same
 * pooled backend) sees the defaults again.
 */
START_TEST(test_settings)
{
	setup();
	same_as_direct("SET then SHOW in one session", NULL,
		       ARGS("-X", "-c", "SET work_mem = '3MB'", "-c", "SHOW work_mem", "-c",
			    "SET TIME ZONE 'Asia/Tokyo'", "-c",
			    "SELECT timestamptz '2024-01-01 00:00:00+00' AS t", "-c",
			    "SET search_path = pg_catalog", "-c", "SHOW search_path"), 0, NULL, NULL);
	for (int i = 0; i < 2 * SIZE; i++)
		same_as_direct("the next sessions see the defaults", NULL,
			       ARGS("-X", "-At", "-c", "SHOW work_mem", "-c", "SHOW TimeZone", "-c",
				    "SHOW search_path", "-c", "SELECT count(*) FROM pg_prepared_statements"),
			       0, NULL, NULL);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

/* What a program asks for at connect reaches its session (DESIGN section 8). */
START_TEST(test_connect_options)
{
	setup();
	same_as_direct("psql's own application_name", NULL,
		       ARGS("-X", "-At", "-c", "SHOW application_name"), 0, NULL, NULL);
	same_as_direct("PGAPPNAME", ENV("PGAPPNAME=nightly-report"),
		       ARGS("-X", "-At", "-c", "SHOW application_name", "-c",
			    "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"),
		       0, NULL, NULL);
	same_as_direct("PGCLIENTENCODING=LATIN1", ENV("PGCLIENTENCODING=LATIN1"),
		       ARGS("-X", "-At", "-c", "SHOW client_encoding", "-c",
			    "SELECT chr(233) || 't' || chr(233)"), 0, NULL, NULL);
	same_as_direct("PGOPTIONS",
		       ENV("PGOPTIONS=-c search_path=pg_catalog,public -c statement_timeout=4321 "
			   "-c work_mem=2MB"),
		       ARGS("-X", "-At", "-c", "SHOW search_path", "-c", "SHOW statement_timeout",
			    "-c", "SHOW work_mem"), 0, NULL, NULL);
	same_as_direct("PGDATESTYLE and PGTZ", ENV("PGDATESTYLE=SQL, DMY", "PGTZ=America/New_York"),
		       ARGS("-X", "-At", "-c", "SELECT timestamptz '2024-03-05 12:00:00+00'", "-c",
			    "SHOW DateStyle", "-c", "SHOW TimeZone"), 0, NULL, NULL);
	same_as_direct("options in a connection string", NULL,
		       ARGS("-X", "-At", "-d",
			    "dbname=postgres application_name=from-conninfo "
			    "options='-c work_mem=5MB'", "-c", "SHOW application_name", "-c",
			    "SHOW work_mem"), 0, NULL, NULL);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

static const char copy_script[] =
	"CREATE TEMP TABLE src (id int PRIMARY KEY, name text, born date, score numeric(6,2));\n"
	"INSERT INTO src SELECT g, 'name ' || g || CASE WHEN g % 7 = 0 THEN ', with \"quotes\"' "
	"ELSE '' END, date '2000-01-01' + g, g * 1.25 FROM generate_series(1, 500) g;\n"
	"\\copy src TO 'src.csv' WITH (FORMAT csv, HEADER)\n"
	"CREATE TEMP TABLE dst (LIKE src);\n"
	"\\copy dst FROM 'src.csv' WITH (FORMAT csv, HEADER)\n"
	"SELECT count(*) AS rows, sum(id) AS ids, md5(string_agg(name || born || score, ',' "
	"ORDER BY id)) AS digest FROM dst;\n"
	"SELECT count(*) AS differing FROM (SELECT * FROM src EXCEPT SELECT * FROM dst) d;\n"
	"COPY (SELECT id, name FROM dst WHERE id <= 3 ORDER BY id) TO STDOUT;\n"
	"CREATE TEMP TABLE inline (a int, b text);\n"
	"COPY inline FROM STDIN;\n"
	"1\tone\n"
	"2\ttwo\n"
	"3\t\\N\n"
	"\\.\n"
	"SELECT * FROM inline ORDER BY a;\n"
	"\\copy (SELECT * FROM inline ORDER BY a) TO 'inline.txt'\n"
	"\\copy inline FROM 'inline.txt'\n"
	"SELECT a, count(*) FROM inline GROUP BY a ORDER BY a;\n"
	"PREPARE doubled(int) AS SELECT $1 * 2 AS doubled;\n"
	"EXECUTE doubled(21);\n"
	"\\connect\n"
	"SELECT count(*) AS statements, to_regclass('src') IS NULL AS src_gone "
	"FROM pg_prepared_statements;\n"
	"\\echo done\n";

/*
 * psql -f with \copy both ways, COPY in the script, a prepared statement,
 * and \connect to a new session that finds nothing of the first: the same
 * output and the same files as directly.
 */
START_TEST(test_script_copy)
{
	struct client_run pooled, direct;
	const char *argv[] = { NULL, "-X", "-v", "ON_ERROR_STOP=1", "-f", "copy.sql", NULL };
	char pdir[512], ddir[512];

	setup();
	argv[0] = psql;
	snprintf(pdir, sizeof(pdir), "%s", clients_mkdir("copy-pooled"));
	snprintf(ddir, sizeof(ddir), "%s", clients_mkdir("copy-direct"));
	testutil_write_file("copy-pooled/copy.sql", copy_script);
	testutil_write_file("copy-direct/copy.sql", copy_script);
	/* two sessions: \connect gives a new one */
	clients_run_both(&pooled, &direct, &broker, SIZE, "psql -f with \\copy", pdir, ddir, NULL,
			 argv, TIMEOUT_MS, 2);
	clients_assert_status("psql -f with \\copy (direct)", &direct, 0);
	clients_assert_status("psql -f with \\copy", &pooled, 0);
	clients_assert_same("psql -f with \\copy", direct.out, pooled.out, NULL);
	clients_assert_same("psql -f with \\copy (stderr)", direct.err, pooled.err, NULL);
	ck_assert_msg(strstr(pooled.out, "done") != NULL, "%s", pooled.out);

	const char *files[] = { "src.csv", "inline.txt" };
	for (size_t i = 0; i < 2; i++) {
		char *p = clients_read_file(pdir, files[i]), *d = clients_read_file(ddir, files[i]);
		ck_assert_msg(p != NULL && d != NULL, "\\copy did not write %s", files[i]);
		clients_assert_same(files[i], d, p, NULL);
		free(p);
		free(d);
	}
	char *csv = clients_read_file(pdir, "src.csv");
	int lines = 0;
	for (const char *c = csv; *c != '\0'; c++)
		lines += *c == '\n';
	ck_assert_int_eq(lines, 501);
	free(csv);
	clients_run_free(&pooled);
	clients_run_free(&direct);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

static const char error_script[] =
	"SELECT 1 AS before;\n"
	"CREATE TEMP TABLE t (a int);\n"
	"BEGIN;\n"
	"INSERT INTO t VALUES (1);\n"
	"SELECT 1 / 0 AS boom;\n"
	"SELECT 2 AS after;\n"
	"COMMIT;\n"
	"SELECT count(*) FROM t;\n";

/*
 * A script with an error: under ON_ERROR_STOP psql stops there, inside a
 * transaction, with exit status 3 and the same message; without it, it
 * goes on.  The next session finds no transaction left open.
 */
START_TEST(test_on_error_stop)
{
	struct client_run pooled;

	setup();
	ck_assert_int_eq(chdir(clients_mkdir("errors")), 0);
	testutil_write_file("errors/err.sql", error_script);
	same_as_direct("ON_ERROR_STOP", NULL, ARGS("-X", "-v", "ON_ERROR_STOP=1", "-f", "err.sql"), 3,
		       NULL, &pooled);
	ck_assert_msg(strstr(pooled.err, "psql:err.sql:5: ERROR:  division by zero") != NULL,
		      "%s", pooled.err);
	ck_assert_msg(strstr(pooled.out, "after") == NULL, "psql went on: %s", pooled.out);
	clients_run_free(&pooled);
	same_as_direct("an error without ON_ERROR_STOP", NULL, ARGS("-X", "-f", "err.sql"), 0, NULL,
		       NULL);
	for (int i = 0; i < SIZE; i++)
		same_as_direct("after the failed transaction", NULL,
			       ARGS("-X", "-At", "-c", "SELECT now() = statement_timestamp()",
				    "-c", "SELECT count(*) FROM pg_class WHERE relname = 't' AND "
				    "relnamespace = pg_my_temp_schema()"), 0, NULL, NULL);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

#define SLEEPING "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND " \
		 "query LIKE 'SELECT pg_sleep(30)%'"

/*
 * Ctrl-C: SIGINT to psql while its statement sleeps; psql cancels it (its
 * handler calls PQcancel), reports it and exits.  Returns the run.
 */
static void
interrupt(const struct testbroker *b, const char *cwd, const char *const *args,
	  struct client_run *r)
{
	const char *argv[16] = { psql };
	struct client_proc p;
	size_t n = 1;

	for (size_t i = 0; args[i] != NULL; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	clients_spawn(&p, b, cwd, NULL, argv);
	WAIT_UNTIL(testutil_sql_long(SLEEPING) == 1, 15000, "psql's pg_sleep(30) did not start");
	int64_t t0 = clock_mono_ms();
	ck_assert_int_eq(kill(p.pid, SIGINT), 0);
	clients_finish(&p, 15000, r);
	int64_t took = clock_mono_ms() - t0;
	ck_assert_msg(took < 5000, "psql%s took %lld ms to end after SIGINT",
		      b != NULL ? " through pglease-run" : "", (long long)took);
	ck_assert_msg(strstr(r->err, "canceling statement due to user request") != NULL,
		      "psql%s wrote:\n%s\n-- stderr:\n%s", b != NULL ? " through pglease-run" : "",
		      r->out, r->err);
	WAIT_UNTIL(testutil_sql_long(SLEEPING) == 0, 5000, "the statement still runs after Ctrl-C");
}

START_TEST(test_ctrl_c)
{
	const char *const variants[][8] = {
		{ "-X", "-c", "SELECT pg_sleep(30)", NULL },
		{ "-X", "-f", "sleep.sql", NULL },
	};
	const int want[] = { 1, 3 };

	setup();
	const char *dir = clients_mkdir("ctrl-c");
	testutil_write_file("ctrl-c/sleep.sql", "SELECT pg_sleep(30);\nSELECT 2 AS after;\n");
	for (size_t i = 0; i < 2; i++) {
		struct client_run pooled, direct;
		struct clients_sampler s;
		clients_wait_backends(SIZE, 15000);
		pgl_pool_stats before = clients_stats(&broker);
		clients_sampler_start(&s);
		interrupt(&broker, dir, variants[i], &pooled);
		long seen = clients_sampler_stop(&s);
		pgl_pool_stats after = clients_stats(&broker);
		clients_expect_pooled(variants[i][2], &before, &after, 1, seen, SIZE);
		interrupt(NULL, dir, variants[i], &direct);
		clients_assert_status("Ctrl-C (direct)", &direct, want[i]);
		clients_assert_status("Ctrl-C", &pooled, want[i]);
		clients_assert_same("Ctrl-C", direct.out, pooled.out, NULL);
		clients_assert_same("Ctrl-C (stderr)", direct.err, pooled.err, NULL);
		clients_run_free(&pooled);
		clients_run_free(&direct);
	}
	/* The cancelled backend came back whole, or was replaced. */
	same_as_direct("after Ctrl-C", NULL, ARGS("-X", "-At", "-c", "SELECT 42"), 0, NULL, NULL);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

static Suite *
psql_suite(void)
{
	Suite *s = suite_create("psql");
	TCase *tc = tcase_create("psql");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_commands);
	tcase_add_test(tc, test_conninfo);
	tcase_add_test(tc, test_settings);
	tcase_add_test(tc, test_connect_options);
	tcase_add_test(tc, test_script_copy);
	tcase_add_test(tc, test_on_error_stop);
	tcase_add_test(tc, test_ctrl_c);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	clients_init();
	return testutil_run_suite(psql_suite());
}
