/*
 * check_shell.c - ordinary libpq code on pgl_conn(): it behaves as on a
 * direct connection, state never reaches the next holder, pgl_cancel works
 * from a signal handler, and the worker's environment cannot break it.
 * The server listens on TCP loopback too, for a pool using SCRAM.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/fdpass.h"
#include "common/shm.h"
#include "common/wire.h"
#include "pglease.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <libpq-events.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define POOL(min, max) \
	"{ name = \"main\"; conninfo = \"$CONNINFO\"; min_size = " #min "; max_size = " #max \
	"; acquire_timeout = 5.0; }"

static struct testbroker broker;
static pgl_client *client;

static void
setup(void)
{
	testbroker_start(&broker, NULL, POOL(1, 2), true);
	client = pgl_open(broker.socket);
}

static void
teardown(void)
{
	pgl_close(client);
	ck_assert_int_eq(testbroker_stop(&broker, SIGTERM), 0);
}

/* A lease and its shell; fails the test when either cannot be had. */
static PGconn *
lease(pgl_lease **l)
{
	*l = pgl_acquire(client, NULL, -1);
	ck_assert_msg(*l != NULL, "acquire: %s", pgl_error(client));
	PGconn *c = pgl_conn(*l);
	ck_assert_msg(c != NULL, "pgl_conn: %s", pgl_error(client));
	return c;
}

/* PQexec that must succeed; the first value, or "" (static buffer). */
static const char *
value(PGconn *c, const char *sql)
{
	static char out[1024];
	PGresult *r = PQexec(c, sql);

	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK,
		      "%s: %s", sql, PQerrorMessage(c));
	snprintf(out, sizeof(out), "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return out;
}

static PGconn *
direct(void)
{
	PGconn *c = PQconnectdb("");

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

START_TEST(test_same_as_direct)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	PGconn *d = direct();

	ck_assert_ptr_eq(pgl_conn(l), c);	/* the same shell on later calls */
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	ck_assert_int_eq(PQbackendPID(c), atoi(value(c, "SELECT pg_backend_pid()")));
	ck_assert_int_eq(PQbackendPID(c), pgl_backend_pid(l));
	ck_assert_int_eq(PQserverVersion(c), PQserverVersion(d));
	ck_assert_int_eq(PQprotocolVersion(c), 3);
	ck_assert_str_eq(PQparameterStatus(c, "server_version"), PQparameterStatus(d, "server_version"));
	ck_assert_str_eq(PQparameterStatus(c, "server_encoding"), PQparameterStatus(d, "server_encoding"));
	ck_assert_str_eq(PQparameterStatus(c, "TimeZone"), PQparameterStatus(d, "TimeZone"));
	ck_assert_str_eq(PQparameterStatus(c, "DateStyle"), PQparameterStatus(d, "DateStyle"));
	ck_assert_int_eq(PQclientEncoding(c), PQclientEncoding(d));
	ck_assert_str_eq(PQuser(c), getenv("PGUSER"));
	ck_assert_str_eq(PQdb(c), getenv("PGDATABASE"));
	ck_assert_str_eq(value(c, "SELECT current_user"), getenv("PGUSER"));
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	PQfinish(d);
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

/*
 * A released idle shell is reused when its backend comes back to this
 * process; one whose parameters a holder changed is rebuilt.
 */
START_TEST(test_shell_reuse)
{
	pgl_lease *a, *b;
	PGconn *ca = lease(&a);
	PGconn *cb = lease(&b);		/* the pool of 2: both backends */
	const char *style = strdup(PQparameterStatus(ca, "DateStyle"));

	ck_assert_int_eq(pgl_release(b), 0);
	ck_assert_int_eq(pgl_release(a), 0);
	for (int i = 0; i < 20; i++) {
		PGconn *c = lease(&a);
		ck_assert_msg(c == ca || c == cb, "round %d: a new shell for a known backend", i);
		ck_assert_int_eq(PQbackendPID(c), pgl_backend_pid(a));
		ck_assert_str_eq(value(c, "SELECT 'again'"), "again");
		ck_assert_int_eq(pgl_release(a), 0);
	}

	/* a holder changes what libpq remembers: the next one gets the truth */
	PGconn *c = lease(&a);
	value(c, "SET DateStyle = 'SQL, DMY'");
	ck_assert_str_eq(PQparameterStatus(c, "DateStyle"), "SQL, DMY");
	int pid = pgl_backend_pid(a);
	ck_assert_int_eq(pgl_release(a), 0);
	c = lease(&a);
	if (pgl_backend_pid(a) != pid) {
		/* holding the other backend, the next lease must be that one */
		c = lease(&b);
		ck_assert_int_eq(pgl_release(a), 0);
		a = b;
	}
	ck_assert_int_eq(pgl_backend_pid(a), pid);
	ck_assert_str_eq(PQparameterStatus(c, "DateStyle"), style);
	ck_assert_str_eq(value(c, "SHOW DateStyle"), style);
	ck_assert_int_eq(pgl_release(a), 0);
	free((void *)style);
}
END_TEST

START_TEST(test_exec_params)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	const char *params[] = { "41", "it's" };

	PGresult *r = PQexecParams(c, "SELECT $1::int4 + 1, $2::text || '!'", 2, NULL, params,
				   NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
	ck_assert_str_eq(PQgetvalue(r, 0, 1), "it's!");
	PQclear(r);

	/* binary results */
	r = PQexecParams(c, "SELECT $1::int4 * 2", 1, NULL, params, NULL, NULL, 1);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_int_eq(PQgetlength(r, 0, 0), 4);
	const unsigned char *b = (const unsigned char *)PQgetvalue(r, 0, 0);
	ck_assert_int_eq(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3], 82);
	PQclear(r);
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

START_TEST(test_prepared_and_state_gone)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	int pid = PQbackendPID(c);

	PGresult *r = PQprepare(c, "add", "SELECT $1::int + $2::int", 2, NULL);
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	r = PQdescribePrepared(c, "add");
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	ck_assert_int_eq(PQnparams(r), 2);
	ck_assert_int_eq(PQnfields(r), 1);
	PQclear(r);
	const char *v[] = { "2", "3" };
	r = PQexecPrepared(c, "add", 2, v, NULL, NULL, 0);
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "5");
	PQclear(r);
	value(c, "SET work_mem = '7MB'");
	value(c, "CREATE TEMP TABLE mine (x int)");
	ck_assert_int_eq(pgl_release(l), 0);

	c = lease(&l);
	ck_assert_int_eq(PQbackendPID(c), pid);		/* the same backend, reset */
	r = PQexecPrepared(c, "add", 2, v, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "26000");
	PQclear(r);
	ck_assert_str_eq(value(c, "SHOW work_mem"), "4MB");
	ck_assert_str_eq(value(c, "SELECT count(*) FROM pg_class WHERE relname = 'mine'"), "0");
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

