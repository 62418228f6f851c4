"""flowos/runtime/pmd_info.py: what DPDK's drivers declare of themselves (PMD_INFO_STRING records), read
from this machine's DPDK: the folder librte_eal loads drivers from, each record's parameters
(also from records written without spaces), and a driver no object declares."""
import os
from pathlib import Path

import pytest

from flowos.configuration import devices
from flowos.runtime import machine, pmd_info
from flowos.errors import FlowOSError


def network_drivers():
    folder = pmd_info.plugin_dir()
    return {d.name: d for path in sorted(Path(folder).glob("librte_net_*.so*"))
            for d in pmd_info.records(os.path.realpath(path))}


def test_the_plugin_folder_is_librte_eals():
    folder = pmd_info.plugin_dir()
    assert folder is not None and list(Path(folder).glob("librte_net_pcap.so*")), folder


def test_records_give_each_drivers_arguments():
    """Expectations from DPDK 22.11's sources (each driver's valid_arguments and its
    RTE_PMD_REGISTER_PARAM_STRING). net_memif and net_pcap write theirs without spaces; net_ring's
    value "name:node:action(ATTACH|CREATE)" holds no name; net_failsafe's dev(...) is one."""
    drivers = network_drivers()
    expect = {
        "net_memif": ("id", "role", "bsize", "rsize", "socket", "socket-abstract", "mac", "zero-copy", "secret"),
        "net_pcap": ("rx_pcap", "tx_pcap", "rx_iface", "rx_iface_in", "tx_iface", "iface", "phy_mac", "infinite_rx"),
        "net_null": ("size", "copy", "no-rx"),
        "net_af_packet": ("iface", "qpairs", "blocksz", "framesz", "framecnt", "qdisc_bypass"),
        "net_ring": ("nodeaction",),
        "net_failsafe": ("dev", "exec", "fd", "mac", "hotplug_poll"),
    }
    for name, parameters in expect.items():
        assert drivers[name].parameters == parameters and drivers[name].vdev, drivers[name]
    assert drivers["net_pcap"].numbers == {"phy_mac", "infinite_rx"}
    assert drivers["net_null"].numbers == {"size", "copy", "no-rx"}
    assert drivers["net_af_packet"].numbers == {"qpairs", "blocksz", "framesz", "framecnt", "qdisc_bypass"}
    assert not drivers["net_ixgbe"].vdev
    for driver in drivers.values():     # every name is one its object holds, whole (the kvargs list)
        data = Path(driver.path).read_bytes()
        assert all(name.encode() + b"\0" in data for name in driver.parameters), driver


def test_find_looks_past_the_drivers_own_object():
    assert pmd_info.find("net_tun").path.startswith(os.path.realpath(pmd_info.plugin_dir()) + "/librte_net_tap.so")
    assert pmd_info.find("net_nosuch") is None


def test_a_tested_driver_whose_object_is_missing_is_left_to_dpdk(tmp_path, monkeypatch):
    """No object declares net_memif (a folder without drivers): its arguments go to DPDK
    unchecked; a driver FlowOS is not tested with is refused."""
    assert pmd_info.find("net_memif", str(tmp_path)) is None
    monkeypatch.setattr(pmd_info, "plugin_dir", lambda: str(tmp_path))
    pmd_info.find.cache_clear()
    try:
        machine.check_vdev_arguments(devices.parse_vdev("net_memif0,bogus=1"))
        with pytest.raises(FlowOSError, match="unknown driver 'net_af_xdp': no driver DPDK loads declares it"):
            machine.check_vdev_arguments(devices.parse_vdev("net_af_xdp0"))
    finally:
        pmd_info.find.cache_clear()


def test_failsafe_sub_devices_keep_their_commas():
    port = devices.parse_vdev("net_failsafe0,dev(net_tap0,iface=ft0),hotplug_poll=100")
    assert port.args == [("dev(net_tap0,iface=ft0)", None), ("hotplug_poll", "100")]
    assert port.eal_spec == "net_failsafe0,dev(net_tap0,iface=ft0),hotplug_poll=100"
    machine.check_vdev_arguments(port)


def test_pci_records_give_their_devices_and_kernel_modules():
    """DPDK 22.11's net_virtio declares the modern virtio NIC (1af4:1041) and the kernel modules
    it works with; no network driver declares virtio's block device (1af4:1042)."""
    virtio = pmd_info.find_pci(0x1AF4, 0x1041)
    assert virtio.name == "net_virtio" and not virtio.vdev
    assert virtio.kernel_modules() == ["igb_uio", "uio_pci_generic", "vfio-pci"]
    assert pmd_info.find_pci(0x1AF4, 0x1042) is None
