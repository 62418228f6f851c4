# Raw declarations of the DPDK API FlowOS uses; wrappers live in _runtime.pyx.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "rte_errno.h" nogil:
    int rte_errno
    const char *rte_strerror(int errnum)


cdef extern from "rte_eal.h" nogil:
    int rte_eal_init(int argc, char **argv)
    int rte_eal_cleanup()
    const char *rte_eal_get_runtime_dir()


cdef extern from "rte_lcore.h" nogil:
    unsigned int RTE_MAX_LCORE
    unsigned int rte_lcore_count()
    unsigned int rte_get_main_lcore()
    unsigned int rte_get_next_lcore(unsigned int i, int skip_main, int wrap)
    unsigned int rte_lcore_to_socket_id(unsigned int lcore_id)
    int SOCKET_ID_ANY


cdef extern from "rte_mempool.h" nogil:
    struct rte_mempool:
        char *name
        unsigned int size
    unsigned int rte_mempool_avail_count(const rte_mempool *mp)
    unsigned int rte_mempool_in_use_count(const rte_mempool *mp)
    void rte_mempool_free(rte_mempool *mp)
    rte_mempool *rte_mempool_lookup(const char *name)


cdef extern from "rte_mbuf.h" nogil:
    rte_mempool *rte_pktmbuf_pool_create(const char *name, unsigned int n, unsigned int cache_size,
                                         uint16_t priv_size, uint16_t data_room_size, int socket_id)


cdef extern from "rte_ring.h" nogil:
    struct rte_ring:
        pass
    int RING_F_SC_DEQ
    int RING_F_SP_ENQ
    rte_ring *rte_ring_lookup(const char *name)
    rte_ring *rte_ring_create(const char *name, unsigned int count, int socket_id, unsigned int flags)
    void rte_ring_free(rte_ring *r)
    unsigned int rte_ring_dequeue_burst(rte_ring *r, void **obj_table, unsigned int n, unsigned int *available)
    void rte_pktmbuf_free_bulk(void **mbufs, unsigned int count)


cdef extern from "rte_ethdev.h" nogil:
    enum:
        RTE_ETH_TX_OFFLOAD_IPV4_CKSUM
        RTE_ETH_TX_OFFLOAD_TCP_CKSUM
        RTE_ETH_TX_OFFLOAD_UDP_CKSUM

    uint16_t RTE_MAX_ETHPORTS
    uint16_t rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, void **rx_pkts, uint16_t nb_pkts)

    struct rte_eth_stats:
        uint64_t ipackets
        uint64_t opackets
        uint64_t ibytes
        uint64_t obytes
        uint64_t imissed
        uint64_t ierrors
        uint64_t oerrors
        uint64_t rx_nombuf

    struct rte_eth_link:
        uint32_t link_speed
        uint16_t link_duplex
        uint16_t link_autoneg
        uint16_t link_status

    struct rte_eth_dev_info:
        const char *driver_name
        uint16_t max_rx_queues
        uint16_t max_tx_queues

    int rte_eth_dev_get_port_by_name(const char *name, uint16_t *port_id)
    int rte_eth_dev_get_name_by_port(uint16_t port_id, char *name)
    uint64_t rte_eth_find_next(uint16_t port_id)
    int rte_eth_dev_info_get(uint16_t port_id, rte_eth_dev_info *dev_info)
    int rte_eth_stats_get(uint16_t port_id, rte_eth_stats *stats)
    int rte_eth_link_get_nowait(uint16_t port_id, rte_eth_link *link)


cdef extern from "rte_telemetry.h" nogil:
    int RTE_TEL_MAX_STRING_LEN
    struct rte_tel_data:
        pass
    enum rte_tel_value_type:
        RTE_TEL_STRING_VAL
        RTE_TEL_INT_VAL
        RTE_TEL_U64_VAL
        RTE_TEL_CONTAINER
    ctypedef int (*telemetry_cb)(const char *cmd, const char *params, rte_tel_data *info)
    int rte_tel_data_start_dict(rte_tel_data *d)
    int rte_tel_data_start_array(rte_tel_data *d, rte_tel_value_type type)
    int rte_tel_data_add_array_string(rte_tel_data *d, const char *s)
    int rte_tel_data_add_array_int(rte_tel_data *d, int x)
    int rte_tel_data_add_array_u64(rte_tel_data *d, uint64_t x)
    int rte_tel_data_add_dict_string(rte_tel_data *d, const char *name, const char *val)
    int rte_tel_data_add_dict_int(rte_tel_data *d, const char *name, int val)
    int rte_tel_data_add_dict_u64(rte_tel_data *d, const char *name, uint64_t val)
    int rte_tel_data_add_dict_container(rte_tel_data *d, const char *name, rte_tel_data *val, int keep)
    rte_tel_data *rte_tel_data_alloc()
    void rte_tel_data_free(rte_tel_data *data)
    int rte_telemetry_register_cmd(const char *cmd, telemetry_cb fn, const char *help)
