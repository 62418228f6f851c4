# cython: language_level=3
"""The Cython tier: a user's CProcessor inside the C engine.

A CProcessor's process() is a cdef method that runs without the GIL: the tier's C process()
calls it through the class's vtable, straight from the worker, with the engine's fo_batch array.
Nothing Python happens on that path: no GIL, no objects, no exceptions. The Python parts
(__init__, setup, report, teardown) run on the main thread with the GIL. See docs/cython.md.

    from flowos.cprocessor cimport *

    cdef class Dropper(CProcessor):
        level = "l4"

        cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
            cdef uint16_t b, i
            for b in range(n):
                for i in range(batches[b].n):
                    if pkt_dport(&batches[b], i) == 23:
                        set_verdict(&batches[b], i, FO_DROP)
"""
import socket

from cpython.ref cimport PyObject
from libc.errno cimport EMSGSIZE, ENOMEM
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset, strncpy

from flowos.includes.fo_processor cimport *
from flowos.includes.fo cimport fo_worker, fo_worker_request_stop

from flowos.message_desk import MessageDesk
from flowos.facts import LEVELS
# MAX_STATE_SIZE and state_size_problem (the user API's, pure Python) stay importable from here too.
from flowos.processor import MAX_STATE_SIZE, ON_ERROR, checked_policy, state_size_problem


cdef class CProcessor:
    """Subclass (in Cython), override process(); the other hooks are optional."""

    level = "l2"          # packets with no bytes at this level skip the processor
    readonly = True       # False if it changes packet bytes: it then stands alone in its stage
    on_error = "pass"     # a call that reported a fault passes its packets, drops them, or stops the run
    state_size = 0        # bytes of private state per flow (batches[b].state), zeroed at flow start

    def __init__(self, **params):
        """Validates parameters only (it runs once per instance a run uses, one per worker)."""
        if params:
            raise TypeError(f"unexpected parameters: {', '.join(sorted(params))}")

    def setup(self, context):
        """Once the ports exist: context.ports maps port names to ids (for redirect())."""

    def report(self):
        """What the processor has to report (JSON-serialisable), in the run's statistics."""
        return None

    def teardown(self):
        """Always called at the end, also after a failed start."""

    def on_message(self, message):
        """Answers an operator's message (flowos-ctl message): a str, None, or anything
        JSON-serialisable. With the GIL, on the worker between bursts; one that runs past the
        call budget goes on in its own thread, beside process() (docs/processors.md, Messages)."""
        return None

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        pass

    cdef void flow_end(self, const fo_flow *flow, void *state, fo_flow_end_reason reason) noexcept nogil:
        pass

    cdef void fault(self, const char *what) noexcept nogil:
        if self._faults == 0:
            strncpy(self._first_fault, what, sizeof(self._first_fault) - 1)
        self._faults += 1


cdef int inject(fo_batch *b, uint16_t i, const uint8_t *data, uint16_t length, bint after) noexcept nogil:
    cdef rte_mbuf *m = rte_pktmbuf_alloc(fo_batch_pool(b))
    if m == NULL:
        return -ENOMEM
    if length > rte_pktmbuf_tailroom(m):
        rte_pktmbuf_free(m)
        return -EMSGSIZE
    memcpy(rte_pktmbuf_append(m, length), data, length)
    return fo_batch_inject(b, i, m, after)   # -EINVAL when shorter than an Ethernet header; this module's
                                             # fast path: CythonTier registered its offsets


cdef dict flow_key_dict(const fo_flow_key *key, bint opener_is_lo):
    cdef const uint8_t *lo = &key.addr_lo[0]
    cdef const uint8_t *hi = &key.addr_hi[0]
    if key.family == 4 or key.family == 6:
        family, size = (socket.AF_INET, 4) if key.family == 4 else (socket.AF_INET6, 16)
        lo_text, hi_text = socket.inet_ntop(family, lo[:size]), socket.inet_ntop(family, hi[:size])
    else:
        lo_text = hi_text = "-"
    return {"def": key.defn, "proto": key.proto,
            "src": lo_text if opener_is_lo else hi_text, "dst": hi_text if opener_is_lo else lo_text,
            "sport": key.port_lo if opener_is_lo else key.port_hi,
            "dport": key.port_hi if opener_is_lo else key.port_lo}


# --- one processor in the engine --------------------------------------------------------------

cdef enum:
    ON_ERROR_PASS, ON_ERROR_DROP, ON_ERROR_STOP     # ON_ERROR's order


cdef struct tier_stats:
    uint64_t calls
    uint64_t packets
    uint8_t stop_requested
    fo_worker *worker        # stopped at once by a fault whose policy is stop


