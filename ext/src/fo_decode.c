/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The packet decoder: where each protocol level of a frame starts. It runs for every packet,
 * so it reads each header once, loops only over VLAN tags and IPv6 extension headers (both
 * bounded), calls no library function, and never touches a byte before checking that it lies
 * below the limit it was given.
 *
 * Two limits are used. Up to the IP header it is the frame length; from there on it is the end
 * of the IP packet (IPv4 total length, IPv6 payload length), so that Ethernet padding is never
 * taken for a transport header or payload. Offsets are kept in uint32_t while they are worked
 * on: they are bounded by FO_DECODE_MAX_LEN plus one header, so sums cannot wrap, and
 * `limit - off` is never negative because off never passes limit.
 */
#include <errno.h>
#include <stddef.h>

#include <rte_branch_prediction.h>
#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_sctp.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "flowos/fo_decode.h"
#include "fo_decode_common.h"

/*
 * Every ICMPv4 and ICMPv6 message has at least type, code, checksum and 4 more bytes (an echo's
 * id and sequence, an error's unused/MTU/pointer word): rte_icmp_hdr's size, for both.
 */
#define ICMP_HDR_LEN sizeof(struct rte_icmp_hdr)

static const char *const error_names[FO_DECODE_ERROR_COUNT] = {
	[FO_DECODE_OK] = "ok",
	[FO_DECODE_TRUNCATED_L2] = "truncated_l2",
	[FO_DECODE_TRUNCATED_L3] = "truncated_l3",
	[FO_DECODE_BAD_L3] = "bad_l3",
	[FO_DECODE_TRUNCATED_L4] = "truncated_l4",
	[FO_DECODE_BAD_L4] = "bad_l4",
};

/* The ports, first in TCP, UDP and SCTP headers alike; the caller checked they are there. */
static inline void
set_ports(const uint8_t *l4, struct fo_decoded *out)
{
	const struct rte_udp_hdr *ports = (const struct rte_udp_hdr *)l4;

	out->sport = rte_be_to_cpu_16(ports->src_port);
	out->dport = rte_be_to_cpu_16(ports->dst_port);
	out->flags |= FO_PKT_L4_PORTS;
}

static enum fo_decode_error
decode_tcp(const uint8_t *data, uint32_t off, uint32_t end, struct fo_decoded *out)
{
	const struct rte_tcp_hdr *th = (const struct rte_tcp_hdr *)(data + off);
	uint32_t hlen;

	if (end - off < sizeof(*th))
		return FO_DECODE_TRUNCATED_L4;
	set_ports(data + off, out);
	out->tcp_flags = th->tcp_flags;
	/* Data offset, in 32-bit words, in the upper nibble. */
	hlen = (uint32_t)(th->data_off >> 4) * 4;
	if (hlen < sizeof(*th))
		return FO_DECODE_BAD_L4;
	if (end - off < hlen)
		return FO_DECODE_TRUNCATED_L4;
	out->offset[FO_LEVEL_PAYLOAD] = off + hlen;
	return FO_DECODE_OK;
}

static enum fo_decode_error
decode_udp(const uint8_t *data, uint32_t off, uint32_t end, struct fo_decoded *out)
{
	const struct rte_udp_hdr *uh = (const struct rte_udp_hdr *)(data + off);
	uint32_t dgram_len;

	if (end - off < sizeof(*uh))
		return FO_DECODE_TRUNCATED_L4;
	set_ports(data + off, out);
	dgram_len = rte_be_to_cpu_16(uh->dgram_len);
	if (dgram_len < sizeof(*uh))
		return FO_DECODE_BAD_L4;
	/*
	 * A first fragment holds only part of the datagram its length counts. Shorter than the IP
	 * payload is allowed (what follows is not UDP's), longer is not.
	 */
	if (!(out->flags & FO_PKT_FRAGMENT) && dgram_len > end - off)
		return FO_DECODE_BAD_L4;
	out->offset[FO_LEVEL_PAYLOAD] = off + sizeof(*uh);
	return FO_DECODE_OK;
}

/* Transport header at data[off], within data[0..end); out->ip_proto says which. */
static enum fo_decode_error
decode_l4(const uint8_t *data, uint32_t off, uint32_t end, struct fo_decoded *out)
{
	out->offset[FO_LEVEL_L4] = off;
	switch (out->ip_proto) {
	case IPPROTO_TCP:
		return decode_tcp(data, off, end, out);
	case IPPROTO_UDP:
		return decode_udp(data, off, end, out);
	case IPPROTO_SCTP:
		if (end - off < sizeof(struct rte_sctp_hdr))
			return FO_DECODE_TRUNCATED_L4;
		set_ports(data + off, out);
		out->offset[FO_LEVEL_PAYLOAD] = off + sizeof(struct rte_sctp_hdr);
		return FO_DECODE_OK;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (end - off < ICMP_HDR_LEN)
			return FO_DECODE_TRUNCATED_L4;
		out->offset[FO_LEVEL_PAYLOAD] = off + ICMP_HDR_LEN;
		return FO_DECODE_OK;
	default:
		/* A transport we do not know: the payload is all of it, its header included. */
		out->offset[FO_LEVEL_PAYLOAD] = off;
		return FO_DECODE_OK;
	}
}

