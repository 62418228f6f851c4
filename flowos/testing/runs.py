"""flowos-run in a subprocess, each run with its own EAL and DPDK file prefix: to completion
(run_flowos), or in the background (start_flowos, kill_flowos). A process of ours that had to be
killed cannot remove its runtime folder and hugepage files itself: remove_runtime_folder does."""
import itertools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def _flowos_run():
    """The flowos-run of this interpreter's environment (a venv's bin), else the one on PATH."""
    beside = Path(sys.executable).with_name("flowos-run")
    return str(beside) if beside.exists() else shutil.which("flowos-run") or str(beside)


FLOWOS_RUN = _flowos_run()
_counter = itertools.count()
# file prefix -> the test that made it (PYTEST_CURRENT_TEST), for a check that none is left behind
made_prefixes = {}


def unique_prefix():
    """A DPDK file prefix of this process's own: fot<pid>-<n>."""
    prefix = f"fot{os.getpid()}-{next(_counter)}"
    made_prefixes[prefix] = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
    return prefix


def runtime_folder(prefix):
    """Where the EAL of a process with this file prefix keeps its runtime files."""
    from flowos.runtime.control_server import runtime_base
    return Path(runtime_base(), prefix)


# What a DPDK primary that secondaries may attach to (worker processes) keeps in its runtime folder.
SHARED_CONFIG = ("config", "hugepage_info", "fbarray_")


def hugepage_files(prefix):
    """The hugepage files a DPDK process with this file prefix made (a primary that worker
    processes attach to keeps them until its cleanup)."""
    from flowos.runtime import hugepages
    mount = hugepages.probe().mount
    return sorted(Path(mount).glob(f"{prefix}map_*")) if mount else []


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
    folder.rmdir()      # anything else in it is left, for a check to name


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    stats: dict | None      # the --stats-json, None when the run wrote none


def processor_env():
    """This process's environment, with PYTHONPATH set to what this interpreter imports from (and
    PYTHONPATH as it was, after): a processor the test can import, flowos-run can too."""
    given = os.environ.get("PYTHONPATH", "")
    here = [p for p in sys.path if p and os.path.isdir(p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(here + ([given] if given else [])))}


def run_flowos(*args, tmp_path, memory="no-huge", timeout=60, stats=True, env=None, prefix_argv=()):
    """Runs flowos-run to completion in tmp_path; returns its exit code, output and --stats-json.
    prefix_argv: what runs it (["ip", "netns", "exec", ns]: inside a namespace)."""
    stats_path = Path(tmp_path) / f"stats-{next(_counter)}.json"
    argv = [*prefix_argv, FLOWOS_RUN, "--no-dashboard", "--file-prefix", unique_prefix(), *map(str, args)]
    if memory:
        argv += ["--memory", memory]
    if stats:
        argv += ["--stats-json", str(stats_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)
    data = json.loads(stats_path.read_text()) if stats_path.exists() else None
    return Run(done.returncode, done.stdout, done.stderr, data)


def start_flowos(*args, tmp_path, memory="no-huge", prefix_argv=()):
    """Starts flowos-run in the background; the caller ends it (kill_flowos if it must).
    prefix_argv: as run_flowos's (`ip netns exec` execs flowos-run: the same process)."""
    prefix = unique_prefix()
    argv = [*prefix_argv, FLOWOS_RUN, "--no-dashboard", "--file-prefix", prefix, "--memory", memory,
            *map(str, args)]
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
