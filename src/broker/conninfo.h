/*
 * conninfo.h - a pool's conninfo and password file: checked at load, turned
 * once into the parameters its backends connect with, and shown with the
 * password masked.
 */
#ifndef PGL_CONNINFO_H
#define PGL_CONNINFO_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct confdiag;
struct config_setting_t;
struct pool_config;

/* Entries in a backend's connect parameters at most, the NULL included. */
#define CONNINFO_PARAMS_MAX 64
/* The longest "options" a backend is started with, NUL included. */
#define CONNINFO_OPTIONS_MAX 2048

/* --- at load (config.c) --- */

/*
 * Reads p->password_file into p->password and remembers it in d's secrets:
 * the file must be a regular file that group and others cannot access, its
 * first line the password.  s is the setting and prefix the pool's path
 * ("pools[0]."), for diagnostics.
 */
void conninfo_check_password_file(struct confdiag *d, struct pool_config *p,
				  const struct config_setting_t *s, const char *prefix);

/*
 * Checks p->conninfo, remembering the passwords it carries in d's secrets
 * before libpq's parser sees it (s and prefix as above), and builds
 * p->connect, the parameters p's backends connect with.  Call it once p's
 * settings are parsed and its password_file read: the timeouts and the
 * password are part of them.
 */
void conninfo_check(struct confdiag *d, struct pool_config *p, const struct config_setting_t *s,
		    const char *prefix);

/* Zeroes and frees p->connect (config_free does); NULL afterwards. */
void conninfo_free(struct pool_config *p);

/* --- for the broker --- */

/*
 * The keywords and values, index for index, a backend of pool p connects
 * with (PQconnectStartParams): the conninfo's own parameters but sslmode,
 * gssencmode, options and connect_timeout, then sslmode=disable,
 * gssencmode=disable, fallback_application_name=pgleased, options (what
 * conninfo_options() makes, when it is not empty), and the password of the
 * password_file in place of the conninfo's.
 * connect_timeout is left out: the caller bounds a connect its own way.
 *
 * NULL-terminated, at most CONNINFO_PARAMS_MAX entries with the NULL; built
 * when p was loaded, owned by p and valid until config_free() of its config.
 * NULL when that variant's options are longer than CONNINFO_OPTIONS_MAX - 1
 * bytes ("the conninfo's options are too long"), or for a pool_config that
 * config_load() did not build.
 */
const char *const *conninfo_keywords(const struct pool_config *p, bool with_check_interval);
const char *const *conninfo_values(const struct pool_config *p, bool with_check_interval);

/*
 * The role, database, host and port a backend of pool p will use, as libpq
 * resolves them: the conninfo's, else libpq's defaults (PGUSER, PGDATABASE,
 * a service file, the OS user), asked when called.  A dbname written as a
 * conninfo is not one: the user stands for it.  Empty strings when unknown;
 * each truncated to its buffer.  The conninfo's values are those parsed at
 * load (a pool_config that config_load() did not build gives none).
 */
void conninfo_identity(const struct pool_config *p, char *user, size_t ulen, char *db,
		       size_t dlen, char *host, size_t hlen, char *port, size_t plen);

/*
 * The "options" startup parameter for a backend of pool p: the conninfo's own
 * options followed by "-c statement_timeout=<ms>" (when statement_timeout is
 * set) and "-c client_connection_check_interval=<ms>" (when with_check_interval
 * and connection_check_interval is set).  Writes a NUL-terminated string into
 * buf; returns its length, or -1 when it does not fit.
 */
int conninfo_options(const struct pool_config *p, bool with_check_interval, char *buf,
		     size_t len)
	__attribute__((warn_unused_result));

/*
 * The pool's conninfo for display: keyword=value pairs with any password
 * replaced by "********".  Writes into buf (truncated with "..." when short).
 */
void conninfo_masked(const struct pool_config *p, char *buf, size_t len);

/*
 * Seconds to whole milliseconds, as PostgreSQL's timeouts take them: rounded,
 * and never 0 for a positive duration (0 would mean "off" to the server).
 */
int64_t conninfo_seconds_to_ms(double seconds);

#endif
