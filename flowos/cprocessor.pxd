# Cython processors: the base class and the inline helpers a user's processor works with, all
# without the GIL. Installed with the package, so that code built outside FlowOS can
#
#     from flowos.cprocessor cimport *
#
# and subclass CProcessor (see docs/cython.md). The helpers read packet metadata through the
# batch (b.meta_offset, b.seq_offset), never through fo_pkt_meta(): a user's module does not
# link the fast path, so it has no fo_pkt_meta_offset of its own.
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from flowos.includes.fo_processor cimport *


cdef class CProcessor:
    cdef uint64_t _faults
    cdef char _first_fault[128]

    # Called once per burst from the worker, without the GIL, with one fo_batch per flow that
    # has packets ready; b.verdicts are preset to FO_PASS and b.state is the flow's state_size
    # bytes (zeroed when the flow started). Must not touch Python objects.
    cdef void process(self, fo_batch *batches, uint16_t n) noexcept nogil
    # A flow ended (reason: enum fo_flow_end_reason); its state is freed after this. No GIL.
    cdef void flow_end(self, const fo_flow *flow, void *state, fo_flow_end_reason reason) noexcept nogil
    # Counts a fault; `what` (the first one's) shows in the statistics. Reported from process(),
    # the tier applies on_error to that whole call once process() returns (from flow_end(), it
    # is only counted).
    cdef void fault(self, const char *what) noexcept nogil


# Injects a frame of `length` bytes next to packet i of b (after it, or before): later stages see
# it. Returns 0, -ENOMEM (no mbuf), -EMSGSIZE (too long for an mbuf) or -ENOSPC (the flow holds
# too much). No GIL.
cdef int inject(fo_batch *b, uint16_t i, const uint8_t *data, uint16_t length, bint after) noexcept nogil

# A flow's key as its opener sent it: {"def", "proto", "src", "dst", "sport", "dport"} ("-" for the
# addresses of non-IP flows, whose sport is the ether type). Needs the GIL (for reports).
cdef dict flow_key_dict(const fo_flow_key *key, bint opener_is_lo)


# --- packet i of batch b ----------------------------------------------------------------------

cdef inline fo_pkt_meta *pkt_meta(const fo_batch *b, uint16_t i) noexcept nogil:
    return <fo_pkt_meta *>(<char *>b.pkts[i] + b.meta_offset)

cdef inline uint8_t *pkt_data(const fo_batch *b, uint16_t i) noexcept nogil:
    """The frame's first byte; headers are in the first segment (pkt_data_len bytes)."""
    return fo_pkt_data(b.pkts[i])

cdef inline uint32_t pkt_len(const fo_batch *b, uint16_t i) noexcept nogil:
    """The frame's length (every segment)."""
    return b.pkts[i].pkt_len

cdef inline uint16_t pkt_data_len(const fo_batch *b, uint16_t i) noexcept nogil:
    """The bytes at pkt_data (the first segment)."""
    return b.pkts[i].data_len

cdef inline uint16_t pkt_offset(const fo_batch *b, uint16_t i, fo_level level) noexcept nogil:
    """Where a level starts in the frame; FO_NO_LEVEL where the packet has none."""
    return pkt_meta(b, i).offset[<int>level]

cdef inline uint32_t pkt_level_len(const fo_batch *b, uint16_t i, fo_level level) noexcept nogil:
    """Bytes from the level's start to the end of the IP packet; 0 if it has none."""
    cdef fo_pkt_meta *meta = pkt_meta(b, i)
    cdef uint16_t off = meta.offset[<int>level]
    if <int>level >= <int>FO_LEVEL_L3 and not (meta.flags & (FO_PKT_IPV4 | FO_PKT_IPV6)):
        return 0   # levels from l3 up are IP's
    return 0 if off == FO_NO_LEVEL or off >= meta.end else meta.end - off

cdef inline uint8_t pkt_dir(const fo_batch *b, uint16_t i) noexcept nogil:
    """0: from the side that opened the flow; 1: the other."""
    return pkt_meta(b, i).dir

cdef inline uint16_t pkt_flags(const fo_batch *b, uint16_t i) noexcept nogil:
    """FO_PKT_* (IPv4, IPv6, fragment, ...)."""
    return pkt_meta(b, i).flags

cdef inline uint8_t pkt_proto(const fo_batch *b, uint16_t i) noexcept nogil:
    """The transport protocol number; 0 if not IP."""
    return pkt_meta(b, i).ip_proto

cdef inline uint32_t pkt_seq(const fo_batch *b, uint16_t i) noexcept nogil:
    """The packet's sequence number in its flow, in arrival order."""
    return (<uint32_t *>(<char *>b.pkts[i] + b.seq_offset))[0]

cdef inline uint16_t pkt_l4_word(const fo_batch *b, uint16_t i, int at) noexcept nogil:
    """The 16-bit word at byte `at` of the TCP/UDP/SCTP header (host order); 0 without ports."""
    cdef fo_pkt_meta *meta = pkt_meta(b, i)
    cdef const uint8_t *p
    if not meta.flags & FO_PKT_L4_PORTS:
        return 0
    p = fo_pkt_data(b.pkts[i]) + meta.offset[<int>FO_LEVEL_L4] + at
    return p[0] << 8 | p[1]

