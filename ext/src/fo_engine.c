/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The engine's burst path: decode, classify, find the flow, queue the packet, run the pipelines
 * of the flows the burst touched, send what they released; ends of flows; the switch to a staged
 * generation (fo_generation.c stages it, fo_engine_setup.c sets a shard up).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_pause.h>
#include <rte_malloc.h>
#include <rte_mbuf_dyn.h>
#include <rte_prefetch.h>

#include "flowos/fo_stream.h"
#include "fo_engine_priv.h"
#include "fo_flow_index.h"

/* The capture clock's time for a packet, in ns. net_pcap in DPDK 22.11 stamps microseconds;
 * a value that small is taken for microseconds (as nanoseconds it would be before 1973). */
static inline void
capture_time(struct fo_engine *e, const struct rte_mbuf *m)
{
	uint64_t ts;

	if (!(m->ol_flags & e->timestamp_flag))
		return;
	ts = *RTE_MBUF_DYNFIELD(m, e->timestamp_offset, const uint64_t *);
	if (ts < 100000000000000000ULL)
		ts *= 1000;
	if (ts > e->now)
		e->now = ts;
}

/*
 * Ends a flow: what it still holds (its queue, what waits past a gap) goes out as it is, so
 * that ending a flow loses no data; then its processors' flow_end and the table.
 */
static void
end_flow(struct fo_engine *e, struct fo_flow *flow, enum fo_flow_end_reason reason)
{
	fo_pipeline_release(e, flow, UINT32_MAX);
	if (flow_streams(e, flow) != NULL) {
		fo_stream_hold_forget(e, flow);
		fo_stream_flow_end(e, flow);
	}
	fo_flow_end(e, flow, reason);
}

/* Ends a flow now, in the middle of a burst: what the burst brought it is processed first. */
static void
finish_flow(struct fo_engine *e, struct fo_flow *flow, enum fo_flow_end_reason reason)
{
	uint32_t id = flow->id;
	uint16_t i;

	if (flow->touched_epoch == e->epoch) {
		if (e->defs[flow->key.def].n_procs > 0)
			fo_pipeline_run(e, flow->key.def, &id, 1);
		fo_pipeline_release_ready(e, flow);
		for (i = 0; i < e->n_touched; i++) {
			if (e->touched[i] == id) {
				e->touched[i] = e->touched[--e->n_touched];
				break;
			}
		}
	}
	end_flow(e, flow, reason);
}

/* Ends the flows idle past their timeout class's time, the least recently seen first (a few per burst). */
static void
expire_idle(struct fo_engine *e)
{
	struct fo_flow *flow;
	int c, budget;

	for (c = 0; c < FO_TIMEOUT_CLASS_COUNT; c++)
		for (budget = EXPIRE_PER_BURST; budget > 0 && (flow = fo_flow_idle_oldest(e, c)) != NULL; budget--)
			finish_flow(e, flow, flow->tcp_state == FO_TCP_CLOSED ? FO_END_FIN : FO_END_IDLE);
}

/*
 * The flow of a packet whose key is made. One the packet shows is over ends first (what the
 * burst brought it processed); a full table first ends the flows past their time. NULL: the
 * table is still full.
 */
static struct fo_flow *
flow_of(struct fo_engine *e, const struct fo_flow_key *key, int src_lo, int32_t hint, struct rte_mbuf *m,
	uint8_t *dir)
{
	struct fo_flow *flow;
	int over;

	flow = fo_flow_for_key(e, key, src_lo, hint, m, dir, &over);
	if (unlikely(flow != NULL && over >= 0)) {
		finish_flow(e, flow, (enum fo_flow_end_reason)over);
		flow = fo_flow_for_key(e, key, src_lo, -1, m, dir, &over);
	}
	if (unlikely(flow == NULL)) {
		expire_idle(e);
		flow = fo_flow_for_key(e, key, src_lo, -1, m, dir, &over);
	}
	return flow;
}

/* Sorts a burst's few definition indexes (insertion sort: usually one or two). */
static void
sort_defs(uint16_t *defs, uint16_t n)
{
	uint16_t i, j, d;

	for (i = 1; i < n; i++) {
		for (d = defs[i], j = i; j > 0 && defs[j - 1] > d; j--)
			defs[j] = defs[j - 1];
		defs[j] = d;
	}
}

