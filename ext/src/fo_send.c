/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where every packet a shard lets go ends, at the bottom of the engine's stack: sent on the
 * shard's own TX queue of its port (fo_tx.h), in bursts gathered per port, or freed and counted.
 * Packets a TX queue refuses are freed and counted too (tx_unsent).
 */
#include "fo_engine_priv.h"

void
fo_send_burst(struct fo_engine *e, uint16_t port)
{
	struct tx_queue *q = &e->tx[port];
	uint16_t n = e->tx_n[port], sent = fo_tx_burst(port, &e->txq[port], q->pkts, n);

	RELAXED_ADD(e->stats.tx_packets, sent);
	if (sent < n) {
		rte_pktmbuf_free_bulk(&q->pkts[sent], n - sent);
		RELAXED_ADD(e->stats.tx_unsent, n - sent);
	}
	e->tx_n[port] = 0;
}

void
fo_drop(struct fo_engine *e, struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
	RELAXED_ADD(e->stats.dropped, 1);
}

