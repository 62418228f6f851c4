/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the engine's source files share; not part of the API.
 *
 * The fast path's files form a stack: each file uses (calls, or reads the data of) only files
 * below it, never one above, so that each can be read, tested and changed knowing only what is
 * under it. A lower file that needs something done above it returns a status to its caller
 * instead (fo_flow_for_key: this flow is over; fo_budget_cut: apply the hold overflow policy).
 * tests/test_layers.py compiles every file and checks its undefined symbols against this order.
 *
 * Layers, top first:
 *   fo_registry.c        the built-in processors, by name
 *   fo_proc_ttl.c        built-in processors: called through their ops, they use the
 *   fo_proc_redirect.c     processor API (fo_batch_inject, fo_batch_pool) and the metadata
 *   fo_proc_mirror.c
 *   fo_proc_hold.c
 *   fo_proc_counter.c
 *   fo_proc_acl.c
 *   fo_worker.c          the poll loop: calls the engine through its hooks (pointers)
 *   fo_port.c            port set-up
 *   fo_capture.c         capture files' timing
 *   fo_control.c         the control mailbox: requests served between bursts
 *   fo_engine_setup.c    a shard's set-up, what other threads read of it, teardown and free
 *   fo_engine.c          a shard's burst path: decode, steer, classify, flows, pipelines,
 *                          ends of flows, the keep budget's sweep, sends; the switch
 *   fo_generation.c      generations: processor instances, staging, retirement
 *   fo_stream.c          the stream view processors use (fo_stream.h)
 *   fo_stream_hold.c     held stream bytes let go when the flow brings nothing new
 *   fo_pipeline.c        the head/tail protocol: windows, verdicts, release, overflow, inject
 *   fo_budget.c          the keep budget: cuts a flow back, finds flows to cut
 *   fo_tcp_norm.c        TCP normalisation: admit on the way in, depart on the way out
 *   fo_flow_table.c      flows: lookup and start, TCP state, idle lists, fragments, the queue
 *   fo_pipeline_conf.c   the read-only configuration every shard reads (its generations share a definition space)
 *   fo_send.c            a shard's sends (its TX queues, fo_tx.h) and drops
 *   fo_tx.c              shared TX queues' locks
 *   fo_flow_index.c      flow key -> flow id
 *   fo_steer.c           which worker owns a flow
 *   fo_classify.c        the flow definitions' classifier (rte_acl)
 *   fo_match.c           match rules on packet fields
 *   fo_fields.c          packet fields by name
 *   fo_pkt.c             the per-packet metadata; decoding into it, splicing, checksums
 *   fo_decode.c          header decoding
 *   fo_log.c             DPDK's log, to a file
 */
#ifndef FO_ENGINE_PRIV_H
#define FO_ENGINE_PRIV_H

#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_jhash.h>
#include <rte_prefetch.h>

#include "flowos/fo_classify.h"
#include "flowos/fo_engine.h"
#include "flowos/fo_steer.h"
#include "flowos/fo_tx.h"

#include "fo_decode_common.h"

#define TX_BUF 64
#define FRAG_CACHE_SIZE 4096       /* power of two */
#define EXPIRE_PER_BURST 32        /* flows ended by idle timeout per class per burst, at most */

#define MAX_GENERATIONS 8          /* a shard's generations: the current one and older ones with live flows */

#define RELAXED_ADD(counter, n) __atomic_store_n(&(counter), (counter) + (n), __ATOMIC_RELAXED)

/* A processor of a definition's pipeline, as the conf has it (read-only). */
struct proc_conf {
	struct fo_processor_ops ops;   /* a copy: ops.name is name */
	char name[FO_NAME_LEN];
	void *params;                  /* a copy of what each shard's instance is set up with, or NULL */
	size_t params_len;
	uint32_t state_offset;         /* in the flow's state area */
	uint16_t stage;
};

/* A shard's instance of a processor: its context and its counters, written by its worker only. */
struct proc_instance {
	void *ctx;
	const void *params;            /* the conf's, or this shard's own (fo_engine_bind_processor) */
	size_t params_len;
	uint8_t set_up;                /* its setup succeeded: its teardown runs */
	uint64_t calls, packets;       /* fo_proc_stats */
	uint64_t busy_tsc;             /* TSC cycles inside process() */
};

/* TCP sequence number comparisons, modulo 2^32 (RFC 1982). */
static inline int seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline int seq_leq(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }
static inline int seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline int seq_geq(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }

/*
 * One segment that left a rewritten direction, kept (a reference to its mbuf) until the receiver
 * acknowledges it: a retransmission of its data is answered with it, and acknowledgements are
 * mapped back through it. "in" numbers are the sender's, "out" numbers what the receiver sees.
 */
struct sent_seg {
	struct rte_mbuf *m;       /* NULL for data that was deleted (nothing to resend) */
	uint32_t in, in_len;
	uint32_t out, out_len;
	uint32_t acks_to;         /* the sender's sequence number that acknowledging its end acknowledges */
};

/* TCP normalisation state of one direction of a flow. */
struct stream_dir {
	uint32_t rcv_nxt;         /* in: the next byte expected from the sender */
	uint32_t in_nxt;          /* in: the end of what has left */
	uint32_t out_nxt;         /* out: ... as the receiver numbers it */
	uint32_t base_in, base_out;   /* a point both numberings agree on, before every kept segment */
	uint16_t mss;             /* from the receiver's SYN; 0: unknown */
	uint16_t largest;         /* the largest segment seen (the MSS when it is unknown) */
	uint8_t synced;
	uint8_t rewritten;        /* what left differs from what came: keep copies, map numbers */
	uint16_t ooo_n;
	struct rte_mbuf *ooo;     /* segments past a gap, by sequence number (linked by metadata) */
	struct sent_seg *sent;    /* ring of what left and is not acknowledged yet (once rewritten) */
	uint32_t sent_head, sent_n, sent_cap;
	uint64_t new_at;          /* when rcv_nxt last moved: new bytes (the engine's clock, ns) */
};

/* The streams of a flow, in its state area (definitions with streams). */
struct stream_flow {
	struct stream_dir dir[2];
	uint32_t release_upto;    /* queue sequence number: holds before it are overridden (fo_stream_hold.c) */
	uint32_t hold_prev, hold_next;   /* in its definition's list of flows holding stream bytes, by id */
	uint8_t hold_listed;      /* ... whether it is in it */
	uint64_t held_at;         /* when it last brought new bytes while holding (its place in the list) */
	uint64_t released[][2];   /* per processor, per direction: the stream bytes it released */
};

/* A flow definition and its pipeline, as the conf has it (read-only). */
struct definition {
	struct fo_def_conf conf;
	uint16_t n_procs;
	uint16_t n_stages;
	uint16_t stage_first[FO_MAX_STAGES + 1];   /* processors of stage s: [stage_first[s], stage_first[s+1]) */
	struct proc_conf procs[FO_MAX_PROCS];
	uint32_t state_size;        /* heads, then the streams, then each processor's state */
	uint32_t stream_offset;     /* of the struct stream_flow in the state area; 0: no streams */
	uint8_t levels;             /* a bit per level its processors read (1 << ops.level) */
};

/* What a shard writes per definition. */
struct def_shard {
	uint32_t hold_first, hold_last;   /* flows holding stream bytes, least recently seen first */
	uint64_t run_epoch;               /* the burst (epoch) whose run_defs list it is in */
	uint32_t stale;                   /* ... its flows that held packets from before that burst, and its
					     pipeline's runs in it: 0 lets the pipeline share windows (fo_pipeline.c) */
	struct fo_def_stats stats;
	struct proc_instance procs[FO_MAX_PROCS];
};

struct def_space;

/* fo_pipeline_conf.h: built once, then read by every shard and written by none. */
struct fo_pipeline_conf {
	struct fo_engine_conf conf;
	struct fo_classifier *classifier;   /* gives global indexes (base + index), less class_offset */
	uint16_t class_offset;        /* what a shard adds to the classifier's results (fo_classifier_unapplied) */
	uint8_t class_keys;           /* fo_classifier_uses_keys(): else the keys are not filled */
	uint16_t n_defs;
	uint16_t base;                /* where its definitions are in the space, once built */
	struct definition *defs;      /* FO_MAX_DEFS while it is made; once built, its range of the space */
	struct def_space *space;      /* the definitions of its family (fo_pipeline_conf_create_next) */
	uint32_t state_size;          /* the largest definition's per-flow state */
	uint32_t window_cap;          /* packets in one (flow, processor) window, at most */
	uint8_t built;
	uint32_t users;               /* its creator and its shards: freed when none is left (atomic) */
};

