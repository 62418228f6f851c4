"""Worker processes polling their own queues (docs/architecture.md, "Worker processes"): a port
whose driver lets a DPDK secondary receive and send (net_ring here, a NIC on bare metal) is polled
by each worker process on its own queue and sent on its own TX queue, without the relay; the relay
serves the other ports (net_pcap) in the same run. The per-flow results are one worker's."""
import os
import signal
import time

from conftest import hugepage_files, kill_flowos, packets, run_flowos, runtime_folder, start_flowos
from flowcheck import check_per_flow_order, engine_stats, run_config, same_multiset, write_pcap
from test_python_processors import pyprocs_importable  # noqa: F401 (an autouse fixture: pyprocs on PYTHONPATH)
from test_worker_processes import (POOL, SignalledRun, check_left_nothing, flow_pids, follow_a_restart,  # noqa: F401
                                   ip_flows, needs_hugepages, pids_pipeline, wait_for)
from test_workers import many_connections

ENGINE = {"capacity": 4096}    # the engine's clock: the TSC (ring ports replay no capture)


def through_a_ring(tmp_path, frames, pipeline, **run):
    """feed (a capture, the relay's) -> ring (net_ring: its queue w is worker w's, each queue a
    loop) -> out (a capture, the relay's). Each packet passes the engine twice: from the feed, in
    the process of its flow, which sends it on its own ring queue; from the ring, in that same
    process, which hands it to the relay's outbox for out. --packets ends the run once every
    packet came round (the feed's and the ring's together)."""
    capture = write_pcap(tmp_path / "in.pcap", frames)
    return {"ports": [{"name": "feed", "vdev": f"net_pcap0,rx_pcap={capture},tx_pcap={tmp_path / 'feed.pcap'}"},
                      {"name": "ring", "vdev": "net_ring0"},
                      {"name": "out", "vdev": f"net_pcap1,tx_pcap={tmp_path / 'out.pcap'}"}],
            "forward": ["feed -> ring", "ring -> out"], "engine": ENGINE, "pool": POOL,
            "run": {"packets": 2 * len(frames), **run},
            "flows": [{"name": "all", "pipeline": pipeline}]}


def test_worker_processes_poll_their_own_ring_queues(tmp_path):
    """Two worker processes each poll their own queue of the net_ring port (their rows say which)
    and send on their own: no packet handed over twice, each connection's packets out in order,
    every mbuf back; the per-flow counts are one worker thread's."""
    frames = many_connections(100)
    many, one = tmp_path / "many", tmp_path / "one"
    many.mkdir(), one.mkdir()
    run = run_config(many, through_a_ring(many, frames, pids_pipeline(many / "pids.json"), workers=2),
                     memory="hugepages")
    assert run.returncode == 0, run.stderr
    check_left_nothing(run)
    said = " ".join(run.stdout.split())     # the console wraps its lines
    assert "ring 2 queues spread by the device" in said and "polled by the worker processes" in said
    assert "feed one queue, flows handed to their workers, received and sent by the relay" in said
    assert run.stats["stop_reason"] == "packet-limit"
    assert run.stats["mbufs"]["in_use_at_exit"] == 0
    rows = run.stats["workers"]
    assert [row["own_queues"] for row in rows] == [["ring:0"], ["ring:1"]]
    assert sum(row["own_queues_rx"] for row in rows) == len(frames)
    stats = engine_stats(run)
    # The relay hands each feed packet over once; from the ring, each process gets only its own.
    assert stats["handed_off"] == len(frames) and stats["packets"] == 2 * len(frames)
    assert all(row["engine"]["handed_off"] == 0 and row["engine"]["packets"] > 0 for row in rows)
    ports = {p["name"]: p for p in run.stats["ports"]}
    assert ports["ring"]["rx_packets"] == ports["ring"]["tx_packets"] == ports["out"]["tx_packets"] == len(frames)
    assert all(p["tx_unsent"] == 0 for p in ports.values())
    out = packets(many / "out.pcap")
    assert same_multiset(out, frames)
    check_per_flow_order(frames, out)
    records = flow_pids(many / "pids.json")
    assert len({r["pid"] for r in records}) == 2, "every worker process owns flows"
    alone = run_config(one, through_a_ring(one, frames, pids_pipeline(one / "pids.json"), workers=1), memory="no-huge")
    assert alone.returncode == 0, alone.stderr
    assert ip_flows(flow_pids(one / "pids.json")) == ip_flows(records)


def test_the_relay_can_serve_every_port(tmp_path):
    """run.worker_process_queues: relay: the relay receives from the ring too; same output."""
    frames = many_connections(50)
    run = run_config(tmp_path, through_a_ring(tmp_path, frames, pids_pipeline(), workers=2,
                                              worker_process_queues="relay"), memory="hugepages")
    assert run.returncode == 0, run.stderr
    check_left_nothing(run)
    assert "polled by the worker processes" not in run.stdout
    assert all("own_queues" not in row for row in run.stats["workers"])
    assert engine_stats(run)["handed_off"] == 2 * len(frames)    # the relay hands over both passes
    out = packets(tmp_path / "out.pcap")
    check_per_flow_order(frames, out)


