/*
 * config.c - load and validate the broker's libconfig file.
 *
 * The loader walks the file, not the schema: every setting it meets must be in
 * config_keys[], so a misspelt key is an error instead of a silent default.
 * It reports every problem it finds, each as "FILE:LINE: setting: problem",
 * and returns a config only when there was none.
 *
 * Two libconfig 1.5 traps are handled here: an integer literal too large for
 * an int is silently wrapped (3000000000 reads as -1294967296), so integers are
 * re-read from the source line and range-checked as 64-bit; and 0660 is read as
 * decimal, so file modes are octal strings.
 */
#include "autoconf.h"

#include "broker/config.h"
#include "common/defaults.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <libconfig.h>
#include <libpq-fe.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* --- the schema --------------------------------------------------------- */

enum key_type {
	KEY_INT,		/* int, range-checked as 64-bit */
	KEY_DURATION,		/* seconds, integer or float, >= 0 */
	KEY_FRACTION,		/* float in [0, 1) */
	KEY_STRING,		/* non-empty string */
	KEY_MODE,		/* octal string: "0660" */
	KEY_ENUM,		/* one of choices[] */
	KEY_UIDS,		/* list of uids or user names */
	KEY_GIDS,		/* list of gids or group names */
};

struct config_key {
	const char *name;
	enum config_section section;
	enum key_type type;
	size_t offset;		/* into struct broker_config or pool_config */
	size_t count_offset;	/* KEY_UIDS/KEY_GIDS: where the count goes */
	int64_t min, max;	/* KEY_INT */
	double dmax;		/* KEY_DURATION */
	int64_t idef;		/* default for KEY_INT, KEY_MODE, KEY_ENUM */
	double ddef;		/* default for KEY_DURATION, KEY_FRACTION */
	const char *sdef;	/* default for KEY_STRING; NULL: none */
	const char *const *choices; /* KEY_ENUM, NULL-terminated */
	size_t max_len;		/* KEY_STRING; 0: CONFIG_STRING_MAX */
	mode_t forbid;		/* KEY_MODE: bits refused */
	const char *forbid_why;	/* ... and why */
	bool required;
};

#define CONFIG_STRING_MAX 4096

