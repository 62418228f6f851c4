/* SPDX-License-Identifier: BSD-3-Clause */
/* The engines the flow benchmarks time (fo_benchengine.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_ip.h>
#include <rte_malloc.h>

#include <flowos/fo_builtins.h>

#include "fo_benchengine.h"
#include "fo_gen.h"

#define TIMEOUT_NS (600ull * 1000000000ull)   /* no flow may end by idle time during a run */

static void
match_prefix(uint8_t *addr, uint8_t *prefix_len, uint32_t net, uint8_t len)
{
	rte_be32_t be = rte_cpu_to_be_32(net);

	memcpy(addr, &be, 4);
	*prefix_len = len;
}

/*
 * Definition i of K_UNMATCHED: TCP from the clients' network (which the traffic has) to a /24
 * and a port it never goes to, so rte_acl has to look at several fields before it gives up.
 */
static void
unmatched_def(struct fo_def_conf *d, uint32_t i)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "nothing_%u", i);
	d->match.fields = FO_MATCH_PROTO | FO_MATCH_SRC_IP | FO_MATCH_DST_IP | FO_MATCH_DST_PORT;
	d->match.family = FO_FAMILY_IPV4;
	d->match.proto = IPPROTO_TCP;
	match_prefix(d->match.src_ip, &d->match.src_prefix, FO_GEN_CLIENT_NET, 8);
	match_prefix(d->match.dst_ip, &d->match.dst_prefix, RTE_IPV4(198, 18 + i / 256, i % 256, 0), 24);
	d->match.dst_port_lo = d->match.dst_port_hi = 8000 + i;
}

/* A few deny rules none of the traffic meets, so the acl allows every flow (by default). */
static struct fo_acl_params *
acl_params(size_t *len)
{
	struct fo_acl_params *p;
	uint32_t n = 4;

	*len = sizeof(*p) + n * sizeof(p->rules[0]);
	p = calloc(1, *len);
	if (p == NULL)
		return NULL;
	p->n_rules = n;
	p->default_allow = 1;
	p->rules[0].match.fields = FO_MATCH_PROTO | FO_MATCH_DST_PORT;       /* telnet */
	p->rules[0].match.proto = IPPROTO_TCP;
	p->rules[0].match.dst_port_lo = p->rules[0].match.dst_port_hi = 23;
	p->rules[1].match.fields = FO_MATCH_SRC_IP;                          /* a blocked client network */
	p->rules[1].match.family = FO_FAMILY_IPV4;
	match_prefix(p->rules[1].match.src_ip, &p->rules[1].match.src_prefix, RTE_IPV4(10, 255, 0, 0), 16);
	p->rules[2].match.fields = FO_MATCH_DST_IP;                          /* a blocked server network */
	p->rules[2].match.family = FO_FAMILY_IPV4;
	match_prefix(p->rules[2].match.dst_ip, &p->rules[2].match.dst_prefix, RTE_IPV4(172, 16, 255, 0), 24);
	p->rules[3].match.fields = FO_MATCH_PROTO | FO_MATCH_DST_PORT;       /* SMB */
	p->rules[3].match.proto = IPPROTO_TCP;
	p->rules[3].match.dst_port_lo = p->rules[3].match.dst_port_hi = 445;
	return p;
}

struct fo_pipeline_conf *
fo_bench_pipeline_create(enum fo_bench_engine_kind kind, uint32_t defs, struct rte_mempool *pool, char *err,
			 size_t errlen)
{
	return fo_bench_pipeline_create_next(NULL, kind, defs, pool, err, errlen);
}

struct fo_pipeline_conf *
fo_bench_pipeline_create_next(const struct fo_pipeline_conf *prev, enum fo_bench_engine_kind kind, uint32_t defs,
			      struct rte_mempool *pool, char *err, size_t errlen)
{
	struct fo_engine_conf conf = {
		.unmatched = FO_UNMATCHED_PASS,
		.table_full = FO_TABLE_FULL_BYPASS,
		.clock = FO_CLOCK_TSC,
		.pool = pool,
		.socket_id = SOCKET_ID_ANY,
	};
	struct fo_pipeline_conf *pc;
	struct fo_def_conf def;
	uint32_t i;
	int ret = 0;

