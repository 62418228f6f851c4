"""Large frames and the captures' link types: nothing is cut short, relabelled or misread in silence.

Frames longer than one mbuf arrive as chains. 9000-byte jumbo frames and frames of up to 64 KiB
(what a host with receive offloads captures) must leave byte-identical, through the bridge and
through the engine, with a C counter and with a Python processor reading them; what a port cannot
carry is refused before the run or counted (docs/ports.md). Frames are crafted with scapy and
written in captures whose snaplen keeps every byte.
"""
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest
from scapy.all import IP, TCP, UDP, Ether, Raw

from conftest import FLOWOS_RUN, packets, port, run_flowos, unique_prefix
from flowcheck import check_clean, engine_stats, one_port, report, run_config
from test_ports import veth_namespace  # noqa: F401 (a fixture)

TESTS = Path(__file__).parent
BAD_INPUT = 2
SNAPLEN = 262144          # libpcap's largest: a record is never cut on writing or reading
NET_PCAP_MAX_FRAME = 65535  # what net_pcap (DPDK 22.11) reads into one packet
DECODE_MAX_FRAME = 65534    # what the engine decodes (its offsets are 16 bits, 0xffff: no level)


def frame(size, i=0, tcp=False):
    """An Ethernet/IPv4 frame of exactly `size` bytes, its payload a pattern unique to frame i."""
    head = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.9.0.1", dst="10.9.0.2")
    head = head / (TCP(sport=40000, dport=80, seq=1000 + i * size, flags="A") if tcp else UDP(sport=5000 + i, dport=53))
    body = bytes((i * 7 + k) & 0xFF for k in range(size - len(head)))
    return bytes(head / Raw(body))


def write_capture(path, frames, linktype=1):
    """A pcap file, written by hand: scapy's PcapWriter takes link type 0 (BSD loopback) for unset."""
    records = b"".join(struct.pack("<IIII", 1_700_000_000, i, len(f), len(f)) + f for i, f in enumerate(frames))
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype) + records)
    return path


def large_frames():
    """Jumbo, just past net_pcap's bounce buffer (16,128 bytes), and offload-sized frames, with
    small ones between them, over UDP and TCP."""
    sizes = [9000, 60, 16129, 32000, 1514, DECODE_MAX_FRAME, 9018, NET_PCAP_MAX_FRAME]
    return [frame(s, i, tcp=i % 2 == 1) for i, s in enumerate(sizes)]


@pytest.fixture(autouse=True)
def pyprocs_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


def test_large_frames_cross_the_bridge_intact(tmp_path):
    frames = large_frames()
    capture = write_capture(tmp_path / "large.pcap", frames)
    out = tmp_path / "out.pcap"
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={out}", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert packets(out) == frames
    p = port(run.stats, "net_pcap0")
    assert p["tx_bytes"] == p["rx_bytes"] == sum(map(len, frames))
    assert p["tx_linearised"] == sum(len(f) > 16128 for f in frames) and p["tx_oversize"] == 0
    assert run.stats["mbufs"]["in_use_at_exit"] == 0


@pytest.mark.parametrize("pipeline", [["counter"], ["pyprocs.observe:Recorder"]], ids=["counter", "python"])
def test_large_frames_cross_the_engine_intact(tmp_path, pipeline):
    """Through a flow pipeline: the frames leave as they came; the counter counts every byte and
    the Python processor sees every packet's whole bytes and its fields."""
    frames = large_frames()
    capture = write_capture(tmp_path / "large.pcap", frames)
    out = tmp_path / "out.pcap"
    rec = tmp_path / "rec.json"
    if pipeline[0].startswith("pyprocs"):
        pipeline = [{pipeline[0]: {"out": str(rec)}}]
    run = run_config(tmp_path, one_port(capture, out, [{"name": "all", "pipeline": pipeline}]))
    check_clean(run)
    assert sorted(packets(out)) == sorted(frames)   # the engine keeps each flow's order, not the capture's
    # One byte past what the decoder takes: counted as malformed, and passed on (engine.malformed).
    decoded = [f for f in frames if len(f) <= DECODE_MAX_FRAME]
    malformed = engine_stats(run)["malformed"]
    assert malformed.pop("bad_l3") == len(frames) - len(decoded) == 1
    assert set(malformed.values()) == {0}
    if pipeline == ["counter"]:
        counted = report(run, "all")
        assert sum(sum(f["bytes"]) for f in counted["flows"]) == sum(map(len, decoded))
    else:
        seen = [p for call in json.loads(rec.read_text())["calls"] for p in call["packets"]]
        assert sorted(bytes.fromhex(p["raw"]) for p in seen) == sorted(decoded)
        for p in seen:
            raw = bytes.fromhex(p["raw"])
            assert p["length"] == len(raw)
            assert p["proto"] == raw[23] and p["dport"] == int.from_bytes(raw[36:38], "big")


