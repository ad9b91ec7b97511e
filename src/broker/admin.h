/*
 * admin.h - pglease-ctl's commands, broker side: who may run them, the
 * "show" tables, pause and resume, reconnect, kill-lease and kill-client,
 * reload and drain.
 */
#ifndef PGL_ADMIN_H
#define PGL_ADMIN_H

#include <stdbool.h>

struct broker;
struct session;
struct wire_msg;

/*
 * Answers an ADMIN_COMMAND of s: refused (ERROR denied, logged at warn)
 * unless its peer is in admin_uids/admin_gids; else done and logged at info
 * with the administrator's uid and pid.  A PAUSE may answer later, when its
 * pools are quiet or its timeout passes.
 */
void admin_command(struct session *s, const struct wire_msg *m);

/*
 * Pauses (SIGUSR1) or resumes (SIGUSR2) every pool; why names the cause in
 * the log.
 */
void admin_pause_all(struct broker *b, bool pause, const char *why);

#endif
