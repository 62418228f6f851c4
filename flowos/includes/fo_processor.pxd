# The processor ABI (ext/include/flowos/fo_processor.h, fo_flow.h), for Cython: what the Python
# and Cython tiers are built on. Installed with the package: `from flowos.includes.fo_processor cimport *`;
# a user's Cython processor gets it through `from flowos.cprocessor cimport *` (docs/cython.md).
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "rte_mbuf.h" nogil:
    struct rte_mempool:
        pass

    struct rte_mbuf:
        uint16_t port
        uint16_t nb_segs
        uint32_t pkt_len
        uint16_t data_len

    rte_mbuf *rte_pktmbuf_alloc(rte_mempool *mp)
    void rte_pktmbuf_free(rte_mbuf *m)
    char *rte_pktmbuf_append(rte_mbuf *m, uint16_t len)
    uint16_t rte_pktmbuf_tailroom(const rte_mbuf *m)
    const void *rte_pktmbuf_read(const rte_mbuf *m, uint32_t off, uint32_t len, void *buf)


cdef extern from "flowos/fo_decode.h" nogil:
    enum:
        FO_NO_LEVEL
    enum fo_level:
        FO_LEVEL_L2
        FO_LEVEL_L3
        FO_LEVEL_L4
        FO_LEVEL_PAYLOAD
        FO_LEVEL_COUNT
    enum:
        FO_PKT_VLAN
        FO_PKT_IPV4
        FO_PKT_IPV6
        FO_PKT_FRAGMENT
        FO_PKT_FIRST_FRAG
        FO_PKT_L4_PORTS
        FO_PKT_EDITED


cdef extern from "flowos/fo_flow.h" nogil:
    struct fo_flow_key:
        uint8_t addr_lo[16]
        uint8_t addr_hi[16]
        uint16_t port_lo
        uint16_t port_hi
        uint8_t proto
        uint8_t family
        uint16_t defn "def"

    struct fo_flow:
        fo_flow_key key
        uint64_t first_seen
        uint64_t last_seen
        uint64_t packets[2]
        uint64_t bytes[2]
        uint32_t id
        uint8_t opener_is_lo
        uint8_t tcp_state


cdef extern from "flowos/fo_processor.h" nogil:
    enum fo_verdict:
        FO_PASS
        FO_DROP
        FO_HOLD
        FO_MODIFIED
        FO_REDIRECT
        FO_VERDICT_COUNT

    enum fo_flow_end_reason:
        FO_END_FIN
        FO_END_RST
        FO_END_IDLE
        FO_END_SHUTDOWN
        FO_END_RELOAD

    struct fo_engine:
        pass

    struct fo_stream_ops      # flowos/fo_stream.h, below

    struct fo_batch:
        fo_flow *flow
        void *state
        rte_mbuf **pkts
        uint8_t *verdicts
        uint16_t *out_ports
        uint16_t n
        uint16_t stage
        fo_engine *engine
        int meta_offset
        int seq_offset
        uint64_t stream_base[2]
        const fo_stream_ops *stream_ops
        uint8_t normalized

    ctypedef int (*fo_setup_fn)(void *ctx, const void *params, size_t params_len, char *err, size_t errlen)
    ctypedef void (*fo_flow_start_fn)(void *ctx, const fo_flow *flow, void *state, const rte_mbuf *first)
    ctypedef void (*fo_process_fn)(void *ctx, fo_batch *batches, uint16_t n)
    ctypedef void (*fo_flow_end_fn)(void *ctx, const fo_flow *flow, void *state, fo_flow_end_reason reason)
    ctypedef int (*fo_message_fn)(void *ctx, const char *msg, char *reply, size_t len)
    ctypedef int (*fo_report_fn)(void *ctx, char *buf, size_t len)
    ctypedef void (*fo_teardown_fn)(void *ctx)

    struct fo_processor_ops:
        const char *name
        fo_level level
        uint8_t readonly
        uint32_t ctx_size
        uint32_t state_size
        fo_setup_fn setup
        fo_flow_start_fn flow_start
        fo_process_fn process
        fo_flow_end_fn flow_end
        fo_message_fn message
        fo_report_fn report
        fo_teardown_fn teardown

    struct fo_pkt_meta:
        uint16_t offset[4]
        uint16_t end
        uint16_t flags
        uint8_t ip_proto
        uint8_t out_port
        uint8_t dir

    # fo_pkt_meta, fo_pkt_seq and fo_pkt_level_len read the fast path's fo_pkt_meta_offset: only for
    # modules that link the fast path's library (flowos.boundary's). A user's Cython processor
    # uses flowos.cprocessor's helpers, which go through the batch (meta_offset, seq_offset).
    fo_pkt_meta *fo_pkt_meta_of "fo_pkt_meta"(rte_mbuf *m)
    uint8_t *fo_pkt_data(rte_mbuf *m)
    uint32_t *fo_pkt_seq(rte_mbuf *m)
    int fo_pkt_meta_register()
    uint32_t fo_pkt_level_len(rte_mbuf *m, fo_level level)
    int fo_batch_inject(fo_batch *b, uint16_t i, rte_mbuf *m, int after)
    rte_mempool *fo_batch_pool(const fo_batch *b)



# The stream view (ext/include/flowos/fo_stream.h). The fo_stream_* functions are for modules that
# link the fast path; a user's Cython processor calls the same through batch.stream_ops.
cdef extern from "flowos/fo_stream.h" nogil:
    struct fo_stream_ops:
        uint64_t (*start)(const fo_batch *b, uint8_t dir) noexcept nogil
        uint64_t (*len)(const fo_batch *b, uint8_t dir) noexcept nogil
        int64_t (*find)(const fo_batch *b, uint8_t dir, const void *pat, uint32_t pat_len, uint64_t start, uint64_t end) noexcept nogil
        uint32_t (*read)(const fo_batch *b, uint8_t dir, uint64_t off, void *out, uint32_t len) noexcept nogil
        const uint8_t *(*peek)(const fo_batch *b, uint8_t dir, uint64_t off, uint32_t *avail) noexcept nogil
        int (*splice)(fo_batch *b, uint8_t dir, uint64_t off, uint32_t dele, const void *ins, uint32_t ins_len) noexcept nogil
        uint64_t (*release)(fo_batch *b, uint8_t dir, uint64_t upto) noexcept nogil
        int (*can_resize)(const fo_batch *b, uint8_t dir, uint64_t off, uint32_t len) noexcept nogil

    uint64_t fo_stream_start(const fo_batch *b, uint8_t dir)
    uint64_t fo_stream_len(const fo_batch *b, uint8_t dir)
    int64_t fo_stream_find(const fo_batch *b, uint8_t dir, const void *pat, uint32_t pat_len, uint64_t start, uint64_t end)
    uint32_t fo_stream_read(const fo_batch *b, uint8_t dir, uint64_t off, void *out, uint32_t len)
    const uint8_t *fo_stream_peek(const fo_batch *b, uint8_t dir, uint64_t off, uint32_t *avail)
    int fo_stream_locate(const fo_batch *b, uint8_t dir, uint64_t off, uint16_t *index, uint32_t *pkt_off)
    int fo_stream_splice(fo_batch *b, uint8_t dir, uint64_t off, uint32_t dele, const void *ins, uint32_t ins_len)
    uint64_t fo_stream_release(fo_batch *b, uint8_t dir, uint64_t upto)
    int fo_stream_can_resize(const fo_batch *b, uint8_t dir, uint64_t off, uint32_t len)
