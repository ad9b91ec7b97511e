/*
 * fuzz_wire.c - libFuzzer target for the control-protocol decoder, the
 * broker's first contact with untrusted bytes.
 *
 * Property: whatever the input, wire_decode() either refuses it with a
 * reason or accepts it; an accepted message encodes back to exactly the
 * same bytes (decoding is exact, so nothing was ignored or invented).
 */
#include "autoconf.h"

#include "common/wire.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_msg m;
	const char *why = NULL;
	static uint8_t again[WIRE_MESSAGE_MAX];

	if (wire_decode(data, size, &m, &why) != 0) {
		if (why == NULL || why[0] == '\0')
			abort();
		return 0;
	}
	size_t n = wire_encode(&m, again, sizeof(again));
	if (n != size || memcmp(again, data, size) != 0)
		abort();
	return 0;
}
