/*
 * shm_writer.h - the broker's side of the accounting segment (layout and
 * readers: shm.h).  The broker is the segment's only writer.
 */
#ifndef PGL_SHM_WRITER_H
#define PGL_SHM_WRITER_H

#include "common/shm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The broker's mapping. */
struct shm {
	char name[256];
	int fd;
	size_t size;
	struct shm_header *hdr;
	struct shm_pool *pools;
	struct shm_slot *slots;
	bool locked;			/* shm_begin() took the semaphore */
	int64_t lock_warned_ms;		/* when an intruder's hold was last logged */
};

/*
 * Creates segment name (mode applied exactly, whatever the umask; given to
 * group unless it is (gid_t)-1, before anyone but the owner may open it)
 * with room for nslots slots, and initialises it.  A segment whose broker is dead (pid
 * gone, or heartbeat stale) is replaced; one whose broker lives is not.
 * Returns 0, or -1 with a sentence in err.
 */
int shm_create(struct shm *s, const char *name, mode_t mode, gid_t group, uint32_t nslots,
	       uint32_t incarnation, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Unmaps and removes the segment. */
void shm_destroy(struct shm *s);

/*
 * Brackets every update of the segment by the broker.  Never blocks: the
 * broker is the segment's only writer, so a lock it cannot take at once is
 * held by an intruder; that is logged (at most once a minute) and the
 * update goes on under the seqlock alone.
 */
void shm_begin(struct shm *s);
void shm_end(struct shm *s);

#endif
