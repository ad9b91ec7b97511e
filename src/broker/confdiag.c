/*
 * confdiag.c - the configuration loader's diagnostics.
 */
#include "autoconf.h"

#include "broker/confdiag.h"

#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>

const char *
confdiag_file(const struct confdiag *d, const config_setting_t *s)
{
	const char *f = s != NULL ? config_setting_source_file(s) : NULL;

	return f != NULL ? f : d->path;
}

int
confdiag_line(const config_setting_t *s)
{
	return s != NULL ? (int)config_setting_source_line(s) : 0;
}

void
confdiag_report(struct confdiag *d, bool is_error, const config_setting_t *where,
		const char *name, const char *fmt, ...)
{
	char problem[1024];
	char msg[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problem, sizeof(problem), fmt, ap);
	va_end(ap);
	if (where != NULL && confdiag_line(where) > 0)
		snprintf(msg, sizeof(msg), "%s:%d: %s: %s%s", confdiag_file(d, where),
			 confdiag_line(where), name, is_error ? "" : "warning: ", problem);
	else
		snprintf(msg, sizeof(msg), "%s: %s: %s%s", d->path, name,
			 is_error ? "" : "warning: ", problem);
	/* Known secrets, and anything shaped like one wherever it was written
	 * (a conninfo pasted into a pool name, libpq quoting a fragment). */
	secret_mask(&d->secrets, msg);
	if (is_error)
		d->nerrors++;
	if (d->report != NULL)
		d->report(d->arg, is_error, msg);
}
