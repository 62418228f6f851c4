/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A shard's generations of the pipeline configuration: each one's processor instances (their
 * parameters, set up, torn down, freed), the next one staged beside the running one with the
 * scratch it needs, counters carried over, and old ones retired with their last flow. The
 * switch itself, which may end flows, is fo_engine.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_malloc.h>

#include "fo_engine_priv.h"

/* A generation's range of this shard's instances: its processors' parameters, empty hold lists. */
void
fo_generation_init_instances(struct fo_engine *e, const struct fo_pipeline_conf *pc)
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

/* Sets up this shard's instance of every processor of a generation: its own context, from its parameters. */
int
fo_generation_set_up(struct fo_engine *e, const struct fo_pipeline_conf *pc, char *err, size_t errlen)
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

/*
 * Generations (docs/reload.md). A new conf is staged on the control thread (its instances set
 * up, larger scratch allocated) while the worker runs the current one; the worker switches
 * between two bursts (fo_engine_switch, through the control mailbox). Older generations stay
 * while they have live flows here; the last one's end tears their instances down.
 */

/* Each generation's processors (only an instance whose setup succeeded has anything to tear down). */
void
fo_generation_teardown(struct fo_engine *e, const struct fo_pipeline_conf *pc)
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
void
fo_generation_drop(struct fo_engine *e, const struct fo_pipeline_conf *pc)
{
	uint16_t i, p;

	fo_generation_teardown(e, pc);
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
void
fo_generation_retire(struct fo_engine *e)
{
	uint8_t g = 0, kept = 0;

	for (g = 0; g < e->n_old; g++) {
		const struct fo_pipeline_conf *pc = e->old[g];

		if (generation_flows(e, pc) > 0) {
			e->old[kept++] = pc;
			continue;
		}
		fo_generation_drop(e, pc);
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
void
fo_generation_carry_counters(struct fo_engine *e, const struct fo_pipeline_conf *next)
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
	fo_generation_init_instances(e, next);
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
		ret = fo_generation_set_up(e, e->next, err, errlen);
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
	fo_generation_drop(e, next);
	free_staged_scratch(&e->staged);
	e->next = NULL;
	e->next_set_up = 0;
	fo_pipeline_conf_free(next);
}

/* Installs what was staged for the new generation; on the worker, between bursts. */
void
fo_generation_install_scratch(struct fo_engine *e)
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

uint16_t
fo_engine_generations(const struct fo_engine *e)
{
	return (uint16_t)(__atomic_load_n(&e->n_old, __ATOMIC_ACQUIRE) + 1);
}
