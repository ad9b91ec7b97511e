/*
 * log.c - the broker's logger: level filter; stderr, a file or syslog; one
 * line per call.
 *
 * syslog is spoken here, not through syslog(3): glibc's drops a line
 * silently when /dev/log does not answer (a container, a chroot, journald
 * stopped).  Our own datagram socket tells us, and the lines go to stderr
 * with one warning instead of being lost.
 */
#include "autoconf.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* The syslog socket.  Test-only: PGLEASE_TEST_SYSLOG_PATH names another one. */
#define DEVLOG "/dev/log"

static char log_ident[64] = "pglease";
static enum log_level log_level = LOG_LEVEL_INFO;
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_facility = LOG_DAEMON;
static char log_path[4096];		/* the file target's path */
static int log_fd = -1;			/* the file, or the syslog socket */
static bool syslog_lost;		/* syslog did not answer: lines go to stderr */

/* Helper threads log too: the target's state changes under this lock. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

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

static const struct {
	const char *name;
	int facility;
} facilities[] = {
	{ "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

int
log_facility_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(name, facilities[i].name) == 0)
			return facilities[i].facility;
	return -1;
}

static void
stderr_line(const char *line, size_t len)
{
	/* Nothing useful can be done when stderr itself fails. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

/* Formats "STAMP ident[pid]: level: msg\n" into line; its length. */
static size_t
format_line(char *line, size_t cap, enum log_level level, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	int n = snprintf(line, cap, "%s.%03ldZ %s[%ld]: %s: %s\n", stamp,
			 ts.tv_nsec / 1000000, log_ident, (long)getpid(),
			 level_names[level], msg);
	if (n < 0)
		return 0;
	if ((size_t)n >= cap) {
		n = (int)cap - 1;
		line[n - 1] = '\n';
	}
	return (size_t)n;
}

/* Connects a datagram socket to syslog's; -1 when nobody answers there. */
static int
syslog_connect(void)
{
	const char *path = getenv("PGLEASE_TEST_SYSLOG_PATH");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (path == NULL || path[0] == '\0')
		path = DEVLOG;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Called with log_lock held: the one warning of a lost syslog. */
static void
syslog_fall_back(const char *why)
{
	char line[512], msg[400];

	if (syslog_lost)
		return;
	syslog_lost = true;
	snprintf(msg, sizeof(msg), "syslog does not answer on %s (%s): logging to stderr "
		 "until it does (checked again on SIGHUP)",
		 getenv("PGLEASE_TEST_SYSLOG_PATH") != NULL ? getenv("PGLEASE_TEST_SYSLOG_PATH")
							     : DEVLOG, why);
	stderr_line(line, format_line(line, sizeof(line), LOG_LEVEL_WARN, msg));
}

/* Called with log_lock held: sends one line to syslog; false when it cannot go. */
static bool
syslog_send(enum log_level level, const char *msg)
{
	char dgram[2300], stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	if (log_fd < 0)
		return false;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
	int n = snprintf(dgram, sizeof(dgram), "<%d>%s %s[%ld]: %s",
			 log_facility | level_syslog[level], stamp, log_ident, (long)getpid(), msg);
	if (n < 0)
		return false;
	size_t len = (size_t)n < sizeof(dgram) ? (size_t)n : sizeof(dgram) - 1;
	if (send(log_fd, dgram, len, MSG_NOSIGNAL) == (ssize_t)len)
		return true;
	/* syslogd restarted: its socket is a new one */
	int saved = errno;
	close(log_fd);
	log_fd = syslog_connect();
	if (log_fd >= 0 && send(log_fd, dgram, len, MSG_NOSIGNAL) == (ssize_t)len)
		return true;
	syslog_fall_back(strerror(saved));
	return false;
}

/* Called with log_lock held: the target's descriptor for the current settings. */
static int
open_target(char *err, size_t errlen)
{
	if (log_target == LOG_TARGET_FILE) {
		int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
		if (fd < 0)
			snprintf(err, errlen, "cannot open the log file %s: %s", log_path,
				 strerror(errno));
		return fd;
	}
	if (log_target == LOG_TARGET_SYSLOG) {
		int fd = syslog_connect();
		if (fd < 0)
			syslog_fall_back(strerror(errno));
		else
			syslog_lost = false;
		return fd;
	}
	return -1;
}

int
log_configure(const struct log_options *o, char *err, size_t errlen)
{
	pthread_mutex_lock(&log_lock);
	enum log_target old_target = log_target;
	int old_fd = log_fd;
	char old_path[sizeof(log_path)];

	memcpy(old_path, log_path, sizeof(old_path));
	log_target = o->target;
	log_facility = o->facility;
	snprintf(log_ident, sizeof(log_ident), "%s", o->ident);
	snprintf(log_path, sizeof(log_path), "%s", o->file != NULL ? o->file : "");
	if (o->target == old_target && old_fd >= 0 &&
	    (o->target != LOG_TARGET_FILE || strcmp(old_path, log_path) == 0)) {
		/* the same file or socket: keep it */
		log_level = o->level;
		pthread_mutex_unlock(&log_lock);
		return 0;
	}
	if (o->target != old_target)
		syslog_lost = false;	/* a new target: its own warning when it fails */
	int fd = open_target(err, errlen);
	if (fd < 0 && o->target == LOG_TARGET_FILE) {
		log_target = old_target;
		memcpy(log_path, old_path, sizeof(log_path));
		pthread_mutex_unlock(&log_lock);
		return -1;
	}
	log_fd = fd;
	log_level = o->level;
	if (old_fd >= 0)
		close(old_fd);
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void
log_init(const char *ident, enum log_level level, enum log_target target)
{
	struct log_options o = { .ident = ident, .level = level, .facility = LOG_DAEMON,
				 .target = target == LOG_TARGET_FILE ? LOG_TARGET_STDERR : target };
	char err[8];

	if (log_configure(&o, err, sizeof(err)) != 0)
		return;	/* only a file can fail, and log_init opens none */
}

void
log_reopen(void)
{
	char err[4200] = "";

	pthread_mutex_lock(&log_lock);
	if (log_target != LOG_TARGET_FILE && log_target != LOG_TARGET_SYSLOG) {
		pthread_mutex_unlock(&log_lock);
		return;
	}
	bool was_lost = syslog_lost;
	int fd = open_target(err, sizeof(err));	/* warns once when syslog stays lost */
	if (fd >= 0 || log_target == LOG_TARGET_SYSLOG) {
		if (log_fd >= 0)
			close(log_fd);
		log_fd = fd;
	}
	bool found = log_target == LOG_TARGET_SYSLOG && was_lost && fd >= 0;
	pthread_mutex_unlock(&log_lock);
	if (err[0] != '\0')
		log_error("%s; still writing to the old one", err);
	if (found)
		log_info("syslog answers again: logging there");
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
 * lines from concurrent processes sharing stderr or the file do not
 * interleave.
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

	char line[2200];
	size_t len;

	pthread_mutex_lock(&log_lock);
	if (log_target == LOG_TARGET_SYSLOG && !syslog_lost && syslog_send(level, msg)) {
		pthread_mutex_unlock(&log_lock);
		return;
	}
	len = format_line(line, sizeof(line), level, msg);
	if (log_target == LOG_TARGET_FILE && log_fd >= 0 &&
	    write(log_fd, line, len) == (ssize_t)len) {
		pthread_mutex_unlock(&log_lock);
		return;
	}
	pthread_mutex_unlock(&log_lock);
	stderr_line(line, len);
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
