/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow index (ext/src/fo_flow_index.c) against a plain model, under AddressSanitizer and
 * UBSan: random adds, deletes and lookups, with real key hashes and with hashes squeezed into a
 * few home buckets (long runs of full buckets, wrapping around the table's end). After every
 * step each live key is found at its id and every deleted one is not; at the end, with every
 * key deleted, no bucket counts a key passing it. Then churn that leaves every bucket passed:
 * a lookup of an absent key still ends. Included whole, to read the buckets.
 *
 * The hash: SipHash-1-3 as CPython computes it (hash(bytes) with PYTHONHASHSEED=0 is SipHash-1-3
 * with a zero key); two indexes have different secrets.
 *
 * Usage: flow_index_harness EAL-ARGS -- SEED. Prints the number of checks; exits 1 on a mismatch.
 *
 * flow_index_harness EAL-ARGS -- collide N: N keys crafted to share their CRC32 (the unkeyed
 * hash the index had before; benchmarks/fo_collide.c) and N plain ones, each set added to an
 * index of capacity N under the index's hash and under that CRC32. Prints, per set and hash,
 * the most keys with one home bucket and the most buckets a lookup walks (deterministic
 * figures, not timings).
 */
#include <stdio.h>
#include <stdlib.h>

#include <rte_eal.h>

#include "../../ext/src/fo_flow_index.c"
#include "../../benchmarks/fo_collide.h"

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
		int32_t got = fo_flow_index_lookup(ix, flows, &keys[id], hashes[id]);

		if (live[id] ? got != (int32_t)id : got >= 0)
			fail(live[id] ? "a live key is not found at its id" : "a deleted key is found", id);
		if (live[id] && hashes[id] == fo_flow_index_hash(ix, &keys[id]))
			ptrs[n++] = &keys[id];
		checks++;
	}
	fo_flow_index_lookup_bulk(ix, flows, ptrs, n, ids);
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
	struct flow_index *ix = fo_flow_index_create("ring", 16, SOCKET_ID_ANY);
	uint32_t b, i, serial = 1000000, id;
	struct fo_flow_key k;

	if (ix == NULL || ix->mask != 3)
		fail("cannot create a 4-bucket index", 0);
	memset(live, 0, sizeof(live));
	for (b = 0; b <= ix->mask; b++) {
		uint32_t filler[SLOTS], n = 0;

		/* Up to a full bucket b (one slot may be taken by the key that passed b - 1). */
		while (sig_matches(&ix->buckets[b], EMPTY) != 0) {
			int32_t got = fo_flow_index_add(ix, b | (serial << 16));

			if (got < 0)
				fail("cannot fill a bucket", b);
			random_key(&k, serial++);
			flows[got].key = keys[got] = k;
			hashes[got] = b | ((serial - 1) << 16);
			live[got] = 1;
			filler[n++] = (uint32_t)got;
		}
		id = (uint32_t)fo_flow_index_add(ix, b | (serial << 16));   /* passes bucket b */
		random_key(&k, serial++);
		flows[id].key = keys[id] = k;
		hashes[id] = b | ((serial - 1) << 16);
		live[id] = 1;
		for (i = 0; i + 1 < n; i++) {        /* all but one of the fillers go */
			if (fo_flow_index_del(ix, hashes[filler[i]], filler[i]) != 0)
				fail("cannot delete a filler", filler[i]);
			live[filler[i]] = 0;
		}
	}
	for (b = 0; b <= ix->mask; b++)
		if (ix->buckets[b].passed == 0)
			fail("the churn left a bucket nobody passed", b);
	for (b = 0; b <= ix->mask; b++) {
		random_key(&k, serial++);
		if (fo_flow_index_lookup(ix, flows, &k, b | (serial << 16)) >= 0)
			fail("an absent key is found", b);
		checks++;
	}
	for (id = 0; id < 16; id++) {
		if (live[id] && fo_flow_index_lookup(ix, flows, &keys[id], hashes[id]) != (int32_t)id)
			fail("a live key is lost in the ring", id);
		if (live[id] && fo_flow_index_del(ix, hashes[id], id) != 0)
			fail("cannot delete a live key of the ring", id);
	}
	for (b = 0; b <= ix->mask; b++)
		if (ix->buckets[b].passed != 0)
			fail("a ring bucket is still passed", b);
	fo_flow_index_free(ix);
}

/*
 * Known answers of SipHash-1-3 under a zero key (CPython's hash(bytes), PYTHONHASHSEED=0), for a
 * key holding bytes 0..47: as an IPv6 key, of its first 40 bytes; as an IPv4 key (byte 37, the
 * family, 4), of bytes 0..3, 16..19, 32..36 and 38..39.
 */
static void
siphash_vectors(void)
{
	struct flow_index *ix = fo_flow_index_create("sip", 16, SOCKET_ID_ANY), *other;
	struct fo_flow_key key;
	unsigned int i, same = 0;

	if (ix == NULL)
		fail("cannot create", 0);
	sip_init(&ix->secret, 0, 0);
	for (i = 0; i < sizeof(key); i++)
		((uint8_t *)&key)[i] = (uint8_t)i;
	if (fo_flow_index_hash(ix, &key) != (uint32_t)0x95bc321ab41d8206ull)
		fail("SipHash-1-3 of bytes 0..39 is wrong", fo_flow_index_hash(ix, &key));
	key.family = FO_FAMILY_IPV4;
	if (fo_flow_index_hash(ix, &key) != (uint32_t)0xd5daf74774988b03ull)
		fail("SipHash-1-3 of an IPv4 key's 15 bytes is wrong", fo_flow_index_hash(ix, &key));
	checks += 2;
	/* Fresh secrets: the same keys hash differently in another index. */
	fo_flow_index_free(ix);
	ix = fo_flow_index_create("sip1", 16, SOCKET_ID_ANY);
	other = fo_flow_index_create("sip2", 16, SOCKET_ID_ANY);
	if (ix == NULL || other == NULL)
		fail("cannot create", 0);
	for (i = 0; i < 64; i++) {
		random_key(&key, i);
		same += fo_flow_index_hash(ix, &key) == fo_flow_index_hash(other, &key);
	}
	if (same > 1)
		fail("two indexes hash alike: no secret", same);
	fo_flow_index_free(ix);
	fo_flow_index_free(other);
}

