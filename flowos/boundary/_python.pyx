# cython: language_level=3
"""The Python tier: a user's flowos.Processor inside the C engine.

Each processor becomes a fo_processor_ops whose process() takes the GIL once per burst, hands
the processor one Batch for every flow the burst brought it, and copies the verdicts back. The
worker's lcore keeps one Python thread state for its whole run (thread_start/thread_stop), so
taking the GIL costs no thread-state creation. Nothing raised in a processor unwinds through C:
a fault is counted, reported once with its traceback, and handled by the processor's on_error.

What a processor sees is in two included parts: python_views.pxi (packets, spans, kept buffers,
streams) and python_batch.pxi (Flow, Batch); the tier and its C callbacks are here.
"""
from cpython cimport array
import array
import sys
import traceback

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.list cimport PyList_GET_ITEM
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.errno cimport EINVAL, ERANGE
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from posix.mman cimport MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, mmap, munmap
from posix.unistd cimport _SC_PAGESIZE, sysconf
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from flowos.includes.fo_processor cimport *
from flowos.includes.fo cimport fo_worker, fo_worker_request_stop
from flowos.includes.fo cimport fo_field, fo_field_size, fo_field_vector, FO_FIELD_LENGTH, FO_FIELD_PROTO, FO_FIELD_DIR, \
    FO_FIELD_SPORT, FO_FIELD_DPORT, FO_FIELD_TCP_FLAGS, FO_FIELD_TTL, FO_FIELD_PAYLOAD_LEN, FO_FIELD_SRC4, FO_FIELD_DST4, \
    FO_FIELD_SRC, FO_FIELD_DST, FO_FIELD_COUNT

from flowos.message_desk import MessageDesk
from flowos.processor import END_REASONS, LEVELS, Processor, checked_policy

cdef extern from "Python.h" nogil:
    ctypedef struct PyThreadState:
        pass
    ctypedef int PyGILState_STATE
    PyGILState_STATE PyGILState_Ensure()
    void PyGILState_Release(PyGILState_STATE state)
    PyThreadState *PyEval_SaveThread()
    void PyEval_RestoreThread(PyThreadState *tstate)
    int PyThreadState_SetAsyncExc(unsigned long id, object exc)

cdef extern from "Python.h":
    # The two fields unshared() reads, through a borrowed pointer (no reference taken).
    ctypedef struct WeaklistType "PyTypeObject":
        Py_ssize_t tp_weaklistoffset
    WeaklistType *type_of "Py_TYPE"(PyObject *o)
    Py_ssize_t refs_of "Py_REFCNT"(PyObject *o)

cdef extern from "pythread.h" nogil:
    unsigned long PyThread_get_thread_ident()

cdef extern from "rte_ip.h" nogil:
    pass

cdef extern from "<sys/mman.h>" nogil:
    int MAP_FIXED_NOREPLACE     # Linux 4.17; older kernels take the address as a hint


# --- the worker thread's Python thread state ------------------------------------------------

cdef PyGILState_STATE worker_gil_state
cdef PyThreadState *worker_tstate = NULL


cdef void thread_start(void *ctx) noexcept nogil:
    global worker_gil_state, worker_tstate
    worker_gil_state = PyGILState_Ensure()
    worker_tstate = PyEval_SaveThread()


cdef void thread_stop(void *ctx) noexcept nogil:
    global worker_tstate
    PyEval_RestoreThread(worker_tstate)
    worker_tstate = NULL
    PyGILState_Release(worker_gil_state)


def thread_hooks():
    """The (start, stop) hooks, as addresses for Worker.set_thread_hooks."""
    return <size_t>thread_start, <size_t>thread_stop


# --- packets and flows, as a processor sees them ----------------------------------------------

include "python_views.pxi"
include "python_batch.pxi"


# --- one processor in the engine --------------------------------------------------------------

cdef struct call_clock:
    double since              # now() when the call began; 0 between calls
    const char *what          # "process", "flow_start", "flow_end", "teardown"
    const fo_flow *flow       # the flow of a flow_start/flow_end call
    fo_batch *batches         # the batches of a process() call
    uint16_t n
    unsigned long thread      # the thread making the call


