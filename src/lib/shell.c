/*
 * shell.c - pgl_conn(): a genuine libpq PGconn around a leased backend;
 * the shells a client keeps for the backends they were built on; and the
 * shell's part of a release.  How a shell is built: shell_build.c.
 */
#include "autoconf.h"

#include "lib/client.h"
#include "lib/lease.h"
#include "lib/process.h"
#include "lib/shell.h"
#include "lib/shell_build.h"

#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- the cache --------------------------------------------------------- */

/*
 * Whether a cached shell still describes the backend as the GRANT does:
 * libpq keeps the parameters it was told, and a holder's SET changed them
 * for it (the reset changed them back on the server).
 */
static bool
params_match(PGconn *conn, const pgl_lease *l)
{
	for (size_t i = 0; i < l->params_len;) {
		const char *name = l->params + i;
		const char *value = name + strlen(name) + 1;
		const char *mine = PQparameterStatus(conn, name);

		if (mine == NULL || strcmp(mine, value) != 0)
			return false;
		i += strlen(name) + 1 + strlen(value) + 1;
	}
	return true;
}

/* A cached shell for l's backend, taken out of the cache, or NULL. */
static PGconn *
cache_take(pgl_lease *l)
{
	pgl_client *c = l->client;

	for (int i = 0; i < SHELL_CACHE; i++) {
		struct shell_entry *e = &c->shells[i];

		if (e->conn == NULL || e->backend_pid != l->backend_pid || e->slot != l->slot ||
		    strcmp(e->user, l->user) != 0 || strcmp(e->database, l->database) != 0)
			continue;
		PGconn *conn = e->conn;
		e->conn = NULL;
		if (PQbackendPID(conn) == l->backend_pid && params_match(conn, l))
			return conn;
		PQfinish(conn);		/* stale: its socket is /dev/null */
		return NULL;
	}
	return NULL;
}

static void
cache_put(pgl_lease *l, PGconn *conn)
{
	pgl_client *c = l->client;
	struct shell_entry *victim = &c->shells[0];

	for (int i = 0; i < SHELL_CACHE; i++) {
		struct shell_entry *e = &c->shells[i];
		if (e->conn == NULL || (e->backend_pid == l->backend_pid && e->slot == l->slot)) {
			victim = e;
			break;
		}
		if (e->used < victim->used)
			victim = e;
	}
	if (victim->conn != NULL)
		PQfinish(victim->conn);
	victim->conn = conn;
	victim->backend_pid = l->backend_pid;
	victim->slot = l->slot;
	memcpy(victim->user, l->user, sizeof(victim->user));
	memcpy(victim->database, l->database, sizeof(victim->database));
	victim->used = ++c->shell_clock;
}

void
shell_cache_free(pgl_client *c)
{
	for (int i = 0; i < SHELL_CACHE; i++) {
		if (c->shells[i].conn != NULL)
			PQfinish(c->shells[i].conn);
		c->shells[i].conn = NULL;
	}
}

/* --- pgl_conn ----------------------------------------------------------- */

PGconn *
pgl_conn(pgl_lease *l)
{
	if (!lease_ok(l, "pgl_conn", false))
		return NULL;
	if (l->shell != NULL)
		return l->shell;

	pgl_client *c = l->client;

	/* The same backend back in this process: its shell, reattached. */
	if (!l->inert) {
		PGconn *cached = cache_take(l);
		if (cached != NULL) {
			/* The swap and its record are one step for a fork() elsewhere. */
			process_lock();
			bool swapped = dup3(l->fd, PQsocket(cached), O_CLOEXEC) >= 0;
			if (swapped)
				l->shell = cached;
			process_unlock();
			if (swapped)
				return cached;
			PQfinish(cached);
		}
	}

	if (l->inert) {
		client_fail(c, PGL_ESTALE, "this lease was inherited across fork(); it belongs "
			    "to the parent process");
		return NULL;
	}
	const char *kw[4], *val[4];
	int n = 0;
	kw[n] = "user", val[n++] = l->user[0] != '\0' ? l->user : "postgres";
	kw[n] = "dbname", val[n++] = l->database[0] != '\0' ? l->database : "postgres";
	const char *enc = pgl_param(l, "client_encoding");
	if (enc != NULL && enc[0] != '\0')
		kw[n] = "client_encoding", val[n++] = enc;
	kw[n] = NULL;
	val[n] = NULL;

	struct shell_build b;
	if (shell_begin(c, &b, kw, val, NULL) != 0)
		return NULL;
	return shell_complete(c, &b, l, PQconnectPoll);
}

