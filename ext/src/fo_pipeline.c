/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The head/tail protocol. A flow's packets wait in its queue, in arrival order, until the last
 * stage has released them. Each (flow, processor) pair has a head: the sequence number up to
 * which it has released. A processor's window runs from its head to its tail, which is what the
 * previous stage released: the smallest head in that stage (for stage 0, everything arrived).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "fo_engine_priv.h"

/*
 * Puts m in the flow's queue right after at, with the next sequence number: every packet after
 * it moves up by one, and so does every head past at (whoever released at released m).
 */
void
fo_pipeline_insert_after(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *at, struct rte_mbuf *m)
{
	const struct definition *d = &e->defs[flow->key.def];
	uint32_t seq = *fo_pkt_seq(at);
	struct rte_mbuf *cur;
	uint16_t p;

	for (cur = *pkt_next(at); cur != NULL; cur = *pkt_next(cur))
		(*fo_pkt_seq(cur))++;
	if (d->stream_offset != 0 && flow_streams(e, flow)->release_upto > seq)
		flow_streams(e, flow)->release_upto++;
	*fo_pkt_seq(m) = seq + 1;
	*pkt_next(m) = *pkt_next(at);
	*pkt_next(at) = m;
	if (flow->q_tail == at)
		flow->q_tail = m;
	flow->next_seq++;
	for (p = 0; p < d->n_procs; p++)
		if (flow->heads[p] > seq)
			flow->heads[p]++;
	RELAXED_ADD(e->stats.held, 1);
	flow->q_packets++;
	flow->q_bytes += rte_pktmbuf_pkt_len(m);
}

/* What stage s has released: the smallest head among its processors. */
static uint32_t
stage_released(const struct definition *d, const struct fo_flow *flow, uint16_t s)
{
	uint32_t least = flow->heads[d->stage_first[s]];   /* a stage has one processor at least */
	uint16_t p;

	for (p = d->stage_first[s] + 1; p < d->stage_first[s + 1]; p++)
		least = RTE_MIN(least, flow->heads[p]);
	return least;
}

static uint32_t
stage_tail(const struct definition *d, const struct fo_flow *flow, uint16_t s)
{
	return s == 0 ? flow->next_seq : stage_released(d, flow, s - 1);
}

/* What the last stage has released of the flow (everything, without stages or windows). */
static inline uint32_t
last_released(const struct definition *d, const struct fo_flow *flow)
{
	if (d->n_stages == 0 || flow->heads == NULL)
		return flow->next_seq;
	return stage_released(d, flow, d->n_stages - 1);
}

uint32_t
fo_pipeline_released(const struct fo_engine *e, struct fo_flow *flow)
{
	return last_released(&e->defs[flow->key.def], flow);
}

/* Fills the window of one (flow, processor) pair; returns its length. */
static uint16_t
build_window(const struct fo_engine *e, struct fo_flow *flow, const struct proc_conf *proc,
	     uint32_t head, uint32_t tail, struct rte_mbuf **window)
{
	struct rte_mbuf *m;
	uint16_t n = 0;

	for (m = flow->q_head; m != NULL && n < e->window_cap; m = *pkt_next(m)) {
		const struct fo_pkt_meta *meta = fo_pkt_meta(m);
		uint32_t seq = *fo_pkt_seq(m);

		if (seq < head)
			continue;
		if (seq >= tail)
			break;
		if (meta->verdict == FO_DROP || meta->first_stage > proc->stage)
			continue;
		if (fo_pkt_level_len(m, proc->ops.level) == 0)
			continue;   /* nothing at this processor's level: it skips it, in place */
		window[n++] = m;
	}
	return n;
}

/* Adds what a processor released of each direction's stream to its stream offsets. */
static void
count_released(struct fo_engine *e, struct fo_batch *b, uint16_t p, uint16_t n)
{
	struct stream_flow *sf;
	uint16_t i;

	if (!b->normalized)
		return;
	sf = flow_streams(e, b->flow);
	for (i = 0; i < n; i++)
		sf->released[p][fo_pkt_meta(b->pkts[i])->dir] += fo_pkt_level_len(b->pkts[i], FO_LEVEL_PAYLOAD);
}

