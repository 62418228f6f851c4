/* SPDX-License-Identifier: BSD-3-Clause */
/* Flow keys crafted to collide under the old unkeyed CRC32 flow hash (see fo_collide.h). */
#include <errno.h>
#include <string.h>

#include <rte_common.h>
#include <rte_hash_crc.h>

#include "fo_collide.h"

/*
 * The free bits the keys differ in: the client address's last 3 bytes, the server address's
 * last 2, the client port. 56 bits against a 32-bit CRC leave a kernel of at least 2^24 keys.
 */
#define FREE_BITS 56

static uint64_t
key_word(const struct fo_flow_key *key, unsigned int i)
{
	uint64_t w;

	memcpy(&w, (const uint8_t *)key + 8 * i, sizeof(w));
	return w;
}

/* The CRC of an IPv4 key: linear in the key's bits, since it starts from 0 and is not inverted. */
static uint32_t
crc_ipv4(const struct fo_flow_key *key)
{
	return rte_hash_crc_8byte(key_word(key, 4), rte_hash_crc_8byte(key_word(key, 2),
								  rte_hash_crc_8byte(key_word(key, 0), 0)));
}

uint32_t
fo_collide_crc32(const struct fo_flow_key *key)
{
	return key->family == FO_FAMILY_IPV4 ? crc_ipv4(key) : rte_hash_crc(key, sizeof(*key), 0);
}

/* XORs the free bits set in mask into key. */
static void
flip(struct fo_flow_key *key, uint64_t mask)
{
	key->addr_lo[1] ^= (uint8_t)mask;
	key->addr_lo[2] ^= (uint8_t)(mask >> 8);
	key->addr_lo[3] ^= (uint8_t)(mask >> 16);
	key->addr_hi[2] ^= (uint8_t)(mask >> 24);
	key->addr_hi[3] ^= (uint8_t)(mask >> 32);
	key->port_lo ^= (uint16_t)(mask >> 40);
}

static void
template_key(struct fo_flow_key *key, uint32_t client, uint16_t client_port)
{
	memset(key, 0, sizeof(*key));
	key->addr_lo[0] = 10;
	key->addr_lo[1] = (uint8_t)(client >> 16);
	key->addr_lo[2] = (uint8_t)(client >> 8);
	key->addr_lo[3] = (uint8_t)client;
	key->addr_hi[0] = 172;
	key->addr_hi[1] = 16;
	key->addr_hi[3] = 1;
	key->port_lo = client_port;
	key->port_hi = 80;
	key->proto = 6;   /* IPPROTO_TCP */
	key->family = FO_FAMILY_IPV4;
}

int
fo_collide_keys(struct fo_flow_key *keys, uint32_t n)
{
	uint32_t pivot_crc[32] = { 0 };         /* by leading bit: a reduced row, and the free bits it is made of */
	uint64_t pivot_mask[32] = { 0 }, kernel[FREE_BITS];
	unsigned int n_kernel = 0, j, b;
	struct fo_flow_key zero, base;
	uint32_t i;

	if (n > FO_COLLIDE_MAX)
		return -EINVAL;
	/* Each free bit's CRC on its own; a combination whose CRCs cancel is in the kernel. */
	for (j = 0; j < FREE_BITS; j++) {
		uint64_t mask = 1ull << j;
		uint32_t crc;

		memset(&zero, 0, sizeof(zero));
		flip(&zero, mask);
		crc = crc_ipv4(&zero);
		for (b = 32; b-- > 0 && crc != 0;) {
			if (!(crc >> b & 1))
				continue;
			if (pivot_crc[b] == 0) {
				pivot_crc[b] = crc;
				pivot_mask[b] = mask;
				break;
			}
			crc ^= pivot_crc[b];
			mask ^= pivot_mask[b];
		}
		if (crc == 0)
			kernel[n_kernel++] = mask;
	}
	if (n > 1u << RTE_MIN(n_kernel, 24u))
		return -EINVAL;
	template_key(&base, 0x010203, 40000);
	for (i = 0; i < n; i++) {
		uint64_t mask = 0;

		for (j = 0; j < n_kernel && (i >> j) != 0; j++)
			if (i >> j & 1)
				mask ^= kernel[j];
		keys[i] = base;
		flip(&keys[i], mask);
	}
	return 0;
}

void
fo_collide_plain_keys(struct fo_flow_key *keys, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		template_key(&keys[i], i % FO_COLLIDE_MAX, (uint16_t)(1024 + i / FO_COLLIDE_MAX));
}
