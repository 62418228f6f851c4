"""What the engine keeps across all flows (held, out of order, kept copies) has one budget sized
from the pool: flows that hold a lot are cut back by their own overflow policy, and every other
flow keeps forwarding. Before the budget, 250 flows held by `hold` took every mbuf and the
traffic after them was lost to rx_nombuf."""
from pathlib import Path

import pytest

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from conftest import packets, port
from flowcheck import check_clean, engine_stats, one_port, run_config, write_pcap

HOLDERS, PER_HOLDER, VICTIMS = 250, 40, 300


def udp(i, n, size=200):
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.1.0.1", dst=f"10.2.{i // 250}.{i % 250 + 1}") / \
        UDP(sport=1000 + n, dport=7000) / (b"x" * size)


def holders_then_victims():
    """HOLDERS UDP flows sending in turns (all of them hold at once), then one TCP-port-80 flow."""
    frames = [udp(i, n) for n in range(PER_HOLDER) for i in range(HOLDERS)]
    victims = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.9.0.1", dst="10.9.0.2") /
               TCP(sport=40000, dport=80, flags="A", seq=1000 + 100 * k) / (b"v" * 100) for k in range(VICTIMS)]
    return frames, victims


def config(tmp_path, capture, engine=None):
    flows = [{"name": "web", "match": {"proto": "tcp", "dport": 80}, "pipeline": ["counter"]},
             {"name": "held", "match": {"proto": "udp"}, "pipeline": [{"hold": {"packets": 100000}}]}]
    return one_port(capture, tmp_path / "out.pcap", flows, {"clock": "capture", **(engine or {})})


def test_flows_that_hold_cannot_starve_the_others(tmp_path):
    frames, victims = holders_then_victims()
    capture = write_pcap(tmp_path / "in.pcap", frames + victims)
    run = run_config(tmp_path, config(tmp_path, capture))
    check_clean(run)
    stats = engine_stats(run)
    out = packets(tmp_path / "out.pcap")
    assert port(run.stats, "a")["rx_nombuf"] == 0
    assert run.stats["totals"]["rx_packets"] == len(frames) + len(victims)
    # Every packet of the flow that holds nothing went through, in order.
    victim_bytes = [bytes(v) for v in victims]
    assert [f for f in out if f in set(victim_bytes)] == victim_bytes
    # The holders were cut back by their overflow policy (drop), counted as the budget's doing.
    budget = stats["budget"]
    assert budget["limit"] > 0 and budget["overflows"] > 0
    assert budget["peak"] <= budget["limit"] + 256   # at most one burst past it before the cut
    assert stats["hold_overflow_packets"] == stats["dropped"] > 0
    assert f"kept: 0 of a budget of {budget['limit']:,} (peak {budget['peak']:,}) | cut back" in run.stdout


# --- TCP stream flows: segments past gaps, and copies of rewritten data -----------------------

def tcp(client, seq, ack, flags="PA", data=b""):
    return (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=client[0], dst="10.8.0.2") /
            TCP(sport=client[1], dport=8080, seq=seq % 2**32, ack=ack % 2**32, flags=flags) / data)


def server(client, seq, ack, flags="SA"):
    return (Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(src="10.8.0.2", dst=client[0]) /
            TCP(sport=8080, dport=client[1], seq=seq, ack=ack % 2**32, flags=flags))


def opened(client, isn=1000):
    return [tcp(client, isn, 0, "S"), server(client, 5000, isn + 1), tcp(client, isn + 1, 5001, "A")]


def udp_victims():
    return [udp(0, n) for n in range(VICTIMS)]


def run_stream_flows(tmp_path, frames, processor):
    """The TCP frames through one stream definition, then VICTIMS UDP packets (no definition)."""
    victims = [bytes(v) for v in udp_victims()]
    capture = write_pcap(tmp_path / "in.pcap", frames + victims)
    flows = [{"name": "tcp", "match": {"proto": "tcp"}, "pipeline": [processor]}]
    run = run_config(tmp_path, one_port(capture, tmp_path / "out.pcap", flows, {"clock": "capture"}))
    check_clean(run)
    out = packets(tmp_path / "out.pcap")
    assert port(run.stats, "a")["rx_nombuf"] == 0
    assert [f for f in out if f in set(victims)] == victims
    budget = engine_stats(run)["budget"]
    assert budget["overflows"] > 0
    return run, budget


