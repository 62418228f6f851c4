/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fo_flowbench: the flow engine's throughput on one core, on generated Ethernet/IPv4/TCP frames.
 *
 *   fo_flowbench [EAL arguments] -- [--seconds S] [--warmup S] [--only NAME,...] [--list]
 *
 * Every scenario builds an engine through the C API, then calls fo_engine_burst() on bursts of
 * 32 packets for a fixed time on the calling lcore. The engine sends what it releases into a
 * net_ring port; the generator takes those mbufs back from the port's TX ring and rewrites them
 * into the next packets, so the steady state allocates and frees nothing. One JSON object goes
 * to stdout, progress to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_tcp.h>

#include <flowos/fo_builtins.h>
#include <flowos/fo_engine.h>

#define BURST 32
#define FRAME_LEN 60            /* a 64-byte frame without its FCS */
#define HDR_LEN (sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) + sizeof(struct rte_tcp_hdr))
#define POOL_SIZE 8191
#define POOL_CACHE 256
#define RING_SIZE 1024
#define TIMEOUT_NS (600ull * 1000000000ull)   /* no flow may end by idle time during a run */
#define ERRLEN 256

/* Traffic: clients in 10.0.0.0/8, 4 connections each, to 64 servers in 172.16.0.0/16. */
#define CLIENT_NET RTE_IPV4(10, 0, 0, 0)
#define SERVER_NET RTE_IPV4(172, 16, 0, 0)
#define SERVERS 64

enum kind {
	K_GENERATOR,    /* no engine: the generator and the TX ring alone */
	K_UNMATCHED,    /* definitions that match none of the traffic */
	K_FLOWS,        /* one catch-all definition, no processors */
	K_PIPELINE,     /* one catch-all definition, [counter] then [acl] */
};

struct scenario {
	const char *name;
	enum kind kind;
	uint32_t defs;          /* K_UNMATCHED: how many definitions */
	uint32_t flows;         /* concurrent flows in the traffic */
	int setup;              /* every packet a new flow, `flows` of them once: flow setup rate and memory */
};

static const struct scenario scenarios[] = {
	{ "generator_only", K_GENERATOR, 0, 100000, 0 },
	{ "classify_1", K_UNMATCHED, 1, 100000, 0 },
	{ "classify_16", K_UNMATCHED, 16, 100000, 0 },
	{ "classify_256", K_UNMATCHED, 256, 100000, 0 },
	{ "flows_1k", K_FLOWS, 1, 1000, 0 },
	{ "flows_100k", K_FLOWS, 1, 100000, 0 },
	{ "flows_1m", K_FLOWS, 1, 1000000, 0 },
	{ "pipeline_100k", K_PIPELINE, 1, 100000, 0 },
	{ "setup_1m", K_FLOWS, 1, 1000000, 1 },
	{ "setup_1m_pipeline", K_PIPELINE, 1, 1000000, 1 },
};

/* The test rig, shared by every scenario. */
static struct rte_mempool *pool;
static struct rte_ring *rx_ring, *tx_ring;
static struct fo_route route;
static int socket_id;

/*
 * The generator. Packet k of the traffic is direction t & 1 of connection t >> 1, where t runs
 * through 0..2N-1 in steps of a large odd prime (mod 2N): every connection shows up in both
 * directions, at scattered times, in an order no hardware prefetcher can follow.
 */
struct gen {
	uint64_t t, step, period;   /* period = 2N; 0: every packet a new connection (t counts them) */
	struct frame_tpl {
		uint8_t bytes[HDR_LEN];
		uint32_t ip_sum;        /* raw sums of the headers with addresses, ports and checksums zero */
		uint32_t tcp_sum;       /* ... with the pseudo-header's protocol and length */
	} tpl[2];                   /* by direction: the MACs are swapped */
};

struct tuple {
	rte_be32_t client, server;
	rte_be16_t cport, sport;
};

