"""The packet decoder (ext/src/fo_decode.c, through flowos.boundary._decode), checked against scapy.

Two views of scapy are used. `expected()` is an oracle that lets scapy parse each header (from
a slice of exactly that header's fixed part, so that scapy's layer bindings and its leniency
with broken packets do not matter) and applies the rules of fo_decode.h to the fields scapy
read: every packet of every corpus, well formed or not, must decode to exactly what it says.
`check_layers()` compares the offsets with where scapy's own full dissection puts each layer,
for the well-formed packets. Finally the decoder is built once under AddressSanitizer and fed
the whole corpus from exactly sized heap buffers.
"""
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from scapy.all import (AH, ARP, ESP, ICMP, IP, SCTP, TCP, UDP, Dot1AD, Dot1Q, Dot3, Ether, GRE,
                       ICMPv6DestUnreach, ICMPv6EchoRequest, ICMPv6ND_NS, IPerror, IPOption_NOP,
                       IPOption_RR, IPOption_Timestamp, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, LLC, NoPayload, Padding, Raw,
                       RouterAlert, fragment, fragment6)

from conftest import CAPTURES, packets
from flowos.boundary import _decode
from flowos.boundary._decode import decode

ROOT = Path(__file__).resolve().parent.parent
MAX_VLAN, MAX_EXT, MAX_LEN = _decode.MAX_VLAN, _decode.MAX_EXT, _decode.MAX_LEN
VLAN_TPIDS = (0x8100, 0x88A8)
LEVELS = ("l2", "l3", "l4", "payload")


def decoded(raw):
    """decode(), with the flags as a set (their order is not part of the contract)."""
    d = decode(raw)
    d["flags"] = set(d["flags"])
    return d


# ----------------------------------------------------------------------------------------------
# The oracle: scapy reads the fields, fo_decode.h's rules say what follows from them.

def expected(raw):
    n = min(len(raw), MAX_LEN)
    raw = raw[:n]
    d = dict(l2=0, l3=None, l4=None, payload=None, end=n, ether_type=0, vlan_tci=0, ip_proto=0,
             tcp_flags=0, flags=set(), error=None, sport=0, dport=0, frag_id=0, frag_offset=0)

    def bad(error):
        d["flags"].add("malformed")
        d["error"] = error
        return d

    if n < 14:
        return bad("truncated_l2")
    eth = Ether(raw[:14])
    # scapy calls a frame whose type field is a length (<= 1500) 802.3.
    ether_type = eth.len if isinstance(eth, Dot3) else eth.type
    off = 14
    for i in range(MAX_VLAN):
        if ether_type not in VLAN_TPIDS:
            break
        if n - off < 4:
            return bad("truncated_l2")
        tag = Dot1Q(raw[off:off + 4])
        if i == 0:
            d["flags"].add("vlan")
            d["vlan_tci"] = tag.prio << 13 | tag.dei << 12 | tag.vlan
        ether_type = tag.type
        off += 4
    d.update(ether_type=ether_type, l3=off)
    if ether_type == 0x0800:
        return _expected_ipv4(raw, off, d, bad)
    if ether_type == 0x86DD:
        return _expected_ipv6(raw, off, d, bad)
    return d


def _expected_ipv4(raw, l3, d, bad):
    d["flags"].add("ipv4")
    if len(raw) - l3 < 20:
        return bad("truncated_l3")
    ip = IP(raw[l3:l3 + 20])
    hlen = ip.ihl * 4
    if ip.version != 4 or ip.ihl < 5:
        return bad("bad_l3")
    if len(raw) - l3 < hlen:
        return bad("truncated_l3")
    if ip.len < hlen or ip.len > len(raw) - l3:
        return bad("bad_l3")
    d.update(end=l3 + ip.len, ip_proto=ip.proto)
    if ip.flags.MF or ip.frag:
        d["flags"].add("fragment")
        d.update(frag_id=ip.id, frag_offset=ip.frag * 8)
        if ip.frag:
            d["payload"] = l3 + hlen
            return d
        d["flags"].add("first_frag")
    return _expected_l4(raw, l3 + hlen, d, bad)


