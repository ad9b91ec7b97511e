/*
 * check_access.c - who may lease: the broker-wide allowed_uids and
 * allowed_gids, checked at connect and again after a reload.  Runs as root
 * (as CI does) and switches workers to the unprivileged user nobody.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534
#define POOLS "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 2; }"

static struct testbroker broker;

/* In a forked worker: become nobody, for good. */
static void
become_nobody(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	REQUIRE(setgroups(0, NULL) == 0 && setgid(NOBODY) == 0 && setuid(NOBODY) == 0,
		"cannot become nobody");
}

static void
wait_log(const char *text)
{
	int64_t deadline = clock_mono_ms() + 10000;

	while (!testbroker_log_has(&broker, text)) {
		ck_assert_msg(clock_mono_ms() < deadline, "no \"%s\" in the broker's log", text);
		usleep(10000);
	}
}

/*
 * Issue 9 item 6: a reload that removes a uid refuses that peer's next
 * ACQUIRE on the connection it already has; the lease it holds runs to its
 * release.  A non-empty list replaces the broker's own uid.
 */
START_TEST(test_reload_removes_uid)
{
	int go[2], done[2];

	ck_assert_msg(geteuid() == 0, "this suite runs as root (as CI does), to switch users");
	ck_assert_int_eq(chmod(testutil_tmpdir(), 0755), 0);
	testbroker_start(&broker, "socket_mode = \"0666\"; allowed_uids = [ 65534 ];", POOLS,
			 true);
	ck_assert_int_eq(chmod(broker.dir, 0755), 0);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(done), 0);
	pid_t w = fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		char c;
		become_nobody();
		pgl_client *cl = pgl_open(broker.socket);
		pgl_lease *l = pgl_acquire(cl, NULL, -1);
		REQUIRE(l != NULL, "nobody refused before the reload: %s", pgl_error(cl));
		REQUIRE(write(done[1], "1", 1) == 1, "pipe");
		REQUIRE(read(go[0], &c, 1) == 1, "pipe");	/* the reload happened */
		/* the lease held across the reload still works and goes back */
		PGconn *conn = pgl_conn(l);
		REQUIRE(conn != NULL, "pgl_conn: %s", pgl_error(cl));
		REQUIRE(pgl_release(l) == 0, "release: %s", pgl_error(cl));
		REQUIRE(pgl_acquire(cl, NULL, -1) == NULL, "nobody still leases after the reload");
		REQUIRE(pgl_errcode(cl) == PGL_EDENIED, "code %d: %s", pgl_errcode(cl),
			pgl_error(cl));
		REQUIRE(strstr(pgl_error(cl), "reload") != NULL, "%s", pgl_error(cl));
		pgl_close(cl);
		_exit(0);
	}
	char c;
	ck_assert_int_eq(read(done[0], &c, 1), 1);

	/* the broker's own uid (root) is not listed: refused */
	pgl_client *root = pgl_open(broker.socket);
	ck_assert_ptr_null(pgl_acquire(root, NULL, -1));
	ck_assert_int_eq(pgl_errcode(root), PGL_EDENIED);
	pgl_close(root);

	testbroker_write_config(&broker, "socket_mode = \"0666\"; allowed_uids = [ 0 ];", POOLS);
	ck_assert_int_eq(kill(broker.pid, SIGHUP), 0);
	wait_log("reloaded ");
	ck_assert_int_eq(write(go[1], "1", 1), 1);
	testutil_reap(w, "worker denied by the reload");
	ck_assert(testbroker_log_has(&broker, "client denied uid=65534 pid="));

	pgl_pool_stats st;
	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	ck_assert_uint_eq(st.orphaned_leases, 0);	/* the held lease was released */
	/* root, listed now, gets in */
	root = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(root, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(root));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(root);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
access_suite(void)
{
	Suite *s = suite_create("access");
	TCase *tc = tcase_create("access");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reload_removes_uid);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(access_suite());
}
