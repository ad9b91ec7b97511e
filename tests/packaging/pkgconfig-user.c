/*
 * pkgconfig-user.c - a libpglease user's program, which
 * tests/packaging/check-install builds against the installed tree with
 * nothing but "pkg-config --cflags --libs pglease": it calls libpglease and,
 * on pgl_conn()'s PGconn, libpq itself.
 *
 *	pkgconfig-user SOCKET [POOL]
 *
 * With a broker on SOCKET: leases, runs SELECT 1 with PQexec, releases and
 * prints "ok: ..." (exit 0).  Without one: prints pgl_error() and exits 2
 * when the code is PGL_EBROKER, 1 on any other failure.
 */
#include <libpq-fe.h>
#include <pglease.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	pgl_client *c;
	pgl_lease *l;
	PGconn *conn;
	PGresult *r;
	int ok, code;

	if (argc < 2) {
		fprintf(stderr, "usage: pkgconfig-user SOCKET [POOL]\n");
		return 1;
	}
	printf("libpq %d\n", PQlibVersion());
	c = pgl_open(argv[1]);
	if (c == NULL) {
		fprintf(stderr, "pgl_open: out of memory\n");
		return 1;
	}
	l = pgl_acquire(c, argc > 2 ? argv[2] : NULL, 5000);
	if (l == NULL) {
		code = pgl_errcode(c);
		printf("pgl_acquire: %s (code %d)\n", pgl_error(c), code);
		pgl_close(c);
		return code == PGL_EBROKER ? 2 : 1;
	}
	conn = pgl_conn(l);
	r = conn != NULL ? PQexec(conn, "SELECT 1") : NULL;
	ok = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
	     strcmp(PQgetvalue(r, 0, 0), "1") == 0;
	printf("%s: SELECT 1 with PQexec on a leased PGconn (backend pid %d)%s%s\n",
	       ok ? "ok" : "failed", pgl_backend_pid(l), conn == NULL ? ": " : "",
	       conn == NULL ? pgl_error(c) : "");
	PQclear(r);
	pgl_release(l);
	pgl_close(c);
	return ok ? 0 : 1;
}
