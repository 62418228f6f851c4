/* SPDX-License-Identifier: BSD-3-Clause */
/* The symmetric RSS hash that decides each flow's worker (fo_steer.h). */
#include <netinet/in.h>

#include <rte_common.h>

#include "flowos/fo_match.h"
#include "flowos/fo_steer.h"

/* The 32 key bits a Toeplitz hash XORs in for input bit j of a 16-bit word (j = 0: its top bit). */
static uint32_t
window(uint16_t pattern, unsigned int j)
{
	uint32_t doubled = (uint32_t)pattern << 16 | pattern;

	return j == 0 ? doubled : doubled << j | doubled >> (32 - j);
}

void
fo_steer_init(struct fo_steer *s, uint16_t pattern)
{
	unsigned int b, t;

	s->pattern = pattern;
	for (b = 0; b < 256; b++) {
		s->hi[b] = s->lo[b] = 0;
		for (t = 0; t < 8; t++) {
			if (b & (0x80 >> t)) {
				s->hi[b] ^= window(pattern, t);
				s->lo[b] ^= window(pattern, 8 + t);
			}
		}
	}
}

void
fo_steer_rss_key(uint16_t pattern, uint8_t *key, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		key[i] = i % 2 == 0 ? pattern >> 8 : pattern & 0xff;
}

static uint16_t
fold_bytes(const uint8_t *p, unsigned int len)
{
	uint16_t x = 0;
	unsigned int i;

	for (i = 0; i + 1 < len; i += 2)
		x ^= (uint16_t)p[i] << 8 | p[i + 1];
	return x;
}

uint16_t
fo_steer_fold(const struct fo_match_fields *f, uint16_t ether_type)
{
	unsigned int len;
	uint16_t x;

	if (f->family == FO_FAMILY_ANY)
		return ether_type;
	len = f->family == FO_FAMILY_IPV4 ? 4 : 16;
	x = fold_bytes(f->src_ip, len) ^ fold_bytes(f->dst_ip, len);
	if (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP)
		x ^= f->src_port ^ f->dst_port;
	return x;
}
