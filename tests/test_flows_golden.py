"""Golden tests of the flow engine: captures through flow definitions whose only processor is a
counter, checked against an independent model of connections (tests/flowcheck.py, scapy).

With a catch-all definition every packet is in exactly one per-connection flow: the counter's
report has, per connection, the packets and bytes of each direction (fwd: the direction of the
flow's first packet); what comes out is what went in, each connection's packets in their order.
Definitions that match part of the traffic leave the rest untouched (or drop it, by config).
"""
import pytest
from scapy.all import (ARP, GRE, ICMP, IP, SCTP, TCP, UDP, Dot1AD, Dot1Q, Ether, IPv6,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, Raw, fragment,
                       fragment6)

from conftest import CAPTURES, packets
from flowcheck import (check_clean, check_per_flow_order, connections, definition,
                       engine_stats, one_port, read_header, report, report_key, report_opener,
                       run_config, same_multiset, write_pcap)

IDS = [c.stem for c in CAPTURES]
CATCH_ALL = [{"name": "all", "pipeline": ["counter"]}]
CAPTURE_CLOCK = {"clock": "capture"}
C_MAC, S_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"

def synthetic_frames():
    """Well-formed frames of every kind the key cares about (see flowcheck.read_header)."""
    c4, s4, c6, s6 = "10.1.0.1", "10.1.0.2", "fd01::1", "fd01::2"
    e = Ether(src=C_MAC, dst=S_MAC)
    r = Ether(src=S_MAC, dst=C_MAC)
    frames = []
    # TCP, with a small ACK padded to the Ethernet minimum (the padding is part of the frame's bytes).
    frames += [e / IP(src=c4, dst=s4) / TCP(sport=40000, dport=80, flags="S"),
               r / IP(src=s4, dst=c4) / TCP(sport=80, dport=40000, flags="SA"),
               bytes(e / IP(src=c4, dst=s4) / TCP(sport=40000, dport=80, flags="A")) + b"\0" * 6,
               e / IP(src=c4, dst=s4) / TCP(sport=40000, dport=80, flags="PA") / Raw(b"GET / HTTP/1.0\r\n\r\n")]
    # UDP in a VLAN, in QinQ and untagged: one connection (the tags are not part of the key).
    frames += [e / Dot1Q(vlan=7) / IP(src=c4, dst=s4) / UDP(sport=5000, dport=53) / Raw(b"q" * 20),
               r / Dot1AD(vlan=8) / Dot1Q(vlan=9) / IP(src=s4, dst=c4) / UDP(sport=53, dport=5000) / Raw(b"a" * 40),
               e / IP(src=c4, dst=s4) / UDP(sport=5000, dport=53) / Raw(b"q" * 21)]
    # The same ports the other way round: another connection.
    frames += [e / IP(src=c4, dst=s4) / UDP(sport=53, dport=5000) / Raw(b"x")]
    # An endpoint talking to itself: every packet is of the opener's direction.
    frames += [e / IP(src=c4, dst=c4) / UDP(sport=6000, dport=6000) / Raw(b"self")] * 2
    # IPv6 with extension headers before TCP: the key's protocol is the transport's.
    frames += [e / IPv6(src=c6, dst=s6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(sport=41000, dport=443),
               r / IPv6(src=s6, dst=c6) / TCP(sport=443, dport=41000, flags="SA")]
    # Transports without ports, or with ports the engine knows (SCTP).
    frames += [e / IP(src=c4, dst=s4) / ICMP(id=1, seq=1), r / IP(src=s4, dst=c4) / ICMP(type=0, id=1, seq=1),
               e / IP(src=c4, dst=s4) / GRE() / IP(src="192.168.0.1", dst="192.168.0.2") / UDP(),
               e / IP(src=c4, dst=s4) / SCTP(sport=9000, dport=9001),
               r / IP(src=s4, dst=c4) / SCTP(sport=9001, dport=9000)]
    # Non-IP: one flow per ether type, whatever the addresses.
    frames += [Ether(src=C_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=c4, pdst=s4),
               r / ARP(op=2, psrc=s4, pdst=c4, hwsrc=S_MAC),
               Ether(src=C_MAC, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"\0" * 40),
               e / Dot1Q(vlan=7) / ARP(psrc="10.1.0.3", pdst=s4)]
    return [bytes(f) for f in frames]


def fragment_frames():
    """Fragmented UDP datagrams, both ways and over IPv6: later fragments (no ports) are in the
    datagram's connection."""
    c4, s4, c6, s6 = "10.1.0.1", "10.1.0.2", "fd01::1", "fd01::2"
    e = Ether(src=C_MAC, dst=S_MAC)
    r = Ether(src=S_MAC, dst=C_MAC)
    frames = []
    frames += fragment(e / IP(src=c4, dst=s4, id=0x1234) / UDP(sport=7000, dport=7001) / Raw(b"A" * 3000), 1000)
    frames += fragment(r / IP(src=s4, dst=c4, id=0x4321) / UDP(sport=7001, dport=7000) / Raw(b"B" * 2000), 800)
    frames += fragment6(e / IPv6(src=c6, dst=s6) / IPv6ExtHdrFragment(id=0xabcdef) /
                        UDP(sport=7002, dport=7003) / Raw(b"C" * 2500), 1000)
    frames += [e / IP(src=c4, dst=s4) / UDP(sport=7000, dport=7001) / Raw(b"unfragmented")]
    return [bytes(f) for f in frames]


@pytest.fixture
def synthetic(tmp_path):
    return write_pcap(tmp_path / "synthetic.pcap", synthetic_frames())


def oriented(rec, conn):
    """A report record's [packets], [bytes] in the model's direction (its connection's first packet)."""
    opener = report_opener(rec)
    if opener is None or opener == conn.opener:
        return rec["packets"], rec["bytes"]
    return rec["packets"][::-1], rec["bytes"][::-1]


def run_catch_all(tmp_path, capture, workers=1, pipeline=(), memory="no-huge", engine=CAPTURE_CLOCK, **extra):
    """The counter on every flow, then `pipeline` (more processors, that pass every packet)."""
    out = tmp_path / "out.pcap"
    flows = [dict(CATCH_ALL[0], pipeline=CATCH_ALL[0]["pipeline"] + list(pipeline))]
    run = run_config(tmp_path, one_port(capture, out, flows, engine, run={"workers": workers}, **extra), memory=memory)
    check_clean(run)
    return run, packets(capture), packets(out)


def check_catch_all(tmp_path, capture, workers=1, **kw):
    """Every connection's counts, the output and the engine's statistics; returns what it read."""
    run, frames_in, frames_out = run_catch_all(tmp_path, capture, workers, **kw)
    conns, unmatched = connections(frames_in)
    assert not unmatched
    # What went in comes out, each connection's packets in their order (across connections it may change).
    assert same_multiset(frames_out, frames_in)
    check_per_flow_order(frames_in, frames_out)
    stats = engine_stats(run)
    assert stats["packets"] == len(frames_in)
    assert stats["unmatched"] == 0 and sum(stats["malformed"].values()) == 0
    assert stats["tx_packets"] == len(frames_in) and stats["dropped"] == 0
    assert stats["verdicts"]["pass"] == len(frames_in) * (1 + len(kw.get("pipeline", ())))   # each processor's
    assert stats["flows_active"] == 0
    assert sum(stats["flows_ended"].values()) == stats["flows_created"]
    d = definition(run, "all")
    assert (d["packets"], d["bytes"]) == (len(frames_in), sum(map(len, frames_in)))
    assert d["flows_created"] == stats["flows_created"] and d["flows_active"] == 0
    rep = report(run, "all")
    assert rep["unrecorded"] == 0
    assert len(rep["flows"]) == stats["flows_created"]
    # Per connection, summed over the flows it was in (see test_one_flow_per_connection).
    seen = {}
    for rec in rep["flows"]:
        k = report_key(rec)
        assert k in conns, f"the counter reports a flow of no connection: {rec}"
        pk, by = oriented(rec, conns[k])
        before = seen.get(k, ([0, 0], [0, 0]))
        seen[k] = ([a + b for a, b in zip(before[0], pk)], [a + b for a, b in zip(before[1], by)])
    assert set(seen) == set(conns)
    for k, conn in conns.items():
        assert seen[k] == (conn.packets, conn.bytes), str(k)
    return run, conns


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_catch_all_counts_every_connection(tmp_path, capture):
    check_catch_all(tmp_path, capture)


def test_catch_all_counts_every_connection_synthetic(tmp_path, synthetic):
    run, conns = check_catch_all(tmp_path, synthetic)
    assert len(conns) == 10


def _one_flow_per_connection(tmp_path, capture, workers=1):
    run, frames_in, _ = run_catch_all(tmp_path, capture, workers)
    conns, _ = connections(frames_in)
    stats = engine_stats(run)
    records = report(run, "all")["flows"]
    assert sorted(map(str, (report_key(r) for r in records))) == sorted(map(str, conns))
    assert stats["flows_created"] == len(conns)
    for rec in records:
        conn = conns[report_key(rec)]
        if rec["src"] != "-":
            assert report_opener(rec) == conn.opener, "fwd is the direction of the flow's first packet"
        assert (rec["packets"], rec["bytes"]) == (conn.packets, conn.bytes)
    return run, conns


@pytest.mark.parametrize("capture", [
    pytest.param(c)
    if c.stem == "http_keepalive" else c for c in CAPTURES], ids=IDS)
def test_one_flow_per_connection(tmp_path, capture):
    _one_flow_per_connection(tmp_path, capture)


def test_one_flow_per_connection_synthetic(tmp_path, synthetic):
    _one_flow_per_connection(tmp_path, synthetic)


def test_non_ip_frames_are_one_flow_per_ether_type(tmp_path):
    """Whatever their addresses (and VLAN tags), frames of one ether type are one flow, all of
    its packets in the direction of its first: a non-IP flow has no two ends."""
    frames = [bytes(f) for f in (
        Ether(src=C_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.1.0.1", pdst="10.1.0.2"),
        Ether(src=S_MAC, dst=C_MAC) / ARP(op=2, psrc="10.1.0.2", pdst="10.1.0.1"),
        Ether(src=C_MAC, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"\0" * 40),
        Ether(src="02:00:00:00:00:03", dst=C_MAC) / Dot1Q(vlan=5) / ARP(psrc="10.1.0.3", pdst="10.1.0.1"),
        Ether(src=S_MAC, dst=C_MAC, type=0x88B5) / Raw(b"local experimental" * 3))]
    capture = write_pcap(tmp_path / "l2.pcap", frames)
    out = tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture, out, CATCH_ALL))
    check_clean(run)
    assert same_multiset(packets(out), frames)
    records = report(run, "all")["flows"]
    by_type = {rec["sport"]: rec for rec in records}
    assert len(records) == len(by_type) == 3 and engine_stats(run)["flows_created"] == 3
    assert all(rec["proto"] == 0 and rec["src"] == rec["dst"] == "-" and rec["dport"] == 0 for rec in records)
    assert by_type[0x0806]["packets"] == [3, 0]
    assert by_type[0x0806]["bytes"] == [len(frames[0]) + len(frames[1]) + len(frames[3]), 0]
    assert by_type[0x88CC]["packets"] == [1, 0] and by_type[0x88B5]["packets"] == [1, 0]


