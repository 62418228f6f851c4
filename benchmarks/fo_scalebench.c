/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fo_scalebench: the flow engine on several worker lcores, one engine shard each, as flowos-run
 * --workers N runs it.
 *
 *   fo_scalebench [EAL arguments] -- [--flows N] [--seconds S] [--warmup S] [--steer-pattern P]
 *                 [--only NAME,...] [--list]
 *
 * The workers are the EAL's lcores, one per CPU (--lcores), the main lcore worker 0. Scenarios:
 *
 *   bridge    each worker: its own generator (fo_gen.c) sends into its own net_ring port, no
 *             engine: forwarding only, and the generator's cost for the others.
 *   pipeline  each worker: its own generator and port, and an engine shard of its own (one
 *             catch-all definition, [counter] then [acl], as fo_flowbench's pipeline_100k) built
 *             with fo_engine_set_shard as flowos-run builds it. Worker w's `flows` connections are
 *             all ones fo_steer gives worker w: what a NIC's symmetric RSS, with FlowOS's key and
 *             redirection table, delivers to queue w. Nothing is handed over.
 *   spread    the spreading mode of a port that cannot spread traffic: worker 0 alone receives,
 *             flows x workers connections owned by every worker; it hands each packet another
 *             shard owns to that shard's inbox, and the other workers only drain their inboxes,
 *             sending on their own TX queue of worker 0's port (whose mbufs they free, as a NIC's
 *             TX completion would; worker 0's generator takes them from the pool again).
 *
 * The ways to spread one receiver's traffic (fo_spread.h), compared: worker 0 only receives and
 * spreads flows x (workers - 1) connections to the other workers, which process what they get
 * with an engine of their own (the same pipeline) and send on their TX queue of worker 0's port.
 * Each packet's flow hash is computed alike (as the engine's steering does), then:
 *
 *   inbox        handed to its owner's inbox (the spreading mode's handover, receiver aside)
 *   distributor  rte_distributor, the hash its flow tag
 *   eventdev     an event_sw device's atomic queue, its scheduler run by the receiver
 *   *_bare       the same, but the workers free what they receive: what the receiver alone reaches
 *
 * At every worker, a check (fo_spread_check) counts packets out of order and connections that
 * reached more than one worker (which a flow table sharded by worker would see as two flows).
 *
 * Each worker times its own bursts after one pass over its traffic (which creates every flow)
 * and `warmup` seconds; the workers start together. One JSON object goes to stdout, progress to
 * stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include <flowos/fo_engine.h>
#include <flowos/fo_processor.h>
#include <flowos/fo_steer.h>

#include "fo_benchengine.h"
#include "fo_gen.h"
#include "fo_spread.h"

#define BURST 32
#define POOL_PER_WORKER 8192        /* mbufs per worker (one less in all: a ring's size) */
#define POOL_CACHE 256
#define INBOX_SIZE 1024             /* flowos/runtime/runner.py's INBOX_SIZE */
#define ERRLEN 256

enum mode {
	M_BRIDGE,       /* per worker: generator and port, no engine */
	M_RSS,          /* per worker: generator, port and shard, connections it owns */
	M_SPREAD,       /* worker 0 receives every connection and hands over the others' */
	M_SPREAD_ONLY,  /* worker 0 only receives and spreads (fo_spread), the others process */
};

struct scenario {
	const char *name;
	enum mode mode;
	enum fo_spread_kind spread;     /* M_SPREAD_ONLY */
	int bare;                       /* M_SPREAD_ONLY: the workers free what they receive */
};