/*
 * Where a datagram's first fragment went, by its addresses and IP id: a direct-mapped table of
 * them answers for the later fragments (no ports). The engine's keeps the flow id; a shard's
 * (several workers) the shard it handed the first fragment to.
 */
struct frag_entry {
	uint8_t src[16], dst[16];
	uint32_t id;
	uint32_t value;             /* a flow id or a shard; FO_FLOW_NONE: empty */
};

/* Byte-wise hashing: the fields' addresses are not aligned for word loads. */
static inline struct frag_entry *
frag_entry_of(struct frag_entry *table, uint32_t size, const struct fo_match_fields *f, uint32_t id)
{
	return &table[rte_jhash(f->dst_ip, 16, rte_jhash(f->src_ip, 16, id)) & (size - 1)];
}

/* The entry's value if it is this datagram's, else FO_FLOW_NONE. */
static inline uint32_t
frag_entry_find(const struct frag_entry *entry, const struct fo_match_fields *f, uint32_t id)
{
	return entry->value != FO_FLOW_NONE && entry->id == id && memcmp(entry->src, f->src_ip, 16) == 0 &&
	       memcmp(entry->dst, f->dst_ip, 16) == 0 ? entry->value : FO_FLOW_NONE;
}

static inline void
frag_entry_set(struct frag_entry *entry, const struct fo_match_fields *f, uint32_t id, uint32_t value)
{
	memcpy(entry->src, f->src_ip, 16);
	memcpy(entry->dst, f->dst_ip, 16);
	entry->id = id;
	entry->value = value;
}

/* What a port's queue gathered (its count is in fo_engine.tx_n). */
struct tx_queue {
	struct rte_mbuf *pkts[TX_BUF];
};

#define STEER_FRAG_SIZE 1024       /* power of two */

/* This engine as one of several shards (fo_engine_set_shard); workers == 1: the only one. */
struct shard {
	uint16_t index;
	uint16_t workers;
	struct rte_ring *inboxes[FO_MAX_WORKERS];   /* each shard's, multi-producer */
	struct frag_entry *frags;                   /* first fragments' owners, STEER_FRAG_SIZE; NULL with one worker */
	struct fo_steer steer;
	unsigned int (*wait)(void *ctx);            /* the relay's (index == workers): while an inbox is full */
	void *wait_ctx;
};

/*
 * What a shard stages for its next generation (fo_engine_stage) on the control thread: what the
 * worker installs when it switches, because the new conf needs more than the shard has.
 */
struct staged_scratch {
	uint32_t window_cap;                    /* 0: the shard's are large enough */
	struct rte_mbuf **window;
	uint8_t *verdicts;
	uint16_t *out_ports;
	struct rte_mbuf **pending_drops;
	uint32_t state_stride;                  /* 0: the shard's state areas are large enough */
	uint8_t *state_areas;
	/* Per definition of the staged conf: the global index of the current one of its name, whose
	 * counters it carries on at the switch, or CARRY_NONE (docs/reload.md). */
	uint16_t *carry_from;
};

#define CARRY_NONE UINT16_MAX

