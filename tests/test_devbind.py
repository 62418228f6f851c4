"""scripts/devbind on this machine, without a spare NIC: the listing, the readiness check, and the
refusals that keep a NIC the machine needs (or a wrong address) away from vfio-pci."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from flowos.apps import devbind

ROOT = Path(__file__).parent.parent
DEVBIND = str(ROOT / "scripts" / "devbind")


def run(*args):
    return subprocess.run([DEVBIND, *args], capture_output=True, text=True, timeout=60)


def network_controllers():
    """Read independently of flowos.apps.devbind: PCI devices of base class 02."""
    folder = Path("/sys/bus/pci/devices")
    return sorted(p.name for p in folder.iterdir() if (p / "class").read_text().startswith("0x02")) \
        if folder.is_dir() else []


def default_route_nic():
    """The PCI device behind the IPv4 default route's interface (iproute2's answer), or None."""
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show", "default"], capture_output=True, text=True,
                                       check=True).stdout or "[]")
    pci = set(os.listdir("/sys/bus/pci/devices")) if os.path.isdir("/sys/bus/pci/devices") else set()
    for route in routes:
        path = Path(os.path.realpath(Path("/sys/class/net", route.get("dev", "-"), "device")))
        while path.name and path.name not in pci:     # up from the interface's device (virtio: virtioN)
            path = path.parent
        if path.name:
            return path.name
    return None


def test_list_shows_every_network_controller_with_its_driver():
    done = run("list")
    assert done.returncode == 0, done.stderr
    expected = network_controllers()
    if not expected:
        assert done.stdout.strip() == "no network controllers on the PCI bus"
        return
    lines = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == expected
    for address, line in zip(expected, lines):
        driver = Path("/sys/bus/pci/devices", address, "driver")
        assert f"driver={os.path.basename(os.readlink(driver)) if driver.is_symlink() else '-'}" in line


def test_the_nic_of_the_default_route_is_marked_and_refused():
    address = default_route_nic()
    if address is None:
        pytest.skip("no default route through a PCI NIC here")
    assert any(line.startswith(address) and "(default route" in line for line in run("list").stdout.splitlines())
    done = run("bind", address)
    assert done.returncode == 2
    iface = next(n.interfaces for n in devbind.nics() if n.address == address)
    assert done.stderr.strip() == (f"devbind: error: {address} carries this machine's default route (interface "
                                   f"{', '.join(i for i in iface if i in devbind.default_route_interfaces())}): "
                                   "binding it to vfio-pci would cut the machine off the network; give FlowOS another NIC")
    assert Path("/sys/bus/pci/devices", address, "driver").is_symlink()   # still bound to its kernel driver


@pytest.mark.parametrize("address, message", [
    ("zz", "PCI address 'zz': expected DOMAIN:BUS:DEVICE.FUNCTION, e.g. 0000:01:00.0"),
    ("0000:7f:1f.7", "no PCI device 0000:7f:1f.7 on this machine (scripts/devbind lists its NICs)"),
])
def test_a_wrong_address_is_refused(address, message):
    assert not Path("/sys/bus/pci/devices/0000:7f:1f.7").exists()
    for command in ("bind", "restore"):
        done = run(command, address)
        assert (done.returncode, done.stderr.strip()) == (2, f"devbind: error: {message}")


def test_a_device_that_is_not_a_nic_is_refused():
    folder = Path("/sys/bus/pci/devices")
    other = next((p.name for p in sorted(folder.iterdir()) if not (p / "class").read_text().startswith("0x02")), None) \
        if folder.is_dir() else None
    if other is None:
        pytest.skip("no PCI device other than NICs here")
    done = run("bind", other)
    device_class = (folder / other / "class").read_text().strip()
    assert (done.returncode, done.stderr.strip()) == (
        2, f"devbind: error: {other} is not a network controller (PCI class {device_class}); scripts/devbind lists the NICs")


def test_check_reports_iommu_vfio_and_both_hugepage_sizes():
    done = run("check")
    lines = done.stdout.strip().splitlines()
    groups = os.listdir("/sys/kernel/iommu_groups") if os.path.isdir("/sys/kernel/iommu_groups") else []
    iommu = lines[0]
    assert iommu.startswith("ok") == bool(groups) or "no-IOMMU mode" in iommu
    if not groups:
        assert "intel_iommu=on iommu=pt" in iommu
    assert lines[1].startswith("ok") == os.path.isdir("/sys/bus/pci/drivers/vfio-pci")
    assert any(line.split(None, 1)[1].startswith("hugepages 2M:") for line in lines)
    one_gb = [line for line in lines if "hugepages 1G" in line]
    assert len(one_gb) == 1
    if not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-1048576kB"):
        assert "not supported here" in one_gb[0]
    assert done.returncode == (0 if all(line.startswith("ok") for line in lines) else 1)


def test_restore_without_a_record_asks_for_the_driver():
    nics = [n for n in devbind.nics() if n.address not in os.listdir(devbind.RECORDS)] \
        if devbind.RECORDS.is_dir() else devbind.nics()
    if not nics:
        pytest.skip("no NIC here")
    done = run("restore", nics[0].address)
    assert done.returncode == 2 and "name it with --driver" in done.stderr
