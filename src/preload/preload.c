/*
 * preload.c - libpglease_preload.so: unmodified libpq programs, pooled.
 *
 * Under LD_PRELOAD (pglease-run), the connect calls of libpq lease a
 * backend from pgleased instead of opening one:
 *
 *   1. The program's parameters go to libpq as they are, but towards a
 *      private listener of this process (shell_begin): libpq resolves them
 *      as it always does (conninfo, environment, service file, defaults)
 *      and sends its startup message, which names the user, the database
 *      and the settings the program asked for.
 *   2. That user and database are matched against the pools the broker
 *      publishes in its shared memory (or PGLEASE_POOL names one).  No
 *      match: the program's own connect runs, untouched.
 *   3. A lease is acquired and answers the startup (shell_complete); the
 *      PGconn libpq built now talks to the leased backend.  What the
 *      program asked for that the pool's session lacks (application_name,
 *      client_encoding, datestyle, timezone, options) is SET.
 *
 * PQfinish releases, PQreset* leases again under the same PGconn, cancels
 * go through the broker, PQhost and friends report the pool's server.
 * Every other libpq function is the real one: the PGconn is genuine.
 */
#include "autoconf.h"

#include "common/ident.h"
#include "common/shm.h"
#include "lib/client.h"
#include "lib/shell_build.h"
#include "pglease.h"
#include "preload/preload.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exported: the interposers.  Everything else stays inside the shim. */
#define SHIM_API __attribute__((visibility("default")))

/* --- the connections the shim leased ------------------------------------ */

#define MAX_CONNS 256
#define SETTINGS_MAX 4096

/*
 * A client of the broker per thread that connects (a pgl_client is not
 * shared between threads without a lock): a thread waiting for a backend
 * holds only its own, so others release and connect meanwhile.  The lock
 * also serves a PQfinish from another thread than the one that connected.
 */
struct shim_client {
	pthread_mutex_t lock;
	pgl_client *c;
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

static struct shim_conn conns[MAX_CONNS];

/*
 * Set while the real libpq connects or resets for the shim: libpq's own
 * calls between its functions (PQconnectdb -> PQconnectStart) may be bound
 * to the interposers (through the audit library, or a PLT), and must reach
 * the real functions then.
 */
static __thread int in_real;

/*
 * The table's lock, held only to take or free an entry.  Signal handlers
 * (PQcancel, PQrequestCancel) take no lock: they read the atomics only.
 */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool fallback_said;
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
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

static void
client_key_init(void)
{
	pthread_key_create(&client_key, client_gone);
}

/* This thread's client, made on first use; NULL when out of memory. */
static struct shim_client *
thread_client(void)
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

static struct shim_conn *
find(const PGconn *conn)
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

/* Takes a free entry (marked TAKEN); NULL when all are in use. */
static struct shim_conn *
take_entry(void)
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

static void
forget(struct shim_conn *e)
{
	free(e->settings);
	e->settings = NULL;
	e->client = NULL;
	atomic_store(&e->lease, NULL);
	atomic_store_explicit(&e->conn, NULL, memory_order_release);
}

/* --- settings ----------------------------------------------------------- */

static bool
env_true(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
			     strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0);
}

/* A string builder of fixed room; false once it overflowed. */
struct sbuf {
	char *p;
	size_t len, cap;
	bool ok;
};

static void
sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;

	if (!b->ok)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len)
		b->ok = false;
	else
		b->len += (size_t)n;
}

/* A GUC name as SET accepts it unquoted. */
static bool
guc_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/*
 * Appends "set_config('name', 'value', false)": the value is taken as the
 * startup packet gives it, a list such as "pg_catalog,public" included
 * (a quoted SET would make it one schema name).
 */
static bool
add_set(struct sbuf *b, const char *name, size_t nlen, const char *value, size_t vlen)
{
	if (!guc_name_ok(name, nlen))
		return false;
	sb_add(b, "%sset_config('%.*s', '", b->len == 0 ? "SELECT " : ", ", (int)nlen, name);
	for (size_t i = 0; i < vlen; i++) {
		if (value[i] == '\'')
			sb_add(b, "''");
		else if (value[i] == '\0')
			return false;
		else
			sb_add(b, "%c", value[i]);
	}
	sb_add(b, "', false)");
	return b->ok;
}

