"""Python processors (flowos.Processor) in the flow engine, end to end: every verdict, the Batch
API against scapy, one Python call per burst, faults under each on_error policy, zero-copy
safety, and the read-only/writer rule. The processors are small classes in tests/pyprocs/,
named in YAML pipelines by import path (pyprocs.<module>:<Class>); this folder goes on
PYTHONPATH for every run. Expectations come from scapy and tests/flowcheck.py, never from FlowOS.
"""
import ipaddress
import json
import math
import os
from pathlib import Path

import pytest
import yaml
from scapy.all import IP, TCP, UDP, Ether, IPv6, Raw
from scapy.layers.inet import in4_chksum
from scapy.layers.inet6 import IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, in6_chksum

from conftest import packets, run_flowos
from flowcheck import (Keyer, check_accounting, check_per_flow_order, checksums_ok, connections, engine_stats,
                       one_port, report, run_config, same_multiset, write_pcap)

TESTS = Path(__file__).parent
CAPTURE_CLOCK = {"clock": "capture"}
TRACEBACK = "Traceback (most recent call last)"
PYTHON_BURST = 256      # run.burst's default with a Python processor in a pipeline


@pytest.fixture(autouse=True)
def pyprocs_importable(monkeypatch):
    """flowos-run (a subprocess) imports pyprocs.* from this folder."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


def P(path, **params):
    """A pipeline entry for a Python processor: its import path, with parameters if any."""
    return {f"pyprocs.{path}": params} if params else f"pyprocs.{path}"


def catch_all(*stages):
    return [{"name": "all", "pipeline": list(stages)}]


def no_leak(run):
    assert run.stats is not None, run.stderr
    assert run.stats["mbufs"]["in_use_at_exit"] == 0


def accounted(run):
    """Every packet received is sent or counted as dropped (injected ones added)."""
    eng = engine_stats(run)
    assert eng["packets"] == run.stats["totals"]["rx_packets"]
    check_accounting(eng)


def run_one_port(tmp_path, capture, flows, burst=None, engine=CAPTURE_CLOCK, faulted=False):
    """Port a replays `capture` into out.pcap through `flows`; checks the exit status (1 when a
    processor `faulted`, docs/processors.md "Faults"), that no mbuf leaked and that every packet
    is accounted for. Returns (run, frames in, frames out)."""
    out = tmp_path / "out.pcap"
    extra = {"run": {"burst": burst}} if burst else {}
    run = run_config(tmp_path, one_port(capture, out, flows, engine, **extra))
    assert run.returncode == (1 if faulted else 0), run.stderr
    no_leak(run)
    accounted(run)
    return run, packets(capture), packets(out) if out.exists() else []


def two_ports(tmp_path, capture, flows):
    """Port a replays the capture into out_a.pcap; port b replays nothing into out_b.pcap."""
    empty = write_pcap(tmp_path / "empty.pcap", [])
    cfg = {"ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={capture},tx_pcap=out_a.pcap"},
                     {"name": "b", "vdev": f"net_pcap1,rx_pcap={empty},tx_pcap=out_b.pcap"}],
           "forward": ["a -> a", "b -> b"], "engine": CAPTURE_CLOCK, "flows": flows}
    run = run_config(tmp_path, cfg)
    assert run.returncode == 0, run.stderr
    no_leak(run)
    accounted(run)
    return run, packets(capture), packets(tmp_path / "out_a.pcap"), packets(tmp_path / "out_b.pcap")


def load_error(tmp_path, flows, name="bad.yaml", capture="udp_echo.pcap"):
    """Runs a config that must be refused at load: exit 2, one line on stderr, nothing run."""
    out = tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(TESTS / "data" / capture, out, flows, CAPTURE_CLOCK), name=name)
    assert run.returncode == 2, (run.returncode, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert not out.exists() and run.stats is None
    return lines[0]


def tier_report(run, processor=0, name="all"):
    return report(run, name, processor)


def saved(path):
    return json.loads(Path(path).read_text())


def ip_proto(frame):
    """The IP protocol of an untagged frame, after IPv6 extension headers; 0 if not IP."""
    return l4_layout(Ether(frame))[1]


# --- what scapy says about a packet -------------------------------------------------------------

V6_EXT = (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, IPv6ExtHdrFragment)


def l4_layout(pkt):
    """(l3 offset, IP protocol, l4 offset or None for a later fragment, end of the IP packet, where
    the data after the IP headers starts) of an untagged frame as scapy reads it; (None, 0, None,
    len, None) if it is not IP."""
    if IP in pkt:
        ip = pkt[IP]
        l4 = 14 + ip.ihl * 4
        return 14, ip.proto, (None if ip.frag else l4), 14 + ip.len, l4
    if IPv6 in pkt:
        ip6 = pkt[IPv6]
        off, nh, layer, later = 14 + 40, ip6.nh, ip6.payload, False
        while isinstance(layer, V6_EXT):
            off += len(bytes(layer)) - len(bytes(layer.payload))
            nh = layer.nh
            if isinstance(layer, IPv6ExtHdrFragment) and layer.offset:
                later = True
                break
            layer = layer.payload
        return 14, nh, (None if later else off), 14 + 40 + ip6.plen, off
    return None, 0, None, len(pkt), None


def expected_fields(raw, direction):
    """The vector accessors' values for one frame, from scapy: length, proto, sport, dport,
    tcp_flags, ttl, dir, payload_len, src4/dst4 (IPv4 as integers), src/dst (16 bytes, hex)."""
    pkt = Ether(raw)
    l3, proto, l4, end, data_start = l4_layout(pkt)
    f = {"length": len(raw), "proto": proto, "sport": 0, "dport": 0, "tcp_flags": 0, "ttl": 0,
         "dir": direction, "payload_len": 0, "src4": 0, "dst4": 0, "src": "00" * 16, "dst": "00" * 16}
    if l3 is None:
        return f
    f["ttl"] = pkt[IP].ttl if IP in pkt else pkt[IPv6].hlim
    if IP in pkt:
        f["src4"], f["dst4"] = (int(ipaddress.IPv4Address(pkt[IP].src)), int(ipaddress.IPv4Address(pkt[IP].dst)))
        f["src"], f["dst"] = (ipaddress.IPv6Address(f"::ffff:{a}").packed.hex() for a in (pkt[IP].src, pkt[IP].dst))
    else:
        f["src"], f["dst"] = (ipaddress.IPv6Address(a).packed.hex() for a in (pkt[IPv6].src, pkt[IPv6].dst))
    if l4 is None:                        # a later fragment: its data is the payload
        f["payload_len"] = end - data_start
        return f
    header = 0
    if proto == 6 and TCP in pkt:
        tcp = pkt[TCP]
        f.update(sport=tcp.sport, dport=tcp.dport, tcp_flags=int(tcp.flags) & 0xFF)
        header = tcp.dataofs * 4
    elif proto == 17 and UDP in pkt:
        f.update(sport=pkt[UDP].sport, dport=pkt[UDP].dport)
        header = 8
    elif proto in (1, 58):
        header = 8
    f["payload_len"] = max(end - (l4 + header), 0)
    return f


def _addr(family, packed16):
    return str(ipaddress.ip_address(packed16[:4] if family == 4 else packed16))


def five_tuple(key, conn):
    """(src, sport, dst, dport, proto) of a connection as its opener sent its first packet; for
    a non-IP flow ("-", ether type, "-", 0, 0), the way the counter reports it."""
    if not key.family:
        return ("-", key.ether_type, "-", 0, 0)
    other = key.hi if conn.opener == key.lo else key.lo
    return (_addr(key.family, conn.opener[0]), conn.opener[1], _addr(key.family, other[0]), other[1], key.proto)


def directions(frames):
    """Each frame's direction in its connection: 0 from the side that sent its first packet."""
    keyer, openers, out = Keyer(), {}, []
    for raw in frames:
        key, end = keyer.key(raw)
        opener = openers.setdefault(key, end)
        out.append(0 if end == opener or key.lo == key.hi else 1)
    return out