static const char *const log_level_choices[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_target_choices[] = { "stderr", "syslog", NULL };
static const char *const lease_action_choices[] = { "warn", "terminate", NULL };

/* The longest duration we accept: about 31 years, far from double's limits. */
#define DURATION_MAX 1e9
/* PostgreSQL's millisecond settings are ints. */
#define PG_MS_MAX ((double)INT_MAX / 1000.0)

#define B(field) .section = CONFIG_SECTION_BROKER, .offset = offsetof(struct broker_config, field)
#define P(field) .section = CONFIG_SECTION_POOL, .offset = offsetof(struct pool_config, field)
#define INT(lo, hi, def) .type = KEY_INT, .min = (lo), .max = (hi), .idef = (def)
#define DUR(def) .type = KEY_DURATION, .dmax = DURATION_MAX, .ddef = (def)
#define STR(def) .type = KEY_STRING, .sdef = (def)

static const struct config_key config_keys[] = {
	{ "socket", B(socket), STR(PGL_DEFAULT_SOCKET) },
	{ "socket_mode", B(socket_mode), .type = KEY_MODE, .idef = 0660, .forbid = 07111,
	  .forbid_why = "a socket has no use for execute, setuid, setgid or sticky bits" },
	{ "socket_group", B(socket_group), STR(NULL) },
	{ "shm_name", B(shm_name), STR(PGL_DEFAULT_SHM_NAME) },
	{ "shm_mode", B(shm_mode), .type = KEY_MODE, .idef = 0640, .forbid = 07022,
	  .forbid_why = "whoever may write the segment can take the broker's lock and its "
			"readers' trust; setuid, setgid and sticky bits mean nothing there" },
	{ "log_level", B(log_level), .type = KEY_ENUM, .choices = log_level_choices,
	  .idef = LOG_LEVEL_INFO },
	{ "log_target", B(log_target), .type = KEY_ENUM, .choices = log_target_choices,
	  .idef = CONFIG_LOG_STDERR },
	{ "allowed_uids", B(allowed_uids), .type = KEY_UIDS,
	  .count_offset = offsetof(struct broker_config, n_allowed_uids) },
	{ "allowed_gids", B(allowed_gids), .type = KEY_GIDS,
	  .count_offset = offsetof(struct broker_config, n_allowed_gids) },
	{ "shutdown_timeout", B(shutdown_timeout), DUR(30.0) },
	{ "max_clients", B(max_clients), INT(1, 1000000, 1024) },
	{ "max_leases_per_client", B(max_leases_per_client), INT(1, 65535, 4) },
	{ "max_total_slots", B(max_total_slots), INT(0, 1000000, 0) },

	{ "name", P(name), STR(NULL), .required = true },
	{ "conninfo", P(conninfo), STR(NULL), .required = true },
	{ "password_file", P(password_file), STR(NULL) },
	{ "min_size", P(min_size), INT(0, 100000, 5) },
	{ "max_size", P(max_size), INT(1, 100000, 20) },
	{ "connect_timeout", P(connect_timeout), DUR(10.0) },
	{ "statement_timeout", P(statement_timeout), .type = KEY_DURATION,
	  .dmax = PG_MS_MAX, .ddef = 30.0 },
	{ "acquire_timeout", P(acquire_timeout), .type = KEY_DURATION,
	  .dmax = PG_MS_MAX, .ddef = 5.0 },
	{ "validate_after", P(validate_after), DUR(1.0) },
	{ "health_query", P(health_query), STR("SELECT 1"), .max_len = CONFIG_QUERY_MAX },
	{ "health_check_interval", P(health_check_interval), DUR(30.0) },
	{ "idle_timeout", P(idle_timeout), DUR(300.0) },
	{ "max_lifetime", P(max_lifetime), DUR(3600.0) },
	/* in addition to DISCARD ALL, which always runs */
	{ "reset_query", P(reset_query), STR(NULL), .max_len = CONFIG_QUERY_MAX },
	{ "lease_timeout", P(lease_timeout), DUR(60.0) },
	{ "lease_timeout_action", P(lease_timeout_action), .type = KEY_ENUM,
	  .choices = lease_action_choices, .idef = LEASE_TIMEOUT_WARN },
	{ "connection_check_interval", P(connection_check_interval), .type = KEY_DURATION,
	  .dmax = PG_MS_MAX, .ddef = 1.0 },
	{ "initial_backoff", P(initial_backoff), DUR(1.0) },
	{ "max_backoff", P(max_backoff), DUR(60.0) },
	{ "jitter", P(jitter), .type = KEY_FRACTION, .ddef = 0.2 },
	{ "allowed_uids", P(allowed_uids), .type = KEY_UIDS,
	  .count_offset = offsetof(struct pool_config, n_allowed_uids) },
	{ "allowed_gids", P(allowed_gids), .type = KEY_GIDS,
	  .count_offset = offsetof(struct pool_config, n_allowed_gids) },
};

#undef B
#undef P
#undef INT
#undef DUR
#undef STR

#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* min_size's default, lowered to max_size when the pool is smaller. */
#define DEFAULT_MIN_SIZE 5

bool
config_schema_key(size_t i, const char **name, enum config_section *section)
{
	if (i >= NKEYS)
		return false;
	*name = config_keys[i].name;
	*section = config_keys[i].section;
	return true;
}

/* --- diagnostics -------------------------------------------------------- */

#define MAX_SECRETS 64
#define MAX_SOURCES 8

struct source {
	char *file;
	char *text;		/* NULL when it could not be read */
};

struct loader {
	const char *path;
	config_report_fn *report;
	void *arg;
	int nerrors;
	/* Every secret seen so far, blotted out of each message. */
	char *secrets[MAX_SECRETS];
	size_t nsecrets;
	bool secrets_overflow;		/* more than MAX_SECRETS: show no libpq detail */
	struct source sources[MAX_SOURCES];
	size_t nsources;
	const config_setting_t *root;
};

static void
loader_add_secret(struct loader *ld, const char *s, size_t len)
{
	if (len == 0)
		return;
	if (ld->nsecrets == MAX_SECRETS) {
		ld->secrets_overflow = true;
		return;
	}
	char *copy = strndup(s, len);
	if (copy != NULL)
		ld->secrets[ld->nsecrets++] = copy;
}

/*
 * Masks, in place, whatever in msg is shaped like a secret: the value after
 * "password" and '=', and "user:SECRET@".  No list, so no limit.
 */
static void
mask_shapes(char *msg)
{
	for (char *p = msg; (p = strstr(p, "password")) != NULL; p += 8) {
		char *q = p + 8;
		while (isspace((unsigned char)*q))
			q++;
		if (*q != '=')
			continue;
		q++;
		while (isspace((unsigned char)*q))
			q++;
		if (*q == '\'' || *q == '"')
			q++;
		for (; *q != '\0' && !isspace((unsigned char)*q) && *q != '\'' && *q != '"' &&
		       *q != '&'; q++)
			*q = '*';
	}
	for (char *at = msg; (at = strchr(at, '@')) != NULL; at++) {
		for (char *q = at; q > msg; q--) {
			char c = q[-1];
			if (isspace((unsigned char)c) || c == '/' || c == '\'' || c == '"')
				break;
			if (c == ':') {
				for (char *m = q; m < at; m++)
					*m = '*';
				break;
			}
		}
	}
}

/* Replaces every occurrence of every known secret in msg with asterisks. */
static void
redact(const struct loader *ld, char *msg)
{
	for (size_t i = 0; i < ld->nsecrets; i++) {
		size_t n = strlen(ld->secrets[i]);
		char *p = msg;

		while ((p = strstr(p, ld->secrets[i])) != NULL) {
			memset(p, '*', n);
			p += n;
		}
	}
}

static const char *
setting_file(const struct loader *ld, const config_setting_t *s)
{
	const char *f = s != NULL ? config_setting_source_file(s) : NULL;

	return f != NULL ? f : ld->path;
}

static int
setting_line(const config_setting_t *s)
{
	return s != NULL ? (int)config_setting_source_line(s) : 0;
}

/*
 * Reports one problem.  where: the setting the problem is about (its line is
 * used); name: the setting's path as the user reads it ("pools[0].max_size").
 */
PGL_PRINTF(5, 6) static void
diag(struct loader *ld, bool is_error, const config_setting_t *where,
     const char *name, const char *fmt, ...)
{
	char problem[1024];
	char msg[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problem, sizeof(problem), fmt, ap);
	va_end(ap);
	if (where != NULL && setting_line(where) > 0)
		snprintf(msg, sizeof(msg), "%s:%d: %s: %s%s", setting_file(ld, where),
			 setting_line(where), name, is_error ? "" : "warning: ", problem);
	else
		snprintf(msg, sizeof(msg), "%s: %s: %s%s", ld->path, name,
			 is_error ? "" : "warning: ", problem);
	/* Known secrets, and anything shaped like one wherever it was written
	 * (a conninfo pasted into a pool name, libpq quoting a fragment). */
	redact(ld, msg);
	mask_shapes(msg);
	if (is_error)
		ld->nerrors++;
	if (ld->report != NULL)
		ld->report(ld->arg, is_error, msg);
}

#define error(ld, where, name, ...) diag((ld), true, (where), (name), __VA_ARGS__)
#define warning(ld, where, name, ...) diag((ld), false, (where), (name), __VA_ARGS__)

/* --- reading integers the way they are written -------------------------- */

static const char *
source_text(struct loader *ld, const char *file)
{
	for (size_t i = 0; i < ld->nsources; i++)
		if (strcmp(ld->sources[i].file, file) == 0)
			return ld->sources[i].text;
	if (ld->nsources == MAX_SOURCES)
		return NULL;

	struct source *src = &ld->sources[ld->nsources];
	FILE *f = fopen(file, "re");
	char *text = NULL;
	size_t cap = 0;

	if (f != NULL) {
		ssize_t n = getdelim(&text, &cap, '\0', f);
		if (n < 0) {
			free(text);
			text = NULL;
		}
		fclose(f);
	}
	src->file = strdup(file);
	if (src->file == NULL) {
		free(text);
		return NULL;
	}
	src->text = text;
	ld->nsources++;
	return text;
}

/*
 * Parses the integer literal at q (libconfig's syntax: decimal, or 0x hex as
 * a bit pattern, an optional L suffix).  Returns 1 with *out set, 0 when q
 * holds no literal, -1 when it does not fit in 64 bits.
 */
static int
parse_literal(const char *q, const char *eol, int64_t *out)
{
	bool neg = false;
	int base = 10;
	uint64_t v = 0;

	if (*q == '-' || *q == '+')
		neg = *q++ == '-';
	if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) {
		base = 16;
		q += 2;
	}
	if (!isxdigit((unsigned char)*q) || (base == 10 && !isdigit((unsigned char)*q)))
		return 0;
	for (; q < eol; q++) {
		int d;
		if (isdigit((unsigned char)*q))
			d = *q - '0';
		else if (base == 16 && isxdigit((unsigned char)*q))
			d = tolower((unsigned char)*q) - 'a' + 10;
		else
			break;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return -1;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (base == 16) {
		*out = (int64_t)v;
		return 1;
	}
	if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
		return -1;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 1;
}

/*
 * How many settings named like s, on the same line of the same file, come
 * before s in the file (pools written on one line share names).  -1 when s
 * is not found.
 */
static int
ordinal_on_line(const config_setting_t *node, const config_setting_t *s, int *count)
{
	if (node == s)
		return *count;
	if (node != s && config_setting_name(node) != NULL &&
	    strcmp(config_setting_name(node), config_setting_name(s)) == 0 &&
	    config_setting_source_line(node) == config_setting_source_line(s) &&
	    config_setting_source_file(node) == config_setting_source_file(s))
		(*count)++;
	if (config_setting_is_aggregate(node)) {
		int n = config_setting_length(node);
		for (int i = 0; i < n; i++) {
			int k = ordinal_on_line(config_setting_get_elem(node, (unsigned)i), s, count);
			if (k >= 0)
				return k;
		}
	}
	return -1;
}

/*
 * Finds "name = <integer>" on the setting's line and parses the literal as a
 * 64-bit number.  When a line holds several settings of that name, the k-th
 * occurrence belongs to the k-th setting; an occurrence counts only when
 * libconfig's value, wrapped to an int as libconfig 1.5 does, agrees with
 * it.  Returns 1 with *out set, 0 when no literal was found (libconfig's
 * value stands), -1 when the literal does not fit in 64 bits.
 */
static int
raw_integer(struct loader *ld, const config_setting_t *s, int64_t *out)
{
	const char *name = config_setting_name(s);
	const char *text = source_text(ld, setting_file(ld, s));
	int line = setting_line(s);
	int64_t seen = config_setting_get_int64(s);
	bool is_int = config_setting_type(s) == CONFIG_TYPE_INT;
	int count = 0;
	int want = ld->root != NULL ? ordinal_on_line(ld->root, s, &count) : -1;
	int occurrence = -1;

	if (name == NULL || text == NULL || line <= 0)
		return 0;
	for (int l = 1; l < line && text != NULL; l++) {
		text = strchr(text, '\n');
		if (text != NULL)
			text++;
	}
	if (text == NULL)
		return 0;

	const char *eol = strchr(text, '\n');
	size_t nlen = strlen(name);

	if (eol == NULL)
		eol = text + strlen(text);
	for (const char *p = text; p + nlen <= eol; p++) {
		if (strncmp(p, name, nlen) != 0)
			continue;
		if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
			continue;
		const char *q = p + nlen;
		while (q < eol && isblank((unsigned char)*q))
			q++;
		if (q == eol || (*q != '=' && *q != ':'))
			continue;
		q++;
		while (q < eol && isblank((unsigned char)*q))
			q++;

		int64_t v = 0;
		int rc = parse_literal(q, eol, &v);
		occurrence++;
		if (want >= 0 && occurrence != want)
			continue;
		if (rc < 0)
			return -1;
		if (rc > 0 && (is_int ? (int32_t)(uint32_t)(uint64_t)v == (int32_t)seen : v == seen)) {
			*out = v;
			return 1;
		}
		return 0;
	}
	return 0;
}

/* --- one setting -------------------------------------------------------- */

static const char *
type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT: return "an integer";
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "nothing";
	}
}

