/*
 * conninfo.c - a pool's conninfo and password file.
 *
 * At load the conninfo is checked (a leased socket carries no TLS or GSSAPI
 * state, replication cannot be pooled, a host name would block the event
 * loop) and parsed once into the keyword/value arrays its backends connect
 * with, in one block that is zeroed when the configuration is freed: it
 * holds the password.
 */
#include "autoconf.h"

#include "broker/conninfo.h"
#include "broker/confdiag.h"
#include "broker/config.h"
#include "broker/target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The conninfo keywords that say who a backend is and where it runs. */
enum { ID_USER, ID_DBNAME, ID_HOST, ID_PORT, ID_COUNT };
static const char *const identity_keywords[ID_COUNT] = { "user", "dbname", "host", "port" };

/*
 * What a pool's backends connect with, one allocation: the arrays point into
 * strings[] (or at literals).  [0] without, [1] with the check interval.
 */
struct conninfo_params {
	const char *kw[2][CONNINFO_PARAMS_MAX];
	const char *val[2][CONNINFO_PARAMS_MAX];
	bool built[2];			/* false: that variant's options are too long */
	const char *given[ID_COUNT];	/* as the conninfo gives them; NULL: not */
	size_t size;			/* of the whole allocation */
	char strings[];
};

static int
identity_index(const char *keyword)
{
	for (int i = 0; i < ID_COUNT; i++)
		if (strcmp(keyword, identity_keywords[i]) == 0)
			return i;
	return -1;
}

/* The value of keyword in opts (which may be NULL), or NULL. */
static const char *
option_value(const PQconninfoOption *opts, const char *keyword)
{
	for (const PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, keyword) == 0)
			return o->val;
	return NULL;
}

/* PQconninfoFree(), the password zeroed first: libpq frees it as it is. */
static void
free_options(PQconninfoOption *opts)
{
	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, "password") == 0)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
}

/* --- connect parameters ------------------------------------------------- */

/* conninfo_options() with the conninfo's own options given: base, or NULL. */
static int
options_string(const char *base, const struct pool_config *p, bool with_check_interval,
	       char *buf, size_t len)
{
	size_t used = 0;
	int n;

	if (len == 0)
		return -1;
	buf[0] = '\0';

#define APPEND(...)                                                        \
	do {                                                               \
		n = snprintf(buf + used, len - used, __VA_ARGS__);         \
		if (n < 0 || (size_t)n >= len - used)                      \
			goto toolong;                                      \
		used += (size_t)n;                                         \
	} while (0)

	if (base != NULL && base[0] != '\0')
		APPEND("%s", base);
	if (p->statement_timeout > 0)
		APPEND("%s-c statement_timeout=%" PRId64, used > 0 ? " " : "",
		       conninfo_seconds_to_ms(p->statement_timeout));
	if (with_check_interval && p->connection_check_interval > 0)
		APPEND("%s-c client_connection_check_interval=%" PRId64, used > 0 ? " " : "",
		       conninfo_seconds_to_ms(p->connection_check_interval));
#undef APPEND
	return (int)used;
toolong:
	buf[0] = '\0';
	return -1;
}

int64_t
conninfo_seconds_to_ms(double seconds)
{
	if (!(seconds > 0))
		return 0;
	if (seconds >= (double)INT64_MAX / 1000.0)
		return INT64_MAX;
	int64_t ms = llround(seconds * 1000.0);
	return ms > 0 ? ms : 1;
}

int
conninfo_options(const struct pool_config *p, bool with_check_interval, char *buf, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(p->conninfo, NULL);
	int n = options_string(option_value(opts, "options"), p, with_check_interval, buf, len);

	free_options(opts);
	return n;
}

/* Whether a conninfo parameter is left out: replaced, or enforced by the broker. */
static bool
left_out(const struct pool_config *p, const char *keyword)
{
	return strcmp(keyword, "sslmode") == 0 || strcmp(keyword, "gssencmode") == 0 ||
	       strcmp(keyword, "options") == 0 || strcmp(keyword, "connect_timeout") == 0 ||
	       (p->password != NULL && strcmp(keyword, "password") == 0);
}

/* Copies s to the end of cp's strings; returns the copy. */
static const char *
keep(struct conninfo_params *cp, size_t *used, const char *s)
{
	char *copy = cp->strings + *used;
	size_t n = strlen(s) + 1;

	memcpy(copy, s, n);
	*used += n;
	return copy;
}

/*
 * The parameters of conninfo_keywords()/conninfo_values() for pool p, whose
 * conninfo parses to opts.  NULL when out of memory.
 */
