"""NIC settings from the config (flowos/configuration/port_settings.py): an MTU set on the device, frames longer
than an mbuf received by scattered RX or into a larger data room, refused where the device cannot;
descriptors the device adjusts; link speed in the dashboard."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

from conftest import ip, kill_flowos, packets, port, run_flowos, start_flowos
from flowos.configuration import devices
from flowos.apps.dashboard import link_text
from flowos.configuration.port_settings import descriptor_note
from flowos.runtime.stats import PortStats


def write_config(tmp_path, text):
    path = tmp_path / "flowos.yaml"
    path.write_text(text)
    return str(path)


def in_namespace(ns, *args, tmp_path):
    """run_flowos inside namespace ns (flowos-run re-executed by `ip netns exec`)."""
    return run_flowos("--duration", "0.3", *args, tmp_path=tmp_path, prefix_argv=["ip", "netns", "exec", ns])


def interface_mtu(ns, iface):
    words = ip("-n", ns, "-o", "link", "show", iface).split()
    return int(words[words.index("mtu") + 1])


def test_mtu_of_virtual_devices_is_set_and_read_back(tmp_path):
    """net_null and net_ring keep an MTU in DPDK's port data: rte_eth_dev_get_mtu gives it back.
    net_null has no scattered RX: the pool's data room grows to hold its 9000-byte MTU."""
    config = write_config(tmp_path, """
ports:
  - {name: a, vdev: net_null0, mtu: 9000}
  - {name: b, vdev: net_ring0, mtu: 1280}
""")
    run = run_flowos("-c", config, "--duration", "0.3", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert port(run.stats, "a")["mtu"] == 9000
    assert port(run.stats, "b")["mtu"] == 1280
    assert "a: MTU 9000: net_null has no scattered RX: mbufs of 9018 bytes (pool.data_room 9146)" in run.stdout
    assert port(run.stats, "a")["link_up"] and port(run.stats, "a")["link_speed_mbps"] == 10000


def test_without_an_mtu_the_device_keeps_its_own(tmp_path):
    run = run_flowos("--vdev", "net_null0", "--duration", "0.3", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert port(run.stats, "net_null0")["mtu"] == 1500
    assert "MTU" not in run.stdout


def test_jumbo_mtu_is_refused_where_the_device_cannot_chain_and_the_data_room_is_fixed(tmp_path):
    config = write_config(tmp_path, """
pool: {data_room: 2176}
ports:
  - {name: a, vdev: net_null0, mtu: 9000}
""")
    run = run_flowos("-c", config, tmp_path=tmp_path)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0] == (
        f"flowos-run: error: {config}: ports[0].mtu: MTU 9000 makes frames of up to 9018 bytes on port a "
        "(net_null0, net_null), more than an mbuf of 2048 bytes holds, and the device cannot receive into "
        "chains (MTU 46 to 65535, frames of up to 4294967295 bytes, no scattered RX): leave pool.data_room out "
        "or raise it to 9146, or lower the MTU to 2030")


def test_mtu_is_set_on_a_tap_interface(tmp_path, namespace):
    """net_tap sets the MTU on its kernel interface (persist keeps it for `ip link` after the run)."""
    config = write_config(tmp_path, """
ports:
  - {name: t, vdev: "net_tap0,iface=fotap0,persist", mtu: 1280}
  - {name: n, vdev: net_null0}
""")
    run = in_namespace(namespace, "-c", config, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert port(run.stats, "t")["mtu"] == 1280
    assert interface_mtu(namespace, "fotap0") == 1280


def test_mtu_beyond_the_device_is_refused_naming_what_it_takes(tmp_path, namespace):
    """net_tap receives frames of at most 1522 bytes (DPDK 22.11): a jumbo MTU is refused before
    the device is configured, with the device's limits."""
    config = write_config(tmp_path, """
ports:
  - {name: t, vdev: "net_tap0,iface=fotap0", mtu: 9000}
  - {name: n, vdev: net_null0}
""")
    run = in_namespace(namespace, "-c", config, tmp_path=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"flowos-run: error: {config}: ports[0].mtu: MTU 9000 is not one port t (net_tap0, net_tap) takes: "
        "MTU 46 to 65535, frames of up to 1522 bytes, scattered RX")


def test_frames_longer_than_an_mbuf_are_received_whole_by_scattered_rx(tmp_path, namespace):
    """Mbufs of 1024 bytes and an MTU of 1500 on a tap, which has scattered RX: a 1442-byte frame
    the kernel sends out of the tap arrives whole, as a chain, in the output capture."""
    out = tmp_path / "out.pcap"
    config = write_config(tmp_path, f"""
pool: {{data_room: 1152}}
ports:
  - {{name: t, vdev: "net_tap0,iface=fotap0", mtu: 1500}}
  - {{name: p, vdev: "net_pcap0,tx_pcap={out}"}}
forward: [t -> p, p -> t]
""")
    proc = start_flowos("-c", config, "--duration", "10", tmp_path=tmp_path, prefix_argv=["ip", "netns", "exec", namespace])
    try:
        deadline = time.monotonic() + 20
        while "fotap0" not in ip("-n", namespace, "-o", "link", "show") or not is_up(namespace, "fotap0"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        ip("-n", namespace, "addr", "add", "10.77.0.1/24", "dev", "fotap0")
        ip("-n", namespace, "neigh", "add", "10.77.0.2", "lladdr", "02:00:00:00:00:02", "dev", "fotap0")
        payload = bytes(range(256)) * 5 + bytes(120)     # 1400 bytes: a 1442-byte frame
        subprocess.run(["ip", "netns", "exec", namespace, "python3", "-c",
                        "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                        f"s.sendto(bytes.fromhex(sys.argv[1]), ('10.77.0.2', 9999))", payload.hex()],
                       check=True, timeout=30)
        time.sleep(0.5)
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        kill_flowos(proc)
    assert proc.returncode == 0, stderr
    assert "t: MTU 1500: frames of up to 1518 bytes are received as chains of 1024-byte mbufs (scattered RX)" in stdout
    sent = [Ether(frame) for frame in packets(out) if UDP in Ether(frame)]
    assert [len(frame) for frame in sent] == [1442]
    assert bytes(sent[0][UDP].payload) == payload


def is_up(ns, iface):
    return ",UP" in ip("-n", ns, "-o", "link", "show", iface)


def test_adjusted_descriptors_are_told():
    spec = devices.PortSpec(name="nic", device="0000:01:00.0", kind="pci", rx_descriptors=3, tx_descriptors=1024)
    assert descriptor_note(spec, 64, 1024) == "nic: the device adjusted rx descriptors 3 -> 64 per queue"
    assert descriptor_note(spec, 3, 1024) is None


@pytest.mark.parametrize("up, speed, full, text", [
    (True, 10000, True, "up 10 Gb/s"), (True, 2500, True, "up 2.5 Gb/s"), (True, 100, False, "up 100 Mb/s half"),
    (True, 0, False, "up"), (False, 10000, True, "down")])
def test_link_shows_speed_and_duplex(up, speed, full, text):
    stats = PortStats(name="p", device="d", driver="x", link_up=up, link_speed_mbps=speed, link_full_duplex=full)
    assert link_text(stats) == text


def test_flowos_ctl_stats_shows_link_speed_and_mtu(tmp_path):
    config = write_config(tmp_path, """
ports:
  - {name: a, vdev: net_null0, mtu: 4000}
""")
    proc = start_flowos("-c", config, "--duration", "30", tmp_path=tmp_path)
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("flowos: control: "):
            line = proc.stdout.readline()
        assert line, proc.stderr.read()
        done = subprocess.run([str(Path(sys.executable).with_name("flowos-ctl")), "--file-prefix", proc.file_prefix,
                               "stats"], capture_output=True, text=True, timeout=60)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        kill_flowos(proc)
    assert done.returncode == 0, done.stderr
    a = json.loads(done.stdout)["ports"][0]
    assert (a["name"], a["mtu"], a["link_up"], a["link_speed_mbps"], a["link_full_duplex"]) == ("a", 4000, True, 10000, True)


def test_an_mtu_out_of_range_is_refused_before_dpdk(tmp_path):
    config = write_config(tmp_path, "ports: [{name: a, vdev: net_null0, mtu: 20}]\n")
    run = run_flowos("-c", config, tmp_path=tmp_path)
    assert run.returncode == 2 and "ports[0].mtu: expected an integer" in run.stderr and "68" in run.stderr


def test_memory_is_sized_for_the_data_room_an_mtu_may_need(tmp_path):
    """Before DPDK says whether the device has scattered RX, the memory covers the larger mbufs."""
    from flowos.apps import cli
    from flowos.configuration import eal_args
    from flowos.runtime import runner
    def needed(ports):
        cfg = cli.make_config(cli.build_parser().parse_args(["-c", write_config(tmp_path, ports)]))
        return runner.memory_needed_mb(cfg, runner.pool_size(cfg), eal_args.HUGEPAGE_SIZE)
    plain = needed("ports: [{name: a, vdev: net_null0}]\n")
    jumbo = needed("ports: [{name: a, vdev: net_null0, mtu: 9000}]\n")
    fixed = needed("pool: {data_room: 2176}\nports: [{name: a, vdev: net_null0, mtu: 9000}]\n")
    assert jumbo > 3 * (plain - eal_args.BASE_MEMORY_MB) and fixed == plain


RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("", 9999))
s.settimeout(float(sys.argv[1]))
got = []
try:
    while len(got) < 20:
        got.append(s.recv(2048))
except socket.timeout:
    pass
print(len(got), got[0].hex() if got else "")
"""


def udp_checksum_errors(ns):
    """The namespace's UDP InCsumErrors: datagrams the kernel dropped for a wrong checksum."""
    lines = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    names, values = [line.split() for line in lines if line.startswith("Udp:")][:2]
    return int(values[names.index("InCsumErrors")])


@pytest.mark.parametrize("offload", ["true", "false"])
def test_edited_packets_leave_a_tap_with_checksums_its_kernel_accepts(tmp_path, namespace, offload):
    """A TTL rewrite on UDP broadcasts replayed into a tap: with the offload on, the tap's device
    (net_tap computes TX checksums in software, as a NIC would in hardware) completes the IPv4 and
    UDP checksums FlowOS leaves to it; off, FlowOS computes them. The kernel behind the tap checks
    both, and drops a datagram whose checksum is wrong."""
    from scapy.layers.inet import IP
    from scapy.utils import wrpcap
    payload = b"flowos checksum offload " * 20
    frames = [Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:02") / IP(src="10.77.0.2", dst="10.77.0.255", ttl=64) /
              UDP(sport=5555 + i, dport=9999) / payload for i in range(8)]
    wrpcap(str(tmp_path / "in.pcap"), frames)
    config = write_config(tmp_path, f"""
ports:
  - {{name: p, vdev: "net_pcap0,rx_pcap={tmp_path / 'in.pcap'},infinite_rx=1,tx_pcap=/dev/null"}}
  - {{name: t, vdev: "net_tap0,iface=fotap0", tx_checksum_offload: {offload}}}
forward: [p -> t, t -> p]
flows:
  - {{name: all, pipeline: [{{ttl: {{decrement: 1}}}}]}}
""")
    stats = tmp_path / "stats.json"
    for scope in ("all", "default"):    # the kernel sends nothing of its own out of the tap (IPv6 solicitations)
        subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1"],
                       check=True, timeout=30)
    proc = start_flowos("-c", config, "--duration", "20", "--stats-json", str(stats), tmp_path=tmp_path,
                        prefix_argv=["ip", "netns", "exec", namespace])
    try:
        deadline = time.monotonic() + 20
        while "fotap0" not in ip("-n", namespace, "-o", "link", "show") or not is_up(namespace, "fotap0"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        ip("-n", namespace, "addr", "add", "10.77.0.1/24", "brd", "10.77.0.255", "dev", "fotap0")
        received = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", RECEIVER, "5"],
                                  capture_output=True, text=True, timeout=30, check=True).stdout.split()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        errors = udp_checksum_errors(namespace)
    finally:
        kill_flowos(proc)
    assert proc.returncode == 0, stderr
    engine = json.loads(stats.read_text())["engine"]["stats"]
    assert engine["checksums_fixed"] > 0
    if offload == "true":
        assert "t: checksums of edited packets by the device: IPV4, TCP, UDP" in stdout
        assert engine["checksums_offloaded"] == engine["checksums_fixed"]
    else:
        assert "checksums of edited packets" not in stdout and engine["checksums_offloaded"] == 0
    assert (int(received[0]), errors) == (20, 0)
    assert bytes.fromhex(received[1]) == payload
