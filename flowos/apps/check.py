"""flowos-run --check: whether a configuration can run on this machine, without starting it.

The configuration was read and checked as for a run (flowos/configuration/config.py: every key, the ports'
devices, interfaces and captures, the processors imported), and each Python and Cython processor
constructed once with its parameters (construct_processors: a run constructs them as it starts);
this adds what a run would find out only once DPDK starts: DPDK's libraries and
drivers, the memory the run needs (hugepages or not), each PCI NIC bound to a driver DPDK can use,
a file prefix no running DPDK process holds, and the files the run writes. Each check is one
Finding; a run is possible when none is a problem.
"""
import ctypes
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from flowos.runtime import control_server, pmd_info, runner
from flowos.configuration import eal_args, flows as flow_defs
from flowos.configuration.config import worker_processes
from flowos.configuration.devices import interface_mtu
from flowos.errors import FlowOSError

# Where `dpdk-devbind.py --status` and docs/deploy.md send a NIC for DPDK.
BIND_HINT = "dpdk-devbind.py --bind=vfio-pci {address}"
VFIO_NOIOMMU = Path("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")


@dataclass
class Finding:
    ok: bool
    text: str


def run_checks(cfg, stats_json=None):
    """The Findings for a finished configuration, in the order a run meets them."""
    findings = [Finding(True, configuration(cfg))]
    findings += [Finding(True, text) for text in processors(cfg)]
    findings.append(attempt("DPDK", dpdk))
    findings += [attempt(f"port {port.name}", lambda port=port: describe_port(port)) for port in cfg.ports]
    findings.append(attempt("memory", lambda: memory(cfg)))
    findings.append(attempt("DPDK runtime folder", lambda: runtime_folder(cfg.eal.file_prefix)))
    if stats_json:
        findings.append(attempt("--stats-json", lambda: writable_file(stats_json)))
    return findings


def attempt(what, check):
    try:
        return Finding(True, f"{what}: {check()}")
    except FlowOSError as e:
        return Finding(False, f"{what}: {e}")


def configuration(cfg):
    routes = ", ".join(f"{a} -> {b}" for a, b in cfg.forward)
    how = "as processes" if worker_processes(cfg) else "as threads"
    return (f"configuration {cfg.source}: {len(cfg.ports)} port(s) ({', '.join(p.name for p in cfg.ports)}), "
            f"forwarding {routes}; {len(cfg.flows)} flow definition(s); {cfg.run.workers} worker(s) {how} on "
            f"CPU(s) {eal_args.cpu_list(cfg.eal.worker_cpus)}")


def construct_processors(cfg):
    """Makes an instance of each Python and Cython processor, with its parameters, and drops it:
    its constructor is the check of its parameters, which a run makes as it starts (one instance
    per worker, ProcessorSpec.instantiate); --check starts nothing, so it makes one of each here.
    Raises the ConfigError a run would."""
    for spec in flow_defs.processor_specs(cfg.flows):
        if spec.python is not None:
            spec.instantiate()


def processors(cfg):
    """One line per processor of the pipelines: the configuration's reading imported each Python
    and Cython one (construct_processors constructed it) and checked each built-in's parameters."""
    for spec in flow_defs.processor_specs(cfg.flows):
        if spec.python is None:
            yield f"processor {spec.name} ({spec.where}): built-in, parameters valid"
        else:
            tier = "Cython" if spec.cython else "Python"
            yield f"processor {spec.name} ({spec.where}): {tier}, imported and constructed with its parameters"


def dpdk():
    """DPDK's version, from the librte_eal flowos.boundary._runtime loaded, and its driver folder."""
    eal = pmd_info.loaded_objects("librte_eal")
    if not eal:
        return "linked into flowos.boundary._runtime (no librte_eal.so loaded): its drivers are built in"
    lib = ctypes.CDLL(eal[0])
    lib.rte_version.restype = ctypes.c_char_p
    folder = pmd_info.plugin_dir()
    if folder is not None and not os.path.isdir(folder):
        raise FlowOSError(f"{lib.rte_version().decode()} ({eal[0]}) loads its drivers from {folder}, which does not "
                          "exist: install DPDK's drivers (Debian: apt install dpdk)")
    return f"{lib.rte_version().decode()} ({eal[0]}), drivers in {folder or 'librte_eal itself'}"


def describe_port(port):
    if port.kind == "pci":
        return pci_port(port.device)
    declared = pmd_info.find(port.driver)
    folder = pmd_info.plugin_dir()
    if declared is None and folder is not None:
        raise FlowOSError(f"{port.device}: DPDK has no driver {port.driver} in {folder}")
    parts = [f"{port.device}, driver {os.path.basename(declared.path) if declared else port.driver}"]
    if port.capture is not None:
        again = "endlessly" if port.capture_source is None else "once"
        parts.append(f"replays {port.arg('rx_pcap')} ({port.capture.packets} packets, {again})")
    if port.driver == "net_pcap" and port.arg("tx_pcap"):
        parts.append(f"writes {port.arg('tx_pcap')}")
    if port.driver == "net_af_packet":
        iface = port.arg("iface")
        state = Path(f"/sys/class/net/{iface}/operstate").read_text().strip()
        parts.append(f"interface {iface} (MTU {interface_mtu(iface)}, {state})")
    return "; ".join(parts)


