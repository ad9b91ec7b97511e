/*
 * conninfo.h - a pool's conninfo and password file: checked at load, the
 * options its backends start with, and shown with the password masked.
 */
#ifndef PGL_CONNINFO_H
#define PGL_CONNINFO_H

#include <stdbool.h>
#include <stddef.h>

struct confdiag;
struct config_setting_t;
struct pool_config;

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
 * before libpq's parser sees it.  s is the setting and prefix the pool's
 * path, for diagnostics.
 */
void conninfo_check(struct confdiag *d, struct pool_config *p, const struct config_setting_t *s,
		    const char *prefix);

/* --- for the broker --- */

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

#endif