/*
 * A stream release ended inside held packet i: its first bytes go on, the rest is cut off into a
 * packet of its own that waits. A processor waiting for the bytes after a possible start of a
 * pattern holds only those few, not the sender's whole segment: a sender whose window has shrunk
 * to that segment (after a timeout it resends only the first unacknowledged one) would wait for
 * an ACK while the processor waits for more data. Returns the processor's new head: the rest's
 * sequence number, or packet i's (held whole: no mbuf to cut into).
 */
static __rte_noinline __rte_cold uint32_t
split_held(struct fo_engine *e, struct fo_batch *b, uint16_t p, uint16_t i)
{
	struct rte_mbuf *m = b->pkts[i], *rest = fo_stream_split_rest(e, m, b->split_bytes);

	if (rest == NULL)
		return *fo_pkt_seq(m);
	fo_pipeline_insert_after(e, b->flow, m, rest);
	flow_streams(e, b->flow)->released[p][fo_pkt_meta(m)->dir] += b->split_bytes;
	return *fo_pkt_seq(rest);
}

/*
 * Applies processor p's verdicts to its window and returns its new head; counts them in counts.
 * A hold on a packet before the flow's release_upto is overridden (held stream bytes let go by the
 * engine, fo_stream_hold.c): it goes on, and the processor's window is then held from the first
 * packet at or past release_upto.
 */
static uint32_t
apply_verdicts(struct fo_engine *e, struct fo_batch *b, uint16_t p, uint32_t tail, uint64_t *counts)
{
	uint32_t release_upto = b->normalized ? flow_streams(e, b->flow)->release_upto : 0;
	int overridden = 0;
	uint16_t i;

	for (i = 0; i < b->n; i++) {
		struct fo_pkt_meta *meta = fo_pkt_meta(b->pkts[i]);
		uint8_t v = b->verdicts[i];

		if (unlikely(overridden) && *fo_pkt_seq(b->pkts[i]) >= release_upto) {
			count_released(e, b, p, i);
			return *fo_pkt_seq(b->pkts[i]);
		}
		if (unlikely(v >= FO_VERDICT_COUNT)) {
			RELAXED_ADD(e->stats.bad_verdicts, 1);
			v = FO_DROP;
		} else if (v == FO_REDIRECT && (b->out_ports[i] >= RTE_MIN(RTE_MAX_ETHPORTS, UINT8_MAX) ||
						!rte_eth_dev_is_valid_port(b->out_ports[i]))) {
			RELAXED_ADD(e->stats.bad_redirects, 1);
			v = FO_DROP;
		}
		counts[v]++;
		switch (v) {
		case FO_HOLD:
			if (unlikely(*fo_pkt_seq(b->pkts[i]) < release_upto)) {
				overridden = 1;
				break;
			}
			count_released(e, b, p, i);
			if (b->split_at == i)
				return split_held(e, b, p, i);
			return *fo_pkt_seq(b->pkts[i]);   /* it and everything after it wait for the next call */
		case FO_DROP:
			/* Marked when the stage ends, so the processor's stage-mates still see it. */
			if (e->n_pending_drops < e->window_cap * FO_MAX_BURST)
				e->pending_drops[e->n_pending_drops++] = b->pkts[i];
			else
				meta->verdict = FO_DROP;
			break;
		case FO_MODIFIED:
			meta->flags |= FO_PKT_EDITED;
			if (meta->verdict != FO_DROP)
				meta->verdict = FO_MODIFIED;
			break;
		case FO_REDIRECT:
			meta->out_port = b->out_ports[i];
			break;
		default:
			break;
		}
	}
	count_released(e, b, p, b->n);
	return tail;
}

/* Whether every one of n verdicts is FO_PASS (0), a word at a time. */
static inline int
all_pass(const uint8_t *verdicts, uint32_t n)
{
	uint64_t any = 0, w;
	uint32_t i = 0;

	RTE_BUILD_BUG_ON(FO_PASS != 0);
	for (; i + sizeof(w) <= n; i += sizeof(w)) {
		memcpy(&w, verdicts + i, sizeof(w));
		any |= w;
	}
	for (; i < n; i++)
		any |= verdicts[i];
	return any == 0;
}

