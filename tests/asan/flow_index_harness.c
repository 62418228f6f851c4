/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow index (ext/src/fo_flow_index.c) against a plain model, under AddressSanitizer and
 * UBSan: random adds, deletes and lookups, with real key hashes and with hashes squeezed into a
 * few home buckets (long runs of full buckets, wrapping around the table's end). After every
 * step each live key is found at its id and every deleted one is not; at the end, with every
 * key deleted, no bucket counts a key passing it. Then churn that leaves every bucket passed:
 * a lookup of an absent key still ends. Included whole, to read the buckets.
 *
 * Usage: flow_index_harness EAL-ARGS -- SEED. Prints the number of checks; exits 1 on a mismatch.
 */
#include <stdio.h>
#include <stdlib.h>

#include <rte_eal.h>

#include "../../ext/src/fo_flow_index.c"

#define CAPACITY 200
#define STEPS 20000

static struct fo_flow flows[CAPACITY];
static struct fo_flow_key keys[CAPACITY];   /* the model: key and hash of each id taken */
static uint32_t hashes[CAPACITY];
static int live[CAPACITY];
static unsigned long checks;

static int
fail(const char *what, uint32_t id)
{
	fprintf(stderr, "flow index: %s (id %u)\n", what, id);
	exit(1);
}

static void
random_key(struct fo_flow_key *k, unsigned int serial)
{
	memset(k, 0, sizeof(*k));
	k->family = FO_FAMILY_IPV4;
	k->proto = 6;
	k->addr_lo[0] = 10;
	memcpy(&k->addr_lo[1], &serial, 3);
	k->port_lo = (uint16_t)rand();
	k->port_hi = (uint16_t)rand();
}

/* Every live key found at its id (one at a time and in bulk), every other id's key not found. */
static void
check_all(const struct flow_index *ix)
{
	const struct fo_flow_key *ptrs[CAPACITY];
	int32_t ids[CAPACITY];
	uint32_t id, n = 0;

	for (id = 0; id < CAPACITY; id++) {
		int32_t got = flow_index_lookup(ix, flows, &keys[id], hashes[id]);

		if (live[id] ? got != (int32_t)id : got >= 0)
			fail(live[id] ? "a live key is not found at its id" : "a deleted key is found", id);
		if (live[id] && hashes[id] == flow_key_hash(&keys[id]))
			ptrs[n++] = &keys[id];
		checks++;
	}
	flow_index_lookup_bulk(ix, flows, ptrs, n, ids);
	for (id = 0; id < n; id++)
		if (ids[id] < 0 || &keys[ids[id]] != ptrs[id])
			fail("the bulk lookup disagrees", id);
}

/*
 * Churn that leaves every bucket passed: fill a bucket, pass it with one more key, delete the
 * rest, and so on around a 4-bucket table. A lookup of a key that is not there must still end.
 */
static void
ring_of_passes(void)
{
	struct flow_index *ix = flow_index_create("ring", 16, SOCKET_ID_ANY);
	uint32_t b, i, serial = 1000000, id;
	struct fo_flow_key k;

	if (ix == NULL || ix->mask != 3)
		fail("cannot create a 4-bucket index", 0);
	memset(live, 0, sizeof(live));
	for (b = 0; b <= ix->mask; b++) {
		uint32_t filler[SLOTS], n = 0;

		/* Up to a full bucket b (one slot may be taken by the key that passed b - 1). */
		while (sig_matches(&ix->buckets[b], EMPTY) != 0) {
			int32_t got = flow_index_add(ix, b | (serial << 16));

			if (got < 0)
				fail("cannot fill a bucket", b);
			random_key(&k, serial++);
			flows[got].key = keys[got] = k;
			hashes[got] = b | ((serial - 1) << 16);
			live[got] = 1;
			filler[n++] = (uint32_t)got;
		}
		id = (uint32_t)flow_index_add(ix, b | (serial << 16));   /* passes bucket b */
		random_key(&k, serial++);
		flows[id].key = keys[id] = k;
		hashes[id] = b | ((serial - 1) << 16);
		live[id] = 1;
		for (i = 0; i + 1 < n; i++) {        /* all but one of the fillers go */
			if (flow_index_del(ix, hashes[filler[i]], filler[i]) != 0)
				fail("cannot delete a filler", filler[i]);
			live[filler[i]] = 0;
		}
	}
	for (b = 0; b <= ix->mask; b++)
		if (ix->buckets[b].passed == 0)
			fail("the churn left a bucket nobody passed", b);
	for (b = 0; b <= ix->mask; b++) {
		random_key(&k, serial++);
		if (flow_index_lookup(ix, flows, &k, b | (serial << 16)) >= 0)
			fail("an absent key is found", b);
		checks++;
	}
	for (id = 0; id < 16; id++) {
		if (live[id] && flow_index_lookup(ix, flows, &keys[id], hashes[id]) != (int32_t)id)
			fail("a live key is lost in the ring", id);
		if (live[id] && flow_index_del(ix, hashes[id], id) != 0)
			fail("cannot delete a live key of the ring", id);
	}
	for (b = 0; b <= ix->mask; b++)
		if (ix->buckets[b].passed != 0)
			fail("a ring bucket is still passed", b);
	flow_index_free(ix);
}

int
main(int argc, char **argv)
{
	int used = rte_eal_init(argc, argv), squeeze;
	unsigned int serial = 1, step;
	struct flow_index *ix;
	uint32_t id, b;

	if (used < 0 || argc - used < 2)
		return fail("usage: EAL-ARGS -- SEED", 0), 2;
	srand((unsigned int)atoi(argv[used + 1]));
	if (flow_index_create("bad", 0, SOCKET_ID_ANY) != NULL)
		fail("a capacity of 0 is accepted", 0);
	for (squeeze = 0; squeeze < 2; squeeze++) {
		ix = flow_index_create("ix", CAPACITY, SOCKET_ID_ANY);
		if (ix == NULL)
			fail("cannot create", 0);
		memset(live, 0, sizeof(live));
		for (step = 0; step < STEPS; step++) {
			struct fo_flow_key k;
			uint32_t h;
			int32_t got;

			if (rand() % 100 < 55) {
				random_key(&k, serial++);
				/* Squeezed: every hash's home is one of the last 3 buckets, so runs wrap. */
				h = squeeze ? (ix->mask - (uint32_t)(rand() % 3)) | ((uint32_t)rand() << 16) : flow_key_hash(&k);
				got = flow_index_add(ix, h);
				if (got == -ENOSPC) {
					for (id = 0; id < CAPACITY; id++)
						if (!live[id])
							fail("full while an id is free", id);
					continue;
				}
				if (got < 0 || got >= CAPACITY || live[got])
					fail("add gave a bad id", (uint32_t)got);
				flows[got].key = keys[got] = k;
				hashes[got] = h;
				live[got] = 1;
			} else {
				id = (uint32_t)rand() % CAPACITY;
				if (flow_index_del(ix, hashes[id], id) != (live[id] ? 0 : -ENOENT))
					fail("del disagrees with the model", id);
				if (live[id])
					memset(&flows[id].key, 0xee, sizeof(flows[id].key));   /* as a reused slot would */
				live[id] = 0;
			}
			if (step % 97 == 0 || squeeze)
				check_all(ix);
		}
		check_all(ix);
		for (id = 0; id < CAPACITY; id++)
			if (live[id] && flow_index_del(ix, hashes[id], id) != 0)
				fail("cannot delete a live key", id);
		for (b = 0; b <= ix->mask; b++)
			if (ix->buckets[b].passed != 0 || sig_matches(&ix->buckets[b], EMPTY) != sig_matches(&(struct bucket){ .passed = 0 }, EMPTY))
				fail("a bucket is not empty after every key was deleted", b);
		if (ix->n_free != CAPACITY)
			fail("ids were lost", ix->n_free);
		flow_index_free(ix);
	}
	ring_of_passes();
	printf("%lu\n", checks);
	rte_eal_cleanup();
	return 0;
}