# --- definitions that match part of the traffic ------------------------------------------------

def by_proto(proto):
    return lambda h: 0 if h.proto == proto and h.family else None


def test_unmatched_traffic_passes_untouched(tmp_path, capture_dir):
    capture, out = capture_dir / "mixed.pcap", tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture, out, [{"name": "udp", "match": {"proto": "udp"},
                                                         "pipeline": ["counter"]}], CAPTURE_CLOCK))
    check_clean(run)
    frames_in, frames_out = packets(capture), packets(out)
    conns, unmatched = connections(frames_in, by_proto(17))
    assert len(conns) == 1 and len(unmatched) == 1306
    assert same_multiset(frames_out, frames_in)
    check_per_flow_order(frames_in, frames_out, by_proto(17))
    stats = engine_stats(run)
    assert stats["unmatched"] == len(unmatched) and stats["unmatched_dropped"] == 0
    assert stats["flows_created"] == 1
    d = definition(run, "udp")
    assert (d["packets"], d["bytes"]) == (100, sum(len(f) for f in frames_in if f not in unmatched))
    (conn,), (rec,) = conns.values(), report(run, "udp")["flows"]
    assert (rec["proto"], rec["dport"]) == (17, 5353)
    assert (rec["packets"], rec["bytes"]) == (conn.packets, conn.bytes)
    assert conn.packets == [50, 50]


