/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_PROCESSOR_H
#define FO_PROCESSOR_H

/*
 * The processor ABI: what a processing module (C built-in, Cython, or the Python tier)
 * implements to sit in a flow's pipeline.
 *
 * The engine calls `process` once per burst per processor, with one fo_batch per flow that has
 * packets ready for it: its window, the packets between what this processor has released (its
 * head) and what the previous stage has released (its tail), in flow order. The processor sets
 * a verdict per packet (preset to FO_PASS):
 *   FO_PASS      release it to the next stage;
 *   FO_DROP      free it (it reaches no later stage);
 *   FO_HOLD      keep it, and every later packet of the window, for the next call: the head
 *                stops here (bounded by the definition's hold limits);
 *   FO_MODIFIED  release it; its bytes changed, so IP/TCP/UDP checksums are recomputed before TX;
 *   FO_REDIRECT  release it to be sent out of port out_ports[i] instead of the route's port.
 * fo_batch_inject() adds a new packet to the flow next to a window packet; later stages see it.
 * Packets with no bytes at the processor's level skip it, keeping their place in the flow.
 *
 * Processors that share a stage must all be read-only; a writer stands alone in its stage.
 */
#include <stddef.h>
#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "fo_decode.h"

struct fo_flow;
struct fo_engine;
struct fo_stream_ops;

enum fo_verdict {
	FO_PASS = 0,
	FO_DROP,
	FO_HOLD,
	FO_MODIFIED,
	FO_REDIRECT,
	FO_VERDICT_COUNT
};

/*
 * The batches of one process() call lie back to back: batch b + 1's pkts, verdicts and out_ports
 * start where batch b's end, so a processor may treat them as flat arrays of all the call's
 * packets (the Python tier hands them to Python that way, without copying).
 */
struct fo_batch {
	struct fo_flow *flow;
	void *state;                 /* this (flow, processor) pair's private state, state_size bytes */
	struct rte_mbuf **pkts;      /* the window, in flow order */
	uint8_t *verdicts;           /* enum fo_verdict, one per packet */
	uint16_t *out_ports;         /* with FO_REDIRECT */
	uint16_t n;
	uint16_t stage;              /* for the engine */
	struct fo_engine *engine;    /* for the engine */
	/*
	 * fo_pkt_meta_offset and fo_pkt_seq_offset, for code that does not link the fast path
	 * (a user's Cython processor): it finds a packet's metadata through the batch.
	 */
	int meta_offset;
	int seq_offset;
	/* The stream view (fo_stream.h): where this window starts in each direction's stream. */
	uint64_t stream_base[2];
	const struct fo_stream_ops *stream_ops;
	uint8_t normalized;          /* TCP data is normalised: length-changing edits are allowed */
	/* For the engine: the packet a stream release split (UINT16_MAX: none), the bytes it let go. */
	uint16_t split_at;
	uint32_t split_bytes;
};

enum fo_flow_end_reason {
	FO_END_FIN = 0,     /* TCP closed by FIN in both directions */
	FO_END_RST,         /* TCP reset */
	FO_END_IDLE,        /* idle timeout */
	FO_END_SHUTDOWN,    /* the run ended */
	FO_END_RELOAD,      /* a reload moved its connection to the new configuration (--migrate) */
	FO_END_REASON_COUNT
};

struct fo_processor_ops {
	const char *name;
	enum fo_level level;         /* packets with no bytes at this level skip the processor */
	uint8_t readonly;            /* never changes packet bytes (may still drop or hold) */
	uint32_t ctx_size;           /* per instance, zeroed before setup */
	uint32_t state_size;         /* per (flow, processor), zeroed before flow_start */
	/* Validates params (processor-specific; may be NULL) and prepares ctx. Returns 0 or -errno, with a reason in err. */
	int (*setup)(void *ctx, const void *params, size_t params_len, char *err, size_t errlen);
	void (*flow_start)(void *ctx, const struct fo_flow *flow, void *state, const struct rte_mbuf *first);
	void (*process)(void *ctx, struct fo_batch *batches, uint16_t n);    /* required */
	void (*flow_end)(void *ctx, const struct fo_flow *flow, void *state, enum fo_flow_end_reason reason);
	/*
	 * Answers an operator's message (flowos-ctl message), on the worker's lcore between bursts,
	 * never beside process(). Returns the reply's length (which may exceed len: then it was cut),
	 * or -errno with the reason in reply.
	 */
	int (*message)(void *ctx, const char *msg, char *reply, size_t len);
	/* Writes what the processor has to report (JSON). Returns the length needed, or -errno. */
	int (*report)(void *ctx, char *buf, size_t len);
	void (*teardown)(void *ctx);
};

