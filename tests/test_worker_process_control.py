"""flowos-ctl answers for every worker process (docs/operations.md): `flows` lists the live flows of
each process's shard, `message` reaches each process's own instance of a processor and returns
every reply; a process being restarted answers with an error in its place while the others answer;
attach, detach and reload reach every process, or none (docs/reload.md). The primary asks each
process's control mailbox in DPDK's shared memory (process-shared, robust)."""
import json
import os
import signal

from conftest import DATA, kill_flowos, start_flowos
from test_control import Running, wait_for
from test_python_processors import pyprocs_importable  # noqa: F401 (an autouse fixture: pyprocs on PYTHONPATH)
from test_worker_processes import POOL, check_left_nothing, needs_hugepages  # noqa: F401
from test_worker_process_queues import endless_config


def start(tmp_path, processor, **run):
    """The endless replay of test_worker_process_queues (the relay's capture, the processes' own
    ring queues) through PortDropper (0.0) and `processor` (0.1), on 2 worker processes; run:
    more of the run: section."""
    import yaml
    path = endless_config(tmp_path, processor)
    cfg = yaml.safe_load(path.read_text())
    cfg["flows"][0]["pipeline"] = ["pyprocs.control:PortDropper", processor]
    cfg["run"].update(run)
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


def generations(run):
    return run.ok("stats")["engine"]["generations"]


def test_attach_reload_and_detach_reach_every_worker_process(tmp_path):
    """Each worker process builds, sets up and switches to every change (docs/reload.md, "Worker
    processes"): a Python processor attached with --migrate runs in both, each its own instance
    (the live flows go through it at once); the file reloaded and a processor detached likewise;
    an invalid change is refused, counted, and changes nothing in either."""
    run = start(tmp_path, {"pyprocs.control:Silent": {}})
    try:
        wait_for(lambda: run.ok("flows")["live"] >= 2)
        attached = run.ok("attach", "all", "pyprocs.control:PortDropper", "--migrate")["attached"]
        assert attached["definitions"] == ["all"] and attached["migrate"] == 1, attached
        assert [p["id"] for p in run.ok("processors")["processors"]] == ["0.0", "0.1", "0.2"]
        # Both processes' new instances see packets: the live flows moved to the new pipeline.
        wait_for(lambda: all(json.loads(r["reply"])["packets"] > 0
                             for r in run.ok("message", "0.2", "count")["replies"]))
        assert generations(run) == 2                          # one switch in each process
        flows = run.ok("flows")
        assert {f["flow"] for f in flows["flows"]} == {"all"} and {f["worker"] for f in flows["flows"]} == {0, 1}
        rc, reply, err = run.ctl("attach", "all", "{hold: {packets: 0}}")
        assert rc == 1 and "reload refused, nothing changed" in reply["error"], (reply, err)
        rc, reply, err = run.ctl("attach", "all", "pyprocs.pids:Everything")
        assert rc == 1 and "needs a single instance" in reply["error"], (reply, err)
        assert run.ok("reload", "--migrate")["reloaded"]["definitions"] == ["all"]
        assert [p["name"] for p in run.ok("processors")["processors"]] == ["pyprocs.control:PortDropper",
                                                                            "pyprocs.control:Silent"]
        assert run.ok("detach", "all", "pyprocs.control:Silent")["detached"]["definitions"] == ["all"]
        assert [p["id"] for p in run.ok("processors")["processors"]] == ["0.0"]
        stats = run.ok("stats")
        assert (stats["reloads"]["reloads"], stats["reloads"]["reloads_refused"]) == (3, 2), stats["reloads"]
        assert stats["engine"]["generations"] == 6
        assert all(r["status"] == "ok" for r in run.ok("message", "0.0", "count")["replies"])
    finally:
        report = stop(run) if run.proc.poll() is None else None
        kill_flowos(run.proc)
    assert report is not None and report["mbufs"]["in_use_at_exit"] == 0
    assert [p["name"] for p in report["engine"]["flows"][0]["processors"]] == ["pyprocs.control:PortDropper"]


def changed_nothing_then_attach_works(run):
    """After one refused reload: no reload counted, no generation made, the processors those the
    run started with; then an attach works on every process. Returns the reload counters."""
    stats = run.ok("stats")
    assert stats["reloads"]["reloads_refused"] == 1 and stats["reloads"]["reloads"] == 0, stats["reloads"]
    assert stats["engine"]["generations"] == 0
    assert [p["id"] for p in run.ok("processors")["processors"]] == ["0.0", "0.1"]
    assert run.ok("attach", "all", "counter")["attached"]["definitions"] == ["all"]
    assert generations(run) == 2
    return stats["reloads"]


