/*
 * shell_build.c - the handshake that makes a shell: libpq connected to
 * ourselves, then to a leased backend.
 *
 * libpq cannot adopt a socket it did not open, so the library lets it open
 * one to a private listener of this process, answers the startup itself
 * with the real backend's parameters, and then swaps the leased socket in
 * under the PGconn (dup3).  From then on every libpq call talks to the real
 * backend.  The listener is an abstract UNIX socket with a random name,
 * bound before libpq connects, so a squatter causes EADDRINUSE, not a
 * hijack; a peer that is not this process is dropped.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/pgproto.h"
#include "common/rand.h"
#include "lib/client.h"
#include "lib/process.h"
#include "lib/shell_build.h"
#include "lib/startup.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* How long the whole handshake with ourselves may take. */
#define HANDSHAKE_MS 5000
#define SHELL_PORT "5432"

/*
 * Connection options that could change the handshake, each with the value
 * that keeps it plain.  Only the keywords the running libpq knows are sent
 * (it may be newer or older than the one built against), and each is sent
 * non-empty: libpq takes an empty value as unset and falls back to the
 * environment (PGSSLMODE=require and friends).
 */
static const struct {
	const char *keyword;
	const char *value;	/* NULL: this process's user name */
} neutral[] = {
	{ "sslmode", "disable" },
	{ "gssencmode", "disable" },
	{ "channel_binding", "disable" },
	{ "target_session_attrs", "any" },
	{ "passfile", "/nonexistent" },
	{ "requirepeer", NULL },	/* only against $PGREQUIREPEER: see build_options() */
	{ "connect_timeout", "0" },
	{ "require_auth", "none" },		/* 16 */
	{ "sslcertmode", "disable" },		/* 16 */
	{ "sslrootcert", "/nonexistent" },	/* 16: "system" needs verify-full */
	{ "load_balance_hosts", "disable" },	/* 16 */
	{ "sslnegotiation", "postgres" },	/* 17 */
	{ "min_protocol_version", "3.0" },	/* 18 */
	{ "max_protocol_version", "3.0" },	/* 18 */
};
#define NNEUTRAL (sizeof(neutral) / sizeof(neutral[0]))

/* host, port, user, dbname, client_encoding, the terminator */
#define NPER_CALL 6

/* libpq's own notice hooks, as every new PGconn has them. */
static PQnoticeProcessor default_processor;
static PQnoticeReceiver default_receiver;

static struct {
	const char *kw[NNEUTRAL + NPER_CALL];
	const char *val[NNEUTRAL + NPER_CALL];
	int n;				/* the neutral part */
	char user[256];
	struct rng rng;			/* the listeners' names */
	bool ok;
} opts;
static pthread_once_t opts_once = PTHREAD_ONCE_INIT;

/*
 * The option list for this libpq, built once per process, cheaply: a CGI
 * process builds it for its one shell.  PQconninfoParse("") lists the
 * keywords this libpq knows without PQconndefaults()' walk of the
 * environment and the user database.
 *
 * requirepeer is not needed to keep the handshake ours: the listener's name
 * is bound by this process (the bind fails if anyone holds it) and the
 * connection it accepts is checked to come from this process.  So it is set
 * only to override $PGREQUIREPEER, which would otherwise make libpq demand
 * another user; only then is this process's user name looked up (NSS).
 */
static void
build_options(void)
{
	PQconninfoOption *known = PQconninfoParse("", NULL);
	const char *peer_env = getenv("PGREQUIREPEER");

	if (known == NULL)
		return;
	if (peer_env != NULL && peer_env[0] != '\0') {
		struct passwd pw, *pwp = NULL;
		char buf[1024];

		if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL)
			snprintf(opts.user, sizeof(opts.user), "%s", pwp->pw_name);
	}
	for (size_t i = 0; i < NNEUTRAL; i++) {
		bool have = false;
		for (PQconninfoOption *o = known; o->keyword != NULL && !have; o++)
			have = strcmp(o->keyword, neutral[i].keyword) == 0;
		if (!have)
			continue;
		if (neutral[i].value == NULL && opts.user[0] == '\0')
			continue;	/* no $PGREQUIREPEER, or no name to set against it */
		opts.kw[opts.n] = neutral[i].keyword;
		opts.val[opts.n++] = neutral[i].value != NULL ? neutral[i].value : opts.user;
	}
	PQconninfoFree(known);
	(void)rng_seed(&opts.rng);	/* the pid in the name keeps it apart anyway */
	opts.ok = true;
}

