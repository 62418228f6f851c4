# cython: language_level=3
"""Cython processors that tests/test_cython_processors.py builds (like the example, outside
FlowOS) to check the helpers of flowos.cprocessor against scapy, that process() runs without the
GIL, and the verdicts, inject() and fault() policies of the Cython tier; and processors that
crash the process or hold the GIL for ever, for tests/test_supervisor.py."""
import time

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, strlen
from posix.unistd cimport sleep, write

from flowos.cprocessor cimport *

cdef extern from "Python.h" nogil:
    int PyGILState_Check()

FIELDS = ("seq", "dir", "proto", "sport", "dport", "tcp_flags", "ttl", "length", "l2", "l3", "l4", "payload",
          "payload_len", "gil")


cdef struct row:
    uint32_t v[14]


cdef class Probe(CProcessor):
    """Records what the helpers say about every packet it sees, in arrival order per call."""
    cdef row *rows
    cdef uint32_t capacity, n_rows, calls

    def __init__(self, capacity=100000):
        super().__init__()
        self.capacity = capacity

    def setup(self, context):
        self.rows = <row *>calloc(self.capacity, sizeof(row))
        if self.rows == NULL:
            raise MemoryError()

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint16_t b, i
        cdef fo_batch *fb
        cdef uint8_t *ttl
        cdef row *r
        self.calls += 1
        for b in range(n):
            fb = &batches[b]
            for i in range(fb.n):
                if self.n_rows == self.capacity:
                    self.fault(b"too many packets")
                    return
                r = &self.rows[self.n_rows]
                self.n_rows += 1
                ttl = pkt_ttl(fb, i)
                r.v[0] = pkt_seq(fb, i)
                r.v[1] = pkt_dir(fb, i)
                r.v[2] = pkt_proto(fb, i)
                r.v[3] = pkt_sport(fb, i)
                r.v[4] = pkt_dport(fb, i)
                r.v[5] = pkt_tcp_flags(fb, i)
                r.v[6] = ttl[0] if ttl != NULL else 0
                r.v[7] = pkt_len(fb, i)
                r.v[8] = pkt_offset(fb, i, FO_LEVEL_L2)
                r.v[9] = pkt_offset(fb, i, FO_LEVEL_L3)
                r.v[10] = pkt_offset(fb, i, FO_LEVEL_L4)
                r.v[11] = pkt_offset(fb, i, FO_LEVEL_PAYLOAD)
                r.v[12] = pkt_level_len(fb, i, FO_LEVEL_PAYLOAD)
                r.v[13] = PyGILState_Check()

    def report(self):
        cdef uint32_t k
        return {"calls": self.calls,
                "rows": [dict(zip(FIELDS, [self.rows[k].v[j] for j in range(14)])) for k in range(self.n_rows)]}

    def __dealloc__(self):
        free(self.rows)


cdef class Faulty(CProcessor):
    """Marks every packet dropped, and reports a fault on every call: on_error decides."""

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint16_t b, i
        for b in range(n):
            for i in range(batches[b].n):
                set_verdict(&batches[b], i, FO_DROP)
        self.fault(b"a fault, on purpose")


cdef class Sleeper(CProcessor):
    """Its first call sleeps for an hour without the GIL: a call the watchdog cannot see or stop."""

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        sleep(3600)


cdef class Segfaults(CProcessor):
    """Its first call writes through a NULL pointer: the process dies of SIGSEGV (tests/test_supervisor.py)."""
    cdef int *nowhere           # NULL, in a field: the compiler cannot tell

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        self.nowhere[0] = 1


cdef class HoldsTheGil(CProcessor):
    """Its first call takes the GIL and never lets it go, like a C extension stuck in a loop: no
    Python runs in the process again, the watchdog's neither (tests/test_supervisor.py). It says
    so on stderr first, straight to the file descriptor (FlowOS's output router would hold it)."""

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef const char *said = b"cyprobe: HoldsTheGil holds the GIL\n"
        with gil:
            write(2, said, strlen(said))
            while True:
                pass


cdef class EndsSlowly(CProcessor):
    """Passes everything; its first flow_end sleeps for an hour without the GIL."""

    cdef void flow_end(self, const fo_flow *flow, void *state, fo_flow_end_reason reason) noexcept nogil:
        sleep(3600)


cdef class SlowMessages(CProcessor):
    """Passes everything; the message "sleep N" takes N seconds to answer (pyprocs.stuck's twin)."""

    def on_message(self, message):
        command, _, arg = message.partition(" ")
        if command == "sleep":
            time.sleep(float(arg))
            return f"slept {arg} s"
        return "ok"


