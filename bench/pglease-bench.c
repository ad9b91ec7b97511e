/*
 * pglease-bench.c - a preforking server's database work, timed.
 *
 *   pglease-bench -m MODE [-w WORKERS] [-t SECONDS] [-q Q] [-W select|tpcb]
 *                 [--pg CONNINFO] [--bouncer-session CONNINFO]
 *                 [--bouncer-tx CONNINFO] [-s SOCKET] [-p POOL] [--scale N] [--cgi]
 *
 * The parent forks WORKERS processes; each serves requests in a loop for
 * SECONDS.  A request is "get a connection, run the workload, give it back":
 *
 *   direct                     a persistent connection per worker (--pg)
 *   connect                    PQconnectdb + work + PQfinish (--pg)
 *   pgbouncer-session-connect  the same through PgBouncer, session mode
 *   pgbouncer-tx-connect       the same through PgBouncer, transaction mode
 *   pgbouncer-tx               a persistent connection to PgBouncer, tx mode
 *   lease-raw                  pgl_acquire + work on the raw socket + pgl_release
 *   lease                      pgl_acquire + pgl_conn + libpq + pgl_release
 *   none                       no database work: with --cgi, what the process
 *                              alone costs, the floor of every mode there
 *
 * The workload is Q x "SELECT 1", or a pgbench TPC-B-like transaction on a
 * "pgbench -i" database (-W tpcb, --scale as initialised).  With --cgi, each
 * request is a process of its own (fork + exec of this program with --one),
 * as a CGI host runs it.
 *
 * The lease modes lease from POOL (-p; the broker's first pool without it).
 *
 * Prints one line of key=value: requests, errors, requests/s, the p50
 * and p99 of request and acquire latency (the time to have a usable
 * connection), and how the requests spread over the workers: the fewest,
 * median and most one worker served, and their coefficient of variation
 * (standard deviation / mean; 0 when every worker served as many).
 */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pglease.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum kind { PERSISTENT, CONNECT, LEASE_RAW, LEASE, NOTHING };

static const struct {
	const char *name;
	enum kind kind;
	int target;		/* 0: --pg, 1: --bouncer-session, 2: --bouncer-tx */
} modes[] = {
	{ "direct", PERSISTENT, 0 },
	{ "connect", CONNECT, 0 },
	{ "pgbouncer-session-connect", CONNECT, 1 },
	{ "pgbouncer-tx-connect", CONNECT, 2 },
	{ "pgbouncer-tx", PERSISTENT, 2 },
	{ "lease-raw", LEASE_RAW, 0 },
	{ "lease", LEASE, 0 },
	{ "none", NOTHING, 0 },
};

static struct {
	int mode;
	int workers;
	double seconds;
	int q;
	bool tpcb;
	int scale;
	bool cgi;
	const char *conninfo[3];
	const char *socket;
	const char *pool;
	const char *self;
} opt = { .workers = 8, .seconds = 3, .q = 1, .scale = 1 };

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* xorshift, per worker: account numbers for TPC-B */
static uint64_t rng = 88172645463325252ULL;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* The statements of one request. */
static int
workload(char sql[][256])
{
	if (!opt.tpcb) {
		for (int i = 0; i < opt.q; i++)
			snprintf(sql[i], 256, "SELECT 1");
		return opt.q;
	}
	uint32_t aid = rnd(100000u * (uint32_t)opt.scale) + 1;
	uint32_t bid = rnd((uint32_t)opt.scale) + 1, tid = rnd(10u * (uint32_t)opt.scale) + 1;
	int delta = (int)rnd(10001) - 5000;
	snprintf(sql[0], 256, "BEGIN");
	snprintf(sql[1], 256, "UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %u",
		 delta, aid);
	snprintf(sql[2], 256, "SELECT abalance FROM pgbench_accounts WHERE aid = %u", aid);
	snprintf(sql[3], 256, "UPDATE pgbench_tellers SET tbalance = tbalance + %d WHERE tid = %u",
		 delta, tid);
	snprintf(sql[4], 256, "UPDATE pgbench_branches SET bbalance = bbalance + %d WHERE bid = %u",
		 delta, bid);
	snprintf(sql[5], 256, "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
		 "VALUES (%u, %u, %u, %d, CURRENT_TIMESTAMP)", tid, bid, aid, delta);
	snprintf(sql[6], 256, "END");
	return 7;
}

static bool
run_libpq(PGconn *c)
{
	char sql[16][256];
	int n = workload(sql);

	for (int i = 0; i < n; i++) {
		PGresult *r = PQexec(c, sql[i]);
		ExecStatusType st = PQresultStatus(r);
		PQclear(r);
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
			return false;
	}
	return true;
}

