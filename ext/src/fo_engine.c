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

int fo_pkt_meta_offset = -1;
int fo_pkt_seq_offset = -1;

int
fo_pkt_meta_register(void)
{
	static const struct rte_mbuf_dynfield meta = {
		.name = "flowos_pkt_meta", .size = sizeof(struct fo_pkt_meta),
		.align = __alignof__(struct fo_pkt_meta),
	};
	static const struct rte_mbuf_dynfield seq = {
		.name = "flowos_pkt_seq", .size = sizeof(uint32_t), .align = __alignof__(uint32_t),
	};

	if (fo_pkt_meta_offset < 0)
		fo_pkt_meta_offset = rte_mbuf_dynfield_register(&meta);
	if (fo_pkt_seq_offset < 0)
		fo_pkt_seq_offset = rte_mbuf_dynfield_register(&seq);
	return fo_pkt_meta_offset < 0 || fo_pkt_seq_offset < 0 ? -rte_errno : 0;
}

struct fo_engine *
fo_engine_create(const struct fo_engine_conf *conf)
{
	struct fo_engine *e;
	int ret;

	if (conf->flow_capacity == 0 || conf->pool == NULL) {
		rte_errno = EINVAL;
		return NULL;
	}
	ret = fo_pkt_meta_register();
	if (ret != 0) {
		/* ENOENT: the drivers left too little of the mbuf's dynamic field space. */
		rte_errno = -ret;
		return NULL;
	}
	e = rte_zmalloc_socket("fo_engine", sizeof(*e), RTE_CACHE_LINE_SIZE, conf->socket_id);
	if (e == NULL)
		goto nomem;
	e->defs = rte_zmalloc_socket("fo_defs", sizeof(*e->defs) * FO_MAX_DEFS, 0, conf->socket_id);
	if (e->defs == NULL)
		goto nomem;
	e->conf = *conf;
	e->timestamp_offset = -1;
	e->shard.workers = 1;
	return e;
nomem:
	if (e != NULL)
		rte_free(e->defs);
	rte_free(e);
	rte_errno = ENOMEM;
	return NULL;
}

int
fo_engine_add_definition(struct fo_engine *e, const struct fo_def_conf *def)
{
	struct definition *d;

	if (e->built)
		return -EBUSY;
	if (e->n_defs == FO_MAX_DEFS)
		return -ENOSPC;
	d = &e->defs[e->n_defs];
	d->conf = *def;
	d->conf.name[FO_NAME_LEN - 1] = '\0';
	if (d->conf.reorder_packets == 0)
		d->conf.reorder_packets = 64;
	if (d->conf.stream_hold_ms == 0)
		d->conf.stream_hold_ms = FO_STREAM_HOLD_MS_DEFAULT;
	d->hold_first = d->hold_last = FO_FLOW_NONE;
	return e->n_defs++;
}

