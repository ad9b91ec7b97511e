/*
 * fuzz.h - the libFuzzer entry point every target defines; replay.c calls
 * it for each file of a committed corpus when built without libFuzzer.
 */
#ifndef PGL_FUZZ_H
#define PGL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
