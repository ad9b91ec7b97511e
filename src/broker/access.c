/*
 * access.c - who may use the broker.
 *
 * Identity comes from the kernel (SO_PEERCRED, SO_PEERGROUPS), never from a
 * payload.  The decision is a pure function of the lists and the identity,
 * so the unit suite checks it directly.
 */
#include "autoconf.h"

#include "broker/access.h"
#include "broker/pool.h"

#include <sys/socket.h>

static bool
uid_listed(const uid_t *ids, size_t n, uid_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static bool
gid_listed(const gid_t *ids, size_t n, gid_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* The peer's uid is in uids, or its primary or a supplementary group in gids. */
static bool
listed(const uid_t *uids, size_t nuids, const gid_t *gids, size_t ngids,
       const struct access_peer *peer)
{
	if (uid_listed(uids, nuids, peer->uid) || gid_listed(gids, ngids, peer->gid))
		return true;
	for (size_t i = 0; i < peer->ngroups; i++)
		if (gid_listed(gids, ngids, peer->groups[i]))
			return true;
	return false;
}

bool
access_broker_allows(const struct broker_config *bc, uid_t owner, const struct access_peer *peer)
{
	if (bc->n_allowed_uids == 0 && bc->n_allowed_gids == 0)
		return peer->uid == owner;
	return listed(bc->allowed_uids, bc->n_allowed_uids, bc->allowed_gids, bc->n_allowed_gids,
		      peer);
}

bool
access_pool_allows(const struct pool_config *pc, const struct access_peer *peer)
{
	if (!pc->restricted)
		return true;
	return listed(pc->allowed_uids, pc->n_allowed_uids, pc->allowed_gids, pc->n_allowed_gids,
		      peer);
}

bool
access_admin_allows(const struct broker_config *bc, uid_t owner, const struct access_peer *peer)
{
	if (bc->n_admin_uids == 0 && bc->n_admin_gids == 0)
		return peer->uid == 0 || peer->uid == owner;
	return listed(bc->admin_uids, bc->n_admin_uids, bc->admin_gids, bc->n_admin_gids, peer);
}

bool
access_is_admin(const struct broker *b, int fd, uid_t uid, gid_t gid)
{
	gid_t groups[256];
	struct access_peer peer = { .uid = uid, .gid = gid };

	access_peer_groups(fd, &peer, groups, sizeof(groups) / sizeof(groups[0]));
	return access_admin_allows(&b->cfg->broker, b->uid, &peer);
}

void
access_peer_groups(int fd, struct access_peer *peer, gid_t *buf, size_t cap)
{
	socklen_t len = (socklen_t)(cap * sizeof(gid_t));

	peer->groups = buf;
	peer->ngroups = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, &len) == 0)
		peer->ngroups = len / sizeof(gid_t);
}

/* --- a connected peer's verdicts ------------------------------------------------ */

bool
access_refresh(struct access_verdict *v, const struct broker *b, int fd, uid_t uid, gid_t gid)
{
	gid_t groups[256];
	struct access_peer peer = { .uid = uid, .gid = gid };

	if (v->gen == b->cfg_gen)
		return false;
	access_peer_groups(fd, &peer, groups, sizeof(groups) / sizeof(groups[0]));
	v->broker_ok = access_broker_allows(&b->cfg->broker, b->uid, &peer);
	v->pools_ok = 0;
	for (size_t i = 0; i < b->npools; i++) {
		const struct pool *p = b->pools[i];
		if (!p->removed && access_pool_allows(p->cfg, &peer))
			v->pools_ok |= UINT64_C(1) << p->index;
	}
	v->gen = b->cfg_gen;
	return true;
}
