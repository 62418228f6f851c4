"""Ports as the user names them: vdev strings and PCI addresses, checked before DPDK sees them.
What needs this machine's DPDK (each vdev's arguments against the drivers it loads, a capture's
packets read with the fast path's reader) is checked next, by flowos.runtime.machine."""
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from flowos.errors import FlowOSError

SAMPLE_CAPTURE = Path(__file__).parent.parent / "data" / "sample.pcap"
DEFAULT_OUTPUT = "flowos-out.pcap"

# Virtual device drivers FlowOS is tested with; any other that a driver DPDK loads declares
# (flowos/runtime/pmd_info.py) is taken too.
KNOWN_VDEV_DRIVERS = ("net_pcap", "net_null", "net_ring", "net_af_packet", "net_tap", "net_tun",
                      "net_memif", "net_vhost", "net_virtio_user", "net_bonding", "net_failsafe")
PCI_ADDRESS = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
PCAP_FILE_KEYS = ("rx_pcap", "tx_pcap")
# The longest chained packet a driver sends whole, where it has a limit: net_pcap copies a chain
# into a buffer of RTE_ETHER_MAX_JUMBO_FRAME_LEN bytes and writes (or sends) only that much.
TX_CHAIN_MAX = {"net_pcap": 16128}
# Drivers whose ports a DPDK 22.11 secondary process can receive and send on: their probe in a
# secondary sets the burst functions on queues in the shared memory (a NIC's: its descriptor
# rings). net_pcap and net_af_packet keep their files and sockets in the primary's process.
SECONDARY_QUEUE_DRIVERS = frozenset({"net_ring", "net_null", "pci"})
# Drivers whose RX queues keep the mbufs in them when the port closes (net_ring's are rings of
# mbufs, not descriptors the driver frees): what no worker received by the end is freed from them.
KEEPS_QUEUED_MBUFS = frozenset({"net_ring"})
NET_PCAP_TX_KEYS = ("tx_pcap", "tx_iface", "iface")
# net_pcap opens a live interface with a snapshot length of 16,128 bytes: it receives longer
# frames cut to that, and nothing says so.
NET_PCAP_LIVE_SNAPLEN = 16128
NET_PCAP_RX_IFACE_KEYS = ("iface", "rx_iface", "rx_iface_in")

# net_af_packet (DPDK 22.11) receives through a ring of frames of `framesz` bytes (2048 by
# default): the kernel puts a packet 80 bytes into its frame (tpacket2 header and sockaddr_ll,
# aligned) and cuts what does not fit, which the driver does not check; the driver then copies
# the frame into one mbuf, and refuses a ring frame (less its 32-byte header) larger than the
# pool's data room less headroom. So an interface's MTU sets both the frame and the data room.
AF_PACKET_FRAME_SIZE = 2048
AF_PACKET_MAX_AUTO_FRAME = 12288     # the largest ring frame FlowOS picks itself: jumbo MTUs, to 12,190
AF_PACKET_FRAME_OFFSET = 80
AF_PACKET_FRAME_HEADER = 32
MBUF_HEADROOM = 128
PAGE_SIZE = 4096
VLAN_FRAME_OVERHEAD = 18     # Ethernet header and one VLAN tag: a frame is the MTU plus this


