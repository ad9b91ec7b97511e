/*
 * check_ops.c - pgleased as a service: systemd notifications on a datagram
 * socket given as NOTIFY_SOCKET (READY only once the pools are up,
 * RELOADING and READY around a SIGHUP, STOPPING, STATUS, WATCHDOG), the
 * signals (harmless ones ignored, SIGINT and SIGQUIT stop cleanly, SIGKILL
 * leaves what a restart takes over), the log file reopened after a rename,
 * syslog's facility and ident and its fallback to stderr, the pid file,
 * --check-config's runtime checks and the descriptor limit.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/shm.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct testbroker broker;

#define POOL(name, min, max, extra) \
	"{ name = \"" name "\"; conninfo = \"$CONNINFO\"; min_size = " #min "; max_size = " #max \
	"; " extra " }"

/* --- a datagram socket standing in for systemd's (or syslog's) --- */

/* Binds a datagram socket at path ("@name": abstract); -1 on failure. */
static int
dgram_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	size_t len = strlen(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(len, sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	unlink(path);
	ck_assert_msg(bind(fd, (struct sockaddr *)&sun,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) == 0,
		      "bind %s: %s", path, strerror(errno));
	return fd;
}

/* A socket in the test's directory, named by NOTIFY_SOCKET for the brokers it starts. */
static int
notify_listen(void)
{
	static int seq;
	char path[300];

	snprintf(path, sizeof(path), "%s/notify.%d.%d", testutil_tmpdir(), (int)getpid(), ++seq);
	int fd = dgram_listen(path);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	return fd;
}

/* The next datagram within timeout_ms into buf; false when none came. */
static bool
dgram_recv(int fd, char *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return false;
	ssize_t n = recv(fd, buf, len - 1, 0);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

/*
 * Reads datagrams until one has a line starting with key (e.g. "READY=1"),
 * within timeout_ms; fails the test otherwise.  The whole datagram is left
 * in buf.
 */
static void
notify_wait(int fd, const char *key, char *buf, size_t len, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;

	for (;;) {
		int left = (int)(deadline - clock_mono_ms());
		ck_assert_msg(left > 0 && dgram_recv(fd, buf, len, left),
			      "no %s notification within %d ms; see %s", key, timeout_ms,
			      broker.log);
		for (const char *l = buf; l != NULL; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
			if (strncmp(l, key, strlen(key)) == 0)
				return;
	}
}

static int
pool_idle(int pool)
{
	struct shm_snapshot snap;
	int idle = -1;

	if (shm_snapshot_owned(broker.shm, broker.uid, NULL, &snap) == 0) {
		if ((uint32_t)pool < snap.hdr.npools)
			idle = snap.pools[pool].idle;
		shm_snapshot_free(&snap);
	}
	return idle;
}

static bool
shm_exists(const char *name)
{
	char path[300];
	struct stat st;

	snprintf(path, sizeof(path), "/dev/shm%s", name);
	return stat(path, &st) == 0;
}

/* The broker leases a backend of its first pool, and takes it back. */
static void
assert_serves(void)
{
	pgl_client *c = pgl_open(broker.socket);
	ck_assert_ptr_nonnull(c);
	pgl_lease *l = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
}

/* --- notifications --- */

/* READY=1 comes once min_size backends are idle, not at start; SIGHUP and SIGTERM say so too. */
START_TEST(test_ready_reload_stop)
{
	char msg[1024];
	int fd = notify_listen();

	testbroker_start(&broker, NULL, POOL("main", 2, 3, "connect_timeout = 5;"), false);
	notify_wait(fd, "READY=1", msg, sizeof(msg), 15000);
	int idle = pool_idle(0);
	ck_assert_msg(idle == 2, "READY=1 with %d idle backends of min_size 2", idle);
	ck_assert_msg(strstr(msg, "\nSTATUS=1 pools, 2 backends (2 idle, 0 leased), 0 clients") != NULL,
		      "%s", msg);
	ck_assert_msg(strstr(msg, "MAINPID=") != NULL, "%s", msg);

	/* STATUS follows the state, at most once a second */
	pgl_client *c = pgl_open(broker.socket);
	ck_assert_ptr_nonnull(c);
	pgl_lease *l = pgl_acquire(c, NULL, 5000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	notify_wait(fd, "STATUS=1 pools, 2 backends (1 idle, 1 leased), 1 clients", msg,
		    sizeof(msg), 3000);
	ck_assert_int_eq(pgl_release(l), 0);

	/* SIGHUP: RELOADING=1 with the monotonic clock now, READY=1 when applied */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t before = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	kill(broker.pid, SIGHUP);
	notify_wait(fd, "RELOADING=1", msg, sizeof(msg), 5000);
	const char *mono = strstr(msg, "\nMONOTONIC_USEC=");
	ck_assert_msg(mono != NULL, "%s", msg);
	uint64_t usec = strtoull(mono + 16, NULL, 10);
	ck_assert_msg(usec >= before && usec < before + 5000000u,
		      "MONOTONIC_USEC=%" PRIu64 ", the test's clock %" PRIu64, usec, before);
	notify_wait(fd, "READY=1", msg, sizeof(msg), 5000);
	ck_assert_msg(strstr(msg, "refused") == NULL, "%s", msg);
	testbroker_wait_log(&broker, "reloaded /", 1, 5000);

	/* a file the reload refuses: READY=1 still (the old one runs), and STATUS says so */
	testbroker_write_config(&broker, "max_clients = \"many\";",
				POOL("main", 2, 3, "connect_timeout = 5;"));
	kill(broker.pid, SIGHUP);
	notify_wait(fd, "RELOADING=1", msg, sizeof(msg), 5000);
	notify_wait(fd, "READY=1", msg, sizeof(msg), 5000);
	ck_assert_msg(strstr(msg, "\nSTATUS=reload refused (see the log); 1 pools") != NULL,
		      "%s", msg);

	/* SIGTERM: STOPPING=1 as the drain begins */
	kill(broker.pid, SIGTERM);
	notify_wait(fd, "STOPPING=1", msg, sizeof(msg), 5000);
	ck_assert_int_eq(testbroker_wait_exit(&broker, 10000), 0);
	pgl_close(c);
	close(fd);
}
END_TEST

/* READY=1 waits for the backends: a server that refuses holds it until the first failure. */
START_TEST(test_ready_after_first_failure)
{
	char msg[1024];
	int fd = notify_listen();

	testbroker_start(&broker, NULL,
			 "{ name = \"down\"; conninfo = \"host=/nonexistent-pglease port=1\"; "
			 "min_size = 1; max_size = 1; }", false);
	notify_wait(fd, "READY=1", msg, sizeof(msg), 15000);
	ck_assert_msg(testbroker_log_has(&broker, "backing off pool=down"),
		      "READY=1 before the pool's first connect failed; see %s", broker.log);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	close(fd);
}
END_TEST

/* An abstract NOTIFY_SOCKET; WATCHDOG=1 every half of WATCHDOG_USEC, only for the named pid. */
START_TEST(test_abstract_watchdog)
{
	char name[64], msg[1024];

	snprintf(name, sizeof(name), "@pglease-test-notify.%d", (int)getpid());
	int fd = dgram_listen(name);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
	ck_assert_int_eq(setenv("WATCHDOG_USEC", "200000", 1), 0);
	testbroker_start(&broker, NULL, POOL("main", 1, 1, ""), false);
	notify_wait(fd, "READY=1", msg, sizeof(msg), 15000);
	int64_t start = clock_mono_ms();
	for (int i = 0; i < 4; i++)
		notify_wait(fd, "WATCHDOG=1", msg, sizeof(msg), 2000);
	int64_t took = clock_mono_ms() - start;
	ck_assert_msg(took < 1500, "4 watchdog pings took %" PRId64 " ms at 100 ms", took);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);

	/* WATCHDOG_PID names another process: no pings from this one */
	ck_assert_int_eq(setenv("WATCHDOG_PID", "1", 1), 0);
	testbroker_restart(&broker, false);
	notify_wait(fd, "READY=1", msg, sizeof(msg), 15000);
	int64_t until = clock_mono_ms() + 600;
	while (clock_mono_ms() < until)
		if (dgram_recv(fd, msg, sizeof(msg), 50))
			ck_assert_msg(strstr(msg, "WATCHDOG=1") == NULL,
				      "a ping though WATCHDOG_PID=1");
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	close(fd);
}
END_TEST

/* --- signals --- */

/* Signals whose default would kill it are ignored: the broker goes on serving. */
START_TEST(test_harmless_signals)
{
	static const int sigs[] = { SIGALRM, SIGVTALRM, SIGPROF, SIGXFSZ, SIGIO, SIGPWR,
				    SIGSTKFLT, SIGPIPE };

	testbroker_start(&broker, NULL, POOL("main", 1, 1, ""), true);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		ck_assert_int_eq(kill(broker.pid, sigs[i]), 0);
	ck_assert_int_eq(kill(broker.pid, SIGRTMIN), 0);
	ck_assert_int_eq(kill(broker.pid, SIGRTMIN + 5), 0);
	ck_assert_int_eq(kill(broker.pid, SIGRTMAX), 0);
	usleep(300000);

	int status;
	ck_assert_msg(waitpid(broker.pid, &status, WNOHANG) == 0, "pgleased died of signal %d",
		      WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	assert_serves();
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* SIGINT and SIGQUIT: a fast stop, exit 0, no socket and no segment left. */
START_TEST(test_fast_stop)
{
	const int sig = _i == 0 ? SIGINT : SIGQUIT;
	char msg[1024], line[64];
	int fd = notify_listen();

	testbroker_start(&broker, NULL, POOL("main", 1, 1, ""), true);
	notify_wait(fd, "READY=1", msg, sizeof(msg), 15000);
	ck_assert(shm_exists(broker.shm));
	ck_assert_int_eq(testbroker_stop(&broker, sig), 0);
	snprintf(line, sizeof(line), "%s: closing every connection now", sig == SIGINT ? "SIGINT" :
		 "SIGQUIT");
	ck_assert_msg(testbroker_log_has(&broker, line), "no \"%s\" in %s", line, broker.log);
	ck_assert_msg(access(broker.socket, F_OK) != 0, "%s left behind", broker.socket);
	ck_assert_msg(!shm_exists(broker.shm), "%s left behind", broker.shm);
	notify_wait(fd, "STOPPING=1", msg, sizeof(msg), 1000);
	close(fd);
}
END_TEST

/* A fault stays fatal, but the socket and the segment go with the broker. */
START_TEST(test_fault_cleanup)
{
	static const int sigs[] = { SIGSEGV, SIGABRT, SIGBUS };
	struct rlimit nocore = { 0, 0 };

	ck_assert_int_eq(setrlimit(RLIMIT_CORE, &nocore), 0);
	testbroker_start(&broker, NULL, POOL("main", 1, 1, ""), true);
	int status = testbroker_stop(&broker, sigs[_i]);
	ck_assert_msg(status != 0, "pgleased exited 0 after signal %d", sigs[_i]);
	ck_assert_msg(access(broker.socket, F_OK) != 0, "%s left behind", broker.socket);
	ck_assert_msg(!shm_exists(broker.shm), "%s left behind", broker.shm);
}
END_TEST

/* SIGKILL leaves the socket and the segment; the next broker takes both over. */
START_TEST(test_restart_after_kill)
{
	testbroker_start(&broker, NULL, POOL("main", 1, 1, ""), true);
	ck_assert_int_eq(testbroker_stop(&broker, SIGKILL), 128 + SIGKILL);
	ck_assert_msg(access(broker.socket, F_OK) == 0, "SIGKILL removed the socket?");
	ck_assert(shm_exists(broker.shm));
	testbroker_restart(&broker, true);
	ck_assert_msg(testbroker_log_has(&broker, "replacing the stale socket"), "see %s",
		      broker.log);
	assert_serves();
	ck_assert_int_eq(testbroker_stop(&broker, SIGINT), 0);
	ck_assert(!shm_exists(broker.shm));
}
END_TEST

/* --- logging --- */

#define WAIT_FILE_HAS(path, text) \
	WAIT_UNTIL(testutil_file_has((path), (text)), 10000, "no \"%s\" in %s", (text), (path))

/* log_target "file": timestamped lines with the pid; a rename and SIGHUP start a new file. */
START_TEST(test_log_file_reopen)
{
	char extra[600], file[400], rotated[420], pidtag[64];
	struct stat st;

	snprintf(file, sizeof(file), "%s/file.%d.log", testutil_tmpdir(), (int)getpid());
	snprintf(rotated, sizeof(rotated), "%s.1", file);
	snprintf(extra, sizeof(extra), "log_target = \"file\"; log_file = \"%s\";", file);
	testbroker_start(&broker, extra, POOL("main", 1, 1, ""), false);
	snprintf(pidtag, sizeof(pidtag), "pgleased[%d]: info: pgleased ", (int)broker.pid);
	WAIT_FILE_HAS(file, "started pid=");
	ck_assert_msg(testutil_file_has(file, pidtag), "no \"%s\" in %s", pidtag, file);
	ck_assert_msg(testutil_file_has(file, "Z pgleased["), "no timestamp in %s", file);
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_msg((st.st_mode & 0777) == 0640 || (st.st_mode & 0777) == 0600, "mode %o",
		      (unsigned)(st.st_mode & 0777));
	ck_assert_msg(!testbroker_log_has(&broker, "started pid="), "the file's lines on stderr");

	ck_assert_int_eq(rename(file, rotated), 0);
	kill(broker.pid, SIGHUP);
	WAIT_FILE_HAS(file, "reloaded /");
	ck_assert_msg(!testutil_file_has(rotated, "reloaded /"),
		      "the reload logged to the renamed file");
	ck_assert_msg(testutil_file_has(rotated, "started pid="), "the old lines left %s", rotated);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	ck_assert(testutil_file_has(file, "pgleased stopped"));
}
END_TEST

/*
 * log_target "syslog" with nobody on the socket: stderr, one warning.  Once a
 * syslog listens there, SIGHUP finds it: lines with the facility and ident.
 * PGLEASE_TEST_SYSLOG_PATH (test-only) stands for /dev/log.
 */
START_TEST(test_syslog_fallback)
{
	char path[300], msg[2048];

	snprintf(path, sizeof(path), "%s/devlog.%d", testutil_tmpdir(), (int)getpid());
	unlink(path);
	ck_assert_int_eq(setenv("PGLEASE_TEST_SYSLOG_PATH", path, 1), 0);
	testbroker_start(&broker, "log_target = \"syslog\"; syslog_facility = \"local2\"; "
			 "syslog_ident = \"pgl-test\";", POOL("main", 1, 1, ""), true);
	ck_assert_int_eq(testbroker_log_count(&broker, "syslog does not answer on"), 1);
	ck_assert(testbroker_log_has(&broker, "pgl-test["));
	ck_assert(testbroker_log_has(&broker, "started pid="));

	int fd = dgram_listen(path);
	kill(broker.pid, SIGHUP);
	/* local2 (18) * 8 + info (6) */
	int64_t deadline = clock_mono_ms() + 5000;
	bool seen = false;
	while (!seen && clock_mono_ms() < deadline && dgram_recv(fd, msg, sizeof(msg), 1000))
		seen = strncmp(msg, "<150>", 5) == 0 && strstr(msg, " pgl-test[") != NULL &&
		       strstr(msg, "reloaded /") != NULL;
	ck_assert_msg(seen, "no \"<150>... pgl-test[pid]: reloaded\" datagram; last: %s", msg);
	ck_assert_msg(!testbroker_log_has(&broker, "reloaded /"), "the reload also on stderr");
	ck_assert_int_eq(testbroker_log_count(&broker, "syslog does not answer on"), 1);

	/* syslog goes away again: one more warning, lines back on stderr */
	close(fd);
	unlink(path);
	kill(broker.pid, SIGHUP);
	testbroker_wait_log(&broker, "reloaded /", 1, 5000);
	ck_assert_int_eq(testbroker_log_count(&broker, "syslog does not answer on"), 2);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* --- pid file --- */

START_TEST(test_pid_file)
{
	char extra[400], pidfile[300], out[4096], text[64];

	snprintf(pidfile, sizeof(pidfile), "%s/pgl.%d.pid", testutil_tmpdir(), (int)getpid());
	/* a dead process's pid file is replaced */
	pid_t dead = fork();
	ck_assert_int_ge(dead, 0);
	if (dead == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(dead, NULL, 0), dead);
	snprintf(text, sizeof(text), "%d\n", (int)dead);
	FILE *f = fopen(pidfile, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);

	snprintf(extra, sizeof(extra), "pid_file = \"%s\";", pidfile);
	testbroker_start(&broker, extra, POOL("main", 1, 1, ""), true);
	f = fopen(pidfile, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
	fclose(f);
	ck_assert_int_eq(atoi(text), broker.pid);

	/* a second broker (its own socket and segment) on the same pid file refuses */
	char conf[2000];
	snprintf(conf, sizeof(conf), "broker = { socket = \"%s/second.sock\"; shm_name = "
		 "\"/pglease.ops2.%d\"; pid_file = \"%s\"; };\n"
		 "pools = ( { name = \"x\"; conninfo = \"host=/nonexistent\"; min_size = 0; } );\n",
		 testutil_tmpdir(), (int)getpid(), pidfile);
	char *argv[] = { (char *)TOP_BUILDDIR "/pgleased", (char *)"-c",
			 testutil_write_file("second.conf", conf), NULL };
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "names pgleased pid") != NULL && strstr(out, "which is running"),
		      "%s", out);

	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	ck_assert_msg(access(pidfile, F_OK) != 0, "%s left behind", pidfile);
}
END_TEST

/* --- --check-config on the machine --- */

START_TEST(test_check_config_runtime)
{
	char out[8192], conf[2000], pw[300];
	char *argv[] = { (char *)TOP_BUILDDIR "/pgleased", (char *)"--check-config", (char *)"-c",
			 NULL, NULL };

	/* the socket's directory is missing; so is the log file's */
	snprintf(conf, sizeof(conf), "broker = {\n  socket = \"%s/no-such-dir/pgl.sock\";\n"
		 "  log_target = \"file\";\n  log_file = \"%s/no-log-dir/p.log\";\n};\n"
		 "pools = ( { name = \"x\"; conninfo = \"host=/tmp\"; } );\n",
		 testutil_tmpdir(), testutil_tmpdir());
	argv[3] = testutil_write_file("runtime.conf", conf);
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 1);
	char expect[600];
	snprintf(expect, sizeof(expect), "%s:2: broker.socket: the directory %s/no-such-dir of "
		 "the socket: No such file or directory", argv[3], testutil_tmpdir());
	ck_assert_msg(strstr(out, expect) != NULL, "no \"%s\" in:\n%s", expect, out);
	snprintf(expect, sizeof(expect), "%s:4: broker.log_file: the directory", argv[3]);
	ck_assert_msg(strstr(out, expect) != NULL, "no \"%s\" in:\n%s", expect, out);
	ck_assert_msg(strstr(out, "2 errors") != NULL, "%s", out);

	/* a password file others may read */
	snprintf(pw, sizeof(pw), "%s", testutil_write_file("ops.password", "Sup3rSecret\n"));
	ck_assert_int_eq(chmod(pw, 0644), 0);
	snprintf(conf, sizeof(conf), "broker = { socket = \"%s/pgl.sock\"; };\n"
		 "pools = ( { name = \"x\"; conninfo = \"host=/tmp\";\n"
		 "  password_file = \"%s\"; } );\n", testutil_tmpdir(), pw);
	argv[3] = testutil_write_file("runtime.conf", conf);
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, ":3: pools[0].password_file: ") != NULL &&
		      strstr(out, "chmod 0600") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "Sup3rSecret") == NULL, "%s", out);
	ck_assert_int_eq(chmod(pw, 0600), 0);
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 0);

	/* a segment of that name belongs to someone else */
	char shm[64], shmpath[100];
	snprintf(shm, sizeof(shm), "/pglease.ops.%d", (int)getpid());
	snprintf(shmpath, sizeof(shmpath), "/dev/shm%s", shm);
	int fd = open(shmpath, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_msg(geteuid() == 0, "this test changes a file's owner: run it as root");
	ck_assert_int_eq(chown(shmpath, testutil_nobody_uid(), testutil_nobody_gid()), 0);
	snprintf(conf, sizeof(conf), "broker = { socket = \"%s/pgl.sock\";\n  shm_name = \"%s\"; };\n"
		 "pools = ( { name = \"x\"; conninfo = \"host=/tmp\"; } );\n", testutil_tmpdir(), shm);
	argv[3] = testutil_write_file("runtime.conf", conf);
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 1);
	unlink(shmpath);
	ck_assert_msg(strstr(out, ":2: broker.shm_name: ") != NULL &&
		      strstr(out, "belongs to uid") != NULL, "%s", out);
}
END_TEST

