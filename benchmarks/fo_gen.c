/* SPDX-License-Identifier: BSD-3-Clause */
/* The flow benchmarks' traffic generator and test rig (see fo_gen.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>

#include "fo_gen.h"

/* ------------------------------------------------------------------------------------------- */
/* The rig */

int
fo_gen_rig_create(struct fo_gen_rig *rig, const char *name, struct rte_mempool *pool, int socket_id)
{
	struct rte_eth_conf port_conf = { 0 };
	struct rte_ring *rx[1], *tx[1];
	char ring_name[RTE_RING_NAMESIZE];
	int port;

	memset(rig, 0, sizeof(*rig));
	rig->port = -1;
	rig->pool = pool;
	rig->socket_id = socket_id;
	/* Single producer and consumer: only the measuring lcore touches them. */
	snprintf(ring_name, sizeof(ring_name), "%s_rx", name);
	rig->rx_ring = rte_ring_create(ring_name, FO_GEN_RING_SIZE, socket_id, RING_F_SP_ENQ | RING_F_SC_DEQ);
	snprintf(ring_name, sizeof(ring_name), "%s_tx", name);
	rig->tx_ring = rte_ring_create(ring_name, FO_GEN_RING_SIZE, socket_id, RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (rig->rx_ring == NULL || rig->tx_ring == NULL)
		return -rte_errno;
	rx[0] = rig->rx_ring;
	tx[0] = rig->tx_ring;
	port = rte_eth_from_rings(name, rx, 1, tx, 1, socket_id);
	if (port < 0)
		return -rte_errno;
	rig->port = port;
	rig->route.rx_port = rig->route.tx_port = (uint16_t)port;
	/* The ring PMD's queues are its rings; the port must still be started to take packets. */
	if (rte_eth_dev_configure(port, 1, 1, &port_conf) != 0 ||
	    rte_eth_rx_queue_setup(port, 0, FO_GEN_RING_SIZE, socket_id, NULL, pool) != 0 ||
	    rte_eth_tx_queue_setup(port, 0, FO_GEN_RING_SIZE, socket_id, NULL) != 0 ||
	    rte_eth_dev_start(port) != 0)
		return -EIO;
	return 0;
}

void
fo_gen_rig_drain(struct fo_gen_rig *rig)
{
	struct rte_mbuf *pkts[FO_GEN_MAX_BURST];
	unsigned int n;

	if (rig->tx_ring == NULL)
		return;
	while ((n = rte_ring_sc_dequeue_burst(rig->tx_ring, (void **)pkts, FO_GEN_MAX_BURST, NULL)) > 0)
		rte_pktmbuf_free_bulk(pkts, n);
}

void
fo_gen_rig_free(struct fo_gen_rig *rig)
{
	fo_gen_rig_drain(rig);
	if (rig->port >= 0) {
		rte_eth_dev_stop(rig->port);
		rte_eth_dev_close(rig->port);
		rig->port = -1;
	}
	rte_ring_free(rig->rx_ring);
	rte_ring_free(rig->tx_ring);
	rig->rx_ring = rig->tx_ring = NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* The generator */

struct tuple {
	rte_be32_t client, server;
	rte_be16_t cport, sport;
};

/* Connection i: unique for i < 2^26 (client address from i / 4, client port from i % 4). */
static void
connection(uint64_t i, struct tuple *c)
{
	c->client = rte_cpu_to_be_32(FO_GEN_CLIENT_NET + (uint32_t)(i >> 2));
	c->server = rte_cpu_to_be_32(FO_GEN_SERVER_NET + (uint32_t)(i % FO_GEN_SERVERS));
	c->cport = rte_cpu_to_be_16(32768 + (i & 3) * 4096 + (uint16_t)((i >> 2) % 4096));
	c->sport = rte_cpu_to_be_16(i % 3 ? 443 : 80);
}

static void
make_template(struct fo_gen_tpl *tpl, int dir, uint8_t tcp_flags)
{
	struct rte_ether_addr client = {{ 0x02, 0, 0, 0, 0, 0x01 }}, server = {{ 0x02, 0, 0, 0, 0, 0x02 }};
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)tpl->bytes;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);

	memset(tpl, 0, sizeof(*tpl));
	eth->src_addr = dir ? server : client;
	eth->dst_addr = dir ? client : server;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16(sizeof(*ip) + sizeof(*tcp));
	ip->packet_id = rte_cpu_to_be_16(1);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	tcp->sent_seq = rte_cpu_to_be_32(dir ? 0x20000000 : 0x10000000);
	tcp->recv_ack = rte_cpu_to_be_32(dir ? 0x10000000 : 0x20000000);
	tcp->data_off = (sizeof(*tcp) / 4) << 4;
	tcp->tcp_flags = tcp_flags;
	tcp->rx_win = rte_cpu_to_be_16(65535);
	tpl->ip_sum = rte_raw_cksum(ip, sizeof(*ip));
	tpl->tcp_sum = rte_raw_cksum(tcp, sizeof(*tcp)) + rte_cpu_to_be_16(IPPROTO_TCP) +
		rte_cpu_to_be_16(sizeof(*tcp));
}

void
fo_gen_init(struct fo_gen *g, uint32_t flows, int new_each_packet, uint8_t tcp_flags)
{
	memset(g, 0, sizeof(*g));
	g->period = new_each_packet ? 0 : 2ull * flows;
	g->step = g->period ? 2654435761ull % g->period : 1;   /* odd and prime: coprime with 2N for N = 2^a 5^b */
	make_template(&g->tpl[0], 0, tcp_flags);
	make_template(&g->tpl[1], 1, tcp_flags);
}

static inline uint32_t
fold(uint32_t s)
{
	s = (s & 0xffff) + (s >> 16);
	return (s & 0xffff) + (s >> 16);
}