static const struct scenario scenarios[] = {
	{ "bridge", M_BRIDGE, 0, 0 },
	{ "pipeline", M_RSS, 0, 0 },
	{ "spread", M_SPREAD, 0, 0 },
	{ "inbox", M_SPREAD_ONLY, FO_SPREAD_INBOX, 0 },
	{ "distributor", M_SPREAD_ONLY, FO_SPREAD_DISTRIBUTOR, 0 },
	{ "eventdev", M_SPREAD_ONLY, FO_SPREAD_EVENTDEV, 0 },
	{ "inbox_bare", M_SPREAD_ONLY, FO_SPREAD_INBOX, 1 },
	{ "distributor_bare", M_SPREAD_ONLY, FO_SPREAD_DISTRIBUTOR, 1 },
	{ "eventdev_bare", M_SPREAD_ONLY, FO_SPREAD_EVENTDEV, 1 },
};

struct worker {
	unsigned int lcore;
	struct fo_gen_rig rig;          /* its own port (M_SPREAD: worker 0's is everyone's) */
	struct fo_engine *e;            /* NULL in M_BRIDGE */
	struct rte_ring *inbox;
	struct fo_gen_tuple *tuples;    /* M_RSS: the connections it owns */
	struct fo_gen g;
	/* Results, written by the worker's lcore. */
	int64_t packets;                /* timed, or -ENOMEM */
	uint64_t cycles;
	uint64_t generated;             /* everything its generator made, the first pass included */
	uint64_t polls, busy;           /* M_SPREAD, workers > 0: inbox polls, and those that found packets */
	uint64_t received, disorder;    /* M_SPREAD_ONLY, workers > 0: packets, and fo_spread_check's count */
	double cpu_seconds;             /* M_SPREAD_ONLY, the receiver: CPU time its timed seconds had */
} __rte_cache_aligned;

/* One run of a scenario: what every worker reads. */
struct run {
	const struct scenario *sc;
	uint16_t workers;
	uint32_t flows;                 /* per worker */
	double seconds, warmup;
	uint16_t generating;            /* workers with a generator: all, or (M_SPREAD) worker 0 */
	uint32_t ready;                 /* workers through their first pass */
	uint32_t done;                  /* generating workers through their timed bursts */
	struct fo_spread *spread;       /* M_SPREAD_ONLY */
};

static struct rte_mempool *pool;
static struct worker workers[FO_MAX_WORKERS];
static uint16_t n_workers;
static int socket_id;
static struct fo_steer steer;
static uint16_t steer_pattern = 0x6D5A;   /* flowos/runtime/runner.py's STEER_PATTERN */
static struct fo_spread *spreaders[FO_SPREAD_KINDS];   /* made once: a distributor cannot be freed */
static int spreader_errno[FO_SPREAD_KINDS];
static struct fo_spread_check check;    /* M_SPREAD_ONLY */

/* ------------------------------------------------------------------------------------------- */
/* Traffic */

/* The worker fo_steer gives connection c (in either direction: the hash is symmetric). */
static uint16_t
owner_of(const struct fo_gen_tuple *c, uint16_t n)
{
	struct fo_match_fields f;

	memset(&f, 0, sizeof(f));
	f.family = FO_FAMILY_IPV4;
	f.proto = IPPROTO_TCP;
	memcpy(f.src_ip, &c->client, 4);
	memcpy(f.dst_ip, &c->server, 4);
	f.src_port = rte_be_to_cpu_16(c->cport);
	f.dst_port = rte_be_to_cpu_16(c->sport);
	return fo_steer_worker(fo_steer_hash(&steer, fo_steer_fold(&f, RTE_ETHER_TYPE_IPV4)), n);
}

/*
 * Gives every worker `flows` connections it owns, taken from fo_gen's connections in order
 * (each connection is some worker's: none is shared). Returns 0 or -ENOMEM.
 */
static int
deal_connections(uint32_t flows)
{
	uint32_t have[FO_MAX_WORKERS] = {0}, full = 0;
	struct fo_gen_tuple c;
	uint64_t i;
	uint16_t w;

	for (w = 0; w < n_workers; w++) {
		workers[w].tuples = calloc(flows, sizeof(*workers[w].tuples));
		if (workers[w].tuples == NULL)
			return -ENOMEM;
	}
	for (i = 0; full < n_workers && i < (1ull << 26); i++) {
		fo_gen_connection(i, &c);
		w = owner_of(&c, n_workers);
		if (have[w] == flows)
			continue;
		workers[w].tuples[have[w]++] = c;
		full += have[w] == flows;
	}
	return full == n_workers ? 0 : -ENOMEM;
}

