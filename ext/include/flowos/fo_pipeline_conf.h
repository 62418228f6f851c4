/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_PIPELINE_CONF_H
#define FO_PIPELINE_CONF_H

/*
 * The flow engine's configuration, built once and read-only from fo_pipeline_conf_build on:
 * the engine-wide policies and timeouts, the flow definitions and the classifier that picks
 * one, and each definition's pipeline (its processors' ops and configured parameters). Every
 * worker's shard of the engine (fo_engine.h) is created from one conf and reads it; nothing in
 * it is written once it is built. It is freed when its creator and every shard made from it
 * have let it go (fo_pipeline_conf_free, fo_engine_free), in any order.
 */
#include <stddef.h>
#include <stdint.h>

#include <rte_mempool.h>

#include "fo_flow.h"
#include "fo_match.h"
#include "fo_processor.h"

#define FO_MAX_DEFS 1024
#define FO_MAX_PROCS 16     /* per definition */
#define FO_MAX_STAGES 7      /* fo_pkt_meta.first_stage (3 bits) counts up to one past the last */
#define FO_NAME_LEN 48
#define FO_STREAM_HOLD_MS_DEFAULT 500   /* fo_def_conf.stream_hold_ms when 0 */

enum fo_unmatched_policy { FO_UNMATCHED_PASS = 0, FO_UNMATCHED_DROP };
enum fo_malformed_policy { FO_MALFORMED_PASS = 0, FO_MALFORMED_DROP };
enum fo_table_full_policy { FO_TABLE_FULL_BYPASS = 0, FO_TABLE_FULL_DROP };
enum fo_hold_policy { FO_HOLD_OVERFLOW_DROP = 0, FO_HOLD_OVERFLOW_RELEASE };
enum fo_clock { FO_CLOCK_TSC = 0, FO_CLOCK_CAPTURE };

/* What every shard does alike. */
struct fo_engine_conf {
	uint8_t unmatched;                              /* enum fo_unmatched_policy */
	uint8_t malformed;                              /* enum fo_malformed_policy */
	uint8_t table_full;                             /* enum fo_table_full_policy */
	uint8_t clock;                                  /* enum fo_clock */
	uint64_t timeout_ns[FO_TIMEOUT_CLASS_COUNT];    /* idle time before a flow ends */
	struct rte_mempool *pool;                       /* for injected packets */
	int socket_id;                                  /* of the conf (each shard has its own) */
};

struct fo_def_conf {
	char name[FO_NAME_LEN];
	struct fo_match match;
	uint32_t hold_packets;    /* per flow: packets held (not yet released by the last stage) */
	uint32_t hold_bytes;
	uint8_t hold_overflow;    /* enum fo_hold_policy */
	uint8_t streams;          /* payload streams: per-processor stream offsets, TCP normalised */
	uint16_t reorder_packets; /* per TCP direction: segments held until a gap fills */
	uint32_t stream_hold_ms;  /* held stream bytes go on once the flow brings no new bytes for this long (ms); 0: the default */
};

struct fo_pipeline_conf;

/* Returns a conf with no definitions, or NULL with rte_errno set. */
struct fo_pipeline_conf *fo_pipeline_conf_create(const struct fo_engine_conf *conf);

/*
 * A conf for a running engine's next generation (docs/reload.md): like fo_pipeline_conf_create,
 * but sharing prev's (built) definition space, so that a shard made from prev can switch to it
 * (fo_engine_stage, fo_engine_switch). Its build takes a free range of the space: -ENOSPC while
 * the generations still running use too much of it.
 */
struct fo_pipeline_conf *fo_pipeline_conf_create_next(const struct fo_pipeline_conf *prev,
						      const struct fo_engine_conf *conf);

/* Adds a definition after the others (lower priority). Returns its index or -errno. */
int fo_pipeline_conf_add_definition(struct fo_pipeline_conf *pc, const struct fo_def_conf *def);

/*
 * Appends a processor to stage `stage` of a definition's pipeline (stages are added in order,
 * from 0). Its ops are copied, and its parameters (params_len bytes, which each shard's
 * instance is set up with, in fo_engine_build). Returns the processor's index in the
 * definition, or -errno with the reason in err (a writer sharing a stage is -EINVAL).
 */
int fo_pipeline_conf_add_processor(struct fo_pipeline_conf *pc, uint16_t def, uint16_t stage,
				   const struct fo_processor_ops *ops, const void *params, size_t params_len,
				   char *err, size_t errlen);

/* Builds the classifier and lays out the flows' state: the conf is read-only from now on. 0 or -errno, the reason in err. */
int fo_pipeline_conf_build(struct fo_pipeline_conf *pc, char *err, size_t errlen);

/* Where a built conf's definitions are in its family's space (0 for the first conf): a flow's key.def less it is the conf's index. */
uint16_t fo_pipeline_conf_base(const struct fo_pipeline_conf *pc);

/* Its creator and the shards made from it that still use it (what frees it: none left). */
uint32_t fo_pipeline_conf_users(const struct fo_pipeline_conf *pc);

/* The creator lets it go: freed now, or by the last shard's fo_engine_free. */
void fo_pipeline_conf_free(struct fo_pipeline_conf *pc);

#endif /* FO_PIPELINE_CONF_H */
