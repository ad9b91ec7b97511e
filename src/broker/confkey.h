/*
 * confkey.h - what a configuration key is (a row of config.c's config_keys[]),
 * and reading one setting of it into the struct it belongs to.
 */
#ifndef PGL_CONFKEY_H
#define PGL_CONFKEY_H

#include "broker/confdiag.h"
#include "broker/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct confsrc;
struct config_setting_t;

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

/*
 * Stores k's default into base (a struct broker_config or pool_config): a
 * copy for a string (NULL when out of memory, or when there is none); the
 * id lists are left alone.
 */
void confkey_default(const struct config_key *k, void *base);

/*
 * Stores setting s into base as key k says; name is the setting's path for
 * diagnostics.  An integer is re-read from src as written.  On a problem,
 * reports it to d and leaves the default in place.
 */
void confkey_parse(struct confdiag *d, struct confsrc *src, const struct config_key *k,
		   const struct config_setting_t *s, const char *name, void *base);

/* A group name or number into *gid; false when it names no group. */
bool confkey_group(const char *name, gid_t *gid) __attribute__((warn_unused_result));

/* Whether this process may give a file of its own to group gid (chown(2)). */
bool confkey_may_chgrp(gid_t gid);

/* What libconfig made of setting s, for a message: "an integer", "a list"... */
const char *confkey_type_name(const struct config_setting_t *s);

#endif