START_TEST(test_transactions_and_errors)
{
	pgl_lease *l;
	PGconn *c = lease(&l);

	value(c, "CREATE TABLE tx (x int)");
	value(c, "BEGIN");
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INTRANS);
	value(c, "INSERT INTO tx VALUES (1)");
	PGresult *r = PQexec(c, "SELECT 1/0");
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22012");
	PQclear(r);
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INERROR);
	value(c, "ROLLBACK");
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	ck_assert_str_eq(value(c, "SELECT 'usable'"), "usable");

	/* released inside a failed transaction: rolled back for the next holder */
	value(c, "BEGIN");
	value(c, "INSERT INTO tx VALUES (2)");
	r = PQexec(c, "SELECT nonexistent_column");
	PQclear(r);
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INERROR);
	ck_assert_int_eq(pgl_release(l), 0);

	c = lease(&l);
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	ck_assert_str_eq(value(c, "SELECT count(*) FROM tx"), "0");
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_pool_stats st;
	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	ck_assert_uint_eq(st.reset_failures, 0);
}
END_TEST

START_TEST(test_copy_and_big_result)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	char line[64];

	value(c, "CREATE TABLE cp (i int, t text)");
	PGresult *r = PQexec(c, "COPY cp FROM STDIN");
	ck_assert_int_eq(PQresultStatus(r), PGRES_COPY_IN);
	PQclear(r);
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(line, sizeof(line), "%d\trow %d\n", i, i);
		ck_assert_int_eq(PQputCopyData(c, line, n), 1);
	}
	ck_assert_int_eq(PQputCopyEnd(c, NULL), 1);
	r = PQgetResult(c);
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	ck_assert_str_eq(PQcmdTuples(r), "5000");
	PQclear(r);
	ck_assert_ptr_null(PQgetResult(c));

	r = PQexec(c, "COPY (SELECT * FROM cp ORDER BY i) TO STDOUT");
	ck_assert_int_eq(PQresultStatus(r), PGRES_COPY_OUT);
	PQclear(r);
	int rows = 0;
	char *buf;
	int n;
	while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
		snprintf(line, sizeof(line), "%d\trow %d\n", rows, rows);
		ck_assert_int_eq(n, (int)strlen(line));
		ck_assert(memcmp(buf, line, (size_t)n) == 0);
		PQfreemem(buf);
		rows++;
	}
	ck_assert_int_eq(n, -1);
	ck_assert_int_eq(rows, 5000);
	r = PQgetResult(c);
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	ck_assert_ptr_null(PQgetResult(c));

	r = PQexec(c, "SELECT g, md5(g::text) FROM generate_series(1, 100000) g");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_int_eq(PQntuples(r), 100000);
	ck_assert_str_eq(PQgetvalue(r, 99999, 0), "100000");
	PQclear(r);
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

