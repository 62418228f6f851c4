/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow engine with streams, built with the fast path's sources under AddressSanitizer and
 * UBSan by tests/test_streams_asan.py: frames from a corpus file (u32 length, bytes) go through
 * fo_engine_burst in bursts, out through port 0 (net_null, or net_pcap for the test to check).
 * Usage: stream_harness EAL-ARGS -- CORPUS [mixed|redact] [chain].
 *   mixed: a stream reader (finds a pattern, holds a few bytes now and then) and a stream editor
 *          (replaces "fox" with "wolverine", deletes "lazy "), both in C over fo_stream.h;
 *   redact: one editor that replaces each "SECRET-TOKEN-1234" with REPLACEMENT (658 bytes) and
 *          deletes each "DROP-ME/", holding back only what could start either (examples/redact.py);
 *   chain: each frame arrives as a chain of segments of varied sizes (the first may end inside
 *          the headers); else in segments as full as they go (one, but for a jumbo frame).
 * At the end every mbuf must be back in its pool. Prints: frames, finds, edits, then the engine's
 * stream counters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "flowos/fo_engine.h"
#include "flowos/fo_fields.h"
#include "flowos/fo_port.h"
#include "flowos/fo_stream.h"

static uint64_t finds, edits, wrong_fields;
static struct fo_engine *engine;
static uint64_t flow_starts, flow_ends, teardowns, wrong_calls;
static uint64_t call_record;   /* the supervisor's copy (fo_engine_set_call_record) */

/* The engine says which callback of which processor it is in (the watchdog's view, and the
 * supervisor's record of it): the reader is 0.0. */
static void
check_current_call(enum fo_callback what)
{
	struct fo_call c;

	if (fo_engine_current_call(engine, &c) != 1 || c.def != 0 || c.proc != 0 || c.what != what ||
	    call_record != ((uint64_t)what << 32) + 1)
		wrong_calls++;
}

static void
reader_teardown(void *ctx)
{
	teardowns++;
	check_current_call(FO_CALL_TEARDOWN);
}

static void
reader_flow_start(void *ctx, const struct fo_flow *flow, void *state, const struct rte_mbuf *first)
{
	flow_starts++;
	check_current_call(FO_CALL_FLOW_START);
}

static void
reader_flow_end(void *ctx, const struct fo_flow *flow, void *state, enum fo_flow_end_reason reason)
{
	flow_ends++;
	check_current_call(FO_CALL_FLOW_END);
}

static const char token[] = "SECRET-TOKEN-1234", drop_word[] = "DROP-ME/";
static char replacement[659];   /* 658 bytes, filled in main */

static void
reader(void *ctx, struct fo_batch *b, uint16_t n)
{
	static const char pat[] = "fox jumps";
	uint16_t i;
	uint8_t d;

	check_current_call(FO_CALL_PROCESS);
	for (i = 0; i < n; i++) {
		for (d = 0; d < 2; d++) {
			uint64_t at = fo_stream_start(&b[i], d), end = at + fo_stream_len(&b[i], d);
			int64_t hit;
			uint8_t buf[64];

			while ((hit = fo_stream_find(&b[i], d, pat, sizeof(pat) - 1, at, end)) >= 0) {
				finds++;
				fo_stream_read(&b[i], d, hit, buf, sizeof(buf));
				at = hit + 1;
			}
			/* Hold the last few bytes now and then: held packets come back next call. */
			if (end > 4 && (end & 3) == 0)
				fo_stream_release(&b[i], d, end - 4);
		}
	}
}

