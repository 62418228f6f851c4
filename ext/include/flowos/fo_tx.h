/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_TX_H
#define FO_TX_H

/*
 * The bottom of the stack: where a worker sends on a port. Each worker has a TX queue of its own
 * on every port that has enough; on a port with fewer TX queues than workers (a capture file has
 * one), workers share a queue and send under its lock: each worker's bursts leave in the order it
 * sent them, so each flow's packets, all sent by one worker, keep theirs.
 */
#include <rte_ethdev.h>
#include <rte_spinlock.h>

struct fo_txq {
	uint16_t queue;
	rte_spinlock_t *lock;   /* NULL: the queue is this worker's alone */
};

static inline uint16_t
fo_tx_burst(uint16_t port, const struct fo_txq *q, struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t sent;

	if (likely(q->lock == NULL))
		return rte_eth_tx_burst(port, q->queue, pkts, n);
	rte_spinlock_lock(q->lock);
	sent = rte_eth_tx_burst(port, q->queue, pkts, n);
	rte_spinlock_unlock(q->lock);
	return sent;
}

/* A lock for a shared TX queue, in DPDK memory (every worker reaches it), or NULL with rte_errno set. */
rte_spinlock_t *fo_tx_lock_create(void);
void fo_tx_lock_free(rte_spinlock_t *lock);

#endif /* FO_TX_H */
