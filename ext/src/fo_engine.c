/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The engine's set-up and its burst path: decode, classify, find the flow, queue the packet,
 * run the pipelines of the flows the burst touched, send what they released.
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

/* A generation's range of this shard's instances: its processors' parameters, empty hold lists. */
static void
init_instances(struct fo_engine *e, const struct fo_pipeline_conf *pc)
{
	uint16_t i, p;

	for (i = 0; i < pc->n_defs; i++) {
		struct def_shard *ds = &e->per_def[pc->base + i];

		ds->hold_first = ds->hold_last = FO_FLOW_NONE;
		for (p = 0; p < pc->defs[i].n_procs; p++) {
			ds->procs[p].params = pc->defs[i].procs[p].params;
			ds->procs[p].params_len = pc->defs[i].procs[p].params_len;
		}
	}
}

struct fo_engine *
fo_engine_create(struct fo_pipeline_conf *pc, const struct fo_shard_conf *sc)
{
	struct fo_engine *e;
	uint32_t i;
	int ret;

	if (!pc->built || sc->flow_capacity == 0) {
		rte_errno = EINVAL;
		return NULL;
	}
	ret = fo_pkt_meta_register();
	if (ret != 0) {
		/* ENOENT: the drivers left too little of the mbuf's dynamic field space. */
		rte_errno = -ret;
		return NULL;
	}
	e = rte_zmalloc_socket("fo_engine", sizeof(*e), RTE_CACHE_LINE_SIZE, sc->socket_id);
	if (e == NULL)
		goto nomem;
	/* The whole space: a later generation's definitions may be anywhere in it. */
	e->per_def = rte_zmalloc_socket("fo_per_def", sizeof(*e->per_def) * FO_MAX_DEFS, RTE_CACHE_LINE_SIZE,
					sc->socket_id);
	if (e->per_def == NULL)
		goto nomem;
	for (i = 0; i < FO_MAX_DEFS; i++)   /* every hold list empty, those of later generations too */
		e->per_def[i].hold_first = e->per_def[i].hold_last = FO_FLOW_NONE;
	e->pc = pc;
	e->defs = pc->defs - pc->base;
	init_instances(e, pc);
	e->conf = *sc;
	e->timestamp_offset = -1;
	fo_tx_checksums_reset(e);
	e->shard.workers = 1;
	__atomic_add_fetch(&pc->users, 1, __ATOMIC_ACQ_REL);
	return e;
nomem:
	if (e != NULL)
		rte_free(e->per_def);
	rte_free(e);
	rte_errno = ENOMEM;
	return NULL;
}

/* Whether two ops are one processor's: alike but for their name. */
static int
same_processor(const struct fo_processor_ops *a, const struct fo_processor_ops *b)
{
	return a->level == b->level && a->readonly == b->readonly && a->ctx_size == b->ctx_size &&
	       a->state_size == b->state_size && a->setup == b->setup && a->flow_start == b->flow_start &&
	       a->process == b->process && a->flow_end == b->flow_end && a->message == b->message &&
	       a->report == b->report && a->teardown == b->teardown;
}

int
fo_engine_bind_processor(struct fo_engine *e, uint16_t def, uint16_t proc, const struct fo_processor_ops *ops,
			 const void *params, size_t params_len)
{
	/* Before the build, the shard's conf; after it, a staged generation's (fo_engine_stage). */
	const struct fo_pipeline_conf *pc = e->next != NULL ? e->next : e->pc;
	struct proc_instance *inst;

	if (e->next != NULL ? e->next_set_up : e->built)
		return -EBUSY;
	if (def >= pc->n_defs || proc >= pc->defs[def].n_procs || !same_processor(ops, &pc->defs[def].procs[proc].ops))
		return -EINVAL;
	inst = &e->per_def[pc->base + def].procs[proc];
	inst->params = params;
	inst->params_len = params_len;
	return 0;
}

