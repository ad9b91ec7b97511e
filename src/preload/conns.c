/*
 * conns.c - the connections the shim leased.
 *
 * A fixed table of entries, one per leased PGconn, that the interposers
 * look their PGconn up in; and the per-thread client of the broker that
 * leased it.  Signal handlers (PQcancel, PQrequestCancel) look entries up
 * too: lookups read the atomics only, and take no lock.
 */
#include "autoconf.h"

#include "lib/client.h"
#include "preload/conns.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#define MAX_CONNS 256

static struct shim_conn conns[MAX_CONNS];

/* The table's lock, held only to take or free an entry. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread struct shim_client *my_client;
static pthread_key_t client_key;
static pthread_once_t client_key_once = PTHREAD_ONCE_INIT;

/* At a thread's exit: its client goes, unless leases of it are still out. */
static void
client_gone(void *arg)
{
	struct shim_client *sc = arg;

	pthread_mutex_lock(&sc->lock);
	bool idle = sc->c == NULL || sc->c->held == NULL;
	pthread_mutex_unlock(&sc->lock);
	if (!idle)
		return;		/* another thread may still PQfinish them: kept */
	if (sc->c != NULL)
		pgl_close(sc->c);
	shm_view_close(&sc->view);
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

static void
client_key_init(void)
{
	pthread_key_create(&client_key, client_gone);
}

struct shim_client *
conns_client(void)
{
	if (my_client != NULL)
		return my_client;
	struct shim_client *sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return NULL;
	pthread_mutex_init(&sc->lock, NULL);
	if ((sc->c = pgl_open(NULL)) == NULL) {
		pthread_mutex_destroy(&sc->lock);
		free(sc);
		return NULL;
	}
	pthread_once(&client_key_once, client_key_init);
	pthread_setspecific(client_key, sc);
	my_client = sc;
	return sc;
}

struct shim_conn *
conns_find(const PGconn *conn)
{
	if (conn == NULL)
		return NULL;
	for (int i = 0; i < MAX_CONNS; i++)
		if (atomic_load_explicit(&conns[i].conn, memory_order_acquire) == conn)
			return &conns[i];
	return NULL;
}

/* A conn marker for an entry taken but not yet filled in. */
#define TAKEN ((PGconn *)1)

struct shim_conn *
conns_take(void)
{
	struct shim_conn *e = NULL;

	pthread_mutex_lock(&table_lock);
	for (int i = 0; i < MAX_CONNS && e == NULL; i++)
		if (atomic_load(&conns[i].conn) == NULL) {
			e = &conns[i];
			atomic_store(&e->conn, TAKEN);
		}
	pthread_mutex_unlock(&table_lock);
	return e;
}

void
conns_forget(struct shim_conn *e)
{
	free(e->settings);
	e->settings = NULL;
	e->client = NULL;
	atomic_store(&e->lease, NULL);
	atomic_store_explicit(&e->conn, NULL, memory_order_release);
}
