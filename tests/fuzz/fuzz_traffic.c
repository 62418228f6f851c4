/* SPDX-License-Identifier: BSD-3-Clause */
/* Traffic for the engine targets, from the fuzz input (fuzz_traffic.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf_dyn.h>
#include <rte_tcp.h>

#include "fuzz_traffic.h"

#define BURST 32
#define CONNS 4
#define MAX_PAYLOAD 1460

static int ts_offset = -1;
static uint64_t ts_flag;

void
fuzz_traffic_init(void)
{
	if (rte_mbuf_dyn_rx_timestamp_register(&ts_offset, &ts_flag) != 0) {
		fprintf(stderr, "fuzz: cannot register the timestamp field\n");
		exit(1);
	}
}

struct conn {
	uint32_t sent[2];            /* by direction: the next sequence number it would send */
};

static void
put_addr(uint8_t *p, int v6, int side, int conn)
{
	if (v6) {
		static const uint8_t prefix[8] = { 0xfd, 0, 0, 0, 0, 0, 0, 0 };

		memcpy(p, prefix, 8);
		memset(p + 8, 0, 8);
		p[15] = (uint8_t)(1 + side);
		p[14] = (uint8_t)conn;
	} else {
		p[0] = 10, p[1] = (uint8_t)conn, p[2] = 0, p[3] = (uint8_t)(1 + side);
	}
}

/* A TCP segment (record 1) as a frame. */
static struct rte_mbuf *
segment(struct fuzz_in *in, struct conn *conns)
{
	uint8_t frame[RTE_ETHER_HDR_LEN + 40 + 24 + MAX_PAYLOAD];
	uint8_t sel = fuzz_u8(in), flags = fuzz_u8(in), *p = frame;
	int c = sel % CONNS, dir = sel >> 7 & 1, v6 = c == CONNS - 1, syn;
	int16_t seq_off = (int16_t)fuzz_u16(in), ack_off = (int16_t)fuzz_u16(in);
	uint16_t win = fuzz_u16(in), want = fuzz_u16(in) % (MAX_PAYLOAD + 1), opt_len, l3_len;
	size_t len;
	const uint8_t *payload = fuzz_bytes(in, want, &len);
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)p;
	struct rte_tcp_hdr *tcp;
	struct conn *cn = &conns[c];

	syn = flags & RTE_TCP_SYN_FLAG;
	opt_len = syn ? 4 : 0;
	memset(frame, 0, sizeof(frame));
	memset(&eth->dst_addr, 2 - dir, RTE_ETHER_ADDR_LEN);
	memset(&eth->src_addr, 1 + dir, RTE_ETHER_ADDR_LEN);
	eth->ether_type = rte_cpu_to_be_16(v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
	p += RTE_ETHER_HDR_LEN;
	l3_len = v6 ? sizeof(struct rte_ipv6_hdr) : sizeof(struct rte_ipv4_hdr);
	tcp = (struct rte_tcp_hdr *)(p + l3_len);
	tcp->src_port = rte_cpu_to_be_16(dir ? 80 : 40000 + c);
	tcp->dst_port = rte_cpu_to_be_16(dir ? 40000 + c : 80);
	tcp->sent_seq = rte_cpu_to_be_32(cn->sent[dir] + seq_off);
	tcp->recv_ack = rte_cpu_to_be_32(cn->sent[!dir] + ack_off);
	tcp->data_off = (uint8_t)(((sizeof(*tcp) + opt_len) / 4) << 4);
	tcp->tcp_flags = flags;
	tcp->rx_win = rte_cpu_to_be_16(win);
	if (syn) {
		uint8_t *o = (uint8_t *)(tcp + 1);

		o[0] = 2, o[1] = 4, o[2] = (uint8_t)(win >> 8 | 1), o[3] = (uint8_t)win;   /* MSS >= 256 */
	}
	memcpy((uint8_t *)(tcp + 1) + opt_len, payload, len);
	/* What it sent advances, so that later segments follow on unless their offset says otherwise. */
	if ((int32_t)(cn->sent[dir] + seq_off + len + !!syn - cn->sent[dir]) > 0)
		cn->sent[dir] += seq_off + (uint32_t)len + !!syn;
	if (v6) {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)p;

		ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
		ip->payload_len = rte_cpu_to_be_16((uint16_t)(sizeof(*tcp) + opt_len + len));
		ip->proto = IPPROTO_TCP;
		ip->hop_limits = 64;
		put_addr(ip->src_addr, 1, dir, c);
		put_addr(ip->dst_addr, 1, !dir, c);
		tcp->cksum = rte_ipv6_udptcp_cksum(ip, tcp);
	} else {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)p;

		ip->version_ihl = RTE_IPV4_VHL_DEF;
		ip->total_length = rte_cpu_to_be_16((uint16_t)(l3_len + sizeof(*tcp) + opt_len + len));
		ip->time_to_live = 64;
		ip->next_proto_id = IPPROTO_TCP;
		put_addr((uint8_t *)&ip->src_addr, 0, dir, c);
		put_addr((uint8_t *)&ip->dst_addr, 0, !dir, c);
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
	}
	return fuzz_mbuf(frame, RTE_ETHER_HDR_LEN + l3_len + sizeof(*tcp) + opt_len + len);
}

