/* SPDX-License-Identifier: BSD-3-Clause */
/* The flow benchmarks' traffic generator and test rig (see fo_gen.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_bus_vdev.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "fo_gen.h"

/* ------------------------------------------------------------------------------------------- */
/* The rig */

int
fo_gen_rig_create_txq(struct fo_gen_rig *rig, const char *name, struct rte_mempool *pool, int socket_id,
		      uint16_t tx_queues, int tx_shared)
{
	struct rte_eth_conf port_conf = { 0 };
	char ring_name[RTE_RING_NAMESIZE];
	uint16_t q;
	int port;

	memset(rig, 0, sizeof(*rig));
	rig->port = -1;
	rig->pool = pool;
	rig->socket_id = socket_id;
	if (tx_queues == 0 || tx_queues > FO_GEN_MAX_TX_QUEUES)
		return -EINVAL;
	/* Single producer and consumer: one lcore receives, one sends on each TX queue (unless shared). */
	snprintf(ring_name, sizeof(ring_name), "%s_rx", name);
	rig->rx_ring = rte_ring_create(ring_name, FO_GEN_RING_SIZE, socket_id, RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (rig->rx_ring == NULL)
		return -rte_errno;
	for (q = 0; q < tx_queues; q++) {
		snprintf(ring_name, sizeof(ring_name), "%s_tx%u", name, q);
		rig->tx_rings[q] = rte_ring_create(ring_name, FO_GEN_RING_SIZE, socket_id,
						   (tx_shared ? 0 : RING_F_SP_ENQ) | RING_F_SC_DEQ);
		if (rig->tx_rings[q] == NULL)
			return -rte_errno;
		rig->tx_queues = q + 1;
	}
	rig->tx_ring = rig->tx_rings[0];
	port = rte_eth_from_rings(name, &rig->rx_ring, 1, rig->tx_rings, tx_queues, socket_id);
	if (port < 0)
		return -rte_errno;
	snprintf(rig->vdev, sizeof(rig->vdev), "net_ring_%s", name);   /* what rte_eth_from_rings calls it */
	rig->port = port;
	rig->route.rx_port = rig->route.tx_port = (uint16_t)port;
	/* The ring PMD's queues are its rings; the port must still be started to take packets. */
	if (rte_eth_dev_configure(port, 1, tx_queues, &port_conf) != 0 ||
	    rte_eth_rx_queue_setup(port, 0, FO_GEN_RING_SIZE, socket_id, NULL, pool) != 0)
		return -EIO;
	for (q = 0; q < tx_queues; q++)
		if (rte_eth_tx_queue_setup(port, q, FO_GEN_RING_SIZE, socket_id, NULL) != 0)
			return -EIO;
	if (rte_eth_dev_start(port) != 0)
		return -EIO;
	return 0;
}

int
fo_gen_rig_create(struct fo_gen_rig *rig, const char *name, struct rte_mempool *pool, int socket_id)
{
	return fo_gen_rig_create_txq(rig, name, pool, socket_id, 1, 0);
}

unsigned int
fo_gen_rig_drain_queue(struct fo_gen_rig *rig, uint16_t q)
{
	struct rte_mbuf *pkts[FO_GEN_MAX_BURST];
	unsigned int n, total = 0;

	if (q >= rig->tx_queues)
		return 0;
	while ((n = rte_ring_sc_dequeue_burst(rig->tx_rings[q], (void **)pkts, FO_GEN_MAX_BURST, NULL)) > 0) {
		rte_pktmbuf_free_bulk(pkts, n);
		total += n;
	}
	return total;
}

void
fo_gen_rig_drain(struct fo_gen_rig *rig)
{
	uint16_t q;

	for (q = 0; q < rig->tx_queues; q++)
		fo_gen_rig_drain_queue(rig, q);
}

void
fo_gen_rig_free(struct fo_gen_rig *rig)
{
	unsigned int q;

	fo_gen_rig_drain(rig);
	if (rig->port >= 0) {
		rte_eth_dev_stop(rig->port);
		rte_eth_dev_close(rig->port);
		rig->port = -1;
	}
	if (rig->vdev[0] != '\0') {
		rte_vdev_uninit(rig->vdev);
		rig->vdev[0] = '\0';
	}
	rte_ring_free(rig->rx_ring);
	for (q = 0; q < RTE_DIM(rig->tx_rings); q++) {
		rte_ring_free(rig->tx_rings[q]);
		rig->tx_rings[q] = NULL;
	}
	rig->rx_ring = rig->tx_ring = NULL;
	rig->tx_queues = 0;
}

/* ------------------------------------------------------------------------------------------- */
/* The generator */

/* Connection i: unique for i < 2^26 (client address from i / 4, client port from i % 4). */
static inline void
connection(uint64_t i, struct fo_gen_tuple *c)
{
	c->client = rte_cpu_to_be_32(FO_GEN_CLIENT_NET + (uint32_t)(i >> 2));
	c->server = rte_cpu_to_be_32(FO_GEN_SERVER_NET + (uint32_t)(i % FO_GEN_SERVERS));
	c->cport = rte_cpu_to_be_16(32768 + (i & 3) * 4096 + (uint16_t)((i >> 2) % 4096));
	c->sport = rte_cpu_to_be_16(i % 3 ? 443 : 80);
}

void
fo_gen_connection(uint64_t i, struct fo_gen_tuple *c)
{
	connection(i, c);
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

void
fo_gen_init_tuples(struct fo_gen *g, const struct fo_gen_tuple *tuples, uint32_t flows, uint8_t tcp_flags)
{
	fo_gen_init(g, flows, 0, tcp_flags);
	g->tuples = tuples;
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
	struct fo_gen_tuple c;
	uint32_t addrs, sum;

	if (g->tuples != NULL)
		c = g->tuples[t >> 1];
	else
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

/* ------------------------------------------------------------------------------------------- */
/* Stream mode */

#define FILLER_SPAN 4096            /* payload starts at an even offset below this in the filler */
#define ISN(dir) ((dir) ? 0x20000000u : 0x10000000u)

struct fo_gen_stream {
	struct fo_gen_stream_conf conf;
	struct fo_gen_stream_stats stats;
	uint32_t flows;
	uint32_t *rcvd;                 /* per (connection, direction) t: the end of what left the engine */
	uint8_t *filler;                /* FILLER_SPAN + payload_len lowercase letters */
	uint64_t *fsum;                 /* fsum[k]: the raw checksum sum of filler[0..k), as placed in memory */
	uint64_t psum[2][FO_GEN_MAX_PATTERN + 1];   /* the same of the pattern, starting at an even/odd address */
	struct fo_gen_tpl tpl[2];       /* data segments: ACK|PSH, lengths for payload_len */
};

/* One byte's share of a raw (little-endian 16-bit word) sum, at an even or odd position. */
static inline uint64_t
byte_sum(uint8_t b, uint64_t pos)
{
	return (pos & 1) ? (uint64_t)b << 8 : b;
}

static inline uint32_t
fold64(uint64_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

int
fo_gen_init_stream(struct fo_gen *g, uint32_t flows, const struct fo_gen_stream_conf *conf, int socket_id)
{
	const uint32_t len = conf->payload_len, plen = conf->pattern_len;
	struct fo_gen_stream *st;
	uint64_t x = 88172645463325252ull;
	uint32_t i, k;
	int d;

	fo_gen_init(g, flows, 0, RTE_TCP_ACK_FLAG);
	if (flows == 0 || flows > (1u << 24) || len > FO_GEN_MAX_PAYLOAD || plen > FO_GEN_MAX_PATTERN ||
	    len < 2 * plen + 2 || len < 2 || (conf->plant_div && plen < 2) ||
	    (plen && (conf->pattern[0] >= 'a' && conf->pattern[0] <= 'z')) ||
	    (plen && memchr(conf->pattern + 1, conf->pattern[0], plen - 1) != NULL))
		return -EINVAL;
	st = rte_zmalloc_socket("fo_gen_stream", sizeof(*st), 0, socket_id);
	if (st == NULL)
		return -ENOMEM;
	g->st = st;
	st->conf = *conf;
	st->flows = flows;
	st->rcvd = rte_malloc_socket("fo_gen_rcvd", sizeof(uint32_t) * 2 * flows, 0, socket_id);
	st->filler = rte_malloc_socket("fo_gen_filler", FILLER_SPAN + len, 0, socket_id);
	st->fsum = rte_malloc_socket("fo_gen_fsum", sizeof(uint64_t) * (FILLER_SPAN + len + 1), 0, socket_id);
	if (st->rcvd == NULL || st->filler == NULL || st->fsum == NULL) {
		fo_gen_fini(g);
		return -ENOMEM;
	}
	/* Until a packet of the other side comes back, acknowledge its SYN. */
	for (i = 0; i < 2 * flows; i++)
		st->rcvd[i] = ISN(i & 1) + 1;
	st->fsum[0] = 0;
	for (k = 0; k < FILLER_SPAN + len; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		st->filler[k] = 'a' + (uint8_t)(x % 26);
		st->fsum[k + 1] = st->fsum[k] + byte_sum(st->filler[k], k);
	}
	for (d = 0; d < 2; d++) {
		st->psum[d][0] = 0;
		for (k = 0; k < plen; k++)
			st->psum[d][k + 1] = st->psum[d][k] + byte_sum(conf->pattern[k], k + d);
	}
	for (d = 0; d < 2; d++) {
		struct fo_gen_tpl *tpl = &st->tpl[d];
		struct rte_ipv4_hdr *ip;
		struct rte_tcp_hdr *tcp;

		make_template(tpl, d, RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG);
		ip = (struct rte_ipv4_hdr *)(tpl->bytes + sizeof(struct rte_ether_hdr));
		tcp = (struct rte_tcp_hdr *)(ip + 1);
		tcp->sent_seq = tcp->recv_ack = 0;
		ip->total_length = rte_cpu_to_be_16(sizeof(*ip) + sizeof(*tcp) + len);
		tpl->ip_sum = rte_raw_cksum(ip, sizeof(*ip));
		tpl->tcp_sum = rte_raw_cksum(tcp, sizeof(*tcp)) + rte_cpu_to_be_16(IPPROTO_TCP) +
			rte_cpu_to_be_16(sizeof(*tcp) + len);
	}
	return 0;
}

void
fo_gen_fini(struct fo_gen *g)
{
	if (g->st == NULL)
		return;
	rte_free(g->st->rcvd);
	rte_free(g->st->filler);
	rte_free(g->st->fsum);
	rte_free(g->st);
	g->st = NULL;
}

void
fo_gen_read_stream_stats(const struct fo_gen *g, struct fo_gen_stream_stats *out)
{
	if (g->st != NULL)
		*out = g->st->stats;
	else
		memset(out, 0, sizeof(*out));
}

/* The opening segment of (connection c, direction dir): SYN, or SYN-ACK, with an MSS option. */
static void
gen_syn(struct fo_gen_stream *st, struct rte_mbuf *m, const struct fo_gen_tuple *c, int dir)
{
	struct rte_ether_addr client = {{ 0x02, 0, 0, 0, 0, 0x01 }}, server = {{ 0x02, 0, 0, 0, 0, 0x02 }};
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)p;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);
	uint8_t *opt = (uint8_t *)(tcp + 1);

	memset(p, 0, FO_GEN_FRAME_LEN);
	eth->src_addr = dir ? server : client;
	eth->dst_addr = dir ? client : server;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16(sizeof(*ip) + sizeof(*tcp) + 4);
	ip->packet_id = rte_cpu_to_be_16(1);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = dir ? c->server : c->client;
	ip->dst_addr = dir ? c->client : c->server;
	tcp->src_port = dir ? c->sport : c->cport;
	tcp->dst_port = dir ? c->cport : c->sport;
	tcp->sent_seq = rte_cpu_to_be_32(ISN(dir));
	tcp->recv_ack = dir ? rte_cpu_to_be_32(ISN(0) + 1) : 0;
	tcp->data_off = ((sizeof(*tcp) + 4) / 4) << 4;
	tcp->tcp_flags = dir ? RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG : RTE_TCP_SYN_FLAG;
	tcp->rx_win = rte_cpu_to_be_16(65535);
	opt[0] = 2;
	opt[1] = 4;
	opt[2] = st->conf.mss >> 8;
	opt[3] = st->conf.mss & 0xff;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
	m->data_len = m->pkt_len = FO_GEN_FRAME_LEN;
	st->stats.syns++;
}

/* Copies n pattern bytes from pattern offset from to payload offset at; returns their raw sum
 * less that of the filler bytes they cover (payload starts at an even address: see gen_data). */
static inline int64_t
plant(const struct fo_gen_stream *st, uint8_t *pay, uint32_t o, uint32_t at, uint32_t from, uint32_t n)
{
	const uint64_t *ps = st->psum[(at - from) & 1];

	memcpy(pay + at, st->conf.pattern + from, n);
	return (int64_t)(ps[from + n] - ps[from]) - (int64_t)(st->fsum[o + at + n] - st->fsum[o + at]);
}

/* Data segment number s >= 1 of (connection c, direction dir) into m. */
static inline void
gen_data(struct fo_gen *g, struct rte_mbuf *m, const struct fo_gen_tuple *c, uint64_t t, uint64_t s)
{
	struct fo_gen_stream *st = g->st;
	const int dir = t & 1;
	const struct fo_gen_tpl *tpl = &st->tpl[dir];
	const uint32_t len = st->conf.payload_len, plen = st->conf.pattern_len, half = plen / 2;
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(p + sizeof(struct rte_ether_hdr));
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);
	uint8_t *pay = (uint8_t *)(tcp + 1);
	/* An even filler offset keeps each byte's place in its 16-bit word (the payload is at 54). */
	const uint32_t o = (uint32_t)(((t >> 1) * 40503u + s * 2131u) % (FILLER_SPAN / 2)) * 2;
	rte_be32_t seq = rte_cpu_to_be_32(ISN(dir) + 1 + (uint32_t)((s - 1) * len));
	rte_be32_t ack = rte_cpu_to_be_32(st->rcvd[t ^ 1]);
	int64_t pay_sum = (int64_t)(st->fsum[o + len] - st->fsum[o]);
	uint32_t addrs, sum;

	memcpy(p, tpl->bytes, FO_GEN_HDR_LEN);
	memcpy(pay, st->filler + o, len);
	if (st->conf.plant_div && (t >> 1) % st->conf.plant_div == 0) {
		if (s & 1) {
			pay_sum += plant(st, pay, o, len - half, 0, half);
		} else {
			pay_sum += plant(st, pay, o, 0, half, plen - half);
			pay_sum += plant(st, pay, o, len / 2, 0, plen);
			st->stats.planted += 2;
		}
	}
	ip->src_addr = dir ? c->server : c->client;
	ip->dst_addr = dir ? c->client : c->server;
	tcp->src_port = dir ? c->sport : c->cport;
	tcp->dst_port = dir ? c->cport : c->sport;
	tcp->sent_seq = seq;
	tcp->recv_ack = ack;
	addrs = (c->client & 0xffff) + (c->client >> 16) + (c->server & 0xffff) + (c->server >> 16);
	ip->hdr_checksum = (uint16_t)~fold(tpl->ip_sum + addrs);
	sum = (uint16_t)~fold64((uint64_t)tpl->tcp_sum + addrs + c->cport + c->sport + (seq & 0xffff) + (seq >> 16) +
				(ack & 0xffff) + (ack >> 16) + (uint64_t)pay_sum);
	tcp->cksum = sum == 0 ? 0xffff : sum;
	m->data_len = m->pkt_len = FO_GEN_HDR_LEN + len;
	st->stats.data++;
	st->stats.payload_bytes += len;
}

static inline void
gen_stream_packet(struct fo_gen *g, struct rte_mbuf *m, uint16_t port)
{
	uint64_t t = g->t, s = g->generated / g->period;
	struct fo_gen_tuple c;

	connection(t >> 1, &c);
	g->t = t + g->step >= g->period ? t + g->step - g->period : t + g->step;
	g->generated++;
	if (s == 0)
		gen_syn(g->st, m, &c, t & 1);
	else
		gen_data(g, m, &c, t, s);
	m->port = port;
}

/* The connection a TCP packet of the traffic belongs to (connection()'s inverse) and its direction, or -1. */
static inline int64_t
connection_of(const struct rte_mbuf *m, int *dir)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(p + sizeof(struct rte_ether_hdr));
	const struct rte_tcp_hdr *tcp;
	uint32_t client, cport;

	if (m->data_len < FO_GEN_HDR_LEN || ip->next_proto_id != IPPROTO_TCP)
		return -1;
	tcp = (const struct rte_tcp_hdr *)((const uint8_t *)ip + (ip->version_ihl & 0xf) * 4);
	*dir = (rte_be_to_cpu_32(ip->src_addr) >> 24) != (FO_GEN_CLIENT_NET >> 24);
	client = rte_be_to_cpu_32(*dir ? ip->dst_addr : ip->src_addr) - FO_GEN_CLIENT_NET;
	cport = (uint32_t)rte_be_to_cpu_16(*dir ? tcp->dst_port : tcp->src_port) - 32768;
	if (client >= (1u << 24) || cport >= 4 * 4096)
		return -1;
	return (int64_t)(client << 2 | cport >> 12);
}