START_TEST(test_listen_notify)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	PGconn *d = direct();

	value(c, "LISTEN news");
	value(d, "NOTIFY news, 'hello'");
	PGnotify *n = NULL;
	int64_t deadline = clock_mono_ms() + 5000;
	while (n == NULL && clock_mono_ms() < deadline) {
		struct pollfd p = { .fd = PQsocket(c), .events = POLLIN };
		poll(&p, 1, 100);
		ck_assert_int_eq(PQconsumeInput(c), 1);
		n = PQnotifies(c);
	}
	ck_assert_ptr_nonnull(n);
	ck_assert_str_eq(n->relname, "news");
	ck_assert_str_eq(n->extra, "hello");
	ck_assert_int_eq(n->be_pid, PQbackendPID(d));
	PQfreemem(n);
	PQfinish(d);
	ck_assert_int_eq(pgl_release(l), 0);

	/* the next holder is not listening */
	c = lease(&l);
	ck_assert_str_eq(value(c, "SELECT count(*) FROM pg_listening_channels()"), "0");
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

START_TEST(test_pipeline)
{
	pgl_lease *l;
	PGconn *c = lease(&l);

	ck_assert_int_eq(PQenterPipelineMode(c), 1);
	for (int i = 1; i <= 3; i++) {
		char n[8];
		const char *v[] = { n };
		snprintf(n, sizeof(n), "%d", i);
		ck_assert_int_eq(PQsendQueryParams(c, "SELECT $1::int * 10", 1, NULL, v, NULL, NULL, 0), 1);
	}
	ck_assert_int_eq(PQpipelineSync(c), 1);
	for (int i = 1; i <= 3; i++) {
		PGresult *r = PQgetResult(c);
		char want[8];
		snprintf(want, sizeof(want), "%d", i * 10);
		ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		ck_assert_str_eq(PQgetvalue(r, 0, 0), want);
		PQclear(r);
		ck_assert_ptr_null(PQgetResult(c));
	}
	PGresult *r = PQgetResult(c);
	ck_assert_int_eq(PQresultStatus(r), PGRES_PIPELINE_SYNC);
	PQclear(r);
	ck_assert_int_eq(PQexitPipelineMode(c), 1);
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_pool_stats st;
	ck_assert_int_eq(pgl_stats(broker.shm, &st, 1), 1);
	ck_assert_uint_eq(st.reset_failures, 0);
}
END_TEST

START_TEST(test_escaping)
{
	static const char *const inputs[] = { "plain", "it's", "back\\slash", "both\\'s", "" };
	PGconn *d = direct();
	pgl_lease *l;
	PGconn *c = lease(&l);

	/* a holder turns standard_conforming_strings off, then gives it back */
	value(c, "SET standard_conforming_strings = off");
	ck_assert_str_eq(PQparameterStatus(c, "standard_conforming_strings"), "off");
	ck_assert_int_eq(pgl_release(l), 0);
	usleep(20000);

	c = lease(&l);
	ck_assert_str_eq(PQparameterStatus(c, "standard_conforming_strings"),
			 PQparameterStatus(d, "standard_conforming_strings"));
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		char a[64], b[64];
		int ea = 0, eb = 0;
		PQescapeStringConn(c, a, inputs[i], strlen(inputs[i]), &ea);
		PQescapeStringConn(d, b, inputs[i], strlen(inputs[i]), &eb);
		ck_assert_str_eq(a, b);
		ck_assert_int_eq(ea, eb);
		char *la = PQescapeLiteral(c, inputs[i], strlen(inputs[i]));
		char *lb = PQescapeLiteral(d, inputs[i], strlen(inputs[i]));
		ck_assert_str_eq(la, lb);
		/* and the server reads it back as written */
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT %s", la);
		ck_assert_str_eq(value(c, sql), inputs[i]);
		PQfreemem(la);
		PQfreemem(lb);
	}
	char *id = PQescapeIdentifier(c, "we\"ird", 6);
	ck_assert_str_eq(id, "\"we\"\"ird\"");
	PQfreemem(id);
	PQfinish(d);
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

static pgl_lease *to_cancel;

static void
on_alarm(int sig)
{
	(void)sig;
	pgl_cancel(to_cancel);
}

START_TEST(test_cancel_from_signal_handler)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval t = { .it_value = { .tv_usec = 300000 } };

	to_cancel = l;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &t, NULL), 0);
	int64_t t0 = clock_mono_ms();
	PGresult *r = PQexec(c, "SELECT pg_sleep(20)");
	int64_t took = clock_mono_ms() - t0;
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
	PQclear(r);
	ck_assert_msg(took < 3000, "the cancel took %lld ms", (long long)took);
	ck_assert_str_eq(value(c, "SELECT 'still usable'"), "still usable");
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

/*
 * A cancel sent just before release never reaches the backend's next holder:
 * the broker resets the backend only once the cancel has landed.
 */
