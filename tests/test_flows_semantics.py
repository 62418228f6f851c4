"""The paper's mechanisms, each seen through the built-in processors: stages of read-only
processors share a window, a writer stands alone and the next stage sees its changes, hold and
release keep per-flow order, packets with nothing at a processor's level skip it, drop, inject,
redirect, and checksum repair after a change. Expectations come from tests/flowcheck.py (scapy),
never from FlowOS."""
import struct

import pytest

from conftest import packets
from flowcheck import (check_clean, check_per_flow_order, checksums_ok, connections, engine_stats, ip_offset,
                       one_port, report, report_key, run_config, same_multiset, with_ttl, write_pcap)

CAPTURE_CLOCK = {"clock": "capture"}


def catch_all(*stages, **definition_keys):
    return [{"name": "all", "pipeline": list(stages), **definition_keys}]


def run_one_port(tmp_path, capture, flows, engine=CAPTURE_CLOCK, **extra):
    out = tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture, out, flows, engine, **extra))
    check_clean(run)
    return run, packets(capture), packets(out)


def two_ports(tmp_path, capture, flows, engine=CAPTURE_CLOCK):
    """Port a replays the capture into out_a.pcap; port b replays nothing into out_b.pcap."""
    empty = write_pcap(tmp_path / "empty.pcap", [])
    cfg = {"ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={capture},tx_pcap=out_a.pcap"},
                     {"name": "b", "vdev": f"net_pcap1,rx_pcap={empty},tx_pcap=out_b.pcap"}],
           "forward": ["a -> a", "b -> b"], "engine": engine, "flows": flows}
    run = run_config(tmp_path, cfg)
    check_clean(run)
    return run, packets(capture), packets(tmp_path / "out_a.pcap"), packets(tmp_path / "out_b.pcap")


def counter_by_key(rep):
    return {report_key(r): (r["packets"], r["bytes"]) for r in rep["flows"]}


def model_counts(frames, classify=lambda h: 0):
    conns, _ = connections(frames, classify)
    return {k: (c.packets, c.bytes) for k, c in conns.items()}


# --- stages -----------------------------------------------------------------------------------