int
fo_engine_add_processor(struct fo_engine *e, uint16_t def, uint16_t stage,
			const struct fo_processor_ops *ops, const void *params, size_t params_len,
			char *err, size_t errlen)
{
	struct definition *d;
	struct proc_instance *p;
	uint16_t s;
	int ret;

	if (e->built)
		return -EBUSY;
	if (def >= e->n_defs || ops == NULL || ops->process == NULL) {
		snprintf(err, errlen, "no such definition, or a processor without process()");
		return -EINVAL;
	}
	d = &e->defs[def];
	if (d->n_procs == FO_MAX_PROCS || stage >= FO_MAX_STAGES) {
		snprintf(err, errlen, "at most %d processors in %d stages per flow definition",
			 FO_MAX_PROCS, FO_MAX_STAGES);
		return -ENOSPC;
	}
	if (stage != d->n_stages && stage + 1 != d->n_stages) {
		snprintf(err, errlen, "stages are added in order");
		return -EINVAL;
	}
	/* A writer stands alone in its stage; read-only processors may share one. */
	if (stage + 1 == d->n_stages) {
		for (s = d->stage_first[stage]; s < d->n_procs; s++) {
			if (!ops->readonly || !d->procs[s].ops->readonly) {
				snprintf(err, errlen, "%s and %s share stage %u, but %s changes packets: a writer stands alone in its stage",
					 d->procs[s].ops->name, ops->name, stage,
					 ops->readonly ? d->procs[s].ops->name : ops->name);
				return -EINVAL;
			}
		}
	}
	p = &d->procs[d->n_procs];
	p->ops = ops;
	p->stage = stage;
	p->ctx = ops->ctx_size ? rte_zmalloc_socket("fo_proc", ops->ctx_size, RTE_CACHE_LINE_SIZE,
						   e->conf.socket_id) : NULL;
	if (ops->ctx_size && p->ctx == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (ops->setup != NULL) {
		ret = ops->setup(p->ctx, params, params_len, err, errlen);
		if (ret != 0) {
			rte_free(p->ctx);
			p->ctx = NULL;
			return ret < 0 ? ret : -EINVAL;
		}
	}
	if (stage == d->n_stages) {
		d->stage_first[stage] = d->n_procs;
		d->n_stages++;
	}
	d->n_procs++;
	d->stage_first[d->n_stages] = d->n_procs;
	return d->n_procs - 1;
}

/* Lays out each definition's per-flow state: heads first, then each processor's state. */
static uint32_t
layout_states(struct fo_engine *e)
{
	uint32_t largest = 0;
	uint16_t i, p;

	for (i = 0; i < e->n_defs; i++) {
		struct definition *d = &e->defs[i];
		uint32_t size = RTE_ALIGN_CEIL(sizeof(uint32_t) * d->n_procs, 8);

		d->stream_offset = 0;
		if (d->conf.streams && d->n_procs > 0) {
			d->stream_offset = size;
			size += sizeof(struct stream_flow) + sizeof(uint64_t) * 2 * d->n_procs;
			size = RTE_ALIGN_CEIL(size, 8);
		}

		for (p = 0; p < d->n_procs; p++) {
			d->procs[p].state_offset = size;
			size += RTE_ALIGN_CEIL(d->procs[p].ops->state_size, 8);
		}
		d->state_size = d->n_procs ? size : 0;
		largest = RTE_MAX(largest, d->state_size);
	}
	return largest;
}

int
fo_engine_build(struct fo_engine *e, char *err, size_t errlen)
{
	struct fo_match matches[FO_MAX_DEFS];
	uint32_t state_size, hold = 0;
	char name[RTE_MEMPOOL_NAMESIZE];
	uint16_t i;
	int ret;

	if (e->built)
		return -EBUSY;
	for (i = 0; i < e->n_defs; i++) {
		matches[i] = e->defs[i].conf.match;
		hold = RTE_MAX(hold, e->defs[i].conf.hold_packets);
	}
	snprintf(name, sizeof(name), "fo_class_%p", (void *)e);
	e->classifier = fo_classifier_create(name, matches, e->n_defs, e->conf.socket_id);
	if (e->classifier == NULL) {
		snprintf(err, errlen, "cannot build the classifier: %s", rte_strerror(rte_errno));
		return -rte_errno;
	}
	e->class_constant = fo_classifier_constant(e->classifier);
	ret = fo_flow_table_create(e, err, errlen);
	if (ret != 0)
		return ret;
	state_size = layout_states(e);
	if (state_size > 0) {
		/* One area per flow id, packed: flow i's is at i * state_stride (fetched without a pointer). */
		e->state_stride = state_size;
		e->state_areas = rte_malloc_socket("fo_states", (size_t)e->n_flows * state_size, RTE_CACHE_LINE_SIZE,
						   e->conf.socket_id);
		if (e->state_areas == NULL) {
			snprintf(err, errlen, "cannot allocate pipeline state for %u flows (%u bytes each)",
				 e->n_flows, state_size);
			return -ENOMEM;
		}
	}
	/* A window holds what a flow may hold, one burst more, and what processors inject into it. */
	e->window_cap = hold + 2 * FO_MAX_BURST;
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
	if (e->conf.clock == FO_CLOCK_CAPTURE) {
		ret = rte_mbuf_dyn_rx_timestamp_register(&e->timestamp_offset, &e->timestamp_flag);
		if (ret != 0) {
			snprintf(err, errlen, "cannot read capture timestamps: %s", rte_strerror(rte_errno));
			return -rte_errno;
		}
	}
	e->tsc_start = rte_rdtsc();
	e->ns_per_tsc = 1e9 / (double)rte_get_tsc_hz();
	e->built = 1;
	return 0;
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

/* Where the last level found starts: the headers' end (a transport's payload follows its header). */
static uint32_t
headers_end(const struct fo_decoded *d)
{
	uint32_t end = 0;
	int l;

	for (l = 0; l < FO_LEVEL_COUNT; l++)
		if (d->offset[l] != FO_NO_LEVEL)
			end = RTE_MAX(end, (uint32_t)d->offset[l]);
	return end;
}

/*
 * Decodes m into its metadata; returns 0, or the decode error for a malformed packet. A packet
 * whose headers cannot all be brought into its first segment is decoded from that segment
 * alone: truncated.
 */
int
fo_engine_decode(struct fo_engine *e, struct rte_mbuf *m, uint16_t out_port, uint32_t *frag_id)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m);
	struct fo_decoded d;
	int l;

	/* Lengths are checked against the whole packet: a long one comes in several segments. */
	if (unlikely(m->nb_segs > 1)) {
		len = RTE_MIN(rte_pktmbuf_pkt_len(m), (uint32_t)FO_DECODE_MAX_LEN);
		data = rte_pktmbuf_read(m, 0, len, e->linear);
		fo_decode(data, len, &d);
		/* Headers are read and written in the first segment: the ones past it move there. */
		if (fo_pkt_pullup(m, headers_end(&d)) != 0)
			fo_decode(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), &d);
	} else {
		fo_decode(data, len, &d);
	}
	meta->next = NULL;
	for (l = 0; l < FO_LEVEL_COUNT; l++)
		meta->offset[l] = d.offset[l];
	meta->end = d.end;
	meta->flags = d.flags;
	meta->ip_proto = d.ip_proto;
	meta->out_port = out_port;
	meta->verdict = FO_PASS;
	meta->dir = 0;
	meta->first_stage = 0;
	*fo_pkt_seq(m) = 0;
	*frag_id = d.frag_id;
	return d.error;
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

