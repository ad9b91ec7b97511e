/*
 * precheck.h - --check-config's look at the machine: what a valid file
 * still needs from the system to start.
 */
#ifndef PGL_PRECHECK_H
#define PGL_PRECHECK_H

#include "broker/config.h"

/*
 * Checks, as the user running it (the broker's, under ExecStartPre), that
 * the socket's directory exists and is writable, that no other user owns a
 * segment of shm_name, that the log file and pid file can be written, and
 * that the file descriptor limit fits max_clients.  Each problem goes to
 * report as "FILE:LINE: setting: problem" (the file's line when the setting
 * is written in it).  Returns the number of errors (the limit is a warning).
 */
int precheck_runtime(const struct config *cfg, config_report_fn *report, void *arg);

#endif
