/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fo_decode (ext/src/fo_decode.c) on any bytes: the input is one frame, in a buffer of exactly
 * its length (AddressSanitizer sees a read past it). What the header promises is checked: every
 * level it reports starts within the frame and after the one before, the IP packet ends within
 * it, ports are only reported with their 4 bytes there, and an error comes with the malformed
 * flag. The answer must be the general decoder's alone (fo_decode_general): fo_decode() takes
 * the common case on a straight path of its own. Needs no EAL.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	struct fo_decoded d, g;
	int l, ret = fo_decode(data, len, &d), ret_general = fo_decode_general(data, len, &g);

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
	if (ret != ret_general || memcmp(d.offset, g.offset, sizeof(d.offset)) != 0 || d.end != g.end ||
	    d.ether_type != g.ether_type || d.vlan_tci != g.vlan_tci || d.ip_proto != g.ip_proto ||
	    d.tcp_flags != g.tcp_flags || d.flags != g.flags || d.error != g.error || d.sport != g.sport ||
	    d.dport != g.dport || d.frag_id != g.frag_id || d.frag_offset != g.frag_offset)
		broken("the straight path for the common case and the general decoder disagree");
	return 0;
}
