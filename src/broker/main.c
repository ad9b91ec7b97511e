/*
 * main.c - pgleased: command line, configuration check, start and stop.
 */
#include "autoconf.h"

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/conninfo.h"
#include "broker/precheck.h"
#include "common/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: pgleased [-c FILE] [--check-config]\n"
		"\n"
		"PostgreSQL connection broker for preforking servers: keeps a pool of\n"
		"backend connections and leases their sockets to worker processes.\n"
		"\n"
		"  -c, --config FILE   configuration file (default: $PGLEASE_CONF, then\n"
		"                      %s)\n"
		"  -t, --check-config  validate the configuration and what it needs from\n"
		"                      the system (directories, limits), print every\n"
		"                      problem, and exit 0 when it is valid\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          print this help and exit\n",
		CONFIG_DEFAULT_PATH);
}

struct report_count {
	int warnings;
};

static void
report_stderr(void *arg, bool is_error, const char *msg)
{
	struct report_count *rc = arg;

	if (!is_error)
		rc->warnings++;
	fprintf(stderr, "%s\n", msg);
}

/* --check-config: every problem on stderr, a summary of a valid file on stdout. */
static int
check_config(const char *path)
{
	struct report_count rc = { 0 };
	int nerrors = 0;
	struct config *cfg = config_load(path, report_stderr, &rc, &nerrors);

	if (cfg == NULL) {
		fprintf(stderr, "%s: %d error%s, %d warning%s: configuration is not valid\n",
			path, nerrors, nerrors == 1 ? "" : "s", rc.warnings,
			rc.warnings == 1 ? "" : "s");
		return 1;
	}
	nerrors = precheck_runtime(cfg, report_stderr, &rc);
	if (nerrors > 0) {
		fprintf(stderr, "%s: %d error%s, %d warning%s: the broker cannot start with it "
			"here\n", path, nerrors, nerrors == 1 ? "" : "s", rc.warnings,
			rc.warnings == 1 ? "" : "s");
		config_free(cfg);
		return 1;
	}
	printf("%s: configuration is valid (%zu pool%s, %d warning%s)\n", path,
	       cfg->npools, cfg->npools == 1 ? "" : "s", rc.warnings,
	       rc.warnings == 1 ? "" : "s");
	printf("  socket %s mode %04o, shared memory %s mode %04o%s%s, %d slots\n",
	       cfg->broker.socket, (unsigned)cfg->broker.socket_mode, cfg->broker.shm_name,
	       (unsigned)cfg->broker.shm_mode, cfg->broker.shm_group != NULL ? " group " : "",
	       cfg->broker.shm_group != NULL ? cfg->broker.shm_group : "",
	       cfg->broker.max_total_slots);
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct pool_config *p = &cfg->pools[i];
		char ci[1024];

		conninfo_masked(p, ci, sizeof(ci));
		printf("  pool %s: %d..%d backends, %s\n", p->name, p->min_size, p->max_size, ci);
	}
	config_free(cfg);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool check = false;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'V':
			printf("pgleased %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pgleased: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (path == NULL)
		path = getenv("PGLEASE_CONF");
	if (path == NULL || path[0] == '\0')
		path = CONFIG_DEFAULT_PATH;

	if (check)
		return check_config(path);

	struct report_count rc = { 0 };
	int nerrors = 0;
	struct config *cfg = config_load(path, report_stderr, &rc, &nerrors);
	if (cfg == NULL) {
		fprintf(stderr, "pgleased: %s: %d error%s: not starting\n", path, nerrors,
			nerrors == 1 ? "" : "s");
		return 1;
	}
	int status = broker_run(cfg);	/* frees cfg */
	return status;
}