def test_a_definition_without_processors_keeps_the_arrival_order(tmp_path, capture_dir):
    """Nothing to run: each packet leaves as it joins its flow, not after the burst's flows are
    gathered (it used to leave grouped by flow within each burst), so the capture comes out as
    it went in, across flows too."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "mixed.pcap", catch_all())
    assert len(connections(frames_in)[0]) > 1
    assert frames_out == frames_in


def test_readonly_processors_sharing_a_stage_see_the_same_packets(tmp_path, capture_dir):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "mixed.pcap", catch_all(["counter", "counter"]))
    first, second = report(run, "all", 0), report(run, "all", 1)
    assert first == second
    assert counter_by_key(first) == model_counts(frames_in)
    assert same_multiset(frames_out, frames_in)


DENY_UDP = {"acl": {"rules": [{"action": "deny", "proto": "udp"}], "default": "allow"}}


@pytest.mark.parametrize("order", [
    pytest.param("counter-first", id="counter-first"),
    pytest.param("acl-first", id="acl-first")])
def test_readonly_stage_mates_see_what_one_of_them_drops(tmp_path, capture_dir, order):
    """The paper: read-only processors of a stage work side by side on the same window; a drop
    verdict of one takes the packet from later stages, not from its stage-mates."""
    stage = ["counter", DENY_UDP] if order == "counter-first" else [DENY_UDP, "counter"]
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "mixed.pcap", catch_all(stage))
    counter = report(run, "all", stage.index("counter"))
    assert counter_by_key(counter) == model_counts(frames_in)
    udp = lambda f: f[23] == 17   # noqa: E731  (IPv4 protocol byte; mixed.pcap is all IPv4)
    assert same_multiset(frames_out, [f for f in frames_in if not udp(f)])


def test_next_stage_sees_only_what_every_processor_of_the_stage_released(tmp_path, capture_dir):
    """Stage 1's tail is the smallest head of stage 0: with hold(5) beside a counter, the stage-1
    counter sees each flow's packets in fives; the remainder, still held when the flow ends, goes
    out without reaching stage 1 (ending a flow sends what it held)."""
    pipeline = [["counter", {"hold": {"packets": 5}}], "counter"]
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "mixed.pcap", catch_all(*pipeline))
    model = model_counts(frames_in)
    assert counter_by_key(report(run, "all", 0)) == model
    later = {k: sum(p) for k, (p, _) in counter_by_key(report(run, "all", 2)).items()}
    assert later == {k: sum(p) // 5 * 5 for k, (p, _) in model.items()}
    assert same_multiset(frames_out, frames_in)
    check_per_flow_order(frames_in, frames_out)


# --- a writer, and what the next stage sees ------------------------------------------------------

def test_writer_stage_sees_the_previous_writers_changes(tmp_path, capture_dir):
    """ttl set 100, then (next stage) ttl decrement 1: every IP packet leaves with TTL 99."""
    pipeline = [{"ttl": {"set": 100}}, {"ttl": {"decrement": 1}}]
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap", catch_all(*pipeline))
    expected = [with_ttl(f, 99) for f in frames_in]
    assert expected != frames_in
    assert same_multiset(frames_out, expected)
    check_per_flow_order(expected, frames_out)
    ip = sum(1 for f in frames_in if ip_offset(f)[0])
    stats = engine_stats(run)
    assert stats["verdicts"]["modified"] == 2 * ip
    assert stats["checksums_fixed"] == ip


@pytest.mark.parametrize("stage", [[{"ttl": {"decrement": 1}}, "counter"], ["counter", "ttl"]],
                         ids=["writer-first", "writer-second"])
def test_a_writer_cannot_share_a_stage(tmp_path, capture_dir, stage):
    out = tmp_path / "out.pcap"
    cfg = one_port(capture_dir / "udp_echo.pcap", out, [{"name": "all", "pipeline": ["counter", stage]}])
    run = run_config(tmp_path, cfg, name="writer.yaml")
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "writer.yaml" in lines[0] and "flows[0].pipeline[1]" in lines[0]
    assert "ttl" in lines[0] and "stands alone" in lines[0]
    assert not out.exists() and run.stats is None


# --- hold and release -------------------------------------------------------------------------

@pytest.mark.parametrize("capture", ["mixed.pcap", "http_get.pcap"])
def test_hold_then_release_keeps_per_flow_order(tmp_path, capture_dir, capture):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / capture,
                                              catch_all("counter", {"hold": {"packets": 5}}))
    assert same_multiset(frames_out, frames_in)
    check_per_flow_order(frames_in, frames_out)
    stats = engine_stats(run)
    assert stats["verdicts"]["hold"] > 0
    assert stats["hold_overflows"] == 0 and stats["dropped"] == 0
    assert stats["tx_packets"] == len(frames_in)
    assert counter_by_key(report(run, "all")) == model_counts(frames_in)


def test_hold_overflow_drops_what_the_flow_held(tmp_path, capture_dir):
    """hold(50) in a flow that may hold 10: each time the flow goes over, what it holds is dropped
    (fail closed); nothing of it leaves, and the counts add up."""
    flows = catch_all({"hold": {"packets": 50}}, limits={"hold_packets": 10})
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "udp_echo.pcap", flows)
    stats = engine_stats(run)
    assert stats["hold_overflows"] > 0
    assert stats["dropped"] == stats["hold_overflow_packets"] == len(frames_in) - len(frames_out)
    assert len(frames_out) < len(frames_in)
    # What did leave is a part of the input, in order.
    it = iter(frames_in)
    assert all(any(f == g for g in it) for f in frames_out)


def test_hold_overflow_release_sends_what_the_flow_held(tmp_path, capture_dir):
    """The same overflow with hold_overflow: release: what the flow held goes out unprocessed, in
    order, and nothing is lost."""
    flows = catch_all({"hold": {"packets": 50}}, limits={"hold_packets": 10, "hold_overflow": "release"})
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "udp_echo.pcap", flows)
    stats = engine_stats(run)
    assert stats["hold_overflows"] > 0 and stats["hold_overflow_packets"] > 0
    assert stats["dropped"] == 0
    assert frames_out == frames_in     # one flow: its order is the capture's


# --- levels -----------------------------------------------------------------------------------

def test_l3_writer_never_touches_frames_without_l3(tmp_path, capture_dir):
    """ttl works at l3: the ARP frames of http_get.pcap go through unchanged, the IP ones are
    rewritten and only they get their checksums fixed."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "http_get.pcap",
                                              catch_all({"ttl": {"set": 7}}))
    arp = [f for f in frames_in if f[12:14] == b"\x08\x06"]
    assert len(arp) == 2
    assert [f for f in frames_out if f[12:14] == b"\x08\x06"] == arp
    expected = [with_ttl(f, 7) for f in frames_in]
    assert same_multiset(frames_out, expected)
    ip = len(frames_in) - len(arp)
    assert engine_stats(run)["checksums_fixed"] == ip == engine_stats(run)["verdicts"]["modified"]