/* Ends a flow now, in the middle of a burst: what the burst brought it is processed first. */
void
fo_engine_finish_flow(struct fo_engine *e, struct fo_flow *flow, enum fo_flow_end_reason reason)
{
	uint32_t id = flow->id;
	uint16_t i;

	if (flow->touched_epoch == e->epoch) {
		if (e->defs[flow->key.def].n_procs > 0)
			fo_pipeline_run(e, flow->key.def, &id, 1);
		fo_pipeline_release(e, flow, fo_pipeline_released(e, flow));
		for (i = 0; i < e->n_touched; i++) {
			if (e->touched[i] == id) {
				e->touched[i] = e->touched[--e->n_touched];
				break;
			}
		}
	}
	fo_flow_end(e, flow, reason);
}

void
fo_engine_send(struct fo_engine *e, struct rte_mbuf *m)
{
	uint16_t port = fo_pkt_meta(m)->out_port;
	struct tx_queue *q = &e->tx[port];

	q->pkts[q->n++] = m;
	if (q->n == TX_BUF) {
		uint16_t sent = fo_tx_burst(port, &e->txq[port], q->pkts, q->n);

		RELAXED_ADD(e->stats.tx_packets, sent);
		if (sent < q->n) {
			rte_pktmbuf_free_bulk(&q->pkts[sent], q->n - sent);
			RELAXED_ADD(e->stats.tx_unsent, q->n - sent);
		}
		q->n = 0;
	}
}

void
fo_engine_drop(struct fo_engine *e, struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
	RELAXED_ADD(e->stats.dropped, 1);
}

void
fo_engine_tx_flush(struct fo_engine *e)
{
	uint16_t port;

	for (port = 0; port < RTE_MAX_ETHPORTS; port++) {
		struct tx_queue *q = &e->tx[port];
		uint16_t sent;

		if (q->n == 0)
			continue;
		sent = fo_tx_burst(port, &e->txq[port], q->pkts, q->n);
		RELAXED_ADD(e->stats.tx_packets, sent);
		if (sent < q->n) {
			rte_pktmbuf_free_bulk(&q->pkts[sent], q->n - sent);
			RELAXED_ADD(e->stats.tx_unsent, q->n - sent);
		}
		q->n = 0;
	}
}