def rebuilt(raw, edit):
    """The frame after `edit(pkt)` (a scapy packet), with every checksum scapy knows recomputed
    (only the IPv4 header's for a fragment: a transport checksum covers the whole datagram)."""
    pkt = Ether(raw)
    edit(pkt)
    fragment = IP in pkt and (pkt[IP].frag or pkt[IP].flags.MF)
    layer = pkt
    while layer:
        if not fragment or layer is pkt.getlayer(IP):
            for name in ("chksum", "cksum"):
                if any(f.name == name for f in layer.fields_desc):
                    layer.setfieldval(name, None)
        layer = layer.payload
    return bytes(pkt)


# ============================================================================================
# 1. Verdicts
# ============================================================================================

@pytest.mark.parametrize("capture", ["http_get.pcap", "icmp_ping.pcap"])
def test_pass_leaves_every_packet_byte_identical(tmp_path, capture_dir, capture):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / capture, catch_all(P("verdicts:PassAll")))
    assert same_multiset(frames_out, frames_in)
    check_per_flow_order(frames_in, frames_out)
    rep = tier_report(run)
    assert rep["name"] == "pyprocs.verdicts:PassAll"
    assert (rep["packets"], rep["faults"], rep["on_error"], rep["first_faults"]) == (len(frames_in), 0, "pass", [])
    stats = engine_stats(run)
    assert stats["verdicts"]["pass"] == len(frames_in) and stats["dropped"] == 0


def test_drop_every_packet(tmp_path, capture_dir):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all(P("verdicts:DropAll")))
    assert frames_out == []
    stats = engine_stats(run)
    assert stats["verdicts"]["drop"] == stats["dropped"] == len(frames_in)
    assert stats["tx_packets"] == 0 and run.stats["totals"]["tx_packets"] == 0


def _not_udp(frames):
    return [f for f in frames if ip_proto(f) != 17]