/* The share of fo_gen's first `flows` connections that worker 0 does not own. */
static double
away_share(uint32_t flows)
{
	struct fo_gen_tuple c;
	uint64_t away = 0;
	uint32_t i;

	for (i = 0; i < flows; i++) {
		fo_gen_connection(i, &c);
		away += owner_of(&c, n_workers) != 0;
	}
	return away / (double)flows;
}

/* ------------------------------------------------------------------------------------------- */
/* Set-up and teardown of a run */

/* The EAL heap in use, on every socket (each worker's shard is on its own lcore's). */
static void
teardown(void)
{
	uint16_t w;

	for (w = 0; w < n_workers; w++) {
		struct worker *k = &workers[w];

		if (k->e != NULL) {
			fo_engine_shutdown(k->e);
			fo_engine_free(k->e);
		}
		fo_gen_rig_free(&k->rig);
		rte_ring_free(k->inbox);
		free(k->tuples);
		k->e = NULL;
		k->inbox = NULL;
		k->tuples = NULL;
	}
	fo_spread_check_fini(&check);
}

/* Ports, inboxes, shards and traffic for sc. Returns 0 or -1 with the reason in err. */
static int
setup(const struct run *r, char *err)
{
	const enum mode mode = r->sc->mode;
	const int spreading = mode == M_SPREAD || mode == M_SPREAD_ONLY;
	struct rte_ring *inboxes[FO_MAX_WORKERS];
	struct fo_pipeline_conf *pc;
	char name[RTE_RING_NAMESIZE];
	uint16_t w;
	int ret;

	for (w = 0; w < n_workers; w++) {
		memset(&workers[w].rig, 0, sizeof(workers[w].rig));
		workers[w].rig.port = -1;
	}
	if (mode == M_SPREAD_ONLY && r->spread == NULL) {
		snprintf(err, ERRLEN, "cannot make the %s spreader: %s", fo_spread_kind_name(r->sc->spread),
			 rte_strerror(spreader_errno[r->sc->spread]));
		return -1;
	}
	if (spreading && n_workers > FO_GEN_MAX_TX_QUEUES) {
		snprintf(err, ERRLEN, "the spreading mode's port has at most %d TX queues, one per worker",
			 FO_GEN_MAX_TX_QUEUES);
		return -1;
	}
	for (w = 0; w < n_workers; w++) {
		struct worker *k = &workers[w];
		const int socket = (int)rte_lcore_to_socket_id(k->lcore);

		/* Many producers (every shard may hand over), one consumer, as flowos-run's inboxes. */
		snprintf(name, sizeof(name), "sb_inbox%u", w);
		k->inbox = inboxes[w] = rte_ring_create(name, INBOX_SIZE, socket, RING_F_SC_DEQ);
		if (k->inbox == NULL) {
			snprintf(err, ERRLEN, "cannot create an inbox: %s", rte_strerror(rte_errno));
			return -1;
		}
		if (spreading && w > 0)
			continue;
		snprintf(name, sizeof(name), "sb_ring%u", w);
		/*
		 * Spreading: a TX queue per worker. Otherwise one, which a packet's owner would send on
		 * if the dealing disagreed with the engine (the run reports the handover): shared.
		 */
		ret = fo_gen_rig_create_txq(&k->rig, name, pool, socket, spreading ? n_workers : 1, !spreading);
		if (ret != 0) {
			snprintf(err, ERRLEN, "cannot create a net_ring port: %s", rte_strerror(-ret));
			return -1;
		}
	}
	if (mode == M_RSS && deal_connections(r->flows) != 0) {
		snprintf(err, ERRLEN, "cannot deal the connections to the workers");
		return -1;
	}
	ret = mode == M_SPREAD_ONLY ? fo_spread_check_init(&check, r->flows * (n_workers - 1u), socket_id) : 0;
	if (ret != 0) {
		snprintf(err, ERRLEN, "cannot make the spreading check: %s", rte_strerror(-ret));
		return -1;
	}
	pc = mode == M_BRIDGE ? NULL : fo_bench_pipeline_create(FO_BENCH_PIPELINE, 1, pool, err, ERRLEN);
	if (mode != M_BRIDGE && pc == NULL)
		return -1;
	for (w = 0; w < n_workers; w++) {
		struct worker *k = &workers[w];
		/* A shard holds `flows` flows (M_SPREAD: about that), in a table of twice as many. */
		uint32_t capacity = 2 * r->flows;

		if (mode == M_BRIDGE || (mode == M_SPREAD_ONLY && (w == 0 || r->sc->bare)))
			continue;
		/* Every shard of the one conf, as flowos-run makes them. */
		k->e = fo_bench_engine_create(pc, pool, capacity, (int)rte_lcore_to_socket_id(k->lcore), err, ERRLEN);
		if (k->e == NULL) {
			fo_pipeline_conf_free(pc);
			return -1;
		}
		/* M_SPREAD_ONLY: one engine per worker, unaware of the others (the spreader keeps flows apart). */
		ret = mode == M_SPREAD_ONLY ? 0 : fo_engine_set_shard(k->e, w, n_workers, inboxes, steer_pattern);
		if (ret == 0)
			ret = fo_engine_set_txq(k->e, spreading ? workers[0].rig.port : k->rig.port, spreading ? w : 0,
						NULL);
		if (ret != 0) {
			snprintf(err, ERRLEN, "cannot make the engine a shard: %s", strerror(-ret));
			fo_pipeline_conf_free(pc);
			return -1;
		}
	}
	fo_pipeline_conf_free(pc);   /* the shards hold it: freed with the last (teardown) */
	for (w = 0; w < n_workers; w++) {
		struct worker *k = &workers[w];

		if (mode == M_RSS)
			fo_gen_init_tuples(&k->g, k->tuples, r->flows, RTE_TCP_ACK_FLAG);
		else if (mode == M_SPREAD_ONLY)
			fo_gen_init(&k->g, r->flows * (n_workers - 1u), 0, RTE_TCP_ACK_FLAG);
		else
			fo_gen_init(&k->g, mode == M_SPREAD ? r->flows * n_workers : r->flows, 0, RTE_TCP_ACK_FLAG);
		k->packets = 0;
		k->cycles = k->generated = k->polls = k->busy = k->received = k->disorder = 0;
		k->cpu_seconds = 0;
	}
	if (mode == M_SPREAD_ONLY)
		fo_spread_reset(r->spread);
	return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* The workers */

/*
 * Waits until every worker has made its flows, so that all measure at the same time; meanwhile
 * processes what other shards hand this one, which may be waiting for room in its inbox.
 */
static void
start_together(struct run *r, struct worker *k)
{
	struct rte_mbuf *pkts[BURST];
	unsigned int n;

	__atomic_fetch_add(&r->ready, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&r->ready, __ATOMIC_ACQUIRE) < r->workers) {
		n = k->e != NULL ? rte_ring_dequeue_burst(k->inbox, (void **)pkts, BURST, NULL) : 0;
		if (n > 0)
			fo_engine_inbox(k->e, pkts, (uint16_t)n);
		else
			rte_pause();
	}
}

