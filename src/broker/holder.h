/*
 * holder.h - who asks for leases and holds them, as the pools see it.
 *
 * A pool never reaches into a client session: it answers requests and
 * takes leases back through these operations.  session.c embeds a struct
 * holder in each client session and implements them.
 */
#ifndef PGL_HOLDER_H
#define PGL_HOLDER_H

#include "common/shm.h"

#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct holder;
struct slot;
struct acquire_req;

struct holder_ops {
	/*
	 * Sends a GRANT for slot, which is LEASED to h already, and records the
	 * lease.  Returns 0, or -1 when it could not be sent: the holder is then
	 * closed (its other leases orphaned) and the caller takes the slot back.
	 */
	int (*grant)(struct holder *h, uint64_t request_id, struct slot *slot);
	/* Answers request_id with an ERROR. */
	void (*error)(struct holder *h, uint64_t request_id, int code, const char *msg);
	/* The broker took the lease on slot back (lease_timeout, stop): forget it. */
	void (*cut)(struct holder *h, struct slot *slot);
};

struct holder {
	const struct holder_ops *ops;
	pid_t pid;			/* for logs and shared memory */
	TAILQ_HEAD(, acquire_req) requests;	/* queued or being checked for */
	int nrequests;
	/* Per pool: the shm record (+1; 0 = none) of the slot to try first. */
	uint32_t last_used[SHM_MAX_POOLS];
};

#endif
