/*
 * reload.h - SIGHUP: the configuration file read again and applied in place.
 */
#ifndef PGL_RELOAD_H
#define PGL_RELOAD_H

#include <stdbool.h>

struct broker;

/*
 * Reads the configuration file again.  A valid one applies: added pools
 * open, removed ones refuse new acquires, drain and go, sizes and settings
 * change in place, changed connection settings replace backends as they
 * come free.  An invalid one, or one whose pools do not fit the shared
 * memory segment, changes nothing; every problem is logged.  Returns
 * whether the file was applied.
 */
bool reload_run(struct broker *b);

/* Frees the configurations reloads replaced (at exit). */
void reload_free_configs(struct broker *b);

#endif