/* Sets up this shard's instance of every processor of a generation: its own context, from its parameters. */
static int
set_up_processors(struct fo_engine *e, const struct fo_pipeline_conf *pc, char *err, size_t errlen)
{
	char why[200];
	uint16_t i, p;
	int ret;

	for (i = 0; i < pc->n_defs; i++) {
		const struct definition *d = &pc->defs[i];

		for (p = 0; p < d->n_procs; p++) {
			const struct proc_conf *proc = &d->procs[p];
			struct proc_instance *inst = &e->per_def[pc->base + i].procs[p];

			if (proc->ops.ctx_size > 0) {
				inst->ctx = rte_zmalloc_socket("fo_proc", proc->ops.ctx_size, RTE_CACHE_LINE_SIZE,
							       e->conf.socket_id);
				if (inst->ctx == NULL) {
					snprintf(err, errlen, "flow %s, stage %u, %s: out of memory", d->conf.name,
						 proc->stage, proc->name);
					return -ENOMEM;
				}
			}
			why[0] = '\0';
			ret = proc->ops.setup == NULL ? 0 :
				proc->ops.setup(inst->ctx, inst->params, inst->params_len, why, sizeof(why));
			if (ret != 0) {
				snprintf(err, errlen, "flow %s, stage %u, %s: %s", d->conf.name, proc->stage, proc->name,
					 why[0] != '\0' ? why : rte_strerror(ret < 0 ? -ret : EINVAL));
				return ret < 0 ? ret : -EINVAL;
			}
			inst->set_up = 1;
		}
	}
	return 0;
}

int
fo_engine_build(struct fo_engine *e, char *err, size_t errlen)
{
	const struct fo_pipeline_conf *pc = e->pc;
	uint16_t i;
	int ret;

	if (e->built)
		return -EBUSY;
	ret = fo_flow_table_create(e, err, errlen);
	if (ret != 0)
		return ret;
	if (pc->state_size > 0) {
		/* One area per flow id, packed: flow i's is at i * state_stride (fetched without a pointer). */
		e->state_stride = pc->state_size;
		e->state_areas = rte_malloc_socket("fo_states", (size_t)e->n_flows * e->state_stride, RTE_CACHE_LINE_SIZE,
						   e->conf.socket_id);
		if (e->state_areas == NULL) {
			snprintf(err, errlen, "cannot allocate pipeline state for %u flows (%u bytes each)",
				 e->n_flows, e->state_stride);
			return -ENOMEM;
		}
	}
	e->window_cap = pc->window_cap;
	e->batches = rte_zmalloc_socket("fo_batches", sizeof(*e->batches) * FO_MAX_BURST, 0, e->conf.socket_id);
	e->pending_drops = rte_malloc_socket("fo_drops", sizeof(*e->pending_drops) * e->window_cap * FO_MAX_BURST, 0,
					     e->conf.socket_id);
	e->window = rte_malloc_socket("fo_window", sizeof(*e->window) * e->window_cap * FO_MAX_BURST, 0,
				      e->conf.socket_id);
	e->verdicts = rte_malloc_socket("fo_verdicts", e->window_cap * FO_MAX_BURST, 0, e->conf.socket_id);
	e->out_ports = rte_malloc_socket("fo_out_ports", sizeof(uint16_t) * e->window_cap * FO_MAX_BURST, 0,
					 e->conf.socket_id);
	if (e->batches == NULL || e->window == NULL || e->verdicts == NULL || e->out_ports == NULL ||
	    e->pending_drops == NULL) {
		snprintf(err, errlen, "out of memory for processing windows");
		return -ENOMEM;
	}
	for (i = 0; i < FO_MAX_BURST; i++) {   /* what every batch of every call says alike */
		e->batches[i].engine = e;
		e->batches[i].meta_offset = fo_pkt_meta_offset;
		e->batches[i].seq_offset = fo_pkt_seq_offset;
		e->batches[i].stream_ops = &fo_stream_ops;
	}
	if (pc->conf.clock == FO_CLOCK_CAPTURE) {
		ret = rte_mbuf_dyn_rx_timestamp_register(&e->timestamp_offset, &e->timestamp_flag);
		if (ret != 0) {
			snprintf(err, errlen, "cannot read capture timestamps: %s", rte_strerror(rte_errno));
			return -rte_errno;
		}
	}
	ret = set_up_processors(e, pc, err, errlen);
	if (ret != 0)
		return ret;
	e->tsc_start = rte_rdtsc();
	e->ns_per_tsc = 1e9 / (double)rte_get_tsc_hz();
	e->built = 1;
	return 0;
}

