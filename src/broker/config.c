/*
 * config.c - load and validate the broker's libconfig file.
 *
 * The loader walks the file, not the schema: every setting it meets must be in
 * config_keys[], so a misspelt key is an error instead of a silent default.
 * It reports every problem it finds, each as "FILE:LINE: setting: problem"
 * (confdiag.c), and returns a config only when there was none.
 *
 * Two libconfig 1.5 traps are handled on the way: an integer literal too large
 * for an int is silently wrapped, so integers are re-read from the source
 * (confsrc.c) and range-checked as 64-bit; and 0660 is read as decimal, so
 * file modes are octal strings (confkey.c).
 */
#include "autoconf.h"

#include "broker/config.h"
#include "broker/confdiag.h"
#include "broker/confkey.h"
#include "broker/confsrc.h"
#include "broker/conninfo.h"
#include "common/defaults.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* --- the schema --------------------------------------------------------- */

static const char *const log_level_choices[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_target_choices[] = { "stderr", "syslog", "file", NULL };
static const char *const lease_action_choices[] = { "warn", "terminate", NULL };
static const char *const reset_check_choices[] = { "function", "query", NULL };

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
	{ "shm_group", B(shm_group), STR(NULL) },
	{ "log_level", B(log_level), .type = KEY_ENUM, .choices = log_level_choices,
	  .idef = LOG_LEVEL_INFO },
	{ "log_file", B(log_file), STR(NULL) },
	{ "syslog_facility", B(syslog_facility), .type = KEY_ENUM,
	  .choices = config_syslog_facilities, .idef = 0 },
	{ "syslog_ident", B(syslog_ident), STR("pgleased"), .max_len = 48 },
	{ "pid_file", B(pid_file), STR(NULL) },
	{ "log_target", B(log_target), .type = KEY_ENUM, .choices = log_target_choices,
	  .idef = CONFIG_LOG_STDERR },
	{ "allowed_uids", B(allowed_uids), .type = KEY_UIDS,
	  .count_offset = offsetof(struct broker_config, n_allowed_uids) },
	{ "allowed_gids", B(allowed_gids), .type = KEY_GIDS,
	  .count_offset = offsetof(struct broker_config, n_allowed_gids) },
	/* who may run pglease-ctl's commands; both empty: root and the broker's uid */
	{ "admin_uids", B(admin_uids), .type = KEY_UIDS,
	  .count_offset = offsetof(struct broker_config, n_admin_uids) },
	{ "admin_gids", B(admin_gids), .type = KEY_GIDS,
	  .count_offset = offsetof(struct broker_config, n_admin_gids) },
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
	{ "reset_check", P(reset_check), .type = KEY_ENUM, .choices = reset_check_choices,
	  .idef = RESET_CHECK_FUNCTION },
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

/* --- the walk ----------------------------------------------------------- */

struct loader {
	struct confdiag diag;		/* counts errors, masks secrets */
	struct confsrc src;		/* integers as written */
};

/* Every problem is reported through confdiag.c, which masks secrets. */
#define error(ld, ...) confdiag_error(&(ld)->diag, __VA_ARGS__)
#define warning(ld, ...) confdiag_warning(&(ld)->diag, __VA_ARGS__)

static void
apply_defaults(enum config_section section, void *base)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (config_keys[i].section == section)
			confkey_default(&config_keys[i], base);
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
		confkey_parse(&ld->diag, &ld->src, k, s, name, base);
	}
}

/* --- checks that span settings ------------------------------------------ */

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
		conninfo_check_password_file(&ld->diag, p, seen_key(seen, "password_file"), prefix);
	if (p->conninfo != NULL)
		conninfo_check(&ld->diag, p, seen_key(seen, "conninfo"), prefix);

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

/*
 * shm_group: the group must exist, shm_mode must let it read, and the
 * broker, that is the user who loads this file, must be able to give the
 * segment to it: root, or a member of it.
 */
