# cython: language_level=3
"""The Python tier: a user's flowos.Processor inside the C engine.

Each processor becomes a fo_processor_ops whose process() takes the GIL once per burst, hands
the processor one Batch for every flow the burst brought it, and copies the verdicts back. The
worker's lcore keeps one Python thread state for its whole run (thread_start/thread_stop), so
taking the GIL costs no thread-state creation. Nothing raised in a processor unwinds through C:
a fault is counted, reported once with its traceback, and handled by the processor's on_error.
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

cdef class Packet:
    """Zero-copy access to one packet's bytes, valid only during process(): after, it raises."""
    cdef rte_mbuf *m
    cdef Batch batch
    cdef int exports

    def __len__(self):
        self.batch.check()
        return self.m.pkt_len

    def tobytes(self):
        """The whole frame, across the segments of a long one (the buffer protocol gives the first)."""
        self.batch.check()
        if self.m.nb_segs == 1:
            return (<char *>fo_pkt_data(self.m))[:self.m.data_len]
        cdef bytes out = PyBytes_FromStringAndSize(NULL, self.m.pkt_len)
        cdef const void *data = rte_pktmbuf_read(self.m, 0, self.m.pkt_len, PyBytes_AS_STRING(out))
        if data != <const void *>PyBytes_AS_STRING(out):
            memcpy(PyBytes_AS_STRING(out), data, self.m.pkt_len)
        return out

    def __getitem__(self, index):
        self.batch.check()
        cdef uint8_t byte
        if isinstance(index, slice):
            return self.tobytes()[index]
        return (<const uint8_t *>rte_pktmbuf_read(self.m, self._index(index), 1, &byte))[0]

    cdef uint32_t _index(self, long i) except? 0:
        if i < 0:
            i += self.m.pkt_len
        if not 0 <= i < self.m.pkt_len:
            raise IndexError("packet index out of range")
        return <uint32_t>i

    def find(self, sub, start=0):
        return self.tobytes().find(sub, start)

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.batch.check()
        export_bytes(view, self, fo_pkt_data(self.m), self.m.data_len, flags)
        self.exports += 1
        self.batch.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1
        self.batch.exports -= 1
        forget_export(view)


cdef class Span:
    """Zero-copy bytes of one packet, from a stream: valid only during process()."""
    cdef const uint8_t *data
    cdef uint32_t length
    cdef Batch batch

    def __len__(self):
        return self.length

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.batch.check()
        export_bytes(view, self, self.data, self.length, flags)
        self.batch.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.batch.exports -= 1
        forget_export(view)


# The packet bytes exported to Python now, by the Py_buffer that holds them: (address, length).
# A memoryview cannot be revoked, so cover_kept_views() needs to know where kept ones point.
cdef dict exported = {}


