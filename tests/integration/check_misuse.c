/*
 * check_misuse.c - a lease used after it was given back: a second
 * pgl_release() or pgl_discard(), or any call on the released pointer,
 * fails loudly and harmlessly, and the leases handed out later stay apart.
 *
 * Built twice: against libpglease as installed (misuse returns -1 or NULL
 * with PGL_EINVAL and a sentence), and as check_misuse_debug with the
 * library compiled in under PGLEASE_DEBUG (misuse writes a line to stderr
 * and aborts).
 */
#include "autoconf.h"

#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define POOL "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 2; max_size = 3; }"

static struct testbroker broker;
static pgl_client *client;

static void
setup(void)
{
	testbroker_start(&broker, NULL, POOL, true);
	client = pgl_open(broker.socket);
}

static void
teardown(void)
{
	pgl_close(client);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}

static pgl_lease *
lease(void)
{
	pgl_lease *l = pgl_acquire(client, NULL, -1);

	ck_assert_msg(l != NULL, "acquire: %s", pgl_error(client));
	return l;
}

/* The leases of one backend each, and each one's socket reaches its backend. */
static void
assert_apart(pgl_lease *a, pgl_lease *b)
{
	char out[32], st;

	ck_assert_ptr_ne(a, b);
	ck_assert_int_ne(pgl_fd(a), pgl_fd(b));
	ck_assert_int_ne(pgl_backend_pid(a), pgl_backend_pid(b));
	ck_assert(testutil_raw_query(pgl_fd(a), "SELECT pg_backend_pid()", out, sizeof(out), &st));
	ck_assert_int_eq(atoi(out), pgl_backend_pid(a));
	ck_assert(testutil_raw_query(pgl_fd(b), "SELECT pg_backend_pid()", out, sizeof(out), &st));
	ck_assert_int_eq(atoi(out), pgl_backend_pid(b));
}

#ifndef PGLEASE_DEBUG

static void
assert_misuse(const char *call)
{
	ck_assert_int_eq(pgl_errcode(client), PGL_EINVAL);
	ck_assert_msg(strstr(pgl_error(client), call) != NULL &&
		      strstr(pgl_error(client), "released or discarded already") != NULL, "%s",
		      pgl_error(client));
}

/* Released twice: the second call fails and changes nothing. */
START_TEST(test_double_release)
{
	pgl_lease *l = lease();

	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert_int_eq(pgl_release(l), -1);
	assert_misuse("pgl_release");
	ck_assert_int_eq(pgl_discard(l), -1);
	assert_misuse("pgl_discard");

	/* the next leases are two, not one object handed out twice */
	pgl_lease *a = lease(), *b = lease();
	assert_apart(a, b);
	ck_assert_int_eq(pgl_release(a), 0);
	ck_assert_int_eq(pgl_release(b), 0);
	pgl_pool_stats st;
	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	ck_assert_uint_eq(st.orphaned_leases, 0);
}
END_TEST

/* Discarded, then released: refused too; every other call on it is harmless. */
START_TEST(test_use_after_discard)
{
	pgl_lease *l = lease();

	ck_assert_int_eq(pgl_discard(l), 0);
	ck_assert_int_eq(pgl_release(l), -1);
	assert_misuse("pgl_release");
	ck_assert_ptr_null(pgl_conn(l));
	assert_misuse("pgl_conn");
	int saved = errno = 4242;
	ck_assert_int_eq(pgl_cancel(l), -1);
	ck_assert_int_eq(errno, saved);
	ck_assert_int_eq(pgl_fd(l), -1);
	ck_assert_int_eq(pgl_backend_pid(l), 0);
	ck_assert_ptr_null(pgl_param(l, "server_version"));

	/* a pointer released just before is not lent again at once */
	pgl_lease *a = lease();
	ck_assert_ptr_ne(a, l);
	ck_assert_int_eq(pgl_release(l), -1);
	ck_assert_int_ge(pgl_fd(a), 0);		/* a's lease is untouched */
	pgl_lease *b = lease();
	assert_apart(a, b);
	ck_assert_int_eq(pgl_release(a), 0);
	ck_assert_int_eq(pgl_release(b), 0);
}
END_TEST

#else

/*
 * Runs misuse(l) on a released lease in a child whose stderr is read:
 * it must die of SIGABRT after saying what was misused.
 */
static void
assert_aborts(void (*misuse)(pgl_lease *), const char *call)
{
	int err[2];
	char out[1024] = "";

	ck_assert_int_eq(pipe(err), 0);
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		pgl_lease *l = lease();
		REQUIRE(pgl_release(l) == 0, "%s", pgl_error(client));
		dup2(err[1], STDERR_FILENO);
		misuse(l);
		_exit(0);	/* not reached when the library aborts */
	}
	close(err[1]);
	size_t used = 0;
	for (ssize_t n; (n = read(err[0], out + used, sizeof(out) - 1 - used)) > 0;)
		used += (size_t)n;
	out[used] = '\0';
	close(err[0]);
	int status;
	ck_assert_int_eq(waitpid(p, &status, 0), p);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
		      "%s on a released lease: status 0x%x, stderr: %s", call, status, out);
	ck_assert_msg(strstr(out, call) != NULL && strstr(out, "released or discarded already"),
		      "stderr: %s", out);
}

static void
release_again(pgl_lease *l)
{
	(void)pgl_release(l);
}

static void
discard_after(pgl_lease *l)
{
	(void)pgl_discard(l);
}

static void
cancel_after(pgl_lease *l)
{
	(void)pgl_cancel(l);
}

START_TEST(test_debug_build_aborts)
{
	assert_aborts(release_again, "pgl_release");
	assert_aborts(discard_after, "pgl_discard");
	assert_aborts(cancel_after, "pgl_cancel");

	/* the correct use still works in a debug build */
	pgl_lease *a = lease(), *b = lease();
	assert_apart(a, b);
	ck_assert_int_eq(pgl_release(a), 0);
	ck_assert_int_eq(pgl_discard(b), 0);
}
END_TEST

#endif

static Suite *
misuse_suite(void)
{
	Suite *s = suite_create("misuse");
	TCase *tc = tcase_create("misuse");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
#ifndef PGLEASE_DEBUG
	tcase_add_test(tc, test_double_release);
	tcase_add_test(tc, test_use_after_discard);
#else
	tcase_add_test(tc, test_debug_build_aborts);
#endif
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(misuse_suite());
}