/*
 * The options string of a startup message ("-c a=b --c=d"): each setting
 * SET.  libpq passes the words as the server splits them: blanks separate,
 * a backslash escapes the next character.  false when a word is not a
 * setting (another postgres switch), why set.
 */
static bool
add_options(struct sbuf *b, const char *opts, const char **why)
{
	char word[1024];
	const char *p = opts;
	bool want_setting = false;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		size_t n = 0;
		while (*p != '\0' && *p != ' ' && *p != '\t') {
			if (*p == '\\' && p[1] != '\0')
				p++;
			if (n + 1 >= sizeof(word)) {
				*why = "the options are too long";
				return false;
			}
			word[n++] = *p++;
		}
		word[n] = '\0';
		const char *setting = NULL;
		if (want_setting) {
			setting = word;
			want_setting = false;
		} else if (strcmp(word, "-c") == 0) {
			want_setting = true;
			continue;
		} else if (strncmp(word, "-c", 2) == 0) {
			setting = word + 2;
		} else if (strncmp(word, "--", 2) == 0) {
			setting = word + 2;
			for (char *d = word + 2; *d != '\0' && *d != '='; d++)
				if (*d == '-')
					*d = '_';
		} else {
			*why = "the options hold a switch other than -c name=value";
			return false;
		}
		const char *eq = strchr(setting, '=');
		if (eq == NULL || !add_set(b, setting, (size_t)(eq - setting), eq + 1,
					   strlen(eq + 1))) {
			*why = "the options hold a setting that cannot be applied with SET";
			return false;
		}
	}
	if (want_setting) {
		*why = "the options end with -c and no setting";
		return false;
	}
	return true;
}

/*
 * What the program asked for in its startup message that the leased
 * session does not have already, as SET statements (malloc'd, NULL when
 * nothing).  -1 when something cannot be applied (why set).
 */
static int
settings_for(const struct shell_build *b, pgl_lease *l, char **out, const char **why)
{
	char *buf = malloc(SETTINGS_MAX);
	struct sbuf sb = { .p = buf, .cap = SETTINGS_MAX, .ok = buf != NULL };

	*out = NULL;
	if (buf == NULL) {
		*why = "out of memory";
		return -1;
	}
	buf[0] = '\0';
	/*
	 * application_name, when the program asked for one (or a fallback):
	 * one that asked for none keeps the pool's, which names the backend a
	 * pooled one in pg_stat_activity and costs no round trip.
	 */
	const char *app = shell_startup_param(b, "application_name");
	const char *pool_app = pgl_param(l, "application_name");
	if (app != NULL && (pool_app == NULL || strcmp(app, pool_app) != 0))
		add_set(&sb, "application_name", 16, app, strlen(app));

	/* Every other parameter libpq put in the startup message, but ours. */
	for (size_t i = 0; i < b->startup_len && b->startup[i] != '\0';) {
		const char *k = (const char *)b->startup + i;
		const char *v = k + strlen(k) + 1;
		i += strlen(k) + 1 + strlen(v) + 1;
		if (strcmp(k, "user") == 0 || strcmp(k, "database") == 0 ||
		    strcmp(k, "application_name") == 0 || strncmp(k, "_pq_.", 5) == 0)
			continue;
		if (strcmp(k, "options") == 0) {
			if (!add_options(&sb, v, why))
				goto fail;
			continue;
		}
		/* client_encoding, datestyle, timezone, geqo: reported ones compared */
		const char *have = NULL;
		if (strcasecmp(k, "client_encoding") == 0)
			have = pgl_param(l, "client_encoding");
		else if (strcasecmp(k, "datestyle") == 0)
			have = pgl_param(l, "DateStyle");
		else if (strcasecmp(k, "timezone") == 0)
			have = pgl_param(l, "TimeZone");
		if (have != NULL && strcasecmp(have, v) == 0)
			continue;
		if (!add_set(&sb, k, strlen(k), v, strlen(v))) {
			*why = "a startup parameter cannot be applied with SET";
			goto fail;
		}
	}
	if (!sb.ok) {
		*why = "the settings are too long";
		goto fail;
	}
	if (sb.len == 0) {
		free(buf);
		return 0;
	}
	*out = buf;
	return 0;
fail:
	free(buf);
	return -1;
}