static void
editor(void *ctx, struct fo_batch *b, uint16_t n)
{
	uint16_t i;
	uint8_t d;

	for (i = 0; i < n; i++) {
		for (d = 0; d < 2; d++) {
			uint64_t at = fo_stream_start(&b[i], d);
			int64_t hit;

			while ((hit = fo_stream_find(&b[i], d, "fox", 3, at, fo_stream_start(&b[i], d) +
						     fo_stream_len(&b[i], d))) >= 0) {
				if (fo_stream_splice(&b[i], d, hit, 3, "wolverine", 9) == 0)
					edits++;
				at = hit + 9;
			}
			hit = fo_stream_find(&b[i], d, "lazy ", 5, fo_stream_start(&b[i], d),
					     fo_stream_start(&b[i], d) + fo_stream_len(&b[i], d));
			if (hit >= 0 && fo_stream_splice(&b[i], d, hit, 5, NULL, 0) == 0)
				edits++;
		}
	}
}

/* The offset of the first byte in [from, end) from which the stream's bytes could start pat. */
static uint64_t
partial_at(const struct fo_batch *b, uint8_t d, const char *pat, uint32_t pat_len, uint64_t from, uint64_t end)
{
	uint8_t tail[64];
	uint64_t at = RTE_MAX(from, end - RTE_MIN(end, (uint64_t)pat_len - 1));
	uint32_t n = fo_stream_read(b, d, at, tail, (uint32_t)(end - at)), k;

	for (k = 0; k < n; k++)
		if (memcmp(tail + k, pat, n - k) == 0)
			return at + k;
	return end;
}

/* Each word replaced, searched from where the flow's last call stopped (the per-flow state). */
static void
redactor(void *ctx, struct fo_batch *b, uint16_t n)
{
	uint16_t i;
	uint8_t d;

	for (i = 0; i < n; i++) {
		uint64_t *searched = b[i].state;
		uint16_t sport[64], dport[64], k, at;

		/* The vector fields read the headers, wherever the packet's segments end: 8080 on one side. */
		for (at = 0; at < b[i].n; at += 64) {
			uint16_t m = RTE_MIN(64, b[i].n - at);

			if (fo_field_vector(FO_FIELD_SPORT, b[i].pkts + at, m, sport) != 0 ||
			    fo_field_vector(FO_FIELD_DPORT, b[i].pkts + at, m, dport) != 0)
				wrong_fields++;
			for (k = 0; k < m; k++)
				wrong_fields += (sport[k] == 8080) == (dport[k] == 8080);
		}

		for (d = 0; d < 2; d++) {
			uint64_t start = fo_stream_start(&b[i], d), end = start + fo_stream_len(&b[i], d);
			uint64_t from = RTE_MAX(searched[d], start), at = from, keep;
			int64_t hit;

			while ((hit = fo_stream_find(&b[i], d, token, sizeof(token) - 1, at, end)) >= 0) {
				if (fo_stream_splice(&b[i], d, hit, sizeof(token) - 1, replacement, sizeof(replacement) - 1) != 0)
					break;
				edits++;
				end += sizeof(replacement) - sizeof(token);
				at = hit + sizeof(replacement) - 1;
			}
			at = from;
			while ((hit = fo_stream_find(&b[i], d, drop_word, sizeof(drop_word) - 1, at, end)) >= 0) {
				if (fo_stream_splice(&b[i], d, hit, sizeof(drop_word) - 1, NULL, 0) != 0)
					break;
				edits++;
				end -= sizeof(drop_word) - 1;
				at = hit;
			}
			/* The replacement holds neither word's first letter: only the sender's bytes can start one. */
			keep = RTE_MIN(partial_at(&b[i], d, token, sizeof(token) - 1, from, end),
				       partial_at(&b[i], d, drop_word, sizeof(drop_word) - 1, from, end));
			searched[d] = keep;
			fo_stream_release(&b[i], d, keep);
		}
	}
}

static const struct fo_processor_ops redactor_ops = {
	.name = "redactor", .level = FO_LEVEL_PAYLOAD, .readonly = 0, .state_size = 2 * sizeof(uint64_t),
	.process = redactor,
};

/*
 * A frame in segments: as full as they go (as net_pcap gives a jumbo frame), or with varied,
 * of sizes that vary, from the nth (the first may end inside the headers).
 */
