/*
 * pq-probe.c - a plain libpq program (it knows nothing of pglease) that
 * check_preload runs under pglease-run, one behaviour per mode; it prints
 * what it saw and exits 0 when libpq behaved as a program expects.
 */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

static int
fail(PGconn *c, const char *what)
{
	printf("FAIL %s: %s\n", what, c != NULL ? PQerrorMessage(c) : "");
	return 1;
}

/* The first value of sql, or NULL (printed). */
static char *
one(PGconn *c, const char *sql)
{
	static char buf[256];
	PGresult *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		printf("query %s: %s", sql, PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	snprintf(buf, sizeof(buf), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return buf;
}

static PGcancel *volatile cancel;

static void
on_alarm(int sig)
{
	char err[256];

	(void)sig;
	if (cancel != NULL && !PQcancel(cancel, err, sizeof(err))) {
		static const char m[] = "PQcancel failed\n";
		ssize_t w = write(STDOUT_FILENO, m, sizeof(m) - 1);
		(void)w;
	}
}

int
main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	PGconn *c;
	char *v;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (strcmp(mode, "reset") == 0) {
		c = PQconnectdb("");
		if (PQstatus(c) != CONNECTION_OK)
			return fail(c, "connect");
		PQclear(PQexec(c, "SET work_mem = '3MB'"));
		PQreset(c);
		if (PQstatus(c) != CONNECTION_OK)
			return fail(c, "reset");
		if ((v = one(c, "SHOW work_mem")) == NULL)
			return 1;
		printf("after reset work_mem=%s\n", v);
		PQfinish(c);
		return 0;
	}
	if (strcmp(mode, "again") == 0) {
		/* Connects, then again once the file $PROBE_GO exists (the test
		 * restarts the broker between): both must be leased. */
		const char *go = getenv("PROBE_GO");
		for (int round = 1; round <= 2; round++) {
			c = PQconnectdb("");
			if (PQstatus(c) != CONNECTION_OK)
				return fail(c, "connect");
			if ((v = one(c, "SELECT 40 + 2")) == NULL)
				return 1;
			printf("connect %d: %s\n", round, v);
			PQfinish(c);
			if (round == 1) {
				printf("waiting\n");
				for (int i = 0; i < 600 && go != NULL && access(go, F_OK) != 0; i++)
					usleep(50000);
			}
		}
		return 0;
	}
	if (strcmp(mode, "async") == 0) {
		c = PQconnectStart("");
		if (c == NULL || PQstatus(c) == CONNECTION_BAD)
			return fail(c, "PQconnectStart");
		PostgresPollingStatusType st = PGRES_POLLING_WRITING;
		while (st != PGRES_POLLING_OK) {
			if (st == PGRES_POLLING_FAILED)
				return fail(c, "PQconnectPoll");
			fd_set fds;
			FD_ZERO(&fds);
			FD_SET(PQsocket(c), &fds);
			select(PQsocket(c) + 1, st == PGRES_POLLING_READING ? &fds : NULL,
			       st == PGRES_POLLING_WRITING ? &fds : NULL, NULL, NULL);
			st = PQconnectPoll(c);
		}
		if ((v = one(c, "SELECT 40 + 2")) == NULL)
			return 1;
		printf("async %s\n", v);
		PQfinish(c);
		return 0;
	}
	if (strcmp(mode, "cancel") == 0) {
		c = PQconnectdb("");
		if (PQstatus(c) != CONNECTION_OK)
			return fail(c, "connect");
		cancel = PQgetCancel(c);
		signal(SIGALRM, on_alarm);
		alarm(1);
		PGresult *r = PQexec(c, "SELECT pg_sleep(30)");
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		printf("sleep ended with %s\n", state != NULL ? state : "success");
		PQclear(r);
		PQfreeCancel(cancel);
		if ((v = one(c, "SELECT 'still usable'")) == NULL)
			return 1;
		printf("%s\n", v);
		PQfinish(c);
		return 0;
	}
	if (strcmp(mode, "fork") == 0) {
		c = PQconnectdb("");
		if (PQstatus(c) != CONNECTION_OK)
			return fail(c, "connect");
		pid_t p = fork();
		if (p == 0) {
			PQfinish(c);	/* the child's copy: harmless */
			_exit(0);
		}
		int status;
		waitpid(p, &status, 0);
		if ((v = one(c, "SELECT 'parent still connected'")) == NULL)
			return 1;
		printf("%s\n", v);
		PQfinish(c);
		return 0;
	}
	if (strcmp(mode, "params") == 0) {
		c = PQsetdbLogin(NULL, NULL, "-c work_mem=5MB", NULL, getenv("PGDATABASE"),
				 getenv("PGUSER"), "not-a-password");
		if (PQstatus(c) != CONNECTION_OK)
			return fail(c, "PQsetdbLogin");
		if ((v = one(c, "SHOW work_mem")) == NULL)
			return 1;
		printf("work_mem=%s\n", v);
		printf("host=%s port=%s db=%s user=%s needs_password=%d\n", PQhost(c), PQport(c),
		       PQdb(c), PQuser(c), PQconnectionNeedsPassword(c));
		PQfinish(c);
		return 0;
	}
	if (strcmp(mode, "refused") == 0) {
		c = PQconnectdb("");
		printf("status %s: %s", PQstatus(c) == CONNECTION_BAD ? "bad" : "ok",
		       PQerrorMessage(c));
		PQfinish(c);
		return 0;
	}
	if (strcmp(mode, "exit") == 0) {
		c = PQconnectdb("");
		if (PQstatus(c) != CONNECTION_OK)
			return fail(c, "connect");
		PQclear(PQexec(c, "BEGIN"));
		PQclear(PQexec(c, "INSERT INTO probe_exit VALUES (1)"));
		printf("exiting inside a transaction\n");
		exit(0);	/* no PQfinish */
	}
	printf("usage: pq-probe reset|async|cancel|fork|params|refused|exit\n");
	return 2;
}
