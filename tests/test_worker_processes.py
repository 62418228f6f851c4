"""Worker processes (docs/architecture.md, "Worker processes"): with several workers and a Python
processor, each worker runs in a process of its own behind the primary's relay. The per-flow
results are those of one worker and of the model (tests/flowcheck.py); each flow's processor
instance is in one process; the statistics have a row per process; nothing is left behind.

Worker processes need hugepages (DPDK secondaries cannot attach to --no-huge memory): these tests
skip where none are free, as the netns tests skip where namespaces cannot be made."""
import json
import os
import signal
import time

import pytest

from conftest import CAPTURES, hugepage_files, kill_flowos, packets, run_flowos, runtime_folder, start_flowos
from flowcheck import check_clean, engine_stats, report, run_config, one_port, same_multiset, write_pcap
from test_flows_golden import CAPTURE_CLOCK, IDS, check_catch_all
from test_python_processors import pyprocs_importable  # noqa: F401 (an autouse fixture: pyprocs on PYTHONPATH)
from test_workers import many_connections

from flowos.runtime import hugepages

# A small flow table and pool: the defaults (a million flows, 32,767 mbufs) would take most of the
# hugepages there are; these take 174 MB.
ENGINE = dict(CAPTURE_CLOCK, capacity=4096)
POOL = {"mbufs": 16383}
NEEDED_PAGES = 88


@pytest.fixture(autouse=True)
def needs_hugepages():
    skip_without_hugepages()


def skip_without_hugepages():
    state = hugepages.probe()
    if state.mount is None or state.free < NEEDED_PAGES:
        pytest.skip(f"worker processes need hugepages: {state.free} free 2 MB pages (scripts/hugepages reserves them)")


def flow_pids(out):
    """Every FlowPids instance's records (tests/pyprocs/pids.py), from the files its processes wrote."""
    records = []
    for path in sorted(out.parent.glob(out.name + ".*")):
        records += json.loads(path.read_text())["flows"]
    return records


def ip_flows(records):
    """Records of IP flows as comparable tuples, opener first, without the process."""
    return sorted((r["proto"], r["src"], r["sport"], r["dst"], r["dport"], tuple(r["packets"]), tuple(r["bytes"]))
                  for r in records if r["src"] not in (None, "-"))


def check_left_nothing(run):
    prefix = run.stats["file_prefix"]
    assert not runtime_folder(prefix).exists()
    assert hugepage_files(prefix) == []


def pids_pipeline(out=None):
    return [{"pyprocs.pids:FlowPids": {"out": str(out)} if out is not None else {}}]


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_golden_results_through_two_worker_processes(tmp_path, capture):
    """The counter's per-connection counts, the output (each connection's packets in order) and
    the engine's totals are the model's with a Python processor on 2 worker processes; the
    Python processor saw each flow in one process, with the counts one worker gives it."""
    many, one = tmp_path / "many", tmp_path / "one"
    many.mkdir(), one.mkdir()
    run, conns = check_catch_all(many, capture, 2, pipeline=pids_pipeline(many / "pids.json"), memory="hugepages",
                                  engine=ENGINE, pool=POOL)
    check_left_nothing(run)
    records = flow_pids(many / "pids.json")
    assert len(records) == engine_stats(run)["flows_created"] == len(conns)
    rows = run.stats["workers"]
    assert [row["worker"] for row in rows] == [0, 1]
    assert {r["pid"] for r in records} <= {row["pid"] for row in rows}
    if len(conns) >= 4:
        assert len({r["pid"] for r in records}) == 2, "every worker process owns flows"
    # The counter's records (C, in the same shards) and the Python processor's agree flow by flow.
    counted = report(run, "all")["flows"]
    assert ip_flows(records) == ip_flows(counted)
    # One worker, in-process: the same flows with the same counts.
    alone, _ = check_catch_all(one, capture, 1, pipeline=pids_pipeline(one / "pids.json"), engine=ENGINE)
    assert ip_flows(flow_pids(one / "pids.json")) == ip_flows(records)
    assert sorted(map(str, report(alone, "all")["flows"])) == sorted(map(str, counted))


