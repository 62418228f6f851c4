"""An independent model of FlowOS's flow semantics, for the flow engine's tests.

It reads frames with scapy (and a few raw header fields), never with FlowOS: which connection
a packet belongs to (the canonical key: both directions of a connection give one key; non-IP
frames give one key per ether type; later fragments take their first fragment's key), the
per-connection packet and byte counts by direction, and whether the decoder should call a
frame malformed (the rules of ext/include/flowos/fo_decode.h, restated here). It also writes
the YAML configurations and captures the tests feed to `flowos-run`.
"""
import functools
import ipaddress
import struct
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import yaml
from scapy.all import IP, Ether, IPv6, IPv6ExtHdrFragment, conf
from scapy.utils import PcapWriter

from conftest import run_flowos

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
        a, b = (_addr_str(self.family, end[0]) for end in (self.lo, self.hi))
        return f"def{self.definition} proto {self.proto} {a}:{self.lo[1]} <-> {b}:{self.hi[1]}"


def _addr_str(family, packed16):
    return str(ipaddress.ip_address(packed16[:4] if family == 4 else packed16))


def _addr16(text):
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
        h.family, h.src, h.dst, h.proto = 4, _addr16(ip.src), _addr16(ip.dst), ip.proto
        body = raw[l3:][ip.ihl * 4:ip.len]
        if ip.frag or ip.flags.MF:
            h.frag = "later" if ip.frag else "first"
            h.frag_id = (h.src, h.dst, ip.id)
        if h.frag != "later" and h.proto in PORT_PROTOS:
            h.sport, h.dport = struct.unpack("!HH", body[:4])
    elif ether_type == 0x86DD:
        ip6 = IPv6(raw[l3:])
        h.family, h.src, h.dst = 6, _addr16(ip6.src), _addr16(ip6.dst)
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


@dataclass
class Conn:
    """A connection as the model counts it: by direction, 0 being its first packet's."""
    opener: tuple
    packets: list = field(default_factory=lambda: [0, 0])
    bytes: list = field(default_factory=lambda: [0, 0])
    frames: list = field(default_factory=list)


def connections(frames, classify=lambda h: 0):
    """{Key: Conn} for the matched frames, and the list of unmatched frames, in order."""
    keyer, conns, unmatched = Keyer(classify), {}, []
    for raw in frames:
        k, end = keyer.key(raw)
        if k is None:
            unmatched.append(raw)
            continue
        if k not in conns:
            conns[k] = Conn(opener=end)
        c = conns[k]
        d = 0 if (end == c.opener or k.lo == k.hi) else 1
        c.packets[d] += 1
        c.bytes[d] += len(raw)
        c.frames.append(raw)
    return conns, unmatched


def group(frames, classify=lambda h: 0):
    """The frames by key (None for unmatched), each group in the order given."""
    keyer, out = Keyer(classify), defaultdict(list)
    for raw in frames:
        out[keyer.key(raw)[0]].append(raw)
    return dict(out)


def report_key(rec):
    """The Key of a counter report record (see ext/src/processors/fo_proc_counter.c)."""
    if rec["src"] == "-":
        return Key(0, 0, (b"", 0), (b"", 0), rec["sport"], rec["def"])
    family = 6 if ":" in rec["src"] else 4
    a, b = (_addr16(rec["src"]), rec["sport"]), (_addr16(rec["dst"]), rec["dport"])
    return Key(family, rec["proto"], min(a, b), max(a, b), 0, rec["def"])


def report_opener(rec):
    return None if rec["src"] == "-" else (_addr16(rec["src"]), rec["sport"])


def check_per_flow_order(frames_in, frames_out, classify=lambda h: 0):
    """Every connection's packets leave in the order they came (and none is lost or added)."""
    grouped_in, grouped_out = group(frames_in, classify), group(frames_out, classify)
    assert set(grouped_in) == set(grouped_out)
    for k, seq in grouped_in.items():
        assert grouped_out[k] == seq, f"{k}: order or content of its packets changed"


