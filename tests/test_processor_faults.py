"""What an operator learns of a processor's faults, and what on_error: stop does: the processor
is not called again after the fault that stops the run, the run ends at once and exits 1,
every time, on a finite capture too (where the end of the input used to mask the fault); any
fault shows in the summary and the exit status; a class that cannot work as a processor is
refused at load. The processors are in tests/pyprocs/stopping.py."""
import os
from pathlib import Path

import pytest
from scapy.all import IP, UDP, Ether

from conftest import run_flowos
from flowcheck import one_port, report, run_config, write_pcap

TESTS = Path(__file__).parent
RUNS = 5     # "every time": the stop used to depend on when the main loop happened to poll, and
             # the end of a tiny capture could come first (3 of 10 runs exited 0)


@pytest.fixture(autouse=True)
def pyprocs_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


def stop_at_call(tmp_path, capture, nth, burst, i):
    """Replays `capture` through FailOnCall, which faults on call `nth` with on_error: stop.
    Returns the run and the calls the processor logged."""
    calls = tmp_path / f"calls-{i}.txt"
    proc = {"pyprocs.stopping:FailOnCall": {"nth": nth, "out": str(calls), "on_error": "stop"}}
    cfg = one_port(capture, tmp_path / f"out-{i}.pcap", [{"name": "all", "pipeline": [proc]}],
                   {"clock": "capture"}, run={"burst": burst})
    run = run_config(tmp_path, cfg, name=f"stop-{i}.yaml")
    return run, [int(line) for line in calls.read_text().split()]


def check_stopped_at_the_fault(run, calls, nth, burst):
    name = "pyprocs.stopping:FailOnCall"
    assert run.returncode == 1, run.stderr
    assert run.stats["stop_reason"] == f"processor fault ({name})", run.stats["stop_reason"]
    assert calls == list(range(1, nth + 1)), f"called again after its fault: {calls}"
    rep = report(run, "all")
    assert rep["calls"] == nth and rep["faults"] == 1
    # The worker stopped right after the burst that faulted: nothing more was received.
    assert run.stats["totals"]["rx_packets"] <= nth * burst, run.stats["totals"]
    assert run.stats["mbufs"]["in_use_at_exit"] == 0
    assert f"flowos-run: error: stopped by a processor fault ({name})" in run.stderr, run.stderr


@pytest.mark.parametrize("capture", ["iperf_tcp.pcap", "mixed.pcap"])
def test_on_error_stop_on_a_finite_capture_stops_at_the_fault_every_time(tmp_path, capture_dir, capture):
    """Call 3 of many faults: no call 4, exit 1, stop_reason names the processor, in each run."""
    for i in range(3):
        run, calls = stop_at_call(tmp_path, capture_dir / capture, nth=3, burst=4, i=i)
        check_stopped_at_the_fault(run, calls, nth=3, burst=4)


def test_on_error_stop_on_the_last_packet_of_a_tiny_capture(tmp_path):
    """The fault comes with the capture's last packet, as the input ends: the fault, not
    input-done, is why the run stopped, and it exits 1, every time."""
    frames = [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + i, dport=53) / b"x" for i in range(3)]
    capture = write_pcap(tmp_path / "tiny.pcap", frames)
    for i in range(RUNS):
        run, calls = stop_at_call(tmp_path, capture, nth=3, burst=1, i=i)
        check_stopped_at_the_fault(run, calls, nth=3, burst=1)


# --- every fault shows: in the summary and the exit status ----------------------------------------

@pytest.mark.parametrize("policy", ["pass", "drop"])
def test_a_run_with_faults_says_so_in_its_summary_and_exits_1(tmp_path, capture_dir, policy):
    """Faults that do not stop the run still make it exit 1, and the summary names the processor,
    its fault count and its first fault's message (not only the traceback shown at the first)."""
    proc = {"pyprocs.faults:Raise": {"where": "process", "on_error": policy}}
    cfg = one_port(capture_dir / "http_get.pcap", tmp_path / "out.pcap", [{"name": "all", "pipeline": [proc]}],
                   {"clock": "capture"})
    run = run_config(tmp_path, cfg)
    assert run.returncode == 1, run.stderr
    rep = report(run, "all")
    assert run.stats["stop_reason"] == "input-done" and rep["faults"] == rep["calls"] > 0
    summary = run.stdout[run.stdout.index("FlowOS summary"):]
    line = next(l for l in summary.splitlines() if l.startswith("processor pyprocs.faults:Raise (flow all): "))
    assert f"{rep['faults']:,} faults in {rep['calls']:,} calls" in line and f"on_error {policy}" in line, line
    assert "Boom: pyprocs process failed on purpose" in line, line
    error = run.stderr.strip().splitlines()[-1]
    assert error == (f"flowos-run: error: 1 processor faulted: pyprocs.faults:Raise {rep['faults']:,} times "
                     f"(on_error {policy})"), run.stderr


def test_a_clean_run_has_no_fault_lines_and_exits_0(tmp_path, capture_dir):
    calls = tmp_path / "calls.txt"
    proc = {"pyprocs.stopping:FailOnCall": {"nth": 0, "out": str(calls)}}   # call 0 never comes
    cfg = one_port(capture_dir / "http_get.pcap", tmp_path / "out.pcap", [{"name": "all", "pipeline": [proc]}],
                   {"clock": "capture"})
    run = run_config(tmp_path, cfg)
    assert run.returncode == 0, run.stderr
    assert report(run, "all")["calls"] == len(calls.read_text().split()) > 0
    assert "fault" not in run.stdout and "error" not in run.stderr, (run.stdout, run.stderr)


# --- a class that cannot work is refused at load --------------------------------------------------

BROKEN = [("NoProcess", "has no process(batch) method"),
          ("ProcessTakesNothing", "has process(self), which cannot take one batch"),
          ("ProcessTakesTwo", "has process(self, batch, extra), which cannot take one batch"),
          ("ProcessIsNotAMethod", "has a process that is int, not a method")]


@pytest.mark.parametrize("cls,says", BROKEN)
def test_a_processor_that_cannot_work_is_refused_at_load(tmp_path, capture_dir, cls, says):
    """Exit 2 and one line naming the config file, the pipeline entry and what is wrong; nothing runs."""
    out = tmp_path / "out.pcap"
    cfg = one_port(capture_dir / "udp_echo.pcap", out, [{"name": "all", "pipeline": ["counter", f"pyprocs.stopping:{cls}"]}])
    run = run_config(tmp_path, cfg, name="broken.yaml")
    assert run.returncode == 2, (run.returncode, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "broken.yaml" in lines[0] and "flows[0].pipeline[1]" in lines[0], lines[0]
    assert f"pyprocs.stopping:{cls} {says}" in lines[0], lines[0]
    assert not out.exists() and run.stats is None


def test_a_processor_flag_that_cannot_work_is_refused(tmp_path):
    run = run_flowos("--vdev", "net_null0", "--processor", "pyprocs.stopping:NoProcess", "--duration", "5",
                     tmp_path=tmp_path)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--processor" in lines[0], run.stderr
    assert "pyprocs.stopping:NoProcess has no process(batch) method" in lines[0], run.stderr
    assert run.stats is None


def test_a_process_with_optional_arguments_is_accepted(tmp_path, capture_dir):
    cfg = one_port(capture_dir / "udp_echo.pcap", tmp_path / "out.pcap",
                   [{"name": "all", "pipeline": ["pyprocs.stopping:ProcessWithDefaults"]}], {"clock": "capture"})
    run = run_config(tmp_path, cfg)
    assert run.returncode == 0, run.stderr
    assert report(run, "all")["faults"] == 0