cdef inline uint16_t pkt_sport(const fo_batch *b, uint16_t i) noexcept nogil:
    """TCP/UDP/SCTP source port (host order); 0 without ports (e.g. a later fragment)."""
    return pkt_l4_word(b, i, 0)

cdef inline uint16_t pkt_dport(const fo_batch *b, uint16_t i) noexcept nogil:
    """TCP/UDP/SCTP destination port (host order); 0 without ports."""
    return pkt_l4_word(b, i, 2)

cdef inline uint8_t pkt_tcp_flags(const fo_batch *b, uint16_t i) noexcept nogil:
    """The TCP flags byte; 0 if not TCP (or a later fragment)."""
    cdef fo_pkt_meta *meta = pkt_meta(b, i)
    if meta.ip_proto != 6 or meta.offset[<int>FO_LEVEL_L4] == FO_NO_LEVEL:
        return 0
    return fo_pkt_data(b.pkts[i])[meta.offset[<int>FO_LEVEL_L4] + 13]

cdef inline uint8_t *pkt_ttl(const fo_batch *b, uint16_t i) noexcept nogil:
    """The IPv4 TTL / IPv6 hop limit, in place (write it, then set FO_MODIFIED); NULL if not IP."""
    cdef fo_pkt_meta *meta = pkt_meta(b, i)
    if meta.flags & FO_PKT_IPV4:
        return fo_pkt_data(b.pkts[i]) + meta.offset[<int>FO_LEVEL_L3] + 8
    if meta.flags & FO_PKT_IPV6:
        return fo_pkt_data(b.pkts[i]) + meta.offset[<int>FO_LEVEL_L3] + 7
    return NULL


# --- verdicts ---------------------------------------------------------------------------------

cdef inline void set_verdict(fo_batch *b, uint16_t i, fo_verdict v) noexcept nogil:
    """FO_PASS, FO_DROP, FO_HOLD or FO_MODIFIED (bytes changed: checksums are fixed before TX)."""
    b.verdicts[i] = <uint8_t>v

cdef inline void redirect(fo_batch *b, uint16_t i, uint16_t port) noexcept nogil:
    """Sends packet i out of `port` (an id from setup()'s context.ports) instead of its route's."""
    b.verdicts[i] = <uint8_t>FO_REDIRECT
    b.out_ports[i] = port


# --- the stream of one direction of b's flow (docs/streams.md), through b.stream_ops -----------
# Offsets are absolute in the direction's stream; dir 0 is from the flow's opener. No GIL.

cdef inline uint64_t stream_start(const fo_batch *b, uint8_t dir) noexcept nogil:
    """The offset of the first byte this processor holds (what it released before)."""
    return b.stream_ops.start(b, dir)

cdef inline uint64_t stream_end(const fo_batch *b, uint8_t dir) noexcept nogil:
    return b.stream_ops.start(b, dir) + b.stream_ops.len(b, dir)

cdef inline int64_t stream_find(const fo_batch *b, uint8_t dir, const void *pat, uint32_t pat_len,
                                uint64_t start, uint64_t end) noexcept nogil:
    """The offset of pat's first match in [start, end), also across packets; -1 if none."""
    return b.stream_ops.find(b, dir, pat, pat_len, start, end)

cdef inline uint32_t stream_read(const fo_batch *b, uint8_t dir, uint64_t off, void *out, uint32_t n) noexcept nogil:
    """Copies up to n bytes from off; returns how many."""
    return b.stream_ops.read(b, dir, off, out, n)

cdef inline const uint8_t *stream_peek(const fo_batch *b, uint8_t dir, uint64_t off, uint32_t *avail) noexcept nogil:
    """Zero-copy: the bytes at off, *avail of them in one piece; NULL outside the window."""
    return b.stream_ops.peek(b, dir, off, avail)

cdef inline int stream_splice(fo_batch *b, uint8_t dir, uint64_t off, uint32_t dele, const void *ins,
                              uint32_t ins_len) noexcept nogil:
    """Replaces dele bytes at off with ins: 0, or -ERANGE, -EPERM, -EMSGSIZE, -ENOMEM (refused: nothing changed)."""
    return b.stream_ops.splice(b, dir, off, dele, ins, ins_len)

cdef inline bint stream_can_resize(const fo_batch *b, uint8_t dir, uint64_t off, uint32_t n) noexcept nogil:
    """Whether a length-changing edit of the n bytes at off (n 0: an insert) would be made (memory aside)."""
    return b.stream_ops.can_resize(b, dir, off, n) != 0

cdef inline uint64_t stream_release(fo_batch *b, uint8_t dir, uint64_t upto) noexcept nogil:
    """Releases the bytes before upto, holds the rest (TCP: cut at upto; datagrams: whole); returns where it stopped."""
    return b.stream_ops.release(b, dir, upto)
