/*
 * confsrc.c - integers as the configuration's source writes them.
 */
#include "autoconf.h"

#include "broker/confsrc.h"

#include <ctype.h>
#include <libconfig.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole text of file, read once; NULL when it cannot be. */
static const char *
source_text(struct confsrc *src, const char *file)
{
	for (size_t i = 0; i < src->nfiles; i++)
		if (strcmp(src->files[i].file, file) == 0)
			return src->files[i].text;
	if (src->nfiles == CONFSRC_MAX_FILES)
		return NULL;

	FILE *f = fopen(file, "re");
	char *text = NULL;
	size_t cap = 0;

	if (f != NULL) {
		ssize_t n = getdelim(&text, &cap, '\0', f);
		if (n < 0) {
			free(text);
			text = NULL;
		}
		fclose(f);
	}
	char *name = strdup(file);
	if (name == NULL) {
		free(text);
		return NULL;
	}
	src->files[src->nfiles].file = name;
	src->files[src->nfiles].text = text;
	src->nfiles++;
	return text;
}

void
confsrc_free(struct confsrc *src)
{
	for (size_t i = 0; i < src->nfiles; i++) {
		free(src->files[i].file);
		free(src->files[i].text);
	}
	src->nfiles = 0;
}

/*
 * Parses the integer literal at q (libconfig's syntax: decimal, or 0x hex as
 * a bit pattern, an optional L suffix).  Returns 1 with *out set, 0 when q
 * holds no literal, -1 when it does not fit in 64 bits.
 */
static int
parse_literal(const char *q, const char *eol, int64_t *out)
{
	bool neg = false;
	int base = 10;
	uint64_t v = 0;

	if (*q == '-' || *q == '+')
		neg = *q++ == '-';
	if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) {
		base = 16;
		q += 2;
	}
	if (!isxdigit((unsigned char)*q) || (base == 10 && !isdigit((unsigned char)*q)))
		return 0;
	for (; q < eol; q++) {
		int d;
		if (isdigit((unsigned char)*q))
			d = *q - '0';
		else if (base == 16 && isxdigit((unsigned char)*q))
			d = tolower((unsigned char)*q) - 'a' + 10;
		else
			break;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return -1;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (base == 16) {
		*out = (int64_t)v;
		return 1;
	}
	if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
		return -1;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 1;
}

/*
 * How many settings named like s, on the same line of the same file, come
 * before s in the file (pools written on one line share names).  -1 when s
 * is not found.
 */
static int
ordinal_on_line(const config_setting_t *node, const config_setting_t *s, int *count)
{
	if (node == s)
		return *count;
	if (node != s && config_setting_name(node) != NULL &&
	    strcmp(config_setting_name(node), config_setting_name(s)) == 0 &&
	    config_setting_source_line(node) == config_setting_source_line(s) &&
	    config_setting_source_file(node) == config_setting_source_file(s))
		(*count)++;
	if (config_setting_is_aggregate(node)) {
		int n = config_setting_length(node);
		for (int i = 0; i < n; i++) {
			int k = ordinal_on_line(config_setting_get_elem(node, (unsigned)i), s, count);
			if (k >= 0)
				return k;
		}
	}
	return -1;
}

/*
 * Finds "name = <integer>" on the setting's line and parses the literal as a
 * 64-bit number.  When a line holds several settings of that name, the k-th
 * occurrence belongs to the k-th setting; an occurrence counts only when
 * libconfig's value, wrapped to an int as libconfig 1.5 does, agrees with
 * it.
 */
int
confsrc_integer(struct confsrc *src, const config_setting_t *s, const char *file, int64_t *out)
{
	const char *name = config_setting_name(s);
	const char *text = source_text(src, file);
	int line = (int)config_setting_source_line(s);
	int64_t seen = config_setting_get_int64(s);
	bool is_int = config_setting_type(s) == CONFIG_TYPE_INT;
	int count = 0;
	int want = src->root != NULL ? ordinal_on_line(src->root, s, &count) : -1;
	int occurrence = -1;

	if (name == NULL || text == NULL || line <= 0)
		return 0;
	for (int l = 1; l < line && text != NULL; l++) {
		text = strchr(text, '\n');
		if (text != NULL)
			text++;
	}
	if (text == NULL)
		return 0;

	const char *eol = strchr(text, '\n');
	size_t nlen = strlen(name);

	if (eol == NULL)
		eol = text + strlen(text);
	for (const char *p = text; p + nlen <= eol; p++) {
		if (strncmp(p, name, nlen) != 0)
			continue;
		if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
			continue;
		const char *q = p + nlen;
		while (q < eol && isblank((unsigned char)*q))
			q++;
		if (q == eol || (*q != '=' && *q != ':'))
			continue;
		q++;
		while (q < eol && isblank((unsigned char)*q))
			q++;

		int64_t v = 0;
		int rc = parse_literal(q, eol, &v);
		occurrence++;
		if (want >= 0 && occurrence != want)
			continue;
		if (rc < 0)
			return -1;
		if (rc > 0 && (is_int ? (int32_t)(uint32_t)(uint64_t)v == (int32_t)seen : v == seen)) {
			*out = v;
			return 1;
		}
		return 0;
	}
	return 0;
}