START_TEST(test_late_cancel_spares_next_holder)
{
	int go[2], done[2];

	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(done), 0);
	pid_t next = fork();
	ck_assert_int_ge(next, 0);
	if (next == 0) {
		/* the next holder: waits for each backend and runs a short sleep on it */
		pgl_client *nc = pgl_open(broker.socket);
		char b;
		int failed = 0;
		for (int i = 0; i < 15 && read(go[0], &b, 1) == 1; i++) {
			pgl_lease *nl = pgl_acquire(nc, NULL, 5000);
			PGconn *c = nl != NULL ? pgl_conn(nl) : NULL;
			PGresult *r = c != NULL ? PQexec(c, "SELECT pg_sleep(0.05)") : NULL;
			if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
				fprintf(stderr, "next holder, round %d: %s\n", i,
					c != NULL ? PQerrorMessage(c) : pgl_error(nc));
				failed++;
			}
			PQclear(r);
			if (nl != NULL)
				pgl_release(nl);
			if (write(done[1], "d", 1) != 1)
				_exit(2);
		}
		_exit(failed == 0 ? 0 : 1);
	}
	for (int i = 0; i < 15; i++) {
		pgl_lease *l1, *l2;
		PGconn *c1 = lease(&l1);
		PGconn *c2 = lease(&l2);	/* the pool of 2 is now all ours */
		ck_assert_str_eq(value(c1, "SELECT 1"), "1");
		(void)c2;
		ck_assert_int_eq(write(go[1], "g", 1), 1);
		pgl_pool_stats st;		/* the next holder is queued */
		WAIT_UNTIL(pgl_stats(broker.shm, &st, 1) == 1 && st.waiting == 1, 10000,
			   "round %d: the next holder is not queued", i);
		ck_assert_int_eq(pgl_cancel(l1), 0);
		ck_assert_int_eq(pgl_release(l1), 0);	/* to the queued next holder */
		char b;
		ck_assert_int_eq(read(done[0], &b, 1), 1);
		ck_assert_int_eq(pgl_release(l2), 0);
	}
	int status;
	ck_assert_int_eq(waitpid(next, &status, 0), next);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a late cancel hit the next holder");
}
END_TEST

/*
 * A CANCEL naming a lease this client does not hold does nothing: here
 * another client's, whose id a raw connection reads from shared memory.
 * The query waits on a lock the test holds, so it still runs when the
 * broker handles the CANCEL (a request answered after it on the same
 * connection says when); then our own cancel, through the same broker,
 * must land faster than the time the foreign one was given.
 */
START_TEST(test_foreign_cancel_ignored)
{
	const int64_t window_ms = 500;
	pgl_lease *l;
	PGconn *c = lease(&l);
	struct shm_snapshot snap;
	uint64_t lease_id = 0;

	ck_assert_int_eq(shm_snapshot(broker.shm, &snap), 0);
	for (uint32_t i = 0; i < snap.hdr.nslots; i++)
		if (snap.slots[i].state == SHM_SLOT_LEASED)
			lease_id = snap.slots[i].lease_id;
	shm_snapshot_free(&snap);
	ck_assert_uint_ne(lease_id, 0);

	PGconn *d = direct();
	value(d, "SELECT pg_advisory_lock(4242)");
	ck_assert_int_eq(PQsendQuery(c, "SELECT pg_advisory_lock(4242)"), 1);
	char waits[160];
	snprintf(waits, sizeof(waits), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
		 "wait_event_type = 'Lock'", PQbackendPID(c));
	WAIT_UNTIL(testutil_sql_long(waits) == 1, 10000, "the query does not wait on the lock");

	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%.*s", (int)sizeof(sun.sun_path) - 1,
		 broker.socket);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	struct wire_msg m = { .h = { .type = PGL_MSG_SESSION_HELLO, .request_id = 1 } };
	m.u.hello.version_min = m.u.hello.version_max = WIRE_VERSION_MIN;
	uint8_t buf[WIRE_MESSAGE_MAX];
	size_t n = wire_encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(fdpass_send(fd, buf, n, -1), (ssize_t)n);
	ck_assert_int_gt(recv(fd, buf, sizeof(buf), 0), 0);	/* WELCOME */

	m = (struct wire_msg){ .h = { .type = PGL_MSG_LEASE_CANCEL, .request_id = 2 } };
	m.u.cancel.lease_id = lease_id;
	n = wire_encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(fdpass_send(fd, buf, n, -1), (ssize_t)n);
	/* answered once the broker has handled the CANCEL before it */
	m = (struct wire_msg){ .h = { .type = PGL_MSG_LEASE_ACQUIRE, .request_id = 3 } };
	snprintf(m.u.acquire.pool, sizeof(m.u.acquire.pool), "no such pool");
	n = wire_encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(fdpass_send(fd, buf, n, -1), (ssize_t)n);
	ssize_t got = recv(fd, buf, sizeof(buf), 0);
	ck_assert_int_gt(got, 0);
	struct wire_msg answer;
	const char *why;
	ck_assert_int_eq(wire_decode(buf, (size_t)got, &answer, &why), 0);
	ck_assert_int_eq(answer.h.type, PGL_MSG_SESSION_ERROR);
	ck_assert_uint_eq(answer.h.request_id, 3);
	ck_assert_int_eq(answer.u.error.code, PGL_ENOPOOL);
	int64_t handled = clock_mono_ms();

	/* the query still waits: nothing reached it */
	while (clock_mono_ms() - handled < window_ms) {
		ck_assert_int_eq(PQconsumeInput(c), 1);
		ck_assert_msg(PQisBusy(c), "the query ended after a foreign CANCEL: %s",
			      PQerrorMessage(c));
		usleep(10000);
	}
	ck_assert_int_eq(testutil_sql_long(waits), 1);

	/* our own cancel, as a foreign one would have been sent, lands within the window */
	int64_t t0 = clock_mono_ms();
	ck_assert_int_eq(pgl_cancel(l), 0);
	PGresult *r = PQgetResult(c);
	int64_t took = clock_mono_ms() - t0;
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
	PQclear(r);
	ck_assert_ptr_null(PQgetResult(c));
	ck_assert_msg(took < window_ms, "a cancel took %lld ms to land: the %lld ms given to the "
		      "foreign one prove nothing", (long long)took, (long long)window_ms);
	close(fd);
	value(d, "SELECT pg_advisory_unlock(4242)");
	PQfinish(d);
	ck_assert_str_eq(value(c, "SELECT 'still usable'"), "still usable");
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

