"""SIGINT/SIGTERM end a run cleanly: quickly, with the summary, and with a complete capture out."""
import os
import signal
import subprocess
import time

import pytest

from conftest import kill_flowos, packets, start_flowos

CAPTURE_READERS = ["tcpdump", "-r"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_within_a_second(tmp_path, capture_dir, signum):
    out, stats = tmp_path / "out.pcap", tmp_path / "stats.json"
    proc = start_flowos("--vdev", f"net_pcap0,rx_pcap={capture_dir}/udp_echo.pcap,infinite_rx=1,tx_pcap={out}",
                        "--stats-json", str(stats), tmp_path=tmp_path)
    try:
        first_line = proc.stdout.readline()  # printed once the worker runs
        assert first_line.startswith("flowos: memory"), first_line + proc.stderr.read()
        time.sleep(1.0)
        proc.send_signal(signum)
        sent = time.monotonic()
        stdout, stderr = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        kill_flowos(proc)
    assert proc.returncode == 0, stderr
    assert took < 1.0
    assert "FlowOS summary" in stdout and f"stopped by signal ({signum.name})" in stdout

    import json
    report = json.loads(stats.read_text())
    written = packets(out)  # scapy reads it to the end: the file is complete
    assert len(written) == report["ports"][0]["tx_packets"] > 0
    assert report["mbufs"]["in_use_at_exit"] == 0
    listed = subprocess.run(CAPTURE_READERS + [str(out)], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == len(written)


def test_an_existing_output_capture_is_replaced_not_truncated(tmp_path, capture_dir):
    """net_pcap truncates an existing tx_pcap; ext4 then writes the whole rewritten file back when
    the port closes, which held a SIGTERM's exit for 0.3-1 s. FlowOS removes the old file first
    (a plain file with one link): a new file, with the run's packets."""
    out, linked = tmp_path / "out.pcap", tmp_path / "linked.pcap"
    out.write_bytes((capture_dir / "udp_echo.pcap").read_bytes())
    linked.write_bytes(out.read_bytes())
    os.link(linked, tmp_path / "second-name.pcap")      # not ours to remove: truncated in place
    # Held open, the old file keeps its inode: a new file cannot be given the same number.
    old = open(out, "rb")
    before, linked_before = os.fstat(old.fileno()), linked.stat().st_ino
    proc = start_flowos("--vdev", f"net_pcap0,rx_pcap={capture_dir}/udp_echo.pcap,tx_pcap={out}",
                        "--vdev", f"net_pcap1,rx_pcap={capture_dir}/udp_echo.pcap,tx_pcap={linked}",
                        "--forward", "net_pcap0 -> net_pcap0", "--forward", "net_pcap1 -> net_pcap1",
                        tmp_path=tmp_path)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    with old:
        assert out.stat().st_ino != before.st_ino and os.fstat(old.fileno()).st_size == before.st_size
    assert packets(out) == packets(capture_dir / "udp_echo.pcap")
    assert linked.stat().st_ino == linked_before and packets(linked) == packets(capture_dir / "udp_echo.pcap")