const struct fo_pipeline_conf *
fo_engine_pipeline_conf(const struct fo_engine *e)
{
	return e->pc;
}

int
fo_engine_set_shard(struct fo_engine *e, uint16_t index, uint16_t workers, struct rte_ring *const *inboxes,
		    uint16_t steer_pattern)
{
	struct shard *sh = &e->shard;
	uint32_t i;

	/* index == workers: the relay of worker processes, a shard that owns no flow. */
	if (workers == 0 || workers > FO_MAX_WORKERS || index > workers || steer_pattern == 0 ||
	    (workers > 1 && inboxes == NULL) || (index == workers && inboxes == NULL))
		return -EINVAL;
	for (i = 0; inboxes != NULL && i < workers; i++)
		if (inboxes[i] == NULL)
			return -EINVAL;
	if ((workers > 1 || index == workers) && sh->frags == NULL) {
		sh->frags = rte_malloc_socket("fo_steer_frags", sizeof(*sh->frags) * STEER_FRAG_SIZE, 0,
					      e->conf.socket_id);
		if (sh->frags == NULL)
			return -ENOMEM;
		for (i = 0; i < STEER_FRAG_SIZE; i++)
			sh->frags[i].value = FO_FLOW_NONE;
	}
	sh->index = index;
	sh->workers = workers;
	for (i = 0; i < workers; i++)
		sh->inboxes[i] = workers > 1 || index == workers ? inboxes[i] : NULL;
	fo_steer_init(&sh->steer, steer_pattern);
	return 0;
}

int
fo_engine_set_handoff_wait(struct fo_engine *e, unsigned int (*wait)(void *ctx), void *ctx)
{
	if (e->shard.index != e->shard.workers)
		return -EINVAL;
	e->shard.wait = wait;
	e->shard.wait_ctx = ctx;
	return 0;
}

int
fo_engine_set_tx_ring(struct fo_engine *e, uint16_t port, struct rte_ring *ring)
{
	if (port >= RTE_MAX_ETHPORTS)
		return -EINVAL;
	e->txq[port].ring = ring;
	return 0;
}

int
fo_engine_set_txq(struct fo_engine *e, uint16_t port, uint16_t queue, rte_spinlock_t *lock)
{
	if (port >= RTE_MAX_ETHPORTS)
		return -EINVAL;
	e->txq[port].queue = queue;
	e->txq[port].lock = lock;
	return 0;
}

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

/* Puts a packet in its flow (NULL: the table was full); returns 0, or -1 when a policy took it. */
static int
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
static void retire_generations(struct fo_engine *e);

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
		if (e->pc->class_keys) {
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
	/* In arrival order, so that a first fragment is known before the later ones of the burst. */
	for (j = 0; j < n_todo; j++) {
		struct rte_mbuf *m = pkts[todo[j]];
		uint16_t flags = fo_pkt_meta(m)->flags;
		struct fo_flow *flow;
		uint8_t dir;

		if (e->pc->conf.clock == FO_CLOCK_CAPTURE)
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
		enum fo_flow_end_reason reason;

		prefetch_flows_ahead(e, e->touched, i, e->n_touched);
		fo_pipeline_release_ready(e, flow);
		if (e->defs[flow->key.def].stream_offset != 0)
			fo_stream_hold_track(e, flow);
		if (fo_flow_wants_end(flow, &reason))
			end_flow(e, flow, reason);
	}
	fo_stream_release_idle(e);
	expire_idle(e);
	if (unlikely(engine_over_budget(e)))
		sweep_budget(e);
	if (unlikely(e->n_old > 0))
		retire_generations(e);
	fo_send_flush(e);
	if (e->stats.held + e->stats.kept_copies > e->stats.keep_peak)
		RELAXED_ADD(e->stats.keep_peak, e->stats.held + e->stats.kept_copies - e->stats.keep_peak);
}