def _expected_ipv6(raw, l3, d, bad):
    d["flags"].add("ipv6")
    if len(raw) - l3 < 40:
        return bad("truncated_l3")
    ip6 = IPv6(raw[l3:l3 + 40])
    if ip6.version != 6:
        return bad("bad_l3")
    end = l3 + 40 + ip6.plen
    if end > len(raw):
        return bad("bad_l3")
    d["end"] = end
    nh, off = ip6.nh, l3 + 40
    for _ in range(MAX_EXT + 1):
        if nh == 44:
            if end - off < 8:
                return bad("truncated_l3")
            fh = IPv6ExtHdrFragment(raw[off:off + 8])
            if fh.offset or fh.m:
                d["flags"].add("fragment")
                d.update(frag_id=fh.id, frag_offset=fh.offset * 8)
                if fh.offset:
                    d.update(ip_proto=fh.nh, payload=off + 8)
                    return d
                d["flags"].add("first_frag")
            nh, off = fh.nh, off + 8
        elif nh in (0, 43, 51, 60):
            if end - off < 2:
                return bad("truncated_l3")
            # All four start with next header and length; scapy's AH and routing header
            # want their whole fixed part, so the two bytes are read as a destination option.
            h = IPv6ExtHdrDestOpt(raw[off:off + 2])
            hlen = (h.len + 2) * 4 if nh == 51 else (h.len + 1) * 8
            if end - off < hlen:
                return bad("truncated_l3")
            nh, off = h.nh, off + hlen
        else:
            d["ip_proto"] = nh
            return _expected_l4(raw, off, d, bad)
    return bad("bad_l3")


def _expected_l4(raw, l4, d, bad):
    d["l4"] = l4
    room = d["end"] - l4
    proto = d["ip_proto"]
    if proto == 6:
        if room < 20:
            return bad("truncated_l4")
        tcp = TCP(raw[l4:l4 + 20])
        # scapy's flags are 9 bits (NS included); the decoder's are the flags byte.
        d.update(sport=tcp.sport, dport=tcp.dport, tcp_flags=int(tcp.flags) & 0xFF)
        d["flags"].add("l4_ports")
        if tcp.dataofs < 5:
            return bad("bad_l4")
        if room < tcp.dataofs * 4:
            return bad("truncated_l4")
        d["payload"] = l4 + tcp.dataofs * 4
    elif proto == 17:
        if room < 8:
            return bad("truncated_l4")
        udp = UDP(raw[l4:l4 + 8])
        d.update(sport=udp.sport, dport=udp.dport)
        d["flags"].add("l4_ports")
        if udp.len < 8 or ("fragment" not in d["flags"] and udp.len > room):
            return bad("bad_l4")
        d["payload"] = l4 + 8
    elif proto == 132:
        if room < 12:
            return bad("truncated_l4")
        sctp = SCTP(raw[l4:l4 + 12])
        d.update(sport=sctp.sport, dport=sctp.dport)
        d["flags"].add("l4_ports")
        d["payload"] = l4 + 12
    elif proto in (1, 58):
        if room < 8:
            return bad("truncated_l4")
        d["payload"] = l4 + 8
    else:
        d["payload"] = l4
    return d


# ----------------------------------------------------------------------------------------------
# scapy's own dissection, for well-formed packets.

def layer_starts(pkt):
    """(layer, offset) for each layer scapy dissected, outermost first."""
    out, off, layer = [], 0, pkt
    while not isinstance(layer, NoPayload):
        out.append((layer, off))
        off += len(layer) - len(layer.payload)
        layer = layer.payload
    return out


def check_layers(raw, d):
    """The offsets are where scapy's full dissection starts the matching layers."""
    starts = layer_starts(Ether(raw))
    at = {}
    for layer, off in starts:
        at.setdefault(off, []).append(layer)

    def layer_at(off, cls):
        found = [layer for layer in at.get(off, []) if isinstance(layer, cls)]
        assert found, f"scapy has no {cls.__name__} at {off}: {[(type(l).__name__, o) for l, o in starts]}"
        return found[0]

    assert not d["error"]
    tags = [layer for layer, _ in starts if isinstance(layer, Dot1Q)]
    assert d["l3"] == 14 + 4 * min(len(tags), MAX_VLAN)
    if "ipv4" in d["flags"]:
        ip = layer_at(d["l3"], IP)
        assert d["end"] == d["l3"] + ip.len
    elif "ipv6" in d["flags"]:
        ip = layer_at(d["l3"], IPv6)
        assert d["end"] == d["l3"] + 40 + ip.plen
    else:
        assert d["l4"] is None and d["payload"] is None and d["end"] == len(raw)
        if len(raw) > d["l3"] and not tags[MAX_VLAN:]:
            assert at.get(d["l3"]), "scapy has no layer where L3 starts"
        return
    if d["l4"] is None:
        # A later fragment: scapy leaves all of it raw, from where the decoder says.
        assert {"fragment"} <= d["flags"] and "first_frag" not in d["flags"]
        layer_at(d["payload"], Raw)
        return
    proto = d["ip_proto"]
    classes = {6: TCP, 17: UDP, 1: ICMP, 132: SCTP}
    if proto in classes:
        if any(isinstance(layer, AH) for layer, _ in starts):
            # scapy leaves what follows AH raw; it starts where the decoder says L4 does.
            layer_at(d["l4"], Raw)
            l4 = classes[proto](raw[d["l4"]:d["end"]])
        else:
            l4 = layer_at(d["l4"], classes[proto])
        assert d["payload"] == d["l4"] + len(l4) - len(l4.payload)
        if "l4_ports" in d["flags"]:
            assert (d["sport"], d["dport"]) == (l4.sport, l4.dport)
    elif proto == 58:
        # scapy splits ICMPv6 by message type; the decoder's header is the common 8 bytes.
        assert any(type(layer).__name__.startswith(("ICMPv6", "MLD")) for layer in at[d["l4"]])
    elif d["payload"] < d["end"]:
        # Any other protocol: scapy has a layer (GRE, ESP, ...) where the decoder's L4 is.
        assert at.get(d["l4"])


