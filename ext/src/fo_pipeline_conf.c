/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The engine's read-only configuration (fo_pipeline_conf.h): built once, before any shard is
 * made from it, and shared by every shard.
 *
 * Generations (docs/reload.md): a conf made with fo_pipeline_conf_create_next shares its
 * predecessor's definition space, one array of definitions that a shard indexes by a flow's
 * key.def. Each conf takes a range of it when it is built and gives it back when it is freed,
 * so that the flows of every generation a shard still runs name their definition with one index,
 * and the burst path reads e->defs[flow->key.def] as it did with one conf.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_malloc.h>

#include "fo_engine_priv.h"

/* The definitions of the confs of one family (a first conf and its successors). */
struct def_space {
	struct definition defs[FO_MAX_DEFS];
	uint8_t used[FO_MAX_DEFS];
	uint32_t users;               /* confs of the family not freed yet */
	rte_spinlock_t lock;          /* used[]: taken on a control thread, given back on any */
};

static struct def_space *
space_create(int socket_id)
{
	struct def_space *s = rte_zmalloc_socket("fo_def_space", sizeof(*s), RTE_CACHE_LINE_SIZE, socket_id);

	if (s != NULL) {
		s->users = 1;
		rte_spinlock_init(&s->lock);
	}
	return s;
}

/* The first free run of n definitions in the space, taken; or -1. */
static int
space_take(struct def_space *s, uint16_t n)
{
	int base = -1;
	uint32_t i, run = 0;

	rte_spinlock_lock(&s->lock);
	for (i = 0; i < FO_MAX_DEFS && base < 0; i++) {
		run = s->used[i] ? 0 : run + 1;
		if (run >= n)
			base = (int)(i + 1 - n);
	}
	if (n == 0)
		base = 0;
	for (i = 0; base >= 0 && i < n; i++)
		s->used[base + i] = 1;
	rte_spinlock_unlock(&s->lock);
	return base;
}

/* Gives a range back, its definitions zeroed: a shard's loops over the space find no processor there. */
static void
space_give(struct def_space *s, uint16_t base, uint16_t n)
{
	rte_spinlock_lock(&s->lock);
	memset(&s->defs[base], 0, sizeof(s->defs[0]) * n);
	memset(&s->used[base], 0, n);
	rte_spinlock_unlock(&s->lock);
}

static void
space_free(struct def_space *s)
{
	if (s != NULL && __atomic_sub_fetch(&s->users, 1, __ATOMIC_ACQ_REL) == 0)
		rte_free(s);
}

static struct fo_pipeline_conf *
conf_create(const struct fo_engine_conf *conf, struct def_space *space)
{
	struct fo_pipeline_conf *pc;

	if (conf->pool == NULL) {
		rte_errno = EINVAL;
		return NULL;
	}
	pc = rte_zmalloc_socket("fo_pipeline_conf", sizeof(*pc), RTE_CACHE_LINE_SIZE, conf->socket_id);
	if (pc == NULL)
		goto nomem;
	/* Definitions are added here, and move into the space when the conf is built. */
	pc->defs = rte_zmalloc_socket("fo_defs", sizeof(*pc->defs) * FO_MAX_DEFS, RTE_CACHE_LINE_SIZE, conf->socket_id);
	if (pc->defs == NULL)
		goto nomem;
	if (space != NULL)
		__atomic_add_fetch(&space->users, 1, __ATOMIC_ACQ_REL);
	else if ((space = space_create(conf->socket_id)) == NULL)
		goto nomem;
	pc->space = space;
	pc->conf = *conf;
	pc->users = 1;
	return pc;
nomem:
	if (pc != NULL)
		rte_free(pc->defs);
	rte_free(pc);
	rte_errno = ENOMEM;
	return NULL;
}

struct fo_pipeline_conf *
fo_pipeline_conf_create(const struct fo_engine_conf *conf)
{
	return conf_create(conf, NULL);
}

struct fo_pipeline_conf *
fo_pipeline_conf_create_next(const struct fo_pipeline_conf *prev, const struct fo_engine_conf *conf)
{
	if (prev == NULL || !prev->built) {
		rte_errno = EINVAL;
		return NULL;
	}
	return conf_create(conf, prev->space);
}

int
fo_pipeline_conf_add_definition(struct fo_pipeline_conf *pc, const struct fo_def_conf *def)
{
	struct definition *d;

	if (pc->built)
		return -EBUSY;
	if (pc->n_defs == FO_MAX_DEFS)
		return -ENOSPC;
	d = &pc->defs[pc->n_defs];
	d->conf = *def;
	d->conf.name[FO_NAME_LEN - 1] = '\0';
	if (d->conf.reorder_packets == 0)
		d->conf.reorder_packets = 64;
	if (d->conf.stream_hold_ms == 0)
		d->conf.stream_hold_ms = FO_STREAM_HOLD_MS_DEFAULT;
	return pc->n_defs++;
}

