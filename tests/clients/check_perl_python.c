/*
 * check_perl_python.c - preforking Perl (DBD::Pg) and Python (psycopg2)
 * programs under pglease-run: workers.pl and workers.py fork workers that
 * connect, insert, commit and disconnect in a loop, and a victim that is
 * SIGKILLed after its INSERT, before its COMMIT.  Its row is never there,
 * every worker's rows are; the programs write what they do directly.
 * Apart: a lease per connection, never more backends than max_size, and the
 * victim's lease counted as orphaned.
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

#define SIZE 3
#define WORKERS 4
#define ITERATIONS 25
#define TIMEOUT_MS 60000

static struct testbroker broker;

static void
setup(void)
{
	char out[256];

	ck_assert_msg(testutil_sql("CREATE TABLE IF NOT EXISTS client_rows (tag text, worker int, "
				   "iter int)", out, sizeof(out)), "%s", out);
	clients_broker_start(&broker, SIZE, NULL, NULL);
}

/* Fails the test, naming the package, when interpreter cannot load module. */
static void
require_module(const char *interpreter, const char *const *probe, const char *module,
	       const char *package)
{
	struct client_run r;

	clients_run(&r, NULL, NULL, NULL, probe, 30000);
	ck_assert_msg(r.status == 0, "%s cannot load %s: this suite needs it (apt-get install %s, "
		      "or scripts/install-deps.sh):\n%s", interpreter, module, package, r.err);
	clients_run_free(&r);
}

/* Committed rows of tag by worker w. */
static long
rows(const char *tag, int w)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM client_rows WHERE tag = '%s' AND worker = %d",
		 tag, w);
	return testutil_sql_long(sql);
}

/* What the server holds after a run of tag: no victim row, every worker's rows. */
static void
assert_rows(const char *tag)
{
	ck_assert_msg(rows(tag, 0) == 0, "%s: the SIGKILLed victim's row was committed", tag);
	for (int w = 1; w <= WORKERS; w++)
		ck_assert_msg(rows(tag, w) == ITERATIONS, "%s: worker %d has %ld rows, not %d", tag, w,
			      rows(tag, w), ITERATIONS);
}

/*
 * Runs the program (interpreter, script) through the shim, then directly,
 * each with its own tag.
 */
static void
run_program(const char *interpreter, const char *script, const char *lang)
{
	char path[512], pooled_tag[64], direct_tag[64], workers[16], iterations[16];
	struct client_run pooled, direct;
	struct clients_sampler s;

	snprintf(path, sizeof(path), "%s/tests/clients/%s", TOP_SRCDIR, script);
	snprintf(pooled_tag, sizeof(pooled_tag), "%s-pooled", lang);
	snprintf(direct_tag, sizeof(direct_tag), "%s-direct", lang);
	snprintf(workers, sizeof(workers), "%d", WORKERS);
	snprintf(iterations, sizeof(iterations), "%d", ITERATIONS);
	const char *argv[] = { interpreter, path, pooled_tag, workers, iterations, NULL };

	clients_wait_backends(SIZE, 15000);
	pgl_pool_stats before = clients_stats(&broker);
	clients_sampler_start(&s);
	clients_run(&pooled, &broker, NULL, NULL, argv, TIMEOUT_MS);
	long seen = clients_sampler_stop(&s);
	pgl_pool_stats after = clients_stats(&broker);

	argv[2] = direct_tag;
	clients_run(&direct, NULL, NULL, NULL, argv, TIMEOUT_MS);
	clients_assert_status(script, &direct, 0);
	clients_assert_status(script, &pooled, 0);
	clients_assert_same(script, direct.out, pooled.out, NULL);
	clients_assert_same(script, direct.err, pooled.err, NULL);
	ck_assert_msg(strstr(pooled.out, "victim: killed by signal 9\n") != NULL, "%s", pooled.out);
	assert_rows(pooled_tag);
	assert_rows(direct_tag);

	/* a lease per connection: the victim's, each worker's, the parent's count */
	clients_expect_pooled(script, &before, &after, 1 + WORKERS * ITERATIONS + 1, seen, SIZE);
	/* the victim's lease, orphaned by its death, and its backend replaced */
	int64_t deadline = clock_mono_ms() + 5000;
	pgl_pool_stats st = clients_stats(&broker);
	while (st.orphaned_leases == before.orphaned_leases && clock_mono_ms() < deadline) {
		usleep(20000);
		st = clients_stats(&broker);
	}
	clients_expect_pooling(st.orphaned_leases > before.orphaned_leases,
			       "%s: the SIGKILLed victim's lease was not counted as orphaned", script);
	/* once the orphan is handled, its row is still not there */
	ck_assert_int_eq(rows(pooled_tag, 0), 0);

	clients_run_free(&pooled);
	clients_run_free(&direct);
}

START_TEST(test_perl_dbd_pg)
{
	const char *perl = strdup(clients_program("perl", "perl"));

	require_module("perl", (const char *const[]){ perl, "-MDBD::Pg", "-e", "1", NULL },
		       "DBD::Pg", "libdbd-pg-perl");
	setup();
	run_program(perl, "workers.pl", "perl");
	free((char *)perl);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

START_TEST(test_python_psycopg2)
{
	/* always Debian's interpreter, the one python3-psycopg2 installs into */
	const char *python = "/usr/bin/python3";

	ck_assert_msg(access(python, X_OK) == 0, "%s is not installed: this suite needs it "
		      "(apt-get install python3 python3-psycopg2)", python);
	require_module("python3", (const char *const[]){ python, "-c", "import psycopg2", NULL },
		       "psycopg2", "python3-psycopg2");
	setup();
	run_program(python, "workers.py", "python");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

static Suite *
perl_python_suite(void)
{
	Suite *s = suite_create("perl_python");
	TCase *tc = tcase_create("perl_python");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_perl_dbd_pg);
	tcase_add_test(tc, test_python_psycopg2);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	clients_init();
	return testutil_run_suite(perl_python_suite());
}
