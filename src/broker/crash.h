/*
 * crash.h - a broker killed by a fault (SIGSEGV, SIGABRT...) still removes
 * its socket and its shared memory segment on the way down.
 */
#ifndef PGL_CRASH_H
#define PGL_CRASH_H

/*
 * From now on a fatal fault signal unlinks socket_path and the segment
 * shm_name, then goes on as it would have (the handler that was there
 * before, a sanitizer's or the default: the process still dies, with its
 * core dump).  Both paths are copied.
 */
void crash_arm(const char *socket_path, const char *shm_name);

/* The handlers as they were before crash_arm(). */
void crash_disarm(void);

#endif
