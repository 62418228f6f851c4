/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The engine's read-only configuration (fo_pipeline_conf.h): built once, before any shard is
 * made from it, and shared by every shard.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_malloc.h>

#include "fo_engine_priv.h"

struct fo_pipeline_conf *
fo_pipeline_conf_create(const struct fo_engine_conf *conf)
{
	struct fo_pipeline_conf *pc;

	if (conf->pool == NULL) {
		rte_errno = EINVAL;
		return NULL;
	}
	pc = rte_zmalloc_socket("fo_pipeline_conf", sizeof(*pc), RTE_CACHE_LINE_SIZE, conf->socket_id);
	if (pc == NULL)
		goto nomem;
	pc->defs = rte_zmalloc_socket("fo_defs", sizeof(*pc->defs) * FO_MAX_DEFS, RTE_CACHE_LINE_SIZE, conf->socket_id);
	if (pc->defs == NULL)
		goto nomem;
	pc->conf = *conf;
	pc->users = 1;
	return pc;
nomem:
	rte_free(pc);
	rte_errno = ENOMEM;
	return NULL;
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

	if (pc->built)
		return -EBUSY;
	for (i = 0; i < pc->n_defs; i++) {
		matches[i] = pc->defs[i].conf.match;
		hold = RTE_MAX(hold, pc->defs[i].conf.hold_packets);
	}
	snprintf(name, sizeof(name), "fo_class_%p", (void *)pc);
	pc->classifier = fo_classifier_create(name, matches, pc->n_defs, pc->conf.socket_id);
	if (pc->classifier == NULL) {
		snprintf(err, errlen, "cannot build the classifier: %s", rte_strerror(rte_errno));
		return -rte_errno;
	}
	pc->class_keys = (uint8_t)fo_classifier_uses_keys(pc->classifier);
	pc->state_size = layout_states(pc);
	/* A window holds what a flow may hold, one burst more, and what processors inject into it. */
	pc->window_cap = hold + 2 * FO_MAX_BURST;
	pc->built = 1;
	return 0;
}

uint32_t
fo_pipeline_conf_users(const struct fo_pipeline_conf *pc)
{
	return pc->users;
}

void
fo_pipeline_conf_free(struct fo_pipeline_conf *pc)
{
	uint16_t i, p;

	if (pc == NULL || --pc->users > 0)
		return;
	for (i = 0; i < pc->n_defs; i++)
		for (p = 0; p < pc->defs[i].n_procs; p++)
			rte_free(pc->defs[i].procs[p].params);
	fo_classifier_free(pc->classifier);
	rte_free(pc->defs);
	rte_free(pc);
}
