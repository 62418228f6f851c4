/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_FIELDS_H
#define FO_FIELDS_H

/*
 * Vector header fields: one field of every packet of an array, into a flat array of fixed-size
 * items (what the Python tier hands to Python as array.array, for NumPy to wrap). A packet that
 * lacks the field gets 0 (16 zero bytes for an address).
 */
#include <stdint.h>

#include <rte_mbuf.h>

enum fo_field {
	FO_FIELD_LENGTH = 0,    /* uint32_t: the frame's length */
	FO_FIELD_PROTO,         /* uint8_t: IP protocol */
	FO_FIELD_DIR,           /* uint8_t: 0 from the flow's opener, 1 the other way */
	FO_FIELD_SPORT,         /* uint16_t: TCP/UDP/SCTP source port, host order */
	FO_FIELD_DPORT,         /* uint16_t: ... destination port */
	FO_FIELD_TCP_FLAGS,     /* uint8_t */
	FO_FIELD_TTL,           /* uint8_t: IPv4 TTL or IPv6 hop limit */
	FO_FIELD_PAYLOAD_LEN,   /* uint32_t: bytes after the transport header */
	FO_FIELD_SRC4,          /* uint32_t: IPv4 source address, host order */
	FO_FIELD_DST4,          /* uint32_t */
	FO_FIELD_SRC,           /* 16 bytes: IPv6 source, or IPv4 as ::ffff:a.b.c.d */
	FO_FIELD_DST,           /* 16 bytes */
	FO_FIELD_COUNT
};

/* The size of one item of a field, in bytes; 0 for an unknown field. */
unsigned int fo_field_size(enum fo_field field);

/* Writes field of pkts[0..n) into out (n * fo_field_size(field) bytes). Returns 0, or -EINVAL. */
int fo_field_vector(enum fo_field field, struct rte_mbuf *const *pkts, uint32_t n, void *out);

#endif /* FO_FIELDS_H */
