/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The keep budget (fo_shard_conf.keep_budget, docs/flows.md): once the engine keeps more
 * packets than its budget across all flows, flows that keep more than their share are cut back
 * to it. The flows a burst touched are cut back as their packets are released; a sweep over the
 * flow array finds the ones that keep a lot and have gone quiet. What cannot be given back here
 * (queued packets) is the pipeline's to let go: these return the flow to their caller, which
 * applies its hold overflow policy (fo_pipeline_overflow).
 */
#include "fo_engine_priv.h"

#define SWEEP_PER_BURST 64   /* flow ids a sweep looks at per burst while over the budget */

int
fo_budget_cut(struct fo_engine *e, struct fo_flow *flow)
{
	uint32_t share = budget_share(e);

	RELAXED_ADD(e->stats.budget_overflows, 1);
	/* What the flow can give back without losing data first: the sender resends it, or it was sent. */
	if (flow_streams(e, flow) != NULL)
		fo_stream_cut_back(e, flow, share);
	if (flow_kept(e, flow) > share && flow->q_packets > 0)
		return 1;
	flow_note_kept(e, flow);
	return 0;
}

struct fo_flow *
fo_budget_sweep_next(struct fo_engine *e, uint32_t share, uint32_t *looked)
{
	while (*looked < SWEEP_PER_BURST && e->stats.held + e->stats.kept_copies > e->conf.keep_budget) {
		struct fo_flow *flow = &e->flows[e->sweep_at];

		(*looked)++;
		e->sweep_at = e->sweep_at + 1 == e->n_flows ? 0 : e->sweep_at + 1;
		if (flow->live && flow->keeping && flow_kept(e, flow) > share && fo_budget_cut(e, flow))
			return flow;
	}
	return NULL;
}