def same_multiset(a, b):
    return Counter(a) == Counter(b)


# --- the decoder's rules (fo_decode.h), for malformed frames -----------------------------------

def decode_error(raw):
    """What fo_decode() should call this frame: None if well formed, else the error's name."""
    n = min(len(raw), 0xFFFE)
    raw = raw[:n]
    if n < 14:
        return "truncated_l2"
    off, ether_type = 14, struct.unpack("!H", raw[12:14])[0]
    tags = 0
    while ether_type in VLAN_TPIDS and tags < MAX_VLAN:
        if n - off < 4:
            return "truncated_l2"
        ether_type = struct.unpack("!H", raw[off + 2:off + 4])[0]
        off += 4
        tags += 1
    if ether_type == 0x0800:
        return _ipv4_error(raw, off)
    if ether_type == 0x86DD:
        return _ipv6_error(raw, off)
    return None


def _ipv4_error(raw, off):
    n = len(raw)
    if n - off < 20:
        return "truncated_l3"
    ihl = (raw[off] & 0xF) * 4
    if raw[off] >> 4 != 4 or ihl < 20:
        return "bad_l3"
    if n - off < ihl:
        return "truncated_l3"
    total = struct.unpack("!H", raw[off + 2:off + 4])[0]
    if total < ihl or total > n - off:
        return "bad_l3"
    end = off + total
    frag = struct.unpack("!H", raw[off + 6:off + 8])[0]
    fragment = bool(frag & 0x3FFF)
    if frag & 0x1FFF:
        return None
    return _l4_error(raw, raw[off + 9], off + ihl, end, fragment)


def _ipv6_error(raw, off):
    n = len(raw)
    if n - off < 40:
        return "truncated_l3"
    if raw[off] >> 4 != 6:
        return "bad_l3"
    end = off + 40 + struct.unpack("!H", raw[off + 4:off + 6])[0]
    if end > n:
        return "bad_l3"
    nh, off = raw[off + 6], off + 40
    fragment = False
    for _ in range(8 + 1):
        if nh in V6_EXT or nh == 51:
            if end - off < 2:
                return "truncated_l3"
            hlen = (raw[off + 1] + 1) * 8 if nh != 51 else (raw[off + 1] + 2) * 4
        elif nh == 44:
            hlen = 8
            if end - off < hlen:
                return "truncated_l3"
            fo = struct.unpack("!H", raw[off + 2:off + 4])[0]
            if fo & 0xFFF9:
                fragment = True
                if fo & 0xFFF8:
                    return None
        else:
            return _l4_error(raw, nh, off, end, fragment)
        if end - off < hlen:
            return "truncated_l3"
        nh, off = raw[off], off + hlen
    return "bad_l3"


def _l4_error(raw, proto, off, end, fragment):
    room = end - off
    if proto == 6:
        if room < 20:
            return "truncated_l4"
        hlen = (raw[off + 12] >> 4) * 4
        if hlen < 20:
            return "bad_l4"
        return "truncated_l4" if room < hlen else None
    if proto == 17:
        if room < 8:
            return "truncated_l4"
        length = struct.unpack("!H", raw[off + 4:off + 6])[0]
        if length < 8 or (not fragment and length > room):
            return "bad_l4"
        return None
    if proto == 132:
        return "truncated_l4" if room < 12 else None
    if proto in (1, 58):
        return "truncated_l4" if room < 8 else None
    return None


# --- running flowos-run with a configuration -------------------------------------------------

def write_pcap(path, frames, times=None):
    """A capture of raw frames (bytes or scapy packets), with the given timestamps (seconds)."""
    with PcapWriter(str(path), linktype=1, sync=True) as w:
        w.write_header(None)
        for i, f in enumerate(frames):
            t = times[i] if times is not None else 1_700_000_000 + i * 1e-3
            w.write_packet(bytes(f), sec=int(t), usec=int(round((t - int(t)) * 1e6)))
    return path


