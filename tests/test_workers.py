"""Several workers, one box: each flow lives on one worker (its shard), and the results are those
of one worker and of the independent model (tests/flowcheck.py), whatever the worker count.

These run on one single-queue port (net_pcap): one worker receives and hands each flow to its
worker (the spreading mode, docs/architecture.md), so every handover path is exercised; the
multi-queue ports (net_af_packet qpairs, real TCP) are in test_workers_e2e.py. Four workers on
this 2-CPU machine share CPUs, which is slow but changes nothing of the results."""
import pytest

from conftest import CAPTURES, packets
from flowcheck import check_clean, engine_stats, report, run_config, one_port, same_multiset, write_pcap
from test_flows_golden import (CATCH_ALL, IDS, _one_flow_per_connection, check_catch_all, check_fragments,
                               fragment_frames, synthetic_frames)

WORKERS = [2, 4]


def per_worker(run):
    return run.stats["workers"]


def check_spread(run, workers):
    """Every worker's shard processed packets, the receiving one handed the others theirs, and
    the rows add up to the totals."""
    rows = per_worker(run)
    assert [row["worker"] for row in rows] == list(range(workers))
    totals = engine_stats(run)
    assert sum(row["engine"]["packets"] for row in rows) == totals["packets"]
    assert sum(row["engine"]["handed_off"] for row in rows) == totals["handed_off"] > 0
    assert all(row["engine"]["flows_created"] > 0 for row in rows), rows


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_every_capture_counts_alike_on_several_workers(tmp_path, capture, workers):
    run, conns = check_catch_all(tmp_path, capture, workers)
    if len(conns) >= 2 * workers:    # enough connections that every worker owns some (the hash spreads them)
        check_spread(run, workers)


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_both_directions_of_a_connection_are_one_flow_on_several_workers(tmp_path, capture, workers):
    """A connection split across workers would be two flows, each with one direction's packets."""
    _one_flow_per_connection(tmp_path, capture, workers)


@pytest.mark.parametrize("workers", WORKERS)
def test_synthetic_frames_of_every_kind_on_several_workers(tmp_path, workers):
    """VLANs, IPv6 with extension headers, ICMP, GRE, SCTP, non-IP: one flow each, as with one worker."""
    capture = write_pcap(tmp_path / "synthetic.pcap", synthetic_frames())
    _, conns = check_catch_all(tmp_path, capture, workers)
    assert len(conns) == 10
    _one_flow_per_connection(tmp_path, capture, workers)


@pytest.mark.parametrize("workers", WORKERS)
def test_later_fragments_follow_their_first_fragment_to_its_worker(tmp_path, workers):
    """A later fragment has no ports: it goes to the worker its first fragment went to, and joins
    its flow there (none orphaned)."""
    run, conns = check_fragments(tmp_path, fragment_frames(), run={"workers": workers})
    assert len(conns) == 2


def many_connections(n):
    """n UDP and n TCP connections, a few packets each way, between many hosts."""
    from scapy.all import IP, TCP, UDP, Ether, Raw
    e, r = "02:00:00:00:00:01", "02:00:00:00:00:02"
    frames = []
    for i in range(n):
        c, s = f"10.{i // 200}.{i % 200}.1", f"10.9.{i % 7}.2"
        fwd, back = Ether(src=e, dst=r) / IP(src=c, dst=s), Ether(src=r, dst=e) / IP(src=s, dst=c)
        frames += [fwd / UDP(sport=1000 + i, dport=53) / Raw(b"q"), back / UDP(sport=53, dport=1000 + i) / Raw(b"ab")]
        frames += [fwd / TCP(sport=2000 + i, dport=80, flags="S"), back / TCP(sport=80, dport=2000 + i, flags="SA"),
                   fwd / TCP(sport=2000 + i, dport=80, flags="A") / Raw(b"x" * (i % 50))]
    return [bytes(f) for f in frames]


@pytest.mark.parametrize("workers", WORKERS)
def test_many_connections_spread_over_every_worker(tmp_path, workers):
    """400 connections: every worker owns some, the per-worker rows add up to the totals, and the
    counts are the model's."""
    capture = write_pcap(tmp_path / "many.pcap", many_connections(200))
    run, conns = check_catch_all(tmp_path, capture, workers)
    assert len(conns) == 400
    check_spread(run, workers)
    # No worker owns more than twice its share (the symmetric hash spreads these hosts).
    created = [row["engine"]["flows_created"] for row in per_worker(run)]
    assert max(created) < 2 * 400 / workers, created


def test_one_worker_hands_nothing_over(tmp_path):
    capture = write_pcap(tmp_path / "many.pcap", many_connections(20))
    run, _ = check_catch_all(tmp_path, capture, 1)
    assert engine_stats(run)["handed_off"] == 0 and len(per_worker(run)) == 1


@pytest.mark.parametrize("workers", [2])
def test_a_packet_limit_holds_across_workers(tmp_path, workers):
    """--packets counts what all workers received together, exactly."""
    frames = many_connections(100)
    capture, out = write_pcap(tmp_path / "many.pcap", frames), tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture, out, CATCH_ALL, run={"workers": workers, "packets": 333}))
    check_clean(run)
    assert run.stats["totals"]["rx_packets"] == 333 == engine_stats(run)["packets"]
    assert same_multiset(packets(out), frames[:333])
