/*
 * clientutil.c - running real libpq programs directly and through
 * pglease-run, for the suites of tests/clients.
 */
#include "autoconf.h"

#include "clients/clientutil.h"
#include "common/clock.h"
#include "common/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PRELOAD_LIB TOP_BUILDDIR "/src/preload/.libs/libpglease_preload.so"
#define PGLEASE_RUN TOP_BUILDDIR "/pglease-run"
#define OUT_MAX (1024 * 1024)

/* What a direct run must not inherit. */
static const char *const shim_vars[] = {
	"LD_PRELOAD", "LD_AUDIT", "PGLEASE_SOCKET", "PGLEASE_POOL", "PGLEASE_STRICT", "PGLEASE_BROKER_UID"
};

void
clients_init(void)
{
	if (access(PGLEASE_RUN, X_OK) != 0 || access(PRELOAD_LIB, R_OK) != 0) {
		fprintf(stderr, "clients: %s or %s is missing: build the tree first (make)\n",
			PGLEASE_RUN, PRELOAD_LIB);
		exit(99);
	}
	setenv("PGLEASE_PRELOAD_LIB", PRELOAD_LIB, 1);
	setenv("PGLEASE_AUDIT_LIB", TOP_BUILDDIR "/src/preload/.libs/libpglease_audit.so", 1);
	/* The same messages and encodings for every run, whatever the caller's locale. */
	setenv("LC_ALL", "C.UTF-8", 1);
	unsetenv("LANGUAGE");
	unsetenv("PGAPPNAME");
	unsetenv("PGCLIENTENCODING");
	unsetenv("PGOPTIONS");
	for (size_t i = 0; i < sizeof(shim_vars) / sizeof(shim_vars[0]); i++)
		unsetenv(shim_vars[i]);
}

const char *
clients_pglease_run(void)
{
	return PGLEASE_RUN;
}

const char *
clients_program(const char *name, const char *package)
{
	static char path[4096];
	const char *pgbin = getenv("PGLEASE_TEST_PGBIN");
	const char *env = getenv("PATH");
	char dirs[4096];

	/* PostgreSQL's own programs from the server's version, not Debian's wrapper script. */
	snprintf(dirs, sizeof(dirs), "%s:%s:/usr/sbin:/sbin:/usr/bin", pgbin != NULL ? pgbin : "",
		 env != NULL ? env : "");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d != NULL;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof(path), "%s/%s", d, name);
		if (access(path, X_OK) == 0)
			return path;
	}
	ck_abort_msg("%s is not installed: this suite needs it (apt-get install %s, or "
		     "scripts/install-deps.sh)", name, package);
	return NULL;
}

/* --- running programs --------------------------------------------------- */