static uint64_t
next_random(void)
{
	/* Threads build shells at once (the preload shim): one step each. */
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&lock);
	uint64_t x = rng_next(&opts.rng);
	pthread_mutex_unlock(&lock);
	return x;
}

bool
shell_hooks_default(PGconn *conn)
{
	return PQsetNoticeProcessor(conn, NULL, NULL) == default_processor &&
	       PQsetNoticeReceiver(conn, NULL, NULL) == default_receiver;
}

/* --- the private listener ----------------------------------------------- */

/* Waits for events on fd until deadline; false on timeout or error. */
static bool
wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - clock_mono_ms();
		if (left <= 0)
			return false;
		struct pollfd p = { .fd = fd, .events = events };
		int rc = poll(&p, 1, (int)left);
		if (rc > 0)
			return true;
		if (rc < 0 && errno != EINTR)
			return false;
	}
}

static bool
read_full(int fd, void *buf, size_t len, int64_t deadline)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_fd(fd, POLLIN, deadline))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

static bool
write_full(int fd, const void *buf, size_t len, int64_t deadline)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_fd(fd, POLLOUT, deadline))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/*
 * Accepts libpq's connection (from this process only) on b's listener and
 * reads its startup message into b.  Returns 0, or -1 with why set.
 */
static int
accept_startup(struct shell_build *b, const char **why)
{
	for (;;) {
		if (!wait_fd(b->listener, POLLIN, b->deadline)) {
			*why = "libpq did not connect to the shell's listener";
			return -1;
		}
		b->peer = accept4(b->listener, NULL, NULL, SOCK_CLOEXEC);
		if (b->peer < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			*why = "accept on the shell's listener failed";
			return -1;
		}
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(b->peer, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
		    cred.pid == getpid())
			break;
		close(b->peer);	/* not us: never answer a stranger */
		b->peer = -1;
	}

	uint8_t hdr[8];
	if (!read_full(b->peer, hdr, sizeof(hdr), b->deadline)) {
		*why = "no startup message from libpq";
		return -1;
	}
	uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	b->proto = (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | hdr[7];
	if (len < 8 || len - 8 > sizeof(b->startup) || b->proto >> 16 != 3) {
		*why = "libpq sent an unexpected startup message";
		return -1;
	}
	b->startup_len = len - 8;
	if (!read_full(b->peer, b->startup, b->startup_len, b->deadline)) {
		*why = "the startup message was cut short";
		return -1;
	}
	return 0;
}

/* --- the handshake, in steps -------------------------------------------- */

void
shell_abandon(struct shell_build *b)
{
	if (b->conn != NULL)
		PQfinish(b->conn);	/* its socket still leads to our listener */
	if (b->peer >= 0)
		close(b->peer);
	if (b->listener >= 0)
		close(b->listener);
	b->conn = NULL;
	b->peer = b->listener = -1;
}

/* Records the failure (detail: libpq's message, first line), abandons b; -1. */
static int
build_fail(pgl_client *c, struct shell_build *b, int code, const char *what, const char *detail)
{
	int len = (int)strcspn(detail, "\n");

	client_fail(c, code, "%s%s%.*s", what, len > 0 ? ": " : "", len, detail);
	shell_abandon(b);
	return -1;
}

/* Binds b's listener to the abstract name libpq derives from host=@NAME. */
static int
listen_at(pgl_client *c, struct shell_build *b)
{
	char path[108];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int plen = snprintf(path, sizeof(path), "%s/.s.PGSQL.%s", b->host, SHELL_PORT);

	memcpy(sun.sun_path, path, (size_t)plen);
	sun.sun_path[0] = '\0';
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)plen);
	b->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (b->listener < 0)
		return build_fail(c, b, PGL_EBROKER, "socket", strerror(errno));
	if (bind(b->listener, (struct sockaddr *)&sun, alen) != 0 || listen(b->listener, 1) != 0)
		return build_fail(c, b, PGL_EBROKER, "cannot listen for the shell connection",
				  strerror(errno));
	return 0;
}

/* Whether the options libpq settled on send it somewhere else than host. */
static bool
leads_elsewhere(PGconn *conn)
{
	PQconninfoOption *ci = PQconninfo(conn);
	bool elsewhere = false;

	for (PQconninfoOption *o = ci; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, "hostaddr") == 0 && o->val != NULL && o->val[0] != '\0')
			elsewhere = true;
	PQconninfoFree(ci);
	return elsewhere;
}