cdef struct tier_ctx:
    PyObject *processor      # the CProcessor: the tier keeps it alive while the engine runs
    PyObject *tier           # the CythonTier, for messages: the engine runs while the runner holds it
    tier_stats *stats        # the tier's
    uint8_t on_error         # index in ON_ERROR


cdef class CythonTier:
    """A CProcessor inside the engine: its C ops, its fault policy and its counters."""
    cdef fo_processor_ops ops
    cdef tier_ctx params
    cdef tier_stats counters
    cdef bytes name
    cdef readonly CProcessor processor
    cdef readonly str on_error
    cdef readonly object message_desk    # on_message, within the call budget (flowos/message_desk.py)

    def __init__(self, CProcessor processor, str on_error=None):
        self.processor = processor
        self.on_error, name = checked_policy(processor, on_error)
        problem = state_size_problem(type(processor))     # the configuration checked it; a caller of its own may not have
        if problem:
            raise ValueError(problem)
        self.name = fill_ops(&self.ops, processor, name, CProcessor, processor.state_size)
        memset(&self.counters, 0, sizeof(self.counters))
        self.message_desk = MessageDesk(name, processor.on_message, self.message_fault)
        self.params.processor = <PyObject *>processor
        self.params.stats = &self.counters
        self.params.tier = <PyObject *>self
        self.params.on_error = ON_ERROR.index(self.on_error)

    def ops_address(self):
        return <size_t>&self.ops

    def params_address(self):
        return <size_t>&self.params, sizeof(tier_ctx)

    def stop_worker_on_fault(self, size_t worker):
        """The worker (Worker.address(), 0 for none) that a fault under on_error: stop stops, from
        the worker's own thread at the fault: no further burst comes, whatever the main loop does."""
        self.counters.worker = <fo_worker *>worker

    def message_fault(self, exc):
        """on_message raised exc: counted as the processor's fault."""
        self.processor.fault(f"on_message failed: {type(exc).__name__}: {exc}".encode(errors="replace"))

    @property
    def stop_requested(self):
        return bool(self.counters.stop_requested)

    def counts(self):
        """The counters alone (report() must not run while the worker may be running process())."""
        return {"calls": self.counters.calls, "packets": self.counters.packets, "faults": self.processor._faults,
                "messages": self.message_desk.messages, "messages_over_budget": self.message_desk.over_budget}

    def stats(self):
        """Counters, the first fault, and what the processor reports."""
        cdef CProcessor p = self.processor
        try:
            report = p.report()
        except Exception as e:
            report = f"report() failed: {type(e).__name__}: {e}"
        faults = [p._first_fault.decode(errors="replace")] if p._faults else []
        return {"name": self.name.decode(), "calls": self.counters.calls, "packets": self.counters.packets,
                "faults": p._faults, "on_error": self.on_error, "first_faults": faults, "report": report,
                "messages": self.message_desk.messages, "messages_over_budget": self.message_desk.over_budget}


# --- the C callbacks: process and flow_end without the GIL ------------------------------------

include "flowos/boundary/tier.pxi"


cdef void tier_process(void *ctx, fo_batch *batches, uint16_t n) noexcept nogil:
    cdef tier_ctx *c = <tier_ctx *>ctx
    cdef uint64_t faults = (<CProcessor>c.processor)._faults
    cdef uint32_t total = 0
    cdef uint16_t b, i
    if c.stats.stop_requested:
        return   # never called after the fault that stopped the run: the verdicts stay FO_PASS
    for b in range(n):
        total += batches[b].n
    c.stats.calls += 1
    c.stats.packets += total
    (<CProcessor>c.processor).process(batches, n)
    if (<CProcessor>c.processor)._faults == faults:
        return
    if c.on_error == ON_ERROR_STOP:    # the run ends (and this call's packets pass)
        c.stats.stop_requested = 1
        if c.stats.worker != NULL:
            fo_worker_request_stop(c.stats.worker)
    for b in range(n):                 # the whole call's packets pass, or drop
        for i in range(batches[b].n):
            batches[b].verdicts[i] = FO_DROP if c.on_error == ON_ERROR_DROP else FO_PASS


cdef void tier_flow_end(void *ctx, const fo_flow *flow, void *state, fo_flow_end_reason reason) noexcept nogil:
    (<CProcessor>(<tier_ctx *>ctx).processor).flow_end(flow, state, reason)


cdef void tier_teardown(void *ctx) noexcept nogil:
    with gil:
        processor = <CProcessor>(<tier_ctx *>ctx).processor
        try:
            processor.teardown()
        except BaseException as e:
            what = f"failed in teardown: {type(e).__name__}: {e}".encode(errors="replace")
            processor.fault(what)