/*
 * Puts a packet in its flow (NULL: the table was full); returns 0, or -1 when a policy took it.
 * Inline: the burst loop's call of it cost about 20 instructions a packet (callgrind).
 */
static __rte_always_inline int
join_flow(struct fo_engine *e, const struct fo_match_fields *f, struct rte_mbuf *m,
	  struct fo_flow *flow, uint8_t dir, uint32_t frag_id)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	const struct definition *d;
	struct def_shard *ds;

	if (flow == NULL) {
		RELAXED_ADD(e->stats.table_full, 1);
		if (e->pc->conf.table_full == FO_TABLE_FULL_DROP) {
			RELAXED_ADD(e->stats.table_full_dropped, 1);
			fo_drop(e, m);
		} else {
			fo_send(e, m);
		}
		return -1;
	}
	if ((meta->flags & (FO_PKT_FRAGMENT | FO_PKT_FIRST_FRAG)) == (FO_PKT_FRAGMENT | FO_PKT_FIRST_FRAG))
		fo_flow_remember_fragment(e, flow, f, frag_id);
	d = &e->defs[flow->key.def];
	ds = &e->per_def[flow->key.def];   /* once: the relaxed stores below would make it read again */
	RELAXED_ADD(ds->stats.packets, 1);
	RELAXED_ADD(ds->stats.bytes, rte_pktmbuf_pkt_len(m));
	if (d->stream_offset != 0 && fo_stream_wants(e, flow, m)) {
		/* Acknowledgements first: the flow's TCP tracking reads them in the sender's numbers. */
		fo_stream_map_acks(e, flow, m, dir);
		fo_flow_account(e, flow, m, dir);
		if (fo_stream_admit(e, flow, m, dir) == 0)
			fo_flow_enqueue(e, flow, m);
		fo_stream_drain(e, flow, dir);
		fo_stream_drain(e, flow, dir ^ 1);
	} else if (d->n_procs == 0) {
		/*
		 * Nothing to run: the packet leaves now, without the flow's queue (empty: nothing holds
		 * in a pipeline without processors). The flow is touched only to be ended after it.
		 */
		fo_flow_account(e, flow, m, dir);
		fo_send(e, m);
		if (likely(flow->end_pending == 0))
			return 0;
	} else {
		fo_flow_account(e, flow, m, dir);
		fo_flow_enqueue(e, flow, m);
	}
	if (flow->touched_epoch != e->epoch) {
		flow->touched_epoch = e->epoch;
		e->touched[e->n_touched++] = flow->id;
		if (d->n_procs > 0) {
			/* The pipeline reads the heads first: the rest of the burst's packets are the time to fetch them. */
			rte_prefetch0(flow->states);
			rte_prefetch0(flow->states + d->state_size - 1);   /* areas are packed: it may span two lines */
			if (ds->run_epoch != e->epoch) {
				ds->run_epoch = e->epoch;
				ds->stale = 0;
				e->run_defs[e->n_run_defs++] = flow->key.def;
			}
			/* Its queue held packets before this one: the pipeline cannot share its windows (fo_pipeline.c). */
			ds->stale += flow->q_head != m;
		}
	}
	return 0;
}

/* A non-IP packet's ether type (what its flow is keyed by: flow_make_key). */
static uint16_t
ether_type_of(const struct rte_mbuf *m)
{
	const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
	uint16_t l3 = fo_pkt_meta((struct rte_mbuf *)(uintptr_t)m)->offset[FO_LEVEL_L3];

	return l3 != FO_NO_LEVEL && l3 >= 2 ? (uint16_t)data[l3 - 2] << 8 | data[l3 - 1] : 0;
}

/*
 * The shard that owns m's flow. A later fragment carries no ports: it goes where this shard sent
 * its first fragment, or stays here (where the engine finds its flow, or counts it orphaned).
 */
