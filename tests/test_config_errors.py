"""Every malformed configuration or flag the user can give exits 2 with one line on stderr that
names the file and key, or the flag, and says what was expected: before DPDK starts, never a
traceback, never exit 1, never a run that ignores it (issue 12)."""
from pathlib import Path

import pytest

from flowos.configuration import eal_args

from conftest import DATA, run_flowos
from test_errors import BAD_INPUT, assert_one_line_error

PORT = "ports: [{name: a, vdev: net_null0}]\n"
SMALL_RINGS = "ports: [{name: a, vdev: net_null0, rx_descriptors: 64, tx_descriptors: 64}]\n"
PIPELINE = "flows: [{name: all, pipeline: %s}]\n"
CPUS = eal_args.usable_cpus()   # what this machine lets the workers take
CPU = CPUS[-1]

# (config file text or None, extra flags, the key or flag the line names, what else it says)
CASES = {
    "pool-too-small": (PORT + "pool: {mbufs: 1000}", [], "pool.mbufs", "too few"),
    "mbufs-flag-too-small": (None, ["--vdev", "net_null0", "--mbufs", "1000"], "--mbufs", "too few"),
    "cache-larger-than-pool": (SMALL_RINGS + "pool: {mbufs: 300, cache: 256}", [], "pool.cache", "at most"),
    "eight-stages": (PORT + PIPELINE % ("[" + ", ".join(["counter"] * 8) + "]"), [],
                     "flows[0].pipeline", "at most 7 stages"),
    "seventeen-processors": (PORT + PIPELINE % ("[[" + ", ".join(["counter"] * 17) + "]]"), [],
                             "flows[0].pipeline", "at most 16 processors"),
    "flows-mapping": (PORT + "flows: {}", [], "flows", "expected a list"),
    "ports-mapping": ("ports: {}", [], "ports", "expected a list"),
    "eal-list": (PORT + "eal: []", [], "eal", "expected a mapping"),
    "worker-cpu-in-config": (PORT + "eal: {worker_cpu: 4096}", [], "eal.worker_cpu", "4096"),
    "worker-cpu-flag": (None, ["--vdev", "net_null0", "--worker-cpu", "4096"], "--worker-cpu", "4096"),
    "workers-zero": (PORT + "run: {workers: 0}", [], "run.workers", "expected an integer in 1..127 or auto"),
    "workers-flag-word": (None, ["--vdev", "net_null0", "--workers", "all"], "--workers", "or auto, got 'all'"),
    "workers-flag-zero": (None, ["--vdev", "net_null0", "--workers", "0"], "--workers", "1..127 or auto"),
    "worker-cpus-not-a-list": (PORT + "eal: {worker_cpus: 1}", [], "eal.worker_cpus", "expected a list"),
    "worker-cpus-outside-affinity": (PORT + "eal: {worker_cpus: [4096]}", [], "eal.worker_cpus", "worker CPU 4096"),
    "worker-cpus-flag-outside-affinity": (None, ["--vdev", "net_null0", "--worker-cpus", f"{CPU},4096"],
                                          "--worker-cpus", "worker CPU 4096"),
    "worker-cpus-flag-malformed": (None, ["--vdev", "net_null0", "--worker-cpus", "3-1"], "--worker-cpus",
                                   "expected CPU ids and ranges such as 2,3,5-7"),
    "worker-cpu-and-cpus": (PORT + "eal: {worker_cpu: 0, worker_cpus: [0]}", [], "eal.worker_cpus",
                            "give eal.worker_cpu (one worker) or eal.worker_cpus, not both"),
    "worker-cpu-and-cpus-flags": (None, ["--vdev", "net_null0", "--worker-cpu", "0", "--worker-cpus", "0"],
                                  "--worker-cpus", "give --worker-cpu (one worker) or --worker-cpus, not both"),
    "workers-and-cpus-differ": (None, ["--vdev", "net_null0", "--workers", "2", "--worker-cpus", str(CPU)],
                                "--workers", f"2 workers, but --worker-cpus gives 1 CPU(s) ({CPU})"),
    "eal-args-entry": (PORT + "eal: {args: [--bogus]}", [], "eal.args[0]", "'--bogus'"),
    "eal-arg-flag": (None, ["--vdev", "net_null0", "--eal-arg=--bogus"], "--eal-arg", "'--bogus'"),
    "not-utf8": (b"ports: [{name: \xff\xfe, vdev: net_null0}]\n", [], "", "not UTF-8"),
    "duration-nan": (None, ["--vdev", "net_null0", "--duration", "nan"], "--duration", "finite"),
    "duration-huge": (None, ["--vdev", "net_null0", "--duration", "1e400"], "--duration", "finite"),
    "duration-nan-in-config": (PORT + "run: {duration: .nan}", [], "run.duration", "finite"),
    "timeout-inf-in-config": (PORT + "engine: {timeouts: {udp: .inf}}", [], "engine.timeouts.udp", "finite"),
    "too-many-flows": (PORT + "flows: [" + ", ".join(f"{{name: f{i}}}" for i in range(2000)) + "]", [],
                       "flows", "at most 1024"),
    "vdev-key-typo": (None, ["--vdev", f"net_pcap0,rxpcap={DATA}/udp_echo.pcap"], "--vdev",
                      "unknown argument 'rxpcap'"),
    "vdev-value-not-a-number": (None, ["--vdev", "net_null0,size=abc"], "--vdev", "size=abc: expected a number"),
    "file-prefix-flag": (None, ["--vdev", "net_null0", "--file-prefix", "a/b"], "--file-prefix", "letters, digits"),
    "packets-past-64-bits": (None, ["--vdev", "net_null0", "--packets", str(2**64)], "--packets", "expected an integer"),
    "worker-process-queues": (PORT + "run: {worker_process_queues: direct}", [], "run.worker_process_queues",
                              "own"),
    "source-idle-past-32-bits": (PORT + f"run: {{source_idle_ms: {2**32}}}", [], "run.source_idle_ms",
                                 "expected an integer"),
    "mbufs-past-31-bits": (None, ["--vdev", "net_null0", "--mbufs", str(2**31)], "--mbufs", "expected an integer"),
    "memory-mb-past-the-machine": (None, ["--vdev", "net_null0", "--memory-mb", str(2**40)], "--memory-mb",
                                   "more than the"),
    "limits-list": (PORT + "flows: [{name: a, limits: []}]", [], "flows[0].limits", "expected a mapping"),
    "pci-missing": ("ports: [{name: a, pci: 'ffff:ff:1f.7'}]", [], "ports[0]", "no PCI device ffff:ff:1f.7"),
    "vdev-key-typo-in-config": ("ports: [{name: a, vdev: 'net_null0,sise=64'}]", [], "ports[0]",
                                "unknown argument 'sise'"),
    # Any driver's arguments, as its shared object declares them (flowos/runtime/pmd_info.py).
    "vdev-memif-key": (None, ["--vdev", "net_memif0,bogus=1"], "--vdev", "unknown argument 'bogus' for net_memif"),
    "vdev-vhost-key": (None, ["--vdev", "net_vhost0,ifacee=x"], "--vdev", "unknown argument 'ifacee' for net_vhost"),
    "vdev-virtio-user-key-in-config": ("ports: [{name: a, vdev: 'net_virtio_user0,pathh=/dev/vhost-net'}]", [],
                                       "ports[0]", "unknown argument 'pathh' for net_virtio_user"),
    "vdev-failsafe-key": (None, ["--vdev", "net_failsafe0,dev(net_null0,size=64),bogus=2"], "--vdev",
                          "unknown argument 'bogus' for net_failsafe"),
    "vdev-memif-value-not-a-number": (None, ["--vdev", "net_memif0,bsize=big"], "--vdev", "bsize=big: expected a number"),
    "vdev-pci-driver": (None, ["--vdev", "net_ixgbe0"], "--vdev", "a PCI device's driver"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_config_or_flag_is_one_line_and_exit_2(tmp_path, case):
    text, flags, names, says = CASES[case]
    argv = list(flags)
    prefix = names
    if text is not None:
        path = tmp_path / "bad.yaml"
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        argv += ["-c", str(path)]
        prefix = f"{path}: {names}" if names else str(path)
    run = run_flowos(*argv, tmp_path=tmp_path, stats=False, timeout=30)
    assert_one_line_error(run, BAD_INPUT, says)
    line = run.stderr.strip()
    if text is not None:
        assert line.startswith(f"flowos-run: error: {prefix}"), line
    else:
        assert names in line, line


@pytest.mark.parametrize("text", [
    PORT + "pool: {mbufs: 262143}",
    PORT + "pool: {mbufs: 65535}\nengine: {capacity: 1024}\nflows: [{name: all, pipeline: ['pyprocs.verdicts:PassAll']}]",
    PORT + "engine: {capacity: 1024}\nflows: [{name: all, limits: {hold_packets: 65536}}]",
    PORT + "engine: {capacity: 4096}\nflows: [{name: all, pipeline: ['pyprocs.cstate:LargeState']}]",
], ids=["large-pool", "python-processor", "long-hold", "cython-state"])
def test_valid_pools_get_the_memory_they_need(tmp_path, text, monkeypatch):
    """Without hugepages DPDK puts no mbuf across a 4 KiB page, so one of 2 KiB takes a page: the
    memory FlowOS sizes for itself must count that (eal_args.pool_memory_mb), and the engine's
    windows, which grow with limits.hold_packets (eal_args.window_memory_mb), and what Cython
    processors' state_size asks for every flow of engine.capacity (64 KiB x 4096 here)."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))   # pyprocs
    path = tmp_path / "pool.yaml"
    path.write_text(text)
    run = run_flowos("-c", str(path), "--packets", "1000", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stats["mbufs"]["in_use_at_exit"] == 0


@pytest.mark.parametrize("vdev, accepted", [
    ("net_memif0,secrett=x", "id, role, bsize, rsize, socket, socket-abstract, mac, zero-copy, secret"),
    ("net_vhost0,ifacee=x", "iface, queues, client, iommu-support, postcopy-support, tso, linear-buffer, ext-buffer"),
    ("net_pcap0,infinite=1", "rx_pcap, tx_pcap, rx_iface, rx_iface_in, tx_iface, iface, phy_mac, infinite_rx"),
    ("net_tun0,persistt", "iface, remote, mac, persist"),
], ids=["memif", "vhost", "pcap", "tun"])
def test_an_unknown_vdev_argument_is_named_with_the_drivers_own(tmp_path, vdev, accepted):
    """The line lists what the driver takes (DPDK 22.11's valid_arguments of each): read from the
    driver's object, whose record glues some names to the value before them (net_memif's
    "...socket-abstract=yes|nomac=...|nosecret=<string>", net_pcap's "phy_mac=<int>infinite_rx"),
    plus what it takes without declaring (net_tun's remote, mac, persist)."""
    run = run_flowos("--vdev", vdev, tmp_path=tmp_path, stats=False, timeout=30)
    assert_one_line_error(run, BAD_INPUT, f"unknown argument '{vdev.split(',')[1].split('=')[0]}'")
    assert f"(accepted: {accepted})" in run.stderr, run.stderr
