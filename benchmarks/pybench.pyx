# cython: language_level=3
"""The processors benchmark's rig (benchmarks/procbench.py drives it).

The flow engine on the calling thread, on fo_gen's traffic (fo_flowbench's: 64-byte TCP frames
of N connections, scattered), with one processor under test: none, a C one (a built-in or
fo_benchproc.c's), or one of another tier (a flowos.boundary._python.PythonTier or a Cython processor:
anything with ops_address() and params_address()). The timed loop runs without the GIL, here:
a Python processor takes it in the engine (the tier's `with gil`) once per call.

The engine is built through the C API, as benchmarks/fo_flowbench.c builds it, rather than with
flowos.boundary._engine.Engine, because Engine keeps its fo_engine pointer to itself (there is no
_engine.pxd) and this loop calls fo_engine_burst directly. It is the engine flowos-run builds
for one catch-all flow with one processor (runner._build_engines adds Python processors the same
way, through add_tier_processor: fo_pipeline_conf_add_processor with the tier's ops and parameters).
"""
import json

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from posix.time cimport clock_gettime, timespec, CLOCK_THREAD_CPUTIME_ID

from flowos.includes.dpdk cimport rte_errno, rte_mempool, rte_mempool_avail_count, rte_strerror
from flowos.includes.fo cimport fo_route
from flowos.includes.fo_engine cimport *
from flowos.boundary._runtime cimport Mempool, check

from flowos.errors import FlowOSError


cdef extern from "rte_lcore.h" nogil:
    unsigned int rte_socket_id()

cdef extern from "rte_cycles.h" nogil:
    uint64_t rte_get_tsc_hz()
    uint64_t rte_rdtsc()

cdef extern from "rte_malloc.h" nogil:
    struct rte_malloc_socket_stats:
        size_t heap_allocsz_bytes
    int rte_malloc_get_socket_stats(int socket, rte_malloc_socket_stats *stats)

cdef extern from "flowos/fo_processor.h" nogil:
    int fo_pkt_meta_register()

cdef extern from "fo_gen.h" nogil:
    int FO_GEN_MAX_BURST
    int FO_GEN_FRAME_LEN
    uint8_t RTE_TCP_ACK_FLAG
    struct fo_gen_rig:
        rte_mempool *pool
        fo_route route
        int socket_id
        int port
    struct fo_gen:
        uint64_t t
        uint64_t step
        uint64_t period
    int fo_gen_rig_create(fo_gen_rig *rig, const char *name, rte_mempool *pool, int socket_id)
    void fo_gen_rig_drain(fo_gen_rig *rig)
    void fo_gen_rig_free(fo_gen_rig *rig)
    void fo_gen_init(fo_gen *g, uint32_t flows, int new_each_packet, uint8_t tcp_flags)
    int fo_gen_self_check(fo_gen_rig *rig)
    int64_t fo_gen_run_for(fo_engine *e, fo_gen *g, fo_gen_rig *rig, unsigned int n, double seconds,
                           uint64_t *cycles)
    int64_t fo_gen_run_packets(fo_engine *e, fo_gen *g, fo_gen_rig *rig, unsigned int n, uint64_t packets)
    int FO_GEN_MAX_PATTERN
    int FO_GEN_MAX_PAYLOAD
    struct fo_gen_stream_conf:
        uint32_t payload_len
        uint16_t mss
        uint32_t plant_div
        uint32_t pattern_len
        uint8_t pattern[64]
    struct fo_gen_stream_stats:
        uint64_t planted, syns, data, payload_bytes, observed, unknown, not_recycled
    int fo_gen_init_stream(fo_gen *g, uint32_t flows, const fo_gen_stream_conf *conf, int socket_id)
    void fo_gen_fini(fo_gen *g)
    void fo_gen_read_stream_stats(const fo_gen *g, fo_gen_stream_stats *out)