static uint16_t
steer_owner(struct shard *sh, const struct rte_mbuf *m, const struct fo_match_fields *f, uint32_t frag_id)
{
	uint16_t flags = fo_pkt_meta((struct rte_mbuf *)(uintptr_t)m)->flags, owner;
	struct frag_entry *first = NULL;

	/* Not keyed: a crafted collision only orphans a later fragment, as a full fragment cache would. */
	if (unlikely(flags & FO_PKT_FRAGMENT)) {
		first = frag_entry_of(sh->frags, STEER_FRAG_SIZE, f, frag_id);
		if (!(flags & FO_PKT_FIRST_FRAG)) {
			uint32_t found = frag_entry_find(first, f, frag_id);

			/* The relay (index == workers) owns none: worker 0 counts it, as a first poller would. */
			return found != FO_FLOW_NONE ? (uint16_t)found : sh->index % sh->workers;
		}
	}
	owner = fo_steer_worker(fo_steer_hash(&sh->steer, fo_steer_fold(f, ether_type_of(m))), sh->workers);
	if (unlikely(first != NULL))
		frag_entry_set(first, f, frag_id, owner);
	return owner;
}

/* Cuts back the flows the keep budget's sweep finds keeping more than their share (fo_budget.c). */
static void
sweep_budget(struct fo_engine *e)
{
	uint32_t share = budget_share(e), looked = 0;
	struct fo_flow *flow;

	while ((flow = fo_budget_sweep_next(e, share, &looked)) != NULL)
		fo_pipeline_overflow(e, flow);
}

static void engine_process(struct fo_engine *e, const struct fo_route *route, struct rte_mbuf **pkts, uint16_t n);

/*
 * The live flow of an older generation that packet j belongs to, by that generation's
 * classifier and its key, newest generation first; or NULL.
 */
static struct fo_flow *
old_flow_of(struct fo_engine *e, const struct fo_match_fields *f, struct rte_mbuf *m, struct fo_flow_key *key,
	    int *src_lo)
{
	struct fo_class_key ck;
	const struct fo_class_key *ck_ptr = &ck;
	const struct fo_flow_key *key_ptr = key;
	int g;

	for (g = e->n_old - 1; g >= 0; g--) {
		const struct fo_pipeline_conf *pc = e->old[g];
		int32_t pos;
		uint32_t d;

		if (pc->class_keys)
			fo_class_key_fill(&ck, f);
		fo_classify(pc->classifier, &ck_ptr, f, &d, 1);
		if (d == FO_CLASS_NONE)
			continue;
		*src_lo = fo_flow_make_key(key, (uint16_t)(d + pc->class_offset), f, m);
		fo_flow_index_lookup_bulk(e->index, e->flows, &key_ptr, 1, &pos);
		if (pos >= 0 && e->flows[pos].live)
			return &e->flows[pos];
	}
	return NULL;
}

/* What engine_process knows of each packet it will put in a flow, by its place j in the burst's list. */
struct burst_todo {
	uint16_t *todo;                    /* the packet's index in the burst */
	struct fo_match_fields *fields;
	uint32_t *frag_ids;
	uint32_t *defs;
	struct fo_flow_key *flow_keys;
	uint8_t *src_lo;
	int32_t *positions;
};

/*
 * While older generations have live flows here, a packet that found no flow of the current one
 * joins its connection's flow in an older one, if it has one: a live flow keeps its pipeline
 * until it ends (docs/reload.md). Those it joins leave the list (the others keep their order),
 * so that the burst loop is the one it was before generations. A packet that shows its old flow
 * is over (a new connection on a closed one) ends that flow and stays with the current
 * generation. Not for later fragments: they follow their first (fo_flow_for_fragment).
 * Returns how many packets are left in the list.
 */
static uint16_t
join_old_flows(struct fo_engine *e, struct rte_mbuf **pkts, const struct burst_todo *t, uint16_t n)
{
	uint16_t j, kept = 0;

	for (j = 0; j < n; j++) {
		struct rte_mbuf *m = pkts[t->todo[j]];
		uint16_t flags = fo_pkt_meta(m)->flags;
		struct fo_flow_key key;
		struct fo_flow *flow = NULL;
		int src_lo, over;
		uint8_t dir;

		if (t->positions[j] < 0 && (flags & (FO_PKT_FRAGMENT | FO_PKT_FIRST_FRAG)) != FO_PKT_FRAGMENT)
			flow = old_flow_of(e, &t->fields[j], m, &key, &src_lo);
		if (flow != NULL) {
			if (e->pc->conf.clock == FO_CLOCK_CAPTURE)
				capture_time(e, m);
			flow = fo_flow_for_key(e, &key, src_lo, (int32_t)flow->id, m, &dir, &over);
			if (over < 0) {
				join_flow(e, &t->fields[j], m, flow, dir, t->frag_ids[j]);
				continue;
			}
			finish_flow(e, flow, (enum fo_flow_end_reason)over);
		}
		if (kept != j) {
			t->todo[kept] = t->todo[j];
			t->fields[kept] = t->fields[j];
			t->frag_ids[kept] = t->frag_ids[j];
			t->defs[kept] = t->defs[j];
			t->flow_keys[kept] = t->flow_keys[j];
			t->src_lo[kept] = t->src_lo[j];
			t->positions[kept] = t->positions[j];
		}
		kept++;
	}
	return kept;
}

