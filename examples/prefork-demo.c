/*
 * prefork-demo.c - a small preforking server's worth of database work
 * through pglease.
 *
 *   prefork-demo [-s SOCKET] [-p POOL] [-w WORKERS] [-n REQUESTS]
 *
 * The parent forks WORKERS processes.  Each serves REQUESTS "requests": lease
 * a backend, run a query on it with ordinary libpq calls (pgl_conn gives a
 * genuine PGconn on the leased socket), give it back.  The parent then
 * reports the requests served, the distinct backends that served them, and
 * the time per request.
 */
#include <libpq-fe.h>
#include <pglease.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct report {
	int served;
	int failed;
	double busy;		/* seconds spent in requests */
	int pids[64];		/* distinct backends seen */
	int npids;
};

static void
worker(const char *socket, const char *pool, int requests, int out)
{
	struct report r = { 0 };
	pgl_client *c = pgl_open(socket);

	for (int i = 0; i < requests; i++) {
		double t0 = now();
		pgl_lease *l = pgl_acquire(c, pool, -1);
		PGconn *conn = l != NULL ? pgl_conn(l) : NULL;

		if (conn == NULL) {
			fprintf(stderr, "worker %d: %s\n", (int)getpid(), pgl_error(c));
			r.failed++;
			if (l != NULL)
				pgl_release(l);
			continue;
		}

		/* The request's work: ordinary libpq. */
		const char *params[] = { "pglease" };
		PGresult *res = PQexecParams(conn, "SELECT pg_backend_pid(), 'hello from ' || $1",
					     1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			fprintf(stderr, "worker %d: %s", (int)getpid(), PQerrorMessage(conn));
			PQclear(res);
			r.failed++;
			pgl_release(l);
			continue;
		}
		int pid = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		pgl_release(l);		/* not PQfinish: the backend goes back to the pool */
		r.busy += now() - t0;
		r.served++;

		bool known = false;
		for (int k = 0; k < r.npids; k++)
			known |= r.pids[k] == pid;
		if (!known && r.npids < 64)
			r.pids[r.npids++] = pid;
	}
	pgl_close(c);
	if (write(out, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
	_exit(r.failed == 0 ? 0 : 1);
}

int
main(int argc, char **argv)
{
	const char *socket = NULL, *pool = NULL;
	int workers = 8, requests = 500, ch;

	while ((ch = getopt(argc, argv, "s:p:w:n:h")) != -1) {
		switch (ch) {
		case 's': socket = optarg; break;
		case 'p': pool = optarg; break;
		case 'w': workers = atoi(optarg); break;
		case 'n': requests = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: prefork-demo [-s SOCKET] [-p POOL] [-w WORKERS] "
				"[-n REQUESTS]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (workers < 1 || workers > 1000 || requests < 1) {
		fprintf(stderr, "prefork-demo: -w takes 1..1000, -n at least 1\n");
		return 2;
	}

	int p[2];
	if (pipe(p) != 0) {
		perror("pipe");
		return 1;
	}
	double t0 = now();
	for (int i = 0; i < workers; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			close(p[0]);
			worker(socket, pool, requests, p[1]);
		}
	}
	close(p[1]);

	struct report all = { 0 }, r;
	while (read(p[0], &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		all.served += r.served;
		all.failed += r.failed;
		all.busy += r.busy;
		for (int k = 0; k < r.npids; k++) {
			bool known = false;
			for (int j = 0; j < all.npids; j++)
				known |= all.pids[j] == r.pids[k];
			if (!known && all.npids < 64)
				all.pids[all.npids++] = r.pids[k];
		}
	}
	int status, bad = 0;
	while (wait(&status) > 0)
		bad += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	double wall = now() - t0;

	printf("%d workers served %d requests (%d failed) in %.2f s: %.0f requests/s\n",
	       workers, all.served, all.failed, wall, all.served / wall);
	printf("distinct backends used: %d\n", all.npids);
	printf("time per request (lease, PGconn, query, release): %.1f us on average\n",
	       all.served > 0 ? all.busy / all.served * 1e6 : 0.0);
	return bad == 0 && all.failed == 0 ? 0 : 1;
}