int64_t
fo_gen_connection_index(const struct rte_mbuf *m)
{
	int dir;

	return connection_of(m, &dir);
}

/* Reads what the receiver got from a packet the engine sent (its sequence numbers). */
static inline void
observe(struct fo_gen_stream *st, struct rte_mbuf *m)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(p + sizeof(struct rte_ether_hdr));
	const struct rte_tcp_hdr *tcp;
	uint32_t t, seq, end, hlen;
	int64_t i;
	int dir;

	st->stats.observed++;
	i = connection_of(m, &dir);
	if (i < 0 || i >= st->flows) {
		st->stats.unknown++;
		return;
	}
	hlen = (ip->version_ihl & 0xf) * 4;
	tcp = (const struct rte_tcp_hdr *)((const uint8_t *)ip + hlen);
	t = (uint32_t)i << 1 | dir;
	seq = rte_be_to_cpu_32(tcp->sent_seq);
	end = seq + rte_be_to_cpu_16(ip->total_length) - hlen - (tcp->data_off >> 4) * 4 +
		!!(tcp->tcp_flags & (RTE_TCP_SYN_FLAG | RTE_TCP_FIN_FLAG));
	if ((int32_t)(end - st->rcvd[t]) > 0)
		st->rcvd[t] = end;
}

/* Fills pkts[have..n) from the pool (what the engine freed or still holds): 0, or -ENOMEM after
 * freeing pkts[0..have). */
