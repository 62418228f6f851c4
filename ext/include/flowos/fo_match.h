/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_MATCH_H
#define FO_MATCH_H

#include <stdint.h>

/*
 * A match on header fields, as flow definitions and ACL rules name them. A field whose
 * FO_MATCH_* bit is clear in `fields` is a wildcard. Addresses are in network order; an IPv4
 * address takes the first 4 bytes of addr. Ports and lengths are host order.
 */
#define FO_MATCH_IN_PORT   (1u << 0)
#define FO_MATCH_SRC_MAC   (1u << 1)
#define FO_MATCH_DST_MAC   (1u << 2)
#define FO_MATCH_SRC_IP    (1u << 3)
#define FO_MATCH_DST_IP    (1u << 4)
#define FO_MATCH_PROTO     (1u << 5)
#define FO_MATCH_SRC_PORT  (1u << 6)
#define FO_MATCH_DST_PORT  (1u << 7)

#define FO_FAMILY_ANY  0
#define FO_FAMILY_IPV4 4
#define FO_FAMILY_IPV6 6

struct fo_match {
	uint32_t fields;          /* FO_MATCH_* */
	uint8_t family;           /* FO_FAMILY_*: which family src_ip/dst_ip are; ANY if neither given */
	uint8_t proto;
	uint16_t in_port;
	uint8_t src_mac[6];
	uint8_t dst_mac[6];
	uint8_t src_ip[16];
	uint8_t dst_ip[16];
	uint8_t src_prefix;       /* bits */
	uint8_t dst_prefix;
	uint16_t src_port_lo, src_port_hi;
	uint16_t dst_port_lo, dst_port_hi;
};

/* The header fields of one packet, as a match compares them. */
struct fo_match_fields {
	uint16_t in_port;
	uint8_t family;
	uint8_t proto;
	uint8_t src_mac[6];
	uint8_t dst_mac[6];
	uint8_t src_ip[16];
	uint8_t dst_ip[16];
	uint16_t src_port, dst_port;  /* 0 when the packet has none */
};

struct rte_mbuf;

/* The fields of a decoded packet (the engine's metadata) that arrived on in_port. */
void fo_match_fields_of(struct rte_mbuf *m, uint16_t in_port, struct fo_match_fields *f);

struct fo_decoded;

/*
 * The same from what fo_decode() found in m's first segment (the ports it read, not read again),
 * for the engine, which has it at hand: equal to fo_match_fields_of() once the metadata is filled.
 */
void fo_match_fields_decoded(const struct rte_mbuf *m, const struct fo_decoded *d, uint16_t in_port,
			     struct fo_match_fields *f);

/* Nonzero when the packet fields satisfy the match (a linear check, for rules met once per flow). */
int fo_match_test(const struct fo_match *m, const struct fo_match_fields *f);

#endif /* FO_MATCH_H */
