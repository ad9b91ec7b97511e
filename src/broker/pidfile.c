/*
 * pidfile.c - pid_file: written once the socket is bound, removed at exit,
 * and a live broker's never taken over.
 */
#include "autoconf.h"

#include "broker/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The pid in path: > 0, 0 when the file is absent or holds no pid, -1 on a read error. */
static long
read_pid(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	char *end;
	long pid = strtol(buf, &end, 10);
	if (end == buf || (*end != '\n' && *end != '\0') || pid <= 0 || pid > 4194304)
		return 0;
	return pid;
}

/* Whether pid is a running pgleased (a reused pid is some other program's). */
static int
is_broker(long pid)
{
	char path[64], comm[64] = "";

	if (pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return 1;	/* cannot tell: assume it is */
	if (fgets(comm, sizeof(comm), f) == NULL)
		comm[0] = '\0';
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	return comm[0] == '\0' || strcmp(comm, "pgleased") == 0;
}

int
pidfile_check(const char *path, char *msg, size_t len)
{
	long pid = read_pid(path);

	if (pid < 0) {
		snprintf(msg, len, "cannot read the pid file %s: %s", path, strerror(errno));
		return -1;
	}
	if (pid > 0 && is_broker(pid)) {
		snprintf(msg, len, "the pid file %s names pgleased pid %ld, which is running: "
			 "not starting a second broker on it", path, pid);
		return -1;
	}
	return 0;
}

int
pidfile_write(const char *path, pid_t pid, char *msg, size_t len)
{
	char tmp[4200], text[32];
	int n = snprintf(text, sizeof(text), "%ld\n", (long)pid);

	snprintf(tmp, sizeof(tmp), "%s.%ld.new", path, (long)pid);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		snprintf(msg, len, "cannot write the pid file %s: %s", tmp, strerror(errno));
		return -1;
	}
	bool ok = write(fd, text, (size_t)n) == n;
	int saved = errno;
	if (close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	if (ok && rename(tmp, path) == 0)
		return 0;
	if (ok)
		saved = errno;
	unlink(tmp);
	snprintf(msg, len, "cannot write the pid file %s: %s", path, strerror(saved));
	return -1;
}

void
pidfile_remove(const char *path, pid_t pid)
{
	if (read_pid(path) == (long)pid)
		unlink(path);
}
