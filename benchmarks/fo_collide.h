/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_COLLIDE_H
#define FO_COLLIDE_H

/*
 * Crafted flow keys: what an attacker who knows an unkeyed flow hash sends. The flow index used
 * to hash with plain CRC32-C (rte_hash_crc over an IPv4 key's words 0, 2 and 4, from 0): CRC is
 * linear over GF(2), so the keys whose CRC equals a template's are the template XOR the kernel
 * of a 32-row matrix, found by Gaussian elimination in microseconds, no search. They share the
 * whole 32-bit hash: one home bucket and one signature whatever the table's size.
 *
 * Shared by fo_flowbench (the collide scenarios) and tests/asan/flow_index_harness.c.
 */
#include <stdint.h>

#include <flowos/fo_flow.h>
#include <flowos/fo_match.h>

#define FO_COLLIDE_MAX (1u << 24)

/* The unkeyed hash FlowOS's flow index had before it was keyed (the attacker's model of it). */
uint32_t fo_collide_crc32(const struct fo_flow_key *key);

/*
 * n (<= FO_COLLIDE_MAX) distinct canonical keys of IPv4 TCP connections of definition 0, from a
 * client in 10.0.0.0/8 to a server in 172.16.0.0/16 port 80 (the client is the low side), whose
 * fo_collide_crc32() are all equal. Returns 0, or -EINVAL.
 */
int fo_collide_keys(struct fo_flow_key *keys, uint32_t n);

/*
 * n keys of the same connections with ordinary addresses: client i % 2^24 of 10.0.0.0/8 to one
 * server, port 80, client port 1024 + i / 2^24 (the baseline the crafted keys are measured against).
 */
void fo_collide_plain_keys(struct fo_flow_key *keys, uint32_t n);

#endif /* FO_COLLIDE_H */
