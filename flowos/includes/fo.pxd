# Declarations of the FlowOS C fast path (ext/include/flowos); wrappers live in _runtime.pyx.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from flowos.includes.dpdk cimport rte_mempool


cdef extern from "flowos/fo_common.h" nogil:
    int FO_MAX_BURST
    int FO_MAX_ROUTES


cdef extern from "flowos/fo_log.h" nogil:
    int fo_log_to_file(const char *path)
    void fo_log_close()


cdef extern from "flowos/fo_capture.h" nogil:
    struct fo_capture_info:
        uint64_t packets
        uint64_t bytes
        uint64_t truncated
        uint64_t longest_at
        uint32_t longest
        uint32_t linktype
        const char *linktype_name
        const char *linktype_description
    int fo_capture_scan(const char *path, fo_capture_info *info, char *err, size_t errlen)


cdef extern from "flowos/fo_port.h" nogil:
    struct fo_port_conf:
        rte_mempool *pool
        uint16_t nb_rx_queues
        uint16_t nb_tx_queues
        uint16_t rss_pattern
        uint16_t nb_rxd
        uint16_t nb_txd
        uint8_t promiscuous
        uint8_t rx_timestamp
        uint8_t rx_scatter
        uint16_t mtu
        uint8_t tx_checksum
        uint32_t tx_chain_max
        rte_mempool *tx_linear_pool
    struct fo_port_tx_fit:
        uint64_t linearised
        uint64_t oversize
    enum fo_port_spread:
        FO_SPREAD_NONE
        FO_SPREAD_RSS
        FO_SPREAD_DEVICE
    struct fo_port_info:
        uint16_t max_rx_queues
        uint16_t max_tx_queues
        uint64_t rss_types
        uint16_t reta_size
        uint16_t min_mtu
        uint16_t max_mtu
        uint32_t max_rx_pktlen
        uint32_t frame_overhead
        uint8_t rx_scatter
        uint8_t spread
        uint16_t nb_rxd
        uint16_t nb_txd
        uint16_t mtu
        uint64_t tx_checksums
        char why[96]
    int fo_port_info_get(uint16_t port_id, fo_port_info *out)
    int fo_port_start(uint16_t port_id, const fo_port_conf *conf, fo_port_info *out)
    int fo_port_tx_fit_stats(uint16_t port_id, fo_port_tx_fit *out)
    int fo_port_close(uint16_t port_id)


cdef extern from "flowos/fo_worker.h" nogil:
    struct fo_route:
        uint16_t rx_port
        uint16_t rx_queue
        uint16_t tx_port
        uint16_t tx_queue
        void *tx_lock
        uint8_t finite
        uint64_t expected_rx

    struct fo_route_stats:
        uint64_t rx_packets
        uint64_t tx_packets
        uint64_t tx_unsent
        uint64_t hook_kept

    ctypedef uint16_t (*fo_burst_hook_t)(void *ctx, const fo_route *route, void **pkts, uint16_t n)

    enum fo_stop_reason:
        FO_STOP_NONE
        FO_STOP_REQUESTED
        FO_STOP_PACKET_LIMIT
        FO_STOP_INPUT_DONE

    struct fo_worker_conf:
        uint16_t burst
        uint64_t packet_limit
        uint32_t source_idle_ms
        fo_burst_hook_t hook
        void *hook_ctx

    struct fo_worker:
        pass
    struct fo_worker_group:
        pass
    ctypedef void (*fo_inbox_hook_t)(void *ctx, void **pkts, uint16_t n)
    fo_worker_group *fo_worker_group_create(uint16_t workers, uint64_t packet_limit)
    void fo_worker_group_free(fo_worker_group *g)
    int fo_worker_join_group(fo_worker *w, fo_worker_group *g, uint16_t member, void *inbox, fo_inbox_hook_t hook, void *ctx)
    void fo_worker_polls(const fo_worker *w, uint64_t *polls, uint64_t *busy)
    fo_worker_group *fo_worker_group_create_shared(const char *name, uint16_t workers, uint64_t packet_limit)
    fo_worker_group *fo_worker_group_lookup(const char *name)
    void fo_worker_group_leave(fo_worker_group *g)
    uint16_t fo_worker_group_left(const fo_worker_group *g)
    bint fo_worker_group_stop_receiving(fo_worker_group *g, uint16_t member)
    unsigned int fo_ring_reset_abandoned_end(void *r, bint consumer_end)
    int fo_worker_add_outbox(fo_worker *w, void *ring, uint16_t port, uint16_t queue, void *lock)
    unsigned int fo_worker_drain_outboxes(void *worker)
    int fo_worker_outbox_stats(const fo_worker *w, uint16_t outbox, fo_route_stats *out)

    fo_worker *fo_worker_create(const fo_worker_conf *conf, int socket_id)
    int fo_worker_add_route(fo_worker *w, const fo_route *route)
    int fo_worker_set_hook(fo_worker *w, fo_burst_hook_t hook, void *ctx)
    ctypedef void (*fo_thread_hook_t)(void *ctx)
    int fo_worker_set_thread_hooks(fo_worker *w, fo_thread_hook_t start, fo_thread_hook_t stop, void *ctx)
    int fo_worker_launch(fo_worker *w, unsigned int lcore_id)
    void fo_worker_request_stop(fo_worker *w)
    int fo_worker_running(const fo_worker *w)
    int fo_worker_join(fo_worker *w)
    fo_stop_reason fo_worker_stop_reason(const fo_worker *w)
    uint16_t fo_worker_short_sources(const fo_worker *w)
    int fo_worker_route_stats(const fo_worker *w, uint16_t route, fo_route_stats *out)
    void fo_worker_free(fo_worker *w)