/*
 * Processes a burst of what other shards handed this one; returns how many packets there were.
 * Called while this shard waits for room in another's inbox: two shards that hand each other
 * packets both make room that way instead of waiting for each other.
 */
static uint16_t
drain_own_inbox(struct fo_engine *e)
{
	struct rte_mbuf *pkts[FO_MAX_BURST];
	uint16_t n;

	if (e->shard.index == e->shard.workers)   /* the relay: no inbox of its own */
		return e->shard.wait != NULL ? (uint16_t)RTE_MIN(e->shard.wait(e->shard.wait_ctx), 1u) : 0;
	n = (uint16_t)rte_ring_dequeue_burst(e->shard.inboxes[e->shard.index], (void **)pkts, FO_MAX_BURST, NULL);
	if (n > 0)
		engine_process(e, NULL, pkts, n);
	return n;
}

/*
 * Puts each packet in its owner's inbox, in arrival order per owner. A full inbox is waited for
 * (counted in handoff_full), not dropped: the owner drains it, and this shard drains its own
 * meanwhile. Before the burst's flows are touched: what drain_own_inbox processes is a burst of
 * its own.
 */
static void
handoff(struct fo_engine *e, struct rte_mbuf **away, const uint16_t *owners, uint16_t n)
{
	const uint16_t workers = e->shard.workers;
	struct rte_mbuf *sorted[FO_MAX_BURST];
	uint16_t at[FO_MAX_WORKERS + 1] = {0};
	uint16_t i, w;

	for (i = 0; i < n; i++)
		at[owners[i] + 1]++;
	for (w = 0; w < workers; w++)
		at[w + 1] += at[w];
	for (i = 0; i < n; i++)
		sorted[at[owners[i]]++] = away[i];
	/* at[w] is now where owner w's packets end; they start where owner w - 1's end. */
	for (w = 0; w < workers; w++) {
		uint16_t first = w == 0 ? 0 : at[w - 1], count = at[w] - first, sent = 0;

		while (sent < count) {
			sent += (uint16_t)rte_ring_enqueue_burst(e->shard.inboxes[w], (void **)&sorted[first + sent],
								 count - sent, NULL);
			if (sent < count) {
				RELAXED_ADD(e->stats.handoff_full, 1);
				if (drain_own_inbox(e) == 0)
					rte_pause();
			}
		}
	}
	RELAXED_ADD(e->stats.handed_off, n);
}

/*
 * A burst: decode, hand over what other shards own, classify, find the flows, run the pipelines,
 * send. route: where the packets came in; NULL for the inbox's (decoded once already, their
 * out_port in their metadata, their in_port in m->port).
 */