START_TEST(test_release_mid_copy_or_unread)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	int pid = PQbackendPID(c);

	value(c, "CREATE TABLE half (x int)");
	PGresult *r = PQexec(c, "COPY half FROM STDIN");
	ck_assert_int_eq(PQresultStatus(r), PGRES_COPY_IN);
	PQclear(r);
	ck_assert_int_eq(PQputCopyData(c, "1\n2\n", 4), 1);
	ck_assert_int_eq(PQflush(c), 0);
	ck_assert_int_eq(pgl_release(l), 0);	/* broken: replaced */

	c = lease(&l);
	ck_assert_int_ne(PQbackendPID(c), pid);
	ck_assert_str_eq(value(c, "SELECT count(*) FROM half"), "0");
	pid = PQbackendPID(c);
	ck_assert_int_eq(PQsendQuery(c, "SELECT 1"), 1);	/* and never read */
	ck_assert_int_eq(pgl_release(l), 0);

	c = lease(&l);
	ck_assert_int_ne(PQbackendPID(c), pid);
	ck_assert_str_eq(value(c, "SELECT 2"), "2");
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert(testbroker_log_has(&broker, "lease discarded"));
}
END_TEST

START_TEST(test_many_cycles_no_leak)
{
	pgl_lease *l;
	PGconn *c = lease(&l);

	ck_assert_int_eq(pgl_release(l), 0);
	int fds = testutil_count_fds(0);
	for (int i = 0; i < 2000; i++) {
		c = lease(&l);
		ck_assert_str_eq(value(c, "SELECT 1"), "1");
		ck_assert_int_eq(pgl_release(l), 0);
	}
	ck_assert_int_eq(testutil_count_fds(0), fds);
	(void)c;
}
END_TEST

/* The worker's libpq environment cannot break the shell. */
static const struct {
	const char *var, *value;
} environments[] = {
	{ "PGREQUIREPEER", "somebody-else" },
	{ "PGOPTIONS", "-c work_mem=64kB" },
	{ "PGAPPNAME", "worker-app" },
	{ "PGCLIENTENCODING", "LATIN1" },
	{ "PGSSLMODE", "require" },
	{ "PGGSSENCMODE", "require" },
	{ "PGCHANNELBINDING", "require" },
	{ "PGTARGETSESSIONATTRS", "standby" },
	{ "PGCONNECT_TIMEOUT", "1" },
	{ "PGPASSFILE", "/nonexistent/pgpass" },
	{ "PGSSLROOTCERT", "/nonexistent/root.crt" },
};

