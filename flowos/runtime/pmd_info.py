"""What DPDK's drivers say of themselves, read from their shared objects before DPDK starts.

Each driver's object carries a record `PMD_INFO_STRING= {"name": ..., "params": ...}` (written
by RTE_PMD_REGISTER_PARAM_STRING; DPDK's usertools/dpdk-pmdinfo.py reads the same), and
librte_eal carries the folder it loads drivers from as `DPDK_PLUGIN_PATH=<folder>`. FlowOS reads
them to name a vdev argument a driver does not take: DPDK itself says only "No such device".
"""
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

RECORD = re.compile(rb"PMD_INFO_STRING= (\{[^\0]*\})\0")
PLUGIN_PATH = re.compile(rb"DPDK_PLUGIN_PATH=([^\0]+)\0")
# A parameter in a record's text: a name before "=", or before "(" at the start or after a comma
# (net_failsafe's "dev(<ifc>),exec(...)"; net_ring's "name:node:action(ATTACH|CREATE)" is a value).
PARAMETER = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)=|(?:^|,)([A-Za-z_][A-Za-z0-9_-]*)\(")
# What comes before a name that stands apart; anything else may have glued the end of a value to it.
APART = " \t,>])"
NUMBER = re.compile(r"<u?int[0-9]*(?:_t)?>|<?0\|1>?")


@dataclass(frozen=True)
class Driver:
    name: str
    parameters: tuple      # as the record lists them
    numbers: frozenset     # those whose value is a number (<int>, <0|1>, ...)
    vdev: bool             # a virtual device's driver (no PCI ids)
    path: str              # the shared object that declares it
    pci_ids: tuple = ()    # (vendor, device) of each PCI device it drives
    kmod: str = ""         # the kernel modules the device must be bound to: "* igb_uio | vfio-pci"

    def kernel_modules(self):
        """The module names in kmod, as the kernel names drivers (vfio-pci, uio_pci_generic)."""
        return [name for name in re.split(r"[\s*|&()]+", self.kmod) if name]


def parameters(text, data):
    """(names, those whose value is a number) of a record's params text. Records written without
    spaces glue a value to the next name ("role=server|clientbsize=<int>"): a name that does not
    stand apart is cut to its longest tail that ends a string of the object (data), as the
    driver's list of argument names has it."""
    found = []
    matches = list(PARAMETER.finditer(text))
    for i, m in enumerate(matches):
        name, start = (m.group(1), m.start(1)) if m.group(1) else (m.group(2), m.start(2))
        if start > 0 and text[start - 1] not in APART:
            name = next((name[k:] for k in range(len(name)) if name[k:].encode() + b"\0" in data), name)
        value = text[m.end():matches[i + 1].start() if i + 1 < len(matches) else len(text)] if m.group(1) else ""
        found.append((name, value))
    names = tuple(dict.fromkeys(name for name, _ in found))
    numbers = frozenset(name for name, value in found if NUMBER.match(value.strip()))
    return names, numbers


@functools.cache
def records(path):
    """The drivers a shared object declares; none if it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ()
    out = []
    for raw in RECORD.findall(data):
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        names, numbers = parameters(record.get("params") or "", data)
        pci_ids = tuple(dict.fromkeys((ids[0], ids[1]) for ids in record.get("pci_ids") or () if len(ids) >= 2))
        out.append(Driver(record.get("name", ""), names, numbers, not pci_ids, str(path), pci_ids,
                          record.get("kmod") or ""))
    return tuple(out)


def loaded_objects(stem):
    """The shared objects named stem.so* that this process has mapped."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.basename(p).startswith(stem + ".so"))


@functools.cache
def plugin_dir():
    """The folder the EAL loads its drivers from, as the librte_eal this process loaded says
    (flowos.boundary._runtime links it); None if none says (DPDK built into the program)."""
    from flowos.boundary import _runtime  # noqa: F401 (loads librte_eal, also where nothing else has yet)
    for path in loaded_objects("librte_eal"):
        try:
            found = PLUGIN_PATH.search(Path(path).read_bytes())
        except OSError:
            continue
        if found:
            return found.group(1).decode(errors="replace")
    return None


def network_objects(folder):
    """The network drivers' shared objects of a plugin folder, each once (by its real path)."""
    seen = []
    for path in sorted(Path(folder).glob("librte_net_*.so*")):
        real = os.path.realpath(path)
        if real not in seen and os.path.isfile(real):
            seen.append(real)
    return seen


@functools.cache
def find_pci(vendor, device, folder=None):
    """The network Driver that declares the PCI device vendor:device (numbers), or None."""
    folder = folder or plugin_dir()
    if folder is None or not os.path.isdir(folder):
        return None
    return next((declared for path in network_objects(folder) for declared in records(path)
                 if (vendor, device) in declared.pci_ids), None)


@functools.cache
def find(driver, folder=None):
    """The Driver that a shared object of the plugin folder (plugin_dir() by default) declares
    under this name ("net_memif"), or None: no folder, or no object there declares it. Its own
    object is looked at first (librte_net_memif.so), then every network driver's (net_tun is in
    librte_net_tap)."""
    folder = folder or plugin_dir()
    if folder is None or not os.path.isdir(folder):
        return None
    own = os.path.realpath(Path(folder, f"librte_{driver}.so"))
    for real in ([own] if os.path.isfile(own) else []) + network_objects(folder):
        for declared in records(real):
            if declared.name == driver:
                return declared
    return None
