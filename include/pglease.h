/*
 * pglease.h - libpglease, the client library of the pglease broker.
 *
 * A process leases a pooled PostgreSQL backend from pgleased, receives its
 * socket, talks to PostgreSQL directly, and releases it:
 *
 *	pgl_client *c = pgl_open(NULL);		// $PGLEASE_SOCKET or the default
 *	pgl_lease *l = pgl_acquire(c, NULL, -1);	// default pool and timeout
 *	if (l == NULL)
 *		fprintf(stderr, "%s\n", pgl_error(c));
 *	... talk to pgl_fd(l) ...
 *	pgl_release(l);
 *
 * Errors are returned, never printed: a function fails with -1 or NULL, and
 * pgl_errcode() / pgl_error() tell why.  No call exits or aborts, except in
 * a library built with -DPGLEASE_DEBUG, where using a lease after its
 * pgl_release()/pgl_discard() aborts (otherwise: -1 with PGL_EINVAL).
 *
 * Processes: a client opens its control connection lazily and reopens it in
 * a forked child.  In the child, inherited leases are inert: their sockets
 * are replaced by /dev/null, so that a child can neither talk to a backend
 * that the parent gives back nor keep it alive, whatever another thread was
 * doing when it forked.  At exit(), leases still held
 * are released.  A pgl_client is not shared between threads without the
 * caller's own lock.
 */
#ifndef PGLEASE_H
#define PGLEASE_H

#include <stdint.h>
/*
 * PGconn, which pgl_conn() returns: libpq is a public dependency (pglease.pc's
 * Requires).  Its typedef is not repeated here: a second one is an error in
 * C99, whichever header comes first.
 */
#include <libpq-fe.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgl_client pgl_client;
typedef struct pgl_lease pgl_lease;

/* Error codes of pgl_errcode(); also carried by the broker's ERROR message. */
enum {
	PGL_OK = 0,
	PGL_ETIMEOUT = 1,	/* no backend became free in time, or the
				 * broker did not answer in time */
	PGL_EUNAVAILABLE = 2,	/* the pool cannot connect to PostgreSQL */
	PGL_ENOPOOL = 3,	/* no pool of that name */
	PGL_EDENIED = 4,	/* this user may not use the broker */
	PGL_ELIMIT = 5,		/* too many clients or leases */
	PGL_EDRAINING = 6,	/* the broker is shutting down */
	PGL_EPROTO = 7,		/* malformed message or protocol mismatch */
	PGL_ESTALE = 8,		/* lease of a broker that has restarted */
	PGL_EBROKER = 9,	/* cannot reach the broker, it went away, or its
				 * socket is held by a user not trusted (below) */
	PGL_EINVAL = 10,	/* bad argument */
	PGL_ENOMEM = 11,	/* out of memory */
};

/*
 * A client of the broker listening on socket_path (NULL: $PGLEASE_SOCKET,
 * then /run/pglease/pglease.sock).  Connects on first use, and only to a
 * broker running as root, as this process's user, or as the user
 * $PGLEASE_BROKER_UID names (a number or a name; SO_PEERCRED tells).  NULL
 * only when out of memory.
 */
pgl_client *pgl_open(const char *socket_path);

/* Closes the connection; leases still held are released first. */
void pgl_close(pgl_client *c);

/*
 * Leases a backend of pool (NULL: the broker's first pool).  timeout_ms: -1
 * the pool's acquire_timeout, 0 only a backend idle right now, > 0 that many
 * milliseconds; the broker keeps the time.  The call never waits longer
 * than that bound (for -1, the one the broker announced; 60 s for a broker
 * of protocol version 1) plus 2 s for a broker that does not answer.  NULL
 * on failure (pgl_errcode: PGL_ETIMEOUT, PGL_EUNAVAILABLE, PGL_ENOPOOL,
 * PGL_EDENIED, PGL_ELIMIT, PGL_EDRAINING, PGL_EBROKER, ...).
 */
pgl_lease *pgl_acquire(pgl_client *c, const char *pool, int timeout_ms);

/*
 * The backend's socket, as libpq left it: non-blocking, shared with the
 * broker's copy.  Wait with poll(); never change its flags or options, and
 * remove any epoll registration before releasing.
 */
int pgl_fd(const pgl_lease *l);

