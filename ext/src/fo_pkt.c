/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packets as the engine handles them, below everything that keeps or processes them: their
 * metadata (registered dynamic mbuf fields) filled in by decoding, their bytes written, spliced
 * (the one function that changes a payload's length), pulled up into the first segment or
 * copied into new packets, and their lengths and checksums made right after an edit.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "fo_engine_priv.h"

int fo_pkt_meta_offset = -1;
int fo_pkt_seq_offset = -1;

int
fo_pkt_meta_register(void)
{
	static const struct rte_mbuf_dynfield meta = {
		.name = "flowos_pkt_meta", .size = sizeof(struct fo_pkt_meta),
		.align = __alignof__(struct fo_pkt_meta),
	};
	static const struct rte_mbuf_dynfield seq = {
		.name = "flowos_pkt_seq", .size = sizeof(uint32_t), .align = __alignof__(uint32_t),
	};

	if (fo_pkt_meta_offset < 0)
		fo_pkt_meta_offset = rte_mbuf_dynfield_register(&meta);
	if (fo_pkt_seq_offset < 0)
		fo_pkt_seq_offset = rte_mbuf_dynfield_register(&seq);
	return fo_pkt_meta_offset < 0 || fo_pkt_seq_offset < 0 ? -rte_errno : 0;
}

/* Where the last level found starts: the headers' end (a transport's payload follows its header). */
static uint32_t
headers_end(const struct fo_decoded *d)
{
	uint32_t end = 0;
	int l;

	for (l = 0; l < FO_LEVEL_COUNT; l++)
		if (d->offset[l] != FO_NO_LEVEL)
			end = RTE_MAX(end, (uint32_t)d->offset[l]);
	return end;
}

/*
 * Decodes m into its metadata and *d; returns 0, or the decode error for a malformed packet. A
 * packet whose headers cannot all be brought into its first segment is decoded from that
 * segment alone: truncated. The common case decodes inline (fo_decode_common.h), in one pass
 * (and in the burst loop without a call: fo_pkt_decode_inline).
 */
int
fo_pkt_decode(struct fo_engine *e, struct rte_mbuf *m, uint16_t out_port, struct fo_decoded *d)
{
	const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = RTE_MIN((uint32_t)rte_pktmbuf_data_len(m), (uint32_t)FO_DECODE_MAX_LEN);

	/* Lengths are checked against the whole packet: a long one comes in several segments. */
	if (unlikely(m->nb_segs > 1)) {
		len = RTE_MIN(rte_pktmbuf_pkt_len(m), (uint32_t)FO_DECODE_MAX_LEN);
		data = rte_pktmbuf_read(m, 0, len, e->linear);
		fo_decode(data, len, d);
		/* Headers are read and written in the first segment: the ones past it move there. */
		if (fo_pkt_pullup(m, headers_end(d)) != 0)
			fo_decode(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), d);
	} else if (!fo_decode_common(data, len, d)) {
		fo_decode_general(data, len, d);
	}
	fo_pkt_meta_fill(m, d, out_port);
	return d->error;
}

/* Overwrites n bytes of m at frame offset at, across segments. */
void
fo_pkt_write(struct rte_mbuf *m, uint32_t at, const uint8_t *data, uint32_t n)
{
	struct rte_mbuf *seg;

	for (seg = m; seg != NULL && n > 0; seg = seg->next) {
		uint32_t k;

		if (at >= seg->data_len) {
			at -= seg->data_len;
			continue;
		}
		k = RTE_MIN(n, (uint32_t)seg->data_len - at);
		memcpy(rte_pktmbuf_mtod_offset(seg, uint8_t *, at), data, k);
		data += k;
		n -= k;
		at = 0;
	}
}

/* A place in a chain: a segment and an offset in it. */
struct seg_pos {
	struct rte_mbuf *seg;
	uint32_t at;
};

static void
seg_seek(struct rte_mbuf *m, uint32_t off, struct seg_pos *p)
{
	p->seg = m;
	while (p->seg != NULL && off >= p->seg->data_len) {
		off -= p->seg->data_len;
		p->seg = p->seg->next;
	}
	p->at = off;
}

static void
seg_advance(struct seg_pos *p, uint32_t k)
{
	p->at += k;
	if (p->at == p->seg->data_len) {
		p->seg = p->seg->next;
		p->at = 0;
	}
}

