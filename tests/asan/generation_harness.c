/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Generations of a running engine (docs/reload.md), built with the fast path's sources under
 * AddressSanitizer and UBSan by tests/test_reload.py. UDP frames of numbered flows, each with a
 * sequence number in its payload, go through fo_engine_burst while the engine switches
 * configurations between bursts. A C processor, "tagged", knows its generation (its parameter)
 * and records which flows it saw, checks that each flow's packets come in order, and counts its
 * flow_start, flow_end (by reason) and teardown calls. At the end every mbuf must be back in its
 * pool. Prints "name value" lines; exit codes > 1 name the step that failed.
 * Usage: generation_harness EAL-ARGS
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "flowos/fo_builtins.h"
#include "flowos/fo_engine.h"
#include "flowos/fo_port.h"

#define TAGS 32
#define POOL_SIZE 8191
#define PAYLOAD_AT (14 + 20 + 8)

struct tagged_ctx {
	uint32_t tag;
};

struct tagged_state {
	uint32_t next;        /* the sequence number expected; 0: none seen yet */
	uint8_t pad[4];
};

static uint64_t seen[TAGS];          /* bit per flow number: flows the tag's instances processed */
static uint64_t packets[TAGS], starts[TAGS], teardowns[TAGS], ends[TAGS][FO_END_REASON_COUNT];
static uint64_t out_of_order;

static int
tagged_setup(void *ctx, const void *params, size_t len, char *err, size_t errlen)
{
	struct tagged_ctx *c = ctx;

	if (len != sizeof(uint32_t)) {
		snprintf(err, errlen, "a tag");
		return -EINVAL;
	}
	memcpy(&c->tag, params, sizeof(c->tag));
	if (c->tag >= TAGS) {
		snprintf(err, errlen, "tag %u refused", c->tag);
		return -EINVAL;
	}
	return 0;
}

static void
tagged_flow_start(void *ctx, const struct fo_flow *flow, void *state, const struct rte_mbuf *first)
{
	starts[((struct tagged_ctx *)ctx)->tag]++;
}

static void
tagged_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	struct tagged_ctx *c = ctx;
	uint16_t b, i;

	for (b = 0; b < n; b++) {
		struct tagged_state *s = batches[b].state;

		for (i = 0; i < batches[b].n; i++) {
			const uint8_t *p = rte_pktmbuf_mtod_offset(batches[b].pkts[i], const uint8_t *, PAYLOAD_AT);
			uint32_t flow, seq;

			if (rte_pktmbuf_mtod(batches[b].pkts[i], const uint8_t *)[23] != 17)
				continue;   /* the TCP connection: no numbers in it */
			memcpy(&flow, p, 4);
			memcpy(&seq, p + 4, 4);
			seen[c->tag] |= 1ULL << flow;
			if (s->next != 0 && seq != s->next)
				out_of_order++;
			s->next = seq + 1;
		}
		packets[c->tag] += batches[b].n;
	}
}

static void
tagged_flow_end(void *ctx, const struct fo_flow *flow, void *state, enum fo_flow_end_reason reason)
{
	ends[((struct tagged_ctx *)ctx)->tag][reason]++;
}

static void
tagged_teardown(void *ctx)
{
	teardowns[((struct tagged_ctx *)ctx)->tag]++;
}

static const struct fo_processor_ops tagged_ops = {
	.name = "tagged", .level = FO_LEVEL_L4, .readonly = 1,
	.ctx_size = sizeof(struct tagged_ctx), .state_size = sizeof(struct tagged_state),
	.setup = tagged_setup, .flow_start = tagged_flow_start, .process = tagged_process,
	.flow_end = tagged_flow_end, .teardown = tagged_teardown,
};

/* The same processor with a larger state: a generation that needs larger state areas. */
static struct fo_processor_ops big_ops;

static struct rte_mempool *pool;
static struct fo_engine_conf engine_conf;
static uint32_t next_seq[64];
static uint64_t sent;
static const char *def_name = "all";   /* the name make_conf gives its definition */

