/* SPDX-License-Identifier: BSD-3-Clause */
/* Port set-up in DPDK's fixed order, stopping at the first error. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "flowos/fo_port.h"
#include "flowos/fo_steer.h"

/*
 * A TX queue's guard against chains its device would cut short (net_pcap in DPDK 22.11 writes
 * at most 16,128 bytes of a chained packet, saying nothing): such a chain is copied into one
 * segment, which the device sends whole, or left unsent and counted. Counters: the queue's lcore.
 */
struct tx_fit {
	uint32_t chain_max;
	struct rte_mempool *linear;
	const struct rte_eth_rxtx_callback *callback;
	uint64_t linearised;
	uint64_t oversize;
};

/* Each port's guards, one per TX queue (NULL: no limit), kept to read counters and to remove. */
static struct tx_fit *tx_fits[RTE_MAX_ETHPORTS];
static uint16_t tx_fit_queues[RTE_MAX_ETHPORTS];

/* Written by one lcore, read by others with relaxed loads (fo_port_tx_fit_stats). */
static inline void
count(uint64_t *counter)
{
	__atomic_store_n(counter, *counter + 1, __ATOMIC_RELAXED);
}

/* A copy of chain m in one segment from pool, with m's metadata; NULL where it cannot fit. */
static struct rte_mbuf *
linearise(struct rte_mempool *pool, const struct rte_mbuf *m)
{
	struct rte_mbuf *l;
	const void *data;
	char *to;

	if (pool == NULL)
		return NULL;
	l = rte_pktmbuf_alloc(pool);
	if (l == NULL)
		return NULL;
	if (m->pkt_len > rte_pktmbuf_tailroom(l))
		l->data_off = 0;   /* the headroom too: nothing prepends to a packet on its way out */
	if (m->pkt_len > rte_pktmbuf_tailroom(l)) {
		rte_pktmbuf_free(l);
		return NULL;
	}
	to = rte_pktmbuf_append(l, m->pkt_len);
	data = rte_pktmbuf_read(m, 0, m->pkt_len, to);
	if (data != to)
		memcpy(to, data, m->pkt_len);
	l->port = m->port;
	l->ol_flags = m->ol_flags & ~(RTE_MBUF_F_INDIRECT | RTE_MBUF_F_EXTERNAL);
	l->packet_type = m->packet_type;
	l->tx_offload = m->tx_offload;
	l->vlan_tci = m->vlan_tci;
	l->vlan_tci_outer = m->vlan_tci_outer;
	l->hash = m->hash;
	rte_mbuf_dynfield_copy(l, m);
	return l;
}

/*
 * Runs inside rte_eth_tx_burst, before the device's TX. Packets that fit keep their order at the
 * front; those that cannot be sent are moved behind them and not counted in the return value, so
 * the caller gets them back as unsent.
 */
static uint16_t
tx_fit_burst(uint16_t port_id __rte_unused, uint16_t queue __rte_unused, struct rte_mbuf **pkts,
	     uint16_t n, void *arg)
{
	struct tx_fit *fit = arg;
	uint16_t i, kept = 0;

	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];

		if (unlikely(m->nb_segs > 1 && m->pkt_len > fit->chain_max)) {
			struct rte_mbuf *l = linearise(fit->linear, m);

			if (l == NULL) {
				count(&fit->oversize);
				continue;   /* stays in the unsent block, between kept and i */
			}
			rte_pktmbuf_free(m);
			count(&fit->linearised);
			m = l;
		}
		pkts[i] = pkts[kept];   /* the first unsent packet, if any, moves to i */
		pkts[kept++] = m;
	}
	return kept;
}

static int
tx_fit_install(uint16_t port_id, uint16_t nb_queues, const struct fo_port_conf *conf)
{
	struct tx_fit *fits;
	uint16_t q;

	if (conf->tx_chain_max == UINT32_MAX)
		return 0;
	fits = rte_zmalloc("fo_tx_fit", sizeof(*fits) * nb_queues, RTE_CACHE_LINE_SIZE);
	if (fits == NULL)
		return -ENOMEM;
	tx_fits[port_id] = fits;
	for (q = 0; q < nb_queues; q++) {
		fits[q].chain_max = conf->tx_chain_max;
		fits[q].linear = conf->tx_linear_pool;
		fits[q].callback = rte_eth_add_tx_callback(port_id, q, tx_fit_burst, &fits[q]);
		if (fits[q].callback == NULL)
			return -rte_errno;
		tx_fit_queues[port_id] = q + 1;
	}
	return 0;
}

