/*
 * crash.c - the faults that must stay fatal (going on would serve from a
 * corrupt state) clean up first: the socket file and the segment name are
 * unlinked, so that clients see "no broker" and a supervisor's restart
 * starts clean.  Only SIGKILL leaves them behind (the next start takes them
 * over: listener.c, shm_writer.c).
 *
 * The handler is async-signal-safe: unlink(2) on paths copied beforehand
 * (a POSIX shared memory name is a file under /dev/shm on Linux), then the
 * previous action is restored and the signal raised again; it is delivered
 * when the handler returns (a fault's instruction also runs again).
 */
#include "autoconf.h"

#include "broker/crash.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS };
#define NFATAL (sizeof(fatal_signals) / sizeof(fatal_signals[0]))

static char crash_socket[256];
static char crash_shm[300];
static struct sigaction previous[NFATAL];
static bool armed;

static void
crash_handler(int sig)
{
	if (crash_socket[0] != '\0')
		unlink(crash_socket);
	if (crash_shm[0] != '\0')
		unlink(crash_shm);
	for (size_t i = 0; i < NFATAL; i++)
		if (fatal_signals[i] == sig)
			sigaction(sig, &previous[i], NULL);
	raise(sig);
}

void
crash_arm(const char *socket_path, const char *shm_name)
{
	struct sigaction sa = { .sa_handler = crash_handler };

	if (armed)
		return;
	snprintf(crash_socket, sizeof(crash_socket), "%s", socket_path);
	snprintf(crash_shm, sizeof(crash_shm), "/dev/shm%s", shm_name);
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NFATAL; i++)
		sigaction(fatal_signals[i], &sa, &previous[i]);
	armed = true;
}

void
crash_disarm(void)
{
	if (!armed)
		return;
	for (size_t i = 0; i < NFATAL; i++)
		sigaction(fatal_signals[i], &previous[i], NULL);
	armed = false;
}
