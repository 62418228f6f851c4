/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow index: which flow id (an index into the engine's flow array) a flow key has. It keeps
 * no keys of its own: a slot holds a flow id and a 16-bit signature of its key's hash, and a
 * match is confirmed against the key in the flow array. Not part of the API.
 */
#ifndef FO_FLOW_INDEX_H
#define FO_FLOW_INDEX_H

#include <stdint.h>

#include "flowos/fo_flow.h"

struct flow_index;

/*
 * The hash flow_index_* take: SipHash-1-3 over the words of the key that can differ, keyed with
 * the index's own secret (so a key's hash differs from one index, and one run, to the next).
 */
uint32_t fo_flow_index_hash(const struct flow_index *ix, const struct fo_flow_key *key);

/* An index for ids 0..capacity-1, with a fresh secret. Returns NULL with rte_errno set. */
struct flow_index *fo_flow_index_create(const char *name, uint32_t capacity, int socket_id);
void fo_flow_index_free(struct flow_index *ix);

/* The flow id of key (hash: fo_flow_index_hash(ix, key)) among flows, or -1. */
int32_t fo_flow_index_lookup(const struct flow_index *ix, const struct fo_flow *flows, const struct fo_flow_key *key,
			  uint32_t hash);

/* ids[i] = fo_flow_index_lookup(keys[i]) for n keys at once, their memory fetched together. */
void fo_flow_index_lookup_bulk(const struct flow_index *ix, const struct fo_flow *flows,
			    const struct fo_flow_key *const *keys, uint32_t n, int32_t *ids);

/*
 * Takes a free id for a key that is not in the index; the caller stores the key at flows[id]
 * before the next lookup. Returns the id, or -ENOSPC when all capacity ids are taken.
 */
int32_t fo_flow_index_add(struct flow_index *ix, uint32_t hash);

/* Gives back flow id (whose key hashes to hash). Returns 0, or -ENOENT. */
int fo_flow_index_del(struct flow_index *ix, uint32_t hash, uint32_t id);

#endif /* FO_FLOW_INDEX_H */