void
clients_spawn(struct client_proc *p, const struct testbroker *broker, const char *cwd,
	      const char *const *env, const char *const *argv)
{
	const char *full[64];
	size_t n = 0;
	int out[2], err[2];
	pid_t parent = getpid();

	if (broker != NULL) {
		full[n++] = PGLEASE_RUN;
		full[n++] = "-s";
		full[n++] = broker->socket;
		full[n++] = "--";
	}
	for (size_t i = 0; argv[i] != NULL; i++) {
		ck_assert_uint_lt(n, sizeof(full) / sizeof(full[0]) - 1);
		full[n++] = argv[i];
	}
	full[n] = NULL;

	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
	p->started_ms = clock_mono_ms();
	p->pid = fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		/* Gone with the test, whichever way it ends (Check kills it on a timeout). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		setpgid(0, 0);	/* its workers too, on a timeout */
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		if (cwd != NULL && chdir(cwd) != 0) {
			fprintf(stderr, "chdir %s: %s\n", cwd, strerror(errno));
			_exit(126);
		}
		if (broker == NULL)
			for (size_t i = 0; i < sizeof(shim_vars) / sizeof(shim_vars[0]); i++)
				unsetenv(shim_vars[i]);
		for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
			const char *eq = strchr(env[i], '=');
			if (eq == NULL) {
				unsetenv(env[i]);
			} else {
				char name[128];
				snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]), env[i]);
				setenv(name, eq + 1, 1);
			}
		}
		execv(full[0], (char *const *)full);
		fprintf(stderr, "exec %s: %s\n", full[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	p->outfd = out[0];
	p->errfd = err[0];
}

/* Appends what fd has to buf (used bytes so far); false at EOF. */
static bool
drain(int fd, char *buf, size_t *used)
{
	char tmp[8192];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	size_t take = (size_t)n < OUT_MAX - 1 - *used ? (size_t)n : OUT_MAX - 1 - *used;
	memcpy(buf + *used, tmp, take);
	*used += take;
	buf[*used] = '\0';
	return true;
}

void
clients_finish(struct client_proc *p, int timeout_ms, struct client_run *r)
{
	int64_t deadline = p->started_ms + timeout_ms;
	size_t outlen = 0, errlen = 0;
	struct pollfd fds[2] = { { .fd = p->outfd, .events = POLLIN },
				 { .fd = p->errfd, .events = POLLIN } };
	int status;

	r->out = calloc(1, OUT_MAX);
	r->err = calloc(1, OUT_MAX);
	ck_assert(r->out != NULL && r->err != NULL);
	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		int64_t left = deadline - clock_mono_ms();
		if (left <= 0) {
			kill(-p->pid, SIGKILL);
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			ck_abort_msg("pid %d still ran after %d ms; it wrote:\n%s\n-- stderr:\n%s",
				     (int)p->pid, timeout_ms, r->out, r->err);
		}
		if (poll(fds, 2, (int)(left < 1000 ? left : 1000)) < 0 && errno != EINTR)
			ck_abort_msg("poll: %s", strerror(errno));
		if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(fds[0].fd, r->out, &outlen)) {
			close(fds[0].fd);
			fds[0].fd = -1;
		}
		if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(fds[1].fd, r->err, &errlen)) {
			close(fds[1].fd);
			fds[1].fd = -1;
		}
	}
	/* Both pipes closed: the program (and whatever it left running) is done with them. */
	for (;;) {
		pid_t w = waitpid(p->pid, &status, WNOHANG);
		if (w == p->pid)
			break;
		ck_assert_msg(w == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
		if (clock_mono_ms() > deadline) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			ck_abort_msg("pid %d closed its output but did not exit in %d ms",
				     (int)p->pid, timeout_ms);
		}
		usleep(2000);
	}
	r->ms = clock_mono_ms() - p->started_ms;
	r->status = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

void
clients_run(struct client_run *r, const struct testbroker *broker, const char *cwd,
	    const char *const *env, const char *const *argv, int timeout_ms)
{
	struct client_proc p;

	clients_spawn(&p, broker, cwd, env, argv);
	clients_finish(&p, timeout_ms, r);
}