/* How many buckets a lookup of (hash, id) walks: 1 in its home bucket. */
static uint32_t
buckets_walked(const struct flow_index *ix, uint32_t hash, uint32_t id)
{
	uint32_t b = hash & ix->mask, n, s;

	for (n = 1; n <= ix->mask + 1; n++, b = (b + 1) & ix->mask)
		for (s = 0; s < SLOTS; s++)
			if (ix->buckets[b].sig[s] == signature(hash) && ix->buckets[b].id[s] == id)
				return n;
	return fail("an added id is in no bucket", id), 0;
}

/* Adds n keys under the index's hash (crc32 == 0) or the old CRC32; prints the crowding figures. */
static void
crowding(const char *set, const struct fo_flow_key *k, uint32_t n, int crc32)
{
	struct flow_index *ix = fo_flow_index_create("crowd", n, SOCKET_ID_ANY);
	uint32_t *home, *h = malloc(sizeof(*h) * n), i, most_home = 0, most_walked = 0;
	struct fo_flow *table = calloc(n, sizeof(*table));

	if (ix == NULL || h == NULL || table == NULL || (home = calloc(ix->mask + 1, sizeof(*home))) == NULL)
		fail("cannot create", n);
	for (i = 0; i < n; i++) {
		h[i] = crc32 ? fo_collide_crc32(&k[i]) : fo_flow_index_hash(ix, &k[i]);
		if (fo_flow_index_add(ix, h[i]) != (int32_t)i)   /* ids come in order from an empty index */
			fail("add gave a bad id", i);
		table[i].key = k[i];
		most_home = RTE_MAX(most_home, ++home[h[i] & ix->mask]);
	}
	for (i = 0; i < n; i++) {
		most_walked = RTE_MAX(most_walked, buckets_walked(ix, h[i], i));
		if (fo_flow_index_lookup(ix, table, &k[i], h[i]) != (int32_t)i)
			fail("a crowded key is not found", i);
		checks++;
	}
	printf("%s %s buckets %u most_in_one_home %u most_buckets_walked %u\n", set, crc32 ? "crc32" : "keyed",
	       ix->mask + 1, most_home, most_walked);
	free(home);
	free(h);
	free(table);
	fo_flow_index_free(ix);
}

static int
collide(uint32_t n)
{
	struct fo_flow_key *crafted = calloc(n, sizeof(*crafted)), *plain = calloc(n, sizeof(*plain));
	uint32_t i;

	if (crafted == NULL || plain == NULL || fo_collide_keys(crafted, n) != 0)
		return fail("cannot craft the keys", n), 1;
	fo_collide_plain_keys(plain, n);
	for (i = 1; i < n; i++)
		if (fo_collide_crc32(&crafted[i]) != fo_collide_crc32(&crafted[0]) ||
		    memcmp(&crafted[i], &crafted[i - 1], sizeof(crafted[i])) == 0)
			return fail("the crafted keys do not all share one CRC32, or repeat", i), 1;
	crowding("crafted", crafted, n, 0);
	crowding("crafted", crafted, n, 1);
	crowding("plain", plain, n, 0);
	crowding("plain", plain, n, 1);
	free(crafted);
	free(plain);
	return 0;
}

int
main(int argc, char **argv)
{
	int used = rte_eal_init(argc, argv), squeeze;
	unsigned int serial = 1, step;
	struct flow_index *ix;
	uint32_t id, b;

	if (used < 0 || argc - used < 2)
		return fail("usage: EAL-ARGS -- SEED | collide N", 0), 2;
	if (strcmp(argv[used + 1], "collide") == 0 && argc - used >= 3) {
		int ret = collide((uint32_t)atoi(argv[used + 2]));

		rte_eal_cleanup();
		return ret;
	}
	srand((unsigned int)atoi(argv[used + 1]));
	if (fo_flow_index_create("bad", 0, SOCKET_ID_ANY) != NULL)
		fail("a capacity of 0 is accepted", 0);
	for (squeeze = 0; squeeze < 2; squeeze++) {
		ix = fo_flow_index_create("ix", CAPACITY, SOCKET_ID_ANY);
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
				h = squeeze ? (ix->mask - (uint32_t)(rand() % 3)) | ((uint32_t)rand() << 16) : fo_flow_index_hash(ix, &k);
				got = fo_flow_index_add(ix, h);
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
				if (fo_flow_index_del(ix, hashes[id], id) != (live[id] ? 0 : -ENOENT))
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
			if (live[id] && fo_flow_index_del(ix, hashes[id], id) != 0)
				fail("cannot delete a live key", id);
		for (b = 0; b <= ix->mask; b++)
			if (ix->buckets[b].passed != 0 || sig_matches(&ix->buckets[b], EMPTY) != sig_matches(&(struct bucket){ .passed = 0 }, EMPTY))
				fail("a bucket is not empty after every key was deleted", b);
		if (ix->n_free != CAPACITY)
			fail("ids were lost", ix->n_free);
		fo_flow_index_free(ix);
	}
	ring_of_passes();
	siphash_vectors();
	printf("%lu\n", checks);
	rte_eal_cleanup();
	return 0;
}