/* Runs the SETs on a fresh shell.  0, or -1 with the server's message in err. */
static int
apply_settings(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	if (sql == NULL)
		return 0;
	PGresult *r = PQexec(conn, sql);
	int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -1;
	if (rc != 0) {
		const char *m = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		snprintf(err, errlen, "%s", m != NULL ? m : PQerrorMessage(conn));
	}
	PQclear(r);
	return rc;
}

/* --- the program's parameters -------------------------------------------- */

/* Parameters that lead libpq to the server: ours replace them. */
static bool
dropped(const char *kw)
{
	static const char *const names[] = {
		"host", "hostaddr", "port", "password", "passfile", "sslmode", "gssencmode",
		"requiressl", "channel_binding", "require_auth", "target_session_attrs",
		"load_balance_hosts", "connect_timeout", "sslnegotiation", "requirepeer",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(kw, names[i]) == 0)
			return true;
	return false;
}

/* The program's explicit parameters, NULL-terminated arrays of copies. */
struct params {
	const char *kw[SHELL_PARAMS_MAX];
	char *val[SHELL_PARAMS_MAX];
	int n;
	bool ok;
};

static void
params_set(struct params *p, const char *kw, const char *val)
{
	if (val == NULL || val[0] == '\0' || dropped(kw))
		return;	/* libpq takes an empty value as unset */
	for (int i = 0; i < p->n; i++) {
		if (strcmp(p->kw[i], kw) == 0) {
			char *copy = strdup(val);
			if (copy == NULL) {
				p->ok = false;
				return;
			}
			free(p->val[i]);
			p->val[i] = copy;
			return;
		}
	}
	if (p->n + 1 >= (int)(sizeof(p->kw) / sizeof(p->kw[0]))) {
		p->ok = false;
		return;
	}
	/* kw points into libpq's static option table or the caller's arrays:
	 * copied like the value, to outlive both. */
	char *k = strdup(kw), *v = strdup(val);
	if (k == NULL || v == NULL) {
		free(k);
		free(v);
		p->ok = false;
		return;
	}
	p->kw[p->n] = k;
	p->val[p->n++] = v;
	p->kw[p->n] = NULL;
	p->val[p->n] = NULL;
}

static void
params_free(struct params *p)
{
	for (int i = 0; i < p->n; i++) {
		free((char *)p->kw[i]);
		if (p->val[i] != NULL)
			explicit_bzero(p->val[i], strlen(p->val[i]));
		free(p->val[i]);
	}
	p->n = 0;
}

/* Whether a dbname is a connection string libpq would expand. */
static bool
is_conninfo(const char *s)
{
	return strchr(s, '=') != NULL || strncmp(s, "postgresql://", 13) == 0 ||
	       strncmp(s, "postgres://", 11) == 0;
}

/* Adds what a conninfo string sets.  false when libpq cannot parse it. */
static bool
params_conninfo(struct params *p, const char *conninfo)
{
	PQconninfoOption *o = PQconninfoParse(conninfo, NULL);

	if (o == NULL)
		return false;
	for (PQconninfoOption *x = o; x->keyword != NULL; x++)
		params_set(p, x->keyword, x->val);
	PQconninfoFree(o);
	return true;
}

/* --- connecting ------------------------------------------------------- */

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
 * The pool a connection goes to, from the broker's segment: the one named
 * forced (PGLEASE_POOL), else the one whose role and database are user
 * and db.  Fills e's pool name and the pool's server; false when none.  A
 * forced name the segment cannot confirm is still tried (the broker says
 * whether it exists).
 */
static bool
find_pool(pgl_client *c, const char *forced, const char *user, const char *db,
	  struct shim_conn *e)
{
	struct shm_snapshot snap;
	bool found = false;

