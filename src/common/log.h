/*
 * log.h - one line per event, to stderr, a file or syslog.
 *
 * log_warn() appends strerror(errno); the other functions print the message as
 * given.  fatal()/fatalx() log at error level and exit(1): only the broker's
 * start-up code uses them, never the client library.
 */
#ifndef PGL_LOG_H
#define PGL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

enum log_target {
	LOG_TARGET_STDERR = 0,
	LOG_TARGET_SYSLOG,
	LOG_TARGET_NONE,	/* tests and fuzzers */
	LOG_TARGET_FILE,	/* appended to a file, reopened by log_reopen() */
};

/* Where and how the broker logs (log_configure). */
struct log_options {
	const char *ident;		/* program name in every line (copied) */
	enum log_level level;
	enum log_target target;
	int facility;			/* syslog's LOG_DAEMON, LOG_LOCAL0...: syslog target */
	const char *file;		/* the file target's path (copied) */
};

#define PGL_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Sets the program name, level and target; safe to call again on reload. */
void log_init(const char *ident, enum log_level level, enum log_target target);

/*
 * Applies o: opens the log file (append, close-on-exec, mode 0640) or
 * connects to syslog's socket.  A file that cannot be opened leaves the
 * previous target in place and returns -1 with the reason in err.  syslog
 * that does not answer (no /dev/log) is not an error: lines go to stderr,
 * with one warning saying so, until a log_reopen() finds it again.
 */
int log_configure(const struct log_options *o, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * SIGHUP: the log file opened again at its path (after logrotate renamed
 * it), syslog's socket connected again.  Failures are logged; the old file
 * stays in use when the new one cannot be opened.
 */
void log_reopen(void);

/* The syslog facility of a name ("daemon", "user", "local0".."local7"); -1: unknown. */
int log_facility_from_name(const char *name);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Name <-> level, for the config ("error", "warn", "info", "debug").  -1: unknown. */
int log_level_from_name(const char *name);

void log_warn(const char *fmt, ...) PGL_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) PGL_PRINTF(1, 2);
void log_error(const char *fmt, ...) PGL_PRINTF(1, 2);
void log_info(const char *fmt, ...) PGL_PRINTF(1, 2);
void log_debug(const char *fmt, ...) PGL_PRINTF(1, 2);
_Noreturn void fatal(const char *fmt, ...) PGL_PRINTF(1, 2);
_Noreturn void fatalx(const char *fmt, ...) PGL_PRINTF(1, 2);

/*
 * Copies a multi-line message (libpq's) into dst as one line: each inner
 * newline becomes "; ", a final one is dropped.  dst (len bytes, at least 1)
 * is always terminated; a message too long for it is cut.
 */
void log_one_line(char *dst, size_t len, const char *msg);

#endif
