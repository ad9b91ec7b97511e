/*
 * notify.h - the systemd notification protocol (sd_notify(3)), spoken
 * without libsystemd: READY, RELOADING, STOPPING, STATUS and WATCHDOG
 * datagrams to $NOTIFY_SOCKET.
 */
#ifndef PGL_NOTIFY_H
#define PGL_NOTIFY_H

#include <ev.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

struct broker;

struct notify {
	int fd;				/* -1: no $NOTIFY_SOCKET, nothing is sent */
	struct sockaddr_un addr;
	socklen_t addrlen;
	bool ready;			/* the first READY=1 went */
	bool failed;			/* a send failed (logged once) */
	ev_check ready_check;		/* until every pool is ready */
	ev_timer watchdog;		/* WATCHDOG=1 every half of $WATCHDOG_USEC */
	char status[200];		/* the last STATUS= sent */
};

/*
 * Reads $NOTIFY_SOCKET (a path, or "@name" for an abstract address) and
 * $WATCHDOG_USEC/$WATCHDOG_PID; starts watching the pools for READY=1 and
 * the watchdog pings.  Without $NOTIFY_SOCKET, every call below does nothing.
 */
void notify_init(struct broker *b);

/* SIGHUP: RELOADING=1 with MONOTONIC_USEC, before the reload runs. */
void notify_reloading(struct broker *b);

/*
 * A reload was applied, or refused (applied false): READY=1 again, with
 * the status, which says when the file was refused.
 */
void notify_reloaded(struct broker *b, bool applied);

/* A drain or a stop began: STOPPING=1. */
void notify_stopping(struct broker *b);

/* STATUS= with the pools, backends and clients, when it changed (the heartbeat calls it). */
void notify_status(struct broker *b);

/* Stops the watchers and closes the socket. */
void notify_stop(struct broker *b);

#endif
