/* SPDX-License-Identifier: BSD-3-Clause */
/* Port set-up in DPDK's fixed order, stopping at the first error. */
#include <errno.h>

#include <rte_ethdev.h>

#include "flowos/fo_port.h"

int
fo_port_start(uint16_t port_id, const struct fo_port_conf *conf)
{
	struct rte_eth_conf port_conf = {0};
	struct rte_eth_dev_info info;
	uint16_t nb_rxd = conf->nb_rxd, nb_txd = conf->nb_txd, q;
	int socket_id, ret;

	if (!rte_eth_dev_is_valid_port(port_id) || conf->pool == NULL || conf->nb_queues == 0)
		return -EINVAL;
	ret = rte_eth_dev_info_get(port_id, &info);
	if (ret != 0)
		return ret;
	if (conf->nb_queues > info.max_rx_queues || conf->nb_queues > info.max_tx_queues)
		return -EINVAL;
	/* net_pcap stamps packets with their capture time without being asked (nor saying it can). */
	if (conf->rx_timestamp && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP))
		port_conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;

	ret = rte_eth_dev_configure(port_id, conf->nb_queues, conf->nb_queues, &port_conf);
	if (ret != 0)
		return ret;
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (ret != 0)
		return ret;

	socket_id = rte_eth_dev_socket_id(port_id);
	if (socket_id < 0)
		socket_id = SOCKET_ID_ANY;
	for (q = 0; q < conf->nb_queues; q++) {
		ret = rte_eth_rx_queue_setup(port_id, q, nb_rxd, socket_id, NULL, conf->pool);
		if (ret != 0)
			return ret;
	}
	for (q = 0; q < conf->nb_queues; q++) {
		ret = rte_eth_tx_queue_setup(port_id, q, nb_txd, socket_id, NULL);
		if (ret != 0)
			return ret;
	}
	ret = rte_eth_dev_start(port_id);
	if (ret != 0)
		return ret;
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
	return rte_eth_dev_close(port_id);
}
