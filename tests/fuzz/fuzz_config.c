/*
 * fuzz_config.c - libFuzzer target for the configuration loader: any file
 * is either a config or a list of errors; nothing crashes, leaks or hangs,
 * and a secret in the input never reaches an error message.
 */
#include "autoconf.h"

#include "broker/config.h"
#include "broker/conninfo.h"
#include "common/log.h"
#include "fuzz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SECRET "fuzzSecret9"

static void
report(void *arg, bool is_error, const char *msg)
{
	(void)arg;
	(void)is_error;
	/* A password written "password=fuzzSecret9" must never be shown. */
	if (strstr(msg, "password=" SECRET) != NULL || strstr(msg, ":" SECRET "@") != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char path[64];

	if (fd < 0) {
		log_init("fuzz", LOG_LEVEL_ERROR, LOG_TARGET_NONE);
		fd = memfd_create("pglease-fuzz-config", MFD_CLOEXEC);
		if (fd < 0)
			abort();
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	int nerrors = 0;
	struct config *cfg = config_load(path, report, NULL, &nerrors);
	if ((cfg == NULL) != (nerrors > 0))
		abort();
	if (cfg != NULL) {
		for (size_t i = 0; i < cfg->npools; i++) {
			char buf[512];
			conninfo_masked(&cfg->pools[i], buf, sizeof(buf));
			/* every password keyword shown is masked (other values are shown as
			 * written, quoted when they hold spaces) */
			bool quoted = false;
			for (const char *p = buf; *p != '\0'; p++) {
				if (*p == '\\' && quoted && p[1] != '\0') {
					p++;
					continue;
				}
				if (*p == '\'')
					quoted = !quoted;
				if (!quoted && (p == buf || p[-1] == ' ') &&
				    strncmp(p, "password=", 9) == 0 && strncmp(p + 9, "********", 8) != 0)
					abort();
			}
			if (conninfo_options(&cfg->pools[i], true, buf, sizeof(buf)) > (int)sizeof(buf))
				abort();
			/* the connect parameters: paired, terminated, within bounds */
			for (int v = 0; v < 2; v++) {
				const char *const *kw = conninfo_keywords(&cfg->pools[i], v);
				const char *const *val = conninfo_values(&cfg->pools[i], v);
				size_t j = 0;
				if ((kw == NULL) != (val == NULL))
					abort();
				for (; kw != NULL && kw[j] != NULL; j++)
					if (val[j] == NULL || j + 1 >= CONNINFO_PARAMS_MAX)
						abort();
				if (kw != NULL && val[j] != NULL)
					abort();
			}
		}
		config_free(cfg);
	}
	return 0;
}