/*
 * Generations (docs/reload.md). A new conf is staged on the control thread (its instances set
 * up, larger scratch allocated) while the worker runs the current one; the worker switches
 * between two bursts (fo_engine_switch, through the control mailbox). Older generations stay
 * while they have live flows here; the last one's end tears their instances down.
 */

/* Each generation's processors (only an instance whose setup succeeded has anything to tear down). */
static void
teardown_generation(struct fo_engine *e, const struct fo_pipeline_conf *pc)
{
	uint16_t i, p;

	for (i = 0; i < pc->n_defs; i++) {
		for (p = 0; p < pc->defs[i].n_procs; p++) {
			const struct proc_conf *proc = &pc->defs[i].procs[p];
			struct proc_instance *inst = &e->per_def[pc->base + i].procs[p];

			if (inst->set_up && proc->ops.teardown != NULL) {
				engine_call_enter(e, &pc->defs[i], p, FO_CALL_TEARDOWN);
				proc->ops.teardown(inst->ctx);
				engine_call_leave(e);
			}
			inst->set_up = 0;
		}
	}
}

/* A generation's instances on this shard: torn down (those set up), freed, their range zeroed. */
static void
drop_instances(struct fo_engine *e, const struct fo_pipeline_conf *pc)
{
	uint16_t i, p;

	teardown_generation(e, pc);
	for (i = 0; i < pc->n_defs; i++)
		for (p = 0; p < pc->defs[i].n_procs; p++)
			rte_free(e->per_def[pc->base + i].procs[p].ctx);
	memset(&e->per_def[pc->base], 0, sizeof(*e->per_def) * pc->n_defs);
	for (i = 0; i < pc->n_defs; i++)   /* empty: fo_stream_release_idle may look between live ranges */
		e->per_def[pc->base + i].hold_first = e->per_def[pc->base + i].hold_last = FO_FLOW_NONE;
}

static uint64_t
generation_flows(const struct fo_engine *e, const struct fo_pipeline_conf *pc)
{
	uint64_t n = 0;
	uint16_t i;

	for (i = 0; i < pc->n_defs; i++)
		n += e->per_def[pc->base + i].stats.flows_active;
	return n;
}

/* Older generations whose last flow here ended: torn down, their conf let go. */
static void
retire_generations(struct fo_engine *e)
{
	uint8_t g = 0, kept = 0;

	for (g = 0; g < e->n_old; g++) {
		const struct fo_pipeline_conf *pc = e->old[g];

		if (generation_flows(e, pc) > 0) {
			e->old[kept++] = pc;
			continue;
		}
		drop_instances(e, pc);
		RELAXED_ADD(e->stats.generations_retired, 1);
		fo_pipeline_conf_free((struct fo_pipeline_conf *)(uintptr_t)pc);
	}
	__atomic_store_n(&e->n_old, kept, __ATOMIC_RELEASE);   /* fo_engine_stage reads it on another thread */
}

static void
free_staged_scratch(struct staged_scratch *s)
{
	rte_free(s->window);
	rte_free(s->verdicts);
	rte_free(s->out_ports);
	rte_free(s->pending_drops);
	rte_free(s->state_areas);
	rte_free(s->carry_from);
	memset(s, 0, sizeof(*s));
}