/* The built-ins, by name. Returns NULL if there is none of that name. */
const struct fo_processor_ops *fo_processor_find(const char *name);

/*
 * Adds m to b's flow right before (after == 0) or after (after != 0) window packet i. The
 * processor that injects does not see m; later stages do. The engine owns m from now on, on
 * success and on failure. Returns 0, -EINVAL (no packet i, or m shorter than an Ethernet
 * header) or -ENOSPC when the flow's hold limit is reached (m freed in both).
 */
int fo_batch_inject(struct fo_batch *b, uint16_t i, struct rte_mbuf *m, int after);

/* The pool to allocate injected packets from. */
struct rte_mempool *fo_batch_pool(const struct fo_batch *b);

/*
 * What the engine records for every packet, in registered dynamic mbuf fields: where each
 * level starts (from fo_decode), and the packet's place in its flow. The dynamic field space
 * is small (net_pcap already takes 8 of its 36 bytes for timestamps), so this is packed.
 */
struct fo_pkt_meta {
	struct rte_mbuf *next;            /* the flow's queue (the engine's) */
	uint16_t offset[FO_LEVEL_COUNT];  /* FO_NO_LEVEL where absent */
	uint16_t end;                     /* end of the IP packet */
	uint16_t flags;                   /* FO_PKT_* */
	uint8_t ip_proto;
	uint8_t out_port;                 /* where it leaves (FlowOS handles ports 0..254) */
	uint8_t verdict : 4;              /* enum fo_verdict so far (the engine's) */
	uint8_t dir : 1;                  /* 0: from the side that opened the flow; 1: the other */
	uint8_t first_stage : 3;          /* hidden from stages before this one (injected packets) */
};

extern int fo_pkt_meta_offset;
extern int fo_pkt_seq_offset;

/*
 * Registers (or finds, if registered already) the dynamic fields above: the engine does, as it is
 * set up; code that writes packet metadata with no engine yet (a benchmark's generator) calls it
 * first. Returns 0 or -errno (ENOENT: the drivers left too little room in the mbuf).
 */
int fo_pkt_meta_register(void);

static inline struct fo_pkt_meta *
fo_pkt_meta(struct rte_mbuf *m)
{
	return RTE_MBUF_DYNFIELD(m, fo_pkt_meta_offset, struct fo_pkt_meta *);
}

/* The packet's per-flow sequence number, in arrival order. */
static inline uint32_t *
fo_pkt_seq(struct rte_mbuf *m)
{
	return RTE_MBUF_DYNFIELD(m, fo_pkt_seq_offset, uint32_t *);
}

/* The packet's first byte (headers are in its first segment). */
static inline uint8_t *
fo_pkt_data(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, uint8_t *);
}

/* Bytes of m at a level: from the level's start to the end of the IP packet; 0 if it has none. */
static inline uint32_t
fo_pkt_level_len(struct rte_mbuf *m, enum fo_level level)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint16_t off = meta->offset[level];

	/* Levels from l3 up are IP's: an ARP frame has bytes after its Ethernet header, not at l3. */
	if (level >= FO_LEVEL_L3 && !(meta->flags & (FO_PKT_IPV4 | FO_PKT_IPV6)))
		return 0;
	return off == FO_NO_LEVEL || off >= meta->end ? 0 : (uint32_t)(meta->end - off);
}

#endif /* FO_PROCESSOR_H */
