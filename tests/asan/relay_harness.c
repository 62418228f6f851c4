/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The data path of worker processes (docs/architecture.md, "Worker processes") under
 * AddressSanitizer and UBSan: the relay (fo_worker.c's outboxes, the engine's relay shard and its
 * wait for inbox room), the workers' engines sending into rings (fo_tx.h) and the shared group.
 * Here the relay and the two workers are threads of one process; in a run they are processes, and
 * the C is the same. The rings are small (16 packets), so that every wait happens: the relay
 * waiting on a full inbox (and draining the outboxes meanwhile), a worker waiting on a full outbox.
 *
 * Usage: relay_harness EAL-ARGS (--vdev net_pcap0,rx_pcap=IN,tx_pcap=OUT) -- PACKETS
 * Prints "relayed SENT handed HANDED worker0 P0 worker1 P1 waits W"; exits non-zero on a mismatch.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "flowos/fo_engine.h"
#include "flowos/fo_port.h"
#include "flowos/fo_worker.h"

#define WORKERS 2
#define RING_SIZE 16
#define PATTERN 0x6D5A

struct shard {
	struct fo_worker *w;
	struct fo_engine *e;
};

static struct fo_worker_group *group;

static void
fail(const char *what)
{
	fprintf(stderr, "relay: %s\n", what);
	exit(1);
}

/* The run's one read-only configuration: a catch-all definition, no processor. */
static struct fo_pipeline_conf *
pipeline_conf(struct rte_mempool *pool)
{
	struct fo_engine_conf conf = {0};
	struct fo_def_conf def = {0};
	struct fo_pipeline_conf *pc;
	char err[256];
	int t;

	conf.pool = pool;
	conf.socket_id = SOCKET_ID_ANY;
	for (t = 0; t < FO_TIMEOUT_CLASS_COUNT; t++)
		conf.timeout_ns[t] = 60ULL * 1000000000ULL;
	pc = fo_pipeline_conf_create(&conf);
	if (pc == NULL)
		fail("pipeline conf");
	strcpy(def.name, "all");
	def.hold_packets = 64;
	def.hold_bytes = 1 << 20;
	if (fo_pipeline_conf_add_definition(pc, &def) != 0 || fo_pipeline_conf_build(pc, err, sizeof(err)) != 0)
		fail(err);
	return pc;
}

/* A shard of it (the relay's, or a worker's). */
static struct fo_engine *
engine(struct fo_pipeline_conf *pc)
{
	struct fo_shard_conf sc = { .flow_capacity = 1024, .socket_id = SOCKET_ID_ANY };
	struct fo_engine *e = fo_engine_create(pc, &sc);
	char err[256];

	if (e == NULL)
		fail("engine");
	if (fo_engine_build(e, err, sizeof(err)) != 0)
		fail(err);
	return e;
}

/* A worker process's life: its loop on its inbox, its flows ended into its outbox, leaving. */
static void *
run_worker(void *arg)
{
	struct shard *s = arg;

	fo_worker_loop(s->w);
	fo_engine_shutdown(s->e);
	fo_worker_group_leave(group);
	return NULL;
}

