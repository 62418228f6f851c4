"""Operator control, end to end: a flowos-run replaying a capture forever, queried and steered with
flowos-ctl (a real subprocess, over FlowOS's control socket; DPDK's telemetry socket answers the
same commands), then stopped by SIGINT: it must exit cleanly with every mbuf back. Also the pure
parts: the flat form and its escapes."""
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import DATA, kill_flowos, start_flowos
from flowos.runtime import control, control_server

TESTS = Path(__file__).parent
FLOWOS_CTL = str(Path(sys.executable).with_name("flowos-ctl"))
DPDK_TELEMETRY = "/usr/bin/dpdk-telemetry.py"
# Seconds the worker may take to answer flowos-ctl: an operator's default is 2, but a machine
# loaded by a parallel test suite can leave the worker unscheduled for longer than that.
ANSWER_TIMEOUT = "60"

# Ids: definition index . processor index in it.
CONFIG = {
    "flows": [
        {"name": "udp", "match": {"proto": "udp"},
         "pipeline": ["pyprocs.control:PortDropper", "pyprocs.control:Silent"]},           # 0.0, 0.1
        {"name": "rest", "pipeline": [{"counter": {"max_flows": 16}}, "pyprocs.control:PortDropper"]},  # 1.0, 1.1
    ],
}


@pytest.fixture(autouse=True)
def pyprocs_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


class Running:
    def __init__(self, proc, prefix, stats_path):
        self.proc, self.prefix, self.stats_path = proc, prefix, stats_path
        self.faulted = False   # a test that makes a processor fault says so: the run then exits 1

    def ctl(self, *args, prefix=True):
        argv = [FLOWOS_CTL, "--timeout", ANSWER_TIMEOUT, *(["--file-prefix", self.prefix] if prefix else []), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert self.proc.poll() is None, "flowos-run ended: " + self.proc.stderr.read()
        try:
            return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr
        except ValueError:
            raise AssertionError(f"not JSON: {done.stdout!r} {done.stderr!r}") from None

    def ok(self, *args):
        rc, reply, err = self.ctl(*args)
        assert rc == 0 and "error" not in reply, (reply, err)
        return reply


@contextlib.contextmanager
def launched(tmp_path, flows):
    """flowos-run over mixed.pcap replayed forever; at the end, SIGINT and a clean exit."""
    cfg = {"flows": flows, "forward": ["a -> a"],
           "ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={DATA}/mixed.pcap,infinite_rx=1,tx_pcap=/dev/null"}]}
    (tmp_path / "ctl.yaml").write_text(yaml.safe_dump(cfg))
    stats_path = tmp_path / "stats.json"
    proc = start_flowos("-c", str(tmp_path / "ctl.yaml"), "--stats-json", str(stats_path), tmp_path=tmp_path)
    try:
        lines = [proc.stdout.readline()]
        assert lines[0].startswith("flowos: memory"), "".join(lines) + proc.stderr.read()
        while len(lines) < 8 and lines[-1].startswith("flowos: ") and not lines[-1].startswith("flowos: control: "):
            lines.append(proc.stdout.readline())    # notes (the burst, with a Python processor), the workers
        assert lines[-1].startswith("flowos: control: flowos-ctl --file-prefix "), lines
        prefix = lines[-1].split()[4]
        assert os.path.exists(f"/var/run/dpdk/{prefix}/{control_server.SOCKET_NAME}")
        assert os.path.exists(f"/var/run/dpdk/{prefix}/{control.SOCKET_NAME}")
        run = Running(proc, prefix, stats_path)
        yield run
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == (1 if run.faulted else 0), stderr   # a processor's fault exits 1
        assert "stopped by signal (SIGINT)" in stdout
        run.report = json.loads(stats_path.read_text())
        assert run.report["mbufs"]["in_use_at_exit"] == 0
        assert not os.path.exists(f"/var/run/dpdk/{prefix}"), "the runtime folder (and socket) stays behind"
    finally:
        kill_flowos(proc)


@pytest.fixture
def running(tmp_path):
    with launched(tmp_path, CONFIG["flows"]) as run:
        yield run


def wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_stats_flows_and_processors(running):
    stats = running.ok("stats")
    assert stats["file_prefix"] == running.prefix and stats["running"] == 1
    assert stats["ports"][0]["name"] == "a" and stats["mbufs"]["size"] > 0
    later = wait_for(lambda: (s := running.ok("stats"))["engine"]["packets"] > stats["engine"]["packets"] and s)
    assert later["ports"][0]["rx_packets"] >= later["engine"]["packets"] > 0

    procs = running.ok("processors")["processors"]
    assert [(p["id"], p["name"], p["tier"], p["flow"], p["stage"]) for p in procs] == [
        ("0.0", "pyprocs.control:PortDropper", "python", "udp", 0),
        ("0.1", "pyprocs.control:Silent", "python", "udp", 1),
        ("1.0", "counter", "c", "rest", 0),
        ("1.1", "pyprocs.control:PortDropper", "python", "rest", 1)]
    assert procs[0]["calls"] > 0 and procs[0]["packets"] > 0 and procs[0]["faults"] == 0
    assert "calls" not in procs[2]     # the C built-ins count nothing of the kind

    flows = running.ok("flows")
    assert 1 <= flows["shown"] == len(flows["flows"]) <= flows["live"] and flows["shown"] <= control.MAX_FLOWS
    totals = [sum(f["bytes"]) for f in flows["flows"]]
    assert totals == sorted(totals, reverse=True)
    udp = [f for f in flows["flows"] if f["flow"] == "udp"]
    assert udp and udp[0]["proto"] == 17 and udp[0]["dport"] == 5353 and udp[0]["src"] == "10.77.0.1"
    assert len(udp[0]["packets"]) == 2 and udp[0]["packets"][0] > 0 and udp[0]["age_ms"] >= 0
    assert running.ok("flows", "1")["shown"] == 1
    rc, reply, _ = running.ctl("flows", "99")
    assert rc == 1 and "at most 20" in reply["error"]

    listed = subprocess.run([FLOWOS_CTL, "--timeout", ANSWER_TIMEOUT, "list"], capture_output=True, text=True,
                            timeout=120).stdout
    assert running.prefix in listed


IDLE_CLIENTS = 200


def test_idle_clients_never_lock_flowos_ctl_out(running):
    """200 clients connected to each socket of the run (FlowOS's and DPDK telemetry's), saying
    nothing: flowos-ctl still answers. (DPDK 22.11's telemetry serves 10 clients and never drops an
    idle one: flowos-ctl used to talk to it, and was locked out.) FlowOS's socket let the oldest
    idle clients go to let the new ones in."""
    folder = f"/var/run/dpdk/{running.prefix}"
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder))
    paths = [p for p in paths if os.path.exists(p) and not os.path.isdir(p)]
    assert len(paths) == 2, paths
    idle = []
    try:
        for path in paths:
            for _ in range(IDLE_CLIENTS):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                idle.append(sock)
                sock.connect(path)        # blocking: waits while the listener's backlog is full
                sock.settimeout(30)
        stats = running.ok("stats")
        assert stats["file_prefix"] == running.prefix and stats["running"] == 1
        assert running.ok("processors")["processors"][0]["id"] == "0.0"
        first = idle[paths.index(os.path.join(folder, control_server.SOCKET_NAME)) * IDLE_CLIENTS]
        assert first.recv(4096).startswith(b"{")     # FlowOS's greeting
        assert first.recv(4096) == b""               # then it was let go, to make room
    finally:
        for sock in idle:
            sock.close()


def test_a_worker_slower_than_the_default_is_waited_for_as_long_as_asked(running):
    """flowos-ctl --timeout: how long the worker may take to list flows. Here its processor stalls
    it for 3 s (longer than the 2 s default), and the listing still comes."""
    assert running.ok("message", "1.1", "stall 3")["reply"] == "stalling 3 s"
    assert running.ok("flows")["shown"] >= 1
    assert json.loads(running.ok("message", "1.1", "count")["reply"])["stalled"] == 1


