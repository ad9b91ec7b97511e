/*
 * preload.c - libpglease_preload.so: unmodified libpq programs, pooled.
 *
 * (Skeleton: every interposer passes through to the real libpq.)
 */
#include "autoconf.h"

#include "preload/preload.h"

PGconn *
PQconnectdb(const char *conninfo)
{
	real_resolve();
	return real.connectdb(conninfo);
}

PGconn *
PQconnectdbParams(const char *const *keywords, const char *const *values, int expand_dbname)
{
	real_resolve();
	return real.connectdbParams(keywords, values, expand_dbname);
}