def test_unmatched_drop_removes_exactly_the_unmatched(tmp_path, capture_dir):
    capture, out = capture_dir / "http_get.pcap", tmp_path / "out.pcap"
    flows = [{"name": "tcp4", "match": {"proto": "tcp", "src": "10.77.0.0/24"}, "pipeline": ["counter"]}]
    run = run_config(tmp_path, one_port(capture, out, flows, {"clock": "capture", "unmatched": "drop"}))
    check_clean(run)
    frames_in, frames_out = packets(capture), packets(out)
    tcp4 = lambda h: 0 if h.family == 4 and h.proto == 6 else None   # noqa: E731
    conns, unmatched = connections(frames_in, tcp4)
    assert len(unmatched) == 5 and len(conns) == 3   # ARP and IPv6 (ND, MLD); three HTTP connections
    assert same_multiset(frames_out, [f for f in frames_in if f not in unmatched])
    check_per_flow_order([f for f in frames_in if f not in unmatched], frames_out, tcp4)
    stats = engine_stats(run)
    assert stats["unmatched"] == stats["unmatched_dropped"] == stats["dropped"] == len(unmatched)
    assert run.stats["ports"][0]["tx_packets"] == len(frames_in) - len(unmatched)


def test_two_sided_definitions_keep_each_direction_apart(tmp_path, capture_dir):
    """A match applies per packet: requests match dport 8080, replies sport 8080; each definition
    has its own flows, so each sees one direction of the HTTP connection."""
    capture, out = capture_dir / "mixed.pcap", tmp_path / "out.pcap"
    flows = [{"name": "requests", "match": {"proto": "tcp", "dport": 8080}, "pipeline": ["counter"]},
             {"name": "replies", "match": {"proto": "tcp", "sport": 8080}, "pipeline": ["counter"]}]
    run = run_config(tmp_path, one_port(capture, out, flows, CAPTURE_CLOCK))
    check_clean(run)
    frames_in, frames_out = packets(capture), packets(out)

    def classify(h):
        return 0 if h.proto == 6 and h.dport == 8080 else 1 if h.proto == 6 and h.sport == 8080 else None

    conns, unmatched = connections(frames_in, classify)
    assert same_multiset(frames_out, frames_in)
    check_per_flow_order(frames_in, frames_out, classify)
    stats = engine_stats(run)
    assert stats["unmatched"] == len(unmatched) == 1406 - 16
    assert stats["flows_created"] == 2
    for i, name in enumerate(("requests", "replies")):
        (conn,) = [c for k, c in conns.items() if k.definition == i]
        (rec,) = report(run, name)["flows"]
        assert rec["def"] == i
        assert (rec["packets"], rec["bytes"]) == (conn.packets, conn.bytes)
        assert rec["packets"] == [8, 0]
        d = definition(run, name)
        assert (d["packets"], d["bytes"]) == (8, sum(conn.bytes))


