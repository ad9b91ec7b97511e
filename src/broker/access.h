/*
 * access.h - who may use the broker: allowed_uids and allowed_gids against
 * a peer's SO_PEERCRED identity.
 */
#ifndef PGL_ACCESS_H
#define PGL_ACCESS_H

#include "broker/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct broker;

/* A peer as the kernel reports it: SO_PEERCRED and SO_PEERGROUPS. */
struct access_peer {
	uid_t uid;
	gid_t gid;			/* primary group */
	const gid_t *groups;		/* supplementary groups */
	size_t ngroups;
};

/*
 * Whether peer passes the broker-wide lists.  Both lists empty: the broker's
 * own uid (owner) only.  Otherwise the lists replace that default: the peer's
 * uid is listed, or its primary or a supplementary group is; the broker's
 * own uid gets no exception.
 */
bool access_broker_allows(const struct broker_config *bc, uid_t owner,
			  const struct access_peer *peer);

/*
 * Whether peer may lease from pool pc: its own allowed_uids/allowed_gids
 * when it has them (restricted), else the broker's lists, which the peer
 * passed to connect at all.
 */
bool access_pool_allows(const struct pool_config *pc, const struct access_peer *peer);

/*
 * Whether peer may run pglease-ctl's commands: its uid in admin_uids, or a
 * group of its in admin_gids.  Both lists empty: root and the broker's own
 * uid (owner).
 */
bool access_admin_allows(const struct broker_config *bc, uid_t owner,
			 const struct access_peer *peer);

/* access_admin_allows() for the peer connected on fd (uid, gid from SO_PEERCRED). */
bool access_is_admin(const struct broker *b, int fd, uid_t uid, gid_t gid);

/*
 * Fills peer->groups (into buf, room for cap) with the supplementary groups
 * of the process at the other end of the connected socket fd.  On failure
 * the peer has none.
 */
void access_peer_groups(int fd, struct access_peer *peer, gid_t *buf, size_t cap);

/* A connected peer's verdicts under one configuration generation. */
struct access_verdict {
	bool broker_ok;			/* passes allowed_uids/allowed_gids ... */
	uint64_t pools_ok;		/* ... and may lease from these pools (bit = shm index) */
	unsigned gen;			/* ... as of this configuration generation */
};

/*
 * Decides again, for the peer connected on fd (uid, gid from SO_PEERCRED),
 * when the broker's configuration changed since v was decided (b->cfg_gen).
 * Returns true when it did (so once-per-verdict notices can be said again).
 */
bool access_refresh(struct access_verdict *v, const struct broker *b, int fd, uid_t uid,
		    gid_t gid);

#endif
