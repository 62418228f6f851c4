"""Which connection a frame belongs to, read with scapy and a few raw header fields, never with
FlowOS: the canonical key (both directions of a connection give one key; non-IP frames give one
key per ether type; later fragments take their first fragment's key), as FlowOS's flow engine
keys its flows (docs/flows.md). The project's own tests hold FlowOS to it (tests/flowcheck.py)."""
import functools
import ipaddress
import struct
from dataclasses import dataclass

from scapy.all import IP, IPv6, conf

conf.verb = 0

VLAN_TPIDS = (0x8100, 0x88A8)
MAX_VLAN = 4
PORT_PROTOS = (6, 17, 132)           # TCP, UDP, SCTP: the key has ports
V6_EXT = (0, 43, 60)                 # hop-by-hop, routing, destination options


# --- the canonical key of a packet's connection ------------------------------------------------

@dataclass(frozen=True)
class Key:
    """A connection: (address, port) of its two ends, the lower first; for non-IP, the ether type."""
    family: int          # 4, 6, or 0 for non-IP
    proto: int
    lo: tuple            # (16-byte address, port)
    hi: tuple
    ether_type: int = 0
    definition: int = 0

    def __str__(self):
        if self.family == 0:
            return f"def{self.definition} ether 0x{self.ether_type:04x}"
        a, b = (addr_str(self.family, end[0]) for end in (self.lo, self.hi))
        return f"def{self.definition} proto {self.proto} {a}:{self.lo[1]} <-> {b}:{self.hi[1]}"


def addr_str(family, packed16):
    return str(ipaddress.ip_address(packed16[:4] if family == 4 else packed16))


def addr16(text):
    return ipaddress.ip_address(text).packed.ljust(16, b"\0")


@dataclass
class Header:
    """What the model reads from one frame."""
    family: int = 0
    src: bytes = b""
    dst: bytes = b""
    proto: int = 0
    sport: int = 0
    dport: int = 0
    ether_type: int = 0
    frag: str = ""          # "", "first" or "later"
    frag_id: tuple = ()     # (src, dst, id) of a fragment


@functools.lru_cache(maxsize=None)
def read_header(raw):
    """The fields of a well-formed frame the flow key is made of (scapy reads the IP headers).
    The same bytes give the same header, so it is read once (the result is not to be changed)."""
    h = Header()
    ether_type, tags = struct.unpack("!H", raw[12:14])[0], 0
    while ether_type in VLAN_TPIDS and tags < MAX_VLAN:
        ether_type = struct.unpack("!H", raw[16 + 4 * tags:18 + 4 * tags])[0]
        tags += 1
    h.ether_type = ether_type
    l3 = 14 + 4 * tags
    if ether_type == 0x0800:
        ip = IP(raw[l3:])
        h.family, h.src, h.dst, h.proto = 4, addr16(ip.src), addr16(ip.dst), ip.proto
        body = raw[l3:][ip.ihl * 4:ip.len]
        if ip.frag or ip.flags.MF:
            h.frag = "later" if ip.frag else "first"
            h.frag_id = (h.src, h.dst, ip.id)
        if h.frag != "later" and h.proto in PORT_PROTOS:
            h.sport, h.dport = struct.unpack("!HH", body[:4])
    elif ether_type == 0x86DD:
        ip6 = IPv6(raw[l3:])
        h.family, h.src, h.dst = 6, addr16(ip6.src), addr16(ip6.dst)
        nh, body, frag = ipv6_chain(raw[l3 + 40:][:ip6.plen], ip6.nh)
        if frag is not None:                            # an offset or more-fragments: a fragment
            h.frag_id = (h.src, h.dst, frag[0])
            h.frag = "later" if frag[1] else "first"
        h.proto = nh
        if h.frag != "later" and h.proto in PORT_PROTOS:
            h.sport, h.dport = struct.unpack("!HH", body[:4])
    return h


def ipv6_chain(body, nh):
    """Walks an IPv6 extension-header chain from next header nh over body: (the upper protocol,
    its bytes, fragment), fragment being (identification, offset, more) for a fragment header
    that is not an atomic fragment (RFC 6946), else None. A later fragment's chain ends at its
    fragment header: what follows is the first fragment's."""
    frag = None
    while True:
        if nh in V6_EXT:
            nh, body = body[0], body[(body[1] + 1) * 8:]
        elif nh == 51:
            nh, body = body[0], body[(body[1] + 2) * 4:]
        elif nh == 44:
            off_m, ident = struct.unpack("!HI", body[2:8])
            nh, body = body[0], body[8:]
            if off_m & 0xFFF9:
                frag = (ident, off_m & 0xFFF8, bool(off_m & 1))
                if frag[1]:
                    break
        else:
            break
    return nh, body, frag


class Keyer:
    """Gives each frame of a sequence its connection key; remembers first fragments for later ones.

    `classify(header) -> definition index or None` says which flow definition a packet goes to
    (None: unmatched); later fragments go where their first fragment went.
    """

    def __init__(self, classify=lambda h: 0):
        self.classify = classify
        self.first_fragments = {}

    def key(self, raw):
        """(Key, end) for a frame: its connection (None if unmatched) and the (address, port) it
        comes from, which for a later fragment is its first fragment's."""
        h = read_header(raw)
        if h.frag == "later" and h.frag_id in self.first_fragments:
            return self.first_fragments[h.frag_id]
        d = self.classify(h)
        end = (h.src, h.sport)
        if d is None:
            k = None
        elif h.family == 0:
            k = Key(0, 0, (b"", 0), (b"", 0), h.ether_type, d)
        else:
            a, b = end, (h.dst, h.dport)
            k = Key(h.family, h.proto, min(a, b), max(a, b), 0, d)
        if h.frag == "first" and k is not None:
            self.first_fragments[h.frag_id] = (k, end)
        return k, end
