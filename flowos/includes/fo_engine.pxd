# Declarations of the flow engine's C API (ext/include/flowos/fo_engine.h and friends).
from libc.stdint cimport int8_t, uint8_t, uint16_t, uint32_t, uint64_t

from flowos.includes.dpdk cimport rte_mempool
from flowos.includes.fo cimport fo_burst_hook_t


cdef extern from "flowos/fo_match.h" nogil:
    int FO_MATCH_IN_PORT, FO_MATCH_SRC_MAC, FO_MATCH_DST_MAC, FO_MATCH_SRC_IP, FO_MATCH_DST_IP
    int FO_MATCH_PROTO, FO_MATCH_SRC_PORT, FO_MATCH_DST_PORT
    int FO_FAMILY_ANY, FO_FAMILY_IPV4, FO_FAMILY_IPV6

    struct fo_match:
        uint32_t fields
        uint8_t family
        uint8_t proto
        uint16_t in_port
        uint8_t src_mac[6]
        uint8_t dst_mac[6]
        uint8_t src_ip[16]
        uint8_t dst_ip[16]
        uint8_t src_prefix
        uint8_t dst_prefix
        uint16_t src_port_lo, src_port_hi
        uint16_t dst_port_lo, dst_port_hi


cdef extern from "flowos/fo_processor.h" nogil:
    enum: FO_VERDICT_COUNT
    enum: FO_END_REASON_COUNT
    struct fo_processor_ops:
        const char *name
        int level
        uint8_t readonly
    const fo_processor_ops *fo_processor_find(const char *name)


cdef extern from "flowos/fo_flow.h" nogil:
    enum: FO_TIMEOUT_CLASS_COUNT


cdef extern from "flowos/fo_builtins.h" nogil:
    struct fo_acl_rule:
        fo_match match
        uint8_t allow
    struct fo_acl_params:
        uint32_t n_rules
        uint8_t default_allow
        fo_acl_rule rules[1]
    struct fo_counter_params:
        uint32_t max_flows
    struct fo_ttl_params:
        uint8_t set
        uint8_t decrement
    struct fo_redirect_params:
        uint16_t port
        int8_t direction
    struct fo_hold_params:
        uint32_t packets
    struct fo_mirror_params:
        uint16_t port