def test_first_matching_definition_wins(tmp_path, capture_dir):
    capture, out = capture_dir / "mixed.pcap", tmp_path / "out.pcap"
    flows = [{"name": "udp", "match": {"proto": "udp"}, "pipeline": ["counter"]},
             {"name": "rest", "pipeline": ["counter"]}]
    run = run_config(tmp_path, one_port(capture, out, flows, CAPTURE_CLOCK))
    check_clean(run)
    assert engine_stats(run)["unmatched"] == 0
    assert definition(run, "udp")["packets"] == 100 and definition(run, "rest")["packets"] == 1306
    assert definition(run, "udp")["flows_created"] == 1 and definition(run, "rest")["flows_created"] == 3
    assert same_multiset(packets(out), packets(capture))


# More than 4 definitions, naming few destination ports: classified by the lists of each port
# (fo_classify.c), two of them listed under every port; the earliest match still wins.
BY_PORT = [("web", {"proto": "tcp", "dport": 8080}, lambda h: h.proto == 6 and h.dport == 8080),
           ("to_46932", {"dport": 46932}, lambda h: h.dport == 46932),
           ("udp", {"proto": "udp"}, lambda h: h.proto == 17),
           ("mdns", {"dport": 5353}, lambda h: h.dport == 5353),
           ("iperf", {"proto": "tcp", "dport": "5200-5210"}, lambda h: h.proto == 6 and 5200 <= h.dport <= 5210),
           ("from_iperf", {"proto": "tcp", "sport": 5201}, lambda h: h.proto == 6 and h.sport == 5201),
           ("ssh", {"dport": 22}, lambda h: h.dport == 22)]