def test_drop_with_vector_verdicts_drops_all_udp(tmp_path, capture_dir):
    """DropProto reads batch.proto (one vector for the burst) and drops the UDP packets only."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "mixed.pcap",
                                              catch_all(P("verdicts:DropProto", proto=17)))
    kept = _not_udp(frames_in)
    assert len(frames_in) - len(kept) == 100
    assert same_multiset(frames_out, kept)
    check_per_flow_order(kept, frames_out)
    assert engine_stats(run)["dropped"] == engine_stats(run)["verdicts"]["drop"] == 100


@pytest.mark.parametrize("kind", ["list", "tuple"])
def test_verdicts_returned_from_process(tmp_path, capture_dir, kind):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "mixed.pcap",
                                              catch_all(P("verdicts:ReturnList", proto=17, kind=kind)))
    kept = _not_udp(frames_in)
    assert same_multiset(frames_out, kept)
    check_per_flow_order(kept, frames_out)
    assert tier_report(run)["faults"] == 0
    assert engine_stats(run)["verdicts"]["drop"] == 100


def test_hold_until_n_then_release_keeps_per_flow_order(tmp_path, capture_dir):
    """With one packet per burst, HoldUntil(5) sees each flow's window grow by one per call and
    releases it at exactly 5; what a flow still holds when it ends leaves then. Nothing is lost,
    every flow's order is kept."""
    out = tmp_path / "hold.json"
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all(P("verdicts:HoldUntil", packets=5, out=str(out))), burst=1)
    assert same_multiset(frames_out, frames_in)
    check_per_flow_order(frames_in, frames_out)
    rec = saved(out)
    conns, _ = connections(frames_in)
    assert sorted(set(rec["released"])) == [5]
    assert len(rec["released"]) == sum(len(c.frames) // 5 for c in conns.values())
    stats = engine_stats(run)
    assert stats["verdicts"]["hold"] == rec["held_calls"] > 0
    assert stats["hold_overflows"] == 0 and stats["dropped"] == 0
    assert stats["tx_packets"] == len(frames_in)


def _ip(frame):
    return IP in Ether(frame) or IPv6 in Ether(frame)


def _set_ttl(pkt, ttl):
    if IP in pkt:
        pkt[IP].ttl = ttl
    else:
        pkt[IPv6].hlim = ttl


@pytest.mark.parametrize("capture", ["http_get.pcap", "http_ipv6.pcap", "icmp_ping.pcap"])
def test_set_ttl_rewrites_it_with_valid_checksums(tmp_path, capture_dir, capture):
    """batch.set_ttl(i, 33) on every IP packet (an l3 writer: ARP skips it); what leaves is the
    input with TTL/hop limit 33 and every checksum as scapy recomputes it."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / capture,
                                              catch_all(P("verdicts:SetTTL", ttl=33)))
    expected = [rebuilt(f, lambda p: _set_ttl(p, 33)) if _ip(f) else f for f in frames_in]
    assert expected != frames_in
    assert same_multiset(frames_out, expected)
    check_per_flow_order(expected, frames_out)
    assert all(checksums_ok(f) for f in frames_out)
    ip = sum(1 for f in frames_in if _ip(f))
    assert engine_stats(run)["verdicts"]["modified"] == ip
    assert tier_report(run)["faults"] == 0


def test_an_l3_processor_is_not_handed_arp(tmp_path, capture_dir):
    out = tmp_path / "rec.json"
    run, frames_in, _ = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                     catch_all(P("observe:Recorder", out=str(out), level="l3")))
    arp = [f for f in frames_in if f[12:14] == b"\x08\x06"]
    assert len(arp) == 2
    seen = [bytes.fromhex(p["raw"]) for c in saved(out)["calls"] for p in c["packets"]]
    assert not [f for f in seen if f in arp], "ARP frames were handed to an l3 processor"
    assert tier_report(run)["packets"] == len(frames_in) - len(arp)


def with_payload_written(raw, data):
    """The frame with `data` over the start of its TCP/UDP payload (if the payload has room and
    the packet is not a fragment), its transport checksum recomputed with scapy's in4_chksum /
    in6_chksum (the IP header does not change)."""
    pkt = Ether(raw)
    l3, proto, l4, end, _ = l4_layout(pkt)
    if proto not in (6, 17) or l4 is None or (IP in pkt and pkt[IP].flags.MF):
        return raw
    start = l4 + ((raw[l4 + 12] >> 4) * 4 if proto == 6 else 8)
    if end - start < len(data):
        return raw
    b = bytearray(raw)
    b[start:start + len(data)] = data
    at = l4 + (16 if proto == 6 else 6)
    b[at:at + 2] = b"\0\0"
    segment = bytes(b[l4:end])
    c = in4_chksum(proto, pkt[IP], segment) if IP in pkt else in6_chksum(proto, pkt[IPv6], segment)
    b[at:at + 2] = (c or (0xFFFF if proto == 17 else 0)).to_bytes(2, "big")
    return bytes(b)


@pytest.mark.parametrize("capture", ["udp_echo.pcap", "http_ipv6.pcap", "http_get.pcap"])
def test_write_changes_the_bytes_asked_with_valid_checksums(tmp_path, capture_dir, capture):
    """batch.write(i, offset, b"FLOW") at the start of every TCP/UDP payload of 4 bytes or more:
    exactly those bytes change, and the IP/TCP/UDP checksums are right (scapy recomputes them)."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / capture,
                                              catch_all(P("verdicts:WritePayload", data="FLOW")))

    expected = [with_payload_written(f, b"FLOW") for f in frames_in]
    changed = sum(1 for a, b in zip(frames_in, expected) if a != b)
    assert changed > 0
    assert same_multiset(frames_out, expected)
    check_per_flow_order(expected, frames_out)
    assert all(checksums_ok(f) for f in frames_out)
    assert engine_stats(run)["verdicts"]["modified"] == changed


def test_redirect_to_a_port_from_setup_context(tmp_path, capture_dir):
    """RedirectProto looks up port b in setup(context) and redirects the UDP packets there."""
    run, frames_in, out_a, out_b = two_ports(tmp_path, capture_dir / "mixed.pcap",
                                             catch_all(P("verdicts:RedirectProto", to="b", proto=17)))
    udp = [f for f in frames_in if ip_proto(f) == 17]
    rest = _not_udp(frames_in)
    assert len(udp) == 100
    assert out_b == udp
    assert same_multiset(out_a, rest)
    check_per_flow_order(rest, out_a)
    assert engine_stats(run)["verdicts"]["redirect"] == 100
    ports = {p["name"]: p["tx_packets"] for p in run.stats["ports"]}
    assert ports == {"a": len(rest), "b": 100}


def test_a_python_processors_port_parameter_reaches_it_as_written(tmp_path, capture_dir):
    out = tmp_path / "params.json"
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "udp_echo.pcap",
                                              catch_all(P("observe:Params", out=str(out), port="a")))
    assert saved(out) == {"params": {"port": "a"}, "ports": {"a": 0}}


