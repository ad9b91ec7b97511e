/*
 * testutil.c - helpers shared by the Check suites.
 */
#include "autoconf.h"

#include "testutil.h"
#include "common/clock.h"
#include "common/shm.h"
#include "common/wire.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void
testutil_require_postgres(int argc, char **argv)
{
	if (getenv("PGLEASE_TEST_PGDATA") != NULL)
		return;

	char **args = calloc((size_t)argc + 3, sizeof(*args));
	if (args == NULL) {
		perror("calloc");
		exit(99);
	}
	static char bash[] = "bash";
	static char script[] = TOP_SRCDIR "/tests/pg/with-postgres";

	args[0] = bash;
	args[1] = script;
	for (int i = 0; i < argc; i++)
		args[i + 2] = argv[i];
	execv("/bin/bash", args);
	fprintf(stderr, "cannot run %s: %s\n", args[1], strerror(errno));
	exit(99);
}

static char tmpdir[256];
static pid_t tmpdir_owner;

static void
remove_tmpdir(void)
{
	char cmd[300];

	/* Check's forked test processes exit too: only the creator cleans up. */
	if (getpid() != tmpdir_owner)
		return;
	if (getenv("PGLEASE_TEST_KEEP") != NULL) {
		fprintf(stderr, "kept %s (PGLEASE_TEST_KEEP)\n", tmpdir);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *
testutil_tmpdir(void)
{
	if (tmpdir[0] != '\0')
		return tmpdir;

	const char *base = getenv("TMPDIR");
	if (base == NULL || base[0] == '\0' || strlen(base) > 60)
		base = "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/pglease-test.XXXXXX", base);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(99);
	}
	tmpdir_owner = getpid();
	atexit(remove_tmpdir);
	return tmpdir;
}

char *
testutil_write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", testutil_tmpdir(), name);
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

int
testutil_run(char *const argv[], char *out, size_t outlen)
{
	int pipefd[2];
	pid_t pid;
	size_t used = 0;
	int status;

	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		char buf[4096];
		ssize_t n = read(pipefd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (outlen > 0 && used < outlen - 1) {
			size_t take = (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;
			memcpy(out + used, buf, take);
			used += take;
		}
	}
	close(pipefd[0]);
	if (outlen > 0)
		out[used] = '\0';
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

void
testutil_reap(pid_t pid, const char *what)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "%s (pid %d) failed: status 0x%x", what, (int)pid, status);
}

void
testutil_become(uid_t uid, gid_t gid, const gid_t *groups, int ngroups)
{
	REQUIRE(setgroups((size_t)ngroups, groups) == 0, "setgroups: %s", strerror(errno));
	REQUIRE(setgid(gid) == 0, "setgid %d: %s", (int)gid, strerror(errno));
	REQUIRE(setuid(uid) == 0, "setuid %d: %s", (int)uid, strerror(errno));
	REQUIRE(getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid,
		"still uid %d/%d gid %d/%d", (int)getuid(), (int)geteuid(), (int)getgid(),
		(int)getegid());
	gid_t now[8];
	REQUIRE(getgroups(8, now) == ngroups, "supplementary groups left");
}

uid_t
testutil_nobody_uid(void)
{
	struct passwd *pw = getpwnam("nobody");

	return pw != NULL ? pw->pw_uid : 65534;
}

gid_t
testutil_nobody_gid(void)
{
	struct passwd *pw = getpwnam("nobody");

	return pw != NULL ? pw->pw_gid : 65534;
}

int
testutil_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* --- a real pgleased ---------------------------------------------------- */


static void
replace_all(char *dst, size_t len, const char *src, const char *pat, const char *with)
{
	size_t used = 0, plen = strlen(pat), wlen = strlen(with);

	while (*src != '\0' && used + 1 < len) {
		if (strncmp(src, pat, plen) == 0 && used + wlen + 1 < len) {
			memcpy(dst + used, with, wlen);
			used += wlen;
			src += plen;
		} else {
			dst[used++] = *src++;
		}
	}
	dst[used] = '\0';
}