/* A generating worker: one pass over its traffic, warm-up, then `seconds` timed. */
static void
generate(struct run *r, struct worker *k)
{
	int64_t pass, warm = -ENOMEM, timed = -ENOMEM;
	uint64_t cycles;

	pass = fo_gen_run_packets(k->e, &k->g, &k->rig, BURST, k->g.period);
	start_together(r, k);
	if (pass >= 0)
		warm = fo_gen_run_for(k->e, &k->g, &k->rig, BURST, r->warmup, &cycles);
	if (warm >= 0)
		timed = fo_gen_run_for(k->e, &k->g, &k->rig, BURST, r->seconds, &k->cycles);
	k->packets = timed;
	k->generated = timed >= 0 ? (uint64_t)(pass + warm + timed) : 0;
}

/*
 * Until every generating worker is done, processes what other shards hand this one (their inbox
 * is drained as flowos-run's workers drain theirs). polls and busy: the loop's iterations and
 * those that found packets. `done` is read before the inbox: once it says every generator is
 * through, nothing more can arrive, so an empty inbox is the end.
 */
static void
drain_until_done(struct run *r, struct worker *k, uint16_t w)
{
	struct rte_mbuf *pkts[BURST];
	unsigned int n;

	for (;;) {
		int all_done = __atomic_load_n(&r->done, __ATOMIC_ACQUIRE) == r->generating;

		n = k->e != NULL ? rte_ring_dequeue_burst(k->inbox, (void **)pkts, BURST, NULL) : 0;
		k->polls++;
		if (n > 0) {
			k->busy++;
			fo_engine_inbox(k->e, pkts, (uint16_t)n);
		}
		if (r->sc->mode == M_SPREAD && w > 0)
			fo_gen_rig_drain_queue(&workers[0].rig, w);
		if (n == 0 && all_done)
			break;
	}
}