def test_many_connections_spread_over_two_worker_processes(tmp_path):
    """400 connections: each worker process owns some (both directions of each in one process),
    the per-worker rows add up to the totals, and every packet comes out in its flow's order."""
    frames = many_connections(200)
    capture, out = write_pcap(tmp_path / "many.pcap", frames), tmp_path / "out.pcap"
    pids = tmp_path / "pids.json"
    run = run_config(tmp_path, one_port(capture, out, [{"name": "all", "pipeline": pids_pipeline(pids)}],
                                        ENGINE, pool=POOL, run={"workers": 2}), memory="hugepages")
    check_clean(run)
    check_left_nothing(run)
    assert same_multiset(packets(out), frames)
    records = flow_pids(pids)
    assert len(records) == 400
    for record in records:   # a connection's both directions, in one flow, in one process
        assert record["packets"] in ([1, 1], [2, 1]), record
    rows = run.stats["workers"]
    assert len({row["pid"] for row in rows}) == 2
    by_pid = {row["pid"]: row for row in rows}
    for pid, row in by_pid.items():
        mine = [r for r in records if r["pid"] == pid]
        assert 0 < len(mine) == row["engine"]["flows_created"]
        assert row["rx_packets"] == row["engine"]["packets"] == sum(sum(r["packets"]) for r in mine)
        assert row["polls"] >= row["busy_polls"] > 0
    totals = engine_stats(run)
    assert sum(row["engine"]["packets"] for row in rows) == totals["packets"] == len(frames)
    assert totals["handed_off"] == len(frames)      # the relay hands every packet to its process


def test_a_packet_limit_holds_across_worker_processes(tmp_path):
    """--packets counts what the relay received for all worker processes, exactly."""
    frames = many_connections(100)
    capture, out = write_pcap(tmp_path / "many.pcap", frames), tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture, out, [{"name": "all", "pipeline": pids_pipeline()}],
                                        ENGINE, pool=POOL, run={"workers": 2, "packets": 333}),
                     memory="hugepages")
    check_clean(run)
    check_left_nothing(run)
    assert run.stats["stop_reason"] == "packet-limit"
    assert run.stats["totals"]["rx_packets"] == 333 == engine_stats(run)["packets"]
    assert same_multiset(packets(out), frames[:333])


def test_worker_processes_without_hugepages_are_refused(tmp_path):
    """DPDK secondaries cannot attach to --no-huge memory: a clear error, exit 2, before DPDK starts."""
    capture = CAPTURES[0]
    run = run_config(tmp_path, one_port(capture, tmp_path / "out.pcap", [{"name": "all", "pipeline": pids_pipeline()}],
                                        ENGINE, pool=POOL, run={"workers": 2}), memory="no-huge")
    assert run.returncode == 2, run.stderr
    assert "worker processes, which need hugepages" in run.stderr
    assert "pyprocs.pids:FlowPids is a Python processor" in run.stderr
    assert run.stats is None


@pytest.mark.parametrize("pipeline", [["counter"], pids_pipeline()], ids=["c", "python"])
def test_worker_processes_always_runs_one_worker_as_a_process(tmp_path, pipeline):
    """run.worker_processes: always puts even one worker, and a C pipeline, in a process of its own
    (isolation from its processors): its row has its own pid, the output is the model's."""
    frames = many_connections(20)
    capture, out = write_pcap(tmp_path / "few.pcap", frames), tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture, out, [{"name": "all", "pipeline": pipeline}], ENGINE, pool=POOL,
                                        run={"workers": 1, "worker_processes": "always"}), memory="hugepages")
    check_clean(run)
    check_left_nothing(run)
    assert same_multiset(packets(out), frames)
    rows = run.stats["workers"]
    assert len(rows) == 1 and isinstance(rows[0].get("pid"), int)     # a worker thread's row has none
    assert engine_stats(run)["flows_created"] == 40


def test_worker_processes_always_needs_flows(tmp_path):
    capture = CAPTURES[0]
    config = one_port(capture, tmp_path / "out.pcap", [], pool=POOL, run={"worker_processes": "always"})
    del config["flows"]     # a plain bridge
    run = run_config(tmp_path, config, memory="hugepages")
    assert run.returncode == 2, run.stderr
    assert "run.worker_processes" in run.stderr and "no flows" in run.stderr