static struct rte_mbuf *
chained(struct rte_mempool *pool, const uint8_t *frame, uint32_t len, int varied, uint32_t nth)
{
	static const uint16_t sizes[] = {40, 700, 1500, 64, 1200, 1, 333};
	struct rte_mbuf *head = NULL;
	uint32_t done = 0, k = nth;

	while (done < len || head == NULL) {
		struct rte_mbuf *seg = rte_pktmbuf_alloc(pool);
		uint32_t n;

		if (seg == NULL)
			return NULL;
		n = RTE_MIN(len - done, varied ? (uint32_t)sizes[k++ % RTE_DIM(sizes)] : rte_pktmbuf_tailroom(seg));
		memcpy(rte_pktmbuf_append(seg, n), frame + done, n);
		done += n;
		if (head == NULL)
			head = seg;
		else if (rte_pktmbuf_chain(head, seg) != 0)
			return NULL;
	}
	return head;
}

static const struct fo_processor_ops reader_ops = {
	.name = "reader", .level = FO_LEVEL_PAYLOAD, .readonly = 1, .process = reader,
	.flow_start = reader_flow_start, .flow_end = reader_flow_end, .teardown = reader_teardown,
};
static const struct fo_processor_ops editor_ops = {
	.name = "editor", .level = FO_LEVEL_PAYLOAD, .readonly = 0, .process = editor,
};

