/*
 * settings.h - what the program asked for in its startup message that a
 * pooled session lacks, applied with SET (settings.c).
 */
#ifndef PGL_PRELOAD_SETTINGS_H
#define PGL_PRELOAD_SETTINGS_H

#include "pglease.h"

#include <libpq-fe.h>
#include <stddef.h>

struct shell_build;

/*
 * What the program asked for in b's startup message that the leased
 * session l does not have already (application_name, client_encoding,
 * datestyle, timezone, the settings of options, ...), as one statement in
 * *out: malloc'd and the caller's, NULL when nothing is needed.  Returns 0,
 * or -1 when something cannot be applied with SET (*why says what; a
 * static string).
 */
int settings_for(const struct shell_build *b, pgl_lease *l, char **out, const char **why)
	__attribute__((warn_unused_result));

/*
 * Runs sql (settings_for()'s, NULL: nothing) on a fresh shell.  Returns 0,
 * or -1 with the server's message in err.
 */
int settings_apply(PGconn *conn, const char *sql, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
