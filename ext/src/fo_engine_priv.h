/* SPDX-License-Identifier: BSD-3-Clause */
/* What the engine's source files share; not part of the API. */
#ifndef FO_ENGINE_PRIV_H
#define FO_ENGINE_PRIV_H

#include <rte_ethdev.h>
#include <rte_hash.h>

#include "flowos/fo_classify.h"
#include "flowos/fo_engine.h"

#define TX_BUF 64
#define FRAG_CACHE_SIZE 4096       /* power of two */
#define EXPIRE_PER_BURST 32        /* flows ended by idle timeout per class per burst, at most */

#define RELAXED_ADD(counter, n) __atomic_store_n(&(counter), (counter) + (n), __ATOMIC_RELAXED)

struct proc_instance {
	const struct fo_processor_ops *ops;
	void *ctx;
	uint32_t state_offset;      /* in the flow's state area */
	uint16_t stage;
};

struct definition {
	struct fo_def_conf conf;
	uint16_t n_procs;
	uint16_t n_stages;
	uint16_t stage_first[FO_MAX_STAGES + 1];   /* processors of stage s: [stage_first[s], stage_first[s+1]) */
	struct proc_instance procs[FO_MAX_PROCS];
	uint32_t state_size;        /* heads, then each processor's state */
	struct fo_def_stats stats;
};

struct frag_entry {
	uint8_t src[16], dst[16];
	uint32_t id;
	uint32_t flow;              /* FO_FLOW_NONE: empty */
};

struct tx_queue {
	uint16_t n;
	struct rte_mbuf *pkts[TX_BUF];
};

struct fo_engine {
	struct fo_engine_conf conf;
	struct fo_classifier *classifier;
	struct rte_hash *table;
	struct fo_flow *flows;                  /* indexed by the table's key position */
	uint32_t n_flows;
	struct rte_mempool *states;             /* per-flow pipeline state areas; NULL if no pipeline has state */
	uint32_t lru_head[FO_TIMEOUT_CLASS_COUNT];
	uint32_t lru_tail[FO_TIMEOUT_CLASS_COUNT];
	struct frag_entry frags[FRAG_CACHE_SIZE];
	uint64_t now;                           /* ns, by the engine's clock */
	uint64_t tsc_start;
	double ns_per_tsc;
	int timestamp_offset;                   /* rx timestamp dynfield, for FO_CLOCK_CAPTURE */
	uint64_t timestamp_flag;                /* ... set in ol_flags of packets that carry one */
	uint16_t n_defs;
	struct definition *defs;                /* FO_MAX_DEFS */
	uint8_t built;
	uint8_t torn_down;                      /* the processors' teardown has run */
	/* per burst */
	uint32_t touched[FO_MAX_BURST];         /* flows the burst added packets to */
	uint16_t n_touched;
	uint64_t epoch;                         /* burst counter: a flow is touched once per epoch */
	struct fo_batch *batches;               /* scratch for one processor call */
	struct rte_mbuf **pending_drops;        /* dropped in the current stage, marked when it ends */
	uint32_t n_pending_drops;
	uint8_t linear[FO_DECODE_MAX_LEN + 1];  /* the headers of a multi-segment packet, in one piece */
	struct rte_mbuf **window;               /* scratch windows, window_cap per flow */
	uint8_t *verdicts;
	uint16_t *out_ports;
	uint32_t window_cap;
	struct tx_queue tx[RTE_MAX_ETHPORTS];
	struct fo_engine_stats stats;
};

/* A flow's queue is linked through its packets' metadata. */
static inline struct rte_mbuf **
pkt_next(struct rte_mbuf *m)
{
	return &fo_pkt_meta(m)->next;
}

static inline uint32_t *
flow_heads(struct fo_flow *f)
{
	return f->heads;
}

/* A TCP connection both of whose FINs were acknowledged. */
static inline int
flow_closed_by_fin(const struct fo_flow *flow)
{
	return flow->fin_acked == 3;
}

/* fo_flow_table.c */
int flow_table_create(struct fo_engine *e, char *err, size_t errlen);
void flow_table_free(struct fo_engine *e);
int flow_make_key(struct fo_flow_key *key, uint16_t def, const struct fo_match_fields *f, const struct rte_mbuf *m);
struct fo_flow *flow_for_key(struct fo_engine *e, const struct fo_flow_key *key, int src_lo, int32_t hint,
			     struct rte_mbuf *m, uint8_t *dir);
struct fo_flow *flow_for_fragment(struct fo_engine *e, const struct fo_match_fields *f, uint32_t id,
				  uint8_t *dir);
void flow_remember_fragment(struct fo_engine *e, const struct fo_flow *flow, const struct fo_match_fields *f,
			    uint32_t id);
void flow_account(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m, uint8_t dir);
void flow_end(struct fo_engine *e, struct fo_flow *flow, enum fo_flow_end_reason reason);
void flow_expire(struct fo_engine *e);
int flow_wants_end(const struct fo_flow *flow, enum fo_flow_end_reason *reason);

/* fo_pipeline.c */
void pipeline_run(struct fo_engine *e, uint16_t def, const uint32_t *flows, uint16_t n);
void pipeline_release(struct fo_engine *e, struct fo_flow *flow, uint32_t upto);
uint32_t pipeline_released(const struct fo_engine *e, struct fo_flow *flow);
void pipeline_enqueue(struct fo_flow *flow, struct rte_mbuf *m);

/* fo_engine.c */
int engine_decode(struct fo_engine *e, struct rte_mbuf *m, uint16_t out_port, uint32_t *frag_id);
void engine_finish_flow(struct fo_engine *e, struct fo_flow *flow, enum fo_flow_end_reason reason);
void engine_send(struct fo_engine *e, struct rte_mbuf *m);
void engine_drop(struct fo_engine *e, struct rte_mbuf *m);
void engine_tx_flush(struct fo_engine *e);

#endif /* FO_ENGINE_PRIV_H */
