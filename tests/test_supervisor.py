"""The supervisor (flowos/runtime/supervisor.py, docs/operations.md): whatever a processor does (loop in
Python, sleep, segfault, call os._exit, hold the GIL for ever), flowos-run ends with a non-zero
status within a bounded time of being told to stop (at once, after a crash), --stats-json says
how the data plane ended and names the processor, and nothing of the run's file prefix is left in
the runtime, hugepage or shared-memory folders. Bounds are generous: robust under load."""
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import DATA, kill_flowos, remove_runtime_folder, runtime_folder, start_flowos, unique_prefix
from cybuild import CYPROBE, meson_build
from test_watchdog import Lines

TESTS = Path(__file__).parent
EXIT_STUCK, EXIT_CRASHED = 1, 3
BUDGET_MS = 300
# Seconds from being told to stop (or from the crash) to the exit; the box's own bound with this
# budget is 6.8 s (flowos.runtime.supervisor.stop_bound), a crash ends it at once.
EXIT_BOUND = 25.0


@pytest.fixture(scope="module")
def cyprobe(tmp_path_factory):
    """The Cython test processors (cyprobe: Segfaults, HoldsTheGil), built as a user builds them."""
    return meson_build(CYPROBE, tmp_path_factory.mktemp("cyprobe"))


@pytest.fixture(autouse=True)
def importable(monkeypatch, cyprobe):
    paths = [str(cyprobe), str(TESTS), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


class Box:
    """flowos-run with one processor on a capture replayed for ever, watched from here."""

    def __init__(self, tmp_path, processor, *args):
        cfg = {"flows": [{"name": "all", "pipeline": [processor]}], "forward": ["a -> a"],
               "run": {"call_budget_ms": BUDGET_MS},
               "ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={DATA}/udp_echo.pcap,infinite_rx=1,tx_pcap=/dev/null"}]}
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
        self.stats_path = tmp_path / "stats.json"
        self.proc = start_flowos("-c", str(tmp_path / "run.yaml"), "--stats-json", str(self.stats_path), *args,
                                 tmp_path=tmp_path)
        self.prefix = self.proc.file_prefix
        self.out, self.err = Lines(self.proc.stdout), Lines(self.proc.stderr)

    def ends_within(self, seconds):
        """Waits for the exit: its status, stderr and --stats-json (the test fails if it does not end)."""
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {seconds} s on: {''.join(self.err.seen)}")
        stderr = self.err.rest()
        assert self.stats_path.exists(), f"no --stats-json; exit {self.proc.returncode}: {stderr}"
        return self.proc.returncode, stderr, json.loads(self.stats_path.read_text())

    def left_behind(self):
        """What is left of the run's file prefix: its runtime folder, hugepage files, /dev/shm
        entries, DPDK log."""
        left = [runtime_folder(self.prefix), Path(tempfile.gettempdir(), f"{self.prefix}.log")]
        left += Path("/dev/hugepages").glob(f"{self.prefix}map_*")
        left += [p for p in Path("/dev/shm").glob(f"{self.prefix}*") if p.name == self.prefix or
                 p.name[len(self.prefix)] in "._" or p.name[len(self.prefix):].startswith("map_")]
        return [str(p) for p in left if p.exists()]


@pytest.fixture
def box(tmp_path):
    boxes = []

    def start(*args):
        boxes.append(Box(tmp_path, *args))
        return boxes[-1]

    yield start
    for b in boxes:
        kill_flowos(b.proc)


def check_ended(report, how, processor, stderr):
    ended = report["ended"]
    assert ended["how"] == how, ended
    assert ended["processor"] == processor and ended["call"] == "process", ended
    assert processor in stderr


def test_a_segfault_in_a_cython_processor_ends_the_box_and_is_reported(box):
    run = box("cyprobe:Segfaults")
    began = time.monotonic()
    status, stderr, report = run.ends_within(EXIT_BOUND)
    assert time.monotonic() - began < EXIT_BOUND
    assert status == EXIT_CRASHED, stderr
    check_ended(report, "crashed", "cyprobe:Segfaults", stderr)
    assert report["ended"]["signal"] == "SIGSEGV" and report["ended"]["flow_definition"] == "all"
    assert "was killed by SIGSEGV while in processor cyprobe:Segfaults, process() (flow definition all, worker 0)" in stderr
    assert "lost: " in stderr and report["ended"]["lost"]
    assert str(runtime_folder(run.prefix)) in report["ended"]["removed"]
    assert run.left_behind() == []


def test_os_exit_in_a_python_processor_ends_the_box_and_is_reported(box):
    run = box("pyprocs.crash:Exits")
    status, stderr, report = run.ends_within(EXIT_BOUND)
    assert status == EXIT_CRASHED, stderr
    check_ended(report, "crashed", "pyprocs.crash:Exits", stderr)
    assert report["ended"]["exit_status"] == 42 and report["ended"]["signal"] is None
    assert "exited with status 42 without finishing the run while in processor pyprocs.crash:Exits" in stderr
    assert run.left_behind() == []