def endless_config(tmp_path, capture, out, **run):
    """A config replaying `capture` for ever (infinite_rx) through FlowPids on 2 worker processes."""
    import yaml
    cfg = one_port(f"{capture},infinite_rx=1", out, [{"name": "all", "pipeline": pids_pipeline(tmp_path / "pids.json")}],
                   {"capacity": 4096}, pool=POOL, run={"workers": 2, **run})
    path = tmp_path / "endless.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def check_stopped_cleanly(stats_path, out, reason, tmp_path):
    stats = json.loads(stats_path.read_text())
    assert stats["stop_reason"] == reason
    assert stats["mbufs"]["in_use_at_exit"] == 0
    written = packets(out)
    assert len(written) == stats["ports"][0]["tx_packets"] == stats["engine"]["stats"]["tx_packets"] > 0
    rows = stats["workers"]
    assert len(rows) == 2 and all(row["engine"]["packets"] > 0 for row in rows)
    assert sum(row["engine"]["packets"] for row in rows) == stats["totals"]["rx_packets"]
    assert len(flow_pids(tmp_path / "pids.json")) == stats["engine"]["stats"]["flows_created"]
    assert not runtime_folder(stats["file_prefix"]).exists() and hugepage_files(stats["file_prefix"]) == []


def ctl(prefix, *args):
    """flowos-ctl's answer (JSON), whatever its exit status."""
    import subprocess
    from test_control import ANSWER_TIMEOUT, FLOWOS_CTL
    done = subprocess.run([FLOWOS_CTL, "--timeout", ANSWER_TIMEOUT, "--file-prefix", prefix, *args],
                          capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout) if done.stdout.strip() else {"error": done.stderr}


class SignalledRun:
    """flowos-run with a configuration on hugepages, as a with block: entered once it runs (its
    first line out), stopped with SIGINT when the block ends; then its returncode, stdout, stderr
    and --stats-json (report)."""

    def __init__(self, tmp_path, config):
        self.stats = tmp_path / "stats.json"
        self.proc = start_flowos("-c", str(config), "--stats-json", str(self.stats), tmp_path=tmp_path,
                                 memory="hugepages")
        self.prefix = self.proc.file_prefix

    def __enter__(self):
        first_line = self.proc.stdout.readline()
        if not first_line.startswith("flowos: memory"):
            kill_flowos(self.proc)
            raise AssertionError(first_line + self.proc.stderr.read())
        return self

    def __exit__(self, exc_type, *exc):
        try:
            if exc_type is None:
                self.proc.send_signal(signal.SIGINT)
                self.stdout, self.stderr = self.proc.communicate(timeout=60)
                self.returncode = self.proc.returncode
                self.report = json.loads(self.stats.read_text()) if self.stats.exists() else None
        finally:
            kill_flowos(self.proc)
        return False


def ctl_stats(prefix):
    answer = ctl(prefix, "stats")
    assert "error" not in answer, answer
    return answer


