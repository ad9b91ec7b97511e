/*
 * preload.h - what every file of the preload shim shares: the mark of an
 * interposer, and the real libpq behind them (real.c); and what the
 * program sees of a leased connection (preload.c).
 */
#ifndef PGL_PRELOAD_H
#define PGL_PRELOAD_H

#include <libpq-fe.h>

/*
 * Exported from libpglease_preload.so: the interposers, each declared with
 * it in the header of the file that defines it.  Everything else stays
 * inside the shim.
 */
#define SHIM_API __attribute__((visibility("default")))

/* The real libpq's functions that the shim interposes. */
struct real_libpq {
	PGconn *(*connectdb)(const char *);
	PGconn *(*connectdbParams)(const char *const *, const char *const *, int);
	PGconn *(*setdbLogin)(const char *, const char *, const char *, const char *,
			      const char *, const char *, const char *);
	PGconn *(*connectStart)(const char *);
	PGconn *(*connectStartParams)(const char *const *, const char *const *, int);
	void (*finish)(PGconn *);
	void (*reset)(PGconn *);
	int (*resetStart)(PGconn *);
	PostgresPollingStatusType (*resetPoll)(PGconn *);
	PGcancel *(*getCancel)(PGconn *);
	int (*cancel)(PGcancel *, char *, int);
	void (*freeCancel)(PGcancel *);
	int (*requestCancel)(PGconn *);
	char *(*host)(const PGconn *);
	char *(*hostaddr)(const PGconn *);
	char *(*port)(const PGconn *);
	char *(*db)(const PGconn *);
	char *(*user)(const PGconn *);
	char *(*pass)(const PGconn *);
	int (*connectionNeedsPassword)(const PGconn *);
	int (*connectionUsedPassword)(const PGconn *);
	void *(*cancelCreate)(PGconn *);	/* libpq 17: PGcancelConn */
};

extern struct real_libpq real;

/* Fills real; once per process, from any interposer. */
void real_resolve(void);

/* What libpglease calls instead of the interposed names (see real.h). */
PGconn *pgl_real_PQconnectStartParams(const char *const *keywords, const char *const *values,
				      int expand_dbname);
void pgl_real_PQfinish(PGconn *conn);
PostgresPollingStatusType pgl_real_PQresetPoll(PGconn *conn);

/* What the program sees of a leased connection: the pool's server, no password. */
SHIM_API char *PQhost(const PGconn *conn);
SHIM_API char *PQhostaddr(const PGconn *conn);
SHIM_API char *PQport(const PGconn *conn);
SHIM_API char *PQdb(const PGconn *conn);
SHIM_API char *PQuser(const PGconn *conn);
SHIM_API int PQconnectionNeedsPassword(const PGconn *conn);
SHIM_API int PQconnectionUsedPassword(const PGconn *conn);

#endif
