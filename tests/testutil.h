/*
 * testutil.h - what the Check suites share: running programs, temporary
 * files, and starting a suite under a throwaway PostgreSQL.
 */
#ifndef PGL_TESTUTIL_H
#define PGL_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/clock.h"

/*
 * For integration suites, first thing in main(): unless the process already
 * runs under tests/pg/with-postgres, re-executes itself under it, so that a
 * suite run by hand gets its own server just as under "make check".
 */
void testutil_require_postgres(int argc, char **argv);

/* A fresh directory under $TMPDIR, removed at exit.  Never NULL. */
const char *testutil_tmpdir(void);

/* Writes text to dir/name; returns the path (static storage per call site: copy it). */
char *testutil_write_file(const char *name, const char *text);

/*
 * Runs argv[0] (a path) with argv, stdout and stderr captured into out
 * (NUL-terminated, truncated to outlen).  Returns the exit status, or 128+N
 * when killed by signal N, or -1 when it could not be run.
 */
int testutil_run(char *const argv[], char *out, size_t outlen);

/*
 * In a forked worker (where Check's assertions do not reach the report):
 * exit 1 with a message on stderr when cond is false.
 */
#define REQUIRE(cond, ...)                                                    \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "worker %d: ", (int)getpid());        \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                  \
			_exit(1);                                             \
		}                                                             \
	} while (0)

/*
 * Forks argv[0] (a path) with argv, its stdout and stderr appended to log,
 * dying with the test process (deathsig); as uid:gid with no supplementary
 * group when uid is not (uid_t)-1 (the test runs as root).  Returns its pid.
 */
pid_t testutil_spawn(const char *log, uid_t uid, gid_t gid, int deathsig, char *const argv[]);

/* Waits for a forked worker; asserts that it exited 0. */
void testutil_reap(pid_t pid, const char *what);

/*
 * Polls cond every 5 ms until it holds; fails the test with the message
 * (printf arguments) when it still does not after timeout_ms.  For events
 * that must come: a bound, never a guess of how long they take.
 */
#define WAIT_UNTIL(cond, timeout_ms, ...)                                     \
	do {                                                                  \
		int64_t wait_deadline_ = clock_mono_ms() + (timeout_ms);      \
		while (!(cond)) {                                             \
			ck_assert_msg(clock_mono_ms() < wait_deadline_, __VA_ARGS__); \
			usleep(5000);                                         \
		}                                                             \
	} while (0)

/*
 * In a forked child of a root test process: becomes uid/gid with exactly
 * the ngroups supplementary groups given (none when 0), so that no group of
 * root's is left behind.  Exits 1 with a message when it cannot.
 */
void testutil_become(uid_t uid, gid_t gid, const gid_t *groups, int ngroups);

/* The uid and gid of "nobody" (65534 where there is none). */
uid_t testutil_nobody_uid(void);
gid_t testutil_nobody_gid(void);

/* Runs the suite in fork mode with Check's summary line; returns main()'s status. */
int testutil_run_suite(Suite *s);

#endif

/* --- a real pgleased for integration suites --- */

struct testbroker {
	pid_t pid;
	uid_t uid;		/* the broker's user: its segment's owner */
	bool default_modes;	/* no shm_mode of the suites': the broker's defaults */
	char dir[256];		/* holds config, socket, log */
	char conf[300];
	char socket[300];
	char log[300];
	char shm[64];
};

/*
 * Starts pgleased on a fresh config: a broker section with its own socket
 * and shm name, and pools (libconfig text; "$CONNINFO" in it is replaced
 * by a conninfo for the harness's server).  Waits until the socket answers
 * and every pool has min_size idle backends (when wait_ready).  The broker
 * dies with the test process (PR_SET_PDEATHSIG).
 */
void testbroker_start(struct testbroker *b, const char *broker_extra, const char *pools,
		      bool wait_ready);

/*
 * testbroker_start with neither shm_mode nor socket_mode in the file (unless
 * broker_extra sets them): the broker's defaults apply.  testbroker_start
 * sets shm_mode "0644", so that unprivileged readers may read the segment.
 */
void testbroker_start_default_modes(struct testbroker *b, const char *broker_extra,
				    const char *pools, bool wait_ready);

/*
 * The pool group pool ("{ name = ...; }") with the settings extra added
 * before its closing brace (static storage: use it before the next call).
 */
const char *testutil_pool_with(const char *pool, const char *extra);

/*
 * The reset_check of the running test case's pools: "function" (the
 * default), or "query" in a test case with testutil_setup_query_check() as
 * its checked fixture.  testutil_pool_checked() is testutil_pool_with()
 * with that setting.
 */
extern const char *testutil_reset_check;
void testutil_setup_query_check(void);
const char *testutil_pool_checked(const char *pool);

/* Rewrites the broker's config file (atomically) with the same template. */
void testbroker_write_config(const struct testbroker *b, const char *broker_extra,
			     const char *pools);

/* Starts it again on the same config (after a crash, say). */
void testbroker_restart(struct testbroker *b, bool wait_ready);