/* After the port stopped: no TX burst can be inside a callback any more. */
static void
tx_fit_remove(uint16_t port_id)
{
	struct tx_fit *fits = tx_fits[port_id];
	uint16_t q;

	if (fits == NULL)
		return;
	for (q = 0; q < tx_fit_queues[port_id]; q++)
		rte_eth_remove_tx_callback(port_id, q, fits[q].callback);
	rte_free(fits);
	tx_fits[port_id] = NULL;
	tx_fit_queues[port_id] = 0;
}

int
fo_port_tx_fit_stats(uint16_t port_id, struct fo_port_tx_fit *out)
{
	uint16_t q;

	if (port_id >= RTE_MAX_ETHPORTS)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	for (q = 0; q < tx_fit_queues[port_id]; q++) {
		out->linearised += __atomic_load_n(&tx_fits[port_id][q].linearised, __ATOMIC_RELAXED);
		out->oversize += __atomic_load_n(&tx_fits[port_id][q].oversize, __ATOMIC_RELAXED);
	}
	return 0;
}

/* What RSS hashes for FlowOS: IPv4/IPv6 addresses, and TCP/UDP ports (fo_steer_fold's fields). */
#define WANTED_RSS (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP | \
		    RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV4_OTHER | RTE_ETH_RSS_IPV6 | \
		    RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_TCP | RTE_ETH_RSS_NONFRAG_IPV6_UDP | \
		    RTE_ETH_RSS_NONFRAG_IPV6_OTHER)
#define RSS_KEY_MAX 64
#define TX_CHECKSUMS (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM)

/* The device's info, and what FlowOS reads of it in out. Returns 0 or -errno. */
static int
port_info(uint16_t port_id, struct rte_eth_dev_info *info, struct fo_port_info *out)
{
	int ret;

	memset(out, 0, sizeof(*out));
	if (!rte_eth_dev_is_valid_port(port_id))
		return -EINVAL;
	ret = rte_eth_dev_info_get(port_id, info);
	if (ret != 0)
		return ret;
	out->max_rx_queues = info->max_rx_queues;
	out->max_tx_queues = info->max_tx_queues;
	out->rss_types = info->flow_type_rss_offloads & WANTED_RSS;
	out->reta_size = info->reta_size;
	out->min_mtu = info->min_mtu;
	out->max_mtu = info->max_mtu;
	out->max_rx_pktlen = info->max_rx_pktlen;
	/* As rte_ethdev.c counts it to check an MTU against max_rx_pktlen. */
	out->frame_overhead = info->max_mtu != UINT16_MAX && info->max_rx_pktlen > info->max_mtu ?
		info->max_rx_pktlen - info->max_mtu : RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
	out->rx_scatter = !!(info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER);
	return 0;
}

int
fo_port_info_get(uint16_t port_id, struct fo_port_info *out)
{
	struct rte_eth_dev_info info;

	return port_info(port_id, &info, out);
}

/*
 * Asks for symmetric RSS, where the device hashes TCP and UDP over both families with a key it
 * lets FlowOS set; else says why not in out->why (the device spreads its own way).
 */
static void
rss_configure(const struct fo_port_conf *conf, const struct rte_eth_dev_info *info, struct rte_eth_conf *port_conf,
	      uint8_t *key, struct fo_port_info *out)
{
	const uint64_t needed = RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV4_UDP;
	uint32_t key_len = info->hash_key_size ? info->hash_key_size : 40;

	out->spread = FO_SPREAD_DEVICE;
	if (conf->rss_pattern == 0) {
		snprintf(out->why, sizeof(out->why), "RSS not asked for");
		return;
	}
	if ((out->rss_types & needed) != needed) {
		snprintf(out->why, sizeof(out->why), "no RSS over TCP/UDP");
		return;
	}
	if (key_len > RSS_KEY_MAX || key_len % 2 != 0) {
		snprintf(out->why, sizeof(out->why), "an RSS key of %u bytes", key_len);
		return;
	}
	if (info->reta_size % FO_STEER_BUCKETS != 0) {
		snprintf(out->why, sizeof(out->why), "a redirection table of %u entries (not a multiple of %d)",
			 info->reta_size, FO_STEER_BUCKETS);
		return;
	}
	fo_steer_rss_key(conf->rss_pattern, key, key_len);
	port_conf->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
	port_conf->rx_adv_conf.rss_conf.rss_key = key;
	port_conf->rx_adv_conf.rss_conf.rss_key_len = (uint8_t)key_len;
	port_conf->rx_adv_conf.rss_conf.rss_hf = out->rss_types;
	out->spread = FO_SPREAD_RSS;
}

