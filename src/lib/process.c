/*
 * process.c - the library's state per process: its clients, its lock
 * against fork(), its pid, and what fork() and exit() do to the clients.
 */
#include "autoconf.h"

#include "lib/client.h"
#include "lib/process.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* Every client of this process, for the fork and exit handlers. */
static pgl_client *clients;
/*
 * Guards what the fork handlers read: the list of clients, each one's
 * control socket, held leases, in-flight descriptor, and the shells'
 * sockets.  Taken in the atfork prepare handler, so a fork() in another
 * thread never sees a descriptor half recorded.  Recursive: the exit
 * handler releases with it held, and lease code nests.
 */
static pthread_mutex_t lib_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;
static pid_t self;
static int devnull = -1;

pid_t
process_pid(void)
{
	return self;
}

void
process_lock(void)
{
	pthread_mutex_lock(&lib_lock);
}

void
process_unlock(void)
{
	pthread_mutex_unlock(&lib_lock);
}

int
process_devnull(void)
{
	/* Opened by install_handlers(); inherited, still good, across fork(). */
	return devnull;
}

/* --- fork and exit ------------------------------------------------------ */

/* Puts /dev/null over a backend descriptor the child inherited (closes it without). */
static void
make_inert(int fd)
{
	if (fd < 0)
		return;
	if (devnull >= 0)
		dup3(devnull, fd, O_CLOEXEC);
	else
		close(fd);
}

/* Before fork(): no other thread is between receiving a descriptor and recording it. */
static void
atfork_prepare(void)
{
	pthread_mutex_lock(&lib_lock);
}

static void
atfork_parent(void)
{
	pthread_mutex_unlock(&lib_lock);
}

/*
 * In a forked child: the control connection and every lease belong to the
 * parent.  The child's copies are made inert, so it can neither talk to a
 * backend the parent gives back nor keep one alive: the leases' sockets,
 * their shells', and a GRANT's descriptor not yet given to a lease.
 */
static void
atfork_child(void)
{
	self = getpid();
	for (pgl_client *c = clients; c != NULL; c = c->next) {
		c->ready = 0;
		if (c->fd >= 0) {
			close(c->fd);
			c->fd = -1;
		}
		c->nabandoned = 0;
		make_inert(c->inflight_fd);
		for (pgl_lease *l = c->held; l != NULL; l = l->next) {
			if (l->inert)
				continue;
			l->inert = true;
			make_inert(l->fd);
			/* The shell's socket is a copy of the backend's too. */
			if (l->shell != NULL)
				make_inert(PQsocket(l->shell));
		}
	}
	/*
	 * Taken by atfork_prepare() in the thread that forked, but a recursive
	 * mutex knows its owner by thread id, and this thread's is new: the
	 * unlock would be refused.  A fresh lock instead.
	 */
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&lib_lock, &attr);
	pthread_mutexattr_destroy(&attr);
}

/* At exit: what this process still holds goes back (a reset, not a lost backend). */
static void
release_at_exit(void)
{
	process_lock();
	for (pgl_client *c = clients; c != NULL; c = c->next)
		while (c->held != NULL)
			pgl_release(c->held);
	process_unlock();
}

static void
install_handlers(void)
{
	self = getpid();
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	atexit(release_at_exit);
}

/* --- the clients -------------------------------------------------------- */

void
process_add(pgl_client *c)
{
	pthread_once(&handlers_once, install_handlers);
	process_lock();
	c->next = clients;
	if (clients != NULL)
		clients->prev = c;
	clients = c;
	process_unlock();
}

void
process_remove(pgl_client *c)
{
	process_lock();
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	process_unlock();
}