def cover_kept_views():
    """Once the EAL has given its memory back: maps read-only zero pages wherever a view of
    packet bytes kept past its call still points, so that reading it (from atexit, a __del__, a
    thread) reads zeros instead of crashing the process. Never replaces a live mapping. Returns
    the number of pages mapped."""
    cdef size_t page = sysconf(_SC_PAGESIZE), start, end, at
    cdef void *p
    cdef int mapped = 0
    for address, length in list(exported.values()):
        start = <size_t>address & ~(page - 1)
        end = (<size_t>address + <size_t>length + page - 1) & ~(page - 1)
        for at in range(start, end, page):    # page by page: some may be mapped again already
            p = mmap(<void *>at, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
            if p == <void *>at:
                mapped += 1
            elif p != MAP_FAILED:             # a kernel that took the address as a hint
                munmap(p, page)
    return mapped


cdef void forget_export(Py_buffer *view):
    if exported is not None:   # None once the module is torn down at exit
        exported.pop(<size_t>view, None)


cdef void export_bytes(Py_buffer *view, object owner, const uint8_t *data, Py_ssize_t length, int flags):
    exported[<size_t>view] = (<size_t>data, length)
    view.buf = <void *>data
    view.obj = owner
    view.len = length
    view.readonly = 1
    view.itemsize = 1
    view.format = NULL
    if flags & 4:   # PyBUF_FORMAT
        view.format = b"B"
    view.ndim = 1
    view.shape = NULL
    view.strides = NULL
    view.suboffsets = NULL
    view.internal = NULL


cdef enum:
    ETHER_HEADER_LEN = 14


cdef bytes as_bytes(object data):
    """data's bytes; an int is refused (bytes(6) would be six zero bytes, not what was meant)."""
    if isinstance(data, int):
        raise TypeError(f"expected bytes-like data, got {type(data).__name__}")
    return data if type(data) is bytes else bytes(data)


cdef bint check_splice(int ret) except -1:
    """True for an edit made; False for one refused (counted, nothing changed: see can_change_length)."""
    if ret == -ERANGE:
        raise IndexError("stream offset outside the bytes this processor holds")
    return ret == 0


cdef class Stream:
    """The bytes a processor holds of one flow direction, at absolute stream offsets.

    TCP data is in sequence order, each byte once; UDP/ICMP datagrams in arrival order. Valid
    during process(). Reads are zero-copy when they fall in one packet (view()); edits change
    the packets in place, and for TCP the engine keeps sequence numbers right."""
    cdef fo_batch *b
    cdef Batch batch
    cdef readonly uint8_t dir

    @property
    def start(self):
        """The offset of the first byte held (everything before was released)."""
        self.batch.check()
        return fo_stream_start(self.b, self.dir)

    @property
    def end(self):
        self.batch.check()
        return fo_stream_start(self.b, self.dir) + fo_stream_len(self.b, self.dir)

    def __len__(self):
        self.batch.check()
        return fo_stream_len(self.b, self.dir)

    cdef uint64_t at(self, object off) except? 0:
        return fo_stream_start(self.b, self.dir) if off is None else off

    def read(self, off=None, n=None):
        """n bytes (all to the end if None) from off (the start if None), as bytes."""
        self.batch.check()
        cdef uint64_t o = self.at(off), start = fo_stream_start(self.b, self.dir)
        cdef uint64_t end = start + fo_stream_len(self.b, self.dir)
        if o < start:
            raise IndexError(f"stream offset {o} was released (this processor holds from {start})")
        if o > end:
            return b""
        cdef uint64_t count = end - o if n is None else min(<uint64_t>n, end - o)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, count)
        if count and fo_stream_read(self.b, self.dir, o, PyBytes_AS_STRING(out), <uint32_t>count) != count:
            raise RuntimeError("the stream changed under the read")
        return out

    def __getitem__(self, index):
        if isinstance(index, slice):
            if index.step not in (None, 1):
                raise ValueError("stream slices take no step")
            start = self.start if index.start is None else index.start
            stop = self.end if index.stop is None else index.stop
            return self.read(start, max(0, stop - start))
        data = self.read(index, 1)
        if not data:
            raise IndexError("stream offset outside the bytes held")
        return data[0]

    def view(self, off=None):
        """Zero-copy: the bytes from off to the end of the packet piece holding it."""
        self.batch.check()
        cdef uint32_t avail = 0
        cdef const uint8_t *p = fo_stream_peek(self.b, self.dir, self.at(off), &avail)
        if p == NULL:
            raise IndexError("stream offset outside the bytes held")
        cdef Span span = Span.__new__(Span)
        span.data = p
        span.length = avail
        span.batch = self.batch
        return memoryview(span)

    def find(self, pattern, start=None, end=None):
        """The offset of the first pattern in [start, end), also across packets; -1 if none."""
        self.batch.check()
        cdef bytes pat = as_bytes(pattern)
        cdef uint64_t stop = self.end if end is None else end
        return fo_stream_find(self.b, self.dir, <const char *>pat, len(pat), self.at(start), stop)

    def partial_at(self, pattern):
        """Where a match of pattern may still be starting, cut off by the end of the bytes held:
        the offset of the longest proper prefix of pattern that ends the stream, else end.
        Releasing up to here holds back only what the next bytes could complete."""
        cdef bytes pat = as_bytes(pattern)
        cdef uint64_t end = self.end
        cdef bytes tail = self.read(max(self.start, end - max(len(pat) - 1, 0)))
        cdef bytes first = pat[:1]
        # The earliest place in the tail where pattern could start is the longest such prefix;
        # only the places of pattern's first byte can be one.
        cdef Py_ssize_t j = tail.find(first) if first else -1
        while j >= 0:
            if pat.startswith(tail[j:]):
                return end - (len(tail) - j)
            j = tail.find(first, j + 1)
        return end

    def startswith(self, prefix, off=None):
        cdef bytes p = as_bytes(prefix)
        return self.read(off, len(p)) == p

    def readline(self, off=None, delim=b"\n"):
        """The bytes from off up to and including delim, or None while no delim is held."""
        cdef uint64_t o = self.at(off)
        cdef int64_t hit = self.find(delim, o)
        if hit < 0:
            return None
        return self.read(o, hit + len(delim) - o)

    def packets(self):
        """(stream offset, batch index, length) of each packet of this direction held."""
        self.batch.check()
        cdef uint64_t off = fo_stream_start(self.b, self.dir)
        cdef uint32_t plen
        cdef uint16_t k
        out = []
        first = self.batch.index_of(self.b)
        for k in range(self.b.n):
            if fo_pkt_meta_of(self.b.pkts[k]).dir != self.dir:
                continue
            plen = fo_pkt_level_len(self.b.pkts[k], FO_LEVEL_PAYLOAD)
            if plen:
                out.append((off, first + k, plen))
                off += plen
        return out

    # An edit returns True once made. One FlowOS could not carry right (see can_change_length),
    # or with no mbuf for it, is refused: it returns False, changes nothing and is counted
    # (stream_edits_refused); the processor goes on with its other streams.

    @property
    def can_change_length(self):
        """Whether deletes and inserts anywhere in the bytes held would be made (memory aside):
        normalised TCP (streams: on), UDP, ICMP; never in IP fragments."""
        self.batch.check()
        return fo_stream_can_resize(self.b, self.dir, fo_stream_start(self.b, self.dir), fo_stream_len(self.b, self.dir)) != 0

    def replace(self, off, data):
        """Overwrites len(data) bytes at off. True, or False if refused."""
        self.batch.check()
        cdef bytes d = as_bytes(data)
        made = check_splice(fo_stream_splice(self.b, self.dir, off, len(d), <const char *>d, len(d)))
        self.batch.sync_verdicts(self.b)
        return made

    def delete(self, off, n):
        """Removes n bytes at off. True, or False if refused."""
        self.batch.check()
        made = check_splice(fo_stream_splice(self.b, self.dir, off, n, NULL, 0))
        self.batch.sync_verdicts(self.b)
        return made

    def insert(self, off, data):
        """Inserts data before the byte at off. True, or False if refused."""
        self.batch.check()
        cdef bytes d = as_bytes(data)
        made = check_splice(fo_stream_splice(self.b, self.dir, off, 0, <const char *>d, len(d)))
        self.batch.sync_verdicts(self.b)
        return made

    def release(self, upto):
        """Releases the bytes before upto and holds the rest, and everything after it in the
        flow (on TCP the packet holding upto is cut there after the call; a datagram is held
        whole). Returns the offset released up to."""
        self.batch.check()
        self.batch.push_verdicts(self.b)
        cdef uint64_t done = fo_stream_release(self.b, self.dir, upto)
        self.batch.sync_verdicts(self.b)
        return done


