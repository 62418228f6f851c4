/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Two shards of the engine made from one conf (ext/src/fo_engine.c: steer_owner, handoff,
 * fo_engine_inbox): the traffic of fuzz_traffic.h arrives at shard 0, which hands what shard 1 owns (by the steering
 * hash, later fragments after their first) to shard 1's inbox; shard 1 drains it after every
 * burst. Shard 1 never hands anything back (what comes from an inbox is not steered again), it
 * processes exactly what was handed to it, each shard's counters account for every packet, and
 * at the end every mbuf is back in the pool.
 */
#include <stdio.h>
#include <stdlib.h>

#include <rte_ring.h>

#include "fuzz_traffic.h"

#define CAPACITY 64
#define INBOX 1024
#define STEER_PATTERN 0x6D5A   /* flowos/runtime/runner.py's */

static struct rte_ring *inboxes[2];
static struct fo_engine *peer;   /* shard 1 */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init(1);
	fuzz_traffic_init();
	inboxes[0] = rte_ring_create("fuzz_inbox0", INBOX, SOCKET_ID_ANY, RING_F_SC_DEQ);
	inboxes[1] = rte_ring_create("fuzz_inbox1", INBOX, SOCKET_ID_ANY, RING_F_SC_DEQ);
	if (inboxes[0] == NULL || inboxes[1] == NULL)
		abort();
	return 0;
}

static void
drain_peer(struct fo_engine *e)
{
	struct rte_mbuf *pkts[FO_MAX_BURST];
	unsigned int n;

	if (!rte_ring_empty(inboxes[0])) {
		fprintf(stderr, "fuzz_shards: shard 1 handed packets back to shard 0\n");
		abort();
	}
	while ((n = rte_ring_dequeue_burst(inboxes[1], (void **)pkts, FO_MAX_BURST, NULL)) > 0)
		fo_engine_inbox(peer, pkts, (uint16_t)n);
}

/* Shard 1 has processed what shard 0 handed over, and nothing else; then it ends. */
static void
end_peer(struct fo_engine *e)
{
	struct fo_engine_stats s0, s1;

	drain_peer(e);
	fo_engine_read_stats(e, &s0);
	fo_engine_read_stats(peer, &s1);
	if (s0.handed_off != s1.packets || s1.handed_off != 0) {
		fprintf(stderr, "fuzz_shards: shard 0 handed over %lu, shard 1 processed %lu and handed %lu\n",
			(unsigned long)s0.handed_off, (unsigned long)s1.packets, (unsigned long)s1.handed_off);
		abort();
	}
	fo_engine_shutdown(peer);
	fuzz_check_accounting(peer, "fuzz_shards (shard 1)");
	fo_engine_free(peer);
	peer = NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fuzz_traffic traffic = { .target = "fuzz_shards", .at_end = end_peer,
						     .after_burst = drain_peer, .chains = 1 };
	struct fo_pipeline_conf *pc = fuzz_conf(0, NULL, 0);   /* both shards read it, as flowos-run's */
	struct fo_engine *e = fuzz_shard(pc, CAPACITY);

	peer = fuzz_shard(pc, CAPACITY);
	fo_pipeline_conf_free(pc);
	if (fo_engine_set_shard(e, 0, 2, inboxes, STEER_PATTERN) != 0 ||
	    fo_engine_set_shard(peer, 1, 2, inboxes, STEER_PATTERN) != 0)
		abort();
	fuzz_traffic_run(e, data, size, &traffic);
	return 0;
}
