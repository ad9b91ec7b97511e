/*
 * check_access.c - who may lease: the broker-wide allowed_uids and
 * allowed_gids, checked at connect and again after a reload, and each
 * pool's own lists (tenants on a shared host), through the library and the
 * preload shim.  Runs as root (as CI does) and switches workers to
 * unprivileged users.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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
	testbroker_wait_log(&broker, "reloaded ", 1, 10000);
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

/* --- per-pool lists (issue 16): two tenants on one host ------------------ */

#define TENANT_A 40001
#define TENANT_B 40002
#define OUTSIDER 40003	/* named by pool a, but not by the broker */
#define SHARED_GROUP 40100

static const char *tenant_broker =
	"socket_mode = \"0666\"; allowed_uids = [ 0, 40001, 40002 ];";

static char *
tenant_pools(const char *a_uids)
{
	static char pools[1024];

	snprintf(pools, sizeof(pools),
		 "{ name = \"a\"; conninfo = \"$CONNINFO\"; min_size = 0; max_size = 2; "
		 "allowed_uids = [ %s ]; },"
		 "{ name = \"b\"; conninfo = \"$CONNINFO\"; min_size = 0; max_size = 2; "
		 "allowed_uids = [ 40002 ]; },"
		 "{ name = \"shared\"; conninfo = \"$CONNINFO\"; min_size = 0; max_size = 2; "
		 "allowed_gids = [ 40100 ]; },"
		 "{ name = \"open\"; conninfo = \"$CONNINFO\"; min_size = 0; max_size = 2; }",
		 a_uids);
	return pools;
}

static void
tenants_start(void)
{
	ck_assert_msg(geteuid() == 0, "this suite runs as root (as CI does), to switch users");
	ck_assert_int_eq(chmod(testutil_tmpdir(), 0755), 0);
	testbroker_start(&broker, tenant_broker, tenant_pools("40001, 40003"), true);
	ck_assert_int_eq(chmod(broker.dir, 0755), 0);
}

/* In a worker: pool's acquire must give a lease (want) or PGL_EDENIED naming it. */
static void
expect(pgl_client *c, const char *pool, bool want, unsigned uid)
{
	pgl_lease *l = pgl_acquire(c, pool, 5000);

	if (want) {
		REQUIRE(l != NULL, "uid %u refused pool %s: %s", uid, pool, pgl_error(c));
		REQUIRE(pgl_release(l) == 0, "%s", pgl_error(c));
		return;
	}
	REQUIRE(l == NULL, "uid %u got a lease of pool %s", uid, pool);
	REQUIRE(pgl_errcode(c) == PGL_EDENIED, "uid %u, pool %s: code %d: %s", uid, pool,
		pgl_errcode(c), pgl_error(c));
	char want_msg[128];
	snprintf(want_msg, sizeof(want_msg), "user %u may not use pool \"%s\"", uid, pool);
	REQUIRE(strstr(pgl_error(c), want_msg) != NULL, "%s", pgl_error(c));
	/* never another tenant's details */
	REQUIRE(strstr(pgl_error(c), "40002") == NULL || uid == TENANT_B, "%s", pgl_error(c));
}

START_TEST(test_tenants_lease_their_own_pools)
{
	tenants_start();
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		testutil_become(TENANT_A, TENANT_A, NULL, 0);
		pgl_client *c = pgl_open(broker.socket);
		expect(c, "a", true, TENANT_A);
		expect(c, "b", false, TENANT_A);
		expect(c, "b", false, TENANT_A);	/* logged once only */
		expect(c, "shared", false, TENANT_A);
		expect(c, "open", true, TENANT_A);	/* no lists: the broker's */
		pgl_close(c);
		_exit(0);
	}
	testutil_reap(p, "tenant a");
	p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		gid_t shared = SHARED_GROUP;
		testutil_become(TENANT_B, TENANT_B, &shared, 1);	/* a group rule */
		pgl_client *c = pgl_open(broker.socket);
		expect(c, "b", true, TENANT_B);
		expect(c, "shared", true, TENANT_B);
		expect(c, "a", false, TENANT_B);
		pgl_close(c);
		_exit(0);
	}
	testutil_reap(p, "tenant b");
	ck_assert_int_eq(testbroker_log_count(&broker, "client denied pool=b uid=40001"), 1);
	ck_assert(testbroker_log_has(&broker, "client denied pool=a uid=40002"));

	/* the segment says which pools are restricted, not who may use them */
	char out[8192];
	char *argv[] = { (char *)TOP_BUILDDIR "/pglease-stat", (char *)"-n", broker.shm,
			 (char *)"--json", NULL };
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "\"name\":\"a\"") != NULL && strstr(out, "\"restricted\":true") != NULL &&
		      strstr(out, "\"restricted\":false") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "40001") == NULL, "the lists reached the segment:\n%s", out);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* Named by a pool but not by the broker: the broker-wide lists still gate the connection. */