/* Connection i: unique for i < 2^26 (client address from i / 4, client port from i % 4). */
static void
connection(uint64_t i, struct tuple *c)
{
	c->client = rte_cpu_to_be_32(CLIENT_NET + (uint32_t)(i >> 2));
	c->server = rte_cpu_to_be_32(SERVER_NET + (uint32_t)(i % SERVERS));
	c->cport = rte_cpu_to_be_16(32768 + (i & 3) * 4096 + (uint16_t)((i >> 2) % 4096));
	c->sport = rte_cpu_to_be_16(i % 3 ? 443 : 80);
}

static void
make_template(struct frame_tpl *tpl, int dir, uint8_t tcp_flags)
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

static void
gen_init(struct gen *g, uint32_t flows, int new_each_packet, uint8_t tcp_flags)
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
gen_packet(struct gen *g, struct rte_mbuf *m)
{
	uint64_t t = g->t;
	int dir = g->period ? t & 1 : 0;
	const struct frame_tpl *tpl = &g->tpl[dir];
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(p + sizeof(struct rte_ether_hdr));
	struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);
	struct tuple c;
	uint32_t addrs, sum;

	connection(g->period ? t >> 1 : t, &c);
	g->t = g->period ? (t + g->step >= g->period ? t + g->step - g->period : t + g->step) : t + 1;
	memcpy(p, tpl->bytes, HDR_LEN);
	ip->src_addr = dir ? c.server : c.client;
	ip->dst_addr = dir ? c.client : c.server;
	tcp->src_port = dir ? c.sport : c.cport;
	tcp->dst_port = dir ? c.cport : c.sport;
	/* A one's complement sum does not care which side an address or port is on. */
	addrs = (c.client & 0xffff) + (c.client >> 16) + (c.server & 0xffff) + (c.server >> 16);
	ip->hdr_checksum = (uint16_t)~fold(tpl->ip_sum + addrs);
	sum = (uint16_t)~fold(tpl->tcp_sum + addrs + c.cport + c.sport);
	tcp->cksum = sum == 0 ? 0xffff : sum;
	m->data_len = m->pkt_len = FRAME_LEN;
	m->port = route.rx_port;
}

/* Fills pkts with the next BURST packets in mbufs taken back from the TX ring, or new ones. */
static int
gen_burst(struct gen *g, struct rte_mbuf **pkts)
{
	unsigned int n = rte_ring_sc_dequeue_burst(tx_ring, (void **)pkts, BURST, NULL);
	unsigned int i;

	/* Only what the engine freed (dropped, or refused by a full ring) comes from the pool. */
	if (n < BURST && rte_pktmbuf_alloc_bulk(pool, &pkts[n], BURST - n) != 0) {
		rte_pktmbuf_free_bulk(pkts, n);
		return -ENOMEM;
	}
	for (i = 0; i < BURST; i++)
		gen_packet(g, pkts[i]);
	return 0;
}

/* Checks the generator's checksums against DPDK's on a few packets of each kind. */
static int
gen_self_check(void)
{
	struct rte_mbuf *pkts[BURST];
	struct gen g;
	int k, i, bad = 0;

	for (k = 0; k < 2; k++) {
		gen_init(&g, 1000, k, k ? RTE_TCP_SYN_FLAG : RTE_TCP_ACK_FLAG);
		if (gen_burst(&g, pkts) != 0)
			return -ENOMEM;
		for (i = 0; i < BURST; i++) {
			struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(pkts[i], struct rte_ipv4_hdr *,
									  sizeof(struct rte_ether_hdr));
			struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(ip + 1);
			uint16_t ours = tcp->cksum;

			bad |= rte_raw_cksum(ip, sizeof(*ip)) != 0xffff;
			tcp->cksum = 0;
			bad |= rte_ipv4_udptcp_cksum(ip, tcp) != ours;
		}
		rte_pktmbuf_free_bulk(pkts, BURST);
	}
	return bad ? -EINVAL : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Engines */

static void
match_prefix(uint8_t *addr, uint8_t *prefix_len, uint32_t net, uint8_t len)
{
	rte_be32_t be = rte_cpu_to_be_32(net);

	memcpy(addr, &be, 4);
	*prefix_len = len;
}

/*
 * Definition i of K_UNMATCHED: TCP from the clients' network (which the traffic has) to a /24
 * and a port it never goes to, so rte_acl has to look at several fields before it gives up.
 */
static void
unmatched_def(struct fo_def_conf *d, uint32_t i)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "nothing_%u", i);
	d->match.fields = FO_MATCH_PROTO | FO_MATCH_SRC_IP | FO_MATCH_DST_IP | FO_MATCH_DST_PORT;
	d->match.family = FO_FAMILY_IPV4;
	d->match.proto = IPPROTO_TCP;
	match_prefix(d->match.src_ip, &d->match.src_prefix, CLIENT_NET, 8);
	match_prefix(d->match.dst_ip, &d->match.dst_prefix, RTE_IPV4(198, 18 + i / 256, i % 256, 0), 24);
	d->match.dst_port_lo = d->match.dst_port_hi = 8000 + i;
}