/* --- the descriptor limit --- */

/* The soft limit is raised to the hard one; a hard limit short of max_clients is a warning. */
START_TEST(test_nofile_limit)
{
	struct rlimit rl = { .rlim_cur = 100, .rlim_max = 4096 };
	char path[64], line[256], out[8192];
	bool raised = false;

	/* the test process's limits are the broker's: this process is forked for this test */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	testbroker_start(&broker, "max_clients = 100;", POOL("main", 1, 1, ""), true);
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)broker.pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Max open files", 14) == 0)
			raised = strstr(line, " 4096 ") != NULL &&
				 strstr(strstr(line, " 4096 ") + 5, "4096") != NULL;
	fclose(f);
	ck_assert_msg(raised, "the soft limit was not raised to 4096: %s", line);
	ck_assert(!testbroker_log_has(&broker, "RLIMIT_NOFILE"));
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);

	rl.rlim_cur = rl.rlim_max = 200;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	testbroker_start(&broker, NULL, POOL("main", 1, 1, ""), true);
	ck_assert_msg(testbroker_log_has(&broker, "the hard file descriptor limit (RLIMIT_NOFILE) "
					 "is 200, but max_clients=1024"), "see %s", broker.log);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);

	/* --check-config says so too, as a warning on max_clients's line */
	char conf[1000];
	snprintf(conf, sizeof(conf), "broker = { socket = \"%s/pgl.sock\";\n  max_clients = 500; };\n"
		 "pools = ( { name = \"x\"; conninfo = \"host=/tmp\"; } );\n", testutil_tmpdir());
	char *argv[] = { (char *)TOP_BUILDDIR "/pgleased", (char *)"--check-config", (char *)"-c",
			 testutil_write_file("limit.conf", conf), NULL };
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, ":2: broker.max_clients: warning: the hard file descriptor "
			     "limit (RLIMIT_NOFILE) is 200") != NULL, "%s", out);
}
END_TEST

