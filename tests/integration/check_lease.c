/*
 * check_lease.c - leasing through the public API against a real pgleased
 * and a real PostgreSQL: many forked workers, exhaustion and FIFO order,
 * timeouts, unknown pools, accounting, descriptors.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/shm.h"
#include "common/wire.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define POOL(min, max) \
	"{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = " #min "; max_size = " #max \
	"; acquire_timeout = 5.0; initial_backoff = 0.1; max_backoff = 1.0; }"

static struct testbroker broker;



/*
 * Reads pool 0's counters once no lease is out: a RELEASE is not answered,
 * so the broker may still be reading the last one.
 */
static void
stats_settled(pgl_pool_stats *st)
{
	int64_t deadline = clock_mono_ms() + 5000;

	for (;;) {
		ck_assert_int_ge(pgl_stats(broker.shm, st, 1), 1);
		if (st->leased == 0)
			return;
		ck_assert_msg(clock_mono_ms() < deadline, "%d leases still out", st->leased);
		usleep(2000);
	}
}

/* --- many workers ------------------------------------------------------- */

enum { WORKERS = 8, CYCLES = 150, MAX = 3 };

START_TEST(test_many_workers)
{
	int pids[2];
	pid_t w[WORKERS];

	testbroker_start(&broker, NULL, POOL(1, 3), true);
	ck_assert_int_eq(pipe(pids), 0);
	for (int i = 0; i < WORKERS; i++) {
		w[i] = fork();
		ck_assert_int_ge(w[i], 0);
		if (w[i] == 0) {
			close(pids[0]);
			pgl_client *c = pgl_open(broker.socket);
			for (int k = 0; k < CYCLES; k++) {
				pgl_lease *l = pgl_acquire(c, "main", -1);
				REQUIRE(l != NULL, "acquire: %s", pgl_error(c));
				char out[64], st;
				REQUIRE(testutil_raw_query(pgl_fd(l), "SELECT pg_backend_pid()", out,
							   sizeof(out), &st), "query: %s", out);
				REQUIRE(atoi(out) == pgl_backend_pid(l), "pid %s != %d", out,
					pgl_backend_pid(l));
				REQUIRE(st == 'I', "status %c", st);
				int pid = pgl_backend_pid(l);
				REQUIRE(write(pids[1], &pid, sizeof(pid)) == sizeof(pid), "pipe");
				REQUIRE(pgl_release(l) == 0, "release: %s", pgl_error(c));
			}
			pgl_close(c);
			_exit(0);
		}
	}
	close(pids[1]);

	/* Meanwhile: the server never sees more than max_size pool backends. */
	int seen[64] = { 0 }, nseen = 0, got, max_backends = 0, total = 0;
	int64_t next_sample = 0;
	for (;;) {
		ssize_t n = read(pids[0], &got, sizeof(got));
		if (n <= 0)
			break;
		total++;
		bool known = false;
		for (int i = 0; i < nseen; i++)
			known |= seen[i] == got;
		if (!known && nseen < 64)
			seen[nseen++] = got;
		if (clock_mono_ms() >= next_sample) {
			long b = testutil_pool_backends();
			if (b > max_backends)
				max_backends = (int)b;
			next_sample = clock_mono_ms() + 20;
		}
	}
	for (int i = 0; i < WORKERS; i++)
		testutil_reap(w[i], "worker");
	ck_assert_int_eq(total, WORKERS * CYCLES);
	ck_assert_msg(nseen >= 1 && nseen <= MAX, "%d distinct backends for max_size %d", nseen, MAX);
	ck_assert_msg(max_backends <= MAX, "the server saw %d pool backends", max_backends);

	/* The accounting agrees: every lease counted, states adding up. */
	pgl_pool_stats st[1];
	stats_settled(st);
	ck_assert_str_eq(st[0].name, "main");
	ck_assert_uint_eq(st[0].leases, WORKERS * CYCLES);
	ck_assert_int_eq(st[0].leased, 0);
	ck_assert_int_le(st[0].size, MAX);
	ck_assert_int_le(st[0].idle, st[0].size);
	ck_assert_uint_eq(st[0].orphaned_leases, 0);

	/* the slot records add up to the pool's gauges */
	struct shm_snapshot snap;
	ck_assert_int_eq(shm_snapshot(broker.shm, &snap), 0);
	int idle = 0, open = 0;
	uint64_t served = 0;
	for (uint32_t i = 0; i < snap.hdr.nslots; i++) {
		if (snap.slots[i].pool != 0)
			continue;
		idle += snap.slots[i].state == SHM_SLOT_IDLE;
		open += snap.slots[i].state != SHM_SLOT_EMPTY;
		served += snap.slots[i].lease_count;
	}
	ck_assert_int_eq(idle, snap.pools[0].idle);
	ck_assert_int_eq(open, snap.pools[0].size);
	ck_assert_uint_eq(served, WORKERS * CYCLES);
	shm_snapshot_free(&snap);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* --- exhaustion, FIFO, timeouts ----------------------------------------- */

START_TEST(test_exhaustion_timeout)
{
	testbroker_start(&broker, NULL, POOL(2, 2), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *a = pgl_acquire(c, NULL, -1);
	pgl_lease *b = pgl_acquire(c, "main", -1);

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_ne(pgl_backend_pid(a), pgl_backend_pid(b));

	/* one more, from another client: times out after 300 ms, not much later */
	pgl_client *d = pgl_open(broker.socket);
	int64_t t0 = clock_mono_ms();
	ck_assert_ptr_null(pgl_acquire(d, "main", 300));
	int64_t waited = clock_mono_ms() - t0;
	ck_assert_int_eq(pgl_errcode(d), PGL_ETIMEOUT);
	ck_assert_msg(strstr(pgl_error(d), "main") != NULL, "%s", pgl_error(d));
	ck_assert_int_ge(waited, 300);
	ck_assert_int_lt(waited, 1000);

	/* timeout 0: fails at once */
	t0 = clock_mono_ms();
	ck_assert_ptr_null(pgl_acquire(d, "main", 0));
	ck_assert_int_eq(pgl_errcode(d), PGL_ETIMEOUT);
	ck_assert_int_lt(clock_mono_ms() - t0, 100);

	ck_assert_int_eq(pgl_release(a), 0);
	pgl_lease *e = pgl_acquire(d, "main", 2000);
	ck_assert_msg(e != NULL, "%s", pgl_error(d));
	ck_assert_int_eq(pgl_release(e), 0);
	ck_assert_int_eq(pgl_release(b), 0);

	pgl_pool_stats st;
	stats_settled(&st);
	ck_assert_uint_eq(st.acquire_timeouts, 2);
	ck_assert_uint_eq(st.leases, 3);
	pgl_close(c);
	pgl_close(d);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_fifo_order)
{
	enum { N = 4 };
	int order[2];
	pid_t w[N];

	testbroker_start(&broker, NULL, POOL(1, 1), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *held = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(held);
	ck_assert_int_eq(pipe(order), 0);

	for (int i = 0; i < N; i++) {
		w[i] = fork();
		ck_assert_int_ge(w[i], 0);
		if (w[i] == 0) {
			close(order[0]);
			pgl_client *wc = pgl_open(broker.socket);
			pgl_lease *l = pgl_acquire(wc, "main", 10000);
			REQUIRE(l != NULL, "acquire: %s", pgl_error(wc));
			REQUIRE(write(order[1], &i, sizeof(i)) == sizeof(i), "pipe");
			usleep(20000);
			REQUIRE(pgl_release(l) == 0, "release: %s", pgl_error(wc));
			_exit(0);
		}
		/* Each is queued before the next one starts. */
		int64_t deadline = clock_mono_ms() + 5000;
		for (;;) {
			pgl_pool_stats st;
			ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
			if (st.waiting == i + 1)
				break;
			ck_assert_msg(clock_mono_ms() < deadline, "waiter %d not queued", i);
			usleep(2000);
		}
	}
	close(order[1]);
	ck_assert_int_eq(pgl_release(held), 0);
	for (int i = 0; i < N; i++) {
		int who;
		ck_assert_int_eq(read(order[0], &who, sizeof(who)), sizeof(who));
		ck_assert_int_eq(who, i);
	}
	for (int i = 0; i < N; i++)
		testutil_reap(w[i], "waiter");
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_unknown_pool_and_errors)
{
	testbroker_start(&broker, NULL, POOL(1, 2), true);
	pgl_client *c = pgl_open(broker.socket);

	ck_assert_ptr_null(pgl_acquire(c, "nope", -1));
	ck_assert_int_eq(pgl_errcode(c), PGL_ENOPOOL);
	ck_assert_msg(strstr(pgl_error(c), "no pool named \"nope\"") != NULL, "%s", pgl_error(c));

	char longname[80];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_ptr_null(pgl_acquire(c, longname, -1));
	ck_assert_int_eq(pgl_errcode(c), PGL_EINVAL);
	ck_assert_ptr_null(pgl_acquire(c, "main", -5));
	ck_assert_int_eq(pgl_errcode(c), PGL_EINVAL);

	/* the connection is still good */
	pgl_lease *l = pgl_acquire(c, "main", -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_errcode(c), PGL_OK);
	ck_assert_ptr_nonnull(pgl_param(l, "server_version"));
	ck_assert_str_eq(pgl_param(l, "client_encoding"), "UTF8");
	ck_assert_ptr_null(pgl_param(l, "no_such_parameter"));
	ck_assert_int_eq(pgl_release(l), 0);

	/* no broker there */
	pgl_client *none = pgl_open("/nonexistent/pgl.sock");
	ck_assert_ptr_null(pgl_acquire(none, NULL, -1));
	ck_assert_int_eq(pgl_errcode(none), PGL_EBROKER);
	ck_assert_msg(strstr(pgl_error(none), "/nonexistent/pgl.sock") != NULL, "%s",
		      pgl_error(none));
	pgl_close(none);

	/* $PGLEASE_SOCKET */
	setenv("PGLEASE_SOCKET", broker.socket, 1);
	pgl_client *env = pgl_open(NULL);
	l = pgl_acquire(env, NULL, 1000);
	ck_assert_msg(l != NULL, "%s", pgl_error(env));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(env);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_lease_limit)
{
	testbroker_start(&broker, "max_leases_per_client = 2; max_clients = 2;", POOL(1, 4), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *a = pgl_acquire(c, NULL, -1), *b = pgl_acquire(c, NULL, -1);

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_null(pgl_acquire(c, NULL, -1));
	ck_assert_int_eq(pgl_errcode(c), PGL_ELIMIT);
	ck_assert_msg(strstr(pgl_error(c), "max_leases_per_client") != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(a), 0);
	ck_assert_int_eq(pgl_discard(b), 0);

	/* max_clients: the third client is told so, the first two are served on */
	pgl_client *c2 = pgl_open(broker.socket), *c3 = pgl_open(broker.socket);
	a = pgl_acquire(c2, NULL, -1);
	ck_assert_msg(a != NULL, "%s", pgl_error(c2));
	ck_assert_ptr_null(pgl_acquire(c3, NULL, -1));
	ck_assert_int_eq(pgl_errcode(c3), PGL_ELIMIT);
	ck_assert_msg(strstr(pgl_error(c3), "max_clients") != NULL, "%s", pgl_error(c3));
	ck_assert(testbroker_log_has(&broker, "max_clients=2 reached"));
	ck_assert_int_eq(pgl_release(a), 0);
	b = pgl_acquire(c, NULL, -1);
	ck_assert_msg(b != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(b), 0);
	pgl_close(c3);
	pgl_close(c2);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* --- descriptors and accounting ----------------------------------------- */

START_TEST(test_no_fd_leak)
{
	testbroker_start(&broker, NULL, POOL(2, 2), true);
	int broker_fds = testutil_count_fds(broker.pid);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);

	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(pgl_release(l), 0);
	int before = testutil_count_fds(0);
	for (int i = 0; i < 2000; i++) {
		l = pgl_acquire(c, NULL, -1);
		ck_assert_msg(l != NULL, "cycle %d: %s", i, pgl_error(c));
		ck_assert_int_eq(pgl_release(l), 0);
	}
	ck_assert_int_eq(testutil_count_fds(0), before);
	pgl_close(c);

	/* many clients come and go; the broker's descriptors come back */
	for (int i = 0; i < 100; i++) {
		pid_t p = fork();
		ck_assert_int_ge(p, 0);
		if (p == 0) {
			pgl_client *wc = pgl_open(broker.socket);
			pgl_lease *wl = pgl_acquire(wc, NULL, -1);
			REQUIRE(wl != NULL, "%s", pgl_error(wc));
			/* released; released by the atexit handler; orphaned */
			if (i % 3 == 0)
				REQUIRE(pgl_release(wl) == 0, "%s", pgl_error(wc));
			if (i % 3 == 1)
				exit(0);
			_exit(0);
		}
		testutil_reap(p, "client");
	}
	ck_assert(testbroker_wait_idle(&broker, 0, 2, 10000));
	/* the last clients' exits may still be on their way to the broker */
	int64_t deadline = clock_mono_ms() + 5000;
	while (testutil_count_fds(broker.pid) != broker_fds) {
		ck_assert_msg(clock_mono_ms() < deadline, "broker fds %d, baseline %d",
			      testutil_count_fds(broker.pid), broker_fds);
		usleep(20000);
	}
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_stat_tool)
{
	char out[16384];

	testbroker_start(&broker, NULL, POOL(1, 3), true);
	pgl_client *c = pgl_open(broker.socket);
	for (int i = 0; i < 7; i++) {
		pgl_lease *l = pgl_acquire(c, NULL, -1);
		ck_assert_ptr_nonnull(l);
		ck_assert_int_eq(pgl_release(l), 0);
	}
	pgl_lease *held = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(held);

	char *json[] = { (char *)TOP_BUILDDIR "/pglease-stat", (char *)"-n", broker.shm,
			 (char *)"--json", NULL };
	ck_assert_int_eq(testutil_run(json, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "\"name\":\"main\"") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\"leases\":8,") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\"leased\":1,") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\"state\":\"leased\"") != NULL, "%s", out);
	char holder[64];
	snprintf(holder, sizeof(holder), "\"holder_pid\":%d", (int)getpid());
	ck_assert_msg(strstr(out, holder) != NULL, "%s", out);

	char *table[] = { (char *)TOP_BUILDDIR "/pglease-stat", (char *)"-c", broker.conf, NULL };
	ck_assert_int_eq(testutil_run(table, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "POOL") != NULL && strstr(out, "main") != NULL, "%s", out);

	char *prom[] = { (char *)TOP_BUILDDIR "/pglease-stat", (char *)"-n", broker.shm,
			 (char *)"--prometheus", NULL };
	ck_assert_int_eq(testutil_run(prom, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "pglease_pool_leases_total{pool=\"main\"} 8") != NULL, "%s", out);

	/* read-only: a user who may only read the segment (only root can switch to one) */
	ck_assert_msg(geteuid() == 0, "test_stat_tool reads the segment as another user and needs "
		      "root (CI runs the suite as root)");
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		testutil_become(testutil_nobody_uid(), testutil_nobody_gid(), NULL, 0);
		REQUIRE(shm_open(broker.shm, O_RDWR, 0) < 0 && errno == EACCES,
			"nobody may write %s", broker.shm);
		pgl_pool_stats st;
		REQUIRE(pgl_stats(broker.shm, &st, 1) == 1, "pgl_stats as nobody: %s",
			strerror(errno));
		REQUIRE(st.leases == 8 && st.leased == 1, "leases %llu leased %d",
			(unsigned long long)st.leases, st.leased);
		_exit(0);
	}
	testutil_reap(p, "reader as nobody");
	ck_assert_int_eq(pgl_release(held), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);

	/* broker gone: exit 2 and a sentence */
	ck_assert_int_eq(testutil_run(json, out, sizeof(out)), 2);
	ck_assert_msg(strstr(out, "no shared memory segment") != NULL, "%s", out);
	pgl_pool_stats st;
	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* validate_after = 0 validates every borrow; a failing check replaces the backend. */
START_TEST(test_validation)
{
	char out[128];

	ck_assert(testutil_sql("CREATE TABLE validations (pool text)", out, sizeof(out)));
	ck_assert(testutil_sql("CREATE SEQUENCE sick_seq", out, sizeof(out)));
	testbroker_start(&broker, NULL, "{ name = \"every\"; conninfo = \"$CONNINFO\"; "
			 "min_size = 1; max_size = 1; validate_after = 0; "
			 "health_query = \"INSERT INTO validations VALUES ('every')\"; },"
			 "{ name = \"lazy\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 1; "
			 "validate_after = 60; "
			 "health_query = \"INSERT INTO validations VALUES ('lazy')\"; },"
			 "{ name = \"sick\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 1; "
			 "validate_after = 0; "
			 /* fails the first time only: nextval() is not rolled back */
			 "health_query = \"SELECT 1/(nextval('sick_seq') - 1)\"; },"
			 "{ name = \"dead\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 1; "
			 "validate_after = 0; health_query = \"SELECT 1/0\"; "
			 "initial_backoff = 0.2; max_backoff = 0.4; }", true);
	pgl_client *c = pgl_open(broker.socket);
	for (int i = 0; i < 5; i++) {
		pgl_lease *l = pgl_acquire(c, "every", -1);
		ck_assert_msg(l != NULL, "%s", pgl_error(c));
		ck_assert_int_eq(pgl_release(l), 0);
		l = pgl_acquire(c, "lazy", -1);
		ck_assert_msg(l != NULL, "%s", pgl_error(c));
		ck_assert_int_eq(pgl_release(l), 0);
	}
	/* every borrow of "every" ran the query once; "lazy" never did */
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM validations WHERE pool = 'every'"), 5);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM validations WHERE pool = 'lazy'"), 0);

	/* a failed health check: that backend is replaced, the acquire still served */
	pgl_lease *l = pgl_acquire(c, "sick", 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	int pid = pgl_backend_pid(l);
	ck_assert_int_eq(pgl_release(l), 0);
	/*
	 * A pool whose checks always fail: a no-wait acquire is answered at
	 * once, the leases held elsewhere live on, and the broker backs off
	 * instead of reconnecting in a loop.
	 */
	pgl_lease *held = pgl_acquire(c, "lazy", -1);
	ck_assert_ptr_nonnull(held);
	int64_t t0 = clock_mono_ms();
	ck_assert_ptr_null(pgl_acquire(c, "dead", 0));
	ck_assert_int_eq(pgl_errcode(c), PGL_ETIMEOUT);
	ck_assert_int_lt(clock_mono_ms() - t0, 1000);
	ck_assert_ptr_null(pgl_acquire(c, "dead", 1000));
	ck_assert_int_eq(pgl_errcode(c), PGL_EUNAVAILABLE);
	ck_assert_msg(strstr(pgl_error(c), "health check failed") != NULL, "%s", pgl_error(c));
	char ok[16], status;
	ck_assert(testutil_raw_query(pgl_fd(held), "SELECT 'alive'", ok, sizeof(ok), &status));
	ck_assert_str_eq(ok, "alive");
	ck_assert_int_eq(pgl_release(held), 0);

	pgl_pool_stats st[4];
	ck_assert_int_eq(pgl_stats(broker.shm, st, 4), 4);
	ck_assert_msg(st[3].health_check_failures <= 8, "%llu failed checks in about 1.5 s",
		      (unsigned long long)st[3].health_check_failures);
	ck_assert_str_eq(st[2].name, "sick");
	ck_assert_uint_eq(st[2].health_check_failures, 1);
	ck_assert_uint_eq(st[0].health_check_failures, 0);
	ck_assert(testbroker_log_has(&broker, "health check failed pool=sick"));
	char sql[96];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
	ck_assert_int_eq(testutil_sql_long(sql), 1);	/* the fresh one that served */
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* A multi-host conninfo whose first host fails: libpq moves on, so does the broker. */
START_TEST(test_multi_host_conninfo)
{
	char pools[512];

	snprintf(pools, sizeof(pools), "{ name = \"multi\"; conninfo = \"host=%s,%s port=1,%s "
		 "user=%s dbname=%s\"; min_size = 2; max_size = 2; connect_timeout = 3.0; }",
		 getenv("PGHOST"), getenv("PGHOST"), getenv("PGPORT"), getenv("PGUSER"),
		 getenv("PGDATABASE"));
	testbroker_start(&broker, NULL, pools, true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_pool_stats st;
	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	ck_assert_uint_eq(st.connect_failures, 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* Out of descriptors when a GRANT arrives: that acquire fails, nothing else does. */
START_TEST(test_grant_fd_dropped)
{
	testbroker_start(&broker, NULL, POOL(2, 2), true);
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		pgl_client *c = pgl_open(broker.socket);
		pgl_lease *held = pgl_acquire(c, NULL, -1);
		REQUIRE(held != NULL, "%s", pgl_error(c));
		struct rlimit old, none;
		REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit");
		int open_now = testutil_count_fds(0);
		/* every descriptor number up to the limit taken: none left for a GRANT */
		none.rlim_cur = (rlim_t)open_now;
		none.rlim_max = old.rlim_max;
		int highest = 0;
		for (int fd = 0; fd < open_now + 8; fd++)
			if (fcntl(fd, F_GETFD) >= 0)
				highest = fd;
		none.rlim_cur = (rlim_t)highest + 1;
		for (int fd = 0; fd <= highest; fd++)
			if (fcntl(fd, F_GETFD) < 0)
				REQUIRE(open("/dev/null", O_RDONLY) >= 0, "fill");
		REQUIRE(setrlimit(RLIMIT_NOFILE, &none) == 0, "setrlimit");
		pgl_lease *l = pgl_acquire(c, NULL, -1);
		REQUIRE(l == NULL && pgl_errcode(c) == PGL_EBROKER, "acquire: %p %d %s",
			(void *)l, pgl_errcode(c), pgl_error(c));
		REQUIRE(strstr(pgl_error(c), "too many open files") != NULL, "%s", pgl_error(c));
		REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0, "setrlimit back");
		char out[16], st;
		REQUIRE(testutil_raw_query(pgl_fd(held), "SELECT 'held'", out, sizeof(out), &st),
			"the held lease died: %s", out);
		REQUIRE(pgl_release(held) == 0, "%s", pgl_error(c));
		l = pgl_acquire(c, NULL, -1);
		REQUIRE(l != NULL, "after: %s", pgl_error(c));
		REQUIRE(pgl_release(l) == 0, "%s", pgl_error(c));
		_exit(0);
	}
	testutil_reap(p, "worker out of descriptors");
	pgl_pool_stats st;
	stats_settled(&st);
	ck_assert_uint_eq(st.orphaned_leases, 0);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* --- a hostile broker ------------------------------------------------------ */

/* A socket path for a hostile broker of this test. */
static const char *
hostile_path(void)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/hostile.%d.sock", testutil_tmpdir(), (int)getpid());
	return path;
}

/* Reads the next ACQUIRE; its request id. */
static uint64_t
expect_acquire(int conn)
{
	struct wire_msg m;
	uint8_t buf[WIRE_MESSAGE_MAX];

	REQUIRE(testutil_wire_recv(conn, &m, buf, sizeof(buf), NULL, 10000), "no request");
	REQUIRE(m.h.type == PGL_MSG_LEASE_ACQUIRE, "%s instead of ACQUIRE",
		wire_type_name(m.h.type));
	return m.h.request_id;
}

static void
send_error(int conn, uint64_t id, const char *text, int fd)
{
	struct wire_msg e = { .h = { .type = PGL_MSG_SESSION_ERROR, .request_id = id } };

	e.u.error.code = PGL_ETIMEOUT;
	snprintf(e.u.error.message, sizeof(e.u.error.message), "%s", text);
	REQUIRE(testutil_wire_send_fd(conn, &e, fd), "ERROR not sent");
}

/* Answers ACQUIREs with ERRORs: plain, with a descriptor, then a session ERROR with one. */
static void
errors_with_fds(int conn, void *arg)
{
	int p[2];

	(void)arg;
	REQUIRE(pipe2(p, O_CLOEXEC) == 0, "pipe");
	send_error(conn, expect_acquire(conn), "plain", -1);
	send_error(conn, expect_acquire(conn), "with a descriptor", p[0]);
	/* an answer to no request, with a descriptor, before the real one */
	send_error(conn, 4242, "stray", p[0]);
	send_error(conn, expect_acquire(conn), "the real one", -1);
	(void)expect_acquire(conn);
	send_error(conn, 0, "session over, with a descriptor", p[0]);
	testutil_wait_eof(conn, 10000);
}

/* Answers the first ACQUIRE after 2.5 s with a GRANT, then takes the RELEASE. */
static void
grant_late(int conn, void *arg)
{
	int p[2];

	(void)arg;
	uint64_t id = expect_acquire(conn);
	usleep(2500000);
	REQUIRE(pipe2(p, O_CLOEXEC) == 0, "pipe");
	struct wire_msg g = { .h = { .type = PGL_MSG_LEASE_GRANT, .request_id = id } };
	g.u.grant.lease_id = (uint64_t)0x7e57 << 32 | 1;
	g.u.grant.backend_pid = 4242;
	REQUIRE(testutil_wire_send_fd(conn, &g, p[0]), "GRANT not sent");
	testutil_wait_eof(conn, 10000);
}

/*
 * A broker of protocol version 1 announces no bound for timeout -1: the
 * library assumes a long one (60 s), so a GRANT after 2.5 s, later than
 * the grace alone, is still taken.
 */
START_TEST(test_version1_broker_waited_for)
{
	pid_t hb = testutil_hostile_broker(hostile_path(), 1, 0, grant_late, NULL);
	pgl_client *c = pgl_open(hostile_path());
	pgl_lease *l = pgl_acquire(c, NULL, -1);

	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_backend_pid(l), 4242);
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	testutil_reap(hb, "hostile broker");
}
END_TEST

/* A descriptor attached to anything but a GRANT is closed, never kept. */
START_TEST(test_error_with_fd_closed)
{
	pid_t hb = testutil_hostile_broker(hostile_path(), WIRE_VERSION_MAX, 1000,
					   errors_with_fds, NULL);
	pgl_client *c = pgl_open(hostile_path());

	ck_assert_ptr_null(pgl_acquire(c, NULL, 1000));
	ck_assert_msg(strcmp(pgl_error(c), "plain") == 0, "%s", pgl_error(c));
	int before = testutil_count_fds(0);
	ck_assert_ptr_null(pgl_acquire(c, NULL, 1000));
	ck_assert_int_eq(pgl_errcode(c), PGL_ETIMEOUT);
	ck_assert_str_eq(pgl_error(c), "with a descriptor");
	ck_assert_ptr_null(pgl_acquire(c, NULL, 1000));
	ck_assert_str_eq(pgl_error(c), "the real one");
	char fds[1024];
	ck_assert_msg(testutil_count_fds(0) == before, "%d descriptors, %d before: %s",
		      testutil_count_fds(0), before, testutil_describe_fds(getpid(), fds, sizeof(fds)));
	/* a session ERROR ends the connection: its descriptor goes too */
	ck_assert_ptr_null(pgl_acquire(c, NULL, 1000));
	ck_assert_str_eq(pgl_error(c), "session over, with a descriptor");
	ck_assert_msg(testutil_count_fds(0) == before - 1, "%d descriptors, %d before: %s",
		      testutil_count_fds(0), before, testutil_describe_fds(getpid(), fds, sizeof(fds)));
	pgl_close(c);
	testutil_reap(hb, "hostile broker");
}
END_TEST

/* --- the broker's identity ------------------------------------------------- */

/*
 * A broker socket held by a stranger (here "nobody", as a squatter on a
 * broker's path would be): the library says nothing to it and refuses it,
 * naming the socket and the uid, unless PGLEASE_BROKER_UID names that user
 * (by number or by name) or it is the client's own.
 */
START_TEST(test_broker_of_a_stranger)
{
	struct testbroker nb;
	const uid_t nobody = 65534;

	ck_assert_msg(geteuid() == 0, "this test starts a broker as another user: run as root");
	unsetenv("PGLEASE_BROKER_UID");
	testbroker_start_as(&nb, nobody, nobody, "allowed_uids = [ 0, 65534 ];",
			    "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 0; max_size = 1; }",
			    true);
	pgl_client *c = pgl_open(nb.socket);
	ck_assert_ptr_null(pgl_acquire(c, NULL, 0));
	ck_assert_int_eq(pgl_errcode(c), PGL_EBROKER);
	ck_assert_msg(strstr(pgl_error(c), nb.socket) != NULL && strstr(pgl_error(c), "uid 65534") !=
		      NULL, "%s", pgl_error(c));

	/* named by the application: trusted (the pool cannot reach the server as nobody) */
	static const char *const names[] = { "65534", "nobody" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ck_assert_int_eq(setenv("PGLEASE_BROKER_UID", names[i], 1), 0);
		pgl_client *named = pgl_open(nb.socket);
		pgl_lease *l = pgl_acquire(named, NULL, 0);
		ck_assert_msg(l != NULL || pgl_errcode(named) == PGL_ETIMEOUT ||
			      pgl_errcode(named) == PGL_EUNAVAILABLE, "PGLEASE_BROKER_UID=%s: %d %s",
			      names[i], pgl_errcode(named), pgl_error(named));
		if (l != NULL)
			ck_assert_int_eq(pgl_release(l), 0);
		pgl_close(named);
	}
	ck_assert_int_eq(setenv("PGLEASE_BROKER_UID", "no-such-user-here", 1), 0);
	pgl_client *bad = pgl_open(nb.socket);
	ck_assert_ptr_null(pgl_acquire(bad, NULL, 0));
	ck_assert_int_eq(pgl_errcode(bad), PGL_EINVAL);
	ck_assert_msg(strstr(pgl_error(bad), "PGLEASE_BROKER_UID=no-such-user-here") != NULL, "%s",
		      pgl_error(bad));
	pgl_close(bad);
	unsetenv("PGLEASE_BROKER_UID");

	/* the broker's own user needs no naming */
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		REQUIRE(setgid(nobody) == 0 && setuid(nobody) == 0, "setuid nobody");
		pgl_client *own = pgl_open(nb.socket);
		pgl_lease *l = pgl_acquire(own, NULL, 0);
		REQUIRE(l != NULL || pgl_errcode(own) == PGL_ETIMEOUT ||
			pgl_errcode(own) == PGL_EUNAVAILABLE, "as nobody: %d %s", pgl_errcode(own),
			pgl_error(own));
		_exit(0);
	}
	testutil_reap(p, "client as nobody");
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&nb, SIGTERM), 0);
}
END_TEST