pid_t
testutil_spawn(const char *log, uid_t uid, gid_t gid, int deathsig, char *const argv[])
{
	pid_t parent = getpid();
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (uid != (uid_t)-1 &&
		    (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0))
			_exit(126);
		/* after setuid, which clears it: gone with the test, whichever way it ends */
		prctl(PR_SET_PDEATHSIG, deathsig);
		if (getppid() != parent)
			_exit(1);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static pid_t
broker_spawn(const struct testbroker *b, uid_t uid, gid_t gid)
{
	char *argv[] = { (char *)TOP_BUILDDIR "/pgleased", (char *)"-c", (char *)b->conf, NULL };

	return testutil_spawn(b->log, uid, gid, SIGINT, argv);
}

bool
testutil_socket_answers(const char *path, int type)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%.*s", (int)sizeof(sun.sun_path) - 1, path);
	ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return ok;
}

static void
broker_wait(struct testbroker *b, bool wait_ready)
{
	int64_t deadline = clock_mono_ms() + 15000;

	while (!testutil_socket_answers(b->socket, SOCK_SEQPACKET)) {
		int status;
		ck_assert_msg(waitpid(b->pid, &status, WNOHANG) == 0,
			      "pgleased exited at start; see %s", b->log);
		ck_assert_msg(clock_mono_ms() < deadline, "pgleased did not listen in time");
		usleep(10000);
	}
	if (!wait_ready)
		return;

	/*
	 * The socket comes first, then the segment, then the pools in it; the
	 * log line says the last is done (before it, the segment may still
	 * count no pool, and there would be nothing to wait for).
	 */
	char started[64];
	snprintf(started, sizeof(started), "started pid=%d ", (int)b->pid);
	while (!testbroker_log_has(b, started)) {
		int status;
		ck_assert_msg(waitpid(b->pid, &status, WNOHANG) == 0,
			      "pgleased exited at start; see %s", b->log);
		ck_assert_msg(clock_mono_ms() < deadline, "pgleased did not start in time; see %s",
			      b->log);
		usleep(5000);
	}
	struct shm_snapshot snap;
	ck_assert_msg(shm_snapshot_owned(b->shm, b->uid, NULL, &snap) == 0 && snap.hdr.broker_pid == b->pid,
		      "pgleased started without its segment %s", b->shm);
	uint32_t npools = snap.hdr.npools;
	shm_snapshot_free(&snap);
	for (uint32_t i = 0; i < npools; i++) {
		ck_assert_int_eq(shm_snapshot_owned(b->shm, b->uid, NULL, &snap), 0);
		int want = snap.pools[i].min_size;
		shm_snapshot_free(&snap);
		ck_assert_msg(testbroker_wait_idle(b, (int)i, want, 15000),
			      "pool %u did not open %d backends; see %s", i, want, b->log);
	}
}

const char *
testutil_pool_with(const char *pool, const char *extra)
{
	static char buf[2048];
	const char *end = strrchr(pool, '}');

	ck_assert_msg(end != NULL, "not a pool group: %s", pool);
	snprintf(buf, sizeof(buf), "%.*s %s }", (int)(end - pool), pool, extra);
	return buf;
}

const char *testutil_reset_check = "function";

void
testutil_setup_query_check(void)
{
	testutil_reset_check = "query";
}

const char *
testutil_pool_checked(const char *pool)
{
	char extra[64];

	snprintf(extra, sizeof(extra), "reset_check = \"%s\";", testutil_reset_check);
	return testutil_pool_with(pool, extra);
}