int
shell_begin(pgl_client *c, struct shell_build *b, const char *const *kw, const char *const *val,
	    const char *host)
{
	const char *env;

	b->conn = NULL;
	b->listener = b->peer = -1;
	b->startup_len = 0;
	pthread_once(&opts_once, build_options);
	if (!opts.ok) {
		client_fail(c, PGL_ENOMEM, "libpq's connection defaults are unavailable");
		return -1;
	}
	if ((env = getenv("PGHOSTADDR")) != NULL && env[0] != '\0') {
		client_fail(c, PGL_EINVAL, "PGHOSTADDR=%s is set in the environment: libpq would "
			    "connect there instead of to the leased backend; unset it", env);
		return -1;
	}
	if (host != NULL)
		snprintf(b->host, sizeof(b->host), "%s", host);
	else
		snprintf(b->host, sizeof(b->host), "@pglease-shell-%d-%016llx", (int)getpid(),
			 (unsigned long long)next_random());
	b->deadline = clock_mono_ms() + HANDSHAKE_MS;
	if (listen_at(c, b) != 0)
		return -1;
	if (host != NULL)
		return 0;	/* the caller starts libpq again (PQresetStart) */

	/* The caller's parameters first: the neutral ones and ours override them. */
	const char *k[SHELL_PARAMS_MAX + NNEUTRAL + 3], *v[SHELL_PARAMS_MAX + NNEUTRAL + 3];
	size_t ncaller = 0;
	while (kw[ncaller] != NULL)
		if (++ncaller > SHELL_PARAMS_MAX)
			return build_fail(c, b, PGL_EINVAL, "too many connection parameters", "");
	size_t n = 0;
	for (size_t i = 0; i < ncaller; i++)
		k[n] = kw[i], v[n++] = val[i];
	for (int i = 0; i < opts.n; i++)
		k[n] = opts.kw[i], v[n++] = opts.val[i];
	k[n] = "host", v[n++] = b->host;
	k[n] = "port", v[n++] = SHELL_PORT;
	k[n] = NULL;
	v[n] = NULL;
	b->conn = PQconnectStartParams(k, v, 0);
	if (b->conn != NULL && default_processor == NULL) {
		default_processor = PQsetNoticeProcessor(b->conn, NULL, NULL);
		default_receiver = PQsetNoticeReceiver(b->conn, NULL, NULL);
	}
	if (b->conn == NULL)
		return build_fail(c, b, PGL_ENOMEM, "out of memory", "");
	if (PQstatus(b->conn) == CONNECTION_BAD) {
		env = getenv("PGSERVICE");
		if (env != NULL && env[0] != '\0') {
			char what[256];
			snprintf(what, sizeof(what), "PGSERVICE=%.100s is set in the environment and "
				 "libpq cannot use it; unset PGSERVICE for pooled connections", env);
			return build_fail(c, b, PGL_EINVAL, what, PQerrorMessage(b->conn));
		}
		return build_fail(c, b, PGL_EINVAL, "libpq refused the shell connection",
				  PQerrorMessage(b->conn));
	}
	/* A service may have set a hostaddr that sends libpq elsewhere. */
	if (leads_elsewhere(b->conn))
		return build_fail(c, b, PGL_EINVAL, "a service or hostaddr setting would lead "
				  "libpq away from the leased backend", "");

	/* Until libpq has sent its startup message and waits for the answer. */
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	const char *why = NULL;
	while (st != PGRES_POLLING_READING) {
		if (st == PGRES_POLLING_FAILED || st == PGRES_POLLING_OK)
			return build_fail(c, b, PGL_EINVAL, "libpq refused the shell connection",
					  PQerrorMessage(b->conn));
		if (!wait_fd(PQsocket(b->conn), POLLOUT, b->deadline))
			return build_fail(c, b, PGL_EINVAL, "the shell handshake timed out", "");
		st = PQconnectPoll(b->conn);
	}
	if (accept_startup(b, &why) != 0)
		return build_fail(c, b, PGL_EINVAL, "the shell handshake failed", why);
	return 0;
}

const char *
shell_startup_param(const struct shell_build *b, const char *name)
{
	/* name\0value\0 ... \0 */
	size_t i = 0;

	while (i < b->startup_len && b->startup[i] != '\0') {
		const char *k = (const char *)b->startup + i;
		size_t kl = strnlen(k, b->startup_len - i);
		if (i + kl + 1 >= b->startup_len)
			return NULL;
		const char *v = k + kl + 1;
		size_t vl = strnlen(v, b->startup_len - i - kl - 1);
		if (i + kl + 1 + vl >= b->startup_len)
			return NULL;
		if (strcmp(k, name) == 0)
			return v;
		i += kl + 1 + vl + 1;
	}
	return NULL;
}

