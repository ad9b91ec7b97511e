/*
 * check_chaos.c - forked workers commit two-row transactions through
 * leases (one statement per row, each row tagged with the server's
 * transaction id) while the world misbehaves: workers SIGKILLed with a
 * transaction open, backends terminated, PostgreSQL restarted, the pool
 * reloaded smaller, the broker itself killed and restarted.  Afterwards:
 * every transaction is whole and in one server transaction, no server
 * transaction holds the rows of two (a backend handed on with a transaction
 * open would), nothing of a transaction that never sent COMMIT is there
 * (killed or failed), every commit a worker saw acknowledged is, the server
 * never saw more pool backends than allowed, the pool serves again, and the
 * broker holds no more descriptors than before.
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
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WORKERS = 6, MAX_SIZE = 4 };

#define POOL(max) \
	"{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 2; max_size = " #max "; " \
	"initial_backoff = 0.1; max_backoff = 0.5; acquire_timeout = 5.0; connect_timeout = 3.0; }"

#define TABLE "DROP TABLE IF EXISTS chaos; " \
	"CREATE TABLE chaos (tx bigint, worker int, n bigint, part int)"

static struct testbroker broker;
static volatile sig_atomic_t stop;

/*
 * Where a worker is in its transaction n, in memory it shares with the
 * parent: the parent reads it once it has killed the worker, to know
 * whether that transaction could have committed.
 */
enum phase {
	PHASE_IDLE,		/* no transaction of its own open */
	PHASE_OPEN,		/* BEGIN on its way or done; COMMIT not sent */
	PHASE_COMMIT_SENT,	/* COMMIT may have reached the server: either outcome */
	PHASE_COMMITTED,	/* the server acknowledged the COMMIT */
};

struct progress {
	int worker;
	int phase;
	long n;
};

/* What a worker reports on the pipe for each transaction it ended. */
enum outcome {
	OUTCOME_COMMITTED,	/* acknowledged: it must be there */
	OUTCOME_ABANDONED,	/* failed before COMMIT was sent: it must not */
	OUTCOME_UNKNOWN,	/* COMMIT sent, no acknowledgement */
};

struct report {
	int worker;
	int outcome;
	long n;
};

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
set_phase(struct progress *me, long n, int phase)
{
	__atomic_store_n(&me->n, n, __ATOMIC_SEQ_CST);
	__atomic_store_n(&me->phase, phase, __ATOMIC_SEQ_CST);
}

