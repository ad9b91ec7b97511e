/*
 * check_orphan.c - what a holder leaves behind never reaches the next one:
 * a worker killed mid-transaction (also while a forked child keeps its
 * sockets), a process exiting without pgl_release, a lease released inside
 * a transaction, raw holders that leave replies (or half a reply) in the
 * stream, a backend that ignores the cancel and the end of its stream, and
 * a client gone right after its RELEASE with an answer unread.  The reset
 * cases run with either reset_check: the nonce as a FunctionCall (the
 * default) and as a SELECT (test case "reset_query").
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/fdpass.h"
#include "common/pgproto.h"
#include "common/wire.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define POOL_GROUP(min, max) \
	"{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = " #min "; max_size = " #max \
	"; acquire_timeout = 5.0; initial_backoff = 0.1; max_backoff = 1.0; }"
#define POOL(min, max) testutil_pool_checked(POOL_GROUP(min, max))

static struct testbroker broker;


static void
exec_sql(const char *sql)
{
	char out[512];

	ck_assert_msg(testutil_sql(sql, out, sizeof(out)), "%s: %s", sql, out);
}

/* Waits until pool 0 is whole again: n idle backends, none leased or closing. */
static pgl_pool_stats
wait_whole(int n)
{
	int64_t deadline = clock_mono_ms() + 15000;
	pgl_pool_stats st;

	for (;;) {
		ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
		if (st.idle == n && st.size == n && st.leased == 0)
			return st;
		ck_assert_msg(clock_mono_ms() < deadline, "pool not whole: size %d idle %d leased %d",
			      st.size, st.idle, st.leased);
		usleep(5000);
	}
}

/* Every backend of the pool is leasable, idle, outside any transaction, sees no row. */
static void
assert_pool_clean(int max, const char *table)
{
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l[8];
	char sql[128], out[128], st;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	for (int i = 0; i < max; i++) {
		l[i] = pgl_acquire(c, NULL, 2000);
		ck_assert_msg(l[i] != NULL, "lease %d: %s", i, pgl_error(c));
		ck_assert_msg(testutil_raw_query(pgl_fd(l[i]), sql, out, sizeof(out), &st), "%s", out);
		ck_assert_str_eq(out, "0");
		ck_assert_int_eq(st, 'I');
	}
	for (int i = 0; i < max; i++)
		ck_assert_int_eq(pgl_release(l[i]), 0);
	pgl_close(c);
	ck_assert_int_le(testutil_pool_backends(), max);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM pg_stat_activity WHERE "
					   "application_name = 'pgleased' AND "
					   "state LIKE 'idle in transaction%'"), 0);
}

/*
 * A worker that leases, opens a transaction with an INSERT, reports its
 * backend pid on the pipe and waits to be killed.  With fork_child, it
 * first forks (bypassing the library's atfork handler) a child that keeps
 * every inherited descriptor open; that child's pid is reported too.
 */
static pid_t
start_doomed_worker(const char *table, bool fork_child, int *backend_pid, pid_t *child)
{
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	pid_t w = fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* gone with a failed test */
		close(p[0]);
		pgl_client *c = pgl_open(broker.socket);
		pgl_lease *l = pgl_acquire(c, NULL, -1);
		char sql[128], out[128], st;
		int info[2] = { 0, 0 };

		REQUIRE(l != NULL, "acquire: %s", pgl_error(c));
		snprintf(sql, sizeof(sql), "BEGIN; INSERT INTO %s VALUES (1)", table);
		REQUIRE(testutil_raw_query(pgl_fd(l), sql, out, sizeof(out), &st), "%s", out);
		REQUIRE(st == 'T', "not in a transaction: %c", st);
		info[0] = pgl_backend_pid(l);
		if (fork_child) {
			pid_t k = (pid_t)syscall(SYS_fork);
			if (k == 0) {
				alarm(30);	/* never outlives a failed test for long */
				for (;;)
					pause();
			}
			info[1] = (int)k;
		}
		REQUIRE(write(p[1], info, sizeof(info)) == sizeof(info), "pipe");
		for (;;)
			pause();
	}
	close(p[1]);
	int info[2];
	ck_assert_int_eq(read(p[0], info, sizeof(info)), sizeof(info));
	close(p[0]);
	*backend_pid = info[0];
	if (child != NULL)
		*child = info[1];
	return w;
}