/* A conf of one definition ("all", holding up to hold packets) whose pipeline is tagged(tag), then hold(hold_n) if not 0. */
static struct fo_pipeline_conf *
make_conf(const struct fo_pipeline_conf *prev, uint32_t tag, const struct fo_processor_ops *ops, uint32_t hold,
	  uint32_t hold_n)
{
	struct fo_pipeline_conf *pc = prev == NULL ? fo_pipeline_conf_create(&engine_conf) :
						     fo_pipeline_conf_create_next(prev, &engine_conf);
	struct fo_hold_params hp = { .packets = hold_n };
	struct fo_def_conf def = {0};
	char err[256];

	if (pc == NULL)
		return NULL;
	snprintf(def.name, sizeof(def.name), "%s", def_name);
	def.hold_packets = hold;
	def.hold_bytes = 1 << 24;
	if (fo_pipeline_conf_add_definition(pc, &def) != 0 ||
	    fo_pipeline_conf_add_processor(pc, 0, 0, ops, &tag, sizeof(tag), err, sizeof(err)) < 0 ||
	    (hold_n > 0 && fo_pipeline_conf_add_processor(pc, 0, 1, fo_processor_find("hold"), &hp, sizeof(hp), err,
							 sizeof(err)) < 0) ||
	    fo_pipeline_conf_build(pc, err, sizeof(err)) != 0) {
		fprintf(stderr, "conf: %s\n", err);
		fo_pipeline_conf_free(pc);
		return NULL;
	}
	return pc;
}

static struct rte_mbuf *
frame(uint32_t flow)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	uint8_t *p;
	uint32_t seq = ++next_seq[flow];

	if (m == NULL)
		return NULL;
	p = (uint8_t *)rte_pktmbuf_append(m, PAYLOAD_AT + 8);
	memset(p, 0, PAYLOAD_AT + 8);
	memset(p, 0x02, 12);
	p[12] = 0x08;                                    /* IPv4 */
	p[14] = 0x45;
	p[17] = 20 + 8 + 8;                              /* total length */
	p[22] = 64;                                      /* TTL */
	p[23] = 17;                                      /* UDP */
	p[26] = 10, p[29] = (uint8_t)flow;               /* 10.0.0.flow -> 10.0.1.1 */
	p[30] = 10, p[32] = 1, p[33] = 1;
	p[34] = 0x10, p[35] = (uint8_t)flow;             /* source port 4096 + flow */
	p[37] = 53;
	p[39] = 16;                                      /* UDP length */
	memcpy(p + PAYLOAD_AT, &flow, 4);
	memcpy(p + PAYLOAD_AT + 4, &seq, 4);
	return m;
}

/* A segment of one TCP connection, 10.0.2.1:5000 <-> 10.0.1.1:80 (no payload). */
static int
tcp_segment(struct fo_engine *e, int from_client, uint8_t flags, uint32_t seq, uint32_t ack)
{
	struct fo_route route = {0};
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	uint8_t *p, client[4] = {10, 0, 2, 1}, server[4] = {10, 0, 1, 1};
	uint32_t seq_be = rte_cpu_to_be_32(seq), ack_be = rte_cpu_to_be_32(ack);

	if (m == NULL)
		return -1;
	p = (uint8_t *)rte_pktmbuf_append(m, 14 + 20 + 20);
	memset(p, 0, 14 + 20 + 20);
	memset(p, 0x02, 12);
	p[12] = 0x08;
	p[14] = 0x45;
	p[17] = 40;
	p[22] = 64;
	p[23] = 6;
	memcpy(p + 26, from_client ? client : server, 4);
	memcpy(p + 30, from_client ? server : client, 4);
	p[34] = from_client ? 0x13 : 0, p[35] = from_client ? 0x88 : 80;    /* 5000 -> 80, or back */
	p[36] = from_client ? 0 : 0x13, p[37] = from_client ? 80 : 0x88;
	memcpy(p + 38, &seq_be, 4);
	memcpy(p + 42, &ack_be, 4);
	p[46] = 0x50;
	p[47] = flags;
	p[48] = 0xff;
	sent++;
	fo_engine_burst(e, &route, &m, 1);
	return 0;
}

