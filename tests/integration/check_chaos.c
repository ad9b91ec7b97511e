/*
 * check_chaos.c - forked workers commit two-row transactions through
 * leases while the world misbehaves: workers SIGKILLed mid-transaction,
 * backends terminated, PostgreSQL restarted, the pool reloaded smaller,
 * the broker itself killed and restarted.  Afterwards: every transaction
 * is whole, every commit a worker saw acknowledged is there, the server
 * never saw more pool backends than allowed, the pool serves again, and
 * the broker holds no more descriptors than before.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WORKERS = 6, MAX_SIZE = 4 };

#define POOL(max) \
	"{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 2; max_size = " #max "; " \
	"initial_backoff = 0.1; max_backoff = 0.5; acquire_timeout = 5.0; connect_timeout = 3.0; }"

static struct testbroker broker;
static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* One worker: transactions of two rows, each acknowledged commit reported on out. */
static void
worker(int id, int out)
{
	struct sigaction sa = { .sa_handler = on_term };
	pgl_client *c = pgl_open(broker.socket);
	long seq = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop) {
		pgl_lease *l = pgl_acquire(c, NULL, 3000);
		if (l == NULL) {
			usleep(20000);
			continue;
		}
		PGconn *conn = pgl_conn(l);
		if (conn == NULL) {
			pgl_discard(l);
			continue;
		}
		long tx = (long)id * 1000000 + ++seq;
		char sql[160];
		bool ok = true;
		snprintf(sql, sizeof(sql), "BEGIN; INSERT INTO chaos VALUES (%ld, 1); "
			 "INSERT INTO chaos VALUES (%ld, 2)", tx, tx);
		PGresult *r = PQexec(conn, sql);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok) {
			r = PQexec(conn, "COMMIT");
			ok = PQresultStatus(r) == PGRES_COMMAND_OK;
			PQclear(r);
			/* acknowledged: it must be there, whatever happens next */
			if (ok && write(out, &tx, sizeof(tx)) != sizeof(tx))
				_exit(2);
		}
		pgl_release(l);
	}
	pgl_close(c);
	_exit(0);
}

struct run {
	pid_t pid[WORKERS];
	int next_id;
	int acks;			/* read end */
	long *acked;
	size_t nacked, cap;
	int max_backends;
};

static void
spawn(struct run *r, int slot, int write_end)
{
	int id = ++r->next_id;

	r->pid[slot] = fork();
	ck_assert_int_ge(r->pid[slot], 0);
	if (r->pid[slot] == 0) {
		close(r->acks);
		worker(id, write_end);
	}
}

static void
drain_acks(struct run *r)
{
	long tx;

	while (read(r->acks, &tx, sizeof(tx)) == (ssize_t)sizeof(tx)) {
		if (r->nacked == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 4096;
			r->acked = realloc(r->acked, r->cap * sizeof(long));
		}
		r->acked[r->nacked++] = tx;
	}
}

static void
sample(struct run *r)
{
	long n = testutil_pool_backends();

	if (n > r->max_backends)
		r->max_backends = (int)n;
}

/* Runs the workers for seconds while action(t) makes trouble; then the checks. */
static void
chaos(struct run *r, double seconds, void (*action)(struct run *, double, int))
{
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	r->acks = p[0];
	for (int i = 0; i < WORKERS; i++)
		spawn(r, i, p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);

	int64_t t0 = clock_mono_ms();
	for (;;) {
		double t = (double)(clock_mono_ms() - t0) / 1000.0;
		if (t >= seconds)
			break;
		action(r, t, p[1]);
		drain_acks(r);
		sample(r);
		usleep(50000);
	}
	for (int i = 0; i < WORKERS; i++)
		kill(r->pid[i], SIGTERM);
	for (int i = 0; i < WORKERS; i++) {
		int status;
		ck_assert_int_eq(waitpid(r->pid[i], &status, 0), r->pid[i]);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, 0);
	drain_acks(r);
	close(p[0]);
}

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

