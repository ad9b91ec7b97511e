/*
 * ident.c - user ids from the environment or the command line.
 */
#include "autoconf.h"

#include "common/ident.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>

int
ident_parse_uid(const char *s, uid_t *uid)
{
	char *end;
	struct passwd pw, *found = NULL;
	char buf[1024];

	if (s == NULL || s[0] == '\0')
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*end == '\0' && errno == 0 && s[0] != '-' && v < (unsigned long)(uid_t)-1) {
		*uid = (uid_t)v;
		return 0;
	}
	if (getpwnam_r(s, &pw, buf, sizeof(buf), &found) != 0 || found == NULL)
		return -1;
	*uid = found->pw_uid;
	return 0;
}

uid_t
ident_broker_uid(void)
{
	uid_t uid;

	return ident_parse_uid(getenv("PGLEASE_BROKER_UID"), &uid) == 0 ? uid : (uid_t)-1;
}