def pci_port(address):
    """A PCI NIC: DPDK has a driver for it, and it is bound to a kernel module that driver works
    with (vfio-pci, uio_pci_generic; or the NIC's own for bifurcated drivers such as mlx5's)."""
    sysfs = Path("/sys/bus/pci/devices", address)
    vendor, device = (int((sysfs / name).read_text(), 16) for name in ("vendor", "device"))
    ids = f"{vendor:04x}:{device:04x}"
    declared = pmd_info.find_pci(vendor, device)
    if declared is None:
        raise FlowOSError(f"{address} ({ids}): no DPDK network driver declares this device")
    bound = os.path.basename(os.readlink(sysfs / "driver")) if (sysfs / "driver").exists() else None
    modules = declared.kernel_modules()
    if bound not in modules:
        raise FlowOSError(f"{address} ({ids}, DPDK driver {declared.name}) is bound to "
                          f"{bound or 'no kernel driver'}; {declared.name} needs one of {', '.join(modules)} "
                          f"({BIND_HINT.format(address=address)})")
    if bound == "vfio-pci":
        vfio_usable(address, sysfs)
    return f"{address} ({ids}), DPDK driver {declared.name}, bound to {bound}"


def vfio_usable(address, sysfs):
    """vfio-pci needs /dev/vfio and the device's IOMMU group (or vfio's no-IOMMU mode)."""
    if not os.path.exists("/dev/vfio/vfio"):
        raise FlowOSError(f"{address} is bound to vfio-pci, but there is no /dev/vfio/vfio (modprobe vfio-pci)")
    group = sysfs / "iommu_group"
    if not group.exists():
        noiommu = VFIO_NOIOMMU.read_text().strip() if VFIO_NOIOMMU.exists() else "N"
        if noiommu != "Y":
            raise FlowOSError(f"{address} has no IOMMU group: turn the IOMMU on (intel_iommu=on or amd_iommu=on on "
                              "the kernel command line), or allow vfio without one (enable_unsafe_noiommu_mode)")
        return
    name = os.path.basename(os.readlink(group))
    if not os.path.exists(f"/dev/vfio/{name}") and not os.path.exists(f"/dev/vfio/noiommu-{name}"):
        raise FlowOSError(f"{address}: no /dev/vfio/{name} for its IOMMU group {name}")


def memory(cfg):
    """The pool and the memory the run needs, in the mode it would run in (runner.Bridge.start's
    own reckoning: hugepages when enough are free, or --no-huge)."""
    mbufs = cfg.pool.mbufs or runner.pool_size(cfg)
    if cfg.flows:
        runner.keep_budget(cfg, mbufs)
    mode = runner.memory_mode(cfg, mbufs)
    return f"{mode.mode}, {mode.memory_mb} MB for a pool of {mbufs} mbufs ({mode.reason})"


def runtime_folder(prefix):
    """The EAL makes its runtime folder under runtime_base(). A file prefix a running flowos-run
    holds (its control socket answers; a DPDK primary with shared memory also locks its config
    file) would make this run refuse to start."""
    base = Path(control_server.runtime_base())
    existing = next(p for p in (base, *base.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FlowOSError(f"{base}: cannot create or write in it ({existing} is not writable by this user)")
    if prefix is None:
        return f"{base}, writable (file prefix flowos-<pid>: one of its own)"
    control = base / prefix / control_server.SOCKET_NAME
    if control.exists() and control_server.served(control):
        raise FlowOSError(f"file prefix {prefix!r} is in use: a running flowos-run serves {control} "
                          "(stop it, or give another eal.file_prefix)")
    config = base / prefix / "config"      # a DPDK primary with shared memory (worker processes) locks it
    if config.exists():
        with open(config, "r+b") as f:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise FlowOSError(f"file prefix {prefix!r} is in use: a running DPDK process holds {config} "
                                  "(stop it, or give another eal.file_prefix)") from None
    return f"{base / prefix}, writable, file prefix {prefix!r} not in use"


def writable_file(path):
    folder = Path(path).absolute().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise FlowOSError(f"{path}: cannot write in {folder}")
    return f"{path}, writable"


def report(cfg, stats_json, console, errors):
    """Prints each check; returns whether the run can start here."""
    findings = run_checks(cfg, stats_json)
    for finding in findings:
        console.print(f"{'ok' if finding.ok else 'PROBLEM'}: {finding.text}", markup=False, soft_wrap=True)
    for note in cfg.notes:      # what a run says as it starts: worth knowing before
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    problems = [f for f in findings if not f.ok]
    if problems:
        errors.print(f"flowos-run: error: --check found {len(problems)} problem(s) (above); nothing was started",
                     markup=False, soft_wrap=True)
        return False
    console.print(f"flowos-run: check passed: {cfg.source} can run on this machine; nothing was started",
                  markup=False, soft_wrap=True)
    return True
