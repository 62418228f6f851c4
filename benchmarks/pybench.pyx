# cython: language_level=3
"""The processors benchmark's rig (benchmarks/procbench.py drives it).

The flow engine on the calling thread, on fo_gen's traffic (fo_flowbench's: 64-byte TCP frames
of N connections, scattered), with one processor under test: none, a C one (a built-in or
fo_benchproc.c's), or one of another tier (a flowos._python.PythonTier or a Cython processor:
anything with ops_address() and params_address()). The timed loop runs without the GIL, here:
a Python processor takes it in the engine (the tier's `with gil`) once per call.

The engine is built through the C API, as benchmarks/fo_flowbench.c builds it, rather than with
flowos._engine.Engine, because Engine keeps its fo_engine pointer to itself (there is no
_engine.pxd) and this loop calls fo_engine_burst directly. It is the engine flowos-run builds
for one catch-all flow with one processor (runner._build_engine adds Python processors the same
way, through add_tier_processor: fo_engine_add_processor with the tier's ops and parameters).
"""
import json

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from flowos.dpdk cimport rte_errno, rte_mempool, rte_mempool_avail_count, rte_strerror
from flowos.fo cimport fo_route
from flowos.fo_engine cimport *
from flowos._runtime cimport Mempool

from flowos.errors import FlowOSError


cdef extern from "rte_lcore.h" nogil:
    unsigned int rte_socket_id()

cdef extern from "rte_cycles.h" nogil:
    uint64_t rte_get_tsc_hz()

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

cdef extern from "fo_benchproc.h" nogil:
    const fo_processor_ops fo_bench_dport_ops

MAX_BURST = FO_GEN_MAX_BURST
FRAME_LEN = FO_GEN_FRAME_LEN + 4
TIMEOUT_S = 600         # no flow may end by idle time during a run
BUILTINS = ("counter", "bench_dport")   # the C processors run() takes by name


cdef int check(int ret, str what) except -1:
    if ret < 0:
        raise FlowOSError(f"{what}: {rte_strerror(-ret).decode()}")
    return ret


def register_meta():
    """This module's copy of the fast path's metadata offsets (each shared object has its own)."""
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


cdef fo_engine *build_engine(Rig rig, uint32_t flows, processor) except NULL:
    cdef fo_engine_conf conf
    cdef fo_def_conf d
    cdef fo_counter_params counter
    cdef const fo_processor_ops *ops = NULL
    cdef const void *params = NULL
    cdef size_t params_len = 0
    cdef char err[256]
    cdef fo_engine *e
    cdef int i
    memset(&conf, 0, sizeof(conf))
    conf.flow_capacity = 2 * flows          # twice the concurrent flows, as one would configure it
    for i in range(FO_TIMEOUT_CLASS_COUNT):
        conf.timeout_ns[i] = TIMEOUT_S * 1000000000ULL
    conf.pool = rig.pool.mp
    conf.socket_id = rig.rig.socket_id
    e = fo_engine_create(&conf)
    if e == NULL:
        check(-rte_errno, "fo_engine_create")
    err[0] = 0
    try:
        memset(&d, 0, sizeof(d))
        memcpy(d.name, b"all", 4)           # one catch-all definition
        check(fo_engine_add_definition(e, &d), "fo_engine_add_definition")
        if processor is not None:
            if processor == "counter":
                counter.max_flows = 0       # count, keep no records
                ops = fo_processor_find(b"counter")
                params = &counter
                params_len = sizeof(counter)
            elif processor == "bench_dport":
                ops = &fo_bench_dport_ops
            elif isinstance(processor, str):
                raise ValueError(f"no C processor {processor!r} here: {', '.join(BUILTINS)}")
            else:                           # another tier: its ops and setup parameters
                ops = <const fo_processor_ops *><size_t>processor.ops_address()
                address, params_len = processor.params_address()
                params = <const void *><size_t>address
            ret = fo_engine_add_processor(e, 0, 0, ops, params, params_len, err, sizeof(err))
            if ret < 0:
                reason = err.decode(errors="replace") or rte_strerror(-ret).decode()
                raise FlowOSError(f"fo_engine_add_processor: {reason}")
        ret = fo_engine_build(e, err, sizeof(err))
        if ret < 0:
            raise FlowOSError(f"fo_engine_build: {err.decode(errors='replace')}")
    except BaseException:
        fo_engine_free(e)
        raise
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
            "tx_packets": s.tx_packets, "tx_unsent": s.tx_unsent, "dropped": s.dropped}


cdef object processor_report(fo_engine *e, processor):
    cdef char buf[512]
    if processor is None:
        return None
    if not isinstance(processor, str):
        return processor.stats() if hasattr(processor, "stats") else None
    n = fo_engine_processor_report(e, 0, 0, buf, sizeof(buf))
    if n < 0 or n >= <int>sizeof(buf):
        return None
    return json.loads(buf[:n].decode())


def run(Rig rig not None, uint32_t flows, unsigned int burst, double seconds, double warmup, processor=None):
    """Builds an engine (one catch-all definition; `processor` in stage 0 if not None: a name in
    BUILTINS or a tier object), sends one pass over the traffic of `flows` connections through it
    (which creates every flow), `warmup` seconds more, then measures `seconds` of bursts of
    `burst` packets. Returns a dict: mpps and cycles_per_packet (generator and TX ring included),
    the engine's counters, the processor's report and the leak checks."""
    if not 1 <= burst <= FO_GEN_MAX_BURST:
        raise ValueError(f"burst must be 1..{FO_GEN_MAX_BURST}, not {burst}")
    cdef int socket = rig.rig.socket_id
    cdef size_t heap_before = heap_used(socket), heap_built
    cdef fo_engine *e = build_engine(rig, flows, processor)
    cdef fo_gen g
    cdef uint64_t cycles = 0, pass_packets = 2ULL * flows
    cdef int64_t packets
    heap_built = heap_used(socket)
    fo_gen_init(&g, flows, 0, RTE_TCP_ACK_FLAG)
    with nogil:
        packets = fo_gen_run_packets(e, &g, &rig.rig, burst, pass_packets)
        if packets >= 0:
            packets = fo_gen_run_for(e, &g, &rig.rig, burst, warmup, &cycles)
        if packets >= 0:
            packets = fo_gen_run_for(e, &g, &rig.rig, burst, seconds, &cycles)
    try:
        if packets < 0:
            return {"error": "the mbuf pool ran dry: mbufs are being lost"}
        hz = <double>rte_get_tsc_hz()
        out = {"mpps": packets / (cycles / hz) / 1e6, "cycles_per_packet": cycles / <double>packets,
               "packets": packets, "seconds": cycles / hz, "flows": flows, "burst": burst,
               "engine_heap_mib": (heap_built - heap_before) / 1048576.0,
               "engine": engine_stats(e), "processor": processor_report(e, processor)}
    finally:
        fo_engine_shutdown(e)
        fo_engine_free(e)
    out["heap_leaked_bytes"] = <long>(heap_used(socket) - heap_before)
    out["mbufs_missing"] = rig.mbufs_missing
    return out
