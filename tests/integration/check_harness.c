/*
 * check_harness.c - the throwaway PostgreSQL of tests/pg/with-postgres:
 * it serves libpq clients from forked processes, and every way a run ends
 * stops the server and removes its directory.
 */
#include "autoconf.h"

#include "testutil.h"

#include <check.h>
#include <stdbool.h>
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WITH_POSTGRES TOP_SRCDIR "/tests/pg/with-postgres"

START_TEST(test_connect_and_query)
{
	PGconn *c = PQconnectdb("");

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
	ck_assert_msg(PQhost(c)[0] == '/', "not a UNIX socket: %s", PQhost(c));
	ck_assert_str_eq(PQhost(c), getenv("PGHOST"));
	ck_assert_int_ge(PQserverVersion(c), 100000);

	PGresult *r = PQexec(c, "SELECT 40 + 2, current_setting('fsync'), "
			     "current_setting('listen_addresses')");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
	ck_assert_str_eq(PQgetvalue(r, 0, 1), "off");
	ck_assert_str_eq(PQgetvalue(r, 0, 2), "");
	PQclear(r);
	PQfinish(c);
}
END_TEST

START_TEST(test_forked_clients)
{
	enum { N = 6 };
	pid_t pids[N];

	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			PGconn *c = PQconnectdb("");
			char sql[64];

			snprintf(sql, sizeof(sql), "SELECT %d", i);
			PGresult *r = PQexec(c, sql);
			int ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == i;
			PQclear(r);
			PQfinish(c);
			_exit(ok ? 0 : 1);
		}
	}
	for (int i = 0; i < N; i++) {
		int status;
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client %d failed", i);
	}
}
END_TEST

/* Runs with-postgres around a shell command; the output in out. */
static int
nested(const char *script, char *out, size_t outlen)
{
	char *argv[] = { (char *)"/bin/bash", (char *)WITH_POSTGRES, (char *)"/bin/sh",
			 (char *)"-c", (char *)script, NULL };

	return testutil_run(argv, out, outlen);
}

/* "KEY=value" on a line of out, copied to val. */
static void
field(const char *out, const char *key, char *val, size_t len)
{
	char pat[64];

	snprintf(pat, sizeof(pat), "%s=", key);
	const char *p = strstr(out, pat);
	ck_assert_msg(p != NULL, "no %s in:\n%s", key, out);
	p += strlen(pat);
	snprintf(val, len, "%.*s", (int)strcspn(p, "\n"), p);
}

/* Whether pid is a live process (a zombie waiting for init counts as gone). */
static bool
alive(pid_t pid)
{
	char path[64], stat_line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	bool live = fgets(stat_line, sizeof(stat_line), f) != NULL &&
		    strstr(stat_line, ") Z ") == NULL;
	fclose(f);
	return live;
}

static void
assert_gone(const char *dir, const char *pidstr)
{
	struct stat st;
	pid_t pid = (pid_t)atol(pidstr);

	ck_assert_msg(stat(dir, &st) != 0 && errno == ENOENT, "%s was not removed", dir);
	ck_assert_int_gt(pid, 1);
	/* pg_ctl stop -w returns once postmaster.pid is gone, just before the exit. */
	for (int i = 0; i < 100 && alive(pid); i++)
		usleep(50 * 1000);
	ck_assert_msg(!alive(pid), "postmaster %d still runs", (int)pid);
}

#define REPORT "echo TMP=$PGLEASE_TEST_PGTMP; echo PORT=$PGPORT; " \
	"echo PID=$(head -n 1 $PGLEASE_TEST_PGDATA/postmaster.pid); "

START_TEST(test_nested_run_is_separate_and_cleaned)
{
	char out[8192], dir[256], port[32], pid[32];
	int rc = nested(REPORT "\"$PGLEASE_TEST_PGBIN/pg_isready\" -q && echo READY", out,
			sizeof(out));

	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_assert_msg(strstr(out, "READY") != NULL, "%s", out);
	field(out, "TMP", dir, sizeof(dir));
	field(out, "PORT", port, sizeof(port));
	field(out, "PID", pid, sizeof(pid));
	/* a run inside this run: its own directory and port */
	ck_assert_str_ne(dir, getenv("PGHOST"));
	ck_assert_str_ne(port, getenv("PGPORT"));
	assert_gone(dir, pid);
}
END_TEST

START_TEST(test_failed_command_cleaned)
{
	char out[8192], dir[256], pid[32];
	int rc = nested(REPORT "exit 3", out, sizeof(out));

	ck_assert_int_eq(rc, 3);
	field(out, "TMP", dir, sizeof(dir));
	field(out, "PID", pid, sizeof(pid));
	assert_gone(dir, pid);
}
END_TEST

START_TEST(test_interrupted_run_cleaned)
{
	static const struct { const char *sig; int status; } sigs[] = {
		{ "TERM", 143 }, { "INT", 130 }, { "HUP", 129 },
	};
	char out[8192], dir[256], pid[32], script[512];

	/* The harness is signalled while its command still runs. */
	snprintf(script, sizeof(script), REPORT "kill -%s $PPID; exec sleep 30", sigs[_i].sig);
	int rc = nested(script, out, sizeof(out));

	ck_assert_msg(rc == sigs[_i].status, "SIG%s: exit %d:\n%s", sigs[_i].sig, rc, out);
	field(out, "TMP", dir, sizeof(dir));
	field(out, "PID", pid, sizeof(pid));
	assert_gone(dir, pid);
}
END_TEST

START_TEST(test_missing_postgres_is_an_error)
{
	char out[4096];

	ck_assert_int_eq(setenv("PG_BINDIR", "/nonexistent/bin", 1), 0);
	int rc = nested("echo SHOULD-NOT-RUN", out, sizeof(out));

	ck_assert_int_eq(rc, 1);
	ck_assert_ptr_null(strstr(out, "SHOULD-NOT-RUN"));
	ck_assert_msg(strstr(out, "apt-get install postgresql") != NULL, "%s", out);
}
END_TEST

static Suite *
harness_suite(void)
{
	Suite *s = suite_create("harness");
	TCase *tc = tcase_create("server");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_connect_and_query);
	tcase_add_test(tc, test_forked_clients);
	tcase_add_test(tc, test_nested_run_is_separate_and_cleaned);
	tcase_add_test(tc, test_failed_command_cleaned);
	tcase_add_loop_test(tc, test_interrupted_run_cleaned, 0, 3);
	tcase_add_test(tc, test_missing_postgres_is_an_error);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(harness_suite());
}