cdef extern from "fo_benchproc.h" nogil:
    const fo_processor_ops fo_bench_dport_ops
    const fo_processor_ops fo_bench_nothing_ops
    const fo_processor_ops fo_bench_find_ops
    const fo_processor_ops fo_bench_edit_ops
    struct fo_bench_find_params:
        uint32_t pattern_len
        uint8_t pattern[64]
    struct fo_bench_edit_params:
        uint8_t mode
        uint8_t bytes

MAX_BURST = FO_GEN_MAX_BURST
FRAME_LEN = FO_GEN_FRAME_LEN + 4
TIMEOUT_S = 600         # no flow may end by idle time during a run
BUILTINS = ("counter", "bench_dport", "bench_nothing")   # the C processors run() takes by name
# ... and as tuples: ("bench_find", pattern) and ("bench_edit", mode, bytes) (fo_benchproc.h)
EDIT_MODES = ("none", "replace", "insert", "delete")
# A stream definition's limits: flowos.configuration.flows' defaults (what flowos-run gives a flow).
HOLD_PACKETS = 1024
HOLD_BYTES = 4 << 20


def register_meta():
    """The fast path's metadata offsets, before the rig writes packet metadata (no engine has yet)."""
    check(fo_pkt_meta_register(), "cannot register the engine's mbuf fields")


def tsc_hz():
    return rte_get_tsc_hz()


cdef size_t heap_used(int socket):
    cdef rte_malloc_socket_stats s
    return s.heap_allocsz_bytes if rte_malloc_get_socket_stats(socket, &s) == 0 else 0


cdef class Rig:
    """The net_ring port the engine sends into, over a pool (fo_gen.h)."""
    cdef fo_gen_rig rig
    cdef readonly Mempool pool
    cdef bint created

    @staticmethod
    def create(Mempool pool not None, str name="pb_ring"):
        cdef Rig rig = Rig.__new__(Rig)
        rig.pool = pool
        ret = fo_gen_rig_create(&rig.rig, name.encode(), pool.mp, <int>rte_socket_id())
        rig.created = True
        try:
            check(ret, "cannot create the net_ring port")
            check(fo_gen_self_check(&rig.rig), "the generator's checksums are wrong")
        except BaseException:
            rig.close()
            raise
        return rig

    @property
    def mbufs_missing(self):
        """Mbufs neither in the pool nor in the TX ring (drains the ring)."""
        fo_gen_rig_drain(&self.rig)
        return self.pool.mp.size - rte_mempool_avail_count(self.pool.mp)

    def close(self):
        if self.created:
            fo_gen_rig_free(&self.rig)
            self.created = False

    def __dealloc__(self):
        if self.created:
            import warnings
            warnings.warn("pybench.Rig was not closed", ResourceWarning)


