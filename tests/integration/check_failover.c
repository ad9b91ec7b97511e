/*
 * check_failover.c - pools over a real primary and a real streaming standby
 * (DESIGN.md section 12, issue #14): a read-write pool follows a promoted
 * standby without losing an acknowledged commit and never lends a backend
 * on a read-only server; a standby pool serves from the standby and lets
 * go of it once promoted; an old primary back as a standby is never lent
 * to the read-write pool; a primary made read-only under open backends is
 * caught by the broker itself.
 *
 * Each test starts its own servers with tests/pg/pg-node (initdb,
 * pg_basebackup -R, UNIX sockets in a directory of the harness's), beside
 * the harness's server, which only gives the binaries and the user.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/shm.h"
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG_NODE TOP_SRCDIR "/tests/pg/pg-node"

struct node {
	char dir[300];
	int port;
};

static struct testbroker broker;
static char sockdir[256];

/* Runs pg-node with args; fails the test unless it exits 0.  Its output's last number. */
static int
pg_node(const char *cmd, const char *dir, const char *a1, const char *a2, const char *a3)
{
	char out[8192];
	char *argv[] = { (char *)PG_NODE, (char *)cmd, (char *)dir, (char *)a1, (char *)a2,
			 (char *)a3, NULL };
	int rc = testutil_run(argv, out, sizeof(out));

	ck_assert_msg(rc == 0, "pg-node %s %s: exit %d: %s", cmd, dir, rc, out);
	char *last = strrchr(out, '\n');
	while (last != NULL && last > out && last[1] == '\0') {
		*last = '\0';
		last = strrchr(out, '\n');
	}
	return atoi(last != NULL ? last + 1 : out);
}

/* The directory of this test's servers and their sockets. */
static void
cluster_setup(void)
{
	const char *tmp = getenv("PGLEASE_TEST_PGTMP");

	ck_assert_msg(tmp != NULL, "not under tests/pg/with-postgres");
	snprintf(sockdir, sizeof(sockdir), "%s/fo.%d", tmp, (int)getpid());
}

static void
node_primary(struct node *n, const char *name)
{
	char port[16];

	snprintf(n->dir, sizeof(n->dir), "%s/%s", sockdir, name);
	n->port = pg_node("primary", n->dir, sockdir, NULL, NULL);
	ck_assert_int_gt(n->port, 0);
	(void)port;
}

static void
node_standby(struct node *n, const char *name, const struct node *primary)
{
	char port[16];

	snprintf(n->dir, sizeof(n->dir), "%s/%s", sockdir, name);
	snprintf(port, sizeof(port), "%d", primary->port);
	n->port = pg_node("standby", n->dir, sockdir, port, NULL);
	ck_assert_int_gt(n->port, 0);
}

static void
node_kill(const struct node *n)
{
	if (n->dir[0] != '\0')
		(void)pg_node("kill", n->dir, NULL, NULL, NULL);
}

/* A primary p1 and its streaming standby s1, in this test's directory. */
static void
cluster_start(struct node *p1, struct node *s1)
{
	cluster_setup();
	node_primary(p1, "p1");
	node_standby(s1, "s1", p1);
}

/* The end of a test: the broker stopped (cleanly), both servers killed. */
static void
cluster_end(struct node *p1, struct node *s1)
{
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	node_kill(p1);
	node_kill(s1);
}

/* Runs sql on n; first value into out (or the error).  Whether it worked. */
static bool
node_sql(const struct node *n, const char *sql, char *out, size_t len)
{
	char ci[512];

	snprintf(ci, sizeof(ci), "host=%s port=%d dbname=postgres user=pglease "
		 "application_name=pglease-test connect_timeout=5", sockdir, n->port);
	PGconn *c = PQconnectdb(ci);
	bool ok = false;
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);
		ok = PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
		snprintf(out, len, "%s", ok && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) :
			 ok ? "" : PQresultErrorMessage(r));
		PQclear(r);
	} else {
		snprintf(out, len, "%s", PQerrorMessage(c));
	}
	PQfinish(c);
	return ok;
}

