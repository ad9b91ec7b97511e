/*
 * connect.h - libpq's connect functions, interposed (connect.c): a
 * program's connect leases a pooled backend when a pool serves its user
 * and database, and is the program's own otherwise.
 */
#ifndef PGL_PRELOAD_CONNECT_H
#define PGL_PRELOAD_CONNECT_H

#include "preload/preload.h"

#include <libpq-fe.h>

/*
 * Nonzero while this thread runs the real libpq's connect or reset for the
 * shim: libpq's own calls between its functions (PQconnectdb ->
 * PQconnectStart) may be bound to the interposers (through the audit
 * library, or a PLT), and the connect interposers then go straight to the
 * real functions.  Raised around such a call, lowered after it.
 */
extern __thread int connect_in_real;

SHIM_API PGconn *PQconnectdb(const char *conninfo);
SHIM_API PGconn *PQconnectStart(const char *conninfo);
SHIM_API PGconn *PQconnectdbParams(const char *const *keywords, const char *const *values,
				   int expand_dbname);
SHIM_API PGconn *PQconnectStartParams(const char *const *keywords, const char *const *values,
				      int expand_dbname);
SHIM_API PGconn *PQsetdbLogin(const char *pghost, const char *pgport, const char *pgoptions,
			      const char *pgtty, const char *dbName, const char *login,
			      const char *pwd);

#endif
