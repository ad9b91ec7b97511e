/*
 * client.h - libpglease's client and lease objects, and the client's
 * control connection to the broker (client.c).
 */
#ifndef PGL_LIB_CLIENT_H
#define PGL_LIB_CLIENT_H

#include "common/wire.h"
#include "pglease.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* pgl_lease.magic: a lease in use, and one released (poisoned, kept for reuse). */
#define LEASE_LIVE 0x4c495645u		/* "LIVE" */
#define LEASE_FREED 0x46524545u		/* "FREE" */

struct pgl_lease {
	uint32_t magic;			/* LEASE_LIVE, or LEASE_FREED once given back */
	pgl_client *client;
	uint64_t lease_id;
	uint32_t conn_gen;		/* the client's connection it was granted on */
	uint32_t slot;
	int fd;
	int backend_pid;
	bool inert;
	bool shell_borrowed;		/* the shell belongs to a program (the preload
					 * shim): release only blinds it */
	PGconn *shell;			/* pgl_conn()'s, or NULL */
	char user[WIRE_NAME_MAX + 1];
	char database[WIRE_NAME_MAX + 1];			/* inherited across fork(): fd is /dev/null */
	pgl_lease *next, *prev;		/* the client's held leases, or its free list */
	uint16_t params_len;
	char params[WIRE_PARAMS_MAX];
};

/* Abandoned ACQUIREs a client remembers (see client_abandon()). */
#define ABANDONED_MAX 8

/* A released shell kept for the backend it was built on (see shell.c). */
#define SHELL_CACHE 8
struct shell_entry {
	PGconn *conn;			/* socket on /dev/null while cached; NULL: free */
	int backend_pid;
	uint32_t slot;
	char user[WIRE_NAME_MAX + 1];
	char database[WIRE_NAME_MAX + 1];
	uint64_t used;			/* for eviction: the oldest goes */
};

struct pgl_client {
	char *path;
	int fd;				/* control socket, non-blocking; -1: none */
	/*
	 * fd has had its WELCOME: requests may go on it.  A signal handler
	 * (pgl_cancel) reads it, so it is set last and cleared first.
	 */
	volatile sig_atomic_t ready;
	pid_t pid;			/* the process that opened fd */
	uint32_t conn_gen;		/* counts connections: fd is the conn_gen-th */
	uint32_t incarnation;		/* of the broker fd is connected to */
	uint16_t version;		/* of the protocol, as WELCOME chose it */
	char shm_name[WIRE_SHM_NAME_MAX + 1];	/* the broker's segment, from WELCOME */
	uint32_t acquire_timeout_ms;	/* WELCOME's longest wait for timeout -1 (2 on) */
	int inflight_fd;		/* a GRANT's descriptor no lease holds yet, or -1 */
	uint64_t next_request;
	uint64_t hello_id;		/* HELLO sent, WELCOME not read yet (0: none) */
	int64_t hello_deadline;		/* CLOCK_MONOTONIC ms */
	/* ACQUIREs given up on whose answer has not been read yet */
	uint64_t abandoned[ABANDONED_MAX];
	int nabandoned;
	pgl_lease *held;
	pgl_lease *spare, *spare_tail;	/* released leases, oldest first, reused */
	int nspare;
	pgl_client *next, *prev;	/* every client of the process */
	struct shell_entry shells[SHELL_CACHE];
	uint64_t shell_clock;
	int errcode;
	char error[WIRE_TEXT_MAX + 128];
	uint8_t buf[WIRE_MESSAGE_MAX];
};

/* Records an error on c; returns -1 for "return client_fail(...)". */
int client_fail(pgl_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Connects and says HELLO unless connected in this process already. */
int client_ensure(pgl_client *c);

/*
 * Whether this process has no connection yet (after a fork, the parent's
 * is forgotten here): the caller may then connect in two halves, so that a
 * first request travels with HELLO instead of after its answer.
 */
bool client_unconnected(pgl_client *c);

/*
 * The two halves of client_ensure(): client_hello_send() connects and sends
 * HELLO; requests may follow at once, the broker reads them in order;
 * client_hello_wait() reads the answer to HELLO (WELCOME, or why not).  Each
 * returns 0, or -1 with the client's error set and the connection closed.
 */
int client_hello_send(pgl_client *c);
int client_hello_wait(pgl_client *c);

/* Drops the control connection (the broker orphans what this process holds on it). */
void client_disconnect(pgl_client *c);

/*
 * Sends m on the control connection, waiting for room until deadline_ms
 * (CLOCK_MONOTONIC ms; -1: not at all).  Never blocks past it: -1 with
 * EAGAIN when the broker's queue stayed full, or errno of the send.
 */
int client_send(pgl_client *c, const struct wire_msg *m, int64_t deadline_ms);

/*
 * Waits for the answer to request id (a GRANT, WELCOME or ERROR) until
 * deadline_ms (CLOCK_MONOTONIC ms), giving back the GRANTs of abandoned
 * requests as they come.  *fd gets a GRANT's descriptor (any other is
 * closed).  Returns 0, or -1 with the client's error set: PGL_ETIMEOUT when
 * the deadline passed (the connection stays).
 */
int client_wait(pgl_client *c, uint64_t id, int64_t deadline_ms, struct wire_msg *m, int *fd);

/*
 * Notes that nobody waits for the answer to request id any more (its
 * deadline passed): client_drain() gives its GRANT back as soon as it can
 * be read.
 */
void client_abandon(pgl_client *c, uint64_t id);

/*
 * Reads, without waiting, what has arrived for abandoned requests and
 * gives their GRANTs straight back, so a late GRANT is not left leased
 * until the process next waits for an answer.  Every call of the library
 * that uses the connection calls it first (not pgl_cancel: signal handlers
 * do not read).
 */
void client_drain(pgl_client *c);

#endif
