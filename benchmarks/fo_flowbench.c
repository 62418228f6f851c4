/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fo_flowbench: the flow engine's throughput on one core, on generated Ethernet/IPv4/TCP frames.
 *
 *   fo_flowbench [EAL arguments] -- [--seconds S] [--warmup S] [--packets N] [--only NAME,...] [--list]
 *
 * Every scenario builds an engine through the C API, then calls fo_engine_burst() on bursts of
 * 32 packets for a fixed time on the calling lcore. The engine sends what it releases into a
 * net_ring port; the generator takes those mbufs back from the port's TX ring and rewrites them
 * into the next packets, so the steady state allocates and frees nothing (fo_gen.c: the
 * generator and the rig, shared with the processors benchmark). One JSON object goes to stdout,
 * progress to stderr.
 *
 * The hash scenarios time the flow index's hash alone (keys in L1, hashed one after another as
 * the bulk lookup does). The collide scenarios send the connections of keys crafted to share
 * one CRC32 (the unkeyed hash the index had; fo_collide.c) and, for comparison, as many plain
 * connections: with an unkeyed CRC32 every crafted key has one home bucket.
 *
 * --packets N replaces the timed warm-up and measurement of the throughput scenarios with N
 * packets, no warm-up: a run whose work is the same every time, for counting instructions under
 * an instrumenting tool (valgrind --tool=callgrind; BENCHMARKS.md says how).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include <flowos/fo_builtins.h>
#include <flowos/fo_engine.h>

#include "../ext/src/fo_flow_index.h"
#include "fo_benchengine.h"
#include "fo_collide.h"
#include "fo_gen.h"

#define BURST 32
#define POOL_SIZE 8191
#define POOL_CACHE 256
#define ERRLEN 256

enum kind {
	K_GENERATOR,    /* no engine: the generator and the TX ring alone */
	K_UNMATCHED,    /* definitions that match none of the traffic */
	K_FLOWS,        /* one catch-all definition, no processors */
	K_PIPELINE,     /* one catch-all definition, [counter] then [acl] */
	K_HASH,         /* no engine, no packets: the flow index's hash of `flows` keys, over and over */
};

enum keys {
	KEYS_GEN,       /* fo_gen's connections */
	KEYS_PLAIN,     /* fo_collide_plain_keys' */
	KEYS_CRAFTED,   /* fo_collide_keys': one CRC32 for all */
	KEYS_IPV6,      /* K_HASH: IPv6 keys (the others are IPv4) */
};

struct scenario {
	const char *name;
	enum kind kind;
	uint32_t defs;          /* K_UNMATCHED: how many definitions */
	uint32_t flows;         /* concurrent flows in the traffic */
	int setup;              /* every packet a new flow, `flows` of them once: flow setup rate and memory */
	enum keys keys;
	int reloaded;           /* the engine switched to a second, same configuration first (docs/reload.md) */
};

static const struct scenario scenarios[] = {
	{ "generator_only", K_GENERATOR, 0, 100000, 0, KEYS_GEN, 0 },
	{ "classify_1", K_UNMATCHED, 1, 100000, 0, KEYS_GEN, 0 },
	{ "classify_16", K_UNMATCHED, 16, 100000, 0, KEYS_GEN, 0 },
	{ "classify_256", K_UNMATCHED, 256, 100000, 0, KEYS_GEN, 0 },
	{ "flows_1k", K_FLOWS, 1, 1000, 0, KEYS_GEN, 0 },
	{ "flows_1k_reloaded", K_FLOWS, 1, 1000, 0, KEYS_GEN, 1 },
	{ "flows_100k", K_FLOWS, 1, 100000, 0, KEYS_GEN, 0 },
	{ "flows_1m", K_FLOWS, 1, 1000000, 0, KEYS_GEN, 0 },
	{ "pipeline_100k", K_PIPELINE, 1, 100000, 0, KEYS_GEN, 0 },
	{ "setup_1m", K_FLOWS, 1, 1000000, 1, KEYS_GEN, 0 },
	{ "setup_1m_pipeline", K_PIPELINE, 1, 1000000, 1, KEYS_GEN, 0 },
	{ "hash_ipv4", K_HASH, 0, 4096, 0, KEYS_PLAIN, 0 },
	{ "hash_ipv6", K_HASH, 0, 4096, 0, KEYS_IPV6, 0 },
	{ "plain_8k", K_FLOWS, 1, 8192, 0, KEYS_PLAIN, 0 },
	{ "crc32_collide_8k", K_FLOWS, 1, 8192, 0, KEYS_CRAFTED, 0 },
};