cdef extern from "flowos/fo_engine.h" nogil:
    int FO_NAME_LEN
    enum: FO_MAX_DEFS
    enum: FO_MAX_PROCS
    enum: FO_MAX_STAGES

    struct fo_engine_conf:
        uint8_t unmatched
        uint8_t malformed
        uint8_t table_full
        uint8_t clock
        uint64_t timeout_ns[6]
        rte_mempool *pool
        int socket_id

    struct fo_shard_conf:
        uint32_t flow_capacity
        uint32_t keep_budget
        int socket_id

    struct fo_def_conf:
        char name[48]
        fo_match match
        uint32_t hold_packets
        uint32_t hold_bytes
        uint8_t hold_overflow
        uint8_t streams
        uint16_t reorder_packets
        uint32_t stream_hold_ms

    struct fo_engine_stats:
        uint64_t packets
        uint64_t malformed[6]
        uint64_t malformed_dropped
        uint64_t unmatched
        uint64_t unmatched_dropped
        uint64_t table_full
        uint64_t table_full_dropped
        uint64_t fragments_tracked
        uint64_t fragments_orphaned
        uint64_t flows_created
        uint64_t flows_ended[4]
        uint64_t flows_active
        uint64_t flows_peak
        uint64_t verdicts[5]
        uint64_t bad_verdicts
        uint64_t bad_redirects
        uint64_t hold_overflows
        uint64_t hold_overflow_packets
        uint64_t injected
        uint64_t inject_failed
        uint64_t checksums_fixed
        uint64_t checksums_offloaded
        uint64_t tx_packets
        uint64_t tx_unsent
        uint64_t dropped
        uint64_t stream_reordered
        uint64_t stream_reorder_overflow
        uint64_t stream_duplicates
        uint64_t stream_overlap_bytes
        uint64_t stream_retransmits
        uint64_t stream_gaps_skipped
        uint64_t stream_rewritten
        uint64_t stream_split
        uint64_t stream_split_failed
        uint64_t stream_release_split
        uint64_t stream_release_split_failed
        uint64_t stream_copies_evicted
        uint64_t created
        uint64_t replaced
        uint64_t held
        uint64_t stream_split_parts
        uint64_t stream_copies_resent
        uint64_t kept_copies
        uint64_t keep_peak
        uint64_t budget_overflows
        uint64_t budget_segments_dropped
        uint64_t stream_holds_idle
        uint64_t stream_edits_refused
        uint64_t handed_off
        uint64_t handoff_full
        uint64_t generations
        uint64_t generations_retired
        uint64_t flows_migrated

    struct fo_def_stats:
        uint64_t packets
        uint64_t bytes
        uint64_t flows_created
        uint64_t flows_active

    struct fo_proc_stats:
        uint64_t calls
        uint64_t packets
        uint64_t busy_ns

    enum fo_callback:
        FO_CALL_PROCESS
        FO_CALL_FLOW_START
        FO_CALL_FLOW_END
        FO_CALL_TEARDOWN

    struct fo_call:
        uint16_t def_ "def"
        uint16_t proc
        fo_callback what
        uint64_t began
        uint64_t ns

    struct fo_engine:
        pass

    struct fo_pipeline_conf:
        pass

    fo_pipeline_conf *fo_pipeline_conf_create(const fo_engine_conf *conf)
    fo_pipeline_conf *fo_pipeline_conf_create_next(const fo_pipeline_conf *prev, const fo_engine_conf *conf)
    int fo_pipeline_conf_add_definition(fo_pipeline_conf *pc, const fo_def_conf *d)
    int fo_pipeline_conf_add_processor(fo_pipeline_conf *pc, uint16_t d, uint16_t stage, const fo_processor_ops *ops,
                                       const void *params, size_t params_len, char *err, size_t errlen)
    int fo_pipeline_conf_build(fo_pipeline_conf *pc, char *err, size_t errlen)
    uint32_t fo_pipeline_conf_users(const fo_pipeline_conf *pc)
    uint16_t fo_pipeline_conf_base(const fo_pipeline_conf *pc)
    void fo_pipeline_conf_free(fo_pipeline_conf *pc)

    fo_engine *fo_engine_create(fo_pipeline_conf *pc, const fo_shard_conf *sc)
    int fo_engine_bind_processor(fo_engine *e, uint16_t d, uint16_t proc, const fo_processor_ops *ops,
                                 const void *params, size_t params_len)
    int fo_engine_build(fo_engine *e, char *err, size_t errlen)
    const fo_pipeline_conf *fo_engine_pipeline_conf(const fo_engine *e)
    int fo_engine_stage(fo_engine *e, fo_pipeline_conf *next)
    int fo_engine_stage_setup(fo_engine *e, char *err, size_t errlen)
    void fo_engine_unstage(fo_engine *e)
    int fo_engine_switch(fo_engine *e, int migrate)
    uint16_t fo_engine_generations(const fo_engine *e)
    uint16_t fo_engine_burst(void *engine, const void *route, void **pkts, uint16_t n)
    void fo_engine_inbox(void *engine, void **pkts, uint16_t n)
    int fo_engine_set_shard(fo_engine *e, uint16_t index, uint16_t workers, void **inboxes, uint16_t pattern)
    int fo_engine_set_txq(fo_engine *e, uint16_t port, uint16_t queue, void *lock)
    int fo_engine_set_handoff_wait(fo_engine *e, unsigned int (*wait)(void *ctx), void *ctx)
    int fo_engine_set_tx_ring(fo_engine *e, uint16_t port, void *ring)
    void fo_engine_shutdown(fo_engine *e)
    void fo_engine_read_stats(const fo_engine *e, fo_engine_stats *out)
    int fo_engine_read_def_stats(const fo_engine *e, uint16_t d, fo_def_stats *out)
    int fo_engine_read_proc_stats(const fo_engine *e, uint16_t d, uint16_t proc, fo_proc_stats *out)
    int fo_engine_current_call(const fo_engine *e, fo_call *out)
    void fo_engine_set_call_record(fo_engine *e, uint64_t *record)
    int fo_engine_processor_report(fo_engine *e, uint16_t d, uint16_t proc, char *buf, size_t len)
    void fo_engine_teardown(fo_engine *e)
    void fo_engine_free(fo_engine *e)