/* Runs one processor over the given flows of its definition. */
static void
run_processor(struct fo_engine *e, const struct definition *d, uint16_t p, const uint32_t *flows, uint16_t n_flows)
{
	const struct proc_conf *proc = &d->procs[p];
	struct proc_instance *inst = &e->per_def[d - e->defs].procs[p];
	uint32_t tails[FO_MAX_BURST], *heads[FO_MAX_BURST];
	uint64_t counts[FO_VERDICT_COUNT] = { 0 };
	uint32_t used = 0;
	uint16_t i, nb = 0;
	uint64_t began;

	for (i = 0; i < n_flows; i++) {
		struct fo_flow *flow = &e->flows[flows[i]];
		struct fo_batch *b = &e->batches[nb];
		uint32_t tail, head;
		uint16_t n;

		prefetch_flows_ahead(e, flows, i, n_flows);
		if (flow->key.def != (uint16_t)(d - e->defs) || flow->heads == NULL)
			continue;
		head = flow->heads[p];
		tail = stage_tail(d, flow, proc->stage);
		if (head >= tail)
			continue;
		n = build_window(e, flow, proc, head, tail, &e->window[used]);
		if (n == 0) {
			flow->heads[p] = tail;   /* everything in reach skipped this processor */
			continue;
		}
		b->flow = flow;
		b->state = flow->states + proc->state_offset;
		b->pkts = &e->window[used];
		b->verdicts = &e->verdicts[used];
		b->out_ports = &e->out_ports[used];
		b->n = n;
		b->stage = proc->stage;   /* engine, meta_offset, seq_offset, stream_ops: set once, at build */
		b->split_at = UINT16_MAX;
		if (d->stream_offset != 0) {
			struct stream_flow *sf = flow_streams(e, flow);

			b->stream_base[0] = sf->released[p][0];
			b->stream_base[1] = sf->released[p][1];
			b->normalized = 1;
		} else {
			b->stream_base[0] = b->stream_base[1] = 0;
			b->normalized = 0;
		}
		heads[nb] = &flow->heads[p];   /* the flow's lines may have left the cache by the time verdicts are in */
		tails[nb++] = tail;
		used += n;
	}
	if (nb == 0)
		return;
	memset(e->verdicts, FO_PASS, used);   /* the batches lie back to back */
	began = engine_call_enter(e, d, p, FO_CALL_PROCESS);
	proc->ops.process(inst->ctx, e->batches, nb);
	engine_call_leave(e);
	RELAXED_ADD(inst->busy_tsc, rte_rdtsc() - began);
	RELAXED_ADD(inst->calls, 1);
	RELAXED_ADD(inst->packets, used);
	if (all_pass(e->verdicts, used)) {
		/* The common call: every packet goes on, so each window is released whole. */
		for (i = 0; i < nb; i++) {
			count_released(e, &e->batches[i], p, e->batches[i].n);
			*heads[i] = tails[i];
		}
		counts[FO_PASS] = used;
	} else {
		for (i = 0; i < nb; i++)
			*heads[i] = apply_verdicts(e, &e->batches[i], p, tails[i], counts);
	}
	for (i = 0; i < FO_VERDICT_COUNT; i++)
		RELAXED_ADD(e->stats.verdicts[i], counts[i]);
}

/* A packet the last stage released leaves: dropped, or sent (its checksums fixed if it changed). */
static inline void
depart(struct fo_engine *e, struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);

	if (meta->verdict == FO_DROP) {
		fo_drop(e, m);
		return;
	}
	if (meta->verdict == FO_MODIFIED || (meta->flags & (FO_PKT_EDITED | FO_PKT_HDR_DIRTY)))
		fo_fix_checksums(e, m);
	fo_send(e, m);
}

