/*
 * confsrc.h - integers as the configuration's source writes them.
 *
 * libconfig 1.5 silently wraps an integer literal too large for an int
 * (3000000000 reads as -1294967296).  The literal is re-read from the
 * setting's line and parsed as 64 bits, so that it can be range-checked.
 */
#ifndef PGL_CONFSRC_H
#define PGL_CONFSRC_H

#include <stddef.h>
#include <stdint.h>

struct config_setting_t;

#define CONFSRC_MAX_FILES 8

/* Zero-initialised, then root set once the file is parsed; confsrc_free(). */
struct confsrc {
	/* The whole tree: tells same-named settings on one line apart. */
	const struct config_setting_t *root;
	struct {
		char *file;
		char *text;		/* NULL when it could not be read */
	} files[CONFSRC_MAX_FILES];	/* read on first use */
	size_t nfiles;
};

/*
 * The integer literal written for setting s, which libconfig read from file.
 * Returns 1 with *out set, 0 when no literal matching libconfig's value was
 * found (libconfig's value stands), -1 when the literal does not fit in 64
 * bits.
 */
int confsrc_integer(struct confsrc *src, const struct config_setting_t *s, const char *file,
		    int64_t *out)
	__attribute__((warn_unused_result));

/* Frees the texts read; src is empty afterwards. */
void confsrc_free(struct confsrc *src);

#endif
