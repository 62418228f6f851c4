/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The TX guard of ext/src/fo_port.c on a net_pcap port, under AddressSanitizer and UBSan: chains
 * longer than the port's tx_chain_max are written whole (copied into one segment), those that
 * cannot be copied (longer than the linear pool's room, or the pool empty) come back unsent at
 * the end of the burst and are counted, the others keep their order, and every mbuf returns to
 * its pool. The capture written is then read back with libpcap and checked byte by byte.
 *
 * Usage: port_tx_harness EAL-ARGS (with --vdev net_pcap0,tx_pcap=OUT) -- OUT.
 * Prints "linearised oversize written"; exits 1 on a mismatch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "flowos/fo_port.h"

#define CHAIN_MAX 16128
#define LINEAR_ROOM 20000

static struct rte_mempool *pool;

static void
fail(const char *what)
{
	fprintf(stderr, "port tx: %s\n", what);
	exit(1);
}

static uint8_t
byte_of(uint32_t len, uint32_t k)
{
	return (uint8_t)(len * 31 + k * 7);
}

/* A frame of len bytes in segments of at most 2,048, its bytes a pattern of len. */
static struct rte_mbuf *
chain(uint32_t len)
{
	struct rte_mbuf *head = NULL, *last = NULL;
	uint32_t k = 0;

	while (k < len) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		uint16_t n = (uint16_t)RTE_MIN(len - k, 2048u);
		uint8_t *p;
		uint16_t j;

		if (m == NULL)
			fail("pool empty");
		p = (uint8_t *)rte_pktmbuf_append(m, n);
		for (j = 0; j < n; j++)
			p[j] = byte_of(len, k + j);
		k += n;
		if (head == NULL) {
			head = m;
		} else {
			last->next = m;
			head->nb_segs++;
			head->pkt_len += n;
		}
		last = m;
	}
	return head;
}

int
main(int argc, char **argv)
{
	/* What goes in, and what must be written: 17,000 copied twice, then the pool is empty. */
	static const uint32_t burst1[] = { 9000, 17000, 30000, 17000, 17000, 60 };
	static const uint32_t written[] = { 9000, 17000, 17000, 60, 17000 };
	struct rte_mbuf *pkts[8];
	struct fo_port_tx_fit fit;
	struct fo_port_conf conf = {0};
	struct fo_port_info port_info;
	struct rte_mempool *linear;
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *hdr;
	const u_char *data;
	uint16_t port, sent, i;
	unsigned int n_written = 0;
	pcap_t *pcap;
	int ret = rte_eal_init(argc, argv);

	if (ret < 0 || argc - ret < 2)
		fail("usage: EAL-ARGS -- OUT.pcap");
	if (rte_eth_dev_get_port_by_name("net_pcap0", &port) != 0)
		fail("no net_pcap0");
	pool = rte_pktmbuf_pool_create("pool", 511, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	linear = rte_pktmbuf_pool_create("linear", 2, 0, 0, LINEAR_ROOM, SOCKET_ID_ANY);
	if (pool == NULL || linear == NULL)
		fail("cannot create the pools");
	conf = (struct fo_port_conf){ .pool = pool, .nb_rx_queues = 1, .nb_tx_queues = 1, .nb_rxd = 64, .nb_txd = 64,
				      .tx_chain_max = CHAIN_MAX, .tx_linear_pool = linear };
	if (fo_port_start(port, &conf, &port_info) != 0)
		fail("cannot start the port");

	for (i = 0; i < RTE_DIM(burst1); i++)
		pkts[i] = chain(burst1[i]);
	sent = rte_eth_tx_burst(port, 0, pkts, RTE_DIM(burst1));
	if (sent != 4)
		fail("the first burst does not send 4");
	/* The two left are the 30,000 (too long to copy) and the last 17,000 (no buffer left). */
	if (pkts[4]->pkt_len + pkts[5]->pkt_len != 47000 || pkts[4]->nb_segs == 1 || pkts[5]->nb_segs == 1)
		fail("the unsent ones are not the chains that could not be copied");
	rte_pktmbuf_free_bulk(&pkts[4], 2);
	/* The device freed the copies: the pool serves the next burst. */
	pkts[0] = chain(17000);
	if (rte_eth_tx_burst(port, 0, pkts, 1) != 1)
		fail("the second burst does not send");
	if (fo_port_tx_fit_stats(port, &fit) != 0 || fit.linearised != 3 || fit.oversize != 2)
		fail("counters are not 3 linearised, 2 oversize");
	if (fo_port_close(port) != 0)
		fail("cannot close the port");
	if (rte_mempool_in_use_count(pool) != 0 || rte_mempool_in_use_count(linear) != 0)
		fail("an mbuf is still out");

	pcap = pcap_open_offline(argv[argc - 1], errbuf);
	if (pcap == NULL)
		fail(errbuf);
	while (pcap_next_ex(pcap, &hdr, &data) == 1) {
		uint32_t k;

		if (n_written == RTE_DIM(written) || hdr->caplen != written[n_written] || hdr->len != hdr->caplen)
			fail("a record is not the frame sent, whole");
		for (k = 0; k < hdr->caplen; k++)
			if (data[k] != byte_of(hdr->caplen, k))
				fail("a record's bytes differ from the frame's");
		n_written++;
	}
	pcap_close(pcap);
	if (n_written != RTE_DIM(written))
		fail("records are missing");
	printf("%lu %lu %u\n", (unsigned long)fit.linearised, (unsigned long)fit.oversize, n_written);
	rte_mempool_free(linear);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return 0;
}
