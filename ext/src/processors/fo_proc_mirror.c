/* SPDX-License-Identifier: BSD-3-Clause */
/* mirror: injects a copy of every packet into its flow, right after it, to leave by another port. */
#include "flowos/fo_builtins.h"
#include "flowos/fo_flow.h"
#include "fo_param.h"

struct mirror {
	struct fo_mirror_params params;
	uint64_t copy_failed;
};

static int
mirror_setup(void *ctx, const void *params, size_t len, char *err, size_t errlen)
{
	const struct fo_mirror_params *p = FO_PARAMS(struct fo_mirror_params, params, len, err, errlen);

	((struct mirror *)ctx)->params = *p;
	return 0;
}

static void
mirror_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	struct mirror *mr = ctx;
	uint16_t b, i;

	for (b = 0; b < n; b++) {
		struct rte_mempool *pool = fo_batch_pool(&batches[b]);
		uint16_t count = batches[b].n;

		for (i = 0; i < count; i++) {
			struct rte_mbuf *copy = rte_pktmbuf_copy(batches[b].pkts[i], pool, 0, UINT32_MAX);

			if (copy == NULL) {
				mr->copy_failed++;
				continue;
			}
			if (fo_batch_inject(&batches[b], i, copy, 1) == 0)
				fo_pkt_meta(copy)->out_port = mr->params.port;
		}
	}
}

static int
mirror_report(void *ctx, char *buf, size_t len)
{
	return snprintf(buf, len, "{\"copy_failed\": %lu}", (unsigned long)((struct mirror *)ctx)->copy_failed);
}

const struct fo_processor_ops fo_proc_mirror = {
	.name = "mirror",
	.level = FO_LEVEL_L2,
	.readonly = 1,
	.ctx_size = sizeof(struct mirror),
	.setup = mirror_setup,
	.process = mirror_process,
	.report = mirror_report,
};