/* Moves the n bytes at frame offset from back to offset to (to < from), across segments. */
static void
pkt_move_back(struct rte_mbuf *m, uint32_t to, uint32_t from, uint32_t n)
{
	struct seg_pos w, r;

	if (n == 0)
		return;
	seg_seek(m, to, &w);
	seg_seek(m, from, &r);
	while (n > 0) {
		uint32_t k = RTE_MIN(n, RTE_MIN(w.seg->data_len - w.at, r.seg->data_len - r.at));

		memmove(rte_pktmbuf_mtod_offset(w.seg, uint8_t *, w.at), rte_pktmbuf_mtod_offset(r.seg, uint8_t *, r.at), k);
		n -= k;
		seg_advance(&w, k);
		seg_advance(&r, k);
	}
}

/* Cuts m to its first len bytes, freeing the segments past them. */
static void
pkt_truncate(struct rte_mbuf *m, uint32_t len)
{
	struct rte_mbuf *seg = m;
	uint32_t kept = 0;
	uint16_t n = 1;

	while (kept + seg->data_len < len && seg->next != NULL) {
		kept += seg->data_len;
		seg = seg->next;
		n++;
	}
	seg->data_len = len - kept;
	if (seg->next != NULL) {
		rte_pktmbuf_free(seg->next);
		seg->next = NULL;
	}
	m->nb_segs = n;
	m->pkt_len = len;
}

int
fo_pkt_splice(struct rte_mempool *pool, struct rte_mbuf *m, uint32_t at, uint32_t del, const void *ins, uint32_t ins_len)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint32_t end = meta->end, total, done, room;
	struct rte_mbuf *segs[RTE_MBUF_MAX_NB_SEGS], *prev;
	uint16_t n_segs = 0, s;
	uint8_t *tmp;

	if (at + del > end || at > rte_pktmbuf_pkt_len(m))
		return -ERANGE;
	total = end - del + ins_len;
	if (total > FO_DECODE_MAX_LEN)
		return -EMSGSIZE;
	if (ins_len <= del) {
		/* No longer: the bytes after move back in place, in any number of segments. */
		fo_pkt_write(m, at, ins, ins_len);
		pkt_move_back(m, at + ins_len, at + del, end - at - del);
		pkt_truncate(m, total);    /* Ethernet padding after the IP packet goes */
		meta->end = total;
		return 0;
	}
	if (m->nb_segs == 1 && (uint32_t)m->data_off + total <= m->buf_len) {
		uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);

		memmove(d + at + ins_len, d + at + del, end - at - del);
		memcpy(d + at, ins, ins_len);
		m->data_len = total;
		m->pkt_len = total;
		meta->end = total;
		return 0;
	}
	/* It does not fit in place: gather the new bytes, then lay them over m and new segments. */
	room = m->buf_len - m->data_off;
	while (room + (uint32_t)n_segs * (rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM) < total) {
		if (n_segs + 1 == RTE_MBUF_MAX_NB_SEGS || (segs[n_segs] = rte_pktmbuf_alloc(pool)) == NULL) {
			for (s = 0; s < n_segs; s++)
				rte_pktmbuf_free(segs[s]);
			return -ENOMEM;
		}
		n_segs++;
	}
	tmp = malloc(total);
	if (tmp == NULL) {
		for (s = 0; s < n_segs; s++)
			rte_pktmbuf_free(segs[s]);
		return -ENOMEM;
	}
	pkt_copy_out(m, 0, at, tmp);
	memcpy(tmp + at, ins, ins_len);
	pkt_copy_out(m, at + del, end - at - del, tmp + at + ins_len);
	if (m->next != NULL)
		rte_pktmbuf_free(m->next);
	m->next = NULL;
	done = RTE_MIN(total, room);
	memcpy(rte_pktmbuf_mtod(m, uint8_t *), tmp, done);
	m->data_len = done;
	m->nb_segs = 1;
	prev = m;
	for (s = 0; s < n_segs; s++) {
		struct rte_mbuf *seg = segs[s];
		uint32_t n = RTE_MIN(total - done, (uint32_t)rte_pktmbuf_tailroom(seg));

		memcpy(rte_pktmbuf_mtod(seg, uint8_t *), tmp + done, n);
		seg->data_len = n;
		done += n;
		prev->next = seg;
		prev = seg;
		m->nb_segs++;
	}
	free(tmp);
	m->pkt_len = total;
	meta->end = total;
	return 0;
}

