"""A port's MTU against what its device can take, once DPDK has probed it: the device's limits, and
where its frames pass an mbuf, scattered RX, else a larger pool data room, else a refusal."""
from dataclasses import dataclass

from flowos.configuration import devices
from flowos.configuration.config import MAX_DATA_ROOM


@dataclass
class MtuFit:
    scatter: bool = False         # receive longer frames as chains (RTE_ETH_RX_OFFLOAD_SCATTER)
    data_room: int = 0            # the pool data room the port needs (0: any)
    note: str | None = None       # what to tell the user at start


# The most bytes beyond its MTU a driver counts in a frame (Ethernet header, CRC, two VLAN tags).
FRAME_OVERHEAD_AT_MOST = 26


def data_room_at_most(config):
    """The pool data room a run may come to once its ports' devices are known (fit_mtu raises the
    room for a device without scattered RX): the memory it reserves is sized for it."""
    rooms = [spec.mtu + FRAME_OVERHEAD_AT_MOST + devices.MBUF_HEADROOM for spec in config.ports
             if spec.mtu is not None and not config.pool.data_room_given]
    return min(max([config.pool.data_room] + rooms), MAX_DATA_ROOM)


def limits(info):
    """What a device takes, in words, for errors."""
    return (f"MTU {info['min_mtu']} to {info['max_mtu']}, frames of up to {info['max_rx_pktlen']} bytes, "
            + ("scattered RX" if info["rx_scatter"] else "no scattered RX"))


def fit_mtu(config, spec, info):
    """How port `spec` receives frames of its MTU on a device that offers `info` (Port.info()), given
    the pool's data room (config.pool; one the user gave is not raised). Raises a ConfigError
    naming the port where the device cannot."""
    if spec.mtu is None:
        return MtuFit()
    where = f"{spec.origin}.mtu" if spec.origin.startswith("ports[") else spec.origin or None
    frame = spec.mtu + info["frame_overhead"]
    if not info["min_mtu"] <= spec.mtu <= info["max_mtu"] or frame > info["max_rx_pktlen"]:
        raise config.error(where, f"MTU {spec.mtu} is not one port {spec.name} ({spec.device}, {info['driver']}) "
                                  f"takes: {limits(info)}")
    room = config.pool.data_room - devices.MBUF_HEADROOM
    if frame <= room:
        return MtuFit()
    if info["rx_scatter"]:
        return MtuFit(scatter=True, note=f"{spec.name}: MTU {spec.mtu}: frames of up to {frame} bytes are received "
                                         f"as chains of {room}-byte mbufs (scattered RX)")
    needed = frame + devices.MBUF_HEADROOM
    if not config.pool.data_room_given and needed <= MAX_DATA_ROOM:
        return MtuFit(data_room=needed, note=f"{spec.name}: MTU {spec.mtu}: {info['driver']} has no scattered RX: "
                                             f"mbufs of {frame} bytes (pool.data_room {needed})")
    fix = "leave pool.data_room out or raise it to " if needed <= MAX_DATA_ROOM else ""
    raise config.error(where, f"MTU {spec.mtu} makes frames of up to {frame} bytes on port {spec.name} "
                              f"({spec.device}, {info['driver']}), more than an mbuf of {room} bytes holds, and the "
                              f"device cannot receive into chains ({limits(info)}): {fix}"
                              f"{needed if fix else ''}{', or ' if fix else ''}lower the MTU to {room - info['frame_overhead']}")


def descriptor_note(spec, rx, tx):
    """What the device made of the descriptors asked for, where it changed them; else None."""
    changed = [f"{what} descriptors {asked} -> {got}" for what, asked, got in
               (("rx", spec.rx_descriptors, rx), ("tx", spec.tx_descriptors, tx)) if asked != got]
    return f"{spec.name}: the device adjusted " + ", ".join(changed) + " per queue" if changed else None


def checksum_note(spec, offloads, flows):
    """Which checksums of edited packets the device computes for this port, where some (and there
    are flows to edit packets); else None."""
    if not offloads or not flows:
        return None
    return f"{spec.name}: checksums of edited packets by the device: {', '.join(o.upper() for o in offloads)}"
