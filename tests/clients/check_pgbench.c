/*
 * check_pgbench.c - pgbench, unmodified, under pglease-run: pgbench -i,
 * then 8 clients (2 threads) connecting per transaction (-C) for 3 s, select
 * only (-S) and TPC-B, with a pool of 4.  No transaction fails, the output
 * has the shape of a direct run's (numbers masked), TPC-B's balances add up,
 * and apart: the leases counted at least one per transaction, and the
 * server never had more than max_size backends of the pool.
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

/*
 * As many backends as clients: pgbench runs several clients on one thread,
 * and a connect waits for a backend, so a pool smaller than its clients
 * could wait on a backend that another client of the same thread holds.
 */
#define SIZE 8
#define CLIENTS "8"
#define SECONDS "3"
#define TIMEOUT_MS 60000

static struct testbroker broker;
static const char *pgbench;

static void
setup(void)
{
	pgbench = strdup(clients_program("pgbench", "postgresql-client"));
	clients_broker_start(&broker, SIZE, NULL, NULL);
}

/* The count after "label: " in pgbench's output, -1 when absent. */
static long
report_value(const char *out, const char *label)
{
	const char *p = strstr(out, label);

	return p != NULL ? atol(p + strlen(label)) : -1;
}

/*
 * Runs pgbench args through the shim (counting backends) and directly;
 * asserts both succeeded with no failed transaction and wrote the same but
 * for numbers.  Expects a lease per transaction of the pooled run.
 */
static void
bench(const char *what, const char *const *args)
{
	const char *argv[32] = { pgbench };
	struct client_run pooled, direct;
	size_t n = 1;

	for (size_t i = 0; args[i] != NULL; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	pgl_pool_stats before = clients_stats(&broker);
	clients_run_both(&pooled, &direct, &broker, SIZE, what, NULL, NULL, NULL, argv, TIMEOUT_MS,
			 1);
	pgl_pool_stats after = clients_stats(&broker);
	clients_assert_status(what, &direct, 0);
	clients_assert_status(what, &pooled, 0);
	long done = report_value(pooled.out, "number of transactions actually processed: ");
	long failed = report_value(pooled.out, "number of failed transactions: ");
	ck_assert_msg(done > 0 && failed == 0, "%s through pglease-run: %ld transactions, %ld "
		      "failed:\n%s\n-- stderr:\n%s", what, done, failed, pooled.out, pooled.err);
	ck_assert_msg(report_value(direct.out, "number of failed transactions: ") == 0, "%s: %s",
		      what, direct.out);

	char *p = clients_mask_numbers(pooled.out), *d = clients_mask_numbers(direct.out);
	clients_assert_same(what, d, p, NULL);
	free(p);
	free(d);
	p = clients_mask_numbers(pooled.err);
	d = clients_mask_numbers(direct.err);
	clients_assert_same(what, d, p, NULL);
	free(p);
	free(d);

	/* -C: one connection, so one lease, per transaction (and one per client for the vacuum). */
	clients_expect_pooling(after.leases - before.leases >= (uint64_t)done,
			       "%s: %ld transactions, each on a connection of its own, but only "
			       "%llu leases", what, done,
			       (unsigned long long)(after.leases - before.leases));
	clients_run_free(&pooled);
	clients_run_free(&direct);
}

/* pgbench -i, then -C -S. */
START_TEST(test_select_only)
{
	struct client_run pooled, direct;
	const char *init[] = { NULL, "-i", "-s", "1", "-q", NULL };

	setup();
	init[0] = pgbench;
	/* Once first, so that both runs compared find the tables to drop (the same output). */
	clients_run(&direct, NULL, NULL, NULL, init, TIMEOUT_MS);
	clients_assert_status("pgbench -i", &direct, 0);
	clients_run_free(&direct);
	clients_run_both(&pooled, &direct, &broker, SIZE, "pgbench -i", NULL, NULL, NULL, init,
			 TIMEOUT_MS, 1);
	clients_assert_status("pgbench -i (direct)", &direct, 0);
	clients_assert_status("pgbench -i through pglease-run", &pooled, 0);
	char *p = clients_mask_numbers(pooled.err), *d = clients_mask_numbers(direct.err);
	clients_assert_same("pgbench -i", d, p, NULL);
	free(p);
	free(d);
	clients_assert_same("pgbench -i (stdout)", direct.out, pooled.out, NULL);
	clients_run_free(&pooled);
	clients_run_free(&direct);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM pgbench_accounts"), 100000);

	bench("pgbench -C -S", (const char *const[]){ "-C", "-S", "-c", CLIENTS, "-j", "2", "-T",
						      SECONDS, NULL });
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

/* pgbench -C, TPC-B: every transaction whole, the balances agree. */
START_TEST(test_tpcb)
{
	struct client_run r;
	const char *init[] = { NULL, "-i", "-s", "1", "-q", NULL };

	setup();
	init[0] = pgbench;
	clients_run(&r, NULL, NULL, NULL, init, TIMEOUT_MS);
	clients_assert_status("pgbench -i", &r, 0);
	clients_run_free(&r);

	/* -n: no vacuum, which would truncate pgbench_history between the runs */
	bench("pgbench -C (TPC-B)", (const char *const[]){ "-n", "-C", "-c", CLIENTS, "-j", "2",
							   "-T", SECONDS, NULL });
	long history = testutil_sql_long("SELECT count(*) FROM pgbench_history");
	ck_assert_int_gt(history, 0);
	char out[256];
	ck_assert(testutil_sql("SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || "
			       "(SELECT sum(tbalance) FROM pgbench_tellers) || ' ' || "
			       "(SELECT sum(bbalance) FROM pgbench_branches) || ' ' || "
			       "(SELECT sum(delta) FROM pgbench_history)", out, sizeof(out)));
	long a, t, b, h;
	ck_assert_int_eq(sscanf(out, "%ld %ld %ld %ld", &a, &t, &b, &h), 4);
	ck_assert_msg(a == t && t == b && b == h, "balances disagree (accounts tellers branches "
		      "history): %s", out);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

static Suite *
pgbench_suite(void)
{
	Suite *s = suite_create("pgbench");
	TCase *tc = tcase_create("pgbench");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_select_only);
	tcase_add_test(tc, test_tpcb);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	clients_init();
	return testutil_run_suite(pgbench_suite());
}