static void
engine_process(struct fo_engine *e, const struct fo_route *route, struct rte_mbuf **pkts, uint16_t n)
{
	struct fo_match_fields fields[FO_MAX_BURST];
	struct fo_class_key keys[FO_MAX_BURST];
	const struct fo_class_key *key_ptrs[FO_MAX_BURST];
	uint32_t defs[FO_MAX_BURST], frag_ids[FO_MAX_BURST];
	uint16_t todo[FO_MAX_BURST];
	struct fo_flow_key flow_keys[FO_MAX_BURST];
	const struct fo_flow_key *flow_key_ptrs[FO_MAX_BURST];
	int32_t positions[FO_MAX_BURST], found[FO_MAX_BURST];
	uint16_t key_at[FO_MAX_BURST];
	uint8_t src_lo[FO_MAX_BURST];
	struct rte_mbuf *away[FO_MAX_BURST];
	uint16_t away_owners[FO_MAX_BURST];
	const int steering = (e->shard.workers > 1 || e->shard.index == e->shard.workers) && route != NULL;
	/* Read once: the loop's stores through packet pointers would make the compiler read it again. */
	const int class_keys = e->pc->class_keys;
	int capture_clock;
	uint16_t i, j, k, n_todo = 0, n_keys = 0, n_away = 0;

	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		uint16_t in_port = route != NULL ? route->rx_port : m->port;
		struct fo_decoded d;
		int error = fo_pkt_decode_inline(e, m, route != NULL ? route->tx_port : fo_pkt_meta(m)->out_port,
						 &d);

		if (unlikely(error != FO_DECODE_OK)) {
			RELAXED_ADD(e->stats.malformed[error], 1);
			if (e->pc->conf.malformed == FO_MALFORMED_DROP) {
				RELAXED_ADD(e->stats.malformed_dropped, 1);
				fo_drop(e, m);
			} else {
				fo_send(e, m);
			}
			continue;
		}
		/* From what decoding found: the header bytes are not read again. */
		fo_match_fields_decoded(m, &d, in_port, &fields[n_todo]);
		frag_ids[n_todo] = d.frag_id;
		if (steering) {
			uint16_t owner = steer_owner(&e->shard, m, &fields[n_todo], frag_ids[n_todo]);

			if (owner != e->shard.index) {
				m->port = in_port;
				away[n_away] = m;
				away_owners[n_away++] = owner;
				continue;
			}
		}
		if (class_keys) {
			fo_class_key_fill(&keys[n_todo], &fields[n_todo]);
			key_ptrs[n_todo] = &keys[n_todo];
		}
		todo[n_todo++] = i;
	}
	/* Handed over before this burst touches a flow: waiting may process the inbox (a burst of its own). */
	if (n_away > 0)
		handoff(e, away, away_owners, n_away);
	RELAXED_ADD(e->stats.packets, n - n_away);
	e->epoch++;
	e->n_touched = 0;
	e->n_run_defs = 0;
	if (e->pc->conf.clock == FO_CLOCK_TSC)
		e->now = (uint64_t)((double)(rte_rdtsc() - e->tsc_start) * e->ns_per_tsc);
	fo_classify(e->pc->classifier, key_ptrs, fields, defs, n_todo);
	if (unlikely(e->pc->class_offset != 0)) {   /* a later generation's (tested linearly): its range of the space */
		for (j = 0; j < n_todo; j++)
			if (defs[j] != FO_CLASS_NONE)
				defs[j] += e->pc->class_offset;
	}
	/* One lookup for the burst overlaps its cache misses; then the flows found are prefetched. */
	for (j = 0; j < n_todo; j++) {
		positions[j] = -1;
		if (defs[j] == FO_CLASS_NONE)
			continue;
		src_lo[j] = fo_flow_make_key(&flow_keys[j], defs[j], &fields[j], pkts[todo[j]]);
		key_at[n_keys] = j;
		flow_key_ptrs[n_keys++] = &flow_keys[j];
	}
	fo_flow_index_lookup_bulk(e->index, e->flows, flow_key_ptrs, n_keys, found);
	e->ended_at_lookup = e->flows_ended;
	for (k = 0; k < n_keys; k++)
		positions[key_at[k]] = found[k];
	if (unlikely(e->n_old > 0)) {
		const struct burst_todo t = { todo, fields, frag_ids, defs, flow_keys, src_lo, positions };

		n_todo = join_old_flows(e, pkts, &t, n_todo);
	}
	/* Read once, as above, but after the handoff: its waiting runs other code (an inbox's burst, a wait callback). */
	capture_clock = e->pc->conf.clock == FO_CLOCK_CAPTURE;
	/* In arrival order, so that a first fragment is known before the later ones of the burst. */
	for (j = 0; j < n_todo; j++) {
		struct rte_mbuf *m = pkts[todo[j]];
		uint16_t flags = fo_pkt_meta(m)->flags;
		struct fo_flow *flow;
		uint8_t dir;

		if (capture_clock)
			capture_time(e, m);
		/* A later fragment carries no ports: it joins its first fragment's flow. */
		if (unlikely((flags & (FO_PKT_FRAGMENT | FO_PKT_FIRST_FRAG)) == FO_PKT_FRAGMENT)) {
			flow = fo_flow_for_fragment(e, &fields[j], frag_ids[j], &dir);
			if (flow != NULL) {
				RELAXED_ADD(e->stats.fragments_tracked, 1);
				join_flow(e, &fields[j], m, flow, dir, frag_ids[j]);
				continue;
			}
			RELAXED_ADD(e->stats.fragments_orphaned, 1);
		}
		if (defs[j] == FO_CLASS_NONE) {
			RELAXED_ADD(e->stats.unmatched, 1);
			if (e->pc->conf.unmatched == FO_UNMATCHED_DROP) {
				RELAXED_ADD(e->stats.unmatched_dropped, 1);
				fo_drop(e, m);
			} else {
				fo_send(e, m);
			}
			continue;
		}
		flow = flow_of(e, &flow_keys[j], src_lo[j], positions[j], m, &dir);
		join_flow(e, &fields[j], m, flow, dir, frag_ids[j]);
	}
	/* In definition order, as they are configured; only those the burst touched (of hundreds, a few). */
	sort_defs(e->run_defs, e->n_run_defs);
	for (i = 0; i < e->n_run_defs; i++)
		fo_pipeline_run(e, e->run_defs[i], e->touched, e->n_touched);
	for (i = 0; i < e->n_touched; i++) {
		struct fo_flow *flow = &e->flows[e->touched[i]];
		const int streams = e->defs[flow->key.def].stream_offset != 0;
		enum fo_flow_end_reason reason;

		prefetch_flows_ahead(e, e->touched, i, e->n_touched);
		/* Without streams, a flow that queues nothing (and so keeps nothing) has nothing to release. */
		if (streams || flow->q_head != NULL || flow->keeping)
			fo_pipeline_release_ready(e, flow);
		if (streams)
			fo_stream_hold_track(e, flow);
		if (fo_flow_wants_end(flow, &reason))
			end_flow(e, flow, reason);
	}
	fo_stream_release_idle(e);
	expire_idle(e);
	if (unlikely(engine_over_budget(e)))
		sweep_budget(e);
	if (unlikely(e->n_old > 0))
		fo_generation_retire(e);
	fo_send_flush(e);
	if (e->stats.held + e->stats.kept_copies > e->stats.keep_peak)
		RELAXED_ADD(e->stats.keep_peak, e->stats.held + e->stats.kept_copies - e->stats.keep_peak);
}

