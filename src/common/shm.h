/*
 * shm.h - the broker's accounting in POSIX shared memory: the segment's
 * layout, and reading it (shm.c).  Writing it is the broker's alone
 * (shm_writer.h).
 *
 * Layout: a header, max_pools pool records, nslots slot records; fixed size,
 * set when the broker starts.  The broker is the only writer: it holds the
 * process-shared semaphore in the header across every update and bumps a
 * sequence counter to odd before and to even after.  Readers never lock
 * (a read-only mapping cannot): they copy and retry until they saw the same
 * even sequence on both sides.  Nothing secret is ever stored here.
 */
#ifndef PGL_SHM_H
#define PGL_SHM_H

#include <semaphore.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHM_MAGIC UINT64_C(0x31534c4541534c50)	/* "PLSAELS1" */
#define SHM_LAYOUT_VERSION 4	/* 4: the clients' fields at the header's end, a pool's
				 * paused, struct shm_slot's host, port, server */
#define SHM_MAX_POOLS 64
#define SHM_MAX_SLOTS 1000000	/* config.c's bound on max_total_slots */
#define SHM_NAME_LEN 64
/* A reader calls the broker down when the heartbeat is older than this. */
#define SHM_HEARTBEAT_STALE_MS 5000

enum shm_slot_state {
	SHM_SLOT_EMPTY = 0,
	SHM_SLOT_CONNECTING,
	SHM_SLOT_IDLE,
	SHM_SLOT_VALIDATING,
	SHM_SLOT_LEASED,
	SHM_SLOT_RESETTING,
	SHM_SLOT_CLOSING,
	SHM_SLOT_NSTATES
};

struct shm_pool {
	char name[SHM_NAME_LEN];
	/* The role and database its backends run as (nothing secret): what a
	 * client's connection parameters are matched against. */
	char user[SHM_NAME_LEN];
	char database[SHM_NAME_LEN];
	char host[128];			/* the server, as libpq's PQhost tells it */
	char port[16];
	int32_t min_size;
	int32_t max_size;
	uint32_t first_slot;		/* this pool's slot records */
	uint32_t nslots;
	int32_t size;			/* non-empty slots */
	int32_t idle;
	int32_t leased;
	int32_t waiting;
	int32_t restricted;		/* 1: the pool has its own allowed_uids/allowed_gids */
	uint64_t leases;
	uint64_t acquire_timeouts;
	uint64_t acquire_wait_us_total;
	uint64_t acquire_wait_us_max;
	uint64_t connects;
	uint64_t connect_failures;
	uint64_t health_check_failures;
	uint64_t resets;
	uint64_t reset_failures;
	uint64_t orphaned_leases;
	uint64_t lease_timeouts;
	int64_t backoff_until_ms;	/* realtime; 0 when not backing off */
	int32_t paused;			/* 1: paused by an administrator (pglease-ctl) */
	int32_t pad0;
};

struct shm_slot {
	int32_t state;			/* enum shm_slot_state */
	int32_t pool;			/* index into the pool records, -1 unused */
	int32_t backend_pid;
	int32_t holder_pid;
	uint64_t lease_id;
	int64_t created_at_ms;		/* realtime */
	int64_t leased_at_ms;		/* realtime; 0 when not leased */
	uint64_t lease_count;
	/* Layout 4: the server the backend is on, as libpq connected it (PQhost,
	 * PQport; "" when EMPTY), and what it reported of itself then. */
	char host[128];
	char port[16];
	int32_t server;			/* enum shm_server */
	int32_t reserved;
};

/* struct shm_slot's server: what the backend's server said of itself at connect. */
enum shm_server {
	SHM_SERVER_UNKNOWN = 0,		/* no backend, or it did not say */
	SHM_SERVER_PRIMARY,		/* in_hot_standby off (or not in recovery), writable */
	SHM_SERVER_STANDBY,		/* in hot standby */
	SHM_SERVER_READ_ONLY,		/* a primary with default_transaction_read_only on */
};