/* Drives poll (PQconnectPoll or PQresetPoll) until libpq is done; its last status. */
static PostgresPollingStatusType
drive(struct shell_build *b, PostgresPollingStatusType (*poll_fn)(PGconn *))
{
	PostgresPollingStatusType st = PGRES_POLLING_READING;

	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		if (!wait_fd(PQsocket(b->conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
			     b->deadline))
			return PGRES_POLLING_FAILED;
		st = poll_fn(b->conn);
	}
	return st;
}

int
shell_accept(pgl_client *c, struct shell_build *b)
{
	const char *why = NULL;

	/* libpq (PQresetStart) connects at once; its startup follows its first poll. */
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (b->peer < 0) {
		if (st == PGRES_POLLING_FAILED || st == PGRES_POLLING_OK)
			return build_fail(c, b, PGL_EINVAL, "libpq refused the shell connection",
					  PQerrorMessage(b->conn));
		if (st == PGRES_POLLING_READING)
			break;
		if (!wait_fd(PQsocket(b->conn), POLLOUT, b->deadline))
			return build_fail(c, b, PGL_EINVAL, "the shell handshake timed out", "");
		st = PQresetPoll(b->conn);
	}
	if (accept_startup(b, &why) != 0)
		return build_fail(c, b, PGL_EINVAL, "the shell handshake failed", why);
	return 0;
}

PGconn *
shell_complete(pgl_client *c, struct shell_build *b, pgl_lease *l,
	       PostgresPollingStatusType (*poll_fn)(PGconn *))
{
	/* The lease may have been waited for: the rest has a deadline of its own. */
	b->deadline = clock_mono_ms() + HANDSHAKE_MS;
	/* The GRANT's parameters are the broker's word: bounded, or refused. */
	uint8_t out[STARTUP_REPLY_MAX];
	size_t n = startup_reply(out, sizeof(out), l->params, l->params_len,
				 (uint32_t)l->backend_pid, (b->proto & 0xffff) != 0);
	if (n == 0) {
		build_fail(c, b, PGL_EPROTO, "the shell handshake failed", "the broker's GRANT "
			   "carries more server parameters than a startup reply holds");
		return NULL;
	}
	if (!write_full(b->peer, out, n, b->deadline)) {
		build_fail(c, b, PGL_EINVAL, "the shell handshake failed",
			   "cannot answer libpq's startup");
		return NULL;
	}
	if (drive(b, poll_fn) != PGRES_POLLING_OK) {
		build_fail(c, b, PGL_EINVAL, "libpq refused the shell connection",
			   PQerrorMessage(b->conn));
		return NULL;
	}
	close(b->listener);
	close(b->peer);
	b->listener = b->peer = -1;

	/* The swap: from here on libpq talks to the leased backend. */
	PGconn *conn = b->conn;
	process_lock();
	if (dup3(l->fd, PQsocket(conn), O_CLOEXEC) < 0) {
		int saved = errno;
		process_unlock();
		build_fail(c, b, PGL_EBROKER, "dup3", strerror(saved));
		return NULL;
	}
	l->shell = conn;
	b->conn = NULL;
	process_unlock();
	return conn;
}

PGconn *
shell_refuse(struct shell_build *b, const char *sqlstate, const char *message)
{
	uint8_t out[1200];
	struct pgproto_out o;
	size_t mlen = strnlen(message, 1000);
	/* ErrorResponse: severity twice (localised and not), code, message, a NUL. */
	size_t body = sizeof("SFATAL") + sizeof("VFATAL") + 1 + strlen(sqlstate) + 1 +
		      1 + mlen + 1 + 1;

	pgproto_out_init(&o, out, sizeof(out));
	if (pgproto_begin(&o, 'E', body)) {
		pgproto_put_cstring(&o, "SFATAL");
		pgproto_put_cstring(&o, "VFATAL");
		pgproto_put(&o, "C", 1);
		pgproto_put_cstring(&o, sqlstate);
		pgproto_put(&o, "M", 1);
		pgproto_put(&o, message, mlen);
		pgproto_put(&o, "\0", 2);	/* the message's end, and the fields' */
	}
	size_t len = pgproto_out_len(&o);
	PGconn *conn = b->conn;
	b->deadline = clock_mono_ms() + HANDSHAKE_MS;
	bool sent = len > 0 && write_full(b->peer, out, len, b->deadline);
	/* The end of stream follows: libpq fails, with our message if it came. */
	close(b->peer);
	close(b->listener);
	b->listener = b->peer = -1;
	(void)sent;
	drive(b, PQconnectPoll);
	b->conn = NULL;
	return conn;
}
