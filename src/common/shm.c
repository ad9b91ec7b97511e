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

int
shm_snapshot(const char *name, struct shm_snapshot *out)
{
	return shm_snapshot_owned(name, (uid_t)-1, NULL, out);
}

int
shm_view_open(const char *name, uid_t owner, uid_t *found_owner, struct shm_view *v)
{
	struct stat st;
	int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
	int saved;

	memset(v, 0, sizeof(*v));
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
	/* Read once: whoever may write the segment must not move them under us. */
	uint32_t max_pools = h->max_pools, nslots = h->nslots;
	if (h->magic != SHM_MAGIC || h->layout_version != SHM_LAYOUT_VERSION ||
	    h->header_size != sizeof(struct shm_header) ||
	    h->pool_size != sizeof(struct shm_pool) || h->slot_size != sizeof(struct shm_slot) ||
	    max_pools > SHM_MAX_POOLS || nslots > SHM_MAX_SLOTS ||
	    shm_segment_size(max_pools, nslots) > size) {
		munmap((void *)(uintptr_t)p, size);
		errno = EPROTO;
		return -1;
	}
	snprintf(v->path, sizeof(v->path), "/dev/shm/%s", name[0] == '/' ? name + 1 : name);
	v->dev = st.st_dev;
	v->ino = st.st_ino;
	v->hdr = h;
	v->size = size;
	v->max_pools = max_pools;
	v->nslots = nslots;
	return 0;
}

void
shm_view_close(struct shm_view *v)
{
	if (v->hdr != NULL)
		munmap((void *)(uintptr_t)v->hdr, v->size);
	memset(v, 0, sizeof(*v));
}

bool
shm_view_current(const struct shm_view *v)
{
	struct stat st;

	/* glibc's shm_open() is an open() under /dev/shm */
	return v->hdr != NULL && stat(v->path, &st) == 0 && st.st_dev == v->dev &&
	       st.st_ino == v->ino;
}

/*
 * Runs copy(arg) until it ran between two reads of the same even sequence
 * number: 0, or -1 with errno EAGAIN.  An update takes microseconds; give
 * up after about a second without a clean copy (counted in time: on a
 * loaded machine each yield may cost a whole time slice).
 */
static int
read_consistent(const struct shm_header *h, void (*copy)(void *), void *arg)
{
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
		copy(arg);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&h->seq, memory_order_relaxed) == before)
			return 0;
	}
	errno = EAGAIN;
	return -1;
}

static const struct shm_pool *
view_pools(const struct shm_view *v)
{
	return (const struct shm_pool *)(v->hdr + 1);
}

struct whole_copy {
	const struct shm_view *v;
	struct shm_snapshot *out;
};

static void
copy_whole(void *arg)
{
	struct whole_copy *w = arg;
	const struct shm_pool *pools = view_pools(w->v);

	/* Everything but the writer's semaphore, which is no reader's business. */
	const size_t after = offsetof(struct shm_header, lock) + sizeof(w->v->hdr->lock);
	memcpy(&w->out->hdr, w->v->hdr, offsetof(struct shm_header, lock));
	memcpy((char *)&w->out->hdr + after, (const char *)w->v->hdr + after,
	       sizeof(struct shm_header) - after);
	memcpy(w->out->pools, pools, w->v->max_pools * sizeof(*pools));
	memcpy(w->out->slots, (const struct shm_slot *)(pools + w->v->max_pools),
	       w->v->nslots * sizeof(*w->out->slots));
}

struct pool_copy {
	const struct shm_view *v;
	uint32_t i;
	uint32_t npools;
	struct shm_pool *out;
};

static void
copy_pool(void *arg)
{
	struct pool_copy *c = arg;

	c->npools = c->v->hdr->npools;
	if (c->i < c->npools && c->i < c->v->max_pools)
		memcpy(c->out, &view_pools(c->v)[c->i], sizeof(*c->out));
}

/* NUL-terminates every string of a pool record: a writer may have left none. */
static void
terminate_pool(struct shm_pool *p)
{
	p->name[sizeof(p->name) - 1] = '\0';
	p->user[sizeof(p->user) - 1] = '\0';
	p->database[sizeof(p->database) - 1] = '\0';
	p->host[sizeof(p->host) - 1] = '\0';
	p->port[sizeof(p->port) - 1] = '\0';
}

int
shm_view_pool(const struct shm_view *v, uint32_t i, struct shm_pool *out)
{
	struct pool_copy c = { .v = v, .i = i, .out = out };

	if (read_consistent(v->hdr, copy_pool, &c) != 0)
		return -1;
	if (i >= c.npools || i >= v->max_pools) {
		errno = ENOENT;
		return -1;
	}
	terminate_pool(out);
	return 0;
}

int
shm_snapshot_owned(const char *name, uid_t owner, uid_t *found_owner, struct shm_snapshot *out)
{
	struct shm_view v;
	int saved;

	memset(out, 0, sizeof(*out));
	if (shm_view_open(name, owner, found_owner, &v) != 0)
		return -1;

	int rc = -1;
	out->pools = calloc(v.max_pools > 0 ? v.max_pools : 1, sizeof(*out->pools));
	out->slots = calloc(v.nslots > 0 ? v.nslots : 1, sizeof(*out->slots));
	if (out->pools == NULL || out->slots == NULL) {
		errno = ENOMEM;
		goto out;
	}
	struct whole_copy w = { .v = &v, .out = out };
	rc = read_consistent(v.hdr, copy_whole, &w);
	/* The copy describes what was allocated, whatever the segment says now. */
	out->hdr.max_pools = v.max_pools;
	out->hdr.nslots = v.nslots;
	if (rc == 0) {
		out->hdr.socket[sizeof(out->hdr.socket) - 1] = '\0';
		for (uint32_t i = 0; i < out->hdr.max_pools; i++)
			terminate_pool(&out->pools[i]);
		for (uint32_t i = 0; i < out->hdr.nslots; i++) {
			out->slots[i].host[sizeof(out->slots[i].host) - 1] = '\0';
			out->slots[i].port[sizeof(out->slots[i].port) - 1] = '\0';
		}
		if (out->hdr.npools > out->hdr.max_pools)
			out->hdr.npools = out->hdr.max_pools;
		out->broker_alive = shm_owner_running(out->hdr.broker_pid, out->hdr.broker_started) &&
				    clock_real_ms() - out->hdr.heartbeat_ms <= SHM_HEARTBEAT_STALE_MS;
	}
out:
	saved = errno;
	shm_view_close(&v);
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