void
clients_run_free(struct client_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

char **
clients_shim_environment(const struct testbroker *broker)
{
	struct client_run r;
	size_t n = 0;
	bool preload = false;
	char **vars = calloc(32, sizeof(*vars));

	ck_assert_ptr_nonnull(vars);
	clients_run(&r, broker, NULL, NULL, (const char *const[]){ "/usr/bin/env", NULL }, 30000);
	clients_assert_status("pglease-run env", &r, 0);
	for (char *save = NULL, *line = strtok_r(r.out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		bool shim = strncmp(line, "LD_PRELOAD=", 11) == 0 || strncmp(line, "LD_AUDIT=", 9) == 0 ||
			    (strncmp(line, "PGLEASE_", 8) == 0 && strncmp(line, "PGLEASE_TEST_", 13) != 0 &&
			     strncmp(line, "PGLEASE_PRELOAD_LIB=", 20) != 0 &&
			     strncmp(line, "PGLEASE_AUDIT_LIB=", 18) != 0);
		if (shim && n < 31)
			vars[n++] = strdup(line);
		preload = preload || strncmp(line, "LD_PRELOAD=", 11) == 0;
	}
	clients_run_free(&r);
	ck_assert_msg(preload, "pglease-run set no LD_PRELOAD");
	return vars;
}

/* The next line of *text not starting with ignore (NULL at the end); *len its length. */
static const char *
next_line(const char **text, size_t *len, const char *ignore)
{
	for (;;) {
		const char *line = *text;
		if (*line == '\0')
			return NULL;
		const char *nl = strchr(line, '\n');
		*len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		*text = nl != NULL ? nl + 1 : line + *len;
		if (ignore == NULL || strncmp(line, ignore, strlen(ignore)) != 0)
			return line;
	}
}

void
clients_assert_same(const char *what, const char *direct, const char *pooled,
		    const char *ignore_prefix)
{
	const char *a = direct, *b = pooled;

	for (int lineno = 1;; lineno++) {
		size_t alen = 0, blen = 0;
		const char *la = next_line(&a, &alen, ignore_prefix);
		const char *lb = next_line(&b, &blen, ignore_prefix);
		if (la == NULL && lb == NULL)
			return;
		ck_assert_msg(la != NULL && lb != NULL && alen == blen && memcmp(la, lb, alen) == 0,
			      "%s: the run through pglease-run wrote something else than the direct "
			      "run; compared line %d:\n  direct: %.*s\n  pooled: %.*s\n"
			      "-- direct run wrote:\n%s\n-- pooled run wrote:\n%s", what, lineno,
			      la != NULL ? (int)(alen > 300 ? 300 : alen) : 5,
			      la != NULL ? la : "(end)",
			      lb != NULL ? (int)(blen > 300 ? 300 : blen) : 5,
			      lb != NULL ? lb : "(end)", direct, pooled);
	}
}

void
clients_assert_status(const char *what, const struct client_run *r, int want)
{
	ck_assert_msg(r->status == want, "%s: exit status %d, expected %d; it wrote:\n%s\n"
		      "-- stderr:\n%s", what, r->status, want, r->out, r->err);
}

const char *
clients_mkdir(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", testutil_tmpdir(), name);
	ck_assert_msg(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path,
		      strerror(errno));
	ck_assert_int_eq(chmod(path, 0755), 0);
	return path;
}

char *
clients_read_file(const char *dir, const char *name)
{
	char path[1024];
	FILE *f;
	char *buf = calloc(1, OUT_MAX);
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (buf == NULL || (f = fopen(path, "r")) == NULL) {
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, OUT_MAX - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

char *
clients_mask_numbers(const char *text)
{
	char *out = malloc(strlen(text) + 1), *o = out;

	ck_assert_ptr_nonnull(out);
	for (const char *t = text; *t != '\0';) {
		if (*t >= '0' && *t <= '9') {
			while ((*t >= '0' && *t <= '9') || (*t == '.' && t[1] >= '0' && t[1] <= '9'))
				t++;
			*o++ = '#';
		} else {
			*o++ = *t++;
		}
	}
	*o = '\0';
	return out;
}

/* --- the server's view ------------------------------------------------------ */

#define BACKENDS_SQL                                                               \
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' " \
	"AND datname = current_database() AND usename = current_user "              \
	"AND pid <> pg_backend_pid() "                                              \
	"AND coalesce(application_name, '') NOT LIKE 'pglease-test%'"

long
clients_backends(void)
{
	return testutil_sql_long(BACKENDS_SQL);
}

void
clients_wait_backends(long n, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	long got;

	while ((got = clients_backends()) > n || got < 0) {
		ck_assert_msg(clock_mono_ms() < deadline, "after %d ms the server still has %ld "
			      "backends of the pool's database and user, not at most %ld",
			      timeout_ms, got, n);
		usleep(20000);
	}
}

void
clients_sampler_start(struct clients_sampler *s)
{
	int ctl[2], res[2];
	pid_t parent = getpid();

	ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	s->pid = fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		close(ctl[1]);
		close(res[0]);
		PGconn *c = PQconnectdb("application_name=pglease-test-sampler");
		long max = -1, samples = 0;
		for (;;) {
			PGresult *r = PQexec(c, BACKENDS_SQL);
			if (PQresultStatus(r) == PGRES_TUPLES_OK) {
				long n = atol(PQgetvalue(r, 0, 0));
				max = n > max ? n : max;
				/* the first sample is taken: the caller may start its program */
				if (samples++ == 0 && write(res[1], "+", 1) != 1)
					_exit(1);
			}
			PQclear(r);
			struct pollfd p = { .fd = ctl[0], .events = POLLIN };
			if (poll(&p, 1, 10) != 0)
				break;	/* told to stop: the pipe closed */
		}
		char line[64];
		int len = snprintf(line, sizeof(line), "%ld %ld\n", max, samples);
		ssize_t w = write(res[1], line, (size_t)len);
		(void)w;
		PQfinish(c);
		_exit(0);
	}
	close(ctl[0]);
	close(res[1]);
	s->ctl = ctl[1];
	s->res = res[0];
	char c;
	ck_assert_msg(read(s->res, &c, 1) == 1 && c == '+',
		      "the backend sampler could not count backends");
}

long
clients_sampler_stop(struct clients_sampler *s)
{
	char line[64] = "";
	long max = -1, samples = 0;
	int status;

	close(s->ctl);
	ssize_t n = read(s->res, line, sizeof(line) - 1);
	close(s->res);
	ck_assert_int_eq(waitpid(s->pid, &status, 0), s->pid);
	ck_assert_msg(n > 0 && sscanf(line, "%ld %ld", &max, &samples) == 2 && samples > 0 && max >= 0,
		      "the backend sampler saw nothing (it wrote \"%s\")", line);
	return max;
}

/* --- the broker's view ------------------------------------------------------ */

void
clients_broker_start(struct testbroker *b, int size, const char *broker_extra,
		     const char *pool_extra)
{
	char pools[1024];

	snprintf(pools, sizeof(pools),
		 "{ name = \"" CLIENTS_POOL_NAME "\"; conninfo = \"$CONNINFO\"; min_size = %d; "
		 "max_size = %d; acquire_timeout = 10.0; %s }", size, size,
		 pool_extra != NULL ? pool_extra : "");
	testbroker_start(b, broker_extra, pools, true);
	/* Backends of an earlier test's broker or program are gone: what is left is the pool. */
	clients_wait_backends(size, 15000);
}

pgl_pool_stats
clients_stats(const struct testbroker *b)
{
	pgl_pool_stats st;

	ck_assert_msg(pgl_stats(b->shm, &st, 1) == 1, "pgl_stats %s: %s", b->shm, strerror(errno));
	return st;
}

bool
clients_is_pool_backend(const struct testbroker *b, long pid)
{
	struct shm_snapshot snap;
	bool found = false;

	ck_assert_msg(shm_snapshot_owned(b->shm, b->uid, NULL, &snap) == 0, "no segment %s", b->shm);
	for (uint32_t i = 0; i < snap.hdr.nslots && !found; i++)
		found = snap.slots[i].state != SHM_SLOT_EMPTY && snap.slots[i].backend_pid == pid;
	shm_snapshot_free(&snap);
	return found;
}

/* --- what holds only once the shim pools ------------------------------------- */

static char pooling_failures[8192];

void
clients_expect_pooling(bool cond, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (cond)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "[pooling] %s\n", msg);
	size_t used = strlen(pooling_failures);
	snprintf(pooling_failures + used, sizeof(pooling_failures) - used, "\n  [pooling] %s", msg);
}

void
clients_pooling_verdict(void)
{
	ck_assert_msg(pooling_failures[0] == '\0',
		      "the program behaved as it does directly, but was not pooled:%s",
		      pooling_failures);
}

void
clients_expect_pooled(const char *what, const pgl_pool_stats *before,
		      const pgl_pool_stats *after, uint64_t min_leases, long max_seen,
		      int max_size)
{
	uint64_t moved = after->leases - before->leases;

	clients_expect_pooling(moved >= min_leases, "%s: the pool's lease counter moved by %llu, "
			       "expected at least %llu: its connections were not leased", what,
			       (unsigned long long)moved, (unsigned long long)min_leases);
	clients_expect_pooling(max_seen <= max_size, "%s: the server had up to %ld backends of the "
			       "pool's database and user, more than max_size %d: connections "
			       "bypassed the pool", what, max_seen, max_size);
}

void
clients_run_both(struct client_run *pooled, struct client_run *direct,
		 const struct testbroker *b, int max_size, const char *what, const char *pooled_cwd,
		 const char *direct_cwd, const char *const *env, const char *const *argv,
		 int timeout_ms, uint64_t min_leases)
{
	struct clients_sampler s;

	clients_wait_backends(max_size, 15000);
	pgl_pool_stats before = clients_stats(b);
	clients_sampler_start(&s);
	clients_run(pooled, b, pooled_cwd, env, argv, timeout_ms);
	long seen = clients_sampler_stop(&s);
	pgl_pool_stats after = clients_stats(b);
	clients_expect_pooled(what, &before, &after, min_leases, seen, max_size);
	if (direct != NULL)
		clients_run(direct, NULL, direct_cwd, env, argv, timeout_ms);
}