	for (i = 0; i < FO_TIMEOUT_CLASS_COUNT; i++)
		conf.timeout_ns[i] = TIMEOUT_NS;
	pc = prev == NULL ? fo_pipeline_conf_create(&conf) : fo_pipeline_conf_create_next(prev, &conf);
	if (pc == NULL) {
		snprintf(err, errlen, "fo_pipeline_conf_create: %s", rte_strerror(rte_errno));
		return NULL;
	}
	if (kind == FO_BENCH_UNMATCHED) {
		for (i = 0; i < defs && ret >= 0; i++) {
			unmatched_def(&def, i);
			ret = fo_pipeline_conf_add_definition(pc, &def);
		}
	} else {
		memset(&def, 0, sizeof(def));
		snprintf(def.name, sizeof(def.name), "all");
		ret = fo_pipeline_conf_add_definition(pc, &def);
	}
	if (ret < 0) {
		snprintf(err, errlen, "fo_pipeline_conf_add_definition: %s", strerror(-ret));
		goto fail;
	}
	if (kind == FO_BENCH_PIPELINE) {
		struct fo_counter_params counter = { .max_flows = 0 };   /* count, keep no records */
		size_t acl_len;
		struct fo_acl_params *acl = acl_params(&acl_len);

		if (acl == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		ret = fo_pipeline_conf_add_processor(pc, 0, 0, fo_processor_find("counter"), &counter, sizeof(counter),
						     err, errlen);
		if (ret >= 0)
			ret = fo_pipeline_conf_add_processor(pc, 0, 1, fo_processor_find("acl"), acl, acl_len, err, errlen);
		free(acl);
		if (ret < 0)
			goto fail;
	}
	if (fo_pipeline_conf_build(pc, err, errlen) < 0)
		goto fail;
	return pc;
fail:
	fo_pipeline_conf_free(pc);
	return NULL;
}

struct fo_engine *
fo_bench_engine_create(struct fo_pipeline_conf *pc, const struct rte_mempool *pool, uint32_t flow_capacity,
		       int socket_id, char *err, size_t errlen)
{
	/* A budget, as flowos-run always has: its checks are timed. */
	struct fo_shard_conf sc = { .flow_capacity = flow_capacity, .keep_budget = pool->size / 2, .socket_id = socket_id };
	struct fo_engine *e;

	e = fo_engine_create(pc, &sc);
	if (e == NULL) {
		snprintf(err, errlen, "fo_engine_create: %s", rte_strerror(rte_errno));
		return NULL;
	}
	if (fo_engine_build(e, err, errlen) < 0) {
		fo_engine_free(e);
		return NULL;
	}
	return e;
}

size_t
fo_bench_heap_used(void)
{
	struct rte_malloc_socket_stats s;
	unsigned int i;
	size_t used = 0;

	for (i = 0; i < rte_socket_count(); i++)
		if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &s) == 0)
			used += s.heap_allocsz_bytes;
	return used;
}

void
fo_bench_print_stats(const struct fo_engine_stats *s)
{
	uint64_t malformed = 0;
	int i;

	for (i = 0; i < FO_DECODE_ERROR_COUNT; i++)
		malformed += s->malformed[i];
	printf("\"engine\": {\"packets\": %lu, \"handed_off\": %lu, \"handoff_full\": %lu, \"unmatched\": %lu, "
	       "\"malformed\": %lu, \"flows_created\": %lu, \"flows_active\": %lu, \"table_full\": %lu, "
	       "\"tx_packets\": %lu, \"tx_unsent\": %lu, \"dropped\": %lu}",
	       (unsigned long)s->packets, (unsigned long)s->handed_off, (unsigned long)s->handoff_full,
	       (unsigned long)s->unmatched, (unsigned long)malformed, (unsigned long)s->flows_created,
	       (unsigned long)s->flows_active, (unsigned long)s->table_full, (unsigned long)s->tx_packets,
	       (unsigned long)s->tx_unsent, (unsigned long)s->dropped);
}

int
fo_bench_selected(const char *only, const char *name)
{
	size_t len = strlen(name);
	const char *p = only;

	if (only == NULL)
		return 1;
	while ((p = strstr(p, name)) != NULL) {
		if ((p == only || p[-1] == ',') && (p[len] == '\0' || p[len] == ','))
			return 1;
		p += len;
	}
	return 0;
}
