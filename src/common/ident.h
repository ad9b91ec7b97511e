/*
 * ident.h - whom a process trusts as its broker: root, itself, or the user
 * named by $PGLEASE_BROKER_UID.
 */
#ifndef PGL_IDENT_H
#define PGL_IDENT_H

#include <sys/types.h>

/* A user id or user name into *uid: 0, or -1 when it is neither. */
int ident_parse_uid(const char *s, uid_t *uid) __attribute__((warn_unused_result));

/*
 * The uid $PGLEASE_BROKER_UID names; (uid_t)-1 when it is unset or names
 * no user (the caller then trusts root and itself only).
 */
uid_t ident_broker_uid(void);

#endif