def test_definitions_by_destination_port_keep_the_first_match(tmp_path, capture_dir):
    capture, out = capture_dir / "mixed.pcap", tmp_path / "out.pcap"
    flows = [{"name": name, "match": match, "pipeline": ["counter"]} for name, match, _ in BY_PORT]
    run = run_config(tmp_path, one_port(capture, out, flows, CAPTURE_CLOCK))
    check_clean(run)

    def classify(h):
        return next((i for i, (_, _, matches) in enumerate(BY_PORT) if matches(h)), None)

    frames_in = packets(capture)
    conns, unmatched = connections(frames_in, classify)
    want = {name: sum(sum(c.packets) for k, c in conns.items() if k.definition == i)
            for i, (name, _, _) in enumerate(BY_PORT)}
    assert {name: definition(run, name)["packets"] for name, _, _ in BY_PORT} == want
    assert want["mdns"] == want["ssh"] == 0 and min(want[n] for n in ("web", "to_46932", "udp", "iperf", "from_iperf")) > 0
    assert engine_stats(run)["unmatched"] == len(unmatched) > 0
    assert same_multiset(packets(out), frames_in)


def test_a_first_catch_all_takes_every_packet(tmp_path, capture_dir):
    """The engine skips the trie when the first definition matches everything (a shortcut):
    every packet, IP or not, joins it, and the later definitions get nothing."""
    capture, out = capture_dir / "mixed.pcap", tmp_path / "out.pcap"
    flows = [{"name": "all", "pipeline": ["counter"]},
             {"name": "udp", "match": {"proto": "udp"}, "pipeline": ["counter"]}]
    run = run_config(tmp_path, one_port(capture, out, flows, CAPTURE_CLOCK))
    check_clean(run)
    frames_in = packets(capture)
    conns, unmatched = connections(frames_in)
    assert engine_stats(run)["unmatched"] == 0 and not unmatched
    assert definition(run, "all")["packets"] == len(frames_in) == 1406
    assert definition(run, "all")["flows_created"] == len(conns)
    assert definition(run, "udp")["packets"] == definition(run, "udp")["flows_created"] == 0
    assert same_multiset(packets(out), frames_in)