	if (forced != NULL)
		snprintf(e->pool, sizeof(e->pool), "%s", forced);
	if (c->shm_name[0] == '\0' ||
	    shm_snapshot_owned(c->shm_name, ident_broker_uid(), NULL, &snap) != 0) {
		if (forced == NULL)
			say_once("cannot read the broker's shared memory %s (%s): connections are "
				 "pooled only with PGLEASE_POOL", c->shm_name, strerror(errno));
		return forced != NULL;
	}
	for (uint32_t i = 0; i < snap.hdr.npools && !found; i++) {
		const struct shm_pool *p = &snap.pools[i];
		if (p->name[0] == '\0' ||
		    (forced != NULL ? strcmp(p->name, forced) != 0 :
		     strcmp(p->user, user) != 0 || strcmp(p->database, db) != 0))
			continue;
		snprintf(e->pool, sizeof(e->pool), "%s", p->name);
		snprintf(e->host, sizeof(e->host), "%s", p->host);
		snprintf(e->port, sizeof(e->port), "%s", p->port);
		found = true;
	}
	shm_snapshot_free(&snap);
	return found || forced != NULL;
}

/* Whether a failure of the broker means it is not there (fall back) rather than no. */
static bool
unreachable(int code)
{
	return code == PGL_EBROKER || code == PGL_ESTALE || code == PGL_EPROTO;
}

/*
 * The shim's connect, the shim's lock held.  *out gets the PGconn for
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
	if (!find_pool(c, forced != NULL && forced[0] != '\0' ? forced : NULL, user, db, e))
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
	if (apply_settings(conn, settings, err, sizeof(err)) != 0) {
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
	struct shim_client *sc = thread_client();
	struct shim_conn *e = sc != NULL ? take_entry() : NULL;

	if (e != NULL) {
		pthread_mutex_lock(&sc->lock);
		o = shim_connect(p, e, sc, &conn);
		pthread_mutex_unlock(&sc->lock);
		if (o != LEASED)
			forget(e);
	}
	params_free(p);
	if (o != PASS_THROUGH)
		return conn;
	in_real++;
	conn = real_connect(arg);
	in_real--;
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
	if (in_real)
		return real_params(&a);
	for (int i = 0; kw != NULL && kw[i] != NULL; i++) {
		if (val[i] == NULL || val[i][0] == '\0')
			continue;
		/* The first dbname may be a whole connection string (expand_dbname). */
		if (expand && strcmp(kw[i], "dbname") == 0 && is_conninfo(val[i])) {
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
	if (in_real)
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
	if (in_real)
		return real_login(&a);
	/* As libpq: a dbName may be a connection string; the others override it. */
	if (dbName != NULL && is_conninfo(dbName)) {
		if (!params_conninfo(&p, dbName))
			p.ok = false;
	} else {
		params_set(&p, "dbname", dbName);
	}
	params_set(&p, "options", pgoptions);
	params_set(&p, "user", login);
	return connect_or(&p, real_login, &a);
}

/* --- giving back ------------------------------------------------------- */

SHIM_API void
PQfinish(PGconn *conn)
{
	real_resolve();
	struct shim_conn *e = find(conn);
	if (e != NULL) {
		struct shim_client *sc = e->client;
		pthread_mutex_lock(&sc->lock);
		pgl_lease *l = atomic_load(&e->lease);
		atomic_store(&e->lease, NULL);
		if (l != NULL)
			pgl_release(l);	/* its state from the shell; the socket blinded */
		pthread_mutex_unlock(&sc->lock);
		forget(e);
	}
	real.finish(conn);		/* its Terminate goes to /dev/null */
}

/*
 * A fresh lease under the same PGconn: the old one goes back, libpq
 * reconnects to the shell's listener (bound again at the same name), and
 * the new backend answers.  The shim's lock is held.  0, or -1 with the
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
	in_real++;
	int started = real.resetStart(conn);
	in_real--;
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
	if (apply_settings(conn, e->settings, err, sizeof(err)) != 0) {
		pgl_release(l);
		return -1;
	}
	atomic_store(&e->lease, l);
	return 0;
}

SHIM_API void
PQreset(PGconn *conn)
{
	real_resolve();
	struct shim_conn *e = find(conn);
	if (e != NULL) {
		pthread_mutex_lock(&e->client->lock);
		shim_reset(e, conn);
		pthread_mutex_unlock(&e->client->lock);
		return;
	}
	real.reset(conn);
}

SHIM_API int
PQresetStart(PGconn *conn)
{
	real_resolve();
	struct shim_conn *e = find(conn);
	if (e != NULL) {
		/* Done at once; PQresetPoll then reports how it went. */
		pthread_mutex_lock(&e->client->lock);
		shim_reset(e, conn);
		pthread_mutex_unlock(&e->client->lock);
		return 1;
	}
	return real.resetStart(conn);
}