/* The test rig, shared by every scenario. */
static struct rte_mempool *pool;
static struct fo_gen_rig rig;
static int socket_id;

/* ------------------------------------------------------------------------------------------- */
/* Engines */

/*
 * The shard switches to a second configuration like its first, before any traffic: the first is
 * torn down, and the second's definitions sit after its in the definition space (what a run
 * after a reload has: the classifier's results are offset).
 */
static int
reload(struct fo_engine *e, const struct fo_pipeline_conf *pc, enum fo_bench_engine_kind kind, uint32_t defs,
       char *err)
{
	struct fo_pipeline_conf *next;
	int ret;

	err[0] = '\0';
	next = fo_bench_pipeline_create_next(pc, kind, defs, pool, err, ERRLEN);
	if (next == NULL)
		return -1;
	ret = fo_engine_stage(e, next);
	if (ret == 0 && (ret = fo_engine_stage_setup(e, err, ERRLEN)) != 0)
		fo_engine_unstage(e);
	if (ret == 0)
		ret = fo_engine_switch(e, 0);
	fo_pipeline_conf_free(next);   /* the engine holds it */
	if (ret != 0 && err[0] == '\0')
		snprintf(err, ERRLEN, "the switch: %s", strerror(-ret));
	return ret;
}

static struct fo_engine *
build_engine(const struct scenario *sc, char *err)
{
	enum fo_bench_engine_kind kind = sc->kind == K_UNMATCHED ? FO_BENCH_UNMATCHED :
		sc->kind == K_PIPELINE ? FO_BENCH_PIPELINE : FO_BENCH_FLOWS;

	struct fo_pipeline_conf *pc = fo_bench_pipeline_create(kind, sc->defs, pool, err, ERRLEN);
	struct fo_engine *e;

	if (pc == NULL)
		return NULL;
	/* Twice the concurrent flows (as one would configure it), or exactly them when filling the table. */
	e = fo_bench_engine_create(pc, pool, sc->kind == K_UNMATCHED ? 1024 : sc->setup ? sc->flows : 2 * sc->flows,
				   socket_id, err, ERRLEN);
	if (e != NULL && sc->reloaded && reload(e, pc, kind, sc->defs, err) != 0) {
		fo_engine_free(e);
		e = NULL;
	}
	fo_pipeline_conf_free(pc);   /* the engine holds it */
	return e;
}

/* ------------------------------------------------------------------------------------------- */
/* Keys */

/* sc->flows keys of the kind sc asks for (malloc'd), or NULL. */
static struct fo_flow_key *
make_keys(const struct scenario *sc)
{
	struct fo_flow_key *keys = calloc(sc->flows, sizeof(*keys));
	uint32_t i, j;

	if (keys == NULL)
		return NULL;
	if (sc->keys == KEYS_CRAFTED) {
		if (fo_collide_keys(keys, sc->flows) != 0) {
			free(keys);
			return NULL;
		}
		return keys;
	}
	fo_collide_plain_keys(keys, sc->flows);
	if (sc->keys == KEYS_IPV6) {
		for (i = 0; i < sc->flows; i++) {
			keys[i].family = 6;
			for (j = 4; j < 16; j++) {
				keys[i].addr_lo[j] = (uint8_t)(i * 7 + j);
				keys[i].addr_hi[j] = (uint8_t)(j * 13);
			}
		}
	}
	return keys;
}

