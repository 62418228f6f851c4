/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow index (ext/src/fo_flow_index.c) against a plain model, on operations from the input:
 * add a key (hashed with the index's keyed hash, or given a hash from the input, so that keys
 * crowd chosen buckets and runs wrap around the table, or the keyed hash of another key, so that
 * a key's signature is first in its bucket under another key's), delete an id, look a key up
 * alone or a burst of them in bulk (the live keys, then keys from the input that are not in it).
 * Every answer must be the model's; a full index must refuse.
 *
 * Input: a byte for the capacity (1 + b % 64), then operations of a byte each and their fields.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ext/src/fo_flow_index.h"
#include "fuzz_common.h"

#define MAX_CAPACITY 64
#define MAX_OPS 4096
#define MAX_ABSENT 4        /* keys not in the index, in a bulk lookup */

static struct fo_flow flows[MAX_CAPACITY];
static struct fo_flow_key keys[MAX_CAPACITY];
static uint32_t hashes[MAX_CAPACITY];
static int live[MAX_CAPACITY];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init(0);
	return 0;
}

static void
broken(const char *what, int64_t v)
{
	fprintf(stderr, "fuzz_flow_index: %s (%ld)\n", what, (long)v);
	abort();
}

/* A key from 5 input bytes: few distinct ones, so that lookups hit and adds repeat keys. */
static void
read_key(struct fuzz_in *in, struct fo_flow_key *k)
{
	uint8_t a = fuzz_u8(in);

	memset(k, 0, sizeof(*k));
	k->family = a & 1 ? 6 : 4;
	k->proto = 6;
	k->addr_lo[0] = 10;
	k->addr_lo[15] = a;
	k->addr_hi[3] = fuzz_u8(in);
	k->port_lo = fuzz_u16(in);
	k->port_hi = fuzz_u8(in);
}

/* The id of a live key equal to k in the model, or -1. */
static int32_t
model_find(const struct fo_flow_key *k, uint32_t capacity)
{
	uint32_t id;

	for (id = 0; id < capacity; id++)
		if (live[id] && memcmp(&keys[id], k, sizeof(*k)) == 0)
			return (int32_t)id;
	return -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint32_t capacity = 1 + fuzz_u8(&in) % MAX_CAPACITY, n_live = 0, id, ops = 0;
	struct flow_index *ix = fo_flow_index_create("fuzz_ix", capacity, SOCKET_ID_ANY);
	const struct fo_flow_key *ptrs[MAX_CAPACITY + MAX_ABSENT];
	struct fo_flow_key k, absent[MAX_ABSENT];
	int32_t ids[MAX_CAPACITY + MAX_ABSENT], got;

	if (ix == NULL)
		broken("cannot create an index", capacity);
	memset(live, 0, sizeof(live));
	while (in.left > 0 && ops++ < MAX_OPS) {
		uint8_t op = fuzz_u8(&in);
		uint32_t h, n = 0;

		switch (op % 4) {
		case 0:         /* add, unless the model has the key already */
			read_key(&in, &k);
			if (op & 8) {   /* under another key's hash: the bulk lookup's first candidate for it */
				struct fo_flow_key other;

				read_key(&in, &other);
				h = fo_flow_index_hash(ix, &other);
			} else {
				h = op & 4 ? fuzz_u32(&in) : fo_flow_index_hash(ix, &k);
			}
			if (model_find(&k, capacity) >= 0)
				break;
			got = fo_flow_index_add(ix, h);
			if (got == -ENOSPC ? n_live != capacity : got < 0 || (uint32_t)got >= capacity || live[got])
				broken("add disagrees with the model", got);
			if (got < 0)
				break;
			flows[got].key = keys[got] = k;
			hashes[got] = h;
			live[got] = 1;
			n_live++;
			break;
		case 1:         /* delete an id, live or not */
			id = fuzz_u8(&in) % capacity;
			got = fo_flow_index_del(ix, hashes[id], id);
			if (got != (live[id] ? 0 : -ENOENT))
				broken("del disagrees with the model", id);
			if (live[id]) {
				memset(&flows[id].key, 0xee, sizeof(flows[id].key));   /* as a reused slot would */
				live[id] = 0;
				n_live--;
			}
			break;
		case 2:         /* look up a key (live or not) under its hash */
			read_key(&in, &k);
			got = model_find(&k, capacity);
			h = got >= 0 ? hashes[got] : op & 4 ? fuzz_u32(&in) : fo_flow_index_hash(ix, &k);
			if (fo_flow_index_lookup(ix, flows, &k, h) != got)
				broken("lookup disagrees with the model", got);
			break;
		default: {      /* every live key hashed with the index's hash, then absent keys, in bulk */
			uint32_t n_live_keys, n_absent = 0, want = fuzz_u8(&in) % (MAX_ABSENT + 1);

			for (id = 0; id < capacity; id++)
				if (live[id] && hashes[id] == fo_flow_index_hash(ix, &keys[id]))
					ptrs[n++] = &keys[id];
			n_live_keys = n;
			while (n_absent < want && in.left > 0) {
				read_key(&in, &absent[n_absent]);
				if (model_find(&absent[n_absent], capacity) < 0)
					ptrs[n++] = &absent[n_absent++];
			}
			fo_flow_index_lookup_bulk(ix, flows, ptrs, n, ids);
			for (id = 0; id < n_live_keys; id++)
				if (ids[id] < 0 || &keys[ids[id]] != ptrs[id])
					broken("the bulk lookup disagrees with the model", id);
			for (; id < n; id++)
				if (ids[id] != -1)
					broken("the bulk lookup found a key the model does not have", ids[id]);
			break;
		}
		}
	}
	fo_flow_index_free(ix);
	return 0;
}