def test_inject_puts_the_new_frame_right_after_its_packet(tmp_path, capture_dir):
    """After every request (dir 0) of udp_echo (one flow), InjectAfter injects the request with
    another Ethernet source: the output is request, its copy, the reply, and so on."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "udp_echo.pcap",
                                              catch_all(P("verdicts:InjectAfter", dir=0, mac="02:00:00:00:00:ee")))
    mac = bytes.fromhex("0200000000ee")
    expected = []
    for f, d in zip(frames_in, directions(frames_in)):
        expected.append(f)
        if d == 0:
            expected.append(f[:6] + mac + f[12:])
    assert len(expected) == len(frames_in) + 300
    assert frames_out == expected
    stats = engine_stats(run)
    assert stats["injected"] == 300 and stats["inject_failed"] == 0


# ============================================================================================
# 2. The Batch API
# ============================================================================================

FORMATS = {"length": ("I", 4), "proto": ("B", 1), "sport": ("H", 2), "dport": ("H", 2), "tcp_flags": ("B", 1),
           "ttl": ("B", 1), "dir": ("B", 1), "payload_len": ("I", 4), "src4": ("I", 4), "dst4": ("I", 4)}


@pytest.mark.parametrize("capture", ["http_get.pcap", "http_ipv6.pcap", "icmp_ping.pcap"])
def test_flows_and_vector_accessors_match_scapy(tmp_path, capture_dir, capture):
    """Over a real capture: every packet is seen once; each call's flows partition its packets
    (flow.packets: consecutive indices) and carry the 5-tuple as the flow's opener sent it; each
    vector accessor equals scapy's value for each packet and exposes the buffer protocol."""
    out = tmp_path / "rec.json"
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / capture,
                                              catch_all(P("observe:Recorder", out=str(out))))
    assert same_multiset(frames_out, frames_in)
    rec = saved(out)
    for name, (fmt, size) in FORMATS.items():
        got_fmt, got_size, ndim, shape, n = rec["formats"][name]
        assert (got_fmt, got_size, ndim, shape) == (fmt, size, 1, n), name

    conns, _ = connections(frames_in)
    tuples = {k: five_tuple(k, c) for k, c in conns.items()}
    dirs = dict(zip(frames_in, directions(frames_in)))   # equal frames have the same direction
    keyer = Keyer()
    seen = []
    for call in rec["calls"]:
        indices = [i for f in call["flows"] for i in f["packets"]]
        assert indices == list(range(call["size"])) == list(range(len(call["packets"])))
        for flow in call["flows"]:
            keys = {keyer.key(bytes.fromhex(call["packets"][i]["raw"]))[0] for i in flow["packets"]}
            assert len(keys) == 1, "a flow's packets belong to one connection"
            (key,) = keys
            got = (flow["src"], flow["sport"], flow["dst"], flow["dport"], flow["proto"])
            if key.family:
                assert got == tuples[key]
            else:
                assert (flow["src"], flow["dst"], flow["proto"]) == (None, None, 0)
        for p in call["packets"]:
            raw = bytes.fromhex(p.pop("raw"))
            seen.append(raw)
            assert p == expected_fields(raw, dirs[raw]), Ether(raw).summary()
    assert same_multiset(seen, frames_in)


C, S = "10.9.0.1", "10.9.0.2"
T0 = 1_700_000_000.0


def tcp_session(cport, close="fin"):
    """A TCP connection C:cport -> S:80: handshake, one exchange, then FIN both ways or an RST."""
    seq = {0: 1000, 1: 5000}

    def pkt(d, flags, data=b""):
        src, dst, sp, dp = (C, S, cport, 80) if d == 0 else (S, C, 80, cport)
        tcp = TCP(sport=sp, dport=dp, flags=flags, seq=seq[d], ack=seq[1 - d] if "A" in flags else 0)
        seq[d] += len(data) + (1 if ("S" in flags or "F" in flags) else 0)
        return bytes(Ether(src="02:00:00:00:00:0c", dst="02:00:00:00:00:05") / IP(src=src, dst=dst) / tcp / Raw(data))

    frames = [pkt(0, "S"), pkt(1, "SA"), pkt(0, "A"), pkt(0, "PA", b"request"), pkt(1, "PA", b"response"),
              pkt(0, "A")]
    if close == "fin":
        frames += [pkt(0, "FA"), pkt(1, "A"), pkt(1, "FA"), pkt(0, "A")]
    else:
        frames += [pkt(1, "R")]
    return frames


def udp_frame(sport, reply=False):
    src, dst, sp, dp = (S, C, 53, sport) if reply else (C, S, sport, 53)
    return bytes(Ether(src="02:00:00:00:00:0c", dst="02:00:00:00:00:05") / IP(src=src, dst=dst) /
                 UDP(sport=sp, dport=dp) / Raw(b"q"))


def test_flow_state_persists_and_flow_end_gets_it_with_each_reason(tmp_path):
    """StateCounter counts each flow's packets per direction in flow.state over many calls
    (burst 1: one packet per call). flow_end gets that state with why the flow ended: fin (FIN
    both ways), rst, idle (a UDP flow silent past its 10 s timeout), shutdown (the rest); then
    the state is freed (no Counts object is left alive at teardown)."""
    fin, rst = tcp_session(40000, "fin"), tcp_session(40001, "rst")
    frames = fin + rst + [udp_frame(1001), udp_frame(1001, reply=True), udp_frame(1002)]
    times = [T0 + i * 0.01 for i in range(len(fin) + len(rst) + 2)] + [T0 + 60]
    frames += [udp_frame(1003), udp_frame(1003, reply=True)]
    times += [T0 + 60.5, T0 + 61]
    capture = write_pcap(tmp_path / "in.pcap", frames, times)
    out = tmp_path / "state.json"
    run, frames_in, frames_out = run_one_port(
        tmp_path, capture, catch_all(P("observe:StateCounter", out=str(out))), burst=1,
        engine={"clock": "capture", "timeouts": {"udp": 10}})
    assert same_multiset(frames_out, frames_in)
    rec = saved(out)
    ended = sorted((e["sport"], e["dport"], e["proto"], e["packets"], e["reason"]) for e in rec["ended"])
    assert ended == [(1001, 53, 17, [1, 1], "idle"), (1002, 53, 17, [1, 0], "shutdown"),
                     (1003, 53, 17, [1, 1], "shutdown"), (40000, 80, 6, [6, 4], "fin"),
                     (40001, 80, 6, [4, 3], "rst")]
    assert all((e["src"], e["dst"]) == (C, S) for e in rec["ended"])
    assert rec["calls"] == len(frames)
    assert rec["reused"] == len(frames) - 5, "flow.state came back in every call after a flow's first"
    assert rec["live_states"] == 0, "flow.state was not freed after flow_end"
    assert tier_report(run)["faults"] == 0