/* Which of the current conf's definitions each of next's carries the counters of: the one of its name. */
static int
stage_carry(struct fo_engine *e, const struct fo_pipeline_conf *next, char *err, size_t errlen)
{
	const struct fo_pipeline_conf *pc = e->pc;
	uint16_t i, j;

	e->staged.carry_from = rte_malloc_socket("fo_carry", sizeof(uint16_t) * RTE_MAX(next->n_defs, 1), 0,
						 e->conf.socket_id);
	if (e->staged.carry_from == NULL) {
		snprintf(err, errlen, "out of memory for the definitions' counters");
		return -ENOMEM;
	}
	for (i = 0; i < next->n_defs; i++) {
		e->staged.carry_from[i] = CARRY_NONE;
		for (j = 0; j < pc->n_defs; j++) {
			if (strncmp(next->defs[i].conf.name, pc->defs[j].conf.name, sizeof(pc->defs[j].conf.name)) == 0) {
				e->staged.carry_from[i] = (uint16_t)(pc->base + j);
				break;
			}
		}
	}
	return 0;
}

/*
 * At the switch: a definition whose name the current conf has too goes on counting from its
 * packets, bytes and flows created. flows_active is each generation's own (its live flows).
 */
static void
carry_counters(struct fo_engine *e, const struct fo_pipeline_conf *next)
{
	uint16_t i;

	for (i = 0; i < next->n_defs; i++) {
		const struct fo_def_stats *from;
		struct fo_def_stats *to = &e->per_def[next->base + i].stats;

		if (e->staged.carry_from[i] == CARRY_NONE)
			continue;
		from = &e->per_def[e->staged.carry_from[i]].stats;
		__atomic_store_n(&to->packets, to->packets + from->packets, __ATOMIC_RELAXED);
		__atomic_store_n(&to->bytes, to->bytes + from->bytes, __ATOMIC_RELAXED);
		__atomic_store_n(&to->flows_created, to->flows_created + from->flows_created, __ATOMIC_RELAXED);
	}
}

int
fo_engine_stage(struct fo_engine *e, struct fo_pipeline_conf *next)
{
	if (!e->built || e->torn_down || next == NULL || !next->built || next->space != e->pc->space)
		return -EINVAL;
	if (e->next != NULL)
		return -EBUSY;
	/* Only the worker changes n_old, and only down while nothing is staged: this holds at the switch. */
	if (__atomic_load_n(&e->n_old, __ATOMIC_ACQUIRE) + 1 >= MAX_GENERATIONS)
		return -ENOSPC;
	__atomic_add_fetch(&next->users, 1, __ATOMIC_ACQ_REL);
	init_instances(e, next);
	e->next = next;
	e->next_set_up = 0;
	return 0;
}

/* Scratch for windows of window_cap packets per flow, and state areas of stride bytes per flow id. */
static int
stage_scratch(struct fo_engine *e, const struct fo_pipeline_conf *pc, char *err, size_t errlen)
{
	struct staged_scratch *s = &e->staged;
	size_t cap = (size_t)pc->window_cap * FO_MAX_BURST;

	if (pc->window_cap > e->window_cap) {
		s->window_cap = pc->window_cap;
		s->window = rte_malloc_socket("fo_window", sizeof(*s->window) * cap, 0, e->conf.socket_id);
		s->verdicts = rte_malloc_socket("fo_verdicts", cap, 0, e->conf.socket_id);
		s->out_ports = rte_malloc_socket("fo_out_ports", sizeof(uint16_t) * cap, 0, e->conf.socket_id);
		s->pending_drops = rte_malloc_socket("fo_drops", sizeof(*s->pending_drops) * cap, 0, e->conf.socket_id);
		if (s->window == NULL || s->verdicts == NULL || s->out_ports == NULL || s->pending_drops == NULL) {
			snprintf(err, errlen, "out of memory for processing windows of %u packets", pc->window_cap);
			return -ENOMEM;
		}
	}
	if (pc->state_size > e->state_stride) {
		s->state_stride = pc->state_size;
		s->state_areas = rte_malloc_socket("fo_states", (size_t)e->n_flows * s->state_stride, RTE_CACHE_LINE_SIZE,
						   e->conf.socket_id);
		if (s->state_areas == NULL) {
			snprintf(err, errlen, "cannot allocate pipeline state for %u flows (%u bytes each)", e->n_flows,
				 s->state_stride);
			return -ENOMEM;
		}
	}
	return 0;
}