static void
node_exec(const struct node *n, const char *sql)
{
	char out[512];

	ck_assert_msg(node_sql(n, sql, out, sizeof(out)), "%s on port %d: %s", sql, n->port, out);
}

static long
node_long(const struct node *n, const char *sql)
{
	char out[512];

	return node_sql(n, sql, out, sizeof(out)) ? atol(out) : -1;
}

/* A pool over both servers, sockets of one directory: "host=d,d port=P1,P2". */
static const char *
pool_over(const char *name, const struct node *a, const struct node *b, const char *target,
	  const char *extra)
{
	static char text[4][1024];
	static int k;
	char *t = text[k++ % 4];

	snprintf(t, sizeof(text[0]), "{ name = \"%s\"; conninfo = \"host=%s,%s port=%d,%d "
		 "dbname=postgres user=pglease target_session_attrs=%s\"; connect_timeout = 2.0; "
		 "initial_backoff = 0.1; max_backoff = 0.5; jitter = 0.1; %s }", name, sockdir,
		 sockdir, a->port, b->port, target, extra);
	return t;
}

/* The first value of sql on a lease ('I' afterwards); false with the error in out. */
static bool
lease_value(pgl_lease *l, const char *sql, char *out, size_t len)
{
	char st = 0;

	return testutil_raw_query(pgl_fd(l), sql, out, len, &st) && st == 'I';
}

/* The ports the backends of pool index pool are on, per the segment: how many on port. */
static int
slots_on(int pool, int port, int *others)
{
	struct shm_snapshot snap;
	char p[16];
	int n = 0;

	*others = 0;
	snprintf(p, sizeof(p), "%d", port);
	ck_assert_int_eq(shm_snapshot(broker.shm, &snap), 0);
	for (uint32_t i = 0; i < snap.hdr.nslots; i++) {
		const struct shm_slot *s = &snap.slots[i];
		if (s->pool != pool || s->host[0] == '\0' ||
		    (s->state != SHM_SLOT_IDLE && s->state != SHM_SLOT_LEASED))
			continue;
		ck_assert_str_eq(s->host, sockdir);
		if (strcmp(s->port, p) == 0)
			n++;
		else
			(*others)++;
	}
	shm_snapshot_free(&snap);
	return n;
}

