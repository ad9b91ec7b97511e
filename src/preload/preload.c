/*
 * preload.c - libpglease_preload.so: unmodified libpq programs, pooled.
 *
 * Under LD_PRELOAD (pglease-run), the connect calls of libpq lease a
 * backend from pgleased instead of opening one (connect.c): libpq builds
 * the program's PGconn towards a private listener of this process, and a
 * lease of the pool that serves the program's user and database answers
 * it.  What the program asked for that the pool's session lacks is SET
 * (settings.c).  No pool: the program's own connect runs, untouched.
 *
 * PQfinish releases, PQreset* leases again under the same PGconn
 * (release.c), cancels go through the broker (cancel.c), and PQhost and
 * friends report the pool's server (here).  The shim knows its PGconns by
 * a table (conns.c); every other libpq function is the real one (real.c):
 * the PGconn is genuine.
 */
#include "autoconf.h"

#include "preload/conns.h"
#include "preload/preload.h"

#include <stddef.h>

/* --- what the program sees of the connection ----------------------------- */

SHIM_API char *
PQhost(const PGconn *conn)
{
	struct shim_conn *e = conns_find(conn);

	real_resolve();
	return e != NULL && e->host[0] != '\0' ? e->host : real.host(conn);
}

SHIM_API char *
PQhostaddr(const PGconn *conn)
{
	struct shim_conn *e = conns_find(conn);
	static char none[] = "";

	real_resolve();
	if (e != NULL)
		return none;	/* a UNIX socket, or a host the pool names */
	return real.hostaddr != NULL ? real.hostaddr(conn) : none;
}

SHIM_API char *
PQport(const PGconn *conn)
{
	struct shim_conn *e = conns_find(conn);

	real_resolve();
	return e != NULL && e->port[0] != '\0' ? e->port : real.port(conn);
}

SHIM_API char *
PQdb(const PGconn *conn)
{
	struct shim_conn *e = conns_find(conn);

	real_resolve();
	return e != NULL && e->db[0] != '\0' ? e->db : real.db(conn);
}

SHIM_API char *
PQuser(const PGconn *conn)
{
	struct shim_conn *e = conns_find(conn);

	real_resolve();
	return e != NULL && e->user[0] != '\0' ? e->user : real.user(conn);
}

SHIM_API int
PQconnectionNeedsPassword(const PGconn *conn)
{
	real_resolve();
	return conns_find(conn) != NULL ? 0 : real.connectionNeedsPassword(conn);
}

SHIM_API int
PQconnectionUsedPassword(const PGconn *conn)
{
	real_resolve();
	return conns_find(conn) != NULL ? 0 : real.connectionUsedPassword(conn);
}