static struct conninfo_params *
build_params(const struct pool_config *p, const PQconninfoOption *opts)
{
	char options[2][CONNINFO_OPTIONS_MAX];
	bool fits[2];
	const char *base = option_value(opts, "options");
	size_t need = 0;

	for (int v = 0; v < 2; v++) {
		fits[v] = options_string(base, p, v == 1, options[v], sizeof(options[v])) >= 0;
		if (fits[v])
			need += strlen(options[v]) + 1;
	}
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (o->val != NULL)
			need += strlen(o->keyword) + 1 + strlen(o->val) + 1;
	if (p->password != NULL)
		need += strlen(p->password) + 1;

	struct conninfo_params *cp = calloc(1, sizeof(*cp) + need);
	size_t used = 0;
	int n = 0;

	if (cp == NULL)
		return NULL;
	cp->size = sizeof(*cp) + need;
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		const char *kw = keep(cp, &used, o->keyword);
		const char *val = keep(cp, &used, o->val);
		int id = identity_index(o->keyword);
		if (id >= 0)
			cp->given[id] = val;
		/* room for the broker's own parameters below */
		if (left_out(p, o->keyword) || n >= CONNINFO_PARAMS_MAX - 8)
			continue;
		cp->kw[0][n] = cp->kw[1][n] = kw;
		cp->val[0][n] = cp->val[1][n] = val;
		n++;
	}

	const char *password = p->password != NULL ? keep(cp, &used, p->password) : NULL;

	for (int v = 0; v < 2; v++) {
		const char **kw = cp->kw[v], **val = cp->val[v];
		int m = n;

		if (!fits[v])
			continue;
		cp->built[v] = true;
		kw[m] = "sslmode", val[m++] = "disable";
		kw[m] = "gssencmode", val[m++] = "disable";
		kw[m] = "fallback_application_name", val[m++] = "pgleased";
		if (options[v][0] != '\0')
			kw[m] = "options", val[m++] = keep(cp, &used, options[v]);
		if (password != NULL)
			kw[m] = "password", val[m++] = password;
		kw[m] = NULL;
		val[m] = NULL;
	}
	return cp;
}

void
conninfo_free(struct pool_config *p)
{
	if (p->connect == NULL)
		return;
	explicit_bzero(p->connect, p->connect->size);
	free(p->connect);
	p->connect = NULL;
}

const char *const *
conninfo_keywords(const struct pool_config *p, bool with_check_interval)
{
	return p->connect != NULL && p->connect->built[with_check_interval] ?
	       p->connect->kw[with_check_interval] : NULL;
}

const char *const *
conninfo_values(const struct pool_config *p, bool with_check_interval)
{
	return p->connect != NULL && p->connect->built[with_check_interval] ?
	       p->connect->val[with_check_interval] : NULL;
}

void
conninfo_identity(const struct pool_config *p, char *user, size_t ulen, char *db, size_t dlen,
		  char *host, size_t hlen, char *port, size_t plen)
{
	const char *v[ID_COUNT] = { NULL };
	PQconninfoOption *defaults = NULL;

	if (p->connect != NULL)
		memcpy(v, p->connect->given, sizeof(v));
	/* libpq's defaults: environment, service file, the OS user */
	if (v[ID_USER] == NULL || v[ID_DBNAME] == NULL || v[ID_HOST] == NULL || v[ID_PORT] == NULL)
		defaults = PQconndefaults();
	for (PQconninfoOption *o = defaults; o != NULL && o->keyword != NULL; o++) {
		int id = o->val != NULL ? identity_index(o->keyword) : -1;
		if (id >= 0 && v[id] == NULL)
			v[id] = o->val;
	}
	snprintf(host, hlen, "%s", v[ID_HOST] != NULL ? v[ID_HOST] : "");
	snprintf(port, plen, "%s", v[ID_PORT] != NULL ? v[ID_PORT] : "");
	snprintf(user, ulen, "%s", v[ID_USER] != NULL ? v[ID_USER] : "");
	/* a database named like a conninfo is not one we can match */
	snprintf(db, dlen, "%s", v[ID_DBNAME] != NULL && strchr(v[ID_DBNAME], '=') == NULL ?
		 v[ID_DBNAME] : v[ID_USER] != NULL ? v[ID_USER] : "");
	PQconninfoFree(defaults);
}

/* --- checks at load ----------------------------------------------------- */

/* Whether a libpq host entry is a socket directory or an address (no lookup). */
static bool
host_is_literal(const char *h, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char addr[sizeof(struct in6_addr)];

	if (len == 0 || h[0] == '/' || h[0] == '@')
		return true;
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, h, len);
	buf[len] = '\0';
	return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