# --- checksum repair --------------------------------------------------------------------------

@pytest.mark.parametrize("capture", ["http_get.pcap", "http_ipv6.pcap", "icmp_ping.pcap", "udp_echo.pcap"])
def test_checksums_are_repaired_after_a_change(tmp_path, capture_dir, capture):
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / capture, catch_all("ttl"))
    expected = [with_ttl(f, decrement=1) for f in frames_in]
    assert same_multiset(frames_out, expected)
    bad = [i for i, f in enumerate(frames_out) if not checksums_ok(f)]
    assert not bad, f"{len(bad)} frames leave with a wrong checksum"
    changed = sum(1 for f in frames_in if ip_offset(f)[0])
    assert engine_stats(run)["checksums_fixed"] == changed > 0


def test_a_modified_packet_gets_every_checksum_recomputed(tmp_path):
    """The engine repairs a modified packet's checksums by recomputing them, not by patching the
    old ones: a TCP segment and a UDP datagram with a wrong transport checksum leave with a right
    one after ttl; a UDP datagram without a checksum (0, IPv4) stays without."""
    from scapy.all import IP, TCP, UDP, Ether, Raw
    head = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.3.0.1", dst="10.3.0.2", ttl=9)
    frames = [bytes(head / TCP(sport=1, dport=2, chksum=0x1234) / Raw(b"x" * 7)),
              bytes(head / UDP(sport=3, dport=4, chksum=0x4321) / Raw(b"y" * 9)),
              bytes(head / UDP(sport=5, dport=6, chksum=0) / Raw(b"z" * 5))]
    capture = write_pcap(tmp_path / "in.pcap", frames)
    run, _, frames_out = run_one_port(tmp_path, capture, catch_all("ttl"))
    by_port = {f[34:36]: f for f in frames_out}
    assert checksums_ok(by_port[b"\0\x01"]) and checksums_ok(by_port[b"\0\x03"])
    assert by_port[b"\0\x05"] == with_ttl(frames[2], 8)
    assert all(f[22] == 8 for f in frames_out)


# --- drop, inject, redirect ---------------------------------------------------------------------