static long
lines_of(const char *path)
{
	FILE *f = fopen(path, "r");
	long n = 0;
	int c;

	if (f == NULL)
		return 0;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* --- (a) writes through a failover ---------------------------------------- */

#define WRITERS 4

/*
 * A worker: lease, check which server, INSERT one id, record it once the
 * commit is acknowledged (ReadyForQuery idle after its CommandComplete),
 * release; until stop exists.  Acquire failures must be timeouts or
 * "unavailable"; every other failure is recorded in errors.
 */
static void
writer(int w, const char *acked, const char *errors, const char *stop)
{
	pgl_client *c = pgl_open(broker.socket);
	int ack = open(acked, O_WRONLY | O_APPEND | O_CLOEXEC);
	int err = open(errors, O_WRONLY | O_APPEND | O_CLOEXEC);
	char out[512], sql[96];

	REQUIRE(c != NULL && ack >= 0 && err >= 0, "setup");
	for (int seq = 1; access(stop, F_OK) != 0; seq++) {
		pgl_lease *l = pgl_acquire(c, "rw", 3000);
		if (l == NULL) {
			int code = pgl_errcode(c);
			REQUIRE(code == PGL_EUNAVAILABLE || code == PGL_ETIMEOUT,
				"acquire failed with %d: %s", code, pgl_error(c));
			dprintf(err, "acquire %d: %s\n", code, pgl_error(c));
			continue;
		}
		if (!lease_value(l, "SELECT pg_is_in_recovery()", out, sizeof(out))) {
			dprintf(err, "query: %s\n", out);
			pgl_discard(l);
			continue;
		}
		if (strcmp(out, "f") != 0)
			dprintf(err, "LEASED ON A STANDBY: pg_is_in_recovery() = %s\n", out);
		int id = w * 1000000 + seq;
		snprintf(sql, sizeof(sql), "INSERT INTO acked VALUES (%d)", id);
		if (lease_value(l, sql, out, sizeof(out))) {
			dprintf(ack, "%d\n", id);
			pgl_release(l);
		} else {
			out[strcspn(out, "\n")] = '\0';
			dprintf(err, "insert %d: %s\n", id, out);
			pgl_discard(l);
		}
	}
	pgl_close(c);
	close(ack);
	close(err);
	_exit(0);
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * Issue 14 (a): workers write through a read-write pool over the primary
 * and its standby while the primary stops (fast) and the standby is
 * promoted.  Every acknowledged id is on the new primary, no backend was
 * lent on a read-only server (no read-only error, no lease in recovery),
 * and the pool writes again within its backoff.
 */
START_TEST(test_failover_keeps_acknowledged_writes)
{
	struct node p1 = { "", 0 }, s1 = { "", 0 };
	char acked[400], errors[400], stop[400], out[512];

	cluster_setup();
	node_primary(&p1, "p1");
	node_exec(&p1, "CREATE TABLE acked (id int PRIMARY KEY)");
	node_standby(&s1, "s1", &p1);
	WAIT_UNTIL(node_long(&s1, "SELECT count(*) FROM pg_class WHERE relname = 'acked'") == 1,
		   20000, "the standby never replayed the table");

	testbroker_start(&broker, NULL, pool_over("rw", &p1, &s1, "read-write",
		"min_size = 2; max_size = 4; acquire_timeout = 3.0; validate_after = 60.0;"), true);
	int others;
	WAIT_UNTIL(slots_on(0, p1.port, &others) == 2 && others == 0, 5000,
		   "pool 0: not 2 backends on port %d (%d elsewhere)", p1.port, others);

	snprintf(acked, sizeof(acked), "%s/acked", testutil_tmpdir());
	snprintf(errors, sizeof(errors), "%s/errors", testutil_tmpdir());
	snprintf(stop, sizeof(stop), "%s/stop", testutil_tmpdir());
	testutil_write_file("acked", "");
	testutil_write_file("errors", "");
	unlink(stop);
	pid_t pids[WRITERS];
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		ck_assert_int_ge(pids[w], 0);
		if (pids[w] == 0)
			writer(w + 1, acked, errors, stop);
	}
	WAIT_UNTIL(lines_of(acked) >= 100, 20000, "the writers did not get going: %ld acked",
		   lines_of(acked));

	(void)pg_node("ctl", p1.dir, "stop", "-m", "fast");
	usleep(300000);		/* acquires meanwhile wait or fail: unavailable */
	long before = lines_of(acked);
	int64_t promoted = clock_mono_ms();	/* pg_ctl promote -w returns some time after */
	(void)pg_node("ctl", s1.dir, "promote", NULL, NULL);
	WAIT_UNTIL(lines_of(acked) > before, 8000, "nothing written within 8 s of the promotion");
	int64_t resumed = clock_mono_ms() - promoted;
	WAIT_UNTIL(lines_of(acked) >= before + 100, 20000, "writes did not go on after the "
		   "promotion: %ld acked since", lines_of(acked) - before);
	testutil_write_file("stop", "");
	for (int w = 0; w < WRITERS; w++)
		testutil_reap(pids[w], "writer");

	/* Every acknowledged id is on the new primary. */
	long nacked = lines_of(acked);
	int *ids = calloc((size_t)nacked + 1, sizeof(int));
	ck_assert_ptr_nonnull(ids);
	FILE *f = fopen(acked, "r");
	ck_assert_ptr_nonnull(f);
	long k = 0;
	while (k < nacked && fscanf(f, "%d", &ids[k]) == 1)
		k++;
	fclose(f);
	ck_assert_int_eq(k, nacked);
	char ci[400];
	snprintf(ci, sizeof(ci), "host=%s port=%d dbname=postgres user=pglease", sockdir, s1.port);
	PGconn *c = PQconnectdb(ci);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PGresult *r = PQexec(c, "SELECT id FROM acked ORDER BY id");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	int nrows = PQntuples(r);
	int *rows = calloc((size_t)nrows + 1, sizeof(int));
	for (int i = 0; i < nrows; i++)
		rows[i] = atoi(PQgetvalue(r, i, 0));
	PQclear(r);
	PQfinish(c);
	long missing = 0;
	for (long i = 0; i < nacked; i++)
		missing += bsearch(&ids[i], rows, (size_t)nrows, sizeof(int), cmp_int) == NULL;
	ck_assert_msg(missing == 0, "%ld of %ld acknowledged commits are missing on the new "
		      "primary", missing, nacked);
	free(ids);
	free(rows);

	/* Nothing went to a read-only server. */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "grep -c -e '^LEASED ON A STANDBY' -e '^insert .*read-only "
		 "transaction' '%s'", errors);
	FILE *g = popen(cmd, "r");
	ck_assert_ptr_nonnull(g);
	ck_assert_ptr_nonnull(fgets(out, sizeof(out), g));
	pclose(g);
	ck_assert_msg(atoi(out) == 0, "%d writes or leases reached a read-only server; see %s",
		      atoi(out), errors);
	/*
	 * What the writers saw of the stop: usually some failed, unacknowledged
	 * writes; but writers caught between transactions only wait in their
	 * acquire and see nothing, so this is reported, not asserted.  That the
	 * failover happened under them is asserted by the writes after the
	 * promotion (above) and the backends on the new primary (below).
	 */
	long nerrors = lines_of(errors);
	snprintf(cmd, sizeof(cmd), "grep -m 1 '^acquire %d:' '%s'", PGL_EUNAVAILABLE, errors);
	g = popen(cmd, "r");
	ck_assert_ptr_nonnull(g);
	if (fgets(out, sizeof(out), g) == NULL)
		snprintf(out, sizeof(out), "(no acquire failed)\n");
	pclose(g);
	fprintf(stderr, "failover: %ld failures seen by the writers; first unavailable: %s",
		nerrors, out);

	/* Served again within the promotion, the backoff (max_backoff 0.5 s) and a connect */
	ck_assert_msg(resumed < 5000, "writes resumed %lld ms after the promotion",
		      (long long)resumed);

	/* Every backend is on the new primary now, and the tools say so. */
	WAIT_UNTIL(slots_on(0, s1.port, &others) >= 1 && others == 0, 5000,
		   "backends not on the new primary (port %d): %d elsewhere", s1.port, others);
	char *json[] = { (char *)TOP_BUILDDIR "/pglease-stat", (char *)"-n", broker.shm,
			 (char *)"--json", NULL };
	char stat[16384], want[64];
	ck_assert_int_eq(testutil_run(json, stat, sizeof(stat)), 0);
	snprintf(want, sizeof(want), "\"port\":\"%d\",\"server\":\"primary\"", s1.port);
	ck_assert_msg(strstr(stat, want) != NULL, "%s", stat);
	snprintf(want, sizeof(want), "\"port\":\"%d\",\"backends\":", s1.port);
	ck_assert_msg(strstr(stat, want) != NULL, "%s", stat);
	fprintf(stderr, "failover: %ld acknowledged, %d rows, writes resumed %lld ms after the "
		"promotion\n", nacked, nrows, (long long)resumed);

	cluster_end(&p1, &s1);
}
END_TEST