static bool
is_integer(const config_setting_t *s)
{
	int t = config_setting_type(s);

	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* The setting's integer value, range-checked against 64 bits. */
static bool
get_integer(struct loader *ld, const config_setting_t *s, const char *name,
	    int64_t *out)
{
	*out = config_setting_get_int64(s);
	if (raw_integer(ld, s, out) < 0) {
		error(ld, s, name, "integer out of range");
		return false;
	}
	return true;
}

/* Parses "0660", "660" or "02770" into a mode; -1 when it is not one. */
static long
parse_mode(const char *s)
{
	char *end;
	size_t len = strlen(s);

	if (len < 3 || len > 5 || strspn(s, "01234567") != len)
		return -1;
	errno = 0;
	long m = strtol(s, &end, 8);
	if (errno != 0 || *end != '\0' || m > 07777)
		return -1;
	return m;
}

static bool
parse_id(struct loader *ld, const config_setting_t *e, const char *name,
	 bool is_group, uint32_t *out)
{
	if (config_setting_type(e) == CONFIG_TYPE_STRING) {
		const char *who = config_setting_get_string(e);
		char buf[4096];

		if (is_group) {
			struct group g, *gp = NULL;
			if (getgrnam_r(who, &g, buf, sizeof(buf), &gp) == 0 && gp != NULL) {
				*out = gp->gr_gid;
				return true;
			}
			error(ld, e, name, "no such group \"%s\"", who);
		} else {
			struct passwd pw, *pwp = NULL;
			if (getpwnam_r(who, &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL) {
				*out = pwp->pw_uid;
				return true;
			}
			error(ld, e, name, "no such user \"%s\"", who);
		}
		return false;
	}
	if (!is_integer(e)) {
		error(ld, e, name, "must be a %s id or name, not %s",
		      is_group ? "group" : "user", type_name(e));
		return false;
	}
	int64_t v = config_setting_get_int64(e);
	/* (uid_t)-1 is "no id" to the kernel. */
	if (v < 0 || v >= (int64_t)UINT32_MAX) {
		error(ld, e, name, "%s id out of range", is_group ? "group" : "user");
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

static void
parse_ids(struct loader *ld, const struct config_key *k, const config_setting_t *s,
	  const char *name, void *base)
{
	int t = config_setting_type(s);

	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
		error(ld, s, name, "must be a list like [ 1000, \"www-data\" ], not %s",
		      type_name(s));
		return;
	}

	int n = config_setting_length(s);
	uint32_t *ids = n > 0 ? calloc((size_t)n, sizeof(*ids)) : NULL;
	size_t count = 0;

	if (n > 0 && ids == NULL) {
		error(ld, s, name, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		if (parse_id(ld, config_setting_get_elem(s, (unsigned)i), name,
			     k->type == KEY_GIDS, &ids[count]))
			count++;
	}
	/* uid_t and gid_t are both 32-bit unsigned on Linux. */
	_Static_assert(sizeof(uid_t) == sizeof(uint32_t) && sizeof(gid_t) == sizeof(uint32_t),
		       "uid_t and gid_t must be 32-bit");
	*(uint32_t **)((char *)base + k->offset) = ids;
	*(size_t *)((char *)base + k->count_offset) = count;
}

/*
 * Stores setting s into base (a struct broker_config or pool_config) as key k
 * says.  On a problem, reports it and leaves the default in place.
 */
static void
parse_setting(struct loader *ld, const struct config_key *k,
	      const config_setting_t *s, const char *name, void *base)
{
	void *field = (char *)base + k->offset;
	int64_t iv;
	double dv;

	switch (k->type) {
	case KEY_INT:
		if (!is_integer(s)) {
			error(ld, s, name, "must be an integer, not %s", type_name(s));
			return;
		}
		if (!get_integer(ld, s, name, &iv))
			return;
		if (iv < k->min || iv > k->max) {
			error(ld, s, name, "must be between %" PRId64 " and %" PRId64
			      " (got %" PRId64 ")", k->min, k->max, iv);
			return;
		}
		*(int *)field = (int)iv;
		return;

	case KEY_DURATION:
	case KEY_FRACTION:
		if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
			dv = config_setting_get_float(s);
		} else if (is_integer(s)) {
			if (!get_integer(ld, s, name, &iv))
				return;
			dv = (double)iv;
		} else {
			error(ld, s, name, "must be a number%s, not %s",
			      k->type == KEY_DURATION ? " of seconds" : "", type_name(s));
			return;
		}
		if (k->type == KEY_FRACTION) {
			if (!(dv >= 0.0 && dv < 1.0)) {
				error(ld, s, name, "must be at least 0 and less than 1 (got %g)", dv);
				return;
			}
		} else if (!(dv >= 0.0 && dv <= k->dmax)) {
			error(ld, s, name, "must be a duration between 0 and %.*f seconds (got %g)",
			      k->dmax == floor(k->dmax) ? 0 : 3, k->dmax, dv);
			return;
		}
		*(double *)field = dv;
		return;

	case KEY_STRING: {
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			error(ld, s, name, "must be a string, not %s", type_name(s));
			return;
		}
		const char *sv = config_setting_get_string(s);
		size_t max = k->max_len > 0 ? k->max_len : CONFIG_STRING_MAX;
		if (sv[0] == '\0') {
			error(ld, s, name, "must not be empty");
			return;
		}
		if (strlen(sv) > max) {
			error(ld, s, name, "is %zu bytes long; at most %zu", strlen(sv), max);
			return;
		}
		char *copy = strdup(sv);
		if (copy == NULL) {
			error(ld, s, name, "out of memory");
			return;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return;
	}

	case KEY_MODE: {
		if (is_integer(s)) {
			/* 0660 arrives as 660: the digits as written. */
			long long v = (long long)config_setting_get_int64(s);
			error(ld, s, name, "file modes are octal strings: write \"0%lld\" "
			      "(libconfig reads a bare 0%lld as a decimal number)", v, v);
			return;
		}
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			error(ld, s, name, "must be an octal string like \"0660\", not %s",
			      type_name(s));
			return;
		}
		long m = parse_mode(config_setting_get_string(s));
		if (m < 0) {
			error(ld, s, name, "\"%s\" is not an octal file mode like \"0660\"",
			      config_setting_get_string(s));
			return;
		}
		if ((mode_t)m & k->forbid) {
			error(ld, s, name, "\"%s\" has the bits %04o, which are refused: %s (default "
			      "\"%04o\")", config_setting_get_string(s), (unsigned)((mode_t)m & k->forbid),
			      k->forbid_why, (unsigned)k->idef);
			return;
		}
		*(mode_t *)field = (mode_t)m;
		return;
	}

	case KEY_ENUM: {
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			error(ld, s, name, "must be a string, not %s", type_name(s));
			return;
		}
		const char *sv = config_setting_get_string(s);
		for (int i = 0; k->choices[i] != NULL; i++) {
			if (strcmp(sv, k->choices[i]) == 0) {
				*(int *)field = i;
				return;
			}
		}
		char list[256] = "";
		for (int i = 0; k->choices[i] != NULL; i++) {
			strncat(list, i == 0 ? "\"" : ", \"", sizeof(list) - strlen(list) - 1);
			strncat(list, k->choices[i], sizeof(list) - strlen(list) - 1);
			strncat(list, "\"", sizeof(list) - strlen(list) - 1);
		}
		error(ld, s, name, "\"%s\" is not one of %s", sv, list);
		return;
	}

	case KEY_UIDS:
	case KEY_GIDS:
		parse_ids(ld, k, s, name, base);
		return;
	}
}

static void
apply_defaults(enum config_section section, void *base)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		void *field = (char *)base + k->offset;

		if (k->section != section)
			continue;
		switch (k->type) {
		case KEY_INT:
		case KEY_ENUM:
			*(int *)field = (int)k->idef;
			break;
		case KEY_MODE:
			*(mode_t *)field = (mode_t)k->idef;
			break;
		case KEY_DURATION:
		case KEY_FRACTION:
			*(double *)field = k->ddef;
			break;
		case KEY_STRING:
			*(char **)field = k->sdef != NULL ? strdup(k->sdef) : NULL;
			break;
		case KEY_UIDS:
		case KEY_GIDS:
			break;
		}
	}
}