def test_drop_one_connection(tmp_path, capture_dir):
    """acl decides on a flow's first packet: denying dport 8080 drops the whole HTTP connection,
    replies included; the other connections are intact and in order."""
    acl = {"acl": {"rules": [{"action": "deny", "proto": "tcp", "dport": 8080}], "default": "allow"}}
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "mixed.pcap", catch_all(acl, "counter"))
    conns, _ = connections(frames_in)
    (http,) = [k for k in conns if 8080 in (k.lo[1], k.hi[1])]
    kept = [f for k, c in conns.items() if k != http for f in c.frames]
    assert same_multiset(frames_out, kept)
    check_per_flow_order(kept, frames_out)
    stats = engine_stats(run)
    denied = len(conns[http].frames)
    assert denied == 16
    assert stats["verdicts"]["drop"] == stats["dropped"] == denied
    assert run.stats["ports"][0]["tx_packets"] == len(frames_in) - denied
    assert report(run, "all", 0) == {"allowed_flows": len(conns) - 1, "denied_flows": 1,
                                     "allowed_packets": len(frames_in) - denied, "denied_packets": denied}
    # The counter after acl saw every packet but those of the denied connection.
    model = {k: v for k, v in model_counts(frames_in).items() if k != http}
    counted = counter_by_key(report(run, "all", 1))
    assert counted[http] == ([0, 0], [0, 0])
    del counted[http]
    assert counted == model


def test_inject_mirror_copies_every_packet_to_another_port(tmp_path, capture_dir):
    run, frames_in, out_a, out_b = two_ports(tmp_path, capture_dir / "mixed.pcap",
                                             catch_all({"mirror": {"port": "b"}}))
    assert same_multiset(out_a, frames_in)
    check_per_flow_order(frames_in, out_a)
    assert same_multiset(out_b, frames_in)
    check_per_flow_order(frames_in, out_b)
    stats = engine_stats(run)
    assert stats["injected"] == len(frames_in) and stats["inject_failed"] == 0
    assert stats["tx_packets"] == 2 * len(frames_in)
    assert report(run, "all") == {"copy_failed": 0}
    ports = {p["name"]: p for p in run.stats["ports"]}
    assert (ports["a"]["tx_packets"], ports["b"]["tx_packets"]) == (len(frames_in), len(frames_in))


def test_injected_packets_are_seen_by_later_stages_only(tmp_path, capture_dir):
    """A counter in the mirror's stage sees the originals; a counter in the next stage sees each
    packet twice (the original and its copy)."""
    run, frames_in, out_a, out_b = two_ports(tmp_path, capture_dir / "udp_echo.pcap",
                                             catch_all([{"mirror": {"port": "b"}}, "counter"], "counter"))
    model = model_counts(frames_in)
    assert counter_by_key(report(run, "all", 1)) == model
    doubled = {k: ([2 * p for p in pk], [2 * b for b in by]) for k, (pk, by) in model.items()}
    assert counter_by_key(report(run, "all", 2)) == doubled
    assert same_multiset(out_b, frames_in) and same_multiset(out_a, frames_in)


@pytest.mark.parametrize("direction", ["both", "forward", "reverse"])
def test_redirect_one_flow_to_another_port(tmp_path, capture_dir, direction):
    """UDP flows go out of port b (in the directions asked), everything else out of port a."""
    flows = [{"name": "udp", "match": {"proto": "udp"},
              "pipeline": [{"redirect": {"port": "b", "direction": direction}}]}]
    run, frames_in, out_a, out_b = two_ports(tmp_path, capture_dir / "mixed.pcap", flows)
    conns, _ = connections(frames_in, lambda h: 0 if h.proto == 17 else None)
    (udp,) = conns.values()
    opener = udp.opener[0][:4] + struct.pack("!H", udp.opener[1])

    def goes_to_b(f):
        is_udp = f[23] == 17   # IPv4 protocol byte: mixed.pcap is all IPv4
        forward = f[26:30] + f[34:36] == opener
        return is_udp and (direction == "both" or forward == (direction == "forward"))

    moved = [f for f in frames_in if goes_to_b(f)]
    stay = [f for f in frames_in if not goes_to_b(f)]
    assert len(moved) == {"both": 100, "forward": 50, "reverse": 50}[direction]
    assert out_b == moved
    assert same_multiset(out_a, stay)
    check_per_flow_order(stay, out_a)
    assert engine_stats(run)["verdicts"]["redirect"] == len(moved)
