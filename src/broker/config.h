/*
 * config.h - the broker's configuration: libconfig file -> validated struct.
 *
 * One table (config.c: config_keys[]) declares every setting: its section,
 * type, default and bounds.  The loader, the validation, the sample file and
 * the man page are all checked against that table.
 */
#ifndef PGL_CONFIG_H
#define PGL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_POOL_NAME_MAX 63		/* bytes, as in the control protocol */
#define CONFIG_QUERY_MAX 1024		/* health_query, reset_query: bytes */
#define CONFIG_STRING_MAX 4096		/* other strings, and a password: bytes */
#define CONFIG_DEFAULT_PATH SYSCONFDIR "/pglease/pglease.conf"

enum lease_timeout_action {
	LEASE_TIMEOUT_WARN = 0,
	LEASE_TIMEOUT_TERMINATE,
};

/* What ends a reset and proves the stream is the broker's (exchange.c). */
enum reset_check {
	RESET_CHECK_FUNCTION = 0,	/* a fast-path FunctionCall echoing the nonce */
	RESET_CHECK_QUERY,		/* SELECT '<nonce>' */
};

enum config_log_target {
	CONFIG_LOG_STDERR = 0,
	CONFIG_LOG_SYSLOG,
	CONFIG_LOG_FILE,
};

struct conninfo_params;

struct pool_config {
	char *name;
	char *conninfo;
	char *password_file;		/* NULL when not set */
	char *password;			/* read from password_file; a secret */
	/* What its backends connect with, built at load (conninfo.h); secret too */
	struct conninfo_params *connect;
	int min_size;
	int max_size;
	double connect_timeout;		/* seconds, 0 = no deadline */
	double statement_timeout;	/* seconds, 0 = server default */
	double acquire_timeout;		/* seconds, 0 = idle slot only */
	double validate_after;		/* seconds, 0 = validate every borrow */
	char *health_query;
	double health_check_interval;	/* seconds, 0 = off */
	double idle_timeout;		/* seconds, 0 = off */
	double max_lifetime;		/* seconds, 0 = off */
	char *reset_query;
	int reset_check;		/* enum reset_check */
	int target;			/* enum target: the conninfo's target_session_attrs
					 * (or PGTARGETSESSIONATTRS), set by conninfo_check() */
	double lease_timeout;		/* seconds, 0 = off */
	int lease_timeout_action;	/* enum lease_timeout_action */
	double connection_check_interval; /* seconds, 0 = off */
	double initial_backoff;		/* seconds */
	double max_backoff;		/* seconds */
	double jitter;			/* fraction in [0, 1) */
	/* Who may lease from this pool; without either key, the broker's lists */
	bool restricted;		/* allowed_uids or allowed_gids given */
	uid_t *allowed_uids;
	size_t n_allowed_uids;
	gid_t *allowed_gids;
	size_t n_allowed_gids;
	int line;			/* where the pool starts in the file */
};

struct broker_config {
	char *socket;
	mode_t socket_mode;
	char *socket_group;		/* NULL: the broker's own group */
	gid_t socket_gid;		/* socket_group resolved */
	char *shm_name;
	mode_t shm_mode;
	char *shm_group;		/* NULL: the broker's own group */
	gid_t shm_gid;			/* shm_group resolved; (gid_t)-1 when none */
	int log_level;			/* enum log_level */
	char *log_file;			/* log_target "file": its path; NULL otherwise */
	int syslog_facility;		/* an index into config_syslog_facilities[] */
	char *syslog_ident;
	char *pid_file;			/* NULL: none */
	int log_target;			/* enum config_log_target */
	uid_t *allowed_uids;		/* empty: the broker's own uid only */
	size_t n_allowed_uids;
	gid_t *allowed_gids;
	size_t n_allowed_gids;
	uid_t *admin_uids;		/* pglease-ctl; both empty: root and the broker's uid */
	size_t n_admin_uids;
	gid_t *admin_gids;
	size_t n_admin_gids;
	double shutdown_timeout;	/* seconds, 0 = close leases at once */
	int max_clients;
	int max_leases_per_client;
	int max_total_slots;		/* resolved: never 0 after loading */
	/* Where some settings were written (0: not in the file), for --check-config */
	int socket_line, shm_name_line, log_file_line, pid_file_line, max_clients_line;
};

struct config {
	char *path;
	struct broker_config broker;
	struct pool_config *pools;
	size_t npools;
};

/*
 * Receives each diagnostic, already formatted as "FILE:LINE: setting: problem"
 * (warnings carry "warning: " before the problem).  Never sees a secret.
 */
typedef void config_report_fn(void *arg, bool is_error, const char *msg);

/*
 * Reads and validates path.  Every problem found is passed to report (which
 * may be NULL); loading does not stop at the first error.  Returns the config,
 * owned by the caller (config_free), or NULL when there was any error; the
 * number of errors is stored in *nerrors when nerrors is not NULL.
 */
struct config *config_load(const char *path, config_report_fn *report,
			   void *arg, int *nerrors)
	__attribute__((warn_unused_result));

void config_free(struct config *cfg);

/* The syslog facilities by name, as syslog_facility's index reads them; NULL ends it. */
extern const char *const config_syslog_facilities[];

struct log_options;

/* The logger's settings of cfg (pointers into cfg). */
void config_log_options(const struct config *cfg, struct log_options *o);

/* The pool of that name, or NULL. */
const struct pool_config *config_find_pool(const struct config *cfg,
					   const char *name);


/* --- the schema, for documentation checks --- */

enum config_section {
	CONFIG_SECTION_BROKER,
	CONFIG_SECTION_POOL,
};

/* Name and section of the i-th setting; false past the last one. */
bool config_schema_key(size_t i, const char **name, enum config_section *section);

#endif
