/*
 * shell_build.h - building a shell in steps: what pgl_conn() does in one
 * go, and the preload shim around a program's own PGconn.
 */
#ifndef PGL_LIB_SHELL_BUILD_H
#define PGL_LIB_SHELL_BUILD_H

#include "lib/client.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most connection parameters a caller of shell_begin() passes. */
#define SHELL_PARAMS_MAX 128

/* A shell being built: libpq connecting to a private listener of this process. */
struct shell_build {
	PGconn *conn;
	int listener;			/* -1 when closed */
	int peer;			/* libpq's connection, accepted; -1 */
	int64_t deadline;		/* CLOCK_MONOTONIC ms */
	uint32_t proto;			/* the startup message's protocol version */
	char host[64];			/* "@NAME": libpq's host for the listener */
	size_t startup_len;
	uint8_t startup[10000];		/* the startup message's parameters */
};

/*
 * Starts a shell: binds a private listener (at host, an "@NAME" of an
 * earlier build, or a fresh random name when NULL).  With host NULL it also
 * starts libpq on it with kw/val (NULL-terminated: the caller's parameters;
 * the neutral options, host and port are added after them and win), and
 * waits for libpq's startup message.  Returns 0, or -1 with c's error set
 * and b abandoned.
 */
int shell_begin(pgl_client *c, struct shell_build *b, const char *const *kw,
		const char *const *val, const char *host) __attribute__((warn_unused_result));

/* After PQresetStart(b->conn) on a shell bound at its old host: accepts and reads the startup. */
int shell_accept(pgl_client *c, struct shell_build *b) __attribute__((warn_unused_result));

/* A parameter of the startup message ("user", "database", "options", ...), or NULL. */
const char *shell_startup_param(const struct shell_build *b, const char *name);

/*
 * Answers the startup with l's server parameters, lets libpq finish
 * (poll_fn: PQconnectPoll, or PQresetPoll) and puts l's backend under the
 * PGconn, which becomes l->shell.  Returns it, or NULL with c's error set;
 * b is done with either way.
 */
PGconn *shell_complete(pgl_client *c, struct shell_build *b, pgl_lease *l,
		       PostgresPollingStatusType (*poll_fn)(PGconn *));

/*
 * Answers the startup with a FATAL ErrorResponse (sqlstate, message): the
 * PGconn, returned, ends CONNECTION_BAD with that message.  b is done with.
 */
PGconn *shell_refuse(struct shell_build *b, const char *sqlstate, const char *message);

/* Closes what b holds, the PGconn included. */
void shell_abandon(struct shell_build *b);

/*
 * Whether conn's notice processor and receiver are still libpq's own, as
 * every new PGconn has them (a holder's hooks may point into freed memory).
 */
bool shell_hooks_default(PGconn *conn);

#endif
