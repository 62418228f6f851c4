/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Pipelines without streams (ext/src/fo_pipeline.c: the head/tail protocol, and the windows a
 * burst shares across its processors when its flows held nothing before it) through the engine:
 * the traffic of fuzz_traffic.h into three processors, two read-only ones sharing stage 0 (one at
 * L2, which every frame reaches, and one at L4, which frames without a transport header skip) and
 * one writer at L3 in stage 1. The input's first three bytes give each processor its manner: below
 * 128 it passes everything (the shared windows hold through the burst), from 128 on it also
 * drops, holds, redirects, marks packets modified and injects copies, as a hash of the packet's
 * place and the call count picks. Each processor checks what it is shown against a model of what
 * it and the stage before it released, per flow: its window is in flow order, it never sees again
 * a packet it released, every packet it sees has bytes at its level, and stage 1 sees only packets
 * the L2 processor of stage 0 released and neither of the two dropped. On the way out (a TX
 * callback on the port) each flow's packets leave in its order: a flow's packets never overtake
 * each other, whether they left from the shared windows or from the queue after a hold. At the end
 * every packet is accounted for and every mbuf is back in the pool (fuzz_traffic.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>

#include "fuzz_traffic.h"

#define CAPACITY 16
#define N_PROCS 3
#define DROPS 64            /* dropped sequence numbers remembered per flow (by seq % DROPS) */

/* Per flow id: what each processor released (every sequence number below), what stage 0 dropped. */
struct model {
	uint32_t released[N_PROCS];
	uint32_t dropped[DROPS];    /* seq + 1; 0: none */
};

static struct model models[CAPACITY];
static uint8_t manner[N_PROCS];
static uint32_t calls;

/*
 * The order out. Each packet the L2 processor is shown carries a tag in m->hash.usr (fuzz_mbuf
 * clears it): its flow's id and how many flows that id had started, + 1. Per id, the sequence
 * number of the current flow's last packet out.
 */
static uint32_t starts[CAPACITY];
static uint32_t last_out[CAPACITY];

static uint32_t
order_tag(uint32_t id)
{
	return (starts[id] << 4 | id) + 1;
}

static void
broken(uint16_t p, const char *what, uint32_t seq)
{
	fprintf(stderr, "fuzz_pipeline: processor %u: %s (sequence number %u)\n", p, what, seq);
	abort();
}

/* The verdict processor p gives the packet at seq of flow id, in call c. */
static uint8_t
pick(uint16_t p, uint32_t id, uint32_t seq, uint32_t c)
{
	uint32_t r = (seq * 2654435761u) ^ (id * 40503u) ^ (c * 2246822519u) ^ (manner[p] * 97u);

	if (manner[p] < 128)
		return FO_PASS;
	switch ((r >> 11) % 16) {
	case 0:
		return FO_DROP;
	case 1:
		return FO_HOLD;
	case 2:
		return FO_REDIRECT;
	case 3:
		return p == 2 ? FO_MODIFIED : FO_PASS;   /* the writer's */
	case 4:
		return FO_VERDICT_COUNT;                  /* for this file: a copy injected after it, then pass */
	default:
		return FO_PASS;
	}
}

/* Checks one batch of processor p (at `level`, in `stage`) against the model; then gives verdicts. */
static void
check_and_decide(uint16_t p, enum fo_level level, struct fo_batch *b)
{
	struct model *mo = &models[b->flow->id];
	uint32_t last = 0, released;
	int seen = 0;
	uint16_t i;

	for (i = 0; i < b->n; i++) {
		struct rte_mbuf *m = b->pkts[i];
		const struct fo_pkt_meta *meta = fo_pkt_meta(m);
		uint32_t seq = *fo_pkt_seq(m);

		if (fo_pkt_level_len(m, level) == 0)
			broken(p, "shown a packet with no bytes at its level", seq);
		if (seq < mo->released[p])
			broken(p, "shown a packet it released", seq);
		if (b->stage == 1 && seq >= mo->released[0])
			broken(p, "shown a packet stage 0 had not released", seq);
		if (b->stage == 1 && meta->first_stage == 0 && mo->dropped[seq % DROPS] == seq + 1)
			broken(p, "shown a packet stage 0 dropped", seq);   /* (a copy injected next to it may go on) */
		if (meta->first_stage > b->stage)
			broken(p, "shown a packet injected by its own stage", seq);
		if (meta->first_stage == 0) {   /* an injected packet shares its neighbour's number */
			if (seen && seq <= last)
				broken(p, "shown its window out of flow order", seq);
			last = seq;
			seen = 1;
		}
	}
	if (p == 0)
		for (i = 0; i < b->n; i++)
			b->pkts[i]->hash.usr = order_tag(b->flow->id);
	released = seen ? last + 1 : mo->released[p];
	for (i = 0; i < b->n; i++) {
		uint32_t seq = *fo_pkt_seq(b->pkts[i]);
		uint8_t v = pick(p, b->flow->id, seq, calls);

		if (v == FO_VERDICT_COUNT) {
			struct rte_mbuf *copy = rte_pktmbuf_copy(b->pkts[i], fo_batch_pool(b), 0, UINT32_MAX);

			if (copy != NULL)
				fo_batch_inject(b, i, copy, 1);
			v = FO_PASS;
		}
		b->verdicts[i] = v;
		b->out_ports[i] = 0;      /* the net_null port */
		if (v == FO_HOLD) {       /* it and everything after it wait */
			released = seq;
			break;
		}
		if (v == FO_DROP && b->stage == 0)
			mo->dropped[seq % DROPS] = seq + 1;
	}
	if (released > mo->released[p])
		mo->released[p] = released;
}

static void
process(uint16_t p, enum fo_level level, struct fo_batch *batches, uint16_t n)
{
	uint16_t b;

	calls++;
	for (b = 0; b < n; b++)
		check_and_decide(p, level, &batches[b]);
}

static void
l2_process(void *ctx, struct fo_batch *b, uint16_t n)
{
	process(0, FO_LEVEL_L2, b, n);
}

static void
l4_process(void *ctx, struct fo_batch *b, uint16_t n)
{
	process(1, FO_LEVEL_L4, b, n);
}

static void
l3_process(void *ctx, struct fo_batch *b, uint16_t n)
{
	process(2, FO_LEVEL_L3, b, n);
}

/* The first processor's flow_start comes first: a new flow (or an id reused) starts its model. */
static void
flow_start(void *ctx, const struct fo_flow *flow, void *state, const struct rte_mbuf *first)
{
	if (flow->id >= CAPACITY) {
		fprintf(stderr, "fuzz_pipeline: flow id %u in a table of %d\n", flow->id, CAPACITY);
		abort();
	}
	memset(&models[flow->id], 0, sizeof(models[flow->id]));
	starts[flow->id]++;
	last_out[flow->id] = 0;
}

/*
 * What leaves by the port: each tagged packet of a flow that is still the current one on its id
 * (an ended flow's last packets may go out in the burst that starts the next) comes no earlier in
 * its flow than the one before it (an injected copy shares its neighbour's number).
 */
static uint16_t
check_order_out(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n, void *arg)
{
	uint16_t i;

	for (i = 0; i < n; i++) {
		uint32_t tag = pkts[i]->hash.usr, id, seq;

		if (tag == 0)
			continue;   /* never shown to the L2 processor (unmatched, or released by a policy) */
		pkts[i]->hash.usr = 0;
		id = (tag - 1) % CAPACITY;
		if (tag != order_tag(id))
			continue;
		seq = *fo_pkt_seq(pkts[i]);
		if (seq < last_out[id])
			broken(0, "its flow's packets left out of order", seq);
		last_out[id] = seq;
	}
	return n;
}

static const struct fo_processor_ops l2_ops = {
	.name = "fuzz_l2", .level = FO_LEVEL_L2, .readonly = 1, .flow_start = flow_start, .process = l2_process,
};
static const struct fo_processor_ops l4_ops = {
	.name = "fuzz_l4", .level = FO_LEVEL_L4, .readonly = 1, .process = l4_process,
};
static const struct fo_processor_ops l3_ops = {
	.name = "fuzz_l3", .level = FO_LEVEL_L3, .readonly = 0, .process = l3_process,
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init(1);
	fuzz_traffic_init();
	if (rte_eth_add_tx_callback(0, 0, check_order_out, NULL) == NULL) {
		fprintf(stderr, "fuzz_pipeline: cannot watch the port's TX queue\n");
		abort();
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fo_processor_ops *const ops[N_PROCS] = { &l2_ops, &l4_ops, &l3_ops };
	static const uint16_t stages[N_PROCS] = { 0, 0, 1 };
	static const struct fuzz_traffic traffic = { .target = "fuzz_pipeline", .chains = 1 };
	struct fo_pipeline_conf *pc;
	uint16_t p;

	if (size < N_PROCS)
		return 0;
	for (p = 0; p < N_PROCS; p++)
		manner[p] = data[p];
	calls = 0;
	pc = fuzz_conf_stages(0, ops, stages, N_PROCS);
	fuzz_traffic_run(fuzz_shard(pc, CAPACITY), data + N_PROCS, size - N_PROCS, &traffic);
	fo_pipeline_conf_free(pc);
	return 0;
}
