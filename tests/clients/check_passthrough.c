/*
 * check_passthrough.c - what the shim leaves alone, and what it does when
 * it cannot lease.  A connection whose database or user matches no pool
 * passes through untouched (its backend is none of the pool's, the program's
 * application_name stands, no lease is counted); a matching one is leased
 * (the control).  With the broker gone, a connection falls back to a direct
 * one with a one-line notice naming pglease, and with PGLEASE_STRICT=1
 * fails as libpq fails, naming pglease.  A forced pool that does not exist
 * fails likewise, never silently direct.
 */
#include "autoconf.h"

#include "clients/clientutil.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE 2
#define TIMEOUT_MS 30000
#define OTHER_DB "pglease_other"
#define OTHER_USER "pglease_other"

static struct testbroker broker;
static const char *psql;

static void
setup(void)
{
	char out[256];

	psql = strdup(clients_program("psql", "postgresql-client"));
	if (testutil_sql_long("SELECT count(*) FROM pg_database WHERE datname = '" OTHER_DB "'") == 0)
		ck_assert_msg(testutil_sql("CREATE DATABASE " OTHER_DB, out, sizeof(out)), "%s", out);
	if (testutil_sql_long("SELECT count(*) FROM pg_roles WHERE rolname = '" OTHER_USER "'") == 0)
		ck_assert_msg(testutil_sql("CREATE ROLE " OTHER_USER " LOGIN", out, sizeof(out)), "%s",
			      out);
	clients_broker_start(&broker, SIZE, NULL, NULL);
}

/* Drops the newline that ends text, for messages. */
static char *
chomp(char *text)
{
	size_t n = strlen(text);

	if (n > 0 && text[n - 1] == '\n')
		text[n - 1] = '\0';
	return text;
}

#define WHO "SELECT current_database(), current_user, application_name, backend_type " \
	    "FROM pg_stat_activity WHERE pid = pg_backend_pid()"

/*
 * psql -At -c WHO -c "SELECT pg_backend_pid()" with extra args, through
 * pglease-run and directly: the same status, the same first line and
 * stderr.  Returns the pooled run's backend pid (-1 when it printed none).
 */
static long
who(const char *what, const char *const *env, const char *const *extra, int want_status,
    struct client_run *pooled)
{
	const char *argv[16] = { psql, "-X", "-At" };
	struct client_run direct;
	size_t n = 3;

	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
		argv[n++] = extra[i];
	argv[n++] = "-c";
	argv[n++] = WHO;
	argv[n++] = "-c";
	argv[n++] = "SELECT 'backend ' || pg_backend_pid()";
	argv[n] = NULL;
	clients_wait_backends(SIZE, 15000);
	clients_run(pooled, &broker, NULL, env, argv, TIMEOUT_MS);
	clients_run(&direct, NULL, NULL, env, argv, TIMEOUT_MS);
	clients_assert_status(what, &direct, want_status);
	clients_assert_status(what, pooled, want_status);
	clients_assert_same(what, direct.out, pooled->out, "backend ");
	clients_assert_same(what, direct.err, pooled->err, NULL);
	clients_run_free(&direct);
	const char *p = strstr(pooled->out, "backend ");
	return p != NULL ? atol(p + 8) : -1;
}

