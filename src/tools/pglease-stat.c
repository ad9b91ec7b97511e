/*
 * pglease-stat.c - print a broker's pools and slots from its shared memory,
 * without talking to the broker: a table, JSON, or Prometheus text.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/defaults.h"
#include "common/ident.h"
#include "common/shm.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libconfig.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum format { FORMAT_TABLE, FORMAT_JSON, FORMAT_PROMETHEUS };

/*
 * From the broker's configuration file, only what a reader needs: the
 * segment's name and the socket's path.  Read with libconfig alone, so no
 * secret (password_file) is ever opened.  Returns 0, or -1 after saying why.
 */
static int
read_config(const char *path, char *name, size_t namelen, char *socket, size_t socklen)
{
	config_t cf;
	const char *v;

	config_init(&cf);
	if (config_read_file(&cf, path) != CONFIG_TRUE) {
		if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
			fprintf(stderr, "pglease-stat: cannot read %s: %s\n", path, strerror(errno));
		else
			fprintf(stderr, "pglease-stat: %s:%d: %s\n",
				config_error_file(&cf) != NULL ? config_error_file(&cf) : path,
				config_error_line(&cf), config_error_text(&cf));
		config_destroy(&cf);
		return -1;
	}
	if (config_lookup_string(&cf, "broker.shm_name", &v) == CONFIG_TRUE)
		snprintf(name, namelen, "%s", v);
	snprintf(socket, socklen, "%s",
		 config_lookup_string(&cf, "broker.socket", &v) == CONFIG_TRUE ? v :
		 PGL_DEFAULT_SOCKET);
	config_destroy(&cf);
	return 0;
}

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: pglease-stat [-c FILE | -n SHM_NAME] [-u USER] [--json | --prometheus]\n"
		"                    [--watch SECONDS]\n"
		"\n"
		"Prints the pools and slots of a running pgleased from its shared memory.\n"
		"\n"
		"  -c, --config FILE      take the segment name from the broker's configuration\n"
		"  -n, --shm-name NAME    the segment name (default " PGL_DEFAULT_SHM_NAME ")\n"
		"  -u, --owner USER       trust a segment of this user (default: root, yourself,\n"
		"                         $PGLEASE_BROKER_UID, and with -c the socket's owner)\n"
		"  -j, --json             JSON instead of a table\n"
		"  -p, --prometheus       Prometheus text format\n"
		"  -w, --watch SECONDS    print again every SECONDS until interrupted\n"
		"  -V, --version          print the version and exit\n"
		"  -h, --help             print this help and exit\n"
		"\n"
		"Exit status: 0, 2 when the segment is missing or its broker is down, 1 otherwise.\n");
}

/* A string as a JSON literal (pool names are plain, but be exact). */
static void
json_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* --- backends per server: what to sum across hosts against max_connections --- */

/* One server (host and port as libpq connected) and the backends on it. */
struct server_count {
	const char *host, *port;
	int backends;			/* slots not EMPTY with a backend on it */
	int standby;			/* of which the server said it was in hot standby */
};

static const char *const server_names[] = { "", "primary", "standby", "read-only" };

static const char *
server_name(int32_t server)
{
	return server >= 0 && server <= SHM_SERVER_READ_ONLY ? server_names[server] : "?";
}

/*
 * The servers the backends of pool (-1: every pool) are on, into out (at
 * most max, in the order first seen); returns how many.
 */
static int
count_servers(const struct shm_snapshot *s, int32_t pool, struct server_count *out, int max)
{
	int n = 0;

	for (uint32_t i = 0; i < s->hdr.nslots; i++) {
		const struct shm_slot *sl = &s->slots[i];
		int k;
		if (sl->pool < 0 || (uint32_t)sl->pool >= s->hdr.npools || sl->host[0] == '\0' ||
		    (pool >= 0 && sl->pool != pool))
			continue;
		for (k = 0; k < n; k++)
			if (strcmp(out[k].host, sl->host) == 0 && strcmp(out[k].port, sl->port) == 0)
				break;
		if (k == n) {
			if (n == max)
				continue;
			out[n++] = (struct server_count){ .host = sl->host, .port = sl->port };
		}
		out[k].backends++;
		out[k].standby += sl->server == SHM_SERVER_STANDBY;
	}
	return n;
}

#define MAX_SERVERS 64