/* A shard: everything in it is written by its worker's lcore only (or before it runs). */
struct fo_engine {
	const struct fo_pipeline_conf *pc;      /* the current generation: new flows start in it */
	const struct definition *defs;          /* the definition space, by global index (a conf's base + its index) */
	struct def_shard *per_def;              /* this shard's, by global index (FO_MAX_DEFS) */
	/* Generations (docs/reload.md) */
	const struct fo_pipeline_conf *old[MAX_GENERATIONS];   /* older generations with live flows here */
	uint8_t n_old;
	struct fo_pipeline_conf *next;          /* staged: set up on the control thread, not run yet */
	uint8_t next_set_up;
	struct staged_scratch staged;
	struct fo_shard_conf conf;
	struct flow_index *index;               /* flow key -> flow id (fo_flow_index.c) */
	struct fo_flow *flows;                  /* indexed by flow id */
	uint32_t n_flows;
	uint32_t keepers;                       /* flows with their keeping bit set */
	uint32_t sweep_at;                      /* the next flow id the keep budget's sweep looks at */
	uint8_t *state_areas;                   /* per flow id, state_stride bytes each; NULL if no pipeline has state */
	uint32_t state_stride;
	uint32_t lru_head[FO_TIMEOUT_CLASS_COUNT];
	uint32_t lru_tail[FO_TIMEOUT_CLASS_COUNT];
	struct frag_entry frags[FRAG_CACHE_SIZE];
	uint64_t now;                           /* ns, by the engine's clock */
	uint64_t tsc_start;
	double ns_per_tsc;
	int timestamp_offset;                   /* rx timestamp dynfield, for FO_CLOCK_CAPTURE */
	uint64_t timestamp_flag;                /* ... set in ol_flags of packets that carry one */
	uint8_t built;
	uint8_t torn_down;                      /* the processors' teardown has run */
	/* The processor callback under way, for a watchdog on another thread (fo_engine_current_call). */
	uint64_t calling;                       /* (fo_callback << 32 | definition << 16 | processor) + 1; 0: none */
	uint64_t call_began;                    /* its start, TSC */
	uint64_t *call_record;                  /* also written there, for another process (fo_engine_set_call_record) */
	/* per burst */
	uint32_t touched[FO_MAX_BURST];         /* flows the burst added packets to */
	uint16_t n_touched;
	uint64_t epoch;                         /* burst counter: a flow is touched once per epoch */
	uint16_t run_defs[FO_MAX_BURST];        /* definitions with processors the burst touched a flow of */
	uint16_t n_run_defs;
	uint64_t flows_ended;                   /* flows ended so far: a slot is reused only after one */
	uint64_t ended_at_lookup;               /* ... when the burst's lookup ran (fo_flow_for_key's hint) */
	struct fo_batch *batches;               /* scratch for one processor call */
	struct rte_mbuf **pending_drops;        /* dropped in the current stage, marked when it ends */
	uint32_t n_pending_drops;
	uint8_t linear[FO_DECODE_MAX_LEN + 1];  /* the headers of a multi-segment packet, in one piece */
	struct rte_mbuf **window;               /* scratch windows, window_cap per flow */
	uint8_t *verdicts;
	uint16_t *out_ports;
	uint32_t window_cap;
	uint32_t n_holding;                     /* flows in their definitions' hold lists (fo_stream_hold.c) */
	uint16_t tx_n[RTE_MAX_ETHPORTS] __rte_cache_aligned;   /* packets in each port's queue: fo_send_flush reads one line */
	struct tx_queue tx[RTE_MAX_ETHPORTS];
	struct fo_txq txq[RTE_MAX_ETHPORTS];    /* where this shard sends on each port (fo_tx.h) */
	uint8_t tx_checksums[RTE_MAX_ETHPORTS]; /* the TX checksum offloads each port does (fo_pkt.c) */
	struct shard shard;
	struct fo_engine_stats stats;
};

/* Copies len bytes of m from offset off into out, across segments. */
static inline void
pkt_copy_out(const struct rte_mbuf *m, uint32_t off, uint32_t len, void *out)
{
	const void *p;

	/* Nothing to copy: DPDK's segment walk would look for off == pkt_len past the last segment. */
	if (len == 0)
		return;
	p = rte_pktmbuf_read(m, off, len, out);

	if (p != NULL && p != out)
		memcpy(out, p, len);
}

/* A flow's queue is linked through its packets' metadata. */
static inline struct rte_mbuf **
pkt_next(struct rte_mbuf *m)
{
	return &fo_pkt_meta(m)->next;
}

/*
 * The pipeline's passes over a burst's flows (the windows, the release) each read a flow's
 * lines, its heads and its first queued packet's metadata. With many flows in a burst these have
 * left L1 since the last pass: a pass at flow i fetches the lines and the state area (heads) of
 * flow i + 8, and the first packet's metadata of flow i + 4 (found through the lines fetched 4
 * flows before).
 */
#define PREFETCH_MIN_FLOWS 64

/* Flow id's pipeline state area (its heads first): where flow_start puts it. */
static inline uint8_t *
flow_state_area(const struct fo_engine *e, uint32_t id)
{
	return e->state_areas + (size_t)id * e->state_stride;
}

static inline void
prefetch_flows_ahead(const struct fo_engine *e, const uint32_t *flows, uint32_t i, uint32_t n)
{
	if (n <= PREFETCH_MIN_FLOWS)
		return;
	if (i + 8 < n) {
		const struct fo_flow *far = &e->flows[flows[i + 8]];

		rte_prefetch0(far);
		rte_prefetch0(&far->q_head);
		if (e->state_areas != NULL)
			rte_prefetch0(flow_state_area(e, flows[i + 8]));
	}
	if (i + 4 < n) {
		const struct fo_flow *near = &e->flows[flows[i + 4]];

		if (near->q_head != NULL)
			rte_prefetch0(fo_pkt_meta(near->q_head));
	}
}