def test_a_python_processor_reads_long_frames_whole(tmp_path):
    """batch.packet(i): len(), indexing (from either end), slicing, find() and tobytes() cover the
    whole frame, an index past its end raises; the buffer protocol is the first segment's view."""
    frames = large_frames()[:-1]
    capture = write_capture(tmp_path / "large.pcap", frames)
    rec = tmp_path / "rec.json"
    run = run_config(tmp_path, one_port(capture, tmp_path / "out.pcap",
                                        [{"name": "all", "pipeline": [{"pyprocs.frames:WholeFrames": {"out": str(rec)}}]}]))
    check_clean(run)
    seen = sorted(json.loads(rec.read_text())["seen"], key=lambda s: s["len"])
    assert len(seen) == len(frames)
    for s, f in zip(seen, sorted(frames, key=len)):
        n = len(f)
        assert (s["len"], s["bytes"], s["last"], s["middle"], s["slice"], s["whole"]) == \
               (n, n, f[-1], f[n // 2], f[n - 4:].hex(), f[-16:].hex())
        assert s["find"] == f.find(f[-16:]) and s["past_end"]
        assert s["view"] == min(n, 2048)


def test_jumbo_frames_cross_af_packet_ports_intact(tmp_path, veth_namespace):
    """A veth pair with a 9000-byte MTU: captured jumbo frames go out of one end through
    net_af_packet and come back in through the other whole (its ring frames and the pool's data
    room are chosen for the MTU; with 2,048-byte ring frames the kernel cut them)."""
    for iface in ("vA", "vB"):
        subprocess.run(["ip", "-n", veth_namespace, "link", "set", iface, "mtu", "9000"], check=True, timeout=30)
    frames = [frame(9014), frame(60, 1), frame(5000, 2, tcp=True), frame(1514, 3), frame(9014, 4, tcp=True)]
    capture, out, stats = write_capture(tmp_path / "jumbo.pcap", frames), tmp_path / "out.pcap", tmp_path / "stats.json"
    done = subprocess.run(
        ["ip", "netns", "exec", veth_namespace, FLOWOS_RUN, "--no-dashboard", "--memory", "no-huge",
         "--file-prefix", unique_prefix(), "--stats-json", str(stats), "--duration", "2",
         "--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={out}",
         "--vdev", "net_af_packet0,iface=vA", "--vdev", "net_af_packet1,iface=vB",
         "--forward", "net_pcap0 -> net_af_packet0", "--forward", "net_af_packet1 -> net_pcap0"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "MTU 9000: ring frames of 12288 bytes" in done.stdout
    assert packets(out) == frames
    report = json.loads(stats.read_text())
    assert report["mbufs"]["in_use_at_exit"] == 0


@pytest.mark.parametrize("args, mtu, cut_at", [(",framesz=4096", 9000, 4016), ("", 20000, 1968)],
                         ids=["framesz-given", "mtu-past-jumbo"])
def test_af_packet_ring_frames_shorter_than_the_mtu_are_said(tmp_path, veth_namespace, args, mtu, cut_at):
    """Where the ring frames cannot hold the MTU's frames (a framesz given, or an MTU past the
    jumbo sizes FlowOS picks for), the kernel will cut longer frames and no counter can see it:
    the start-up line says so, with the MTU that would fit."""
    subprocess.run(["ip", "-n", veth_namespace, "link", "set", "vA", "mtu", str(mtu)], check=True, timeout=30)
    done = subprocess.run(
        ["ip", "netns", "exec", veth_namespace, FLOWOS_RUN, "--no-dashboard", "--memory", "no-huge",
         "--file-prefix", unique_prefix(), "--duration", "0.5", "--vdev", f"net_af_packet0,iface=vA{args}"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert f"frames longer than {cut_at} bytes (vA has MTU {mtu}) will be cut short by the kernel" in said
    assert f"lower the MTU to {cut_at - 18}" in said


def test_net_pcap_live_capture_of_an_mtu_past_its_snaplen_is_said(tmp_path, veth_namespace):
    """net_pcap captures a live interface at most 16,128 bytes a frame, and no counter sees a
    frame cut: an interface whose MTU allows longer ones is named at start-up."""
    subprocess.run(["ip", "-n", veth_namespace, "link", "set", "vA", "mtu", "20000"], check=True, timeout=30)
    done = subprocess.run(
        ["ip", "netns", "exec", veth_namespace, FLOWOS_RUN, "--no-dashboard", "--memory", "no-huge",
         "--file-prefix", unique_prefix(), "--duration", "0.5", "--vdev", "net_pcap0,iface=vA"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ("frames longer than 16128 bytes (vA has MTU 20000) will be received cut short by net_pcap"
            in " ".join(done.stdout.split()))


def test_infinite_rx_of_jumbo_frames_gets_mbufs_that_hold_them(tmp_path):
    """net_pcap's infinite_rx keeps each packet in one mbuf (it refuses chains): the pool's data
    room is chosen to hold the capture's longest frame, or a data_room given too small is refused."""
    frames = [frame(9000), frame(60, 1)]
    capture, out = write_capture(tmp_path / "jumbo.pcap", frames), tmp_path / "out.pcap"
    vdev = f"net_pcap0,rx_pcap={capture},tx_pcap={out},infinite_rx=1"
    run = run_flowos("--vdev", vdev, "--duration", "0.5", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "infinite_rx keeps each packet in one mbuf: mbufs of 9000 bytes" in run.stdout
    written = packets(out)
    assert len(written) > len(frames) and set(written) == set(frames)

    config = tmp_path / "small.yaml"
    config.write_text(f"pool: {{data_room: 2176}}\nports: [{{name: a, vdev: '{vdev}'}}]\n")
    run = run_flowos("-c", str(config), tmp_path=tmp_path, stats=False)
    assert run.returncode == BAD_INPUT, run.stderr
    assert "pool.data_room: 2176 bytes is too little for net_pcap0" in run.stderr and "9128 or more" in run.stderr


def test_packets_captured_cut_short_are_counted_and_said(tmp_path):
    """A capture taken with a small snaplen holds packets shorter than they were on the wire:
    they are replayed as captured, and net_pcap writes each record's length as its captured
    length, so the run says how many there were (sources[].truncated, and the summary)."""
    whole = [frame(60), frame(1514, 1)]
    cut = frame(1514, 2)[:100]
    capture = tmp_path / "cut.pcap"
    records = b"".join(struct.pack("<IIII", 1_700_000_000, i, len(f), wire) + f
                       for i, (f, wire) in enumerate([(whole[0], 60), (cut, 1514), (whole[1], 1514)]))
    capture.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1) + records)
    out = tmp_path / "out.pcap"
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={out}", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert packets(out) == [whole[0], cut, whole[1]]
    assert run.stats["sources"][0]["truncated"] == 1
    assert "1 of them were captured shorter than they were on the wire" in " ".join(run.stdout.split())


def test_frame_longer_than_net_pcap_reads_is_refused(tmp_path):
    """net_pcap reads a frame's length into 16 bits: a longer one would become a broken chain."""
    capture = write_capture(tmp_path / "huge.pcap", [frame(1514), frame(NET_PCAP_MAX_FRAME + 14, 1)])
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={tmp_path / 'out.pcap'}",
                     tmp_path=tmp_path, stats=False)
    assert run.returncode == BAD_INPUT, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "65549 bytes" in lines[0] and "65535" in lines[0], run.stderr


# Link types FlowOS does not decode, each with one frame of its own kind (a UDP datagram inside).
NOT_ETHERNET = {
    "NULL": (0, b"\x02\x00\x00\x00"),                       # BSD loopback: AF_INET, host order
    "RAW": (101, b""),                                      # raw IP, no link header
    "LINUX_SLL": (113, bytes.fromhex("0000 0001 0006 020000000001 0000 0800")),
    "LINUX_SLL2": (276, bytes.fromhex("0800 0000 00000002 0001 00 06 020000000001 0000")),
    "PPP": (9, b"\xff\x03\x00\x21"),
    "C_HDLC": (104, b"\x0f\x00\x08\x00"),
}


@pytest.mark.parametrize("name", NOT_ETHERNET)
def test_capture_that_is_not_ethernet_is_refused(tmp_path, name):
    linktype, link_header = NOT_ETHERNET[name]
    ip = bytes(IP(src="10.9.0.1", dst="10.9.0.2") / UDP(sport=5000, dport=53) / Raw(b"q" * 20))
    capture = write_capture(tmp_path / f"{name}.pcap", [link_header + ip], linktype=linktype)
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={tmp_path / 'out.pcap'}",
                     tmp_path=tmp_path, stats=False)
    assert run.returncode == BAD_INPUT, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"link type {name}" in lines[0] and "Ethernet" in lines[0], run.stderr
    assert not (tmp_path / "out.pcap").exists()


def test_tx_guard_under_asan(tmp_path):
    """The net_pcap TX guard itself (tests/asan/port_tx_harness.c), where no capture can take it:
    a chain too long to copy and one that finds the copy pool empty come back unsent and are
    counted as tx_oversize; the rest are written whole and in order; no mbuf is left out."""
    import asanbuild
    exe = asanbuild.build(tmp_path, "port_tx_harness", [asanbuild.ROOT / "ext" / "src" / name for name in ("fo_port.c", "fo_steer.c")])
    out = tmp_path / "out.pcap"
    run = asanbuild.run(exe, "--vdev", f"net_pcap0,tx_pcap={out}", "--", str(out), memory_mb=256)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout.split() == ["3", "2", "5"]


def test_summary_names_the_port_that_could_not_send_a_frame_whole():
    from rich.console import Console
    from flowos.apps.dashboard import summary_table
    from flowos.runtime.stats import PortStats, RunReport
    ports = [PortStats("a", "net_pcap0", "net_pcap", tx_unsent=3, tx_oversize=3, tx_linearised=5),
             PortStats("b", "net_pcap1", "net_pcap", tx_linearised=2)]
    report = RunReport("no-huge", "", 64, "p", 1.0, "input-done", ports, 8191, 0)
    console = Console(record=True, width=200)
    console.print(summary_table(report))
    text = console.export_text()
    assert "port a: 3 packets too long for net_pcap to send whole were not sent (tx_oversize" in text
    assert "port b:" not in text
    assert report.to_dict()["ports"][0]["tx_oversize"] == 3 and report.to_dict()["ports"][1]["tx_linearised"] == 2
