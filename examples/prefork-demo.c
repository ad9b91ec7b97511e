/*
 * prefork-demo.c - a small preforking server's worth of database work
 * through pglease.
 *
 *   prefork-demo [-s SOCKET] [-p POOL] [-w WORKERS] [-n REQUESTS]
 *
 * The parent forks WORKERS processes.  Each serves REQUESTS "requests": lease
 * a backend, run a query on it, give it back.  The parent then reports the
 * requests served, the distinct backends that served them, and the time per
 * request.  The query goes over the leased socket with the simple query
 * protocol written out below; a program that uses libpq would put a PGconn
 * around the lease instead.
 */
#include <errno.h>
#include <poll.h>
#include <pglease.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* Reads exactly len bytes from the non-blocking backend socket. */
static bool
read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = recv(fd, p, len, 0);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			poll(&pfd, 1, -1);
		} else {
			return false;
		}
	}
	return true;
}

/*
 * Runs sql on the leased socket: one Query message, then every reply up to
 * ReadyForQuery.  The first column of the first row goes to out.
 */
static bool
query(int fd, const char *sql, char *out, size_t outlen)
{
	size_t n = strlen(sql);
	char msg[512];
	uint32_t len = (uint32_t)(4 + n + 1);
	bool ok = true;

	if (n + 6 > sizeof(msg))
		return false;
	msg[0] = 'Q';
	msg[1] = (char)(len >> 24);
	msg[2] = (char)(len >> 16);
	msg[3] = (char)(len >> 8);
	msg[4] = (char)len;
	memcpy(msg + 5, sql, n + 1);
	for (size_t off = 0; off < n + 6;) {
		ssize_t w = send(fd, msg + off, n + 6 - off, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			poll(&pfd, 1, -1);
			continue;
		}
		if (w <= 0)
			return false;
		off += (size_t)w;
	}

	out[0] = '\0';
	for (;;) {
		unsigned char hdr[5];
		char body[1024];

		if (!read_full(fd, hdr, 5))
			return false;
		uint32_t blen = ((uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 |
				 (uint32_t)hdr[3] << 8 | hdr[4]) - 4;
		if (blen > sizeof(body) || !read_full(fd, body, blen))
			return false;
		if (hdr[0] == 'D' && out[0] == '\0' && blen >= 6) {
			int32_t clen = (int32_t)((uint32_t)(unsigned char)body[2] << 24 |
						 (uint32_t)(unsigned char)body[3] << 16 |
						 (uint32_t)(unsigned char)body[4] << 8 |
						 (unsigned char)body[5]);
			if (clen >= 0 && (size_t)clen < outlen && (uint32_t)clen + 6 <= blen) {
				memcpy(out, body + 6, (size_t)clen);
				out[clen] = '\0';
			}
		} else if (hdr[0] == 'E') {
			ok = false;
		} else if (hdr[0] == 'Z') {
			return ok;
		}
	}
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
		char value[64];

		if (l == NULL) {
			fprintf(stderr, "worker %d: %s\n", (int)getpid(), pgl_error(c));
			r.failed++;
			continue;
		}
		if (!query(pgl_fd(l), "SELECT pg_backend_pid()", value, sizeof(value))) {
			r.failed++;
			pgl_discard(l);
			continue;
		}
		pgl_release(l);
		r.busy += now() - t0;
		r.served++;

		int pid = atoi(value);
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
	printf("time per request (lease, query, release): %.1f us on average\n",
	       all.served > 0 ? all.busy / all.served * 1e6 : 0.0);
	return bad == 0 && all.failed == 0 ? 0 : 1;
}
