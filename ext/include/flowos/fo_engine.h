/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_ENGINE_H
#define FO_ENGINE_H

/*
 * The flow engine: the worker's processing hook. Per burst it decodes each packet, classifies
 * it to a flow definition, finds (or creates) its per-connection flow, runs the definition's
 * pipeline over every flow the burst touched, and sends what the last stage released, in
 * per-flow order. It sends packets itself (they may leave by another port than the route's),
 * so the hook always returns 0.
 */
#include <stdint.h>

#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_spinlock.h>

#include "fo_flow.h"
#include "fo_pipeline_conf.h"
#include "fo_processor.h"
#include "fo_worker.h"

struct fo_engine_stats {
	uint64_t packets;                                 /* seen by the engine */
	uint64_t malformed[FO_DECODE_ERROR_COUNT];        /* by reason ([0] unused) */
	uint64_t malformed_dropped;
	uint64_t unmatched;
	uint64_t unmatched_dropped;
	uint64_t table_full;                              /* new flows that found the table full */
	uint64_t table_full_dropped;                      /* ... and were dropped (else bypassed) */
	uint64_t fragments_tracked;                       /* non-first fragments put in their flow */
	uint64_t fragments_orphaned;                      /* ... whose first fragment was not seen */
	uint64_t flows_created;
	uint64_t flows_ended[FO_END_REASON_COUNT];
	uint64_t flows_active;
	uint64_t flows_peak;
	uint64_t verdicts[FO_VERDICT_COUNT];              /* as processors gave them */
	uint64_t bad_verdicts;                            /* out of range: treated as FO_DROP */
	uint64_t bad_redirects;                           /* to no valid port: treated as FO_DROP */
	uint64_t hold_overflows;                          /* times a flow went over its hold limit */
	uint64_t hold_overflow_packets;                   /* packets dropped or force-released then */
	uint64_t injected;                /* packets added to flows: by processors, and cut off held ones */
	uint64_t inject_failed;
	uint64_t checksums_fixed;
	uint64_t checksums_offloaded;                     /* ... of which the port's device computes some */
	uint64_t tx_packets;
	uint64_t tx_unsent;                               /* refused by a TX queue: freed */
	uint64_t dropped;                                 /* freed by verdict or policy */
	/* TCP normalisation (definitions with streams) */
	uint64_t stream_reordered;        /* segments past a gap, held until it filled */
	uint64_t stream_reorder_overflow; /* ... dropped: the direction held its limit (the sender resends) */
	uint64_t stream_duplicates;       /* data already received, not yet sent on: dropped (it leaves once) */
	uint64_t stream_overlap_bytes;    /* bytes already received, trimmed off a segment */
	uint64_t stream_retransmits;      /* data already sent on, sent again as it first left */
	uint64_t stream_gaps_skipped;     /* gaps the receiver acknowledged before their data came by */
	uint64_t stream_rewritten;        /* packets whose sequence or acknowledgement numbers were rewritten */
	uint64_t stream_split;            /* packets split to stay within the MSS */
	uint64_t stream_split_failed;     /* ... that left whole or in part past it: no mbuf to split into */
	uint64_t stream_release_split;    /* held segments cut where a processor's release ended, the front let go */
	uint64_t stream_release_split_failed;  /* ... held whole instead: no mbuf to cut into */
	uint64_t stream_copies_evicted;   /* copies of unacknowledged data let go for room */
	/* Accounting: packets + created == tx_packets + tx_unsent + dropped + replaced + held. */
	uint64_t created;                 /* packets the engine made: injected, release and MSS split parts, re-sent copies */
	uint64_t replaced;                /* packets that left as others: split at the MSS, answered by re-sent copies */
	uint64_t held;                    /* now: packets in flows' queues and past gaps (a gauge) */
	uint64_t stream_split_parts;      /* packets made by splitting at the MSS */
	uint64_t stream_copies_resent;    /* kept copies sent again to answer a retransmission */
	/* The keep budget (fo_shard_conf.keep_budget) */
	uint64_t kept_copies;             /* now: copies of rewritten data kept until acknowledged (a gauge) */
	uint64_t keep_peak;               /* the most held + kept_copies at the end of a burst */
	uint64_t budget_overflows;        /* flows over their share cut back by their hold overflow policy */
	uint64_t budget_segments_dropped; /* TCP data segments refused from a stream flow over its share (resent) */
	uint64_t stream_holds_idle;       /* flows whose held stream bytes were let go: no new bytes for stream_hold_ms */
	uint64_t stream_edits_refused;    /* stream edits refused, nothing changed: see fo_stream_splice */
	/* Shards (several workers): packets + handed_off is what this shard's worker received, plus its inbox */
	uint64_t handed_off;              /* packets whose flow another shard owns, put in its inbox (not in packets) */
	uint64_t handoff_full;            /* times its inbox was full: this shard waited, draining its own */
	/* Generations (docs/reload.md) */
	uint64_t generations;             /* configurations this shard switched to after its first */
	uint64_t generations_retired;     /* older ones torn down here: their last flow ended */
	uint64_t flows_migrated;          /* flows ended by a switch with migrate (FO_END_RELOAD) */
};