/* --- (b) read pools on a standby ------------------------------------------ */

/*
 * Issue 14 (b) and item 3: a standby pool serves from the standby
 * (pg_is_in_recovery() true, in_hot_standby on, its slot shows the
 * standby's port); once the standby is promoted its backend goes at its
 * next check and no standby is left: acquires fail "unavailable", naming
 * it.  A prefer-standby pool keeps serving from the promoted server.
 */
START_TEST(test_standby_pool)
{
	struct node p1 = { "", 0 }, s1 = { "", 0 };
	char out[512];

	cluster_start(&p1, &s1);
	char pools[4096];
	snprintf(pools, sizeof(pools), "%s, %s, %s",
		 pool_over("ro", &p1, &s1, "standby", "min_size = 1; max_size = 2; "
			   "acquire_timeout = 1.5; validate_after = 0;"),
		 pool_over("pref", &p1, &s1, "prefer-standby", "min_size = 1; max_size = 2; "
			   "acquire_timeout = 3.0; validate_after = 0;"),
		 pool_over("rw", &p1, &s1, "read-write", "min_size = 1; max_size = 2; "
			   "acquire_timeout = 3.0;"));
	testbroker_start(&broker, NULL, pools, true);

	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, "ro", -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert(lease_value(l, "SELECT pg_is_in_recovery()", out, sizeof(out)));
	ck_assert_str_eq(out, "t");
	ck_assert_str_eq(pgl_param(l, "in_hot_standby"), "on");
	ck_assert_int_eq(pgl_release(l), 0);
	int others;
	WAIT_UNTIL(slots_on(0, s1.port, &others) == 1 && others == 0, 5000,
		   "pool 0: not 1 backends on port %d (%d elsewhere)", s1.port, others);

	l = pgl_acquire(c, "rw", -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert(lease_value(l, "SELECT pg_is_in_recovery()", out, sizeof(out)));
	ck_assert_str_eq(out, "f");
	ck_assert_int_eq(pgl_release(l), 0);
	WAIT_UNTIL(slots_on(2, p1.port, &others) == 1 && others == 0, 5000,
		   "pool 2: not 1 backends on port %d (%d elsewhere)", p1.port, others);

	/* The only standby is promoted: the standby pool has none left. */
	(void)pg_node("ctl", s1.dir, "promote", NULL, NULL);
	l = pgl_acquire(c, "ro", 1500);
	ck_assert_msg(l == NULL, "a standby pool lent a backend after its standby was promoted");
	ck_assert_int_eq(pgl_errcode(c), PGL_EUNAVAILABLE);
	ck_assert_msg(strstr(pgl_error(c), "standby") != NULL, "%s", pgl_error(c));
	ck_assert(testbroker_log_has(&broker, "backend unfit pool=ro"));

	/* prefer-standby: any server will do once no standby is left. */
	l = pgl_acquire(c, "pref", -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert(lease_value(l, "SELECT pg_is_in_recovery()", out, sizeof(out)));
	ck_assert_str_eq(out, "f");
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	cluster_end(&p1, &s1);
}
END_TEST

/* --- (c) the old primary back as a standby --------------------------------- */

/*
 * Issue 14 (c): after a failover, the old primary comes back as a standby
 * of the new one, first in the read-write pool's host list.  No backend of
 * that pool is ever on it; a standby pool over the same hosts serves from
 * it.
 */
START_TEST(test_old_primary_rejoins_as_standby)
{
	struct node p1 = { "", 0 }, s1 = { "", 0 };
	char out[512], port[16];

	cluster_setup();
	node_primary(&p1, "p1");
	node_exec(&p1, "CREATE TABLE t (x int)");
	node_standby(&s1, "s1", &p1);
	(void)pg_node("ctl", p1.dir, "stop", "-m", "fast");
	(void)pg_node("ctl", s1.dir, "promote", NULL, NULL);
	snprintf(port, sizeof(port), "%d", s1.port);
	(void)pg_node("rejoin", p1.dir, port, NULL, NULL);
	ck_assert_int_eq(node_long(&p1, "SELECT pg_is_in_recovery()::int"), 1);

	char pools[4096];
	snprintf(pools, sizeof(pools), "%s, %s",
		 pool_over("rw", &p1, &s1, "read-write", "min_size = 3; max_size = 4; "
			   "acquire_timeout = 3.0; validate_after = 0;"),
		 pool_over("ro", &p1, &s1, "standby", "min_size = 1; max_size = 1;"));
	testbroker_start(&broker, NULL, pools, true);
	int others;
	WAIT_UNTIL(slots_on(0, s1.port, &others) == 3 && others == 0, 5000,
		   "pool 0: not 3 backends on port %d (%d elsewhere)", s1.port, others);
	WAIT_UNTIL(slots_on(1, p1.port, &others) == 1 && others == 0, 5000,
		   "pool 1: not 1 backends on port %d (%d elsewhere)", p1.port, others);

	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *held[4];
	for (int i = 0; i < 4; i++) {
		held[i] = pgl_acquire(c, "rw", -1);
		ck_assert_msg(held[i] != NULL, "%s", pgl_error(c));
		ck_assert(lease_value(held[i], "SELECT pg_is_in_recovery()", out, sizeof(out)));
		ck_assert_str_eq(out, "f");
		ck_assert(lease_value(held[i], "INSERT INTO t VALUES (1)", out, sizeof(out)));
	}
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pgl_release(held[i]), 0);
	WAIT_UNTIL(slots_on(0, s1.port, &others) == 4 && others == 0, 5000,
		   "pool 0: not 4 backends on port %d (%d elsewhere)", s1.port, others);
	pgl_close(c);
	cluster_end(&p1, &s1);
}
END_TEST

/* --- the broker's own check ------------------------------------------------ */

/*
 * An idle backend gets no report of a reload that makes its server
 * read-only (the server reports it only with its next answer): the pool's
 * health check brings the report (and asks the server's state, for servers
 * before 14 that report no in_hot_standby), so the backend is closed
 * without ever being leased, and the pool refuses while the server is
 * read-only.
 */
START_TEST(test_idle_backend_turned_read_only)
{
	struct node p1 = { "", 0 }, s1 = { "", 0 };

	cluster_start(&p1, &s1);
	testbroker_start(&broker, NULL, pool_over("rw", &p1, &s1, "read-write",
		"min_size = 1; max_size = 1; acquire_timeout = 1.0; validate_after = 60.0; "
		"health_check_interval = 0.3;"), true);
	node_exec(&p1, "ALTER SYSTEM SET default_transaction_read_only = on");
	node_exec(&p1, "SELECT pg_reload_conf()");
	testbroker_wait_log(&broker, "backend unfit pool=rw", 1, 10000);

	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, "rw", 1000);
	ck_assert_msg(l == NULL, "a read-write pool lent a backend of a read-only server");
	ck_assert_int_eq(pgl_errcode(c), PGL_EUNAVAILABLE);
	pgl_close(c);
	cluster_end(&p1, &s1);
}
END_TEST