cdef extern from "flowos/fo_tx.h" nogil:
    void *fo_tx_lock_create()
    void fo_tx_lock_free(void *lock)


cdef extern from "flowos/fo_steer.h" nogil:
    int FO_MAX_WORKERS
    int FO_STEER_BUCKETS
    struct fo_steer:
        pass
    void fo_steer_init(fo_steer *s, uint16_t pattern)
    uint32_t fo_steer_hash(const fo_steer *s, uint16_t fold)
    uint16_t fo_steer_worker(uint32_t hash, uint16_t workers)
    void fo_steer_rss_key(uint16_t pattern, uint8_t *key, uint32_t len)


# The levels and the packet flags are the processor ABI's (fo_processor.pxd declares them once).
from flowos.includes.fo_processor cimport (FO_NO_LEVEL, fo_level, FO_LEVEL_L2, FO_LEVEL_L3, FO_LEVEL_L4,
                                           FO_LEVEL_PAYLOAD, FO_LEVEL_COUNT, FO_PKT_VLAN, FO_PKT_IPV4, FO_PKT_IPV6,
                                           FO_PKT_FRAGMENT, FO_PKT_FIRST_FRAG, FO_PKT_L4_PORTS)


cdef extern from "flowos/fo_decode.h" nogil:
    int FO_DECODE_MAX_VLAN
    int FO_DECODE_MAX_EXT
    int FO_DECODE_MAX_LEN
    int FO_PKT_MALFORMED

    enum fo_decode_error:
        FO_DECODE_OK
        FO_DECODE_TRUNCATED_L2
        FO_DECODE_TRUNCATED_L3
        FO_DECODE_BAD_L3
        FO_DECODE_TRUNCATED_L4
        FO_DECODE_BAD_L4
        FO_DECODE_ERROR_COUNT

    struct fo_decoded:
        uint16_t offset[4]             # [FO_LEVEL_COUNT]
        uint16_t end
        uint16_t ether_type
        uint16_t vlan_tci
        uint8_t ip_proto
        uint8_t tcp_flags
        uint16_t flags
        uint8_t error
        uint16_t sport
        uint16_t dport
        uint32_t frag_id
        uint16_t frag_offset

    int fo_decode(const uint8_t *data, uint32_t len, fo_decoded *out)
    int fo_decode_general(const uint8_t *data, uint32_t len, fo_decoded *out)
    const char *fo_decode_error_name(fo_decode_error error)


cdef extern from "flowos/fo_fields.h" nogil:
    enum fo_field:
        FO_FIELD_LENGTH, FO_FIELD_PROTO, FO_FIELD_DIR, FO_FIELD_SPORT, FO_FIELD_DPORT, FO_FIELD_TCP_FLAGS
        FO_FIELD_TTL, FO_FIELD_PAYLOAD_LEN, FO_FIELD_SRC4, FO_FIELD_DST4, FO_FIELD_SRC, FO_FIELD_DST, FO_FIELD_COUNT
    unsigned int fo_field_size(fo_field field)
    int fo_field_vector(fo_field field, void *pkts, uint32_t n, void *out)
