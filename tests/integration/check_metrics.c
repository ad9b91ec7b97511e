/*
 * check_metrics.c - pglease-stat for Prometheus against a real broker: the
 * exposition (one-shot, and each scrape of --watch) passes promtool check
 * metrics with no warning; the broker-level metrics move with clients,
 * refusals and leases; pglease_up 0 and exit 2 without a broker;
 * --textfile replaces its file atomically; --listen serves /metrics; a
 * member of shm_group reads the segment.  promtool must be installed
 * (apt-get install prometheus; scripts/install-deps.sh --tests does):
 * without it the suite fails, it never passes unchecked.  Runs as root (as
 * CI does), to switch readers to other users.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "pglease.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define STAT TOP_BUILDDIR "/pglease-stat"
#define POOLS                                                                         \
	"{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 1; max_size = 3; " \
	"acquire_timeout = 5.0; }"

static struct testbroker broker;
static char out[65536];

/* --- promtool and the text ------------------------------------------------- */

/* promtool check metrics on text: exit 0 and not a word (a lint warning is a failure). */
static void
promtool_ok(const char *text, const char *what)
{
	static int seq;
	char file[512], cmd[1200], res[8192];

	snprintf(file, sizeof(file), "%s/exposition.%d.%d.txt", testutil_tmpdir(), (int)getpid(),
		 ++seq);
	FILE *f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "exec '%s' check metrics < '%s'",
		 testutil_program("promtool", "/usr/bin:/usr/local/bin", "prometheus"), file);
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", cmd, NULL };
	int rc = testutil_run(argv, res, sizeof(res));
	ck_assert_msg(rc == 0 && res[0] == '\0', "promtool check metrics on %s: exit %d:\n%s\n"
		      "--- the exposition:\n%s", what, rc, res, text);
}

/* The value of series (a name with its labels) in text; fails when it is missing. */
static double
metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	ck_abort_msg("no series %s in:\n%s", series, text);
	return 0;
}

/* pglease-stat ARGS... on the test broker's segment into out; its exit status. */
static int
stat_run(const char *a1, const char *a2, const char *a3)
{
	char *argv[] = { (char *)STAT, (char *)"-n", broker.shm, (char *)a1, (char *)a2,
			 (char *)a3, NULL };
	return testutil_run(argv, out, sizeof(out));
}

static int
scrape(void)
{
	return stat_run("--prometheus", NULL, NULL);
}

/* --- workers ---------------------------------------------------------------- */

/*
 * Forks a worker that connects to the broker and, with lease, holds one;
 * it says so on *ready (read end) and goes on when *go is written to or
 * closed.
 */
static pid_t
worker(bool lease, int *ready, int *go)
{
	int r[2], g[2];

	ck_assert_int_eq(pipe(r), 0);
	ck_assert_int_eq(pipe(g), 0);
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		char c = 'x';
		close(r[0]);
		close(g[1]);
		pgl_client *cl = pgl_open(broker.socket);
		pgl_lease *l = pgl_acquire(cl, NULL, -1);
		REQUIRE(l != NULL, "acquire: %s", pgl_error(cl));
		if (!lease)
			REQUIRE(pgl_release(l) == 0, "release: %s", pgl_error(cl));
		REQUIRE(write(r[1], &c, 1) == 1, "cannot tell the test");
		(void)read(g[0], &c, 1);
		if (lease)
			REQUIRE(pgl_release(l) == 0, "release: %s", pgl_error(cl));
		pgl_close(cl);
		_exit(0);
	}
	close(r[1]);
	close(g[0]);
	char c;
	ck_assert_int_eq(read(r[0], &c, 1), 1);
	*ready = r[0];
	*go = g[1];
	return p;
}

static void
worker_end(pid_t p, int ready, int go, const char *what)
{
	close(go);
	testutil_reap(p, what);
	close(ready);
}

/* --- the exposition ----------------------------------------------------------- */

/*
 * One scrape passes promtool; the broker-level metrics are there with
 * plausible values; clients and leases per state follow a forked worker
 * that holds a lease.
 */
