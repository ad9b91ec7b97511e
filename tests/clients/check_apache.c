/*
 * check_apache.c - Apache prefork + mod_php under the shim, set up as a
 * sysadmin would: what pglease-run sets (LD_PRELOAD, PGLEASE_SOCKET) in the
 * environment Apache starts with (as Debian's envvars would hold it),
 * children running as www-data, a broker run by root that lets www-data in
 * (allowed_uids and allowed_gids, socket_mode, a traversable directory,
 * shm_mode).  page.php connects, runs a parameterised query and closes per
 * request; ab sends 300 requests, 8 at a time, to 12 children sharing a
 * pool of 4.  Every response is right, Apache's error log holds no
 * complaint, the children are www-data with the shim loaded, and the pages
 * read as on an Apache connecting directly.  Apart: a lease per request and
 * never more backends than max_size.
 *
 * PHP loads its extensions with RTLD_DEEPBIND: pgsql.so binds to libpq's
 * own PQconnectdb before any preloaded one, so a shim that interposes by
 * LD_PRELOAD alone does not see PHP's connections.
 *
 * Apache is started by the test in its own process group, dies with it
 * (PR_SET_PDEATHSIG) and is stopped at exit whatever happened.
 */
#include "autoconf.h"

#include "clients/clientutil.h"
#include "common/clock.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE 4
#define WORKERS "12"		/* children: more than ab's concurrency, as a site sizes it */
#define REQUESTS 300
#define CONCURRENCY "8"
#define CHECKED 20		/* responses read and checked one by one */
#define MODULES "/usr/lib/apache2/modules"

static struct testbroker broker;

struct apache {
	pid_t pid;		/* the parent, leader of its process group; 0 when stopped */
	int port;
	char dir[512];
	char conf[600];
};

static struct apache *started[4];
static int nstarted;
static pid_t owner;

/* --- Apache, started and stopped --------------------------------------------- */

static void
apache_kill(struct apache *a)
{
	int status;

	if (a->pid <= 0)
		return;
	kill(a->pid, SIGTERM);
	int64_t deadline = clock_mono_ms() + 10000;
	while (waitpid(a->pid, &status, WNOHANG) == 0 && clock_mono_ms() < deadline)
		usleep(10000);
	/* Whatever is left of the group (children, or a parent that did not stop). */
	kill(-a->pid, SIGKILL);
	waitpid(a->pid, &status, WNOHANG);
	a->pid = 0;
}

/* At exit of the test process, whatever happened. */
static void
apache_cleanup(void)
{
	if (getpid() != owner)
		return;
	for (int i = 0; i < nstarted; i++)
		apache_kill(started[i]);
}

