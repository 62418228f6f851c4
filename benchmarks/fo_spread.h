/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_SPREAD_H
#define FO_SPREAD_H

/*
 * Ways to spread one receiver's packets to worker lcores, each flow's packets to one worker at a
 * time and in order, compared by fo_scalebench:
 *
 *   inbox        FlowOS's spreading mode: each packet goes to the inbox (a multi-producer,
 *                single-consumer rte_ring) of the worker fo_steer gives its flow, one enqueue per
 *                worker and burst, as fo_engine.c's handoff. A flow always reaches the same worker.
 *   distributor  rte_distributor in burst mode, the flow's symmetric hash its tag. It runs on the
 *                receiver (its API makes the distributor one lcore of its own). It holds a flow's
 *                packets to the worker that has some of them in flight; any other packet goes to
 *                the next worker in turn, so a flow moves between workers when it has none.
 *   eventdev     an event_sw event device, one atomic queue, flow id = the hash. Its scheduler is a
 *                service that the receiver runs after each burst (rte_service_run_iter_on_app_lcore),
 *                so the core it takes is the receiver's and is counted there. Atomic scheduling
 *                also holds a flow to a worker only while it has events there.
 *
 * The receiver tags each packet (fo_spread_tag) and sends it; each worker receives, processes and
 * asks for more. fo_spread_finish ends a run: once it returns, every packet sent has been received
 * and every worker has left. A spreader is made once per program (rte_distributor cannot be freed)
 * and used by one run at a time. Return conventions: create returns a pointer or NULL (rte_errno);
 * receive returns a count.
 */
#include <stdint.h>

#include <rte_mbuf.h>

enum fo_spread_kind {
	FO_SPREAD_INBOX,
	FO_SPREAD_DISTRIBUTOR,
	FO_SPREAD_EVENTDEV,
	FO_SPREAD_KINDS
};

#define FO_SPREAD_MAX_RECEIVE 32        /* the most one receive returns (the distributor: 8) */

struct fo_spread;

/*
 * A spreader of this kind to `workers` (1..FO_MAX_WORKERS - 1) workers, its memory on socket_id,
 * hashing flows with fo_steer's key pattern steer_pattern (the inbox: the owners fo_steer gives).
 */
struct fo_spread *fo_spread_create(enum fo_spread_kind kind, uint16_t workers, uint16_t steer_pattern,
				   int socket_id);

/* Frees what can be freed (the event device; not the distributor's memzone). NULL: nothing. */
void fo_spread_free(struct fo_spread *s);

const char *fo_spread_kind_name(enum fo_spread_kind kind);

/*
 * Receiver: computes each packet's flow hash as the engine's steering does (fo_decode, then
 * fo_steer over the flow's fields) into m->hash.usr, and prepares the metadata fo_engine_inbox
 * reads (out_port, m->port: `port`). Returns 0, or -EINVAL for a packet that does not decode.
 */
int fo_spread_tag(struct fo_spread *s, struct rte_mbuf **pkts, uint16_t n, uint16_t port);

/* Receiver: hands pkts[0..n) to the workers, waiting for room as long as it takes. */
void fo_spread_send(struct fo_spread *s, struct rte_mbuf **pkts, uint16_t n);

/*
 * Receiver, after its last send: waits until the workers have received every packet sent (they
 * count it in fo_spread_receive), tells them the run is over, and serves them until all have left.
 */
void fo_spread_finish(struct fo_spread *s);

/* Worker w (0-based): up to FO_SPREAD_MAX_RECEIVE packets, or 0 when none is there now. */
uint16_t fo_spread_receive(struct fo_spread *s, uint16_t w, struct rte_mbuf **pkts);

/* Worker w: whether the run is over (read before a receive that then finds nothing: leave). */
int fo_spread_over(const struct fo_spread *s);

/* Worker w: leaves the run, after its last receive. */
void fo_spread_leave(struct fo_spread *s, uint16_t w);

/* Readies the spreader for another run (the receiver, before launching it). */
void fo_spread_reset(struct fo_spread *s);

/*
 * The check that a spreader kept its promise: the receiver notes each packet's connection (of
 * fo_gen's traffic) and numbers it, in a dynamic field; at the workers, every packet of a
 * connection must come after the ones numbered before it, and each connection's packets must
 * reach one worker (a flow table sharded by worker sees one flow per connection).
 */
struct fo_spread_flow {
	uint64_t workers;               /* bit w: worker w received some of its packets */
	uint32_t last_seq;              /* the number of the last one received; 0: none yet */
};

struct fo_spread_check {
	uint32_t flows;                 /* fo_gen's connections 0..flows-1 */
	uint32_t seq;                   /* the receiver's: the last number it gave a packet */
	struct fo_spread_flow *flow;
};

/* Registers the check's dynamic mbuf field (once; fo_spread_check_init does if need be). 0 or -errno. */
int fo_spread_check_register(void);

/* 0 or -errno (ENOMEM; ENOENT: no room in the mbuf for the dynamic field). */
int fo_spread_check_init(struct fo_spread_check *c, uint32_t flows, int socket_id);
void fo_spread_check_fini(struct fo_spread_check *c);

/* The receiver: notes each packet's connection and number (after the generator made them). */
void fo_spread_check_stamp(struct fo_spread_check *c, struct rte_mbuf **pkts, uint16_t n);

/* Worker w's packets, as received: returns how many came out of order or were none of the traffic's. */
uint64_t fo_spread_check(struct fo_spread_check *c, uint16_t w, struct rte_mbuf **pkts, uint16_t n);

/* After a run: connections that reached several workers, and the sum over connections of their workers. */
void fo_spread_check_sum(const struct fo_spread_check *c, uint64_t *split, uint64_t *visits);

#endif /* FO_SPREAD_H */