def test_segments_past_gaps_of_many_connections_cannot_starve_the_others(tmp_path, monkeypatch):
    """130 connections, each with its first data segment missing and 64 after it (each within
    its own reorder limit of 64): together more than the pool."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    frames = []
    for c in range(130):
        client = (f"10.7.{c // 200}.{c % 200 + 1}", 30000 + c)
        frames += opened(client)
        frames += [tcp(client, 1001 + 100 * k, 5001, data=b"d" * 100) for k in range(1, 65)]
    run, budget = run_stream_flows(tmp_path, frames, {"pyprocs.streams:Rewriter": {"old": "SECRET", "new": "x"}})
    assert engine_stats(run)["streams"]["reorder_overflow"] > 0


def test_a_rewritten_connection_never_acknowledged_cannot_starve_the_others(tmp_path, monkeypatch):
    """One connection whose every segment is rewritten (so a copy of each is kept until the
    receiver acknowledges it) and whose receiver never acknowledges anything."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    client = ("10.7.0.1", 30000)
    frames = opened(client) + [tcp(client, 1001 + 100 * k, 5001, data=b"SECRET" + b"d" * 94) for k in range(9000)]
    run, budget = run_stream_flows(tmp_path, frames, {"pyprocs.streams:Rewriter": {"old": "SECRET", "new": "S",
                                                                                 "dir": 0}})
    stats = engine_stats(run)
    assert budget["segments_dropped"] > 0 or stats["streams"]["copies_evicted"] > 0
    assert budget["peak"] <= budget["limit"] + 256


# --- its size ----------------------------------------------------------------------------------

def test_the_default_budget_leaves_forwarding_its_mbufs(tmp_path):
    capture = write_pcap(tmp_path / "in.pcap", [udp(0, 0)])
    run = run_config(tmp_path, config(tmp_path, capture))
    check_clean(run)
    pool = run.stats["mbufs"]["pool_size"]
    # One port of 1024 + 1024 descriptors, two caches of 256, two bursts of 32, 64 TX buffers,
    # an eighth of the pool for what processors make.
    assert engine_stats(run)["budget"]["limit"] == pool - (2048 + 512 + 64 + 64) - pool // 8


@pytest.mark.parametrize("value, problem", [
    (10**6, "1000000 packets is more than the pool of 8191 mbufs can spare for the engine"),
    (0, "expected auto or a number of packets >= 1"),
    ("lots", "expected auto or a number of packets >= 1"),
])
def test_a_budget_the_pool_cannot_spare_is_refused(tmp_path, value, problem):
    capture = write_pcap(tmp_path / "in.pcap", [udp(0, 0)])
    run = run_config(tmp_path, config(tmp_path, capture, {"keep_budget": value}))
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and f"engine.keep_budget: {problem}" in run.stderr


def test_a_configured_budget_is_the_one_used(tmp_path):
    frames, victims = holders_then_victims()
    capture = write_pcap(tmp_path / "in.pcap", frames[:2000] + victims)
    run = run_config(tmp_path, config(tmp_path, capture, {"keep_budget": 500}))
    check_clean(run)
    budget = engine_stats(run)["budget"]
    assert budget["limit"] == 500 and budget["overflows"] > 0 and budget["peak"] <= 500 + 32


def test_the_budget_counts_the_mbufs_of_the_longest_frame(tmp_path):
    """A capture with 9000-byte frames (five mbufs of 2,048 bytes each): a fifth of the budget."""
    jumbo = udp(0, 0, size=9000 - 42)
    capture = write_pcap(tmp_path / "in.pcap", [jumbo])
    run = run_config(tmp_path, config(tmp_path, capture))
    check_clean(run)
    pool = run.stats["mbufs"]["pool_size"]
    assert engine_stats(run)["budget"]["limit"] == (pool - (2048 + 512 + 64 + 64) - pool // 8) // 5