/* Writes the next packet of the traffic into m, checksums included (added to the template's sums). */
static inline void
gen_packet(struct fo_gen *g, struct rte_mbuf *m, uint16_t port)
{
	uint64_t t = g->t;
	int dir = g->period ? t & 1 : 0;
	const struct fo_gen_tpl *tpl = &g->tpl[dir];
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(p + sizeof(struct rte_ether_hdr));
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);
	struct tuple c;
	uint32_t addrs, sum;

	connection(g->period ? t >> 1 : t, &c);
	g->t = g->period ? (t + g->step >= g->period ? t + g->step - g->period : t + g->step) : t + 1;
	memcpy(p, tpl->bytes, FO_GEN_HDR_LEN);
	ip->src_addr = dir ? c.server : c.client;
	ip->dst_addr = dir ? c.client : c.server;
	tcp->src_port = dir ? c.sport : c.cport;
	tcp->dst_port = dir ? c.cport : c.sport;
	/* A one's complement sum does not care which side an address or port is on. */
	addrs = (c.client & 0xffff) + (c.client >> 16) + (c.server & 0xffff) + (c.server >> 16);
	ip->hdr_checksum = (uint16_t)~fold(tpl->ip_sum + addrs);
	sum = (uint16_t)~fold(tpl->tcp_sum + addrs + c.cport + c.sport);
	tcp->cksum = sum == 0 ? 0xffff : sum;
	m->data_len = m->pkt_len = FO_GEN_FRAME_LEN;
	m->port = port;
}

static __rte_always_inline int
gen_burst(struct fo_gen *g, struct fo_gen_rig *rig, struct rte_mbuf **pkts, unsigned int n)
{
	unsigned int got = rte_ring_sc_dequeue_burst(rig->tx_ring, (void **)pkts, n, NULL);
	unsigned int i;

	/* Only what the engine freed (dropped, or refused by a full ring) comes from the pool. */
	if (got < n && rte_pktmbuf_alloc_bulk(rig->pool, &pkts[got], n - got) != 0) {
		rte_pktmbuf_free_bulk(pkts, got);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		gen_packet(g, pkts[i], rig->route.rx_port);
	return 0;
}

int
fo_gen_burst(struct fo_gen *g, struct fo_gen_rig *rig, struct rte_mbuf **pkts, unsigned int n)
{
	return gen_burst(g, rig, pkts, n);
}

#define CHECK_PACKETS 32   /* of each kind */

int
fo_gen_self_check(struct fo_gen_rig *rig)
{
	struct rte_mbuf *pkts[CHECK_PACKETS];
	struct fo_gen g;
	int k, i, bad = 0;

	for (k = 0; k < 2; k++) {
		fo_gen_init(&g, 1000, k, k ? RTE_TCP_SYN_FLAG : RTE_TCP_ACK_FLAG);
		if (fo_gen_burst(&g, rig, pkts, CHECK_PACKETS) != 0)
			return -ENOMEM;
		for (i = 0; i < CHECK_PACKETS; i++) {
			struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(pkts[i], struct rte_ipv4_hdr *,
									  sizeof(struct rte_ether_hdr));
			struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);
			uint16_t ours = tcp->cksum;

			bad |= rte_raw_cksum(ip, sizeof(*ip)) != 0xffff;
			tcp->cksum = 0;
			bad |= rte_ipv4_udptcp_cksum(ip, tcp) != ours;
		}
		rte_pktmbuf_free_bulk(pkts, CHECK_PACKETS);
	}
	return bad ? -EINVAL : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Running */

static __rte_always_inline int
step(struct fo_engine *e, struct fo_gen *g, struct fo_gen_rig *rig, unsigned int n)
{
	struct rte_mbuf *pkts[FO_GEN_MAX_BURST];
	uint16_t sent;

	if (gen_burst(g, rig, pkts, n) != 0)
		return -ENOMEM;
	if (e != NULL) {
		fo_engine_burst(e, &rig->route, pkts, n);
		return 0;
	}
	sent = rte_eth_tx_burst(rig->route.tx_port, rig->route.tx_queue, pkts, n);
	if (sent < n)
		rte_pktmbuf_free_bulk(&pkts[sent], n - sent);
	return 0;
}

int
fo_gen_step(struct fo_engine *e, struct fo_gen *g, struct fo_gen_rig *rig, unsigned int n)
{
	return step(e, g, rig, n);
}

static __rte_always_inline int64_t
run_for(struct fo_engine *e, struct fo_gen *g, struct fo_gen_rig *rig, unsigned int n,
	double seconds, uint64_t *cycles)
{
	uint64_t start = rte_rdtsc(), end = start + (uint64_t)(seconds * rte_get_tsc_hz()), now;
	int64_t packets = 0;

	do {
		if (step(e, g, rig, n) != 0)
			return -ENOMEM;
		packets += n;
		now = rte_rdtsc();
	} while (now < end);
	*cycles = now - start;
	return packets;
}

int64_t
fo_gen_run_for(struct fo_engine *e, struct fo_gen *g, struct fo_gen_rig *rig, unsigned int n,
	       double seconds, uint64_t *cycles)
{
	/* The usual burst as a constant: the compiler unrolls the generator's loop (about 1 cycle per packet). */
	if (n == 32)
		return run_for(e, g, rig, 32, seconds, cycles);
	return run_for(e, g, rig, n, seconds, cycles);
}

int64_t
fo_gen_run_packets(struct fo_engine *e, struct fo_gen *g, struct fo_gen_rig *rig, unsigned int n,
		   uint64_t packets)
{
	uint64_t done;

	for (done = 0; done < packets; done += n)
		if (step(e, g, rig, n) != 0)
			return -ENOMEM;
	return (int64_t)done;
}
