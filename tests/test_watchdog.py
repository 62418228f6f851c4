"""The watchdog (flowos/runtime/watchdog.py, docs/operations.md): a Python processor call or message past
its budget is named while it runs; --duration, SIGINT and SIGTERM end a run whatever a processor
does, with the statistics written, the stuck call named and a non-zero exit; a slow on_message
does not stop forwarding for longer than the budget. Bounds are generous: the processors here
sleep for an hour."""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import DATA, run_flowos, start_flowos

TESTS = Path(__file__).parent
FLOWOS_CTL = str(Path(sys.executable).with_name("flowos-ctl"))
EXIT_BOUND = 15.0     # seconds from being told to stop to the exit; the run's own bound is ~2 s here


@pytest.fixture(autouse=True)
def pyprocs_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


class Lines:
    """A pipe's lines, read by a thread, so that a test can wait for one with a deadline."""

    def __init__(self, pipe):
        self.seen, self._queue = [], queue.Queue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe):
        for line in pipe:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text, timeout=30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._queue.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in {timeout} s: {''.join(self.seen)}")

    def rest(self):
        while (line := self._queue.get(timeout=10)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


class Launched:
    def __init__(self, tmp_path, processor, *args, budget_ms=300, capture="udp_echo.pcap"):
        cfg = {"flows": [{"name": "all", "pipeline": [processor]}], "forward": ["a -> a"],
               "run": {"call_budget_ms": budget_ms},
               "ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={DATA}/{capture},infinite_rx=1,tx_pcap=/dev/null"}]}
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
        self.stats_path = tmp_path / "stats.json"
        self.proc = start_flowos("-c", str(tmp_path / "run.yaml"), "--stats-json", str(self.stats_path), *args,
                                 tmp_path=tmp_path)
        self.out, self.err = Lines(self.proc.stdout), Lines(self.proc.stderr)
        self.started = self.out.wait_for("flowos: memory")
        self.prefix = self.out.wait_for("flowos: control: flowos-ctl --file-prefix ").split()[4]

    def wait(self, timeout=EXIT_BOUND):
        """Seconds until it exited (the test fails if it does not within timeout)."""
        began = time.monotonic()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout} s after being told to stop: {''.join(self.err.seen)}")
        return time.monotonic() - began

    def report(self):
        return json.loads(self.stats_path.read_text())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def launch(tmp_path):
    runs = []

    def start(*args, **kwargs):
        runs.append(Launched(tmp_path, *args, **kwargs))
        return runs[-1]

    yield start
    for run in runs:
        run.kill()


def assert_stuck_named(run, stop_reason):
    stderr, stdout = run.err.rest(), run.out.rest()
    assert run.proc.returncode == 1, stderr
    assert "FlowOS summary" in stdout
    assert "the worker did not stop when told: processor pyprocs.stuck:SleepsForever in process() for" in stderr
    assert "not drained: " in stderr and "mbufs still in use" in stderr
    report = run.report()
    assert report["stop_reason"] == stop_reason
    stuck = report["watchdog"]["stuck"]
    assert stuck["processor"] == "pyprocs.stuck:SleepsForever" and stuck["call"] == "process"
    assert stuck["seconds"] > 0.3 and stuck["flow"].startswith("flow ")
    assert report["watchdog"]["budget_ms"] == 300 and report["watchdog"]["reports"] >= 1
    assert report["ports"][0]["rx_packets"] > 0
    assert not os.path.exists(f"/var/run/dpdk/{run.prefix}"), "the runtime folder (and socket) stays behind"


def test_report_while_the_call_runs_then_duration_ends_the_run(launch):
    run = launch("pyprocs.stuck:SleepsForever", "--duration", "2")
    line = run.err.wait_for("flowos: watchdog: ")
    assert "processor pyprocs.stuck:SleepsForever in process() for" in line
    assert "past its budget of 300 ms (still running)" in line and ", flow " in line and "udp" in line
    run.wait(timeout=2 + EXIT_BOUND)
    assert_stuck_named(run, "duration")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_a_run_stuck_in_a_processor(launch, signum):
    run = launch("pyprocs.stuck:SleepsForever")
    run.err.wait_for("flowos: watchdog: processor pyprocs.stuck:SleepsForever in process() for")
    run.proc.send_signal(signum)
    run.wait()
    assert_stuck_named(run, f"signal ({signum.name})")


