"""flowos-ctl answers for every worker process (docs/operations.md): `flows` lists the live flows of
each process's shard, `message` reaches each process's own instance of a processor and returns
every reply; a process being restarted answers with an error in its place while the others answer.
The primary asks each process's control mailbox in DPDK's shared memory (process-shared, robust)."""
import json
import signal

from conftest import DATA, kill_flowos, start_flowos
from test_control import Running, wait_for
from test_python_processors import pyprocs_importable  # noqa: F401 (an autouse fixture: pyprocs on PYTHONPATH)
from test_worker_processes import POOL, check_left_nothing, needs_hugepages  # noqa: F401
from test_worker_process_queues import endless_config


def start(tmp_path, processor):
    """The endless replay of test_worker_process_queues (the relay's capture, the processes' own
    ring queues) through PortDropper (0.0) and `processor` (0.1), on 2 worker processes."""
    import yaml
    path = endless_config(tmp_path, processor)
    cfg = yaml.safe_load(path.read_text())
    cfg["flows"][0]["pipeline"] = ["pyprocs.control:PortDropper", processor]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    stats = tmp_path / "stats.json"
    proc = start_flowos("-c", str(path), "--stats-json", str(stats), tmp_path=tmp_path, memory="hugepages")
    first_line = proc.stdout.readline()
    assert first_line.startswith("flowos: memory"), first_line + proc.stderr.read()
    return Running(proc, proc.file_prefix, stats)


def stop(run):
    run.proc.send_signal(signal.SIGINT)
    _, stderr = run.proc.communicate(timeout=60)
    assert run.proc.returncode == 0, stderr
    return json.loads(run.stats_path.read_text())


def test_flows_and_messages_reach_every_worker_process(tmp_path):
    run = start(tmp_path, {"pyprocs.control:Silent": {}})
    try:
        flows = wait_for(lambda: (f := run.ok("flows"))["live"] >= 2 and {x["worker"] for x in f["flows"]} == {0, 1}
                         and f)
        assert all(f["flow"] == "all" for f in flows["flows"])
        # Each process's own instance answers; together they counted what the run processed.
        reply = run.ok("message", "0.0", "count")
        assert reply["status"] == "ok" and [r["worker"] for r in reply["replies"]] == [0, 1]
        counts = [json.loads(r["reply"]) for r in reply["replies"]]
        assert all(c["packets"] > 0 for c in counts)
        resets = run.ok("message", "pyprocs.control:PortDropper", "reset")["replies"]
        assert all(r["reply"].startswith("reset after ") for r in resets)
        procs = run.ok("processors")["processors"]
        assert [(p["id"], p["name"], p["tier"], p["flow"]) for p in procs] == [
            ("0.0", "pyprocs.control:PortDropper", "python", "all"), ("0.1", "pyprocs.control:Silent", "python", "all")]
    finally:
        report = stop(run) if run.proc.poll() is None else None
        kill_flowos(run.proc)
    assert report["mbufs"]["in_use_at_exit"] == 0


def test_a_restarting_worker_process_answers_with_an_error(tmp_path):
    """A worker process that died answers `message` with an error in its place while it is being
    restarted (or the replacement answers), never a hang; the other always answers."""
    run = start(tmp_path, {"pyprocs.pids:ExitOnce": {"port": 2005, "marker": str(tmp_path / "hit")}})
    try:
        wait_for(lambda: any(row["restarts"] for row in run.ok("stats")["workers"]))
        reply = run.ctl("message", "0.0", "count")[1]
        assert len(reply["replies"]) == 2
        assert any(r["status"] == "ok" for r in reply["replies"]), reply
        for r in reply["replies"]:
            assert r["status"] == "ok" or "is not running" in r["error"], reply
        # The replacement answers once it runs.
        wait_for(lambda: all(r["status"] == "ok" for r in run.ctl("message", "0.0", "count")[1]["replies"]))
    finally:
        report = stop(run) if run.proc.poll() is None else None
        kill_flowos(run.proc)
    assert report is not None and report["workers"][0]["restarts"] + report["workers"][1]["restarts"] == 1


def test_a_reload_of_worker_processes_is_refused_and_changes_nothing(tmp_path):
    """Reloading a run with worker processes is not done yet (docs/reload.md, "Limits"): attach
    and reload are refused by name, counted, and the run goes on with the pipeline it had."""
    run = start(tmp_path, {"pyprocs.control:Silent": {}})
    try:
        wait_for(lambda: run.ok("flows")["live"] >= 2)
        for args in (("attach", "all", "counter"), ("reload",), ("detach", "all", "pyprocs.control:Silent")):
            rc, reply, err = run.ctl(*args)
            assert rc == 1 and "worker processes" in reply["error"] and "nothing changed" in reply["error"], (reply, err)
        assert [p["id"] for p in run.ok("processors")["processors"]] == ["0.0", "0.1"]
        reloads = run.ok("stats")["reloads"]
        assert (reloads["reloads"], reloads["reloads_refused"]) == (0, 3), reloads
        assert all(r["status"] == "ok" for r in run.ok("message", "0.0", "count")["replies"])
    finally:
        report = stop(run) if run.proc.poll() is None else None
        kill_flowos(run.proc)
    assert report is not None and report["mbufs"]["in_use_at_exit"] == 0
