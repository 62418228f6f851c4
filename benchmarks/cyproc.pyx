# cython: language_level=3
"""The processors benchmark's Cython processor: a flowos.cprocessor.CProcessor that counts the
packets to destination port 443, the logic of fo_benchproc.c (C) and of procbench.py's Python
processors. Built like a user's Cython processor (benchmarks/meson.build): it does not link the
fast path and reads packet metadata through the batch (pkt_dport)."""
from libc.stdint cimport uint16_t, uint64_t

from flowos.cprocessor cimport *

from flowos.cprocessor import CythonTier

cdef enum:
    HTTPS = 443


cdef class DportCount(CProcessor):
    level = "l4"
    cdef readonly uint64_t packets, matched

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint64_t packets = 0, matched = 0
        cdef uint16_t b, i
        for b in range(n):
            for i in range(batches[b].n):
                matched += pkt_dport(&batches[b], i) == HTTPS
            packets += batches[b].n
        self.packets += packets
        self.matched += matched

    def report(self):
        return {"packets": self.packets, "matched": self.matched}


def tier(DportCount processor):
    """The processor in the engine: what pybench.run() takes."""
    return CythonTier(processor)