def check_invariants(raw, d):
    """What must hold for any input, however garbled."""
    n = min(len(raw), MAX_LEN)
    offsets = [d[level] for level in LEVELS if d[level] is not None]
    assert offsets == sorted(offsets), d
    assert all(off <= d["end"] <= n for off in offsets), d
    assert (d["error"] is None) == ("malformed" not in d["flags"]), d
    assert ("l4_ports" in d["flags"]) <= (d["l4"] is not None)
    if d["l4"] is None and d["payload"] is not None:
        assert "fragment" in d["flags"] and d["frag_offset"] > 0


def check(raw):
    d = decoded(raw)
    assert d == expected(raw)
    check_invariants(raw, d)
    return d


# ----------------------------------------------------------------------------------------------
# Well-formed packets, one per feature.

MAC = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
V4 = dict(src="10.77.0.1", dst="10.77.0.2")
V6 = dict(src="fd77::1", dst="fd77::2")
TCP_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None), ("WScale", 7)]


def _big_udp4():
    return Ether(**MAC) / IP(id=0x4242, **V4) / UDP(sport=4000, dport=5000) / (b"u" * 120)


def _big_udp6():
    return Ether(**MAC) / IPv6(**V6) / IPv6ExtHdrFragment(id=0xDEADBEEF) / UDP(sport=4000, dport=5000) / (b"u" * 300)


