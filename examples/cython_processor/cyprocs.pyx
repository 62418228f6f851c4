# cython: language_level=3
"""Two Cython processors, built outside FlowOS against the installed package (see README.md).

FlowBytes counts each flow's packets and bytes by direction, in per-flow state, and reports every
ended flow (what the C built-in `counter` does). SetTTL sets or decrements the IPv4 TTL / IPv6
hop limit (what the C built-in `ttl` does). Both process() methods run without the GIL.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free

from flowos.cprocessor cimport *

END_REASONS = ("fin", "rst", "idle", "shutdown")


cdef struct counts:
    uint64_t packets[2]        # by direction: 0 from the side that opened the flow
    uint64_t bytes[2]


cdef struct record:            # an ended flow
    fo_flow_key key
    uint8_t opener_is_lo
    uint8_t reason
    counts counts


cdef class FlowBytes(CProcessor):
    """Packets and bytes per flow and direction; reports each flow once it has ended."""
    level = "l2"
    readonly = True
    state_size = sizeof(counts)

    cdef uint32_t max_flows
    cdef uint32_t n_records
    cdef uint64_t unrecorded
    cdef record *records

    def __init__(self, max_flows=65536):
        super().__init__()
        if isinstance(max_flows, bool) or not isinstance(max_flows, int) or not 1 <= max_flows <= 1 << 24:
            raise ValueError(f"max_flows must be an integer in 1..{1 << 24}, got {max_flows!r}")
        self.max_flows = max_flows

    def setup(self, context):
        self.records = <record *>calloc(self.max_flows, sizeof(record))
        if self.records == NULL:
            raise MemoryError(f"no memory to record {self.max_flows} flows")

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint16_t b, i
        cdef uint8_t d
        cdef counts *c
        for b in range(n):
            c = <counts *>batches[b].state
            for i in range(batches[b].n):
                d = pkt_dir(&batches[b], i)
                c.packets[d] += 1
                c.bytes[d] += pkt_len(&batches[b], i)

    cdef void flow_end(self, const fo_flow *flow, void *state, fo_flow_end_reason reason) noexcept nogil:
        cdef record *r
        if self.records == NULL:
            return
        if self.n_records == self.max_flows:
            self.unrecorded += 1
            return
        r = &self.records[self.n_records]
        self.n_records += 1
        r.key = flow.key
        r.opener_is_lo = flow.opener_is_lo
        r.reason = <uint8_t>reason
        r.counts = (<counts *>state)[0]

    def report(self):
        """{"unrecorded": N, "flows": [...]}: each ended flow as its opener saw it."""
        cdef record *r
        cdef uint32_t k
        flows = []
        for k in range(self.n_records):
            r = &self.records[k]
            flows.append({**flow_key_dict(&r.key, r.opener_is_lo),
                          "packets": [r.counts.packets[0], r.counts.packets[1]],
                          "bytes": [r.counts.bytes[0], r.counts.bytes[1]],
                          "end": END_REASONS[r.reason]})
        return {"unrecorded": self.unrecorded, "flows": flows}

    def teardown(self):
        pass    # the records stay readable for report(); __dealloc__ frees them

    def __dealloc__(self):
        free(self.records)


cdef class SetTTL(CProcessor):
    """Sets the IPv4 TTL / IPv6 hop limit to `set`, or lowers it by `decrement` (not below 1)."""
    level = "l3"
    readonly = False

    cdef uint8_t set_to
    cdef uint8_t decrement

    def __init__(self, set=0, decrement=1):
        super().__init__()
        for name, value, lo in (("set", set, 0), ("decrement", decrement, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= 255:
                raise ValueError(f"{name} must be an integer in {lo}..255, got {value!r}")
        self.set_to = set
        self.decrement = decrement

    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil:
        cdef uint16_t b, i
        cdef uint8_t *ttl
        for b in range(n):
            for i in range(batches[b].n):
                ttl = pkt_ttl(&batches[b], i)
                if ttl == NULL:
                    continue
                if self.set_to:
                    ttl[0] = self.set_to
                else:
                    ttl[0] = ttl[0] - self.decrement if ttl[0] > self.decrement else 1
                set_verdict(&batches[b], i, FO_MODIFIED)   # the engine fixes the checksums