void
testbroker_write_config(const struct testbroker *b, const char *broker_extra, const char *pools)
{
	char conninfo[512], body[8192], text[10000];

	snprintf(conninfo, sizeof(conninfo), "host=%s port=%s user=%s dbname=%s",
		 getenv("PGHOST"), getenv("PGPORT"), getenv("PGUSER"), getenv("PGDATABASE"));
	replace_all(body, sizeof(body), pools, "$CONNINFO", conninfo);
	snprintf(text, sizeof(text),
		 "broker = { socket = \"%s\"; shm_name = \"%s\"; %s\n"
		 "  log_level = \"debug\"; %s };\n"
		 "pools = ( %s );\n", b->socket, b->shm,
		 b->default_modes ? "" : "shm_mode = \"0644\";",
		 broker_extra != NULL ? broker_extra : "", body);

	/* Whole or not at all: a reload must never read half a file. */
	char tmp[400];
	snprintf(tmp, sizeof(tmp), "%s.new", b->conf);
	FILE *f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, b->conf), 0);
}

static void
broker_start(struct testbroker *b, bool default_modes, const char *broker_extra,
	     const char *pools, bool wait_ready)
{
	static int seq;

	memset(b, 0, sizeof(*b));
	b->default_modes = default_modes;
	snprintf(b->dir, sizeof(b->dir), "%s/broker%d.%d", testutil_tmpdir(), (int)getpid(), ++seq);
	ck_assert_int_eq(mkdir(b->dir, 0755), 0);
	snprintf(b->conf, sizeof(b->conf), "%s/pglease.conf", b->dir);
	snprintf(b->socket, sizeof(b->socket), "%s/pgl.sock", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/pgleased.log", b->dir);
	snprintf(b->shm, sizeof(b->shm), "/pglease.test.%d.%d", (int)getpid(), seq);
	testbroker_write_config(b, broker_extra, pools);
	b->pid = broker_spawn(b, (uid_t)-1, (gid_t)-1);
	broker_wait(b, wait_ready);
}

void
testbroker_start(struct testbroker *b, const char *broker_extra, const char *pools,
		 bool wait_ready)
{
	broker_start(b, false, broker_extra, pools, wait_ready);
}

void
testbroker_start_default_modes(struct testbroker *b, const char *broker_extra,
			       const char *pools, bool wait_ready)
{
	broker_start(b, true, broker_extra, pools, wait_ready);
}

void
testbroker_restart(struct testbroker *b, bool wait_ready)
{
	b->pid = broker_spawn(b, (uid_t)-1, (gid_t)-1);
	broker_wait(b, wait_ready);
}

/* Every password the suites use: none may ever reach a broker's log. */
static const char *const test_secrets[] = { "scram-Secret-42", "Sup3rSecret", "fuzzSecret9" };

/* The broker has exited with status: no secret in its log; the status as testbroker_stop's. */
static int
broker_exited(struct testbroker *b, int status)
{
	b->pid = 0;
	for (size_t i = 0; i < sizeof(test_secrets) / sizeof(test_secrets[0]); i++)
		ck_assert_msg(!testbroker_log_has(b, test_secrets[i]),
			      "a password reached the broker log %s", b->log);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

int
testbroker_stop(struct testbroker *b, int sig)
{
	int status;

	if (b->pid <= 0)
		return -1;
	kill(b->pid, sig);
	ck_assert_int_eq(waitpid(b->pid, &status, 0), b->pid);
	return broker_exited(b, status);
}

int
testbroker_wait_exit(struct testbroker *b, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	int status;
	pid_t r;

	ck_assert_int_gt(b->pid, 0);
	while ((r = waitpid(b->pid, &status, WNOHANG)) == 0) {
		ck_assert_msg(clock_mono_ms() < deadline, "pgleased (pid %d) still runs after %d ms; "
			      "see %s", (int)b->pid, timeout_ms, b->log);
		usleep(5000);
	}
	ck_assert_int_eq(r, b->pid);
	return broker_exited(b, status);
}

bool
testutil_file_has(const char *path, const char *text)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	bool found = false;

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

bool
testbroker_log_has(const struct testbroker *b, const char *text)
{
	return testutil_file_has(b->log, text);
}

int
testbroker_log_count(const struct testbroker *b, const char *text)
{
	FILE *f = fopen(b->log, "r");
	char line[4096];
	int n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

void
testbroker_wait_log(const struct testbroker *b, const char *text, int count, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	int n;

	while ((n = testbroker_log_count(b, text)) < count) {
		ck_assert_msg(clock_mono_ms() < deadline, "after %d ms, %d line%s of %s with \"%s\", "
			      "not %d", timeout_ms, n, n == 1 ? "" : "s", b->log, text, count);
		usleep(5000);
	}
}

bool
testbroker_wait_idle(const struct testbroker *b, int pool, int n, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;

	for (;;) {
		struct shm_snapshot snap;
		if (shm_snapshot_owned(b->shm, b->uid, NULL, &snap) == 0) {
			bool ok = (uint32_t)pool < snap.hdr.npools && snap.pools[pool].idle >= n;
			shm_snapshot_free(&snap);
			if (ok)
				return true;
		}
		if (clock_mono_ms() > deadline)
			return false;
		usleep(10000);
	}
}

bool
testutil_sql(const char *sql, char *out, size_t len)
{
	PGconn *c = PQconnectdb("application_name=pglease-test");
	bool ok = false;

	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);
		ok = PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
		if (len > 0)
			snprintf(out, len, "%s", ok && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) :
				 ok ? "" : PQresultErrorMessage(r));
		PQclear(r);
	} else if (len > 0) {
		snprintf(out, len, "%s", PQerrorMessage(c));
	}
	PQfinish(c);
	return ok;
}

