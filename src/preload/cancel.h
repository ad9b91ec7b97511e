/*
 * cancel.h - libpq's cancel functions, interposed (cancel.c): a leased
 * connection's cancel goes through the broker.
 */
#ifndef PGL_PRELOAD_CANCEL_H
#define PGL_PRELOAD_CANCEL_H

#include "preload/preload.h"

#include <libpq-fe.h>

SHIM_API PGcancel *PQgetCancel(PGconn *conn);
SHIM_API void PQfreeCancel(PGcancel *cancel);
SHIM_API int PQcancel(PGcancel *cancel, char *errbuf, int errbufsize);
SHIM_API int PQrequestCancel(PGconn *conn);

/*
 * libpq 17's cancel API, defined whatever the libpq built against or
 * running: only a program built against libpq 17 or later calls it, and
 * then the real functions exist.
 */
#ifndef LIBPQ_HAS_ASYNC_CANCEL
typedef struct pg_cancel_conn PGcancelConn;	/* libpq 17's, for an older libpq-fe.h */
#endif
SHIM_API PGcancelConn *PQcancelCreate(PGconn *conn);
SHIM_API int PQcancelStart(PGcancelConn *cancel_conn);
SHIM_API int PQcancelBlocking(PGcancelConn *cancel_conn);
SHIM_API PostgresPollingStatusType PQcancelPoll(PGcancelConn *cancel_conn);
SHIM_API ConnStatusType PQcancelStatus(const PGcancelConn *cancel_conn);
SHIM_API int PQcancelSocket(const PGcancelConn *cancel_conn);
SHIM_API char *PQcancelErrorMessage(const PGcancelConn *cancel_conn);
SHIM_API void PQcancelReset(PGcancelConn *cancel_conn);
SHIM_API void PQcancelFinish(PGcancelConn *cancel_conn);

#endif