int
fo_engine_stage_setup(struct fo_engine *e, char *err, size_t errlen)
{
	int ret;

	if (e->next == NULL || e->next_set_up)
		return -EINVAL;
	ret = stage_scratch(e, e->next, err, errlen);
	if (ret == 0)
		ret = stage_carry(e, e->next, err, errlen);
	if (ret == 0)
		ret = set_up_processors(e, e->next, err, errlen);
	if (ret == 0)
		e->next_set_up = 1;
	return ret;
}

void
fo_engine_unstage(struct fo_engine *e)
{
	struct fo_pipeline_conf *next = e->next;

	if (next == NULL)
		return;
	drop_instances(e, next);
	free_staged_scratch(&e->staged);
	e->next = NULL;
	e->next_set_up = 0;
	fo_pipeline_conf_free(next);
}

/* Installs what was staged for the new generation; on the worker, between bursts. */
static void
install_scratch(struct fo_engine *e)
{
	struct staged_scratch *s = &e->staged;
	uint32_t id;

	if (s->window_cap > 0) {
		RTE_SWAP(e->window, s->window);
		RTE_SWAP(e->verdicts, s->verdicts);
		RTE_SWAP(e->out_ports, s->out_ports);
		RTE_SWAP(e->pending_drops, s->pending_drops);
		e->window_cap = s->window_cap;
	}
	if (s->state_stride > 0) {
		/* Live flows' states move to the larger areas: their processors' state goes with them. */
		for (id = 0; id < e->n_flows; id++) {
			struct fo_flow *flow = &e->flows[id];
			uint8_t *area = s->state_areas + (size_t)id * s->state_stride;

			if (!flow->live || flow->heads == NULL)
				continue;
			memcpy(area, flow->states, e->state_stride);
			flow->heads = (uint32_t *)area;
			flow->states = area;
		}
		RTE_SWAP(e->state_areas, s->state_areas);
		e->state_stride = s->state_stride;
	}
	free_staged_scratch(s);   /* what was swapped out */
}

int
fo_engine_switch(struct fo_engine *e, int migrate)
{
	uint32_t id;
	int ret;

	if (e->next == NULL || !e->next_set_up)
		return -EINVAL;
	/*
	 * Each extension module links its own copy of the fast path, each with its own packet
	 * metadata offsets: the copy that runs this (the control mailbox's) may have registered
	 * none yet, and ending flows reads their packets' metadata.
	 */
	ret = fo_pkt_meta_register();
	if (ret != 0)
		return ret;
	carry_counters(e, e->next);
	install_scratch(e);
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
	retire_generations(e);
	fo_send_flush(e);
	return 0;
}