/* Runs one statement; true when it completed with the tag expected (NULL: any). */
static bool
exec_ok(PGconn *conn, const char *sql, const char *tag)
{
	PGresult *r = PQexec(conn, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK &&
		  (tag == NULL || strcmp(PQcmdStatus(r), tag) == 0);

	PQclear(r);
	return ok;
}

/*
 * One worker: transactions of two rows, each row its own statement, tagged
 * with the server's transaction id, the worker and n.  Between the rows it
 * dawdles a little, so that a kill often finds a transaction open.  Every
 * transaction it ends is reported on out.
 */
static void
worker(int id, struct progress *me, int out)
{
	struct sigaction sa = { .sa_handler = on_term };
	pgl_client *c = pgl_open(broker.socket);
	long n = 0;
	unsigned seed = (unsigned)getpid();

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	me->worker = id;
	set_phase(me, 0, PHASE_IDLE);
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
		struct report rep = { .worker = id, .n = ++n, .outcome = OUTCOME_ABANDONED };
		char sql[160];
		set_phase(me, n, PHASE_OPEN);
		bool ok = exec_ok(conn, "BEGIN", NULL);
		for (int part = 1; ok && part <= 2; part++) {
			snprintf(sql, sizeof(sql), "INSERT INTO chaos VALUES (txid_current(), %d, %ld, %d)",
				 id, n, part);
			ok = exec_ok(conn, sql, NULL);
			if (ok && part == 1)
				usleep((useconds_t)(rand_r(&seed) % 3000));
		}
		if (ok) {
			set_phase(me, n, PHASE_COMMIT_SENT);
			/* an aborted transaction "commits" as ROLLBACK: only COMMIT counts */
			if (exec_ok(conn, "COMMIT", "COMMIT")) {
				set_phase(me, n, PHASE_COMMITTED);
				rep.outcome = OUTCOME_COMMITTED;
			} else {
				rep.outcome = OUTCOME_UNKNOWN;
			}
		}
		if (write(out, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
			_exit(2);
		set_phase(me, n, PHASE_IDLE);
		pgl_release(l);
	}
	pgl_close(c);
	_exit(0);
}

/* A transaction as the checks name it: worker and n in one number. */
static long
key(int worker, long n)
{
	return (long)worker << 32 | n;
}

struct keys {
	long *v;
	size_t n, cap;
};

static void
keys_add(struct keys *k, long v)
{
	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 1024;
		k->v = realloc(k->v, k->cap * sizeof(long));
		ck_assert_ptr_nonnull(k->v);
	}
	k->v[k->n++] = v;
}

struct run {
	pid_t pid[WORKERS];
	struct progress *progress;	/* WORKERS records, shared with the workers */
	int next_id;
	int reports;			/* read end */
	struct keys committed;		/* acknowledged, or killed after the acknowledgement */
	struct keys absent;		/* abandoned before COMMIT, or killed before sending it */
	int killed, killed_open;
	int max_backends;
};

static void
spawn(struct run *r, int slot, int write_end)
{
	int id = ++r->next_id;

	r->pid[slot] = fork();
	ck_assert_int_ge(r->pid[slot], 0);
	if (r->pid[slot] == 0) {
		close(r->reports);
		worker(id, &r->progress[slot], write_end);
	}
}

static void
read_reports(struct run *r)
{
	struct report rep;

	while (read(r->reports, &rep, sizeof(rep)) == (ssize_t)sizeof(rep)) {
		if (rep.outcome == OUTCOME_COMMITTED)
			keys_add(&r->committed, key(rep.worker, rep.n));
		else if (rep.outcome == OUTCOME_ABANDONED)
			keys_add(&r->absent, key(rep.worker, rep.n));
	}
}

/*
 * SIGKILLs the worker in slot, preferably while it has a transaction open
 * (waiting up to a second for one), and records what the transaction it
 * was in must look like: absent when COMMIT was not sent.
 */
static void
kill_worker(struct run *r, int slot, int write_end)
{
	struct progress *p = &r->progress[slot];
	int64_t deadline = clock_mono_ms() + 1000;

	while (__atomic_load_n(&p->phase, __ATOMIC_SEQ_CST) != PHASE_OPEN &&
	       clock_mono_ms() < deadline)
		usleep(200);
	ck_assert_int_eq(kill(r->pid[slot], SIGKILL), 0);
	ck_assert_int_eq(waitpid(r->pid[slot], NULL, 0), r->pid[slot]);
	r->killed++;
	/* dead: what it wrote last is what it did last */
	if (p->phase == PHASE_OPEN) {
		keys_add(&r->absent, key(p->worker, p->n));
		r->killed_open++;
	} else if (p->phase == PHASE_COMMITTED) {
		keys_add(&r->committed, key(p->worker, p->n));
	}
	spawn(r, slot, write_end);
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

	r->progress = mmap(NULL, WORKERS * sizeof(struct progress), PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(r->progress != MAP_FAILED);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	r->reports = p[0];
	for (int i = 0; i < WORKERS; i++)
		spawn(r, i, p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);

	int64_t t0 = clock_mono_ms();
	for (;;) {
		double t = (double)(clock_mono_ms() - t0) / 1000.0;
		if (t >= seconds)
			break;
		action(r, t, p[1]);
		read_reports(r);
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
	read_reports(r);
	close(p[0]);
	munmap(r->progress, WORKERS * sizeof(struct progress));
}

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

/* The rows of sql (a count) on a direct connection: 0 or the test fails with what. */
static void
assert_none(const char *sql, const char *what)
{
	char out[64];

	ck_assert_msg(testutil_sql(sql, out, sizeof(out)), "%s: %s", sql, out);
	ck_assert_msg(strcmp(out, "0") == 0, "%s %s: %s", out, what, sql);
}

static void
check_invariants(struct run *r, int max_backends)
{
	/* every transaction whole: its two rows, in one server transaction */
	assert_none("SELECT count(*) FROM (SELECT 1 FROM chaos GROUP BY worker, n HAVING count(*) <> 2 "
		    "OR min(part) <> 1 OR max(part) <> 2 OR count(DISTINCT tx) <> 1) t",
		    "torn transactions");
	/* no server transaction holds the rows of two of ours: none was continued by another */
	assert_none("SELECT count(*) FROM (SELECT 1 FROM chaos GROUP BY tx "
		    "HAVING count(DISTINCT worker) > 1 OR count(DISTINCT n) > 1) t",
		    "server transactions hold the rows of two transactions");

	PGconn *d = PQconnectdb("");
	ck_assert_int_eq(PQstatus(d), CONNECTION_OK);
	PGresult *res = PQexec(d, "SELECT DISTINCT worker, n FROM chaos");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	size_t n = (size_t)PQntuples(res);
	long *have = malloc((n + 1) * sizeof(long));
	for (size_t i = 0; i < n; i++)
		have[i] = key(atoi(PQgetvalue(res, (int)i, 0)), atol(PQgetvalue(res, (int)i, 1)));
	PQclear(res);
	PQfinish(d);
	qsort(have, n, sizeof(long), cmp_long);
	/* every acknowledged commit present */
	for (size_t i = 0; i < r->committed.n; i++)
		ck_assert_msg(bsearch(&r->committed.v[i], have, n, sizeof(long), cmp_long) != NULL,
			      "acknowledged commit of worker %ld, n %ld is missing",
			      r->committed.v[i] >> 32, r->committed.v[i] & 0xffffffffL);
	/* nothing of a transaction that never sent COMMIT: killed, or failed */
	for (size_t i = 0; i < r->absent.n; i++)
		ck_assert_msg(bsearch(&r->absent.v[i], have, n, sizeof(long), cmp_long) == NULL,
			      "worker %ld, n %ld never sent COMMIT, and its rows are there",
			      r->absent.v[i] >> 32, r->absent.v[i] & 0xffffffffL);
	printf("check_chaos: %zu commits acknowledged, %zu transactions stored, %zu never "
	       "committed (%d of %d killed workers had one open), at most %d pool backends seen\n",
	       r->committed.n, n, r->absent.n, r->killed_open, r->killed, r->max_backends);
	ck_assert_msg(r->committed.n > 50, "too little work got done: %zu commits", r->committed.n);
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

static void
run_free(struct run *r)
{
	free(r->committed.v);
	free(r->absent.v);
}

/* --- the faults --------------------------------------------------------- */

static double next_kill, next_terminate;
static bool restarted, reloaded;

static void
faults(struct run *r, double t, int write_end)
{
	if (t >= next_kill) {
		kill_worker(r, rand() % WORKERS, write_end);
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
	ck_assert_msg(testutil_sql(TABLE, out, sizeof(out)), "%s", out);
	testbroker_start(&broker, NULL, POOL(4), true);
	int fds = testutil_count_fds(broker.pid);

	chaos(&r, 12.0, faults);
	check_invariants(&r, MAX_SIZE);
	/* the kills did hit open transactions: the checks above saw some */
	ck_assert_msg(r.killed_open >= 10, "only %d of %d kills found a transaction open",
		      r.killed_open, r.killed);
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
	run_free(&r);
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

	ck_assert_msg(testutil_sql(TABLE, out, sizeof(out)), "%s", out);
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
	run_free(&r);
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
