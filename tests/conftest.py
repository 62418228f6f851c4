"""Shared helpers: run flowos-run in a subprocess (each with its own EAL and file prefix) and
read captures independently of FlowOS, with scapy."""
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.utils import RawPcapReader

DATA = Path(__file__).parent / "data"
CAPTURES = sorted(DATA.glob("*.pcap"))
FLOWOS_RUN = str(Path(sys.executable).with_name("flowos-run"))
_prefixes = itertools.count()
_made = {}     # file prefix -> the test that made it


def unique_prefix():
    """A DPDK file prefix of this process's own; the suite checks at its end that no runtime
    folder of one is left (runtime_folders_are_removed)."""
    prefix = f"fot{os.getpid()}-{next(_prefixes)}"
    _made[prefix] = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
    return prefix


def runtime_folder(prefix):
    """Where the EAL of a process with this file prefix keeps its runtime files."""
    from flowos.ctl import runtime_base
    return Path(runtime_base(), prefix)


# What a DPDK primary that secondaries may attach to (worker processes) keeps in its runtime folder.
SHARED_CONFIG = ("config", "hugepage_info", "fbarray_")


def remove_runtime_folder(prefix):
    """Removes the runtime folder of a process of ours that could not (killed, or a C harness:
    rte_eal_cleanup leaves it) with the sockets and shared configuration in it, and its hugepage
    files; only ours, by the prefix we gave it."""
    for path in hugepage_files(prefix):
        path.unlink()
    folder = runtime_folder(prefix)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.is_socket() or entry.name.startswith(SHARED_CONFIG):
            entry.unlink()
    folder.rmdir()      # anything else in it is left, and the suite's check names the test


def hugepage_files(prefix):
    """The hugepage files a DPDK process with this file prefix made (a primary that worker
    processes attach to keeps them until its cleanup)."""
    from flowos import hugepages
    mount = hugepages.probe().mount
    return sorted(Path(mount).glob(f"{prefix}map_*")) if mount else []


@pytest.fixture(scope="session", autouse=True)
def runtime_folders_are_removed():
    """Fails the suite (in this worker) when a DPDK runtime folder or a hugepage file of one of
    its prefixes remains."""
    yield
    left = {prefix: test for prefix, test in _made.items() if runtime_folder(prefix).exists()}
    assert not left, "DPDK runtime folders left behind: " + "; ".join(
        f"{runtime_folder(p)} ({t})" for p, t in sorted(left.items()))
    files = {prefix: test for prefix, test in _made.items() if hugepage_files(prefix)}
    assert not files, "hugepage files left behind: " + "; ".join(
        f"{hugepage_files(p)} ({t})" for p, t in sorted(files.items()))


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    stats: dict | None


def run_flowos(*args, tmp_path, memory="no-huge", timeout=60, stats=True, prefix_argv=()):
    """Runs flowos-run to completion; returns its exit code, output and --stats-json.
    prefix_argv: what runs it (["ip", "netns", "exec", ns]: inside a namespace)."""
    stats_path = tmp_path / f"stats-{next(_prefixes)}.json"
    argv = [*prefix_argv, FLOWOS_RUN, "--no-dashboard", "--file-prefix", unique_prefix(), *args]
    if memory:
        argv += ["--memory", memory]
    if stats:
        argv += ["--stats-json", str(stats_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    data = json.loads(stats_path.read_text()) if stats_path.exists() else None
    return Run(done.returncode, done.stdout, done.stderr, data)


def start_flowos(*args, tmp_path, memory="no-huge", prefix_argv=()):
    """Starts flowos-run in the background; the caller ends it (kill_flowos if it must).
    prefix_argv: as run_flowos's (`ip netns exec` execs flowos-run: the same process)."""
    prefix = unique_prefix()
    argv = [*prefix_argv, FLOWOS_RUN, "--no-dashboard", "--file-prefix", prefix, "--memory", memory, *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    proc.file_prefix = prefix
    return proc


def kill_flowos(proc):
    """SIGKILL for a flowos-run of start_flowos that is still running, and what it could not
    remove itself: its runtime folder."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        remove_runtime_folder(proc.file_prefix)


def packets(path):
    """The packets of a capture, as bytes, in order."""
    return [bytes(data) for data, _ in RawPcapReader(str(path))]


def port(stats, name):
    return next(p for p in stats["ports"] if p["name"] == name)


@pytest.fixture
def capture_dir():
    return DATA


@pytest.fixture
def wire():
    """A netns.Wire: client and server namespaces joined through two veth ends in a third
    namespace (the box), ready for flowos-run between them (wire.start_flowos). Everything it
    made is removed afterwards, whatever the test did. Skips where namespaces cannot be made (not root, no iproute2)."""
    import netns
    reason = netns.can_create_namespaces()
    if reason:
        pytest.skip(reason)
    with netns.Wire() as w:
        yield w


def need_tools(*tools):
    """Skips the test, naming them, when any of `tools` is not installed."""
    import netns
    missing = netns.missing_tools(*tools)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/setup installs them)")
