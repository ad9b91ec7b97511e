/*
 * clientutil.h - what the real-client suites share: running an unmodified
 * libpq program directly and through pglease-run, comparing what it wrote,
 * watching how many backends the server has while it runs, and the
 * assertions that hold only once the preload shim pools.
 */
#ifndef PGL_CLIENTUTIL_H
#define PGL_CLIENTUTIL_H

#include "pglease.h"
/* testutil.h's broker half is outside its include guard: include it once, here. */
#include "testutil.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The pool every client suite uses: its name, and its conninfo's database and user. */
#define CLIENTS_POOL_NAME "main"

/*
 * First thing in a suite's main(), after testutil_require_postgres():
 * points pglease-run at the build tree's shim (PGLEASE_PRELOAD_LIB), gives
 * every program the same locale (LC_ALL=C.UTF-8), and drops any PGLEASE_*
 * or LD_PRELOAD setting inherited from the caller.  Exits 99 with a message
 * when pglease-run or the shim has not been built.
 */
void clients_init(void);

/* The build tree's pglease-run. */
const char *clients_pglease_run(void);

/*
 * The absolute path of program name (searched in $PATH, then /usr/sbin and
 * /sbin); fails the test, naming the Debian package that provides it, when
 * there is none.  Static storage per call: copy it to keep it.
 */
const char *clients_program(const char *name, const char *package);

/* What a program did: exit status, time taken, what it wrote. */
struct client_run {
	int status;		/* exit status, 128+N when killed by signal N */
	int64_t ms;		/* wall time from spawn to exit */
	char *out;		/* stdout, NUL-terminated (owned: clients_run_free) */
	char *err;		/* stderr, likewise */
};

/* A program started and not yet waited for. */
struct client_proc {
	pid_t pid;
	int outfd, errfd;
	int64_t started_ms;
};

/*
 * Starts argv (NULL-terminated; argv[0] an absolute path) with stdin from
 * /dev/null, in directory cwd (NULL: ours), with env's changes applied to
 * our environment ("NAME=value" sets, "NAME" unsets; env may be NULL).
 * broker NULL: a direct run (LD_PRELOAD and every PGLEASE_* variable
 * removed); otherwise through pglease-run -s broker->socket --, as a user
 * would type it.
 */
void clients_spawn(struct client_proc *p, const struct testbroker *broker, const char *cwd,
		   const char *const *env, const char *const *argv);

/*
 * What pglease-run -s broker->socket puts in a program's environment for
 * the shim (LD_PRELOAD, LD_AUDIT if any, PGLEASE_*; not the harness's
 * PGLEASE_TEST_*): what a sysadmin copies into the environment of a
 * service (Debian's /etc/apache2/envvars).  A NULL-terminated array of
 * "NAME=value", malloc'd.
 */
char **clients_shim_environment(const struct testbroker *broker);

/*
 * Collects what p writes and waits for its exit, up to timeout_ms; past it,
 * kills it and fails the test.  r is filled (free it with clients_run_free).
 */
void clients_finish(struct client_proc *p, int timeout_ms, struct client_run *r);

/* clients_spawn, then clients_finish. */
void clients_run(struct client_run *r, const struct testbroker *broker, const char *cwd,
		 const char *const *env, const char *const *argv, int timeout_ms);

void clients_run_free(struct client_run *r);

/*
 * Asserts that two texts are equal line by line, ignoring lines that start
 * with ignore_prefix (NULL: none); the failure names what and shows the
 * first differing line of each.
 */
void clients_assert_same(const char *what, const char *direct, const char *pooled,
			 const char *ignore_prefix);

/* Asserts that r exited with status want; the failure shows what it wrote. */
void clients_assert_status(const char *what, const struct client_run *r, int want);

/* A fresh directory (mode 0755) under the test's temporary directory. */
const char *clients_mkdir(const char *name);

/* The contents of dir/name (malloc'd, NUL-terminated), or NULL when unreadable. */
char *clients_read_file(const char *dir, const char *name);

/*
 * text with every number ("15", "0.35", "1234.5") replaced by "#", for
 * output that holds timings and counts (malloc'd).
 */
char *clients_mask_numbers(const char *text);

/* --- the server's view ------------------------------------------------------ */

/*
 * Client backends of $PGDATABASE as $PGUSER (the pool's database and user)
 * that the server has now, the harness's own connections (application_name
 * pglease-test*) not counted.  -1 on error.
 */
long clients_backends(void);

/* Waits up to timeout_ms until clients_backends() <= n; fails the test when it does not. */
void clients_wait_backends(long n, int timeout_ms);

/*
 * A process that counts clients_backends() every 10 ms on its own
 * connection, until stopped.
 */
struct clients_sampler {
	pid_t pid;
	int ctl;	/* closed to stop it */
	int res;	/* where it answers */
};

void clients_sampler_start(struct clients_sampler *s);

/* Stops it; returns the largest count seen (fails the test when it saw nothing). */
long clients_sampler_stop(struct clients_sampler *s);

/* --- the broker's view ------------------------------------------------------ */

/*
 * Starts a broker with one pool "main" on the harness's server (min_size =
 * max_size = size, so that the backends a quiet server has are the pool's
 * alone), broker_extra added to its broker section, and waits until no
 * other backend of the pool's database and user is left over from an
 * earlier test.
 */
void clients_broker_start(struct testbroker *b, int size, const char *broker_extra,
			  const char *pool_extra);

/* Pool "main"'s counters. */
pgl_pool_stats clients_stats(const struct testbroker *b);

/* Whether pid is the backend of one of the broker's slots. */
bool clients_is_pool_backend(const struct testbroker *b, long pid);

/* --- what holds only once the shim pools ------------------------------------- */

/*
 * An assertion that needs the preload shim to lease connections (leases
 * counted, backends within max_size, the fallback notice, the strict
 * failure).  Unlike ck_assert it does not stop the test: every such
 * assertion is checked, and clients_pooling_verdict() fails the test at
 * its end with all those that did not hold, each marked "[pooling]", so
 * that a failure of the program itself is never hidden behind one of them.
 */
void clients_expect_pooling(bool cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Fails the test when a clients_expect_pooling() did not hold. */
void clients_pooling_verdict(void);

/*
 * The usual pooling assertions after a program ran through the shim: the
 * pool's lease counter moved by at least min_leases since before, and the
 * sampler never saw more than max_size backends.
 */
void clients_expect_pooled(const char *what, const pgl_pool_stats *before,
			   const pgl_pool_stats *after, uint64_t min_leases, long max_seen,
			   int max_size);

/*
 * Runs argv through pglease-run while a sampler counts backends, and
 * expects it pooled (clients_expect_pooled, at least min_leases); then,
 * unless direct is NULL, runs it directly (after, so that the sampler never
 * counts the direct run's backend).  Waits first until only the pool's
 * backends are left.  Both results are the caller's to compare and free.
 */
void clients_run_both(struct client_run *pooled, struct client_run *direct,
		      const struct testbroker *b, int max_size, const char *what,
		      const char *pooled_cwd, const char *direct_cwd, const char *const *env,
		      const char *const *argv, int timeout_ms, uint64_t min_leases);

#endif