/* The connection opened and closed by FIN both ways: it stays for its TIME-WAIT. */
static int
tcp_open_and_close(struct fo_engine *e)
{
	return tcp_segment(e, 1, 0x02, 100, 0) | tcp_segment(e, 0, 0x12, 500, 101) | tcp_segment(e, 1, 0x10, 101, 501) |
	       tcp_segment(e, 1, 0x11, 101, 501) | tcp_segment(e, 0, 0x10, 501, 102) | tcp_segment(e, 0, 0x11, 501, 102) |
	       tcp_segment(e, 1, 0x10, 102, 502);
}

/* rounds bursts, each a packet of every flow in [lo, hi). */
static int
traffic(struct fo_engine *e, uint32_t lo, uint32_t hi, int rounds)
{
	struct fo_route route = {0};
	struct rte_mbuf *burst[64];
	uint32_t f;
	uint16_t n;
	int r;

	for (r = 0; r < rounds; r++) {
		n = 0;
		for (f = lo; f < hi; f++) {
			burst[n] = frame(f);
			if (burst[n++] == NULL)
				return -1;
		}
		sent += n;
		fo_engine_burst(e, &route, burst, n);
	}
	return 0;
}

/* Stages next and switches to it, as a worker would between two bursts. */
static int
reload(struct fo_engine *e, struct fo_pipeline_conf *next, int migrate)
{
	char err[256];
	int ret;

	ret = fo_engine_stage(e, next);
	if (ret == 0 && (ret = fo_engine_stage_setup(e, err, sizeof(err))) != 0)
		fo_engine_unstage(e);
	if (ret == 0)
		ret = fo_engine_switch(e, migrate);
	fo_pipeline_conf_free(next);   /* the shard holds it while it runs it */
	return ret;
}