static __rte_always_inline int
top_up(struct fo_gen_rig *rig, struct rte_mbuf **pkts, unsigned int have, unsigned int n)
{
	if (have < n && rte_pktmbuf_alloc_bulk(rig->pool, &pkts[have], n - have) != 0) {
		rte_pktmbuf_free_bulk(pkts, have);
		return -ENOMEM;
	}
	return 0;
}

/* Stream mode's burst: reads back what the engine sent, recycles the mbufs it no longer holds. */
static int
gen_stream_burst(struct fo_gen *g, struct fo_gen_rig *rig, struct rte_mbuf **pkts, unsigned int n)
{
	struct fo_gen_stream *st = g->st;
	unsigned int got = rte_ring_sc_dequeue_burst(rig->tx_ring, (void **)pkts, n, NULL), kept = 0, i;

	struct rte_mbuf *more[FO_GEN_MAX_BURST];
	unsigned int extra;

	for (i = 0; i < got; i++) {
		struct rte_mbuf *m = pkts[i];

		observe(st, m);
		if (rte_mbuf_refcnt_read(m) > 1 || m->nb_segs > 1 || m->next != NULL) {
			st->stats.not_recycled++;
			rte_pktmbuf_free(m);
			continue;
		}
		pkts[kept++] = m;
	}
	/*
	 * The engine may send more than it was given (segments it cut at a release point): when
	 * the ring is all but full of them, read the surplus back too (the engine would drop it).
	 */
	while (rte_ring_free_count(rig->tx_ring) < 2 * n &&
	       (extra = rte_ring_sc_dequeue_burst(rig->tx_ring, (void **)more, FO_GEN_MAX_BURST, NULL)) > 0) {
		for (i = 0; i < extra; i++)
			observe(st, more[i]);
		rte_pktmbuf_free_bulk(more, extra);
	}
	if (top_up(rig, pkts, kept, n) != 0)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		gen_stream_packet(g, pkts[i], rig->route.rx_port);
	return 0;
}