static void
check_invariants(struct run *r, int max_backends)
{
	/* every transaction whole */
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM (SELECT tx FROM chaos GROUP BY tx "
					   "HAVING count(*) <> 2 OR min(part) <> 1 OR max(part) <> 2) t"), 0);
	/* every acknowledged commit present */
	PGconn *d = PQconnectdb("");
	ck_assert_int_eq(PQstatus(d), CONNECTION_OK);
	PGresult *res = PQexec(d, "SELECT DISTINCT tx FROM chaos ORDER BY tx");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	size_t n = (size_t)PQntuples(res);
	long *have = malloc((n + 1) * sizeof(long));
	for (size_t i = 0; i < n; i++)
		have[i] = atol(PQgetvalue(res, (int)i, 0));
	PQclear(res);
	PQfinish(d);
	for (size_t i = 0; i < r->nacked; i++)
		ck_assert_msg(bsearch(&r->acked[i], have, n, sizeof(long), cmp_long) != NULL,
			      "acknowledged commit %ld is missing", r->acked[i]);
	printf("check_chaos: %zu commits acknowledged, %zu transactions stored, at most %d pool "
	       "backends seen\n", r->nacked, n, r->max_backends);
	ck_assert_msg(r->nacked > 50, "too little work got done: %zu commits", r->nacked);
	ck_assert_msg(r->max_backends <= max_backends, "%d pool backends (max %d)",
		      r->max_backends, max_backends);
	free(have);

	/* the pool serves again, within the backoff window */
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, 10000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
}

/* --- the faults --------------------------------------------------------- */

static double next_kill, next_terminate;
static bool restarted, reloaded;

static void
faults(struct run *r, double t, int write_end)
{
	if (t >= next_kill) {
		int victim = rand() % WORKERS;
		kill(r->pid[victim], SIGKILL);
		waitpid(r->pid[victim], NULL, 0);
		spawn(r, victim, write_end);
		next_kill = t + 0.4;
	}
	if (t >= next_terminate) {
		testutil_sql_long("SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM "
				  "pg_stat_activity WHERE application_name = 'pgleased' "
				  "ORDER BY random() LIMIT 1) v");
		next_terminate = t + 1.1;
	}
	if (!restarted && t >= 4.0) {
		testutil_pg_ctl("restart");
		restarted = true;
	}
	if (!reloaded && t >= 8.0) {
		testbroker_write_config(&broker, NULL, POOL(2));
		ck_assert_int_eq(kill(broker.pid, SIGHUP), 0);
		reloaded = true;
	}
}

START_TEST(test_chaos)
{
	struct run r = { .next_id = 0 };
	char out[128];

	srand((unsigned)getpid());
	ck_assert(testutil_sql("DROP TABLE IF EXISTS chaos; CREATE TABLE chaos (tx bigint, part int)", out, sizeof(out)));
	testbroker_start(&broker, NULL, POOL(4), true);
	int fds = testutil_count_fds(broker.pid);

	chaos(&r, 12.0, faults);
	check_invariants(&r, MAX_SIZE);
	ck_assert(testbroker_log_has(&broker, "reloaded"));
	ck_assert(testbroker_log_has(&broker, "lease orphaned"));

	/* back to its descriptors: the pool of 2 and its listener */
	int64_t deadline = clock_mono_ms() + 10000;
	int now;
	while ((now = testutil_count_fds(broker.pid)) > fds) {
		ck_assert_msg(clock_mono_ms() < deadline, "broker fds %d, at start %d", now, fds);
		usleep(50000);
	}
	ck_assert_int_le(testutil_pool_backends(), 2);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	free(r.acked);
}
END_TEST

/* --- the broker killed and restarted under load ------------------------- */

static bool broker_killed;

static void
broker_crash(struct run *r, double t, int write_end)
{
	(void)r;
	(void)write_end;
	if (!broker_killed && t >= 3.0) {
		ck_assert_int_eq(testbroker_stop(&broker, SIGKILL), 128 + SIGKILL);
		/* until the holders finish, the host may hold max_size + their leases */
		testbroker_restart(&broker, false);
		broker_killed = true;
	}
}

START_TEST(test_broker_killed_under_load)
{
	struct run r = { .next_id = 0 };
	char out[128];

	ck_assert(testutil_sql("DROP TABLE IF EXISTS chaos; CREATE TABLE chaos (tx bigint, part int)", out, sizeof(out)));
	testbroker_start(&broker, NULL, POOL(4), true);
	chaos(&r, 7.0, broker_crash);
	check_invariants(&r, 2 * MAX_SIZE);
	ck_assert(testbroker_log_has(&broker, "replacing the stale socket"));

	/* afterwards at most max_size */
	int64_t deadline = clock_mono_ms() + 10000;
	while (testutil_pool_backends() > MAX_SIZE) {
		ck_assert_msg(clock_mono_ms() < deadline, "%ld pool backends",
			      testutil_pool_backends());
		usleep(50000);
	}
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	free(r.acked);
}
END_TEST

static Suite *
chaos_suite(void)
{
	Suite *s = suite_create("chaos");
	TCase *tc = tcase_create("chaos");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_chaos);
	tcase_add_test(tc, test_broker_killed_under_load);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(chaos_suite());
}