START_TEST(test_broker_lists_still_gate)
{
	tenants_start();
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		testutil_become(OUTSIDER, OUTSIDER, NULL, 0);
		pgl_client *c = pgl_open(broker.socket);
		REQUIRE(pgl_acquire(c, "a", 5000) == NULL, "an outsider leased pool a");
		REQUIRE(pgl_errcode(c) == PGL_EDENIED, "code %d: %s", pgl_errcode(c), pgl_error(c));
		REQUIRE(strstr(pgl_error(c), "may not use this broker") != NULL, "%s", pgl_error(c));
		_exit(0);
	}
	testutil_reap(p, "outsider");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * A reload that takes tenant a off pool a: its next ACQUIRE of pool a, on
 * the connection it already has, is refused; the lease it holds runs to
 * its release; other pools stay as they were.
 */
START_TEST(test_reload_removes_pool_uid)
{
	int go[2], done[2];
	char c1;

	tenants_start();
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(done), 0);
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		testutil_become(TENANT_A, TENANT_A, NULL, 0);
		pgl_client *c = pgl_open(broker.socket);
		pgl_lease *held = pgl_acquire(c, "a", 5000);
		REQUIRE(held != NULL, "%s", pgl_error(c));
		REQUIRE(write(done[1], "1", 1) == 1, "pipe");
		REQUIRE(read(go[0], &c1, 1) == 1, "pipe");
		REQUIRE(pgl_conn(held) != NULL, "the held lease: %s", pgl_error(c));
		REQUIRE(pgl_release(held) == 0, "release: %s", pgl_error(c));
		expect(c, "a", false, TENANT_A);
		expect(c, "open", true, TENANT_A);
		pgl_close(c);
		_exit(0);
	}
	ck_assert_int_eq(read(done[0], &c1, 1), 1);
	testbroker_write_config(&broker, tenant_broker, tenant_pools("40003"));
	ck_assert_int_eq(kill(broker.pid, SIGHUP), 0);
	testbroker_wait_log(&broker, "reloaded ", 1, 10000);
	ck_assert_int_eq(write(go[1], "1", 1), 1);
	testutil_reap(p, "tenant a across the reload");
	pgl_pool_stats st[4];
	ck_assert_int_eq(pgl_stats(broker.shm, st, 4), 4);
	ck_assert_uint_eq(st[0].orphaned_leases, 0);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * The shim: a program of tenant a that asks for pool b gets CONNECTION_BAD
 * with the broker's refusal, never a direct connection.
 */
START_TEST(test_shim_refusal_not_fallback)
{
	tenants_start();
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		char out[4096];
		char *argv[] = { (char *)TOP_BUILDDIR "/pglease-run", (char *)"-p", (char *)"b",
				 (char *)TOP_BUILDDIR "/tests/preload/pq-probe", (char *)"refused",
				 NULL };
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		testutil_become(TENANT_A, TENANT_A, NULL, 0);
		setenv("PGLEASE_SOCKET", broker.socket, 1);
		setenv("PGLEASE_PRELOAD_LIB",
		       TOP_BUILDDIR "/src/preload/.libs/libpglease_preload.so", 1);
		int rc = testutil_run(argv, out, sizeof(out));
		REQUIRE(rc == 0, "pq-probe: %d\n%s", rc, out);
		REQUIRE(strstr(out, "status bad") != NULL, "not refused:\n%s", out);
		REQUIRE(strstr(out, "user 40001 may not use pool \"b\"") != NULL, "%s", out);
		REQUIRE(strstr(out, "connecting directly") == NULL, "fell back:\n%s", out);
		_exit(0);
	}
	testutil_reap(p, "tenant a through the shim");
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
	tcase_add_test(tc, test_tenants_lease_their_own_pools);
	tcase_add_test(tc, test_broker_lists_still_gate);
	tcase_add_test(tc, test_reload_removes_pool_uid);
	tcase_add_test(tc, test_shim_refusal_not_fallback);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(access_suite());
}