int
fo_pipeline_conf_add_processor(struct fo_pipeline_conf *pc, uint16_t def, uint16_t stage,
			       const struct fo_processor_ops *ops, const void *params, size_t params_len,
			       char *err, size_t errlen)
{
	struct definition *d;
	struct proc_conf *p;
	uint16_t s;

	if (pc->built)
		return -EBUSY;
	if (def >= pc->n_defs || ops == NULL || ops->process == NULL) {
		snprintf(err, errlen, "no such definition, or a processor without process()");
		return -EINVAL;
	}
	if ((unsigned int)ops->level >= FO_LEVEL_COUNT) {
		snprintf(err, errlen, "processor %s: level %u is not one of l2, l3, l4, payload", ops->name,
			 (unsigned int)ops->level);
		return -EINVAL;
	}
	d = &pc->defs[def];
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
			if (!ops->readonly || !d->procs[s].ops.readonly) {
				snprintf(err, errlen, "%s and %s share stage %u, but %s changes packets: a writer stands alone in its stage",
					 d->procs[s].ops.name, ops->name, stage,
					 ops->readonly ? d->procs[s].ops.name : ops->name);
				return -EINVAL;
			}
		}
	}
	p = &d->procs[d->n_procs];
	if (params_len > 0) {
		p->params = rte_malloc_socket("fo_proc_params", params_len, 0, pc->conf.socket_id);
		if (p->params == NULL) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		memcpy(p->params, params, params_len);
	}
	p->params_len = params_len;
	p->ops = *ops;
	snprintf(p->name, sizeof(p->name), "%s", ops->name != NULL ? ops->name : "");
	p->ops.name = p->name;
	p->stage = stage;
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
layout_states(struct fo_pipeline_conf *pc)
{
	uint32_t largest = 0;
	uint16_t i, p;

	for (i = 0; i < pc->n_defs; i++) {
		struct definition *d = &pc->defs[i];
		uint32_t size = RTE_ALIGN_CEIL(sizeof(uint32_t) * d->n_procs, 8);

		d->stream_offset = 0;
		if (d->conf.streams && d->n_procs > 0) {
			d->stream_offset = size;
			size += sizeof(struct stream_flow) + sizeof(uint64_t) * 2 * d->n_procs;
			size = RTE_ALIGN_CEIL(size, 8);
		}

		for (p = 0; p < d->n_procs; p++) {
			d->procs[p].state_offset = size;
			size += RTE_ALIGN_CEIL(d->procs[p].ops.state_size, 8);
		}
		d->state_size = d->n_procs ? size : 0;
		largest = RTE_MAX(largest, d->state_size);
	}
	return largest;
}

int
fo_pipeline_conf_build(struct fo_pipeline_conf *pc, char *err, size_t errlen)
{
	struct fo_match matches[FO_MAX_DEFS];
	char name[RTE_MEMPOOL_NAMESIZE];
	uint32_t hold = 0;
	uint16_t i;
	int base;

	if (pc->built)
		return -EBUSY;
	base = space_take(pc->space, pc->n_defs);
	if (base < 0) {
		snprintf(err, errlen, "no room for %u more flow definitions: the generations still running use the rest of %d (their flows end, or --migrate ends them)",
			 pc->n_defs, FO_MAX_DEFS);
		return -ENOSPC;
	}
	for (i = 0; i < pc->n_defs; i++) {
		matches[i] = pc->defs[i].conf.match;
		hold = RTE_MAX(hold, pc->defs[i].conf.hold_packets);
	}
	snprintf(name, sizeof(name), "fo_class_%p", (void *)pc);
	pc->classifier = fo_classifier_create_at(name, matches, pc->n_defs, (uint32_t)base, pc->conf.socket_id);
	if (pc->classifier == NULL) {
		int ret = -rte_errno;

		space_give(pc->space, (uint16_t)base, pc->n_defs);
		snprintf(err, errlen, "cannot build the classifier: %s", rte_strerror(-ret));
		return ret;
	}
	pc->class_keys = (uint8_t)fo_classifier_uses_keys(pc->classifier);
	pc->class_offset = (uint16_t)fo_classifier_unapplied(pc->classifier);
	pc->state_size = layout_states(pc);
	/* Into the space: what a shard reads from now on, by global index (base + index). */
	memcpy(&pc->space->defs[base], pc->defs, sizeof(*pc->defs) * pc->n_defs);
	for (i = 0; i < pc->n_defs; i++) {   /* each ops.name points at its own copy's name */
		struct definition *d = &pc->space->defs[base + i];
		uint16_t p;

		d->levels = 0;
		for (p = 0; p < d->n_procs; p++) {
			d->procs[p].ops.name = d->procs[p].name;
			d->levels |= (uint8_t)(1u << d->procs[p].ops.level);
		}
	}
	rte_free(pc->defs);
	pc->defs = &pc->space->defs[base];
	pc->base = (uint16_t)base;
	/* A window holds what a flow may hold, one burst more, and what processors inject into it. */
	pc->window_cap = hold + 2 * FO_MAX_BURST;
	pc->built = 1;
	return 0;
}

uint16_t
fo_pipeline_conf_base(const struct fo_pipeline_conf *pc)
{
	return pc->base;
}

uint32_t
fo_pipeline_conf_users(const struct fo_pipeline_conf *pc)
{
	return __atomic_load_n(&pc->users, __ATOMIC_ACQUIRE);
}

void
fo_pipeline_conf_free(struct fo_pipeline_conf *pc)
{
	uint16_t i, p;

	/* Shards let their generations go on their workers: the count is shared across threads. */
	if (pc == NULL || __atomic_sub_fetch(&pc->users, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (i = 0; i < pc->n_defs; i++)
		for (p = 0; p < pc->defs[i].n_procs; p++)
			rte_free(pc->defs[i].procs[p].params);
	fo_classifier_free(pc->classifier);
	if (pc->built)
		space_give(pc->space, pc->base, pc->n_defs);
	else
		rte_free(pc->defs);
	space_free(pc->space);
	rte_free(pc);
}
