/*
 * check_limits.c - the broker under resource exhaustion: out of
 * descriptors on accept, a client that never reads, a flood of requests,
 * thousands of clients connecting and vanishing.  Those it serves keep
 * being served, and it comes back to its baseline.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/fdpass.h"
#include "common/wire.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define POOL "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 2; max_size = 2; }"

static struct testbroker broker;

static long
broker_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)broker.pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static double
broker_cpu_s(void)
{
	char path[64];
	unsigned long utime = 0, stime = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)broker.pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char buf[1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	/* fields 14 and 15 after the command: the 12th and 13th after ')' */
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&utime, &stime), 2);
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

START_TEST(test_out_of_descriptors_on_accept)
{
	testbroker_start(&broker, NULL, POOL, true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(pgl_release(l), 0);

	/* no descriptor left for the broker beyond what it has (the limit is
	 * below all of them: those keep working, no new one opens) */
	struct rlimit old, tight = { .rlim_cur = 3 };
	ck_assert_int_eq(prlimit(broker.pid, RLIMIT_NOFILE, NULL, &old), 0);
	tight.rlim_max = old.rlim_max;
	ck_assert_int_eq(prlimit(broker.pid, RLIMIT_NOFILE, &tight, NULL), 0);

	int extra[16], n = 0;
	for (; n < 16; n++)
		if ((extra[n] = testutil_control_connect(broker.socket)) < 0)
			break;
	double cpu0 = broker_cpu_s();
	usleep(1000000);
	/* it does not spin on the connections it cannot accept... */
	ck_assert_msg(broker_cpu_s() - cpu0 < 0.3, "the broker spun: %.2f s of CPU in 1 s",
		      broker_cpu_s() - cpu0);
	ck_assert(testbroker_log_has(&broker, "pausing new clients"));
	/* ...and serves the client it has */
	for (int i = 0; i < 20; i++) {
		l = pgl_acquire(c, NULL, -1);
		ck_assert_msg(l != NULL, "%s", pgl_error(c));
		ck_assert_int_eq(pgl_release(l), 0);
	}

	/* room again: the waiting connections are taken */
	ck_assert_int_eq(prlimit(broker.pid, RLIMIT_NOFILE, &old, NULL), 0);
	for (int i = 0; i < n; i++) {
		ck_assert_msg(testutil_hello(extra[i]), "waiting client %d was not served", i);
		close(extra[i]);
	}
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_client_that_never_reads)
{
	/* no validation before a grant: its first two requests get the two backends at once */
	testbroker_start(&broker, "max_leases_per_client = 2;", "{ name = \"main\"; conninfo = "
			 "\"$CONNINFO\"; min_size = 2; max_size = 2; validate_after = 60; }", true);
	pgl_client *good = pgl_open(broker.socket);
	int fd = testutil_control_connect(broker.socket);
	ck_assert_int_ge(fd, 0);
	ck_assert(testutil_hello(fd));

	/* a flood of requests whose answers are never read */
	struct wire_msg m = { .h = { .type = PGL_MSG_LEASE_ACQUIRE } };
	m.u.acquire.timeout_ms = 0;
	int sent = 0;
	int64_t deadline = clock_mono_ms() + 10000;
	while (clock_mono_ms() < deadline) {
		m.h.request_id = (uint64_t)sent + 2;
		if (!testutil_wire_send(fd, &m, MSG_DONTWAIT)) {
			if (errno == EAGAIN) {
				usleep(1000);
				continue;
			}
			break;		/* the broker let go of us */
		}
		sent++;
	}
	ck_assert_msg(errno == EPIPE || errno == ECONNRESET, "still connected after %d requests: %s",
		      sent, strerror(errno));
	ck_assert(testbroker_log_has(&broker, "it does not read its socket"));
	close(fd);

	/* its two leases were given back (orphaned), the pool whole, others served */
	pgl_pool_stats st;
	deadline = clock_mono_ms() + 5000;
	do {
		ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
		ck_assert_msg(clock_mono_ms() < deadline, "pool not whole: idle %d", st.idle);
		usleep(10000);
	} while (st.idle != 2);
	/* what it held, both backends, came back as orphans */
	ck_assert_uint_eq(st.orphaned_leases, 2);
	ck_assert_uint_ge(st.leases, 2);
	pgl_lease *l = pgl_acquire(good, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(good));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(good);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

START_TEST(test_thousands_of_clients)
{
	enum { PROCS = 4, EACH = 600 };

	testbroker_start(&broker, NULL, POOL, true);
	int base_fds = testutil_count_fds(broker.pid);
	char base_desc[2048], now_desc[2048];
	testutil_describe_fds(broker.pid, base_desc, sizeof(base_desc));
	long base_rss = broker_rss_kb();
	pid_t w[PROCS];

	for (int i = 0; i < PROCS; i++) {
		w[i] = fork();
		ck_assert_int_ge(w[i], 0);
		if (w[i] == 0) {
			for (int k = 0; k < EACH; k++) {
				int fd = testutil_control_connect(broker.socket);
				REQUIRE(fd >= 0, "connect %d: %s", k, strerror(errno));
				/* some say HELLO, some lease, some just vanish */
				if (k % 3 == 0) {
					REQUIRE(testutil_hello(fd), "hello %d", k);
				} else if (k % 3 == 1) {
					pgl_client *c = pgl_open(broker.socket);
					pgl_lease *l = pgl_acquire(c, NULL, -1);
					REQUIRE(l != NULL, "%s", pgl_error(c));
					pgl_release(l);
					pgl_close(c);
				}
				close(fd);
			}
			_exit(0);
		}
	}
	for (int i = 0; i < PROCS; i++)
		testutil_reap(w[i], "client churner");

	int64_t deadline = clock_mono_ms() + 5000;
	while (testutil_count_fds(broker.pid) != base_fds) {
		ck_assert_msg(clock_mono_ms() < deadline, "broker fds %d [%s], baseline %d [%s]",
			      testutil_count_fds(broker.pid),
			      testutil_describe_fds(broker.pid, now_desc, sizeof(now_desc)),
			      base_fds, base_desc);
		usleep(20000);
	}
	long rss = broker_rss_kb();
	printf("check_limits: %d clients came and went; broker fds %d (baseline %d), "
	       "RSS %ld KiB (baseline %ld KiB)\n", PROCS * EACH * 4 / 3, base_fds, base_fds,
	       rss, base_rss);
	/* 16 MiB for the broker as built for production; AddressSanitizer's
	 * shadow memory and allocator add their own (the suite runs both). */
#ifdef __SANITIZE_ADDRESS__
	const long limit_kb = 64 * 1024;
#else
	const long limit_kb = 16 * 1024;
#endif
	ck_assert_msg(rss < limit_kb, "broker RSS %ld KiB (limit %ld KiB)", rss, limit_kb);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* Out of descriptors when opening a backend: backs off, recovers when room returns. */
START_TEST(test_out_of_descriptors_on_connect)
{
	testbroker_start(&broker, NULL, "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; "
			 "max_size = 3; initial_backoff = 0.1; max_backoff = 0.3; }", true);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *a = pgl_acquire(c, NULL, -1);
	ck_assert_ptr_nonnull(a);

	/* below every descriptor it holds: those keep working, no new one opens */
	struct rlimit old, tight = { .rlim_cur = 3 };
	ck_assert_int_eq(prlimit(broker.pid, RLIMIT_NOFILE, NULL, &old), 0);
	tight.rlim_max = old.rlim_max;
	ck_assert_int_eq(prlimit(broker.pid, RLIMIT_NOFILE, &tight, NULL), 0);
	/* the pool must grow for this one, and cannot */
	ck_assert_ptr_null(pgl_acquire(c, NULL, 800));
	ck_assert_int_eq(pgl_errcode(c), PGL_EUNAVAILABLE);
	ck_assert_msg(strstr(pgl_error(c), "cannot connect") != NULL, "%s", pgl_error(c));
	ck_assert(testbroker_log_has(&broker, "connect failed pool=main"));

	ck_assert_int_eq(prlimit(broker.pid, RLIMIT_NOFILE, &old, NULL), 0);
	pgl_lease *b = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(b != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(b), 0);
	ck_assert_int_eq(pgl_release(a), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* A client that dies with an answer on its way: the broker neither spins nor stalls. */
START_TEST(test_client_dies_before_its_answer)
{
	testbroker_start(&broker, NULL, POOL, true);
	for (int i = 0; i < 5; i++) {
		pid_t p = fork();
		ck_assert_int_ge(p, 0);
		if (p == 0) {
			int fd = testutil_control_connect(broker.socket);
			REQUIRE(fd >= 0 && testutil_hello(fd), "hello");
			struct wire_msg m = { .h = { .type = PGL_MSG_LEASE_RELEASE, .request_id = 9 } };
			m.u.release.lease_id = 12345;	/* not ours: an ERROR comes back */
			REQUIRE(testutil_wire_send(fd, &m, 0), "send");
			_exit(0);			/* gone before reading it */
		}
		testutil_reap(p, "short-lived client");
	}
	double cpu0 = broker_cpu_s();
	usleep(1000000);
	ck_assert_msg(broker_cpu_s() - cpu0 < 0.3, "the broker spun: %.2f s of CPU in 1 s",
		      broker_cpu_s() - cpu0);
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, 2000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
limits_suite(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("exhaustion");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_out_of_descriptors_on_accept);
	tcase_add_test(tc, test_out_of_descriptors_on_connect);
	tcase_add_test(tc, test_client_that_never_reads);
	tcase_add_test(tc, test_client_dies_before_its_answer);
	tcase_add_test(tc, test_thousands_of_clients);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(limits_suite());
}
