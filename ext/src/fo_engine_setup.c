/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A shard's set-up (create, bind the tiers' instances, build, its queues and rings), what other
 * threads read of it (counters, the call under way, reports), and its teardown and free.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_malloc.h>

#include "flowos/fo_stream.h"
#include "fo_engine_priv.h"

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
	fo_generation_init_instances(e, pc);
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
	ret = fo_generation_set_up(e, pc, err, errlen);
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
		fo_generation_teardown(e, e->old[g]);
	fo_generation_teardown(e, e->pc);
	if (e->next != NULL)
		fo_generation_teardown(e, e->next);
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
		fo_generation_drop(e, e->old[g]);
		fo_pipeline_conf_free((struct fo_pipeline_conf *)(uintptr_t)e->old[g]);
	}
	fo_generation_drop(e, e->pc);
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