/* One burst through the engine; what it hands back to send goes (net_null would free it). */
static void
burst(struct fo_engine *e, const struct fuzz_traffic *t, const struct fo_route *route, struct rte_mbuf **pkts,
      uint16_t n)
{
	uint16_t back = fo_engine_burst(e, route, pkts, n);

	rte_pktmbuf_free_bulk(pkts, back);
	if (t->after_burst != NULL)
		t->after_burst(e);
}

/* Every packet in or made is out, dropped, replaced or still held (none, after the shutdown). */
void
fuzz_check_accounting(const struct fo_engine *e, const char *target)
{
	struct fo_engine_stats st;

	fo_engine_read_stats(e, &st);
	if (st.packets + st.created != st.tx_packets + st.tx_unsent + st.dropped + st.replaced + st.held ||
	    st.held != 0) {
		fprintf(stderr, "%s: %lu in + %lu created != %lu sent + %lu unsent + %lu dropped + %lu replaced + "
			"%lu held\n", target, (unsigned long)st.packets, (unsigned long)st.created,
			(unsigned long)st.tx_packets, (unsigned long)st.tx_unsent, (unsigned long)st.dropped,
			(unsigned long)st.replaced, (unsigned long)st.held);
		abort();
	}
}

void
fuzz_traffic_run(struct fo_engine *e, const uint8_t *data, size_t size, const struct fuzz_traffic *t)
{
	struct conn conns[CONNS] = { { { 0x10000000u, 0x20000000u } }, { { 0xfffff000u, 0x7ffffff0u } },
				     { { 1, 0xffffffffu } }, { { 0x40000000u, 0x50000000u } } };
	struct fo_route route = { 0 };       /* in and out of port 0, the net_null port */
	struct rte_mbuf *pending[BURST];
	struct fuzz_in in = { data, size };
	uint64_t now = 1000000000ull;
	uint16_t n = 0;

	while (in.left > 0) {
		struct rte_mbuf *m = NULL;
		size_t want, len;
		const uint8_t *bytes;

		switch (fuzz_u8(&in) % 5) {
		case 0:
			want = fuzz_u16(&in) % 9216;
			bytes = fuzz_bytes(&in, want, &len);
			m = t->chains ? fuzz_mbuf_chain(bytes, len) : fuzz_mbuf(bytes, len);
			break;
		case 1:
			m = segment(&in, conns);
			break;
		case 2:
			burst(e, t, &route, pending, n);
			n = 0;
			break;
		case 3:
			now += (uint64_t)fuzz_u16(&in) * 10000000ull;
			break;
		default:
			if (t->hook != NULL)
				t->hook(&in);
			break;
		}
		if (m == NULL)
			continue;
		m->ol_flags |= ts_flag;
		*RTE_MBUF_DYNFIELD(m, ts_offset, uint64_t *) = now;
		pending[n++] = m;
		if (n == BURST) {
			burst(e, t, &route, pending, n);
			n = 0;
		}
	}
	if (n > 0)
		burst(e, t, &route, pending, n);
	if (t->at_end != NULL)
		t->at_end(e);
	fo_engine_shutdown(e);
	fuzz_check_accounting(e, t->target);
	fo_engine_free(e);
	fuzz_check_pool(t->target);
}