static void
print_table(const char *name, const struct shm_snapshot *s, int64_t now)
{
	struct server_count sv[MAX_SERVERS];
	int nsv;
	const struct shm_header *h = &s->hdr;

	printf("pgleased pid %d, shared memory %s, socket %s, up %" PRId64 " s, "
	       "heartbeat %.1f s ago\n\n", h->broker_pid, name, h->socket,
	       (now - h->start_time_ms) / 1000, (double)(now - h->heartbeat_ms) / 1000);
	printf("%-20s %5s %5s %5s %5s %6s %7s %10s %8s %8s %9s %7s %9s %9s %8s %11s %11s\n",
	       "POOL", "MIN", "MAX", "SIZE", "IDLE", "LEASED", "WAITING", "LEASES", "TIMEOUTS",
	       "CONNECTS", "CONN_FAIL", "HC_FAIL", "RESETS", "RESET_FAIL", "ORPHANED",
	       "WAIT_AVG_US", "WAIT_MAX_US");
	for (uint32_t i = 0; i < h->npools; i++) {
		const struct shm_pool *p = &s->pools[i];
		if (p->name[0] == '\0')
			continue;
		printf("%-20.63s %5d %5d %5d %5d %6d %7d %10" PRIu64 " %8" PRIu64 " %8" PRIu64
		       " %9" PRIu64 " %7" PRIu64 " %9" PRIu64 " %9" PRIu64 " %8" PRIu64
		       " %11" PRIu64 " %11" PRIu64 "\n",
		       p->name, p->min_size, p->max_size, p->size, p->idle, p->leased, p->waiting,
		       p->leases, p->acquire_timeouts, p->connects, p->connect_failures,
		       p->health_check_failures, p->resets, p->reset_failures, p->orphaned_leases,
		       p->leases > 0 ? p->acquire_wait_us_total / p->leases : 0,
		       p->acquire_wait_us_max);
		if (p->backoff_until_ms > now)
			printf("%-20s backing off: next connect in %.1f s\n", "",
			       (double)(p->backoff_until_ms - now) / 1000);
		if (p->restricted)
			printf("%-20s restricted: only the users its allowed_uids/allowed_gids "
			       "name may lease\n", "");
		nsv = count_servers(s, (int32_t)i, sv, MAX_SERVERS);
		for (int k = 0; k < nsv; k++)
			printf("%-20s on host=%s port=%s: %d backend%s%s\n", "", sv[k].host,
			       sv[k].port, sv[k].backends, sv[k].backends == 1 ? "" : "s",
			       sv[k].standby > 0 ? " (standby)" : "");
	}
	nsv = count_servers(s, -1, sv, MAX_SERVERS);
	if (nsv > 0)
		printf("\n%-40s %-6s %8s\n", "SERVER (host, every pool)", "PORT", "BACKENDS");
	for (int k = 0; k < nsv; k++)
		printf("%-40.127s %-6s %8d\n", sv[k].host, sv[k].port, sv[k].backends);
	printf("\n%5s %-20s %-11s %11s %10s %12s %10s %-9s %s\n", "SLOT", "POOL", "STATE",
	       "BACKEND_PID", "HOLDER_PID", "LEASE_AGE_MS", "LEASES", "SERVER", "HOST:PORT");
	for (uint32_t i = 0; i < h->nslots; i++) {
		const struct shm_slot *sl = &s->slots[i];
		if (sl->pool < 0 || (uint32_t)sl->pool >= h->npools)
			continue;
		printf("%5u %-20.63s %-11s %11d %10d %12" PRId64 " %10" PRIu64 " %-9s %s%s%s\n", i,
		       s->pools[sl->pool].name, shm_slot_state_name(sl->state), sl->backend_pid,
		       sl->holder_pid, sl->leased_at_ms > 0 ? now - sl->leased_at_ms : 0,
		       sl->lease_count, sl->host[0] != '\0' ? server_name(sl->server) : "-",
		       sl->host, sl->host[0] != '\0' ? ":" : "", sl->port);
	}
}

/* "servers":[{"host":..,"port":..,"backends":N,"standby":N},...] of pool (-1: all) */
static void
json_servers(const struct shm_snapshot *s, int32_t pool)
{
	struct server_count sv[MAX_SERVERS];
	int n = count_servers(s, pool, sv, MAX_SERVERS);

	printf(",\"servers\":[");
	for (int k = 0; k < n; k++) {
		printf("%s{\"host\":", k > 0 ? "," : "");
		json_string(sv[k].host);
		printf(",\"port\":");
		json_string(sv[k].port);
		printf(",\"backends\":%d,\"standby\":%d}", sv[k].backends, sv[k].standby);
	}
	printf("]");
}