void
conninfo_check_password_file(struct confdiag *d, struct pool_config *p,
			     const struct config_setting_t *s, const char *prefix)
{
	char name[160];
	struct stat st;

	snprintf(name, sizeof(name), "%spassword_file", prefix);
	FILE *f = fopen(p->password_file, "re");
	if (f != NULL)
		setvbuf(f, NULL, _IONBF, 0);	/* read() below; stdio buffers nothing */
	if (f == NULL) {
		confdiag_error(d, s, name, "cannot open \"%s\": %s", p->password_file,
			       strerror(errno));
		return;
	}
	if (fstat(fileno(f), &st) != 0) {
		confdiag_error(d, s, name, "cannot stat \"%s\": %s", p->password_file,
			       strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		confdiag_error(d, s, name, "\"%s\" is not a regular file", p->password_file);
		goto done;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		confdiag_error(d, s, name, "\"%s\" has mode %04o: it must not be accessible by "
			       "group or others (chmod 0600)", p->password_file,
			       (unsigned)(st.st_mode & 07777));
		goto done;
	}

	/*
	 * Read unbuffered into our own buffer, zeroed afterwards: stdio's
	 * buffer and getline's reallocations would leave copies of the
	 * password in freed memory.
	 */
	char buf[CONFIG_STRING_MAX + 2];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 &&
	       ((n = read(fileno(f), buf + len, sizeof(buf) - 1 - len)) > 0 ||
		(n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		confdiag_error(d, s, name, "\"%s\" is empty: its first line must be the password",
			       p->password_file);
	} else if (strlen(buf) > CONFIG_STRING_MAX) {
		confdiag_error(d, s, name, "\"%s\": the password is longer than %d bytes",
			       p->password_file, CONFIG_STRING_MAX);
	} else {
		secret_add(&d->secrets, buf, strlen(buf));
		if ((p->password = strdup(buf)) == NULL)
			confdiag_error(d, s, name, "out of memory");
	}
	explicit_bzero(buf, sizeof(buf));
done:
	fclose(f);
}

/* Whether the libpq the broker runs with knows the connection keyword kw. */
static bool
libpq_has_keyword(const char *kw)
{
	PQconninfoOption *defaults = PQconndefaults();
	bool found = false;

	for (PQconninfoOption *o = defaults; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, kw) == 0)
			found = true;
	PQconninfoFree(defaults);
	return found;
}

/*
 * p->target from the conninfo's target_session_attrs (value, NULL when not
 * given), else from libpq's default (PGTARGETSESSIONATTRS): a value libpq
 * would refuse at every connect is refused here.
 */
static void
check_target(struct confdiag *d, struct pool_config *p, const struct config_setting_t *s,
	     const char *name, const char *value)
{
	PQconninfoOption *defaults = NULL;

	if (value == NULL) {
		defaults = PQconndefaults();
		for (PQconninfoOption *o = defaults; o != NULL && o->keyword != NULL; o++)
			if (o->val != NULL && strcmp(o->keyword, "target_session_attrs") == 0)
				value = o->val;
	}
	p->target = value != NULL ? target_parse(value) : TARGET_ANY;
	if (p->target < 0) {
		confdiag_error(d, s, name, "target_session_attrs=%s%s is not one libpq takes: any, "
			       "read-write, read-only, primary, standby or prefer-standby", value,
			       defaults != NULL ? " (from PGTARGETSESSIONATTRS)" : "");
		p->target = TARGET_ANY;
	}
	PQconninfoFree(defaults);
}

void
conninfo_check(struct confdiag *d, struct pool_config *p, const struct config_setting_t *s,
	       const char *prefix)
{
	char name[160];
	char *err = NULL;

	snprintf(name, sizeof(name), "%sconninfo", prefix);
	secret_note_conninfo(&d->secrets, p->conninfo);

	PQconninfoOption *opts = PQconninfoParse(p->conninfo, &err);
	if (opts == NULL && strstr(p->conninfo, "load_balance_hosts") != NULL &&
	    !libpq_has_keyword("load_balance_hosts")) {
		confdiag_error(d, s, name, "load_balance_hosts needs libpq 16 or later; the libpq "
			       "this broker runs with (version %d) does not know it: remove it, or "
			       "list the hosts in the order to try", PQlibVersion());
		PQfreemem(err);
		return;
	}
	if (opts == NULL) {
		if (err != NULL && d->secrets.overflow) {
			confdiag_error(d, s, name, "cannot be parsed (libpq's explanation is "
				       "withheld: it could quote a password)");
			PQfreemem(err);
		} else if (err != NULL) {
			err[strcspn(err, "\n")] = '\0';
			confdiag_error(d, s, name, "cannot be parsed: %s", err);
			PQfreemem(err);
		} else {
			confdiag_error(d, s, name, "cannot be parsed: out of memory");
		}
		return;
	}

	const char *host = NULL, *hostaddr = NULL, *target = NULL;
	bool has_password = false;

	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "password") == 0) {
			secret_add(&d->secrets, o->val, strlen(o->val));
			has_password = true;
		} else if (strcmp(o->keyword, "sslmode") == 0 && strcmp(o->val, "disable") != 0) {
			confdiag_error(d, s, name, "sslmode=%s asks for TLS, but a leased "
				       "socket cannot carry TLS state (it lives in the broker's "
				       "memory): use sslmode=disable over a UNIX socket or a trusted "
				       "local network", o->val);
		} else if (strcmp(o->keyword, "gssencmode") == 0 && strcmp(o->val, "disable") != 0) {
			confdiag_error(d, s, name, "gssencmode=%s asks for GSSAPI encryption, "
				       "but a leased socket cannot carry encryption state (it lives "
				       "in the broker's memory): use gssencmode=disable", o->val);
		} else if (strcmp(o->keyword, "requiressl") == 0 && strcmp(o->val, "0") != 0) {
			confdiag_error(d, s, name, "requiressl asks for TLS, but a leased socket "
				       "cannot carry TLS state (it lives in the broker's memory)");
		} else if (strcmp(o->keyword, "replication") == 0) {
			confdiag_error(d, s, name, "replication connections cannot be pooled");
		} else if (strcmp(o->keyword, "connect_timeout") == 0) {
			confdiag_warning(d, s, name, "connect_timeout in the conninfo is ignored; "
					 "the pool's connect_timeout setting applies");
		} else if (strcmp(o->keyword, "target_session_attrs") == 0) {
			target = o->val;
		} else if (strcmp(o->keyword, "host") == 0) {
			host = o->val;
		} else if (strcmp(o->keyword, "hostaddr") == 0) {
			hostaddr = o->val;
		}
	}

	if (has_password && p->password_file != NULL)
		confdiag_error(d, s, name, "has a password and the pool has a password_file too: "
			       "keep one");
	else if (has_password)
		confdiag_warning(d, s, name, "carries a password; a password_file readable only "
				 "by the broker keeps it out of the configuration file");

	if (host != NULL && (hostaddr == NULL || hostaddr[0] == '\0')) {
		for (const char *h = host; *h != '\0';) {
			size_t len = strcspn(h, ",");
			if (!host_is_literal(h, len))
				confdiag_warning(d, s, name, "host \"%.*s\" is a name: libpq "
						 "resolves it with a blocking getaddrinfo() inside "
						 "the broker's event loop; give an address, a socket "
						 "directory, or hostaddr", (int)len, h);
			h += len;
			if (*h == ',')
				h++;
		}
	}

	check_target(d, p, s, name, target);

	if ((p->connect = build_params(p, opts)) == NULL)
		confdiag_error(d, s, name, "out of memory");
	free_options(opts);
}