def test_a_loop_in_python_is_interrupted_and_the_run_torn_down(launch):
    run = launch("pyprocs.stuck:LoopsForever", "--duration", "1")
    run.wait(timeout=1 + EXIT_BOUND)
    stderr = run.err.rest()
    assert run.proc.returncode == 1, stderr
    assert "the worker did not stop when told: processor pyprocs.stuck:LoopsForever in process() for" in stderr
    assert "not drained" not in stderr        # the worker stopped: everything was torn down
    assert "CallOverBudget" in stderr         # the interrupted call's fault
    report = run.report()
    assert report["mbufs"]["in_use_at_exit"] == 0
    proc = report["engine"]["flows"][0]["processors"][0]["report"]
    assert proc["faults"] == 1 and proc["over_budget"] == 1 and proc["longest_call_ms"] > 300


def ctl(run, *args):
    done = subprocess.run([FLOWOS_CTL, "--file-prefix", run.prefix, *args], capture_output=True, text=True, timeout=30)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None


def test_a_slow_message_handler_does_not_stop_forwarding(launch):
    check_a_slow_message_handler(launch("pyprocs.stuck:SlowMessages", budget_ms=500), "pyprocs.stuck:SlowMessages")


def check_a_slow_message_handler(run, name):
    """While a handler sleeps past the budget (500 ms), packets go on flowing; the operator is
    told at the budget, the handler named; the run then stops as usual (the Cython tier's too:
    tests/test_cython_processors.py)."""
    asked = time.monotonic()
    message = subprocess.Popen([FLOWOS_CTL, "--file-prefix", run.prefix, "message", "SlowMessages", "sleep 30"],
                               stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)
        # While the handler sleeps, packets go on flowing.
        before = ctl(run, "stats")[1]["ports"][0]["tx_packets"]
        time.sleep(1.0)
        after = ctl(run, "stats")[1]["ports"][0]["tx_packets"]
        assert time.monotonic() - asked < 30, "too slow to tell (the handler woke up)"
        assert after > before
        reply = json.loads(message.communicate(timeout=30)[0])
    finally:
        if message.poll() is None:
            message.kill()
            message.wait()
    assert message.returncode == 1 and "on_message ran past its budget of 500 ms" in reply["error"], reply
    rc, reply = ctl(run, "message", "SlowMessages", "hello")
    assert rc == 1 and "still answering an earlier message" in reply["error"], reply
    run.err.wait_for(f"flowos: watchdog: processor {name} in on_message() for")
    run.proc.send_signal(signal.SIGINT)
    run.wait()
    assert run.proc.returncode == 0, run.err.rest()
    proc = run.report()["engine"]["flows"][0]["processors"][0]["report"]
    assert proc["messages_over_budget"] == 1


def test_a_quick_message_is_answered_as_before(launch):
    run = launch("pyprocs.stuck:SlowMessages", budget_ms=2000)
    rc, reply = ctl(run, "message", "SlowMessages", "sleep 0.1")
    assert rc == 0 and reply["reply"] == "slept 0.1 s", reply
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    assert run.proc.returncode == 0, run.err.rest()
    assert run.report()["watchdog"] == {"budget_ms": 2000, "reports": 0, "stuck": None}


@pytest.mark.parametrize("value", [0, -5, "1s", 1.5])
def test_a_budget_that_is_not_a_positive_integer_is_refused(tmp_path, value):
    cfg = {"run": {"call_budget_ms": value}, "forward": ["a -> a"],
           "ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={DATA}/udp_echo.pcap,tx_pcap=/dev/null"}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    done = run_flowos("-c", str(tmp_path / "run.yaml"), tmp_path=tmp_path, stats=False)
    assert done.returncode == 2
    assert "run.call_budget_ms" in done.stderr and "expected an integer" in done.stderr, done.stderr