static void
print_json(const char *name, const struct shm_snapshot *s, int64_t now)
{
	const struct shm_header *h = &s->hdr;

	printf("{\"shm_name\":");
	json_string(name);
	printf(",\"socket\":");
	json_string(h->socket);
	printf(",\"broker_pid\":%d,\"incarnation\":%u,\"uptime_ms\":%" PRId64
	       ",\"heartbeat_age_ms\":%" PRId64 ",\"pools\":[",
	       h->broker_pid, h->incarnation, now - h->start_time_ms, now - h->heartbeat_ms);
	bool first_pool = true;
	for (uint32_t i = 0; i < h->npools; i++) {
		const struct shm_pool *p = &s->pools[i];
		if (p->name[0] == '\0')
			continue;
		printf("%s{\"name\":", first_pool ? "" : ",");
		first_pool = false;
		json_string(p->name);
		printf(",\"database\":");
		json_string(p->database);
		printf(",\"user\":");
		json_string(p->user);
		printf(",\"restricted\":%s", p->restricted ? "true" : "false");
		json_servers(s, (int32_t)i);
		printf(",\"min_size\":%d,\"max_size\":%d,\"size\":%d,\"idle\":%d,\"leased\":%d,"
		       "\"waiting\":%d,\"leases\":%" PRIu64 ",\"acquire_timeouts\":%" PRIu64
		       ",\"acquire_wait_us_total\":%" PRIu64 ",\"acquire_wait_us_max\":%" PRIu64
		       ",\"connects\":%" PRIu64 ",\"connect_failures\":%" PRIu64
		       ",\"health_check_failures\":%" PRIu64 ",\"resets\":%" PRIu64
		       ",\"reset_failures\":%" PRIu64 ",\"orphaned_leases\":%" PRIu64
		       ",\"lease_timeouts\":%" PRIu64 ",\"backoff_until_ms\":%" PRId64 "}",
		       p->min_size, p->max_size, p->size, p->idle, p->leased, p->waiting,
		       p->leases, p->acquire_timeouts, p->acquire_wait_us_total,
		       p->acquire_wait_us_max, p->connects, p->connect_failures,
		       p->health_check_failures, p->resets, p->reset_failures,
		       p->orphaned_leases, p->lease_timeouts, p->backoff_until_ms);
	}
	printf("],\"slots\":[");
	bool first = true;
	for (uint32_t i = 0; i < h->nslots; i++) {
		const struct shm_slot *sl = &s->slots[i];
		if (sl->pool < 0 || (uint32_t)sl->pool >= h->npools)
			continue;
		printf("%s{\"slot\":%u,\"pool\":", first ? "" : ",", i);
		json_string(s->pools[sl->pool].name);
		printf(",\"state\":\"%s\",\"backend_pid\":%d,\"holder_pid\":%d,"
		       "\"lease_age_ms\":%" PRId64 ",\"lease_count\":%" PRIu64 ",\"host\":",
		       shm_slot_state_name(sl->state), sl->backend_pid, sl->holder_pid,
		       sl->leased_at_ms > 0 ? now - sl->leased_at_ms : 0, sl->lease_count);
		json_string(sl->host);
		printf(",\"port\":");
		json_string(sl->port);
		printf(",\"server\":\"%s\"}", server_name(sl->server));
		first = false;
	}
	printf("]");
	json_servers(s, -1);
	printf("}\n");
}