/* --- a broker that stops reading ------------------------------------------ */

/*
 * A guard process that resumes the broker (SIGCONT) when the pipe it is
 * given closes: at the end of the test, or when a failure ends the test
 * process while the broker is stopped.  Returns the pipe's write end.
 */
static int
resume_at_end(pid_t broker_pid, pid_t *guard)
{
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	*guard = fork();
	ck_assert_int_ge(*guard, 0);
	if (*guard == 0) {
		char b;
		close(p[1]);
		while (read(p[0], &b, 1) > 0)
			;
		kill(broker_pid, SIGCONT);
		_exit(0);
	}
	close(p[0]);
	return p[1];
}

/* Waits up to timeout_ms for pid to exit; false (and kills it) when it does not. */
static bool
exits_within(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return true;
		if (clock_mono_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return false;
		}
		usleep(5000);
	}
}

/*
 * Waits until pool 0 counts n leases out.  A broker just resumed reads as
 * down (ESRCH) until its next heartbeat: that is waited out too.
 */
static void
wait_leased(int n)
{
	int64_t deadline = clock_mono_ms() + 10000;
	pgl_pool_stats st;

	for (;;) {
		int rc = pgl_stats(broker.shm, &st, 1);
		ck_assert_msg(rc >= 1 || (rc < 0 && errno == ESRCH), "pgl_stats: %d %s", rc,
			      strerror(errno));
		if (rc >= 1 && st.leased == n)
			return;
		ck_assert_msg(clock_mono_ms() < deadline, "%d leases out, not %d",
			      rc >= 1 ? st.leased : -1, n);
		usleep(2000);
	}
}

