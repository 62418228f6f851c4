/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_GEN_H
#define FO_GEN_H

/*
 * The flow benchmarks' traffic and test rig, shared by fo_flowbench (C) and pybench (Cython).
 *
 * The rig is a net_ring port (rte_eth_from_rings) whose TX ring the engine sends into. The
 * generator takes those mbufs back from the TX ring and rewrites them into the next packets:
 * 64-byte Ethernet/IPv4/TCP frames with valid checksums, so the steady state allocates and
 * frees nothing.
 *
 * Traffic: packet k is direction t & 1 of connection t >> 1, where t runs through 0..2N-1 in
 * steps of a large odd prime (mod 2N): every one of N connections shows up in both directions,
 * at scattered times, in an order no hardware prefetcher can follow. Clients are in 10.0.0.0/8
 * (4 connections each), servers are 64 addresses in 172.16.0.0/16 on ports 80 and 443 (a third
 * of the connections on 80, two thirds on 443).
 *
 * Stream mode (fo_gen_init_stream): the same connections and order, but as real TCP: each
 * (connection, direction) opens with a SYN (SYN-ACK from the server) carrying an MSS option,
 * then sends data segments of payload_len bytes with advancing sequence numbers, in order, each
 * acknowledging what the other side has received so far: the generator reads the sequence
 * numbers of the packets the engine sent (the TX ring) before it recycles their mbufs, so its
 * acknowledgements are in the receiver's numbers even when the engine rewrote them. An mbuf the
 * engine still holds a reference to (a copy of rewritten data, kept until acknowledged) is not
 * recycled: its reference is dropped and a fresh mbuf taken from the pool. Payload: lowercase
 * letters; in one connection of every plant_div, every other segment ends with the first half of
 * the pattern and the next one starts with its second half and holds a whole copy in its middle,
 * so two matches per two segments, one across packets (`planted` counts them as they complete).
 *
 * Return conventions: setup returns 0 or -errno; the run functions return a packet count or -errno.
 */
#include <stdint.h>

#include <rte_dev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_tcp.h>

#include <flowos/fo_engine.h>

#define FO_GEN_MAX_BURST 256        /* the largest burst the generator fills (FO_MAX_BURST) */
#define FO_GEN_FRAME_LEN 60         /* a 64-byte frame without its FCS */
#define FO_GEN_HDR_LEN (sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) + sizeof(struct rte_tcp_hdr))
#define FO_GEN_RING_SIZE 1024
#define FO_GEN_CLIENT_NET RTE_IPV4(10, 0, 0, 0)
#define FO_GEN_SERVER_NET RTE_IPV4(172, 16, 0, 0)
#define FO_GEN_SERVERS 64

#define FO_GEN_MAX_TX_QUEUES 16    /* the ring PMD's most (RTE_PMD_RING_MAX_TX_RINGS): a TX queue per worker */

/* The port the engine sends into, and the rings behind it. */
struct fo_gen_rig {
	struct rte_mempool *pool;       /* where mbufs come from when the TX ring has too few */
	struct rte_ring *rx_ring, *tx_ring;   /* tx_ring: TX queue 0's, the one the generator recycles */
	struct rte_ring *tx_rings[FO_GEN_MAX_TX_QUEUES];   /* by TX queue; [0] is tx_ring */
	uint16_t tx_queues;
	char vdev[RTE_DEV_NAME_MAX_LEN];   /* the ring PMD's device, removed with the port */
	struct fo_route route;          /* rx_port == tx_port: the net_ring port */
	int socket_id;
	int port;                       /* -1 until created */
};

struct fo_gen_stream;

/* A connection, in network byte order: client (address, port) to server (address, port). */
struct fo_gen_tuple {
	rte_be32_t client, server;
	rte_be16_t cport, sport;
};

struct fo_gen {
	uint64_t t, step, period;       /* period = 2N; 0: every packet a new connection (t counts them) */
	uint64_t generated;             /* packets written so far */
	struct fo_gen_stream *st;       /* stream mode's state (fo_gen_init_stream), else NULL */
	const struct fo_gen_tuple *tuples;   /* the connections (fo_gen_init_tuples), else NULL: the formula's */
	struct fo_gen_tpl {
		uint8_t bytes[FO_GEN_HDR_LEN];
		uint32_t ip_sum;            /* raw sums of the headers with addresses, ports and checksums zero */
		uint32_t tcp_sum;           /* ... with the pseudo-header's protocol and length */
	} tpl[2];                       /* by direction: the MACs are swapped */
};

/*
 * Creates the rings and the net_ring port (named `name`) on socket_id, with pool for RX, and
 * starts it. Returns 0 or -errno; on failure fo_gen_rig_free() releases what was made.
 */
int fo_gen_rig_create(struct fo_gen_rig *rig, const char *name, struct rte_mempool *pool, int socket_id);