struct shm_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t header_size;		/* sizeof(struct shm_header), as written */
	uint32_t pool_size;		/* sizeof(struct shm_pool) */
	uint32_t slot_size;		/* sizeof(struct shm_slot) */
	_Atomic uint32_t seq;		/* odd while an update is under way */
	int32_t broker_pid;
	uint32_t incarnation;
	uint64_t broker_started;	/* the broker process's start time (/proc, ticks):
					 * tells it from a later process given its pid */
	uint32_t npools;		/* pool records in use */
	uint32_t max_pools;
	uint32_t nslots;
	int64_t start_time_ms;		/* realtime */
	int64_t heartbeat_ms;		/* realtime, every second */
	char socket[108];
	sem_t lock;			/* the writer's, process-shared */
	/* Layout 4: the broker's clients (listener.c, control.c, session.c).
	 * New fields go after these: readers copy the header around lock. */
	int32_t clients;		/* connected clients served (max_clients bounds them) */
	uint32_t reserved;
	uint64_t clients_accepted;	/* clients served since the start */
	uint64_t clients_denied;	/* refused: not in allowed_uids/allowed_gids */
	uint64_t clients_over_limit;	/* refused: max_clients reached */
};

/* --- reading ----------------------------------------------------------- */

/* A consistent copy of the whole segment, for readers. */
struct shm_snapshot {
	struct shm_header hdr;
	struct shm_pool *pools;		/* hdr.npools of them */
	struct shm_slot *slots;		/* hdr.nslots of them */
	int broker_alive;
};

/*
 * Maps segment name read-only and copies it.  The segment must belong to
 * root, to the caller's effective uid, or to owner ((uid_t)-1: none more);
 * anyone else could have put it there.  Every string of the copy is
 * NUL-terminated within its field.  Returns 0 with *out filled (free with
 * shm_snapshot_free), or -1 with errno: ENOENT (no segment), EPROTO (not a
 * pglease segment, or another layout version), EPERM (an untrusted owner,
 * in *found_owner when not NULL), EACCES, EAGAIN (the writer never let go),
 * ENOMEM.  A dead broker is reported in out->broker_alive, not as an error.
 */
int shm_snapshot_owned(const char *name, uid_t owner, uid_t *found_owner,
		       struct shm_snapshot *out) __attribute__((warn_unused_result));

/* shm_snapshot_owned() trusting root and the caller's own uid only. */
int shm_snapshot(const char *name, struct shm_snapshot *out)
	__attribute__((warn_unused_result));
void shm_snapshot_free(struct shm_snapshot *snap);

/*
 * A segment kept mapped, for a reader that looks often (the preload shim,
 * at every connect): opened and checked as shm_snapshot_owned() does, then
 * read record by record without mapping it again.  A view outlives its
 * broker: a broker that starts makes a new segment under the name (the
 * old one unlinked), which shm_view_current() tells with one stat (no
 * descriptor is kept: a program may close descriptors it did not open).
 */
struct shm_view {
	const struct shm_header *hdr;	/* NULL: not open */
	char path[256];			/* the segment's file, for shm_view_current() */
	dev_t dev;
	ino_t ino;
	size_t size;
	uint32_t max_pools;		/* as checked at open */
	uint32_t nslots;
};

/* Maps and checks name (see shm_snapshot_owned() for owner and errno). */
int shm_view_open(const char *name, uid_t owner, uid_t *found_owner, struct shm_view *v)
	__attribute__((warn_unused_result));
/* Unmaps v (a closed view too) and leaves it closed. */
void shm_view_close(struct shm_view *v);
/* Whether v is open on the segment its name still gives (not unlinked since). */
bool shm_view_current(const struct shm_view *v);

/*
 * A consistent copy of pool record i (strings NUL-terminated).  Returns 0,
 * or -1 with errno ENOENT (no record i in use) or EAGAIN (the writer never
 * let go).
 */
int shm_view_pool(const struct shm_view *v, uint32_t i, struct shm_pool *out)
	__attribute__((warn_unused_result));

/* The name of a slot state ("idle"). */
const char *shm_slot_state_name(int state);

/* --- what the writer shares with the readers ----------------------------- */

/* The size of a segment with room for max_pools pools and nslots slots. */
size_t shm_segment_size(uint32_t max_pools, uint32_t nslots);

/* When process pid started (field 22 of /proc/PID/stat), or 0 when unknown. */
uint64_t shm_process_started(pid_t pid);

/*
 * Whether the process that wrote a header still runs: pid is alive and,
 * where /proc tells, started when the header says (not a later process
 * that was given the same pid).
 */
bool shm_owner_running(pid_t pid, uint64_t started);

#endif