@pytest.mark.parametrize("burst", [1, 32])
def test_flow_state_counts_equal_scapys_connections(tmp_path, capture_dir, burst):
    """Over a real capture, beside a counter in the same stage: each flow's counts kept in
    flow.state equal scapy's per-connection counts by direction, and its end reason is the
    counter's (the TCP connections of http_get close by FIN)."""
    out = tmp_path / "state.json"
    run, frames_in, frames_out = run_one_port(
        tmp_path, capture_dir / "http_get.pcap", catch_all(["counter", P("observe:StateCounter", out=str(out))]),
        burst=burst)
    conns, _ = connections(frames_in)
    rec = saved(out)
    counter = {(r["src"], r["sport"], r["dst"], r["dport"], r["proto"]): r for r in report(run, "all", 0)["flows"]}
    assert len(rec["ended"]) == len(conns) == len(counter)
    model = {five_tuple(k, c): c.packets for k, c in conns.items()}
    got = {}
    for e in rec["ended"]:
        key = (e["src"], e["sport"], e["dst"], e["dport"], e["proto"]) if e["src"] else ("-", 0x0806, "-", 0, 0)
        got[key] = e["packets"]
        record = counter[key if e["src"] else next(k for k in counter if k[0] == "-")]
        assert (e["reason"], e["packets"]) == (record["end"], record["packets"]), key
        if e["proto"] == 6:
            assert e["reason"] == "fin"
    assert got == model
    assert rec["live_states"] == 0


# ============================================================================================
# 3. One Python call per burst
# ============================================================================================

def test_one_call_per_packet_with_burst_1(tmp_path, capture_dir):
    """burst 1: each burst brings one packet, so an l2 processor is called once per packet, and
    a payload-level one once per packet that has payload (the others skip it)."""
    run, frames_in, _ = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                     catch_all(P("verdicts:PassAll"), P("verdicts:PassPayload")), burst=1)
    n = len(frames_in)
    with_payload = sum(1 for f in frames_in if expected_fields(f, 0)["payload_len"] > 0)
    assert 0 < with_payload < n
    l2, payload = tier_report(run, 0), tier_report(run, 1)
    assert (l2["calls"], l2["packets"]) == (n, n)
    assert (payload["calls"], payload["packets"]) == (with_payload, with_payload)


@pytest.mark.parametrize("capture,burst", [("mixed.pcap", 32), ("http_get.pcap", 8), ("udp_echo.pcap", 64)])
def test_one_call_per_burst(tmp_path, capture_dir, capture, burst):
    """With bursts of B packets, a processor that sees every packet is called once per burst:
    at least ceil(N/B) times (it never gets more than a burst at once) and no more than a couple
    of calls over that; it is handed every packet exactly once."""
    run, frames_in, _ = run_one_port(tmp_path, capture_dir / capture, catch_all(P("verdicts:PassAll")), burst=burst)
    n = len(frames_in)
    rep = tier_report(run)
    assert rep["packets"] == n
    assert math.ceil(n / burst) <= rep["calls"] <= math.ceil(n / burst) + 2