static enum fo_decode_error
decode_ipv4(const uint8_t *data, uint32_t len, uint32_t off, struct fo_decoded *out)
{
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(data + off);
	uint32_t hlen, total;
	uint16_t frag;

	out->flags |= FO_PKT_IPV4;
	if (len - off < sizeof(*ip))
		return FO_DECODE_TRUNCATED_L3;
	hlen = (uint32_t)(ip->version_ihl & RTE_IPV4_HDR_IHL_MASK) * RTE_IPV4_IHL_MULTIPLIER;
	if ((ip->version_ihl >> 4) != 4 || hlen < sizeof(*ip))
		return FO_DECODE_BAD_L3;
	if (len - off < hlen)
		return FO_DECODE_TRUNCATED_L3;
	/* Less than the frame holds is Ethernet padding; more means the packet was cut. */
	total = rte_be_to_cpu_16(ip->total_length);
	if (total < hlen || total > len - off)
		return FO_DECODE_BAD_L3;
	out->end = (uint16_t)(off + total);
	out->ip_proto = ip->next_proto_id;

	frag = rte_be_to_cpu_16(ip->fragment_offset);
	if (frag & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
		out->flags |= FO_PKT_FRAGMENT;
		out->frag_id = rte_be_to_cpu_16(ip->packet_id);
		out->frag_offset = (frag & RTE_IPV4_HDR_OFFSET_MASK) * RTE_IPV4_HDR_OFFSET_UNITS;
		/* Only the first fragment carries the transport header. */
		if (out->frag_offset != 0) {
			out->offset[FO_LEVEL_PAYLOAD] = off + hlen;
			return FO_DECODE_OK;
		}
		out->flags |= FO_PKT_FIRST_FRAG;
	}
	return decode_l4(data, off + hlen, out->end, out);
}

/*
 * The fragment header of an IPv6 packet at data[off]; enough bytes are there. Returns whether
 * the transport header follows (the packet is whole, or this is its first fragment).
 */
static int
ipv6_fragment(const struct rte_ipv6_fragment_ext *fh, struct fo_decoded *out)
{
	uint16_t frag = rte_be_to_cpu_16(fh->frag_data);

	/* Offset 0 without more fragments is an atomic fragment: a whole packet (RFC 6946). */
	if ((frag & RTE_IPV6_FRAG_USED_MASK) == 0)
		return 1;
	out->flags |= FO_PKT_FRAGMENT;
	out->frag_id = rte_be_to_cpu_32(fh->id);
	out->frag_offset = RTE_IPV6_GET_FO(frag) * RTE_IPV6_EHDR_FO_ALIGN;
	if (out->frag_offset != 0)
		return 0;
	out->flags |= FO_PKT_FIRST_FRAG;
	return 1;
}

static enum fo_decode_error
decode_ipv6(const uint8_t *data, uint32_t len, uint32_t off, struct fo_decoded *out)
{
	const struct rte_ipv6_hdr *ip = (const struct rte_ipv6_hdr *)(data + off);
	uint32_t end, hlen;
	unsigned int n;
	uint8_t next;

	out->flags |= FO_PKT_IPV6;
	if (len - off < sizeof(*ip))
		return FO_DECODE_TRUNCATED_L3;
	if ((data[off] >> 4) != 6)
		return FO_DECODE_BAD_L3;
	end = off + sizeof(*ip) + rte_be_to_cpu_16(ip->payload_len);
	if (end > len)
		return FO_DECODE_BAD_L3;
	out->end = (uint16_t)end;
	next = ip->proto;
	off += sizeof(*ip);

	/*
	 * The extension header chain, up to FO_DECODE_MAX_EXT headers: one more turn lets the
	 * header after the last allowed one be a transport.
	 */
	for (n = 0; n <= FO_DECODE_MAX_EXT; n++) {
		switch (next) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			/* Next header, then the length in 8-byte units, not counting the first 8. */
			if (end - off < 2)
				return FO_DECODE_TRUNCATED_L3;
			hlen = ((uint32_t)data[off + 1] + 1) * 8;
			break;
		case IPPROTO_AH:
			/* AH counts in 4-byte units, not counting the first 8 (RFC 4302). */
			if (end - off < 2)
				return FO_DECODE_TRUNCATED_L3;
			hlen = ((uint32_t)data[off + 1] + 2) * 4;
			break;
		case IPPROTO_FRAGMENT:
			hlen = sizeof(struct rte_ipv6_fragment_ext);
			if (end - off < hlen)
				return FO_DECODE_TRUNCATED_L3;
			if (!ipv6_fragment((const struct rte_ipv6_fragment_ext *)(data + off), out)) {
				/* A later fragment: its next header names what the first one holds. */
				out->ip_proto = data[off];
				out->offset[FO_LEVEL_PAYLOAD] = off + hlen;
				return FO_DECODE_OK;
			}
			break;
		default:
			/* A transport, ESP (50), no next header (59) or one we do not know. */
			out->ip_proto = next;
			return decode_l4(data, off, end, out);
		}
		if (end - off < hlen)
			return FO_DECODE_TRUNCATED_L3;
		next = data[off];
		off += hlen;
	}
	return FO_DECODE_BAD_L3;
}