int
main(int argc, char **argv)
{
	struct fo_port_conf pconf = {0};
	struct fo_port_info port_info;
	struct fo_engine_conf conf = {0};
	struct fo_shard_conf sc = { .flow_capacity = 1024, .socket_id = SOCKET_ID_ANY };
	struct fo_pipeline_conf *pc;
	struct fo_def_conf def = {0};
	struct fo_engine_stats st;
	struct fo_proc_stats ps;
	struct fo_call call;
	struct fo_route route = {0};
	struct rte_mempool *pool;
	struct fo_engine *e;
	struct rte_mbuf *burst[32];
	char err[256];
	static uint8_t frame[1 << 16];
	uint32_t len, frames = 0;
	uint16_t n = 0;
	int eal, t, redact, chain;
	FILE *f;

	eal = rte_eal_init(argc, argv);
	if (eal < 0 || argc - eal < 2)
		return 2;
	redact = argc - eal > 2 && strcmp(argv[eal + 2], "redact") == 0;
	chain = argc - eal > 3 && strcmp(argv[eal + 3], "chain") == 0;
	for (t = 0; t < (int)sizeof(replacement) - 1; t++)
		replacement[t] = "[redacted]"[t % 10];
	f = fopen(argv[eal + 1], "rb");
	pool = rte_pktmbuf_pool_create("asan_pool", 8191, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (f == NULL || pool == NULL)
		return 3;
	pconf.pool = pool;
	pconf.nb_rx_queues = pconf.nb_tx_queues = 1;
	pconf.nb_rxd = 512;
	pconf.nb_txd = 512;
	pconf.tx_chain_max = UINT32_MAX;   /* net_pcap writes the chains (9,014 bytes at most here) whole */
	if (fo_port_start(0, &pconf, &port_info) != 0)
		return 4;
	conf.pool = pool;
	conf.socket_id = SOCKET_ID_ANY;
	for (t = 0; t < FO_TIMEOUT_CLASS_COUNT; t++)
		conf.timeout_ns[t] = 60ULL * 1000000000ULL;
	pc = fo_pipeline_conf_create(&conf);
	if (pc == NULL)
		return 5;
	strcpy(def.name, "all");
	def.hold_packets = 256;
	def.hold_bytes = 1 << 20;
	def.streams = 1;
	def.reorder_packets = 16;
	def.stream_hold_ms = 1;   /* held bytes let go by the engine too (fo_stream_hold.c) */
	if (fo_pipeline_conf_add_definition(pc, &def) != 0 ||
	    (redact ? fo_pipeline_conf_add_processor(pc, 0, 0, &redactor_ops, NULL, 0, err, sizeof(err)) < 0 :
	     (fo_pipeline_conf_add_processor(pc, 0, 0, &reader_ops, NULL, 0, err, sizeof(err)) < 0 ||
	      fo_pipeline_conf_add_processor(pc, 0, 1, &editor_ops, NULL, 0, err, sizeof(err)) < 0)) ||
	    fo_pipeline_conf_build(pc, err, sizeof(err)) != 0) {
		fprintf(stderr, "engine: %s\n", err);
		return 6;
	}
	e = engine = fo_engine_create(pc, &sc);
	fo_pipeline_conf_free(pc);   /* the engine holds it */
	if (e == NULL)
		return 5;
	fo_engine_set_call_record(e, &call_record);
	if (fo_engine_build(e, err, sizeof(err)) != 0) {
		fprintf(stderr, "engine: %s\n", err);
		return 6;
	}
	while (fread(&len, sizeof(len), 1, f) == 1) {
		struct rte_mbuf *m;

		if (len > sizeof(frame) || fread(frame, 1, len, f) != len)
			return 7;
		m = chained(pool, frame, len, chain, frames);
		if (m == NULL)
			return 7;
		frames++;
		burst[n++] = m;
		if (n == 32 || (frames % 7) == 0) {   /* bursts of varied sizes */
			fo_engine_burst(e, &route, burst, n);
			n = 0;
		}
	}
	if (n > 0)
		fo_engine_burst(e, &route, burst, n);
	rte_delay_ms(2);
	fo_engine_burst(e, &route, burst, 0);   /* time has passed: what is still held goes */
	fo_engine_shutdown(e);
	fo_engine_read_stats(e, &st);
	/* Every processor's calls are counted (the dashboard's processors table). */
	if (fo_engine_read_proc_stats(e, 0, 0, &ps) != 0 || ps.calls == 0 || ps.packets < ps.calls ||
	    fo_engine_read_proc_stats(e, 0, FO_MAX_PROCS, &ps) != -EINVAL) {
		fprintf(stderr, "processor 0: %lu calls, %lu packets\n", (unsigned long)ps.calls,
			(unsigned long)ps.packets);
		return 9;
	}
	/* mixed: the reader's every flow_start, flow_end and process() was the call under way. */
	if (!redact && (flow_starts == 0 || flow_ends != flow_starts || wrong_calls != 0 ||
			fo_engine_current_call(e, &call) != 0)) {
		fprintf(stderr, "current call: %lu flow starts, %lu ends, %lu wrong\n", (unsigned long)flow_starts,
			(unsigned long)flow_ends, (unsigned long)wrong_calls);
		return 10;
	}
	fo_engine_free(e);
	/* mixed: the reader's teardown was the call under way too, and then none. */
	if (!redact && (teardowns != 1 || wrong_calls != 0 || call_record != 0)) {
		fprintf(stderr, "teardown: %lu calls, %lu wrong, record %lu\n", (unsigned long)teardowns,
			(unsigned long)wrong_calls, (unsigned long)call_record);
		return 11;
	}
	rte_eth_dev_stop(0);
	rte_eth_dev_close(0);
	printf("%u %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu\n", frames, (unsigned long)finds, (unsigned long)edits,
	       (unsigned long)st.stream_reordered, (unsigned long)st.stream_duplicates,
	       (unsigned long)st.stream_retransmits, (unsigned long)st.stream_rewritten,
	       (unsigned long)st.stream_split, (unsigned long)st.packets, (unsigned long)st.tx_packets,
	       (unsigned long)st.stream_release_split, (unsigned long)st.stream_edits_refused,
	       (unsigned long)wrong_fields, (unsigned long)st.stream_holds_idle);
	if (rte_mempool_avail_count(pool) != 8191) {
		fprintf(stderr, "leak: %u of 8191 mbufs back\n", rte_mempool_avail_count(pool));
		return 8;
	}
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return 0;
}
