/*
 * check_faults.c - the broker under faults: PostgreSQL down at start or
 * restarted, backends killed while idle, the broker itself restarted,
 * hostile clients, drain and stop (also with acquires being validated), a
 * second broker, denied users, the default modes of socket and segment.
 * The tests of users need root (CI runs the suite as root) and fail
 * without it.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/fdpass.h"
#include "common/shm.h"
#include "common/wire.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define POOL(min, max) \
	"{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = " #min "; max_size = " #max \
	"; acquire_timeout = 5.0; initial_backoff = 0.2; max_backoff = 0.5; }"

static struct testbroker broker;


/* Every test starts with the server up, whatever the previous one did to it. */
static void
server_up(void)
{
	char out[64];

	if (!testutil_sql("SELECT 1", out, sizeof(out)))
		testutil_pg_ctl("start");
}

static void
wait_until(bool (*cond)(void), int timeout_ms, const char *what)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;

	while (!cond()) {
		ck_assert_msg(clock_mono_ms() < deadline, "timed out waiting for %s", what);
		usleep(10000);
	}
}

static pgl_pool_stats
stats(void)
{
	pgl_pool_stats st;

	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	return st;
}

START_TEST(test_postgres_down_at_start)
{
	testutil_pg_ctl("stop");
	testbroker_start(&broker, NULL, POOL(1, 2), false);
	pgl_client *c = pgl_open(broker.socket);

	ck_assert_ptr_null(pgl_acquire(c, NULL, 600));
	ck_assert_int_eq(pgl_errcode(c), PGL_EUNAVAILABLE);
	ck_assert_msg(strstr(pgl_error(c), "cannot connect to PostgreSQL") != NULL &&
		      strstr(pgl_error(c), "connection to server") != NULL, "%s", pgl_error(c));
	ck_assert_uint_ge(stats().connect_failures, 2);	/* it kept trying, backing off */
	ck_assert(testbroker_log_has(&broker, "connect failed pool=main"));
	ck_assert(testbroker_log_has(&broker, "retry_in="));

	testutil_pg_ctl("start");
	pgl_lease *l = pgl_acquire(c, NULL, 10000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert(testbroker_log_has(&broker, "connected again pool=main"));
	ck_assert_int_eq(stats().backoff_until_ms, 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static uint64_t connects_before;

static bool
replaced_both(void)
{
	pgl_pool_stats st = stats();
	return st.connects >= connects_before + 2 && st.idle == 2;
}

START_TEST(test_idle_backends_killed)
{
	testbroker_start(&broker, NULL, POOL(2, 2), true);
	connects_before = stats().connects;
	char killed[128];

	ck_assert(testutil_sql("SELECT string_agg(pid::text, ',') FROM pg_stat_activity "
			       "WHERE application_name = 'pgleased'", killed, sizeof(killed)));
	ck_assert_int_eq(testutil_sql_long("SELECT count(pg_terminate_backend(pid)) FROM "
					   "pg_stat_activity WHERE application_name = 'pgleased'"), 2);
	/* noticed without any query, and replaced */
	wait_until(replaced_both, 10000, "both backends replaced");
	ck_assert(testbroker_log_has(&broker, "idle backend lost"));

	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", pgl_backend_pid(l));
	ck_assert_msg(strstr(killed, pid) == NULL, "killed backend %s leased again", pid);
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_postgres_restart)
{
	testbroker_start(&broker, NULL, POOL(2, 2), true);
	pgl_client *c = pgl_open(broker.socket);

	testutil_pg_ctl("restart");
	/* the pool serves again within the backoff window */
	pgl_lease *l = pgl_acquire(c, NULL, 10000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	char out[64], st;
	ck_assert(testutil_raw_query(pgl_fd(l), "SELECT 1", out, sizeof(out), &st));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static int stale_backend;

static bool
stale_backend_gone(void)
{
	char sql[96];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d",
		 stale_backend);
	return testutil_sql_long(sql) == 0;
}

START_TEST(test_broker_restart)
{
	testbroker_start(&broker, NULL, POOL(1, 2), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	int fd = pgl_fd(l);
	stale_backend = pgl_backend_pid(l);

	ck_assert_int_eq(testbroker_stop(&broker, SIGKILL), 128 + SIGKILL);
	/* the dead broker's segment is still there: readers call it down */
	char out[1024];
	char *stat[] = { (char *)TOP_BUILDDIR "/pglease-stat", (char *)"-n", broker.shm, NULL };
	ck_assert_int_eq(testutil_run(stat, out, sizeof(out)), 2);
	ck_assert_msg(strstr(out, "is down") != NULL, "%s", out);
	pgl_pool_stats dead;
	ck_assert_int_eq(pgl_stats(broker.shm, &dead, 1), -1);
	ck_assert_int_eq(errno, ESRCH);
	/* the new broker replaces the dead one's socket and segment */
	testbroker_restart(&broker, true);
	ck_assert(testbroker_log_has(&broker, "replacing the stale socket"));

	ck_assert_int_eq(pgl_release(l), -1);
	ck_assert_int_eq(pgl_errcode(c), PGL_ESTALE);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);	/* closed */
	wait_until(stale_backend_gone, 10000, "the stale lease's backend to end");

	l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_ne(pgl_backend_pid(l), stale_backend);
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* What the broker answers, if anything, before it closes: the ERROR's code or 0. */
static int
answer_then_eof(int fd, char *text, size_t len)
{
	uint8_t buf[WIRE_MESSAGE_MAX];
	struct wire_msg m;
	const char *why;
	int code = 0;

	text[0] = '\0';
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return code;
		if (wire_decode(buf, (size_t)n, &m, &why) == 0 &&
		    m.h.type == PGL_MSG_SESSION_ERROR) {
			code = m.u.error.code;
			snprintf(text, len, "%.*s", (int)len - 1, m.u.error.message);
		}
	}
}

static const struct {
	const char *name;
	const uint8_t bytes[24];
	size_t len;
	bool with_fd;
} garbage[] = {
	{ "short", { 1, 2, 3 }, 3, false },
	{ "bad length", { 3, 0, 0, 0, 200, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 }, 16, false },
	{ "unknown type", { 99, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 }, 16, false },
	{ "ACQUIRE before HELLO", { 3, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
				    0, 0, 255, 255, 255, 255 }, 22, false },
	{ "HELLO with a fd", { 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
			       1, 0, 1, 0, 1, 0, 0, 0 }, 24, true },
	{ "HELLO for versions 5..6", { 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
				       5, 0, 6, 0, 1, 0, 0, 0 }, 24, false },
};

START_TEST(test_garbage_disconnects_only_its_sender)
{
	testbroker_start(&broker, NULL, POOL(1, 2), true);
	pgl_client *good = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(good, NULL, -1);
	ck_assert_ptr_nonnull(l);
	int before = testutil_count_fds(broker.pid);

	int fd = testutil_control_connect(broker.socket);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fdpass_send(fd, garbage[_i].bytes, garbage[_i].len,
				     garbage[_i].with_fd ? STDIN_FILENO : -1),
			 (ssize_t)garbage[_i].len);
	char text[256];
	int code = answer_then_eof(fd, text, sizeof(text));
	close(fd);
	ck_assert_msg(code == PGL_EPROTO, "%s: code %d (%s)", garbage[_i].name, code, text);
	ck_assert(testbroker_log_has(&broker, "protocol error from client"));

	/* everyone else is served on, and nothing leaked */
	ck_assert_int_eq(pgl_release(l), 0);
	l = pgl_acquire(good, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(good));
	ck_assert_int_eq(pgl_release(l), 0);
	WAIT_UNTIL(testutil_count_fds(broker.pid) == before, 10000, "broker fds %d, before %d",
		   testutil_count_fds(broker.pid), before);
	pgl_close(good);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_sigterm_drains)
{
	testbroker_start(&broker, NULL, POOL(2, 2), true);
	pgl_client *holder = pgl_open(broker.socket);
	pgl_client *other = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(holder, NULL, -1);
	pgl_lease *o = pgl_acquire(other, NULL, -1);

	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(pgl_release(o), 0);
	ck_assert_int_eq(kill(broker.pid, SIGTERM), 0);
	/* draining: the log says so, then the socket goes */
	testbroker_wait_log(&broker, "draining: ", 1, 10000);
	WAIT_UNTIL(access(broker.socket, F_OK) != 0, 10000, "%s is still there after SIGTERM",
		   broker.socket);

	/* a connected client is refused at once (not after acquire_timeout, 5 s); a new one
	 * cannot connect */
	int64_t t0 = clock_mono_ms();
	ck_assert_ptr_null(pgl_acquire(other, NULL, -1));
	ck_assert_int_eq(pgl_errcode(other), PGL_EDRAINING);
	ck_assert_int_lt(clock_mono_ms() - t0, 2500);
	pgl_client *late = pgl_open(broker.socket);
	ck_assert_ptr_null(pgl_acquire(late, NULL, -1));
	ck_assert_int_eq(pgl_errcode(late), PGL_EBROKER);

	/* the lease still works until it comes back; then the broker exits 0 */
	char out[32], st;
	ck_assert(testutil_raw_query(pgl_fd(l), "SELECT 5", out, sizeof(out), &st));
	ck_assert_str_eq(out, "5");
	ck_assert_int_eq(waitpid(broker.pid, NULL, WNOHANG), 0);
	ck_assert_int_eq(pgl_release(l), 0);
	int status;
	ck_assert_int_eq(waitpid(broker.pid, &status, 0), broker.pid);
	broker.pid = 0;
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(testbroker_log_has(&broker, "every lease came back"));
	ck_assert_int_eq(testutil_pool_backends(), 0);
	pgl_close(holder);
	pgl_close(other);
	pgl_close(late);
}
END_TEST

START_TEST(test_sigterm_timeout_and_sigint)
{
	/* shutdown_timeout cuts a lease that does not come back (never, here) */
	testbroker_start(&broker, "shutdown_timeout = 0.3;", POOL(1, 1), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(kill(broker.pid, SIGTERM), 0);
	ck_assert_int_eq(testbroker_wait_exit(&broker, 15000), 0);
	ck_assert(testbroker_log_has(&broker, "shutdown_timeout reached"));
	pgl_release(l);
	pgl_close(c);

	/* SIGINT: at once, not after shutdown_timeout (an hour) */
	testbroker_start(&broker, "shutdown_timeout = 3600.0;", POOL(1, 1), true);
	c = pgl_open(broker.socket);
	l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(kill(broker.pid, SIGINT), 0);
	ck_assert_int_eq(testbroker_wait_exit(&broker, 15000), 0);
	ck_assert(testbroker_log_has(&broker, "SIGINT: closing every connection now"));
	pgl_release(l);
	pgl_close(c);
}
END_TEST

START_TEST(test_second_broker_refused)
{
	char out[4096];

	testbroker_start(&broker, NULL, POOL(1, 1), true);
	char *argv[] = { (char *)TOP_BUILDDIR "/pgleased", (char *)"-c", broker.conf, NULL };
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "another broker listens on") != NULL, "%s", out);

	/* another socket, the same segment: the live broker keeps it */
	char conf[1024], path[600];
	snprintf(conf, sizeof(conf), "broker = { socket = \"%s.b\"; shm_name = \"%s\"; };\n"
		 "pools = ( { name = \"x\"; conninfo = \"dbname=x\"; min_size = 0; } );\n",
		 broker.socket, broker.shm);
	snprintf(path, sizeof(path), "%s", testutil_write_file("second.conf", conf));
	argv[2] = path;
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "belongs to a running broker") != NULL, "%s", out);
	struct stat sb;
	char other[400];
	snprintf(other, sizeof(other), "%s.b", broker.socket);
	ck_assert_msg(stat(other, &sb) != 0, "the refused broker left its socket behind");

	/* a socket directory that does not exist */
	snprintf(conf, sizeof(conf), "broker = { socket = \"/nonexistent/dir/s.sock\"; "
		 "shm_name = \"%s.c\"; };\n"
		 "pools = ( { name = \"x\"; conninfo = \"dbname=x\"; min_size = 0; } );\n",
		 broker.shm);
	snprintf(path, sizeof(path), "%s", testutil_write_file("third.conf", conf));
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "create its directory first") != NULL, "%s", out);
	/* the first one is untouched */
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * SIGTERM while acquires are being validated (validate_after = 0, a health
 * query that waits for a lock the test holds) and more queue behind them:
 * every one gets ERROR draining at once, and the broker exits without
 * waiting for the checks to end.
 */