START_TEST(test_exposition)
{
	int64_t before = clock_real_ms();

	testbroker_start(&broker, NULL, POOLS, true);
	ck_assert_int_eq(scrape(), 0);
	promtool_ok(out, "a one-shot scrape");
	ck_assert_msg(strstr(out, "_us") == NULL && strstr(out, "microseconds") == NULL,
		      "a unit other than seconds:\n%s", out);
	ck_assert(metric(out, "pglease_up") == 1);
	double start = metric(out, "pglease_start_time_seconds");
	ck_assert_msg(start >= before / 1000.0 - 1 && start <= clock_real_ms() / 1000.0 + 1,
		      "start time %f, test began at %f", start, before / 1000.0);
	double age = metric(out, "pglease_heartbeat_age_seconds");
	ck_assert_msg(age >= 0 && age < 5, "heartbeat age %f", age);
	/* testbroker_start's probe of the socket was a client too, for a moment */
	WAIT_UNTIL(scrape() == 0 && metric(out, "pglease_clients") == 0, 5000,
		   "clients before any worker:\n%s", out);
	double accepted = metric(out, "pglease_clients_accepted_total");
	ck_assert(metric(out, "pglease_clients_refused_total{reason=\"denied\"}") == 0);
	ck_assert(metric(out, "pglease_clients_refused_total{reason=\"max_clients\"}") == 0);
	ck_assert(metric(out, "pglease_pool_slots{pool=\"main\",state=\"idle\"}") == 1);
	ck_assert(metric(out, "pglease_pool_slots{pool=\"main\",state=\"leased\"}") == 0);
	ck_assert(metric(out, "pglease_pool_slots{pool=\"main\",state=\"empty\"}") == 2);
	ck_assert(metric(out, "pglease_pool_backoff{pool=\"main\"}") == 0);
	ck_assert(metric(out, "pglease_pool_backoff_remaining_seconds{pool=\"main\"}") == 0);
	ck_assert(metric(out, "pglease_pool_max_size{pool=\"main\"}") == 3);
	(void)metric(out, "pglease_pool_acquire_wait_seconds_total{pool=\"main\"}");

	int ready, go;
	pid_t w = worker(true, &ready, &go);
	ck_assert_int_eq(scrape(), 0);
	promtool_ok(out, "a scrape with a lease out");
	ck_assert(metric(out, "pglease_clients") == 1);
	ck_assert(metric(out, "pglease_clients_accepted_total") == accepted + 1);
	ck_assert(metric(out, "pglease_pool_slots{pool=\"main\",state=\"leased\"}") == 1);
	ck_assert(metric(out, "pglease_pool_leased{pool=\"main\"}") == 1);
	ck_assert(metric(out, "pglease_pool_leases_total{pool=\"main\"}") == 1);
	ck_assert_int_eq(stat_run("--json", NULL, NULL), 0);
	ck_assert_msg(strstr(out, "\"clients\":1,") != NULL, "%s", out);
	worker_end(w, ready, go, "worker holding a lease");

	/* gone: the client closed, the slot back (after its reset) */
	WAIT_UNTIL(scrape() == 0 && metric(out, "pglease_clients") == 0 &&
		   metric(out, "pglease_pool_slots{pool=\"main\",state=\"leased\"}") == 0 &&
		   metric(out, "pglease_pool_slots{pool=\"main\",state=\"resetting\"}") == 0,
		   5000, "the worker's client and lease still counted:\n%s", out);
	ck_assert(metric(out, "pglease_clients_accepted_total") == accepted + 1);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* A pool whose server is not there backs off: 1, and the seconds until it tries again. */
START_TEST(test_backoff)
{
	char pools[1024];

	snprintf(pools, sizeof(pools), "%s, { name = \"gone\"; conninfo = \"host=%s/nowhere "
		 "dbname=x\"; min_size = 1; max_size = 1; initial_backoff = 30.0; "
		 "max_backoff = 60.0; }", POOLS, testutil_tmpdir());
	testbroker_start(&broker, NULL, pools, false);
	WAIT_UNTIL(scrape() == 0 && strstr(out, "pglease_pool_backoff{pool=\"gone\"} 1\n") != NULL,
		   10000, "pool gone does not back off:\n%s", out);
	promtool_ok(out, "a scrape with a pool backing off");
	double left = metric(out, "pglease_pool_backoff_remaining_seconds{pool=\"gone\"}");
	ck_assert_msg(left > 10 && left <= 30 * 1.2 + 1, "retry in %f s", left);
	ck_assert(metric(out, "pglease_pool_connect_failures_total{pool=\"gone\"}") >= 1);
	ck_assert(metric(out, "pglease_pool_backoff{pool=\"main\"}") == 0);
	ck_assert(metric(out, "pglease_pool_backoff_remaining_seconds{pool=\"main\"}") == 0);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* Clients refused, by reason: max_clients, and a user not in allowed_uids. */
START_TEST(test_refused)
{
	ck_assert_msg(geteuid() == 0, "this suite runs as root (as CI does), to switch users");
	ck_assert_int_eq(chmod(testutil_tmpdir(), 0755), 0);
	testbroker_start(&broker, "max_clients = 1; socket_mode = \"0666\";", POOLS, true);
	ck_assert_int_eq(chmod(broker.dir, 0755), 0);
	WAIT_UNTIL(scrape() == 0 && metric(out, "pglease_clients") == 0, 5000,
		   "clients before any worker:\n%s", out);

	int ready, go;
	pid_t w = worker(false, &ready, &go);	/* the one client served */
	pgl_client *c = pgl_open(broker.socket);
	ck_assert_ptr_null(pgl_acquire(c, NULL, -1));
	ck_assert_int_eq(pgl_errcode(c), PGL_ELIMIT);
	pgl_close(c);
	ck_assert_int_eq(scrape(), 0);
	ck_assert(metric(out, "pglease_clients") == 1);
	ck_assert(metric(out, "pglease_clients_refused_total{reason=\"max_clients\"}") == 1);
	ck_assert(metric(out, "pglease_clients_refused_total{reason=\"denied\"}") == 0);
	worker_end(w, ready, go, "the client served");
	WAIT_UNTIL(scrape() == 0 && metric(out, "pglease_clients") == 0, 5000,
		   "the client still counted:\n%s", out);

	/* nobody: not the broker's uid, and no allowed_uids */
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		testutil_become(testutil_nobody_uid(), testutil_nobody_gid(), NULL, 0);
		pgl_client *n = pgl_open(broker.socket);
		REQUIRE(pgl_acquire(n, NULL, -1) == NULL && pgl_errcode(n) == PGL_EDENIED,
			"nobody was not denied: %s", pgl_error(n));
		pgl_close(n);
		_exit(0);
	}
	testutil_reap(p, "nobody, denied");
	ck_assert_int_eq(scrape(), 0);
	promtool_ok(out, "a scrape after refusals");
	ck_assert(metric(out, "pglease_clients_refused_total{reason=\"denied\"}") == 1);
	ck_assert(metric(out, "pglease_clients_refused_total{reason=\"max_clients\"}") == 1);
	ck_assert(metric(out, "pglease_clients") == 0);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* Without a broker: pglease_up 0, a valid exposition, exit 2; so with a dead one. */
START_TEST(test_down)
{
	char none[64];

	snprintf(none, sizeof(none), "/pglease.none.%d", (int)getpid());
	char *argv[] = { (char *)STAT, (char *)"-n", none, (char *)"--prometheus", NULL };
	ck_assert_int_eq(testutil_run(argv, out, sizeof(out)), 2);
	ck_assert_msg(strstr(out, "\npglease_up 0\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "no shared memory segment") != NULL, "%s", out);
	/* stdout alone for promtool: stderr had a sentence */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "'%s' -n %s --prometheus 2>/dev/null; test $? = 2", STAT, none);
	char *sh[] = { (char *)"/bin/sh", (char *)"-c", cmd, NULL };
	ck_assert_int_eq(testutil_run(sh, out, sizeof(out)), 0);
	promtool_ok(out, "the exposition of a missing segment");
	ck_assert(metric(out, "pglease_up") == 0);

	/* killed: its segment stays, its pid is gone */
	testbroker_start(&broker, NULL, POOLS, true);
	ck_assert_int_eq(testbroker_stop(&broker, SIGKILL), 128 + SIGKILL);
	snprintf(cmd, sizeof(cmd), "'%s' -n %s --prometheus 2>/dev/null; test $? = 2", STAT,
		 broker.shm);
	ck_assert_int_eq(testutil_run(sh, out, sizeof(out)), 0);
	promtool_ok(out, "the exposition of a dead broker's segment");
	ck_assert(metric(out, "pglease_up") == 0);
	ck_assert_msg(strstr(out, "pglease_clients") == NULL, "a dead broker's clients:\n%s", out);
	shm_unlink(broker.shm);
}
END_TEST

/* Reads the whole file at path into out; false when it is not there. */
static bool
slurp(const char *path)
{
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return false;
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	return true;
}

/*
 * --watch with --prometheus: a blank line between complete expositions;
 * each passes promtool; a broker that goes is told as pglease_up 0, and the
 * watch goes on.
 */
START_TEST(test_watch)
{
	char log[400], cmd[1200];

	testbroker_start(&broker, NULL, POOLS, true);
	snprintf(log, sizeof(log), "%s/watch.out", broker.dir);
	/* stdout alone in the log: stderr tells the broker down in sentences */
	snprintf(cmd, sizeof(cmd), "exec '%s' -n %s --prometheus --watch 0.2 2>'%s.err'", STAT,
		 broker.shm, log);
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", cmd, NULL };
	pid_t p = testutil_spawn(log, (uid_t)-1, (gid_t)-1, SIGKILL, argv);
	WAIT_UNTIL(slurp(log) && strstr(out, "\n\n") != NULL &&
		   strstr(strstr(out, "\n\n"), "pglease_pool_backoff_remaining_seconds{") != NULL,
		   10000, "no two expositions from --watch:\n%s", out);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	WAIT_UNTIL(slurp(log) && strstr(out, "pglease_up 0\n") != NULL, 10000,
		   "--watch did not tell the broker down:\n%s", out);
	ck_assert_int_eq(kill(p, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(p, &status, 0), p);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "--watch ended with %d",
		      status);
	ck_assert(slurp(log));

	/* every exposition on its own: the first two up, the last one down */
	int n = 0, up = 0;
	char *text = strdup(out);
	ck_assert_ptr_nonnull(text);
	for (char *part = text, *next; part != NULL; part = next, n++) {
		next = strstr(part, "\n\n");
		if (next != NULL) {
			next[1] = '\0';
			next += 2;
		}
		promtool_ok(part, "one exposition of --watch");
		up += strstr(part, "pglease_up 1\n") != NULL;
	}
	free(text);
	ck_assert_msg(n >= 3 && up >= 2, "%d expositions, %d up", n, up);
}
END_TEST

/* --textfile: DIR/pglease.prom whole at every moment, readable by all, no temporary left. */
START_TEST(test_textfile)
{
	char dir[400], file[450], log[450];
	struct stat st;

	testbroker_start(&broker, NULL, POOLS, true);
	snprintf(dir, sizeof(dir), "%s/textfile", broker.dir);
	snprintf(file, sizeof(file), "%s/pglease.prom", dir);
	snprintf(log, sizeof(log), "%s/textfile.log", broker.dir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(stat_run("--textfile", dir, NULL), 0);
	ck_assert_msg(out[0] == '\0', "output besides the file: %s", out);
	ck_assert(slurp(file));
	promtool_ok(out, "the textfile");
	ck_assert(metric(out, "pglease_up") == 1);
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0644);

	/* rewritten every 10 ms: each read finds a whole exposition */
	char *argv[] = { (char *)STAT, (char *)"-n", broker.shm, (char *)"--textfile", dir,
			 (char *)"--watch", (char *)"0.01", NULL };
	pid_t p = testutil_spawn(log, (uid_t)-1, (gid_t)-1, SIGKILL, argv);
	ino_t first = st.st_ino;
	WAIT_UNTIL(stat(file, &st) == 0 && st.st_ino != first, 5000, "%s was not replaced", file);
	int64_t end = clock_mono_ms() + 1000;
	int reads = 0;
	while (clock_mono_ms() < end) {
		ck_assert(slurp(file));
		size_t len = strlen(out);
		ck_assert_msg(len > 0 && out[len - 1] == '\n' &&
			      strstr(out, "pglease_pool_backoff_remaining_seconds{pool=\"main\"} ") !=
			      NULL, "read %d: not a whole exposition:\n%s", reads, out);
		reads++;
	}
	promtool_ok(out, "the textfile under --watch");
	ck_assert_int_eq(kill(p, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(p, &status, 0), p);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d", status);

	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		ck_assert_msg(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
			      strcmp(e->d_name, "pglease.prom") == 0, "%s left in %s", e->d_name,
			      dir);
	closedir(d);

	/* down: the file says so, exit 2 */
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	ck_assert_int_eq(stat_run("--textfile", dir, NULL), 2);
	ck_assert(slurp(file));
	promtool_ok(out, "the textfile of a missing broker");
	ck_assert(metric(out, "pglease_up") == 0);
}
END_TEST

/* --- --listen --------------------------------------------------------------- */

/* One HTTP/1.0 request to 127.0.0.1:port; the whole answer into out. */
static void
http(int port, const char *method, const char *path)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char req[256];
	size_t n = 0;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0, "connect to %d: %s",
		      port, strerror(errno));
	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ck_assert_msg(poll(&pfd, 1, 10000) == 1, "no answer to %s %s", method, path);
		ssize_t r = read(fd, out + n, sizeof(out) - 1 - n);
		ck_assert_int_ge(r, 0);
		if (r == 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	close(fd);
}

/* The body of the answer in out. */
static const char *
http_body(void)
{
	const char *b = strstr(out, "\r\n\r\n");

	ck_assert_msg(b != NULL, "not an HTTP answer:\n%s", out);
	return b + 4;
}

START_TEST(test_listen)
{
	char log[400];
	int port = 0;

	testbroker_start(&broker, NULL, POOLS, true);
	snprintf(log, sizeof(log), "%s/listen.log", broker.dir);
	char *argv[] = { (char *)STAT, (char *)"-n", broker.shm, (char *)"--listen",
			 (char *)"127.0.0.1:0", NULL };
	pid_t p = testutil_spawn(log, (uid_t)-1, (gid_t)-1, SIGKILL, argv);
	WAIT_UNTIL(slurp(log) && (strstr(out, "on port ") != NULL ||
				  strstr(out, "not built in") != NULL), 5000,
		   "pglease-stat --listen told no port:\n%s", out);
	ck_assert_msg(strstr(out, "not built in") == NULL, "this build has no --listen (configure "
		      "found no libmicrohttpd: apt-get install libmicrohttpd-dev):\n%s", out);
	port = atoi(strstr(out, "on port ") + 8);
	ck_assert_msg(port > 0, "%s", out);

	http(port, "GET", "/metrics");
	ck_assert_msg(strncmp(out, "HTTP/1.", 7) == 0 && strncmp(out + 8, " 200", 4) == 0,
		      "%s", out);
	ck_assert_msg(strstr(out, "Content-Type: text/plain; version=0.0.4") != NULL, "%s", out);
	char *body = strdup(http_body());
	ck_assert_ptr_nonnull(body);
	promtool_ok(body, "GET /metrics");
	ck_assert(metric(body, "pglease_up") == 1);
	ck_assert(metric(body, "pglease_pool_slots{pool=\"main\",state=\"idle\"}") == 1);
	free(body);

	http(port, "HEAD", "/metrics");
	ck_assert_msg(strncmp(out + 8, " 200", 4) == 0, "%s", out);
	ck_assert_msg(http_body()[0] == '\0', "HEAD with a body:\n%s", out);
	http(port, "GET", "/");
	ck_assert_msg(strncmp(out + 8, " 404", 4) == 0, "%s", out);
	http(port, "GET", "/metricsx");
	ck_assert_msg(strncmp(out + 8, " 404", 4) == 0, "%s", out);
	http(port, "POST", "/metrics");
	ck_assert_msg(strncmp(out + 8, " 405", 4) == 0, "%s", out);

	/* the broker gone: still a scrape, that says so */
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	http(port, "GET", "/metrics");
	ck_assert_msg(strncmp(out + 8, " 200", 4) == 0, "%s", out);
	body = strdup(http_body());
	ck_assert_ptr_nonnull(body);
	promtool_ok(body, "GET /metrics without a broker");
	ck_assert(metric(body, "pglease_up") == 0);
	free(body);

	ck_assert_int_eq(kill(p, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(p, &status, 0), p);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d", status);
}
END_TEST

/* --- shm_group ---------------------------------------------------------------- */

/* Runs pglease-stat ARGS in a child as nobody with the one supplementary group given. */
static int
stat_as_nobody(gid_t group, const char *owner)
{
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		char res[65536];
		close(fds[0]);
		testutil_become(testutil_nobody_uid(), testutil_nobody_gid(), &group,
				group == (gid_t)-1 ? 0 : 1);
		char *argv[] = { (char *)STAT, (char *)"-n", broker.shm, (char *)"--prometheus",
				 owner != NULL ? (char *)"--owner" : NULL, (char *)owner, NULL };
		int rc = testutil_run(argv, res, sizeof(res));
		REQUIRE(write(fds[1], res, strlen(res) + 1) > 0, "cannot tell the test");
		_exit(rc);
	}
	close(fds[1]);
	size_t n = 0;
	ssize_t r;
	while ((r = read(fds[0], out + n, sizeof(out) - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fds[0]);
	int status;
	ck_assert_int_eq(waitpid(p, &status, 0), p);
	ck_assert_msg(WIFEXITED(status), "reader as nobody: status %d", status);
	return WEXITSTATUS(status);
}

/*
 * shm_group with the default shm_mode (0640): the segment is the group's,
 * a member reads it and a stranger cannot.  A broker of its own user: a
 * member trusts it with --owner.
 */
START_TEST(test_shm_group)
{
	char path[300];
	struct stat st;
	struct group *gr = getgrnam("daemon");

	ck_assert_msg(geteuid() == 0, "this suite runs as root (as CI does), to switch users");
	ck_assert_msg(gr != NULL, "no group daemon on this system");
	gid_t daemon_gid = gr->gr_gid;
	testbroker_start_default_modes(&broker, "shm_group = \"daemon\";", POOLS, true);
	snprintf(path, sizeof(path), "/dev/shm%s", broker.shm);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_gid, daemon_gid);
	ck_assert_int_eq(st.st_mode & 07777, 0640);

	ck_assert_msg(stat_as_nobody(daemon_gid, NULL) == 0, "a member of daemon cannot read:\n%s",
		      out);
	promtool_ok(out, "a member of shm_group's scrape");
	ck_assert(metric(out, "pglease_up") == 1);
	ck_assert_msg(stat_as_nobody((gid_t)-1, NULL) == 1, "a stranger read it:\n%s", out);
	ck_assert_msg(strstr(out, "Permission denied") != NULL, "%s", out);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);

	/* a broker running as 40010, its segment given to its group 40011 */
	/* (min_size 0: the server's socket is not for 40010 to reach) */
	testbroker_start_as(&broker, 40010, 40011, "shm_group = \"40011\";",
			    "{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = 0; "
			    "max_size = 1; }", true);
	snprintf(path, sizeof(path), "/dev/shm%s", broker.shm);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_uid, 40010);
	ck_assert_int_eq(st.st_gid, 40011);
	ck_assert_msg(stat_as_nobody(40011, NULL) == 1, "an untrusted owner's segment read:\n%s",
		      out);
	ck_assert_msg(strstr(out, "not trusted") != NULL, "%s", out);
	ck_assert_msg(stat_as_nobody(40011, "40010") == 0, "--owner 40010:\n%s", out);
	ck_assert(metric(out, "pglease_up") == 1);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}
END_TEST

/* A broker that may not give the segment to shm_group refuses the file. */
START_TEST(test_shm_group_not_allowed)
{
	char conf[400];

	ck_assert_msg(geteuid() == 0, "this suite runs as root (as CI does), to switch users");
	ck_assert_int_eq(chmod(testutil_tmpdir(), 0755), 0);
	snprintf(conf, sizeof(conf), "%s/shm-group.conf", testutil_tmpdir());
	FILE *f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "broker = { socket = \"%s/x.sock\"; shm_name = \"/pglease.sg.%d\"; "
		"shm_group = \"daemon\"; };\npools = ( { name = \"main\"; conninfo = "
		"\"host=/tmp dbname=x\"; } );\n", testutil_tmpdir(), (int)getpid());
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(conf, 0644), 0);

	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		char res[4096];
		testutil_become(testutil_nobody_uid(), testutil_nobody_gid(), NULL, 0);
		char *argv[] = { (char *)TOP_BUILDDIR "/pgleased", (char *)"-c", conf,
				 (char *)"--check-config", NULL };
		int rc = testutil_run(argv, res, sizeof(res));
		REQUIRE(rc == 1, "--check-config as nobody: exit %d:\n%s", rc, res);
		REQUIRE(strstr(res, "broker.shm_group") != NULL &&
			strstr(res, "cannot give the segment to that group") != NULL, "%s", res);
		_exit(0);
	}
	testutil_reap(p, "--check-config as nobody");
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_exposition);
	tcase_add_test(tc, test_backoff);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_down);
	tcase_add_test(tc, test_watch);
	tcase_add_test(tc, test_textfile);
	tcase_add_test(tc, test_listen);
	tcase_add_test(tc, test_shm_group);
	tcase_add_test(tc, test_shm_group_not_allowed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(metrics_suite());
}
