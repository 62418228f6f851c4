/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fo_decode()'s straight path for the common case, inline for the engine's per-packet decode
 * (fo_pkt.c), which then needs no call for it; fo_decode.c holds the rest. Not part of the API.
 */
#ifndef FO_DECODE_COMMON_H
#define FO_DECODE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "flowos/fo_decode.h"

/*
 * A big-endian 16-bit field read byte by byte: the Ethernet header may sit at any address
 * (rte_ether_hdr is only 2-aligned, while the other DPDK headers used here are packed).
 */
static inline uint16_t
be16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline int
is_vlan_tpid(uint16_t ether_type)
{
	return ether_type == RTE_ETHER_TYPE_VLAN || ether_type == RTE_ETHER_TYPE_QINQ;
}

/*
 * The common case on a straight path: Ethernet with at most one VLAN tag, then IPv4 without
 * options that is not a fragment, or IPv6 without extension headers, then a TCP or UDP header
 * the general decoder accepts. Fills *out exactly as fo_decode_general() would and returns 1;
 * returns 0 with *out untouched for anything else, which the general decoder then takes (so it
 * alone says what is malformed and how). len is at most FO_DECODE_MAX_LEN.
 */
static inline int
fo_decode_common(const uint8_t *data, uint32_t len, struct fo_decoded *out)
{
	uint32_t vlan, l3, l4, end, hlen, total;
	uint16_t ether_type, vlan_tci, flags;
	uint8_t proto, tcp_flags = 0;

	/* The shortest packet taken here: Ethernet, IPv4 and UDP (so a tag's 4 bytes are there). */
	if (len < sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) + sizeof(struct rte_udp_hdr))
		return 0;
	/*
	 * Zero or one tag without a branch: a branch on it lets the compiler copy the whole path
	 * once per tag count, with every offset precomputed (more instructions, not fewer).
	 */
	vlan = is_vlan_tpid(be16_at(data + offsetof(struct rte_ether_hdr, ether_type)));
	l3 = sizeof(struct rte_ether_hdr) + vlan * sizeof(struct rte_vlan_hdr);
	ether_type = be16_at(data + l3 - 2);    /* the Ethernet header's or the tag's, last in both */
	vlan_tci = vlan ? be16_at(data + sizeof(struct rte_ether_hdr)) : 0;
	flags = FO_PKT_L4_PORTS | (vlan ? FO_PKT_VLAN : 0);
	if (ether_type == RTE_ETHER_TYPE_IPV4) {
		const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(data + l3);

		/* Version 4, 20 bytes (no options); the length check above covers them. */
		if (ip->version_ihl != 0x45)
			return 0;
		total = rte_be_to_cpu_16(ip->total_length);
		if (total < sizeof(*ip) || total > len - l3 ||
		    (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
			return 0;
		proto = ip->next_proto_id;
		l4 = l3 + sizeof(*ip);
		end = l3 + total;
		flags |= FO_PKT_IPV4;
	} else if (ether_type == RTE_ETHER_TYPE_IPV6) {
		const struct rte_ipv6_hdr *ip = (const struct rte_ipv6_hdr *)(data + l3);

		if (len - l3 < sizeof(*ip) || (data[l3] >> 4) != 6)
			return 0;
		l4 = l3 + sizeof(*ip);
		end = l4 + rte_be_to_cpu_16(ip->payload_len);
		if (end > len)
			return 0;
		proto = ip->proto;     /* an extension header is neither TCP nor UDP: not taken here */
		flags |= FO_PKT_IPV6;
	} else {
		return 0;
	}
	if (proto == IPPROTO_TCP) {
		const struct rte_tcp_hdr *th = (const struct rte_tcp_hdr *)(data + l4);

		if (end - l4 < sizeof(*th))
			return 0;
		hlen = (uint32_t)(th->data_off >> 4) * 4;
		if (hlen < sizeof(*th) || end - l4 < hlen)
			return 0;
		tcp_flags = th->tcp_flags;
	} else if (proto == IPPROTO_UDP) {
		const struct rte_udp_hdr *uh = (const struct rte_udp_hdr *)(data + l4);

		hlen = sizeof(*uh);
		if (end - l4 < hlen || rte_be_to_cpu_16(uh->dgram_len) < hlen ||
		    rte_be_to_cpu_16(uh->dgram_len) > end - l4)
			return 0;
	} else {
		return 0;
	}
	*out = (struct fo_decoded){
		.offset = { 0, (uint16_t)l3, (uint16_t)l4, (uint16_t)(l4 + hlen) },
		.end = (uint16_t)end,
		.ether_type = ether_type,
		.vlan_tci = vlan_tci,
		.ip_proto = proto,
		.tcp_flags = tcp_flags,
		.flags = flags,
		.sport = be16_at(data + l4),
		.dport = be16_at(data + l4 + 2),
	};
	return 1;
}

#endif /* FO_DECODE_COMMON_H */