/* The flow's queue has left whole: it queues nothing, and (without streams) keeps nothing. */
static inline void
queue_left(struct fo_engine *e, struct fo_flow *flow)
{
	flow->q_head = flow->q_tail = NULL;
	flow->q_packets = 0;
	flow->q_bytes = 0;
	if (flow->keeping) {   /* flow_note_kept: without streams, a flow keeps only its queue */
		e->keepers--;
		flow->keeping = 0;
	}
}

/* Whether m has bytes at each level of the set (a bit per level). */
static int
at_levels(struct rte_mbuf *m, uint8_t levels)
{
	for (; levels != 0; levels &= levels - 1)
		if (fo_pkt_level_len(m, (enum fo_level)__builtin_ctz(levels)) == 0)
			return 0;
	return 1;
}

/*
 * Shared windows. In the common burst no flow of a definition held anything from before it
 * (its queue was empty when its first packet of the burst came, so every head is at that
 * packet), the definition has no streams, every packet has bytes at every processor's level,
 * and every processor lets every packet go. Then each processor's window of a flow is the same,
 * the flow's packets of this burst: it is built once, here, for the whole pipeline, and between
 * two processors only the batches' state pointers change (run_processor builds a window per
 * flow and processor from the heads). Returns the number of batches, 0 when the burst is not
 * such (nothing is changed then); *used: their packets.
 */
static uint16_t
share_windows(struct fo_engine *e, const struct definition *d, const uint32_t *flows, uint16_t n_flows,
	      uint32_t *used)
{
	const uint16_t def = (uint16_t)(d - e->defs);
	enum fo_level first_level;
	uint32_t at = 0;
	uint16_t i, nb = 0;
	uint8_t levels;

	/* What join_flow counted of this burst's flows (a definition it did not list: nothing known). */
	if (d->n_procs == 0 || d->stream_offset != 0 || e->per_def[def].run_epoch != e->epoch ||
	    e->per_def[def].stale != 0)
		return 0;
	first_level = (enum fo_level)__builtin_ctz(d->levels);
	levels = d->levels & (d->levels - 1);   /* the others: most pipelines have none */
	for (i = 0; i < n_flows; i++) {
		struct fo_flow *flow = &e->flows[flows[i]];
		struct fo_batch *b = &e->batches[nb];
		struct rte_mbuf *m;
		uint16_t n = 0;

		if (flow->key.def != def)
			continue;
		if (unlikely(flow->heads == NULL))
			return 0;
		for (m = flow->q_head; m != NULL; m = *pkt_next(m)) {
			if (unlikely(fo_pkt_level_len(m, first_level) == 0) || (levels != 0 && !at_levels(m, levels)))
				return 0;   /* it skips a processor: its windows differ */
			e->window[at + n++] = m;
		}
		b->flow = flow;
		b->state = flow->states;   /* run_shared moves it to each processor's */
		b->pkts = &e->window[at];
		b->verdicts = &e->verdicts[at];
		b->out_ports = &e->out_ports[at];
		b->n = n;
		b->split_at = UINT16_MAX;
		b->stream_base[0] = b->stream_base[1] = 0;
		b->normalized = 0;
		at += n;
		nb++;
	}
	if (nb > 0)
		memset(e->verdicts, FO_PASS, at);
	*used = at;
	return nb;
}

/*
 * The end of a run whose windows stayed shared: every processor let every packet go and nothing
 * was injected, so each window is its flow's whole queue (share_windows took all of it) and the
 * flow holds nothing now. Its heads move to the end and its packets leave here, from the windows,
 * while they and the flows' lines are in cache, instead of in the burst's release pass (which
 * then finds the queue empty and passes the flow by).
 */
static void
release_shared(struct fo_engine *e, const struct definition *d, uint16_t nb, uint32_t used)
{
	const uint16_t n_procs = d->n_procs;
	uint16_t i, p;
	uint32_t j;

	for (i = 0; i < nb; i++) {
		struct fo_flow *flow = e->batches[i].flow;
		uint32_t *heads = flow->heads, end = flow->next_seq;

		p = 0;
		do   /* a shared run has a processor at least (share_windows) */
			heads[p] = end;
		while (++p < n_procs);
		queue_left(e, flow);
	}
	for (j = 0; j < used; j++)
		depart(e, e->window[j]);
	RELAXED_ADD(e->stats.held, -(uint64_t)used);
}

