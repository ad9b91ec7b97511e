/*
 * connect.c - a program's connect, leased.
 *
 *   1. The program's parameters (params.c) go to libpq as they are, but
 *      towards a private listener of this process (shell_begin): libpq
 *      resolves them as it always does (conninfo, environment, service
 *      file, defaults) and sends its startup message, which names the
 *      user, the database and the settings the program asked for.
 *   2. That user and database are matched against the pools the broker
 *      publishes in its shared memory (or PGLEASE_POOL names one).  No
 *      match: the program's own connect runs, untouched.
 *   3. A lease is acquired and answers the startup (shell_complete); the
 *      PGconn libpq built now talks to the leased backend, and takes an
 *      entry of the table (conns.c).  What the program asked for that the
 *      pool's session lacks is SET (settings.c).
 */
#include "autoconf.h"

#include "common/ident.h"
#include "common/shm.h"
#include "lib/client.h"
#include "lib/shell_build.h"
#include "pglease.h"
#include "preload/connect.h"
#include "preload/conns.h"
#include "preload/params.h"
#include "preload/settings.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

__thread int connect_in_real;

/* Falling back to the program's own connect is said once a process. */
static _Atomic bool fallback_said;

/* Whether an environment variable (PGLEASE_STRICT) says yes. */
static bool
env_true(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
			     strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0);
}

enum outcome { LEASED, PASS_THROUGH, REFUSED };