cdef class Flow:
    """One flow of a batch: its 5-tuple as its opener sent it, its packets, its state. Valid
    during the call it was handed to (process, or flow_end): after, it raises."""
    cdef fo_batch *fb                # None for a flow handed to flow_end
    cdef const fo_flow *flow
    cdef void **state_slot
    cdef readonly object packets     # the flow's packets' indices in the batch (a range)
    cdef Batch batch                 # None for a flow handed to flow_end
    cdef bint ended                  # a flow_end flow, after flow_end returned

    cdef int check(self) except -1:
        if self.ended:
            raise RuntimeError("this flow is only valid during the call it was handed to")
        if self.batch is not None:
            self.batch.check()
        return 0

    cdef object addr(self, bint source):
        self.check()
        cdef const uint8_t *a = &self.flow.key.addr_lo[0]
        if (self.flow.opener_is_lo == 1) != source:
            a = &self.flow.key.addr_hi[0]
        if self.flow.key.family == 4:
            return ".".join(str(a[i]) for i in range(4))
        if self.flow.key.family == 6:
            import ipaddress
            return str(ipaddress.IPv6Address(bytes(a[:16])))
        return None

    @property
    def src(self):
        return self.addr(True)

    @property
    def dst(self):
        return self.addr(False)

    @property
    def sport(self):
        self.check()
        return self.flow.key.port_lo if self.flow.opener_is_lo else self.flow.key.port_hi

    @property
    def dport(self):
        self.check()
        return self.flow.key.port_hi if self.flow.opener_is_lo else self.flow.key.port_lo

    @property
    def proto(self):
        self.check()
        return self.flow.key.proto

    @property
    def id(self):
        self.check()
        return self.flow.id

    def stream(self, int dir=0):
        """The stream of one direction (0: from the flow's opener, 1: the other way)."""
        self.check()
        if self.fb == NULL:
            raise RuntimeError("streams exist only in process()")
        if dir not in (0, 1):
            raise ValueError("a stream's direction is 0 (from the opener) or 1")
        cdef Stream s = Stream.__new__(Stream)
        s.b = self.fb
        s.batch = self.batch
        s.dir = dir
        return s

    def streams(self):
        """Both directions' streams: (from the opener, to the opener)."""
        return self.stream(0), self.stream(1)

    @property
    def counts(self):
        self.check()
        """(packets, bytes) by direction, as the engine counted them so far."""
        return ((self.flow.packets[0], self.flow.bytes[0]), (self.flow.packets[1], self.flow.bytes[1]))

    @property
    def state(self):
        """Any object, kept for this (flow, processor) until the flow ends."""
        self.check()
        cdef PyObject *obj = <PyObject *>self.state_slot[0]
        return None if obj == NULL else <object>obj

    @state.setter
    def state(self, value):
        self.check()
        cdef PyObject *old = <PyObject *>self.state_slot[0]
        if value is None:
            self.state_slot[0] = NULL
        else:
            Py_INCREF(value)
            self.state_slot[0] = <void *>value
        Py_XDECREF(old)