static void
check_shm_group(struct loader *ld, struct broker_config *b, const config_setting_t *where)
{
	if (!confkey_group(b->shm_group, &b->shm_gid)) {
		error(ld, where, "broker.shm_group", "no such group \"%s\"", b->shm_group);
		return;
	}
	if ((b->shm_mode & 0040) == 0)
		error(ld, where, "broker.shm_group", "shm_mode %04o gives the group no read "
		      "permission: the group could not read the segment (shm_mode = \"0640\")",
		      (unsigned)b->shm_mode);
	if (!confkey_may_chgrp(b->shm_gid))
		error(ld, where, "broker.shm_group", "user %u is neither root nor a member of "
		      "group \"%s\" (%u): it cannot give the segment to that group",
		      (unsigned)geteuid(), b->shm_group, (unsigned)b->shm_gid);
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

	if (b->socket_group != NULL && !confkey_group(b->socket_group, &b->socket_gid))
		error(ld, seen_key(seen, "socket_group"), "broker.socket_group",
		      "no such group \"%s\"", b->socket_group);
	b->shm_gid = (gid_t)-1;
	if (b->shm_group != NULL)
		check_shm_group(ld, b, seen_key(seen, "shm_group"));

	size_t len = strlen(b->shm_name);
	if (b->shm_name[0] != '/' || len < 2 || len > 200 ||
	    strspn(b->shm_name + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789._-") != len - 1)
		error(ld, seen_key(seen, "shm_name"), "broker.shm_name", "\"%s\" is not a shared "
		      "memory name: a '/' followed by up to 199 letters, digits, '.', '_' or '-'",
		      b->shm_name);

	if (b->log_target == CONFIG_LOG_FILE && b->log_file == NULL)
		error(ld, seen_key(seen, "log_target"), "broker.log_target", "\"file\" needs "
		      "log_file, the path to append to");
	if (b->log_file != NULL && b->log_file[0] != '/')
		error(ld, seen_key(seen, "log_file"), "broker.log_file", "\"%s\" is not an "
		      "absolute path", b->log_file);
	else if (b->log_file != NULL && b->log_target != CONFIG_LOG_FILE)
		warning(ld, seen_key(seen, "log_file"), "broker.log_file", "unused: log_target "
			"is not \"file\"");
	if (b->pid_file != NULL && b->pid_file[0] != '/')
		error(ld, seen_key(seen, "pid_file"), "broker.pid_file", "\"%s\" is not an "
		      "absolute path", b->pid_file);
	if (b->syslog_ident[0] == '\0')
		error(ld, seen_key(seen, "syslog_ident"), "broker.syslog_ident", "is empty");
	b->socket_line = confdiag_line(seen_key(seen, "socket"));
	b->shm_name_line = confdiag_line(seen_key(seen, "shm_name"));
	b->log_file_line = confdiag_line(seen_key(seen, "log_file"));
	b->pid_file_line = confdiag_line(seen_key(seen, "pid_file"));
	b->max_clients_line = confdiag_line(seen_key(seen, "max_clients"));

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
load_pools(struct loader *ld, struct config *cfg, const config_setting_t *pools)
{
	if (config_setting_type(pools) != CONFIG_TYPE_LIST) {
		error(ld, pools, "pools", "must be a list of groups: pools = ( { name = ...; "
		      "conninfo = ...; } ), not %s", confkey_type_name(pools));
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
		p->line = confdiag_line(g);
		cfg->npools++;
		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			prefix[strlen(prefix) - 1] = '\0';
			error(ld, g, prefix, "must be a group { name = ...; conninfo = ...; }, not %s",
			      confkey_type_name(g));
			continue;
		}
		parse_group(ld, g, CONFIG_SECTION_POOL, prefix, p, seen);
		check_pool(ld, cfg, (size_t)i, g, seen);
	}
}

struct config *
config_load(const char *path, config_report_fn *report, void *arg, int *nerrors)
{
	struct loader ld = { .diag = { .path = path, .report = report, .arg = arg } };
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
		ld.diag.nerrors++;
		if (report != NULL) {
			char msg[PATH_MAX + 300];
			snprintf(msg, sizeof(msg), "%s: syntax: %s", where, config_error_text(&lc));
			report(arg, true, msg);
		}
		goto out;
	}

	const config_setting_t *root = config_root_setting(&lc);
	const config_setting_t *pools = NULL;

	ld.src.root = root;
	int n = config_setting_length(root);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *key = config_setting_name(s);

		if (strcmp(key, "broker") == 0) {
			if (config_setting_type(s) != CONFIG_TYPE_GROUP)
				error(&ld, s, "broker", "must be a group { ... }, not %s",
				      confkey_type_name(s));
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
	secret_clear(&ld.diag.secrets);
	confsrc_free(&ld.src);
	if (nerrors != NULL)
		*nerrors = ld.diag.nerrors;
	if (ld.diag.nerrors > 0) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}
