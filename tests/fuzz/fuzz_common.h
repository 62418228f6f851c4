/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

/*
 * What the fuzz targets share: one EAL per process (started in LLVMFuzzerInitialize: no
 * hugepages, no PCI, a file prefix of its own), an mbuf pool, a net_null port for the engine to
 * send into, and a reader that takes fields off the fuzz input (zeros once it runs out, so every
 * input means something).
 */
#include <stddef.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "flowos/fo_engine.h"

#define FUZZ_POOL_SIZE 4095

extern struct rte_mempool *fuzz_pool;

/* Starts the EAL (with a net_null port 0 when `port`), the pool; exits the process on failure. */
void fuzz_init(int port);

/* An mbuf holding len bytes of data (cut to what one mbuf takes); aborts when the pool is dry. */
struct rte_mbuf *fuzz_mbuf(const uint8_t *data, size_t len);

/* The same in as many chained mbufs as len takes (a packet as scattered RX delivers it). */
struct rte_mbuf *fuzz_mbuf_chain(const uint8_t *data, size_t len);

/* Aborts (a finding) unless every mbuf is back in the pool. */
void fuzz_check_pool(const char *target);

/* A built conf of one catch-all definition (streams on or off) and its processors (ops, one per
 * stage, n of them). Aborts on failure: the configuration is fixed. */
struct fo_pipeline_conf *fuzz_conf(int streams, const struct fo_processor_ops *const *ops, uint16_t n);

/* The same with processor i in stage stages[i] (stages in order; read-only processors may share one). */
struct fo_pipeline_conf *fuzz_conf_stages(int streams, const struct fo_processor_ops *const *ops,
					  const uint16_t *stages, uint16_t n);

/* A built shard of pc of `capacity` flows and a keep budget of 256 packets. Aborts on failure. */
struct fo_engine *fuzz_shard(struct fo_pipeline_conf *pc, uint32_t capacity);

/* The one shard of a conf of its own (fuzz_conf, fuzz_shard). */
struct fo_engine *fuzz_engine(uint32_t capacity, int streams, const struct fo_processor_ops *const *ops,
			      uint16_t n);

struct fuzz_in {
	const uint8_t *p;
	size_t left;
};

static inline uint8_t
fuzz_u8(struct fuzz_in *in)
{
	if (in->left == 0)
		return 0;
	in->left--;
	return *in->p++;
}

static inline uint16_t
fuzz_u16(struct fuzz_in *in)
{
	uint16_t hi = fuzz_u8(in);

	return (uint16_t)(hi << 8 | fuzz_u8(in));
}

static inline uint32_t
fuzz_u32(struct fuzz_in *in)
{
	uint32_t hi = fuzz_u16(in);

	return hi << 16 | fuzz_u16(in);
}

/* Up to n bytes of the input, in place; *len says how many. */
static inline const uint8_t *
fuzz_bytes(struct fuzz_in *in, size_t n, size_t *len)
{
	const uint8_t *p = in->p;

	*len = n < in->left ? n : in->left;
	in->p += *len;
	in->left -= *len;
	return p;
}

#endif /* FUZZ_COMMON_H */