int
fo_pkt_pullup(struct rte_mbuf *m, uint32_t len)
{
	if (len <= m->data_len)
		return 0;
	if (len > rte_pktmbuf_pkt_len(m) || (uint32_t)m->data_off + len > m->buf_len || RTE_MBUF_CLONED(m))
		return -ENOSPC;
	while (m->data_len < len) {
		struct rte_mbuf *seg = m->next;
		uint32_t k = RTE_MIN(len - m->data_len, (uint32_t)seg->data_len);

		memcpy(rte_pktmbuf_mtod_offset(m, uint8_t *, m->data_len), rte_pktmbuf_mtod(seg, uint8_t *), k);
		m->data_len += k;
		seg->data_off += k;
		seg->data_len -= k;
		if (seg->data_len == 0) {
			m->next = seg->next;
			seg->next = NULL;
			seg->nb_segs = 1;
			rte_pktmbuf_free_seg(seg);
			m->nb_segs--;
		}
	}
	return 0;
}

struct rte_mbuf *
fo_pkt_build(struct rte_mempool *pool, const struct rte_mbuf *m, uint32_t hdr, uint32_t off, uint32_t len)
{
	struct rte_mbuf *head = NULL, *tail = NULL, *seg;
	uint32_t total = hdr + len, done = 0;

	do {
		uint32_t n, k;
		uint8_t *d;

		seg = rte_pktmbuf_alloc(pool);
		if (seg == NULL)
			goto fail;
		n = RTE_MIN(total - done, (uint32_t)rte_pktmbuf_tailroom(seg));
		if ((head == NULL && n < hdr) || (head != NULL && head->nb_segs == RTE_MBUF_MAX_NB_SEGS))
			goto fail;   /* the headers go in the first segment */
		d = rte_pktmbuf_mtod(seg, uint8_t *);
		k = done < hdr ? RTE_MIN(n, hdr - done) : 0;
		pkt_copy_out(m, done, k, d);
		pkt_copy_out(m, off + done + k - hdr, n - k, d + k);
		seg->data_len = n;
		done += n;
		if (head == NULL) {
			head = seg;
		} else {
			tail->next = seg;
			head->nb_segs++;
		}
		tail = seg;
	} while (done < total);
	head->pkt_len = total;
	return head;
fail:
	rte_pktmbuf_free(seg);
	rte_pktmbuf_free(head);
	return NULL;
}

/* Sets the IP header's length to say the packet ends at end. */
void
fo_pkt_set_ip_end(struct rte_mbuf *m, uint32_t end)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint16_t l3 = meta->offset[FO_LEVEL_L3];

	if (meta->flags & FO_PKT_IPV4)
		rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, l3)->total_length = rte_cpu_to_be_16(end - l3);
	else if (meta->flags & FO_PKT_IPV6)
		rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, l3)->payload_len =
			rte_cpu_to_be_16(end - l3 - sizeof(struct rte_ipv6_hdr));
}

void
fo_fix_lengths(struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint16_t l4 = meta->offset[FO_LEVEL_L4];

	fo_pkt_set_ip_end(m, meta->end);
	if (meta->ip_proto == IPPROTO_UDP && l4 != FO_NO_LEVEL && !(meta->flags & FO_PKT_FRAGMENT))
		rte_pktmbuf_mtod_offset(m, struct rte_udp_hdr *, l4)->dgram_len = rte_cpu_to_be_16(meta->end - l4);
}

/*
 * The ones' complement sum of m's len bytes at off, across segments. (DPDK 22.11's
 * rte_raw_cksum_mbuf drops the carries of a segment that starts at an odd offset.)
 */
static uint16_t
raw_sum(const struct rte_mbuf *m, uint32_t off, uint32_t len)
{
	uint32_t sum = 0, done = 0;

	while (m != NULL && off >= m->data_len) {
		off -= m->data_len;
		m = m->next;
	}
	for (; m != NULL && done < len; m = m->next, off = 0) {
		uint32_t n = RTE_MIN(len - done, (uint32_t)m->data_len - off);
		uint16_t part = rte_raw_cksum(rte_pktmbuf_mtod_offset(m, const uint8_t *, off), n);

		sum += done & 1 ? rte_bswap16(part) : part;   /* its bytes sit in the other half of each word */
		done += n;
	}
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)((sum & 0xffff) + (sum >> 16));
}

/* The TCP/UDP/ICMP checksum over l4..end plus the pseudo-header sum, in any number of segments. */
static uint16_t
l4_checksum(const struct rte_mbuf *m, uint16_t l4, uint16_t end, uint16_t pseudo)
{
	uint32_t sum;

	if (end <= l4)
		return 0;
	sum = (uint32_t)raw_sum(m, l4, end - l4) + pseudo;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (~sum) & 0xffff;
	return sum == 0 ? 0xffff : (uint16_t)sum;
}