# --- fragments ---------------------------------------------------------------------------------

def check_fragments(tmp_path, frames, **extra):
    capture, out = write_pcap(tmp_path / "frags.pcap", frames), tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture, out, CATCH_ALL, CAPTURE_CLOCK, **extra))
    check_clean(run)
    later = sum(1 for f in frames if read_header(f).frag == "later")
    stats = engine_stats(run)
    assert (stats["fragments_tracked"], stats["fragments_orphaned"]) == (later, 0)
    frames_out = packets(out)
    assert same_multiset(frames_out, frames)
    check_per_flow_order(frames, frames_out)
    conns, _ = connections(frames)
    records = report(run, "all")["flows"]
    assert sorted(str(report_key(r)) for r in records) == sorted(map(str, conns))
    for rec in records:
        conn = conns[report_key(rec)]
        assert report_opener(rec) == conn.opener
        assert (rec["packets"], rec["bytes"]) == (conn.packets, conn.bytes)
    return run, conns


@pytest.mark.parametrize("burst", [
    pytest.param(32, id="same-burst"),
    pytest.param(1, id="one-packet-bursts")])
def test_later_fragments_join_their_first_fragments_flow(tmp_path, burst):
    frames = fragment_frames()
    later = [read_header(f) for f in frames if read_header(f).frag == "later"]
    assert {h.family for h in later} == {4, 6} and len(later) >= 6
    _, conns = check_fragments(tmp_path, frames, run={"burst": burst})
    assert len(conns) == 2


def test_icmp_ping_fragments_are_tracked(tmp_path, capture_dir):
    """The 3000-byte pings of icmp_ping.pcap are in three fragments each: 12 later fragments."""
    run, _ = check_fragments(tmp_path, packets(capture_dir / "icmp_ping.pcap"))
    assert engine_stats(run)["fragments_tracked"] == 12


def test_later_fragments_follow_their_first_fragment_into_its_definition(tmp_path):
    """Only the first fragment has ports; the others must still land in the definition (and flow)
    its first fragment matched, not in the unmatched traffic."""
    e, r = Ether(src=C_MAC, dst=S_MAC), Ether(src=S_MAC, dst=C_MAC)
    frames = []
    for i in range(3):
        frames += fragment(e / IP(src="10.2.0.1", dst="10.2.0.2", id=100 + i) / UDP(sport=5555, dport=7000) /
                           Raw(bytes([i]) * 2500), 1000)
        frames += fragment(r / IP(src="10.2.0.2", dst="10.2.0.1", id=200 + i) / UDP(sport=7000, dport=5555) /
                           Raw(bytes([i]) * 1500), 1000)
    frames = [bytes(f) for f in frames]
    capture, out = write_pcap(tmp_path / "frags.pcap", frames), tmp_path / "out.pcap"
    flows = [{"name": "to7000", "match": {"proto": "udp", "dport": 7000}, "pipeline": ["counter"]},
             {"name": "from7000", "match": {"proto": "udp", "sport": 7000}, "pipeline": ["counter"]}]
    run = run_config(tmp_path, one_port(capture, out, flows, {"unmatched": "drop"}))
    check_clean(run)
    stats = engine_stats(run)
    assert (stats["unmatched"], stats["fragments_tracked"]) == (0, 3 * 2 + 3 * 1)
    assert same_multiset(packets(out), frames)
    assert definition(run, "to7000")["packets"] == 9 and definition(run, "from7000")["packets"] == 6
    (rec,) = report(run, "to7000")["flows"]
    assert rec["packets"] == [9, 0]
    assert rec["bytes"] == [sum(len(f) for f in frames if f[26:30] == bytes([10, 2, 0, 1])), 0]