WELL_FORMED = {
    "tcp_options": Ether(**MAC) / IP(**V4) / TCP(sport=40000, dport=8080, flags="SEC", options=TCP_OPTIONS) / b"GET /",
    "ip_options_udp": Ether(**MAC) / IP(options=[IPOption_RR(routers=["1.2.3.4"]), IPOption_NOP(), IPOption_Timestamp()], **V4)
    / UDP(sport=53, dport=5353) / b"query",
    "vlan": Ether(**MAC) / Dot1Q(vlan=42, prio=3) / IP(**V4) / TCP(sport=1, dport=2, flags="PA") / b"x",
    "qinq": Ether(**MAC) / Dot1AD(vlan=100, prio=5, dei=1) / Dot1Q(vlan=200) / IP(**V4) / UDP(sport=9, dport=10) / b"y",
    "four_tags": Ether(**MAC) / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / IPv6(**V6) / UDP() / b"z",
    "ipv6_ext_chain": Ether(**MAC) / IPv6(**V6) / IPv6ExtHdrHopByHop(options=[RouterAlert()])
    / IPv6ExtHdrRouting(addresses=["fd77::3", "fd77::4"]) / IPv6ExtHdrDestOpt()
    / IPv6ExtHdrFragment(m=1, id=0x12345678) / TCP(sport=443, dport=50000, flags="A") / b"data",
    "ipv6_later_fragment": Ether(**MAC) / IPv6(**V6) / IPv6ExtHdrHopByHop()
    / IPv6ExtHdrFragment(nh=17, offset=185, id=7) / (b"f" * 64),
    "ipv6_atomic_fragment": Ether(**MAC) / IPv6(**V6) / IPv6ExtHdrFragment(id=9) / UDP(sport=7, dport=8) / b"a",
    "ipv6_ah": Ether(**MAC) / IPv6(**V6) / AH(nh=6, payloadlen=4, spi=1, seq=2, icv=b"\0" * 12)
    / TCP(sport=22, dport=2222),
    "ipv6_esp": Ether(**MAC) / IPv6(**V6) / ESP(spi=5, seq=1, data=b"\x11" * 24),
    "ipv6_no_next": Ether(**MAC) / IPv6(nh=59, **V6),
    "icmp_echo": Ether(**MAC) / IP(**V4) / ICMP(id=3, seq=4) / (b"ping" * 8),
    "icmp_unreachable": Ether(**MAC) / IP(**V4) / ICMP(type=3, code=3) / IPerror(**V4) / UDP(sport=1, dport=2),
    "icmpv6_echo": Ether(**MAC) / IPv6(**V6) / ICMPv6EchoRequest(id=5, seq=6, data=b"ping6"),
    "icmpv6_ns": Ether(**MAC) / IPv6(**V6) / ICMPv6ND_NS(tgt="fd77::2"),
    "icmpv6_unreachable": Ether(**MAC) / IPv6(**V6) / ICMPv6DestUnreach() / IPv6(**V6) / UDP(),
    "sctp": Ether(**MAC) / IP(**V4) / SCTP(sport=3868, dport=3869) / b"chunk",
    "gre": Ether(**MAC) / IP(**V4) / GRE() / IP(**V4) / UDP(),
    "arp": Ether(**MAC) / ARP(psrc="10.77.0.1", pdst="10.77.0.2"),
    "llc": Ether(**MAC) / LLC() / b"spanning tree",
    "padded_tcp_ack": Ether(bytes(Ether(**MAC) / IP(**V4) / TCP(sport=8080, dport=40000, flags="A")).ljust(60, b"\0")),
    "padded_udp": Ether(bytes(Ether(**MAC) / IP(**V4) / UDP(sport=1, dport=2) / b"hi").ljust(60, b"\0")),
}
for i, frag in enumerate(fragment(_big_udp4(), fragsize=48)):
    WELL_FORMED[f"ipv4_fragment_{i}"] = frag
for i, frag in enumerate(fragment6(_big_udp6(), 200)):
    WELL_FORMED[f"ipv6_fragment_{i}"] = frag
WELL_FORMED = {name: bytes(pkt) for name, pkt in WELL_FORMED.items()}


@pytest.mark.parametrize("name", sorted(WELL_FORMED))
def test_well_formed(name):
    raw = WELL_FORMED[name]
    d = check(raw)
    assert d["error"] is None
    check_layers(raw, d)


def test_tcp_options_fields():
    d = decoded(WELL_FORMED["tcp_options"])
    assert (d["l3"], d["l4"], d["ip_proto"], d["sport"], d["dport"]) == (14, 34, 6, 40000, 8080)
    assert d["payload"] == 34 + len(TCP(options=TCP_OPTIONS)) and d["payload"] > 34 + 20
    assert d["tcp_flags"] == 0x02 | 0x40 | 0x80 and d["end"] == len(WELL_FORMED["tcp_options"])
    assert d["flags"] == {"ipv4", "l4_ports"}


def test_ip_options_move_l4():
    d = decoded(WELL_FORMED["ip_options_udp"])
    ihl = Ether(WELL_FORMED["ip_options_udp"])[IP].ihl
    assert ihl > 5 and d["l4"] == 14 + ihl * 4 and d["payload"] == d["l4"] + 8
    assert (d["sport"], d["dport"]) == (53, 5353)


def test_qinq_outer_tci_inner_type():
    d = decoded(WELL_FORMED["qinq"])
    assert d["l3"] == 22 and d["ether_type"] == 0x0800
    assert d["vlan_tci"] == 5 << 13 | 1 << 12 | 100 and "vlan" in d["flags"]


def test_more_tags_than_counted_is_not_decoded_further():
    raw = bytes(Ether(**MAC) / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4)
                / Dot1Q(vlan=5) / IP(**V4) / UDP())
    d = check(raw)
    assert d["error"] is None and d["ether_type"] == 0x8100 and d["l3"] == 14 + 4 * MAX_VLAN
    assert d["l4"] is None and d["flags"] == {"vlan"}


def test_ipv6_extension_chain():
    d = decoded(WELL_FORMED["ipv6_ext_chain"])
    pkt = Ether(WELL_FORMED["ipv6_ext_chain"])
    ext = sum(len(pkt[c]) - len(pkt[c].payload)
              for c in (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment))
    assert d["l4"] == 14 + 40 + ext and d["ip_proto"] == 6 and (d["sport"], d["dport"]) == (443, 50000)
    assert d["flags"] == {"ipv6", "fragment", "first_frag", "l4_ports"}
    assert (d["frag_id"], d["frag_offset"]) == (0x12345678, 0)


