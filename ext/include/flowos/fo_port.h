/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_PORT_H
#define FO_PORT_H

#include <rte_mempool.h>

#include "fo_common.h"

/* How one ethdev port is set up: up to one RX and one TX queue per worker. */
struct fo_port_conf {
	struct rte_mempool *pool; /* RX buffers come from here */
	uint16_t nb_rx_queues;    /* one per worker, or fewer where the device has fewer */
	uint16_t nb_tx_queues;
	uint16_t rss_pattern;     /* with several RX queues: spread by symmetric RSS with this key
	                           * pattern (fo_steer.h), where the device can; 0: never */
	uint16_t nb_rxd;          /* RX descriptors per queue (adjusted to the device) */
	uint16_t nb_txd;          /* TX descriptors per queue (adjusted to the device) */
	uint8_t promiscuous;      /* enable promiscuous mode where the device has it */
	uint8_t rx_timestamp;     /* ask the device to stamp received packets, where it can */
	uint8_t rx_scatter;       /* receive frames longer than an mbuf as chains (the device must
	                           * have RTE_ETH_RX_OFFLOAD_SCATTER) */
	uint16_t mtu;             /* set on the device; 0: the device's default */
	uint8_t tx_checksum;      /* turn on the TX IPv4/TCP/UDP checksum offloads the device has: the
	                           * engine then leaves those of edited packets to it (fo_pkt.c) */
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

/* How a started port spreads what it receives over its RX queues. */
enum fo_port_spread {
	FO_SPREAD_NONE = 0,       /* one RX queue */
	FO_SPREAD_RSS,            /* symmetric RSS, its redirection table as fo_steer_worker decides */
	FO_SPREAD_DEVICE,         /* several queues, spread the device's own way (af_packet's fanout, a
	                           * tap's queues): workers hand each other what they do not own */
};

struct fo_port_info {
	uint16_t max_rx_queues, max_tx_queues;
	uint64_t rss_types;       /* of those FlowOS asks for (IP, TCP, UDP), the ones the device hashes */
	uint16_t reta_size;
	uint16_t min_mtu, max_mtu;
	uint32_t max_rx_pktlen;   /* the longest frame the device receives */
	uint32_t frame_overhead;  /* a frame's bytes beyond its MTU, as DPDK counts them */
	uint8_t rx_scatter;       /* whether it can receive a frame into a chain of mbufs */
	uint8_t spread;           /* enum fo_port_spread, once started */
	uint16_t nb_rxd, nb_txd;  /* once started: the descriptors per queue, as the device adjusted them */
	uint16_t mtu;             /* once started: the device's MTU */
	uint64_t tx_checksums;    /* once started: the TX checksum offloads turned on */
	char why[96];             /* FO_SPREAD_DEVICE with several queues: why not RSS */
};

/* What the device offers. Returns 0 or -errno. */
int fo_port_info_get(uint16_t port_id, struct fo_port_info *out);

/*
 * Configures, sets up queues and starts a port: the fixed DPDK sequence,
 * stopping at the first error. Returns 0 or -errno; *out says how it spreads traffic.
 */
int fo_port_start(uint16_t port_id, const struct fo_port_conf *conf, struct fo_port_info *out);

/* Sums the port's TX fit counters over its queues (zeros where it has no limit). Returns 0 or -errno. */
int fo_port_tx_fit_stats(uint16_t port_id, struct fo_port_tx_fit *out);

/* Stops and closes a port; safe to call on a port that never started. Returns 0 or -errno. */
int fo_port_close(uint16_t port_id);

#endif /* FO_PORT_H */
