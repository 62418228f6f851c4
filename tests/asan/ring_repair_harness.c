/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fo_ring_reset_abandoned_end (fo_worker.c) under AddressSanitizer and UBSan: a worker process
 * killed inside an enqueue or a dequeue leaves its end of a ring with head past tail, which the
 * primary gives back before a new process uses that end (docs/architecture.md, "Restarting a
 * worker process"). Here the dead process is simulated as DPDK's own enqueue and dequeue leave
 * the ring between their two steps: the head moved (slots claimed, an enqueue's written with
 * what would be stale pointers), the tail not.
 *
 * Usage: ring_repair_harness EAL-ARGS
 * Prints "producer CLAIMED consumer CLAIMED"; exits non-zero on a mismatch.
 */
#include <stdint.h>
#include <stdio.h>

#include <rte_eal.h>
#include <rte_ring.h>

#include "flowos/fo_worker.h"

#define SIZE 16
#define CLAIMED 3

static int
fail(const char *what)
{
	fprintf(stderr, "ring_repair_harness: %s\n", what);
	return 1;
}

/* A single-producer ring whose producer died after writing CLAIMED slots: they never come out. */
static int
dead_producer(unsigned int *claimed)
{
	struct rte_ring *r = rte_ring_create("fo_repair_sp", SIZE, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	void **slots = (void **)&r[1];
	void *objs[SIZE], *got[SIZE];
	unsigned int i, n;

	if (r == NULL)
		return fail("cannot create the SP ring");
	for (i = 0; i < SIZE; i++)
		objs[i] = (void *)(uintptr_t)(0x1000 + i);
	if (rte_ring_enqueue_burst(r, objs, 2, NULL) != 2 || rte_ring_dequeue_burst(r, got, 1, NULL) != 1)
		return fail("cannot fill the SP ring");
	for (i = 0; i < CLAIMED; i++)      /* the dead producer's stale writes, never published */
		slots[(r->prod.head + i) & r->mask] = (void *)(uintptr_t)0xdead;
	r->prod.head += CLAIMED;
	*claimed = fo_ring_reset_abandoned_end(r, false);
	if (rte_ring_enqueue_burst(r, &objs[2], 4, NULL) != 4)      /* the new producer */
		return fail("the new producer cannot enqueue");
	n = rte_ring_dequeue_burst(r, got, SIZE, NULL);
	if (n != 5)
		return fail("the consumer got the wrong count after the producer's repair");
	for (i = 0; i < n; i++)
		if (got[i] != objs[i + 1])
			return fail("the consumer got a slot the dead producer had claimed");
	rte_ring_free(r);
	return 0;
}

/* A single-consumer ring whose consumer died after claiming CLAIMED slots: they come out again. */
static int
dead_consumer(unsigned int *claimed)
{
	struct rte_ring *r = rte_ring_create("fo_repair_sc", SIZE, SOCKET_ID_ANY, RING_F_SC_DEQ);
	void *objs[SIZE], *got[SIZE];
	unsigned int i, n;

	if (r == NULL)
		return fail("cannot create the SC ring");
	for (i = 0; i < SIZE; i++)
		objs[i] = (void *)(uintptr_t)(0x2000 + i);
	if (rte_ring_enqueue_burst(r, objs, 5, NULL) != 5)
		return fail("cannot fill the SC ring");
	r->cons.head += CLAIMED;
	*claimed = fo_ring_reset_abandoned_end(r, true);
	n = rte_ring_dequeue_burst(r, got, SIZE, NULL);      /* the new consumer */
	if (n != 5)
		return fail("the new consumer got the wrong count after the consumer's repair");
	for (i = 0; i < n; i++)
		if (got[i] != objs[i])
			return fail("the new consumer got the wrong objects");
	if (rte_ring_enqueue_burst(r, objs, SIZE - 1, NULL) != SIZE - 1)
		return fail("the ring is not all free after the repair");
	rte_ring_free(r);
	return 0;
}

int
main(int argc, char **argv)
{
	unsigned int produced = 0, consumed = 0;

	if (rte_eal_init(argc, argv) < 0)
		return fail("cannot start the EAL");
	if (dead_producer(&produced) != 0 || dead_consumer(&consumed) != 0)
		return 1;
	printf("producer %u consumer %u\n", produced, consumed);
	rte_eal_cleanup();
	return 0;
}