/*
 * The receiver of M_SPREAD_ONLY: bursts from its generator, tagged and spread, until `packets`
 * have gone (0: for `seconds`). Returns the packets, or -ENOMEM / -EINVAL (a packet that does not
 * decode), and sets the TSC cycles they took.
 */
static int64_t
spread_for(struct run *r, struct worker *k, uint64_t packets, double seconds, uint64_t *cycles)
{
	uint64_t start = rte_rdtsc(), end = start + (uint64_t)(seconds * rte_get_tsc_hz()), now;
	const uint16_t port = (uint16_t)k->rig.port;
	struct rte_mbuf *pkts[BURST];
	int64_t done = 0;

	do {
		if (fo_gen_burst(&k->g, &k->rig, pkts, BURST) != 0)
			return -ENOMEM;
		if (fo_spread_tag(r->spread, pkts, BURST, port) != 0) {
			rte_pktmbuf_free_bulk(pkts, BURST);
			return -EINVAL;
		}
		fo_spread_check_stamp(&check, pkts, BURST);
		fo_spread_send(r->spread, pkts, BURST);
		done += BURST;
		now = rte_rdtsc();
	} while (packets > 0 ? (uint64_t)done < packets : now < end);
	*cycles = now - start;
	return done;
}

static double
thread_cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The receiver of M_SPREAD_ONLY: a pass that makes every flow, warm-up, `seconds` timed, the end.
 * Its CPU time in the timed seconds says how much of them it ran, on a machine it shares.
 */
static void
receive_and_spread(struct run *r, struct worker *k)
{
	int64_t pass, warm = -ENOMEM, timed = -ENOMEM;
	uint64_t cycles;
	double cpu = 0;

	pass = spread_for(r, k, k->g.period, 0, &cycles);
	if (pass >= 0)
		warm = spread_for(r, k, 0, r->warmup, &cycles);
	if (warm >= 0) {
		cpu = thread_cpu_seconds();
		timed = spread_for(r, k, 0, r->seconds, &k->cycles);
		k->cpu_seconds = thread_cpu_seconds() - cpu;
	}
	/* Whatever failed, the workers get every packet that went and are let go. */
	fo_spread_finish(r->spread);
	k->packets = timed < 0 ? (pass < 0 ? pass : warm < 0 ? warm : timed) : timed;
	k->generated = timed >= 0 ? (uint64_t)(pass + warm + timed) : 0;
}

