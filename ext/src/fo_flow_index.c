/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow index: open addressing over buckets of 8 slots, one cache line each, at most half
 * full (twice as many slots as flows), so a key is almost always in its home bucket. A key whose
 * home bucket is full goes to the next bucket with room; every full bucket it passes counts it
 * in `passed`, so a lookup goes on past a bucket only while some key went past it, and a
 * deletion needs no tombstone (it takes its key's count back off the buckets it passed).
 *
 * Why not rte_hash: it keeps a copy of every key (48 bytes each) and hashes through a function
 * pointer, and the engine already has the keys in its flow array; this index compares the
 * signature, then the key where it already lies, and takes 20 bytes per flow instead of ~72.
 *
 * The hash is keyed, with a secret drawn from getrandom() for each index: keys are chosen by
 * whoever sends packets, and with an unkeyed hash (CRC32, as rte_hash's) they can put any
 * number of keys in one bucket. SipHash-1-3 is a pseudorandom function: without the secret,
 * keys land in buckets as random ones do (docs/flows.md says why that holds).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>

#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>
#include <rte_vect.h>

#include "flowos/fo_common.h"
#include "flowos/fo_match.h"

#include "fo_flow_index.h"
#include "fo_siphash.h"

#define SLOTS 8
#define EMPTY 0             /* a signature is never 0 */
#define LOOKUP_CHUNK FO_MAX_BURST

struct bucket {
	uint16_t sig[SLOTS];
	uint32_t id[SLOTS];
	uint32_t passed;            /* keys that found this bucket full and live in a later one */
} __rte_cache_aligned;

struct flow_index {
	struct bucket *buckets;
	uint32_t mask;              /* buckets - 1 */
	uint32_t capacity;
	uint32_t n_free;
	uint32_t *free_ids;         /* a stack; id 0 on top at first, so the flow array fills from its start */
	struct sip_state secret;    /* the hash's key, mixed into SipHash's initial state */
};

/* The i-th 8-byte word of a key (keys are only 4-aligned). */
static inline uint64_t
key_word(const struct fo_flow_key *key, unsigned int i)
{
	uint64_t w;

	memcpy(&w, (const uint8_t *)key + 8 * i, sizeof(w));
	return w;
}

/* The same as SipHash reads it: little-endian, whatever the CPU. */
static inline uint64_t
key_word_le(const struct fo_flow_key *key, unsigned int i)
{
	return rte_le_to_cpu_64(key_word(key, i));
}

/*
 * SipHash-1-3 of the key's bytes that can differ. IPv4 (its family implied): the two addresses'
 * 4 bytes, then ports, protocol and definition, 15 bytes: 2 compression rounds. Others: the
 * first 40 bytes (addresses, ports, protocol, family, definition; not the padding): 6.
 */
static __rte_always_inline uint32_t
key_hash(const struct sip_state *secret, const struct fo_flow_key *key)
{
	struct sip_state s = *secret;
	uint64_t tail = key_word_le(key, 4);
	unsigned int i;

	RTE_BUILD_BUG_ON(sizeof(*key) != 6 * sizeof(uint64_t));
	RTE_BUILD_BUG_ON(offsetof(struct fo_flow_key, port_lo) != 32 || offsetof(struct fo_flow_key, family) != 37 ||
			 offsetof(struct fo_flow_key, def) != 38);
	if (key->family == FO_FAMILY_IPV4) {
		sip_absorb(&s, (key_word_le(key, 0) & UINT32_MAX) | key_word_le(key, 2) << 32);
		/* Bytes 32..36 (ports, protocol) and 38..39 (definition), then the length, 15. */
		return (uint32_t)sip_finish(&s, (tail & 0xffffffffffull) | (tail >> 48) << 40 | 15ull << 56);
	}
	for (i = 0; i < 5; i++)
		sip_absorb(&s, key_word_le(key, i));
	return (uint32_t)sip_finish(&s, 40ull << 56);
}

uint32_t
fo_flow_index_hash(const struct flow_index *ix, const struct fo_flow_key *key)
{
	return key_hash(&ix->secret, key);
}

static inline uint16_t
signature(uint32_t hash)
{
	uint16_t sig = (uint16_t)(hash >> 16);

	return sig == EMPTY ? 1 : sig;
}

/* 16 bytes as one value (SSE2 on x86; GCC's and clang's vector extension elsewhere). */
typedef uint64_t key_vec __attribute__((vector_size(16)));

static inline key_vec
key_vec_at(const struct fo_flow_key *key, unsigned int i)
{
	key_vec v;

	memcpy(&v, (const uint8_t *)key + 16 * i, sizeof(v));
	return v;
}

/* The 48 bytes in three 16-byte loads a side (not six 8-byte ones): fewer instructions, one compare. */
static inline int
keys_equal(const struct fo_flow_key *a, const struct fo_flow_key *b)
{
	key_vec diff = (key_vec_at(a, 0) ^ key_vec_at(b, 0)) | (key_vec_at(a, 1) ^ key_vec_at(b, 1)) |
		       (key_vec_at(a, 2) ^ key_vec_at(b, 2));

	return (diff[0] | diff[1]) == 0;
}

/* Bit 2s set where slot s holds sig (bit 2s + 1 too, with SSE2: one compare for the bucket). */
static inline uint32_t
sig_matches(const struct bucket *bk, uint16_t sig)
{
#ifdef RTE_ARCH_X86
	__m128i sigs = _mm_load_si128((const __m128i *)bk->sig);

	return (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi16(sigs, _mm_set1_epi16((short)sig)));
#else
	uint32_t mask = 0, s;

	for (s = 0; s < SLOTS; s++)
		mask |= (uint32_t)(bk->sig[s] == sig) << (2 * s);
	return mask;
#endif
}

/* The slot of the lowest hit, and the hits without it. */
static inline uint32_t
next_slot(uint32_t *hits)
{
	uint32_t bit = rte_bsf32(*hits);

	*hits &= ~(3u << bit);
	return bit / 2;
}

struct flow_index *
fo_flow_index_create(const char *name, uint32_t capacity, int socket_id)
{
	struct flow_index *ix;
	uint64_t buckets = rte_align64pow2(((uint64_t)capacity * 2 + SLOTS - 1) / SLOTS);   /* slots >= 2 x ids */
	uint64_t key[2];
	uint32_t i;

	if (capacity == 0 || capacity > INT32_MAX || buckets > UINT32_MAX) {
		rte_errno = EINVAL;
		return NULL;
	}
	ix = rte_zmalloc_socket(name, sizeof(*ix), 0, socket_id);
	if (ix == NULL)
		goto nomem;
	ix->buckets = rte_zmalloc_socket(name, sizeof(struct bucket) * buckets, RTE_CACHE_LINE_SIZE, socket_id);
	ix->free_ids = rte_malloc_socket(name, sizeof(uint32_t) * capacity, 0, socket_id);
	if (ix->buckets == NULL || ix->free_ids == NULL)
		goto nomem;
	ix->mask = (uint32_t)buckets - 1;
	ix->capacity = capacity;
	for (i = 0; i < capacity; i++)
		ix->free_ids[i] = capacity - 1 - i;
	ix->n_free = capacity;
	/* Blocks only until the kernel's pool is first seeded (early boot). */
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		fo_flow_index_free(ix);
		rte_errno = EIO;
		return NULL;
	}
	sip_init(&ix->secret, key[0], key[1]);
	return ix;
nomem:
	fo_flow_index_free(ix);
	rte_errno = ENOMEM;
	return NULL;
}

void
fo_flow_index_free(struct flow_index *ix)
{
	if (ix == NULL)
		return;
	rte_free(ix->buckets);
	rte_free(ix->free_ids);
	rte_free(ix);
}

/* The id of key among the hits (slots whose signature matched) of bucket b; -1 if none. */
static inline int32_t
match_in(const struct bucket *bk, const struct fo_flow *flows, const struct fo_flow_key *key, uint32_t hits)
{
	while (hits != 0) {
		uint32_t s = next_slot(&hits);

		if (keys_equal(&flows[bk->id[s]].key, key))
			return (int32_t)bk->id[s];
	}
	return -1;
}

/* The id of key from its home bucket b on, given the home bucket's hits; -1 if none. */
static inline int32_t
search(const struct flow_index *ix, const struct fo_flow *flows, const struct fo_flow_key *key, uint32_t b,
       uint16_t sig, uint32_t hits)
{
	uint32_t left = ix->mask;   /* at most every bucket once: churn can leave every one passed */

	for (;;) {
		const struct bucket *bk = &ix->buckets[b];
		int32_t id = match_in(bk, flows, key, hits);

		if (id >= 0 || bk->passed == 0 || left-- == 0)
			return id;
		b = (b + 1) & ix->mask;
		hits = sig_matches(&ix->buckets[b], sig);
	}
}

int32_t
fo_flow_index_lookup(const struct flow_index *ix, const struct fo_flow *flows, const struct fo_flow_key *key,
		  uint32_t hash)
{
	uint32_t b = hash & ix->mask;
	uint16_t sig = signature(hash);

	return search(ix, flows, key, b, sig, sig_matches(&ix->buckets[b], sig));
}

/*
 * All of a flow's lines: the key is compared, and the engine goes on to its state and counters.
 * Worth it once the live flows outgrow L2 (DEEP_PREFETCH_FLOWS of them: ~1.5 MB).
 */
#define DEEP_PREFETCH_FLOWS 8192

static inline void
prefetch_flow(const struct fo_flow *flow)
{
	const uint8_t *p = (const uint8_t *)flow;
	size_t off;

	for (off = 0; off < sizeof(*flow); off += RTE_CACHE_LINE_SIZE)
		rte_prefetch0(p + off);
	rte_prefetch0(p + sizeof(*flow) - 1);
}

/*
 * In three passes over the keys, so that their cache misses overlap: hash each and fetch its home
 * bucket; match its signatures and fetch the first candidate's flow; compare the keys. A whole
 * burst per pass, so that the memory a pass fetches has the rest of the pass to arrive. The last
 * pass compares the first candidate the second found, and searches only when that is not it.
 */
void
fo_flow_index_lookup_bulk(const struct flow_index *ix, const struct fo_flow *flows,
		       const struct fo_flow_key *const *keys, uint32_t n, int32_t *ids)
{
	const struct sip_state secret = ix->secret;   /* in registers for the burst's hashes (inline, not a call each) */
	uint32_t hashes[LOOKUP_CHUNK], hits[LOOKUP_CHUNK], first[LOOKUP_CHUNK], done, i, chunk;
	/* Few flows stay in L2: fetching their other lines too would only cost instructions. */
	int deep = ix->capacity - ix->n_free > DEEP_PREFETCH_FLOWS;

	for (done = 0; done < n; done += chunk, keys += chunk, ids += chunk) {
		chunk = RTE_MIN(n - done, (uint32_t)LOOKUP_CHUNK);
		for (i = 0; i < chunk; i++) {
			hashes[i] = key_hash(&secret, keys[i]);
			rte_prefetch0(&ix->buckets[hashes[i] & ix->mask]);
		}
		for (i = 0; i < chunk; i++) {
			const struct bucket *bk = &ix->buckets[hashes[i] & ix->mask];

			hits[i] = sig_matches(bk, signature(hashes[i]));
			if (hits[i] == 0)
				continue;
			first[i] = bk->id[rte_bsf32(hits[i]) / 2];
			if (deep)
				prefetch_flow(&flows[first[i]]);
			else
				rte_prefetch0(&flows[first[i]]);
		}
		for (i = 0; i < chunk; i++) {
			if (likely(hits[i] != 0) && keys_equal(&flows[first[i]].key, keys[i]))
				ids[i] = (int32_t)first[i];
			else
				ids[i] = search(ix, flows, keys[i], hashes[i] & ix->mask, signature(hashes[i]), hits[i]);
		}
	}
}

int32_t
fo_flow_index_add(struct flow_index *ix, uint32_t hash)
{
	uint32_t b = hash & ix->mask, id, free_slots;
	struct bucket *bk;

	if (ix->n_free == 0)
		return -ENOSPC;
	id = ix->free_ids[--ix->n_free];
	/* At most half the slots are taken, so a bucket with room comes within one turn. */
	for (;;) {
		bk = &ix->buckets[b];
		free_slots = sig_matches(bk, EMPTY);
		if (free_slots != 0)
			break;
		bk->passed++;
		b = (b + 1) & ix->mask;
	}
	bk->sig[rte_bsf32(free_slots) / 2] = signature(hash);
	bk->id[rte_bsf32(free_slots) / 2] = id;
	return (int32_t)id;
}

int
fo_flow_index_del(struct flow_index *ix, uint32_t hash, uint32_t id)
{
	uint32_t home = hash & ix->mask, b = home, left = ix->mask;
	uint16_t sig = signature(hash);

	for (;;) {
		struct bucket *bk = &ix->buckets[b];
		uint32_t hits = sig_matches(bk, sig);

		while (hits != 0) {
			uint32_t s = next_slot(&hits);

			if (bk->id[s] == id) {
				bk->sig[s] = EMPTY;
				/* It no longer passes the buckets between its home and here. */
				for (; home != b; home = (home + 1) & ix->mask)
					ix->buckets[home].passed--;
				ix->free_ids[ix->n_free++] = id;
				return 0;
			}
		}
		if (bk->passed == 0 || left-- == 0)
			return -ENOENT;
		b = (b + 1) & ix->mask;
	}
}