cdef fo_engine *build_engine(Rig rig, uint32_t flows, processor, bint streams=False) except NULL:
    """A conf of one catch-all definition with the processor, and one shard of it (which holds the conf)."""
    cdef fo_engine_conf conf
    cdef fo_shard_conf sc
    cdef fo_def_conf d
    cdef fo_counter_params counter
    cdef fo_bench_find_params find
    cdef fo_bench_edit_params edit
    cdef const fo_processor_ops *ops = NULL
    cdef const void *params = NULL
    cdef size_t params_len = 0
    cdef char err[256]
    cdef fo_pipeline_conf *pc
    cdef fo_engine *e = NULL
    cdef int i
    memset(&conf, 0, sizeof(conf))
    for i in range(FO_TIMEOUT_CLASS_COUNT):
        conf.timeout_ns[i] = TIMEOUT_S * 1000000000ULL
    conf.pool = rig.pool.mp
    conf.socket_id = rig.rig.socket_id
    memset(&sc, 0, sizeof(sc))
    sc.flow_capacity = 2 * flows            # twice the concurrent flows, as one would configure it
    sc.socket_id = rig.rig.socket_id
    sc.keep_budget = rig.pool.mp.size // 2  # a budget, as flowos-run always has: its checks are timed
    pc = fo_pipeline_conf_create(&conf)
    if pc == NULL:
        check(-rte_errno, "fo_pipeline_conf_create")
    err[0] = 0
    try:
        memset(&d, 0, sizeof(d))
        memcpy(d.name, b"all", 4)           # one catch-all definition
        if streams:
            d.streams = 1
            d.hold_packets = HOLD_PACKETS
            d.hold_bytes = HOLD_BYTES
        check(fo_pipeline_conf_add_definition(pc, &d), "fo_pipeline_conf_add_definition")
        if processor is not None:
            if processor == "counter":
                counter.max_flows = 0       # count, keep no records
                ops = fo_processor_find(b"counter")
                params = &counter
                params_len = sizeof(counter)
            elif processor == "bench_dport":
                ops = &fo_bench_dport_ops
            elif processor == "bench_nothing":
                ops = &fo_bench_nothing_ops
            elif isinstance(processor, tuple) and processor[0] == "bench_find":
                pattern = bytes(processor[1])
                if not 0 < len(pattern) <= 64:
                    raise ValueError("bench_find: a pattern of 1..64 bytes")
                memset(&find, 0, sizeof(find))
                find.pattern_len = len(pattern)
                memcpy(find.pattern, <const char *>pattern, len(pattern))
                ops, params, params_len = &fo_bench_find_ops, &find, sizeof(find)
            elif isinstance(processor, tuple) and processor[0] == "bench_edit":
                edit.mode = EDIT_MODES.index(processor[1])
                edit.bytes = processor[2]
                ops, params, params_len = &fo_bench_edit_ops, &edit, sizeof(edit)
            elif isinstance(processor, (str, tuple)):
                raise ValueError(f"no C processor {processor!r} here: {', '.join(BUILTINS)}")
            else:                           # another tier: its ops and setup parameters
                ops = <const fo_processor_ops *><size_t>processor.ops_address()
                address, params_len = processor.params_address()
                params = <const void *><size_t>address
            ret = fo_pipeline_conf_add_processor(pc, 0, 0, ops, params, params_len, err, sizeof(err))
            if ret < 0:
                reason = err.decode(errors="replace") or rte_strerror(-ret).decode()
                raise FlowOSError(f"fo_pipeline_conf_add_processor: {reason}")
        ret = fo_pipeline_conf_build(pc, err, sizeof(err))
        if ret < 0:
            raise FlowOSError(f"fo_pipeline_conf_build: {err.decode(errors='replace')}")
        e = fo_engine_create(pc, &sc)
        if e == NULL:
            check(-rte_errno, "fo_engine_create")
        ret = fo_engine_build(e, err, sizeof(err))
        if ret < 0:
            raise FlowOSError(f"fo_engine_build: {err.decode(errors='replace')}")
    except BaseException:
        fo_engine_free(e)
        raise
    finally:
        fo_pipeline_conf_free(pc)           # the shard holds it
    return e


cdef dict engine_stats(fo_engine *e):
    cdef fo_engine_stats s
    cdef uint64_t malformed = 0
    fo_engine_read_stats(e, &s)
    for i in range(6):
        malformed += s.malformed[i]
    return {"packets": s.packets, "malformed": malformed, "unmatched": s.unmatched,
            "flows_created": s.flows_created, "flows_active": s.flows_active, "table_full": s.table_full,
            "verdicts": [s.verdicts[i] for i in range(5)], "bad_verdicts": s.bad_verdicts,
            "tx_packets": s.tx_packets, "tx_unsent": s.tx_unsent, "dropped": s.dropped,
            "hold_overflows": s.hold_overflows, "injected": s.injected, "inject_failed": s.inject_failed,
            "created": s.created, "replaced": s.replaced, "held": s.held, "checksums_fixed": s.checksums_fixed,
            "streams": {"reordered": s.stream_reordered, "reorder_overflow": s.stream_reorder_overflow,
                        "duplicates": s.stream_duplicates, "overlap_bytes": s.stream_overlap_bytes,
                        "retransmits": s.stream_retransmits, "gaps_skipped": s.stream_gaps_skipped,
                        "rewritten": s.stream_rewritten, "split": s.stream_split, "split_failed": s.stream_split_failed,
                        "release_split": s.stream_release_split,
                        "release_split_failed": s.stream_release_split_failed,
                        "copies_evicted": s.stream_copies_evicted}}