/* --- release ------------------------------------------------------------ */

int
shell_release_state(pgl_lease *l)
{
	PGconn *conn = l->shell;

	if (PQstatus(conn) != CONNECTION_OK || PQpipelineStatus(conn) != PQ_PIPELINE_OFF ||
	    PQisBusy(conn))
		return WIRE_RELEASE_BROKEN;
	switch (PQtransactionStatus(conn)) {
	case PQTRANS_IDLE:
		return WIRE_RELEASE_CLEAN;
	case PQTRANS_INTRANS:
	case PQTRANS_INERROR:
		return WIRE_RELEASE_IN_TRANSACTION;
	default:			/* ACTIVE: a query, COPY or unread results */
		return WIRE_RELEASE_BROKEN;
	}
}

/*
 * Whether a PGEventProc is registered on conn.  libpq has no getter, and
 * no way to unregister one; but an empty result copies the connection's
 * events, and PQresultMemorySize() counts what the copy took, without any
 * event being fired.  Out of memory, or a libpq that allocates more for
 * some other reason, answers yes: the shell is then only not reused.
 */
static bool
has_event_procs(PGconn *conn)
{
	PGresult *bare = PQmakeEmptyPGresult(NULL, PGRES_EMPTY_QUERY);
	PGresult *mine = PQmakeEmptyPGresult(conn, PGRES_EMPTY_QUERY);
	bool yes = bare == NULL || mine == NULL ||
		   PQresultMemorySize(mine) != PQresultMemorySize(bare);

	PQclear(bare);
	PQclear(mine);
	return yes;
}

void
shell_detach(pgl_lease *l, int state)
{
	PGconn *conn = l->shell;

	if (conn == NULL)
		return;
	if (l->shell_borrowed) {
		/* The program's PGconn (preload shim): blinded, and left to it. */
		int devnull = process_devnull();
		process_lock();
		if (devnull < 0 || dup3(devnull, PQsocket(conn), O_CLOEXEC) < 0)
			shutdown(PQsocket(conn), SHUT_RDWR);
		l->shell = NULL;
		process_unlock();
		return;
	}
	/* Nothing, PQfinish's Terminate included, may reach the pooled backend now. */
	int devnull = process_devnull();
	process_lock();
	bool blinded = devnull >= 0 && dup3(devnull, PQsocket(conn), O_CLOEXEC) >= 0;
	if (!blinded)
		shutdown(PQsocket(conn), SHUT_RDWR);	/* last resort; the backend is replaced */
	l->shell = NULL;
	process_unlock();
	if (!blinded) {
		PQfinish(conn);
		return;
	}
	/*
	 * What libpq lets a holder set and set back is set back, kept or not
	 * (a trace stops here: a finished shell's Terminate is not written to
	 * the holder's file).  Pending notifications were for this holder.
	 * Single-row mode needs nothing: it lasts one query, and a shell
	 * released with a query in flight is not kept.
	 */
	PQuntrace(conn);
	PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
	PQsetErrorContextVisibility(conn, PQSHOW_CONTEXT_ERRORS);
	PGnotify *n;
	while ((n = PQnotifies(conn)) != NULL)
		PQfreemem(n);
	/*
	 * An idle shell is as good as new for this backend: keep it, unless
	 * the holder changed what cannot be set back or seen (notice hooks or
	 * event procs whose argument may be gone, non-blocking mode) or the
	 * holder's last error still shows in PQerrorMessage.
	 */
	if (state == WIRE_RELEASE_CLEAN && !l->inert && !PQisnonblocking(conn) &&
	    shell_hooks_default(conn) && !has_event_procs(conn) &&
	    PQerrorMessage(conn)[0] == '\0')
		cache_put(l, conn);
	else
		PQfinish(conn);	/* event procs hear PGEVT_CONNDESTROY, as from PQfinish */
}
