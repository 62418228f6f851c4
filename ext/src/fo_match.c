/* SPDX-License-Identifier: BSD-3-Clause */
#include <string.h>

#include <rte_byteorder.h>

#include "flowos/fo_match.h"
#include "flowos/fo_processor.h"

static int
prefix_equal(const uint8_t *a, const uint8_t *b, uint8_t bits)
{
	uint8_t whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[whole] ^ b[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int
fo_match_test(const struct fo_match *m, const struct fo_match_fields *f)
{
	uint32_t on = m->fields;

	if ((on & FO_MATCH_IN_PORT) && f->in_port != m->in_port)
		return 0;
	if ((on & FO_MATCH_SRC_MAC) && memcmp(f->src_mac, m->src_mac, 6) != 0)
		return 0;
	if ((on & FO_MATCH_DST_MAC) && memcmp(f->dst_mac, m->dst_mac, 6) != 0)
		return 0;
	if (m->family != FO_FAMILY_ANY && f->family != m->family)
		return 0;
	if ((on & FO_MATCH_SRC_IP) && !prefix_equal(f->src_ip, m->src_ip, m->src_prefix))
		return 0;
	if ((on & FO_MATCH_DST_IP) && !prefix_equal(f->dst_ip, m->dst_ip, m->dst_prefix))
		return 0;
	if ((on & FO_MATCH_PROTO) && f->proto != m->proto)
		return 0;
	if ((on & FO_MATCH_SRC_PORT) && (f->src_port < m->src_port_lo || f->src_port > m->src_port_hi))
		return 0;
	if ((on & FO_MATCH_DST_PORT) && (f->dst_port < m->dst_port_lo || f->dst_port > m->dst_port_hi))
		return 0;
	return 1;
}

/*
 * An IPv4 address into a 16-byte field (then zeros) with one 16-byte store: the classifier and the
 * flow key read the field back at once with 8- and 16-byte loads, which a 4-byte copy and a
 * 12-byte memset would make wait for their stores (no store forwarding across several stores).
 */
static inline void
ipv4_in_16(uint8_t field[16], const uint8_t *addr)
{
	uint32_t a;
	uint64_t words[2];

	memcpy(&a, addr, 4);
	/* The address's 4 bytes first in memory, whatever the byte order. */
	words[0] = RTE_BYTE_ORDER == RTE_LITTLE_ENDIAN ? (uint64_t)a : (uint64_t)a << 32;
	words[1] = 0;
	memcpy(field, words, 16);
}

/*
 * The fields of a packet whose headers start at data: l3 where IP starts, flags and ip_proto as
 * decoding found them, sport/dport the ports (used with FO_PKT_L4_PORTS).
 */
static inline void
fields_from(const uint8_t *data, uint32_t len, uint16_t l3, uint16_t flags, uint8_t ip_proto, uint16_t sport,
	    uint16_t dport, uint16_t in_port, struct fo_match_fields *f)
{
	/* Every byte is written once (no memset first): this runs for every packet. */
	f->in_port = in_port;
	if (len >= 12) {
		memcpy(f->dst_mac, data, 6);
		memcpy(f->src_mac, data + 6, 6);
	} else {
		memset(f->dst_mac, 0, 6);
		memset(f->src_mac, 0, 6);
	}
	f->proto = ip_proto;
	if (flags & FO_PKT_IPV4) {
		f->family = FO_FAMILY_IPV4;
		ipv4_in_16(f->src_ip, data + l3 + 12);
		ipv4_in_16(f->dst_ip, data + l3 + 16);
	} else if (flags & FO_PKT_IPV6) {
		f->family = FO_FAMILY_IPV6;
		memcpy(f->src_ip, data + l3 + 8, 16);
		memcpy(f->dst_ip, data + l3 + 24, 16);
	} else {
		f->family = FO_FAMILY_ANY;
		memset(f->src_ip, 0, 16);
		memset(f->dst_ip, 0, 16);
	}
	f->src_port = flags & FO_PKT_L4_PORTS ? sport : 0;
	f->dst_port = flags & FO_PKT_L4_PORTS ? dport : 0;
}

void
fo_match_fields_of(struct rte_mbuf *m, uint16_t in_port, struct fo_match_fields *f)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
	uint16_t l4 = meta->offset[FO_LEVEL_L4], sport = 0, dport = 0;
	uint16_t flags = meta->flags;

	if (l4 == FO_NO_LEVEL)
		flags &= ~FO_PKT_L4_PORTS;
	if (flags & FO_PKT_L4_PORTS) {
		sport = (uint16_t)data[l4] << 8 | data[l4 + 1];
		dport = (uint16_t)data[l4 + 2] << 8 | data[l4 + 3];
	}
	fields_from(data, rte_pktmbuf_data_len(m), meta->offset[FO_LEVEL_L3], flags, meta->ip_proto, sport, dport,
		    in_port, f);
}

void
fo_match_fields_decoded(const struct rte_mbuf *m, const struct fo_decoded *d, uint16_t in_port,
			struct fo_match_fields *f)
{
	fields_from(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), d->offset[FO_LEVEL_L3], d->flags,
		    d->ip_proto, d->sport, d->dport, in_port, f);
}
