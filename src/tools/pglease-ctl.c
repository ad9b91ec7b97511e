/*
 * pglease-ctl.c - administer a running pgleased over its control socket:
 * show its pools, clients and leases; pause, resume, reconnect a pool; kill
 * a lease or a client; reload; drain.
 *
 * Speaks the control protocol at version 3 (ADMIN_COMMAND, answered by
 * ADMIN_ROWS..., then ADMIN_DONE or ERROR).  The broker decides who may:
 * admin_uids/admin_gids against the kernel's view of this process.
 *
 * Exit status: 0 done, 1 refused or failed, 2 usage or broker unreachable.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/defaults.h"
#include "common/fdpass.h"
#include "common/wire.h"
#include "pglease.h"
#include "tools/toolutil.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EXIT_REFUSED 1
#define EXIT_USAGE 2

/* Seconds to wait for an answer beyond what the command itself may take. */
#define GRACE 10

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: pglease-ctl [-s SOCKET | -c FILE] [--json] [--timeout SECONDS] COMMAND\n"
		"\n"
		"Administers a running pgleased over its control socket.\n"
		"\n"
		"commands:\n"
		"  show pools | show clients | show leases\n"
		"  pause [POOL]       queue new acquires; returns once no lease is out\n"
		"  resume [POOL]      serve the queue again (no POOL: every pool)\n"
		"  reconnect POOL     replace every backend as it comes free\n"
		"  kill-lease ID      end a lease (its transaction rolls back)\n"
		"  kill-client PID    disconnect a client (its leases are orphaned)\n"
		"  reload             as SIGHUP\n"
		"  drain              as SIGTERM\n"
		"\n"
		"  -s, --socket PATH      the broker's socket (default $PGLEASE_SOCKET, else\n"
		"                         " PGL_DEFAULT_SOCKET ")\n"
		"  -c, --config FILE      take the socket from the broker's configuration\n"
		"  -j, --json             JSON instead of a table or a sentence\n"
		"  -t, --timeout SECONDS  how long pause waits for the pool to be quiet (30)\n"
		"  -V, --version          print the version and exit\n"
		"  -h, --help             print this help and exit\n"
		"\n"
		"Exit status: 0 done, 1 refused or failed, 2 usage error or broker unreachable.\n");
}

/* --- the command line's command -------------------------------------------- */

/* Fills the ADMIN_COMMAND of argv; -1 after saying why it is not one. */
static int
parse_command(int argc, char **argv, struct wire_admin_command *c)
{
	static const struct { const char *name; uint16_t cmd; int arg; } table[] = {
		/* arg: 0 none, 1 an optional pool, 2 a pool, 3 a lease id, 4 a pid */
		{ "pause", WIRE_ADMIN_PAUSE, 1 },
		{ "resume", WIRE_ADMIN_RESUME, 1 },
		{ "reconnect", WIRE_ADMIN_RECONNECT, 2 },
		{ "kill-lease", WIRE_ADMIN_KILL_LEASE, 3 },
		{ "kill-client", WIRE_ADMIN_KILL_CLIENT, 4 },
		{ "reload", WIRE_ADMIN_RELOAD, 0 },
		{ "drain", WIRE_ADMIN_DRAIN, 0 },
	};
	char *end;

	if (argc < 1) {
		fprintf(stderr, "pglease-ctl: no command\n");
		return -1;
	}
	if (strcmp(argv[0], "show") == 0) {
		if (argc == 2 && strcmp(argv[1], "pools") == 0)
			c->cmd = WIRE_ADMIN_SHOW_POOLS;
		else if (argc == 2 && strcmp(argv[1], "clients") == 0)
			c->cmd = WIRE_ADMIN_SHOW_CLIENTS;
		else if (argc == 2 && strcmp(argv[1], "leases") == 0)
			c->cmd = WIRE_ADMIN_SHOW_LEASES;
		else {
			fprintf(stderr, "pglease-ctl: show what? pools, clients or leases\n");
			return -1;
		}
		return 0;
	}
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (strcmp(argv[0], table[i].name) != 0)
			continue;
		c->cmd = table[i].cmd;
		int arg = table[i].arg;
		if (argc > 2 || (arg == 0 && argc != 1) || (arg >= 2 && argc != 2)) {
			fprintf(stderr, "pglease-ctl: %s takes %s\n", argv[0],
				arg == 0 ? "no argument" : arg == 1 ? "at most a pool name" :
				arg == 2 ? "a pool name" : arg == 3 ? "a lease id" : "a process id");
			return -1;
		}
		if (argc == 1)
			return 0;
		if (arg <= 2) {
			if (strlen(argv[1]) == 0 || strlen(argv[1]) > WIRE_POOL_NAME_MAX) {
				fprintf(stderr, "pglease-ctl: \"%s\" is not a pool name\n", argv[1]);
				return -1;
			}
			snprintf(c->target, sizeof(c->target), "%s", argv[1]);
			return 0;
		}
		errno = 0;
		c->id = strtoull(argv[1], &end, arg == 3 ? 16 : 10);
		if (errno != 0 || *end != '\0' || end == argv[1] || c->id == 0 ||
		    argv[1][0] == '-' || (arg == 4 && c->id > INT32_MAX)) {
			fprintf(stderr, "pglease-ctl: \"%s\" is not a %s\n", argv[1],
				arg == 3 ? "lease id (hexadecimal, as show leases prints it)" :
				"process id");
			return -1;
		}
		return 0;
	}
	fprintf(stderr, "pglease-ctl: unknown command \"%s\"\n", argv[0]);
	return -1;
}