/* The worker enters a processor's callback at TSC time began: recorded for fo_engine_current_call. */
static inline void
engine_call_enter_at(struct fo_engine *e, const struct definition *d, uint16_t p, enum fo_callback what,
		     uint64_t began)
{
	uint64_t calling = ((uint64_t)what << 32 | (uint64_t)(d - e->defs) << 16 | p) + 1;

	__atomic_store_n(&e->call_began, began, __ATOMIC_RELAXED);
	__atomic_store_n(&e->calling, calling, __ATOMIC_RELEASE);
	if (e->call_record != NULL)
		__atomic_store_n(e->call_record, calling, __ATOMIC_RELAXED);
}

/* The same, now; returns its start (TSC). */
static inline uint64_t
engine_call_enter(struct fo_engine *e, const struct definition *d, uint16_t p, enum fo_callback what)
{
	uint64_t began = rte_rdtsc();

	engine_call_enter_at(e, d, p, what, began);
	return began;
}

static inline void
engine_call_leave(struct fo_engine *e)
{
	__atomic_store_n(&e->calling, 0, __ATOMIC_RELAXED);
	if (e->call_record != NULL)
		__atomic_store_n(e->call_record, 0, __ATOMIC_RELAXED);
}

/* A TCP connection both of whose FINs were acknowledged. */
static inline int
flow_closed_by_fin(const struct fo_flow *flow)
{
	return flow->fin_acked == 3;
}

static inline struct stream_flow *
flow_streams(const struct fo_engine *e, const struct fo_flow *flow)
{
	uint32_t off = e->defs[flow->key.def].stream_offset;

	return off == 0 || flow->states == NULL ? NULL : (struct stream_flow *)(flow->states + off);
}

/*
 * The keep budget. What the engine keeps across all flows (queued packets, segments past a gap,
 * copies of rewritten data) comes out of the pool that RX refills from; the budget, sized from
 * the pool less what forwarding needs, keeps some flows from starving the others. Once the
 * engine keeps more than its budget, a flow that keeps more than its share (the budget over the
 * flows that keep anything) keeps no more: a TCP stream flow's new data is refused (its sender
 * resends it), other flows meet their hold overflow policy at the end of the burst.
 */
static inline uint32_t
flow_kept(const struct fo_engine *e, const struct fo_flow *flow)
{
	const struct stream_flow *sf = flow_streams(e, flow);
	uint32_t n = flow->q_packets;

	if (sf != NULL)
		n += sf->dir[0].ooo_n + sf->dir[1].ooo_n + sf->dir[0].sent_n + sf->dir[1].sent_n;
	return n;
}

static inline int
engine_over_budget(const struct fo_engine *e)
{
	return e->conf.keep_budget != 0 && e->stats.held + e->stats.kept_copies > e->conf.keep_budget;
}

/* What each flow that keeps anything may keep while the engine is over its budget. */
static inline uint32_t
budget_share(const struct fo_engine *e)
{
	return e->conf.keep_budget / RTE_MAX(e->keepers, 1u);
}

static inline int
flow_over_budget(const struct fo_engine *e, const struct fo_flow *flow)
{
	return unlikely(engine_over_budget(e)) && flow_kept(e, flow) > budget_share(e);
}

/* Updates the flow's keeping bit, and the count of flows that keep anything, after a change. */
static inline void
flow_note_kept(struct fo_engine *e, struct fo_flow *flow)
{
	uint8_t keeping = flow->live && flow_kept(e, flow) > 0;

	if (keeping != flow->keeping) {
		e->keepers += keeping ? 1 : -1;
		flow->keeping = keeping;
	}
}

/*
 * What each file of the stack offers those above it, bottom first (the order at the top).
 */

/* fo_send.c: a shard's sends, in bursts per port on its own TX queues, and its drops (counted). */
void fo_send_burst(struct fo_engine *e, uint16_t port);

/*
 * Inline, so that the burst path keeps it so whatever else calls it (out of line, the compiler
 * took the unmatched packets' send out of the burst loop once the engine had more callers of it,
 * generations': 20 instructions a packet more in classify_1, callgrind).
 */
static inline void
fo_send(struct fo_engine *e, struct rte_mbuf *m)
{
	uint16_t port = fo_pkt_meta(m)->out_port;

	e->tx[port].pkts[e->tx_n[port]++] = m;
	if (e->tx_n[port] == TX_BUF)
		fo_send_burst(e, port);
}

