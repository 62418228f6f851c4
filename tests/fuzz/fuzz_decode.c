/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fo_decode (ext/src/fo_decode.c) on any bytes: the input is one frame, in a buffer of exactly
 * its length (AddressSanitizer sees a read past it). What the header promises is checked: every
 * level it reports starts within the frame and after the one before, the IP packet ends within
 * it, ports are only reported with their 4 bytes there, and an error comes with the malformed
 * flag. Needs no EAL.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "flowos/fo_decode.h"

static void
broken(const char *what)
{
	fprintf(stderr, "fuzz_decode: %s\n", what);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t len = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
	uint32_t seen = len < FO_DECODE_MAX_LEN ? len : FO_DECODE_MAX_LEN, last = 0;
	struct fo_decoded d;
	int l, ret = fo_decode(data, len, &d);

	if (d.error >= FO_DECODE_ERROR_COUNT || (ret != 0) != (d.error != FO_DECODE_OK) ||
	    !(d.flags & FO_PKT_MALFORMED) != (d.error == FO_DECODE_OK))
		broken("the error, the return value and the malformed flag disagree");
	for (l = 0; l < FO_LEVEL_COUNT; l++) {
		if (d.offset[l] == FO_NO_LEVEL)
			continue;
		if (d.offset[l] > seen || d.offset[l] < last)
			broken("a level starts past the frame or before the level under it");
		last = d.offset[l];
	}
	if (d.end > seen)
		broken("the IP packet ends past the frame");
	if ((d.flags & FO_PKT_L4_PORTS) &&
	    (d.offset[FO_LEVEL_L4] == FO_NO_LEVEL || d.offset[FO_LEVEL_L4] + 4u > seen))
		broken("ports reported without their bytes");
	if (fo_decode_error_name(d.error) == NULL)
		broken("an error without a name");
	return 0;
}
