/*
 * toolutil.c - what the command-line tools share (see toolutil.h).
 */
#include "autoconf.h"

#include "common/defaults.h"
#include "tools/toolutil.h"

#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <string.h>

int
tool_read_config(const char *prog, const char *path, char *shm_name, size_t shm_len,
		 char *socket, size_t socket_len)
{
	config_t cf;
	const char *v;

	config_init(&cf);
	if (config_read_file(&cf, path) != CONFIG_TRUE) {
		if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
			fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, strerror(errno));
		else
			fprintf(stderr, "%s: %s:%d: %s\n", prog,
				config_error_file(&cf) != NULL ? config_error_file(&cf) : path,
				config_error_line(&cf), config_error_text(&cf));
		config_destroy(&cf);
		return -1;
	}
	if (shm_name != NULL && config_lookup_string(&cf, "broker.shm_name", &v) == CONFIG_TRUE)
		snprintf(shm_name, shm_len, "%s", v);
	snprintf(socket, socket_len, "%s",
		 config_lookup_string(&cf, "broker.socket", &v) == CONFIG_TRUE ? v :
		 PGL_DEFAULT_SOCKET);
	config_destroy(&cf);
	return 0;
}

void
tool_json_string(const char *s)
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