def test_message_changes_what_the_processor_does(running):
    reply = running.ok("message", "0.0", "drop-port 5353")
    assert reply["status"] == "ok" and reply["reply"] == "dropping port 5353" and reply["name"].endswith("PortDropper")
    counts = wait_for(lambda: (c := json.loads(running.ok("message", "0.0", "count")["reply"]))["dropped"] > 0 and c)
    assert counts["drop_port"] == 5353
    assert running.ok("stats")["engine"]["verdicts"]["drop"] > 0
    reply = running.ok("message", "0.0", "reset")["reply"]
    assert reply.startswith("reset after ") and int(reply.split()[2]) >= counts["packets"]
    assert running.ok("message", "0.0", "pass-all")["reply"] == ""          # None: no reply
    dropped = json.loads(running.ok("message", "0.0", "count")["reply"])["dropped"]
    time.sleep(0.3)
    assert json.loads(running.ok("message", "0.0", "count")["reply"])["dropped"] == dropped   # dropping no more
    assert running.ok("processors")["processors"][0]["messages"] == 6


def test_message_errors_and_faults(running):
    rc, reply, _ = running.ctl("message", "NoSuch", "hello")
    assert rc == 1 and "no processor 'NoSuch'" in reply["error"]
    rc, reply, _ = running.ctl("message", "PortDropper", "count")
    assert rc == 1 and "0.0, 1.1" in reply["error"]                         # two of that name
    rc, reply, _ = running.ctl("message", "Silent", "hello")
    assert rc == 1 and "takes no messages" in reply["error"]

    rc, reply, _ = running.ctl("message", "1.1", "bogus")                      # on_message raises
    running.faulted = True
    assert rc == 1 and reply["status"] == "error" and "ValueError: unknown message 'bogus'" in reply["error"]
    procs = running.ok("processors")["processors"]
    assert procs[3]["faults"] == 1 and procs[0]["faults"] == 0
    before = running.ok("stats")["engine"]["packets"]
    wait_for(lambda: running.ok("stats")["engine"]["packets"] > before)      # the run goes on
    assert running.ok("message", "1.1", "count")["status"] == "ok"

    report = json.loads(running.ok("message", "counter", "report")["reply"])  # a C built-in
    assert report["max_flows"] == 16 and report["recorded"] >= 0
    forgot = json.loads(running.ok("message", "1.0", "reset")["reply"])
    assert set(forgot) == {"forgot", "unrecorded"}
    rc, reply, _ = running.ctl("message", "1.0", "nope")
    assert rc == 1 and "counter takes: report, reset" in reply["error"]


def test_long_and_unicode_replies(running):
    reply = running.ok("message", "0.0", "long 5000")
    expected = "".join(chr(ord("a") + i % 26) for i in range(5000))
    assert reply["reply"] == expected and reply["reply_bytes"] == 5000 and "reply_truncated" not in reply
    reply = running.ok("message", "0.0", "long 40000")
    assert reply["reply_truncated"] == 1 and reply["reply_bytes"] == 40000
    assert expected.startswith(reply["reply"][:5000]) and 10000 <= len(reply["reply"]) <= control.MAX_REPLY
    reply = running.ok("message", "0.0", "unicode")
    assert reply["reply"] == 'quote " backslash \\ tab \t é ü 日本 ✓'
    rc, reply, err = running.ctl("message", "0.0", "x" * 1100)
    assert rc == 1 and reply is None and "1023 at most" in err
    running.faulted = True     # PortDropper's on_message raises on a message it does not know
    rc, reply, _ = running.ctl("message", "0.0", "ünïcode, with a comma")
    assert rc == 1 and "unknown message 'ünïcode, with a comma'" in reply["error"]


@pytest.mark.skipif(not os.path.exists(DPDK_TELEMETRY) or shutil.which("python3") is None,
                    reason="dpdk-telemetry.py (Debian's dpdk-dev) is not installed")