/* --- talking to the broker --------------------------------------------------- */

static int
connect_broker(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memcpy(sun.sun_path, path, strlen(path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int
send_msg(int fd, const struct wire_msg *m)
{
	uint8_t buf[WIRE_MESSAGE_MAX];
	size_t len = wire_encode(m, buf, sizeof(buf));

	if (len == 0 || fdpass_send(fd, buf, len, -1) < 0)
		return -1;
	return 0;
}

/* The next message within deadline (clock_mono_ms); -1 with why. */
static int
recv_msg(int fd, struct wire_msg *m, uint8_t *buf, size_t cap, int64_t deadline, const char **why)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - clock_mono_ms();
		if (left <= 0) {
			*why = "the broker did not answer in time";
			return -1;
		}
		int rc = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			continue;
		ssize_t n = fdpass_recv(fd, buf, cap, NULL);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			*why = n == 0 ? "the broker closed the connection" : strerror(errno);
			return -1;
		}
		if (wire_decode(buf, (size_t)n, m, why) != 0)
			return -1;
		return 0;
	}
}

/* --- printing ----------------------------------------------------------------- */

/* The rows of a "show", as they came: blocks of "name\0value\0...\0". */
struct table {
	char *data;
	size_t len;
};

static int
table_add(struct table *t, const char *block, size_t len)
{
	char *more = realloc(t->data, t->len + len);

	if (more == NULL)
		return -1;
	memcpy(more + t->len, block, len);
	t->data = more;
	t->len += len;
	return 0;
}

/* A JSON value as a table cell: strings without their quotes (pool names need no escape). */
static void
cell(const char *v, char *out, size_t len)
{
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
		snprintf(out, len, "%.*s", (int)(n - 2), v + 1);
	else
		snprintf(out, len, "%s", v);
}

static void
print_json(const struct table *t)
{
	size_t i = 0;
	bool first_row = true, in_row = false, first_field = true;

	printf("[");
	while (i < t->len) {
		const char *name = t->data + i;
		if (*name == '\0') {
			printf("}");
			in_row = false;
			i++;
			continue;
		}
		const char *value = name + strlen(name) + 1;
		if (!in_row) {
			printf("%s{", first_row ? "" : ",");
			first_row = false;
			in_row = true;
			first_field = true;
		}
		printf("%s\"%s\":%s", first_field ? "" : ",", name, value);
		first_field = false;
		i = (size_t)(value - t->data) + strlen(value) + 1;
	}
	printf("]\n");
}

#define MAX_COLUMNS 16

static void
print_table(const struct table *t)
{
	const char *names[MAX_COLUMNS];
	int width[MAX_COLUMNS] = { 0 }, ncols = 0;
	char c[256];

	if (t->len == 0) {
		printf("(none)\n");
		return;
	}
	/* The first row names the columns; widths over every row. */
	for (int pass = 0; pass < 2; pass++) {
		size_t i = 0;
		int col = 0;
		bool header_done = ncols > 0;

		if (pass == 1) {
			for (int k = 0; k < ncols; k++)
				printf("%s%-*s", k > 0 ? "  " : "", k < ncols - 1 ? width[k] : 0,
				       names[k]);
			printf("\n");
		}
		while (i < t->len) {
			const char *name = t->data + i;
			if (*name == '\0') {
				if (pass == 1)
					printf("\n");
				header_done = true;
				col = 0;
				i++;
				continue;
			}
			const char *value = name + strlen(name) + 1;
			if (!header_done && ncols < MAX_COLUMNS) {
				names[ncols] = name;
				width[ncols] = (int)strlen(name);
				ncols++;
			}
			cell(value, c, sizeof(c));
			if (col < ncols) {
				if (pass == 0 && (int)strlen(c) > width[col])
					width[col] = (int)strlen(c);
				if (pass == 1)	/* the last column unpadded: no trailing blanks */
					printf("%s%-*s", col > 0 ? "  " : "",
					       col < ncols - 1 ? width[col] : 0, c);
			}
			col++;
			i = (size_t)(value - t->data) + strlen(value) + 1;
		}
	}
}

