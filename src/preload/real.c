/*
 * real.c - the real libpq behind the shim's interposers.
 *
 * The shim is preloaded, so its PQ* definitions come first in the global
 * scope; the real ones are found with dlsym(RTLD_NEXT), once.  libpq is a
 * dependency of the shim, so it is always loaded by the time these run.
 */
#include "autoconf.h"

#include "preload/preload.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct real_libpq real;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define LOOKUP(field, name, required)                                               \
	do {                                                                        \
		*(void **)&real.field = dlsym(RTLD_NEXT, name);                     \
		if (real.field == NULL && (required)) {                             \
			/* Nothing sensible is left to do: libpq is not there. */   \
			static const char msg[] = "pglease preload: libpq's " name  \
						  " not found\n";                   \
			ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);     \
			(void)w;                                                    \
			abort();                                                    \
		}                                                                   \
	} while (0)

static void
resolve(void)
{
	LOOKUP(connectdb, "PQconnectdb", true);
	LOOKUP(connectdbParams, "PQconnectdbParams", true);
	LOOKUP(setdbLogin, "PQsetdbLogin", true);
	LOOKUP(connectStart, "PQconnectStart", true);
	LOOKUP(connectStartParams, "PQconnectStartParams", true);
	LOOKUP(finish, "PQfinish", true);
	LOOKUP(reset, "PQreset", true);
	LOOKUP(resetStart, "PQresetStart", true);
	LOOKUP(resetPoll, "PQresetPoll", true);
	LOOKUP(getCancel, "PQgetCancel", true);
	LOOKUP(cancel, "PQcancel", true);
	LOOKUP(freeCancel, "PQfreeCancel", true);
	LOOKUP(requestCancel, "PQrequestCancel", true);
	LOOKUP(host, "PQhost", true);
	LOOKUP(hostaddr, "PQhostaddr", false);		/* 12 */
	LOOKUP(port, "PQport", true);
	LOOKUP(db, "PQdb", true);
	LOOKUP(user, "PQuser", true);
	LOOKUP(pass, "PQpass", true);
	LOOKUP(connectionNeedsPassword, "PQconnectionNeedsPassword", true);
	LOOKUP(connectionUsedPassword, "PQconnectionUsedPassword", true);
	LOOKUP(cancelCreate, "PQcancelCreate", false);	/* 17 */
}

void
real_resolve(void)
{
	pthread_once(&once, resolve);
}

PGconn *
pgl_real_PQconnectStartParams(const char *const *keywords, const char *const *values,
			      int expand_dbname)
{
	real_resolve();
	return real.connectStartParams(keywords, values, expand_dbname);
}

void
pgl_real_PQfinish(PGconn *conn)
{
	real_resolve();
	real.finish(conn);
}

PostgresPollingStatusType
pgl_real_PQresetPoll(PGconn *conn)
{
	real_resolve();
	return real.resetPoll(conn);
}
