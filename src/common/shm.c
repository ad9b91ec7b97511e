/*
 * shm.c - read the accounting segment: a consistent copy without a lock.
 * What the library, the preload shim and pglease-stat link; the broker's
 * writing is shm_writer.c.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- what the writer shares with the readers ----------------------------- */

size_t
shm_segment_size(uint32_t max_pools, uint32_t nslots)
{
	return sizeof(struct shm_header) + (size_t)max_pools * sizeof(struct shm_pool) +
	       (size_t)nslots * sizeof(struct shm_slot);
}

uint64_t
shm_process_started(pid_t pid)
{
	char path[64], buf[1024];
	FILE *f;
	uint64_t ticks = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after the command name, which may hold anything: the last ')' */
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return 0;
	/* fields 3 .. 22: the 20th after ')' is starttime */
	p++;
	for (int field = 3; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p != NULL)
		ticks = strtoull(p + 1, NULL, 10);
	return ticks;
}

bool
shm_owner_running(pid_t pid, uint64_t started)
{
	if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM))
		return false;
	uint64_t now = shm_process_started(pid);
	return started == 0 || now == 0 || now == started;
}

/* --- reading ------------------------------------------------------------- */

/* NUL-terminates every string of a copy: a writer may have left none. */
static void
terminate_strings(struct shm_snapshot *out)
{
	out->hdr.socket[sizeof(out->hdr.socket) - 1] = '\0';
	for (uint32_t i = 0; i < out->hdr.max_pools; i++) {
		out->pools[i].name[sizeof(out->pools[i].name) - 1] = '\0';
		out->pools[i].user[sizeof(out->pools[i].user) - 1] = '\0';
		out->pools[i].database[sizeof(out->pools[i].database) - 1] = '\0';
		out->pools[i].host[sizeof(out->pools[i].host) - 1] = '\0';
		out->pools[i].port[sizeof(out->pools[i].port) - 1] = '\0';
	}
}

int
shm_snapshot(const char *name, struct shm_snapshot *out)
{
	return shm_snapshot_owned(name, (uid_t)-1, NULL, out);
}

int
shm_snapshot_owned(const char *name, uid_t owner, uid_t *found_owner, struct shm_snapshot *out)
{
	struct stat st;
	int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
	int saved;

	memset(out, 0, sizeof(*out));
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != owner) {
		if (found_owner != NULL)
			*found_owner = st.st_uid;
		close(fd);
		errno = EPERM;
		return -1;
	}
	if ((size_t)st.st_size < sizeof(struct shm_header)) {
		close(fd);
		errno = EPROTO;
		return -1;
	}

	size_t size = (size_t)st.st_size;
	const void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	saved = errno;
	close(fd);
	if (p == MAP_FAILED) {
		errno = saved;
		return -1;
	}

	const struct shm_header *h = p;
	int rc = -1;
	/* Read once: whoever may write the segment must not move them under us. */
	uint32_t max_pools = h->max_pools, nslots = h->nslots;
	errno = EPROTO;
	if (h->magic != SHM_MAGIC || h->layout_version != SHM_LAYOUT_VERSION ||
	    h->header_size != sizeof(struct shm_header) ||
	    h->pool_size != sizeof(struct shm_pool) || h->slot_size != sizeof(struct shm_slot) ||
	    max_pools > SHM_MAX_POOLS || nslots > SHM_MAX_SLOTS ||
	    shm_segment_size(max_pools, nslots) > size)
		goto out;

	const struct shm_pool *pools = (const struct shm_pool *)(h + 1);
	const struct shm_slot *slots = (const struct shm_slot *)(pools + max_pools);
	out->pools = calloc(max_pools > 0 ? max_pools : 1, sizeof(*out->pools));
	out->slots = calloc(nslots > 0 ? nslots : 1, sizeof(*out->slots));
	if (out->pools == NULL || out->slots == NULL) {
		errno = ENOMEM;
		goto out;
	}

	/*
	 * An update takes microseconds.  Give up after about a second without a
	 * clean copy (counted in time: on a loaded machine each yield may cost a
	 * whole time slice).
	 */
	errno = EAGAIN;
	int64_t give_up = 0;
	for (int tries = 0;; tries++) {
		if (tries > 0 && (tries & 63) == 0) {
			int64_t now = clock_real_ms();
			if (give_up == 0)
				give_up = now + 1000;
			else if (now >= give_up)
				break;
		}
		uint32_t before = atomic_load_explicit(&h->seq, memory_order_acquire);
		if (before & 1) {
			sched_yield();
			continue;
		}
		memcpy(&out->hdr, h, offsetof(struct shm_header, lock));
		memcpy(out->pools, pools, max_pools * sizeof(*pools));
		memcpy(out->slots, slots, nslots * sizeof(*slots));
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&h->seq, memory_order_relaxed) == before) {
			rc = 0;
			break;
		}
	}
	/* The copy describes what was allocated, whatever the segment says now. */
	out->hdr.max_pools = max_pools;
	out->hdr.nslots = nslots;
	if (rc == 0) {
		terminate_strings(out);
		if (out->hdr.npools > out->hdr.max_pools)
			out->hdr.npools = out->hdr.max_pools;
		out->broker_alive = shm_owner_running(out->hdr.broker_pid, out->hdr.broker_started) &&
				    clock_real_ms() - out->hdr.heartbeat_ms <= SHM_HEARTBEAT_STALE_MS;
	}
out:
	saved = errno;
	munmap((void *)(uintptr_t)p, size);
	if (rc != 0) {
		shm_snapshot_free(out);
		errno = saved;
	}
	return rc;
}

void
shm_snapshot_free(struct shm_snapshot *snap)
{
	free(snap->pools);
	free(snap->slots);
	snap->pools = NULL;
	snap->slots = NULL;
}

const char *
shm_slot_state_name(int state)
{
	static const char *const names[] = {
		[SHM_SLOT_EMPTY] = "empty",
		[SHM_SLOT_CONNECTING] = "connecting",
		[SHM_SLOT_IDLE] = "idle",
		[SHM_SLOT_VALIDATING] = "validating",
		[SHM_SLOT_LEASED] = "leased",
		[SHM_SLOT_RESETTING] = "resetting",
		[SHM_SLOT_CLOSING] = "closing",
	};

	return state >= 0 && state < SHM_SLOT_NSTATES ? names[state] : "unknown";
}
