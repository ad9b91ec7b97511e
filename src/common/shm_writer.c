/*
 * shm_writer.c - the broker's side of the accounting segment: create it,
 * bracket its updates, remove it.  Only pgleased (and check_shm) link it.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/shm_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Whether the existing segment on fd belongs to a live broker; fills owner.
 * A segment too small or not ours counts as dead.
 */
static bool
owner_alive(int fd, pid_t *owner)
{
	struct stat st;
	struct shm_header h;

	*owner = 0;
	if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(h))
		return false;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.magic != SHM_MAGIC)
		return false;
	*owner = h.broker_pid;
	/* A running owner keeps its segment, however slow its heartbeat (a
	 * reader may call it down; nobody may take it over). */
	if (h.layout_version != SHM_LAYOUT_VERSION)	/* no start time to compare */
		return h.broker_pid != getpid() &&	/* we write only ours: a dead one's pid, reused */
		       (kill(h.broker_pid, 0) == 0 || errno == EPERM);
	return shm_owner_running(h.broker_pid, h.broker_started);
}

int
shm_create(struct shm *s, const char *name, mode_t mode, gid_t group, uint32_t nslots,
	   uint32_t incarnation, char *err, size_t errlen)
{
	size_t size = shm_segment_size(SHM_MAX_POOLS, nslots);
	int fd = -1;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	snprintf(s->name, sizeof(s->name), "%s", name);
	for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
		/* Owner only until the group is the configured one. */
		fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0700);
		if (fd >= 0 || errno != EEXIST)
			break;

		int old = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
		pid_t owner = 0;
		if (old >= 0) {
			bool alive = owner_alive(old, &owner);
			close(old);
			if (alive) {
				snprintf(err, errlen, "shared memory %s belongs to a running broker "
					 "(pid %d): use another shm_name", name, (int)owner);
				return -1;
			}
		}
		/* A dead broker's segment: replace it (readers keep their old mapping). */
		if (shm_unlink(name) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot remove the stale shared memory %s: %s",
				 name, strerror(errno));
			return -1;
		}
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot create shared memory %s: %s", name, strerror(errno));
		return -1;
	}
	if (group != (gid_t)-1 && fchown(fd, (uid_t)-1, group) != 0) {
		snprintf(err, errlen, "cannot give shared memory %s to group %u: %s", name,
			 (unsigned)group, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, mode) != 0 || ftruncate(fd, (off_t)size) != 0) {
		snprintf(err, errlen, "cannot size shared memory %s: %s", name, strerror(errno));
		goto fail;
	}

	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot map shared memory %s: %s", name, strerror(errno));
		goto fail;
	}
	s->fd = fd;
	s->size = size;
	s->hdr = p;
	s->pools = (struct shm_pool *)(s->hdr + 1);
	s->slots = (struct shm_slot *)(s->pools + SHM_MAX_POOLS);

	struct shm_header *h = s->hdr;
	if (sem_init(&h->lock, 1, 1) != 0) {
		snprintf(err, errlen, "cannot initialise the shared memory lock: %s",
			 strerror(errno));
		shm_destroy(s);
		return -1;
	}
	h->layout_version = SHM_LAYOUT_VERSION;
	h->header_size = sizeof(struct shm_header);
	h->pool_size = sizeof(struct shm_pool);
	h->slot_size = sizeof(struct shm_slot);
	atomic_store(&h->seq, 0);
	h->broker_pid = (int32_t)getpid();
	h->broker_started = shm_process_started(getpid());
	h->incarnation = incarnation;
	h->max_pools = SHM_MAX_POOLS;
	h->nslots = nslots;
	h->start_time_ms = clock_real_ms();
	h->heartbeat_ms = h->start_time_ms;
	for (uint32_t i = 0; i < nslots; i++)
		s->slots[i].pool = -1;
	/* Last: a reader that sees the magic sees a whole header. */
	atomic_thread_fence(memory_order_release);
	h->magic = SHM_MAGIC;
	return 0;
fail:
	close(fd);
	shm_unlink(name);
	return -1;
}

/* Whether name still refers to the segment open on fd (not a successor's). */
static bool
still_ours(const char *name, int fd)
{
	struct stat mine, now;
	int cur = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
	bool same;

	if (cur < 0)
		return false;
	same = fstat(fd, &mine) == 0 && fstat(cur, &now) == 0 &&
	       mine.st_dev == now.st_dev && mine.st_ino == now.st_ino;
	close(cur);
	return same;
}

void
shm_destroy(struct shm *s)
{
	if (s->hdr != NULL) {
		sem_destroy(&s->hdr->lock);
		munmap(s->hdr, s->size);
		if (s->fd >= 0 && still_ours(s->name, s->fd))
			shm_unlink(s->name);
	}
	if (s->fd >= 0)
		close(s->fd);
	s->hdr = NULL;
	s->fd = -1;
}

void
shm_begin(struct shm *s)
{
	int rc;

	while ((rc = sem_trywait(&s->hdr->lock)) != 0 && errno == EINTR)
		;
	s->locked = rc == 0;
	if (!s->locked) {
		int64_t now = clock_real_ms();
		if (s->lock_warned_ms == 0 || now - s->lock_warned_ms >= 60000) {
			s->lock_warned_ms = now;
			log_warnx("the lock of shared memory %s is held by another process: "
				  "updating it without (check who can write the segment)", s->name);
		}
	}
	atomic_fetch_add_explicit(&s->hdr->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

void
shm_end(struct shm *s)
{
	atomic_fetch_add_explicit(&s->hdr->seq, 1, memory_order_release);
	if (s->locked)
		sem_post(&s->hdr->lock);
	s->locked = false;
}