/* A minimal simple query on a raw, non-blocking backend socket. */
static bool
raw_exec(int fd, const char *sql)
{
	size_t n = strlen(sql);
	char msg[300];
	uint32_t len = (uint32_t)(n + 5);
	bool ok = true;

	msg[0] = 'Q';
	msg[1] = (char)(len >> 24);
	msg[2] = (char)(len >> 16);
	msg[3] = (char)(len >> 8);
	msg[4] = (char)len;
	memcpy(msg + 5, sql, n + 1);
	if (send(fd, msg, n + 6, MSG_NOSIGNAL) != (ssize_t)(n + 6))
		return false;

	/* Replies are small: read whole chunks, walk the messages, stop at 'Z'. */
	static char buf[65536];
	size_t have = 0, off = 0;
	for (;;) {
		while (have - off >= 5) {
			uint32_t l = (uint32_t)(unsigned char)buf[off + 1] << 24 |
				     (uint32_t)(unsigned char)buf[off + 2] << 16 |
				     (uint32_t)(unsigned char)buf[off + 3] << 8 |
				     (unsigned char)buf[off + 4];
			if (have - off < 1 + (size_t)l)
				break;
			if (buf[off] == 'E')
				ok = false;
			if (buf[off] == 'Z')
				return ok && off + 1 + l == have;
			off += 1 + l;
		}
		if (have == sizeof(buf))
			return false;
		ssize_t r = recv(fd, buf + have, sizeof(buf) - have, 0);
		if (r > 0) {
			have += (size_t)r;
		} else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			poll(&p, 1, -1);
		} else {
			return false;
		}
	}
}

static bool
run_raw(int fd)
{
	char sql[16][256];
	int n = workload(sql);

	for (int i = 0; i < n; i++)
		if (!raw_exec(fd, sql[i]))
			return false;
	return true;
}

/* --- one request, timed ---------------------------------------------------- */

struct worker_state {
	PGconn *persistent;
	pgl_client *client;
};

/* Serves one request; *acquire_us gets the time until a usable connection. */
static bool
request(struct worker_state *w, int64_t *acquire_us)
{
	int64_t t0 = now_us();
	const char *ci = opt.conninfo[modes[opt.mode].target];

	switch (modes[opt.mode].kind) {
	case PERSISTENT:
		if (w->persistent == NULL)
			w->persistent = PQconnectdb(ci);
		*acquire_us = now_us() - t0;
		if (PQstatus(w->persistent) != CONNECTION_OK) {
			PQfinish(w->persistent);
			w->persistent = NULL;
			return false;
		}
		return run_libpq(w->persistent);
	case CONNECT: {
		PGconn *c = PQconnectdb(ci);
		*acquire_us = now_us() - t0;
		bool ok = PQstatus(c) == CONNECTION_OK && run_libpq(c);
		PQfinish(c);
		return ok;
	}
	case LEASE_RAW: {
		if (w->client == NULL)
			w->client = pgl_open(opt.socket);
		pgl_lease *l = pgl_acquire(w->client, opt.pool, -1);
		*acquire_us = now_us() - t0;
		if (l == NULL)
			return false;
		bool ok = run_raw(pgl_fd(l));
		if (ok)
			pgl_release(l);
		else
			pgl_discard(l);
		return ok;
	}
	case LEASE: {
		if (w->client == NULL)
			w->client = pgl_open(opt.socket);
		pgl_lease *l = pgl_acquire(w->client, opt.pool, -1);
		PGconn *c = l != NULL ? pgl_conn(l) : NULL;
		*acquire_us = now_us() - t0;
		bool ok = c != NULL && run_libpq(c);
		if (l != NULL)
			pgl_release(l);
		return ok;
	}
	case NOTHING:
		*acquire_us = 0;
		return true;
	}
	return false;
}

/* --- workers and samples -------------------------------------------------- */

/* Per worker in shared memory: counts, and a reservoir of latency samples. */
struct sample {
	uint32_t request_us;
	uint32_t acquire_us;
};

struct slot_stats {
	uint64_t requests;
	uint64_t errors;
	uint64_t seen;
	int64_t last_end_us;		/* when its last request ended */
	uint32_t nsamples;
	struct sample samples[];
};

static size_t per_worker_samples;

static struct slot_stats *
stats_of(void *base, int i)
{
	size_t size = sizeof(struct slot_stats) + per_worker_samples * sizeof(struct sample);

	return (struct slot_stats *)((char *)base + (size_t)i * size);
}

static void
record(struct slot_stats *s, int64_t req_us, int64_t acq_us)
{
	struct sample x = { (uint32_t)(req_us > UINT32_MAX ? UINT32_MAX : req_us),
			    (uint32_t)(acq_us > UINT32_MAX ? UINT32_MAX : acq_us) };

