/* SPDX-License-Identifier: BSD-3-Clause */
/* ttl: sets or decrements the IPv4 TTL / IPv6 hop limit; the engine repairs the checksums. */
#include <rte_ip.h>

#include "flowos/fo_builtins.h"
#include "flowos/fo_flow.h"
#include "fo_param.h"

static int
ttl_setup(void *ctx, const void *params, size_t len, char *err, size_t errlen)
{
	const struct fo_ttl_params *p = FO_PARAMS(struct fo_ttl_params, params, len, err, errlen);

	*(struct fo_ttl_params *)ctx = *p;
	return 0;
}

static void
ttl_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	const struct fo_ttl_params *p = ctx;
	uint16_t b, i;

	for (b = 0; b < n; b++) {
		for (i = 0; i < batches[b].n; i++) {
			struct rte_mbuf *m = batches[b].pkts[i];
			const struct fo_pkt_meta *meta = fo_pkt_meta(m);
			uint8_t *ttl;

			if (meta->flags & FO_PKT_IPV4)
				ttl = rte_pktmbuf_mtod_offset(m, uint8_t *, meta->offset[FO_LEVEL_L3] + 8);
			else if (meta->flags & FO_PKT_IPV6)
				ttl = rte_pktmbuf_mtod_offset(m, uint8_t *, meta->offset[FO_LEVEL_L3] + 7);
			else
				continue;
			*ttl = p->set ? p->set : (*ttl > p->decrement ? *ttl - p->decrement : 1);
			batches[b].verdicts[i] = FO_MODIFIED;
		}
	}
}

const struct fo_processor_ops fo_proc_ttl = {
	.name = "ttl",
	.level = FO_LEVEL_L3,
	.readonly = 0,
	.ctx_size = sizeof(struct fo_ttl_params),
	.setup = ttl_setup,
	.process = ttl_process,
};