@dataclass
class PortSpec:
    """One port: its name in configs and tables, and the device DPDK opens."""
    name: str
    device: str                  # the DPDK device name: "net_pcap0" or a PCI address
    kind: str                    # "vdev" or "pci"
    args: list = field(default_factory=list)   # vdev (key, value) pairs, in order
    rx_descriptors: int = 1024
    tx_descriptors: int = 1024
    promiscuous: bool = True
    mtu: int | None = None       # None: the device's own (flowos/configuration/port_settings.py)
    tx_checksum_offload: bool = True   # edited packets' checksums by the device where it can (else in software)
    origin: str = ""             # where the user gave it ("ports[0]", "--vdev"), for messages
    capture: object = None       # CaptureInfo of its rx_pcap, once flowos.runtime.machine has read it

    @property
    def driver(self):
        return vdev_driver(self.device) if self.kind == "vdev" else "pci"

    def arg(self, key):
        return next((v for k, v in self.args if k == key), None)

    @property
    def eal_spec(self):
        """The --vdev or -a argument for the EAL."""
        return ",".join([self.device] + [f"{k}={v}" if v is not None else k for k, v in self.args])

    @property
    def tx_chain_max(self):
        """The longest chained packet this port sends whole, or None for no limit."""
        if self.driver == "net_pcap" and not any(self.arg(k) is not None for k in NET_PCAP_TX_KEYS):
            return None   # without an output, net_pcap frees what it is given
        return TX_CHAIN_MAX.get(self.driver)

    @property
    def capture_source(self):
        """The capture this port replays once (a finite source), or None for an endless one."""
        if self.driver != "net_pcap" or self.arg("infinite_rx") == "1":
            return None
        return self.arg("rx_pcap")


def vdev_driver(device):
    """net_pcap0 -> net_pcap; DPDK matches a vdev's driver by the prefix of its name."""
    for driver in KNOWN_VDEV_DRIVERS:
        if device.startswith(driver):
            return driver
    return re.sub(r"\d+$", "", device)