def test_a_reload_that_one_worker_process_cannot_prepare_changes_nothing_in_any(tmp_path):
    """The new processor's setup fails in one worker process and succeeds in the other: the reload
    is refused, saying which and why; the other drops (tears down) what it had prepared; neither
    switched, and the next reload works."""
    run = start(tmp_path, {"pyprocs.control:Silent": {}})
    out = tmp_path / "setups.json"
    try:
        wait_for(lambda: run.ok("flows")["live"] >= 2)
        failing = json.dumps({"pyprocs.reloads:SetupFailsOnce": {"marker": str(tmp_path / "failed"), "out": str(out)}})
        rc, reply, err = run.ctl("attach", "all", failing, "--migrate")
        assert rc == 1, (reply, err)
        assert "reload refused, nothing changed: worker process" in reply["error"], reply
        assert "failed to set up: RuntimeError: set up to fail once" in reply["error"], reply
        # The other process's instance, set up, was dropped (torn down); the one whose setup failed
        # gets its teardown too, as at any failed setup.
        records = sorted(((r := json.loads(p.read_text()))["setups"], r["teardowns"])
                         for p in tmp_path.glob("setups.json.*"))
        assert records == [(0, 1), (1, 1)], records
        assert "set up to fail once" in changed_nothing_then_attach_works(run)["last_error"]
    finally:
        report = stop(run) if run.proc.poll() is None else None
        kill_flowos(run.proc)
    assert report is not None and report["mbufs"]["in_use_at_exit"] == 0


def test_worker_processes_that_do_not_switch_in_time_change_nothing(tmp_path):
    """Both processes prepared, but their workers are in a processor call past the 10 s a switch
    is waited for (PortDropper's stall; a call budget long enough that neither is taken for
    stuck): each withdraws its request and drops what it prepared, the reload is refused, and once
    the stall is over the next one works. The stall outlasts the wait by 10 s, whatever the
    reload's preparing takes on a loaded machine (with 1 s to spare, it once did not)."""
    run = start(tmp_path, {"pyprocs.control:Silent": {}}, call_budget_ms=5000)
    try:
        wait_for(lambda: run.ok("flows")["live"] >= 2)
        assert run.ok("message", "0.0", "stall 20")["status"] == "ok"
        rc, reply, err = run.ctl("attach", "all", "counter")
        assert rc == 1, (reply, err)
        assert "reload refused, nothing changed: the workers did not take the new configuration" in reply["error"]
        assert "timeout: its worker stayed in one burst meanwhile" in reply["error"], reply
        wait_for(lambda: all(r["status"] == "ok" and json.loads(r["reply"])["stalled"] == 1
                             for r in run.ctl("message", "0.0", "count")[1]["replies"]))
        changed_nothing_then_attach_works(run)
    finally:
        report = stop(run) if run.proc.poll() is None else None
        kill_flowos(run.proc)
    assert report is not None and report["mbufs"]["in_use_at_exit"] == 0
    assert all(row["restarts"] == 0 for row in report["workers"])


def test_a_worker_process_restarted_after_a_reload_runs_the_running_configuration(tmp_path):
    """A worker process that dies after a reload (killed here) is restarted with the configuration
    the run has then, not the one it started with: its instance of the processor attached answers,
    the processors of its report are the running ones, and a later reload reaches it too."""
    run = start(tmp_path, {"pyprocs.control:Silent": {}})
    try:
        wait_for(lambda: run.ok("flows")["live"] >= 2)
        run.ok("attach", "all", "pyprocs.control:PortDropper", "--migrate")
        victim = run.ok("stats")["workers"][1]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: (row := run.ok("stats")["workers"][1])["restarts"] == 1 and row["pid"] != victim)
        # The new process has the attached processor (0.2), and it sees packets.
        wait_for(lambda: all(r["status"] == "ok" and json.loads(r["reply"])["packets"] > 0
                             for r in run.ctl("message", "0.2", "count")[1]["replies"]))
        assert run.ok("detach", "all", "pyprocs.control:Silent", "--migrate")["detached"]["definitions"] == ["all"]
        assert [p["name"] for p in run.ok("processors")["processors"]] == ["pyprocs.control:PortDropper",
                                                                            "pyprocs.control:PortDropper"]
    finally:
        report = stop(run) if run.proc.poll() is None else None
        kill_flowos(run.proc)
    assert report is not None
    assert [row["restarts"] for row in report["workers"]] == [0, 1]
    assert [p["name"] for p in report["engine"]["flows"][0]["processors"]] == ["pyprocs.control:PortDropper"] * 2
