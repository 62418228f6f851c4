"""scripts/devbind: this machine's NICs and their drivers; binding one to vfio-pci for DPDK and back
(DPDK's dpdk-devbind.py binds); and whether the machine is ready for that: IOMMU, vfio, hugepages."""
import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from flowos.configuration import devices
from flowos.runtime import hugepages
from flowos.errors import FlowOSError

DEVBIND = ("dpdk-devbind.py", "/usr/sbin/dpdk-devbind.py", "/usr/bin/dpdk-devbind.py")
PCI_DEVICES = Path("/sys/bus/pci/devices")
PCI_DRIVERS = Path("/sys/bus/pci/drivers")
NET_CLASSES = Path("/sys/class/net")
IOMMU_GROUPS = Path("/sys/kernel/iommu_groups")
NOIOMMU = Path("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")
NETWORK_CLASS = "0x02"       # PCI base class 02: network controllers
DPDK_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")
# The kernel driver each NIC had before bind(), for restore(); bindings end at reboot, and so does /run.
RECORDS = Path("/run/flowos/devbind")
IOMMU_HINT = ("turn on VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the BIOS and boot with intel_iommu=on iommu=pt "
              "or amd_iommu=on iommu=pt (docs/deploy.md)")
EXIT_BAD_INPUT = 2


@dataclass
class Nic:
    address: str
    vendor_device: str          # "8086:1572"
    driver: str | None          # the driver bound now, None for none
    interfaces: list            # its kernel interfaces (none while a DPDK driver has it)
    iommu_group: str | None


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _link_name(path):
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else None


def interfaces_of(address):
    """The kernel interfaces of PCI device `address`: theirs or a child's (virtio's virtioN)."""
    device = os.path.realpath(PCI_DEVICES / address)
    names = []
    for name in sorted(os.listdir(NET_CLASSES)) if NET_CLASSES.is_dir() else []:
        link = NET_CLASSES / name / "device"
        if link.exists() and (os.path.realpath(link) + "/").startswith(device + "/"):
            names.append(name)
    return names


def nic(address):
    folder = PCI_DEVICES / address
    return Nic(address, f"{_read(folder / 'vendor')[2:]}:{_read(folder / 'device')[2:]}",
               _link_name(folder / "driver"), interfaces_of(address), _link_name(folder / "iommu_group"))


def nics():
    """This machine's network controllers, by PCI address."""
    found = sorted(p.name for p in PCI_DEVICES.iterdir() if (_read(p / "class") or "").startswith(NETWORK_CLASS)) \
        if PCI_DEVICES.is_dir() else []
    return [nic(address) for address in found]