START_TEST(test_killed_mid_transaction)
{
	int backend;

	exec_sql("CREATE TABLE killed (id int)");
	testbroker_start(&broker, NULL, POOL(2, 2), true);
	pid_t w = start_doomed_worker("killed", false, &backend, NULL);

	ck_assert_int_eq(kill(w, SIGKILL), 0);
	ck_assert_int_eq(waitpid(w, NULL, 0), w);
	pgl_pool_stats st = wait_whole(2);
	ck_assert_uint_eq(st.orphaned_leases, 1);
	/* the orphan's backend is gone, not reused */
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", backend);
	ck_assert_int_eq(testutil_sql_long(sql), 0);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM killed"), 0);
	assert_pool_clean(2, "killed");
	ck_assert(testbroker_log_has(&broker, "lease orphaned"));
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_killed_with_forked_child)
{
	int backend;
	pid_t child;

	exec_sql("CREATE TABLE forked (id int)");
	testbroker_start(&broker, NULL, POOL(2, 2), true);
	pid_t w = start_doomed_worker("forked", true, &backend, &child);

	ck_assert_int_gt(child, 0);
	ck_assert_int_eq(kill(w, SIGKILL), 0);
	ck_assert_int_eq(waitpid(w, NULL, 0), w);
	/* The child still holds the control socket and the backend socket. */
	ck_assert_int_eq(kill(child, 0), 0);
	pgl_pool_stats st = wait_whole(2);
	ck_assert_uint_eq(st.orphaned_leases, 1);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM forked"), 0);
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", backend);
	int64_t deadline = clock_mono_ms() + 10000;
	while (testutil_sql_long(sql) != 0) {
		ck_assert_msg(clock_mono_ms() < deadline, "backend %d outlived its holder", backend);
		usleep(10000);
	}
	assert_pool_clean(2, "forked");
	kill(child, SIGKILL);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_exit_without_release)
{
	int p[2];

	testbroker_start(&broker, NULL, POOL(1, 1), true);
	ck_assert_int_eq(pipe(p), 0);
	pid_t w = fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		pgl_client *c = pgl_open(broker.socket);
		pgl_lease *l = pgl_acquire(c, NULL, -1);
		REQUIRE(l != NULL, "acquire: %s", pgl_error(c));
		int pid = pgl_backend_pid(l);
		REQUIRE(write(p[1], &pid, sizeof(pid)) == sizeof(pid), "pipe");
		exit(0);	/* no pgl_release: the atexit handler gives it back */
	}
	close(p[1]);
	int pid;
	ck_assert_int_eq(read(p[0], &pid, sizeof(pid)), sizeof(pid));
	ck_assert_int_eq(waitpid(w, NULL, 0), w);

	pgl_pool_stats st = wait_whole(1);
	ck_assert_uint_eq(st.orphaned_leases, 0);
	ck_assert_uint_eq(st.resets, 1);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(pgl_backend_pid(l), pid);	/* reset and reused, not replaced */
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_release_in_transaction)
{
	char out[256], st;

	exec_sql("DROP TABLE IF EXISTS released; CREATE TABLE released (id int)");
	testbroker_start(&broker, NULL, POOL(1, 1), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	int fd = pgl_fd(l), pid = pgl_backend_pid(l);

	ck_assert(testutil_raw_query(fd, "SET work_mem = '7MB'; PREPARE p AS SELECT 42", out,
				     sizeof(out), &st));
	ck_assert(testutil_raw_query(fd, "BEGIN; INSERT INTO released VALUES (1)", out,
				     sizeof(out), &st));
	ck_assert_int_eq(st, 'T');
	ck_assert_int_eq(pgl_release(l), 0);

	l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	fd = pgl_fd(l);
	ck_assert_int_eq(pgl_backend_pid(l), pid);
	ck_assert(testutil_raw_query(fd, "SELECT count(*) FROM released", out, sizeof(out), &st));
	ck_assert_str_eq(out, "0");
	ck_assert_int_eq(st, 'I');
	ck_assert(testutil_raw_query(fd, "SHOW work_mem", out, sizeof(out), &st));
	ck_assert_str_eq(out, "4MB");
	/* the pool's startup options survive the reset */
	ck_assert(testutil_raw_query(fd, "SHOW statement_timeout", out, sizeof(out), &st));
	ck_assert_str_eq(out, "30s");
	ck_assert(testutil_raw_query(fd, "SHOW client_connection_check_interval", out,
				     sizeof(out), &st));
	ck_assert_str_eq(out, "1s");
	ck_assert(!testutil_raw_query(fd, "EXECUTE p", out, sizeof(out), &st));
	ck_assert_msg(strstr(out, "does not exist") != NULL, "%s", out);
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM released"), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * After a release of backend pid that left the stream dirty: the next lease
 * of the pool of one is another backend, which answers exactly its own
 * query, and the reset counts as failed.
 */
static void
assert_replaced(pgl_client *c, int pid)
{
	char out[256], st;
	pgl_lease *l = pgl_acquire(c, NULL, 5000);

	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_ne(pgl_backend_pid(l), pid);
	/* and the new one answers exactly its own query */
	ck_assert(testutil_raw_query(pgl_fd(l), "SELECT 'fresh'", out, sizeof(out), &st));
	ck_assert_str_eq(out, "fresh");
	ck_assert_int_eq(st, 'I');
	ck_assert_int_eq(pgl_release(l), 0);

	pgl_pool_stats s = wait_whole(1);
	ck_assert_uint_eq(s.reset_failures, 1);
	ck_assert(testbroker_log_has(&broker, "reset failed"));
}

/* In stray[]: the holder sends the reset's FunctionCall itself, with a nonce of its own. */
#define FUNCTION_CALL "(FunctionCall of int8up)"

/*
 * Raw holders that leave replies unread: the backend is replaced, never
 * handed on.  The last two leave exactly what a reset of either kind
 * answers, but for a nonce that is not the broker's: those replies are in
 * the socket before the reset's own, so only the nonce tells them apart.
 */
static const char *const stray[][3] = {
	{ "ROLLBACK", "DISCARD ALL", NULL },
	{ "SELECT 1", NULL, NULL },
	{ "SELECT pg_sleep(0.01)", NULL, NULL },	/* ends before the reset could stall */
	{ "BEGIN", "SELECT 'x'", NULL },
	{ "ROLLBACK", "DISCARD ALL", "SELECT '0123456789abcdef'" },
	{ "ROLLBACK", "DISCARD ALL", FUNCTION_CALL },
};

START_TEST(test_stray_replies_replace)
{
	testbroker_start(&broker, NULL, POOL(1, 1), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	int pid = pgl_backend_pid(l);

	for (int i = 0; i < 3 && stray[_i][i] != NULL; i++) {
		if (strcmp(stray[_i][i], FUNCTION_CALL) == 0) {
			uint8_t call[64];
			size_t n = pgproto_function_call_int8(call, sizeof(call), 1910,
							      0x0123456789abcdefULL);
			ck_assert(n > 0 && testutil_raw_write(pgl_fd(l), call, n));
		} else {
			ck_assert(testutil_raw_send(pgl_fd(l), stray[_i][i]));
		}
	}
	/* answered before the release (10 ms is plenty): the reset's replies come in a later read */
	struct pollfd p = { .fd = pgl_fd(l), .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	usleep(50000);
	ck_assert_int_eq(pgl_release(l), 0);
	assert_replaced(c, pid);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * Waits until fd holds the whole reply to one query, up to its
 * ReadyForQuery, without reading it; starts[] gets where each of its first
 * max messages begins.  Returns the reply's length.
 */
static size_t
peek_reply(int fd, size_t *starts, int max)
{
	uint8_t buf[1024];
	int64_t deadline = clock_mono_ms() + 10000;

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK);
		size_t off = 0;
		for (int i = 0; n > 0 && off + 5 <= (size_t)n; i++) {
			size_t len = (size_t)buf[off + 1] << 24 | (size_t)buf[off + 2] << 16 |
				     (size_t)buf[off + 3] << 8 | buf[off + 4];
			if (i < max)
				starts[i] = off;
			if (buf[off] == 'Z' && off + 1 + len <= (size_t)n)
				return off + 1 + len;
			off += 1 + len;
		}
		ck_assert_msg(clock_mono_ms() < deadline, "no whole reply came");
		usleep(2000);
	}
}

/*
 * Raw holders that read part of a reply and leave the rest, cut between two
 * messages or inside one: {message, bytes into it} of the reply to SELECT
 * 'half' (RowDescription, DataRow, CommandComplete, ReadyForQuery).
 */
static const int cuts[][2] = {
	{ 0, 1 },	/* a type byte read, the rest left */
	{ 1, 0 },	/* the RowDescription read */
	{ 1, 3 },	/* the cut inside the DataRow's length word */
	{ 1, 7 },	/* ... inside its body */
	{ 3, 0 },	/* all but the ReadyForQuery */
	{ 3, 5 },	/* all but its last byte */
};

START_TEST(test_half_read_replaces)
{
	uint8_t buf[1024];
	size_t starts[4];

	/*
	 * What is left may read as the start of a message longer than all the
	 * reset's replies (a cut inside the DataRow's body does): then only the
	 * reset's deadline, connect_timeout, ends it.  Never lent either way.
	 */
	testbroker_start(&broker, NULL,
			 testutil_pool_checked("{ name = \"main\"; conninfo = \"$CONNINFO\"; "
					       "min_size = 1; max_size = 1; connect_timeout = 2.0; }"),
			 true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	int pid = pgl_backend_pid(l);

	ck_assert(testutil_raw_send(pgl_fd(l), "SELECT 'half'"));
	size_t whole = peek_reply(pgl_fd(l), starts, 4);
	size_t cut = starts[cuts[_i][0]] + (size_t)cuts[_i][1];
	ck_assert_uint_lt(cut, whole);
	ck_assert(testutil_raw_read(pgl_fd(l), buf, cut));
	ck_assert_int_eq(pgl_release(l), 0);
	assert_replaced(c, pid);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * The reset ends with the test case's reset_check, and a clean one keeps
 * the backend.  A FunctionCall reports no query text to pg_stat_activity,
 * so the backend's last query is the reset's DISCARD ALL; with "query" it
 * is the SELECT of the nonce.
 */
START_TEST(test_reset_check_sent)
{
	char sql[128], out[256], st;

	testbroker_start(&broker, NULL, POOL(1, 1), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	int pid = pgl_backend_pid(l);
	ck_assert(testutil_raw_query(pgl_fd(l), "SELECT 'mine'", out, sizeof(out), &st));
	ck_assert_int_eq(pgl_release(l), 0);

	pgl_pool_stats s = wait_whole(1);
	ck_assert_uint_eq(s.resets, 1);
	ck_assert_uint_eq(s.reset_failures, 0);
	snprintf(sql, sizeof(sql), "SELECT query FROM pg_stat_activity WHERE pid = %d", pid);
	ck_assert_msg(testutil_sql(sql, out, sizeof(out)), "%s", out);
	if (strcmp(testutil_reset_check, "function") == 0)
		ck_assert_str_eq(out, "DISCARD ALL");
	else
		ck_assert_msg(strncmp(out, "SELECT '", 8) == 0 && strlen(out) == 8 + 16 + 1 &&
			      strspn(out + 8, "0123456789abcdef") == 16, "last query: %s", out);

	l = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_backend_pid(l), pid);	/* reset and kept */
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_discard_replaces)
{
	testbroker_start(&broker, NULL, POOL(1, 1), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	int pid = pgl_backend_pid(l);

	ck_assert_int_eq(pgl_discard(l), 0);
	l = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_ne(pgl_backend_pid(l), pid);
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_child_leases_are_inert)
{
	char out[64], st;

	testbroker_start(&broker, NULL, POOL(1, 1), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);

	pid_t k = fork();
	ck_assert_int_ge(k, 0);
	if (k == 0) {
		/* The parent's backend is out of reach: the fd is /dev/null now. */
		struct stat sb;
		REQUIRE(fstat(pgl_fd(l), &sb) == 0 && S_ISCHR(sb.st_mode),
			"the child still holds the parent's backend socket");
		REQUIRE(pgl_release(l) == -1 && pgl_errcode(c) == PGL_ESTALE,
			"release in the child: %d %s", pgl_errcode(c), pgl_error(c));
		/* Its own lease works: the client reconnects for the child. */
		pgl_lease *mine = pgl_acquire(c, NULL, 0);
		REQUIRE(mine == NULL && pgl_errcode(c) == PGL_ETIMEOUT,
			"pool of 1 is leased: %s", pgl_error(c));
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(k, &status, 0), k);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed");
	/* the parent's lease is untouched */
	ck_assert(testutil_raw_query(pgl_fd(l), "SELECT 7", out, sizeof(out), &st));
	ck_assert_str_eq(out, "7");
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_pool_stats s = wait_whole(1);
	ck_assert_uint_eq(s.orphaned_leases, 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A backend that neither ends nor reads when its holder dies: the query
 * traps the cancel, so neither the cancel nor the end of stream reaches it.
 * After the grace period the broker ends it with pg_terminate_backend(),
 * on another backend of the pool (loop 0), or, in a pool of one, on a
 * connection opened for that (loop 1); then it replaces it.  (With
 * connection_check_interval, PostgreSQL 14 and later notice the end of
 * stream themselves within that interval: it is off here.)
 */
START_TEST(test_uncancelable_backend_terminated)
{
	const int size = _i == 0 ? 2 : 1;
	char pools[256];
	int p[2];

	snprintf(pools, sizeof(pools), "{ name = \"main\"; conninfo = \"$CONNINFO\"; "
		 "min_size = %d; max_size = %d; connect_timeout = 1.0; "
		 "connection_check_interval = 0; initial_backoff = 0.1; }", size, size);
	testbroker_start(&broker, NULL, pools, true);
	ck_assert_int_eq(pipe(p), 0);
	pid_t w = fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* gone with a failed test */
		pgl_client *c = pgl_open(broker.socket);
		pgl_lease *l = pgl_acquire(c, NULL, -1);
		REQUIRE(l != NULL, "acquire: %s", pgl_error(c));
		/* the inner loop never leaves the block that traps the cancel */
		REQUIRE(testutil_raw_send(pgl_fd(l),
					  "DO $$ BEGIN LOOP BEGIN LOOP PERFORM pg_sleep(0.05); END LOOP; "
					  "EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$"),
			"send");
		int pid = pgl_backend_pid(l);
		REQUIRE(write(p[1], &pid, sizeof(pid)) == sizeof(pid), "pipe");
		for (;;)
			pause();
	}
	close(p[1]);
	int backend;
	ck_assert_int_eq(read(p[0], &backend, sizeof(backend)), sizeof(backend));
	close(p[0]);
	char sql[160];
	/*
	 * The trap is set once the loop sleeps: a cancel that came while the
	 * block was still being compiled would end the query, and the backend
	 * with it, and there would be nothing stuck to terminate.
	 */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
		 "query LIKE 'DO %%' AND wait_event = 'PgSleep'", backend);
	int64_t deadline = clock_mono_ms() + 10000;
	while (testutil_sql_long(sql) != 1) {	/* the loop runs */
		ck_assert_msg(clock_mono_ms() < deadline, "the trapping query never started");
		usleep(10000);
	}

	ck_assert_int_eq(kill(w, SIGKILL), 0);
	ck_assert_int_eq(waitpid(w, NULL, 0), w);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", backend);
	deadline = clock_mono_ms() + 15000;
	while (testutil_sql_long(sql) != 0) {
		ck_assert_msg(clock_mono_ms() < deadline, "backend %d outlived its holder", backend);
		usleep(20000);
	}
	pgl_pool_stats st = wait_whole(size);
	ck_assert_uint_eq(st.orphaned_leases, 1);
	char want[80];
	snprintf(want, sizeof(want), "backend_pid=%d; terminating it", backend);
	ck_assert_msg(testbroker_log_has(&broker, want), "no \"%s\" in %s", want, broker.log);
	/* a pool of one has no idle connection, and no room: one goes above max_size */
	snprintf(want, sizeof(want), "above max_size=1 to run pg_terminate_backend(%d)", backend);
	ck_assert_int_eq(testbroker_log_has(&broker, want), _i == 1);
	assert_pool_clean(size, "pg_class WHERE false");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A client that gives its lease back and goes with a reply of the broker
 * unread: the kernel reports the reset to the broker before the RELEASE it
 * sent last, which must still count as a proper release, not an orphan.
 */
START_TEST(test_release_then_reset)
{
	testbroker_start(&broker, NULL, POOL(1, 1), true);
	int fd = testutil_control_connect(broker.socket);
	ck_assert_int_ge(fd, 0);
	ck_assert(testutil_hello(fd));

	struct wire_msg m = { .h = { .type = PGL_MSG_LEASE_ACQUIRE, .request_id = 2 } };
	m.u.acquire.timeout_ms = -1;
	ck_assert(testutil_wire_send(fd, &m, 0));
	uint8_t buf[WIRE_MESSAGE_MAX];
	int backend_fd = -1;
	ssize_t n = fdpass_recv(fd, buf, sizeof(buf), &backend_fd);
	struct wire_msg grant;
	const char *why;
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(wire_decode(buf, (size_t)n, &grant, &why), 0);
	ck_assert_int_eq(grant.h.type, PGL_MSG_LEASE_GRANT);
	ck_assert_int_ge(backend_fd, 0);

	/* a request answered at once (the one backend is out), never read */
	m.h.request_id = 3;
	m.u.acquire.timeout_ms = 0;
	ck_assert(testutil_wire_send(fd, &m, 0));
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 5000), 1);

	struct wire_msg rel = { .h = { .type = PGL_MSG_LEASE_RELEASE, .request_id = 4 } };
	rel.u.release.lease_id = grant.u.grant.lease_id;
	rel.u.release.state = WIRE_RELEASE_CLEAN;
	ck_assert(testutil_wire_send(fd, &rel, 0));
	close(backend_fd);
	close(fd);	/* with the answer to request 3 unread */

	pgl_pool_stats st = wait_whole(1);
	ck_assert_uint_eq(st.orphaned_leases, 0);
	ck_assert_uint_eq(st.resets, 1);
	ck_assert(!testbroker_log_has(&broker, "lease orphaned"));
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
orphan_suite(void)
{
	Suite *s = suite_create("orphan");
	TCase *tc = tcase_create("orphan");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_killed_mid_transaction);
	tcase_add_test(tc, test_killed_with_forked_child);
	tcase_add_test(tc, test_exit_without_release);
	tcase_add_test(tc, test_release_in_transaction);
	tcase_add_loop_test(tc, test_stray_replies_replace, 0,
			    (int)(sizeof(stray) / sizeof(stray[0])));
	tcase_add_test(tc, test_discard_replaces);
	tcase_add_test(tc, test_child_leases_are_inert);
	tcase_add_loop_test(tc, test_uncancelable_backend_terminated, 0, 2);
	tcase_add_test(tc, test_release_then_reset);
	tcase_add_loop_test(tc, test_half_read_replaces, 0, (int)(sizeof(cuts) / sizeof(cuts[0])));
	tcase_add_test(tc, test_reset_check_sent);
	suite_add_tcase(s, tc);

	/* The reset's cases again, the nonce sent as SELECT '<nonce>'. */
	tc = tcase_create("reset_query");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, testutil_setup_query_check, NULL);
	tcase_add_test(tc, test_exit_without_release);
	tcase_add_test(tc, test_release_in_transaction);
	tcase_add_loop_test(tc, test_stray_replies_replace, 0,
			    (int)(sizeof(stray) / sizeof(stray[0])));
	tcase_add_loop_test(tc, test_half_read_replaces, 0, (int)(sizeof(cuts) / sizeof(cuts[0])));
	tcase_add_test(tc, test_reset_check_sent);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(orphan_suite());
}
