/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * acl: ordered allow/deny rules. A flow's first packet decides for the whole flow, so the
 * replies of an allowed connection pass and everything of a denied one is dropped.
 */
#include <stdio.h>
#include <string.h>

#include <rte_malloc.h>

#include "flowos/fo_builtins.h"
#include "flowos/fo_flow.h"
#include "fo_param.h"

enum { UNDECIDED = 0, ALLOWED, DENIED };

struct acl {
	struct fo_acl_params *params;
	uint64_t flows[3];      /* by decision */
	uint64_t packets[3];
};

static int
acl_setup(void *ctx, const void *params, size_t len, char *err, size_t errlen)
{
	const struct fo_acl_params *p = FO_PARAMS(struct fo_acl_params, params, len, err, errlen);
	size_t size = sizeof(*p) + sizeof(p->rules[0]) * p->n_rules;
	struct acl *a = ctx;

	if (len < size) {
		snprintf(err, errlen, "%u rules need %zu bytes of parameters, got %zu", p->n_rules, size, len);
		return -EINVAL;
	}
	a->params = rte_malloc("fo_acl", size, 0);
	if (a->params == NULL) {
		snprintf(err, errlen, "no memory for %u rules", p->n_rules);
		return -ENOMEM;
	}
	memcpy(a->params, p, size);
	return 0;
}

static void
acl_flow_start(void *ctx, const struct fo_flow *flow, void *state, const struct rte_mbuf *first)
{
	struct acl *a = ctx;
	struct fo_match_fields f;
	uint8_t *decision = state;
	uint32_t i;

	RTE_SET_USED(flow);
	fo_match_fields_of((struct rte_mbuf *)(uintptr_t)first, first->port, &f);
	*decision = a->params->default_allow ? ALLOWED : DENIED;
	for (i = 0; i < a->params->n_rules; i++) {
		if (fo_match_test(&a->params->rules[i].match, &f)) {
			*decision = a->params->rules[i].allow ? ALLOWED : DENIED;
			break;
		}
	}
	a->flows[*decision]++;
}

/*
 * Allowed packets are counted in a register for the call: adding each batch to the context's
 * counter would chain every batch through one memory location.
 */
static void
acl_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	struct acl *a = ctx;
	uint64_t allowed = 0;
	uint16_t b, i;

	for (b = 0; b < n; b++) {
		uint8_t decision = *(uint8_t *)batches[b].state;

		if (likely(decision == ALLOWED)) {
			allowed += batches[b].n;
			continue;
		}
		a->packets[decision] += batches[b].n;
		for (i = 0; i < batches[b].n; i++)
			batches[b].verdicts[i] = FO_DROP;
	}
	a->packets[ALLOWED] += allowed;
}

static int
acl_report(void *ctx, char *buf, size_t len)
{
	struct acl *a = ctx;

	return snprintf(buf, len, "{\"allowed_flows\": %lu, \"denied_flows\": %lu, "
			"\"allowed_packets\": %lu, \"denied_packets\": %lu}",
			(unsigned long)a->flows[ALLOWED], (unsigned long)a->flows[DENIED],
			(unsigned long)a->packets[ALLOWED], (unsigned long)a->packets[DENIED]);
}

static void
acl_teardown(void *ctx)
{
	struct acl *a = ctx;

	rte_free(a->params);
	a->params = NULL;
}

const struct fo_processor_ops fo_proc_acl = {
	.name = "acl",
	.level = FO_LEVEL_L2,
	.readonly = 1,
	.ctx_size = sizeof(struct acl),
	.state_size = sizeof(uint8_t),
	.setup = acl_setup,
	.flow_start = acl_flow_start,
	.process = acl_process,
	.report = acl_report,
	.teardown = acl_teardown,
};
