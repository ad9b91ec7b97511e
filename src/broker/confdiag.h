/*
 * confdiag.h - the configuration loader's diagnostics: "FILE:LINE: setting:
 * problem", every secret masked, errors counted.
 */
#ifndef PGL_CONFDIAG_H
#define PGL_CONFDIAG_H

#include "broker/config.h"
#include "broker/secret.h"
#include "common/log.h"

#include <stdbool.h>

struct config_setting_t;

struct confdiag {
	const char *path;		/* the file loaded, for a setting with no line */
	config_report_fn *report;	/* NULL: count only */
	void *arg;
	int nerrors;
	struct secret_set secrets;	/* blotted out of every message */
};

/* The file setting s was read from (an @include), else the file loaded. */
const char *confdiag_file(const struct confdiag *d, const struct config_setting_t *s);

/* The line setting s starts on; 0 when s is NULL or has none. */
int confdiag_line(const struct config_setting_t *s);

/*
 * Reports one problem, masked, to d->report.  where: the setting the problem
 * is about (its file and line are named; NULL for none); name: the setting's
 * path as the user reads it ("pools[0].max_size").
 */
void confdiag_report(struct confdiag *d, bool is_error, const struct config_setting_t *where,
		     const char *name, const char *fmt, ...) PGL_PRINTF(5, 6);

#define confdiag_error(d, where, name, ...) \
	confdiag_report((d), true, (where), (name), __VA_ARGS__)
#define confdiag_warning(d, where, name, ...) \
	confdiag_report((d), false, (where), (name), __VA_ARGS__)

#endif