cdef inline double now() noexcept nogil:
    """CLOCK_MONOTONIC in seconds, the clock of Python's time.monotonic()."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}


cdef str describe_flow(const fo_flow *flow):
    """One flow, as the watchdog names it: its id and 5-tuple as its opener sent it."""
    f = make_flow(flow, NULL, None, None)
    if f.src is None:
        return f"flow {f.id} (not IP)"
    src, dst = (f"[{a}]" if ":" in a else a for a in (f.src, f.dst))
    return f"flow {f.id} ({PROTO_NAMES.get(f.proto, f'proto {f.proto}')} {src}:{f.sport} -> {dst}:{f.dport})"


cdef struct tier_ctx:
    PyObject *tier
    uint8_t wants_flow_end


cdef class PythonTier:
    """A flowos.Processor inside the engine: its C ops, its fault policy and its counters."""
    cdef fo_processor_ops ops
    cdef tier_ctx params
    cdef bytes name
    cdef readonly object processor
    cdef readonly str on_error
    cdef readonly uint64_t calls, packets, faults
    cdef readonly list reports          # the first faults' tracebacks
    cdef readonly bint stop_requested
    cdef fo_worker *worker               # stopped at once by a fault whose policy is stop
    cdef Batch last_batch                # reused by the next call when nobody else holds it
    cdef call_clock call                 # the watchdog's view of the call under way
    cdef readonly double budget          # seconds a call may take (0: no limit)
    cdef readonly uint64_t over_budget
    cdef readonly double longest_call    # seconds
    cdef readonly object message_desk    # on_message, within the budget (flowos/message_desk.py)

    def __init__(self, processor, str on_error=None):
        if not isinstance(processor, Processor):
            raise TypeError(f"{processor!r} is not a flowos.Processor")
        cls = type(processor)
        self.processor = processor
        self.on_error, name = checked_policy(processor, on_error)
        self.name = fill_ops(&self.ops, processor, name, Processor, sizeof(void *))
        self.reports = []
        if cls.flow_start is not Processor.flow_start:   # else no GIL is taken for new flows
            self.ops.flow_start = tier_flow_start
        self.message_desk = MessageDesk(name, processor.on_message, self.message_fault)
        self.params.tier = <PyObject *>self
        self.params.wants_flow_end = cls.flow_end is not Processor.flow_end

    def ops_address(self):
        return <size_t>&self.ops

    def params_address(self):
        return <size_t>&self.params, sizeof(tier_ctx)

    def stop_worker_on_fault(self, size_t worker):
        """The worker (Worker.address(), 0 for none) that a fault under on_error: stop stops, from
        the worker's own thread at the fault: no further burst comes, whatever the main loop does."""
        self.worker = <fo_worker *>worker

    cdef void fault(self, str what, Batch batch):
        self.faults += 1
        if len(self.reports) < 5:
            text = f"flowos: processor {self.name.decode()} {what}"
            self.reports.append(text)
            if self.faults == 1:
                sys.stderr.write(text.rstrip() + f"\nflowos: on_error={self.on_error}; later faults are counted, not shown\n")
                sys.stderr.flush()
        if self.on_error == "stop":
            self.stop_requested = True
            if self.worker != NULL:
                fo_worker_request_stop(self.worker)
        if batch is not None and batch.holding:
            memset(batch.v, FO_DROP if self.on_error == "drop" else FO_PASS, batch.size)

    cdef void run(self, fo_batch *batches, uint16_t n) noexcept:
        cdef Batch batch
        if self.stop_requested:
            return   # never called after the fault that stopped the run: the verdicts stay FO_PASS
        try:
            batch = new_batch(self, batches, n)
        except (MemoryError, RuntimeError) as e:
            self.fault(f"could not be called: {e or 'out of memory'}", None)
            return   # the verdicts stay FO_PASS
        self.calls += 1
        self.packets += batch.size
        try:
            result = self.processor.process(batch)
            if result is not None:
                if len(result) != batch.size:
                    raise TypeError(f"process() returned {len(result)} verdicts for {batch.size} packets")
                batch.verdicts[:] = array.array("B", result)   # of another length: BufferError
            check_verdicts(batch.v, batch.size)
        except BaseException:
            self.fault("failed:\n" + traceback.format_exc(), batch)
        batch.valid = False
        batch._flows = None     # its Flow objects point back at it: no cycle left for the GC
        if batch.exports:
            self.fault("kept a view of packet bytes past process(): the views are stale now", None)
        if n > 0:   # the engine's verdicts are flat like its packets
            memcpy(batches[0].verdicts, batch.v, batch.size)
        batch.let_go_verdicts()

    def message_fault(self, exc):
        """on_message raised exc (called in its except clause): a fault like the others."""
        self.fault("failed in on_message:\n" + traceback.format_exc(), None)

    @property
    def messages(self):
        return self.message_desk.messages

    def counts(self):
        """The counters alone (safe while the worker runs: it updates them holding the GIL)."""
        return {"calls": self.calls, "packets": self.packets, "faults": self.faults, "messages": self.messages,
                **self.budget_counts()}

    def stats(self):
        return {"name": self.name.decode(), "calls": self.calls, "packets": self.packets, "faults": self.faults,
                "on_error": self.on_error, "first_faults": list(self.reports), **self.budget_counts()}

    # --- the watchdog's view of this processor's calls (flowos/runtime/watchdog.py) ---

    def set_budget(self, double seconds):
        """How long a call may take (0: no limit); the watchdog sets it, and message_desk's, as the run starts."""
        self.budget = seconds

    def budget_counts(self):
        return {"over_budget": self.over_budget, "messages_over_budget": self.message_desk.over_budget,
                "longest_call_ms": round(self.longest_call * 1000, 3)}

    cdef inline void enter(self, const char *what, const fo_flow *flow, fo_batch *batches, uint16_t n) noexcept:
        self.call.what = what
        self.call.flow = flow
        self.call.batches = batches
        self.call.n = n
        self.call.thread = PyThread_get_thread_ident()
        self.call.since = now()

    cdef inline void leave(self) noexcept:
        cdef double took = now() - self.call.since
        self.call.since = 0
        if took > self.longest_call:
            self.longest_call = took
        if self.budget > 0 and took > self.budget:
            self.over_budget += 1

    def busy(self):
        """The calls of this processor under way now (its messages: message_desk.busy()):
        [(what, when it began on time.monotonic()'s clock, the flows or None)]. With the GIL held
        the worker cannot leave its call, so its batches are still valid here."""
        if not self.call.since:
            return []
        return [(self.call.what.decode(), self.call.since, self.call_flows())]

    cdef str call_flows(self):
        if self.call.flow != NULL:
            return describe_flow(self.call.flow)
        if self.call.n == 0:
            return None
        text = describe_flow(self.call.batches[0].flow)
        return text if self.call.n == 1 else f"{text} and {self.call.n - 1} more flows"

    def interrupt(self, exc):
        """Raises exc in the thread of the call under way: a pure-Python loop stops at its next
        bytecode (a fault of the call); a wait in C (time.sleep) only once it returns. True if a
        call was under way."""
        if not self.call.since:
            return False
        return PyThreadState_SetAsyncExc(self.call.thread, exc) == 1


