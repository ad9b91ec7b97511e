/*
 * process.h - the library's state per process: its clients, its lock
 * against fork(), and what fork() and exit() do to them.
 */
#ifndef PGL_LIB_PROCESS_H
#define PGL_LIB_PROCESS_H

#include "pglease.h"

#include <sys/types.h>

/*
 * Registers c with the fork and exit handlers (installed by the first
 * call): in a forked child its connection and leases become inert; at exit
 * its leases go back.  process_remove() forgets c again.
 */
void process_add(pgl_client *c);
void process_remove(pgl_client *c);

/*
 * This process's pid, kept up to date by the atfork child handler: glibc no
 * longer caches getpid(), and the lease path checks it on every call.
 */
pid_t process_pid(void);

/* A descriptor of /dev/null kept open for the process (close-on-exec), or -1. */
int process_devnull(void);

/*
 * The library's lock against fork(): whoever creates, receives, swaps or
 * closes a descriptor that the atfork child handler must know of holds it
 * from that moment until the descriptor is recorded (client, lease, shell)
 * or gone.  Recursive; never taken in a signal handler.
 */
void process_lock(void);
void process_unlock(void);

#endif