/*
 * What each port's queue gathered goes out: at the end of every burst (inline for the same
 * reason). The counts are looked at a word (4 ports) at a time: one line, not a line per port.
 */
static inline void
fo_send_flush(struct fo_engine *e)
{
	uint64_t w;
	uint16_t at, port;

	RTE_BUILD_BUG_ON(RTE_MAX_ETHPORTS % 4 != 0);
	for (at = 0; at < RTE_MAX_ETHPORTS; at += 4) {
		memcpy(&w, &e->tx_n[at], sizeof(w));
		if (likely(w == 0))
			continue;
		for (port = at; port < at + 4; port++)
			if (e->tx_n[port] > 0)
				fo_send_burst(e, port);
	}
}
void fo_drop(struct fo_engine *e, struct rte_mbuf *m);

/*
 * fo_pkt.c: packets of any number of segments (headers in the first, see fo_pkt_pullup).
 * fo_pkt_decode fills m's metadata and *d (what fo_decode found, for the caller's fields);
 * returns 0, or the decode error for a malformed packet.
 */
int fo_pkt_decode(struct fo_engine *e, struct rte_mbuf *m, uint16_t out_port, struct fo_decoded *d);

/* m's metadata from what decoding found: fo_pkt_decode's last step. */
static inline void
fo_pkt_meta_fill(struct rte_mbuf *m, const struct fo_decoded *d, uint16_t out_port)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	int l;

	meta->next = NULL;
	for (l = 0; l < FO_LEVEL_COUNT; l++)
		meta->offset[l] = d->offset[l];
	meta->end = d->end;
	meta->flags = d->flags;
	meta->ip_proto = d->ip_proto;
	meta->out_port = out_port;
	meta->verdict = FO_PASS;
	meta->dir = 0;
	meta->first_stage = 0;
	*fo_pkt_seq(m) = 0;
}

/*
 * fo_pkt_decode with the common case (one segment, fo_decode_common) inline, for the burst
 * loop: *d then stays in registers, and there is no call. The call for the rest fills a copy:
 * were d's own address passed out, the caller's d would have to live in memory, and the common
 * case would store every field of it and load them back (about 35 instructions a packet).
 */
static inline int
fo_pkt_decode_inline(struct fo_engine *e, struct rte_mbuf *m, uint16_t out_port, struct fo_decoded *d)
{
	uint32_t len = RTE_MIN((uint32_t)rte_pktmbuf_data_len(m), (uint32_t)FO_DECODE_MAX_LEN);
	struct fo_decoded other;
	int error;

	if (likely(m->nb_segs == 1) && fo_decode_common(rte_pktmbuf_mtod(m, const uint8_t *), len, d)) {
		fo_pkt_meta_fill(m, d, out_port);
		return FO_DECODE_OK;
	}
	error = fo_pkt_decode(e, m, out_port, &other);
	*d = other;
	return error;
}
/* Overwrites n bytes of m at frame offset at, across segments. */
void fo_pkt_write(struct rte_mbuf *m, uint32_t at, const uint8_t *data, uint32_t n);
/*
 * Replaces del bytes at frame offset at with ins (a packet's payload only): a change that does
 * not grow the packet takes no mbuf and cannot fail once the range is right; one that fails
 * changes nothing. Returns 0, -ERANGE, -EMSGSIZE or -ENOMEM.
 */
int fo_pkt_splice(struct rte_mempool *pool, struct rte_mbuf *m, uint32_t at, uint32_t del, const void *ins, uint32_t ins_len);
/* Moves bytes from the next segments into the first until it holds the first len. 0 or -ENOSPC. */
int fo_pkt_pullup(struct rte_mbuf *m, uint32_t len);
/* A new packet of m's first hdr bytes, then m's len bytes at off, in as many segments as they take; or NULL. */
struct rte_mbuf *fo_pkt_build(struct rte_mempool *pool, const struct rte_mbuf *m, uint32_t hdr, uint32_t off, uint32_t len);
/* Sets the IP header's length to say the packet ends at end. */
void fo_pkt_set_ip_end(struct rte_mbuf *m, uint32_t end);
void fo_fix_lengths(struct rte_mbuf *m);
/*
 * Makes an edited packet's lengths and checksums right for the port it leaves by (its out_port):
 * in software, or, where that port's device was configured with TX checksum offloads, by asking
 * the device (ol_flags, l2_len, l3_len, l4_len; the pseudo-header sum in a TCP/UDP checksum).
 */