/*
 * The same with tx_queues (1..FO_GEN_MAX_TX_QUEUES) TX queues, each a ring of its own: the
 * generator recycles queue 0's mbufs; what other workers send on theirs goes back to the pool
 * (fo_gen_rig_drain_queue), as a NIC's TX completion would free it. One lcore sends on each
 * queue, unless tx_shared: then any may (its rings take several producers).
 */
int fo_gen_rig_create_txq(struct fo_gen_rig *rig, const char *name, struct rte_mempool *pool, int socket_id,
			  uint16_t tx_queues, int tx_shared);

/* Returns the mbufs every TX ring holds to the pool. */
void fo_gen_rig_drain(struct fo_gen_rig *rig);

/* Returns the mbufs TX queue q's ring holds to the pool; returns how many. */
unsigned int fo_gen_rig_drain_queue(struct fo_gen_rig *rig, uint16_t q);

/* Drains, stops, closes and removes the port (its name is free again), frees the rings (not the pool). Idempotent. */
void fo_gen_rig_free(struct fo_gen_rig *rig);

/* Connection i of the traffic fo_gen_init makes (unique for i < 2^26). */
void fo_gen_connection(uint64_t i, struct fo_gen_tuple *c);

/* The i of the connection fo_gen_connection(i) a packet of the traffic belongs to, either direction; -1: none. */
int64_t fo_gen_connection_index(const struct rte_mbuf *m);

/* Traffic of `flows` connections, or (new_each_packet) one packet per new connection. */
void fo_gen_init(struct fo_gen *g, uint32_t flows, int new_each_packet, uint8_t tcp_flags);

/* The same traffic over the caller's `flows` connections (kept by the caller while it runs). */
void fo_gen_init_tuples(struct fo_gen *g, const struct fo_gen_tuple *tuples, uint32_t flows, uint8_t tcp_flags);

#define FO_GEN_MAX_PATTERN 64
#define FO_GEN_MAX_PAYLOAD 1460     /* an MSS: the segments fit a 1500-byte IP MTU and an mbuf */

struct fo_gen_stream_conf {
	uint32_t payload_len;           /* data bytes per segment, 2 x pattern_len + 2 .. FO_GEN_MAX_PAYLOAD */
	uint16_t mss;                   /* announced in the SYNs (the engine splits what grows past it) */
	uint32_t plant_div;             /* the pattern goes into connections i % plant_div == 0; 0: none */
	uint32_t pattern_len;           /* 0 .. FO_GEN_MAX_PATTERN */
	uint8_t pattern[FO_GEN_MAX_PATTERN]; /* its first byte: not a lowercase letter, and not again in it */
};

struct fo_gen_stream_stats {
	uint64_t planted;               /* whole copies of the pattern the streams carry so far */
	uint64_t syns, data, payload_bytes;   /* segments and bytes written */
	uint64_t observed;              /* packets read back from the TX ring */
	uint64_t unknown;               /* ... that were none of the generator's connections */
	uint64_t not_recycled;          /* ... whose mbufs the engine still held (or chained): replaced */
};

/*
 * Stream mode (see above) over `flows` connections, its state on socket_id. Returns 0, -EINVAL
 * (a configuration it cannot make) or -ENOMEM. fo_gen_fini() frees it.
 */
int fo_gen_init_stream(struct fo_gen *g, uint32_t flows, const struct fo_gen_stream_conf *conf, int socket_id);

/* Frees stream mode's state; nothing in the other modes. Idempotent. */
void fo_gen_fini(struct fo_gen *g);

/* Stream mode's counters (zeros in the other modes). */
void fo_gen_read_stream_stats(const struct fo_gen *g, struct fo_gen_stream_stats *out);

/* Fills pkts with the next n (<= FO_GEN_MAX_BURST) packets, in mbufs from the TX ring or the pool. 0 or -ENOMEM. */
int fo_gen_burst(struct fo_gen *g, struct fo_gen_rig *rig, struct rte_mbuf **pkts, unsigned int n);

/* Checks the generator's checksums against DPDK's on a few packets of each kind (stream mode's
 * SYNs and segments, with and without the pattern, included). 0, -EINVAL or -ENOMEM. */
int fo_gen_self_check(struct fo_gen_rig *rig);

/* One burst of n (<= FO_GEN_MAX_BURST) packets through the engine, or (e == NULL) straight into the TX ring. 0 or -ENOMEM. */
int fo_gen_step(struct fo_engine *e, struct fo_gen *g, struct fo_gen_rig *rig, unsigned int n);

/* Bursts of n for `seconds`; returns the packets (or -ENOMEM) and sets the TSC cycles they took. */
int64_t fo_gen_run_for(struct fo_engine *e, struct fo_gen *g, struct fo_gen_rig *rig, unsigned int n,
		       double seconds, uint64_t *cycles);

/* Bursts of n until `packets` have gone through (rounded up to whole bursts). Returns them or -ENOMEM. */
int64_t fo_gen_run_packets(struct fo_engine *e, struct fo_gen *g, struct fo_gen_rig *rig, unsigned int n,
			   uint64_t packets);

#endif /* FO_GEN_H */
