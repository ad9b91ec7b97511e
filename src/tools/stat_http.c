/*
 * stat_http.c - pglease-stat --listen: /metrics over HTTP (libmicrohttpd),
 * each request a fresh snapshot of the segment.  Without libmicrohttpd at
 * build time, --listen says so.
 */
#include "autoconf.h"

#include "common/clock.h"
#include "tools/stat_http.h"
#include "tools/stat_prom.h"
#include "tools/stat_text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
stat_http_parse(const char *spec, struct sockaddr_storage *addr, socklen_t *len)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hlen;

	if (colon == NULL || colon[1] == '\0')
		return -1;
	hlen = (size_t)(colon - spec);
	if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']') {	/* [::1]:9187 */
		h = spec + 1;
		hlen -= 2;
	}
	if (hlen >= sizeof(host))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || errno != 0 || port > 65535)
		return -1;

	memset(addr, 0, sizeof(*addr));
	struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
	if (host[0] == '\0' || inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;	/* ":PORT": every IPv4 address */
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	return -1;
}

#ifdef HAVE_MICROHTTPD

#include <microhttpd.h>
#include <signal.h>

struct served {
	const char *name;
	uid_t owner;
};

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body,
								  MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	char *body = strdup(text);

	return body != NULL ? reply(c, status, "text/plain; charset=utf-8", body, strlen(body)) :
	       MHD_NO;
}

/* GET or HEAD /metrics: the exposition; anything else is refused. */
static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
       const char *version, const char *upload, size_t *upload_size, void **state)
{
	const struct served *sv = cls;

	(void)version;
	(void)upload;
	(void)state;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET or HEAD /metrics\n");
	if (*upload_size != 0)
		return reply_text(c, MHD_HTTP_BAD_REQUEST, "no body expected\n");
	if (strcmp(url, "/metrics") != 0)
		return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");

	struct shm_snapshot snap;
	char why[512], *body = NULL;
	size_t len = 0;
	int st = stat_read(sv->name, sv->owner, &snap, why, sizeof(why));
	if (st == STAT_ERROR) {
		shm_snapshot_free(&snap);
		fprintf(stderr, "pglease-stat: %s\n", why);
		strncat(why, "\n", sizeof(why) - strlen(why) - 1);
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, why);
	}
	FILE *out = open_memstream(&body, &len);
	if (out == NULL) {
		shm_snapshot_free(&snap);
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	}
	/* A down broker is a successful scrape that says pglease_up 0. */
	stat_prom_write(out, &snap, clock_real_ms());
	shm_snapshot_free(&snap);
	if (fclose(out) != 0) {
		free(body);
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	}
	return reply(c, MHD_HTTP_OK, STAT_PROM_CONTENT_TYPE, body, len);
}

int
stat_http_serve(const char *spec, const char *name, uid_t owner)
{
	struct sockaddr_storage addr;
	socklen_t len;
	struct served sv = { .name = name, .owner = owner };
	sigset_t stop;
	int sig;

	if (stat_http_parse(spec, &addr, &len) != 0) {
		fprintf(stderr, "pglease-stat: --listen %s: not ADDRESS:PORT (127.0.0.1:9187, "
			"[::1]:9187, :9187)\n", spec);
		return 1;
	}
	/* The server's thread inherits the mask: only this thread takes them. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_Daemon *d = MHD_start_daemon(
		flags, 0, NULL, NULL, handle, &sv,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
		MHD_OPTION_CONNECTION_LIMIT, 32u,
		MHD_OPTION_CONNECTION_TIMEOUT, 10u,
		MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "pglease-stat: cannot listen on %s: %s\n", spec, strerror(errno));
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	fprintf(stderr, "pglease-stat: serving %s on port %u at /metrics\n", name,
		info != NULL ? (unsigned)info->port : 0u);
	fflush(stderr);
	while (sigwait(&stop, &sig) == 0 && sig == SIGHUP)
		;
	MHD_stop_daemon(d);
	return 0;
}

#else

int
stat_http_serve(const char *spec, const char *name, uid_t owner)
{
	(void)spec;
	(void)name;
	(void)owner;
	fprintf(stderr, "pglease-stat: --listen is not built in: this pglease-stat was built "
		"without libmicrohttpd (apt-get install libmicrohttpd-dev, configure again)\n");
	return 1;
}

#endif