/* Processors [0, upto) have released every shared window: their heads move to its end. */
static void
shared_heads(struct fo_engine *e, uint16_t nb, uint16_t upto)
{
	uint16_t i, p;

	for (i = 0; i < nb; i++) {
		struct fo_flow *flow = e->batches[i].flow;

		for (p = 0; p < upto; p++)
			flow->heads[p] = flow->next_seq;
	}
}

/*
 * Processor p over the shared windows, whose batches' states point at offset *state_at of their
 * flows' state areas. Returns whether they are still shared after it: every packet passed and
 * nothing was injected (an injected packet joins the later stages' windows). Otherwise the heads
 * of p and the processors before it are set (those of a shared run are set once, at its end),
 * p's verdicts applied as run_processor applies them, and the processors after it build their
 * own windows. *tsc: the time the previous processor's call ended (0: none yet), taken as this
 * call's start (a TSC read costs about 40 cycles here, a burst of 32 packets a few hundred):
 * this processor's busy time includes the engine's few instructions between the two.
 */
static int
run_shared(struct fo_engine *e, const struct definition *d, uint16_t p, uint16_t nb, uint32_t used,
	   uint32_t *state_at, uint64_t *tsc)
{
	const struct proc_conf *proc = &d->procs[p];
	struct proc_instance *inst = &e->per_def[d - e->defs].procs[p];
	const ptrdiff_t step = (ptrdiff_t)proc->state_offset - (ptrdiff_t)*state_at;
	const uint64_t injected = e->stats.injected;
	uint64_t counts[FO_VERDICT_COUNT] = { 0 };
	uint64_t began, ended;
	uint16_t i;

	for (i = 0; i < nb; i++) {
		e->batches[i].state = (uint8_t *)e->batches[i].state + step;
		e->batches[i].stage = proc->stage;
	}
	*state_at = proc->state_offset;
	began = *tsc != 0 ? *tsc : rte_rdtsc();
	engine_call_enter_at(e, d, p, FO_CALL_PROCESS, began);
	proc->ops.process(inst->ctx, e->batches, nb);
	engine_call_leave(e);
	ended = rte_rdtsc();
	*tsc = ended;
	RELAXED_ADD(inst->busy_tsc, ended - began);
	RELAXED_ADD(inst->calls, 1);
	RELAXED_ADD(inst->packets, used);
	if (likely(all_pass(e->verdicts, used))) {
		RELAXED_ADD(e->stats.verdicts[FO_PASS], used);
		if (likely(e->stats.injected == injected))
			return 1;
		shared_heads(e, nb, p + 1);
		return 0;
	}
	shared_heads(e, nb, p);
	for (i = 0; i < nb; i++)
		e->batches[i].flow->heads[p] = apply_verdicts(e, &e->batches[i], p, e->batches[i].flow->next_seq, counts);
	for (i = 0; i < FO_VERDICT_COUNT; i++)
		RELAXED_ADD(e->stats.verdicts[i], counts[i]);
	return 0;
}

void
fo_pipeline_run(struct fo_engine *e, uint16_t def, const uint32_t *flows, uint16_t n)
{
	const struct definition *d = &e->defs[def];
	uint32_t used = 0, state_at = 0;
	uint16_t s, p, shared = share_windows(e, d, flows, n, &used);
	uint64_t tsc = 0;
	uint32_t i;

	for (s = 0; s < d->n_stages; s++) {
		e->n_pending_drops = 0;
		for (p = d->stage_first[s]; p < d->stage_first[s + 1]; p++) {
			if (shared == 0)
				run_processor(e, d, p, flows, n);
			else if (!run_shared(e, d, p, shared, used, &state_at, &tsc))
				shared = 0;   /* it applied p's verdicts: the next processor builds its own windows */
		}
		for (i = 0; i < e->n_pending_drops; i++)
			fo_pkt_meta(e->pending_drops[i])->verdict = FO_DROP;
	}
	if (shared > 0)
		release_shared(e, d, shared, used);
	e->n_pending_drops = 0;
	/*
	 * What its flows still queue now was held: a later run in this burst (a flow ended at its
	 * end, finish_flow) builds its windows from the heads.
	 */
	e->per_def[def].stale++;
}