/* Levenshtein distance, for "did you mean" on a misspelt key. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64];

	if (lb >= sizeof(row) / sizeof(row[0]))
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag_prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = diag_prev + cost;
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag_prev = up;
		}
	}
	return row[lb];
}

static const struct config_key *
find_key(enum config_section section, const char *name, size_t *index)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (config_keys[i].section == section &&
		    strcmp(config_keys[i].name, name) == 0) {
			*index = i;
			return &config_keys[i];
		}
	}
	return NULL;
}

static const char *
closest_key(enum config_section section, const char *name)
{
	const char *best = NULL;
	size_t best_d = 3;	/* suggest only close matches */

	for (size_t i = 0; i < NKEYS; i++) {
		if (config_keys[i].section != section)
			continue;
		size_t d = edit_distance(name, config_keys[i].name);
		if (d < best_d) {
			best_d = d;
			best = config_keys[i].name;
		}
	}
	return best;
}

/*
 * Parses every setting of group g into base.  seen[i] gets the setting of
 * config_keys[i], or stays NULL.
 */
static void
parse_group(struct loader *ld, const config_setting_t *g, enum config_section section,
	    const char *prefix, void *base, const config_setting_t **seen)
{
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *key = config_setting_name(s);
		char name[160];
		size_t idx;

		snprintf(name, sizeof(name), "%s%s", prefix, key);
		const struct config_key *k = find_key(section, key, &idx);
		if (k == NULL) {
			const char *hint = closest_key(section, key);
			if (hint != NULL)
				error(ld, s, name, "unknown setting (did you mean \"%s\"?)", hint);
			else
				error(ld, s, name, "unknown setting");
			continue;
		}
		seen[idx] = s;
		parse_setting(ld, k, s, name, base);
	}
}

