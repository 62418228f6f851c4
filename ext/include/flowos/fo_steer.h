/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_STEER_H
#define FO_STEER_H

/*
 * Which worker owns a packet's flow. Every flow lives on one worker (its shard); a packet that
 * arrives at another worker is handed to the owner. The owner is the one a NIC's RSS would pick
 * with the key and redirection table FlowOS gives it (fo_port.c), so with RSS nearly nothing is
 * handed over; software computes the same hash for ports that cannot spread traffic.
 *
 * The RSS key repeats a 16-bit pattern. A Toeplitz hash under such a key depends only on the XOR
 * of the input's 16-bit words: it is symmetric (both directions of a connection hash alike) and
 * software computes it with two table lookups. The redirection table sends hash bucket b (the
 * hash modulo FO_STEER_BUCKETS, which divides every table size) to worker b % workers.
 */
#include <stdint.h>

#include "fo_match.h"

#define FO_STEER_BUCKETS 64
#define FO_MAX_WORKERS 64

struct fo_steer {
	uint16_t pattern;
	uint32_t hi[256], lo[256];   /* the hash of a fold's high and low byte */
};

/* Tables for a key repeating pattern (not 0). */
void fo_steer_init(struct fo_steer *s, uint16_t pattern);

/* The RSS key (len bytes) a NIC must hash with to agree with fo_steer_hash. */
void fo_steer_rss_key(uint16_t pattern, uint8_t *key, uint32_t len);

/* Toeplitz hash of a fold (the XOR of the hashed input's 16-bit big-endian words). */
static inline uint32_t
fo_steer_hash(const struct fo_steer *s, uint16_t fold)
{
	return s->hi[fold >> 8] ^ s->lo[fold & 0xff];
}

/*
 * The fold of what RSS hashes: IP addresses and, where the flow has them, ports (TCP and UDP:
 * a NIC's 4-tuple types; ICMP and other protocols: addresses only). Not IP: the ether type
 * alone (every non-IP flow of one ether type is one flow: flow_make_key).
 */
uint16_t fo_steer_fold(const struct fo_match_fields *f, uint16_t ether_type);

static inline uint16_t
fo_steer_worker(uint32_t hash, uint16_t workers)
{
	return (uint16_t)((hash % FO_STEER_BUCKETS) % workers);
}

#endif /* FO_STEER_H */
