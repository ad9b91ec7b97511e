/*
 * conns.h - the connections the shim leased (conns.c): a table of them,
 * found by their PGconn, and the client of the broker that leased each.
 */
#ifndef PGL_PRELOAD_CONNS_H
#define PGL_PRELOAD_CONNS_H

#include "common/shm.h"
#include "common/wire.h"
#include "pglease.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

/*
 * A client of the broker per thread that connects (a pgl_client is not
 * shared between threads without a lock): a thread waiting for a backend
 * holds only its own, so others release and connect meanwhile.  The lock
 * also serves a PQfinish from another thread than the one that connected.
 */
struct shim_client {
	pthread_mutex_t lock;
	pgl_client *c;
	struct shm_view view;		/* c's broker's segment, kept mapped */
};

struct shim_conn {
	_Atomic(PGconn *) conn;		/* NULL: a free entry; read from signal handlers */
	_Atomic(pgl_lease *) lease;
	struct shim_client *client;	/* the lease's */
	char pool[WIRE_POOL_NAME_MAX + 1];
	char host[256];			/* the pool's server, as PQhost reports it */
	char port[16];
	char db[SHM_NAME_LEN];
	char user[SHM_NAME_LEN];
	char shell_host[64];		/* the private listener's name, for PQreset */
	char *settings;			/* the SETs the program's parameters need, or NULL */
};

/*
 * This thread's client, made on first use and freed at the thread's exit
 * (unless leases of it are still out); NULL when out of memory or when
 * pgl_open() fails.
 */
struct shim_client *conns_client(void);

/*
 * The entry of a PGconn the shim leased, or NULL (conn NULL included).
 * Takes no lock: async-signal-safe.
 */
struct shim_conn *conns_find(const PGconn *conn);

/*
 * Takes a free entry, which conns_find() cannot find until its conn is
 * stored; NULL when all are in use.  Give it back with conns_forget().
 */
struct shim_conn *conns_take(void);

/* Frees e's settings and makes e a free entry; its lease is the caller's. */
void conns_forget(struct shim_conn *e);

#endif