/*
 * A TCP packet that takes no sequence space (a pure ACK, a window update) and that every
 * processor has released or skips (no bytes at its level) may leave before data held back:
 * TCP's directions are independent, and a direction held by a processor must not hold back the
 * other's acknowledgements, which its own sender waits for before it sends what would let the
 * processor decide.
 */
static int
may_overtake(const struct definition *d, const struct fo_flow *flow, struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint32_t seq = *fo_pkt_seq(m);
	uint16_t p;

	if (meta->ip_proto != IPPROTO_TCP || meta->offset[FO_LEVEL_L4] == FO_NO_LEVEL ||
	    (meta->flags & FO_PKT_FRAGMENT) || fo_pkt_level_len(m, FO_LEVEL_PAYLOAD) > 0 ||
	    meta->verdict == FO_DROP || (rte_pktmbuf_mtod_offset(m, struct rte_tcp_hdr *, meta->offset[FO_LEVEL_L4])->tcp_flags &
					  (RTE_TCP_SYN_FLAG | RTE_TCP_FIN_FLAG | RTE_TCP_RST_FLAG)))
		return 0;
	for (p = 0; p < d->n_procs; p++)
		if (seq >= flow->heads[p] && fo_pkt_level_len(m, d->procs[p].ops.level) > 0)
			return 0;
	return 1;
}

/* Sends the queued packets that may overtake what is held (streams only). */
static void
release_overtakers(struct fo_engine *e, struct fo_flow *flow)
{
	const struct definition *d = &e->defs[flow->key.def];
	struct rte_mbuf *prev = NULL, *m = flow->q_head, *next;

	for (; m != NULL; m = next) {
		next = *pkt_next(m);
		if (!may_overtake(d, flow, m)) {
			prev = m;
			continue;
		}
		if (prev != NULL)
			*pkt_next(prev) = next;
		else
			flow->q_head = next;
		if (flow->q_tail == m)
			flow->q_tail = prev;
		RELAXED_ADD(e->stats.held, -1);
		flow->q_packets--;
		flow->q_bytes -= RTE_MIN(flow->q_bytes, rte_pktmbuf_pkt_len(m));
		if (!fo_stream_depart(e, flow, m))
			fo_send(e, m);
	}
}

/*
 * Everything a flow without streams holds goes (the common release: its whole queue): counted
 * once for the queue, not per packet, and nothing is left to overflow or to keep.
 */
static __rte_always_inline void
release_all(struct fo_engine *e, struct fo_flow *flow)
{
	struct rte_mbuf *m = flow->q_head, *next;
	uint32_t n = 0;

	for (; m != NULL; m = next, n++) {
		next = *pkt_next(m);
		depart(e, m);
	}
	queue_left(e, flow);
	RELAXED_ADD(e->stats.held, -(uint64_t)n);
}

static __rte_always_inline void
release_upto(struct fo_engine *e, const struct definition *d, struct fo_flow *flow, uint32_t upto)
{
	int streams = d->stream_offset != 0 && flow->key.proto == IPPROTO_TCP;

	/* An injected packet shares its neighbour's number: every queued one is before next_seq. */
	if (d->stream_offset == 0 && upto >= flow->next_seq) {
		release_all(e, flow);
		return;
	}
	while (flow->q_head != NULL && *fo_pkt_seq(flow->q_head) < upto) {
		struct rte_mbuf *m = flow->q_head;

		flow->q_head = *pkt_next(m);
		RELAXED_ADD(e->stats.held, -1);
		flow->q_packets--;
		/* Stream edits change packets' lengths while they wait: the count never goes below 0. */
		flow->q_bytes -= RTE_MIN(flow->q_bytes, rte_pktmbuf_pkt_len(m));
		if (flow->q_head == NULL) {
			flow->q_tail = NULL;
			flow->q_bytes = 0;
		}
		if (streams && fo_stream_depart(e, flow, m))
			continue;
		depart(e, m);
	}
	if (streams && flow->q_head != NULL && flow->heads != NULL)
		release_overtakers(e, flow);
	if (flow->q_packets > d->conf.hold_packets || flow->q_bytes > d->conf.hold_bytes ||
	    (flow_over_budget(e, flow) && fo_budget_cut(e, flow)))
		fo_pipeline_overflow(e, flow);
	flow_note_kept(e, flow);
}