void fo_fix_checksums(struct fo_engine *e, struct rte_mbuf *m);
/* Forgets what each port offloads: asked again of ethdev at the next fix for that port. */
void fo_tx_checksums_reset(struct fo_engine *e);
/* Whether fix_checksums can make m's transport checksum right after an edit (not in a fragment, nor behind an IPv6 routing header it cannot read). */
int fo_checksums_fixable(struct rte_mbuf *m);

/* fo_flow_table.c */
int fo_flow_table_create(struct fo_engine *e, char *err, size_t errlen);
void fo_flow_table_free(struct fo_engine *e);
int fo_flow_make_key(struct fo_flow_key *key, uint16_t def, const struct fo_match_fields *f, const struct rte_mbuf *m);
/* fo_flow_for_key's way when the burst's lookup cannot be trusted, or found nothing: hashes the key. */
struct fo_flow *fo_flow_for_key_hashed(struct fo_engine *e, const struct fo_flow_key *key, int src_lo, int32_t pos,
				       struct rte_mbuf *m, uint8_t *dir, int *over);

/*
 * Whether the packet's flow is over already: idle past its timeout (the packet starts a new
 * flow on the same 5-tuple), or closed and the packet opens a new connection (a SYN).
 */
static inline int
fo_flow_is_over(const struct fo_engine *e, const struct fo_flow *flow, const struct rte_mbuf *m,
		enum fo_flow_end_reason *reason)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta((struct rte_mbuf *)(uintptr_t)m);

	if (e->now - flow->last_seen >= e->pc->conf.timeout_ns[flow->timeout_class] && e->now > flow->last_seen) {
		*reason = flow->tcp_state == FO_TCP_CLOSED ? FO_END_FIN : FO_END_IDLE;
		return 1;
	}
	if ((flow->end_pending || flow_closed_by_fin(flow)) && meta->ip_proto == IPPROTO_TCP &&
	    meta->offset[FO_LEVEL_L4] != FO_NO_LEVEL) {
		uint8_t flags = rte_pktmbuf_mtod_offset(m, const struct rte_tcp_hdr *,
							meta->offset[FO_LEVEL_L4])->tcp_flags;

		if ((flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) == RTE_TCP_SYN_FLAG) {
			*reason = flow->end_pending ? flow->end_pending - 1 : FO_END_FIN;
			return 1;
		}
	}
	return 0;
}

/*
 * Finds or starts the flow of a packet whose key is made (src_lo: fo_flow_make_key's answer).
 * hint: where a burst-wide lookup found the key, or negative; the flow there may have ended
 * since, earlier in the burst. *dir says which way the packet goes in its flow. Returns NULL
 * when the table is full. A flow the packet shows is over (a new connection on its ports) is
 * returned as it is, with *over set to why: the caller ends it and asks again. Inline: with
 * the call, flows_1k took 26 instructions a packet more (callgrind).
 */
static inline struct fo_flow *
fo_flow_for_key(struct fo_engine *e, const struct fo_flow_key *key, int src_lo, int32_t hint,
		struct rte_mbuf *m, uint8_t *dir, int *over)
{
	enum fo_flow_end_reason reason;
	struct fo_flow *flow;

	*over = -1;
	/* The common packet: the burst's lookup found its flow, and no flow ended since (no slot was reused). */
	if (unlikely(hint < 0 || e->flows_ended != e->ended_at_lookup))
		return fo_flow_for_key_hashed(e, key, src_lo, hint, m, dir, over);
	flow = &e->flows[hint];
	if (unlikely(fo_flow_is_over(e, flow, m, &reason))) {
		*over = reason;
		return flow;
	}
	*dir = src_lo == flow->opener_is_lo ? 0 : 1;
	return flow;
}

struct fo_flow *fo_flow_for_fragment(struct fo_engine *e, const struct fo_match_fields *f, uint32_t id,
				  uint8_t *dir);
void fo_flow_remember_fragment(struct fo_engine *e, const struct fo_flow *flow, const struct fo_match_fields *f,
			    uint32_t id);
