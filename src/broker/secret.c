/*
 * secret.c - the secrets seen while loading a configuration, and masking.
 *
 * A diagnostic may quote anything the file holds: a conninfo pasted into a
 * pool name, libpq repeating the fragment it could not parse.  So every
 * message is masked twice: each secret known so far is blotted out wherever
 * it stands, then anything shaped like a secret is, whether known or not.
 * Both the registry and the masking find secret shapes with one scanner.
 */
#include "autoconf.h"

#include "broker/secret.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void
secret_add(struct secret_set *set, const char *s, size_t len)
{
	if (len == 0)
		return;
	if (set->n == SECRET_MAX) {
		set->overflow = true;
		return;
	}
	char *copy = strndup(s, len);
	if (copy != NULL)
		set->items[set->n++] = copy;
}

void
secret_clear(struct secret_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		explicit_bzero(set->items[i], strlen(set->items[i]));
		free(set->items[i]);
	}
	set->n = 0;
	set->overflow = false;
}

/* --- secret shapes ------------------------------------------------------ */

/*
 * Finds the shapes a secret takes in text, one per step: first the value
 * after "password" and '=' (a conninfo keyword, a URI query parameter), then
 * the "secret" of "user:secret@" wherever it stands, well-formed URI or not
 * (libpq quotes a string it cannot parse): between the last ':' of a token
 * and an '@'.  Each step reads the text afresh, so what a caller masks
 * between steps is masked for the steps that follow.
 *
 * Where a password value ends differs on purpose between the two kinds of
 * text.  In a conninfo string quotes are its syntax: a value in single
 * quotes runs to the closing quote, spaces included, and an unquoted value
 * runs to whitespace or '&' with any quote character part of it (double
 * quotes mean nothing to libpq).  In a message the conninfo is itself quoted
 * ("invalid connection option \"password=x\"") or cut into fragments, so a
 * value may open with either quote and ends at any quote or whitespace too.
 * The "user:secret@" shape is the same in both.
 */
struct shape_scan {
	const char *text;
	const char *pw;		/* where to look for "password" next; NULL: done */
	const char *at;		/* where to look for '@' next; NULL: done */
	bool conninfo;		/* text is a conninfo string, not a message */
};

static void
shape_scan_init(struct shape_scan *sc, const char *text, bool conninfo)
{
	sc->text = text;
	sc->pw = text;
	sc->at = text;
	sc->conninfo = conninfo;
}

/* The next secret-shaped span: true with *start and *len set (len may be 0). */
static bool
shape_next(struct shape_scan *sc, const char **start, size_t *len)
{
	while (sc->pw != NULL) {
		const char *q = strstr(sc->pw, "password");

		if (q == NULL) {
			sc->pw = NULL;
			break;
		}
		q += 8;
		sc->pw = q;
		while (isspace((unsigned char)*q))
			q++;
		if (*q != '=')
			continue;
		q++;
		while (isspace((unsigned char)*q))
			q++;
		if (sc->conninfo && *q == '\'') {
			q++;
			*len = strcspn(q, "'");
		} else if (sc->conninfo) {
			*len = strcspn(q, " \t\n&");
		} else {
			if (*q == '\'' || *q == '"')
				q++;
			size_t n = 0;
			while (q[n] != '\0' && !isspace((unsigned char)q[n]) &&
			       q[n] != '\'' && q[n] != '"' && q[n] != '&')
				n++;
			*len = n;
		}
		*start = q;
		return true;
	}

	while (sc->at != NULL) {
		const char *at = strchr(sc->at, '@');

		if (at == NULL) {
			sc->at = NULL;
			break;
		}
		sc->at = at + 1;
		for (const char *q = at; q > sc->text; q--) {
			char c = q[-1];
			if (isspace((unsigned char)c) || c == '/' || c == '\'' || c == '"')
				break;
			if (c == ':') {
				*start = q;
				*len = (size_t)(at - q);
				return true;
			}
		}
	}
	return false;
}

void
secret_note_conninfo(struct secret_set *set, const char *ci)
{
	struct shape_scan sc;
	const char *start;
	size_t len;

	shape_scan_init(&sc, ci, true);
	while (shape_next(&sc, &start, &len))
		secret_add(set, start, len);
}

void
secret_mask(const struct secret_set *set, char *msg)
{
	struct shape_scan sc;
	const char *start;
	size_t len;

	for (size_t i = 0; i < set->n; i++) {
		size_t n = strlen(set->items[i]);
		char *p = msg;

		while ((p = strstr(p, set->items[i])) != NULL) {
			memset(p, '*', n);
			p += n;
		}
	}
	shape_scan_init(&sc, msg, false);
	while (shape_next(&sc, &start, &len))
		memset(msg + (start - msg), '*', len);
}