static char *
read_whole(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);

	ck_assert_ptr_nonnull(buf);
	if (f != NULL) {
		size_t n = fread(buf, 1, (1 << 20) - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

/* text with every @name@ of the template replaced (names and values in pairs). */
static char *
fill(const char *text, const char *const *pairs)
{
	size_t cap = strlen(text) * 2 + 8192, used = 0;
	char *out = malloc(cap);

	ck_assert_ptr_nonnull(out);
	for (const char *t = text; *t != '\0';) {
		bool done = false;
		for (size_t i = 0; pairs[i] != NULL && !done; i += 2) {
			size_t n = strlen(pairs[i]);
			if (t[0] == '@' && strncmp(t + 1, pairs[i], n) == 0 && t[n + 1] == '@') {
				size_t v = strlen(pairs[i + 1]);
				ck_assert_uint_lt(used + v, cap);
				memcpy(out + used, pairs[i + 1], v);
				used += v;
				t += n + 2;
				done = true;
			}
		}
		if (!done) {
			ck_assert_uint_lt(used + 1, cap);
			out[used++] = *t++;
		}
	}
	out[used] = '\0';
	ck_assert_msg(strchr(out, '@') == NULL, "a placeholder of the template is left: %s",
		      strchr(out, '@'));
	return out;
}

/* A loopback port nothing listens on now. */
static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static bool
port_answers(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;

	close(fd);
	return ok;
}

/* Debian's mod_php: libphpX.Y.so in the module directory. */
static const char *
php_module(void)
{
	static char name[64];
	glob_t g;

	ck_assert_msg(glob(MODULES "/libphp*.so", 0, NULL, &g) == 0 && g.gl_pathc > 0,
		      "mod_php is not installed (" MODULES "/libphp*.so): this suite needs it "
		      "(apt-get install libapache2-mod-php, or scripts/install-deps.sh)");
	snprintf(name, sizeof(name), "%s", strrchr(g.gl_pathv[0], '/') + 1);
	globfree(&g);
	/* and PHP's pgsql extension enabled for Apache */
	ck_assert_msg(glob("/etc/php/*/apache2/conf.d/*pgsql.ini", 0, NULL, &g) == 0 &&
		      g.gl_pathc > 0, "PHP's pgsql extension is not enabled for Apache: this suite "
		      "needs it (apt-get install php-pgsql, or scripts/install-deps.sh)");
	globfree(&g);
	return name;
}

/*
 * Starts Apache from httpd.conf.in in a fresh directory name, page.php
 * connecting to the harness's server; when b is not NULL, with the
 * environment pglease-run gives a program for broker b (LD_PRELOAD,
 * PGLEASE_SOCKET, ...), as a sysadmin puts it in /etc/apache2/envvars.
 * Returns when it answers.
 */
static void
apache_start(struct apache *a, const char *name, const struct testbroker *b)
{
	const char *apache2 = strdup(clients_program("apache2", "apache2"));
	char path[700], listen[64], conninfo[512];
	pid_t parent = getpid();

	memset(a, 0, sizeof(*a));
	snprintf(a->dir, sizeof(a->dir), "%s", clients_mkdir(name));
	snprintf(path, sizeof(path), "%s/htdocs", name);
	clients_mkdir(path);
	char *page = read_whole(TOP_SRCDIR "/tests/clients/page.php");
	ck_assert_msg(page[0] != '\0', "cannot read " TOP_SRCDIR "/tests/clients/page.php");
	snprintf(path, sizeof(path), "%s/htdocs/page.php", name);
	chmod(testutil_write_file(path, page), 0644);
	free(page);

	a->port = free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", a->port);
	snprintf(conninfo, sizeof(conninfo), "host=%s port=%s dbname=%s user=%s", getenv("PGHOST"),
		 getenv("PGPORT"), getenv("PGDATABASE"), getenv("PGUSER"));
	char *tmpl = read_whole(TOP_SRCDIR "/tests/clients/httpd.conf.in");
	ck_assert_msg(tmpl[0] != '\0', "cannot read " TOP_SRCDIR "/tests/clients/httpd.conf.in");
	char *conf = fill(tmpl, (const char *const[]){
		"DIR", a->dir, "LISTEN", listen, "MODULES", MODULES, "PHP_MODULE", php_module(),
		"USER", "www-data", "GROUP", "www-data", "WORKERS", WORKERS, "CONNINFO", conninfo,
		NULL });
	snprintf(path, sizeof(path), "%s/httpd.conf", name);
	snprintf(a->conf, sizeof(a->conf), "%s", testutil_write_file(path, conf));
	free(tmpl);
	free(conf);

	/*
	 * With the shim: what pglease-run would set (LD_PRELOAD, and LD_AUDIT
	 * should the shim need one), as a sysadmin copies it into envvars.
	 */
	char **shim_env = b != NULL ? clients_shim_environment(b) : NULL;

	if (nstarted == 0) {
		owner = getpid();
		atexit(apache_cleanup);
	}
	ck_assert_int_lt(nstarted, 4);
	started[nstarted++] = a;
	char log[700];
	snprintf(log, sizeof(log), "%s/stderr.log", a->dir);
	a->pid = fork();
	ck_assert_int_ge(a->pid, 0);
	if (a->pid == 0) {
		/* Gone with the test, whichever way it ends: SIGTERM stops its children too. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(126);
		setpgid(0, 0);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int devnull = open("/dev/null", O_RDONLY);
		if (fd < 0 || devnull < 0)
			_exit(126);
		dup2(devnull, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		/* The environment of a service: what envvars sets, nothing of ours. */
		clearenv();
		setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
		setenv("LANG", "C", 1);
		for (size_t i = 0; shim_env != NULL && shim_env[i] != NULL; i++)
			putenv(shim_env[i]);
		execl(apache2, "apache2", "-f", a->conf, "-DFOREGROUND", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", apache2, strerror(errno));
		_exit(127);
	}
	setpgid(a->pid, a->pid);	/* before apache_kill may need it, whoever runs first */
	free((char *)apache2);
	for (size_t i = 0; shim_env != NULL && shim_env[i] != NULL; i++)
		free(shim_env[i]);
	free(shim_env);

	char pidfile[700];
	snprintf(pidfile, sizeof(pidfile), "%s/httpd.pid", a->dir);
	int64_t deadline = clock_mono_ms() + 20000;
	while (!port_answers(a->port) || access(pidfile, R_OK) != 0) {
		int status;
		if (waitpid(a->pid, &status, WNOHANG) == a->pid) {
			a->pid = 0;
			char elog[700];
			snprintf(elog, sizeof(elog), "%s/error.log", a->dir);
			ck_abort_msg("apache2 -f %s exited at start (status 0x%x):\n%s\n%s", a->conf,
				     status, read_whole(log), read_whole(elog));
		}
		ck_assert_msg(clock_mono_ms() < deadline, "apache2 did not answer on %s in time; "
			      "see %s", listen, log);
		usleep(20000);
	}
}

/*
 * Stops Apache and asserts that neither its error log nor its stderr holds
 * anything but notices (start and stop): no PHP warning, no error, no line
 * of the shim.
 */
static void
apache_stop_clean(struct apache *a, const char *what)
{
	char path[700];

	ck_assert_int_gt(a->pid, 0);
	apache_kill(a);
	const char *logs[] = { "error.log", "stderr.log" };
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", a->dir, logs[i]);
		char *text = read_whole(path);
		for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save))
			ck_assert_msg(strstr(line, ":notice] ") != NULL, "%s: Apache's %s holds:\n%s",
				      what, logs[i], line);
		free(text);
	}
}