cdef array.array VERDICTS_TEMPLATE = array.array("B")
# The vector fields' arrays, by field: items of its size ("I" is 4 bytes on every platform FlowOS
# runs on), an address 16 items of "B".
cdef list FIELD_TEMPLATES = [array.array({1: "B", 2: "H", 4: "I", 16: "B"}[fo_field_size(<fo_field>f)])
                             for f in range(FO_FIELD_COUNT)]


cdef inline bint unshared(PyObject *o) noexcept:
    """Whether o (borrowed: no reference of the caller's counted) is held by one reference alone,
    and by no weak reference either: then no one but that holder can see what is written into
    it, and reusing it for the next call is invisible. (Batch has no weak references; an
    array.array may have.)"""
    cdef Py_ssize_t at = type_of(o).tp_weaklistoffset
    return refs_of(o) == 1 and (at == 0 or (<PyObject **>(<char *>o + at))[0] == NULL)


cdef int check_verdicts(const uint8_t *v, uint32_t size) except -1:
    """Raises ValueError for a verdict that is none of FO_PASS..FO_REDIRECT. A word at a time
    while every verdict is pass (0), the common call; one at a time from the first word that is not."""
    cdef uint64_t w
    cdef uint32_t i = 0
    while i + 8 <= size:
        memcpy(&w, v + i, 8)
        if w != 0:
            break
        i += 8
    for i in range(i, size):
        if v[i] >= FO_VERDICT_COUNT:
            raise ValueError(f"verdict {v[i]} of packet {i} is not one of pass, drop, hold, modified, redirect")
    return 0