/* Bucket b of the table goes to queue b % queues, as fo_steer_worker decides for software. */
static int
reta_program(uint16_t port_id, uint16_t reta_size, uint16_t queues)
{
	struct rte_eth_rss_reta_entry64 reta[RTE_ETH_RSS_RETA_SIZE_512 / RTE_ETH_RETA_GROUP_SIZE];
	uint16_t i;

	if (reta_size > RTE_ETH_RSS_RETA_SIZE_512)
		return -ENOTSUP;
	memset(reta, 0, sizeof(reta));
	for (i = 0; i < reta_size; i++) {
		reta[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
		reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] =
			fo_steer_worker(i, queues);
	}
	return rte_eth_dev_rss_reta_update(port_id, reta, reta_size);
}

int
fo_port_start(uint16_t port_id, const struct fo_port_conf *conf, struct fo_port_info *out)
{
	struct rte_eth_conf port_conf = {0};
	struct rte_eth_dev_info info;
	uint8_t rss_key[RSS_KEY_MAX];
	uint16_t nb_rxd = conf->nb_rxd, nb_txd = conf->nb_txd, q;
	int socket_id, ret;

	if (!rte_eth_dev_is_valid_port(port_id) || conf->pool == NULL || conf->nb_rx_queues == 0 ||
	    conf->nb_tx_queues == 0)
		return -EINVAL;
	ret = port_info(port_id, &info, out);
	if (ret != 0)
		return ret;
	if (conf->nb_rx_queues > info.max_rx_queues || conf->nb_tx_queues > info.max_tx_queues)
		return -EINVAL;
	if (conf->nb_rx_queues > 1)
		rss_configure(conf, &info, &port_conf, rss_key, out);
	/* net_pcap stamps packets with their capture time without being asked (nor saying it can). */
	if (conf->rx_timestamp && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP))
		port_conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
	/* Chains reach every port (long frames received, packets grown by edits): a device that
	 * can send them is asked to; the others get a tx_chain_max from the caller. */
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
		port_conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	if (conf->rx_scatter) {
		if (!out->rx_scatter)
			return -ENOTSUP;
		port_conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
	}
	port_conf.rxmode.mtu = conf->mtu;   /* checked against the device's limits by the ethdev layer */
	if (conf->tx_checksum)
		port_conf.txmode.offloads |= info.tx_offload_capa & TX_CHECKSUMS;
	out->tx_checksums = port_conf.txmode.offloads & TX_CHECKSUMS;

	ret = rte_eth_dev_configure(port_id, conf->nb_rx_queues, conf->nb_tx_queues, &port_conf);
	if (ret != 0)
		return ret;
	/* Drivers that keep their MTU elsewhere (a tap's interface) set it here; the others took
	 * it from rxmode.mtu, and have no operation for it. */
	if (conf->mtu != 0) {
		ret = rte_eth_dev_set_mtu(port_id, conf->mtu);
		if (ret != 0 && ret != -ENOTSUP)
			return ret;
	}
	ret = rte_eth_dev_get_mtu(port_id, &out->mtu);
	if (ret != 0)
		return ret;
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (ret != 0)
		return ret;
	out->nb_rxd = nb_rxd;
	out->nb_txd = nb_txd;

	socket_id = rte_eth_dev_socket_id(port_id);
	if (socket_id < 0)
		socket_id = SOCKET_ID_ANY;
	for (q = 0; q < conf->nb_rx_queues; q++) {
		ret = rte_eth_rx_queue_setup(port_id, q, nb_rxd, socket_id, NULL, conf->pool);
		if (ret != 0)
			return ret;
	}
	for (q = 0; q < conf->nb_tx_queues; q++) {
		ret = rte_eth_tx_queue_setup(port_id, q, nb_txd, socket_id, NULL);
		if (ret != 0)
			return ret;
	}
	ret = tx_fit_install(port_id, conf->nb_tx_queues, conf);
	if (ret != 0)
		return ret;
	ret = rte_eth_dev_start(port_id);
	if (ret != 0)
		return ret;
	if (out->spread == FO_SPREAD_RSS && out->reta_size > 0) {
		ret = reta_program(port_id, out->reta_size, conf->nb_rx_queues);
		if (ret != 0) {
			/* Still symmetric, spread the device's way: workers hand over what they do not own. */
			out->spread = FO_SPREAD_DEVICE;
			snprintf(out->why, sizeof(out->why), "its redirection table cannot be set (%s)",
				 rte_strerror(-ret));
		}
	}
	/* Virtual devices without the notion answer -ENOTSUP: not an error for a bridge. */
	if (conf->promiscuous) {
		ret = rte_eth_promiscuous_enable(port_id);
		if (ret != 0 && ret != -ENOTSUP)
			return ret;
	}
	return 0;
}

int
fo_port_close(uint16_t port_id)
{
	int ret;

	if (!rte_eth_dev_is_valid_port(port_id))
		return -EINVAL;
	ret = rte_eth_dev_stop(port_id);
	if (ret != 0 && ret != -EINVAL)
		return ret;
	tx_fit_remove(port_id);
	return rte_eth_dev_close(port_id);
}