long
testutil_sql_long(const char *sql)
{
	char out[256];

	return testutil_sql(sql, out, sizeof(out)) ? atol(out) : -1;
}

long
testutil_pool_backends(void)
{
	return testutil_sql_long("SELECT count(*) FROM pg_stat_activity "
				 "WHERE application_name = 'pgleased'");
}

bool
testutil_raw_write(int fd, const void *data, size_t len)
{
	const uint8_t *buf = data;

	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			poll(&p, 1, 1000);
			continue;
		}
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

bool
testutil_raw_send(int fd, const char *sql)
{
	size_t n = strlen(sql);
	uint8_t *buf = malloc(n + 6);
	uint32_t l = (uint32_t)(n + 5);

	buf[0] = 'Q';
	buf[1] = (uint8_t)(l >> 24);
	buf[2] = (uint8_t)(l >> 16);
	buf[3] = (uint8_t)(l >> 8);
	buf[4] = (uint8_t)l;
	memcpy(buf + 5, sql, n + 1);
	bool ok = testutil_raw_write(fd, buf, n + 6);
	free(buf);
	return ok;
}

bool
testutil_raw_read(int fd, void *out, size_t len)
{
	uint8_t *buf = out;

	while (len > 0) {
		ssize_t n = recv(fd, buf, len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (poll(&p, 1, 30000) == 0)
				return false;
			continue;
		}
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

bool
testutil_raw_query(int fd, const char *sql, char *out, size_t len, char *status)
{
	bool ok = true, have_row = false;

	if (len > 0)
		out[0] = '\0';
	if (!testutil_raw_send(fd, sql)) {
		snprintf(out, len, "send failed");
		return false;
	}
	for (;;) {
		uint8_t hdr[5];
		if (!testutil_raw_read(fd, hdr, 5)) {
			snprintf(out, len, "connection lost");
			return false;
		}
		uint32_t l = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 |
			     (uint32_t)hdr[3] << 8 | hdr[4];
		ck_assert_uint_ge(l, 4);
		uint8_t *body = malloc(l - 4 + 1);
		ck_assert(testutil_raw_read(fd, body, l - 4));
		body[l - 4] = 0;
		if (hdr[0] == 'D' && !have_row && l - 4 >= 6) {
			int32_t clen = (int32_t)((uint32_t)body[2] << 24 | (uint32_t)body[3] << 16 |
						 (uint32_t)body[4] << 8 | body[5]);
			if (clen >= 0 && len > 0)
				snprintf(out, len, "%.*s", clen, (char *)body + 6);
			have_row = true;
		} else if (hdr[0] == 'E') {
			ok = false;
			for (size_t i = 0; i < l - 4 && body[i] != 0; i += strlen((char *)body + i) + 1)
				if (body[i] == 'M' && len > 0)
					snprintf(out, len, "%s", (char *)body + i + 1);
		} else if (hdr[0] == 'Z') {
			if (status != NULL)
				*status = (char)body[0];
			free(body);
			return ok;
		}
		free(body);
	}
}

void
testutil_pg_ctl(const char *action)
{
	char cmd[1024];
	const char *runas = getenv("PGLEASE_TEST_RUNAS");

	snprintf(cmd, sizeof(cmd), "%s%s%s '%s/pg_ctl' -D '%s' -l '%s/server.log' -w -t 60 -m fast %s "
		 ">/dev/null 2>&1", runas != NULL && runas[0] != '\0' ? "runuser -u " : "",
		 runas != NULL ? runas : "", runas != NULL && runas[0] != '\0' ? " --" : "",
		 getenv("PGLEASE_TEST_PGBIN"), getenv("PGLEASE_TEST_PGDATA"),
		 getenv("PGLEASE_TEST_PGTMP"), action);
	ck_assert_msg(system(cmd) == 0, "pg_ctl %s failed", action);
}

int
testutil_control_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%.*s", (int)sizeof(sun.sun_path) - 1, path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

bool
testutil_wire_send(int fd, const struct wire_msg *m, int flags)
{
	uint8_t buf[WIRE_MESSAGE_MAX];
	size_t n = wire_encode(m, buf, sizeof(buf));

	return n > 0 && send(fd, buf, n, MSG_NOSIGNAL | flags) == (ssize_t)n;
}

bool
testutil_hello(int fd)
{
	struct wire_msg m = { .h = { .type = PGL_MSG_SESSION_HELLO, .request_id = 1 } };
	uint8_t buf[WIRE_MESSAGE_MAX];

	m.u.hello.version_min = m.u.hello.version_max = WIRE_VERSION_MIN;
	return testutil_wire_send(fd, &m, 0) && recv(fd, buf, sizeof(buf), 0) > 0;
}

int
testutil_count_fds(pid_t pid)
{
	char path[64];
	int n = 0;

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/fd");
	else
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return pid == 0 ? n - 1 : n;	/* not the directory's own fd */
}

const char *
testutil_describe_fds(pid_t pid, char *buf, size_t len)
{
	char dir[64], path[sizeof(dir) + 256], target[256];
	size_t used = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	buf[0] = '\0';
	DIR *d = opendir(dir);
	if (d == NULL)
		return buf;
	for (struct dirent *e; (e = readdir(d)) != NULL && used < len;) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		int w = snprintf(buf + used, len - used, "%s%s=%s", used > 0 ? " " : "", e->d_name,
				 target);
		used += w > 0 ? (size_t)w : 0;
	}
	closedir(d);
	return buf;
}

/* --- a hostile broker ----------------------------------------------------- */

#include "common/fdpass.h"

pid_t
testutil_hostile_broker(const char *path, uint16_t version, uint32_t acquire_timeout_ms,
			void (*script)(int conn, void *arg), void *arg)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	pid_t parent = getpid();

	ck_assert_int_ge(lfd, 0);
	ck_assert_uint_lt(strlen(path), sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	unlink(path);
	ck_assert_msg(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0, "bind %s: %s", path,
		      strerror(errno));
	ck_assert_int_eq(listen(lfd, 8), 0);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid > 0) {
		close(lfd);
		return pid;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	REQUIRE(conn >= 0, "hostile broker: accept: %s", strerror(errno));
	close(lfd);

	struct wire_msg m;
	uint8_t buf[WIRE_MESSAGE_MAX];
	REQUIRE(testutil_wire_recv(conn, &m, buf, sizeof(buf), NULL, 10000) &&
		m.h.type == PGL_MSG_SESSION_HELLO, "hostile broker: no HELLO");
	struct wire_msg w = { .h = { .type = PGL_MSG_SESSION_WELCOME,
				     .request_id = m.h.request_id } };
	w.u.welcome.version = version;
	w.u.welcome.broker_pid = (uint32_t)getpid();
	w.u.welcome.incarnation = 0x7e57;
	w.u.welcome.acquire_timeout_ms = acquire_timeout_ms;
	snprintf(w.u.welcome.shm_name, sizeof(w.u.welcome.shm_name), "/pglease.hostile");
	REQUIRE(testutil_wire_send_fd(conn, &w, -1), "hostile broker: WELCOME not sent");
	script(conn, arg);
	_exit(0);
}

bool
testutil_wire_recv(int fd, struct wire_msg *m, uint8_t *buf, size_t cap, int *pass_fd,
		   int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	const char *why;

	if (pass_fd != NULL)
		*pass_fd = -1;
	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	ssize_t n = fdpass_recv(fd, buf, cap, pass_fd);
	return n > 0 && wire_decode(buf, (size_t)n, m, &why) == 0;
}

bool
testutil_wire_send_fd(int fd, const struct wire_msg *m, int pass_fd)
{
	uint8_t buf[WIRE_MESSAGE_MAX];
	size_t n = wire_encode(m, buf, sizeof(buf));

	return n > 0 && fdpass_send(fd, buf, n, pass_fd) == (ssize_t)n;
}

void
testutil_wait_eof(int fd, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	uint8_t buf[WIRE_MESSAGE_MAX];

	for (;;) {
		int64_t left = deadline - clock_mono_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) != 1)
			return;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return;
	}
}