/*
 * The destination an IPv6 upper-layer checksum covers (RFC 8200, 8.1): the packet's, or the last
 * one of a routing header with segments left (types 2 and 4 name it first, at offset 8). NULL
 * behind a routing header of another type: its checksum cannot be known here.
 */
static const uint8_t *
ipv6_checksum_dst(struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint16_t l3 = meta->offset[FO_LEVEL_L3], l4 = meta->offset[FO_LEVEL_L4];
	const struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod_offset(m, const struct rte_ipv6_hdr *, l3);
	const uint8_t *h = (const uint8_t *)(ip + 1), *end = rte_pktmbuf_mtod_offset(m, const uint8_t *, l4);
	uint8_t next = ip->proto;

	/* The decoder walked this chain to find l4: every header lies whole before it. */
	while (h + 8 <= end && next != meta->ip_proto) {
		uint32_t len = next == IPPROTO_AH ? ((uint32_t)h[1] + 2) * 4 : ((uint32_t)h[1] + 1) * 8;

		if (next == IPPROTO_ROUTING && h[3] > 0) {
			if ((h[2] != 2 && h[2] != 4) || h + 24 > end)
				return NULL;
			return h + 8;
		}
		next = h[0];
		h += len;
	}
	return ip->dst_addr;
}

/* The IPv6 pseudo-header's sum: the upper layer's own length and protocol, not the IP header's. */
static uint16_t
ipv6_pseudo_sum(const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t proto)
{
	struct {
		uint8_t src[16], dst[16];
		rte_be32_t len, proto;
	} psd;

	memcpy(psd.src, src, 16);
	memcpy(psd.dst, dst, 16);
	psd.len = rte_cpu_to_be_32(len);
	psd.proto = rte_cpu_to_be_32(proto);
	return rte_raw_cksum(&psd, sizeof(psd));
}

/* Where m's transport checksum lies after its l4 offset; 0 for none kept here. */
static uint16_t
transport_cksum_at(const struct fo_pkt_meta *meta)
{
	switch (meta->ip_proto) {
	case IPPROTO_TCP:
		return offsetof(struct rte_tcp_hdr, cksum);
	case IPPROTO_UDP:
		return offsetof(struct rte_udp_hdr, dgram_cksum);
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 2;
	default:
		return 0;
	}
}

int
fo_checksums_fixable(struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);

	if (transport_cksum_at(meta) == 0)
		return 1;                    /* no transport checksum to keep right */
	/* A fragment's transport checksum covers the whole datagram and lies in its first fragment. */
	if (meta->flags & FO_PKT_FRAGMENT)
		return 0;
	return !(meta->flags & FO_PKT_IPV6) || meta->offset[FO_LEVEL_L4] == FO_NO_LEVEL || ipv6_checksum_dst(m) != NULL;
}

/* What fo_fix_checksums may leave to a port's device: bits of e->tx_checksums. */
#define TX_CSUM_IPV4    1u
#define TX_CSUM_TCP     2u
#define TX_CSUM_UDP     4u
#define TX_CSUM_UNKNOWN 0xffu   /* not asked yet */
#define TX_CSUM_FLAGS (RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IPV6)

void
fo_tx_checksums_reset(struct fo_engine *e)
{
	memset(e->tx_checksums, TX_CSUM_UNKNOWN, sizeof(e->tx_checksums));
}

/*
 * The TX checksum offloads port p was configured with (fo_port.c turns them on where the device
 * has them and the user did not say off), asked of ethdev once: its configuration is in shared
 * memory, so a worker process reads what the primary set. A port this process cannot reach does none.
 */
static uint8_t
tx_checksums(struct fo_engine *e, uint16_t port)
{
	struct rte_eth_conf conf;
	uint64_t on;

	if (likely(e->tx_checksums[port] != TX_CSUM_UNKNOWN))
		return e->tx_checksums[port];
	on = rte_eth_dev_conf_get(port, &conf) == 0 ? conf.txmode.offloads : 0;
	e->tx_checksums[port] = ((on & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) ? TX_CSUM_IPV4 : 0) |
				((on & RTE_ETH_TX_OFFLOAD_TCP_CKSUM) ? TX_CSUM_TCP : 0) |
				((on & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) ? TX_CSUM_UDP : 0);
	return e->tx_checksums[port];
}

