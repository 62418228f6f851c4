/* SPDX-License-Identifier: BSD-3-Clause */
/* redirect: the flow's packets (of one direction, or both) leave by another port. */
#include "flowos/fo_builtins.h"
#include "flowos/fo_flow.h"
#include "fo_param.h"

static int
redirect_setup(void *ctx, const void *params, size_t len, char *err, size_t errlen)
{
	const struct fo_redirect_params *p = FO_PARAMS(struct fo_redirect_params, params, len, err, errlen);

	*(struct fo_redirect_params *)ctx = *p;
	return 0;
}

static void
redirect_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	const struct fo_redirect_params *p = ctx;
	uint16_t b, i;

	for (b = 0; b < n; b++) {
		for (i = 0; i < batches[b].n; i++) {
			if (p->direction >= 0 && fo_pkt_meta(batches[b].pkts[i])->dir != p->direction)
				continue;
			batches[b].verdicts[i] = FO_REDIRECT;
			batches[b].out_ports[i] = p->port;
		}
	}
}

const struct fo_processor_ops fo_proc_redirect = {
	.name = "redirect",
	.level = FO_LEVEL_L2,
	.readonly = 1,
	.ctx_size = sizeof(struct fo_redirect_params),
	.setup = redirect_setup,
	.process = redirect_process,
};