/* --- a broker of another user ------------------------------------------- */

#include <grp.h>

void
testbroker_start_as(struct testbroker *b, uid_t uid, gid_t gid, const char *broker_extra,
		    const char *pools, bool wait_ready)
{
	static int seq;

	memset(b, 0, sizeof(*b));
	b->uid = uid;
	ck_assert_int_eq(chmod(testutil_tmpdir(), 0711), 0);
	snprintf(b->dir, sizeof(b->dir), "%s/broker-as%u.%d.%d", testutil_tmpdir(), (unsigned)uid,
		 (int)getpid(), ++seq);
	ck_assert_int_eq(mkdir(b->dir, 0755), 0);
	ck_assert_int_eq(chown(b->dir, uid, gid), 0);
	snprintf(b->conf, sizeof(b->conf), "%s/pglease.conf", b->dir);
	snprintf(b->socket, sizeof(b->socket), "%s/pgl.sock", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/pgleased.log", b->dir);
	snprintf(b->shm, sizeof(b->shm), "/pglease.test.as%u.%d.%d", (unsigned)uid, (int)getpid(),
		 seq);
	testbroker_write_config(b, broker_extra, pools);
	b->pid = broker_spawn(b, uid, gid);
	broker_wait(b, wait_ready);
}

const char *
testutil_program(const char *name, const char *dirs, const char *package)
{
	static char path[512];
	char list[1024];
	const char *env = getenv("PATH");

	snprintf(list, sizeof(list), "%s:%s", env != NULL ? env : "", dirs);
	for (char *save = NULL, *d = strtok_r(list, ":", &save); d != NULL;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof(path), "%s/%s", d, name);
		if (access(path, X_OK) == 0)
			return path;
	}
	ck_abort_msg("%s is not installed: this suite needs it (apt-get install %s; "
		     "scripts/install-deps.sh --tests installs it)", name, package);
	return NULL;
}