/*
 * Item 2: a primary made read-only (default_transaction_read_only, reload)
 * under a read-write pool's open backends: libpq's check at connect is
 * long past, so the broker must see it itself, in the reset's state query
 * (the holder read the server's report).  The backend is closed, never
 * lent again, and acquires fail "unavailable" naming the reason.  A pool
 * of target any keeps its backend.
 */
START_TEST(test_primary_turned_read_only)
{
	struct node p1 = { "", 0 }, s1 = { "", 0 };
	char out[512];

	cluster_start(&p1, &s1);
	char pools[4096];
	snprintf(pools, sizeof(pools), "%s, %s",
		 pool_over("rw", &p1, &s1, "read-write", "min_size = 1; max_size = 1; "
			   "acquire_timeout = 1.5; validate_after = 60.0;"),
		 pool_over("any", &p1, &s1, "any", "min_size = 1; max_size = 1; "
			   "validate_after = 60.0;"));
	testbroker_start(&broker, NULL, pools, true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, "rw", -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	pgl_lease *a = pgl_acquire(c, "any", -1);
	ck_assert_msg(a != NULL, "%s", pgl_error(c));
	int any_pid = pgl_backend_pid(a);

	node_exec(&p1, "ALTER SYSTEM SET default_transaction_read_only = on");
	node_exec(&p1, "SELECT pg_reload_conf()");
	/* The holders see it first: their next queries read the report. */
	WAIT_UNTIL(lease_value(l, "SHOW transaction_read_only", out, sizeof(out)) &&
		   strcmp(out, "on") == 0, 5000, "the reload never reached the backend");
	ck_assert(lease_value(a, "SELECT 1", out, sizeof(out)));
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert_int_eq(pgl_release(a), 0);

	l = pgl_acquire(c, "rw", 1500);
	if (l != NULL) {
		ck_assert(lease_value(l, "SHOW transaction_read_only", out, sizeof(out)));
		ck_abort_msg("a read-write pool lent a backend with transaction_read_only = %s", out);
	}
	ck_assert_int_eq(pgl_errcode(c), PGL_EUNAVAILABLE);
	ck_assert_msg(strstr(pgl_error(c), "read-only") != NULL ||
		      strstr(pgl_error(c), "read-write") != NULL, "%s", pgl_error(c));
	ck_assert(testbroker_log_has(&broker, "backend unfit pool=rw"));

	a = pgl_acquire(c, "any", -1);
	ck_assert_msg(a != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_backend_pid(a), any_pid);
	ck_assert_int_eq(pgl_release(a), 0);

	/* Writable again: the pool comes back within its backoff. */
	node_exec(&p1, "ALTER SYSTEM RESET default_transaction_read_only");
	node_exec(&p1, "SELECT pg_reload_conf()");
	int64_t t0 = clock_mono_ms();
	do {
		l = pgl_acquire(c, "rw", 1500);
	} while (l == NULL && clock_mono_ms() - t0 < 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert(lease_value(l, "SHOW transaction_read_only", out, sizeof(out)));
	ck_assert_str_eq(out, "off");
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	cluster_end(&p1, &s1);
}
END_TEST

/* --- configuration ------------------------------------------------------- */

/*
 * A target_session_attrs libpq would refuse at every connect is refused at
 * load; load_balance_hosts is refused with the reason when this libpq
 * lacks it (accepted where it has it).
 */
START_TEST(test_config_targets)
{
	char out[4096];
	char *conf = testutil_write_file("bad-target.conf",
		"broker = { socket = \"/tmp/pgl-fo-x.sock\"; shm_name = \"/pglease.fo.x\"; };\n"
		"pools = ( { name = \"m\"; conninfo = \"host=/tmp target_session_attrs=writable\"; } );\n");
	char *argv[] = { (char *)TOP_BUILDDIR "/pgleased", (char *)"-c", conf,
			 (char *)"--check-config", NULL };
	ck_assert_int_ne(testutil_run(argv, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "target_session_attrs=writable is not one libpq takes") != NULL,
		      "%s", out);

	conf = testutil_write_file("lb.conf",
		"broker = { socket = \"/tmp/pgl-fo-x.sock\"; shm_name = \"/pglease.fo.x\"; };\n"
		"pools = ( { name = \"m\"; conninfo = \"host=/tmp,/tmp port=1,2 "
		"load_balance_hosts=random\"; } );\n");
	argv[2] = conf;
	int rc = testutil_run(argv, out, sizeof(out));
	if (PQlibVersion() >= 160000)
		ck_assert_msg(strstr(out, "load_balance_hosts") == NULL, "%s", out);
	else
		ck_assert_msg(rc != 0 && strstr(out, "load_balance_hosts needs libpq 16") != NULL,
			      "%s", out);
}
END_TEST

static Suite *
failover_suite(void)
{
	Suite *s = suite_create("failover");
	TCase *tc = tcase_create("primary+standby");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_config_targets);
	tcase_add_test(tc, test_failover_keeps_acknowledged_writes);
	tcase_add_test(tc, test_standby_pool);
	tcase_add_test(tc, test_old_primary_rejoins_as_standby);
	tcase_add_test(tc, test_primary_turned_read_only);
	tcase_add_test(tc, test_idle_backend_turned_read_only);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(failover_suite());
}
