/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_TX_H
#define FO_TX_H

/*
 * The bottom of the stack: where a worker sends on a port. Each worker has a TX queue of its own
 * on every port that has enough; on a port with fewer TX queues than workers (a capture file has
 * one), workers share a queue and send under its lock: each worker's bursts leave in the order it
 * sent them, so each flow's packets, all sent by one worker, keep theirs.
 *
 * A worker process (docs/architecture.md, "Worker processes") sends on no port: its packets for
 * each port go to its outbox ring for that port, which the primary's relay sends from. The
 * outbox is waited for when full, never dropped from (the relay drains outboxes whatever else it
 * waits for), so a flow's packets leave in order and a full TX queue is counted where it is, at
 * the relay.
 */
#include <rte_ethdev.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_spinlock.h>

struct fo_txq {
	uint16_t queue;
	rte_spinlock_t *lock;   /* NULL: the queue is this worker's alone */
	struct rte_ring *ring;  /* not NULL: send into this outbox (single producer), not on the port */
};

/* Puts all n packets in an outbox, waiting for the relay to make room. */
static inline uint16_t
fo_tx_ring(struct rte_ring *ring, struct rte_mbuf **pkts, uint16_t n)
{
	unsigned int sent = rte_ring_sp_enqueue_burst(ring, (void **)pkts, n, NULL);

	while (unlikely(sent < n)) {
		rte_pause();
		sent += rte_ring_sp_enqueue_burst(ring, (void **)&pkts[sent], n - sent, NULL);
	}
	return n;
}

static inline uint16_t
fo_tx_burst(uint16_t port, const struct fo_txq *q, struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t sent;

	if (likely(q->lock == NULL && q->ring == NULL))
		return rte_eth_tx_burst(port, q->queue, pkts, n);
	if (q->ring != NULL)
		return fo_tx_ring(q->ring, pkts, n);
	rte_spinlock_lock(q->lock);
	sent = rte_eth_tx_burst(port, q->queue, pkts, n);
	rte_spinlock_unlock(q->lock);
	return sent;
}

/* A lock for a shared TX queue, in DPDK memory (every worker reaches it), or NULL with rte_errno set. */
rte_spinlock_t *fo_tx_lock_create(void);
void fo_tx_lock_free(rte_spinlock_t *lock);

#endif /* FO_TX_H */