struct fo_def_stats {
	uint64_t packets;
	uint64_t bytes;
	uint64_t flows_created;
	uint64_t flows_active;
};

/* One processor's calls, whatever its tier (C, Cython, Python): what the dashboard shows. */
struct fo_proc_stats {
	uint64_t calls;      /* process() calls */
	uint64_t packets;    /* packets they were given */
	uint64_t busy_ns;    /* time inside process(), all calls together */
};

struct fo_engine;

/* What one shard has of its own. */
struct fo_shard_conf {
	uint32_t flow_capacity;   /* concurrent flows */
	uint32_t keep_budget;     /* packets kept across all flows (held, out of order, copies); 0: no limit (docs/flows.md) */
	int socket_id;            /* of the worker's lcore */
};

/*
 * Returns a shard of the engine pc describes (pc built), or NULL with rte_errno set. It reads pc
 * from now on and keeps it from being freed until fo_engine_free. Its processors are set up by
 * fo_engine_build, each with the parameters it was given in pc unless fo_engine_bind_processor
 * gave this shard's instance its own.
 */
struct fo_engine *fo_engine_create(struct fo_pipeline_conf *pc, const struct fo_shard_conf *sc);

/*
 * This shard's instance of processor proc of definition def gets its own parameters (a Python
 * or Cython processor: an object of the shard's own). ops must be that processor's in pc but for
 * their name: the same callbacks, level and sizes. params must last until fo_engine_build.
 * Returns 0, -EINVAL (no such processor, other ops) or -EBUSY (built).
 */
int fo_engine_bind_processor(struct fo_engine *e, uint16_t def, uint16_t proc, const struct fo_processor_ops *ops,
			     const void *params, size_t params_len);

/* Builds the flow table, the scratch, and sets up each processor's instance. 0 or -errno, the reason in err. */
int fo_engine_build(struct fo_engine *e, char *err, size_t errlen);

/* The conf the shard was made from. */
const struct fo_pipeline_conf *fo_engine_pipeline_conf(const struct fo_engine *e);

/* The processing hook (fo_burst_hook_t) of a built engine. */
uint16_t fo_engine_burst(void *engine, const struct fo_route *route, struct rte_mbuf **pkts, uint16_t n);

/*
 * Makes the engine shard `index` of `workers` (before it runs; default: the only one). A packet
 * whose flow another shard owns (fo_steer.h, with the key pattern steer_pattern) goes to that
 * shard's inbox, inboxes[owner], a multi-producer ring its worker drains into fo_engine_inbox.
 * Returns 0, -EINVAL or -ENOMEM.
 */
int fo_engine_set_shard(struct fo_engine *e, uint16_t index, uint16_t workers, struct rte_ring *const *inboxes,
			uint16_t steer_pattern);

/* Sends on TX queue `queue` of port, under lock when other shards share it (default: queue 0, alone). */
int fo_engine_set_txq(struct fo_engine *e, uint16_t port, uint16_t queue, rte_spinlock_t *lock);

/*
 * Worker processes (docs/architecture.md, "Worker processes"). The relay's engine is shard
 * `workers` of `workers` (fo_engine_set_shard with index == workers): it owns no flow and has no
 * inbox, and hands every packet it decodes to its owner; while it waits for room in an inbox it
 * calls wait(ctx) (the relay's outbox step, so that a worker waiting on its outbox goes on) and
 * pauses when that moved nothing. A worker process's engine sends what goes out on port into
 * that port's outbox ring instead (fo_tx.h). Both return 0 or -EINVAL.
 */