/* --- main ----------------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char socket_path[256] = "";
	const char *conf = NULL;
	bool json = false;
	double timeout = 30;
	int ch;

	while ((ch = getopt_long(argc, argv, "+s:c:jt:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			snprintf(socket_path, sizeof(socket_path), "%s", optarg);
			break;
		case 'c':
			conf = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 't': {
			char *end;
			timeout = strtod(optarg, &end);
			if (*end != '\0' || end == optarg || !(timeout >= 0) || timeout > 86400) {
				fprintf(stderr, "pglease-ctl: --timeout takes seconds, 0 to 86400\n");
				return EXIT_USAGE;
			}
			break;
		}
		case 'V':
			printf("pglease-ctl %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	struct wire_msg cmd = { .h = { .type = PGL_MSG_ADMIN_COMMAND, .request_id = 2 } };
	if (parse_command(argc - optind, argv + optind, &cmd.u.admin) != 0) {
		fprintf(stderr, "pglease-ctl: see pglease-ctl --help, or pglease-ctl(8)\n");
		return EXIT_USAGE;
	}
	cmd.u.admin.timeout_ms = (uint32_t)(timeout * 1000);
	if (socket_path[0] == '\0') {
		if (conf != NULL) {
			if (tool_read_config("pglease-ctl", conf, NULL, 0, socket_path,
					     sizeof(socket_path)) != 0)
				return EXIT_USAGE;
		} else {
			const char *env = getenv("PGLEASE_SOCKET");
			snprintf(socket_path, sizeof(socket_path), "%s",
				 env != NULL && env[0] != '\0' ? env : PGL_DEFAULT_SOCKET);
		}
	}

	int fd = connect_broker(socket_path);
	if (fd < 0) {
		char why[600];
		/* a draining broker has removed its socket already */
		snprintf(why, sizeof(why), "cannot reach the broker at %s: %s%s", socket_path,
			 strerror(errno), errno == ENOENT ? " (not running, or draining)" : "");
		if (json) {
			printf("{\"ok\":false,\"message\":");
			tool_json_string(why);
			printf("}\n");
		}
		fprintf(stderr, "pglease-ctl: %s\n", why);
		return EXIT_USAGE;
	}
	uint8_t buf[WIRE_MESSAGE_MAX];
	struct wire_msg m = { .h = { .type = PGL_MSG_SESSION_HELLO, .request_id = 1 } };
	const char *why = NULL;
	int64_t deadline = clock_mono_ms() + GRACE * 1000;

	m.u.hello.version_min = 3;
	m.u.hello.version_max = WIRE_VERSION_MAX;
	m.u.hello.pid = (uint32_t)getpid();
	if (send_msg(fd, &m) != 0 || recv_msg(fd, &m, buf, sizeof(buf), deadline, &why) != 0) {
		fprintf(stderr, "pglease-ctl: %s: %s\n", socket_path,
			why != NULL ? why : strerror(errno));
		close(fd);
		return EXIT_USAGE;
	}
	if (m.h.type == PGL_MSG_SESSION_ERROR) {
		fprintf(stderr, "pglease-ctl: the broker refused: %s\n", m.u.error.message);
		close(fd);
		return m.u.error.code == PGL_EPROTO ? EXIT_USAGE : EXIT_REFUSED;
	}
	if (m.h.type != PGL_MSG_SESSION_WELCOME || m.u.welcome.version < 3) {
		fprintf(stderr, "pglease-ctl: %s does not answer as a broker with admin commands\n",
			socket_path);
		close(fd);
		return EXIT_USAGE;
	}

	if (send_msg(fd, &cmd) != 0) {
		fprintf(stderr, "pglease-ctl: cannot send the command: %s\n", strerror(errno));
		close(fd);
		return EXIT_USAGE;
	}
	deadline = clock_mono_ms() + (int64_t)(timeout * 1000) + GRACE * 1000;
	struct table t = { 0 };
	int status = EXIT_REFUSED;
	for (;;) {
		if (recv_msg(fd, &m, buf, sizeof(buf), deadline, &why) != 0) {
			fprintf(stderr, "pglease-ctl: %s\n", why);
			status = EXIT_USAGE;
			break;
		}
		if (m.h.request_id != cmd.h.request_id)
			continue;
		if (m.h.type == PGL_MSG_ADMIN_ROWS) {
			if (table_add(&t, m.u.rows.block, m.u.rows.len) != 0) {
				fprintf(stderr, "pglease-ctl: out of memory\n");
				break;
			}
			continue;
		}
		if (m.h.type == PGL_MSG_SESSION_ERROR) {
			/* with --json, on stdout only: one document, whatever happened */
			if (json) {
				printf("{\"ok\":false,\"code\":%u,\"message\":", m.u.error.code);
				tool_json_string(m.u.error.message);
				printf("}\n");
			} else {
				fprintf(stderr, "pglease-ctl: %s\n", m.u.error.message);
			}
			break;
		}
		if (m.h.type != PGL_MSG_ADMIN_DONE) {
			fprintf(stderr, "pglease-ctl: unexpected %s from the broker\n",
				wire_type_name(m.h.type));
			break;
		}
		status = 0;
		if (cmd.u.admin.cmd <= WIRE_ADMIN_SHOW_LEASES) {
			if (json)
				print_json(&t);
			else
				print_table(&t);
		} else if (json) {
			printf("{\"ok\":true,\"message\":");
			tool_json_string(m.u.done.message);
			printf("}\n");
		} else {
			printf("%s\n", m.u.done.message);
		}
		break;
	}
	free(t.data);
	close(fd);
	return status;
}