START_TEST(test_environment)
{
	ck_assert_int_eq(setenv(environments[_i].var, environments[_i].value, 1), 0);
	pgl_lease *l;
	PGconn *c = lease(&l);
	ck_assert_str_eq(value(c, "SELECT 'fine'"), "fine");
	ck_assert_int_eq(PQclientEncoding(c), pg_char_to_encoding("UTF8"));
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

START_TEST(test_missing_service)
{
	ck_assert_int_eq(setenv("PGSERVICE", "no_such_service", 1), 0);
	ck_assert_int_eq(setenv("PGSERVICEFILE", "/nonexistent/pg_service.conf", 1), 0);
	pgl_lease *l = pgl_acquire(client, NULL, -1);
	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_null(pgl_conn(l));
	ck_assert_int_eq(pgl_errcode(client), PGL_EINVAL);
	ck_assert_msg(strstr(pgl_error(client), "PGSERVICE=no_such_service") != NULL, "%s",
		      pgl_error(client));
	ck_assert_int_eq(pgl_release(l), 0);	/* the raw lease goes back fine */

	unsetenv("PGSERVICE");
	ck_assert_int_eq(setenv("PGHOSTADDR", "127.0.0.1", 1), 0);
	l = pgl_acquire(client, NULL, -1);
	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_null(pgl_conn(l));
	ck_assert_msg(strstr(pgl_error(client), "PGHOSTADDR") != NULL, "%s", pgl_error(client));
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

/* SCRAM over TCP loopback: a pool whose role has a password. */
START_TEST(test_scram_over_tcp)
{
	char hba[512], out[256];
	const char *secret = "scram-Secret-42";

	ck_assert(testutil_sql("CREATE ROLE scrammer LOGIN PASSWORD 'scram-Secret-42'", out,
			       sizeof(out)));
	ck_assert(testutil_sql("SHOW password_encryption", out, sizeof(out)));
	ck_assert_str_eq(out, "scram-sha-256");
	snprintf(hba, sizeof(hba), "%s/pg_hba.conf", getenv("PGLEASE_TEST_PGDATA"));
	FILE *f = fopen(hba, "r");
	ck_assert_ptr_nonnull(f);
	char old[8192];
	size_t n = fread(old, 1, sizeof(old) - 1, f);
	old[n] = '\0';
	fclose(f);
	f = fopen(hba, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "host all scrammer 127.0.0.1/32 scram-sha-256\n%s", old);
	fclose(f);
	ck_assert(testutil_sql("SELECT pg_reload_conf()", out, sizeof(out)));

	char pwfile[512], pools[1024];
	snprintf(pwfile, sizeof(pwfile), "%s", testutil_write_file("scram.password", secret));
	ck_assert_int_eq(chmod(pwfile, 0600), 0);
	snprintf(pools, sizeof(pools), "{ name = \"scram\"; conninfo = \"hostaddr=127.0.0.1 "
		 "port=%s user=scrammer dbname=postgres\"; password_file = \"%s\"; "
		 "min_size = 1; max_size = 1; }", getenv("PGPORT"), pwfile);
	struct testbroker b;
	testbroker_start(&b, NULL, pools, true);
	pgl_client *sc = pgl_open(b.socket);
	pgl_lease *l = pgl_acquire(sc, "scram", -1);
	ck_assert_msg(l != NULL, "%s", pgl_error(sc));
	PGconn *c = pgl_conn(l);
	ck_assert_msg(c != NULL, "%s", pgl_error(sc));
	ck_assert_str_eq(value(c, "SELECT current_user"), "scrammer");
	/* the same login without the password is refused: the pool really used SCRAM */
	char ci[256];
	snprintf(ci, sizeof(ci), "hostaddr=127.0.0.1 port=%s user=scrammer dbname=postgres "
		 "passfile=/nonexistent sslmode=disable", getenv("PGPORT"));
	PGconn *nopw = PQconnectdb(ci);
	ck_assert_int_eq(PQstatus(nopw), CONNECTION_BAD);
	ck_assert_msg(strstr(PQerrorMessage(nopw), "password") != NULL, "%s", PQerrorMessage(nopw));
	PQfinish(nopw);
	ck_assert_str_eq(value(c, "SELECT client_addr::text FROM pg_stat_activity "
			       "WHERE pid = pg_backend_pid()"), "127.0.0.1/32");
	ck_assert_str_eq(PQuser(c), "scrammer");
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(sc);
	ck_assert_int_eq(testbroker_stop(&b, SIGTERM), 0);
	ck_assert(!testbroker_log_has(&b, secret));
}
END_TEST

/* The server offers TLS; the broker never negotiates it (DESIGN section 10). */
START_TEST(test_server_offers_tls)
{
	char cmd[2048], out[256];
	const char *data = getenv("PGLEASE_TEST_PGDATA"), *runas = getenv("PGLEASE_TEST_RUNAS");

	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
		 "-keyout %s/tls.key -out %s/tls.crt >/dev/null 2>&1 && chmod 0600 %s/tls.key%s%s%s%s",
		 data, data, data, runas != NULL && runas[0] != '\0' ? " && chown " : "",
		 runas != NULL ? runas : "", runas != NULL && runas[0] != '\0' ? " " : "",
		 runas != NULL && runas[0] != '\0' ? data : "");
	if (runas != NULL && runas[0] != '\0') {
		size_t n = strlen(cmd);
		snprintf(cmd + n, sizeof(cmd) - n, "/tls.key %s/tls.crt", data);
	}
	ck_assert_msg(system(cmd) == 0, "%s", cmd);
	ck_assert(testutil_sql("ALTER SYSTEM SET ssl_cert_file = 'tls.crt'", out, sizeof(out)));
	ck_assert(testutil_sql("ALTER SYSTEM SET ssl_key_file = 'tls.key'", out, sizeof(out)));
	ck_assert(testutil_sql("ALTER SYSTEM SET ssl = on", out, sizeof(out)));
	ck_assert(testutil_sql("SELECT pg_reload_conf()", out, sizeof(out)));
	usleep(300000);

	/* the server does offer it */
	char ci[256];
	snprintf(ci, sizeof(ci), "hostaddr=127.0.0.1 port=%s sslmode=require", getenv("PGPORT"));
	PGconn *d = PQconnectdb(ci);
	ck_assert_msg(PQstatus(d) == CONNECTION_OK && PQsslInUse(d), "%s", PQerrorMessage(d));
	PQfinish(d);

	/* a pool over TCP, no sslmode in its conninfo (libpq alone would prefer TLS) */
	char pools[512];
	snprintf(pools, sizeof(pools), "{ name = \"tcp\"; conninfo = \"hostaddr=127.0.0.1 port=%s "
		 "user=%s dbname=%s\"; min_size = 2; max_size = 2; }", getenv("PGPORT"),
		 getenv("PGUSER"), getenv("PGDATABASE"));
	struct testbroker b;
	testbroker_start(&b, NULL, pools, true);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity "
					   "USING (pid) WHERE application_name = 'pgleased' AND ssl"), 0);
	ck_assert_int_eq(testutil_sql_long("SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity "
					   "USING (pid) WHERE application_name = 'pgleased' AND NOT ssl"), 2);
	pgl_client *tc = pgl_open(b.socket);
	pgl_lease *l = pgl_acquire(tc, "tcp", -1);
	PGconn *c = l != NULL ? pgl_conn(l) : NULL;
	ck_assert_msg(c != NULL, "%s", pgl_error(tc));
	ck_assert_str_eq(value(c, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
			 "false");
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(tc);
	ck_assert_int_eq(testbroker_stop(&b, SIGTERM), 0);
	testutil_sql("ALTER SYSTEM RESET ssl", out, sizeof(out));
	testutil_sql("SELECT pg_reload_conf()", out, sizeof(out));
}
END_TEST

