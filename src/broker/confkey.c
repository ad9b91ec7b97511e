/*
 * confkey.c - one setting of the configuration: its value checked against
 * its key's type and bounds, and stored into the struct it belongs to.
 */
#include "autoconf.h"

#include "broker/confkey.h"
#include "broker/confsrc.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <libconfig.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *
confkey_type_name(const config_setting_t *s)
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
get_integer(struct confdiag *d, struct confsrc *src, const config_setting_t *s,
	    const char *name, int64_t *out)
{
	*out = config_setting_get_int64(s);
	if (confsrc_integer(src, s, confdiag_file(d, s), out) < 0) {
		confdiag_error(d, s, name, "integer out of range");
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
parse_id(struct confdiag *d, const config_setting_t *e, const char *name,
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
			confdiag_error(d, e, name, "no such group \"%s\"", who);
		} else {
			struct passwd pw, *pwp = NULL;
			if (getpwnam_r(who, &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL) {
				*out = pwp->pw_uid;
				return true;
			}
			confdiag_error(d, e, name, "no such user \"%s\"", who);
		}
		return false;
	}
	if (!is_integer(e)) {
		confdiag_error(d, e, name, "must be a %s id or name, not %s",
			       is_group ? "group" : "user", confkey_type_name(e));
		return false;
	}
	int64_t v = config_setting_get_int64(e);
	/* (uid_t)-1 is "no id" to the kernel. */
	if (v < 0 || v >= (int64_t)UINT32_MAX) {
		confdiag_error(d, e, name, "%s id out of range", is_group ? "group" : "user");
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

static void
parse_ids(struct confdiag *d, const struct config_key *k, const config_setting_t *s,
	  const char *name, void *base)
{
	int t = config_setting_type(s);

	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
		confdiag_error(d, s, name, "must be a list like [ 1000, \"www-data\" ], not %s",
			       confkey_type_name(s));
		return;
	}

	int n = config_setting_length(s);
	uint32_t *ids = n > 0 ? calloc((size_t)n, sizeof(*ids)) : NULL;
	size_t count = 0;

	if (n > 0 && ids == NULL) {
		confdiag_error(d, s, name, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		if (parse_id(d, config_setting_get_elem(s, (unsigned)i), name,
			     k->type == KEY_GIDS, &ids[count]))
			count++;
	}
	/* uid_t and gid_t are both 32-bit unsigned on Linux. */
	_Static_assert(sizeof(uid_t) == sizeof(uint32_t) && sizeof(gid_t) == sizeof(uint32_t),
		       "uid_t and gid_t must be 32-bit");
	*(uint32_t **)((char *)base + k->offset) = ids;
	*(size_t *)((char *)base + k->count_offset) = count;
}

void
confkey_parse(struct confdiag *d, struct confsrc *src, const struct config_key *k,
	      const config_setting_t *s, const char *name, void *base)
{
	void *field = (char *)base + k->offset;
	int64_t iv;
	double dv;

	switch (k->type) {
	case KEY_INT:
		if (!is_integer(s)) {
			confdiag_error(d, s, name, "must be an integer, not %s",
				       confkey_type_name(s));
			return;
		}
		if (!get_integer(d, src, s, name, &iv))
			return;
		if (iv < k->min || iv > k->max) {
			confdiag_error(d, s, name, "must be between %" PRId64 " and %" PRId64
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
			if (!get_integer(d, src, s, name, &iv))
				return;
			dv = (double)iv;
		} else {
			confdiag_error(d, s, name, "must be a number%s, not %s",
				       k->type == KEY_DURATION ? " of seconds" : "",
				       confkey_type_name(s));
			return;
		}
		if (k->type == KEY_FRACTION) {
			if (!(dv >= 0.0 && dv < 1.0)) {
				confdiag_error(d, s, name, "must be at least 0 and less than 1 "
					       "(got %g)", dv);
				return;
			}
		} else if (!(dv >= 0.0 && dv <= k->dmax)) {
			confdiag_error(d, s, name, "must be a duration between 0 and %.*f seconds "
				       "(got %g)", k->dmax == floor(k->dmax) ? 0 : 3, k->dmax, dv);
			return;
		}
		*(double *)field = dv;
		return;

	case KEY_STRING: {
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			confdiag_error(d, s, name, "must be a string, not %s",
				       confkey_type_name(s));
			return;
		}
		const char *sv = config_setting_get_string(s);
		size_t max = k->max_len > 0 ? k->max_len : CONFIG_STRING_MAX;
		if (sv[0] == '\0') {
			confdiag_error(d, s, name, "must not be empty");
			return;
		}
		if (strlen(sv) > max) {
			confdiag_error(d, s, name, "is %zu bytes long; at most %zu", strlen(sv),
				       max);
			return;
		}
		char *copy = strdup(sv);
		if (copy == NULL) {
			confdiag_error(d, s, name, "out of memory");
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
			confdiag_error(d, s, name, "file modes are octal strings: write \"0%lld\" "
				       "(libconfig reads a bare 0%lld as a decimal number)", v, v);
			return;
		}
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			confdiag_error(d, s, name, "must be an octal string like \"0660\", "
				       "not %s", confkey_type_name(s));
			return;
		}
		long m = parse_mode(config_setting_get_string(s));
		if (m < 0) {
			confdiag_error(d, s, name, "\"%s\" is not an octal file mode like "
				       "\"0660\"", config_setting_get_string(s));
			return;
		}
		if ((mode_t)m & k->forbid) {
			confdiag_error(d, s, name, "\"%s\" has the bits %04o, which are refused: "
				       "%s (default \"%04o\")", config_setting_get_string(s),
				       (unsigned)((mode_t)m & k->forbid), k->forbid_why,
				       (unsigned)k->idef);
			return;
		}
		*(mode_t *)field = (mode_t)m;
		return;
	}

	case KEY_ENUM: {
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			confdiag_error(d, s, name, "must be a string, not %s",
				       confkey_type_name(s));
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
		confdiag_error(d, s, name, "\"%s\" is not one of %s", sv, list);
		return;
	}

	case KEY_UIDS:
	case KEY_GIDS:
		parse_ids(d, k, s, name, base);
		return;
	}
}

void
confkey_default(const struct config_key *k, void *base)
{
	void *field = (char *)base + k->offset;

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

bool
confkey_group(const char *name, gid_t *gid)
{
	char buf[4096], *end;
	struct group g, *gp = NULL;
	unsigned long id = strtoul(name, &end, 10);

	if (*end == '\0' && end != name && id < UINT32_MAX) {
		*gid = (gid_t)id;
		return true;
	}
	if (getgrnam_r(name, &g, buf, sizeof(buf), &gp) == 0 && gp != NULL) {
		*gid = gp->gr_gid;
		return true;
	}
	return false;
}

bool
confkey_may_chgrp(gid_t gid)
{
	bool member = geteuid() == 0 || getegid() == gid;
	int n = getgroups(0, NULL);
	gid_t *groups = n > 0 ? calloc((size_t)n, sizeof(*groups)) : NULL;

	if (groups != NULL) {
		n = getgroups(n, groups);
		for (int i = 0; i < n && !member; i++)
			member = groups[i] == gid;
	}
	free(groups);
	return member;
}
