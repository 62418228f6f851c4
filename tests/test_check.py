"""flowos-run --check (flowos/apps/check.py): a configuration and this machine checked without
starting anything; exit 0 with each check printed, or 2 with the problems. Real config files,
real devices of this machine, a file prefix a real run holds."""
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DATA, FLOWOS_RUN, kill_flowos, packets, runtime_folder, start_flowos, unique_prefix
from flowos.runtime import pmd_info

PCI = Path("/sys/bus/pci/devices")
NETWORK_CLASS = 0x02         # PCI base class: network controller


def check(*args, cwd):
    done = subprocess.run([FLOWOS_RUN, "--check", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=60)
    return done.returncode, done.stdout, done.stderr


def lines(output, kind):
    return [line[len(kind) + 2:] for line in output.splitlines() if line.startswith(kind + ": ")]


def test_a_config_that_can_run_passes_and_nothing_starts(tmp_path):
    out = tmp_path / "out.pcap"
    config = tmp_path / "flowos.yaml"
    config.write_text(f"""
ports:
  - {{name: lan, vdev: "net_pcap0,rx_pcap={DATA}/http_get.pcap,tx_pcap={out}"}}
flows:
  - name: web
    match: {{proto: tcp}}
    pipeline: [counter, {{pyprocs.verdicts:DropProto: {{proto: 17}}}}]
""")
    prefix = unique_prefix()
    code, stdout, stderr = check("-c", config, "--file-prefix", prefix, "--memory", "no-huge",
                                 "--stats-json", tmp_path / "stats.json", cwd=Path(__file__).parent)
    assert (code, lines(stdout, "PROBLEM"), stderr) == (0, [], "")
    ok = lines(stdout, "ok")
    assert ok[0].startswith(f"configuration {config}: 1 port(s) (lan), forwarding lan -> lan; 1 flow definition(s)")
    assert "processor counter (flows[0].pipeline[0]): built-in, parameters valid" in ok
    assert ("processor pyprocs.verdicts:DropProto (flows[0].pipeline[1]): Python, imported and constructed with its "
            "parameters") in ok
    assert any(line.startswith("DPDK: DPDK 22.11") for line in ok)
    assert f"port lan: net_pcap0, driver librte_net_pcap.so.23.0; replays {DATA}/http_get.pcap " \
           f"({len(packets(DATA / 'http_get.pcap'))} packets, once); writes {out}" in ok
    assert any(line.startswith("memory: no-huge, ") and line.endswith("(asked for)") for line in ok)
    assert f"--stats-json: {tmp_path / 'stats.json'}, writable" in ok
    assert stdout.splitlines()[-1] == f"flowos-run: check passed: {config} can run on this machine; nothing was started"
    assert not out.exists() and not (tmp_path / "stats.json").exists() and not runtime_folder(prefix).exists()


@pytest.mark.parametrize("config, expected", [
    ("ports: [{name: a, vdev: 'net_pcap0,rx_pcap=nosuch.pcap'}]",
     "ports[0]: vdev net_pcap0: rx_pcap {tmp}/nosuch.pcap: no such file"),
    ("ports: [{name: a, vdev: 'net_pcap0,rx_pcap=flowos.yaml'}]", "not a capture file libpcap can read"),
    ("ports: [{name: a, vdev: 'net_af_packet0,iface=nosuchif0'}]", "no network interface 'nosuchif0'"),
    ("ports: [{name: a, pci: '0000:7f:1f.7'}]", "no PCI device 0000:7f:1f.7 on this machine"),
    ("ports: [{name: a, vdev: net_null0}]\nflows: [{name: all, pipeline: [nosuch.module:Proc]}]",
     "flows[0].pipeline[0]: cannot import 'nosuch.module'"),
    ("ports: [{name: a, vdev: net_null0}]\nflows: [{name: all, pipeline: [{pyprocs.faults:Strict: {threshold: 500}}]}]",
     "flows[0].pipeline[0]: pyprocs.faults:Strict rejects its parameters"),
])
def test_a_bad_config_is_one_line_and_exit_2(tmp_path, config, expected):
    path = tmp_path / "flowos.yaml"
    path.write_text(config + "\n")
    code, stdout, stderr = check("-c", path, cwd=Path(__file__).parent)
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"flowos-run: error: {path}: ") and expected.format(tmp=tmp_path) in stderr, stderr


def test_problems_found_on_the_machine_are_each_named(tmp_path):
    """Memory this machine does not have, and a statistics file that cannot be written: both
    named, exit 2, and the checks that passed still listed."""
    code, stdout, stderr = check("--vdev", "net_null0", "--memory", "no-huge", "--memory-mb", 1 << 30,
                                 "--stats-json", tmp_path / "no/such/folder/stats.json", cwd=tmp_path)
    assert code == 2
    problems = lines(stdout, "PROBLEM")
    assert len(problems) == 2
    assert problems[0].startswith("memory: command line: --memory-mb: 1073741824 MB is more than the ")
    folder = tmp_path / "no/such/folder"
    assert problems[1] == f"--stats-json: {folder}/stats.json: cannot write in {folder}"
    assert any(line.startswith("port net_null0: net_null0, driver librte_net_null.so") for line in lines(stdout, "ok"))
    assert stderr.strip() == "flowos-run: error: --check found 2 problem(s) (above); nothing was started"


