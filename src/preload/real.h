/*
 * real.h - forced into every libpglease source compiled for the preload
 * shim (-include): the libpq functions the shim interposes are renamed, so
 * that libpglease's own calls (building and closing shells) reach the real
 * libpq through real.c, never the shim's interposers.
 */
#ifndef PGL_PRELOAD_REAL_H
#define PGL_PRELOAD_REAL_H

#define PQconnectStartParams pgl_real_PQconnectStartParams
#define PQfinish pgl_real_PQfinish
#define PQresetPoll pgl_real_PQresetPoll

#endif