/* --- a request, read whole ---------------------------------------------------- */

/* GET path from 127.0.0.1:port; the status code, the body in body. */
static int
http_get(int port, const char *path, char *body, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char req[256], buf[16384];
	size_t used = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), code = -1;

	ck_assert_int_ge(fd, 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0, "connect to port %d: "
		      "%s", port, strerror(errno));
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	for (ssize_t r; used < sizeof(buf) - 1 && (r = read(fd, buf + used, sizeof(buf) - 1 - used)) > 0;)
		used += (size_t)r;
	close(fd);
	buf[used] = '\0';
	sscanf(buf, "HTTP/%*s %d", &code);
	const char *start = strstr(buf, "\r\n\r\n");
	snprintf(body, len, "%s", start != NULL ? start + 4 : "");
	return code;
}

/* Reads CHECKED pages one by one: each 200 and right.  The first body in first. */
static void
check_pages(const struct apache *a, const char *what, char *first, size_t len)
{
	for (int i = 0; i < CHECKED; i++) {
		char body[1024], user[64], db[64], uid[64];
		int n, doubled;
		int code = http_get(a->port, "/page.php", body, sizeof(body));
		ck_assert_msg(code == 200, "%s: status %d: %s", what, code, body);
		ck_assert_msg(sscanf(body, "ok n=%d doubled=%d user=%63s db=%63s uid=%63s", &n, &doubled,
				     user, db, uid) == 5 && doubled == 2 * n, "%s: %s", what, body);
		ck_assert_str_eq(user, getenv("PGUSER"));
		ck_assert_str_eq(db, getenv("PGDATABASE"));
		ck_assert_msg(strcmp(uid, "www-data") == 0, "%s: served by %s, not www-data", what, uid);
		if (i == 0)
			snprintf(first, len, "%s", body);
	}
}

/* Whether process pid has the preload shim mapped. */
static bool
has_shim(const char *pid)
{
	char path[300], line[1024];
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%s/maps", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, "libpglease_preload.so") != NULL;
	fclose(f);
	return found;
}

/*
 * Apache's children: at least one, every one running as uid (real,
 * effective, saved, fs), with the shim loaded or not as shim says.
 */
static void
check_children(const struct apache *a, uid_t uid, bool shim)
{
	DIR *d = opendir("/proc");
	int children = 0;

	ck_assert_ptr_nonnull(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		char path[300], buf[4096];
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		long ppid = -1;
		unsigned u[4] = { 0 };
		bool have_uid = false;
		while (fgets(buf, sizeof(buf), f) != NULL) {
			if (strncmp(buf, "PPid:", 5) == 0)
				ppid = atol(buf + 5);
			else if (strncmp(buf, "Uid:", 4) == 0)
				have_uid = sscanf(buf + 4, "%u %u %u %u", &u[0], &u[1], &u[2], &u[3]) == 4;
		}
		fclose(f);
		if (ppid != a->pid || !have_uid)
			continue;
		children++;
		for (int i = 0; i < 4; i++)
			ck_assert_msg(u[i] == uid, "Apache child %s runs as uid %u, not www-data (%u)",
				      e->d_name, u[i], (unsigned)uid);
		ck_assert_msg(has_shim(e->d_name) == shim, "Apache child %s %s the shim loaded",
			      e->d_name, shim ? "does not have" : "has");
	}
	closedir(d);
	ck_assert_msg(children > 0, "Apache (pid %d) has no children", (int)a->pid);
}

