/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_PORT_H
#define FO_PORT_H

#include <rte_mempool.h>

#include "fo_common.h"

/* How one ethdev port is set up: one RX and one TX queue per worker. */
struct fo_port_conf {
	struct rte_mempool *pool; /* RX buffers come from here */
	uint16_t nb_queues;       /* RX and TX queues (one per worker) */
	uint16_t nb_rxd;          /* RX descriptors per queue (adjusted to the device) */
	uint16_t nb_txd;          /* TX descriptors per queue (adjusted to the device) */
	uint8_t promiscuous;      /* enable promiscuous mode where the device has it */
	uint8_t rx_timestamp;     /* ask the device to stamp received packets, where it can */
	uint32_t tx_chain_max;    /* longest chained packet the device sends whole (bytes);
	                           * UINT32_MAX: no limit; see struct fo_port_tx_fit */
	struct rte_mempool *tx_linear_pool; /* one-segment buffers for longer chains, or NULL */
};

/*
 * What a port did with chained packets longer than its tx_chain_max: copied into one segment
 * from tx_linear_pool (linearised), or, where that cannot be (longer than that pool's data
 * room, or the pool empty), left unsent and counted as oversize. rte_eth_tx_burst then returns
 * fewer than it was given, so the caller frees and counts them as unsent, as any other.
 */
struct fo_port_tx_fit {
	uint64_t linearised;
	uint64_t oversize;
};

/*
 * Configures, sets up queues and starts a port: the fixed DPDK sequence,
 * stopping at the first error. Returns 0 or -errno.
 */
int fo_port_start(uint16_t port_id, const struct fo_port_conf *conf);

/* Sums the port's TX fit counters over its queues (zeros where it has no limit). Returns 0 or -errno. */
int fo_port_tx_fit_stats(uint16_t port_id, struct fo_port_tx_fit *out);

/* Stops and closes a port; safe to call on a port that never started. Returns 0 or -errno. */
int fo_port_close(uint16_t port_id);

#endif /* FO_PORT_H */