def test_a_file_prefix_a_running_flowos_holds_is_a_problem(tmp_path):
    proc = start_flowos("--vdev", "net_null0", "--duration", 30, tmp_path=tmp_path)
    try:
        control = runtime_folder(proc.file_prefix) / "flowos_control.sock"
        deadline = time.monotonic() + 20
        while not control.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert control.exists(), proc.stderr.read() if proc.poll() is not None else "no control socket"
        code, stdout, _ = check("--vdev", "net_null0", "--memory", "no-huge", "--file-prefix", proc.file_prefix,
                                cwd=tmp_path)
        assert code == 2 and lines(stdout, "PROBLEM") == [
            f"DPDK runtime folder: file prefix {proc.file_prefix!r} is in use: a running flowos-run serves {control} "
            "(stop it, or give another eal.file_prefix)"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        kill_flowos(proc)
    code, stdout, _ = check("--vdev", "net_null0", "--memory", "no-huge", "--file-prefix", proc.file_prefix,
                            cwd=tmp_path)
    assert code == 0, stdout


def pci_devices():
    """(address, class, vendor, device, bound kernel driver or None) of this machine's PCI devices."""
    for path in sorted(PCI.iterdir()) if PCI.is_dir() else ():
        read = lambda name: int((path / name).read_text(), 16)     # noqa: E731
        driver = (path / "driver").resolve().name if (path / "driver").exists() else None
        yield path.name, read("class") >> 16, read("vendor"), read("device"), driver


def test_a_nic_bound_to_its_kernel_driver_is_a_problem(tmp_path):
    """A NIC DPDK has a driver for, still bound to a kernel driver that DPDK driver cannot work
    with (this VM's virtio NIC, bound to virtio-pci): named, with the modules it takes and how to
    bind it."""
    nic = next(((address, pmd_info.find_pci(vendor, device), driver)
                for address, cls, vendor, device, driver in pci_devices()
                if cls == NETWORK_CLASS and driver is not None and pmd_info.find_pci(vendor, device) is not None
                and driver not in pmd_info.find_pci(vendor, device).kernel_modules()), None)
    if nic is None:
        pytest.skip("no PCI NIC here bound to a kernel driver its DPDK driver cannot work with")
    address, declared, driver = nic
    code, stdout, _ = check("--pci", address, cwd=tmp_path)
    assert code == 2
    problem, = lines(stdout, "PROBLEM")
    assert problem.startswith(f"port {address}: {address} (")
    assert f"DPDK driver {declared.name}) is bound to {driver}; {declared.name} needs one of " in problem
    assert "vfio-pci" in problem and problem.endswith(f"(dpdk-devbind.py --bind=vfio-pci {address})")


def test_a_pci_device_no_dpdk_driver_takes_is_a_problem(tmp_path):
    """A PCI device that is no NIC (a bridge, a disk controller): no DPDK network driver declares it."""
    other = next((address for address, cls, *_ in pci_devices() if cls != NETWORK_CLASS), None)
    if other is None:
        pytest.skip("no PCI device here")
    code, stdout, _ = check("--pci", other, cwd=tmp_path)
    assert code == 2
    problem, = lines(stdout, "PROBLEM")
    assert problem.startswith(f"port {other}: {other} (") and problem.endswith("): no DPDK network driver declares "
                                                                                "this device")


def test_worker_processes_without_the_hugepages_they_need_are_a_problem(tmp_path):
    """Two workers and a Python processor run as worker processes, which need hugepages: asked for
    more memory than the free hugepages hold, the run would fall back to --no-huge, and cannot."""
    from flowos.runtime import hugepages, runner
    config = tmp_path / "flowos.yaml"
    config.write_text("ports: [{name: a, vdev: net_null0}]\nrun: {workers: 2}\n"
                      "flows: [{name: all, pipeline: [pyprocs.verdicts:PassAll]}]\n")
    asked = hugepages.probe().free_mb + 2048       # past the free hugepages, and enough without them
    if (runner.available_memory_mb() or 0) < asked:
        pytest.skip(f"needs {asked} MB of available memory")
    code, stdout, _ = check("-c", config, "--memory-mb", asked, cwd=Path(__file__).parent)
    assert code == 2
    problem, = lines(stdout, "PROBLEM")
    assert problem.startswith(f"memory: {config}: eal.memory: the workers run as worker processes "
                              "(docs/configuration.md), which need hugepages, and there are none to use (")


def test_an_af_packet_port_names_its_interface_and_the_notes_a_run_would_print(tmp_path):
    mtu = int(Path("/sys/class/net/lo/mtu").read_text())
    state = Path("/sys/class/net/lo/operstate").read_text().strip()
    code, stdout, _ = check("--vdev", "net_af_packet0,iface=lo", "--memory", "no-huge", cwd=tmp_path)
    assert code == 0, stdout
    assert (f"port net_af_packet0: net_af_packet0, driver librte_net_af_packet.so.23.0; interface lo (MTU {mtu}, "
            f"{state})") in lines(stdout, "ok")
    if mtu > 12190:      # past the largest ring frame FlowOS picks itself (devices.AF_PACKET_MAX_AUTO_FRAME)
        assert any("will be cut short by the kernel" in note for note in lines(stdout, "note"))
