/*
 * check_admin.c - pglease-ctl against a real broker and server: pause holds
 * new acquires (FIFO) until resume, and waits for the leases out or times
 * out; kill-lease ends that lease's transaction; kill-client drops a
 * worker's session; reconnect replaces the backends; show's JSON; who may
 * administer; SIGUSR1/SIGUSR2; reload and drain.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct testbroker broker;

#define CTL TOP_BUILDDIR "/pglease-ctl"
#define PYTHON "/usr/bin/python3"
#define POOL(extra) "{ name = \"main\"; conninfo = \"$CONNINFO\"; " extra " }"

/*
 * Runs pglease-ctl -s SOCKET args... (NULL-terminated) as uid (-1: as the
 * test, root); its stdout and stderr in out.  Returns its exit status.
 */
static int
ctl_as(uid_t uid, char *out, size_t len, ...)
{
	char *argv[16] = { (char *)CTL, (char *)"-s", broker.socket };
	int argc = 3, pipefd[2], status;
	va_list ap;

	va_start(ap, len);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	if (uid == (uid_t)-1)
		return testutil_run(argv, out, len);

	ck_assert_int_eq(pipe(pipefd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		testutil_become(uid, testutil_nobody_gid(), NULL, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	size_t used = 0;
	ssize_t n;
	while ((n = read(pipefd[0], out + used, len - 1 - used)) > 0)
		used += (size_t)n;
	out[used] = '\0';
	close(pipefd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define ctl(out, ...) ctl_as((uid_t)-1, out, sizeof(out), __VA_ARGS__, (char *)NULL)

/* Whether python's check (an expression on d, the parsed JSON) holds for json. */
static bool
json_holds(const char *json, const char *expr)
{
	char script[1024], out[2048];

	ck_assert_msg(access(PYTHON, X_OK) == 0, "%s is needed to parse JSON", PYTHON);
	snprintf(script, sizeof(script), "import json, sys\nd = json.loads(sys.argv[1])\n"
		 "sys.exit(0 if (%s) else 1)\n", expr);
	char *argv[] = { (char *)PYTHON, (char *)"-c", script, (char *)json, NULL };
	int rc = testutil_run(argv, out, sizeof(out));
	if (rc != 0)
		fprintf(stderr, "json check failed (%s) on %s: %s\n", expr, json, out);
	return rc == 0;
}

static pgl_pool_stats
stats(void)
{
	pgl_pool_stats st;

	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	return st;
}

/* Worker timestamps, shared across fork. */
static int64_t *
shared_times(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(p != MAP_FAILED);
	memset(p, 0, 4096);
	return p;
}

/* A worker that acquires from main (waiting up to 10 s), records when, holds it hold_ms. */
static pid_t
spawn_acquirer(int64_t *granted_at, int hold_ms)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pgl_client *c = pgl_open(broker.socket);
		REQUIRE(c != NULL, "pgl_open");
		pgl_lease *l = pgl_acquire(c, "main", 10000);
		REQUIRE(l != NULL, "acquire: %s", pgl_error(c));
		*granted_at = clock_mono_ms();
		usleep((useconds_t)hold_ms * 1000);
		REQUIRE(pgl_release(l) == 0, "release: %s", pgl_error(c));
		pgl_close(c);
		_exit(0);
	}
	return pid;
}

/* Pause holds new acquires (in their order) until resume. */
START_TEST(test_pause_holds_acquires)
{
	char out[4096];
	int64_t *t = shared_times();

	testbroker_start(&broker, NULL, POOL("min_size = 1; max_size = 1;"), true);
	ck_assert_int_eq(ctl(out, "pause", "main"), 0);
	ck_assert_msg(strstr(out, "paused main") != NULL, "%s", out);

	pid_t a = spawn_acquirer(&t[0], 300);
	WAIT_UNTIL(stats().waiting == 1, 5000, "the first acquire does not wait");
	pid_t b = spawn_acquirer(&t[1], 0);
	WAIT_UNTIL(stats().waiting == 2, 5000, "the second acquire does not wait");
	usleep(300000);
	ck_assert_int_eq(t[0], 0);
	ck_assert_int_eq(t[1], 0);
	ck_assert_int_eq(stats().leased, 0);
	ck_assert_int_eq(stats().idle, 1);	/* the pool keeps its backend */

	int64_t resumed = clock_mono_ms();
	ck_assert_int_eq(ctl(out, "resume", "main"), 0);
	testutil_reap(a, "first acquirer");
	testutil_reap(b, "second acquirer");
	ck_assert_int_ge(t[0], resumed);
	/* FIFO: the first in the queue got the only backend first */
	ck_assert_int_ge(t[1], t[0] + 250);
	ck_assert(testbroker_log_has(&broker, "admin command=pause pool=main uid=0"));
	ck_assert(testbroker_log_has(&broker, "admin command=resume pool=main uid=0"));
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* Pause returns once the lease out comes back, and fails after --timeout while it does not. */
START_TEST(test_pause_waits_for_lease)
{
	char out[4096];

	testbroker_start(&broker, NULL, POOL("min_size = 1; max_size = 2;"), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, "main", -1), *l2;
	ck_assert_ptr_nonnull(l);

	int64_t t0 = clock_mono_ms();
	ck_assert_int_eq(ctl(out, "--timeout", "0.5", "pause", "main"), 1);
	ck_assert_int_ge(clock_mono_ms() - t0, 450);
	ck_assert_msg(strstr(out, "not quiet") != NULL && strstr(out, "1 lease out") != NULL,
		      "%s", out);
	ck_assert(testbroker_log_has(&broker, "admin pause timed out pool=main"));

	/* Again, in the background; the lease comes back meanwhile. */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char o[1024];
		int rc = ctl(o, "--timeout", "10", "pause", "main");
		REQUIRE(rc == 0, "pause exited %d: %s", rc, o);
		REQUIRE(strstr(o, "quiet") != NULL, "%s", o);
		_exit(0);
	}
	testbroker_wait_log(&broker, "admin command=pause", 2, 5000);
	usleep(300000);
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);	/* still waiting */
	ck_assert_int_eq(pgl_release(l), 0);
	testutil_reap(pid, "pause");
	testbroker_wait_log(&broker, "admin pause done pool=main", 1, 5000);

	/* A pause still waiting when a resume comes fails at once. */
	ck_assert_int_eq(ctl(out, "resume"), 0);
	l2 = pgl_acquire(c, "main", -1);
	ck_assert_ptr_nonnull(l2);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char o[1024];
		int rc = ctl(o, "--timeout", "20", "pause");
		REQUIRE(rc == 1, "pause exited %d: %s", rc, o);
		REQUIRE(strstr(o, "resumed") != NULL, "%s", o);
		_exit(0);
	}
	testbroker_wait_log(&broker, "admin command=pause", 3, 5000);
	ck_assert_int_eq(ctl(out, "resume", "main"), 0);
	int64_t t1 = clock_mono_ms();
	testutil_reap(pid, "pause cut short by resume");
	ck_assert_int_lt(clock_mono_ms() - t1, 5000);
	ck_assert_int_eq(pgl_release(l2), 0);

	ck_assert_int_eq(ctl(out, "resume"), 0);
	l = pgl_acquire(c, "main", 0);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* The lease id show leases prints for holder pid, into id[17]. */
static void
lease_of(pid_t holder, char *id)
{
	char out[8192], want[64];

	ck_assert_int_eq(ctl(out, "--json", "show", "leases"), 0);
	snprintf(want, sizeof(want), "\"holder_pid\":%d", (int)holder);
	char *row = strstr(out, want);
	ck_assert_msg(row != NULL, "no lease of pid %d in %s", (int)holder, out);
	while (row > out && *row != '{')
		row--;
	char *p = strstr(row, "\"lease_id\":\"");
	ck_assert_ptr_nonnull(p);
	memcpy(id, p + strlen("\"lease_id\":\""), 16);
	id[16] = '\0';
}

/* kill-lease: the transaction ends with the backend; the holder's release does no harm. */
START_TEST(test_kill_lease)
{
	char out[1024], id[17], st;

	ck_assert(testutil_sql("CREATE TABLE killed_lease (x int)", out, sizeof(out)));
	testbroker_start(&broker, NULL, POOL("min_size = 1; max_size = 2;"), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, "main", -1);
	ck_assert_ptr_nonnull(l);
	int pid = pgl_backend_pid(l);
	ck_assert(testutil_raw_query(pgl_fd(l), "BEGIN; INSERT INTO killed_lease VALUES (1)", out,
				     sizeof(out), &st));
	ck_assert_int_eq(st, 'T');

	lease_of(getpid(), id);
	ck_assert_int_eq(ctl(out, "kill-lease", id), 0);
	char sql[96];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
	WAIT_UNTIL(testutil_sql_long(sql) == 0, 10000, "backend %d still runs", pid);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM killed_lease"), 0);
	ck_assert(testbroker_log_has(&broker, "lease killed pool=main"));

	/* the holder's next use fails, its release is harmless */
	ck_assert(!testutil_raw_query(pgl_fd(l), "COMMIT", out, sizeof(out), &st));
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM killed_lease"), 0);
	/* no such lease any more */
	ck_assert_int_eq(ctl(out, "kill-lease", id), 1);
	ck_assert_int_eq(ctl(out, "kill-lease", "not-hex"), 2);

	/* the pool serves on, with a new backend */
	l = pgl_acquire(c, "main", 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_ne(pgl_backend_pid(l), pid);
	ck_assert(testutil_raw_query(pgl_fd(l), "SELECT 1", out, sizeof(out), &st));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* kill-client: the worker's session goes as a dead worker's does. */
START_TEST(test_kill_client)
{
	char out[4096], pidstr[16];
	int go[2], ready[2];

	ck_assert(testutil_sql("CREATE TABLE killed_client (x int)", out, sizeof(out)));
	testbroker_start(&broker, NULL, POOL("min_size = 1; max_size = 2;"), true);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(ready), 0);
	pid_t w = fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		char o[256], s, x;
		pgl_client *c = pgl_open(broker.socket);
		pgl_lease *l = pgl_acquire(c, "main", -1);
		REQUIRE(l != NULL, "acquire: %s", pgl_error(c));
		REQUIRE(testutil_raw_query(pgl_fd(l), "BEGIN; INSERT INTO killed_client VALUES (1)",
					   o, sizeof(o), &s), "insert: %s", o);
		REQUIRE(write(ready[1], "r", 1) == 1, "write");
		REQUIRE(read(go[0], &x, 1) == 1, "read");
		/* cut off: the backend is gone; a release does no harm */
		REQUIRE(!testutil_raw_query(pgl_fd(l), "COMMIT", o, sizeof(o), &s),
			"the killed client's backend still answers");
		(void)pgl_release(l);
		pgl_close(c);
		_exit(0);
	}
	char x;
	ck_assert_int_eq(read(ready[0], &x, 1), 1);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)w);
	ck_assert_int_eq(ctl(out, "--json", "show", "clients"), 0);
	char expr[128];
	snprintf(expr, sizeof(expr), "any(r['pid'] == %d and r['leases'] == 1 for r in d)", (int)w);
	ck_assert(json_holds(out, expr));

	ck_assert_int_eq(ctl(out, "kill-client", pidstr), 0);
	ck_assert(testbroker_log_has(&broker, "client killed pid="));
	WAIT_UNTIL(stats().leased == 0 && stats().orphaned_leases == 1, 5000,
		   "the client's lease was not orphaned");
	ck_assert_int_eq(ctl(out, "--json", "show", "clients"), 0);
	snprintf(expr, sizeof(expr), "all(r['pid'] != %d for r in d)", (int)w);
	ck_assert(json_holds(out, expr));
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	testutil_reap(w, "killed client");
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM killed_client"), 0);
	ck_assert_int_eq(ctl(out, "kill-client", "999999"), 1);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* reconnect: idle backends are replaced now, a leased one when it comes back. */
START_TEST(test_reconnect)
{
	char out[1024];

	testbroker_start(&broker, NULL, POOL("min_size = 2; max_size = 2;"), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l1 = pgl_acquire(c, "main", -1), *l2 = pgl_acquire(c, "main", -1);
	ck_assert_ptr_nonnull(l1);
	ck_assert_ptr_nonnull(l2);
	int old1 = pgl_backend_pid(l1), old2 = pgl_backend_pid(l2);
	ck_assert_int_eq(pgl_release(l2), 0);
	WAIT_UNTIL(stats().idle == 1, 5000, "the released backend is not idle");

	ck_assert_int_eq(ctl(out, "reconnect", "main"), 0);
	ck_assert_msg(strstr(out, "1 idle") != NULL, "%s", out);
	ck_assert_int_eq(pgl_release(l1), 0);
	ck_assert_int_eq(ctl(out, "reconnect", "nosuch"), 1);
	ck_assert_int_eq(ctl(out, "reconnect"), 2);

	int64_t deadline = clock_mono_ms() + 10000;
	for (;;) {
		l1 = pgl_acquire(c, "main", 5000);
		l2 = pgl_acquire(c, "main", 5000);
		ck_assert_msg(l1 != NULL && l2 != NULL, "%s", pgl_error(c));
		int p1 = pgl_backend_pid(l1), p2 = pgl_backend_pid(l2);
		ck_assert_int_eq(pgl_release(l1), 0);
		ck_assert_int_eq(pgl_release(l2), 0);
		if (p1 != old1 && p1 != old2 && p2 != old1 && p2 != old2)
			break;
		ck_assert_msg(clock_mono_ms() < deadline, "old backends still lent: %d %d", p1, p2);
		usleep(20000);
	}
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid IN (%d, %d)",
		 old1, old2);
	WAIT_UNTIL(testutil_sql_long(sql) == 0, 10000, "the old backends still run");
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* show ... --json parses, with the fields the man page names; the table has its header. */
START_TEST(test_show_json)
{
	char out[8192], expr[512];

	testbroker_start(&broker, NULL, POOL("min_size = 1; max_size = 3;"), true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, "main", -1);
	ck_assert_ptr_nonnull(l);

	ck_assert_int_eq(ctl(out, "--json", "show", "pools"), 0);
	ck_assert(json_holds(out, "len(d) == 1 and d[0]['name'] == 'main' and "
			     "d[0]['min_size'] == 1 and d[0]['max_size'] == 3 and "
			     "d[0]['leased'] == 1 and d[0]['waiting'] == 0 and "
			     "d[0]['paused'] is False and d[0]['backoff'] == 0 and "
			     "d[0]['size'] >= 1 and 'idle' in d[0]"));
	ck_assert_int_eq(ctl(out, "--json", "show", "clients"), 0);
	snprintf(expr, sizeof(expr), "any(r['pid'] == %d and r['leases'] == 1 and "
		 "r['waiting'] == 0 and 'uid' in r and r['connected_since'].endswith('Z') "
		 "for r in d)", (int)getpid());
	ck_assert(json_holds(out, expr));
	ck_assert_int_eq(ctl(out, "--json", "show", "leases"), 0);
	snprintf(expr, sizeof(expr), "len(d) == 1 and d[0]['holder_pid'] == %d and "
		 "d[0]['pool'] == 'main' and len(d[0]['lease_id']) == 16 and "
		 "d[0]['backend_pid'] == %d and d[0]['state'] == 'active' and "
		 "d[0]['age'] >= 0 and isinstance(d[0]['slot'], int)", (int)getpid(),
		 pgl_backend_pid(l));
	ck_assert(json_holds(out, expr));

	/* --timeout 0: paused at once, with the lease still out */
	ck_assert_int_eq(ctl(out, "--timeout", "0", "pause"), 0);
	ck_assert_msg(strstr(out, "1 lease out") != NULL, "%s", out);
	ck_assert_int_eq(ctl(out, "--json", "show", "pools"), 0);
	ck_assert(json_holds(out, "d[0]['paused'] is True"));
	ck_assert_int_eq(ctl(out, "resume"), 0);

	ck_assert_int_eq(ctl(out, "show", "pools"), 0);
	ck_assert_msg(strncmp(out, "name", 4) == 0 && strstr(out, "\nmain ") != NULL, "%s", out);
	ck_assert_int_eq(ctl(out, "--json", "pause", "nosuch"), 1);
	ck_assert(json_holds(out, "d['ok'] is False"));
	ck_assert_int_eq(ctl(out, "show", "nothing"), 2);
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);

	/* no broker there */
	ck_assert_int_eq(ctl(out, "show", "pools"), 2);
}
END_TEST

/* Only admin_uids/admin_gids (by default root and the broker's uid) may; a reload changes who. */
START_TEST(test_non_admin_refused)
{
	char out[4096];
	uid_t nobody = testutil_nobody_uid();
	char extra[160];

	ck_assert_int_eq(chmod(testutil_tmpdir(), 0755), 0);
	testbroker_start(&broker, "socket_mode = \"0666\"; allowed_uids = [ 0, 65534 ];",
			 POOL("min_size = 1; max_size = 1;"), true);
	ck_assert_int_eq(chmod(broker.dir, 0755), 0);

	ck_assert_int_eq(ctl_as(nobody, out, sizeof(out), "pause", NULL), 1);
	ck_assert_msg(strstr(out, "may not administer") != NULL, "%s", out);
	ck_assert(testbroker_log_has(&broker, "admin command refused command=pause"));
	ck_assert_int_eq(ctl(out, "--json", "show", "pools"), 0);
	ck_assert(json_holds(out, "d[0]['paused'] is False"));

	/* nobody becomes an administrator (not a client: allowed_uids lacks it), root is not one */
	snprintf(extra, sizeof(extra), "socket_mode = \"0666\"; allowed_uids = [ 0 ]; "
		 "admin_uids = [ %u ];", (unsigned)nobody);
	testbroker_write_config(&broker, extra, POOL("min_size = 1; max_size = 1;"));
	int reloads = testbroker_log_count(&broker, "reloaded");
	ck_assert_int_eq(kill(broker.pid, SIGHUP), 0);
	testbroker_wait_log(&broker, "reloaded", reloads + 1, 5000);
	ck_assert_int_eq(ctl_as(nobody, out, sizeof(out), "--json", "show", "pools", NULL), 0);
	ck_assert(json_holds(out, "d[0]['name'] == 'main'"));
	ck_assert_int_eq(ctl(out, "show", "pools"), 1);
	ck_assert_int_eq(ctl_as(nobody, out, sizeof(out), "pause", NULL), 0);
	ck_assert_int_eq(ctl_as(nobody, out, sizeof(out), "--json", "show", "pools", NULL), 0);
	ck_assert(json_holds(out, "d[0]['paused'] is True"));
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* An administrator gets in beyond max_clients; a worker of the same uid does not. */
START_TEST(test_admin_beyond_max_clients)
{
	char out[4096];

	testbroker_start(&broker, "max_clients = 1;", POOL("min_size = 1; max_size = 2;"), true);
	pgl_client *c = pgl_open(broker.socket), *c2 = pgl_open(broker.socket);
	pgl_lease *l;
	/* testbroker_start's probe of the socket may still hold the one place a moment */
	WAIT_UNTIL((l = pgl_acquire(c, "main", -1)) != NULL, 5000, "%s", pgl_error(c));
	ck_assert_ptr_null(pgl_acquire(c2, "main", -1));
	ck_assert_int_eq(pgl_errcode(c2), PGL_ELIMIT);

	ck_assert_int_eq(ctl(out, "--json", "show", "leases"), 0);
	ck_assert(json_holds(out, "len(d) == 1"));
	ck_assert(testbroker_log_has(&broker, "administrator let in uid=0"));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c2);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* SIGUSR1 pauses every pool, SIGUSR2 resumes them; the broker lives on. */
START_TEST(test_signals_pause_resume)
{
	char out[4096];

	testbroker_start(&broker, NULL, POOL("min_size = 1; max_size = 1;") ", "
			 "{ name = \"other\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 1; }",
			 true);
	pgl_client *c = pgl_open(broker.socket);
	ck_assert_int_eq(kill(broker.pid, SIGUSR1), 0);
	testbroker_wait_log(&broker, "pausing every pool (SIGUSR1)", 1, 5000);
	ck_assert_int_eq(kill(broker.pid, 0), 0);
	ck_assert_int_eq(ctl(out, "--json", "show", "pools"), 0);
	ck_assert(json_holds(out, "len(d) == 2 and all(r['paused'] for r in d)"));
	/* what monitoring sees: pglease-stat reads it from the segment */
	char *stat_argv[] = { (char *)TOP_BUILDDIR "/pglease-stat", (char *)"--prometheus",
			      (char *)"-n", broker.shm, NULL };
	static char expo[65536];
	ck_assert_int_eq(testutil_run(stat_argv, expo, sizeof(expo)), 0);
	ck_assert_msg(strstr(expo, "pglease_pool_paused{pool=\"other\"} 1") != NULL,
		      "pglease-stat --prometheus shows no paused pool \"other\"");
	ck_assert_ptr_null(pgl_acquire(c, "other", 0));
	ck_assert_int_eq(pgl_errcode(c), PGL_ETIMEOUT);
	ck_assert_msg(strstr(pgl_error(c), "paused") != NULL, "%s", pgl_error(c));

	ck_assert_int_eq(kill(broker.pid, SIGUSR2), 0);
	testbroker_wait_log(&broker, "resuming every pool (SIGUSR2)", 1, 5000);
	pgl_lease *l = pgl_acquire(c, "other", 0);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert_int_eq(ctl(out, "--json", "show", "pools"), 0);
	ck_assert(json_holds(out, "not any(r['paused'] for r in d)"));
	ck_assert_int_eq(testutil_run(stat_argv, expo, sizeof(expo)), 0);
	ck_assert_msg(strstr(expo, "pglease_pool_paused{pool=\"other\"} 0") != NULL,
		      "pglease-stat --prometheus shows pool \"other\" still paused");
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* reload is SIGHUP's, drain SIGTERM's; pause refuses during a drain. */
START_TEST(test_reload_and_drain)
{
	char out[4096];

	testbroker_start(&broker, NULL, POOL("min_size = 1; max_size = 2;"), true);
	ck_assert_int_eq(ctl(out, "reload"), 0);
	testbroker_wait_log(&broker, "reloaded", 1, 5000);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, "main", -1);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(ctl(out, "drain"), 0);
	testbroker_wait_log(&broker, "draining", 1, 5000);
	ck_assert_int_eq(ctl(out, "pause"), 2);	/* the socket is closed */
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert_int_eq(testbroker_wait_exit(&broker, 10000), 0);
	pgl_close(c);
}
END_TEST

static Suite *
admin_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *tc = tcase_create("admin");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pause_holds_acquires);
	tcase_add_test(tc, test_pause_waits_for_lease);
	tcase_add_test(tc, test_kill_lease);
	tcase_add_test(tc, test_kill_client);
	tcase_add_test(tc, test_reconnect);
	tcase_add_test(tc, test_show_json);
	tcase_add_test(tc, test_non_admin_refused);
	tcase_add_test(tc, test_admin_beyond_max_clients);
	tcase_add_test(tc, test_signals_pause_resume);
	tcase_add_test(tc, test_reload_and_drain);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(admin_suite());
}