void
fo_pipeline_release(struct fo_engine *e, struct fo_flow *flow, uint32_t upto)
{
	release_upto(e, &e->defs[flow->key.def], flow, upto);
}

void
fo_pipeline_release_ready(struct fo_engine *e, struct fo_flow *flow)
{
	const struct definition *d = &e->defs[flow->key.def];   /* read once for both */

	release_upto(e, d, flow, last_released(d, flow));
}

void
fo_pipeline_overflow(struct fo_engine *e, struct fo_flow *flow)
{
	const struct definition *d = &e->defs[flow->key.def];

	RELAXED_ADD(e->stats.hold_overflows, 1);
	RELAXED_ADD(e->stats.hold_overflow_packets, flow->q_packets);
	if (d->conf.hold_overflow == FO_HOLD_OVERFLOW_DROP) {
		struct rte_mbuf *m;

		for (m = flow->q_head; m != NULL; m = *pkt_next(m))
			fo_pkt_meta(m)->verdict = FO_DROP;
	}
	if (flow->heads != NULL) {
		uint16_t p;

		for (p = 0; p < d->n_procs; p++)
			flow->heads[p] = flow->next_seq;
	}
	fo_pipeline_release(e, flow, UINT32_MAX);
}

int
fo_batch_inject(struct fo_batch *b, uint16_t i, struct rte_mbuf *m, int after)
{
	struct fo_engine *e = b->engine;
	struct fo_flow *flow = b->flow;
	struct rte_mbuf *at, *prev = NULL, *cur;
	struct fo_pkt_meta *meta, *at_meta;

	/* Not even an Ethernet header: nothing the decoder or a port could take as a frame. */
	if (i >= b->n || m->pkt_len < RTE_ETHER_HDR_LEN || flow->q_packets >= e->window_cap - FO_MAX_BURST) {
		rte_pktmbuf_free(m);
		RELAXED_ADD(e->stats.inject_failed, 1);
		return i >= b->n || m->pkt_len < RTE_ETHER_HDR_LEN ? -EINVAL : -ENOSPC;
	}
	at = b->pkts[i];
	at_meta = fo_pkt_meta(at);
	meta = fo_pkt_meta(m);
	{
		struct fo_decoded d;

		fo_pkt_decode(e, m, at_meta->out_port, &d);
	}
	/* It travels with its neighbour: same direction, sequence number and way out. */
	meta->dir = at_meta->dir;
	*fo_pkt_seq(m) = *fo_pkt_seq(at);
	meta->first_stage = b->stage + 1;
	for (cur = flow->q_head; cur != NULL && cur != at; cur = *pkt_next(cur))
		prev = cur;
	if (after) {
		*pkt_next(m) = *pkt_next(at);
		*pkt_next(at) = m;
		if (flow->q_tail == at)
			flow->q_tail = m;
	} else {
		*pkt_next(m) = at;
		if (prev != NULL)
			*pkt_next(prev) = m;
		else
			flow->q_head = m;
	}
	flow->q_packets++;
	flow->q_bytes += rte_pktmbuf_pkt_len(m);
	RELAXED_ADD(e->stats.held, 1);
	RELAXED_ADD(e->stats.created, 1);
	RELAXED_ADD(e->stats.injected, 1);
	return 0;
}

struct rte_mempool *
fo_batch_pool(const struct fo_batch *b)
{
	return b->engine->pc->conf.pool;
}
