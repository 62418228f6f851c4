"""Ports other than captures: net_af_packet on a veth pair inside a network namespace of the
test's own, so the packets cross the Linux kernel and back."""
import os
import shutil
import subprocess

import pytest

from conftest import FLOWOS_RUN, packets, port, unique_prefix


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def veth_namespace():
    """A namespace holding a veth pair vA <-> vB, with IPv6 off so the kernel adds no packets."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    ns = f"fo{unique_prefix()}"
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "add", "vA", "type", "veth", "peer", "name", "vB")
        for iface in ("vA", "vB"):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1"],
                           check=True, timeout=30)
            ip("-n", ns, "link", "set", iface, "up")
        yield ns
    finally:
        ip("netns", "del", ns)


def test_af_packet_ports_through_a_veth_pair(tmp_path, capture_dir, veth_namespace):
    capture, out, stats = capture_dir / "mixed.pcap", tmp_path / "out.pcap", tmp_path / "stats.json"
    done = subprocess.run(
        ["ip", "netns", "exec", veth_namespace, FLOWOS_RUN, "--no-dashboard", "--memory", "no-huge",
         "--file-prefix", unique_prefix(), "--stats-json", str(stats), "--duration", "2",
         "--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={out}",
         "--vdev", "net_af_packet0,iface=vA", "--vdev", "net_af_packet1,iface=vB",
         "--forward", "net_pcap0 -> net_af_packet0", "--forward", "net_af_packet1 -> net_pcap0"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert packets(out) == packets(capture)  # out of vA, into vB, back into the capture
    import json
    report = json.loads(stats.read_text())
    assert port(report, "net_af_packet1")["rx_packets"] == port(report, "net_af_packet0")["tx_packets"]
    assert report["mbufs"]["in_use_at_exit"] == 0
