/*
 * pglease-stat.c - print a broker's pools and slots from its shared memory,
 * without talking to the broker: a table, JSON, or Prometheus text (to
 * stdout, to a textfile for node_exporter, or over HTTP).  The command line
 * and the loop; the outputs are stat_text.c's, stat_prom.c's, stat_http.c's.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "common/defaults.h"
#include "common/ident.h"
#include "common/shm.h"
#include "tools/stat_http.h"
#include "tools/stat_prom.h"
#include "tools/stat_text.h"
#include "tools/toolutil.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum format { FORMAT_TABLE, FORMAT_JSON, FORMAT_PROMETHEUS };

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: pglease-stat [-c FILE | -n SHM_NAME] [-u USER] [--json | --prometheus]\n"
		"                    [--watch SECONDS] [--textfile DIR]\n"
		"       pglease-stat [-c FILE | -n SHM_NAME] [-u USER] --listen ADDRESS:PORT\n"
		"\n"
		"Prints the pools and slots of a running pgleased from its shared memory.\n"
		"\n"
		"  -c, --config FILE      take the segment name from the broker's configuration\n"
		"  -n, --shm-name NAME    the segment name (default " PGL_DEFAULT_SHM_NAME ")\n"
		"  -u, --owner USER       trust a segment of this user (default: root, yourself,\n"
		"                         $PGLEASE_BROKER_UID, and with -c the socket's owner)\n"
		"  -j, --json             JSON instead of a table\n"
		"  -p, --prometheus       Prometheus text format (one exposition per scrape)\n"
		"  -w, --watch SECONDS    print again every SECONDS until interrupted; with\n"
		"                         --prometheus, expositions separated by a blank line\n"
		"  -t, --textfile DIR     write the Prometheus text to DIR/" STAT_PROM_TEXTFILE "\n"
		"                         atomically (node_exporter's textfile collector)\n"
		"  -l, --listen ADDR:PORT serve GET /metrics over HTTP until SIGTERM%s\n"
		"  -V, --version          print the version and exit\n"
		"  -h, --help             print this help and exit\n"
		"\n"
		"Exit status: 0, 2 when the segment is missing or its broker is down (with\n"
		"--prometheus: after printing pglease_up 0), 1 otherwise.\n",
#ifdef HAVE_MICROHTTPD
		""
#else
		"\n                         (not built in: no libmicrohttpd)"
#endif
		);
}

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

/* One reading in the chosen format; the exit status it calls for. */
static int
show(enum format format, const char *name, uid_t owner, const char *textfile, bool again)
{
	struct shm_snapshot snap;
	char why[512];
	int st = stat_read(name, owner, &snap, why, sizeof(why));
	int64_t now = clock_real_ms();

	if (st != STAT_UP)
		fprintf(stderr, "pglease-stat: %s\n", why);
	if (st == STAT_ERROR || (st == STAT_DOWN && format != FORMAT_PROMETHEUS)) {
		shm_snapshot_free(&snap);
		return st;
	}
	switch (format) {
	case FORMAT_TABLE:
		if (again)
			printf("\n");
		stat_print_table(name, &snap, now);
		break;
	case FORMAT_JSON:
		stat_print_json(name, &snap, now);
		break;
	case FORMAT_PROMETHEUS:
		if (textfile != NULL) {
			if (stat_prom_textfile(textfile, &snap, now, why, sizeof(why)) != 0) {
				fprintf(stderr, "pglease-stat: %s\n", why);
				st = STAT_ERROR;
			}
		} else {
			/* Each exposition complete; a blank line between two. */
			if (again)
				printf("\n");
			stat_prom_write(stdout, &snap, now);
		}
		break;
	}
	shm_snapshot_free(&snap);
	fflush(stdout);
	return st;
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
		{ "textfile", required_argument, NULL, 't' },
		{ "listen", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum format format = FORMAT_TABLE;
	const char *conf = NULL, *textfile = NULL, *listen = NULL;
	char name[256] = PGL_DEFAULT_SHM_NAME, socket[256] = "";
	uid_t owner = ident_broker_uid();
	double watch = 0;
	bool json = false;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:n:u:jpw:t:l:Vh", longopts, NULL)) != -1) {
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
			json = true;
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
		case 't':
			textfile = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
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
	if ((textfile != NULL || listen != NULL) && json) {
		fprintf(stderr, "pglease-stat: --textfile and --listen give Prometheus text, not "
			"JSON\n");
		return 1;
	}
	if (listen != NULL && (textfile != NULL || watch > 0)) {
		fprintf(stderr, "pglease-stat: --listen reads the segment at each request: it "
			"takes neither --textfile nor --watch\n");
		return 1;
	}
	if (textfile != NULL || listen != NULL)
		format = FORMAT_PROMETHEUS;
	if (conf != NULL) {
		struct stat st;
		if (tool_read_config("pglease-stat", conf, name, sizeof(name), socket, sizeof(socket)) != 0)
			return 1;
		/* The broker made its socket: a segment of the same user is its. */
		if (owner == (uid_t)-1 && stat(socket, &st) == 0)
			owner = st.st_uid;
	}
	if (listen != NULL)
		return stat_http_serve(listen, name, owner);

	if (watch > 0) {
		/* Stop between two readings, never halfway through writing one. */
		struct sigaction sa = { .sa_handler = on_stop };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	for (bool again = false;; again = true) {
		int st = show(format, name, owner, textfile, again);
		/* Watching Prometheus text goes on through a broker's restart. */
		if (watch <= 0 || st == STAT_ERROR ||
		    (st == STAT_DOWN && format != FORMAT_PROMETHEUS))
			return st;
		struct timespec left = { .tv_sec = (time_t)watch,
					 .tv_nsec = (long)((watch - (double)(time_t)watch) * 1e9) };
		if (!stopping)
			nanosleep(&left, NULL);	/* a signal ends it early */
		if (stopping)
			return 0;
	}
}