START_TEST(test_sigterm_while_validating)
{
	enum { WAITERS = 4, SIZE = 2 };
	PGconn *lock = PQconnectdb("");
	ck_assert_int_eq(PQstatus(lock), CONNECTION_OK);
	PGresult *r = PQexec(lock, "SELECT pg_advisory_lock(4711)");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);

	testbroker_start(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 2; "
			 "max_size = 2; validate_after = 0; acquire_timeout = 30.0; "
			 "health_query = \"SELECT pg_advisory_xact_lock_shared(4711)\"; }", true);
	pid_t w[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		w[i] = fork();
		ck_assert_int_ge(w[i], 0);
		if (w[i] == 0) {
			pgl_client *c = pgl_open(broker.socket);
			int64_t t0 = clock_mono_ms();
			pgl_lease *l = pgl_acquire(c, NULL, -1);
			REQUIRE(l == NULL, "waiter %d got a lease from a draining broker", i);
			REQUIRE(pgl_errcode(c) == PGL_EDRAINING, "waiter %d: code %d: %s", i,
				pgl_errcode(c), pgl_error(c));
			REQUIRE(clock_mono_ms() - t0 < 20000, "waiter %d answered after %lld ms", i,
				(long long)(clock_mono_ms() - t0));
			pgl_close(c);
			_exit(0);
		}
	}
	/* two acquires wait on their checks, which wait on the lock; the others queue */
	struct shm_snapshot snap;
	int validating = 0, waiting = 0;
	int64_t deadline = clock_mono_ms() + 15000;
	for (;;) {
		ck_assert_int_eq(shm_snapshot(broker.shm, &snap), 0);
		validating = 0;
		for (uint32_t i = 0; i < snap.hdr.nslots; i++)
			validating += snap.slots[i].state == SHM_SLOT_VALIDATING;
		waiting = snap.pools[0].waiting;
		shm_snapshot_free(&snap);
		if (validating == SIZE && waiting == WAITERS - SIZE)
			break;
		ck_assert_msg(clock_mono_ms() < deadline, "%d backends validating, %d acquires "
			      "waiting", validating, waiting);
		usleep(5000);
	}
	WAIT_UNTIL(testutil_sql_long("SELECT count(*) FROM pg_stat_activity WHERE "
				     "application_name = 'pgleased' AND wait_event_type = 'Lock'")
		   == SIZE, 10000, "the health checks do not wait on the lock");

	ck_assert_int_eq(kill(broker.pid, SIGTERM), 0);
	for (int i = 0; i < WAITERS; i++)
		testutil_reap(w[i], "waiter during the drain");
	ck_assert_int_eq(testbroker_wait_exit(&broker, 15000), 0);
	ck_assert(testbroker_log_has(&broker, "draining: 0 leases out"));
	/* the checks were cut, not waited for: the lock is still held */
	WAIT_UNTIL(testutil_pool_backends() == 0, 10000, "%ld pool backends outlived the broker",
		   testutil_pool_backends());
	r = PQexec(lock, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "1");
	PQclear(r);
	PQfinish(lock);
}
END_TEST