/*
 * A broker that reads nothing (stopped): pgl_cancel fails once its
 * connection is full instead of blocking (it may run in a signal handler),
 * pgl_release closes the connection instead of waiting for room (the broker
 * takes the leases back as orphans), and so does the exit handler.
 */
START_TEST(test_stopped_broker_never_blocks)
{
	int leased[2], go[2];

	testbroker_start(&broker, NULL, POOL(3, 3), true);
	ck_assert_int_eq(pipe2(leased, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	pid_t w = fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		pgl_client *wc = pgl_open(broker.socket);
		pgl_lease *wl = pgl_acquire(wc, NULL, -1);
		REQUIRE(wl != NULL, "%s", pgl_error(wc));
		char b = 'l';
		REQUIRE(write(leased[1], &b, 1) == 1 && read(go[0], &b, 1) == 1, "pipe");
		int n = 0;
		while (pgl_cancel(wl) == 0)
			REQUIRE(++n < 1000000, "a million CANCELs and still room");
		exit(0);	/* the atexit handler releases wl: it must not wait */
	}
	char b;
	ck_assert_int_eq(read(leased[0], &b, 1), 1);

	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *a = pgl_acquire(c, NULL, -1), *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(l);
	pid_t guard;
	int resume = resume_at_end(broker.pid, &guard);
	ck_assert_int_eq(kill(broker.pid, SIGSTOP), 0);

	int64_t t0 = clock_mono_ms();
	int sent = 0;
	errno = 4242;
	while (pgl_cancel(a) == 0)
		ck_assert_int_lt(++sent, 1000000);
	ck_assert_int_eq(errno, 4242);
	ck_assert_int_gt(sent, 0);
	/* an ACQUIRE waits for room until its deadline (0: the grace), then fails alone */
	int64_t t1 = clock_mono_ms();
	ck_assert_ptr_null(pgl_acquire(c, NULL, 0));
	ck_assert_int_eq(pgl_errcode(c), PGL_ETIMEOUT);
	ck_assert_msg(strstr(pgl_error(c), "did not take the request") != NULL, "%s",
		      pgl_error(c));
	ck_assert_int_ge(clock_mono_ms() - t1, 2000);
	/* the connection is still there, still full */
	ck_assert_int_eq(pgl_release(l), -1);
	ck_assert_int_eq(pgl_errcode(c), PGL_EBROKER);
	ck_assert_msg(strstr(pgl_error(c), "does not read its socket") != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(a), -1);	/* its connection is gone */
	ck_assert_int_eq(pgl_errcode(c), PGL_ESTALE);
	ck_assert_int_lt(clock_mono_ms() - t0, 7000);

	int status;
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_msg(exits_within(w, 10000, &status), "exit() waited on a full connection");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker status 0x%x", status);

	/* resumed, the broker takes every lease back and serves again */
	close(resume);
	testutil_reap(guard, "guard");
	wait_leased(0);
	pgl_pool_stats st;
	stats_settled(&st);
	ck_assert_uint_eq(st.orphaned_leases, 3);
	ck_assert(testbroker_wait_idle(&broker, 0, 3, 10000));
	l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A broker that is alive but answers nothing (stopped): an acquire gives up
 * after the broker's own bound plus a grace of 2 s, with -1 too (WELCOME
 * said 1 s), and says why.  The GRANT that comes once the broker resumes
 * is given back at the library's next call of any kind (here a release),
 * not kept leased until the process next waits for an answer.
 */
START_TEST(test_stopped_broker_deadline)
{
	testbroker_start(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO\"; "
			 "min_size = 2; max_size = 2; acquire_timeout = 1.0; }", true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *held = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(held);
	pid_t guard;
	int resume = resume_at_end(broker.pid, &guard);
	ck_assert_int_eq(kill(broker.pid, SIGSTOP), 0);

	int64_t t0 = clock_mono_ms();
	ck_assert_ptr_null(pgl_acquire(c, NULL, -1));
	int64_t waited = clock_mono_ms() - t0;
	ck_assert_int_eq(pgl_errcode(c), PGL_ETIMEOUT);
	ck_assert_msg(strstr(pgl_error(c), "did not answer within 3000 ms") != NULL, "%s",
		      pgl_error(c));
	ck_assert_msg(waited >= 3000 && waited < 4500, "-1 gave up after %lld ms",
		      (long long)waited);
	t0 = clock_mono_ms();
	ck_assert_ptr_null(pgl_acquire(c, NULL, 0));
	waited = clock_mono_ms() - t0;
	ck_assert_int_eq(pgl_errcode(c), PGL_ETIMEOUT);
	ck_assert_msg(waited >= 2000 && waited < 3500, "0 gave up after %lld ms", (long long)waited);

	/* resumed: the -1 is granted (nobody waits for it), the 0 refused */
	ck_assert_int_eq(kill(broker.pid, SIGCONT), 0);
	wait_leased(2);
	ck_assert_int_eq(pgl_release(held), 0);
	pgl_pool_stats st;
	stats_settled(&st);	/* the late GRANT went back with that release */
	ck_assert_uint_eq(st.orphaned_leases, 0);

	/* and the connection serves on */
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	close(resume);
	testutil_reap(guard, "guard");
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static pgl_lease *cancel_me;
static volatile sig_atomic_t cancel_rc = 1;
static int alarm_note = -1;

static void
cancel_on_alarm(int sig)
{
	(void)sig;
	cancel_rc = pgl_cancel(cancel_me);
	if (write(alarm_note, "a", 1) != 1)
		_exit(3);
}

/*
 * A signal handler that cancels while the library reconnects (the broker
 * restarted; the new one has not said WELCOME yet): nothing is sent on the
 * new connection, which may not even have said HELLO, and the old lease is
 * not the new connection's to cancel.
 */
START_TEST(test_cancel_during_reconnect)
{
	int leased[2], go[2], note[2];

	testbroker_start(&broker, NULL, POOL(1, 2), true);
	ck_assert_int_eq(pipe2(leased, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(note, O_CLOEXEC), 0);
	pid_t w = fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		pgl_client *wc = pgl_open(broker.socket);
		cancel_me = pgl_acquire(wc, NULL, -1);
		REQUIRE(cancel_me != NULL, "%s", pgl_error(wc));
		char b = 'l';
		REQUIRE(write(leased[1], &b, 1) == 1 && read(go[0], &b, 1) == 1, "pipe");
		alarm_note = note[1];
		struct sigaction sa = { .sa_handler = cancel_on_alarm };
		sigemptyset(&sa.sa_mask);
		REQUIRE(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
		struct itimerval t = { .it_value = { .tv_usec = 200000 } };
		REQUIRE(setitimer(ITIMER_REAL, &t, NULL) == 0, "setitimer");
		/* reconnects to the new broker, stopped before its WELCOME */
		pgl_lease *l = pgl_acquire(wc, NULL, 10000);
		REQUIRE(l != NULL, "acquire after the restart: %s", pgl_error(wc));
		REQUIRE(cancel_rc == -1, "pgl_cancel during the reconnect returned %d",
			(int)cancel_rc);
		REQUIRE(pgl_cancel(cancel_me) == -1, "a lease of the old broker was cancelled");
		REQUIRE(pgl_release(cancel_me) == -1 && pgl_errcode(wc) == PGL_ESTALE, "%s",
			pgl_error(wc));
		REQUIRE(pgl_release(l) == 0, "%s", pgl_error(wc));
		_exit(0);
	}
	char b;
	ck_assert_int_eq(read(leased[0], &b, 1), 1);
	ck_assert_int_eq(testbroker_stop(&broker, SIGKILL), 128 + SIGKILL);
	testbroker_restart(&broker, true);
	pid_t guard;
	int resume = resume_at_end(broker.pid, &guard);
	ck_assert_int_eq(kill(broker.pid, SIGSTOP), 0);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(read(note[0], &b, 1), 1);	/* the handler ran */
	close(resume);
	testutil_reap(guard, "guard");
	testutil_reap(w, "worker");
	ck_assert(!testbroker_log_has(&broker, "protocol error"));
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* --- fork() while another thread leases ------------------------------------ */

static struct {
	volatile bool stop;
	const char *socket;
	int cycles;
	char error[256];
} churn;

/* Leases, builds a shell, releases; opens and closes its client now and then. */
static void *
churn_thread(void *arg)
{
	(void)arg;
	pgl_client *c = pgl_open(churn.socket);

	while (!churn.stop && churn.error[0] == '\0') {
		pgl_lease *l = pgl_acquire(c, NULL, 5000);
		if (l == NULL) {
			snprintf(churn.error, sizeof(churn.error), "acquire: %s", pgl_error(c));
			break;
		}
		if (++churn.cycles % 2 == 0 && pgl_conn(l) == NULL)
			snprintf(churn.error, sizeof(churn.error), "pgl_conn: %s", pgl_error(c));
		if (pgl_release(l) != 0)
			snprintf(churn.error, sizeof(churn.error), "release: %s", pgl_error(c));
		if (churn.cycles % 50 == 0) {
			pgl_close(c);
			c = pgl_open(churn.socket);
		}
	}
	pgl_close(c);
	return NULL;
}

/*
 * In a child forked while the library works in another thread: exit 0
 * when no descriptor leads to a PostgreSQL backend (the server's socket)
 * or to the broker, 1 and 2 otherwise.  Async-signal-safe.
 */
static void
child_checks_fds(const char *pg_socket, const char *broker_socket)
{
	for (int fd = 0; fd < 1024; fd++) {
		struct sockaddr_un a;
		socklen_t len = sizeof(a);
		memset(&a, 0, sizeof(a));
		if (getpeername(fd, (struct sockaddr *)&a, &len) != 0 || a.sun_family != AF_UNIX)
			continue;
		if (strcmp(a.sun_path, pg_socket) == 0)
			_exit(1);
		if (strcmp(a.sun_path, broker_socket) == 0)
			_exit(2);
	}
	_exit(0);
}

/*
 * fork() in one thread while another acquires, builds shells, releases,
 * opens and closes clients: every child finds each inherited backend
 * socket replaced by /dev/null and no control connection, whatever moment
 * the fork caught (a GRANT just received, a shell being swapped in, a
 * client being opened or closed).
 */
START_TEST(test_fork_while_leasing)
{
	char pg_socket[300];
	int leaks[3] = { 0 }, forks = 0;

	snprintf(pg_socket, sizeof(pg_socket), "%s/.s.PGSQL.%s", getenv("PGHOST"),
		 getenv("PGPORT"));
	testbroker_start(&broker, NULL, POOL(2, 2), true);
	churn.socket = broker.socket;
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, churn_thread, NULL), 0);
	int64_t end = clock_mono_ms() + 4000;
	while (clock_mono_ms() < end && churn.error[0] == '\0') {
		pid_t p = fork();
		ck_assert_int_ge(p, 0);
		if (p == 0)
			child_checks_fds(pg_socket, broker.socket);
		int status;
		ck_assert_int_eq(waitpid(p, &status, 0), p);
		forks++;
		if (!WIFEXITED(status))
			leaks[0]++;	/* a crash in the child: the lists were torn */
		else if (WEXITSTATUS(status) == 1 || WEXITSTATUS(status) == 2)
			leaks[WEXITSTATUS(status)]++;
		else
			ck_assert_int_eq(WEXITSTATUS(status), 0);
	}
	churn.stop = true;
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_msg(churn.error[0] == '\0', "%s", churn.error);
	ck_assert_msg(leaks[0] + leaks[1] + leaks[2] == 0, "of %d children (%d lease cycles): %d "
		      "crashed, %d had a backend socket, %d a control connection", forks,
		      churn.cycles, leaks[0], leaks[1], leaks[2]);
	ck_assert_int_gt(churn.cycles, 100);
	pgl_pool_stats st;
	stats_settled(&st);
	ck_assert_uint_eq(st.orphaned_leases, 0);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
lease_suite(void)
{
	Suite *s = suite_create("lease");
	TCase *tc = tcase_create("lease");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_many_workers);
	tcase_add_test(tc, test_exhaustion_timeout);
	tcase_add_test(tc, test_fifo_order);
	tcase_add_test(tc, test_unknown_pool_and_errors);
	tcase_add_test(tc, test_lease_limit);
	tcase_add_test(tc, test_no_fd_leak);
	tcase_add_test(tc, test_stat_tool);
	tcase_add_test(tc, test_validation);
	tcase_add_test(tc, test_multi_host_conninfo);
	tcase_add_test(tc, test_grant_fd_dropped);
	suite_add_tcase(s, tc);

	/* Brokers that misbehave on purpose; no PostgreSQL needed. */
	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_error_with_fd_closed);
	tcase_add_test(tc, test_version1_broker_waited_for);
	suite_add_tcase(s, tc);

	tc = tcase_create("peer");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_broker_of_a_stranger);
	suite_add_tcase(s, tc);

	tc = tcase_create("stuck");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stopped_broker_never_blocks);
	tcase_add_test(tc, test_stopped_broker_deadline);
	tcase_add_test(tc, test_cancel_during_reconnect);
	suite_add_tcase(s, tc);

	tc = tcase_create("fork");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fork_while_leasing);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(lease_suite());
}