static __rte_always_inline int
gen_burst(struct fo_gen *g, struct fo_gen_rig *rig, struct rte_mbuf **pkts, unsigned int n)
{
	unsigned int got, i;

	if (g->st != NULL)
		return gen_stream_burst(g, rig, pkts, n);
	got = rte_ring_sc_dequeue_burst(rig->tx_ring, (void **)pkts, n, NULL);

	/* Only what the engine freed (dropped, or refused by a full ring) comes from the pool. */
	if (top_up(rig, pkts, got, n) != 0)
		return -ENOMEM;
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

/* Nonzero if the IPv4 header or TCP checksum of any of the n generated frames is wrong (each
 * frame's TCP checksum field is zeroed by the check). */
static int
bad_checksums(struct rte_mbuf **pkts, unsigned int n)
{
	unsigned int i;
	int bad = 0;

	for (i = 0; i < n; i++) {
		struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(pkts[i], struct rte_ipv4_hdr *,
								  sizeof(struct rte_ether_hdr));
		struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);
		uint16_t ours = tcp->cksum;

		bad |= rte_raw_cksum(ip, sizeof(*ip)) != 0xffff;
		tcp->cksum = 0;
		bad |= rte_ipv4_udptcp_cksum(ip, tcp) != ours;
	}
	return bad;
}