static void *
run_relay(void *arg)
{
	fo_worker_loop(arg);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct fo_port_conf pconf = {0};
	struct fo_port_info info;
	struct fo_worker_conf wconf = {0};
	struct fo_route route = {0};
	struct fo_engine_stats st, relay_st;
	struct rte_eth_stats ps;
	struct rte_ring *inboxes[WORKERS], *outboxes[WORKERS];
	struct shard shards[WORKERS];
	struct fo_worker *relay;
	struct fo_engine *relay_engine;
	struct fo_pipeline_conf *pc;
	struct rte_mempool *pool;
	pthread_t threads[WORKERS + 1];
	uint64_t expected, packets[WORKERS], handoff_full;
	char name[32];
	int eal, i;

	eal = rte_eal_init(argc, argv);
	if (eal < 0 || argc - eal < 2)
		return 2;
	expected = strtoull(argv[eal + 1], NULL, 10);
	pool = rte_pktmbuf_pool_create("relay_pool", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL)
		return 3;
	pconf.pool = pool;
	pconf.nb_rx_queues = pconf.nb_tx_queues = 1;
	pconf.nb_rxd = pconf.nb_txd = 512;
	pconf.tx_chain_max = UINT32_MAX;
	if (fo_port_start(0, &pconf, &info) != 0)
		return 4;
	group = fo_worker_group_create_shared("relay_group", WORKERS + 1, 0);
	if (group == NULL || fo_worker_group_lookup("relay_group") != group)
		fail("shared group");
	wconf.burst = 32;
	wconf.source_idle_ms = 1000;
	for (i = 0; i < WORKERS; i++) {
		snprintf(name, sizeof(name), "relay_in%d", i);
		inboxes[i] = rte_ring_create(name, RING_SIZE, SOCKET_ID_ANY, RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "relay_out%d", i);
		outboxes[i] = rte_ring_create(name, RING_SIZE, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (inboxes[i] == NULL || outboxes[i] == NULL)
			fail("rings");
	}
	relay = fo_worker_create(&wconf, SOCKET_ID_ANY);
	pc = pipeline_conf(pool);
	relay_engine = engine(pc);
	route.finite = 1;
	route.expected_rx = expected;
	if (relay == NULL || fo_worker_add_route(relay, &route) != 0 ||
	    fo_engine_set_shard(relay_engine, WORKERS, WORKERS, inboxes, PATTERN) != 0 ||
	    fo_engine_set_handoff_wait(relay_engine, fo_worker_drain_outboxes, relay) != 0 ||
	    fo_worker_set_hook(relay, fo_engine_burst, relay_engine) != 0 ||
	    fo_worker_join_group(relay, group, WORKERS, NULL, NULL, NULL) != 0)
		fail("relay");
	for (i = 0; i < WORKERS; i++) {
		if (fo_worker_add_outbox(relay, outboxes[i], 0, 0, NULL) != 0)
			fail("outbox");
		shards[i].w = fo_worker_create(&wconf, SOCKET_ID_ANY);
		shards[i].e = engine(pc);
		if (shards[i].w == NULL || fo_engine_set_shard(shards[i].e, i, WORKERS, inboxes, PATTERN) != 0 ||
		    fo_engine_set_tx_ring(shards[i].e, 0, outboxes[i]) != 0 ||
		    fo_worker_join_group(shards[i].w, group, i, inboxes[i], fo_engine_inbox, shards[i].e) != 0)
			fail("worker");
	}
	fo_pipeline_conf_free(pc);   /* the shards hold it: freed with the last one */
	/* Not an EAL lcore: plain threads (no mempool cache; the pool has none anyway). */
	if (pthread_create(&threads[0], NULL, run_relay, relay) != 0)
		fail("thread");
	for (i = 0; i < WORKERS; i++)
		if (pthread_create(&threads[i + 1], NULL, run_worker, &shards[i]) != 0)
			fail("thread");
	for (i = 0; i <= WORKERS; i++)
		pthread_join(threads[i], NULL);
	if (fo_worker_group_left(group) != WORKERS)
		fail("every worker left");
	fo_engine_read_stats(relay_engine, &relay_st);
	handoff_full = relay_st.handoff_full;
	for (i = 0; i < WORKERS; i++) {
		fo_engine_read_stats(shards[i].e, &st);
		packets[i] = st.packets;
		if (st.tx_packets != st.packets || st.flows_active != 0)
			fail("a worker's packets");
		if (!rte_ring_empty(inboxes[i]) || !rte_ring_empty(outboxes[i]))
			fail("a ring not drained");
	}
	if (rte_eth_stats_get(0, &ps) != 0)
		fail("port stats");
	if (relay_st.handed_off != expected || relay_st.packets != 0 || packets[0] + packets[1] != expected ||
	    ps.opackets != expected || packets[0] == 0 || packets[1] == 0)
		fail("counts");
	for (i = 0; i < WORKERS; i++) {
		fo_worker_free(shards[i].w);
		fo_engine_free(shards[i].e);
		rte_ring_free(inboxes[i]);
		rte_ring_free(outboxes[i]);
	}
	fo_worker_free(relay);
	fo_engine_free(relay_engine);
	if (fo_port_close(0) != 0)
		fail("port close");
	if (rte_mempool_in_use_count(pool) != 0)
		fail("mbufs not back in the pool");
	printf("relayed %lu handed %lu worker0 %lu worker1 %lu waits %lu\n", (unsigned long)ps.opackets,
	       (unsigned long)relay_st.handed_off, (unsigned long)packets[0], (unsigned long)packets[1],
	       (unsigned long)handoff_full);
	fo_worker_group_free(group);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return 0;
}