/* Sends sig and waits for the exit; returns the exit status (128+N for a signal). */
int testbroker_stop(struct testbroker *b, int sig);

/* Whether the broker's log contains text. */
bool testbroker_log_has(const struct testbroker *b, const char *text);

/* Whether a line of the file at path contains text (false when it cannot be read). */
bool testutil_file_has(const char *path, const char *text);

/*
 * The path of program name, on PATH or in dirs (colon-separated), in
 * static storage; fails the test, naming the Debian package, without it.
 */
const char *testutil_program(const char *name, const char *dirs, const char *package);

/* How many lines of the broker's log contain text. */
int testbroker_log_count(const struct testbroker *b, const char *text);

/*
 * Waits up to timeout_ms until at least count lines of the broker's log
 * contain text (count them before the event to wait for the next one);
 * fails the test, naming text, count and log, when they do not come.
 */
void testbroker_wait_log(const struct testbroker *b, const char *text, int count, int timeout_ms);

/*
 * Waits up to timeout_ms for the broker to exit (after a signal sent
 * meanwhile); fails the test when it does not.  Returns the exit status
 * as testbroker_stop does.
 */
int testbroker_wait_exit(struct testbroker *b, int timeout_ms);

/* Waits up to timeout_ms for every pool to hold at least n idle backends. */
bool testbroker_wait_idle(const struct testbroker *b, int pool, int n, int timeout_ms);

/* Runs sql on a direct connection to the harness's server; first value into out. */
bool testutil_sql(const char *sql, char *out, size_t len);

/* The integer result of sql on a direct connection (-1 on error). */
long testutil_sql_long(const char *sql);

/* Backends of the pools (application_name pgleased) the server sees. */
long testutil_pool_backends(void);

/*
 * Runs sql (simple protocol, several statements allowed) on a leased raw
 * backend socket; reads every reply up to ReadyForQuery.  out gets the first
 * column of the first row ("" when none), status the ReadyForQuery state
 * ('I', 'T', 'E').  Returns false on an ErrorResponse or I/O error (out then
 * holds the error message).
 */
bool testutil_raw_query(int fd, const char *sql, char *out, size_t len, char *status);

/* Writes len bytes to a raw backend socket; false when the send failed. */
bool testutil_raw_write(int fd, const void *buf, size_t len);

/* Reads exactly len bytes from a raw backend socket, waiting up to 30 s for each part. */
bool testutil_raw_read(int fd, void *buf, size_t len);

/* Writes sql as one Query message and reads nothing; false when the send failed. */
bool testutil_raw_send(int fd, const char *sql);

/* pg_ctl ACTION (stop, start, restart) on the harness's server, as its owner. */
void testutil_pg_ctl(const char *action);

struct wire_msg;

/* A connection to the broker's control socket at path; -1 with errno on failure. */
int testutil_control_connect(const char *path);

/* Sends m, encoded, as one message (send flags added); false when it did not go. */
bool testutil_wire_send(int fd, const struct wire_msg *m, int flags);

/* HELLO at the lowest protocol version, and whatever the broker answers read. */
bool testutil_hello(int fd);

/* Whether a connect() to the UNIX socket at path, of type (SOCK_STREAM...), succeeds. */
bool testutil_socket_answers(const char *path, int type);

/* Open file descriptors of process pid (0: this one). */
int testutil_count_fds(pid_t pid);

/* "fd=target ..." for each open descriptor of pid, for a failure message. */
const char *testutil_describe_fds(pid_t pid, char *buf, size_t len);

/* --- a hostile broker: a listener that answers as a test scripts it --- */

#include <stdint.h>

/*
 * Listens on path as pgleased does (SOCK_SEQPACKET) and forks a process
 * that accepts one client, answers its HELLO with a WELCOME of version
 * (acquire_timeout_ms when version >= 2), then runs script(conn, arg) and
 * exits 0 (a failed REQUIRE in it exits 1).  Returns that process's pid,
 * for testutil_reap().  It dies with the test process.
 */
pid_t testutil_hostile_broker(const char *path, uint16_t version, uint32_t acquire_timeout_ms,
			      void (*script)(int conn, void *arg), void *arg);

/* Receives one message on fd within timeout_ms into m (buf holds it); *pass_fd gets an attached fd. */
bool testutil_wire_recv(int fd, struct wire_msg *m, uint8_t *buf, size_t cap, int *pass_fd,
			int timeout_ms);

/* Sends m with pass_fd attached (-1: none); false when it did not go. */
bool testutil_wire_send_fd(int fd, const struct wire_msg *m, int pass_fd);

/* Waits until fd's peer closes (or timeout_ms passes), discarding what arrives. */
void testutil_wait_eof(int fd, int timeout_ms);

/*
 * testbroker_start() for a broker that runs as uid:gid (the test runs as
 * root): its directory is theirs, and the test's temporary directory is
 * opened for traversal (0711) so that they can reach it.
 */
void testbroker_start_as(struct testbroker *b, uid_t uid, gid_t gid, const char *broker_extra,
			 const char *pools, bool wait_ready);