cdef class Injector(CProcessor):
    """Injects a copy of every UDP packet to `dport` right after it (its first `length` bytes if
    given); later stages see the copies."""
    cdef uint16_t dport
    cdef int length
    cdef uint64_t failed

    def __init__(self, dport=5353, length=-1):
        super().__init__()
        self.dport = dport
        self.length = length

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint16_t b, i, count
        for b in range(n):
            count = batches[b].n          # the window; injected packets are not part of it
            for i in range(count):
                if pkt_proto(&batches[b], i) == 17 and pkt_dport(&batches[b], i) == self.dport:
                    if inject(&batches[b], i, pkt_data(&batches[b], i),
                              pkt_data_len(&batches[b], i) if self.length < 0 else self.length, True) != 0:
                        self.failed += 1

    def report(self):
        return {"failed": self.failed}


cdef class Redirector(CProcessor):
    """Sends UDP out of the port named `to` instead of its route's (its id from setup())."""
    cdef str port_name
    cdef uint16_t port_id

    def __init__(self, to=None):
        super().__init__()
        if not isinstance(to, str):
            raise ValueError("to: the name of a port")
        self.port_name = to

    def setup(self, context):
        self.port_id = context.ports[self.port_name]

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint16_t b, i
        for b in range(n):
            for i in range(batches[b].n):
                if pkt_proto(&batches[b], i) == 17:
                    redirect(&batches[b], i, self.port_id)


cdef class Messenger(CProcessor):
    """Steered by operator messages: "drop" drops every packet from then on, "pass" stops that,
    "count" replies what it saw; anything else raises (a fault)."""
    cdef bint dropping
    cdef uint64_t seen

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint16_t b, i
        for b in range(n):
            for i in range(batches[b].n):
                self.seen += 1
                if self.dropping:
                    set_verdict(&batches[b], i, FO_DROP)

    def on_message(self, message):
        if message == "drop" or message == "pass":
            self.dropping = message == "drop"
            return "dropping" if self.dropping else "passing"
        if message == "count":
            return {"seen": self.seen, "dropping": bool(self.dropping)}
        raise ValueError(f"unknown message {message!r}")


cdef enum:
    MAX_OLD = 64


cdef uint64_t partial_at(fo_batch *fb, uint8_t d, const char *pat, uint32_t pat_len, uint64_t at) noexcept nogil:
    """Where the longest end of the window from `at` on that could start `pat` begins (the window's
    end if none): what must be held back until the next bytes decide."""
    cdef uint8_t tail[MAX_OLD]
    cdef uint64_t end = stream_end(fb, d)
    cdef uint32_t n = <uint32_t>min(<uint64_t>(pat_len - 1), end - at), k
    n = stream_read(fb, d, end - n, tail, n)
    k = n
    while k > 0:
        if memcmp(tail + n - k, pat, k) == 0:
            return end - k
        k -= 1
    return end


cdef class StreamRedactor(CProcessor):
    """Replaces every `old` with `new` (any lengths) in the server's stream (direction 1), from
    Cython through the stream helpers: the twin of tests/pyprocs/streams.py:Rewriter, holding back
    only a possible start of `old` at the window's end (partial_at). Its per-flow state is the
    stream offset searched up to. One instance per worker, each with its own counts."""
    level = "payload"
    readonly = False
    state_size = sizeof(uint64_t)
    cdef bytes old, new                      # kept alive for the pointers below
    cdef const char *old_p
    cdef const char *new_p
    cdef uint32_t old_len, new_len
    cdef uint64_t replaced, failed

    def __init__(self, old="SECRET-TOKEN-1234", new="[gone]"):
        super().__init__()
        self.old, self.new = old.encode(), new.encode()
        if not 0 < len(self.old) <= MAX_OLD:
            raise ValueError(f"old: 1..{MAX_OLD} bytes")
        self.old_p, self.new_p = self.old, self.new
        self.old_len, self.new_len = len(self.old), len(self.new)

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint16_t b
        cdef fo_batch *fb
        cdef uint64_t *at
        cdef int64_t hit
        cdef const char *old = self.old_p
        cdef const char *new = self.new_p
        cdef uint32_t old_len = self.old_len, new_len = self.new_len
        for b in range(n):
            fb = &batches[b]
            at = <uint64_t *>fb.state
            if at[0] < stream_start(fb, 1):
                at[0] = stream_start(fb, 1)
            hit = stream_find(fb, 1, old, old_len, at[0], stream_end(fb, 1))
            while hit >= 0:
                if stream_splice(fb, 1, hit, old_len, new, new_len) != 0:
                    self.failed += 1
                    break
                self.replaced += 1
                at[0] = hit + new_len
                hit = stream_find(fb, 1, old, old_len, at[0], stream_end(fb, 1))
            # Hold back what could be the start of the next `old`.
            at[0] = partial_at(fb, 1, old, old_len, at[0])
            stream_release(fb, 1, at[0])

    def report(self):
        return {"replaced": self.replaced, "failed": self.failed}
