/*
 * toolutil.h - what the command-line tools (pglease-stat, pglease-ctl)
 * share: the broker's configuration file read for its names, and JSON
 * strings.
 */
#ifndef PGL_TOOLUTIL_H
#define PGL_TOOLUTIL_H

#include <stddef.h>

/*
 * From the broker's configuration file at path, only what a tool needs:
 * broker.shm_name into shm_name (left alone when the file has none; NULL:
 * not wanted) and broker.socket into socket (the default when none).  Read
 * with libconfig alone, so no secret (password_file) is ever opened.
 * Returns 0, or -1 after saying why on stderr, prefixed with prog.
 */
int tool_read_config(const char *prog, const char *path, char *shm_name, size_t shm_len,
		     char *socket, size_t socket_len);

/* s as a JSON string on standard output, quotes and escapes included. */
void tool_json_string(const char *s);

#endif