static void
say_once(const char *fmt, ...)
{
	va_list ap;

	if (atomic_exchange(&fallback_said, true))
		return;
	fprintf(stderr, "pglease: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * sc's view of its broker's segment: mapped at the first connect and kept
 * (a connect per request would otherwise map and unmap it every time,
 * which a threaded program pays for in TLB shootdowns); mapped again once
 * a restarted broker has replaced the segment, which the client may not
 * have noticed yet.  0, or -1 with errno.
 */
static int
broker_view(struct shim_client *sc)
{
	const pgl_client *c = sc->c;

	if (shm_view_current(&sc->view))
		return 0;
	shm_view_close(&sc->view);
	if (c->shm_name[0] == '\0') {
		errno = ENOENT;
		return -1;
	}
	return shm_view_open(c->shm_name, ident_broker_uid(), NULL, &sc->view);
}

/*
 * The pool a connection goes to, from the broker's segment: the one named
 * forced (PGLEASE_POOL), else the one whose role and database are user
 * and db.  Fills e's pool name and the pool's server; false when none.  A
 * forced name the segment cannot confirm is still tried (the broker says
 * whether it exists).
 */
static bool
find_pool(struct shim_client *sc, const char *forced, const char *user, const char *db,
	  struct shim_conn *e)
{
	struct shm_pool p;

	if (forced != NULL)
		snprintf(e->pool, sizeof(e->pool), "%s", forced);
	if (broker_view(sc) != 0) {
		if (forced == NULL)
			say_once("cannot read the broker's shared memory %s (%s): connections are "
				 "pooled only with PGLEASE_POOL", sc->c->shm_name, strerror(errno));
		return forced != NULL;
	}
	for (uint32_t i = 0; shm_view_pool(&sc->view, i, &p) == 0; i++) {
		if (p.name[0] == '\0' ||
		    (forced != NULL ? strcmp(p.name, forced) != 0 :
		     strcmp(p.user, user) != 0 || strcmp(p.database, db) != 0))
			continue;
		snprintf(e->pool, sizeof(e->pool), "%s", p.name);
		snprintf(e->host, sizeof(e->host), "%s", p.host);
		snprintf(e->port, sizeof(e->port), "%s", p.port);
		return true;
	}
	return forced != NULL;
}

/* Whether a failure of the broker means it is not there (fall back) rather than no. */
static bool
unreachable(int code)
{
	return code == PGL_EBROKER || code == PGL_ESTALE || code == PGL_EPROTO;
}

/*
 * The shim's connect, sc's lock held.  *out gets the PGconn for
 * LEASED (ready) and REFUSED (CONNECTION_BAD); PASS_THROUGH asks the
 * caller for the real connect.
 */
static enum outcome
shim_connect(struct params *p, struct shim_conn *e, struct shim_client *sc, PGconn **out)
{
	char msg[1400];
	struct shell_build *b = NULL;
	pgl_lease *l = NULL;
	bool strict = env_true("PGLEASE_STRICT");
	const char *forced = getenv("PGLEASE_POOL");
	pgl_client *c = sc->c;

	*out = NULL;
	if (!p->ok)
		return PASS_THROUGH;
	if ((b = malloc(sizeof(*b))) == NULL)
		return PASS_THROUGH;

	/* 1. libpq resolves the program's parameters and says what they are. */
	if (shell_begin(c, b, p->kw, (const char *const *)p->val, NULL) != 0) {
		/* Parameters libpq itself refuses: let it say so, as it would. */
		free(b);
		return PASS_THROUGH;
	}
	const char *user = shell_startup_param(b, "user");
	const char *db = shell_startup_param(b, "database");
	if (user == NULL)
		user = "";
	if (db == NULL || db[0] == '\0')
		db = user;
	if (shell_startup_param(b, "replication") != NULL)
		goto pass;	/* a walsender is no pooled session */

	/* 2. Which pool, if any. */
	memset(e->pool, 0, sizeof(e->pool));
	e->host[0] = e->port[0] = '\0';
	if (client_ensure(c) != 0) {
		if (unreachable(pgl_errcode(c)) && !strict) {
			say_once("the broker is unreachable (%s); connecting directly", pgl_error(c));
			goto pass;
		}
		if (unreachable(pgl_errcode(c)))
			snprintf(msg, sizeof(msg), "pglease: the broker is unreachable and "
				 "PGLEASE_STRICT is set: %s", pgl_error(c));
		else
			snprintf(msg, sizeof(msg), "pglease: the broker refused this process: %s",
				 pgl_error(c));
		goto refuse;
	}
	if (!find_pool(sc, forced != NULL && forced[0] != '\0' ? forced : NULL, user, db, e))
		goto pass;

	/* 3. A lease, the handshake, the program's settings. */
	l = pgl_acquire(c, e->pool, -1);
	if (l == NULL) {
		if (unreachable(pgl_errcode(c)) && !strict) {
			say_once("the broker is unreachable (%s); connecting directly", pgl_error(c));
			goto pass;
		}
		snprintf(msg, sizeof(msg), "pglease: pool \"%s\": %s%s", e->pool, pgl_error(c),
			 unreachable(pgl_errcode(c)) ? " (PGLEASE_STRICT is set)" : "");
		goto refuse;
	}
	l->shell_borrowed = true;
	char *settings = NULL;
	const char *why = NULL;
	if (settings_for(b, l, &settings, &why) != 0) {
		pgl_release(l);
		snprintf(msg, sizeof(msg), "pglease: pool \"%s\": %s", e->pool, why);
		goto refuse;
	}
	char shell_host[64];
	snprintf(shell_host, sizeof(shell_host), "%s", b->host);
	PGconn *conn = shell_complete(c, b, l, PQconnectPoll);
	free(b);
	b = NULL;
	if (conn == NULL) {
		snprintf(msg, sizeof(msg), "pglease: pool \"%s\": %s", e->pool, pgl_error(c));
		free(settings);
		pgl_discard(l);
		*out = NULL;
		return PASS_THROUGH;	/* the shell could not be built: libpq's own way */
	}
	char err[1024];
	if (settings_apply(conn, settings, err, sizeof(err)) != 0) {
		/* As the server refuses a bad setting at connect. */
		free(settings);
		pgl_release(l);
		real.finish(conn);
		snprintf(msg, sizeof(msg), "pglease: pool \"%s\": %s", e->pool, err);
		struct shell_build *rb = malloc(sizeof(*rb));
		if (rb == NULL || shell_begin(c, rb, p->kw, (const char *const *)p->val, NULL) != 0) {
			free(rb);
			return PASS_THROUGH;
		}
		*out = shell_refuse(rb, "22023", msg);
		free(rb);
		return REFUSED;
	}
	snprintf(e->db, sizeof(e->db), "%s", l->database);
	snprintf(e->user, sizeof(e->user), "%s", l->user);
	snprintf(e->shell_host, sizeof(e->shell_host), "%s", shell_host);
	e->settings = settings;
	e->client = sc;
	atomic_store(&e->lease, l);
	atomic_store_explicit(&e->conn, conn, memory_order_release);
	*out = conn;
	return LEASED;

pass:
	shell_abandon(b);
	free(b);
	return PASS_THROUGH;
refuse:
	*out = shell_refuse(b, "08004", msg);
	free(b);
	return REFUSED;
}

/* Runs the shim's connect, or the real one. */
static PGconn *
connect_or(struct params *p, PGconn *(*real_connect)(void *), void *arg)
{
	PGconn *conn = NULL;
	enum outcome o = PASS_THROUGH;
	struct shim_client *sc = conns_client();
	struct shim_conn *e = sc != NULL ? conns_take() : NULL;

	if (e != NULL) {
		pthread_mutex_lock(&sc->lock);
		o = shim_connect(p, e, sc, &conn);
		pthread_mutex_unlock(&sc->lock);
		if (o != LEASED)
			conns_forget(e);
	}
	params_free(p);
	if (o != PASS_THROUGH)
		return conn;
	connect_in_real++;
	conn = real_connect(arg);
	connect_in_real--;
	return conn;
}

struct args_params {
	const char *const *kw;
	const char *const *val;
	int expand;
	bool start;
};

static PGconn *
real_params(void *arg)
{
	struct args_params *a = arg;

	return a->start ? real.connectStartParams(a->kw, a->val, a->expand) :
			  real.connectdbParams(a->kw, a->val, a->expand);
}

struct args_conninfo {
	const char *conninfo;
	bool start;
};

static PGconn *
real_conninfo(void *arg)
{
	struct args_conninfo *a = arg;

	return a->start ? real.connectStart(a->conninfo) : real.connectdb(a->conninfo);
}

static PGconn *
from_params(const char *const *kw, const char *const *val, int expand, bool start)
{
	struct args_params a = { kw, val, expand, start };
	struct params p = { .ok = true };

	real_resolve();
	if (connect_in_real)
		return real_params(&a);
	for (int i = 0; kw != NULL && kw[i] != NULL; i++) {
		if (val[i] == NULL || val[i][0] == '\0')
			continue;
		/* The first dbname may be a whole connection string (expand_dbname). */
		if (expand && strcmp(kw[i], "dbname") == 0 && params_is_conninfo(val[i])) {
			expand = 0;
			if (!params_conninfo(&p, val[i]))
				p.ok = false;
			continue;
		}
		params_set(&p, kw[i], val[i]);
	}
	return connect_or(&p, real_params, &a);
}

static PGconn *
from_conninfo(const char *conninfo, bool start)
{
	struct args_conninfo a = { conninfo, start };
	struct params p = { .ok = true };

	real_resolve();
	if (connect_in_real)
		return real_conninfo(&a);
	if (conninfo == NULL || !params_conninfo(&p, conninfo))
		p.ok = false;
	return connect_or(&p, real_conninfo, &a);
}

SHIM_API PGconn *
PQconnectdb(const char *conninfo)
{
	return from_conninfo(conninfo, false);
}

SHIM_API PGconn *
PQconnectStart(const char *conninfo)
{
	/* Leased at once: PQconnectPoll then answers PGRES_POLLING_OK. */
	return from_conninfo(conninfo, true);
}

SHIM_API PGconn *
PQconnectdbParams(const char *const *keywords, const char *const *values, int expand_dbname)
{
	return from_params(keywords, values, expand_dbname, false);
}

SHIM_API PGconn *
PQconnectStartParams(const char *const *keywords, const char *const *values, int expand_dbname)
{
	return from_params(keywords, values, expand_dbname, true);
}

struct args_login {
	const char *host, *port, *options, *tty, *db, *login, *pwd;
};

static PGconn *
real_login(void *arg)
{
	struct args_login *a = arg;

	return real.setdbLogin(a->host, a->port, a->options, a->tty, a->db, a->login, a->pwd);
}

SHIM_API PGconn *
PQsetdbLogin(const char *pghost, const char *pgport, const char *pgoptions, const char *pgtty,
	     const char *dbName, const char *login, const char *pwd)
{
	struct args_login a = { pghost, pgport, pgoptions, pgtty, dbName, login, pwd };
	struct params p = { .ok = true };

	real_resolve();
	if (connect_in_real)
		return real_login(&a);
	/* As libpq: a dbName may be a connection string; the others override it. */
	if (dbName != NULL && params_is_conninfo(dbName)) {
		if (!params_conninfo(&p, dbName))
			p.ok = false;
	} else {
		params_set(&p, "dbname", dbName);
	}
	params_set(&p, "options", pgoptions);
	params_set(&p, "user", login);
	return connect_or(&p, real_login, &a);
}
