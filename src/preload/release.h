/*
 * release.h - libpq's PQfinish and PQreset*, interposed (release.c): a
 * leased connection gives its lease back, or leases again under the same
 * PGconn.
 */
#ifndef PGL_PRELOAD_RELEASE_H
#define PGL_PRELOAD_RELEASE_H

#include "preload/preload.h"

#include <libpq-fe.h>

SHIM_API void PQfinish(PGconn *conn);
SHIM_API void PQreset(PGconn *conn);
SHIM_API int PQresetStart(PGconn *conn);
SHIM_API PostgresPollingStatusType PQresetPoll(PGconn *conn);

#endif
