/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_DECODE_H
#define FO_DECODE_H

#include <stdint.h>

#include "fo_common.h"

/*
 * Where each protocol level of a packet starts, found by fo_decode(). Offsets count from the
 * start of the frame; a level the packet does not have is FO_NO_LEVEL. Decoding never reads
 * past the bytes it is given.
 */
#define FO_NO_LEVEL 0xffff

/*
 * Bounds of the decoder, so that it does a fixed, small amount of work per packet. A frame with
 * more VLAN tags is left undecoded past the last one counted (a non-IP frame of ether type
 * 0x8100/0x88a8); an IPv6 chain of more extension headers is malformed (BAD_L3). Only the first
 * FO_DECODE_MAX_LEN bytes of a frame are looked at, so that every offset fits in 16 bits
 * (an mbuf segment never holds more).
 */
#define FO_DECODE_MAX_VLAN 4
#define FO_DECODE_MAX_EXT  8
#define FO_DECODE_MAX_LEN  0xfffe

enum fo_level {
	FO_LEVEL_L2 = 0,      /* Ethernet */
	FO_LEVEL_L3,          /* IPv4 / IPv6 header */
	FO_LEVEL_L4,          /* TCP / UDP / ICMP / ICMPv6 / other transport header */
	FO_LEVEL_PAYLOAD,     /* transport payload (for non-first IPv4 fragments: the IP payload) */
	/*
	 * PAYLOAD follows a TCP header with its options, the 8 bytes of a UDP, ICMP or ICMPv6
	 * header (type, code, checksum and the 4 bytes every message has: id/sequence of an echo,
	 * unused/MTU/pointer of an error) or the 12 of SCTP's common header. For any other
	 * protocol (incl. IPv6 ESP 50 and no-next-header 59) L4 and PAYLOAD are the same offset,
	 * the start of that protocol's header. For a non-first IPv4 or IPv6 fragment, L4 is
	 * absent and PAYLOAD is where the fragment's data starts (after the IPv6 fragment header).
	 */
	FO_LEVEL_COUNT
};

/* flags */
#define FO_PKT_VLAN        (1u << 0)   /* one or more 802.1Q / 802.1ad tags */
#define FO_PKT_IPV4        (1u << 1)
#define FO_PKT_IPV6        (1u << 2)
#define FO_PKT_FRAGMENT    (1u << 3)   /* an IPv4 or IPv6 fragment (any) */
#define FO_PKT_FIRST_FRAG  (1u << 4)   /* ... the one at offset 0, which carries the L4 header */
#define FO_PKT_MALFORMED   (1u << 5)   /* a header is truncated or inconsistent: see fo_decode_error */
#define FO_PKT_L4_PORTS    (1u << 6)   /* sport/dport are valid (TCP, UDP, SCTP first fragment or whole) */
#define FO_PKT_HDR_DIRTY   (1u << 7)   /* the engine rewrote a header (seq/ack): checksums are due */
#define FO_PKT_EDITED      (1u << 8)   /* a processor changed its bytes (kept while it is held): checksums are due */

enum fo_decode_error {
	FO_DECODE_OK = 0,
	FO_DECODE_TRUNCATED_L2,    /* shorter than an Ethernet header or its VLAN tags */
	FO_DECODE_TRUNCATED_L3,    /* IP header (or IPv6 extension header) cut short */
	FO_DECODE_BAD_L3,          /* IPv4 version/IHL/total length inconsistent; IPv6 version, payload length
	                              past the frame, more than FO_DECODE_MAX_EXT extension headers */
	FO_DECODE_TRUNCATED_L4,    /* TCP/UDP/ICMP header cut short (TCP data offset past the data included) */
	FO_DECODE_BAD_L4,          /* TCP data offset < 5; UDP length < 8, or past the IP packet (unfragmented) */
	FO_DECODE_ERROR_COUNT
};

struct fo_decoded {
	uint16_t offset[FO_LEVEL_COUNT];   /* FO_NO_LEVEL where absent */
	uint16_t end;                      /* end of the IP packet (excludes Ethernet padding); frame length if not IP
	                                      or if the IP header could not be read */
	uint16_t ether_type;               /* innermost, host order */
	uint16_t vlan_tci;                 /* outermost tag's TCI, host order; 0 if none */
	uint8_t ip_proto;                  /* transport protocol number (after IPv6 extension headers); 0 if not IP */
	uint8_t tcp_flags;                 /* TCP flags byte; 0 if not TCP */
	uint16_t flags;                    /* FO_PKT_* */
	uint8_t error;                     /* enum fo_decode_error */
	uint16_t sport, dport;             /* host order, valid with FO_PKT_L4_PORTS */
	uint32_t frag_id;                  /* IPv4 identification / IPv6 fragment identification, host order;
	                                      frag_* are valid with FO_PKT_FRAGMENT, 0 otherwise */
	uint16_t frag_offset;              /* in bytes */
};

/*
 * Decodes the headers in data[0..len). Always fills *out (offsets it could not reach are
 * FO_NO_LEVEL). Returns 0, or -EINVAL when the packet is malformed (out->error says how).
 * data may have any alignment. An IPv6 fragment header with offset 0 and no more-fragments
 * bit (an "atomic fragment", RFC 6946) is a whole packet, not a fragment.
 */
int fo_decode(const uint8_t *data, uint32_t len, struct fo_decoded *out);

/*
 * fo_decode() without its straight path for the common case (Ethernet, at most one VLAN tag,
 * IPv4 without options or IPv6 without extension headers, TCP or UDP): the same answer for every
 * input. For tests that compare the two.
 */
int fo_decode_general(const uint8_t *data, uint32_t len, struct fo_decoded *out);

/* A short name for each error, for statistics ("truncated_l3", ...). */
const char *fo_decode_error_name(enum fo_decode_error error);

#endif /* FO_DECODE_H */