def test_ipv6_later_fragment():
    d = decoded(WELL_FORMED["ipv6_later_fragment"])
    assert d["l4"] is None and d["payload"] == 14 + 40 + 8 + 8 and d["ip_proto"] == 17
    assert (d["frag_id"], d["frag_offset"]) == (7, 185 * 8)
    assert d["flags"] == {"ipv6", "fragment"}


def test_ipv6_atomic_fragment_is_whole():
    d = decoded(WELL_FORMED["ipv6_atomic_fragment"])
    assert d["flags"] == {"ipv6", "l4_ports"} and d["frag_id"] == 0 and d["l4"] == 14 + 48


def test_ipv6_ah_and_esp():
    d = decoded(WELL_FORMED["ipv6_ah"])
    assert d["l4"] == 14 + 40 + 24 and d["ip_proto"] == 6 and d["dport"] == 2222
    d = decoded(WELL_FORMED["ipv6_esp"])
    assert d["ip_proto"] == 50 and d["l4"] == d["payload"] == 54 and "l4_ports" not in d["flags"]
    d = decoded(WELL_FORMED["ipv6_no_next"])
    assert d["ip_proto"] == 59 and d["l4"] == d["payload"] == d["end"] == 54


def test_other_protocol_payload_is_its_header():
    d = decoded(WELL_FORMED["gre"])
    assert d["ip_proto"] == 47 and d["l4"] == d["payload"] == 34 and "l4_ports" not in d["flags"]


def test_ipv4_fragments():
    frags = [decoded(WELL_FORMED[f"ipv4_fragment_{i}"]) for i in range(3)]
    assert all(f["frag_id"] == 0x4242 and "fragment" in f["flags"] for f in frags)
    first, *later = frags
    assert "first_frag" in first["flags"] and first["l4"] == 34 and first["payload"] == 42
    assert (first["sport"], first["dport"]) == (4000, 5000)
    for f in later:
        assert f["l4"] is None and f["payload"] == 34 and f["frag_offset"] > 0
        assert "first_frag" not in f["flags"] and "l4_ports" not in f["flags"] and f["ip_proto"] == 17
    assert [f["frag_offset"] for f in frags] == [0, 48, 96]


def test_icmp():
    raw = WELL_FORMED["icmp_echo"]
    d = decoded(raw)
    assert d["ip_proto"] == 1 and d["l4"] == 34 and raw[d["payload"]:d["end"]] == bytes(Ether(raw)[Raw])
    d = decoded(WELL_FORMED["icmp_unreachable"])
    assert d["payload"] == 42 and Ether(WELL_FORMED["icmp_unreachable"])[IPerror].src == "10.77.0.1"


def test_icmpv6():
    raw = WELL_FORMED["icmpv6_echo"]
    d = decoded(raw)
    assert d["ip_proto"] == 58 and d["l4"] == 54 and raw[d["payload"]:] == b"ping6"


def test_arp_is_l3_only():
    d = decoded(WELL_FORMED["arp"])
    assert d == dict(l2=0, l3=14, l4=None, payload=None, end=42, ether_type=0x0806, vlan_tci=0,
                     ip_proto=0, tcp_flags=0, flags=set(), error=None, sport=0, dport=0,
                     frag_id=0, frag_offset=0)


def test_padding_is_not_payload():
    d = decoded(WELL_FORMED["padded_tcp_ack"])
    assert len(WELL_FORMED["padded_tcp_ack"]) == 60 and d["end"] == 54 and d["payload"] == 54
    assert Padding in Ether(WELL_FORMED["padded_tcp_ack"])
    d = decoded(WELL_FORMED["padded_udp"])
    assert d["end"] == 44 and d["payload"] == 42


def test_error_names():
    assert _decode.ERRORS == ("ok", "truncated_l2", "truncated_l3", "bad_l3", "truncated_l4", "bad_l4")


def test_accepts_any_bytes_like():
    raw = WELL_FORMED["tcp_options"]
    assert decode(bytearray(raw)) == decode(memoryview(raw)) == decode(raw)
    # An odd start address: the decoder makes no alignment assumption.
    assert decode(memoryview(b"\0" + raw)[1:]) == decode(raw)


# ----------------------------------------------------------------------------------------------
# Real captures.

def _capture_packets():
    return [(path.name, i, raw) for path in CAPTURES for i, raw in enumerate(packets(path))]


