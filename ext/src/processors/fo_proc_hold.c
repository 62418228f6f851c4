/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hold: keeps each flow's packets until it has `packets` of them, then releases them together;
 * whatever is left when the flow ends is released then. It shows the head/tail protocol at work.
 */
#include "flowos/fo_builtins.h"
#include "flowos/fo_flow.h"
#include "fo_param.h"

static int
hold_setup(void *ctx, const void *params, size_t len, char *err, size_t errlen)
{
	const struct fo_hold_params *p = FO_PARAMS(struct fo_hold_params, params, len, err, errlen);

	if (p->packets == 0) {
		snprintf(err, errlen, "packets must be at least 1");
		return -EINVAL;
	}
	*(struct fo_hold_params *)ctx = *p;
	return 0;
}

static void
hold_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	const struct fo_hold_params *p = ctx;
	uint16_t b;

	/* The window always starts at the first packet held: it holds until there are enough. */
	for (b = 0; b < n; b++) {
		uint16_t release = batches[b].n - batches[b].n % p->packets;

		if (release < batches[b].n)
			batches[b].verdicts[release] = FO_HOLD;
	}
}

const struct fo_processor_ops fo_proc_hold = {
	.name = "hold",
	.level = FO_LEVEL_L2,
	.readonly = 1,
	.ctx_size = sizeof(struct fo_hold_params),
	.setup = hold_setup,
	.process = hold_process,
};