/* Ends the flows idle past their timeout class's time, the least recently seen first (a few per burst). */
static void
expire_idle(struct fo_engine *e)
{
	struct fo_flow *flow;
	int c, budget;

	for (c = 0; c < FO_TIMEOUT_CLASS_COUNT; c++)
		for (budget = EXPIRE_PER_BURST; budget > 0 && (flow = fo_flow_idle_oldest(e, c)) != NULL; budget--)
			fo_engine_finish_flow(e, flow, flow->tcp_state == FO_TCP_CLOSED ? FO_END_FIN : FO_END_IDLE);
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
		fo_engine_finish_flow(e, flow, (enum fo_flow_end_reason)over);
		flow = fo_flow_for_key(e, key, src_lo, -1, m, dir, &over);
	}
	if (unlikely(flow == NULL)) {
		expire_idle(e);
		flow = fo_flow_for_key(e, key, src_lo, -1, m, dir, &over);
	}
	return flow;
}

/* Puts a packet in its flow (NULL: the table was full); returns 0, or -1 when a policy took it. */
static int
join_flow(struct fo_engine *e, const struct fo_match_fields *f, struct rte_mbuf *m,
	  struct fo_flow *flow, uint8_t dir, uint32_t frag_id)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	struct definition *d;

	if (flow == NULL) {
		RELAXED_ADD(e->stats.table_full, 1);
		if (e->conf.table_full == FO_TABLE_FULL_DROP) {
			RELAXED_ADD(e->stats.table_full_dropped, 1);
			fo_engine_drop(e, m);
		} else {
			fo_engine_send(e, m);
		}
		return -1;
	}
	if ((meta->flags & (FO_PKT_FRAGMENT | FO_PKT_FIRST_FRAG)) == (FO_PKT_FRAGMENT | FO_PKT_FIRST_FRAG))
		fo_flow_remember_fragment(e, flow, f, frag_id);
	d = &e->defs[flow->key.def];
	RELAXED_ADD(d->stats.packets, 1);
	RELAXED_ADD(d->stats.bytes, rte_pktmbuf_pkt_len(m));
	if (d->stream_offset != 0 && fo_stream_wants(e, flow, m)) {
		/* Acknowledgements first: the flow's TCP tracking reads them in the sender's numbers. */
		fo_stream_map_acks(e, flow, m, dir);
		fo_flow_account(e, flow, m, dir);
		if (fo_stream_admit(e, flow, m, dir) == 0)
			fo_pipeline_enqueue(e, flow, m);
		fo_stream_drain(e, flow, dir);
		fo_stream_drain(e, flow, dir ^ 1);
	} else {
		fo_flow_account(e, flow, m, dir);
		fo_pipeline_enqueue(e, flow, m);
	}
	if (flow->touched_epoch != e->epoch) {
		flow->touched_epoch = e->epoch;
		e->touched[e->n_touched++] = flow->id;
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

static void engine_process(struct fo_engine *e, const struct fo_route *route, struct rte_mbuf **pkts, uint16_t n);

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
		int error = fo_engine_decode(e, m, route != NULL ? route->tx_port : fo_pkt_meta(m)->out_port,
					  &frag_ids[n_todo]);

		if (unlikely(error != FO_DECODE_OK)) {
			RELAXED_ADD(e->stats.malformed[error], 1);
			if (e->conf.malformed == FO_MALFORMED_DROP) {
				RELAXED_ADD(e->stats.malformed_dropped, 1);
				fo_engine_drop(e, m);
			} else {
				fo_engine_send(e, m);
			}
			continue;
		}
		fo_match_fields_of(m, in_port, &fields[n_todo]);
		if (steering) {
			uint16_t owner = steer_owner(&e->shard, m, &fields[n_todo], frag_ids[n_todo]);

			if (owner != e->shard.index) {
				m->port = in_port;
				away[n_away] = m;
				away_owners[n_away++] = owner;
				continue;
			}
		}
		if (e->class_constant == FO_CLASS_VARIES) {
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
	if (e->conf.clock == FO_CLOCK_TSC)
		e->now = (uint64_t)((double)(rte_rdtsc() - e->tsc_start) * e->ns_per_tsc);
	fo_classify(e->classifier, key_ptrs, defs, n_todo);
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
	for (k = 0; k < n_keys; k++)
		positions[key_at[k]] = found[k];
	/* In arrival order, so that a first fragment is known before the later ones of the burst. */
	for (j = 0; j < n_todo; j++) {
		struct rte_mbuf *m = pkts[todo[j]];
		uint16_t flags = fo_pkt_meta(m)->flags;
		struct fo_flow *flow;
		uint8_t dir;

		if (e->conf.clock == FO_CLOCK_CAPTURE)
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
			if (e->conf.unmatched == FO_UNMATCHED_DROP) {
				RELAXED_ADD(e->stats.unmatched_dropped, 1);
				fo_engine_drop(e, m);
			} else {
				fo_engine_send(e, m);
			}
			continue;
		}
		flow = flow_of(e, &flow_keys[j], src_lo[j], positions[j], m, &dir);
		join_flow(e, &fields[j], m, flow, dir, frag_ids[j]);
	}
	for (i = 0; e->state_areas != NULL && i < e->n_touched; i++)
		rte_prefetch0(flow_state_area(e, e->touched[i]));   /* the pipeline reads the heads first */
	for (i = 0; i < e->n_defs; i++)
		if (e->defs[i].n_procs > 0)
			fo_pipeline_run(e, i, e->touched, e->n_touched);
	for (i = 0; i < e->n_touched; i++) {
		struct fo_flow *flow = &e->flows[e->touched[i]];
		enum fo_flow_end_reason reason;

		prefetch_flows_ahead(e, e->touched, i, e->n_touched);
		fo_pipeline_release(e, flow, fo_pipeline_released(e, flow));
		if (e->defs[flow->key.def].stream_offset != 0)
			fo_stream_hold_track(e, flow);
		if (fo_flow_wants_end(flow, &reason))
			fo_flow_end(e, flow, reason);
	}
	fo_stream_release_idle(e);
	expire_idle(e);
	if (unlikely(engine_over_budget(e)))
		fo_budget_sweep(e);
	fo_engine_tx_flush(e);
	if (e->stats.held + e->stats.kept_copies > e->stats.keep_peak)
		RELAXED_ADD(e->stats.keep_peak, e->stats.held + e->stats.kept_copies - e->stats.keep_peak);
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
			fo_flow_end(e, &e->flows[id], flow_closed_by_fin(&e->flows[id]) ? FO_END_FIN : FO_END_SHUTDOWN);
	fo_engine_tx_flush(e);
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

int
fo_engine_read_def_stats(const struct fo_engine *e, uint16_t def, struct fo_def_stats *out)
{
	const uint64_t *src;
	uint64_t *dst = (uint64_t *)out;
	size_t i;

	if (def >= e->n_defs)
		return -EINVAL;
	src = (const uint64_t *)&e->defs[def].stats;
	for (i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	return 0;
}

int
fo_engine_read_proc_stats(const struct fo_engine *e, uint16_t def, uint16_t proc, struct fo_proc_stats *out)
{
	const struct proc_instance *p;

	if (def >= e->n_defs || proc >= e->defs[def].n_procs)
		return -EINVAL;
	p = &e->defs[def].procs[proc];
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

uint16_t
fo_engine_def_count(const struct fo_engine *e)
{
	return e->n_defs;
}

int
fo_engine_processor_report(struct fo_engine *e, uint16_t def, uint16_t proc, char *buf, size_t len)
{
	struct proc_instance *p;

	if (def >= e->n_defs || proc >= e->defs[def].n_procs)
		return -EINVAL;
	p = &e->defs[def].procs[proc];
	if (p->ops->report == NULL)
		return -ENOTSUP;
	return p->ops->report(p->ctx, buf, len);
}

void
fo_engine_teardown(struct fo_engine *e)
{
	uint16_t i, p;

	if (e->torn_down)
		return;
	e->torn_down = 1;
	for (i = 0; i < e->n_defs; i++) {
		for (p = 0; p < e->defs[i].n_procs; p++) {
			struct proc_instance *proc = &e->defs[i].procs[p];

			if (proc->ops->teardown != NULL)
				proc->ops->teardown(proc->ctx);
		}
	}
}

void
fo_engine_free(struct fo_engine *e)
{
	uint16_t i, p;

	if (e == NULL)
		return;
	fo_engine_teardown(e);
	for (i = 0; i < e->n_defs; i++)
		for (p = 0; p < e->defs[i].n_procs; p++)
			rte_free(e->defs[i].procs[p].ctx);
	fo_flow_table_free(e);
	rte_free(e->state_areas);
	fo_classifier_free(e->classifier);
	rte_free(e->batches);
	rte_free(e->pending_drops);
	rte_free(e->window);
	rte_free(e->verdicts);
	rte_free(e->out_ports);
	rte_free(e->defs);
	rte_free(e->shard.frags);
	rte_free(e);
}