/* --- checks that span settings ------------------------------------------ */

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

/*
 * Remembers the password a conninfo string carries, before libpq's parser
 * sees it, so that no message (including libpq's own, which may quote the
 * string) can show it.  Handles "password=..." and URIs' "user:secret@".
 */
static void
note_conninfo_secrets(struct loader *ld, const char *ci)
{
	for (const char *p = ci; (p = strstr(p, "password")) != NULL; p += 8) {
		const char *q = p + 8;
		while (isspace((unsigned char)*q))
			q++;
		if (*q != '=')
			continue;
		q++;
		while (isspace((unsigned char)*q))
			q++;
		size_t len;
		if (*q == '\'') {
			q++;
			len = strcspn(q, "'");
		} else {
			len = strcspn(q, " \t\n&");
		}
		loader_add_secret(ld, q, len);
	}

	/*
	 * "user:secret@" wherever it stands, well-formed URI or not (libpq
	 * quotes a string it cannot parse): between the last ':' of a token and
	 * an '@'.
	 */
	for (const char *at = ci; (at = strchr(at, '@')) != NULL; at++) {
		const char *colon = NULL;
		for (const char *q = at; q > ci; q--) {
			char c = q[-1];
			if (isspace((unsigned char)c) || c == '/' || c == '\'' || c == '"')
				break;
			if (c == ':') {
				colon = q - 1;
				break;
			}
		}
		if (colon != NULL)
			loader_add_secret(ld, colon + 1, (size_t)(at - colon - 1));
	}
}