def test_bursts_of_256_by_default_with_a_python_processor(tmp_path, capture_dir):
    """With no run.burst, a pipeline with a Python processor receives in bursts of up to 256 (one
    call per 256 packets of a capture read at full speed), says so at start, and reports it."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "mixed.pcap", catch_all(P("verdicts:PassAll")))
    n = len(frames_in)
    rep = tier_report(run)
    assert run.stats["burst"] == PYTHON_BURST
    assert rep["packets"] == n
    assert math.ceil(n / PYTHON_BURST) <= rep["calls"] <= math.ceil(n / PYTHON_BURST) + 2
    assert (f"receive bursts of up to {PYTHON_BURST} packets: pyprocs.verdicts:PassAll is called once per burst"
            in run.stdout)
    assert same_multiset(frames_out, frames_in)


def test_bursts_of_32_by_default_without_a_python_processor(tmp_path, capture_dir):
    run, frames_in, _ = run_one_port(tmp_path, capture_dir / "mixed.pcap", catch_all("counter"))
    assert run.stats["burst"] == 32 and "receive bursts of up to" not in run.stdout


def test_calls_count_only_bursts_with_packets_for_the_processor(tmp_path, capture_dir):
    """Two definitions (UDP, the rest), each with its own processor, burst 1: each is called once
    per packet of its own definition, never for a burst that brought it nothing."""
    flows = [{"name": "udp", "match": {"proto": "udp"}, "pipeline": [P("verdicts:PassAll")]},
             {"name": "all", "pipeline": [P("verdicts:PassAll")]}]
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "mixed.pcap", flows, burst=1)
    udp = sum(1 for f in frames_in if ip_proto(f) == 17)
    assert (tier_report(run, name="udp")["calls"], tier_report(run, name="udp")["packets"]) == (udp, udp)
    rest = len(frames_in) - udp
    assert (tier_report(run, name="all")["calls"], tier_report(run, name="all")["packets"]) == (rest, rest)
    assert same_multiset(frames_out, frames_in)


# ============================================================================================
# 4. Faults
# ============================================================================================

def shown_once(run, text):
    """The traceback of the first fault is on stderr once (later faults are counted, not shown)."""
    assert run.stderr.count(TRACEBACK) == 1, run.stderr
    assert run.stderr.count(text) == 1, run.stderr


@pytest.mark.parametrize("policy", ["pass", "drop"])
def test_raise_in_process(tmp_path, capture_dir, policy):
    """Every call raises: with on_error pass every packet leaves as it came, with drop none does;
    every fault is counted, the first ones recorded, the traceback shown once; exit 1."""
    proc = {"pyprocs.faults:Raise": {"where": "process", "on_error": policy}}
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap", catch_all(proc), faulted=True)
    if policy == "pass":
        assert same_multiset(frames_out, frames_in)
        check_per_flow_order(frames_in, frames_out)
    else:
        assert frames_out == []
        assert engine_stats(run)["dropped"] == len(frames_in)
    rep = tier_report(run)
    assert rep["name"] == "pyprocs.faults:Raise" and rep["on_error"] == policy
    assert rep["packets"] == len(frames_in)
    assert rep["faults"] == rep["calls"] >= math.ceil(len(frames_in) / PYTHON_BURST)
    assert len(rep["first_faults"]) == min(5, rep["faults"])
    assert all("pyprocs process failed on purpose" in f for f in rep["first_faults"])
    shown_once(run, "Boom: pyprocs process failed on purpose")


def _stop_checks(run, name):
    assert run.returncode == 1, run.stderr
    no_leak(run)
    assert run.stats["stop_reason"].startswith("processor fault") and name in run.stats["stop_reason"]
    assert run.stats["elapsed_s"] < 10, "the run should stop soon after the fault, not at --duration"
    error = run.stderr[run.stderr.index("flowos-run: error:"):]
    assert name in error and "on_error: stop" in error, run.stderr
    assert run.stderr.count(TRACEBACK) == 1, run.stderr
    rep = run.stats["engine"]["flows"][0]["processors"][0]["report"]
    assert rep["on_error"] == "stop" and rep["faults"] == 1
    assert rep["calls"] == 1, "called again after the fault that stopped the run"


def test_on_error_stop_from_the_config_ends_the_run(tmp_path, capture_dir):
    """A capture replayed forever (infinite_rx) would never end by itself: on_error: stop makes
    the first fault end the run, with exit 1 and a one-line error naming the processor."""
    cfg = {"ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={capture_dir / 'udp_echo.pcap'},"
                                          f"tx_pcap=out.pcap,infinite_rx=1"}],
           "forward": ["a -> a"], "run": {"duration": 30},
           "flows": catch_all({"pyprocs.faults:Raise": {"where": "process", "on_error": "stop"}})}
    run = run_config(tmp_path, cfg)
    _stop_checks(run, "pyprocs.faults:Raise")


def test_on_error_stop_from_the_class_ends_a_processor_flag_run(tmp_path):
    """--processor with a class whose on_error is stop, on a net_null port (endless traffic)."""
    run = run_flowos("--vdev", "net_null0", "--processor", "pyprocs.faults:RaiseStop", "--duration", "30",
                     tmp_path=tmp_path)
    _stop_checks(run, "pyprocs.faults:RaiseStop")


def test_the_stop_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")   # an 80-column terminal, and what rich assumes for a pipe
    run = run_flowos("--vdev", "net_null0", "--processor", "pyprocs.faults:RaiseStop", "--duration", "30",
                     tmp_path=tmp_path)
    assert run.returncode == 1, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("flowos-run: error: stopped by a processor fault (pyprocs.faults:RaiseStop)"), run.stderr
    assert last.endswith("(on_error: stop)"), run.stderr


@pytest.mark.parametrize("kind,says", [
    ("int", "TypeError"),
    ("short", "verdicts for"),
    ("long", "verdicts for"),
    ("range-list", "is not one of pass, drop"),
    ("range-array", "is not one of pass, drop"),
    ("negative", "Error"),
    ("index-set_ttl", "IndexError: packet index out of range"),
    ("index-inject", "IndexError: packet index out of range"),
    ("index-redirect", "IndexError: packet index out of range"),
    ("index-write", "IndexError: packet index out of range"),
])
def test_a_wrong_return_is_a_fault(tmp_path, capture_dir, kind, says):
    """A non-sequence, too few or too many verdicts, a verdict out of range: each call is a fault,
    and on_error pass lets the batch through untouched."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all(P("faults:WrongReturn", kind=kind)), faulted=True)
    assert same_multiset(frames_out, frames_in)
    check_per_flow_order(frames_in, frames_out)
    rep = tier_report(run)
    assert rep["faults"] == rep["calls"] > 0
    assert says in rep["first_faults"][0]
    assert run.stderr.count(TRACEBACK) == 1, run.stderr
    stats = engine_stats(run)
    assert stats["verdicts"]["pass"] == len(frames_in) and stats["bad_verdicts"] == 0


MISUSES = [
    ("del-verdicts", "BufferError"),       # was a SIGSEGV: the engine read the freed array
    ("pop-verdicts", "BufferError"),       # was no fault: the engine read one verdict past the array
    ("shrink-verdicts", "BufferError"),
    ("grow-verdicts", "BufferError"),
    ("repeat-verdicts", "BufferError"),    # verdicts *= 0
    ("lying-return", "BufferError"),       # a result whose len() says n but which yields n - 1
    ("inject-empty", "ValueError: an injected frame needs at least its 14-byte Ethernet header"),
    ("inject-short", "ValueError: an injected frame needs at least its 14-byte Ethernet header"),
    ("inject-int", "TypeError"),           # was a frame of 60 zero bytes
    ("write-int", "TypeError"),            # was 6 zero bytes over the destination MAC
]


@pytest.mark.parametrize("kind,says", MISUSES)
def test_a_refused_batch_operation_is_a_fault(tmp_path, capture_dir, kind, says):
    """Resizing batch.verdicts (or returning a result that would), injecting a frame shorter than
    an Ethernet header, passing an int where bytes belong: each raises in process(), a fault
    under on_error; the box neither crashes nor sends what it was not given, and every packet
    leaves as it came."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all(P("faults:Misuse", kind=kind)), burst=4,
                                              faulted=True)
    assert same_multiset(frames_out, frames_in)
    check_per_flow_order(frames_in, frames_out)
    rep = tier_report(run)
    assert rep["faults"] == rep["calls"] > 1
    assert says in rep["first_faults"][0], rep["first_faults"][0]
    stats = engine_stats(run)
    assert stats["verdicts"]["pass"] == len(frames_in) and stats["bad_verdicts"] == 0
    assert stats["injected"] == 0


@pytest.mark.parametrize("kind", ["replace", "insert", "find", "startswith"])
def test_an_int_is_no_stream_data(tmp_path, capture_dir, kind):
    """stream.replace(off, 1) wrote a zero byte, insert inserted one, find and startswith looked
    for zero bytes: now each raises TypeError, a fault, and the stream is left as it was."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all(P("faults:StreamMisuse", kind=kind)), burst=4,
                                              faulted=True)
    assert same_multiset(frames_out, frames_in)
    rep = tier_report(run)
    assert rep["faults"] == rep["calls"] > 1
    assert "TypeError: expected bytes-like data, got int" in rep["first_faults"][0], rep["first_faults"][0]