/* --- display ------------------------------------------------------------ */

/*
 * Re-rendered from libpq's own parse, so the password is whatever libpq takes
 * for one: no guess at secret shapes (secret.c) is needed here.
 */
void
conninfo_masked(const struct pool_config *p, char *buf, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(p->conninfo, NULL);
	size_t used = 0;

	if (len == 0) {
		free_options(opts);
		return;
	}
	buf[0] = '\0';
	if (opts == NULL) {
		snprintf(buf, len, "(unparsable)");
		return;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;

		bool secret = strcmp(o->keyword, "password") == 0;
		const char *v = secret ? "********" : o->val;
		bool quote = v[0] == '\0' || strpbrk(v, " \t\n'\\") != NULL;
		char piece[512];
		size_t pl = 0;

		pl += (size_t)snprintf(piece, sizeof(piece), "%s%s=%s", used > 0 ? " " : "",
				       o->keyword, quote ? "'" : "");
		for (const char *c = v; *c != '\0' && pl + 4 < sizeof(piece); c++) {
			if (quote && (*c == '\'' || *c == '\\'))
				piece[pl++] = '\\';
			piece[pl++] = *c;
		}
		if (quote)
			piece[pl++] = '\'';
		piece[pl] = '\0';
		if (used + pl + 1 > len) {
			if (len > 4)
				memcpy(buf + (used < len - 4 ? used : len - 4), "...", 4);
			break;
		}
		memcpy(buf + used, piece, pl + 1);
		used += pl;
	}
	free_options(opts);
}
