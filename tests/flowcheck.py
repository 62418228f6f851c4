"""An independent model of FlowOS's flow semantics, for the flow engine's tests.

It reads frames with scapy (and a few raw header fields), never with FlowOS: which connection
a packet belongs to (the canonical key of flowos.testing.flowkey, installed for users' tests), the
per-connection packet and byte counts by direction, and whether the decoder should call a
frame malformed (the rules of ext/include/flowos/fo_decode.h, restated here). It also writes
the YAML configurations and captures the tests feed to `flowos-run`.
"""
import struct
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import yaml
from scapy.all import IP, Ether, IPv6ExtHdrFragment

from flowos.testing.flowkey import (MAX_VLAN, V6_EXT, VLAN_TPIDS, Key, Keyer, addr16,  # noqa: F401 (for tests)
                                    ipv6_chain, read_header)
from flowos.testing.pcap import write_pcap  # noqa: F401 (for tests)
from flowos.testing.runs import run_flowos


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
    a, b = (addr16(rec["src"]), rec["sport"]), (addr16(rec["dst"]), rec["dport"])
    return Key(family, rec["proto"], min(a, b), max(a, b), 0, rec["def"])


def report_opener(rec):
    return None if rec["src"] == "-" else (addr16(rec["src"]), rec["sport"])


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