def test_a_refused_resize_with_on_error_drop_drops_the_batch(tmp_path, capture_dir):
    proc = {"pyprocs.faults:Misuse": {"kind": "del-verdicts", "on_error": "drop"}}
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap", catch_all(proc),
                                              faulted=True)
    assert frames_out == []
    assert engine_stats(run)["dropped"] == len(frames_in)
    assert tier_report(run)["faults"] == tier_report(run)["calls"]


def test_a_wrong_return_with_on_error_drop_drops_the_batch(tmp_path, capture_dir):
    proc = {"pyprocs.faults:WrongReturn": {"kind": "range-list", "on_error": "drop"}}
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap", catch_all(proc),
                                              faulted=True)
    assert frames_out == []
    assert engine_stats(run)["dropped"] == len(frames_in)
    assert tier_report(run)["faults"] == tier_report(run)["calls"]


def test_raise_in_setup_fails_the_run_naming_the_processor(tmp_path, capture_dir):
    out = tmp_path / "out.pcap"
    cfg = one_port(capture_dir / "udp_echo.pcap", out, catch_all(P("faults:Raise", where="setup")), CAPTURE_CLOCK)
    run = run_config(tmp_path, cfg)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("flowos-run: error:")
    assert "pyprocs.faults:Raise" in lines[0] and "pyprocs setup failed on purpose" in lines[0]
    assert "set up" in lines[0]


def test_teardown_runs_after_a_failed_setup(tmp_path, capture_dir):
    """Processor.teardown: "always called at the end, also after a failed start"."""
    marker = tmp_path / "teardown.json"
    cfg = one_port(capture_dir / "udp_echo.pcap", tmp_path / "out.pcap",
                   catch_all(P("faults:Raise", where="setup", out=str(marker))), CAPTURE_CLOCK)
    run = run_config(tmp_path, cfg)
    assert run.returncode == 1, run.stderr
    assert marker.exists() and saved(marker) == {"teardown": True}


@pytest.mark.parametrize("params,says", [
    ({"threshold": "abc"}, "threshold must be an integer"),
    ({"threshold": 0}, "threshold must be an integer"),
    ({"threshold": 5, "colour": "red"}, "colour"),
])
def test_bad_parameters_are_rejected_at_load(tmp_path, params, says):
    line = load_error(tmp_path, catch_all("counter", {"pyprocs.faults:Strict": params}), name="params.yaml")
    assert "params.yaml" in line and "flows[0].pipeline[1]" in line, line
    assert "pyprocs.faults:Strict" in line and says in line, line


def test_a_bad_on_error_is_rejected_at_load(tmp_path):
    line = load_error(tmp_path, catch_all({"pyprocs.faults:Strict": {"on_error": "ignore"}}), name="onerr.yaml")
    assert "onerr.yaml" in line and "flows[0].pipeline[0].on_error" in line and "ignore" in line, line


@pytest.mark.parametrize("path,says", [
    ("pyprocs.no_such_module:Thing", "cannot import"),
    ("no_such_package.mod:Thing", "cannot import"),
    ("pyprocs.faults:NoSuchClass", "not a flowos.Processor subclass"),
    ("pyprocs.faults:NotAProcessor", "not a flowos.Processor subclass"),
    ("pyprocs.faults:not_a_class", "not a flowos.Processor subclass"),
])
def test_a_bad_import_path_is_rejected_at_load(tmp_path, path, says):
    line = load_error(tmp_path, catch_all("counter", [path]), name="imports.yaml")
    assert "imports.yaml" in line and "flows[0].pipeline[1]" in line, line
    assert says in line, line


def test_a_bad_processor_flag_is_rejected(tmp_path):
    run = run_flowos("--vdev", "net_null0", "--processor", "pyprocs.faults:NotAProcessor", "--duration", "5",
                     tmp_path=tmp_path)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--processor" in lines[0] and "pyprocs.faults:NotAProcessor" in lines[0], run.stderr
    assert run.stats is None


def test_raise_in_flow_end_is_counted(tmp_path, capture_dir):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all(P("faults:Raise", where="flow_end")), faulted=True)
    assert same_multiset(frames_out, frames_in)
    conns, _ = connections(frames_in)
    rep = tier_report(run)
    assert rep["faults"] == len(conns) == 6
    assert all("pyprocs flow_end failed on purpose" in f for f in rep["first_faults"])
    shown_once(run, "Boom: pyprocs flow_end failed on purpose")


def test_raise_in_teardown_is_shown_and_fails_the_run(tmp_path, capture_dir):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all(P("faults:Raise", where="teardown")), faulted=True)
    assert same_multiset(frames_out, frames_in)
    shown_once(run, "Boom: pyprocs teardown failed on purpose")


def test_raise_in_teardown_is_counted_in_the_report(tmp_path, capture_dir):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all(P("faults:Raise", where="teardown")), faulted=True)
    rep = tier_report(run)
    assert rep["faults"] == 1, "the teardown fault is missing from the report"
    assert "pyprocs teardown failed on purpose" in rep["first_faults"][0]


def test_a_slow_processor_loses_nothing(tmp_path, capture_dir):
    """50 ms in every call (38 calls): the input waits, nothing is missed or dropped."""
    proc = catch_all(P("faults:Slow", ms=50))
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "udp_echo.pcap", proc, burst=16)
    assert frames_out == frames_in
    rep = tier_report(run)
    assert rep["packets"] == len(frames_in) and rep["faults"] == 0 and rep["calls"] >= 38
    assert run.stats["elapsed_s"] >= rep["calls"] * 0.05 * 0.9
    port = run.stats["ports"][0]
    assert port["rx_missed"] == port["rx_nombuf"] == port["dropped"] == 0