/*
 * A worker of M_SPREAD_ONLY: checks and processes (or frees) what the spreader gives it, and frees
 * what its TX queue holds, until the receiver says the run is over and nothing more comes.
 */
static void
work_spread(struct run *r, struct worker *k, uint16_t w)
{
	struct rte_mbuf *pkts[FO_SPREAD_MAX_RECEIVE];
	uint16_t n;

	for (;;) {
		int over = fo_spread_over(r->spread);

		n = fo_spread_receive(r->spread, w - 1, pkts);
		k->polls++;
		if (n > 0) {
			k->busy++;
			k->received += n;
			k->disorder += fo_spread_check(&check, w - 1, pkts, n);
			if (k->e != NULL)
				fo_engine_inbox(k->e, pkts, n);
			else
				rte_pktmbuf_free_bulk(pkts, n);
		}
		if (k->e != NULL)   /* what its engine sent */
			fo_gen_rig_drain_queue(&workers[0].rig, w);
		if (n == 0 && over)
			break;
	}
	fo_spread_leave(r->spread, w - 1);
}

static int
worker_main(void *arg)
{
	struct run *r = arg;
	struct worker *k;
	uint16_t w;

	for (w = 0; w < n_workers && workers[w].lcore != rte_lcore_id(); w++)
		;
	if (w == n_workers)
		return -EINVAL;
	k = &workers[w];
	if (r->sc->mode == M_SPREAD_ONLY) {
		if (w == 0)
			receive_and_spread(r, k);
		else
			work_spread(r, k, w);
		return 0;
	}
	if (w < r->generating) {
		generate(r, k);
		__atomic_fetch_add(&r->done, 1, __ATOMIC_ACQ_REL);
	} else {
		/* Ready at once: the receiver's first pass makes this shard's flows through its inbox. */
		__atomic_fetch_add(&r->ready, 1, __ATOMIC_ACQ_REL);
	}
	/* With RSS-like traffic nothing arrives here, unless the dealing disagrees with the engine. */
	drain_until_done(r, k, w);
	return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Results */

static void
print_engine(const struct fo_engine *e)
{
	struct fo_engine_stats s;

	if (e == NULL) {
		printf("\"engine\": null");
		return;
	}
	fo_engine_read_stats(e, &s);
	fo_bench_print_stats(&s);
}

static void
print_workers(const struct run *r)
{
	const double hz = (double)rte_get_tsc_hz();
	uint16_t w;

	printf("\"workers\": [");
	for (w = 0; w < n_workers; w++) {
		const struct worker *k = &workers[w];
		int receives = (r->sc->mode != M_SPREAD && r->sc->mode != M_SPREAD_ONLY) || w == 0;

		printf("%s{\"worker\": %u, \"lcore\": %u, \"cpu\": %d, \"receives\": %s, ", w ? ", " : "", w, k->lcore,
		       rte_lcore_to_cpu_id((int)k->lcore), receives ? "true" : "false");
		if (receives && k->packets > 0)
			printf("\"mpps\": %.4f, \"cycles_per_packet\": %.1f, \"packets\": %ld, \"seconds\": %.4f, "
			       "\"generated\": %lu, ", k->packets / (k->cycles / hz) / 1e6,
			       k->cycles / (double)k->packets, (long)k->packets, k->cycles / hz,
			       (unsigned long)k->generated);
		else if (!receives)
			printf("\"polls\": %lu, \"busy_polls\": %lu, ", (unsigned long)k->polls,
			       (unsigned long)k->busy);
		if (receives && r->sc->mode == M_SPREAD_ONLY && k->packets > 0)
			printf("\"cpu_seconds\": %.4f, \"cpu_ns_per_packet\": %.1f, ", k->cpu_seconds,
			       k->cpu_seconds * 1e9 / (double)k->packets);
		if (!receives && r->sc->mode == M_SPREAD_ONLY)
			printf("\"received\": %lu, \"disorder\": %lu, ", (unsigned long)k->received,
			       (unsigned long)k->disorder);
		print_engine(k->e);
		printf("}");
	}
	printf("]");
}

/* Runs one scenario on every worker and prints its JSON member. Returns 0 or -1. */
static int
run_scenario(const struct scenario *sc, uint32_t flows, double seconds, double warmup)
{
	struct run r = { .sc = sc, .workers = n_workers, .flows = flows, .seconds = seconds, .warmup = warmup,
			 .generating = sc->mode == M_SPREAD || sc->mode == M_SPREAD_ONLY ? 1 : n_workers,
			 .spread = sc->mode == M_SPREAD_ONLY ? spreaders[sc->spread] : NULL };
	size_t heap_before = fo_bench_heap_used();
	char err[ERRLEN] = "";
	int failed = 0, ret;
	uint16_t w;

	fprintf(stderr, "fo_scalebench: %s, %u workers ...\n", sc->name, n_workers);
	printf("\"%s\": {", sc->name);
	if (setup(&r, err) != 0) {
		char *c;

		for (c = err; *c != '\0'; c++)      /* keep the JSON valid */
			if (*c == '"' || *c == '\\')
				*c = '\'';
		teardown();
		printf("\"error\": \"%s\", \"heap_leaked_bytes\": %ld}", err, (long)(fo_bench_heap_used() - heap_before));
		return -1;
	}
	ret = rte_eal_mp_remote_launch(worker_main, &r, CALL_MAIN);
	rte_eal_mp_wait_lcore();
	for (w = 0; w < n_workers; w++)
		failed |= workers[w].packets < 0;
	if (ret != 0 || failed) {
		printf("\"error\": \"%s\", ", ret != 0 ? "a worker could not run" :
		       "the mbuf pool ran dry: mbufs are being lost");
		failed = 1;
	}
	printf("\"flows_per_worker\": %u, ", flows);
	if (sc->mode == M_SPREAD)
		printf("\"expected_handed_share\": %.6f, ", away_share(flows * n_workers));
	if (sc->mode == M_SPREAD_ONLY) {
		uint64_t split, visits;

		fo_spread_check_sum(&check, &split, &visits);
		printf("\"spreader\": \"%s\", \"bare\": %s, \"flows\": %u, \"flows_split\": %lu, \"flow_visits\": %lu, ",
		       fo_spread_kind_name(sc->spread), sc->bare ? "true" : "false", check.flows,
		       (unsigned long)split, (unsigned long)visits);
	}
	print_workers(&r);
	teardown();
	/* What the shards left allocated, and mbufs neither in the pool nor in a ring. */
	printf(", \"heap_leaked_bytes\": %ld, \"mbufs_missing\": %d}", (long)(fo_bench_heap_used() - heap_before),
	       (int)(pool->size - rte_mempool_avail_count(pool)));
	return failed ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Set-up */

static void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [EAL args: one lcore per worker] -- [--flows N] [--seconds S] [--warmup S] "
		"[--steer-pattern P] [--only NAME,...] [--list]\n", prog);
}