cdef object processor_report(fo_engine *e, processor):
    cdef char buf[512]
    if processor is None:
        return None
    if not isinstance(processor, (str, tuple)):
        return processor.stats() if hasattr(processor, "stats") else None
    n = fo_engine_processor_report(e, 0, 0, buf, sizeof(buf))
    if n < 0 or n >= <int>sizeof(buf):
        return None
    return json.loads(buf[:n].decode())


cdef inline double thread_cpu_seconds() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef int64_t timed_run(fo_engine *e, fo_gen *g, fo_gen_rig *rig, unsigned int burst, uint64_t pass_packets,
                       double warmup, double seconds, uint64_t count, uint64_t *cycles,
                       double *cpu_seconds) noexcept nogil:
    """One pass of `pass_packets` packets, `warmup` seconds, then `seconds` measured (into
    *cycles, and the calling thread's CPU time in that window into *cpu_seconds: on a shared
    machine the run-queue waits are in the first, not in the second), in bursts of `burst`:
    the measured packets, or < 0 if the mbuf pool ran dry. With `count` > 0, exactly `count`
    packets after the pass instead of the warm-up and the timed window (for instruction counts:
    benchmarks/proc_instructions.py)."""
    cdef int64_t packets = fo_gen_run_packets(e, g, rig, burst, pass_packets)
    cdef double cpu
    cdef uint64_t began
    if packets >= 0 and count > 0:
        cpu = thread_cpu_seconds()
        began = rte_rdtsc()
        packets = fo_gen_run_packets(e, g, rig, burst, count)
        cycles[0] = rte_rdtsc() - began
        cpu_seconds[0] = thread_cpu_seconds() - cpu
        return packets
    if packets >= 0:
        packets = fo_gen_run_for(e, g, rig, burst, warmup, cycles)
    if packets >= 0:
        cpu = thread_cpu_seconds()
        packets = fo_gen_run_for(e, g, rig, burst, seconds, cycles)
        cpu_seconds[0] = thread_cpu_seconds() - cpu
    return packets


def run(Rig rig not None, uint32_t flows, unsigned int burst, double seconds, double warmup, processor=None,
        uint64_t packets_only=0):
    """Builds an engine (one catch-all definition; `processor` in stage 0 if not None: a name in
    BUILTINS or a tier object), sends one pass over the traffic of `flows` connections through it
    (which creates every flow), `warmup` seconds more, then measures `seconds` of bursts of
    `burst` packets. Returns a dict: mpps and cycles_per_packet (generator and TX ring included),
    the engine's counters, the processor's report and the leak checks. packets_only > 0: exactly
    that many packets after the pass, no warm-up and no timed window (timed_run)."""
    if not 1 <= burst <= FO_GEN_MAX_BURST:
        raise ValueError(f"burst must be 1..{FO_GEN_MAX_BURST}, not {burst}")
    cdef int socket = rig.rig.socket_id
    cdef size_t heap_before = heap_used(socket), heap_built
    cdef fo_engine *e = build_engine(rig, flows, processor)
    cdef fo_gen g
    cdef uint64_t cycles = 0, pass_packets = 2ULL * flows
    cdef int64_t packets
    cdef double cpu_seconds = 0
    heap_built = heap_used(socket)
    fo_gen_init(&g, flows, 0, RTE_TCP_ACK_FLAG)
    with nogil:
        packets = timed_run(e, &g, &rig.rig, burst, pass_packets, warmup, seconds, packets_only, &cycles,
                            &cpu_seconds)
    try:
        if packets < 0:
            return {"error": "the mbuf pool ran dry: mbufs are being lost"}
        hz = <double>rte_get_tsc_hz()
        out = {"mpps": packets / (cycles / hz) / 1e6, "cycles_per_packet": cycles / <double>packets,
               "cpu_seconds": cpu_seconds, "cpu_cycles_per_packet": cpu_seconds * hz / packets,
               "packets": packets, "seconds": cycles / hz, "flows": flows, "burst": burst,
               "engine_heap_mib": (heap_built - heap_before) / 1048576.0,
               "engine": engine_stats(e), "processor": processor_report(e, processor)}
    finally:
        fo_engine_shutdown(e)
        fo_engine_free(e)
    out["heap_leaked_bytes"] = <long>(heap_used(socket) - heap_before)
    out["mbufs_missing"] = rig.mbufs_missing
    return out


