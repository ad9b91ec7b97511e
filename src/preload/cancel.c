/*
 * cancel.c - a leased connection's cancel, through the broker.
 *
 * The backend key libpq got in the shell's handshake is worthless
 * (lib/startup.c): the broker, which knows the backend, sends the cancel
 * for the lease.  The shim's cancel objects (a PGcancel, and libpq 17's
 * PGcancelConn) name the lease; the interposers tell them from libpq's by
 * their first bytes.  Anything not the shim's goes to the real libpq.
 */
#include "autoconf.h"

#include "lib/client.h"
#include "pglease.h"
#include "preload/cancel.h"
#include "preload/conns.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* --- PQgetCancel and PQcancel ------------------------------------------- */

/*
 * A PGcancel of a leased connection: the lease to cancel, through the
 * broker.  Told from libpq's own by its first bytes (a libpq PGcancel
 * starts with a socket address, whose family is a small number).
 */
#define SHIM_CANCEL_MAGIC UINT64_C(0x4c43656173656c70)	/* "pleaseCL" */
struct shim_cancel {
	uint64_t magic;
	pgl_lease *lease;
	uint64_t lease_id;
};

/* Whether p, a cancel object of libpq's or the shim's, starts with magic. */
static bool
has_magic(const void *p, uint64_t magic)
{
	uint64_t m;

	if (p == NULL)
		return false;
	memcpy(&m, p, sizeof(m));
	return m == magic;
}

static bool
is_shim_cancel(const void *p)
{
	return has_magic(p, SHIM_CANCEL_MAGIC);
}

/* Async-signal-safe: a CANCEL for the lease, if it is still the one named. */
static int
cancel_lease(pgl_lease *l, uint64_t lease_id)
{
	if (l == NULL || l->lease_id != lease_id)
		return -1;
	return pgl_cancel(l);
}

SHIM_API PGcancel *
PQgetCancel(PGconn *conn)
{
	real_resolve();
	struct shim_conn *e = conns_find(conn);
	pgl_lease *l = e != NULL ? atomic_load(&e->lease) : NULL;
	if (e == NULL)
		return real.getCancel(conn);
	if (l == NULL)
		return NULL;
	struct shim_cancel *sc = malloc(sizeof(*sc));
	if (sc == NULL)
		return NULL;
	sc->magic = SHIM_CANCEL_MAGIC;
	sc->lease = l;
	sc->lease_id = l->lease_id;
	return (PGcancel *)sc;
}

SHIM_API void
PQfreeCancel(PGcancel *cancel)
{
	real_resolve();
	if (is_shim_cancel(cancel)) {
		explicit_bzero(cancel, sizeof(struct shim_cancel));
		free(cancel);
		return;
	}
	real.freeCancel(cancel);
}

/* Copies msg into errbuf, signal-safely. */
static void
set_errbuf(char *errbuf, int errbufsize, const char *msg)
{
	if (errbuf == NULL || errbufsize <= 0)
		return;
	int i = 0;
	for (; msg[i] != '\0' && i < errbufsize - 1; i++)
		errbuf[i] = msg[i];
	errbuf[i] = '\0';
}

SHIM_API int
PQcancel(PGcancel *cancel, char *errbuf, int errbufsize)
{
	if (is_shim_cancel(cancel)) {
		struct shim_cancel *sc = (struct shim_cancel *)cancel;
		if (cancel_lease(sc->lease, sc->lease_id) == 0)
			return 1;
		set_errbuf(errbuf, errbufsize, "pglease: the cancel request could not be sent "
			   "to the broker");
		return 0;
	}
	/* dlsym is not async-signal-safe: real is resolved by PQgetCancel. */
	return real.cancel(cancel, errbuf, errbufsize);
}

SHIM_API int
PQrequestCancel(PGconn *conn)
{
	struct shim_conn *e = conns_find(conn);
	if (e != NULL) {
		pgl_lease *l = atomic_load(&e->lease);
		return l != NULL && pgl_cancel(l) == 0;
	}
	real_resolve();
	return real.requestCancel(conn);
}

/* --- libpq 17's cancel API ------------------------------------------------ */

/*
 * A leased connection's PGcancelConn is the shim's: its cancel goes through
 * the broker at once (one message, no connection to wait for), so the
 * polling functions report it done.  The real functions are looked up when
 * called: they exist only in libpq 17 and later (see cancel.h).
 */
#define SHIM_CANCELCONN_MAGIC UINT64_C(0x4e43656173656c70)	/* "pleaseCN" */
struct shim_cancel_conn {
	uint64_t magic;
	pgl_lease *lease;
	uint64_t lease_id;
	bool failed;
};

