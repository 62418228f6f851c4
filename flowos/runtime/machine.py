"""What a configuration needs of this machine's DPDK, checked once: after the configuration is
read and checked (flowos.configuration.config.finish), before a run (or flowos-run --check)
builds anything, and before any packet. The configuration never imports the compiled boundary;
what only DPDK can tell is asked here:

- each vdev's arguments, against what the drivers this DPDK loads declare (flowos.runtime.pmd_info,
  which finds them through the librte_eal flowos.boundary._runtime links): DPDK refuses a device
  with another as "No such device", its log does not say which, and net_ring ignores it;
- each replayed capture, read with the fast path's reader (flowos.boundary._runtime.scan_capture):
  its link type, its longest frame, its packets (port.capture, which the run's --packets and
  capture clock use);
- and so the pool's data room, which a capture replayed whole (infinite_rx) or an interface's MTU
  (net_af_packet) may raise.

Each error is the configuration's (ConfigError: the source, the port's key; exit status 2)."""
import re

from flowos.boundary._runtime import scan_capture
from flowos.configuration import devices
from flowos.configuration.config import DATA_ROOM, MAX_DATA_ROOM
from flowos.errors import FlowOSError
from flowos.runtime import pmd_info

# A vdev's arguments are those its driver declares, plus those a driver takes without declaring
# them (DPDK 22.11, each driver's valid_arguments).
UNDECLARED_VDEV_ARGUMENTS = {
    "net_ring": ("internal",),
    "net_tap": ("persist",),
    "net_tun": ("remote", "mac", "persist"),
}
DLT_EN10MB = 1
# net_pcap (DPDK 22.11) copies a frame of a capture into mbufs with a 16-bit length: a longer
# frame would become a chain shorter than the packet it claims to be.
NET_PCAP_MAX_FRAME = 65535


def check(config):
    """Checks config's ports against this machine's DPDK and sizes the pool's data room for them;
    returns config. Raises ConfigError."""
    for port in config.ports:
        try:
            check_port(port)
        except FlowOSError as e:
            raise config.error(port.origin or None, str(e)) from None
    fit_data_room(config)
    return config


def check_port(port):
    if port.kind != "vdev":
        return
    check_vdev_arguments(port)
    rx = port.arg("rx_pcap") if port.driver == "net_pcap" else None
    if rx is not None:      # the configuration found it, readable
        try:
            port.capture = scan_capture(rx)
        except FlowOSError as e:
            raise FlowOSError(f"vdev {port.device}: rx_pcap {e}: not a capture file libpcap can read") from None
        check_replayable(port, rx, port.capture)


def check_vdev_arguments(port):
    """Each argument is one the driver declares (or takes undeclared), a number where it declares
    one. A driver FlowOS is tested with whose object cannot be found is left to DPDK."""
    declared = pmd_info.find(port.driver)
    if declared is None and port.driver in devices.KNOWN_VDEV_DRIVERS:
        return
    if declared is None or not declared.vdev:
        why = "no driver DPDK loads declares it" if declared is None else "a PCI device's driver, not a vdev's"
        raise FlowOSError(f"vdev {port.device}: unknown driver {port.driver!r}: {why} "
                          f"(FlowOS is tested with {', '.join(devices.KNOWN_VDEV_DRIVERS)})")
    accepted = declared.parameters + UNDECLARED_VDEV_ARGUMENTS.get(port.driver, ())
    for key, value in port.args:
        name = re.match(r"[^=(]*", key).group(0)     # net_failsafe's dev(...) is "dev"
        if name not in accepted:
            raise FlowOSError(f"vdev {port.device}: unknown argument {name!r} for {port.driver} "
                              f"(accepted: {', '.join(accepted)})")
        if name in declared.numbers and not (value or "").isdigit():
            raise FlowOSError(f"vdev {port.device}: {key}={value or ''}: expected a number")


def check_replayable(port, path, capture):
    """FlowOS decodes Ethernet, and writes every output capture as Ethernet: a capture of another
    link type would be misread and mislabelled, so it is refused (docs/ports.md)."""
    if capture.linktype != DLT_EN10MB:
        raise FlowOSError(f"vdev {port.device}: rx_pcap {path}: link type {capture.linktype_name}, not Ethernet "
                          "(FlowOS reads and writes Ethernet frames only)")
    if capture.longest > NET_PCAP_MAX_FRAME:
        raise FlowOSError(f"vdev {port.device}: rx_pcap {path}: packet {capture.longest_at} is {capture.longest} bytes; "
                          f"net_pcap replays frames of at most {NET_PCAP_MAX_FRAME} bytes")


def fit_data_room(config):
    """The pool's data room: what every port needs (a net_af_packet port, its interface's MTU; a
    capture replayed whole, its longest frame)."""
    need = DATA_ROOM
    config.pool.data_room_given = config.pool.data_room is not None
    for port in config.ports:
        room = devices.one_mbuf_room(port)
        note = devices.live_capture_note(port)
        if note:
            config.notes.append(note)
        if port.driver == "net_af_packet":
            room, note = devices.fit_af_packet(port)
            if note:
                config.notes.append(note)
        if room is None:
            continue
        if room > MAX_DATA_ROOM:
            raise config.error(port.origin or None, f"{port.device} puts each frame into one mbuf, which holds at "
                                                    f"most {MAX_DATA_ROOM - devices.MBUF_HEADROOM} bytes; its frames "
                                                    f"are up to {room - devices.MBUF_HEADROOM}")
        if port.driver == "net_pcap" and config.pool.data_room is None and room > DATA_ROOM:
            config.notes.append(f"{port.device}: infinite_rx keeps each packet in one mbuf: mbufs of "
                                f"{room - devices.MBUF_HEADROOM} bytes (pool.data_room {room})")
        if config.pool.data_room is not None and config.pool.data_room < room:
            raise config.error("pool.data_room", f"{config.pool.data_room} bytes is too little for {port.device}, "
                                                 f"which puts frames of up to {room - devices.MBUF_HEADROOM} bytes "
                                                 f"into one mbuf: {room} or more")
        need = max(need, room)
    if config.pool.data_room is None:
        config.pool.data_room = need