SHIM_API PostgresPollingStatusType
PQresetPoll(PGconn *conn)
{
	real_resolve();
	if (find(conn) != NULL)
		return PQstatus(conn) == CONNECTION_OK ? PGRES_POLLING_OK : PGRES_POLLING_FAILED;
	return real.resetPoll(conn);
}

/* --- cancels ----------------------------------------------------------- */

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
	struct shim_conn *e = find(conn);
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
	struct shim_conn *e = find(conn);
	if (e != NULL) {
		pgl_lease *l = atomic_load(&e->lease);
		return l != NULL && pgl_cancel(l) == 0;
	}
	real_resolve();
	return real.requestCancel(conn);
}

/* --- what the program sees of the connection ----------------------------- */

SHIM_API char *
PQhost(const PGconn *conn)
{
	struct shim_conn *e = find(conn);

	real_resolve();
	return e != NULL && e->host[0] != '\0' ? e->host : real.host(conn);
}

SHIM_API char *
PQhostaddr(const PGconn *conn)
{
	struct shim_conn *e = find(conn);
	static char none[] = "";

	real_resolve();
	if (e != NULL)
		return none;	/* a UNIX socket, or a host the pool names */
	return real.hostaddr != NULL ? real.hostaddr(conn) : none;
}

SHIM_API char *
PQport(const PGconn *conn)
{
	struct shim_conn *e = find(conn);

	real_resolve();
	return e != NULL && e->port[0] != '\0' ? e->port : real.port(conn);
}

SHIM_API char *
PQdb(const PGconn *conn)
{
	struct shim_conn *e = find(conn);

	real_resolve();
	return e != NULL && e->db[0] != '\0' ? e->db : real.db(conn);
}

SHIM_API char *
PQuser(const PGconn *conn)
{
	struct shim_conn *e = find(conn);

	real_resolve();
	return e != NULL && e->user[0] != '\0' ? e->user : real.user(conn);
}

SHIM_API int
PQconnectionNeedsPassword(const PGconn *conn)
{
	real_resolve();
	return find(conn) != NULL ? 0 : real.connectionNeedsPassword(conn);
}

SHIM_API int
PQconnectionUsedPassword(const PGconn *conn)
{
	real_resolve();
	return find(conn) != NULL ? 0 : real.connectionUsedPassword(conn);
}

/* --- libpq 17's cancel API ------------------------------------------------ */

/*
 * Defined here whatever the running libpq: only a program built against
 * libpq 17 or later calls them, and then the real ones exist.  A leased
 * connection's PGcancelConn is the shim's: its cancel goes through the
 * broker at once (one message, no connection to wait for), so the polling
 * functions report it done.
 */
#ifndef LIBPQ_HAS_ASYNC_CANCEL
/* Built against an older libpq: the declarations libpq 17 has. */
typedef struct pg_cancel_conn PGcancelConn;
PGcancelConn *PQcancelCreate(PGconn *conn);
int PQcancelStart(PGcancelConn *cancel_conn);
int PQcancelBlocking(PGcancelConn *cancel_conn);
PostgresPollingStatusType PQcancelPoll(PGcancelConn *cancel_conn);
ConnStatusType PQcancelStatus(const PGcancelConn *cancel_conn);
int PQcancelSocket(const PGcancelConn *cancel_conn);
char *PQcancelErrorMessage(const PGcancelConn *cancel_conn);
void PQcancelReset(PGcancelConn *cancel_conn);
void PQcancelFinish(PGcancelConn *cancel_conn);
#endif

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
	struct shim_conn *e = find(conn);
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
