/*
 * defaults.h - the defaults the broker and the tools that read its
 * configuration must agree on.  Constants only.
 */
#ifndef PGL_DEFAULTS_H
#define PGL_DEFAULTS_H

/* broker.socket: where the broker listens */
#define PGL_DEFAULT_SOCKET "/run/pglease/pglease.sock"

/* broker.shm_name: the shared memory segment it publishes */
#define PGL_DEFAULT_SHM_NAME "/pglease.main"

#endif
