/*
 * log.c - the broker's logger: level filter, stderr or syslog, one line per call.
 */
#include "autoconf.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "pglease";
static enum log_level log_level = LOG_LEVEL_INFO;
static enum log_target log_target = LOG_TARGET_STDERR;

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

static const int level_syslog[] = {
	[LOG_LEVEL_ERROR] = LOG_ERR,
	[LOG_LEVEL_WARN] = LOG_WARNING,
	[LOG_LEVEL_INFO] = LOG_INFO,
	[LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

void
log_init(const char *ident, enum log_level level, enum log_target target)
{
	if (log_target == LOG_TARGET_SYSLOG && target != LOG_TARGET_SYSLOG)
		closelog();
	log_ident = ident;
	log_level = level;
	log_target = target;
	if (target == LOG_TARGET_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

int
log_level_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

/*
 * Formats one line into a stack buffer and writes it with a single call, so
 * lines from concurrent processes sharing stderr do not interleave.
 */
PGL_PRINTF(3, 0) static void
log_vwrite(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char msg[2048];
	int n;

	if (level > log_level || log_target == LOG_TARGET_NONE)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (suffix != NULL && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", suffix);

	if (log_target == LOG_TARGET_SYSLOG) {
		syslog(level_syslog[level], "%s", msg);
		return;
	}

	char line[2200];
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld]: %s: %s\n", stamp,
		     ts.tv_nsec / 1000000, log_ident, (long)getpid(),
		     level_names[level], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* Nothing useful can be done when stderr itself fails. */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

#define LOG_BODY(level, suffix)                        \
	do {                                           \
		va_list ap;                            \
		va_start(ap, fmt);                     \
		log_vwrite((level), (suffix), fmt, ap); \
		va_end(ap);                            \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);

	LOG_BODY(LOG_LEVEL_WARN, err);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, NULL);
}

void
log_error(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, NULL);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, NULL);
}

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);

	LOG_BODY(LOG_LEVEL_ERROR, err);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, NULL);
	exit(1);
}

void
log_one_line(char *dst, size_t len, const char *msg)
{
	size_t j = 0;

	for (size_t i = 0; msg[i] != '\0' && j + 3 < len; i++) {
		if (msg[i] == '\n') {
			if (msg[i + 1] == '\0')
				break;
			dst[j++] = ';';
			dst[j++] = ' ';
		} else {
			dst[j++] = msg[i];
		}
	}
	dst[j] = '\0';
}
