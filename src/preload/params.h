/*
 * params.h - the program's connection parameters, as the shim passes them
 * on to libpq (params.c).
 */
#ifndef PGL_PRELOAD_PARAMS_H
#define PGL_PRELOAD_PARAMS_H

#include "lib/shell_build.h"

#include <stdbool.h>

/*
 * The program's explicit parameters, NULL-terminated arrays of copies.
 * Starts as { .ok = true }; ok turns false when a parameter could not be
 * kept (no room, no memory, a conninfo libpq cannot parse: the caller's
 * to set), and the program's own connect runs then.
 */
struct params {
	const char *kw[SHELL_PARAMS_MAX];
	char *val[SHELL_PARAMS_MAX];
	int n;
	bool ok;
};

/*
 * Sets kw to a copy of val, replacing an earlier value.  An empty or NULL
 * val (unset, to libpq) and the parameters that lead libpq to the server
 * (host, port, password, sslmode, ...: the shim's replace them) are left
 * out.
 */
void params_set(struct params *p, const char *kw, const char *val);

/* Frees the copies (the values wiped: a password may be among them); p is empty. */
void params_free(struct params *p);

/* Whether a dbname is a connection string libpq would expand. */
bool params_is_conninfo(const char *s);

/* Adds what a conninfo string sets.  false when libpq cannot parse it. */
bool params_conninfo(struct params *p, const char *conninfo) __attribute__((warn_unused_result));

#endif