/* --- who may use the broker ------------------------------------------------ */

/* The tests below switch workers to other users: only root can. */
static void
require_root(void)
{
	ck_assert_msg(geteuid() == 0, "this test switches workers to other users and needs root "
		      "(CI runs the suite as root); it cannot pass without");
	/* mkdtemp made it 0700: others could not even reach a socket under it */
	ck_assert_int_eq(chmod(testutil_tmpdir(), 0755), 0);
}

START_TEST(test_denied_user)
{
	/* A user other than the broker's: refused with PGL_EDENIED and a log line. */
	require_root();
	testbroker_start(&broker, "socket_mode = \"0666\"; socket_group = \"daemon\"; "
			 "allowed_uids = [ 4242 ];", POOL(1, 1), true);
	ck_assert_int_eq(chmod(broker.dir, 0755), 0);
	/* the socket's mode and group as configured */
	struct stat sb;
	ck_assert_int_eq(stat(broker.socket, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0666);
	struct group *daemon_group = getgrnam("daemon");
	ck_assert_ptr_nonnull(daemon_group);
	ck_assert_int_eq(sb.st_gid, daemon_group->gr_gid);
	uid_t nobody = testutil_nobody_uid();
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		testutil_become(nobody, testutil_nobody_gid(), NULL, 0);
		pgl_client *c = pgl_open(broker.socket);
		REQUIRE(pgl_acquire(c, NULL, -1) == NULL, "nobody got a lease");
		REQUIRE(pgl_errcode(c) == PGL_EDENIED, "code %d: %s", pgl_errcode(c), pgl_error(c));
		_exit(0);
	}
	testutil_reap(p, "a user not allowed");
	char denied[64];
	snprintf(denied, sizeof(denied), "client denied uid=%u", (unsigned)nobody);
	ck_assert(testbroker_log_has(&broker, denied));
	/* a non-empty list replaces the default: the broker's own user is refused too */
	pgl_client *c = pgl_open(broker.socket);
	ck_assert_ptr_null(pgl_acquire(c, NULL, -1));
	ck_assert_int_eq(pgl_errcode(c), PGL_EDENIED);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A group in allowed_gids lets its members in, as their primary group
 * (loop 0) or a supplementary one (loop 1); a user of neither is refused.
 */
START_TEST(test_allowed_group)
{
	require_root();
	struct group *daemon_group = getgrnam("daemon");
	ck_assert_ptr_nonnull(daemon_group);
	gid_t allowed = testutil_nobody_gid(), other = daemon_group->gr_gid;
	char extra[128];
	snprintf(extra, sizeof(extra), "socket_mode = \"0666\"; allowed_gids = [ %u ];",
		 (unsigned)allowed);
	testbroker_start(&broker, extra, POOL(1, 1), true);
	ck_assert_int_eq(chmod(broker.dir, 0755), 0);
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		if (_i == 0)
			testutil_become(testutil_nobody_uid(), allowed, NULL, 0);
		else
			testutil_become(testutil_nobody_uid(), other, &allowed, 1);
		pgl_client *c = pgl_open(broker.socket);
		pgl_lease *l = pgl_acquire(c, NULL, -1);
		REQUIRE(l != NULL, "a member of group %u was refused: %s", (unsigned)allowed,
			pgl_error(c));
		REQUIRE(pgl_release(l) == 0, "%s", pgl_error(c));
		_exit(0);
	}
	testutil_reap(p, "member of an allowed group");
	p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		testutil_become(testutil_nobody_uid(), other, NULL, 0);
		pgl_client *c = pgl_open(broker.socket);
		REQUIRE(pgl_acquire(c, NULL, -1) == NULL, "a user of no allowed group got a lease");
		REQUIRE(pgl_errcode(c) == PGL_EDENIED, "code %d: %s", pgl_errcode(c), pgl_error(c));
		_exit(0);
	}
	testutil_reap(p, "member of no allowed group");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * With socket_mode and shm_mode left to their defaults ("0660", "0640"), a
 * user neither the broker's nor in its group can neither connect nor read
 * the segment, while a member of its group can do both (and lease, its
 * group being allowed), but never write the segment.
 */