/* A few deny rules none of the traffic meets, so the acl allows every flow (by default). */
static struct fo_acl_params *
acl_params(size_t *len)
{
	struct fo_acl_params *p;
	uint32_t n = 4;

	*len = sizeof(*p) + n * sizeof(p->rules[0]);
	p = calloc(1, *len);
	if (p == NULL)
		return NULL;
	p->n_rules = n;
	p->default_allow = 1;
	p->rules[0].match.fields = FO_MATCH_PROTO | FO_MATCH_DST_PORT;       /* telnet */
	p->rules[0].match.proto = IPPROTO_TCP;
	p->rules[0].match.dst_port_lo = p->rules[0].match.dst_port_hi = 23;
	p->rules[1].match.fields = FO_MATCH_SRC_IP;                          /* a blocked client network */
	p->rules[1].match.family = FO_FAMILY_IPV4;
	match_prefix(p->rules[1].match.src_ip, &p->rules[1].match.src_prefix, RTE_IPV4(10, 255, 0, 0), 16);
	p->rules[2].match.fields = FO_MATCH_DST_IP;                          /* a blocked server network */
	p->rules[2].match.family = FO_FAMILY_IPV4;
	match_prefix(p->rules[2].match.dst_ip, &p->rules[2].match.dst_prefix, RTE_IPV4(172, 16, 255, 0), 24);
	p->rules[3].match.fields = FO_MATCH_PROTO | FO_MATCH_DST_PORT;       /* SMB */
	p->rules[3].match.proto = IPPROTO_TCP;
	p->rules[3].match.dst_port_lo = p->rules[3].match.dst_port_hi = 445;
	return p;
}

