/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_BENCHENGINE_H
#define FO_BENCHENGINE_H

/*
 * The engines the flow benchmarks time, built through the C API as flowos-run builds them, and
 * what the benchmarks print and select alike:
 * shared by fo_flowbench (one core) and fo_scalebench (one shard per worker, all made from one
 * conf), so that both time the same pipeline. No flow ends by idle time during a run; the keep
 * budget is half the pool, as flowos-run always has one (its checks are timed).
 */
#include <stddef.h>
#include <stdint.h>

#include <rte_mempool.h>

#include <flowos/fo_engine.h>

enum fo_bench_engine_kind {
	FO_BENCH_UNMATCHED,     /* `defs` definitions that match none of fo_gen's traffic */
	FO_BENCH_FLOWS,         /* one catch-all definition, no processors */
	FO_BENCH_PIPELINE,      /* one catch-all definition, [counter] then [acl] (rules the traffic misses) */
};

/* Returns a built conf of that kind, or NULL with the reason in err. */
struct fo_pipeline_conf *fo_bench_pipeline_create(enum fo_bench_engine_kind kind, uint32_t defs,
						  struct rte_mempool *pool, char *err, size_t errlen);
/* The same as prev's next generation (docs/reload.md): a shard of prev can switch to it. */
struct fo_pipeline_conf *fo_bench_pipeline_create_next(const struct fo_pipeline_conf *prev,
						       enum fo_bench_engine_kind kind, uint32_t defs,
						       struct rte_mempool *pool, char *err, size_t errlen);

/* Returns a built shard of pc (pool: pc's) of flow_capacity flows, or NULL with the reason in err. */
struct fo_engine *fo_bench_engine_create(struct fo_pipeline_conf *pc, const struct rte_mempool *pool,
					 uint32_t flow_capacity, int socket_id, char *err, size_t errlen);

/* Bytes allocated from DPDK's heap, every socket: what an engine takes, and whether it gave it back. */
size_t fo_bench_heap_used(void);

/* Prints the engine's counters as the JSON member "engine" (what the anomaly checks read). */
void fo_bench_print_stats(const struct fo_engine_stats *s);

/* Whether `name` is one of only's comma-separated names (only NULL: every one). */
int fo_bench_selected(const char *only, const char *name);

#endif /* FO_BENCHENGINE_H */
