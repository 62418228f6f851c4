/* SPDX-License-Identifier: BSD-3-Clause */
/* The C processor of the processors benchmark (see fo_benchproc.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_common.h>

#include <flowos/fo_stream.h>

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

/* --- bench_nothing ------------------------------------------------------------------------- */

static void
nothing_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	struct fo_bench_nothing_ctx *c = ctx;
	uint16_t b;

	for (b = 0; b < n; b++)
		c->packets += batches[b].n;
}

static int
nothing_report(void *ctx, char *buf, size_t len)
{
	const struct fo_bench_nothing_ctx *c = ctx;

	return snprintf(buf, len, "{\"packets\": %lu}", (unsigned long)c->packets);
}

const struct fo_processor_ops fo_bench_nothing_ops = {
	.name = "bench_nothing",
	.level = FO_LEVEL_L4,
	.readonly = 1,
	.ctx_size = sizeof(struct fo_bench_nothing_ctx),
	.state_size = 0,
	.process = nothing_process,
	.report = nothing_report,
};

/* --- bench_find ------------------------------------------------------------------------------ */

static int
find_setup(void *ctx, const void *params, size_t params_len, char *err, size_t errlen)
{
	struct fo_bench_find_ctx *c = ctx;
	const struct fo_bench_find_params *p = params;

	if (params_len != sizeof(*p) || p->pattern_len == 0 || p->pattern_len > sizeof(p->pattern)) {
		snprintf(err, errlen, "bench_find: expects struct fo_bench_find_params with a pattern of 1..64 bytes");
		return -EINVAL;
	}
	c->p = *p;
	return 0;
}

/* Where a match may still be starting, cut off by end: end less the longest proper prefix of
 * the pattern that the bytes before end finish with. */
static uint64_t
partial_at(const struct fo_batch *b, uint8_t dir, const uint8_t *pat, uint32_t len, uint64_t start, uint64_t end)
{
	uint8_t tail[64];
	uint32_t n = RTE_MIN((uint64_t)len - 1, end - start), k;

	n = fo_stream_read(b, dir, end - n, tail, n);
	for (k = n; k > 0; k--)
		if (memcmp(tail + n - k, pat, k) == 0)
			return end - k;
	return end;
}

static void
find_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	struct fo_bench_find_ctx *c = ctx;
	const uint8_t *pat = c->p.pattern;
	const uint32_t len = c->p.pattern_len;
	uint64_t matched = 0, scanned = 0, windows = 0;
	uint16_t i;
	uint8_t dir;

	for (i = 0; i < n; i++) {
		struct fo_batch *b = &batches[i];

		for (dir = 0; dir < 2; dir++) {
			uint64_t start = fo_stream_start(b, dir), end = start + fo_stream_len(b, dir);
			uint64_t *seen = (uint64_t *)b->state + dir, at = RTE_MAX(*seen, start);
			int64_t hit;

			if (end == start)
				continue;
			while ((hit = fo_stream_find(b, dir, pat, len, at, end)) >= 0) {
				matched++;
				at = hit + 1;
			}
			/* What was held comes back next time: no match can start before end - len + 1 that was not found. */
			*seen = RTE_MAX(at, end >= len ? end - len + 1 : 0);
			fo_stream_release(b, dir, partial_at(b, dir, pat, len, start, end));
			scanned += end - at;
			windows++;
		}
	}
	c->calls++;
	c->windows += windows;
	c->matched += matched;
	c->scanned += scanned;
}

static int
find_report(void *ctx, char *buf, size_t len)
{
	const struct fo_bench_find_ctx *c = ctx;

	return snprintf(buf, len, "{\"calls\": %lu, \"windows\": %lu, \"matched\": %lu, \"scanned\": %lu}",
			(unsigned long)c->calls, (unsigned long)c->windows, (unsigned long)c->matched,
			(unsigned long)c->scanned);
}

const struct fo_processor_ops fo_bench_find_ops = {
	.name = "bench_find",
	.level = FO_LEVEL_PAYLOAD,
	.readonly = 1,
	.ctx_size = sizeof(struct fo_bench_find_ctx),
	.state_size = 2 * sizeof(uint64_t),   /* per direction: where the next match may start */
	.setup = find_setup,
	.process = find_process,
	.report = find_report,
};

/* --- bench_edit ------------------------------------------------------------------------------ */

static int
edit_setup(void *ctx, const void *params, size_t params_len, char *err, size_t errlen)
{
	struct fo_bench_edit_ctx *c = ctx;
	const struct fo_bench_edit_params *p = params;

	if (params_len != sizeof(*p) || p->mode > FO_BENCH_EDIT_DELETE || p->bytes == 0 || p->bytes > 16) {
		snprintf(err, errlen, "bench_edit: expects struct fo_bench_edit_params, mode 0..3, 1..16 bytes");
		return -EINVAL;
	}
	c->p = *p;
	return 0;
}

static void
edit_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	static const uint8_t ins[16] = "EDITEDITEDITEDIT";
	struct fo_bench_edit_ctx *c = ctx;
	const uint32_t k = c->p.bytes;
	uint64_t packets = 0, edits = 0, failed = 0;
	uint16_t i, j;

	for (i = 0; i < n; i++) {
		struct fo_batch *b = &batches[i];
		uint64_t pos[2] = { fo_stream_start(b, 0), fo_stream_start(b, 1) }, off[FO_MAX_BURST];
		uint32_t plen[FO_MAX_BURST];

		if (b->n > FO_MAX_BURST) {   /* a window with more held than a burst: not in this benchmark */
			failed += b->n;
			continue;
		}
		for (j = 0; j < b->n; j++) {
			struct rte_mbuf *m = b->pkts[j];
			uint8_t dir = fo_pkt_meta(m)->dir;

			plen[j] = fo_pkt_level_len(m, FO_LEVEL_PAYLOAD);
			off[j] = pos[dir];
			pos[dir] += plen[j];
		}
		for (j = b->n; j-- > 0;) {
			int ret = 0;

			if (plen[j] <= k)
				continue;
			packets++;
			switch (c->p.mode) {
			case FO_BENCH_EDIT_REPLACE:
				ret = fo_stream_splice(b, fo_pkt_meta(b->pkts[j])->dir, off[j], k, ins, k);
				break;
			case FO_BENCH_EDIT_INSERT:
				ret = fo_stream_splice(b, fo_pkt_meta(b->pkts[j])->dir, off[j], 0, ins, k);
				break;
			case FO_BENCH_EDIT_DELETE:
				ret = fo_stream_splice(b, fo_pkt_meta(b->pkts[j])->dir, off[j], k, NULL, 0);
				break;
			default:
				continue;
			}
			edits += ret == 0;
			failed += ret != 0;
		}
	}
	c->packets += packets;
	c->edits += edits;
	c->failed += failed;
}

static int
edit_report(void *ctx, char *buf, size_t len)
{
	const struct fo_bench_edit_ctx *c = ctx;

	return snprintf(buf, len, "{\"packets\": %lu, \"edits\": %lu, \"failed\": %lu}",
			(unsigned long)c->packets, (unsigned long)c->edits, (unsigned long)c->failed);
}

const struct fo_processor_ops fo_bench_edit_ops = {
	.name = "bench_edit",
	.level = FO_LEVEL_PAYLOAD,
	.readonly = 0,
	.ctx_size = sizeof(struct fo_bench_edit_ctx),
	.setup = edit_setup,
	.process = edit_process,
	.report = edit_report,
};