int
fo_engine_switch(struct fo_engine *e, int migrate)
{
	uint32_t id;

	if (e->next == NULL || !e->next_set_up)
		return -EINVAL;
	fo_generation_carry_counters(e, e->next);
	fo_generation_install_scratch(e);
	e->old[e->n_old] = e->pc;
	__atomic_store_n(&e->n_old, e->n_old + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&e->pc, e->next, __ATOMIC_RELEASE);   /* read by current_conf() on other threads */
	e->next = NULL;
	e->next_set_up = 0;
	RELAXED_ADD(e->stats.generations, 1);
	if (migrate) {
		/* Older generations' flows end now; what they held leaves, in order; their next packets start anew. */
		for (id = 0; id < e->n_flows; id++) {
			struct fo_flow *flow = &e->flows[id];

			if (flow->live && (flow->key.def < e->pc->base || flow->key.def >= e->pc->base + e->pc->n_defs)) {
				end_flow(e, flow, FO_END_RELOAD);
				RELAXED_ADD(e->stats.flows_migrated, 1);
			}
		}
	}
	fo_generation_retire(e);
	fo_send_flush(e);
	return 0;
}

uint16_t
fo_engine_burst(void *engine, const struct fo_route *route, struct rte_mbuf **pkts, uint16_t n)
{
	engine_process(engine, route, pkts, n);
	return 0;
}

void
fo_engine_inbox(void *engine, struct rte_mbuf **pkts, uint16_t n)
{
	engine_process(engine, NULL, pkts, n);
}

void
fo_engine_shutdown(struct fo_engine *e)
{
	uint32_t id;

	if (!e->built)
		return;
	/* A connection that had closed by FIN ended by FIN, even if it was still in TIME-WAIT. */
	for (id = 0; id < e->n_flows; id++)
		if (e->flows[id].live)
			end_flow(e, &e->flows[id], flow_closed_by_fin(&e->flows[id]) ? FO_END_FIN : FO_END_SHUTDOWN);
	fo_send_flush(e);
}