def test_sigint_stops_every_worker_process(tmp_path, capture_dir):
    """flowos-ctl stats answers for both worker processes while they run (their load and shard
    counters, read from the shared memory). SIGINT to flowos-run (the primary) stops the relay and
    both worker processes: what they had is sent, their flows end, the statistics are complete."""
    out, stats = tmp_path / "out.pcap", tmp_path / "stats.json"
    proc = start_flowos("-c", str(endless_config(tmp_path, capture_dir / "mixed.pcap", out)), "--stats-json", str(stats),
                        tmp_path=tmp_path, memory="hugepages")
    try:
        first_line = proc.stdout.readline()  # printed once the workers run
        assert first_line.startswith("flowos: memory"), first_line + proc.stderr.read()
        first = ctl_stats(proc.file_prefix)
        assert first["running"] and [row["worker"] for row in first["workers"]] == [0, 1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:     # the counters go on (robust under load: no fixed wait)
            later = ctl_stats(proc.file_prefix)
            if all(b["engine"]["packets"] > a["engine"]["packets"] for a, b in zip(first["workers"], later["workers"])):
                break
            time.sleep(0.2)
        assert later["engine"]["packets"] > first["engine"]["packets"]
        for row in later["workers"]:
            assert row["polls"] >= row["busy_polls"] > 0 and row["rx_packets"] == row["engine"]["packets"] > 0
        listed = ctl(proc.file_prefix, "flows")     # each process's shard lists its own
        assert listed["live"] > 0 and {f["worker"] for f in listed["flows"]} <= {0, 1}, listed
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        kill_flowos(proc)
    assert proc.returncode == 0, stderr
    assert "stopped by signal (SIGINT)" in stdout
    check_stopped_cleanly(stats, out, "signal (SIGINT)", tmp_path)


def main_thread_cpu_seconds(pid):
    """CPU time (user + system) of process pid's main thread so far."""
    fields = open(f"/proc/{pid}/task/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_worker_process_main_thread_does_not_spin(tmp_path, capture_dir):
    """A worker process's main thread waits for its loop without using a CPU: DPDK's join spins,
    and that thread floats on the CPUs the relay runs on (it took half of the relay's time). Its
    CPU time over 2 s of forwarding must stay well under a second (it was 2 s: a whole CPU)."""
    out = tmp_path / "out.pcap"
    proc = start_flowos("-c", str(endless_config(tmp_path, capture_dir / "mixed.pcap", out)), tmp_path=tmp_path,
                        memory="hugepages")
    try:
        first_line = proc.stdout.readline()  # printed once the workers run
        assert first_line.startswith("flowos: memory"), first_line + proc.stderr.read()
        pids = [row["pid"] for row in ctl_stats(proc.file_prefix)["workers"]]
        before = [main_thread_cpu_seconds(pid) for pid in pids]
        time.sleep(2)
        used = [main_thread_cpu_seconds(pid) - b for pid, b in zip(pids, before)]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        kill_flowos(proc)
    assert all(u < 0.5 for u in used), used


def test_duration_stops_every_worker_process(tmp_path, capture_dir):
    out = tmp_path / "out.pcap"
    run = run_flowos("-c", str(endless_config(tmp_path, capture_dir / "mixed.pcap", out, duration=1.0)),
                     tmp_path=tmp_path, memory="hugepages")
    assert run.returncode == 0, run.stderr
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps(run.stats))
    check_stopped_cleanly(stats, out, "duration", tmp_path)


def test_a_worker_process_that_dies_stops_the_run_in_bounded_time(tmp_path):
    """With run.on_worker_death: stop, a worker process that ends mid-run (os._exit in its
    processor) is noticed: the run stops
    (the relay frees what it hands the dead process instead of waiting on its inbox), the other
    worker process ends cleanly and reports, the statistics say which process ended and how, the
    exit status is 1, and nothing is left behind."""
    frames = many_connections(100)
    capture, out, pids = write_pcap(tmp_path / "many.pcap", frames), tmp_path / "out.pcap", tmp_path / "pids.json"
    pipeline = pids_pipeline(pids) + [{"pyprocs.pids:ExitOn": {"port": 2005}}]
    run = run_config(tmp_path, one_port(capture, out, [{"name": "all", "pipeline": pipeline}], ENGINE, pool=POOL,
                                        run={"workers": 2, "on_worker_death": "stop"}), memory="hugepages")
    assert run.returncode == 1, run.stderr
    rows = run.stats["workers"]
    dead = [row for row in rows if "ended" in row]
    assert len(dead) == 1 and dead[0]["ended"] == "exit status 3", rows
    assert run.stats["stop_reason"] == f"worker process {dead[0]['worker']} ended (exit status 3)"
    assert f"worker process {dead[0]['worker']} (pid {dead[0]['pid']}) ended: exit status 3" in run.stderr
    survivor = next(row for row in rows if "ended" not in row)
    records = flow_pids(pids)      # the survivor's (the dead process wrote none)
    assert {r["pid"] for r in records} == {survivor["pid"]}
    assert len(records) == survivor["engine"]["flows_created"] > 0
    written = set(packets(out))
    assert survivor["engine"]["tx_packets"] == sum(sum(r["packets"]) for r in records) <= len(written)
    check_left_nothing(run)


def test_time_goes_on_in_an_idle_worker_process(tmp_path):
    """A worker process calls its engine when nothing comes, as a worker thread does: idle UDP
    flows end by their timeout (0.2 s) while the run goes on, not at its end. One endless flow on a
    second port keeps one worker process busy; the other has nothing to do after the first packets."""
    import yaml
    frames = [f for f in many_connections(20) if f[23] == 17]     # the UDP ones (IP protocol 17)
    capture, pids = write_pcap(tmp_path / "udp.pcap", frames), tmp_path / "pids.json"
    endless = write_pcap(tmp_path / "endless.pcap", many_connections(1)[2:3])     # a TCP flow, not one of them
    cfg = {"ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={capture},tx_pcap={tmp_path / 'out.pcap'}"},
                     {"name": "b", "vdev": f"net_pcap1,rx_pcap={endless},infinite_rx=1,tx_pcap=/dev/null"}],
           "forward": ["a -> a", "b -> b"], "flows": [{"name": "all", "pipeline": pids_pipeline(pids)}],
           "engine": {"capacity": 4096, "timeouts": {"udp": 0.2}}, "pool": POOL, "run": {"workers": 2, "duration": 1.5}}
    (tmp_path / "idle.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = run_flowos("-c", str(tmp_path / "idle.yaml"), tmp_path=tmp_path, memory="hugepages")
    assert run.returncode == 0, run.stderr
    records = [r for r in flow_pids(pids) if r["dport"] == 53]
    assert len(records) == 20 and len({r["pid"] for r in records}) == 2
    assert {r["reason"] for r in records} == {"idle"}, records


def test_a_single_instance_processor_is_refused_with_several_workers(tmp_path):
    """A processor that declares single_instance cannot be split over workers: exit 2, named."""
    run = run_config(tmp_path, one_port(CAPTURES[0], tmp_path / "out.pcap", [{"name": "all", "pipeline": ["pyprocs.pids:Everything"]}],
                                        ENGINE, pool=POOL, run={"workers": 2}), memory="hugepages")
    assert run.returncode == 2, run.stderr
    assert "pyprocs.pids:Everything needs a single instance" in run.stderr and "run it with one worker" in run.stderr


def test_a_stuck_worker_process_is_ended_and_named(tmp_path):
    """A worker process whose loop makes no progress (a processor call that never returns) for
    5 call budgets and a second is ended: with run.on_worker_death: stop, the run then stops as for
    one that died, its row naming
    the call it was stuck in; the other worker process reports; exit 1; nothing left behind."""
    frames = many_connections(100)
    capture, out, pids = write_pcap(tmp_path / "many.pcap", frames), tmp_path / "out.pcap", tmp_path / "pids.json"
    pipeline = pids_pipeline(pids) + [{"pyprocs.pids:LoopsOn": {"port": 2005}}]
    run = run_config(tmp_path, one_port(capture, out, [{"name": "all", "pipeline": pipeline}], ENGINE, pool=POOL,
                                        run={"workers": 2, "call_budget_ms": 200, "on_worker_death": "stop"}),
                     memory="hugepages")
    assert run.returncode == 1, run.stderr
    rows = run.stats["workers"]
    stuck = [row for row in rows if "ended" in row]
    assert len(stuck) == 1, rows
    assert stuck[0]["ended"].startswith("killed: no progress for "), stuck
    assert "in pyprocs.pids:LoopsOn's process, a call of " in stuck[0]["ended"], stuck
    assert run.stats["stop_reason"].startswith(f"worker process {stuck[0]['worker']} ended (killed: no progress")
    survivor = next(row for row in rows if "ended" not in row)
    assert {r["pid"] for r in flow_pids(pids)} == {survivor["pid"]}
    check_left_nothing(run)


def test_sigint_ends_a_run_with_a_stuck_worker_process(tmp_path):
    """SIGINT while a worker process is stuck in a call: the run still ends (once the stuck process
    has been ended, 5 call budgets and a second after its last progress), with its statistics,
    the stuck call named, and nothing left behind."""
    frames = many_connections(50)
    capture, out = write_pcap(tmp_path / "many.pcap", frames), tmp_path / "out.pcap"
    import yaml
    cfg = one_port(f"{capture},infinite_rx=1", out,
                   [{"name": "all", "pipeline": pids_pipeline() + [{"pyprocs.pids:LoopsOn": {"port": 2005}}]}],
                   {"capacity": 4096}, pool=POOL, run={"workers": 2, "call_budget_ms": 400, "on_worker_death": "stop"})
    (tmp_path / "stuck.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    with SignalledRun(tmp_path, tmp_path / "stuck.yaml") as run:
        time.sleep(0.5)
    assert run.returncode == 1, run.stderr
    report = run.report
    stuck = [row for row in report["workers"] if "ended" in row]
    assert len(stuck) == 1 and "in pyprocs.pids:LoopsOn's process" in stuck[0]["ended"], report["workers"]
    assert not runtime_folder(report["file_prefix"]).exists() and hugepage_files(report["file_prefix"]) == []


def restart_config(tmp_path, processor, **run):
    """An endless replay of 100 connections through FlowPids and `processor` on 2 worker processes."""
    import yaml
    capture = write_pcap(tmp_path / "many.pcap", many_connections(100))
    pipeline = pids_pipeline(tmp_path / "pids.json") + [processor]
    cfg = one_port(f"{capture},infinite_rx=1", tmp_path / "out.pcap", [{"name": "all", "pipeline": pipeline}],
                   {"capacity": 4096}, pool=POOL, run={"workers": 2, **run})
    path = tmp_path / "restart.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def wait_for(prefix, predicate, what, timeout=60):
    """flowos-ctl stats, polled until predicate(answer) holds (robust under load: no fixed wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = ctl_stats(prefix)
        if predicate(answer):
            return answer
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s; last: {answer['workers']}")


def packets_of(answer, w):
    return answer["workers"][w].get("engine", {}).get("packets", -1)


def follow_a_restart(prefix, progress):
    """Waits for a worker process's restart while the run goes on: the other worker's `progress`
    (of a flowos-ctl stats answer and a worker) grows across it, and the restarted worker's grows
    again after it. Returns (the restarted worker, the answer once it was going again)."""
    died = wait_for(prefix, lambda a: any(row["restarts"] for row in a["workers"]), "a restart")
    w = next(row["worker"] for row in died["workers"] if row["restarts"])
    other = 1 - w
    wait_for(prefix, lambda a: progress(a, other) > progress(died, other), "the other worker going on")
    running = wait_for(prefix, lambda a: progress(a, w) > 0, "the restarted worker going")
    wait_for(prefix, lambda a: progress(a, w) > progress(running, w), "the restarted worker going on")
    return w, running


def check_restarted_once(tmp_path, processor, reason, **run):
    """Worker process w dies (or is ended, stuck) once on an endless replay: the run goes on, the
    other worker forwards throughout, a new process takes w's place and forwards; SIGINT ends the
    run cleanly (exit 0), the restart counted with its reason and processor, the mbufs that went
    with the dead process accounted for, nothing left behind. Returns the restarted row."""
    with SignalledRun(tmp_path, restart_config(tmp_path, processor, **run)) as flowos:
        w, running = follow_a_restart(flowos.prefix, packets_of)
        other = 1 - w
        assert running["running"] and running["workers"][other]["restarts"] == 0
    assert flowos.returncode == 0, flowos.stderr
    report, stderr = flowos.report, flowos.stderr
    assert report["stop_reason"] == "signal (SIGINT)"
    row = report["workers"][w]
    assert row["restarts"] == len(row["restarted"]) == 1 and "ended" not in row, row
    record = row["restarted"][0]
    assert reason(record["reason"]) and record["processor"] == next(iter(processor)), record
    assert record["pid"] != row["pid"] and row["engine"]["tx_packets"] > 0
    assert report["workers"][other]["restarts"] == 0 and "ended" not in report["workers"][other]
    assert f"worker process {w} (pid {record['pid']}) ended in {record['processor']}: " in stderr
    assert "restarting it (restart 1)" in stderr
    lost = report["mbufs"]["lost_with_worker_processes"]
    assert lost["restarts"] == 1 and lost["held"] == record["mbufs_held"]
    assert report["mbufs"]["in_use_at_exit"] <= lost["held"] + lost["in_hand_at_most"], report["mbufs"]
    # The restarted process's flows ran in the new process (the dead one wrote no records).
    assert {r["pid"] for r in flow_pids(tmp_path / "pids.json")} == {row["pid"], report["workers"][other]["pid"]}
    assert not runtime_folder(report["file_prefix"]).exists() and hugepage_files(report["file_prefix"]) == []
    return row


def test_a_worker_process_that_dies_is_restarted(tmp_path):
    """run.on_worker_death: restart (the default): a worker process that dies (os._exit in its
    processor, once) is replaced by a fresh one while the run goes on (check_restarted_once)."""
    check_restarted_once(tmp_path, {"pyprocs.pids:ExitOnce": {"port": 2005, "marker": str(tmp_path / "hit")}},
                         lambda reason: reason == "exit status 3")


def test_a_stuck_worker_process_is_restarted(tmp_path):
    """A worker process stuck in a processor call (once) is ended and replaced by a fresh one
    while the run goes on (check_restarted_once)."""
    check_restarted_once(tmp_path, {"pyprocs.pids:LoopsOnce": {"port": 2005, "marker": str(tmp_path / "hit")}},
                         lambda reason: reason.startswith("killed: no progress for "), call_budget_ms=200)


def test_a_restart_while_flowos_ctl_asks_without_pause_survives_the_end(tmp_path):
    """A monitor asking flowos-ctl stats without pause while a worker process dies: the control
    server's thread must not restart it. A process started from that thread was killed by the
    kernel when the thread ended at the run's end (PR_SET_PDEATHSIG follows the thread that forked
    it), without its report: exit 1."""
    import threading
    from flowos.runtime import control_server
    from flowos.apps.ctl import Instance
    exit_once = {"pyprocs.pids:ExitOnce": {"port": 2005, "marker": str(tmp_path / "hit")}}
    done = threading.Event()
    with SignalledRun(tmp_path, restart_config(tmp_path, exit_once)) as flowos:
        monitor = Instance(str(runtime_folder(flowos.prefix) / control_server.SOCKET_NAME))

        def ask():
            while not done.is_set():
                monitor.ask("/flowos/stats")
        asking = threading.Thread(target=ask)
        asking.start()
        try:
            w, _ = follow_a_restart(flowos.prefix, packets_of)
        finally:
            done.set()
            asking.join(timeout=30)
            monitor.close()
    assert flowos.returncode == 0, flowos.stderr
    row = flowos.report["workers"][w]
    assert row["restarts"] == 1 and "ended" not in row, row


def test_a_worker_process_that_keeps_dying_ends_the_run(tmp_path):
    """A worker process that dies every time it is restarted (every replay brings the port it
    dies on) is given up on after RESTART_LIMIT restarts: the run stops, saying so, exit 1, its
    row counting the restarts and saying how the last one ended; nothing left behind."""
    from flowos.runtime.worker_processes import RESTART_LIMIT
    run = run_flowos("-c", str(restart_config(tmp_path, {"pyprocs.pids:ExitOn": {"port": 2005}})), tmp_path=tmp_path,
                     memory="hugepages", timeout=120)
    assert run.returncode == 1, run.stderr
    dead = [row for row in run.stats["workers"] if "ended" in row]
    assert len(dead) == 1 and dead[0]["ended"] == "exit status 3", run.stats["workers"]
    assert dead[0]["restarts"] == RESTART_LIMIT
    assert all(r["reason"] == "exit status 3" for r in dead[0]["restarted"])
    assert f"worker process {dead[0]['worker']} died {RESTART_LIMIT + 1} times in 60 s: not restarted again" in run.stderr
    assert run.stats["stop_reason"] == f"worker process {dead[0]['worker']} ended (exit status 3)"
    check_left_nothing(run)
