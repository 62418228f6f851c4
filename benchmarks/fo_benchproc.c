/* SPDX-License-Identifier: BSD-3-Clause */
/* The C processor of the processors benchmark (see fo_benchproc.h). */
#include <stdio.h>

#include <rte_byteorder.h>
#include <rte_common.h>

#include "fo_benchproc.h"

#define PORT 443

static void
dport_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	struct fo_bench_dport_ctx *c = ctx;
	uint64_t packets = 0, matched = 0;
	uint16_t b, i;

	for (b = 0; b < n; b++) {
		for (i = 0; i < batches[b].n; i++) {
			struct rte_mbuf *m = batches[b].pkts[i];
			const struct fo_pkt_meta *meta = fo_pkt_meta(m);
			const rte_be16_t *ports = (const rte_be16_t *)(fo_pkt_data(m) + meta->offset[FO_LEVEL_L4]);

			matched += (meta->flags & FO_PKT_L4_PORTS) && rte_be_to_cpu_16(ports[1]) == PORT;
		}
		packets += batches[b].n;
	}
	c->packets += packets;
	c->matched += matched;
}

static int
dport_report(void *ctx, char *buf, size_t len)
{
	const struct fo_bench_dport_ctx *c = ctx;

	return snprintf(buf, len, "{\"packets\": %lu, \"matched\": %lu}",
			(unsigned long)c->packets, (unsigned long)c->matched);
}

const struct fo_processor_ops fo_bench_dport_ops = {
	.name = "bench_dport",
	.level = FO_LEVEL_L4,
	.readonly = 1,
	.ctx_size = sizeof(struct fo_bench_dport_ctx),
	.state_size = 0,
	.process = dport_process,
	.report = dport_report,
};
