"""Golden tests: every capture through the one-port and the two-port bridge comes out
byte-identical and in order, and the statistics agree with an independent count (scapy)."""
import pytest

from conftest import CAPTURES, packets, port, run_flowos

IDS = [c.stem for c in CAPTURES]


def check_source_stats(stats, name, expected):
    p = port(stats, name)
    assert p["rx_packets"] == len(expected)
    assert p["rx_bytes"] == sum(map(len, expected))
    assert p["dropped"] == 0


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_one_port_bridge_copies_the_capture(tmp_path, capture):
    out = tmp_path / "out.pcap"
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={out}", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    expected = packets(capture)
    assert packets(out) == expected
    stats = run.stats
    check_source_stats(stats, "net_pcap0", expected)
    assert port(stats, "net_pcap0")["tx_packets"] == len(expected)
    assert port(stats, "net_pcap0")["tx_bytes"] == sum(map(len, expected))
    assert stats["stop_reason"] == "input-done"
    assert stats["mbufs"]["in_use_at_exit"] == 0
    assert stats["sources"][0]["received"] == stats["sources"][0]["packets"] == len(expected)


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_two_port_bridge_swaps_the_captures(tmp_path, capture):
    other = CAPTURES[(CAPTURES.index(capture) + 1) % len(CAPTURES)]
    out0, out1 = tmp_path / "out0.pcap", tmp_path / "out1.pcap"
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={out0}",
                     "--vdev", f"net_pcap1,rx_pcap={other},tx_pcap={out1}", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    into0, into1 = packets(capture), packets(other)
    assert packets(out1) == into0  # what port 0 received leaves through port 1
    assert packets(out0) == into1
    check_source_stats(run.stats, "net_pcap0", into0)
    check_source_stats(run.stats, "net_pcap1", into1)
    assert run.stats["totals"]["tx_packets"] == len(into0) + len(into1)
    assert run.stats["totals"]["tx_bytes"] == sum(map(len, into0 + into1))
    assert run.stats["mbufs"]["in_use_at_exit"] == 0


def test_packet_limit_stops_after_exactly_n(tmp_path, capture_dir):
    capture, out = capture_dir / "http_get.pcap", tmp_path / "out.pcap"
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={out}", "--packets", "100", "--burst", "32",
                     tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert packets(out) == packets(capture)[:100]
    assert run.stats["stop_reason"] == "packet-limit"


def test_config_file_with_named_ports(tmp_path, capture_dir):
    (tmp_path / "bridge.yaml").write_text(f"""
ports:
  - {{name: inside, vdev: "net_pcap0,rx_pcap={capture_dir}/udp_echo.pcap,tx_pcap=inside-out.pcap"}}
  - {{name: outside, vdev: "net_pcap1,rx_pcap={capture_dir}/icmp_ping.pcap,tx_pcap=outside-out.pcap"}}
forward: ["inside <-> outside"]
pool: {{mbufs: 4095}}
""")
    run = run_flowos("-c", str(tmp_path / "bridge.yaml"), tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert packets(tmp_path / "outside-out.pcap") == packets(capture_dir / "udp_echo.pcap")
    assert packets(tmp_path / "inside-out.pcap") == packets(capture_dir / "icmp_ping.pcap")
    assert [p["name"] for p in run.stats["ports"]] == ["inside", "outside"]
    assert run.stats["mbufs"] == {"pool_size": 4095, "in_use_at_exit": 0, "left_in_port_queues": 0}


def test_bare_pcap_vdev_replays_the_bundled_sample(tmp_path):
    run = run_flowos("--vdev", "net_pcap0", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "replaying the bundled sample" in run.stdout
    from flowos.configuration.devices import SAMPLE_CAPTURE
    assert packets(tmp_path / "flowos-out.pcap") == packets(SAMPLE_CAPTURE)