START_TEST(test_default_modes)
{
	require_root();
	gid_t group = getegid();	/* the broker's: the socket's and the segment's */
	char extra[128];
	snprintf(extra, sizeof(extra), "allowed_gids = [ %u ];", (unsigned)group);
	testbroker_start_default_modes(&broker, extra, POOL(1, 1), true);
	ck_assert_int_eq(chmod(broker.dir, 0755), 0);

	struct stat sb;
	ck_assert_int_eq(stat(broker.socket, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0660);
	ck_assert_int_eq(sb.st_gid, group);
	int fd = shm_open(broker.shm, O_RDONLY, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	close(fd);
	ck_assert_int_eq(sb.st_mode & 07777, 0640);
	ck_assert_int_eq(sb.st_gid, group);

	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		testutil_become(testutil_nobody_uid(), testutil_nobody_gid(), NULL, 0);
		struct stat ssb;
		/* it can reach the socket: only its mode keeps this user out */
		REQUIRE(stat(broker.socket, &ssb) == 0, "stat %s: %s", broker.socket, strerror(errno));
		REQUIRE(testutil_control_connect(broker.socket) < 0 && errno == EACCES,
			"an outsider connected to %s (%s)", broker.socket, strerror(errno));
		pgl_client *c = pgl_open(broker.socket);
		REQUIRE(pgl_acquire(c, NULL, -1) == NULL, "an outsider got a lease");
		REQUIRE(pgl_errcode(c) == PGL_EBROKER, "code %d: %s", pgl_errcode(c), pgl_error(c));
		REQUIRE(shm_open(broker.shm, O_RDONLY, 0) < 0 && errno == EACCES,
			"an outsider opened %s (%s)", broker.shm, strerror(errno));
		pgl_pool_stats st;
		REQUIRE(pgl_stats(broker.shm, &st, 1) == -1 && errno == EACCES,
			"an outsider read %s (%s)", broker.shm, strerror(errno));
		_exit(0);
	}
	testutil_reap(p, "a user of neither the broker's uid nor its group");

	p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		testutil_become(testutil_nobody_uid(), testutil_nobody_gid(), &group, 1);
		pgl_client *c = pgl_open(broker.socket);
		pgl_lease *l = pgl_acquire(c, NULL, -1);
		REQUIRE(l != NULL, "a member of the broker's group: %s", pgl_error(c));
		REQUIRE(pgl_release(l) == 0, "%s", pgl_error(c));
		pgl_close(c);
		pgl_pool_stats st;
		REQUIRE(pgl_stats(broker.shm, &st, 1) == 1, "a member of the broker's group cannot "
			"read %s: %s", broker.shm, strerror(errno));
		REQUIRE(st.leases >= 1, "leases %llu", (unsigned long long)st.leases);
		REQUIRE(shm_open(broker.shm, O_RDWR, 0) < 0 && errno == EACCES,
			"a member of the broker's group may write %s", broker.shm);
		_exit(0);
	}
	testutil_reap(p, "a member of the broker's group");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("faults");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, server_up, NULL);
	tcase_add_test(tc, test_postgres_down_at_start);
	tcase_add_test(tc, test_idle_backends_killed);
	tcase_add_test(tc, test_postgres_restart);
	tcase_add_test(tc, test_broker_restart);
	tcase_add_loop_test(tc, test_garbage_disconnects_only_its_sender, 0,
			    (int)(sizeof(garbage) / sizeof(garbage[0])));
	tcase_add_test(tc, test_sigterm_drains);
	tcase_add_test(tc, test_sigterm_timeout_and_sigint);
	tcase_add_test(tc, test_second_broker_refused);
	tcase_add_test(tc, test_sigterm_while_validating);
	tcase_add_test(tc, test_denied_user);
	tcase_add_loop_test(tc, test_allowed_group, 0, 2);
	tcase_add_test(tc, test_default_modes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(faults_suite());
}
