/*
 * target.h - a pool's target_session_attrs: which servers its backends may
 * be on, told from what each server reports (in_hot_standby,
 * default_transaction_read_only) after the connect and after every reset
 * or check.  libpq applies the attribute when it connects; the broker keeps
 * applying it for as long as the backend lives, since a server may be
 * promoted, or made read-only, under a connection it already has.
 */
#ifndef PGL_TARGET_H
#define PGL_TARGET_H

#include <stdbool.h>

enum target {
	TARGET_ANY = 0,
	TARGET_READ_WRITE,
	TARGET_READ_ONLY,
	TARGET_PRIMARY,
	TARGET_STANDBY,
	TARGET_PREFER_STANDBY,
};

/* The target named as libpq names it ("read-write"); -1 for a name libpq does not take. */
int target_parse(const char *name);

/* Whether backends of a pool of target t must be watched after the connect (not any, prefer-standby). */
bool target_watched(int t);

/* libpq's name of t. */
const char *target_name(int t);

/*
 * What a server reports about itself: hot_standby is in_hot_standby
 * ("on": in recovery), read_only default_transaction_read_only.  A server
 * that reports neither (before PostgreSQL 14, or a proxy that does not pass
 * them on) counts as what libpq let through at connect.
 */
struct target_state {
	bool hot_standby;
	bool read_only;
};

/*
 * Whether a server in state s serves a pool of target t now.  prefer-standby
 * takes any server (libpq prefers a standby when it connects; a promoted
 * one keeps serving); any takes any.
 */
bool target_fits(int t, struct target_state s);

/*
 * Why a server in state s does not serve target t, for logs and a waiting
 * worker's ERROR: "no server accepts read-write sessions: ... is in hot
 * standby".  host and port name the server.  Writes into buf.
 */
void target_refusal(int t, struct target_state s, const char *host, const char *port, char *buf,
		    unsigned len);

#endif
