/*
 * precheck.c - runtime preconditions for --check-config: directories,
 * ownership, the descriptor limit.  config.c checks the file; this checks
 * the machine the file will run on, without changing anything.
 */
#include "autoconf.h"

#include "broker/precheck.h"
#include "broker/limits.h"
#include "common/log.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct precheck {
	const struct config *cfg;
	config_report_fn *report;
	void *arg;
	int nerrors;
};

PGL_PRINTF(5, 6) static void
problem(struct precheck *pc, bool is_error, int line, const char *setting, const char *fmt, ...)
{
	char what[1024], where[4200], msg[5400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof(where), "%s:%d", pc->cfg->path, line);
	else
		snprintf(where, sizeof(where), "%s", pc->cfg->path);
	snprintf(msg, sizeof(msg), "%s: %s: %s%s", where, setting, is_error ? "" : "warning: ",
		 what);
	pc->nerrors += is_error;
	if (pc->report != NULL)
		pc->report(pc->arg, is_error, msg);
}

/* The directory of path must exist and take new files. */
static void
dir_writable(struct precheck *pc, const char *path, int line, const char *setting,
	     const char *what)
{
	char copy[4096];
	struct stat st;

	snprintf(copy, sizeof(copy), "%s", path);
	const char *dir = dirname(copy);
	if (stat(dir, &st) != 0)
		problem(pc, true, line, setting, "the directory %s of the %s: %s%s", dir, what,
			strerror(errno), errno != ENOENT ? "" : strcmp(what, "log file") == 0 ?
			" (create it, or let systemd's LogsDirectory= do so)" :
			" (create it, or let systemd's RuntimeDirectory= do so)");
	else if (!S_ISDIR(st.st_mode))
		problem(pc, true, line, setting, "%s, where the %s goes, is not a directory", dir,
			what);
	else if (access(dir, W_OK | X_OK) != 0)
		problem(pc, true, line, setting, "the directory %s of the %s is not writable "
			"by uid %u: %s", dir, what, (unsigned)geteuid(), strerror(errno));
}

int
precheck_runtime(const struct config *cfg, config_report_fn *report, void *arg)
{
	const struct broker_config *b = &cfg->broker;
	struct precheck pc = { .cfg = cfg, .report = report, .arg = arg };
	struct stat st;
	char msg[1024], path[300];

	dir_writable(&pc, b->socket, b->socket_line, "broker.socket", "socket");

	/* glibc keeps POSIX shared memory in /dev/shm */
	snprintf(path, sizeof(path), "/dev/shm/%s", b->shm_name + 1);
	if (stat(path, &st) == 0 && st.st_uid != geteuid())
		problem(&pc, true, b->shm_name_line, "broker.shm_name", "%s exists and belongs to "
			"uid %u, not to uid %u that runs the broker: it cannot take it over",
			b->shm_name, (unsigned)st.st_uid, (unsigned)geteuid());

	if (b->log_target == CONFIG_LOG_FILE && b->log_file != NULL) {
		if (stat(b->log_file, &st) == 0) {
			if (access(b->log_file, W_OK) != 0)
				problem(&pc, true, b->log_file_line, "broker.log_file", "%s is not "
					"writable by uid %u: %s", b->log_file, (unsigned)geteuid(),
					strerror(errno));
		} else {
			dir_writable(&pc, b->log_file, b->log_file_line, "broker.log_file",
				     "log file");
		}
	}
	if (b->pid_file != NULL)
		dir_writable(&pc, b->pid_file, b->pid_file_line, "broker.pid_file", "pid file");

	if (limits_check_nofile(cfg, msg, sizeof(msg)) != 0)
		problem(&pc, false, b->max_clients_line, "broker.max_clients", "%s", msg);
	return pc.nerrors;
}