static struct fo_engine *
build_engine(const struct scenario *sc, char *err)
{
	struct fo_engine_conf conf = {
		.unmatched = FO_UNMATCHED_PASS,
		.table_full = FO_TABLE_FULL_BYPASS,
		.clock = FO_CLOCK_TSC,
		.pool = pool,
		.socket_id = socket_id,
	};
	struct fo_def_conf def;
	struct fo_engine *e;
	uint32_t i;
	int ret = 0;

	/* Twice the concurrent flows (as one would configure it), or exactly them when filling the table. */
	conf.flow_capacity = sc->kind == K_UNMATCHED ? 1024 : sc->setup ? sc->flows : 2 * sc->flows;
	for (i = 0; i < FO_TIMEOUT_CLASS_COUNT; i++)
		conf.timeout_ns[i] = TIMEOUT_NS;
	e = fo_engine_create(&conf);
	if (e == NULL) {
		snprintf(err, ERRLEN, "fo_engine_create: %s", rte_strerror(rte_errno));
		return NULL;
	}
	if (sc->kind == K_UNMATCHED) {
		for (i = 0; i < sc->defs && ret >= 0; i++) {
			unmatched_def(&def, i);
			ret = fo_engine_add_definition(e, &def);
		}
	} else {
		memset(&def, 0, sizeof(def));
		snprintf(def.name, sizeof(def.name), "all");
		ret = fo_engine_add_definition(e, &def);
	}
	if (ret < 0) {
		snprintf(err, ERRLEN, "fo_engine_add_definition: %s", strerror(-ret));
		goto fail;
	}
	if (sc->kind == K_PIPELINE) {
		struct fo_counter_params counter = { .max_flows = 0 };   /* count, keep no records */
		size_t acl_len;
		struct fo_acl_params *acl = acl_params(&acl_len);

		if (acl == NULL) {
			snprintf(err, ERRLEN, "out of memory");
			goto fail;
		}
		ret = fo_engine_add_processor(e, 0, 0, fo_processor_find("counter"), &counter, sizeof(counter),
					      err, ERRLEN);
		if (ret >= 0)
			ret = fo_engine_add_processor(e, 0, 1, fo_processor_find("acl"), acl, acl_len, err, ERRLEN);
		free(acl);
		if (ret < 0)
			goto fail;
	}
	ret = fo_engine_build(e, err, ERRLEN);
	if (ret < 0)
		goto fail;
	return e;
fail:
	fo_engine_free(e);
	return NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Running */

static size_t
heap_used(void)
{
	struct rte_malloc_socket_stats s;

	return rte_malloc_get_socket_stats(socket_id, &s) == 0 ? s.heap_allocsz_bytes : 0;
}

/* One burst: through the engine, or (no engine) straight to the port the engine would send to. */
static int
burst(struct fo_engine *e, struct gen *g)
{
	struct rte_mbuf *pkts[BURST];
	uint16_t sent;

	if (gen_burst(g, pkts) != 0)
		return -ENOMEM;
	if (e != NULL) {
		fo_engine_burst(e, &route, pkts, BURST);
		return 0;
	}
	sent = rte_eth_tx_burst(route.tx_port, route.tx_queue, pkts, BURST);
	if (sent < BURST)
		rte_pktmbuf_free_bulk(&pkts[sent], BURST - sent);
	return 0;
}

/* Bursts for `seconds`; returns the packets and sets the TSC cycles they took. */
static int64_t
run_for(struct fo_engine *e, struct gen *g, double seconds, uint64_t *cycles)
{
	uint64_t start = rte_rdtsc(), end = start + (uint64_t)(seconds * rte_get_tsc_hz()), now;
	int64_t packets = 0;

	do {
		if (burst(e, g) != 0)
			return -ENOMEM;
		packets += BURST;
		now = rte_rdtsc();
	} while (now < end);
	*cycles = now - start;
	return packets;
}

static void
print_stats(const struct fo_engine_stats *s)
{
	uint64_t malformed = 0;
	int i;

	for (i = 0; i < FO_DECODE_ERROR_COUNT; i++)
		malformed += s->malformed[i];
	printf("\"engine\": {\"packets\": %lu, \"unmatched\": %lu, \"malformed\": %lu, \"flows_created\": %lu, "
	       "\"flows_active\": %lu, \"table_full\": %lu, \"tx_packets\": %lu, \"tx_unsent\": %lu, "
	       "\"dropped\": %lu}",
	       (unsigned long)s->packets, (unsigned long)s->unmatched, (unsigned long)malformed,
	       (unsigned long)s->flows_created, (unsigned long)s->flows_active, (unsigned long)s->table_full,
	       (unsigned long)s->tx_packets, (unsigned long)s->tx_unsent, (unsigned long)s->dropped);
}

/* Returns mbufs the TX ring still holds to the pool, so the next scenario starts from a full pool. */
static void
drain_tx_ring(void)
{
	struct rte_mbuf *pkts[BURST];
	unsigned int n;

	while ((n = rte_ring_sc_dequeue_burst(tx_ring, (void **)pkts, BURST, NULL)) > 0)
		rte_pktmbuf_free_bulk(pkts, n);
}

/*
 * Runs one scenario and prints its JSON member. Throughput: one pass over the traffic (which
 * creates every flow), `warmup` seconds more, then measure. Setup: one packet per new flow,
 * `flows` of them, timed from an empty table; the heap is read before the engine, after
 * building it and once full.
 */
static int
run_scenario(const struct scenario *sc, double seconds, double warmup)
{
	char err[ERRLEN] = "";
	size_t heap_before = heap_used(), heap_built = 0, heap_full = 0;
	struct fo_engine *e = NULL;
	struct fo_engine_stats st;
	uint64_t cycles = 0;
	int64_t packets;
	struct gen g;

	fprintf(stderr, "fo_flowbench: %s ...\n", sc->name);
	if (sc->kind != K_GENERATOR) {
		e = build_engine(sc, err);
		if (e == NULL) {
			char *c;

			for (c = err; *c != '\0'; c++)      /* keep the JSON valid */
				if (*c == '"' || *c == '\\')
					*c = '\'';
			/* A failed build should have freed all it allocated: say if it did not. */
			printf("\"%s\": {\"error\": \"%s\", \"heap_leaked_bytes\": %ld}", sc->name, err,
			       (long)(heap_used() - heap_before));
			return -1;
		}
		heap_built = heap_used();
	}
	printf("\"%s\": {", sc->name);
	if (sc->setup) {
		uint64_t start, i;

		gen_init(&g, sc->flows, 1, RTE_TCP_SYN_FLAG);
		start = rte_rdtsc();
		for (i = 0; i < sc->flows; i += BURST)
			if (burst(e, &g) != 0)
				break;
		cycles = rte_rdtsc() - start;
		packets = i;
		heap_full = heap_used();
		fo_engine_read_stats(e, &st);
		printf("\"flows\": %lu, \"seconds\": %.6f, \"mflows_per_s\": %.4f, \"cycles_per_flow\": %.1f, "
		       "\"engine_heap_built_mib\": %.2f, \"engine_heap_full_mib\": %.2f, "
		       "\"heap_bytes_per_flow\": %.1f, ",
		       (unsigned long)packets, cycles / (double)rte_get_tsc_hz(),
		       packets / (cycles / (double)rte_get_tsc_hz()) / 1e6, cycles / (double)packets,
		       (heap_built - heap_before) / 1048576.0, (heap_full - heap_before) / 1048576.0,
		       (heap_full - heap_before) / (double)st.flows_created);
	} else {
		gen_init(&g, sc->flows, 0, RTE_TCP_ACK_FLAG);
		/* One pass over the traffic creates every flow, however long `warmup` is. */
		for (packets = 0; packets < (int64_t)g.period && packets >= 0; packets += BURST)
			if (burst(e, &g) != 0)
				packets = -ENOMEM;
		if (packets >= 0)
			packets = run_for(e, &g, warmup, &cycles);
		if (packets >= 0)
			packets = run_for(e, &g, seconds, &cycles);
		if (packets < 0) {
			printf("\"error\": \"the mbuf pool ran dry: mbufs are being lost\"}");
			fo_engine_free(e);
			return -1;
		}
		printf("\"mpps\": %.4f, \"cycles_per_packet\": %.1f, \"packets\": %lu, \"seconds\": %.4f, "
		       "\"flows\": %u, ", packets / (cycles / (double)rte_get_tsc_hz()) / 1e6,
		       cycles / (double)packets, (unsigned long)packets, cycles / (double)rte_get_tsc_hz(),
		       sc->flows);
		if (e != NULL)
			printf("\"engine_heap_mib\": %.2f, ", (heap_built - heap_before) / 1048576.0);
	}
	if (e != NULL) {
		uint64_t start;

		fo_engine_read_stats(e, &st);
		print_stats(&st);
		/* Ending every flow at once: the teardown rate, for the setup scenarios. */
		start = rte_rdtsc();
		fo_engine_shutdown(e);
		cycles = rte_rdtsc() - start;
		if (sc->setup)
			printf(", \"shutdown_mflows_per_s\": %.4f",
			       st.flows_active / (cycles / (double)rte_get_tsc_hz()) / 1e6);
		fo_engine_free(e);
	} else {
		printf("\"engine\": null");
	}
	drain_tx_ring();
	/* What the engine left allocated, and mbufs neither in the pool nor in the ring. */
	printf(", \"heap_leaked_bytes\": %ld, \"mbufs_missing\": %d}",
	       (long)(heap_used() - heap_before), (int)(POOL_SIZE - rte_mempool_avail_count(pool)));
	return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Set-up */

static int
rig_create(void)
{
	struct rte_eth_conf port_conf = { 0 };
	struct rte_ring *rx[1], *tx[1];
	int port;

	socket_id = (int)rte_socket_id();
	pool = rte_pktmbuf_pool_create("fb_pool", POOL_SIZE, POOL_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket_id);
	/* Single producer and consumer: only this lcore touches them. */
	rx_ring = rte_ring_create("fb_rx", RING_SIZE, socket_id, RING_F_SP_ENQ | RING_F_SC_DEQ);
	tx_ring = rte_ring_create("fb_tx", RING_SIZE, socket_id, RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (pool == NULL || rx_ring == NULL || tx_ring == NULL) {
		fprintf(stderr, "fo_flowbench: cannot create the mbuf pool and rings: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	rx[0] = rx_ring;
	tx[0] = tx_ring;
	port = rte_eth_from_rings("fb_ring", rx, 1, tx, 1, socket_id);
	if (port < 0) {
		fprintf(stderr, "fo_flowbench: cannot create the net_ring port: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	route.rx_port = route.tx_port = (uint16_t)port;
	/* The ring PMD's queues are its rings; the port must still be started to take packets. */
	if (rte_eth_dev_configure(port, 1, 1, &port_conf) != 0 ||
	    rte_eth_rx_queue_setup(port, 0, RING_SIZE, socket_id, NULL, pool) != 0 ||
	    rte_eth_tx_queue_setup(port, 0, RING_SIZE, socket_id, NULL) != 0 ||
	    rte_eth_dev_start(port) != 0) {
		fprintf(stderr, "fo_flowbench: cannot start the net_ring port\n");
		return -1;
	}
	/* Registered once here, so that the first engine's heap figures do not include them. */
	if (fo_pkt_meta_register() != 0) {
		fprintf(stderr, "fo_flowbench: cannot register the engine's mbuf fields\n");
		return -1;
	}
	return 0;
}

static void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [EAL args] -- [--seconds S] [--warmup S] [--only NAME,...] [--list]\n", prog);
}

static int
selected(const char *only, const char *name)
{
	size_t len = strlen(name);
	const char *p = only;

	if (only == NULL)
		return 1;
	while ((p = strstr(p, name)) != NULL) {
		if ((p == only || p[-1] == ',') && (p[len] == '\0' || p[len] == ','))
			return 1;
		p += len;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "only", required_argument, NULL, 'o' },
		{ "list", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	double seconds = 2.0, warmup = 0.5;
	const char *only = NULL;
	int ret, opt, first = 1, failed = 0;
	size_t i;

	ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		fprintf(stderr, "fo_flowbench: cannot start the EAL: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= ret;
	argv += ret;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			seconds = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'o':
			only = optarg;
			break;
		case 'l':
			for (i = 0; i < RTE_DIM(scenarios); i++)
				printf("%s\n", scenarios[i].name);
			rte_eal_cleanup();
			return 0;
		default:
			usage(argv[0]);
			rte_eal_cleanup();
			return 2;
		}
	}
	if (seconds <= 0 || warmup < 0 || rig_create() != 0) {
		rte_eal_cleanup();
		return 1;
	}
	if (gen_self_check() != 0) {
		fprintf(stderr, "fo_flowbench: the generator's checksums are wrong\n");
		rte_eal_cleanup();
		return 1;
	}
	printf("{\"benchmark\": \"flows\", \"memory\": \"%s\", \"tsc_hz\": %lu, \"burst\": %d, \"frame_len\": %d, "
	       "\"seconds\": %g, \"warmup\": %g, \"sizeof_fo_flow\": %zu, \"scenarios\": {",
	       rte_eal_has_hugepages() ? "hugepages" : "no-huge", (unsigned long)rte_get_tsc_hz(), BURST,
	       FRAME_LEN + 4, seconds, warmup, sizeof(struct fo_flow));
	for (i = 0; i < RTE_DIM(scenarios); i++) {
		if (!selected(only, scenarios[i].name))
			continue;
		if (!first)
			printf(", ");
		first = 0;
		failed |= run_scenario(&scenarios[i], seconds, warmup) != 0;
		fflush(stdout);
	}
	printf("}}\n");
	rte_eth_dev_stop(route.rx_port);
	rte_eth_dev_close(route.rx_port);
	rte_mempool_free(pool);
	rte_ring_free(rx_ring);
	rte_ring_free(tx_ring);
	rte_eal_cleanup();
	return failed;
}