/* Worker 0 on the main lcore, then the others in lcore order. */
static void
assign_lcores(void)
{
	unsigned int lcore;

	n_workers = 0;
	workers[n_workers++].lcore = rte_get_main_lcore();
	RTE_LCORE_FOREACH_WORKER(lcore)
		if (n_workers < FO_MAX_WORKERS)
			workers[n_workers++].lcore = lcore;
}

/*
 * The spreaders the selected scenarios use, for every worker but the receiver: before any
 * scenario, as a distributor is never freed (its memory is not the scenario's leak).
 */
static void
make_spreaders(const char *only)
{
	size_t i;

	for (i = 0; n_workers >= 2 && i < RTE_DIM(scenarios); i++) {
		const struct scenario *sc = &scenarios[i];

		if (sc->mode != M_SPREAD_ONLY || spreaders[sc->spread] != NULL || spreader_errno[sc->spread] != 0 ||
		    !fo_bench_selected(only, sc->name))
			continue;
		spreaders[sc->spread] = fo_spread_create(sc->spread, n_workers - 1, steer_pattern, socket_id);
		if (spreaders[sc->spread] == NULL)
			spreader_errno[sc->spread] = rte_errno;
	}
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "flows", required_argument, NULL, 'f' },
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "steer-pattern", required_argument, NULL, 'p' },
		{ "only", required_argument, NULL, 'o' },
		{ "list", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	double seconds = 2.0, warmup = 0.5;
	const char *only = NULL;
	unsigned long flows = 100000, pattern = steer_pattern;
	int ret, opt, first = 1, failed = 0;
	size_t i;

	ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		fprintf(stderr, "fo_scalebench: cannot start the EAL: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= ret;
	argv += ret;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'f':
			flows = strtoul(optarg, NULL, 0);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'p':
			pattern = strtoul(optarg, NULL, 0);
			break;
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
	assign_lcores();
	/* Connections come from fo_gen's first 2^26; every worker needs `flows` of its own among them. */
	if (seconds <= 0 || warmup < 0 || flows == 0 || flows > (1ul << 26) / (4ul * n_workers) ||
	    pattern == 0 || pattern > UINT16_MAX) {
		usage(argv[0]);
		rte_eal_cleanup();
		return 2;
	}
	steer_pattern = (uint16_t)pattern;
	fo_steer_init(&steer, steer_pattern);
	socket_id = (int)rte_socket_id();
	pool = rte_pktmbuf_pool_create("sb_pool", POOL_PER_WORKER * n_workers - 1, POOL_CACHE, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE, socket_id);
	/* The dynamic fields once, before any scenario (their registration allocates). */
	if (pool == NULL || fo_pkt_meta_register() != 0 || fo_spread_check_register() != 0) {
		fprintf(stderr, "fo_scalebench: cannot create the mbuf pool: %s\n", rte_strerror(rte_errno));
		rte_eal_cleanup();
		return 1;
	}
	/* The generator's checksums, on a port whose creation also makes the ethdev layer's one-time
	 * allocations (the first scenario's heap figures would count them as leaked). */
	ret = fo_gen_rig_create(&workers[0].rig, "sb_check", pool, socket_id);
	if (ret == 0)
		ret = fo_gen_self_check(&workers[0].rig);
	fo_gen_rig_free(&workers[0].rig);
	if (ret != 0) {
		fprintf(stderr, "fo_scalebench: the generator's port or checksums are wrong: %s\n", rte_strerror(-ret));
		rte_mempool_free(pool);
		rte_eal_cleanup();
		return 1;
	}
	make_spreaders(only);
	printf("{\"benchmark\": \"scaling\", \"memory\": \"%s\", \"tsc_hz\": %lu, \"burst\": %d, \"frame_len\": %d, "
	       "\"workers\": %u, \"flows_per_worker\": %lu, \"steer_pattern\": %u, \"seconds\": %g, \"warmup\": %g, "
	       "\"scenarios\": {", rte_eal_has_hugepages() ? "hugepages" : "no-huge", (unsigned long)rte_get_tsc_hz(),
	       BURST, FO_GEN_FRAME_LEN + 4, n_workers, flows, steer_pattern, seconds, warmup);
	for (i = 0; i < RTE_DIM(scenarios); i++) {
		/* One worker spreads nothing: the spreading mode's baseline is pipeline on one worker. */
		if (!fo_bench_selected(only, scenarios[i].name) ||
		    ((scenarios[i].mode == M_SPREAD || scenarios[i].mode == M_SPREAD_ONLY) && n_workers < 2))
			continue;
		if (!first)
			printf(", ");
		first = 0;
		failed |= run_scenario(&scenarios[i], (uint32_t)flows, seconds, warmup) != 0;
		fflush(stdout);
	}
	printf("}}\n");
	for (i = 0; i < FO_SPREAD_KINDS; i++)
		fo_spread_free(spreaders[i]);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return failed;
}