	s->seen++;
	if (s->nsamples < per_worker_samples) {
		s->samples[s->nsamples++] = x;
	} else {
		uint64_t k = ((uint64_t)rnd(UINT32_MAX) << 32 | rnd(UINT32_MAX)) % s->seen;
		if (k < per_worker_samples)
			s->samples[k] = x;
	}
}

/* One CGI request: this program again, one request, exit status says how it went. */
static bool
cgi_request(char **argv)
{
	pid_t p = fork();

	if (p < 0)
		return false;
	if (p == 0) {
		execv(opt.self, argv);
		_exit(127);
	}
	int status;
	while (waitpid(p, &status, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void
worker(int index, void *shared, int start_fd, char **cgi_argv)
{
	struct slot_stats *s = stats_of(shared, index);
	struct worker_state w = { 0 };
	int64_t begin;

	rng ^= (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;
	/*
	 * Everyone runs in the same window, from the parent's start time: a
	 * worker the scheduler wakes late (512 of them on 2 cores) loses that
	 * time, it does not run on past the others.
	 */
	if (read(start_fd, &begin, sizeof(begin)) != (ssize_t)sizeof(begin))
		_exit(1);
	int64_t deadline = begin + (int64_t)(opt.seconds * 1e6);
	while (now_us() < deadline) {
		int64_t t0 = now_us(), acq = 0;
		bool ok = opt.cgi ? cgi_request(cgi_argv) : request(&w, &acq);
		int64_t t1 = now_us();
		if (opt.cgi)
			acq = t1 - t0;
		s->last_end_us = t1;
		if (ok) {
			s->requests++;
			record(s, t1 - t0, acq);
		} else {
			s->errors++;
			usleep(1000);
		}
	}
	if (w.persistent != NULL)
		PQfinish(w.persistent);
	if (w.client != NULL)
		pgl_close(w.client);
	_exit(0);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t
pct(uint32_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i];
}

/* A square root by Newton's method: the program does not link libm for one. */
static double
root(double x)
{
	double r = x > 1 ? x : 1;

	if (x <= 0)
		return 0;
	for (int i = 0; i < 100; i++)
		r = (r + x / r) / 2;
	return r;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: pglease-bench -m MODE [-w WORKERS] [-t SECONDS] [-q Q] [-W select|tpcb]\n"
		"       [--pg CONNINFO] [--bouncer-session CONNINFO] [--bouncer-tx CONNINFO]\n"
		"       [-s SOCKET] [-p POOL] [--scale N] [--cgi]\n"
		"modes:");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		fprintf(out, " %s", modes[i].name);
	fprintf(out, "\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "workers", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, 't' },
		{ "queries", required_argument, NULL, 'q' },
		{ "workload", required_argument, NULL, 'W' },
		{ "socket", required_argument, NULL, 's' },
		{ "pool", required_argument, NULL, 'p' },
		{ "pg", required_argument, NULL, 1 },
		{ "bouncer-session", required_argument, NULL, 2 },
		{ "bouncer-tx", required_argument, NULL, 3 },
		{ "scale", required_argument, NULL, 4 },
		{ "cgi", no_argument, NULL, 5 },
		{ "one", no_argument, NULL, 6 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode = NULL;
	bool one = false;
	int ch;

	opt.self = argv[0];
	while ((ch = getopt_long(argc, argv, "m:w:t:q:W:s:p:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm': mode = optarg; break;
		case 'w': opt.workers = atoi(optarg); break;
		case 't': opt.seconds = atof(optarg); break;
		case 'q': opt.q = atoi(optarg); break;
		case 'W': opt.tpcb = strcmp(optarg, "tpcb") == 0; break;
		case 's': opt.socket = optarg; break;
		case 'p': opt.pool = optarg; break;
		case 1: opt.conninfo[0] = optarg; break;
		case 2: opt.conninfo[1] = optarg; break;
		case 3: opt.conninfo[2] = optarg; break;
		case 4: opt.scale = atoi(optarg); break;
		case 5: opt.cgi = true; break;
		case 6: one = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	opt.mode = -1;
	for (size_t i = 0; mode != NULL && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(mode, modes[i].name) == 0)
			opt.mode = (int)i;
	if (opt.mode < 0 || opt.workers < 1 || opt.q < 1 || opt.q > 16 || opt.seconds <= 0) {
		usage(stderr);
		return 2;
	}
	if (modes[opt.mode].kind != LEASE && modes[opt.mode].kind != LEASE_RAW &&
	    modes[opt.mode].kind != NOTHING && opt.conninfo[modes[opt.mode].target] == NULL) {
		fprintf(stderr, "pglease-bench: mode %s needs its conninfo option\n", mode);
		return 2;
	}

	if (one) {		/* a CGI process: one request */
		struct worker_state w = { 0 };
		int64_t acq;
		rng ^= (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;
		bool ok = request(&w, &acq);
		if (w.persistent != NULL)
			PQfinish(w.persistent);
		if (w.client != NULL)
			pgl_close(w.client);
		return ok ? 0 : 1;
	}

	/* The argument vector of a CGI request: ours, plus --one, minus --cgi. */
	char **cgi_argv = calloc((size_t)argc + 2, sizeof(char *));
	int k = 0;
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--cgi") != 0)
			cgi_argv[k++] = argv[i];
	cgi_argv[k++] = (char *)"--one";

	per_worker_samples = (size_t)(4u << 20) / (size_t)opt.workers;
	if (per_worker_samples < 2048)
		per_worker_samples = 2048;
	if (per_worker_samples > 200000)
		per_worker_samples = 200000;
	size_t slot_size = sizeof(struct slot_stats) + per_worker_samples * sizeof(struct sample);
	void *shared = mmap(NULL, slot_size * (size_t)opt.workers, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) {
		perror("mmap");
		return 1;
	}

	int start[2];
	if (pipe(start) != 0) {
		perror("pipe");
		return 1;
	}
	int64_t begin = 0;
	for (int i = 0; i < opt.workers; i++) {
		pid_t p = fork();
		if (p < 0) {
			perror("fork");
			return 1;
		}
		if (p == 0) {
			close(start[1]);
			worker(i, shared, start[0], cgi_argv);
		}
	}
	close(start[0]);
	usleep(200000);			/* let every worker reach its start */
	begin = now_us();
	for (int i = 0; i < opt.workers; i++)
		if (write(start[1], &begin, sizeof(begin)) != (ssize_t)sizeof(begin))
			return 1;
	int status;
	while (wait(&status) > 0)
		;
	/* The window, to the end of the last request: not the workers' exit and reaping. */
	int64_t end = begin;
	for (int i = 0; i < opt.workers; i++)
		if (stats_of(shared, i)->last_end_us > end)
			end = stats_of(shared, i)->last_end_us;
	double elapsed = (double)(end - begin) / 1e6;
	if (elapsed <= 0)
		elapsed = opt.seconds;

	uint64_t requests = 0, errors = 0;
	size_t n = 0;
	for (int i = 0; i < opt.workers; i++) {
		requests += stats_of(shared, i)->requests;
		errors += stats_of(shared, i)->errors;
		n += stats_of(shared, i)->nsamples;
	}
	uint32_t *req = malloc((n + 1) * sizeof(uint32_t)), *acq = malloc((n + 1) * sizeof(uint32_t));
	size_t j = 0;
	for (int i = 0; i < opt.workers; i++) {
		struct slot_stats *s = stats_of(shared, i);
		for (uint32_t x = 0; x < s->nsamples; x++, j++) {
			req[j] = s->samples[x].request_us;
			acq[j] = s->samples[x].acquire_us;
		}
	}
	qsort(req, n, sizeof(uint32_t), cmp_u32);
	qsort(acq, n, sizeof(uint32_t), cmp_u32);

	/* The spread of the requests over the workers: with a fair (FIFO) pool,
	 * every worker of a run serves about as many. */
	uint64_t *per = malloc((size_t)opt.workers * sizeof(uint64_t));
	double mean = (double)requests / opt.workers, var = 0;
	for (int i = 0; i < opt.workers; i++) {
		per[i] = stats_of(shared, i)->requests;
		var += ((double)per[i] - mean) * ((double)per[i] - mean);
	}
	qsort(per, (size_t)opt.workers, sizeof(uint64_t), cmp_u64);
	int mid = opt.workers / 2;
	double per_median = opt.workers % 2 ? (double)per[mid] : ((double)per[mid - 1] + (double)per[mid]) / 2;
	double cv = mean > 0 ? root(var / opt.workers) / mean : 0;

	printf("mode=%s shape=%s workload=%s q=%d workers=%d seconds=%.2f requests=%llu "
	       "errors=%llu rps=%.1f lat_p50_us=%u lat_p99_us=%u acq_p50_us=%u acq_p99_us=%u "
	       "worker_req_min=%llu worker_req_p50=%.1f worker_req_max=%llu worker_req_cv=%.4f\n",
	       modes[opt.mode].name, opt.cgi ? "cgi" : "prefork", opt.tpcb ? "tpcb" : "select",
	       opt.tpcb ? 1 : opt.q, opt.workers, elapsed, (unsigned long long)requests,
	       (unsigned long long)errors, (double)requests / elapsed, pct(req, n, 0.5),
	       pct(req, n, 0.99), pct(acq, n, 0.5), pct(acq, n, 0.99),
	       (unsigned long long)per[0], per_median, (unsigned long long)per[opt.workers - 1], cv);
	free(per);
	free(req);
	free(acq);
	free(cgi_argv);
	return errors == 0 ? 0 : 1;
}
