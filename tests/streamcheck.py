"""An independent model of FlowOS's payload-level streams, for the TCP normalisation tests.

It reads frames with scapy (and a few raw header fields), never with FlowOS, and says what a
payload-level processor should see of each connection, keyed and split into directions exactly
as tests/flowcheck.py does (its `Key`; direction 0 is the side that sent the connection's first
packet). For TCP, each direction's data in sequence order, once: out-of-order data is held until
the gap before it fills, the bytes that arrived first for a sequence number win over any later
copy, data after a gap that never fills is not part of the stream (it is reported as `pending`),
SYN and FIN take one sequence number each, a RST ends its sender's direction, and sequence numbers
compare by serial-number arithmetic (RFC 1982) relative to the next expected byte, so streams
cross 2**32. A direction whose SYN was not seen starts at the first segment that carries data.
For every other IP protocol, each direction's datagram payloads (what follows the 8-byte UDP /
ICMP / ICMPv6 header, the 12-byte SCTP header, or the whole IP payload for other protocols; up to
the end of the IP packet) concatenated in arrival order, with their lengths. IPv4 and IPv6
fragments are reassembled: a datagram counts when its last missing piece arrives, in its first
fragment's connection (a later fragment that arrives before the first still makes flowcheck's
port-less connection, which stays empty; `lengths` are per datagram, not per fragment), and one
never completed is `pending`. Non-IP frames and those flowcheck.decode_error calls malformed are
ignored. Deliberately not modelled: TCP checksums (a segment with a bad one still counts),
windows, PAWS/timestamps, urgent data, whether a RST is in window (any RST ends its direction,
and its payload is not data), a second SYN with another ISN on a live connection (port reuse:
ignored), data past a FIN (dropped), data of a picked-up direction that lies before its first
data segment seen (counted as a duplicate), and timeouts (a connection is every packet with its
key).
"""
import struct
from dataclasses import dataclass, field
from pathlib import Path

from scapy.all import IP, TCP, IPv6, conf
from scapy.utils import RawPcapReader

from flowcheck import MAX_VLAN, VLAN_TPIDS, Key, Keyer, decode_error, ipv6_chain, read_header

conf.verb = 0

SEQ = 1 << 32
FIN, SYN, RST = 0x01, 0x02, 0x04
HEADER_LEN = {17: 8, 1: 8, 58: 8, 132: 12}     # bytes of transport header before the payload


# --- what the model reports --------------------------------------------------------------------

@dataclass
class Direction:
    """One direction of a connection. `data` is the stream; the rest is TCP-only but for `lengths`."""
    data: bytes = b""
    lengths: list = field(default_factory=list)   # datagrams: each payload's length, in order
    isn: int | None = None    # TCP: the SYN's sequence number, if a SYN was seen
    syn: bool = False
    fin: bool = False
    rst: bool = False
    ooo: int = 0              # segments with new sequence space that came after a gap
    dup: int = 0              # segments with sequence space (data, SYN, FIN) all of it seen before
    dup_bytes: int = 0        # ... their data bytes
    overlap: int = 0          # bytes seen before, carried by segments that also brought new ones
    conflict: int = 0         # bytes seen before (dup or overlap) whose later copy differed
    pending: int = 0          # bytes held after a gap that never filled (datagrams: of incomplete ones)
    held: list = field(default_factory=list)      # TCP: [(stream offset, bytes)] of the pending data


@dataclass
class Stream:
    """A connection's streams: `dirs[0]` from `opener` ((16-byte address, port), as in flowcheck)."""
    key: Key
    opener: tuple
    dirs: list = field(default_factory=lambda: [Direction(), Direction()])

    def __getitem__(self, d):
        return self.dirs[d]

    @property
    def tcp(self):
        return self.key.proto == 6


def streams(source):
    """{Key: Stream} for the IP connections of a capture (a path) or of a list of frames
    (bytes or scapy packets), in order of their first packet."""
    if isinstance(source, (str, Path)):
        frames = [bytes(data) for data, _ in RawPcapReader(str(source))]
    else:
        frames = [bytes(f) for f in source]
    keyer, out, state, fragments, datagrams = Keyer(), {}, {}, {}, {}
    for raw in frames:
        if decode_error(raw) is not None or read_header(raw).family == 0:
            continue
        key, end = keyer.key(raw)
        if key not in out:
            out[key] = Stream(key, end)
            state[key] = [_TcpDir(), _TcpDir()] if key.proto == 6 else None
        s = out[key]
        d = 0 if (end == s.opener or key.lo == key.hi) else 1
        dgram = _ip_datagram(raw, fragments, (key, d))
        if dgram is None:
            continue
        proto, l4, (key, d) = dgram
        s = out[key]
        if proto == 6:
            state[key][d].segment(l4)
        else:
            payload = l4[HEADER_LEN.get(proto, 0):]
            s.dirs[d].lengths.append(len(payload))
            datagrams.setdefault((key, d), []).append(payload)
    for key, s in out.items():
        for d in (0, 1):
            if state[key]:
                s.dirs[d] = state[key][d].result()
            else:
                s.dirs[d].data = b"".join(datagrams.get((key, d), []))
    for f in fragments.values():                # datagrams never completed
        key, d = f["owner"]
        out[key].dirs[d].pending += len(f["bytes"])
    return out


# --- IP: the transport bytes of a packet, fragments reassembled ---------------------------------

def _l3_offset(raw):
    off, ether_type, tags = 14, struct.unpack("!H", raw[12:14])[0], 0
    while ether_type in VLAN_TPIDS and tags < MAX_VLAN:
        ether_type = struct.unpack("!H", raw[off + 2:off + 4])[0]
        off, tags = off + 4, tags + 1
    return ether_type, off