uint16_t
fo_engine_generations(const struct fo_engine *e)
{
	return (uint16_t)(__atomic_load_n(&e->n_old, __ATOMIC_ACQUIRE) + 1);
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

void
fo_engine_read_stats(const struct fo_engine *e, struct fo_engine_stats *out)
{
	const uint64_t *src = (const uint64_t *)&e->stats;
	uint64_t *dst = (uint64_t *)out;
	size_t i;

	for (i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* The current generation, as another thread reads it: its definitions are what def indexes name. */
static const struct fo_pipeline_conf *
current_conf(const struct fo_engine *e)
{
	return __atomic_load_n(&e->pc, __ATOMIC_ACQUIRE);
}

int
fo_engine_read_def_stats(const struct fo_engine *e, uint16_t def, struct fo_def_stats *out)
{
	const struct fo_pipeline_conf *pc = current_conf(e);
	const uint64_t *src;
	uint64_t *dst = (uint64_t *)out;
	size_t i;

	if (def >= pc->n_defs)
		return -EINVAL;
	src = (const uint64_t *)&e->per_def[pc->base + def].stats;
	for (i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	return 0;
}

int
fo_engine_read_proc_stats(const struct fo_engine *e, uint16_t def, uint16_t proc, struct fo_proc_stats *out)
{
	const struct fo_pipeline_conf *pc = current_conf(e);
	const struct proc_instance *p;

	if (def >= pc->n_defs || proc >= pc->defs[def].n_procs)
		return -EINVAL;
	p = &e->per_def[pc->base + def].procs[proc];
	out->calls = __atomic_load_n(&p->calls, __ATOMIC_RELAXED);
	out->packets = __atomic_load_n(&p->packets, __ATOMIC_RELAXED);
	out->busy_ns = (uint64_t)((double)__atomic_load_n(&p->busy_tsc, __ATOMIC_RELAXED) * e->ns_per_tsc);
	return 0;
}

int
fo_engine_current_call(const struct fo_engine *e, struct fo_call *out)
{
	uint64_t calling = __atomic_load_n(&e->calling, __ATOMIC_ACQUIRE);
	uint64_t now;

	if (calling == 0)
		return 0;
	/* Stored before calling: this call's start, or a later call's (then it looks shorter). */
	out->began = __atomic_load_n(&e->call_began, __ATOMIC_RELAXED);
	now = rte_rdtsc();
	out->def = (uint16_t)((calling - 1) >> 16);
	out->proc = (uint16_t)((calling - 1) & 0xffff);
	out->what = (enum fo_callback)((calling - 1) >> 32);
	out->ns = now > out->began ? (uint64_t)((double)(now - out->began) * e->ns_per_tsc) : 0;
	return 1;
}

void
fo_engine_set_call_record(struct fo_engine *e, uint64_t *record)
{
	e->call_record = record;
}

uint16_t
fo_engine_def_count(const struct fo_engine *e)
{
	return current_conf(e)->n_defs;
}

int
fo_engine_processor_report(struct fo_engine *e, uint16_t def, uint16_t proc, char *buf, size_t len)
{
	const struct fo_pipeline_conf *pc = current_conf(e);
	const struct proc_conf *p;

	if (def >= pc->n_defs || proc >= pc->defs[def].n_procs)
		return -EINVAL;
	p = &pc->defs[def].procs[proc];
	if (p->ops.report == NULL)
		return -ENOTSUP;
	return p->ops.report(e->per_def[pc->base + def].procs[proc].ctx, buf, len);
}

void
fo_engine_teardown(struct fo_engine *e)
{
	uint8_t g;

	if (e->torn_down)
		return;
	e->torn_down = 1;
	for (g = 0; g < e->n_old; g++)
		teardown_generation(e, e->old[g]);
	teardown_generation(e, e->pc);
	if (e->next != NULL)
		teardown_generation(e, e->next);
}

void
fo_engine_free(struct fo_engine *e)
{
	uint8_t g;

	if (e == NULL)
		return;
	fo_engine_teardown(e);
	fo_engine_unstage(e);   /* torn down already: its instances are freed */
	for (g = 0; g < e->n_old; g++) {
		drop_instances(e, e->old[g]);
		fo_pipeline_conf_free((struct fo_pipeline_conf *)(uintptr_t)e->old[g]);
	}
	drop_instances(e, e->pc);
	fo_flow_table_free(e);
	rte_free(e->state_areas);
	rte_free(e->batches);
	rte_free(e->pending_drops);
	rte_free(e->window);
	rte_free(e->verdicts);
	rte_free(e->out_ports);
	rte_free(e->per_def);
	rte_free(e->shard.frags);
	/* The conf outlives its last shard only if its creator still holds it. */
	fo_pipeline_conf_free((struct fo_pipeline_conf *)(uintptr_t)e->pc);
	rte_free(e);
}