static bool
is_shim_cancel_conn(const void *p)
{
	return has_magic(p, SHIM_CANCELCONN_MAGIC);
}

/* The real function named, for a connection that is not the shim's. */
static void *
real17(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

SHIM_API PGcancelConn *
PQcancelCreate(PGconn *conn)
{
	real_resolve();
	struct shim_conn *e = conns_find(conn);
	if (e == NULL) {
		PGcancelConn *(*f)(PGconn *) = (PGcancelConn * (*)(PGconn *))real17("PQcancelCreate");
		return f != NULL ? f(conn) : NULL;
	}
	pgl_lease *l = atomic_load(&e->lease);
	struct shim_cancel_conn *cc = calloc(1, sizeof(*cc));
	if (cc == NULL)
		return NULL;
	cc->magic = SHIM_CANCELCONN_MAGIC;
	cc->lease = l;
	cc->lease_id = l != NULL ? l->lease_id : 0;
	return (PGcancelConn *)cc;
}

SHIM_API int
PQcancelStart(PGcancelConn *cancel_conn)
{
	if (is_shim_cancel_conn(cancel_conn)) {
		struct shim_cancel_conn *cc = (struct shim_cancel_conn *)cancel_conn;
		cc->failed = cancel_lease(cc->lease, cc->lease_id) != 0;
		return !cc->failed;
	}
	int (*f)(PGcancelConn *) = (int (*)(PGcancelConn *))real17("PQcancelStart");
	return f != NULL ? f(cancel_conn) : 0;
}

SHIM_API int
PQcancelBlocking(PGcancelConn *cancel_conn)
{
	if (is_shim_cancel_conn(cancel_conn))
		return PQcancelStart(cancel_conn);
	int (*f)(PGcancelConn *) = (int (*)(PGcancelConn *))real17("PQcancelBlocking");
	return f != NULL ? f(cancel_conn) : 0;
}

SHIM_API PostgresPollingStatusType
PQcancelPoll(PGcancelConn *cancel_conn)
{
	if (is_shim_cancel_conn(cancel_conn))
		return ((struct shim_cancel_conn *)cancel_conn)->failed ? PGRES_POLLING_FAILED :
									  PGRES_POLLING_OK;
	PostgresPollingStatusType (*f)(PGcancelConn *) =
		(PostgresPollingStatusType (*)(PGcancelConn *))real17("PQcancelPoll");
	return f != NULL ? f(cancel_conn) : PGRES_POLLING_FAILED;
}

SHIM_API ConnStatusType
PQcancelStatus(const PGcancelConn *cancel_conn)
{
	if (is_shim_cancel_conn(cancel_conn))
		return ((const struct shim_cancel_conn *)cancel_conn)->failed ? CONNECTION_BAD :
										CONNECTION_OK;
	ConnStatusType (*f)(const PGcancelConn *) = (ConnStatusType (*)(const PGcancelConn *))real17("PQcancelStatus");
	return f != NULL ? f(cancel_conn) : CONNECTION_BAD;
}

SHIM_API int
PQcancelSocket(const PGcancelConn *cancel_conn)
{
	if (is_shim_cancel_conn(cancel_conn))
		return -1;
	int (*f)(const PGcancelConn *) = (int (*)(const PGcancelConn *))real17("PQcancelSocket");
	return f != NULL ? f(cancel_conn) : -1;
}

SHIM_API char *
PQcancelErrorMessage(const PGcancelConn *cancel_conn)
{
	static char failed[] = "pglease: the cancel request could not be sent to the broker\n";
	static char none[] = "";

	if (is_shim_cancel_conn(cancel_conn))
		return ((const struct shim_cancel_conn *)cancel_conn)->failed ? failed : none;
	char *(*f)(const PGcancelConn *) = (char *(*)(const PGcancelConn *))real17("PQcancelErrorMessage");
	return f != NULL ? f(cancel_conn) : none;
}

SHIM_API void
PQcancelReset(PGcancelConn *cancel_conn)
{
	if (is_shim_cancel_conn(cancel_conn)) {
		((struct shim_cancel_conn *)cancel_conn)->failed = false;
		return;
	}
	void (*f)(PGcancelConn *) = (void (*)(PGcancelConn *))real17("PQcancelReset");
	if (f != NULL)
		f(cancel_conn);
}

SHIM_API void
PQcancelFinish(PGcancelConn *cancel_conn)
{
	if (is_shim_cancel_conn(cancel_conn)) {
		explicit_bzero(cancel_conn, sizeof(struct shim_cancel_conn));
		free(cancel_conn);
		return;
	}
	void (*f)(PGcancelConn *) = (void (*)(PGcancelConn *))real17("PQcancelFinish");
	if (f != NULL)
		f(cancel_conn);
}