cdef Flow make_flow(const fo_flow *flow, void *state, Batch batch, object packets, fo_batch *fb=NULL):
    cdef Flow f = Flow.__new__(Flow)
    f.fb = fb
    f.flow = flow
    f.state_slot = <void **>state
    f.batch = batch
    f.packets = packets
    return f


cdef class Batch:
    """Every packet of one burst ready for a processor, grouped by flow. Valid during process()."""
    cdef fo_batch *batches
    cdef uint16_t n_batches
    cdef readonly uint32_t size
    cdef rte_mbuf **pkts             # flat: the engine lays batch b's packets after batch b-1's
    cdef uint16_t *ports             # redirect targets: the engine's out_ports, flat like pkts
    cdef readonly object verdicts    # array('B'), preset to pass
    cdef Py_buffer held              # verdicts' buffer, exported during the call: it cannot change size
    cdef uint8_t *v                  # held's items, size of them
    cdef bint holding                # held is exported (from new_batch to the end of run)
    cdef bint valid
    cdef int exports
    cdef list _flows
    cdef list field_arrays           # by fo_field: the array the last read returned, for reuse

    cdef int check(self) except -1:
        if not self.valid:
            raise RuntimeError("this batch (and its packets) is only valid during process()")
        return 0

    cdef int check_index(self, uint32_t i) except -1:
        self.check()
        if i >= self.size:
            raise IndexError("packet index out of range")
        return 0

    cdef int hold_verdicts(self) except -1:
        """Exports batch.verdicts for the call: an array('B') that exports its buffer refuses to
        change size (BufferError), so pop(), del, append() or a slice of another length raise in
        process() instead of leaving the engine to read verdicts past the array."""
        PyObject_GetBuffer(self.verdicts, &self.held, PyBUF_WRITABLE)
        self.v = <uint8_t *>self.held.buf
        self.holding = True
        return 0

    cdef void let_go_verdicts(self):
        if self.holding:
            self.holding = False
            self.v = NULL
            PyBuffer_Release(&self.held)

    cdef uint32_t first(self, uint16_t b):
        """Batch b's first flat index: where its packets start in the engine's flat array."""
        return <uint32_t>(self.batches[b].pkts - self.pkts)

    cdef uint16_t owner_of(self, uint32_t i):
        """The fo_batch that holds flat index i (< size): a binary search over the batches' starts."""
        cdef uint16_t lo = 0, hi = self.n_batches - 1, mid
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.first(mid) <= i:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def __len__(self):
        return self.size

    def flows(self):
        """The batch's flows, each with .packets: the indices of its packets in this batch."""
        self.check()
        if self._flows is None:
            self._flows = [make_flow(self.batches[b].flow, self.batches[b].state, self,
                                     range(self.first(b), self.first(b) + self.batches[b].n), &self.batches[b])
                           for b in range(self.n_batches)]
        return self._flows

    cdef uint32_t index_of(self, fo_batch *fb):
        return self.first(fb - self.batches)

    cdef void push_verdicts(self, fo_batch *fb):
        """The Python verdicts of fb's packets into fb, for C code that reads them."""
        cdef uint32_t first = self.index_of(fb), k
        for k in range(fb.n):
            fb.verdicts[k] = self.v[first + k]

    cdef void sync_verdicts(self, fo_batch *fb):
        """fb's verdicts (the C stream code sets them) back into batch.verdicts."""
        cdef uint32_t first = self.index_of(fb), k
        cdef uint8_t *v = self.v
        for k in range(fb.n):
            if fb.verdicts[k] != FO_PASS and v[first + k] == FO_PASS:
                v[first + k] = fb.verdicts[k]
            elif fb.verdicts[k] == FO_HOLD:
                v[first + k] = FO_HOLD

    def packet(self, uint32_t i):
        """Zero-copy view of packet i's bytes (its first segment)."""
        self.check_index(i)
        cdef Packet p = Packet.__new__(Packet)
        p.m = self.pkts[i]
        p.batch = self
        return p

    # Vector accessors: one C loop each (fo_field_vector), into an array.array (buffer protocol:
    # NumPy wraps it without a copy). Each read fills an array of its own: the one the last read of
    # that field returned when nothing holds it any more (not the caller, not a view, not a weak
    # reference: unshared), else a new one. So an array a processor keeps keeps its burst's values,
    # and one it let go is refilled without an allocation. The loop keeps the GIL: for a burst it
    # takes less time than releasing and taking it again.
    cdef object field(self, fo_field kind):
        self.check()
        cdef array.array template = FIELD_TEMPLATES[<int>kind]
        cdef Py_ssize_t items = self.size * (fo_field_size(kind) // template.ob_descr.itemsize)
        cdef PyObject *spare = PyList_GET_ITEM(self.field_arrays, <Py_ssize_t>kind)
        cdef array.array out
        if spare != <PyObject *>None and unshared(spare):
            out = <array.array>spare
            array.resize_smart(out, items)
        else:
            out = array.clone(template, items, zero=False)
            self.field_arrays[<int>kind] = out
        fo_field_vector(kind, self.pkts, self.size, out.data.as_voidptr)
        return out

    @property
    def length(self):
        return self.field(FO_FIELD_LENGTH)

    @property
    def proto(self):
        return self.field(FO_FIELD_PROTO)

    @property
    def sport(self):
        return self.field(FO_FIELD_SPORT)

    @property
    def dport(self):
        return self.field(FO_FIELD_DPORT)

    @property
    def tcp_flags(self):
        return self.field(FO_FIELD_TCP_FLAGS)

    @property
    def ttl(self):
        return self.field(FO_FIELD_TTL)

    @property
    def dir(self):
        return self.field(FO_FIELD_DIR)

    @property
    def payload_len(self):
        return self.field(FO_FIELD_PAYLOAD_LEN)

    @property
    def src4(self):
        """IPv4 source addresses as integers (host order; 0 for packets that are not IPv4)."""
        return self.field(FO_FIELD_SRC4)

    @property
    def dst4(self):
        return self.field(FO_FIELD_DST4)

    @property
    def src(self):
        """Source addresses, 16 bytes per packet (IPv4 as ::ffff:a.b.c.d; zeros if not IP), in
        one array('B'): NumPy wraps it as np.frombuffer(batch.src, np.uint8).reshape(-1, 16)."""
        return self.field(FO_FIELD_SRC)

    @property
    def dst(self):
        return self.field(FO_FIELD_DST)

    # Verdicts, one packet at a time (batch.verdicts[i] = ... works too).
    def drop(self, uint32_t i):
        self.check_index(i)
        self.v[i] = FO_DROP

    def hold(self, uint32_t i):
        self.check_index(i)
        self.v[i] = FO_HOLD

    def redirect(self, uint32_t i, uint16_t port):
        """Sends packet i out of port (an id from setup's context.ports; the engine drops and
        counts a redirect to a port that does not exist)."""
        self.check_index(i)
        self.v[i] = FO_REDIRECT
        self.ports[i] = port

    def write(self, uint32_t i, uint32_t offset, data):
        """Overwrites bytes of packet i in place; its checksums are repaired before it leaves."""
        self.check_index(i)
        cdef bytes b = as_bytes(data)
        if offset + len(b) > self.pkts[i].data_len:
            raise ValueError(f"write of {len(b)} bytes at {offset} past the packet's {self.pkts[i].data_len}")
        memcpy(fo_pkt_data(self.pkts[i]) + offset, <const char *>b, len(b))
        fo_pkt_meta_of(self.pkts[i]).flags |= FO_PKT_EDITED     # kept if it is held afterwards
        if self.v[i] == FO_PASS:
            self.v[i] = FO_MODIFIED

    def set_ttl(self, uint32_t i, uint8_t ttl):
        """Sets the IPv4 TTL / IPv6 hop limit of packet i."""
        self.check_index(i)
        cdef fo_pkt_meta *meta = fo_pkt_meta_of(self.pkts[i])
        if meta.flags & FO_PKT_IPV4:
            self.write(i, meta.offset[1] + 8, bytes([ttl]))
        elif meta.flags & FO_PKT_IPV6:
            self.write(i, meta.offset[1] + 7, bytes([ttl]))
        else:
            raise ValueError("packet is not IP")

    def inject(self, uint32_t i, data, bint after=True):
        """Adds a new packet (bytes of a whole frame) to packet i's flow, next to it."""
        self.check_index(i)
        cdef bytes b = as_bytes(data)
        cdef uint16_t owner = self.owner_of(i)
        cdef fo_batch *fb = &self.batches[owner]
        cdef rte_mbuf *m = rte_pktmbuf_alloc(fo_batch_pool(fb))
        if m == NULL:
            raise MemoryError("no mbuf to inject into")
        cdef uint16_t room = rte_pktmbuf_tailroom(m)
        if len(b) > room:
            rte_pktmbuf_free(m)
            raise ValueError(f"an injected packet holds at most {room} bytes, got {len(b)}")
        memcpy(rte_pktmbuf_append(m, len(b)), <const char *>b, len(b))
        ret = fo_batch_inject(fb, i - self.first(owner), m, after)
        if ret == -EINVAL:   # i is checked: the frame is short
            raise ValueError(f"an injected frame needs at least its {ETHER_HEADER_LEN}-byte Ethernet header, "
                             f"got {len(b)} bytes")
        if ret != 0:
            raise RuntimeError("the flow holds too much to take another packet")


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


cdef int copy_reply(int ret, str text, char *reply, size_t length):
    """Writes a message's reply text into the engine's buffer; returns ret if it is an error, else the text's length."""
    data = text.encode("utf-8", "replace")
    cdef size_t n = min(<size_t>len(data), length - 1)
    memcpy(reply, <const char *>data, n)
    reply[n] = 0
    return ret if ret < 0 else len(data)


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
        if fo_pkt_meta_register() != 0:   # this module's copy of the metadata offsets
            raise RuntimeError("cannot find the per-packet metadata fields: is the flow engine created?")
        if not isinstance(processor, Processor):
            raise TypeError(f"{processor!r} is not a flowos.Processor")
        cls = type(processor)
        self.processor = processor
        self.on_error, name = checked_policy(processor, on_error)
        self.name = name.encode()
        self.reports = []
        memset(&self.ops, 0, sizeof(self.ops))
        self.ops.name = self.name
        cdef int level = LEVELS.index(processor.level)
        self.ops.level = <fo_level>level
        self.ops.readonly = bool(processor.readonly)
        self.ops.ctx_size = sizeof(tier_ctx)
        self.ops.state_size = sizeof(void *)
        self.ops.setup = tier_setup
        self.ops.process = tier_process
        self.ops.flow_end = tier_flow_end
        self.ops.teardown = tier_teardown
        if cls.flow_start is not Processor.flow_start:   # else no GIL is taken for new flows
            self.ops.flow_start = tier_flow_start
        if cls.on_message is not Processor.on_message:
            self.ops.message = tier_message
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

cdef int tier_setup(void *ctx, const void *params, size_t params_len, char *err, size_t errlen) noexcept nogil:
    memcpy(ctx, params, sizeof(tier_ctx))
    return 0


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


cdef int tier_message(void *ctx, const char *msg, char *reply, size_t length) noexcept nogil:
    with gil:
        ret, text = (<PythonTier>(<tier_ctx *>ctx).tier).message_desk.answer(msg.decode("utf-8", "replace"))
        return copy_reply(ret, text, reply, length)


cdef void tier_teardown(void *ctx) noexcept nogil:
    with gil:
        tier = <PythonTier>(<tier_ctx *>ctx).tier
        tier.enter(b"teardown", NULL, NULL, 0)
        try:
            tier.processor.teardown()
        except BaseException:
            tier.fault("failed in teardown:\n" + traceback.format_exc(), None)
        tier.leave()