def test_captures():
    seen = {}
    for name, i, raw in _capture_packets():
        d = decoded(raw)
        assert d == expected(raw), f"{name} #{i}"
        assert d["error"] is None, f"{name} #{i}"
        check_layers(raw, d)
        key = ("ipv6" if "ipv6" in d["flags"] else "ipv4" if "ipv4" in d["flags"] else hex(d["ether_type"]),
               d["ip_proto"], "later_frag" if d["l4"] is None and d["payload"] else "")
        seen[key] = seen.get(key, 0) + 1
    # What the captures are known to hold (tests/data/README.md): TCP and UDP over IPv4, TCP
    # over IPv6, ICMP pings, 3000-byte pings split in three (6 first, 12 later fragments), ARP,
    # and the ICMPv6 neighbour discovery and MLD traffic of any Linux interface.
    assert seen[("ipv4", 1, "later_frag")] == 12
    assert {("ipv4", 6, ""), ("ipv4", 17, ""), ("ipv4", 1, ""), ("ipv6", 6, ""), ("ipv6", 58, ""),
            ("0x806", 0, "")} <= set(seen)


# ----------------------------------------------------------------------------------------------
# Malformed corpus.

def _set(raw, offset, fmt, value):
    raw = bytearray(raw)
    struct.pack_into(fmt, raw, offset, value)
    return bytes(raw)


T4 = WELL_FORMED["tcp_options"]
U4 = WELL_FORMED["ip_options_udp"]
I6 = WELL_FORMED["ipv6_ext_chain"]
U4_IHL = Ether(U4)[IP].ihl * 4
T4_TCP = 34

def _dest_opts(n):
    chain = IPv6ExtHdrDestOpt()
    for _ in range(n - 1):
        chain = chain / IPv6ExtHdrDestOpt()
    return chain


GARBLED = {
    # name: (bytes, error)
    "short_ether": (T4[:13], "truncated_l2"),
    "cut_vlan_tag": (WELL_FORMED["qinq"][:20], "truncated_l2"),
    "ihl_4": (_set(T4, 14, "B", 0x44), "bad_l3"),
    "ihl_0": (_set(T4, 14, "B", 0x40), "bad_l3"),
    "ihl_past_data": (_set(T4, 14, "B", 0x4F)[:14 + 40], "truncated_l3"),
    "ihl_past_total_length": (_set(_set(T4, 14, "B", 0x4F), 16, "!H", 40), "bad_l3"),
    "ip_version_6_in_ipv4": (_set(T4, 14, "B", 0x65), "bad_l3"),
    "total_length_past_frame": (_set(T4, 16, "!H", len(T4) - 14 + 1), "bad_l3"),
    "total_length_below_ihl": (_set(T4, 16, "!H", 19), "bad_l3"),
    "ip_options_cut": (_set(U4, 16, "!H", U4_IHL)[:14 + U4_IHL - 2], "truncated_l3"),
    "tcp_data_offset_4": (_set(T4, T4_TCP + 12, "B", 0x40), "bad_l4"),
    "tcp_data_offset_0": (_set(T4, T4_TCP + 12, "B", 0x00), "bad_l4"),
    "tcp_data_offset_past_end": (_set(T4, T4_TCP + 12, "B", 0xF0), "truncated_l4"),
    "tcp_header_cut_by_ip_length": (_set(T4, 16, "!H", 20 + 12), "truncated_l4"),
    "udp_length_7": (_set(U4, 14 + U4_IHL + 4, "!H", 7), "bad_l4"),
    "udp_length_0": (_set(U4, 14 + U4_IHL + 4, "!H", 0), "bad_l4"),
    "udp_length_past_ip": (_set(U4, 14 + U4_IHL + 4, "!H", len(U4) - 14 - U4_IHL + 1), "bad_l4"),
    "udp_header_cut_by_ip_length": (_set(U4, 16, "!H", U4_IHL + 4), "truncated_l4"),
    "icmp_cut_by_ip_length": (_set(WELL_FORMED["icmp_echo"], 16, "!H", 24), "truncated_l4"),
    "sctp_cut_by_ip_length": (_set(WELL_FORMED["sctp"], 16, "!H", 28), "truncated_l4"),
    "ipv6_payload_length_past_end": (_set(I6, 18, "!H", len(I6) - 54 + 1), "bad_l3"),
    "ipv6_version_4": (_set(I6, 14, "B", 0x40), "bad_l3"),
    "ipv6_cut_header": (I6[:14 + 39], "truncated_l3"),
    "ipv6_ext_length_past_end": (_set(I6, 55, "B", 0xFF), "truncated_l3"),
    "ipv6_ext_cut_by_payload_length": (_set(I6, 18, "!H", 1)[:14 + 41], "truncated_l3"),
    "ipv6_chain_goes_on_past_end": (_set(I6, 18, "!H", 8)[:14 + 48], "truncated_l3"),
    "ipv6_fragment_header_cut": (_set(WELL_FORMED["ipv6_atomic_fragment"], 18, "!H", 4)[:14 + 44], "truncated_l3"),
    "ipv6_ah_length_past_end": (_set(WELL_FORMED["ipv6_ah"], 55, "B", 0xFF), "truncated_l3"),
    "ipv6_tcp_data_offset_3": (_set(I6, len(I6) - 4 - 20 + 12, "B", 0x30), "bad_l4"),
    "ipv6_too_many_ext_headers": (bytes(Ether(**MAC) / IPv6(**V6) / _dest_opts(MAX_EXT + 1) / UDP()), "bad_l3"),
}