int
fo_gen_self_check(struct fo_gen_rig *rig)
{
	struct rte_mbuf *pkts[CHECK_PACKETS];
	struct fo_gen g;
	int k, bad = 0;

	for (k = 0; k < 2; k++) {
		fo_gen_init(&g, 1000, k, k ? RTE_TCP_SYN_FLAG : RTE_TCP_ACK_FLAG);
		if (fo_gen_burst(&g, rig, pkts, CHECK_PACKETS) != 0)
			return -ENOMEM;
		bad |= bad_checksums(pkts, CHECK_PACKETS);
		rte_pktmbuf_free_bulk(pkts, CHECK_PACKETS);
	}
	/* Stream mode: SYNs, then segments with and without the pattern (8 connections, all planted
	 * but the odd ones: plant_div 2), at an odd and an even payload length. */
	for (k = 0; k < 2; k++) {
		struct fo_gen_stream_conf conf = { .payload_len = k ? 1448 : 101, .mss = 1460, .plant_div = 2,
						   .pattern_len = 9 };
		int pass, ret;

		memcpy(conf.pattern, "X-Needle!", 9);
		ret = fo_gen_init_stream(&g, 8, &conf, rig->socket_id);
		if (ret != 0)
			return ret;
		for (pass = 0; pass < 3 && !bad; pass++) {
			if (fo_gen_burst(&g, rig, pkts, 16) != 0) {
				fo_gen_fini(&g);
				return -ENOMEM;
			}
			bad |= bad_checksums(pkts, 16);
			rte_pktmbuf_free_bulk(pkts, 16);
		}
		bad |= g.st->stats.planted != 16;   /* 4 planted connections x 2 directions x 2 copies in pass 2 */
		fo_gen_fini(&g);
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