def default_route_interfaces():
    """The interfaces an IPv4 or IPv6 default route leaves by."""
    names = set()
    for line in (_read("/proc/net/route") or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
            names.add(fields[0])
    for line in (_read("/proc/net/ipv6_route") or "").splitlines():
        fields = line.split()
        if len(fields) == 10 and fields[0] == "0" * 32 and fields[1] == "00" and fields[9] != "lo":
            names.add(fields[9])
    return names


def find(address):
    """The NIC at `address` (DOMAIN:BUS:DEVICE.FUNCTION, the domain optional), or a FlowOSError."""
    address = devices.parse_pci(address).device
    if not (PCI_DEVICES / address).is_dir():
        raise FlowOSError(f"no PCI device {address} on this machine (scripts/devbind lists its NICs)")
    device_class = _read(PCI_DEVICES / address / "class") or "?"
    if not device_class.startswith(NETWORK_CLASS):
        raise FlowOSError(f"{address} is not a network controller (PCI class {device_class}); "
                          "scripts/devbind lists the NICs")
    return nic(address)


def iommu_state():
    """(usable, what): whether vfio-pci can take a device, in words."""
    groups = len(os.listdir(IOMMU_GROUPS)) if IOMMU_GROUPS.is_dir() else 0
    if groups:
        return True, f"IOMMU on ({groups} groups)"
    if _read(NOIOMMU) == "Y":
        return True, "no IOMMU, vfio in unsafe no-IOMMU mode (no DMA isolation: for test machines only)"
    return False, f"no IOMMU groups in {IOMMU_GROUPS}: {IOMMU_HINT}"


def vfio_state():
    if (PCI_DRIVERS / "vfio-pci").is_dir():
        return True, "vfio-pci loaded"
    return False, "vfio-pci not loaded: modprobe vfio-pci (as root)"


def devbind_tool():
    for candidate in DEVBIND:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def checks():
    """What binding a NIC for DPDK and running on hugepages need: (ok, line) each."""
    tool = devbind_tool()
    lines = [iommu_state(), vfio_state(),
             (tool is not None, f"dpdk-devbind.py: {tool}" if tool else
              "dpdk-devbind.py not found: apt-get install dpdk (Debian's dpdk package has it)")]
    sizes = hugepages.supported_sizes()
    states = [(size, hugepages.probe(size)) for size in sizes]
    usable = [size for size, state in states if state.mount and state.free]
    for size, state in states:
        lines.append((bool(usable), hugepages.describe(state, size)))
    if "1G" not in sizes:
        lines.append((True, "hugepages 1G: not supported here (the CPU has no pdpe1gb); 2M pages do"))
    if not usable:
        lines.append((False, "no free hugepages on a mounted hugetlbfs: scripts/hugepages (2M) or "
                             "scripts/hugepages --size 1G, as root"))
    return lines


def bind(address, driver="vfio-pci"):
    """Binds the NIC at `address` to `driver` with dpdk-devbind.py, remembering its kernel driver."""
    target = find(address)
    routed = sorted(set(target.interfaces) & default_route_interfaces())
    if routed:
        raise FlowOSError(f"{target.address} carries this machine's default route (interface {', '.join(routed)}): "
                          f"binding it to {driver} would cut the machine off the network; give FlowOS another NIC")
    if target.driver == driver:
        return f"{target.address} is already bound to {driver}"
    if driver == "vfio-pci":
        for usable, what in (iommu_state(), vfio_state()):
            if not usable:
                raise FlowOSError(f"cannot bind {target.address} to vfio-pci: {what}")
    tool = devbind_tool()
    if tool is None:
        raise FlowOSError("dpdk-devbind.py not found: apt-get install dpdk")
    if target.driver and target.driver not in DPDK_DRIVERS:
        RECORDS.mkdir(parents=True, exist_ok=True)
        (RECORDS / target.address).write_text(target.driver + "\n")
    run_devbind(tool, "--bind", driver, target.address)
    return f"{target.address} bound to {driver} (was {target.driver or 'unbound'}); FlowOS takes it as pci: {target.address}"


def restore(address, driver=None):
    """Binds the NIC at `address` back to its kernel driver: `driver`, or the one bind() recorded."""
    target = find(address)
    record = RECORDS / target.address
    driver = driver or _read(record)
    if not driver:
        raise FlowOSError(f"no kernel driver recorded for {target.address} (it was not bound by scripts/devbind "
                          "since boot): name it with --driver (e.g. ixgbe, i40e, ice, mlx5_core)")
    if target.driver == driver:
        return f"{target.address} is already bound to {driver}"
    tool = devbind_tool()
    if tool is None:
        raise FlowOSError("dpdk-devbind.py not found: apt-get install dpdk")
    run_devbind(tool, "--bind", driver, target.address)
    record.unlink(missing_ok=True)
    return f"{target.address} bound to {driver}"


def run_devbind(tool, *args):
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        why = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[-1]
        raise FlowOSError(f"dpdk-devbind.py {' '.join(args)}: {why}")


def listing():
    routed = default_route_interfaces()
    rows = []
    for n in nics():
        notes = ["default route"] if set(n.interfaces) & routed else []
        if n.driver in DPDK_DRIVERS:
            notes.append(f"for DPDK: pci: {n.address}")
        rows.append(f"{n.address}  {n.vendor_device}  driver={n.driver or '-'}  "
                    f"if={','.join(n.interfaces) or '-'}  iommu_group={n.iommu_group or '-'}"
                    + (f"  ({'; '.join(notes)})" if notes else ""))
    return rows or ["no network controllers on the PCI bus"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/devbind",
                                     description="NICs and their drivers; bind to vfio-pci for FlowOS and back.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="the NICs, their drivers, interfaces and IOMMU groups (the default)")
    sub.add_parser("check", help="IOMMU, vfio-pci, dpdk-devbind.py and hugepages (2M, 1G); exit 1 where not ready")
    bind_parser = sub.add_parser("bind", help="bind a NIC to vfio-pci (or --driver) for DPDK")
    bind_parser.add_argument("address")
    bind_parser.add_argument("--driver", default="vfio-pci", choices=DPDK_DRIVERS)
    restore_parser = sub.add_parser("restore", help="bind a NIC back to its kernel driver")
    restore_parser.add_argument("address")
    restore_parser.add_argument("--driver", help="the kernel driver (default: the one it had before bind)")
    args = parser.parse_args(argv)
    if args.command in (None, "list"):
        print("\n".join(listing()))
        return 0
    if args.command == "check":
        lines = checks()
        for ok, line in lines:
            print(f"{'ok' if ok else 'MISSING':8}{line}")
        return 0 if all(ok for ok, _ in lines) else 1
    try:
        print(bind(args.address, args.driver) if args.command == "bind" else restore(args.address, args.driver))
    except FlowOSError as e:
        print(f"devbind: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
