/*
 * dl-probe.c - a program not linked with libpq that dlopen()s it after
 * start and looks its functions up with dlsym(handle), as FFI bindings do:
 * only the audit library of pglease-run can lease its connection.
 */
#include <dlfcn.h>
#include <stdio.h>

typedef void *(*connectdb_fn)(const char *);
typedef int (*status_fn)(const void *);
typedef void *(*exec_fn)(void *, const char *);
typedef char *(*getvalue_fn)(const void *, int, int);
typedef void (*void_fn)(void *);

int
main(void)
{
	void *pq = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);

	if (pq == NULL) {
		printf("dlopen: %s\n", dlerror());
		return 1;
	}
	connectdb_fn connectdb = (connectdb_fn)dlsym(pq, "PQconnectdb");
	status_fn status = (status_fn)dlsym(pq, "PQstatus");
	exec_fn exec = (exec_fn)dlsym(pq, "PQexec");
	getvalue_fn getvalue = (getvalue_fn)dlsym(pq, "PQgetvalue");
	void_fn clear = (void_fn)dlsym(pq, "PQclear");
	void_fn finish = (void_fn)dlsym(pq, "PQfinish");
	if (!connectdb || !status || !exec || !getvalue || !clear || !finish) {
		printf("dlsym: %s\n", dlerror());
		return 1;
	}
	void *conn = connectdb("");
	if (status(conn) != 0) {	/* CONNECTION_OK */
		printf("connect failed\n");
		return 1;
	}
	void *r = exec(conn, "SELECT 'dlopened ' || current_setting('application_name')");
	printf("%s\n", getvalue(r, 0, 0));
	clear(r);
	finish(conn);
	return 0;
}