void fo_flow_account(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m, uint8_t dir);
/* Appends m to the flow's queue, with the flow's next sequence number. */
void fo_flow_enqueue(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m);
/* Its processors' flow_end, then out of the table: the caller has let go of what it held. */
void fo_flow_end(struct fo_engine *e, struct fo_flow *flow, enum fo_flow_end_reason reason);
/* Timeout class c's least recently seen flow if it has been idle past its timeout, else NULL. */
struct fo_flow *fo_flow_idle_oldest(struct fo_engine *e, int c);
int fo_flow_wants_end(const struct fo_flow *flow, enum fo_flow_end_reason *reason);

/* fo_tcp_norm.c */
int fo_stream_wants(const struct fo_engine *e, const struct fo_flow *flow, const struct rte_mbuf *m);
void fo_stream_map_acks(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m, uint8_t dir);
int fo_stream_admit(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m, uint8_t dir);
void fo_stream_drain(struct fo_engine *e, struct fo_flow *flow, uint8_t dir);
int fo_stream_depart(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m);
/* Cuts a segment after n payload bytes: returns a new packet with the rest (m keeps the n), or NULL. */
struct rte_mbuf *fo_stream_split_rest(struct fo_engine *e, struct rte_mbuf *m, uint32_t n);
/* What waited past a gap goes as it is; the kept copies are let go. */
void fo_stream_flow_end(struct fo_engine *e, struct fo_flow *flow);
/* Drops the flow's segments past gaps, then lets its oldest kept copies go, while it keeps more than share. */
void fo_stream_cut_back(struct fo_engine *e, struct fo_flow *flow, uint32_t share);

/*
 * fo_budget.c: cuts a flow back to its share (counted); returns 1 when its queue still keeps it
 * over: the caller applies its hold overflow policy. The sweep returns, one at a time, the flows
 * it finds over their share that need the same (NULL: done for this burst; looked starts at 0).
 */
int fo_budget_cut(struct fo_engine *e, struct fo_flow *flow);
struct fo_flow *fo_budget_sweep_next(struct fo_engine *e, uint32_t share, uint32_t *looked);

/*
 * fo_pipeline.c. fo_pipeline_run runs a definition's pipeline over the given flows of it; the flows
 * whose windows stayed shared (every packet passed every processor) release their queues there.
 */
void fo_pipeline_run(struct fo_engine *e, uint16_t def, const uint32_t *flows, uint16_t n);
void fo_pipeline_release(struct fo_engine *e, struct fo_flow *flow, uint32_t upto);
uint32_t fo_pipeline_released(const struct fo_engine *e, struct fo_flow *flow);
/* fo_pipeline_release up to fo_pipeline_released: what the last stage let go of a flow leaves. */
void fo_pipeline_release_ready(struct fo_engine *e, struct fo_flow *flow);
/* The flow's hold overflow policy takes everything it holds (drop, or release unprocessed). */
void fo_pipeline_overflow(struct fo_engine *e, struct fo_flow *flow);
void fo_pipeline_insert_after(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *at, struct rte_mbuf *m);

/* fo_stream_hold.c: held stream bytes let go once the flow brings no new bytes for stream_hold_ms */
void fo_stream_hold_track(struct fo_engine *e, struct fo_flow *flow);
void fo_stream_hold_forget(struct fo_engine *e, struct fo_flow *flow);
void fo_stream_release_idle(struct fo_engine *e);

/* fo_generation.c: a generation's processor instances, staging, retirement */
/* Its instances' parameters (copied from the conf) and empty hold lists, in its range of per_def. */
void fo_generation_init_instances(struct fo_engine *e, const struct fo_pipeline_conf *pc);
/* Each instance's context and setup; stops at the first failure, saying why in err (those set up are marked for teardown). */
int fo_generation_set_up(struct fo_engine *e, const struct fo_pipeline_conf *pc, char *err, size_t errlen);
/* Each instance set up gets its teardown (once). */
void fo_generation_teardown(struct fo_engine *e, const struct fo_pipeline_conf *pc);
/* Torn down (those set up), freed, their range zeroed. */
void fo_generation_drop(struct fo_engine *e, const struct fo_pipeline_conf *pc);
/* Old generations without a live flow here dropped, and their confs let go. */
void fo_generation_retire(struct fo_engine *e);
/* The staged generation's definitions counted on from the running ones of the same name. */
void fo_generation_carry_counters(struct fo_engine *e, const struct fo_pipeline_conf *next);
/* The staged generation's scratch (larger state, windows) swapped in; what it replaces freed. */
void fo_generation_install_scratch(struct fo_engine *e);

#endif /* FO_ENGINE_PRIV_H */
