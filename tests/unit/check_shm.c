/*
 * check_shm.c - the accounting segment: creation, replacement of a dead
 * broker's segment, snapshots (consistent under a busy writer) and their
 * errors.
 */
#include "autoconf.h"

#include "common/shm_writer.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NSLOTS 64

/* A name of our own: "/pglease.unit.<pid>.<n>". */
static const char *
unique_name(void)
{
	static char name[64];
	static int n;

	snprintf(name, sizeof(name), "/pglease.unit.%d.%d", (int)getpid(), ++n);
	shm_unlink(name);
	return name;
}

/*
 * Unchecked teardown, in the runner: removes what a failed test left behind,
 * the segments named after a test process that is gone.
 */
static void
sweep_leftovers(void)
{
	DIR *d = opendir("/dev/shm");

	if (d == NULL)
		return;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		int pid, n, end = 0;
		char name[300];

		if (sscanf(e->d_name, "pglease.unit.%d.%d%n", &pid, &n, &end) != 2 ||
		    e->d_name[end] != '\0' || pid <= 0)
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(name, sizeof(name), "/%s", e->d_name);
		shm_unlink(name);
	}
	closedir(d);
}

static bool
name_exists(const char *name)
{
	int fd = shm_open(name, O_RDONLY, 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* A pid that is not running: a child that has been reaped. */
static pid_t
dead_pid(void)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	ck_assert_int_eq(kill(pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	return pid;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Busy-waits for us microseconds: a pause that does not leave the CPU. */
static void
spin_us(int us)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

static void
create_ok(struct shm *s, const char *name, mode_t mode, uint32_t nslots, uint32_t inc)
{
	char err[512] = "";

	ck_assert_msg(shm_create(s, name, mode, (gid_t)-1, nslots, inc, err, sizeof(err)) == 0,
		      "shm_create %s: %s", name, err);
}

START_TEST(test_create_and_snapshot)
{
	const char *name = unique_name();
	struct shm s;
	struct shm_snapshot snap;

	create_ok(&s, name, 0600, NSLOTS, 0xabcd1234);
	ck_assert_ptr_nonnull(s.hdr);
	ck_assert_str_eq(s.name, name);
	ck_assert_uint_eq(s.hdr->magic, SHM_MAGIC);
	ck_assert_int_eq(s.hdr->broker_pid, getpid());
	ck_assert_uint_eq(s.hdr->nslots, NSLOTS);
	ck_assert_uint_eq(s.hdr->max_pools, SHM_MAX_POOLS);
	ck_assert_uint_eq(atomic_load(&s.hdr->seq), 0);

	/* a fresh segment: every slot unused */
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_uint_eq(snap.hdr.npools, 0);
	for (uint32_t i = 0; i < NSLOTS; i++) {
		ck_assert_int_eq(snap.slots[i].pool, -1);
		ck_assert_int_eq(snap.slots[i].state, SHM_SLOT_EMPTY);
	}
	shm_snapshot_free(&snap);

	shm_begin(&s);
	ck_assert_uint_eq(atomic_load(&s.hdr->seq) & 1, 1);	/* odd while writing */
	s.hdr->npools = 2;
	snprintf(s.pools[0].name, sizeof(s.pools[0].name), "main");
	s.pools[0].max_size = 20;
	s.pools[0].first_slot = 0;
	s.pools[0].nslots = 20;
	s.pools[0].leases = UINT64_C(1) << 40;
	snprintf(s.pools[1].name, sizeof(s.pools[1].name), "reporting");
	s.pools[1].first_slot = 20;
	s.pools[1].nslots = 4;
	s.pools[1].idle = 3;
	s.slots[5].pool = 0;
	s.slots[5].state = SHM_SLOT_LEASED;
	s.slots[5].backend_pid = 4321;
	s.slots[5].holder_pid = 8765;
	s.slots[5].lease_id = UINT64_C(0xabcd123400000009);
	s.slots[NSLOTS - 1].pool = 1;
	s.slots[NSLOTS - 1].state = SHM_SLOT_IDLE;
	s.slots[NSLOTS - 1].lease_count = 77;
	shm_end(&s);
	ck_assert_uint_eq(atomic_load(&s.hdr->seq), 2);

	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_int_eq(snap.broker_alive, 1);
	ck_assert_uint_eq(snap.hdr.magic, SHM_MAGIC);
	ck_assert_uint_eq(snap.hdr.layout_version, SHM_LAYOUT_VERSION);
	ck_assert_int_eq(snap.hdr.broker_pid, getpid());
	ck_assert_uint_eq(snap.hdr.incarnation, 0xabcd1234);
	ck_assert_uint_eq(snap.hdr.nslots, NSLOTS);
	ck_assert_uint_eq(snap.hdr.npools, 2);
	ck_assert_uint_eq(snap.hdr.seq, 2);
	ck_assert_str_eq(snap.pools[0].name, "main");
	ck_assert_int_eq(snap.pools[0].max_size, 20);
	ck_assert_uint_eq(snap.pools[0].nslots, 20);
	ck_assert_uint_eq(snap.pools[0].leases, UINT64_C(1) << 40);
	ck_assert_str_eq(snap.pools[1].name, "reporting");
	ck_assert_uint_eq(snap.pools[1].first_slot, 20);
	ck_assert_int_eq(snap.pools[1].idle, 3);
	ck_assert_int_eq(snap.slots[5].pool, 0);
	ck_assert_int_eq(snap.slots[5].state, SHM_SLOT_LEASED);
	ck_assert_int_eq(snap.slots[5].backend_pid, 4321);
	ck_assert_int_eq(snap.slots[5].holder_pid, 8765);
	ck_assert_uint_eq(snap.slots[5].lease_id, UINT64_C(0xabcd123400000009));
	ck_assert_int_eq(snap.slots[NSLOTS - 1].pool, 1);
	ck_assert_uint_eq(snap.slots[NSLOTS - 1].lease_count, 77);
	ck_assert_int_eq(snap.slots[4].pool, -1);
	ck_assert_str_eq(shm_slot_state_name(snap.slots[5].state), "leased");
	shm_snapshot_free(&snap);
	ck_assert_ptr_null(snap.pools);
	ck_assert_ptr_null(snap.slots);

	/* a snapshot is a copy: later updates do not show in it */
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	shm_begin(&s);
	s.slots[5].lease_count = 1000;
	shm_end(&s);
	ck_assert_uint_eq(snap.slots[5].lease_count, 0);
	shm_snapshot_free(&snap);

	shm_destroy(&s);
	ck_assert(!name_exists(name));
}
END_TEST

START_TEST(test_second_create_refused)
{
	const char *name = unique_name();
	struct shm s, t;
	char err[512] = "", pid[32];

	create_ok(&s, name, 0600, 4, 1);
	ck_assert_int_eq(shm_create(&t, name, 0600, (gid_t)-1, 4, 2, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "running broker") != NULL, "%s", err);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	ck_assert_msg(strstr(err, pid) != NULL, "no pid %s in: %s", pid, err);
	ck_assert_msg(strstr(err, name) != NULL, "no name in: %s", err);
	ck_assert_ptr_null(t.hdr);
	shm_destroy(&t);	/* harmless on a failed create */

	/* the first one is untouched */
	struct shm_snapshot snap;
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_uint_eq(snap.hdr.incarnation, 1);
	ck_assert_int_eq(snap.broker_alive, 1);
	shm_snapshot_free(&snap);
	shm_destroy(&s);
	ck_assert(!name_exists(name));
}
END_TEST

/* A broker that died without cleaning up: its segment is taken over. */
START_TEST(test_dead_broker_replaced)
{
	const char *name = unique_name();
	struct shm s;
	struct shm_snapshot snap;

	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct shm c;
		char err[512];
		if (shm_create(&c, name, 0600, (gid_t)-1, 4, 111, err, sizeof(err)) != 0)
			_exit(1);
		c.slots[0].lease_count = 5;
		_exit(0);	/* no shm_destroy */
	}
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", status);
	ck_assert(name_exists(name));

	/* readers see a dead broker */
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_int_eq(snap.hdr.broker_pid, child);
	ck_assert_uint_eq(snap.hdr.incarnation, 111);
	ck_assert_uint_eq(snap.slots[0].lease_count, 5);
	ck_assert_int_eq(snap.broker_alive, 0);
	shm_snapshot_free(&snap);

	create_ok(&s, name, 0600, 8, 222);
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_int_eq(snap.hdr.broker_pid, getpid());
	ck_assert_uint_eq(snap.hdr.incarnation, 222);
	ck_assert_uint_eq(snap.hdr.nslots, 8);
	ck_assert_uint_eq(snap.slots[0].lease_count, 0);	/* a new segment */
	ck_assert_int_eq(snap.broker_alive, 1);
	shm_snapshot_free(&snap);
	shm_destroy(&s);
	ck_assert(!name_exists(name));
}
END_TEST

/* The same, with the pid in the header overwritten. */
START_TEST(test_dead_pid_in_header)
{
	const char *name = unique_name();
	struct shm s, t;
	struct shm_snapshot snap;
	pid_t gone = dead_pid();

	create_ok(&s, name, 0600, 4, 1);
	shm_begin(&s);
	s.hdr->broker_pid = gone;
	shm_end(&s);

	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_int_eq(snap.hdr.broker_pid, gone);
	ck_assert_int_eq(snap.broker_alive, 0);
	shm_snapshot_free(&snap);

	create_ok(&t, name, 0600, 4, 2);
	ck_assert_int_eq(t.hdr->broker_pid, getpid());
	ck_assert_uint_eq(t.hdr->incarnation, 2);
	/* the old mapping is a different, now nameless, segment */
	ck_assert_int_eq(s.hdr->broker_pid, gone);
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_uint_eq(snap.hdr.incarnation, 2);
	shm_snapshot_free(&snap);

	shm_destroy(&t);
	ck_assert(!name_exists(name));
	/* the old one's unlink finds nothing to remove; it must not fail badly */
	shm_destroy(&s);
	ck_assert(!name_exists(name));
}
END_TEST

/* A live pid but a heartbeat long stopped: dead as well. */
/*
 * A stalled broker (pid alive, heartbeat old): readers call it down, but its
 * segment is not taken over while the pid lives (DESIGN section 5).
 */
START_TEST(test_stale_heartbeat)
{
	const char *name = unique_name();
	struct shm s, t;
	struct shm_snapshot snap;
	char err[512] = "";

	create_ok(&s, name, 0600, 4, 1);
	shm_begin(&s);
	s.hdr->heartbeat_ms -= 60 * 1000;
	shm_end(&s);
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_int_eq(snap.broker_alive, 0);
	shm_snapshot_free(&snap);

	ck_assert_int_eq(shm_create(&t, name, 0600, (gid_t)-1, 4, 2, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "running broker") != NULL, "%s", err);
	ck_assert_int_eq(s.hdr->incarnation, 1);
	shm_destroy(&s);
	ck_assert(!name_exists(name));
}
END_TEST

/* A second broker's create takes s's segment over; then both go, and the name with them. */
static void
taken_over(struct shm *s, const char *name)
{
	struct shm t;

	create_ok(&t, name, 0600, 4, 2);
	ck_assert_uint_eq(t.hdr->incarnation, 2);
	shm_destroy(&t);
	shm_destroy(s);
	ck_assert(!name_exists(name));
}

/*
 * A leftover whose pid now belongs to another process (pid reuse: the start
 * time differs) is a dead broker's, and replaced.
 */
START_TEST(test_reused_pid_replaced)
{
	const char *name = unique_name();
	struct shm s;

	create_ok(&s, name, 0600, 4, 1);
	ck_assert_uint_ne(s.hdr->broker_started, 0);
	shm_begin(&s);
	s.hdr->broker_started += 12345;		/* "another process with our pid" */
	shm_end(&s);
	taken_over(&s, name);
}
END_TEST

/*
 * A segment of another layout version has no start time to compare: one
 * naming our own pid was left by a dead broker whose pid we now have (we
 * write only the current layout), and is replaced.
 */
START_TEST(test_old_layout_with_our_pid_replaced)
{
	const char *name = unique_name();
	struct shm s;

	create_ok(&s, name, 0600, 4, 1);
	shm_begin(&s);
	s.hdr->layout_version = SHM_LAYOUT_VERSION - 1;
	shm_end(&s);
	taken_over(&s, name);
}
END_TEST

/* A leftover that is not a pglease segment at all is replaced too. */
START_TEST(test_foreign_leftover_replaced)
{
	const char *name = unique_name();
	struct shm s;
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "junk", 4), 4);
	close(fd);
	create_ok(&s, name, 0600, 4, 9);
	ck_assert_uint_eq(s.hdr->incarnation, 9);
	shm_destroy(&s);
	ck_assert(!name_exists(name));
}
END_TEST

START_TEST(test_snapshot_missing)
{
	struct shm_snapshot snap;
	const char *name = unique_name();

	errno = 0;
	ck_assert_int_eq(shm_snapshot(name, &snap), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(snap.pools);
	ck_assert_ptr_null(snap.slots);
}
END_TEST

static void
write_segment(const char *name, const void *data, size_t len)
{
	int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

START_TEST(test_snapshot_not_ours)
{
	struct shm_snapshot snap;
	const char *name = unique_name();
	static unsigned char garbage[65536];

	/* garbage large enough for any header */
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (unsigned char)(i * 131 + 7);
	write_segment(name, garbage, sizeof(garbage));
	errno = 0;
	ck_assert_int_eq(shm_snapshot(name, &snap), -1);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_ptr_null(snap.pools);

	/* too small for a header */
	write_segment(name, "tiny", 4);
	errno = 0;
	ck_assert_int_eq(shm_snapshot(name, &snap), -1);
	ck_assert_int_eq(errno, EPROTO);

	/* empty */
	write_segment(name, "", 0);
	errno = 0;
	ck_assert_int_eq(shm_snapshot(name, &snap), -1);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_int_eq(shm_unlink(name), 0);
}
END_TEST

/* A real header with one thing wrong at a time. */
START_TEST(test_snapshot_bad_header)
{
	const char *name = unique_name();
	struct shm s;
	struct shm_snapshot snap;

	create_ok(&s, name, 0600, 4, 1);
	struct shm_header saved = { .magic = 0 };
	memcpy(&saved, s.hdr, offsetof(struct shm_header, lock));

	for (int c = 0; c < 6; c++) {
		shm_begin(&s);
		switch (c) {
		case 0: s.hdr->magic ^= 1; break;
		case 1: s.hdr->layout_version = SHM_LAYOUT_VERSION + 1; break;
		case 2: s.hdr->slot_size += 8; break;
		case 3: s.hdr->pool_size -= 8; break;
		case 4: s.hdr->max_pools = SHM_MAX_POOLS + 1; break;
		default: s.hdr->nslots = 5; break;	/* larger than the segment */
		}
		shm_end(&s);
		errno = 0;
		ck_assert_msg(shm_snapshot(name, &snap) == -1, "case %d accepted", c);
		ck_assert_msg(errno == EPROTO, "case %d: %s", c, strerror(errno));

		shm_begin(&s);
		s.hdr->magic = saved.magic;
		s.hdr->layout_version = saved.layout_version;
		s.hdr->slot_size = saved.slot_size;
		s.hdr->pool_size = saved.pool_size;
		s.hdr->max_pools = saved.max_pools;
		s.hdr->nslots = saved.nslots;
		shm_end(&s);
		ck_assert_int_eq(shm_snapshot(name, &snap), 0);
		shm_snapshot_free(&snap);
	}
	shm_destroy(&s);
}
END_TEST

START_TEST(test_mode_exact)
{
	static const mode_t modes[] = { 0600, 0640, 0644, 0666, 0604 };

	umask(077);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		const char *name = unique_name();
		struct shm s;
		struct stat st;

		create_ok(&s, name, modes[i], 4, 1);
		int fd = shm_open(name, O_RDONLY, 0);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(fstat(fd, &st), 0);
		close(fd);
		ck_assert_msg((st.st_mode & 07777) == modes[i], "asked %04o, got %04o",
			      (unsigned)modes[i], (unsigned)(st.st_mode & 07777));
		ck_assert_uint_ge((uint64_t)st.st_size, sizeof(struct shm_header) +
				  SHM_MAX_POOLS * sizeof(struct shm_pool) +
				  4 * sizeof(struct shm_slot));
		shm_destroy(&s);
	}
}
END_TEST

/*
 * A writer child updates every slot in each critical section; the parent's
 * snapshots must never see two values at once.  The writer pauses in the
 * middle of each update (a wide window for a torn read, should a reader not
 * notice the update) and, for a varying while, between updates (room for a
 * reader to complete a copy, or to start one just before the next update).
 */
#define WRITER_MS 300
#define SEQ_SLOTS 512

START_TEST(test_seqlock)
{
	const char *name = unique_name();
	struct shm s;
	struct shm_snapshot snap;
	int go[2];

	create_ok(&s, name, 0600, SEQ_SLOTS, 1);
	ck_assert_int_eq(pipe(go), 0);

	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		close(go[0]);
		int64_t end = now_ms() + WRITER_MS;
		uint64_t k = 0;
		bool told = false;
		while (now_ms() < end) {
			k++;
			shm_begin(&s);
			for (uint32_t i = 0; i < SEQ_SLOTS / 2; i++)
				s.slots[i].lease_count = k;
			spin_us(2);
			for (uint32_t i = SEQ_SLOTS / 2; i < SEQ_SLOTS; i++)
				s.slots[i].lease_count = k;
			s.hdr->heartbeat_ms = (int64_t)k;	/* a header field too */
			shm_end(&s);
			spin_us((int)(k % 8) * 4);
			if (!told) {
				(void)!write(go[1], "g", 1);
				told = true;
			}
		}
		_exit(k > 10 ? 0 : 1);
	}
	close(go[1]);
	char c;
	ck_assert_int_eq(read(go[0], &c, 1), 1);	/* the writer is under way */
	close(go[0]);

	int good = 0, busy = 0, distinct = 0;
	uint64_t last = 0;
	int64_t deadline = now_ms() + WRITER_MS;
	while (now_ms() < deadline) {
		errno = 0;
		if (shm_snapshot(name, &snap) != 0) {
			ck_assert_msg(errno == EAGAIN, "snapshot: %s", strerror(errno));
			busy++;
			continue;
		}
		uint64_t k = snap.slots[0].lease_count;
		ck_assert_uint_eq(snap.hdr.seq & 1, 0);
		for (uint32_t i = 1; i < SEQ_SLOTS; i++)
			ck_assert_msg(snap.slots[i].lease_count == k,
				      "torn read: slot 0 has %llu, slot %u has %llu",
				      (unsigned long long)k, i,
				      (unsigned long long)snap.slots[i].lease_count);
		ck_assert_uint_eq((uint64_t)snap.hdr.heartbeat_ms, k);
		ck_assert_msg(k >= last, "went back from %llu to %llu", (unsigned long long)last,
			      (unsigned long long)k);
		if (k != last)
			distinct++;
		last = k;
		good++;
		shm_snapshot_free(&snap);
	}
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer: %d", status);
	ck_assert_msg(good >= 5, "only %d snapshots (%d busy)", good, busy);
	ck_assert_msg(distinct >= 2, "only %d distinct values in %d snapshots", distinct, good);

	/* once it is over, the last value is there for all to see */
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_uint_ge(snap.slots[SEQ_SLOTS - 1].lease_count, last);
	ck_assert_uint_eq(snap.slots[0].lease_count, snap.slots[SEQ_SLOTS - 1].lease_count);
	shm_snapshot_free(&snap);
	shm_destroy(&s);
}
END_TEST

/* While a writer holds the segment, readers wait and give up with EAGAIN. */
START_TEST(test_writer_never_lets_go)
{
	const char *name = unique_name();
	struct shm s;
	struct shm_snapshot snap;

	create_ok(&s, name, 0600, 4, 1);
	shm_begin(&s);
	errno = 0;
	ck_assert_int_eq(shm_snapshot(name, &snap), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_ptr_null(snap.pools);
	shm_end(&s);
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	shm_snapshot_free(&snap);
	shm_destroy(&s);
}
END_TEST

START_TEST(test_destroy_removes)
{
	const char *name = unique_name();
	struct shm s;
	struct shm_snapshot snap;

	create_ok(&s, name, 0600, 4, 1);
	ck_assert(name_exists(name));
	shm_destroy(&s);
	ck_assert_ptr_null(s.hdr);
	ck_assert_int_eq(s.fd, -1);
	ck_assert(!name_exists(name));
	errno = 0;
	ck_assert_int_eq(shm_snapshot(name, &snap), -1);
	ck_assert_int_eq(errno, ENOENT);
	shm_destroy(&s);	/* twice: harmless */

	/* and the name can be created anew */
	create_ok(&s, name, 0600, 4, 2);
	shm_destroy(&s);
	ck_assert(!name_exists(name));
}
END_TEST

START_TEST(test_state_names)
{
	ck_assert_str_eq(shm_slot_state_name(SHM_SLOT_EMPTY), "empty");
	ck_assert_str_eq(shm_slot_state_name(SHM_SLOT_IDLE), "idle");
	ck_assert_str_eq(shm_slot_state_name(SHM_SLOT_LEASED), "leased");
	ck_assert_str_eq(shm_slot_state_name(SHM_SLOT_CLOSING), "closing");
	ck_assert_str_eq(shm_slot_state_name(SHM_SLOT_NSTATES), "unknown");
	ck_assert_str_eq(shm_slot_state_name(-1), "unknown");
}
END_TEST

/*
 * Issue 9 item 4: a process that took the semaphore (any writer of the
 * segment could) does not freeze the broker: updates go on, and say so.
 */
START_TEST(test_lock_taken_by_intruder)
{
	const char *name = unique_name();
	struct shm s;

	create_ok(&s, name, 0600, NSLOTS, 1);
	ck_assert_int_eq(sem_wait(&s.hdr->lock), 0);	/* the intruder holds it */
	alarm(5);					/* a blocked update fails the test */
	for (int i = 0; i < 3; i++) {
		shm_begin(&s);
		s.pools[0].leases++;
		shm_end(&s);
	}
	alarm(0);
	ck_assert_uint_eq(s.pools[0].leases, 3);
	ck_assert_uint_eq(atomic_load(&s.hdr->seq) % 2, 0);
	ck_assert_int_ne(s.lock_warned_ms, 0);		/* said once, not thrice */
	sem_post(&s.hdr->lock);				/* let go: taken normally again */
	shm_begin(&s);
	ck_assert(s.locked);
	shm_end(&s);
	shm_destroy(&s);
}
END_TEST

/* Readers trust a segment of root, themselves, or the owner they name. */
START_TEST(test_snapshot_owner)
{
	const char *name = unique_name();
	struct shm s;
	struct shm_snapshot snap;
	uid_t found = 0;

	ck_assert_msg(geteuid() == 0, "this test runs as root (as CI does), to chown a segment");
	create_ok(&s, name, 0644, NSLOTS, 1);
	ck_assert_int_eq(fchown(s.fd, 65534, 65534), 0);
	/* root is trusted whatever the owner check; test as another user */
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		REQUIRE(setgid(1) == 0 && setuid(1) == 0, "setuid");
		REQUIRE(shm_snapshot(name, &snap) == -1 && errno == EPERM, "a stranger's segment read");
		REQUIRE(shm_snapshot_owned(name, 0, &found, &snap) == -1 && errno == EPERM &&
			found == 65534, "found %u", (unsigned)found);
		REQUIRE(shm_snapshot_owned(name, 65534, NULL, &snap) == 0, "named owner refused");
		shm_snapshot_free(&snap);
		_exit(0);
	}
	testutil_reap(p, "reader as uid 1");
	shm_destroy(&s);
}
END_TEST

/* A writer that leaves strings unterminated does not make readers overrun. */
START_TEST(test_snapshot_strings_bounded)
{
	const char *name = unique_name();
	struct shm s;
	struct shm_snapshot snap;

	create_ok(&s, name, 0600, NSLOTS, 1);
	shm_begin(&s);
	s.hdr->npools = 1;
	memset(s.pools[0].name, 'p', sizeof(s.pools[0].name));
	memset(s.hdr->socket, 's', sizeof(s.hdr->socket));
	shm_end(&s);
	ck_assert_int_eq(shm_snapshot(name, &snap), 0);
	ck_assert_uint_eq(strlen(snap.pools[0].name), sizeof(snap.pools[0].name) - 1);
	ck_assert_uint_eq(strlen(snap.hdr.socket), sizeof(snap.hdr.socket) - 1);
	shm_snapshot_free(&snap);
	shm_destroy(&s);
}
END_TEST

static Suite *
shm_suite(void)
{
	Suite *s = suite_create("shm");
	TCase *tc = tcase_create("shm");

	tcase_set_timeout(tc, 30);
	tcase_add_unchecked_fixture(tc, NULL, sweep_leftovers);
	tcase_add_test(tc, test_create_and_snapshot);
	tcase_add_test(tc, test_second_create_refused);
	tcase_add_test(tc, test_dead_broker_replaced);
	tcase_add_test(tc, test_dead_pid_in_header);
	tcase_add_test(tc, test_stale_heartbeat);
	tcase_add_test(tc, test_reused_pid_replaced);
	tcase_add_test(tc, test_old_layout_with_our_pid_replaced);
	tcase_add_test(tc, test_foreign_leftover_replaced);
	tcase_add_test(tc, test_snapshot_missing);
	tcase_add_test(tc, test_snapshot_not_ours);
	tcase_add_test(tc, test_snapshot_bad_header);
	tcase_add_test(tc, test_mode_exact);
	tcase_add_test(tc, test_seqlock);
	tcase_add_test(tc, test_writer_never_lets_go);
	tcase_add_test(tc, test_destroy_removes);
	tcase_add_test(tc, test_state_names);
	tcase_add_test(tc, test_lock_taken_by_intruder);
	tcase_add_test(tc, test_snapshot_owner);
	tcase_add_test(tc, test_snapshot_strings_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run_suite(shm_suite());
}