# ============================================================================================
# 5. Zero-copy safety
# ============================================================================================

PACKET_AND_BATCH = ("packet.len", "packet.tobytes", "packet[0]", "memoryview(packet)", "batch.packet",
                    "batch.flows", "batch.proto", "batch.drop")


def _kept(tmp_path, capture_dir):
    out = tmp_path / "kept.json"
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "icmp_ping.pcap",
                                              catch_all(P("faults:KeepPacket", out=str(out))), burst=1)
    assert same_multiset(frames_out, frames_in)
    assert tier_report(run)["faults"] == 0
    return saved(out), len(frames_in)


def test_a_kept_packet_view_raises_in_a_later_call(tmp_path, capture_dir):
    """A Packet (and its Batch) kept after process() returned raise RuntimeError when used in a
    later call, instead of reading an mbuf that is no longer the processor's."""
    tries, n = _kept(tmp_path, capture_dir)
    for name in PACKET_AND_BATCH:
        assert tries[name] == {"RuntimeError": n - 1}, name


def test_a_kept_flow_raises_in_a_later_call(tmp_path, capture_dir):
    tries, n = _kept(tmp_path, capture_dir)
    for name in ("flow.state", "flow.sport", "flow.src"):
        assert tries[name] == {"RuntimeError": n - 1}, name


def test_a_memoryview_kept_past_the_call_is_a_fault(tmp_path, capture_dir):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "icmp_ping.pcap",
                                              catch_all(P("faults:KeepMemoryview")), burst=1,
                                              faulted=True)
    assert same_multiset(frames_out, frames_in)
    rep = tier_report(run)
    assert rep["faults"] == rep["calls"] == len(frames_in)
    assert "kept a view of packet bytes" in rep["first_faults"][0]
    assert run.stderr.count("kept a view of packet bytes") == 1, run.stderr


def test_a_memoryview_read_after_the_run_reads_zeros(tmp_path, capture_dir):
    """A view kept past the call and read once the run has ended (here from atexit, after the
    EAL gave its memory back) reads zero bytes instead of unmapped memory: the exit status is the
    fault's 1, not a signal's. (It was a SIGSEGV.)"""
    out = tmp_path / "late.json"
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all(P("faults:KeepViewTillExit", out=str(out))), faulted=True)
    assert same_multiset(frames_out, frames_in)
    assert tier_report(run)["faults"] == 1
    read = saved(out)["read"]
    assert len(read) == 2 and all(len(v) > 0 and set(v) == {"0"} for v in read), read


def test_a_memoryview_released_in_the_call_is_no_fault(tmp_path, capture_dir):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "icmp_ping.pcap",
                                              catch_all(P("faults:ReleaseMemoryview")))
    assert same_multiset(frames_out, frames_in)
    assert tier_report(run)["faults"] == 0 and "flowos: processor" not in run.stderr


# ============================================================================================
# 6. The read-only/writer rule
# ============================================================================================

@pytest.mark.parametrize("stage", [
    ["counter", "pyprocs.faults:Writer"],
    ["pyprocs.faults:Writer", "pyprocs.verdicts:PassAll"],
    ["pyprocs.verdicts:PassAll", {"pyprocs.verdicts:SetTTL": {"ttl": 9}}],
], ids=["beside-counter", "writer-first", "beside-python"])
def test_a_python_writer_cannot_share_a_stage(tmp_path, stage):
    line = load_error(tmp_path, [{"name": "all", "pipeline": ["counter", stage]}], name="writer.yaml")
    assert "writer.yaml" in line and "flows[0].pipeline[1]" in line, line
    assert "stands alone" in line and ("Writer" in line or "SetTTL" in line), line


def test_python_readers_may_share_a_stage(tmp_path, capture_dir):
    run, frames_in, frames_out = run_one_port(
        tmp_path, capture_dir / "udp_echo.pcap",
        catch_all(["counter", P("verdicts:PassAll"), P("verdicts:PassAll")], P("faults:Writer")))
    assert same_multiset(frames_out, frames_in)
    assert tier_report(run, 1)["packets"] == tier_report(run, 2)["packets"] == len(frames_in)


# ============================================================================================
# Where processors are imported from
# ============================================================================================

def test_a_processor_beside_the_config_file_imports(tmp_path, capture_dir, monkeypatch):
    """Without PYTHONPATH: the config file's folder is on sys.path."""
    monkeypatch.delenv("PYTHONPATH")
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "beside.py").write_text("import flowos\n\nclass Drop(flowos.Processor):\n"
                                      "    def process(self, batch):\n        return [1] * len(batch)\n")
    out = tmp_path / "out.pcap"
    cfg = one_port(capture_dir / "udp_echo.pcap", out, catch_all("beside:Drop"), CAPTURE_CLOCK)
    (folder / "beside.yaml").write_text(yaml.safe_dump(cfg))
    run = run_flowos("-c", str(folder / "beside.yaml"), tmp_path=tmp_path)   # cwd: tmp_path
    assert run.returncode == 0, run.stderr
    no_leak(run)
    assert packets(out) == []


def test_flow_start_sees_each_flow_first_and_its_state_carries_on(tmp_path, capture_dir):
    """flow_start runs once per flow before process() sees it; the state it sets is the one
    process() and flow_end get; every state is freed at the end."""
    out = tmp_path / "state.json"
    run, frames_in, _ = run_one_port(tmp_path, capture_dir / "mixed.pcap", catch_all(P("observe:StartedCounter", out=str(out))))
    rec = saved(out)
    conns, _ = connections(frames_in)
    assert len(rec["started"]) == len(rec["ended"]) == len(conns) == engine_stats(run)["flows_created"]
    assert sorted(map(tuple, rec["started"])) == sorted((e["src"], e["sport"], e["dst"], e["dport"], e["proto"])
                                                        for e in rec["ended"])
    assert all(isinstance(e["packets"], list) for e in rec["ended"])    # the Counts made in flow_start
    assert rec["live_states"] == 0
