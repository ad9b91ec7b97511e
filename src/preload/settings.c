/*
 * settings.c - turning what the program asked for into a statement.
 *
 * libpq puts the program's settings (application_name, client_encoding,
 * datestyle, timezone, options "-c name=value", ...) in its startup
 * message; a pooled session was started with the pool's.  What differs is
 * applied with set_config() once the lease answers the startup, and again
 * after each PQreset.
 */
#include "autoconf.h"

#include "lib/shell_build.h"
#include "preload/settings.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SETTINGS_MAX 4096

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

int
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

int
settings_apply(PGconn *conn, const char *sql, char *err, size_t errlen)
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