/*
 * A libpq connection on the leased backend: a genuine PGconn whose socket is
 * the lease's.  Built on the first call, the same pointer after; owned by
 * the lease and freed by pgl_release()/pgl_discard().  NULL on failure
 * (pgl_error() says why).  Everything libpq does works as on a direct
 * connection: PQexec, PQexecParams (text and binary), prepared statements,
 * COPY both ways, pipeline mode, LISTEN/NOTIFY, notices, PQescape*,
 * PQparameterStatus, PQserverVersion, PQbackendPID.  Except:
 *  - PQfinish() or PQreset() would end the pooled backend: use pgl_release().
 *  - PQcancel() reaches nothing: use pgl_cancel().
 *  - Startup options of the worker (options, application_name, PGOPTIONS,
 *    PGAPPNAME, PGCLIENTENCODING) do not reach the server: they belong in the
 *    pool's conninfo, or in a SET after leasing.
 *  - PQhost() and PQport() name the private listener the shell was built on.
 *  - PGSERVICE or PGHOSTADDR in the environment make pgl_conn() fail with a
 *    message naming the variable.
 *  - There is no TLS: the backend connection is plain (see pglease.conf(5)).
 */
PGconn *pgl_conn(pgl_lease *l);

/*
 * Cancels the query running on the lease's backend: one message to the
 * broker, no waiting, async-signal-safe (call it from a SIGINT or SIGALRM
 * handler).  The broker acts only while the lease is live and this
 * client's.  0 when the request was sent; -1 otherwise: the broker's queue
 * is full (it does not read), or the connection the lease came on is gone
 * or being replaced.  errno is preserved.
 */
int pgl_cancel(pgl_lease *l);

/* A server parameter as the backend reported it ("server_version", ...), or NULL. */
const char *pgl_param(const pgl_lease *l, const char *name);

/* The backend's process id (pg_backend_pid()). */
int pgl_backend_pid(const pgl_lease *l);

/*
 * Gives the backend back: the broker rolls back what is left open, resets
 * the session and lends it again.  With a shell, its libpq state decides:
 * idle is returned as clean, an open or failed transaction is rolled back,
 * and a query, COPY, pipeline or unread results get the backend replaced.
 * The lease is freed and its socket closed whatever the outcome.  Never
 * waits: -1 with PGL_ESTALE when the broker restarted or the connection the
 * lease came on was closed since (the backend then ends), with PGL_EBROKER
 * when the broker does not read its socket (the connection is then closed,
 * and the broker takes this process's leases back as orphans).
 */
int pgl_release(pgl_lease *l);

/* Like pgl_release, for a backend that is not fit to lend again: the broker replaces it. */
int pgl_discard(pgl_lease *l);

/* The last error of c, a sentence naming its cause ("" when none). */
const char *pgl_error(const pgl_client *c);

/* The last error code of c (PGL_OK when none). */
int pgl_errcode(const pgl_client *c);

/* Counters of one pool, as pgl_stats() reads them from shared memory. */
typedef struct pgl_pool_stats {
	char name[64];
	int min_size;
	int max_size;
	int size;		/* backends open or opening, closing included */
	int idle;
	int leased;
	int waiting;		/* acquires queued */
	uint64_t leases;	/* granted since start */
	uint64_t acquire_timeouts;
	uint64_t acquire_wait_us_total;
	uint64_t acquire_wait_us_max;
	uint64_t connects;
	uint64_t connect_failures;
	uint64_t health_check_failures;
	uint64_t resets;
	uint64_t reset_failures;
	uint64_t orphaned_leases;
	uint64_t lease_timeouts;
	int64_t backoff_until_ms;	/* CLOCK_REALTIME ms; 0 when not backing off */
} pgl_pool_stats;

/*
 * Reads the broker's shared memory segment shm_name (NULL: the default
 * "/pglease.main") without talking to the broker.  Fills up to max entries
 * of out; returns the number of pools, or -1 with errno set (ENOENT: no
 * segment; ESRCH: the broker is down; EPROTO: another layout version;
 * EPERM: the segment belongs to a user other than root, the caller or the
 * one $PGLEASE_BROKER_UID names, so anyone could have written it).
 */
int pgl_stats(const char *shm_name, pgl_pool_stats *out, int max);

#ifdef __cplusplus
}
#endif

#endif
