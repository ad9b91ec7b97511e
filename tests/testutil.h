/*
 * testutil.h - what the Check suites share: running programs, temporary
 * files, and starting a suite under a throwaway PostgreSQL.
 */
#ifndef PGL_TESTUTIL_H
#define PGL_TESTUTIL_H

#include <check.h>
#include <stddef.h>

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

/* Runs the suite in fork mode with Check's summary line; returns main()'s status. */
int testutil_run_suite(Suite *s);

#endif