/* The connections of keys (a client's key has it on the low side), for the generator. */
static struct fo_gen_tuple *
make_tuples(const struct fo_flow_key *keys, uint32_t n)
{
	struct fo_gen_tuple *t = calloc(n, sizeof(*t));
	uint32_t i;

	for (i = 0; t != NULL && i < n; i++) {
		memcpy(&t[i].client, keys[i].addr_lo, 4);
		memcpy(&t[i].server, keys[i].addr_hi, 4);
		t[i].cport = rte_cpu_to_be_16(keys[i].port_lo);
		t[i].sport = rte_cpu_to_be_16(keys[i].port_hi);
	}
	return t;
}

/*
 * Prints the hash's rate over sc->flows keys for `seconds` (after `warmup`), in the fields the
 * throughput scenarios use (a key for a packet). Returns 0 or -ENOMEM.
 */
static int
run_hash(const struct scenario *sc, double seconds, double warmup)
{
	struct fo_flow_key *keys = make_keys(sc);
	struct flow_index *ix = fo_flow_index_create("fb_hash", 16, socket_id);
	uint64_t start, cycles = 0, hashed = 0, limit;
	uint32_t i, sink = 0;
	int pass;

	if (keys == NULL || ix == NULL) {
		free(keys);
		fo_flow_index_free(ix);
		printf("\"error\": \"out of memory\", ");
		return -ENOMEM;
	}
	for (pass = 0; pass < 2; pass++) {
		limit = (uint64_t)((pass ? seconds : warmup) * rte_get_tsc_hz());
		start = rte_rdtsc();
		hashed = 0;
		do {
			for (i = 0; i < sc->flows; i++)
				sink += fo_flow_index_hash(ix, &keys[i]);
			hashed += sc->flows;
		} while ((cycles = rte_rdtsc() - start) < limit);
	}
	printf("\"mpps\": %.4f, \"cycles_per_packet\": %.2f, \"packets\": %lu, \"seconds\": %.4f, "
	       "\"keys\": %u, \"sink\": %u, ", hashed / (cycles / (double)rte_get_tsc_hz()) / 1e6,
	       cycles / (double)hashed, (unsigned long)hashed, cycles / (double)rte_get_tsc_hz(), sc->flows, sink);
	free(keys);
	fo_flow_index_free(ix);
	return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Running */

/* One burst: through the engine, or (no engine) straight to the port the engine would send to. */
static int
burst(struct fo_engine *e, struct fo_gen *g)
{
	return fo_gen_step(e, g, &rig, BURST);
}

/*
 * The time this thread has run on a CPU: on a shared machine, the measured window less the time
 * it waited for one (FastClick's side of benchmarks/fastclick/compare.py is measured alike).
 */
static double
thread_cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Runs one scenario and prints its JSON member. Throughput: one pass over the traffic (which
 * creates every flow), `warmup` seconds more, then measure. Setup: one packet per new flow,
 * `flows` of them, timed from an empty table; the heap is read before the engine, after
 * building it and once full.
 */
static int
run_scenario(const struct scenario *sc, double seconds, double warmup, uint64_t fixed_packets)
{
	char err[ERRLEN] = "";
	size_t heap_before = fo_bench_heap_used(), heap_built = 0, heap_full = 0;
	struct fo_engine *e = NULL;
	struct fo_engine_stats st;
	struct fo_gen_tuple *tuples = NULL;
	uint64_t cycles = 0;
	double cpu_start = 0, cpu_seconds;
	int64_t packets;
	struct fo_gen g;

	fprintf(stderr, "fo_flowbench: %s ...\n", sc->name);
	if (sc->kind != K_GENERATOR && sc->kind != K_HASH) {
		e = build_engine(sc, err);
		if (e == NULL) {
			char *c;

			for (c = err; *c != '\0'; c++)      /* keep the JSON valid */
				if (*c == '"' || *c == '\\')
					*c = '\'';
			/* A failed build should have freed all it allocated: say if it did not. */
			printf("\"%s\": {\"error\": \"%s\", \"heap_leaked_bytes\": %ld}", sc->name, err,
			       (long)(fo_bench_heap_used() - heap_before));
			return -1;
		}
		heap_built = fo_bench_heap_used();
	}
	printf("\"%s\": {", sc->name);
	if (sc->kind == K_HASH) {
		run_hash(sc, seconds, warmup);
	} else if (sc->setup) {
		uint64_t start, i;

		fo_gen_init(&g, sc->flows, 1, RTE_TCP_SYN_FLAG);
		start = rte_rdtsc();
		for (i = 0; i < sc->flows; i += BURST)
			if (burst(e, &g) != 0)
				break;
		cycles = rte_rdtsc() - start;
		packets = i;
		heap_full = fo_bench_heap_used();
		fo_engine_read_stats(e, &st);
		printf("\"flows\": %lu, \"seconds\": %.6f, \"mflows_per_s\": %.4f, \"cycles_per_flow\": %.1f, "
		       "\"engine_heap_built_mib\": %.2f, \"engine_heap_full_mib\": %.2f, "
		       "\"heap_bytes_per_flow\": %.1f, ",
		       (unsigned long)packets, cycles / (double)rte_get_tsc_hz(),
		       packets / (cycles / (double)rte_get_tsc_hz()) / 1e6, cycles / (double)packets,
		       (heap_built - heap_before) / 1048576.0, (heap_full - heap_before) / 1048576.0,
		       (heap_full - heap_before) / (double)st.flows_created);
	} else {
		fo_gen_init(&g, sc->flows, 0, RTE_TCP_ACK_FLAG);
		if (sc->keys != KEYS_GEN) {
			struct fo_flow_key *keys = make_keys(sc);

			tuples = keys != NULL ? make_tuples(keys, sc->flows) : NULL;
			free(keys);
			if (tuples == NULL) {
				printf("\"error\": \"cannot make the keys\"}");
				fo_engine_free(e);
				return -1;
			}
			fo_gen_init_tuples(&g, tuples, sc->flows, RTE_TCP_ACK_FLAG);
		}
		/* One pass over the traffic creates every flow, however long `warmup` is. */
		for (packets = 0; packets < (int64_t)g.period && packets >= 0; packets += BURST)
			if (burst(e, &g) != 0)
				packets = -ENOMEM;
		if (packets >= 0 && fixed_packets > 0) {
			uint64_t start = rte_rdtsc();

			cpu_start = thread_cpu_seconds();
			packets = fo_gen_run_packets(e, &g, &rig, BURST, fixed_packets);
			cycles = rte_rdtsc() - start;
		} else if (packets >= 0) {
			packets = fo_gen_run_for(e, &g, &rig, BURST, warmup, &cycles);
			cpu_start = thread_cpu_seconds();
			if (packets >= 0)
				packets = fo_gen_run_for(e, &g, &rig, BURST, seconds, &cycles);
		}
		cpu_seconds = thread_cpu_seconds() - cpu_start;
		free(tuples);
		if (packets < 0) {
			printf("\"error\": \"the mbuf pool ran dry: mbufs are being lost\"}");
			fo_engine_free(e);
			return -1;
		}
		printf("\"mpps\": %.4f, \"cycles_per_packet\": %.1f, \"packets\": %lu, \"seconds\": %.4f, "
		       "\"cpu_seconds\": %.4f, \"flows\": %u, ", packets / (cycles / (double)rte_get_tsc_hz()) / 1e6,
		       cycles / (double)packets, (unsigned long)packets, cycles / (double)rte_get_tsc_hz(),
		       cpu_seconds, sc->flows);
		if (e != NULL)
			printf("\"engine_heap_mib\": %.2f, ", (heap_built - heap_before) / 1048576.0);
	}
	if (e != NULL) {
		uint64_t start;

		fo_engine_read_stats(e, &st);
		fo_bench_print_stats(&st);
		/* Ending every flow at once: the teardown rate, for the setup scenarios. */
		start = rte_rdtsc();
		fo_engine_shutdown(e);
		cycles = rte_rdtsc() - start;
		if (sc->setup)
			printf(", \"shutdown_mflows_per_s\": %.4f",
			       st.flows_active / (cycles / (double)rte_get_tsc_hz()) / 1e6);
		fo_engine_free(e);
	} else {
		printf("\"engine\": null");
	}
	fo_gen_rig_drain(&rig);
	/* What the engine left allocated, and mbufs neither in the pool nor in the ring. */
	printf(", \"heap_leaked_bytes\": %ld, \"mbufs_missing\": %d}",
	       (long)(fo_bench_heap_used() - heap_before), (int)(POOL_SIZE - rte_mempool_avail_count(pool)));
	return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Set-up */

static int
rig_create(void)
{
	int ret;

	socket_id = (int)rte_socket_id();
	pool = rte_pktmbuf_pool_create("fb_pool", POOL_SIZE, POOL_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket_id);
	if (pool == NULL) {
		fprintf(stderr, "fo_flowbench: cannot create the mbuf pool: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	ret = fo_gen_rig_create(&rig, "fb_ring", pool, socket_id);
	if (ret != 0) {
		fprintf(stderr, "fo_flowbench: cannot create the net_ring port: %s\n", rte_strerror(-ret));
		return -1;
	}
	/* Registered once here, so that the first engine's heap figures do not include them. */
	if (fo_pkt_meta_register() != 0) {
		fprintf(stderr, "fo_flowbench: cannot register the engine's mbuf fields\n");
		return -1;
	}
	return 0;
}

static void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [EAL args] -- [--seconds S] [--warmup S] [--packets N] [--only NAME,...] [--list]\n",
		prog);
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "packets", required_argument, NULL, 'p' },
		{ "only", required_argument, NULL, 'o' },
		{ "list", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	double seconds = 2.0, warmup = 0.5;
	uint64_t fixed_packets = 0;
	const char *only = NULL;
	int ret, opt, first = 1, failed = 0;
	size_t i;

	ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		fprintf(stderr, "fo_flowbench: cannot start the EAL: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= ret;
	argv += ret;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			seconds = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'p': {
			char *end;

			fixed_packets = strtoull(optarg, &end, 10);
			if (*end != '\0' || fixed_packets == 0) {
				fprintf(stderr, "fo_flowbench: --packets wants a positive number, not '%s'\n", optarg);
				rte_eal_cleanup();
				return 2;
			}
			break;
		}
		case 'o':
			only = optarg;
			break;
		case 'l':
			for (i = 0; i < RTE_DIM(scenarios); i++)
				printf("%s\n", scenarios[i].name);
			rte_eal_cleanup();
			return 0;
		default:
			usage(argv[0]);
			rte_eal_cleanup();
			return 2;
		}
	}
	if (seconds <= 0 || warmup < 0 || rig_create() != 0) {
		rte_eal_cleanup();
		return 1;
	}
	if (fo_gen_self_check(&rig) != 0) {
		fprintf(stderr, "fo_flowbench: the generator's checksums are wrong\n");
		rte_eal_cleanup();
		return 1;
	}
	printf("{\"benchmark\": \"flows\", \"memory\": \"%s\", \"tsc_hz\": %lu, \"burst\": %d, \"frame_len\": %d, "
	       "\"seconds\": %g, \"warmup\": %g, \"sizeof_fo_flow\": %zu, \"scenarios\": {",
	       rte_eal_has_hugepages() ? "hugepages" : "no-huge", (unsigned long)rte_get_tsc_hz(), BURST,
	       FO_GEN_FRAME_LEN + 4, seconds, warmup, sizeof(struct fo_flow));
	for (i = 0; i < RTE_DIM(scenarios); i++) {
		if (!fo_bench_selected(only, scenarios[i].name))
			continue;
		if (!first)
			printf(", ");
		first = 0;
		failed |= run_scenario(&scenarios[i], seconds, warmup, fixed_packets) != 0;
		fflush(stdout);
	}
	printf("}}\n");
	fo_gen_rig_free(&rig);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return failed;
}