/*
 * Ethernet and up to FO_DECODE_MAX_VLAN tags. Sets where L3 starts in *l3 and the innermost
 * ether type, which a deeper tag stack leaves at the next tag's TPID.
 */
static enum fo_decode_error
decode_l2(const uint8_t *data, uint32_t len, struct fo_decoded *out, uint32_t *l3)
{
	const struct rte_vlan_hdr *vlan;
	uint32_t off = sizeof(struct rte_ether_hdr);
	uint16_t ether_type;
	unsigned int n;

	if (len < off)
		return FO_DECODE_TRUNCATED_L2;
	ether_type = be16_at(data + offsetof(struct rte_ether_hdr, ether_type));
	for (n = 0; n < FO_DECODE_MAX_VLAN && is_vlan_tpid(ether_type); n++) {
		if (len - off < sizeof(*vlan))
			return FO_DECODE_TRUNCATED_L2;
		vlan = (const struct rte_vlan_hdr *)(data + off);
		if (n == 0) {
			out->flags |= FO_PKT_VLAN;
			out->vlan_tci = rte_be_to_cpu_16(vlan->vlan_tci);
		}
		ether_type = rte_be_to_cpu_16(vlan->eth_proto);
		off += sizeof(*vlan);
	}
	out->ether_type = ether_type;
	*l3 = off;
	return FO_DECODE_OK;
}

/*
 * Every frame: what fo_decode.h promises. len is at most FO_DECODE_MAX_LEN. Kept out of line,
 * so that fo_decode() stays the straight path and a call.
 */
static __rte_noinline int
decode_general(const uint8_t *data, uint32_t len, struct fo_decoded *out)
{
	enum fo_decode_error err;
	uint32_t l3;

	*out = (struct fo_decoded){
		.offset = { 0, FO_NO_LEVEL, FO_NO_LEVEL, FO_NO_LEVEL },
		.end = (uint16_t)len,
	};

	err = decode_l2(data, len, out, &l3);
	if (err == FO_DECODE_OK) {
		out->offset[FO_LEVEL_L3] = (uint16_t)l3;
		switch (out->ether_type) {
		case RTE_ETHER_TYPE_IPV4:
			err = decode_ipv4(data, len, l3, out);
			break;
		case RTE_ETHER_TYPE_IPV6:
			err = decode_ipv6(data, len, l3, out);
			break;
		default:
			/* ARP and the like: the level after L2 is all there is. */
			break;
		}
	}
	if (err != FO_DECODE_OK) {
		out->flags |= FO_PKT_MALFORMED;
		out->error = (uint8_t)err;
		return -EINVAL;
	}
	return 0;
}

int
fo_decode(const uint8_t *data, uint32_t len, struct fo_decoded *out)
{
	/* Offsets are 16 bits; an mbuf segment never holds more than this anyway. */
	if (len > FO_DECODE_MAX_LEN)
		len = FO_DECODE_MAX_LEN;
	if (likely(fo_decode_common(data, len, out)))
		return 0;
	return decode_general(data, len, out);
}

int
fo_decode_general(const uint8_t *data, uint32_t len, struct fo_decoded *out)
{
	if (len > FO_DECODE_MAX_LEN)
		len = FO_DECODE_MAX_LEN;
	return decode_general(data, len, out);
}

const char *
fo_decode_error_name(enum fo_decode_error error)
{
	if ((unsigned int)error >= FO_DECODE_ERROR_COUNT)
		return "unknown";
	return error_names[error];
}
