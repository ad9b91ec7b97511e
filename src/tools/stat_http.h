/*
 * stat_http.h - pglease-stat --listen: the exposition at /metrics over HTTP
 * (stat_http.c, with libmicrohttpd).
 */
#ifndef PGL_STAT_HTTP_H
#define PGL_STAT_HTTP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * "ADDRESS:PORT" into *addr: an IPv4 address, an IPv6 one in brackets, or
 * nothing before the colon (every IPv4 address).  0, or -1 when it is none.
 */
int stat_http_parse(const char *spec, struct sockaddr_storage *addr, socklen_t *len)
	__attribute__((warn_unused_result));

/*
 * Serves GET and HEAD /metrics on spec ("127.0.0.1:9187"; port 0: any free
 * one, told on stderr), each request a fresh snapshot of segment name
 * trusting owner; 404 elsewhere, 405 for other methods.  Returns when
 * SIGINT or SIGTERM comes: the exit status (1 when it cannot listen, or
 * when built without libmicrohttpd).
 */
int stat_http_serve(const char *spec, const char *name, uid_t owner);

#endif