/* --- a hostile broker ------------------------------------------------------ */

/*
 * Answers one ACQUIRE with a GRANT whose parameter block is the largest a
 * GRANT may carry, made of one-letter parameters: 3 bytes each in the GRANT,
 * 8 in the startup reply the shell writes from them.
 */
static void
grant_tiny_params(int conn, void *arg)
{
	static char params[WIRE_PARAMS_MAX];
	struct wire_msg m;
	uint8_t buf[WIRE_MESSAGE_MAX];
	int sv[2];

	(void)arg;
	REQUIRE(testutil_wire_recv(conn, &m, buf, sizeof(buf), NULL, 10000) &&
		m.h.type == PGL_MSG_LEASE_ACQUIRE, "no ACQUIRE");
	size_t n = 0;
	while (n + 3 <= sizeof(params)) {
		memcpy(params + n, "a\0", 3);
		n += 3;
	}
	struct wire_msg g = { .h = { .type = PGL_MSG_LEASE_GRANT, .request_id = m.h.request_id } };
	g.u.grant.lease_id = (uint64_t)0x7e57 << 32 | 1;
	g.u.grant.backend_pid = 4242;
	snprintf(g.u.grant.user, sizeof(g.u.grant.user), "postgres");
	snprintf(g.u.grant.database, sizeof(g.u.grant.database), "postgres");
	g.u.grant.params = params;
	g.u.grant.params_len = (uint16_t)n;
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	REQUIRE(testutil_wire_send_fd(conn, &g, sv[0]), "GRANT not sent");
	/* the lease comes back */
	REQUIRE(testutil_wire_recv(conn, &m, buf, sizeof(buf), NULL, 10000) &&
		m.h.type == PGL_MSG_LEASE_RELEASE && m.u.release.lease_id == g.u.grant.lease_id,
		"no RELEASE of the lease");
	testutil_wait_eof(conn, 10000);
}

/* A GRANT's parameters cannot overflow the shell's startup reply: pgl_conn refuses it. */
START_TEST(test_grant_params_overflow_refused)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/hostile.%d.sock", testutil_tmpdir(), (int)getpid());
	pid_t hb = testutil_hostile_broker(path, WIRE_VERSION_MAX, 1000, grant_tiny_params, NULL);
	pgl_client *c = pgl_open(path);
	pgl_lease *l = pgl_acquire(c, NULL, 1000);
	ck_assert_msg(l != NULL, "%s", pgl_error(c));
	ck_assert_ptr_null(pgl_conn(l));
	ck_assert_int_eq(pgl_errcode(c), PGL_EPROTO);
	ck_assert_msg(strstr(pgl_error(c), "more server parameters than a startup reply holds") !=
		      NULL, "%s", pgl_error(c));
	ck_assert_int_eq(pgl_release(l), 0);
	pgl_close(c);
	testutil_reap(hb, "hostile broker");
}
END_TEST

/* --- what a reused shell carries over ------------------------------------- */

/* Leases the backend of pid, holding the other one of the pool meanwhile if need be. */
static PGconn *
lease_backend(int pid, pgl_lease **l)
{
	PGconn *c = lease(l);

	if (pgl_backend_pid(*l) != pid) {
		pgl_lease *other = *l;
		c = lease(l);
		ck_assert_int_eq(pgl_release(other), 0);
	}
	ck_assert_int_eq(pgl_backend_pid(*l), pid);
	return c;
}

static long
file_size(FILE *f)
{
	ck_assert_int_eq(fflush(f), 0);
	struct stat sb;
	ck_assert_int_eq(fstat(fileno(f), &sb), 0);
	return (long)sb.st_size;
}

/*
 * Settings a holder makes on its PGconn through libpq's setters (error
 * verbosity, context visibility, a trace) are undone when the shell is
 * kept for the next lease of the backend: the next holder gets a PGconn
 * as new, the same one.
 */