int fo_engine_set_handoff_wait(struct fo_engine *e, unsigned int (*wait)(void *ctx), void *ctx);
int fo_engine_set_tx_ring(struct fo_engine *e, uint16_t port, struct rte_ring *ring);

/* The inbox hook (fo_inbox_hook_t): packets other shards handed to this one, to process as received. */
void fo_engine_inbox(void *engine, struct rte_mbuf **pkts, uint16_t n);

/*
 * Changing a running shard's configuration (docs/reload.md). On the control thread, while the
 * worker runs: fo_engine_stage(e, next) (next made by fo_pipeline_conf_create_next from the
 * shard's conf family, built), fo_engine_bind_processor for next's processors that need their
 * own parameters, then fo_engine_stage_setup (the scratch the new conf needs, and next's
 * processor instances set up: the reason in err on failure). fo_engine_unstage undoes any of
 * these, and nothing has changed. On the worker, between two bursts (fo_control_switch does it
 * there): fo_engine_switch makes the staged conf the current one: new flows start in it; the
 * live flows keep their generation's pipeline until they end, or, with migrate, end now
 * (FO_END_RELOAD, what they held sent on in order). A generation whose last flow ended on this
 * shard is torn down here.
 * fo_engine_stage returns 0, -EINVAL (not built, or next not of the family), -EBUSY (one is
 * staged), or -ENOSPC (the shard runs its most generations: older ones still have flows).
 */
int fo_engine_stage(struct fo_engine *e, struct fo_pipeline_conf *next);
int fo_engine_stage_setup(struct fo_engine *e, char *err, size_t errlen);
void fo_engine_unstage(struct fo_engine *e);
int fo_engine_switch(struct fo_engine *e, int migrate);
/* The generations the shard runs: the current one and the older ones that still have flows. */
uint16_t fo_engine_generations(const struct fo_engine *e);

/* Ends every flow (FO_END_SHUTDOWN), sending what they still held. Call once the worker has stopped. */
void fo_engine_shutdown(struct fo_engine *e);

void fo_engine_read_stats(const struct fo_engine *e, struct fo_engine_stats *out);
int fo_engine_read_def_stats(const struct fo_engine *e, uint16_t def, struct fo_def_stats *out);
uint16_t fo_engine_def_count(const struct fo_engine *e);
/* A processor's counters; safe while the worker runs. Returns 0, or -EINVAL for no such processor. */
int fo_engine_read_proc_stats(const struct fo_engine *e, uint16_t def, uint16_t proc, struct fo_proc_stats *out);

/* A processor's callbacks that the engine records for a watchdog (fo_engine_current_call). */
enum fo_callback {
	FO_CALL_PROCESS,
	FO_CALL_FLOW_START,
	FO_CALL_FLOW_END,
	FO_CALL_TEARDOWN,
	FO_CALL_COUNT
};

struct fo_call {
	uint16_t def;              /* in the definition space: its conf's index plus the conf's base (fo_pipeline_conf_base) */
	uint16_t proc;
	enum fo_callback what;
	uint64_t began;            /* TSC: tells two calls apart */
	uint64_t ns;               /* how long it has run so far */
};

/*
 * The processor callback the worker is in now: 1, or 0 when it is in none. Safe from another
 * thread while the worker runs (what a watchdog needs).
 */
int fo_engine_current_call(const struct fo_engine *e, struct fo_call *out);

/*
 * Also writes the callback under way to *record (NULL: nowhere), as (fo_callback << 32 |
 * definition << 16 | processor) + 1, or 0 when in none: e.g. memory shared with a supervising
 * process, which can then name the processor after this process crashed in it.
 */
void fo_engine_set_call_record(struct fo_engine *e, uint64_t *record);

/* A processor's report (see fo_processor_ops.report). Returns its length, or -errno. */
int fo_engine_processor_report(struct fo_engine *e, uint16_t def, uint16_t proc, char *buf, size_t len);

/* Calls every processor's teardown, once (fo_engine_free does it if nobody did before). */
void fo_engine_teardown(struct fo_engine *e);

/* Tears the processors down if that was not done yet, frees the shard, and lets its conf go. */
void fo_engine_free(struct fo_engine *e);

#endif /* FO_ENGINE_H */
