/* SPDX-License-Identifier: BSD-3-Clause */
/* What the fuzz targets share (fuzz_common.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "flowos/fo_port.h"

#include "fuzz_common.h"

struct rte_mempool *fuzz_pool;

void
fuzz_init(int port)
{
	char prefix[64];
	char *argv[] = { "fuzz", "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry",
			 "-l", "0", "--log-level", "error", "--file-prefix", prefix, "--vdev", "net_null0", NULL };
	int argc = port ? 15 : 13;
	struct fo_port_conf pconf = { 0 };
	struct fo_port_info port_info;

	/* Fuzzers run side by side (scripts/fuzz, pytest-xdist): a prefix per process. */
	snprintf(prefix, sizeof(prefix), "fuzz%d", (int)getpid());
	if (rte_eal_init(argc, argv) < 0) {
		fprintf(stderr, "fuzz: cannot start the EAL: %s\n", rte_strerror(rte_errno));
		exit(1);
	}
	fuzz_pool = rte_pktmbuf_pool_create("fuzz_pool", FUZZ_POOL_SIZE, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					    SOCKET_ID_ANY);
	if (fuzz_pool == NULL || fo_pkt_meta_register() != 0) {
		fprintf(stderr, "fuzz: no pool or mbuf fields\n");
		exit(1);
	}
	if (!port)
		return;
	pconf.pool = fuzz_pool;
	pconf.nb_rx_queues = pconf.nb_tx_queues = 1;
	pconf.nb_rxd = 512;
	pconf.nb_txd = 512;
	if (fo_port_start(0, &pconf, &port_info) != 0) {
		fprintf(stderr, "fuzz: cannot start the net_null port\n");
		exit(1);
	}
}

struct rte_mbuf *
fuzz_mbuf(const uint8_t *data, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(fuzz_pool);

	if (m == NULL) {
		fprintf(stderr, "fuzz: the pool ran dry: mbufs are being lost\n");
		abort();
	}
	if (len > rte_pktmbuf_tailroom(m))
		len = rte_pktmbuf_tailroom(m);
	memcpy(rte_pktmbuf_append(m, (uint16_t)len), data, len);
	m->hash.usr = 0;   /* a target's mark (fuzz_pipeline's), which a freed mbuf keeps */
	return m;
}

struct rte_mbuf *
fuzz_mbuf_chain(const uint8_t *data, size_t len)
{
	struct rte_mbuf *head = fuzz_mbuf(data, len);
	size_t done = rte_pktmbuf_data_len(head);

	while (done < len) {
		struct rte_mbuf *seg = fuzz_mbuf(data + done, len - done);

		done += rte_pktmbuf_data_len(seg);
		if (rte_pktmbuf_chain(head, seg) != 0) {
			fprintf(stderr, "fuzz: cannot chain a segment\n");
			abort();
		}
	}
	return head;
}

void
fuzz_check_pool(const char *target)
{
	unsigned int back = rte_mempool_avail_count(fuzz_pool);

	if (back != FUZZ_POOL_SIZE) {
		fprintf(stderr, "%s: %u of %u mbufs back in the pool: a leak\n", target, back, FUZZ_POOL_SIZE);
		abort();
	}
}

struct fo_pipeline_conf *
fuzz_conf(int streams, const struct fo_processor_ops *const *ops, uint16_t n)
{
	uint16_t stages[16], i;

	if (n > RTE_DIM(stages))
		abort();
	for (i = 0; i < n; i++)
		stages[i] = i;
	return fuzz_conf_stages(streams, ops, stages, n);
}

struct fo_pipeline_conf *
fuzz_conf_stages(int streams, const struct fo_processor_ops *const *ops, const uint16_t *stages, uint16_t n)
{
	struct fo_engine_conf conf = { 0 };
	struct fo_def_conf def = { 0 };
	struct fo_pipeline_conf *pc;
	char err[256] = "";
	uint16_t i;
	int t;

	conf.pool = fuzz_pool;
	conf.socket_id = SOCKET_ID_ANY;
	conf.clock = FO_CLOCK_CAPTURE;       /* time from the input (fuzz_traffic.c): runs repeat */
	for (t = 0; t < FO_TIMEOUT_CLASS_COUNT; t++)
		conf.timeout_ns[t] = 60ULL * 1000000000ULL;
	pc = fo_pipeline_conf_create(&conf);
	if (pc == NULL) {
		fprintf(stderr, "fuzz: fo_pipeline_conf_create: %s\n", rte_strerror(rte_errno));
		abort();
	}
	strcpy(def.name, "all");
	def.hold_packets = 256;
	def.hold_bytes = 1 << 20;
	def.streams = (uint8_t)streams;
	def.reorder_packets = 16;
	if (fo_pipeline_conf_add_definition(pc, &def) != 0)
		abort();
	for (i = 0; i < n; i++)
		if (fo_pipeline_conf_add_processor(pc, 0, stages[i], ops[i], NULL, 0, err, sizeof(err)) < 0) {
			fprintf(stderr, "fuzz: %s\n", err);
			abort();
		}
	if (fo_pipeline_conf_build(pc, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	return pc;
}

struct fo_engine *
fuzz_shard(struct fo_pipeline_conf *pc, uint32_t capacity)
{
	struct fo_shard_conf sc = { .flow_capacity = capacity, .socket_id = SOCKET_ID_ANY };
	struct fo_engine *e;
	char err[256] = "";

	sc.keep_budget = 256;                /* small, so that flows go over their share */
	e = fo_engine_create(pc, &sc);
	if (e == NULL) {
		fprintf(stderr, "fuzz: fo_engine_create: %s\n", rte_strerror(rte_errno));
		abort();
	}
	if (fo_engine_build(e, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	return e;
}

struct fo_engine *
fuzz_engine(uint32_t capacity, int streams, const struct fo_processor_ops *const *ops, uint16_t n)
{
	struct fo_pipeline_conf *pc = fuzz_conf(streams, ops, n);
	struct fo_engine *e = fuzz_shard(pc, capacity);

	fo_pipeline_conf_free(pc);   /* the shard holds it */
	return e;
}