/*
 * The ol_flags bit that has the device compute m's TCP or UDP checksum, or 0 where software must:
 * the port cannot, the packet is chained (devices differ in how far into a chain they sum), or it
 * has IPv6 extension headers (a device sums the pseudo-header from the fixed header alone).
 */
static uint64_t
l4_offload(uint8_t offloads, const struct fo_pkt_meta *meta, const struct rte_mbuf *m, uint16_t l3, uint16_t l4)
{
	if (m->nb_segs != 1 || ((meta->flags & FO_PKT_IPV6) && l4 - l3 != sizeof(struct rte_ipv6_hdr)))
		return 0;
	if (meta->ip_proto == IPPROTO_TCP && (offloads & TX_CSUM_TCP))
		return RTE_MBUF_F_TX_TCP_CKSUM;
	if (meta->ip_proto == IPPROTO_UDP && (offloads & TX_CSUM_UDP))
		return RTE_MBUF_F_TX_UDP_CKSUM;
	return 0;
}

void
fo_fix_checksums(struct fo_engine *e, struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint16_t l3 = meta->offset[FO_LEVEL_L3], l4 = meta->offset[FO_LEVEL_L4];
	/* A fragment's transport checksum covers the whole datagram: it cannot be fixed here. */
	uint16_t at = (meta->flags & FO_PKT_FRAGMENT) || l4 == FO_NO_LEVEL ? 0 : transport_cksum_at(meta);
	uint16_t pseudo = 0, *cksum = NULL;
	/* l2_len holds 7 bits: a longer way to the IP header (tags, labels, tunnels) stays in software. */
	uint8_t offloads = l3 <= 127 ? tx_checksums(e, meta->out_port) : 0;
	uint64_t ol = 0, l4_flag = 0;
	uint16_t l3_len = 0;

	fo_fix_lengths(m);   /* a stream edit may have changed the payload's length */
	if (at != 0) {
		cksum = (uint16_t *)(rte_pktmbuf_mtod_offset(m, uint8_t *, l4) + at);
		/* UDP over IPv4 may go without a checksum (0): it stays without. */
		if (meta->ip_proto == IPPROTO_UDP && (meta->flags & FO_PKT_IPV4) && *cksum == 0)
			cksum = NULL;
	}
	if (meta->flags & FO_PKT_IPV4) {
		struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, l3);

		ip->hdr_checksum = 0;
		l3_len = rte_ipv4_hdr_len(ip);
		if (offloads & TX_CSUM_IPV4)
			ol |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
		else
			ip->hdr_checksum = rte_ipv4_cksum(ip);
		if (meta->ip_proto != IPPROTO_ICMP)   /* ICMPv4 sums its own bytes only */
			pseudo = rte_ipv4_phdr_cksum(ip, 0);
	} else if ((meta->flags & FO_PKT_IPV6) && cksum != NULL) {
		const uint8_t *dst = ipv6_checksum_dst(m);

		if (dst == NULL)
			cksum = NULL;   /* edits of such packets are refused (fo_stream.c) */
		else
			pseudo = ipv6_pseudo_sum(rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, l3)->src_addr, dst,
						 meta->end - l4, meta->ip_proto);
	}
	if (cksum != NULL && offloads != 0)
		l4_flag = l4_offload(offloads, meta, m, l3, l4);
	if (l4_flag != 0) {
		*cksum = pseudo;   /* the device adds the segment's own sum to this */
		ol |= l4_flag | ((meta->flags & FO_PKT_IPV4) ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6);
		l3_len = l4 - l3;
		m->l4_len = meta->ip_proto == IPPROTO_TCP ?
			(rte_pktmbuf_mtod_offset(m, struct rte_tcp_hdr *, l4)->data_off >> 4) * 4 : sizeof(struct rte_udp_hdr);
	} else if (cksum != NULL) {
		*cksum = 0;
		*cksum = l4_checksum(m, l4, meta->end, pseudo);
	}
	if (ol != 0 || (m->ol_flags & TX_CSUM_FLAGS))   /* a packet fixed before for another port: its flags go */
		m->ol_flags = (m->ol_flags & ~TX_CSUM_FLAGS) | ol;
	if (ol != 0) {
		m->l2_len = l3;
		m->l3_len = l3_len;
		RELAXED_ADD(e->stats.checksums_offloaded, 1);
	}
	RELAXED_ADD(e->stats.checksums_fixed, 1);
}