def test_most_ext_headers_allowed():
    raw = bytes(Ether(**MAC) / IPv6(**V6) / _dest_opts(MAX_EXT) / UDP(sport=1, dport=2))
    d = check(raw)
    assert d["error"] is None and d["l4"] == 54 + 8 * MAX_EXT


@pytest.mark.parametrize("name", sorted(GARBLED))
def test_garbled(name):
    raw, error = GARBLED[name]
    d = check(raw)
    assert d["error"] == error and "malformed" in d["flags"]


def _truncation_sources():
    """Valid packets to cut at every length: each feature once, kept small."""
    return {name: raw for name, raw in WELL_FORMED.items() if len(raw) <= 200}


def test_every_truncation():
    for name, raw in _truncation_sources().items():
        full = decoded(raw)
        for cut in range(len(raw)):
            part = raw[:cut]
            d = check(part)
            # A cut never moves an offset, it can only lose levels.
            for level in LEVELS:
                assert d[level] is None or d[level] == full[level], (name, cut, level)
            # Cutting into a header (or, for IP, anywhere before the packet's end: its length
            # then says more than the frame holds) is malformed; only padding may be cut.
            into_header = cut < full["l3"] or (full["flags"] & {"ipv4", "ipv6"} and cut < full["end"])
            assert ("malformed" in d["flags"]) == bool(into_header), (name, cut, d)
            if into_header and cut >= full["l3"]:
                hdr = Ether(raw)[IP].ihl * 4 if "ipv4" in full["flags"] else 40
                assert d["error"] == ("truncated_l3" if cut - full["l3"] < hdr else "bad_l3"), (name, cut)
            elif into_header:
                assert d["error"] == "truncated_l2"


def _random_corpus():
    rng = random.Random(20240611)
    corpus = []
    # Plain noise, 0 to 99 bytes.
    for _ in range(400):
        corpus.append(bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 100))))
    # Noise behind an ether type the decoder follows, with a plausible IP version nibble.
    heads = [b"\x08\x00\x45", b"\x08\x00\x4f", b"\x86\xdd\x60", b"\x81\x00\x00\x01\x08\x00\x46",
             b"\x88\xa8\x00\x01\x86\xdd\x60"]
    for _ in range(600):
        head = rng.choice(heads)
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 120)))
        corpus.append(bytes(12) + head + body)
    # Valid packets with a few bytes changed in their headers.
    valid = list(WELL_FORMED.values())
    for _ in range(2000):
        raw = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(12, min(len(raw), 110))
            raw[pos] = rng.getrandbits(8)
        if rng.random() < 0.2:
            raw = raw[:rng.randrange(len(raw) + 1)]
        corpus.append(bytes(raw))
    return corpus


def test_random_and_mutated():
    malformed = 0
    for raw in _random_corpus():
        d = check(raw)
        malformed += d["error"] is not None
    assert malformed > 0


def test_long_frames_are_clamped():
    raw = bytes(Ether(**MAC) / ARP()) + bytes(70000)
    d = check(raw)
    assert d["end"] == MAX_LEN and d["error"] is None


# ----------------------------------------------------------------------------------------------
# No out-of-bounds read, under AddressSanitizer.

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowos/fo_decode.h"

/*
 * Records of a 4-byte little-endian length and that many bytes. Each is decoded from a heap
 * buffer that ends exactly where the packet does, once at the start of an allocation and once
 * at an odd address, and the result printed for the test to compare.
 */