/* A database that no pool has, then a user that no pool has: untouched. */
START_TEST(test_no_matching_pool)
{
	const char *const cases[][3] = { { "-d", OTHER_DB, NULL }, { "-U", OTHER_USER, NULL } };
	const char *want[] = { OTHER_DB "|pglease|psql|client backend\n",
			       "postgres|" OTHER_USER "|psql|client backend\n" };

	setup();
	for (size_t i = 0; i < 2; i++) {
		struct client_run r;
		pgl_pool_stats before = clients_stats(&broker);
		long pid = who(cases[i][1], NULL, cases[i], 0, &r);
		pgl_pool_stats after = clients_stats(&broker);
		ck_assert_msg(strncmp(r.out, want[i], strlen(want[i])) == 0,
			      "through pglease-run, psql %s %s is \"%s\", expected \"%s\"",
			      cases[i][0], cases[i][1], r.out, want[i]);
		ck_assert_msg(r.err[0] == '\0', "a connection that matches no pool: psql wrote \"%s\"",
			      r.err);
		ck_assert_int_gt(pid, 0);
		ck_assert_msg(!clients_is_pool_backend(&broker, pid),
			      "psql %s %s got backend %ld, one of the pool's", cases[i][0],
			      cases[i][1], pid);
		ck_assert_msg(after.leases == before.leases, "psql %s %s: %llu leases counted",
			      cases[i][0], cases[i][1],
			      (unsigned long long)(after.leases - before.leases));
		clients_run_free(&r);
	}
	/* PGLEASE_STRICT is about an unreachable broker: it leaves these alone too. */
	struct client_run r;
	who("PGLEASE_STRICT=1, no matching pool", (const char *const[]){ "PGLEASE_STRICT=1", NULL },
	    cases[0], 0, &r);
	ck_assert_msg(r.err[0] == '\0', "%s", r.err);
	clients_run_free(&r);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

/* The control: the pool's database and user, matched or named with -p, are leased. */
START_TEST(test_matching_pool)
{
	struct client_run r;

	setup();
	pgl_pool_stats before = clients_stats(&broker);
	long pid = who("the pool's database and user", NULL, NULL, 0, &r);
	pgl_pool_stats after = clients_stats(&broker);
	ck_assert_msg(strncmp(r.out, "postgres|pglease|psql|client backend\n", 37) == 0, "%s", r.out);
	clients_expect_pooling(clients_is_pool_backend(&broker, pid), "psql on the pool's database "
			       "and user got backend %ld, none of the pool's", pid);
	clients_expect_pooling(after.leases > before.leases, "psql on the pool's database and "
			       "user: no lease counted");
	clients_run_free(&r);

	/* pglease-run -p POOL forces the pool */
	const char *argv[] = { clients_pglease_run(), "-s", broker.socket, "-p", CLIENTS_POOL_NAME,
			       "--", psql, "-X", "-At", "-c", "SELECT pg_backend_pid()", NULL };
	before = clients_stats(&broker);
	clients_run(&r, NULL, NULL, NULL, argv, TIMEOUT_MS);
	after = clients_stats(&broker);
	clients_assert_status("pglease-run -p main", &r, 0);
	chomp(r.out);
	clients_expect_pooling(clients_is_pool_backend(&broker, atol(r.out)),
			       "pglease-run -p main: backend %s is none of the pool's", r.out);
	clients_expect_pooling(after.leases > before.leases, "pglease-run -p main: no lease");
	clients_run_free(&r);

	/* a forced pool that does not exist is a connection failure, not a direct connection */
	argv[4] = "nosuchpool";
	clients_run(&r, NULL, NULL, NULL, argv, TIMEOUT_MS);
	chomp(r.out);
	chomp(r.err);
	clients_expect_pooling(r.status != 0, "pglease-run -p nosuchpool: psql connected (exit 0, "
			       "backend %s)", r.out);
	clients_expect_pooling(strstr(r.err, "pglease") != NULL && strstr(r.err, "nosuchpool") != NULL,
			       "pglease-run -p nosuchpool: the error names neither pglease nor the "
			       "pool: \"%s\"", r.err);
	clients_run_free(&r);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

/* Lines of text (the last one without its newline counts too). */
static int
count_lines(const char *text)
{
	int n = 0;

	for (const char *p = text; *p != '\0'; p++)
		n += *p == '\n' || p[1] == '\0';
	return n;
}

/*
 * The broker stopped (and, second, a socket path where nothing ever ran):
 * psql still works, on a direct connection, and says so in one line.
 */
START_TEST(test_broker_down_fallback)
{
	const char *argv[] = { NULL, "-X", "-At", "-c", "SELECT 'answer ' || 6 * 7", NULL };
	struct client_run direct;

	setup();
	argv[0] = psql;
	clients_run(&direct, NULL, NULL, NULL, argv, TIMEOUT_MS);
	clients_assert_status("psql", &direct, 0);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);

	struct testbroker nowhere = broker;
	snprintf(nowhere.socket, sizeof(nowhere.socket), "%s/no-broker-here.sock",
		 testutil_tmpdir());
	const struct testbroker *gone[] = { &broker, &nowhere };
	for (size_t i = 0; i < 2; i++) {
		struct client_run r;
		clients_run(&r, gone[i], NULL, NULL, argv, TIMEOUT_MS);
		clients_assert_status("psql, broker unreachable", &r, 0);
		clients_assert_same("psql, broker unreachable", direct.out, r.out, NULL);
		int lines = count_lines(r.err);
		chomp(r.err);
		clients_expect_pooling(strstr(r.err, "pglease") != NULL && lines == 1,
				       "broker unreachable (%s): expected one line naming pglease on "
				       "stderr, got \"%s\"", gone[i]->socket, r.err);
		clients_run_free(&r);
	}
	clients_run_free(&direct);
	clients_pooling_verdict();
}
END_TEST

/* PGLEASE_STRICT=1 (or pglease-run --strict), broker stopped: psql fails as libpq fails. */
START_TEST(test_broker_down_strict)
{
	setup();
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);

	const char *q[] = { psql, "-X", "-At", "-c", "SELECT 1", NULL };
	const char *flag[] = { clients_pglease_run(), "--strict", "-s", broker.socket, "--", psql,
			       "-X", "-At", "-c", "SELECT 1", NULL };
	struct client_run r[2];
	clients_run(&r[0], &broker, NULL, (const char *const[]){ "PGLEASE_STRICT=1", NULL }, q,
		    TIMEOUT_MS);
	clients_run(&r[1], NULL, NULL, NULL, flag, TIMEOUT_MS);
	const char *what[] = { "PGLEASE_STRICT=1", "pglease-run --strict" };
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(r[i].status != 127 && r[i].status < 128, "%s: psql did not run: %d %s",
			      what[i], r[i].status, r[i].err);
		chomp(r[i].out);
		chomp(r[i].err);
		/* psql's exit status for a connection that failed */
		clients_expect_pooling(r[i].status == 2, "%s, broker stopped: psql exited %d "
				       "(connected directly?), expected 2; it wrote \"%s\"", what[i],
				       r[i].status, r[i].out);
		clients_expect_pooling(strstr(r[i].err, "pglease") != NULL, "%s, broker stopped: "
				       "psql's error does not name pglease: \"%s\"", what[i], r[i].err);
		clients_run_free(&r[i]);
	}
	clients_pooling_verdict();
}
END_TEST

static Suite *
passthrough_suite(void)
{
	Suite *s = suite_create("passthrough");
	TCase *tc = tcase_create("passthrough");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_no_matching_pool);
	tcase_add_test(tc, test_matching_pool);
	tcase_add_test(tc, test_broker_down_fallback);
	tcase_add_test(tc, test_broker_down_strict);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	clients_init();
	return testutil_run_suite(passthrough_suite());
}
