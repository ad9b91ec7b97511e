/*
 * params.c - the program's connection parameters.
 *
 * Whatever the program passed (keyword arrays, a conninfo string or URI,
 * PQsetdbLogin's arguments) is kept as keyword/value pairs for libpq to
 * resolve again towards the shim's private listener: all of it but what
 * leads to a server.
 */
#include "autoconf.h"

#include "preload/params.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

void
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

void
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

bool
params_is_conninfo(const char *s)
{
	return strchr(s, '=') != NULL || strncmp(s, "postgresql://", 13) == 0 ||
	       strncmp(s, "postgres://", 11) == 0;
}

bool
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