/* --- the unit --- */

/* The built unit names the configured programs, and reloads with SIGHUP. */
START_TEST(test_unit_file)
{
	char *text = NULL;
	size_t cap = 0;
	FILE *f = fopen(TOP_BUILDDIR "/etc/pgleased.service", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_gt(getdelim(&text, &cap, '\0', f), 0);
	fclose(f);
	ck_assert_msg(strstr(text, "@sbindir@") == NULL && strstr(text, "@sysconfdir@") == NULL,
		      "unsubstituted: %s", text);
	ck_assert(strstr(text, "/pgleased -c /") != NULL);
	ck_assert(strstr(text, "\nType=notify\n") != NULL);
	ck_assert(strstr(text, "\nExecReload=/bin/kill -HUP $MAINPID\n") != NULL);
	ck_assert(strstr(text, "\nLimitNOFILE=") != NULL);
	free(text);
}
END_TEST

static void
teardown(void)
{
	if (broker.pid > 0)
		testbroker_stop(&broker, SIGKILL);
}

static Suite *
ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *tc = tcase_create("notify");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_ready_reload_stop);
	tcase_add_test(tc, test_ready_after_first_failure);
	tcase_add_test(tc, test_abstract_watchdog);
	suite_add_tcase(s, tc);

	tc = tcase_create("signals");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_harmless_signals);
	tcase_add_loop_test(tc, test_fast_stop, 0, 2);
	tcase_add_loop_test(tc, test_fault_cleanup, 0, 3);
	tcase_add_test(tc, test_restart_after_kill);
	suite_add_tcase(s, tc);

	tc = tcase_create("operations");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_log_file_reopen);
	tcase_add_test(tc, test_syslog_fallback);
	tcase_add_test(tc, test_pid_file);
	tcase_add_test(tc, test_check_config_runtime);
	tcase_add_test(tc, test_nofile_limit);
	tcase_add_test(tc, test_unit_file);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(ops_suite());
}
