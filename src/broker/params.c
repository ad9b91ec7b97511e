/*
 * params.c - the server parameters a GRANT carries.
 *
 * libpq reports them at startup; afterwards the broker reads ParameterStatus
 * messages itself (a reset's DISCARD ALL, a SET in reset_query, a change
 * announced to an idle backend).
 */
#include "autoconf.h"

#include "broker/params.h"
#include "broker/pool.h"
#include "broker/target.h"
#include "common/log.h"

#include <string.h>

/*
 * The server parameters a GRANT carries: what PostgreSQL 15 reports at
 * startup, plus what later versions add.  libpq exposes a parameter only by
 * name, so this table is the one place that names them.
 */
static const char *const grant_params[] = {
	"server_version", "server_encoding", "client_encoding", "application_name",
	"default_transaction_read_only", "in_hot_standby", "is_superuser",
	"session_authorization", "DateStyle", "IntervalStyle", "TimeZone",
	"integer_datetimes", "standard_conforming_strings",
	"scram_iterations",	/* 16 */
	"search_path",		/* 18 */
};
#define NPARAMS (sizeof(grant_params) / sizeof(grant_params[0]))

static bool
known_param(const char *name)
{
	for (size_t i = 0; i < NPARAMS; i++)
		if (strcmp(grant_params[i], name) == 0)
			return true;
	return false;
}

/*
 * What the server says of itself, kept in flags for the one branch a lease
 * takes (slot_lendable()): whether it still serves the pool's target.
 */
static void
server_state(struct slot *slot, const char *name, const char *value)
{
	if (strcmp(name, "in_hot_standby") == 0) {
		slot->hot_standby = strcmp(value, "on") == 0;
		slot->reports_state = true;
	} else if (strcmp(name, "default_transaction_read_only") == 0) {
		slot->read_only = strcmp(value, "on") == 0;
	} else {
		return;
	}
	/* A server that does not report in_hot_standby (before 14) is as libpq let it through. */
	slot->unfit = slot->reports_state && !target_fits(slot->pool->cfg->target, (struct target_state){
		.hot_standby = slot->hot_standby, .read_only = slot->read_only });
}

void
params_server_state(struct slot *slot, bool in_recovery, bool read_only)
{
	slot->hot_standby = in_recovery;
	slot->read_only = read_only;
	slot->unfit = !target_fits(slot->pool->cfg->target, (struct target_state){
		.hot_standby = slot->hot_standby, .read_only = slot->read_only });
}

/* Sets name to value in the slot's parameter block (rebuilt in table order). */
static void
param_set(struct slot *slot, const char *name, const char *value)
{
	char block[WIRE_PARAMS_MAX];
	size_t len = 0;

	if (!known_param(name))
		return;
	for (size_t i = 0; i < NPARAMS; i++) {
		const char *v = strcmp(grant_params[i], name) == 0 ? value :
				wire_param(slot->params, slot->params_len, grant_params[i]);
		if (v == NULL)
			continue;
		size_t nl = strlen(grant_params[i]) + 1, vl = strlen(v) + 1;
		if (len + nl + vl > sizeof(block)) {
			log_warnx("pool=%s slot=%u: server parameters exceed %d bytes; %s dropped",
				  slot->pool->cfg->name, slot->index, WIRE_PARAMS_MAX, grant_params[i]);
			continue;
		}
		memcpy(block + len, grant_params[i], nl);
		memcpy(block + len + nl, v, vl);
		len += nl + vl;
	}
	memcpy(slot->params, block, len);
	slot->params_len = (uint16_t)len;
	server_state(slot, name, value);
}

void
params_message(struct slot *slot, const struct pgproto_msg *m)
{
	size_t next;
	const char *name = pgproto_cstring(m, &next);

	if (name == NULL || next >= m->len || m->body[m->len - 1] != '\0')
		return;
	param_set(slot, name, (const char *)m->body + next);
}

void
params_from_libpq(struct slot *slot)
{
	slot->params_len = 0;
	slot->hot_standby = slot->read_only = slot->unfit = slot->reports_state = false;
	for (size_t i = 0; i < NPARAMS; i++) {
		const char *v = PQparameterStatus(slot->conn, grant_params[i]);
		if (v != NULL)
			param_set(slot, grant_params[i], v);
	}
}
