/*
 * stat_prom.c - pglease-stat's Prometheus text exposition (format 0.0.4):
 * one complete exposition per scrape, base units (seconds), counters named
 * _total, one HELP and TYPE per family; and --textfile's atomic file.
 */
#include "autoconf.h"

#include "common/shm.h"
#include "tools/stat_prom.h"
#include "tools/stat_servers.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- the exposition -------------------------------------------------------- */

static void
family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format says (pool names are plain: be exact). */
static void
label_value(FILE *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(out, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

/* A pool's series up to its closing brace: metric{pool="NAME" (more labels may follow). */
static void
series_start(FILE *out, const char *metric, const struct shm_pool *p)
{
	fprintf(out, "%s{pool=\"", metric);
	label_value(out, p->name);
	fputs("\"", out);
}

static double
seconds(int64_t ms)
{
	return (double)ms / 1000.0;
}

/* The pool records in use: those with a name. */
static bool
record_used(const struct shm_snapshot *s, uint32_t i)
{
	return s->pools[i].name[0] != '\0';
}

/* A per-pool family read from one field of struct shm_pool. */
struct pool_metric {
	const char *name, *type, *help;
	size_t offset;
	enum { F_I32, F_U64, F_US } kind;	/* F_US: microseconds, shown in seconds */
};

#define PM(n, t, h, f, k) { "pglease_pool_" n, t, h, offsetof(struct shm_pool, f), k }
static const struct pool_metric pool_metrics[] = {
	PM("min_size", "gauge", "The pool's min_size.", min_size, F_I32),
	PM("max_size", "gauge", "The pool's max_size.", max_size, F_I32),
	PM("size", "gauge", "Backends open, opening or closing.", size, F_I32),
	PM("idle", "gauge", "Idle backends.", idle, F_I32),
	PM("leased", "gauge", "Leased backends.", leased, F_I32),
	PM("waiting", "gauge", "Acquires queued.", waiting, F_I32),
	PM("leases_total", "counter", "Leases granted.", leases, F_U64),
	PM("acquire_timeouts_total", "counter", "Acquires that timed out.", acquire_timeouts,
	   F_U64),
	PM("acquire_wait_seconds_total", "counter", "Time granted acquires waited, in seconds.",
	   acquire_wait_us_total, F_US),
	PM("acquire_wait_max_seconds", "gauge", "The longest wait of a granted acquire since "
	   "the broker started, in seconds.", acquire_wait_us_max, F_US),
	PM("connects_total", "counter", "Backends connected.", connects, F_U64),
	PM("connect_failures_total", "counter", "Failed connects.", connect_failures, F_U64),
	PM("health_check_failures_total", "counter", "Failed health checks.",
	   health_check_failures, F_U64),
	PM("resets_total", "counter", "Released backends reset.", resets, F_U64),
	PM("reset_failures_total", "counter", "Resets that failed.", reset_failures, F_U64),
	PM("orphaned_leases_total", "counter", "Leases whose holder vanished.", orphaned_leases,
	   F_U64),
	PM("lease_timeouts_total", "counter", "Leases held past lease_timeout.", lease_timeouts,
	   F_U64),
};
#undef PM

static void
print_pool_metric(FILE *out, const struct shm_snapshot *s, const struct pool_metric *m)
{
	family(out, m->name, m->type, m->help);
	for (uint32_t i = 0; i < s->hdr.npools; i++) {
		if (!record_used(s, i))
			continue;
		const char *base = (const char *)&s->pools[i];
		series_start(out, m->name, &s->pools[i]);
		if (m->kind == F_I32) {
			int32_t v;
			memcpy(&v, base + m->offset, sizeof(v));
			fprintf(out, "} %" PRId32 "\n", v);
		} else {
			uint64_t v;
			memcpy(&v, base + m->offset, sizeof(v));
			if (m->kind == F_US)
				fprintf(out, "} %.6f\n", (double)v / 1e6);
			else
				fprintf(out, "} %" PRIu64 "\n", v);
		}
	}
}

/* Slots per pool and state, counted from the slot records. */
static void
print_slots(FILE *out, const struct shm_snapshot *s)
{
	uint32_t npools = s->hdr.npools;
	uint64_t *count = calloc(npools > 0 ? npools : 1, SHM_SLOT_NSTATES * sizeof(*count));

	family(out, "pglease_pool_slots", "gauge",
	       "The pool's slots by state (empty: room for a backend).");
	if (count == NULL)
		return;
	for (uint32_t i = 0; i < s->hdr.nslots; i++) {
		const struct shm_slot *sl = &s->slots[i];
		if (sl->pool >= 0 && (uint32_t)sl->pool < npools && sl->state >= 0 &&
		    sl->state < SHM_SLOT_NSTATES)
			count[(size_t)sl->pool * SHM_SLOT_NSTATES + (size_t)sl->state]++;
	}
	for (uint32_t i = 0; i < npools; i++) {
		if (!record_used(s, i))
			continue;
		for (int st = 0; st < SHM_SLOT_NSTATES; st++) {
			series_start(out, "pglease_pool_slots", &s->pools[i]);
			fprintf(out, ",state=\"%s\"} %" PRIu64 "\n", shm_slot_state_name(st),
				count[(size_t)i * SHM_SLOT_NSTATES + (size_t)st]);
		}
	}
	free(count);
}

static void
print_backoff(FILE *out, const struct shm_snapshot *s, int64_t now)
{
	family(out, "pglease_pool_backoff", "gauge",
	       "1 while the pool backs off after failed connects, else 0.");
	for (uint32_t i = 0; i < s->hdr.npools; i++) {
		if (!record_used(s, i))
			continue;
		series_start(out, "pglease_pool_backoff", &s->pools[i]);
		fprintf(out, "} %d\n", s->pools[i].backoff_until_ms > now ? 1 : 0);
	}
	family(out, "pglease_pool_paused", "gauge",
	       "1 while an administrator has paused the pool (acquires wait), else 0.");
	for (uint32_t i = 0; i < s->hdr.npools; i++) {
		if (!record_used(s, i))
			continue;
		series_start(out, "pglease_pool_paused", &s->pools[i]);
		fprintf(out, "} %d\n", s->pools[i].paused ? 1 : 0);
	}
	family(out, "pglease_pool_backoff_remaining_seconds", "gauge",
	       "Seconds until the pool's next connect attempt while it backs off, else 0.");
	for (uint32_t i = 0; i < s->hdr.npools; i++) {
		if (!record_used(s, i))
			continue;
		int64_t left = s->pools[i].backoff_until_ms - now;
		series_start(out, "pglease_pool_backoff_remaining_seconds", &s->pools[i]);
		fprintf(out, "} %.3f\n", left > 0 ? seconds(left) : 0.0);
	}
}

/* Backends per pool and server: summed across brokers against max_connections. */
static void
print_servers(FILE *out, const struct shm_snapshot *s)
{
	struct stat_server sv[STAT_MAX_SERVERS];

	family(out, "pglease_server_backends", "gauge",
	       "Backends of the pool on a server (host and port as libpq connected).");
	for (uint32_t i = 0; i < s->hdr.npools; i++) {
		if (!record_used(s, i))
			continue;
		int n = stat_servers(s, (int32_t)i, sv);
		for (int k = 0; k < n; k++) {
			series_start(out, "pglease_server_backends", &s->pools[i]);
			fputs(",host=\"", out);
			label_value(out, sv[k].host);
			fputs("\",port=\"", out);
			label_value(out, sv[k].port);
			fprintf(out, "\"} %d\n", sv[k].backends);
		}
	}
}

static void
print_broker(FILE *out, const struct shm_snapshot *s, int64_t now)
{
	const struct shm_header *h = &s->hdr;

	family(out, "pglease_start_time_seconds", "gauge",
	       "When the broker started, in seconds since the Unix epoch.");
	fprintf(out, "pglease_start_time_seconds %.3f\n", seconds(h->start_time_ms));
	family(out, "pglease_heartbeat_age_seconds", "gauge",
	       "Seconds since the broker's last heartbeat in shared memory (it beats every "
	       "second).");
	fprintf(out, "pglease_heartbeat_age_seconds %.3f\n",
		now > h->heartbeat_ms ? seconds(now - h->heartbeat_ms) : 0.0);
}

void
stat_prom_write(FILE *out, const struct shm_snapshot *s, int64_t now)
{
	bool up = s != NULL && s->broker_alive;

	family(out, "pglease_up", "gauge",
	       "1 when the broker runs and its heartbeat is fresh, else 0.");
	fprintf(out, "pglease_up %d\n", up ? 1 : 0);
	if (s == NULL || s->pools == NULL)
		return;
	print_broker(out, s, now);
	if (!up)
		return;

	const struct shm_header *h = &s->hdr;
	family(out, "pglease_clients", "gauge", "Clients connected and served.");
	fprintf(out, "pglease_clients %" PRId32 "\n", h->clients);
	family(out, "pglease_clients_accepted_total", "counter", "Clients accepted and served.");
	fprintf(out, "pglease_clients_accepted_total %" PRIu64 "\n", h->clients_accepted);
	family(out, "pglease_clients_refused_total", "counter",
	       "Clients refused at connect, by reason: denied (allowed_uids, allowed_gids) or "
	       "max_clients.");
	fprintf(out, "pglease_clients_refused_total{reason=\"denied\"} %" PRIu64 "\n",
		h->clients_denied);
	fprintf(out, "pglease_clients_refused_total{reason=\"max_clients\"} %" PRIu64 "\n",
		h->clients_over_limit);

	for (size_t m = 0; m < sizeof(pool_metrics) / sizeof(pool_metrics[0]); m++)
		print_pool_metric(out, s, &pool_metrics[m]);
	print_slots(out, s);
	print_backoff(out, s, now);
	print_servers(out, s);
}

/* --- --textfile -------------------------------------------------------------- */

int
stat_prom_textfile(const char *dir, const struct shm_snapshot *s, int64_t now, char *why,
		   size_t whylen)
{
	char path[4096], tmp[4096];
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/" STAT_PROM_TEXTFILE, dir) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/." STAT_PROM_TEXTFILE ".XXXXXX", dir) >=
	    sizeof(tmp)) {
		snprintf(why, whylen, "--textfile: the directory's name is too long");
		return -1;
	}
	/* Not named *.prom: the textfile collector never reads a half-written file. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		snprintf(why, whylen, "cannot create a file in %s: %s", dir, strerror(errno));
		return -1;
	}
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		snprintf(why, whylen, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	/* node_exporter runs as a user of its own: the file is readable by all. */
	int rc = fchmod(fd, 0644);
	stat_prom_write(f, s, now);
	if (fflush(f) != 0 || ferror(f) || rc != 0 || fsync(fd) != 0) {
		snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}
