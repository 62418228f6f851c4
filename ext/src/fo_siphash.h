/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SipHash-1-3 (Aumasson and Bernstein; the 1-3 rounds are those of CPython's and Rust's hash
 * tables and of Linux's hsiphash on 64-bit): a keyed pseudorandom function, so that nobody
 * without the key can make inputs collide. The caller feeds it 8-byte words and the last block.
 * Not part of the API.
 */
#ifndef FO_SIPHASH_H
#define FO_SIPHASH_H

#include <stdint.h>

/* The state after the key is mixed in: made once per key by sip_init, copied per message. */
struct sip_state {
	uint64_t v[4];
};

static inline uint64_t
sip_rotl(uint64_t x, unsigned int b)
{
	return (x << b) | (x >> (64 - b));
}

static inline void
sip_round(uint64_t *v)
{
	v[0] += v[1], v[1] = sip_rotl(v[1], 13), v[1] ^= v[0], v[0] = sip_rotl(v[0], 32);
	v[2] += v[3], v[3] = sip_rotl(v[3], 16), v[3] ^= v[2];
	v[0] += v[3], v[3] = sip_rotl(v[3], 21), v[3] ^= v[0];
	v[2] += v[1], v[1] = sip_rotl(v[1], 17), v[1] ^= v[2], v[2] = sip_rotl(v[2], 32);
}

static inline void
sip_init(struct sip_state *s, uint64_t k0, uint64_t k1)
{
	s->v[0] = k0 ^ 0x736f6d6570736575ull;
	s->v[1] = k1 ^ 0x646f72616e646f6dull;
	s->v[2] = k0 ^ 0x6c7967656e657261ull;
	s->v[3] = k1 ^ 0x7465646279746573ull;
}

/* One message word (little-endian, as SipHash reads its bytes), one compression round. */
static inline void
sip_absorb(struct sip_state *s, uint64_t m)
{
	s->v[3] ^= m;
	sip_round(s->v);
	s->v[0] ^= m;
}

/*
 * The hash, given the message's last block: its last (length mod 8) bytes, little-endian, with
 * the length in the top byte (SipHash's padding; a message of whole words ends with a block of
 * the length alone).
 */
static inline uint64_t
sip_finish(struct sip_state *s, uint64_t last)
{
	sip_absorb(s, last);
	s->v[2] ^= 0xff;
	sip_round(s->v);
	sip_round(s->v);
	sip_round(s->v);
	return s->v[0] ^ s->v[1] ^ s->v[2] ^ s->v[3];
}

#endif /* FO_SIPHASH_H */