static void
check_conninfo(struct loader *ld, struct pool_config *p, const config_setting_t *s,
	       const char *prefix)
{
	char name[160];
	char *err = NULL;

	snprintf(name, sizeof(name), "%sconninfo", prefix);
	note_conninfo_secrets(ld, p->conninfo);

	PQconninfoOption *opts = PQconninfoParse(p->conninfo, &err);
	if (opts == NULL) {
		if (err != NULL && ld->secrets_overflow) {
			error(ld, s, name, "cannot be parsed (libpq's explanation is withheld: it "
			      "could quote a password)");
			PQfreemem(err);
		} else if (err != NULL) {
			err[strcspn(err, "\n")] = '\0';
			error(ld, s, name, "cannot be parsed: %s", err);
			PQfreemem(err);
		} else {
			error(ld, s, name, "cannot be parsed: out of memory");
		}
		return;
	}

	const char *host = NULL, *hostaddr = NULL;
	bool has_password = false;

	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "password") == 0) {
			loader_add_secret(ld, o->val, strlen(o->val));
			has_password = true;
		} else if (strcmp(o->keyword, "sslmode") == 0 && strcmp(o->val, "disable") != 0) {
			error(ld, s, name, "sslmode=%s asks for TLS, but a leased socket cannot carry "
			      "TLS state (it lives in the broker's memory): use sslmode=disable over "
			      "a UNIX socket or a trusted local network", o->val);
		} else if (strcmp(o->keyword, "gssencmode") == 0 && strcmp(o->val, "disable") != 0) {
			error(ld, s, name, "gssencmode=%s asks for GSSAPI encryption, but a leased "
			      "socket cannot carry encryption state (it lives in the broker's "
			      "memory): use gssencmode=disable", o->val);
		} else if (strcmp(o->keyword, "requiressl") == 0 && strcmp(o->val, "0") != 0) {
			error(ld, s, name, "requiressl asks for TLS, but a leased socket cannot carry "
			      "TLS state (it lives in the broker's memory)");
		} else if (strcmp(o->keyword, "replication") == 0) {
			error(ld, s, name, "replication connections cannot be pooled");
		} else if (strcmp(o->keyword, "connect_timeout") == 0) {
			warning(ld, s, name, "connect_timeout in the conninfo is ignored; the pool's "
				"connect_timeout setting applies");
		} else if (strcmp(o->keyword, "host") == 0) {
			host = o->val;
		} else if (strcmp(o->keyword, "hostaddr") == 0) {
			hostaddr = o->val;
		}
	}

	if (has_password && p->password_file != NULL)
		error(ld, s, name, "has a password and the pool has a password_file too: keep one");
	else if (has_password)
		warning(ld, s, name, "carries a password; a password_file readable only by the "
			"broker keeps it out of the configuration file");

	if (host != NULL && (hostaddr == NULL || hostaddr[0] == '\0')) {
		for (const char *h = host; *h != '\0';) {
			size_t len = strcspn(h, ",");
			if (!host_is_literal(h, len))
				warning(ld, s, name, "host \"%.*s\" is a name: libpq resolves it with a "
					"blocking getaddrinfo() inside the broker's event loop; give an "
					"address, a socket directory, or hostaddr", (int)len, h);
			h += len;
			if (*h == ',')
				h++;
		}
	}
	PQconninfoFree(opts);
}

static void
check_password_file(struct loader *ld, struct pool_config *p, const config_setting_t *s,
		    const char *prefix)
{
	char name[160];
	struct stat st;

	snprintf(name, sizeof(name), "%spassword_file", prefix);
	FILE *f = fopen(p->password_file, "re");
	if (f != NULL)
		setvbuf(f, NULL, _IONBF, 0);	/* read() below; stdio buffers nothing */
	if (f == NULL) {
		error(ld, s, name, "cannot open \"%s\": %s", p->password_file, strerror(errno));
		return;
	}
	if (fstat(fileno(f), &st) != 0) {
		error(ld, s, name, "cannot stat \"%s\": %s", p->password_file, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		error(ld, s, name, "\"%s\" is not a regular file", p->password_file);
		goto done;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		error(ld, s, name, "\"%s\" has mode %04o: it must not be accessible by group or "
		      "others (chmod 0600)", p->password_file, (unsigned)(st.st_mode & 07777));
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
		error(ld, s, name, "\"%s\" is empty: its first line must be the password",
		      p->password_file);
	} else if (strlen(buf) > CONFIG_STRING_MAX) {
		error(ld, s, name, "\"%s\": the password is longer than %d bytes",
		      p->password_file, CONFIG_STRING_MAX);
	} else {
		loader_add_secret(ld, buf, strlen(buf));
		if ((p->password = strdup(buf)) == NULL)
			error(ld, s, name, "out of memory");
	}
	explicit_bzero(buf, sizeof(buf));
done:
	fclose(f);
}

static bool
pool_name_ok(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > CONFIG_POOL_NAME_MAX)
		return false;
	for (const char *c = n; *c != '\0'; c++)
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.')
			return false;
	return true;
}

static const config_setting_t *
seen_key(const config_setting_t **seen, const char *key)
{
	/* A name may be a key of both sections (allowed_uids): only the
	 * section being checked has marks. */
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].name, key) == 0 && seen[i] != NULL)
			return seen[i];
	return NULL;
}