def run_streams(Rig rig not None, uint32_t flows, unsigned int burst, double seconds, double warmup, processor=None,
                uint32_t payload_len=1448, uint16_t mss=1460, bytes pattern=b"", uint32_t plant_div=0,
                bint engine=True):
    """run() on fo_gen's stream mode (fo_gen.h: real TCP, SYNs then in-order data segments of
    payload_len bytes, acknowledged) into a definition with streams (`processor` as in run(); or
    engine=False: the generator and the TX ring alone). One pass over the traffic (the SYNs),
    `warmup` seconds, then `seconds` measured. Returns run()'s dict plus the generator's counts
    (planted: the pattern's whole copies so far, to compare with the processor's matches)."""
    if not 1 <= burst <= FO_GEN_MAX_BURST:
        raise ValueError(f"burst must be 1..{FO_GEN_MAX_BURST}, not {burst}")
    cdef int socket = rig.rig.socket_id
    cdef size_t heap_before = heap_used(socket), heap_built
    cdef fo_engine *e = build_engine(rig, flows, processor, True) if engine else NULL
    cdef fo_gen g
    cdef fo_gen_stream_conf conf
    cdef fo_gen_stream_stats gs
    cdef uint64_t cycles = 0, pass_packets = 2ULL * flows
    cdef int64_t packets
    cdef double cpu_seconds = 0
    heap_built = heap_used(socket)
    memset(&conf, 0, sizeof(conf))
    conf.payload_len = payload_len
    conf.mss = mss
    conf.plant_div = plant_div
    conf.pattern_len = len(pattern)
    if len(pattern) > FO_GEN_MAX_PATTERN:
        raise ValueError(f"the pattern takes at most {FO_GEN_MAX_PATTERN} bytes")
    memcpy(conf.pattern, <const char *>pattern, len(pattern))
    ret = fo_gen_init_stream(&g, flows, &conf, socket)
    if ret < 0:
        if e != NULL:
            fo_engine_free(e)
        check(ret, "fo_gen_init_stream (payload, pattern or flows out of range?)")
    with nogil:
        packets = timed_run(e, &g, &rig.rig, burst, pass_packets, warmup, seconds, 0, &cycles, &cpu_seconds)
    try:
        if packets < 0:
            return {"error": "the mbuf pool ran dry: mbufs are being lost or held"}
        hz = <double>rte_get_tsc_hz()
        fo_gen_read_stream_stats(&g, &gs)
        out = {"mpps": packets / (cycles / hz) / 1e6, "cycles_per_packet": cycles / <double>packets,
               "gbps": packets * payload_len * 8 / (cycles / hz) / 1e9,
               "cpu_seconds": cpu_seconds, "cpu_cycles_per_packet": cpu_seconds * hz / packets,
               "packets": packets, "seconds": cycles / hz, "flows": flows, "burst": burst,
               "payload_len": payload_len, "engine_heap_mib": (heap_built - heap_before) / 1048576.0,
               "engine": engine_stats(e) if e != NULL else None,
               "processor": processor_report(e, processor) if e != NULL else None,
               "generator": {"planted": gs.planted, "syns": gs.syns, "data": gs.data,
                             "payload_bytes": gs.payload_bytes, "observed": gs.observed, "unknown": gs.unknown,
                             "not_recycled": gs.not_recycled}}
    finally:
        if e != NULL:
            fo_engine_shutdown(e)
            fo_engine_free(e)
        fo_gen_fini(&g)
    out["heap_leaked_bytes"] = <long>(heap_used(socket) - heap_before)
    out["mbufs_missing"] = rig.mbufs_missing
    return out