def test_the_statistics_of_a_crashed_run_are_its_last_snapshot(box):
    """The data plane sends its statistics every 0.5 s: a crash 1.5 s into the run leaves
    --stats-json with the ports', the engine's and the processors' counts of then."""
    run = box({"pyprocs.crash:Exits": {"after": 1.5}})
    status, stderr, report = run.ends_within(EXIT_BOUND)
    assert status == EXIT_CRASHED, stderr
    check_ended(report, "crashed", "pyprocs.crash:Exits", stderr)
    assert report["stop_reason"] == "crash" and report["elapsed_s"] >= 0.5
    assert report["ports"][0]["rx_packets"] > 0 and report["totals"]["tx_packets"] > 0
    assert report["engine"]["stats"]["packets"] > 0 and report["engine"]["stats"]["flows_active"] == 1
    proc = report["engine"]["flows"][0]["processors"][0]
    assert proc["name"] == "pyprocs.crash:Exits" and proc["calls"] > 0 and proc["report"]["calls"] > 0
    assert "its last snapshot, at " in report["ended"]["lost"] and "the end of its 1 active flow " in stderr
    assert run.left_behind() == []


@pytest.mark.parametrize("stop", ["duration", "SIGINT", "SIGTERM"])
def test_a_cython_processor_holding_the_gil_for_ever_is_killed_in_bounded_time(box, stop):
    """Nothing runs Python in the data plane once the GIL is held for ever, its watchdog neither:
    the supervisor kills it once its bound is past, and names the processor from the call record."""
    run = box("cyprobe:HoldsTheGil", *(["--duration", "1"] if stop == "duration" else []))
    run.err.wait_for("cyprobe: HoldsTheGil holds the GIL", timeout=60)
    told = time.monotonic()
    if stop != "duration":
        run.proc.send_signal(getattr(signal, stop))
    status, stderr, report = run.ends_within(EXIT_BOUND)
    assert time.monotonic() - told < EXIT_BOUND
    assert status == EXIT_CRASHED, stderr
    check_ended(report, "killed", "cyprobe:HoldsTheGil", stderr)
    reason = "duration" if stop == "duration" else f"signal ({stop})"
    assert report["stop_reason"] == reason and report["ended"]["signal"] == "SIGKILL"
    assert f"did not end within 6.8 s of being told to stop ({reason}) and was killed" in stderr
    assert run.left_behind() == []


def test_a_loop_in_python_is_interrupted_and_reported(box):
    run = box("pyprocs.stuck:LoopsForever", "--duration", "1")
    status, stderr, report = run.ends_within(1 + EXIT_BOUND)
    assert status == EXIT_STUCK, stderr
    check_ended(report, "stuck", "pyprocs.stuck:LoopsForever", stderr)
    assert report["ended"]["lost"] is None and report["mbufs"]["in_use_at_exit"] == 0   # torn down as usual
    assert run.left_behind() == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_processor_that_sleeps_for_ever_is_named_and_the_box_ends(box, signum):
    run = box("pyprocs.stuck:SleepsForever")
    run.err.wait_for("flowos: watchdog: processor pyprocs.stuck:SleepsForever in process() for", timeout=60)
    told = time.monotonic()
    run.proc.send_signal(signum)
    status, stderr, report = run.ends_within(EXIT_BOUND)
    assert time.monotonic() - told < EXIT_BOUND
    assert status == EXIT_STUCK, stderr
    check_ended(report, "stuck", "pyprocs.stuck:SleepsForever", stderr)
    assert "mbufs still in use" in report["ended"]["lost"]
    assert run.left_behind() == []


def test_a_clean_run_says_so_and_keeps_its_exit_status(box):
    run = box("pyprocs.stuck:SlowMessages", "--duration", "0.5")
    status, stderr, report = run.ends_within(60)
    assert status == 0, stderr
    assert report["ended"] == {"how": "stopped"} and report["stop_reason"] == "duration"
    assert run.left_behind() == []


def test_the_data_plane_ends_with_its_supervisor(box):
    """SIGKILL for flowos-run (which nothing can catch) ends its data plane too: no box polls on
    unwatched, holding its hugepages."""
    run = box("pyprocs.stuck:SlowMessages")
    run.out.wait_for("flowos: control: ", timeout=60)
    children = Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    run.proc.kill()
    run.proc.wait()
    end = time.monotonic() + 30
    while Path(f"/proc/{children[0]}").exists() and time.monotonic() < end:
        time.sleep(0.05)
    assert not Path(f"/proc/{children[0]}").exists()
    remove_runtime_folder(run.prefix)    # what a SIGKILL leaves, as before
    Path(tempfile.gettempdir(), f"{run.prefix}.log").unlink()


def test_remove_leftovers_takes_the_prefix_s_files_only(tmp_path):
    """What a dead process of a file prefix leaves, and only that: its runtime folder, its
    hugepage files, its /dev/shm entries, its log; not another prefix's that starts alike."""
    from flowos.runtime import supervisor
    prefix = unique_prefix()
    other = f"{prefix}0"      # another instance's prefix, which starts with this one
    huge = tmp_path / "huge"
    huge.mkdir()
    folder = runtime_folder(prefix)
    folder.mkdir(parents=True)
    (folder / "config").write_text("")
    mine = [huge / f"{prefix}map_0", huge / f"{prefix}map_17", Path(f"/dev/shm/{prefix}.seg"), tmp_path / "run.log"]
    theirs = [huge / f"{other}map_0", huge / f"{prefix}map_x", Path(f"/dev/shm/{other}")]
    try:
        for path in mine + theirs:
            path.write_text("")
        removed = supervisor.remove_leftovers(prefix, str(huge), str(tmp_path / "run.log"))
        assert sorted(removed) == sorted([str(folder)] + [str(p) for p in mine])
        assert not folder.exists() and not any(p.exists() for p in mine)
        assert all(p.exists() for p in theirs)
    finally:
        for path in mine + theirs:
            path.unlink(missing_ok=True)
        if folder.exists():
            for entry in folder.iterdir():
                entry.unlink()
            folder.rmdir()
