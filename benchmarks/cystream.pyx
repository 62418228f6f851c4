# cython: language_level=3
"""The streams benchmark's Cython processors (flowos.cprocessor.CProcessor, payload level): the
logic of fo_benchproc.c's bench_find and bench_edit (see fo_benchproc.h), through the inline
stream accessors of flowos/cprocessor.pxd (batch.stream_ops). Built like a user's Cython
processor (benchmarks/meson.build): it does not link the fast path."""
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from flowos.cprocessor cimport *

from flowos.cprocessor import CythonTier

cdef enum:
    MAX_PATTERN = 64
    MAX_WINDOW = 256

EDIT_MODES = ("none", "replace", "insert", "delete")


cdef class StreamFind(CProcessor):
    """Counts the matches of a pattern in both directions of every flow, also across packets;
    releases each window up to where the pattern may still be starting. Per flow and direction
    (its state), where the next match may start: held bytes come back in the next window."""
    level = "payload"
    readonly = True
    state_size = 16
    cdef uint8_t pattern[MAX_PATTERN]
    cdef uint32_t pattern_len
    cdef readonly uint64_t calls, windows, matched, scanned

    def __init__(self, bytes pattern):
        super().__init__()
        if not 0 < len(pattern) <= MAX_PATTERN:
            raise ValueError(f"the pattern takes 1..{MAX_PATTERN} bytes")
        memcpy(self.pattern, <const char *>pattern, len(pattern))
        self.pattern_len = len(pattern)

    cdef uint64_t partial_at(self, fo_batch *b, uint8_t d, uint64_t start, uint64_t end) noexcept nogil:
        cdef uint8_t tail[MAX_PATTERN]
        cdef uint32_t n = <uint32_t>min(<uint64_t>(self.pattern_len - 1), end - start), k
        n = stream_read(b, d, end - n, tail, n)
        k = n
        while k > 0:
            if memcmp(tail + n - k, self.pattern, k) == 0:
                return end - k
            k -= 1
        return end

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint64_t matched = 0, scanned = 0, windows = 0, start, end, at
        cdef uint64_t *seen
        cdef int64_t hit
        cdef uint16_t i
        cdef uint8_t d
        cdef fo_batch *b
        for i in range(n):
            b = &batches[i]
            for d in range(2):
                start = stream_start(b, d)
                end = stream_end(b, d)
                if end == start:
                    continue
                seen = <uint64_t *>b.state + d
                at = max(seen[0], start)
                scanned += end - at
                while True:
                    hit = stream_find(b, d, self.pattern, self.pattern_len, at, end)
                    if hit < 0:
                        break
                    matched += 1
                    at = hit + 1
                # What was held comes back next time: no match starts before end - len + 1 unfound.
                seen[0] = max(at, end - self.pattern_len + 1 if end >= self.pattern_len else 0)
                stream_release(b, d, self.partial_at(b, d, start, end))
                windows += 1
        self.calls += 1
        self.windows += windows
        self.matched += matched
        self.scanned += scanned

    def report(self):
        return {"calls": self.calls, "windows": self.windows, "matched": self.matched, "scanned": self.scanned}


cdef class StreamEdit(CProcessor):
    """One edit at the start of every data packet's payload, both directions: none (walks the
    packets and their stream offsets only), a same-length replace, an insert or a delete."""
    level = "payload"
    readonly = False
    cdef int mode
    cdef uint32_t nbytes
    cdef readonly uint64_t packets, edits, failed

    def __init__(self, str mode, int nbytes):
        super().__init__()
        if mode not in EDIT_MODES or not 0 < nbytes <= 16:
            raise ValueError(f"mode: one of {EDIT_MODES}; 1..16 bytes")
        self.mode = EDIT_MODES.index(mode)
        self.nbytes = nbytes

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef const char *ins = b"EDITEDITEDITEDIT"
        cdef uint64_t pos[2]
        cdef uint64_t off[MAX_WINDOW]
        cdef uint32_t plen[MAX_WINDOW]
        cdef uint32_t k = self.nbytes
        cdef uint64_t packets = 0, edits = 0, failed = 0
        cdef uint16_t i, j
        cdef uint8_t d
        cdef int ret
        cdef fo_batch *b
        for i in range(n):
            b = &batches[i]
            if b.n > MAX_WINDOW:
                failed += b.n
                continue
            pos[0] = stream_start(b, 0)
            pos[1] = stream_start(b, 1)
            for j in range(b.n):
                d = pkt_dir(b, j)
                plen[j] = pkt_level_len(b, j, FO_LEVEL_PAYLOAD)
                off[j] = pos[d]
                pos[d] += plen[j]
            j = b.n
            while j > 0:
                j -= 1
                if plen[j] <= k:
                    continue
                packets += 1
                d = pkt_dir(b, j)
                if self.mode == 1:
                    ret = stream_splice(b, d, off[j], k, ins, k)
                elif self.mode == 2:
                    ret = stream_splice(b, d, off[j], 0, ins, k)
                elif self.mode == 3:
                    ret = stream_splice(b, d, off[j], k, NULL, 0)
                else:
                    continue
                if ret == 0:
                    edits += 1
                else:
                    failed += 1
        self.packets += packets
        self.edits += edits
        self.failed += failed

    def report(self):
        return {"packets": self.packets, "edits": self.edits, "failed": self.failed}


def tier(CProcessor processor):
    """The processor in the engine: what pybench.run() takes."""
    return CythonTier(processor)