def test_ipv6_later_fragments_join_past_destination_options(tmp_path):
    e = Ether(src=C_MAC, dst=S_MAC)
    frames = [bytes(f) for f in fragment6(
        e / IPv6(src="fd02::1", dst="fd02::2") / IPv6ExtHdrFragment(id=77) / IPv6ExtHdrDestOpt() /
        UDP(sport=5000, dport=6000) / Raw(b"D" * 2500), 1000)]
    assert len(frames) == 3 and read_header(frames[0]).proto == 17
    _, conns = check_fragments(tmp_path, frames, run={"burst": 1})
    (conn,) = conns.values()
    assert conn.packets == [3, 0]


# --- two ports, and what a definition can match ---------------------------------------------

def split_udp_echo(tmp_path, capture_dir):
    """udp_echo.pcap's client datagrams (a.pcap) and server datagrams (b.pcap)."""
    frames = packets(capture_dir / "udp_echo.pcap")
    client = [f for f in frames if f[26:30] == bytes([10, 77, 0, 1])]
    server = [f for f in frames if f[26:30] == bytes([10, 77, 0, 2])]
    assert len(client) == len(server) == 300
    return client, server, write_pcap(tmp_path / "a.pcap", client), write_pcap(tmp_path / "b.pcap", server)


def two_port_config(cap_a, cap_b, flows):
    return {"ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={cap_a},tx_pcap=out_a.pcap"},
                      {"name": "b", "vdev": f"net_pcap1,rx_pcap={cap_b},tx_pcap=out_b.pcap"}],
            "forward": ["a <-> b"], "engine": CAPTURE_CLOCK, "flows": flows}


def test_both_directions_through_two_ports_are_one_flow(tmp_path, capture_dir):
    """The client's datagrams come in on port a, the server's on port b (a <-> b): the flow key
    has no port, so the exchange is one flow with both directions counted."""
    client, server, cap_a, cap_b = split_udp_echo(tmp_path, capture_dir)
    run = run_config(tmp_path, two_port_config(cap_a, cap_b, CATCH_ALL))
    check_clean(run)
    assert packets(tmp_path / "out_b.pcap") == client
    assert packets(tmp_path / "out_a.pcap") == server
    (rec,) = report(run, "all")["flows"]
    assert sorted(rec["packets"]) == [300, 300]
    assert sorted(rec["bytes"]) == sorted([sum(map(len, client)), sum(map(len, server))])
    assert engine_stats(run)["flows_created"] == 1


@pytest.mark.parametrize("field", ["in_port", "src_mac", "src"])
def test_a_match_field_selects_one_direction(tmp_path, capture_dir, field):
    """Definitions on the in-port, the source MAC or the source address each take one direction
    of the exchange: two definitions, one flow each, each with one direction's packets."""
    client, server, cap_a, cap_b = split_udp_echo(tmp_path, capture_dir)
    values = {"in_port": ("a", "b"), "src_mac": ("9e:d0:2c:3d:5b:f3", "6a:8c:5f:1b:1d:b7"),
              "src": ("10.77.0.1/32", "10.77.0.2")}[field]
    assert {f[6:12].hex() for f in client} == {"9ed02c3d5bf3"}    # the client's MAC, as used above
    flows = [{"name": "client", "match": {field: values[0]}, "pipeline": ["counter"]},
             {"name": "server", "match": {field: values[1]}, "pipeline": ["counter"]}]
    run = run_config(tmp_path, two_port_config(cap_a, cap_b, flows))
    check_clean(run)
    assert engine_stats(run)["unmatched"] == 0 and engine_stats(run)["flows_created"] == 2
    for name, sent in (("client", client), ("server", server)):
        assert definition(run, name)["packets"] == len(sent)
        (rec,) = report(run, name)["flows"]
        assert (rec["packets"], rec["bytes"]) == ([len(sent), 0], [sum(map(len, sent)), 0])
