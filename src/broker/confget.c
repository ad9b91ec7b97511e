/*
 * confget.c - a loaded configuration as the broker uses it: the logging
 * options, a pool by name; and freeing one (passwords wiped first).
 */
#include "autoconf.h"

#include "broker/config.h"
#include "broker/conninfo.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

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
	conninfo_free(p);
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
	free(cfg->broker.log_file);
	free(cfg->broker.syslog_ident);
	free(cfg->broker.pid_file);
	free(cfg->broker.shm_group);
	free(cfg->broker.allowed_uids);
	free(cfg->broker.allowed_gids);
	free(cfg->broker.admin_uids);
	free(cfg->broker.admin_gids);
	free(cfg->path);
	free(cfg);
}

const char *const config_syslog_facilities[] = { "daemon", "user", "local0", "local1", "local2",
						 "local3", "local4", "local5", "local6", "local7",
						 NULL };

void
config_log_options(const struct config *cfg, struct log_options *o)
{
	const struct broker_config *b = &cfg->broker;

	o->ident = b->syslog_ident;
	o->level = (enum log_level)b->log_level;
	o->target = b->log_target == CONFIG_LOG_SYSLOG ? LOG_TARGET_SYSLOG :
		    b->log_target == CONFIG_LOG_FILE ? LOG_TARGET_FILE : LOG_TARGET_STDERR;
	o->facility = log_facility_from_name(config_syslog_facilities[b->syslog_facility]);
	o->file = b->log_file;
}

const struct pool_config *
config_find_pool(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->npools; i++)
		if (strcmp(cfg->pools[i].name, name) == 0)
			return &cfg->pools[i];
	return NULL;
}

