/*
 * check_secrets.c - a password does not outlive its configuration in the
 * broker's memory: a reload that changes it frees and zeroes the old one
 * once nothing points into it, and the broker's live memory holds no copy.
 * pglease-stat never opens a password file.
 *
 * The broker runs with freed memory scrubbed (glibc's MALLOC_PERTURB_, and
 * ASan's free fill under --enable-sanitizers), so a copy found by scanning
 * its writable mappings is one still allocated.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct testbroker broker;

#define OLD_SECRET "pgl-old-secret-7f3a90"
#define NEW_SECRET "pgl-new-secret-19c2d4"

/* How many times needle appears in the writable memory of process pid. */
static int
count_in_memory(pid_t pid, const char *needle)
{
	char path[64], line[512];
	size_t nlen = strlen(needle);
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *maps = fopen(path, "re");
	ck_assert_ptr_nonnull(maps);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	int mem = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(mem, 0);
	size_t cap = 1 << 20;
	char *buf = malloc(cap + nlen);
	ck_assert_ptr_nonnull(buf);
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' ||
		    perms[1] != 'w')
			continue;
		if (hi - lo > (1UL << 30))	/* sanitizer shadow: no heap there */
			continue;
		for (unsigned long at = lo; at < hi; at += cap) {
			size_t want = hi - at < cap + nlen ? hi - at : cap + nlen;
			ssize_t n = pread(mem, buf, want, (off_t)at);
			if (n <= 0)
				break;
			for (ssize_t i = 0; i + (ssize_t)nlen <= n && i < (ssize_t)cap; i++)
				if (buf[i] == needle[0] && memcmp(buf + i, needle, nlen) == 0)
					found++;
		}
	}
	free(buf);
	close(mem);
	fclose(maps);
	return found;
}

static void
write_secret(const char *path, const char *secret)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, secret, strlen(secret)), (ssize_t)strlen(secret));
	ck_assert_int_eq(write(fd, "\n", 1), 1);
	close(fd);
}


/* Issue 9 item 8: every reload kept the old configuration, passwords included. */
START_TEST(test_reload_forgets_old_password)
{
	char pools[512], file_a[300], file_b[300];

	/* needles built at run time, so this process's own image holds no copy */
	snprintf(file_a, sizeof(file_a), "%s/a.password", testutil_tmpdir());
	snprintf(file_b, sizeof(file_b), "%s/b.password", testutil_tmpdir());
	write_secret(file_a, OLD_SECRET);
	write_secret(file_b, NEW_SECRET);

	snprintf(pools, sizeof(pools), "{ name = \"main\"; conninfo = \"$CONNINFO\"; "
		 "password_file = \"%s\"; min_size = 2; max_size = 2; }", file_a);
	testbroker_start(&broker, NULL, pools, true);
	/* the scan sees what it looks for: the live configuration's password */
	ck_assert_int_ge(count_in_memory(broker.pid, OLD_SECRET), 1);

	snprintf(pools, sizeof(pools), "{ name = \"main\"; conninfo = \"$CONNINFO\"; "
		 "password_file = \"%s\"; min_size = 2; max_size = 2; }", file_b);
	testbroker_write_config(&broker, NULL, pools);
	ck_assert_int_eq(kill(broker.pid, SIGHUP), 0);
	testbroker_wait_log(&broker, "reloaded ", 1, 10000);
	/* the backends opened with the old password are replaced */
	ck_assert(testbroker_wait_idle(&broker, 0, 2, 10000));
	pgl_client *c = pgl_open(broker.socket);
	pgl_lease *l = pgl_acquire(c, NULL, -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);

	ck_assert_int_ge(count_in_memory(broker.pid, NEW_SECRET), 1);
	ck_assert_int_eq(count_in_memory(broker.pid, OLD_SECRET), 0);
	ck_assert(!testbroker_log_has(&broker, OLD_SECRET));
	ck_assert(!testbroker_log_has(&broker, NEW_SECRET));
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/*
 * Issue 9 item 9: pglease-stat -c reads the segment's name from the
 * configuration without the broker's loader, so a monitoring user who may
 * not read the pool's 0600 password_file still gets the table.
 */
START_TEST(test_stat_reads_no_secret)
{
	char pools[512], file[300];

	ck_assert_msg(geteuid() == 0, "this test runs as root (as CI does), to switch users");
	snprintf(file, sizeof(file), "%s/stat.password", testutil_tmpdir());
	write_secret(file, OLD_SECRET);
	snprintf(pools, sizeof(pools), "{ name = \"main\"; conninfo = \"$CONNINFO\"; "
		 "password_file = \"%s\"; min_size = 1; max_size = 1; }", file);
	testbroker_start(&broker, NULL, pools, true);
	ck_assert_int_eq(chmod(testutil_tmpdir(), 0755), 0);
	ck_assert_int_eq(chmod(broker.dir, 0755), 0);
	ck_assert_int_eq(chmod(broker.conf, 0644), 0);

	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		char out[4096];
		char *argv[] = { (char *)TOP_BUILDDIR "/pglease-stat", (char *)"-c", broker.conf,
				 NULL };
		REQUIRE(setgid(65534) == 0 && setuid(65534) == 0, "setuid");
		REQUIRE(open(file, O_RDONLY) < 0, "nobody can read the password file");
		int rc = testutil_run(argv, out, sizeof(out));
		REQUIRE(rc == 0, "pglease-stat -c as nobody: exit %d:\n%s", rc, out);
		REQUIRE(strstr(out, "main") != NULL, "no pool in:\n%s", out);
		_exit(0);
	}
	testutil_reap(p, "pglease-stat as nobody");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

static Suite *
secrets_suite(void)
{
	Suite *s = suite_create("secrets");
	TCase *tc = tcase_create("secrets");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reload_forgets_old_password);
	tcase_add_test(tc, test_stat_reads_no_secret);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	/* Freed memory scrubbed in the broker: what the scan finds is live. */
	setenv("MALLOC_PERTURB_", "165", 1);
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];
	snprintf(opts, sizeof(opts), "%s%smax_free_fill_size=1048576:free_fill_byte=0",
		 asan != NULL ? asan : "", asan != NULL && asan[0] != '\0' ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	return testutil_run_suite(secrets_suite());
}