def _ip_datagram(raw, fragments, owner):
    """(protocol, transport bytes, owner) of a whole packet or of the datagram this fragment
    completes, owner being the (key, direction) of the packet or of the datagram's first
    fragment; None while a datagram waits for fragments."""
    ether_type, l3 = _l3_offset(raw)
    if ether_type == 0x0800:
        ip = IP(raw[l3:])
        body = raw[l3 + ip.ihl * 4:l3 + ip.len]
        proto, frag_id, offset, more = ip.proto, (4, ip.src, ip.dst, ip.id, ip.proto), ip.frag * 8, bool(ip.flags.MF)
    else:
        ip6 = IPv6(raw[l3:])
        proto, body, frag = ipv6_chain(raw[l3 + 40:l3 + 40 + ip6.plen], ip6.nh)
        frag_id, offset, more = None, 0, False
        if frag is not None:
            frag_id, offset, more = (6, ip6.src, ip6.dst, frag[0]), frag[1], frag[2]
    if offset == 0 and not more:
        return proto, bytes(body), owner
    f = fragments.setdefault(frag_id, {"owner": owner, "bytes": {}, "total": None, "proto": None})
    if offset == 0:                         # the datagram is the first fragment's connection's
        f["proto"], f["owner"] = proto, owner
    if not more:
        f["total"] = offset + len(body)
    for i, b in enumerate(body):
        f["bytes"].setdefault(offset + i, b)        # the first copy of a byte wins
    total = f["total"]
    if f["proto"] is None or total is None or any(i not in f["bytes"] for i in range(total)):
        return None
    del fragments[frag_id]
    return f["proto"], bytes(f["bytes"][i] for i in range(total)), f["owner"]


# --- TCP: one direction's reassembly --------------------------------------------------------------

class _TcpDir:
    """Stream offsets: 0 is the first data byte (the one after the SYN, or of the first data
    segment seen); `nxt` is the next byte the stream needs, `held` the bytes after a gap."""

    def __init__(self):
        self.d = Direction()
        self.base = None            # sequence number of stream offset 0
        self.stream = bytearray()
        self.held = {}              # offset -> byte
        self.fin_at = None          # stream offset the FIN occupies

    def _offset(self, seq):
        """Offset of a sequence number: within 2**31 of the next expected one (RFC 1982)."""
        nxt = len(self.stream)
        delta = (seq - (self.base + nxt) + (SEQ >> 1)) % SEQ - (SEQ >> 1)
        return nxt + delta

    def segment(self, l4):
        tcp = TCP(l4)
        flags, seq, payload = int(tcp.flags), tcp.seq, l4[tcp.dataofs * 4:]
        d = self.d
        if d.rst:
            return                  # the direction has ended
        if flags & RST:
            d.rst = True
            return
        if not (payload or flags & (SYN | FIN)):
            return                  # no sequence space: a pure ACK
        new_syn = False
        if flags & SYN:
            if self.base is None:
                d.isn, d.syn, self.base, new_syn = seq, True, (seq + 1) % SEQ, True
            elif seq != d.isn:
                return              # another ISN on this connection: not modelled
        if self.base is None:
            self.base = seq         # picked up mid-stream
        start = self._offset(seq) + (1 if flags & SYN else 0)
        nxt = len(self.stream)
        new_fin = False
        if flags & FIN:
            d.fin = True
            if self.fin_at is None:
                self.fin_at, new_fin = start + len(payload), True
        if self.fin_at is not None:
            payload = payload[:max(self.fin_at - start, 0)]     # nothing is data past the FIN
        if start == nxt and not self.held:                      # the usual case: in order
            self.stream += payload
            if not (payload or new_syn or new_fin):
                d.dup += 1
            return
        new, seen, fresh = 0, 0, {}
        for i, b in enumerate(payload):
            at = start + i
            if at < 0:
                seen += 1           # before the stream's start (a picked-up direction)
            elif at < nxt or at in self.held:
                seen += 1
                d.conflict += (self.stream[at] if at < nxt else self.held[at]) != b
            else:
                new += 1
                fresh[at] = b
        if new or new_syn or new_fin:
            d.overlap += seen
            if start > nxt:
                d.ooo += 1
        else:
            d.dup += 1
            d.dup_bytes += seen
        self.held.update(fresh)
        while len(self.stream) in self.held:
            self.stream.append(self.held.pop(len(self.stream)))

    def result(self):
        d = self.d
        d.data = bytes(self.stream)
        d.pending = len(self.held)
        chunks = []
        for at in sorted(self.held):
            if chunks and chunks[-1][0] + len(chunks[-1][1]) == at:
                chunks[-1][1].append(self.held[at])
            else:
                chunks.append((at, bytearray([self.held[at]])))
        d.held = [(at, bytes(b)) for at, b in chunks]
        return d


# --- reading the model ----------------------------------------------------------------------

def summary(result):
    """One line per connection: key, then per direction bytes and (TCP) the counters."""
    lines = []
    for key, s in result.items():
        parts = []
        for d in (0, 1):
            x = s[d]
            if s.tcp:
                parts.append(f"d{d} {len(x.data)}B syn={int(x.syn)} fin={int(x.fin)} rst={int(x.rst)} "
                             f"ooo={x.ooo} dup={x.dup} overlap={x.overlap} conflict={x.conflict} "
                             f"pending={x.pending}")
            else:
                parts.append(f"d{d} {len(x.data)}B in {len(x.lengths)} datagrams pending={x.pending}")
        lines.append(f"{key}: " + "; ".join(parts))
    return "\n".join(lines)