static void
print_prometheus(const struct shm_snapshot *s)
{
	static const struct {
		const char *name, *type, *help;
		size_t offset;
		bool is_int;
	} metrics[] = {
#define M(n, t, h, f, i) { "pglease_pool_" n, t, h, offsetof(struct shm_pool, f), i }
		M("size", "gauge", "Backends open, opening or closing.", size, true),
		M("idle", "gauge", "Idle backends.", idle, true),
		M("leased", "gauge", "Leased backends.", leased, true),
		M("waiting", "gauge", "Acquires queued.", waiting, true),
		M("max_size", "gauge", "The pool's max_size.", max_size, true),
		M("leases_total", "counter", "Leases granted.", leases, false),
		M("acquire_timeouts_total", "counter", "Acquires that timed out.", acquire_timeouts, false),
		M("acquire_wait_microseconds_total", "counter", "Time acquires waited.", acquire_wait_us_total, false),
		M("connects_total", "counter", "Backends connected.", connects, false),
		M("connect_failures_total", "counter", "Failed connects.", connect_failures, false),
		M("health_check_failures_total", "counter", "Failed health checks.", health_check_failures, false),
		M("resets_total", "counter", "Released backends reset.", resets, false),
		M("reset_failures_total", "counter", "Resets that failed.", reset_failures, false),
		M("orphaned_leases_total", "counter", "Leases whose holder vanished.", orphaned_leases, false),
		M("lease_timeouts_total", "counter", "Leases held past lease_timeout.", lease_timeouts, false),
#undef M
	};

	for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
		printf("# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help,
		       metrics[m].name, metrics[m].type);
		for (uint32_t i = 0; i < s->hdr.npools; i++) {
			if (s->pools[i].name[0] == '\0')
				continue;
			const char *base = (const char *)&s->pools[i];
			long long v;
			if (metrics[m].is_int) {
				int32_t x;
				memcpy(&x, base + metrics[m].offset, sizeof(x));
				v = x;
			} else {
				uint64_t x;
				memcpy(&x, base + metrics[m].offset, sizeof(x));
				v = (long long)x;
			}
			printf("%s{pool=\"%.63s\"} %lld\n", metrics[m].name, s->pools[i].name, v);
		}
	}

	struct server_count sv[MAX_SERVERS];
	printf("# HELP pglease_server_backends Backends of every pool on a server.\n"
	       "# TYPE pglease_server_backends gauge\n");
	for (uint32_t i = 0; i < s->hdr.npools; i++) {
		int n = count_servers(s, (int32_t)i, sv, MAX_SERVERS);
		for (int k = 0; k < n; k++)
			printf("pglease_server_backends{pool=\"%.63s\",host=\"%s\",port=\"%s\"} %d\n",
			       s->pools[i].name, sv[k].host, sv[k].port, sv[k].backends);
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "shm-name", required_argument, NULL, 'n' },
		{ "owner", required_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "watch", required_argument, NULL, 'w' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum format format = FORMAT_TABLE;
	const char *conf = NULL;
	char name[256] = PGL_DEFAULT_SHM_NAME, socket[256] = "";
	uid_t owner = ident_broker_uid(), found;
	double watch = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:n:u:jpw:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'n':
			snprintf(name, sizeof(name), "%s", optarg);
			break;
		case 'u':
			if (ident_parse_uid(optarg, &owner) != 0) {
				fprintf(stderr, "pglease-stat: --owner: no user \"%s\"\n", optarg);
				return 1;
			}
			break;
		case 'j':
			format = FORMAT_JSON;
			break;
		case 'p':
			format = FORMAT_PROMETHEUS;
			break;
		case 'w': {
			char *end;
			watch = strtod(optarg, &end);
			if (*end != '\0' || !(watch > 0)) {
				fprintf(stderr, "pglease-stat: --watch takes a number of seconds > 0\n");
				return 1;
			}
			break;
		}
		case 'V':
			printf("pglease-stat %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	if (conf != NULL) {
		struct stat st;
		if (read_config(conf, name, sizeof(name), socket, sizeof(socket)) != 0)
			return 1;
		/* The broker made its socket: a segment of the same user is its. */
		if (owner == (uid_t)-1 && stat(socket, &st) == 0)
			owner = st.st_uid;
	}

	for (;;) {
		struct shm_snapshot snap;

		if (shm_snapshot_owned(name, owner, &found, &snap) != 0) {
			if (errno == EPERM)
				fprintf(stderr, "pglease-stat: %s belongs to uid %u, not to root, you or "
					"the broker's user: not trusted (--owner names the broker's "
					"user)\n", name, (unsigned)found);
			else if (errno == ENOENT)
				fprintf(stderr, "pglease-stat: no shared memory segment %s: is pgleased "
					"running (with this shm_name)?\n", name);
			else if (errno == EPROTO)
				fprintf(stderr, "pglease-stat: %s is not a pglease segment of layout "
					"version %d\n", name, SHM_LAYOUT_VERSION);
			else
				fprintf(stderr, "pglease-stat: cannot read %s: %s\n", name, strerror(errno));
			return errno == ENOENT ? 2 : 1;
		}
		if (!snap.broker_alive) {
			fprintf(stderr, "pglease-stat: the broker of %s (pid %d) is down: no heartbeat "
				"for %.1f s\n", name, snap.hdr.broker_pid,
				(double)(clock_real_ms() - snap.hdr.heartbeat_ms) / 1000);
			shm_snapshot_free(&snap);
			return 2;
		}

		int64_t now = clock_real_ms();
		switch (format) {
		case FORMAT_TABLE:
			print_table(name, &snap, now);
			break;
		case FORMAT_JSON:
			print_json(name, &snap, now);
			break;
		case FORMAT_PROMETHEUS:
			print_prometheus(&snap);
			break;
		}
		shm_snapshot_free(&snap);
		if (watch <= 0)
			return 0;
		fflush(stdout);
		usleep((useconds_t)(watch * 1e6));
		if (format == FORMAT_TABLE)
			printf("\n");
	}
}