def run_config(tmp_path, config, name="flows.yaml", **kw):
    """Writes `config` (a dict) as YAML and runs flowos-run with it."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run_flowos("-c", str(path), tmp_path=tmp_path, **kw)


def one_port(capture, out, flows, engine=None, **extra):
    """A config: port a replays `capture` into `out`, a -> a, with these flows."""
    cfg = {"ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={capture},tx_pcap={out}"}],
           "forward": ["a -> a"], "flows": flows}
    if engine:
        cfg["engine"] = engine
    cfg.update(extra)
    return cfg


def engine_stats(run):
    return run.stats["engine"]["stats"]


def definition(run, name):
    return next(d for d in run.stats["engine"]["flows"] if d["name"] == name)


def report(run, name, processor=0):
    return definition(run, name)["processors"][processor]["report"]


def check_accounting(eng):
    """Every packet out has a reason: what came in and what the engine made (injected, split, re-sent
    copies) left, was dropped, left as other packets, or is still held (0 once the run is over)."""
    made = eng["injected"] + eng["streams"]["release_split"] + eng["streams"]["split_parts"] + \
        eng["streams"]["copies_resent"]
    assert eng["created"] == made
    assert eng["packets"] + eng["created"] == \
        eng["tx_packets"] + eng["tx_unsent"] + eng["dropped"] + eng["replaced"] + eng["held"]


def check_clean(run, returncode=0):
    """Exit 0 (1 where a processor faulted), every mbuf back in the pool, every received packet
    sent or counted as dropped."""
    assert run.returncode == returncode, run.stderr
    stats = run.stats
    assert stats["mbufs"]["in_use_at_exit"] == 0
    eng = stats["engine"]["stats"]
    rx = stats["totals"]["rx_packets"]
    assert eng["packets"] == rx
    check_accounting(eng)
    assert eng["held"] == 0 and eng["budget"]["kept"] == 0
    assert stats["totals"]["tx_packets"] == eng["tx_packets"]


# --- checksums ------------------------------------------------------------------------------

def _is_fragment(pkt):
    return (IP in pkt and (pkt[IP].frag or pkt[IP].flags.MF)) or IPv6ExtHdrFragment in pkt


def checksums_ok(raw):
    """Whether every checksum scapy knows in the frame is right: rebuilt with them deleted, the
    frame must come out the same. For a fragment, only the IPv4 header's (the transport's covers
    the whole datagram)."""
    pkt = Ether(raw)
    fragment = _is_fragment(pkt)
    layer = pkt
    while layer:
        if layer is pkt.getlayer(IP) or not fragment:
            for name in ("chksum", "cksum"):
                if any(f.name == name for f in layer.fields_desc):
                    layer.setfieldval(name, None)
        layer = layer.payload
    return bytes(pkt) == raw


def ip_offset(raw):
    """(family, offset of the IP header) of an untagged frame, or (0, None)."""
    ether_type = raw[12:14]
    return (4, 14) if ether_type == b"\x08\x00" else (6, 14) if ether_type == b"\x86\xdd" else (0, None)


def ipv4_header_checksum(header):
    header = header[:10] + b"\0\0" + header[12:]
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_ttl(raw, ttl=None, decrement=0):
    """The frame with its IPv4 TTL / IPv6 hop limit rewritten (not below 1), IPv4 header checksum
    recomputed; a non-IP frame as it is."""
    family, l3 = ip_offset(raw)
    if not family:
        return raw
    b = bytearray(raw)
    at = l3 + (8 if family == 4 else 7)
    b[at] = ttl if ttl is not None else max(b[at] - decrement, 1)
    if family == 4:
        ihl = (b[l3] & 0xF) * 4
        b[l3 + 10:l3 + 12] = struct.pack("!H", ipv4_header_checksum(bytes(b[l3:l3 + ihl])))
    return bytes(b)
