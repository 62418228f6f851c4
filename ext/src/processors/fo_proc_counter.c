/* SPDX-License-Identifier: BSD-3-Clause */
/* counter: packets and bytes per flow and direction; each ended flow is recorded for the report. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_malloc.h>

#include "flowos/fo_builtins.h"
#include "flowos/fo_flow.h"
#include "fo_param.h"

struct counts {
	uint64_t packets[2];
	uint64_t bytes[2];
};

struct record {
	struct fo_flow_key key;
	uint8_t opener_is_lo;
	uint8_t reason;
	struct counts counts;
};

struct counter {
	uint32_t max_flows;
	uint32_t n_records;
	uint64_t unrecorded;
	struct record *records;
};

static const char *const end_names[FO_END_REASON_COUNT] = { "fin", "rst", "idle", "shutdown", "reload" };

static int
counter_setup(void *ctx, const void *params, size_t len, char *err, size_t errlen)
{
	const struct fo_counter_params *p = FO_PARAMS(struct fo_counter_params, params, len, err, errlen);
	struct counter *c = ctx;

	c->max_flows = p->max_flows;
	c->records = rte_zmalloc("fo_counter", sizeof(*c->records) * (c->max_flows ? c->max_flows : 1), 0);
	if (c->records == NULL) {
		snprintf(err, errlen, "no memory to record %u flows", c->max_flows);
		return -ENOMEM;
	}
	return 0;
}

static void
counter_process(void *ctx, struct fo_batch *batches, uint16_t n)
{
	uint16_t b, i;

	RTE_SET_USED(ctx);
	for (b = 0; b < n; b++) {
		struct counts *s = batches[b].state;

		for (i = 0; i < batches[b].n; i++) {
			struct rte_mbuf *m = batches[b].pkts[i];
			uint8_t dir = fo_pkt_meta(m)->dir;

			s->packets[dir]++;
			s->bytes[dir] += rte_pktmbuf_pkt_len(m);
		}
	}
}

static void
counter_flow_end(void *ctx, const struct fo_flow *flow, void *state, enum fo_flow_end_reason reason)
{
	struct counter *c = ctx;
	struct record *r;

	if (c->n_records == c->max_flows) {
		c->unrecorded++;
		return;
	}
	r = &c->records[c->n_records++];
	r->key = flow->key;
	r->opener_is_lo = flow->opener_is_lo;
	r->reason = reason;
	r->counts = *(struct counts *)state;
}

static void
format_addr(char *buf, size_t len, uint8_t family, const uint8_t *addr)
{
	if (family == FO_FAMILY_IPV4)
		inet_ntop(AF_INET, addr, buf, len);
	else if (family == FO_FAMILY_IPV6)
		inet_ntop(AF_INET6, addr, buf, len);
	else
		snprintf(buf, len, "-");
}

/* JSON: {"flows": [...], "unrecorded": N}; each flow as the side that opened it saw it. */
static int
counter_report(void *ctx, char *buf, size_t len)
{
	struct counter *c = ctx;
	size_t used = 0;
	uint32_t i;

#define EMIT(...) (used += snprintf(buf + RTE_MIN(used, len), used < len ? len - used : 0, __VA_ARGS__))
	EMIT("{\"unrecorded\": %lu, \"flows\": [", (unsigned long)c->unrecorded);
	for (i = 0; i < c->n_records; i++) {
		const struct record *r = &c->records[i];
		const uint8_t *src = r->opener_is_lo ? r->key.addr_lo : r->key.addr_hi;
		const uint8_t *dst = r->opener_is_lo ? r->key.addr_hi : r->key.addr_lo;
		char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];

		format_addr(s, sizeof(s), r->key.family, src);
		format_addr(d, sizeof(d), r->key.family, dst);
		EMIT("%s{\"def\": %u, \"proto\": %u, \"src\": \"%s\", \"dst\": \"%s\", \"sport\": %u, \"dport\": %u, "
		     "\"packets\": [%lu, %lu], \"bytes\": [%lu, %lu], \"end\": \"%s\"}",
		     i ? ", " : "", r->key.def, r->key.proto, s, d,
		     r->opener_is_lo ? r->key.port_lo : r->key.port_hi,
		     r->opener_is_lo ? r->key.port_hi : r->key.port_lo,
		     (unsigned long)r->counts.packets[0], (unsigned long)r->counts.packets[1],
		     (unsigned long)r->counts.bytes[0], (unsigned long)r->counts.bytes[1], end_names[r->reason]);
	}
	EMIT("]}");
#undef EMIT
	return (int)used;
}

/* "report": how many ended flows are recorded; "reset": forget them (the report starts over). */
static int
counter_message(void *ctx, const char *msg, char *reply, size_t len)
{
	struct counter *c = ctx;

	if (strcmp(msg, "reset") == 0) {
		int n = snprintf(reply, len, "{\"forgot\": %u, \"unrecorded\": %lu}", c->n_records,
				 (unsigned long)c->unrecorded);

		c->n_records = 0;
		c->unrecorded = 0;
		return n;
	}
	if (strcmp(msg, "report") == 0)
		return snprintf(reply, len, "{\"recorded\": %u, \"unrecorded\": %lu, \"max_flows\": %u}",
				c->n_records, (unsigned long)c->unrecorded, c->max_flows);
	snprintf(reply, len, "unknown message (counter takes: report, reset)");
	return -EINVAL;
}

static void
counter_teardown(void *ctx)
{
	struct counter *c = ctx;

	rte_free(c->records);
	c->records = NULL;
}

const struct fo_processor_ops fo_proc_counter = {
	.name = "counter",
	.level = FO_LEVEL_L2,
	.readonly = 1,
	.ctx_size = sizeof(struct counter),
	.state_size = sizeof(struct counts),
	.setup = counter_setup,
	.process = counter_process,
	.flow_end = counter_flow_end,
	.message = counter_message,
	.report = counter_report,
	.teardown = counter_teardown,
};
