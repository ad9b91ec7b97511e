/*
 * release.c - giving a lease back.
 *
 * PQfinish releases the lease (its state read from the shell, whose socket
 * is blinded) and frees the PGconn.  PQreset and PQresetStart release it
 * and lease again under the same PGconn: libpq reconnects to the shell's
 * private listener, bound again at the same name, and the new backend
 * answers.  A connection the shim did not lease is libpq's own.
 */
#include "autoconf.h"

#include "lib/client.h"
#include "lib/shell_build.h"
#include "pglease.h"
#include "preload/connect.h"
#include "preload/conns.h"
#include "preload/release.h"
#include "preload/settings.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

SHIM_API void
PQfinish(PGconn *conn)
{
	real_resolve();
	struct shim_conn *e = conns_find(conn);
	if (e != NULL) {
		struct shim_client *sc = e->client;
		pthread_mutex_lock(&sc->lock);
		pgl_lease *l = atomic_load(&e->lease);
		atomic_store(&e->lease, NULL);
		if (l != NULL)
			pgl_release(l);	/* its state from the shell; the socket blinded */
		pthread_mutex_unlock(&sc->lock);
		conns_forget(e);
	}
	real.finish(conn);		/* its Terminate goes to /dev/null */
}

/*
 * A fresh lease under the same PGconn: the old one goes back, libpq
 * reconnects to the shell's listener (bound again at the same name), and
 * the new backend answers.  e's client's lock is held.  0, or -1 with the
 * PGconn left CONNECTION_BAD.
 */
static int
shim_reset(struct shim_conn *e, PGconn *conn)
{
	pgl_client *c = e->client->c;
	pgl_lease *l = atomic_load(&e->lease);
	struct shell_build *b = malloc(sizeof(*b));
	char msg[1400];

	atomic_store(&e->lease, NULL);
	if (l != NULL)
		pgl_release(l);
	if (b == NULL)
		return -1;
	if (shell_begin(c, b, NULL, NULL, e->shell_host) != 0) {
		free(b);
		return -1;
	}
	b->conn = conn;
	connect_in_real++;
	int started = real.resetStart(conn);
	connect_in_real--;
	if (!started || shell_accept(c, b) != 0) {
		b->conn = NULL;		/* the program's: never finished here */
		shell_abandon(b);
		free(b);
		return -1;
	}
	l = pgl_acquire(c, e->pool, -1);
	if (l == NULL) {
		snprintf(msg, sizeof(msg), "pglease: pool \"%s\": %s", e->pool, pgl_error(c));
		shell_refuse(b, "08004", msg);
		free(b);
		return -1;
	}
	l->shell_borrowed = true;
	PGconn *done = shell_complete(c, b, l, pgl_real_PQresetPoll);
	free(b);
	if (done == NULL) {
		pgl_discard(l);
		return -1;
	}
	char err[1024];
	if (settings_apply(conn, e->settings, err, sizeof(err)) != 0) {
		pgl_release(l);
		return -1;
	}
	atomic_store(&e->lease, l);
	return 0;
}

/* A leased conn is reset with a new lease, under its client's lock: true.  Else false. */
static bool
reset_leased(PGconn *conn)
{
	real_resolve();
	struct shim_conn *e = conns_find(conn);
	if (e == NULL)
		return false;
	pthread_mutex_lock(&e->client->lock);
	shim_reset(e, conn);
	pthread_mutex_unlock(&e->client->lock);
	return true;
}

SHIM_API void
PQreset(PGconn *conn)
{
	if (!reset_leased(conn))
		real.reset(conn);
}

SHIM_API int
PQresetStart(PGconn *conn)
{
	/* A leased one is done at once; PQresetPoll then reports how it went. */
	if (reset_leased(conn))
		return 1;
	return real.resetStart(conn);
}

SHIM_API PostgresPollingStatusType
PQresetPoll(PGconn *conn)
{
	real_resolve();
	if (conns_find(conn) != NULL)
		return PQstatus(conn) == CONNECTION_OK ? PGRES_POLLING_OK : PGRES_POLLING_FAILED;
	return real.resetPoll(conn);
}