int
main(int argc, char **argv)
{
	FILE *f = fopen(argv[1], "rb");
	uint32_t len;

	if (f == NULL)
		return 2;
	while (fread(&len, sizeof(len), 1, f) == 1) {
		uint8_t *src = malloc(len + 1), *buf;
		struct fo_decoded d[2], general;
		int rc[2], rc_general, shift;

		if (src == NULL || fread(src, 1, len, f) != len)
			return 3;
		for (shift = 0; shift < 2; shift++) {
			buf = malloc(len + shift);
			memcpy(buf + shift, src, len);
			rc[shift] = fo_decode(buf + shift, len, &d[shift]);
			/* The general decoder alone, on the same bytes (fo_decode takes the common case apart). */
			rc_general = fo_decode_general(buf + shift, len, &general);
			free(buf);
			if (rc_general != rc[shift] || memcmp(&general.offset, &d[shift].offset, sizeof(general.offset)) != 0 ||
					general.flags != d[shift].flags || general.end != d[shift].end ||
					general.sport != d[shift].sport || general.dport != d[shift].dport ||
					general.vlan_tci != d[shift].vlan_tci || general.tcp_flags != d[shift].tcp_flags)
				return 5;
		}
		free(src);
		if (rc[0] != rc[1] || memcmp(&d[0].offset, &d[1].offset, sizeof(d[0].offset)) != 0 ||
				d[0].flags != d[1].flags || d[0].end != d[1].end)
			return 4;
		printf("%d %u %u %u %u %u %u %u %u %u %u %u %u %u %u %u %s\n", rc[0],
			d[0].offset[0], d[0].offset[1], d[0].offset[2], d[0].offset[3], d[0].end,
			d[0].ether_type, d[0].vlan_tci, d[0].ip_proto, d[0].tcp_flags, d[0].flags,
			d[0].error, d[0].sport, d[0].dport, d[0].frag_id, d[0].frag_offset,
			fo_decode_error_name(d[0].error));
	}
	fclose(f);
	return 0;
}
"""


def _as_harness_line(raw):
    d = decode(raw)
    flags = sum(1 << i for i, (_, name) in enumerate(_decode.FLAGS) if name in d["flags"])
    error = _decode.ERRORS.index(d["error"] or "ok")
    offsets = [_decode.NO_LEVEL if d[level] is None else d[level] for level in LEVELS]
    fields = [-22 if d["error"] else 0, *offsets, d["end"], d["ether_type"], d["vlan_tci"],
              d["ip_proto"], d["tcp_flags"], flags, error, d["sport"], d["dport"], d["frag_id"],
              d["frag_offset"], d["error"] or "ok"]
    return " ".join(map(str, fields))


def test_no_out_of_bounds_reads_under_asan(tmp_path):
    cc = shutil.which("cc")
    if cc is None or shutil.which("pkg-config") is None:
        pytest.skip("needs cc and pkg-config")
    cflags = subprocess.run(["pkg-config", "--cflags", "libdpdk"], capture_output=True, text=True)
    if cflags.returncode != 0:
        pytest.skip("libdpdk is not known to pkg-config")
    (tmp_path / "harness.c").write_text(HARNESS)
    exe = tmp_path / "harness"
    build = subprocess.run(
        [cc, "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
         "-g", "-O1", "-I", str(ROOT / "ext" / "include"), *cflags.stdout.split(),
         str(ROOT / "ext" / "src" / "fo_decode.c"), str(tmp_path / "harness.c"), "-o", str(exe)],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr

    corpus = list(WELL_FORMED.values()) + [raw for raw, _ in GARBLED.values()]
    for raw in _truncation_sources().values():
        corpus += [raw[:cut] for cut in range(len(raw))]
    corpus += _random_corpus()
    corpus += [raw for path in CAPTURES for raw in packets(path)]
    with open(tmp_path / "corpus", "wb") as f:
        for raw in corpus:
            f.write(struct.pack("<I", len(raw)) + raw)

    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99",
               UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe), str(tmp_path / "corpus")], capture_output=True, text=True, env=env)
    assert "Sanitizer" not in run.stderr and "runtime error" not in run.stderr, run.stderr[-4000:]
    assert run.returncode == 0, run.stderr[-4000:]
    lines = run.stdout.splitlines()
    assert len(lines) == len(corpus)
    # The sanitized build from the source tree decodes as the installed module does.
    for raw, line in zip(corpus, lines):
        assert line == _as_harness_line(raw), raw.hex()