START_TEST(test_reused_shell_settings_reset)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	int pid = pgl_backend_pid(l);
	FILE *trace = fopen(testutil_write_file("shell.trace", ""), "w");

	ck_assert_ptr_nonnull(trace);
	PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
	PQsetErrorContextVisibility(c, PQSHOW_CONTEXT_ALWAYS);
	PQtrace(c, trace);
	value(c, "SELECT 'traced'");
	ck_assert_int_gt(file_size(trace), 0);
	ck_assert_int_eq(pgl_release(l), 0);
	long traced = file_size(trace);

	PGconn *again = lease_backend(pid, &l);
	ck_assert_ptr_eq(again, c);		/* kept and reused */
	ck_assert_int_eq(PQsetErrorVerbosity(again, PQERRORS_DEFAULT), PQERRORS_DEFAULT);
	ck_assert_int_eq(PQsetErrorContextVisibility(again, PQSHOW_CONTEXT_ERRORS),
			 PQSHOW_CONTEXT_ERRORS);
	value(again, "SELECT 'not traced'");
	ck_assert_int_eq(file_size(trace), traced);
	ck_assert_int_eq(pgl_release(l), 0);
	fclose(trace);
}
END_TEST

static int event_calls, event_destroys;

static int
count_events(PGEventId id, void *info, void *pass_through)
{
	(void)info;
	(void)pass_through;		/* may be freed by now: never read */
	if (id == PGEVT_CONNDESTROY)
		event_destroys++;
	else if (id != PGEVT_REGISTER)
		event_calls++;
	return 1;
}

/*
 * A holder's PGEventProc, whose pass-through pointer it frees after the
 * release, is never called for the next holder: a shell with an event proc
 * is not kept (libpq cannot unregister one), and its proc hears
 * PGEVT_CONNDESTROY at the release, as at a PQfinish.
 */
START_TEST(test_event_proc_not_inherited)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	int pid = pgl_backend_pid(l);
	char *mine = strdup("the holder's");

	ck_assert_int_eq(PQregisterEventProc(c, count_events, "holder", mine), 1);
	value(c, "SELECT 1");
	ck_assert_int_gt(event_calls, 0);
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert_int_eq(event_destroys, 1);
	free(mine);

	event_calls = 0;
	c = lease_backend(pid, &l);
	value(c, "SELECT 'no event'");
	ck_assert_int_eq(event_calls, 0);
	ck_assert_ptr_null(PQinstanceData(c, count_events));
	ck_assert_int_eq(pgl_release(l), 0);
	ck_assert_int_eq(event_destroys, 1);
}
END_TEST

/* The last error a holder saw is not what the next holder's PQerrorMessage says. */
START_TEST(test_error_message_not_inherited)
{
	pgl_lease *l;
	PGconn *c = lease(&l);
	int pid = pgl_backend_pid(l);

	PGresult *r = PQexec(c, "SELECT 'secret ' || 1/0");
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	PQclear(r);
	ck_assert_msg(strstr(PQerrorMessage(c), "division by zero") != NULL, "%s",
		      PQerrorMessage(c));
	ck_assert_int_eq(pgl_release(l), 0);

	c = lease_backend(pid, &l);
	ck_assert_str_eq(PQerrorMessage(c), "");
	ck_assert_int_eq(pgl_release(l), 0);
}
END_TEST

static Suite *
shell_suite(void)
{
	Suite *s = suite_create("shell");
	TCase *tc = tcase_create("libpq");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_same_as_direct);
	tcase_add_test(tc, test_shell_reuse);
	tcase_add_test(tc, test_exec_params);
	tcase_add_test(tc, test_prepared_and_state_gone);
	tcase_add_test(tc, test_transactions_and_errors);
	tcase_add_test(tc, test_copy_and_big_result);
	tcase_add_test(tc, test_listen_notify);
	tcase_add_test(tc, test_pipeline);
	tcase_add_test(tc, test_escaping);
	tcase_add_test(tc, test_cancel_from_signal_handler);
	tcase_add_test(tc, test_foreign_cancel_ignored);
	tcase_add_test(tc, test_late_cancel_spares_next_holder);
	tcase_add_test(tc, test_release_mid_copy_or_unread);
	tcase_add_test(tc, test_many_cycles_no_leak);
	tcase_add_loop_test(tc, test_environment, 0,
			    (int)(sizeof(environments) / sizeof(environments[0])));
	tcase_add_test(tc, test_missing_service);
	suite_add_tcase(s, tc);

	tc = tcase_create("scram");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_scram_over_tcp);
	tcase_add_test(tc, test_server_offers_tls);
	suite_add_tcase(s, tc);

	tc = tcase_create("reuse");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_reused_shell_settings_reset);
	tcase_add_test(tc, test_event_proc_not_inherited);
	tcase_add_test(tc, test_error_message_not_inherited);
	suite_add_tcase(s, tc);

	/* Brokers that misbehave on purpose. */
	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_grant_params_overflow_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char **argv)
{
	setenv("PGLEASE_TEST_TCP", "1", 1);
	testutil_require_postgres(argc, argv);
	return testutil_run_suite(shell_suite());
}
