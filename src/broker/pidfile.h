/*
 * pidfile.h - pid_file: the broker's pid, for init scripts and monitors.
 */
#ifndef PGL_PIDFILE_H
#define PGL_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * 0 when path is absent or names a process that is gone (or is not a
 * pgleased: the pid was reused); -1 with a sentence in msg when it names a
 * live broker, or cannot be read.
 */
int pidfile_check(const char *path, char *msg, size_t len)
	__attribute__((warn_unused_result));

/* Writes pid to path atomically (a file beside it, renamed); -1 with msg on failure. */
int pidfile_write(const char *path, pid_t pid, char *msg, size_t len)
	__attribute__((warn_unused_result));

/* Removes path when it still holds pid (a successor may have replaced it). */
void pidfile_remove(const char *path, pid_t pid);

#endif