def test_dpdk_telemetry_client(running):
    done = subprocess.run(["python3", DPDK_TELEMETRY, "-f", running.prefix], input="/flowos/processors\n/\n",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    replies = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    processors = next(r["/flowos/processors"] for r in replies if "/flowos/processors" in r)
    assert processors["processors/2/name"] == "counter"
    assert "/flowos/message" in next(r["/"] for r in replies if "/" in r)


def test_cython_processor_messages(tmp_path, monkeypatch):
    from test_cython_processors import meson_build      # built as a user builds it
    build = meson_build(TESTS / "cyprobe", tmp_path / "probe")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(build), os.environ["PYTHONPATH"]]))
    with launched(tmp_path, [{"name": "all", "pipeline": ["cyprobe:Messenger"]}]) as run:
        procs = run.ok("processors")["processors"]
        assert procs[0]["tier"] == "cython" and procs[0]["name"] == "cyprobe:Messenger"
        assert run.ok("message", "Messenger", "drop")["reply"] == "dropping"
        wait_for(lambda: run.ok("stats")["engine"]["verdicts"]["drop"] > 0)
        count = json.loads(run.ok("message", "0.0", "count")["reply"])
        assert count["dropping"] is True and count["seen"] > 0
        rc, reply, _ = run.ctl("message", "0.0", "bogus")
        run.faulted = True
        assert rc == 1 and "ValueError: unknown message 'bogus'" in reply["error"]
        assert run.ok("processors")["processors"][0]["faults"] == 1
        assert run.ok("message", "0.0", "pass")["reply"] == "passing"
    assert run.report["engine"]["flows"][0]["processors"][0]["report"]["faults"] == 1


STOP_CHILD = """
import sys
from flowos.runtime.runner import StopRequest
for _ in range(int(sys.argv[1])):
    stop = StopRequest()
    print("ready", flush=True)
    while not stop.wait(0):      # the main loop, at its busiest: mostly inside wait()
        pass
    stop.restore()
    print("stopped", stop.signal_name, flush=True)
"""


def test_sigint_while_waiting_never_deadlocks(tmp_path):
    """The run's stop request, signalled at random points of its wait: the handler must never block
    (a threading.Event set from it deadlocked when the signal landed while wait() held its lock)."""
    rounds = 40
    child = subprocess.Popen([sys.executable, "-c", STOP_CHILD, str(rounds)], stdout=subprocess.PIPE, text=True,
                             cwd=tmp_path)
    try:
        for i in range(rounds):
            assert child.stdout.readline() == "ready\n"
            time.sleep(0.002 * (i % 5))
            child.send_signal(signal.SIGINT if i % 2 else signal.SIGTERM)
            ready, _, _ = select.select([child.stdout], [], [], 10)
            assert ready, f"round {i}: the signal handler hung"
            assert child.stdout.readline() == f"stopped {'SIGINT' if i % 2 else 'SIGTERM'}\n"
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# --- the flat form, without a run ---------------------------------------------------------------

def test_flatten_round_trip():
    tree = {"a": 1, "b": {"c": "x", "d": [1, 2]}, "rows": [{"n": "é\"\\", "v": -3}, {"n": "y", "v": None}],
            "empty": []}
    flat = control.flatten(tree)
    assert flat["b/c"] == "x" and flat["b/d"] == [1, 2] and flat["rows/0/n"] == '\\xe9"\\\\' and "rows/1/v" not in flat
    assert all(c.isalnum() or c in "_/" for k in flat for c in k)
    assert control.unflatten(flat) == {"a": 1, "b": {"c": "x", "d": [1, 2]}, "rows": [{"n": "é\"\\", "v": -3},
                                                                                    {"n": "y"}], "empty": []}


def test_flatten_cuts_and_truncates():
    flat = control.flatten({"long": "ü" * 100, "many": [{"i": i} for i in range(400)]})
    assert len(flat["long"]) <= control.MAX_STRING and flat["cut"] == ["long"]
    assert flat["truncated"] == 1 and len(flat) <= 256
    assert len(json.dumps(flat)) < 16384
    pieces = control.chunks("日本" * 100)
    assert all(len(p) <= control.MAX_STRING for p in pieces)
    assert "".join(control.unescape(p) for p in pieces) == "日本" * 100