static void
check_pool(struct loader *ld, struct config *cfg, size_t idx,
	   const config_setting_t *g, const config_setting_t **seen)
{
	struct pool_config *p = &cfg->pools[idx];
	char prefix[64];
	char name[160];

	snprintf(prefix, sizeof(prefix), "pools[%zu].", idx);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->section == CONFIG_SECTION_POOL && k->required && seen[i] == NULL) {
			snprintf(name, sizeof(name), "%s%s", prefix, k->name);
			error(ld, g, name, "missing (every pool needs one)");
		}
	}

	/* Its own lists replace the broker's for this pool; empty ones let nobody in. */
	const config_setting_t *uids = seen_key(seen, "allowed_uids");
	const config_setting_t *gids = seen_key(seen, "allowed_gids");
	p->restricted = uids != NULL || gids != NULL;
	if (p->restricted && p->n_allowed_uids == 0 && p->n_allowed_gids == 0) {
		snprintf(name, sizeof(name), "%sallowed_%s", prefix, uids != NULL ? "uids" : "gids");
		warning(ld, uids != NULL ? uids : gids, name, "the pool's lists are empty: nobody "
			"may lease from it");
	}

	if (p->name != NULL) {
		snprintf(name, sizeof(name), "%sname", prefix);
		if (!pool_name_ok(p->name))
			error(ld, seen_key(seen, "name"), name, "\"%s\" is not a pool name: 1 to %d "
			      "letters, digits, '_', '-' or '.'", p->name, CONFIG_POOL_NAME_MAX);
		for (size_t j = 0; j < idx; j++)
			if (cfg->pools[j].name != NULL && strcmp(cfg->pools[j].name, p->name) == 0)
				error(ld, seen_key(seen, "name"), name, "pool \"%s\" is already defined "
				      "at line %d", p->name, cfg->pools[j].line);
	}

	if (p->password_file != NULL)
		check_password_file(ld, p, seen_key(seen, "password_file"), prefix);
	if (p->conninfo != NULL)
		check_conninfo(ld, p, seen_key(seen, "conninfo"), prefix);

	if (seen_key(seen, "min_size") == NULL && p->min_size > p->max_size)
		p->min_size = p->max_size;
	if (p->min_size > p->max_size) {
		snprintf(name, sizeof(name), "%smin_size", prefix);
		error(ld, seen_key(seen, "min_size"), name, "%d is larger than max_size %d",
		      p->min_size, p->max_size);
	}
	if (p->initial_backoff > p->max_backoff) {
		const config_setting_t *where = seen_key(seen, "initial_backoff");
		snprintf(name, sizeof(name), "%s%s", prefix,
			 where != NULL ? "initial_backoff" : "max_backoff");
		error(ld, where != NULL ? where : seen_key(seen, "max_backoff"), name,
		      "initial_backoff %g is larger than max_backoff %g",
		      p->initial_backoff, p->max_backoff);
	}
	if (p->initial_backoff == 0) {
		snprintf(name, sizeof(name), "%sinitial_backoff", prefix);
		error(ld, seen_key(seen, "initial_backoff"), name, "must be greater than 0: 0 would "
		      "retry a failing server in a busy loop");
	}
}

static void
check_broker(struct loader *ld, struct config *cfg, const config_setting_t **seen)
{
	struct broker_config *b = &cfg->broker;
	struct sockaddr_un sun;

	if (strlen(b->socket) >= sizeof(sun.sun_path))
		error(ld, seen_key(seen, "socket"), "broker.socket", "path is %zu bytes long; "
		      "a UNIX socket path holds at most %zu", strlen(b->socket),
		      sizeof(sun.sun_path) - 1);

	if (b->socket_group != NULL) {
		char buf[4096], *end;
		struct group g, *gp = NULL;
		unsigned long id = strtoul(b->socket_group, &end, 10);

		if (*end == '\0' && end != b->socket_group && id < UINT32_MAX)
			b->socket_gid = (gid_t)id;
		else if (getgrnam_r(b->socket_group, &g, buf, sizeof(buf), &gp) == 0 && gp != NULL)
			b->socket_gid = gp->gr_gid;
		else
			error(ld, seen_key(seen, "socket_group"), "broker.socket_group",
			      "no such group \"%s\"", b->socket_group);
	}

	size_t len = strlen(b->shm_name);
	if (b->shm_name[0] != '/' || len < 2 || len > 200 ||
	    strspn(b->shm_name + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789._-") != len - 1)
		error(ld, seen_key(seen, "shm_name"), "broker.shm_name", "\"%s\" is not a shared "
		      "memory name: a '/' followed by up to 199 letters, digits, '.', '_' or '-'",
		      b->shm_name);

	int64_t total = 0;
	for (size_t i = 0; i < cfg->npools; i++)
		total += cfg->pools[i].max_size;
	if (b->max_total_slots == 0) {
		b->max_total_slots = (int)(total * 2 > 1000000 ? 1000000 : total * 2);
		if (b->max_total_slots < total)
			b->max_total_slots = (int)total;
	} else if (b->max_total_slots < total) {
		error(ld, seen_key(seen, "max_total_slots"), "broker.max_total_slots",
		      "%d is less than the pools' max_size total of %" PRId64,
		      b->max_total_slots, total);
	}
}

/* --- loading ------------------------------------------------------------ */

static void
free_pool(struct pool_config *p)
{
	free(p->name);
	if (p->conninfo != NULL)	/* it may carry a password */
		explicit_bzero(p->conninfo, strlen(p->conninfo));
	free(p->conninfo);
	free(p->password_file);
	if (p->password != NULL) {
		explicit_bzero(p->password, strlen(p->password));
		free(p->password);
	}
	free(p->health_query);
	free(p->reset_query);
	free(p->allowed_uids);
	free(p->allowed_gids);
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->npools; i++)
		free_pool(&cfg->pools[i]);
	free(cfg->pools);
	free(cfg->broker.socket);
	free(cfg->broker.socket_group);
	free(cfg->broker.shm_name);
	free(cfg->broker.allowed_uids);
	free(cfg->broker.allowed_gids);
	free(cfg->path);
	free(cfg);
}

static void
load_pools(struct loader *ld, struct config *cfg, const config_setting_t *pools)
{
	if (config_setting_type(pools) != CONFIG_TYPE_LIST) {
		error(ld, pools, "pools", "must be a list of groups: pools = ( { name = ...; "
		      "conninfo = ...; } ), not %s", type_name(pools));
		return;
	}

	int n = config_setting_length(pools);
	if (n == 0) {
		error(ld, pools, "pools", "at least one pool is needed");
		return;
	}
	cfg->pools = calloc((size_t)n, sizeof(*cfg->pools));
	if (cfg->pools == NULL) {
		error(ld, pools, "pools", "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(pools, (unsigned)i);
		struct pool_config *p = &cfg->pools[cfg->npools];
		const config_setting_t *seen[NKEYS] = { 0 };
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "pools[%d].", i);
		apply_defaults(CONFIG_SECTION_POOL, p);
		p->line = setting_line(g);
		cfg->npools++;
		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			prefix[strlen(prefix) - 1] = '\0';
			error(ld, g, prefix, "must be a group { name = ...; conninfo = ...; }, not %s",
			      type_name(g));
			continue;
		}
		parse_group(ld, g, CONFIG_SECTION_POOL, prefix, p, seen);
		check_pool(ld, cfg, (size_t)i, g, seen);
	}
}