def endless_config(tmp_path, processor):
    """An endless replay (the relay's) into ring port a, whose queues the worker processes poll,
    then out of net_null port sink (their own TX queues too), through FlowPids and `processor`."""
    import yaml
    capture = write_pcap(tmp_path / "in.pcap", many_connections(100))
    cfg = {"ports": [{"name": "feed", "vdev": f"net_pcap0,rx_pcap={capture},infinite_rx=1"},
                     {"name": "a", "vdev": "net_ring0"}, {"name": "sink", "vdev": "net_null0"}],
           "forward": ["feed -> a", "a -> sink"], "engine": ENGINE, "pool": POOL, "run": {"workers": 2},
           "flows": [{"name": "all", "pipeline": pids_pipeline(tmp_path / "pids.json") + [processor]}]}
    path = tmp_path / "endless.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_a_worker_process_polling_its_own_queues_is_restarted(tmp_path):
    """A worker process that dies while polling its own queues is replaced; the other keeps
    forwarding meanwhile and the new one polls the dead one's queues again; SIGINT ends the run
    cleanly, every mbuf accounted for (left in the ring, or lost with the dead process)."""
    exit_once = {"pyprocs.pids:ExitOnce": {"port": 2005, "marker": str(tmp_path / "hit")}}
    with SignalledRun(tmp_path, endless_config(tmp_path, exit_once)) as run:
        # What each worker receives on its own queues goes on across the restart.
        w, _ = follow_a_restart(run.prefix, lambda a, worker: a["workers"][worker].get("own_queues_rx", -1))
    assert run.returncode == 0, run.stderr
    report = run.report
    row = report["workers"][w]
    assert row["restarts"] == 1 and row["own_queues"] == [f"a:{w}"] and "ended" not in row, row
    assert row["restarted"][0]["reason"] == "exit status 3"
    # What no worker received from the ring by the end was freed from it; out of the pool at the
    # end, at most what died.
    ring, mbufs = next(p for p in report["ports"] if p["name"] == "a"), report["mbufs"]
    assert mbufs["left_in_port_queues"] == ring["tx_packets"] - ring["rx_packets"]
    lost = mbufs["lost_with_worker_processes"]
    assert mbufs["in_use_at_exit"] <= lost["held"] + lost["in_hand_at_most"]
    assert not runtime_folder(report["file_prefix"]).exists() and hugepage_files(report["file_prefix"]) == []


def test_a_worker_process_that_dies_polling_its_own_queues_stops_the_run(tmp_path):
    """run.on_worker_death: stop: a worker process that dies while it polls its own queues is
    counted out of the receivers for it, so that the others end: exit 1 in bounded time, its row
    saying how it ended, nothing left behind."""
    import yaml
    path = endless_config(tmp_path, {"pyprocs.pids:ExitOn": {"port": 2005}})
    cfg = yaml.safe_load(path.read_text())
    cfg["run"]["on_worker_death"] = "stop"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = run_flowos("-c", str(path), tmp_path=tmp_path, memory="hugepages", timeout=120)
    assert run.returncode == 1, run.stderr
    dead = [row for row in run.stats["workers"] if "ended" in row]
    assert len(dead) == 1 and dead[0]["ended"] == "exit status 3", run.stats["workers"]
    assert run.stats["ended"]["how"] == "stopped"
    check_left_nothing(run)


def thread_cpu_seconds(pid, tid):
    fields = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def relay_thread(worker_pid):
    """(primary's pid, its relay's thread id): the worker process's parent, its lcore thread (the
    EAL names them rte-worker-N in DPDK 22.11, dpdk-workerN from 23.11; the primary has one)."""
    ppid = int(open(f"/proc/{worker_pid}/stat").read().rsplit(")", 1)[1].split()[1])
    tids = [t for t in os.listdir(f"/proc/{ppid}/task")
            if open(f"/proc/{ppid}/task/{t}/comm").read().startswith(("rte-worker", "dpdk-worker"))]
    assert len(tids) == 1, tids
    return ppid, tids[0]


def test_the_relay_sleeps_once_its_captures_are_read(tmp_path):
    """A capture enters a closed loop of two ring ports, which the worker processes poll
    themselves: once the relay has read the capture it only sends the outboxes (empty here), and
    sleeps between empty polls instead of spinning on a CPU that a worker may share (it took half
    of a CPU, and the loop's rate with it). Its CPU time over 2 s stays well under a second."""
    import yaml
    capture = write_pcap(tmp_path / "in.pcap", many_connections(100))
    cfg = {"ports": [{"name": "feed", "vdev": f"net_pcap0,rx_pcap={capture},tx_pcap={tmp_path / 'feed.pcap'}"},
                     {"name": "a", "vdev": "net_ring0"}, {"name": "b", "vdev": "net_ring1"}],
           "forward": ["feed -> a", "a -> b", "b -> a"], "engine": ENGINE, "pool": POOL, "run": {"workers": 2},
           "flows": [{"name": "all", "pipeline": pids_pipeline()}]}
    (tmp_path / "loop.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = start_flowos("-c", str(tmp_path / "loop.yaml"), tmp_path=tmp_path, memory="hugepages")
    try:
        first_line = proc.stdout.readline()
        assert first_line.startswith("flowos: memory"), first_line + proc.stderr.read()
        answer = wait_for(proc.file_prefix, lambda a: all(row.get("own_queues_rx", 0) > 0 for row in a["workers"]),
                          "both workers going round the loop")
        pid, tid = relay_thread(answer["workers"][0]["pid"])
        before = thread_cpu_seconds(pid, tid)
        time.sleep(2)
        used = thread_cpu_seconds(pid, tid) - before
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        kill_flowos(proc)
    assert used < 0.5, used