cdef Batch new_batch(PythonTier tier, fo_batch *batches, uint16_t n):
    """A Batch over the engine's flat arrays: fo_processor.h promises that the batches of one
    call lie back to back (packets, verdicts, out_ports), so nothing is copied per packet and a
    batch's first flat index is where its packets start (the last batch's arrays are checked to
    line up). The Batch object, its verdict array and its field arrays are reused from the last
    call when nothing else holds them (unshared): a processor that kept the Batch finds it
    invalid and the next call gets a new one; a verdict or field array it kept is its own, never
    written again."""
    cdef Batch batch = None
    cdef array.array verdicts
    cdef uint32_t total = 0
    cdef Py_ssize_t last = 0
    if n > 0:
        last = batches[n - 1].pkts - batches[0].pkts
        if (last < 0 or batches[n - 1].verdicts != batches[0].verdicts + last
                or batches[n - 1].out_ports != batches[0].out_ports + last):
            raise RuntimeError("the engine's batches are not back to back")
        total = <uint32_t>last + batches[n - 1].n
    # Looked at through borrowed pointers: a local reference would count as a holder.
    if tier.last_batch is not None and unshared(<PyObject *>tier.last_batch):
        batch = tier.last_batch
        batch._flows = None
        batch.exports = 0
        if unshared(<PyObject *>batch.verdicts):
            verdicts = batch.verdicts
            array.resize_smart(verdicts, total)   # no reallocation while it shrinks or stays the size
            memset(verdicts.data.as_uchars, 0, total)
        else:
            batch.verdicts = array.clone(VERDICTS_TEMPLATE, total, zero=True)
    else:
        batch = Batch.__new__(Batch)
        batch.verdicts = array.clone(VERDICTS_TEMPLATE, total, zero=True)
        batch.field_arrays = [None] * FO_FIELD_COUNT
        tier.last_batch = batch
    batch.batches = batches
    batch.n_batches = n
    batch.size = total
    batch.pkts = batches[0].pkts if n > 0 else NULL
    batch.ports = batches[0].out_ports if n > 0 else NULL
    if n > 0:
        memset(batch.ports, 0, sizeof(uint16_t) * total)
    batch.hold_verdicts()
    batch.valid = True
    return batch


# --- the C callbacks: each takes the GIL and lets nothing escape ------------------------------

include "tier.pxi"


cdef void tier_process(void *ctx, fo_batch *batches, uint16_t n) noexcept nogil:
    # No Python variable here: one would make Cython take the GIL a second time on the way out.
    with gil:
        process_call(<PythonTier>(<tier_ctx *>ctx).tier, batches, n)


cdef void process_call(PythonTier tier, fo_batch *batches, uint16_t n) noexcept:
    tier.enter(b"process", NULL, batches, n)
    tier.run(batches, n)
    tier.leave()


cdef void tier_flow_start(void *ctx, const fo_flow *flow, void *state, const rte_mbuf *first) noexcept nogil:
    with gil:   # the work in a function of its own, as tier_process's: one GIL take per call
        flow_start_call(<PythonTier>(<tier_ctx *>ctx).tier, flow, state)


cdef void flow_start_call(PythonTier tier, const fo_flow *flow, void *state) noexcept:
    if tier.stop_requested:
        return
    f = make_flow(flow, state, None, None)
    tier.enter(b"flow_start", flow, NULL, 0)
    try:
        tier.processor.flow_start(f)
    except BaseException:
        tier.fault("failed in flow_start:\n" + traceback.format_exc(), None)
    tier.leave()
    f.ended = True


cdef void tier_flow_end(void *ctx, const fo_flow *flow, void *state, fo_flow_end_reason reason) noexcept nogil:
    cdef tier_ctx *c = <tier_ctx *>ctx
    if (<void **>state)[0] == NULL and not c.wants_flow_end:
        return
    with gil:
        flow_end_call(<PythonTier>c.tier, c.wants_flow_end, flow, state, reason)


cdef void flow_end_call(PythonTier tier, bint wants_flow_end, const fo_flow *flow, void *state,
                        fo_flow_end_reason reason) noexcept:
    f = make_flow(flow, state, None, None)
    if wants_flow_end:
        tier.enter(b"flow_end", flow, NULL, 0)
        try:
            tier.processor.flow_end(f, END_REASONS[<int>reason])
        except BaseException:
            tier.fault("failed in flow_end:\n" + traceback.format_exc(), None)
        tier.leave()
    f.state = None
    f.ended = True


cdef void tier_teardown(void *ctx) noexcept nogil:
    with gil:
        tier = <PythonTier>(<tier_ctx *>ctx).tier
        tier.enter(b"teardown", NULL, NULL, 0)
        try:
            tier.processor.teardown()
        except BaseException:
            tier.fault("failed in teardown:\n" + traceback.format_exc(), None)
        tier.leave()
