/*
 * secret.h - the secrets seen while loading a configuration, and masking
 * them out of a message: every one known, and anything shaped like one.
 */
#ifndef PGL_SECRET_H
#define PGL_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define SECRET_MAX 64

/* Zero-initialised is empty; secret_clear() empties it again. */
struct secret_set {
	char *items[SECRET_MAX];	/* copies, zeroed when cleared */
	size_t n;
	bool overflow;			/* more were offered than fit: quote no libpq detail */
};

/*
 * Remembers the len bytes at s (a copy; nothing when len is 0).  Past
 * SECRET_MAX it sets overflow instead.
 */
void secret_add(struct secret_set *set, const char *s, size_t len);

/*
 * Remembers every password the conninfo string ci carries as written
 * ("password=..." and a URI's "user:secret@"), before libpq's parser sees
 * it, so that no message, libpq's own quoting the string included, shows it.
 */
void secret_note_conninfo(struct secret_set *set, const char *ci);

/*
 * Masks msg in place with asterisks: every secret of set, then whatever is
 * shaped like a secret wherever it was written (no list, so no limit).
 */
void secret_mask(const struct secret_set *set, char *msg);

/* Zeroes and frees every secret of set; the set is empty afterwards. */
void secret_clear(struct secret_set *set);

#endif