struct config *
config_load(const char *path, config_report_fn *report, void *arg, int *nerrors)
{
	struct loader ld = { .path = path, .report = report, .arg = arg };
	struct config *cfg = calloc(1, sizeof(*cfg));
	const config_setting_t *broker_seen[NKEYS] = { 0 };
	config_t lc;

	config_init(&lc);
	if (cfg == NULL || (cfg->path = strdup(path)) == NULL) {
		error(&ld, NULL, "file", "out of memory");
		goto out;
	}
	apply_defaults(CONFIG_SECTION_BROKER, &cfg->broker);
	cfg->broker.log_level = LOG_LEVEL_INFO;

	/* libconfig says "file I/O error" only: open it ourselves for errno. */
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		error(&ld, NULL, "file", "cannot open: %s", strerror(errno));
		goto out;
	}
	fclose(f);
	if (!config_read_file(&lc, path)) {
		const char *file = config_error_file(&lc);
		char where[PATH_MAX + 32];

		snprintf(where, sizeof(where), "%s:%d", file != NULL ? file : path,
			 config_error_line(&lc));
		ld.nerrors++;
		if (report != NULL) {
			char msg[PATH_MAX + 300];
			snprintf(msg, sizeof(msg), "%s: syntax: %s", where, config_error_text(&lc));
			report(arg, true, msg);
		}
		goto out;
	}

	const config_setting_t *root = config_root_setting(&lc);
	const config_setting_t *pools = NULL;

	ld.root = root;
	int n = config_setting_length(root);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *key = config_setting_name(s);

		if (strcmp(key, "broker") == 0) {
			if (config_setting_type(s) != CONFIG_TYPE_GROUP)
				error(&ld, s, "broker", "must be a group { ... }, not %s", type_name(s));
			else
				parse_group(&ld, s, CONFIG_SECTION_BROKER, "broker.", &cfg->broker,
					    broker_seen);
		} else if (strcmp(key, "pools") == 0) {
			pools = s;
		} else {
			error(&ld, s, key, "unknown setting (the file has \"broker\" and \"pools\")");
		}
	}
	if (pools == NULL)
		error(&ld, NULL, "pools", "missing: at least one pool is needed");
	else
		load_pools(&ld, cfg, pools);
	check_broker(&ld, cfg, broker_seen);

out:
	config_destroy(&lc);
	for (size_t i = 0; i < ld.nsecrets; i++) {
		explicit_bzero(ld.secrets[i], strlen(ld.secrets[i]));
		free(ld.secrets[i]);
	}
	for (size_t i = 0; i < ld.nsources; i++) {
		free(ld.sources[i].file);
		free(ld.sources[i].text);
	}
	if (nerrors != NULL)
		*nerrors = ld.nerrors;
	if (ld.nerrors > 0) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* --- helpers for the broker --------------------------------------------- */

const struct pool_config *
config_find_pool(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->npools; i++)
		if (strcmp(cfg->pools[i].name, name) == 0)
			return &cfg->pools[i];
	return NULL;
}

int64_t
config_seconds_to_ms(double seconds)
{
	if (!(seconds > 0))
		return 0;
	if (seconds >= (double)INT64_MAX / 1000.0)
		return INT64_MAX;
	int64_t ms = llround(seconds * 1000.0);
	return ms > 0 ? ms : 1;
}

int
config_backend_options(const struct pool_config *p, bool with_check_interval,
		       char *buf, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(p->conninfo, NULL);
	const char *base = NULL;
	size_t used = 0;
	int n;

	if (len == 0)
		return -1;
	buf[0] = '\0';
	if (opts != NULL)
		for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
			if (strcmp(o->keyword, "options") == 0 && o->val != NULL)
				base = o->val;

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
		       config_seconds_to_ms(p->statement_timeout));
	if (with_check_interval && p->connection_check_interval > 0)
		APPEND("%s-c client_connection_check_interval=%" PRId64, used > 0 ? " " : "",
		       config_seconds_to_ms(p->connection_check_interval));
#undef APPEND
	PQconninfoFree(opts);
	return (int)used;
toolong:
	PQconninfoFree(opts);
	buf[0] = '\0';
	return -1;
}

void
config_conninfo_masked(const struct pool_config *p, char *buf, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(p->conninfo, NULL);
	size_t used = 0;

	if (len == 0)
		return;
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
	PQconninfoFree(opts);
}
