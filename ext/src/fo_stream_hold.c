/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Held stream bytes are never held for ever. A payload-level processor may hold the end of what
 * it has seen (a possible start of its pattern, a message not yet whole) until more bytes come.
 * They may never come: a response on a kept-alive connection ends there; or the segment after
 * them was lost before FlowOS, and a TCP sender that has timed out resends only its first
 * unacknowledged bytes (those held, which leave once, so the copy is dropped) and sends nothing
 * new until they are acknowledged — a deadlock, the stall of rewritten downloads under loss.
 * So held bytes go on, as if the processors had released them, when:
 *
 * - the flow ends (FIN, RST, idle timeout, shutdown): everything it holds leaves (fo_engine.c:
 *   end_flow);
 * - the flow has brought no new stream bytes (in order, either direction; for datagram flows,
 *   no packet) for its definition's stream_hold_ms. Copies of bytes received before (a
 *   sender's retransmissions) and segments waiting past a gap are not new bytes.
 *
 * Flows holding something are in a list per definition, by when they last brought new bytes.
 * Letting go sets the flow's release_upto: at the pipeline's run every processor sees those
 * packets once more, and a hold it puts on one of them is overridden (fo_pipeline.c).
 */
#include <netinet/in.h>

#include "fo_engine_priv.h"

#define IDLE_RELEASES_PER_BURST 32   /* flows let go by the idle rule per definition per burst, at most */

static void
hold_unlink(struct fo_engine *e, struct def_shard *d, struct stream_flow *sf)
{
	if (sf->hold_prev != FO_FLOW_NONE)
		flow_streams(e, &e->flows[sf->hold_prev])->hold_next = sf->hold_next;
	else
		d->hold_first = sf->hold_next;
	if (sf->hold_next != FO_FLOW_NONE)
		flow_streams(e, &e->flows[sf->hold_next])->hold_prev = sf->hold_prev;
	else
		d->hold_last = sf->hold_prev;
	sf->hold_listed = 0;
	e->n_holding--;
}

/* When a flow last brought new stream bytes, as far as the normaliser knows (0: not TCP). */
static uint64_t
last_new_bytes(const struct fo_flow *flow, const struct stream_flow *sf)
{
	if (flow->key.proto != IPPROTO_TCP)
		return 0;
	return RTE_MAX(sf->dir[0].new_at, sf->dir[1].new_at);
}

void
fo_stream_hold_track(struct fo_engine *e, struct fo_flow *flow)
{
	struct def_shard *d = &e->per_def[flow->key.def];
	struct stream_flow *sf = flow_streams(e, flow);

	if (sf == NULL)
		return;
	if (sf->hold_listed) {
		/* A TCP flow that brought nothing new keeps its place: its time runs on. */
		if (flow->q_head != NULL && flow->key.proto == IPPROTO_TCP && last_new_bytes(flow, sf) <= sf->held_at)
			return;
		hold_unlink(e, d, sf);
	}
	if (flow->q_head == NULL)
		return;
	/* To the list's end, which stays in the order of held_at. */
	sf->held_at = e->now;
	sf->hold_prev = d->hold_last;
	sf->hold_next = FO_FLOW_NONE;
	if (d->hold_last != FO_FLOW_NONE)
		flow_streams(e, &e->flows[d->hold_last])->hold_next = flow->id;
	else
		d->hold_first = flow->id;
	d->hold_last = flow->id;
	sf->hold_listed = 1;
	e->n_holding++;
}

void
fo_stream_hold_forget(struct fo_engine *e, struct fo_flow *flow)
{
	struct stream_flow *sf = flow_streams(e, flow);

	if (sf != NULL && sf->hold_listed)
		hold_unlink(e, &e->per_def[flow->key.def], sf);
}

/* The definitions of one generation, [lo, hi) in the space (docs/reload.md). */
static void
release_idle_in(struct fo_engine *e, uint16_t lo, uint16_t hi)
{
	uint32_t ids[IDLE_RELEASES_PER_BURST];
	uint16_t i, k, n;

	for (i = lo; e->n_holding > 0 && i < hi; i++) {
		struct def_shard *d = &e->per_def[i];
		uint64_t hold_ns = (uint64_t)e->defs[i].conf.stream_hold_ms * 1000000;

		for (n = 0; n < IDLE_RELEASES_PER_BURST && d->hold_first != FO_FLOW_NONE; n++) {
			struct fo_flow *flow = &e->flows[d->hold_first];
			struct stream_flow *sf = flow_streams(e, flow);

			if (e->now < sf->held_at + hold_ns)
				break;   /* the others were seen after it */
			hold_unlink(e, d, sf);
			sf->release_upto = flow->next_seq;   /* everything it holds now */
			ids[n] = flow->id;
		}
		if (n == 0)
			continue;
		RELAXED_ADD(e->stats.stream_holds_idle, n);
		fo_pipeline_run(e, i, ids, n);
		for (k = 0; k < n; k++) {
			struct fo_flow *flow = &e->flows[ids[k]];

			fo_pipeline_release_ready(e, flow);
			fo_stream_hold_track(e, flow);
		}
	}
}

void
fo_stream_release_idle(struct fo_engine *e)
{
	uint8_t g;

	release_idle_in(e, e->pc->base, e->pc->base + e->pc->n_defs);
	for (g = 0; e->n_holding > 0 && g < e->n_old; g++)
		release_idle_in(e, e->old[g]->base, e->old[g]->base + e->old[g]->n_defs);
}