/* ab -n REQUESTS -c CONCURRENCY: all complete, no failure, no non-2xx answer. */
static void
run_ab(const struct apache *a, const char *what)
{
	const char *ab = strdup(clients_program("ab", "apache2-utils"));
	char url[128], requests[16];
	struct client_run r;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/page.php", a->port);
	snprintf(requests, sizeof(requests), "%d", REQUESTS);
	clients_run(&r, NULL, NULL, NULL,
		    (const char *const[]){ ab, "-q", "-n", requests, "-c", CONCURRENCY, url, NULL },
		    120000);
	clients_assert_status(what, &r, 0);
	const char *complete = strstr(r.out, "Complete requests:");
	const char *failed = strstr(r.out, "Failed requests:");
	ck_assert_msg(complete != NULL && atol(complete + 18) == REQUESTS && failed != NULL &&
		      atol(failed + 16) == 0 && strstr(r.out, "Non-2xx responses") == NULL,
		      "%s: ab reports failures (length or status):\n%s", what, r.out);
	clients_run_free(&r);
	free((char *)ab);
}

START_TEST(test_apache_prefork_php)
{
	struct passwd *pw = getpwnam("www-data");
	struct apache pooled, direct;
	struct clients_sampler s;
	char extra[256], pooled_page[1024], direct_page[1024];

	ck_assert_msg(pw != NULL, "no user www-data (the apache2 package makes it)");
	uid_t www_uid = pw->pw_uid;
	gid_t www_gid = pw->pw_gid;
	ck_assert_msg(geteuid() == 0, "this suite runs as root (as CI does): Apache's children "
		      "switch to www-data");
	php_module();
	clients_program("apache2", "apache2");
	clients_program("ab", "apache2-utils");

	/* www-data reaches the server's socket (direct runs) and the broker's directory. */
	ck_assert_int_eq(chmod(testutil_tmpdir(), 0711), 0);
	ck_assert_int_eq(chmod(getenv("PGHOST"), 0711), 0);
	snprintf(extra, sizeof(extra), "socket_mode = \"0666\"; allowed_uids = [ %u ]; "
		 "allowed_gids = [ %u ];", (unsigned)www_uid, (unsigned)www_gid);
	clients_broker_start(&broker, SIZE, extra, NULL);
	ck_assert_int_eq(chmod(broker.dir, 0755), 0);

	apache_start(&pooled, "apache-pooled", &broker);
	clients_wait_backends(SIZE, 15000);
	pgl_pool_stats before = clients_stats(&broker);
	clients_sampler_start(&s);
	run_ab(&pooled, "Apache with the shim");
	check_pages(&pooled, "Apache with the shim", pooled_page, sizeof(pooled_page));
	long seen = clients_sampler_stop(&s);
	pgl_pool_stats after = clients_stats(&broker);
	check_children(&pooled, www_uid, true);
	apache_stop_clean(&pooled, "Apache with the shim");

	apache_start(&direct, "apache-direct", NULL);
	run_ab(&direct, "Apache, direct");
	check_pages(&direct, "Apache, direct", direct_page, sizeof(direct_page));
	check_children(&direct, www_uid, false);
	apache_stop_clean(&direct, "Apache, direct");

	char *p = clients_mask_numbers(pooled_page), *d = clients_mask_numbers(direct_page);
	clients_assert_same("page.php", d, p, NULL);
	free(p);
	free(d);

	clients_expect_pooled("Apache + PHP", &before, &after, REQUESTS + CHECKED, seen, SIZE);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
	clients_pooling_verdict();
}
END_TEST

static Suite *
apache_suite(void)
{
	Suite *s = suite_create("apache");
	TCase *tc = tcase_create("apache");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_apache_prefork_php);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	testutil_require_postgres(argc, argv);
	clients_init();
	return testutil_run_suite(apache_suite());
}