def split_arguments(spec):
    """Splits a vdev string at its commas, but for those inside parentheses (net_failsafe's
    "dev(net_tap0,iface=x)")."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(spec):
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    return parts + [spec[start:]]


def parse_vdev(spec, base_dir=None):
    """Parses "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap". Capture paths are made absolute
    (relative to base_dir, a config file's folder, when given)."""
    parts = [p.strip() for p in split_arguments(spec)]
    device = parts[0]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", device or ""):
        raise FlowOSError(f"vdev {spec!r}: expected a device name such as net_pcap0 before the first comma")
    if not device.startswith("net_"):
        raise FlowOSError(f"vdev {spec!r}: FlowOS opens network devices, whose names start with net_ (e.g. net_pcap0)")
    args = []
    for part in parts[1:]:
        if not part:
            continue
        name_end = re.match(r"[^=(]*", part).end()     # net_failsafe's dev(...) has no value of its own
        key, sep, value = part.partition("=") if part[name_end:name_end + 1] == "=" else (part, "", "")
        if key in PCAP_FILE_KEYS and sep:
            value = str(Path(base_dir or ".", value).absolute()) if not os.path.isabs(value) else value
        args.append((key, value if sep else None))
    return PortSpec(name=device, device=device, kind="vdev", args=args)


def parse_pci(address):
    if not PCI_ADDRESS.match(address):
        raise FlowOSError(f"PCI address {address!r}: expected DOMAIN:BUS:DEVICE.FUNCTION, e.g. 0000:01:00.0")
    if address.count(":") == 1:
        address = "0000:" + address
    return PortSpec(name=address, device=address.lower(), kind="pci")


def apply_defaults(port):
    """A bare net_pcap port replays the bundled sample into ./flowos-out.pcap. Returns a note or None."""
    if port.driver != "net_pcap" or any(k.startswith(("rx_", "tx_")) for k, _ in port.args):
        return None
    port.args += [("rx_pcap", str(SAMPLE_CAPTURE)), ("tx_pcap", str(Path(DEFAULT_OUTPUT).absolute()))]
    return f"{port.device}: no capture given; replaying the bundled sample {SAMPLE_CAPTURE.name} into ./{DEFAULT_OUTPUT}"


def interface_mtu(iface):
    try:
        with open(f"/sys/class/net/{iface}/mtu") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def fit_af_packet(port):
    """Sizes a net_af_packet port's ring frames for its interface's MTU, up to jumbo frames, unless
    framesz is given. Returns the pool data room the port needs, and a note to tell the user: the
    size chosen, or that longer frames will be cut (by the kernel, where no counter sees it)."""
    iface, mtu = port.arg("iface"), interface_mtu(port.arg("iface"))
    given = port.arg("framesz")
    framesz = int(given) if given and given.isdigit() else AF_PACKET_FRAME_SIZE
    notes = []
    if mtu is not None:
        need = AF_PACKET_FRAME_OFFSET + mtu + VLAN_FRAME_OVERHEAD
        fitted = -(-need // PAGE_SIZE) * PAGE_SIZE     # a ring block is whole pages
        if given is None and framesz < need and fitted <= AF_PACKET_MAX_AUTO_FRAME:
            framesz = fitted
            port.args += [("framesz", str(framesz)), ("blocksz", str(framesz))]
            notes.append(f"{iface} has MTU {mtu}: ring frames of {framesz} bytes (framesz), "
                         f"mbufs of {framesz - AF_PACKET_FRAME_HEADER} bytes")
        if framesz < need:
            notes.append(f"frames longer than {framesz - AF_PACKET_FRAME_OFFSET} bytes ({iface} has MTU {mtu}) "
                         f"will be cut short by the kernel, where no counter sees it: lower the MTU to "
                         f"{framesz - AF_PACKET_FRAME_OFFSET - VLAN_FRAME_OVERHEAD}"
                         + (" or give a larger framesz" if given is not None else ""))
    note = f"{port.device}: " + "; ".join(notes) if notes else None
    return framesz - AF_PACKET_FRAME_HEADER + MBUF_HEADROOM, note


def live_capture_note(port):
    """What a net_pcap port on a live interface whose MTU passes net_pcap's snapshot length will
    do to the longer frames, to tell the user (no counter can); None otherwise."""
    if port.driver != "net_pcap":
        return None
    for key in NET_PCAP_RX_IFACE_KEYS:
        iface = port.arg(key)
        mtu = interface_mtu(iface) if iface else None
        if mtu is not None and mtu + VLAN_FRAME_OVERHEAD > NET_PCAP_LIVE_SNAPLEN:
            return (f"{port.device}: frames longer than {NET_PCAP_LIVE_SNAPLEN} bytes ({iface} has MTU {mtu}) will be "
                    f"received cut short by net_pcap, where no counter sees it: lower the MTU to "
                    f"{NET_PCAP_LIVE_SNAPLEN - VLAN_FRAME_OVERHEAD}, or use net_af_packet")
    return None


def one_mbuf_room(port):
    """The data room a port needs because its driver puts a frame in one mbuf, or None: net_pcap
    with infinite_rx keeps each packet of its capture in one (DPDK 22.11 refuses chains there)."""
    if port.driver == "net_pcap" and port.arg("infinite_rx") == "1" and port.capture is not None:
        return max(port.capture.longest, 1) + MBUF_HEADROOM
    return None


def check(port):
    """What can be known about a port from its text and the files it names: files, interfaces."""
    if port.kind == "pci":
        if not os.path.exists(f"/sys/bus/pci/devices/{port.device}"):
            raise FlowOSError(f"no PCI device {port.device} on this machine (lspci lists them)")
        return
    keys = [k for k, _ in port.args]
    if port.driver == "net_pcap":
        if keys.count("rx_pcap") > 1 or keys.count("tx_pcap") > 1:
            raise FlowOSError(f"vdev {port.device}: one rx_pcap and one tx_pcap per port (use one port per capture)")
        rx, tx = port.arg("rx_pcap"), port.arg("tx_pcap")
        if rx is not None and not os.path.isfile(rx):
            raise FlowOSError(f"vdev {port.device}: rx_pcap {rx}: no such file")
        if rx is not None and not os.access(rx, os.R_OK):
            raise FlowOSError(f"vdev {port.device}: rx_pcap {rx}: not readable")
        if tx is not None:
            folder = os.path.dirname(tx) or "."
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                raise FlowOSError(f"vdev {port.device}: tx_pcap {tx}: cannot write in {folder}")
    if port.driver == "net_af_packet":
        iface = port.arg("iface")
        if iface is None:
            raise FlowOSError(f"vdev {port.device}: net_af_packet needs iface=<interface>")
        if not os.path.exists(f"/sys/class/net/{iface}"):
            raise FlowOSError(f"vdev {port.device}: no network interface {iface!r}")