int
main(int argc, char **argv)
{
	struct fo_port_conf pconf = {0};
	struct fo_port_info port_info;
	struct fo_shard_conf sc = { .flow_capacity = 256, .socket_id = SOCKET_ID_ANY };
	struct fo_pipeline_conf *first, *other, *pc;
	struct fo_engine_stats st;
	struct fo_def_stats before, after;
	struct fo_route route = {0};
	struct fo_engine *e;
	char err[256];
	int t, g, ret;

	if (rte_eal_init(argc, argv) < 0)
		return 2;
	pool = rte_pktmbuf_pool_create("asan_pool", POOL_SIZE, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL)
		return 3;
	pconf.pool = pool;
	pconf.nb_rx_queues = pconf.nb_tx_queues = 1;
	pconf.nb_rxd = pconf.nb_txd = 512;
	if (fo_port_start(0, &pconf, &port_info) != 0)
		return 4;
	engine_conf.pool = pool;
	engine_conf.socket_id = SOCKET_ID_ANY;
	for (t = 0; t < FO_TIMEOUT_CLASS_COUNT; t++)
		engine_conf.timeout_ns[t] = 60ULL * 1000000000ULL;
	big_ops = tagged_ops;
	big_ops.state_size = 512;

	/* Generation 1: tagged(1), flows 0-7. The harness keeps `first` to make the family's later confs. */
	first = make_conf(NULL, 1, &tagged_ops, 64, 0);
	if (first == NULL || (e = fo_engine_create(first, &sc)) == NULL || fo_engine_build(e, err, sizeof(err)) != 0)
		return 5;
	if (traffic(e, 0, 8, 10) != 0)
		return 6;

	/* A conf of another family, and one that is not built, are refused; nothing changes. */
	other = make_conf(NULL, 9, &tagged_ops, 64, 0);
	if (other == NULL || fo_engine_stage(e, other) != -EINVAL || fo_engine_switch(e, 0) != -EINVAL)
		return 7;
	fo_pipeline_conf_free(other);

	/* A processor whose ops name no level (the C API's callers, not FlowOS's tiers, can) is refused. */
	{
		struct fo_processor_ops no_level = tagged_ops;
		struct fo_pipeline_conf *odd = fo_pipeline_conf_create(&engine_conf);
		struct fo_def_conf def = { .name = "odd", .hold_packets = 64, .hold_bytes = 1 << 24 };
		uint32_t tag = 0;

		no_level.level = FO_LEVEL_COUNT;
		if (odd == NULL || fo_pipeline_conf_add_definition(odd, &def) != 0)
			return 17;
		err[0] = '\0';
		ret = fo_pipeline_conf_add_processor(odd, 0, 0, &no_level, &tag, sizeof(tag), err, sizeof(err));
		printf("no_level %d %s\n", ret, err);
		fo_pipeline_conf_free(odd);
	}

	/* A writer sharing a stage: FlowOS's configuration refuses it first (with the user's key); a C
	 * caller meets this refusal. */
	{
		struct fo_processor_ops writer = tagged_ops;
		struct fo_pipeline_conf *odd = fo_pipeline_conf_create(&engine_conf);
		struct fo_def_conf def = { .name = "odd", .hold_packets = 64, .hold_bytes = 1 << 24 };
		uint32_t tag = 0;

		writer.name = "writer";
		writer.readonly = 0;
		if (odd == NULL || fo_pipeline_conf_add_definition(odd, &def) != 0 ||
		    fo_pipeline_conf_add_processor(odd, 0, 0, &tagged_ops, &tag, sizeof(tag), err, sizeof(err)) < 0)
			return 18;
		err[0] = '\0';
		ret = fo_pipeline_conf_add_processor(odd, 0, 0, &writer, &tag, sizeof(tag), err, sizeof(err));
		printf("writer_shares %d %s\n", ret, err);
		fo_pipeline_conf_free(odd);
	}

	/* Generation 2: a larger state, more held packets (larger windows), and a hold after tagged(2). */
	pc = make_conf(first, 2, &big_ops, 1024, 3);
	if (pc == NULL || fo_engine_stage(e, pc) != 0)
		return 8;
	other = make_conf(first, 9, &tagged_ops, 64, 0);
	if (other == NULL || fo_engine_stage(e, other) != -EBUSY)   /* one staged at a time */
		return 8;
	fo_pipeline_conf_free(other);
	/* The definition keeps its name: its counters go on from the first generation's. */
	if (fo_engine_read_def_stats(e, 0, &before) != 0 || fo_engine_stage_setup(e, err, sizeof(err)) != 0 ||
	    fo_engine_switch(e, 0) != 0 || fo_engine_read_def_stats(e, 0, &after) != 0)
		return 8;
	printf("def_before_switch packets %lu flows_created %lu flows_active %lu\n", (unsigned long)before.packets,
	       (unsigned long)before.flows_created, (unsigned long)before.flows_active);
	printf("def_after_switch packets %lu bytes_kept %d flows_created %lu flows_active %lu\n",
	       (unsigned long)after.packets, after.bytes == before.bytes, (unsigned long)after.flows_created,
	       (unsigned long)after.flows_active);
	fo_pipeline_conf_free(pc);
	/* Old flows 0-7 keep tagged(1) (their state moved to the larger areas), new flows 8-15 get tagged(2). */
	if (traffic(e, 0, 16, 10) != 0)
		return 9;
	printf("generations_after_switch %u\n", fo_engine_generations(e));

	/* A generation whose setup fails is undone: nothing changes (tag 40 is refused by its setup). */
	pc = make_conf(first, 40, &tagged_ops, 64, 0);
	if (pc == NULL || fo_engine_stage(e, pc) != 0 || fo_engine_stage_setup(e, err, sizeof(err)) == 0)
		return 10;
	printf("refused_setup %s\n", strstr(err, "tag 40 refused") != NULL ? "named" : err);
	fo_engine_unstage(e);
	fo_pipeline_conf_free(pc);
	if (fo_engine_switch(e, 0) != -EINVAL || traffic(e, 0, 16, 2) != 0)
		return 10;

	/* Generation 3 with migrate: flows 0-15 end now (reload), what hold(3) held goes on; 1 and 2 are torn down.
	 * Its definition has another name: it counts from 0. */
	def_name = "renamed";
	if (reload(e, make_conf(first, 3, &tagged_ops, 64, 0), 1) != 0 || fo_engine_read_def_stats(e, 0, &after) != 0)
		return 11;
	def_name = "all";
	printf("def_after_rename packets %lu flows_created %lu\n", (unsigned long)after.packets,
	       (unsigned long)after.flows_created);
	printf("generations_after_migrate %u\n", fo_engine_generations(e));
	if (traffic(e, 0, 16, 10) != 0)
		return 12;

	/* A TCP connection opens and closes in generation 3. */
	if (tcp_open_and_close(e) != 0)
		return 12;

	/* Generation 4 without migrate: generation 3 stays until its flows end by idle timeout. */
	for (t = 0; t < FO_TIMEOUT_CLASS_COUNT; t++)
		engine_conf.timeout_ns[t] = 20ULL * 1000000ULL;
	if (reload(e, make_conf(first, 4, &tagged_ops, 64, 0), 0) != 0)
		return 13;
	/* A new connection on the closed one's ports ends it (fin, in generation 3) and starts in 4. */
	if (tcp_segment(e, 1, 0x02, 9000, 0) != 0)
		return 13;
	printf("generations_before_idle %u\n", fo_engine_generations(e));
	rte_delay_ms(30);
	fo_engine_burst(e, &route, NULL, 0);
	fo_engine_burst(e, &route, NULL, 0);
	printf("generations_after_idle %u\n", fo_engine_generations(e));

	/* Generations pile up while each keeps a live flow; the shard refuses more than it can run. */
	for (t = 0; t < FO_TIMEOUT_CLASS_COUNT; t++)
		engine_conf.timeout_ns[t] = 60ULL * 1000000000ULL;
	for (g = 5; g < TAGS; g++) {
		if (traffic(e, 16 + (uint32_t)g, 17 + (uint32_t)g, 2) != 0)
			return 14;
		ret = reload(e, make_conf(first, (uint32_t)g, &tagged_ops, 64, 0), 0);
		if (ret == -ENOSPC)
			break;
		if (ret != 0)
			return 14;
	}
	printf("most_generations %u\n", fo_engine_generations(e));
	printf("refused_at_tag %d\n", g);
	if (traffic(e, 0, 64, 3) != 0)
		return 15;

	fo_engine_shutdown(e);
	fo_engine_read_stats(e, &st);
	fo_engine_free(e);
	fo_pipeline_conf_free(first);
	for (t = 1; t < 5; t++)
		printf("tag%d seen %#lx packets %lu starts %lu ends_fin %lu ends_reload %lu ends_idle %lu ends_shutdown %lu teardowns %lu\n",
		       t, (unsigned long)seen[t], (unsigned long)packets[t], (unsigned long)starts[t],
		       (unsigned long)ends[t][FO_END_FIN],
		       (unsigned long)ends[t][FO_END_RELOAD], (unsigned long)ends[t][FO_END_IDLE],
		       (unsigned long)ends[t][FO_END_SHUTDOWN], (unsigned long)teardowns[t]);
	printf("teardowns_5_on %lu\n", (unsigned long)(teardowns[5] + teardowns[6] + teardowns[7] + teardowns[8] +
							teardowns[9] + teardowns[10] + teardowns[11]));
	printf("out_of_order %lu\n", (unsigned long)out_of_order);
	printf("sent %lu packets %lu tx %lu dropped %lu held %lu generations %lu retired %lu migrated %lu\n",
	       (unsigned long)sent, (unsigned long)st.packets, (unsigned long)st.tx_packets, (unsigned long)st.dropped,
	       (unsigned long)st.held, (unsigned long)st.generations, (unsigned long)st.generations_retired,
	       (unsigned long)st.flows_migrated);
	rte_eth_dev_stop(0);
	rte_eth_dev_close(0);
	if (rte_mempool_avail_count(pool) != POOL_SIZE) {
		fprintf(stderr, "leak: %u of %d mbufs back\n", rte_mempool_avail_count(pool), POOL_SIZE);
		return 16;
	}
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return 0;
}
