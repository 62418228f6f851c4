"""Python processors on N workers: flowos-run itself, its workers run as processes
(docs/architecture.md, "Worker processes"), measured on a closed loop.

Two net_ring ports, each a loop (what a net_ring vdev sends on a queue it receives on that queue)
forwarded into each other, and a capture that enters the loop once: its packets then go round for
ever, through the relay, a worker's inbox, its engine shard and Python processor, its outbox and
back through the relay; no generator runs. A lap is one packet received on a ring port; the rate
is the laps of both ports between two readings of flowos-ctl stats, after a warm-up.

The packets are UDP, `flows` connections per worker with as many packets each as fit the loop
(LOOP_PACKETS per worker: each worker's packets go round its own queue of each ring port, under
its 1024 entries, so nothing is dropped). The loop grows with the workers, as a box's traffic
grows with its cores: with a fixed population, N workers would each get 1/N of it, and their
bursts (and the Python calls they pay for) 1/N as many packets. Scenarios: python_field
(batch.dport at bursts of 256, the processor of `scripts/bench processors`'s python_field_b256)
and stream_scan (a pattern searched in both directions of every flow's stream, also across
packets, releasing up to where a match may still start: `scripts/bench streams`'s scan_python,
streambench.PyStreamFind; a UDP flow's stream is its datagrams' payloads in arrival order, so each
lap brings new stream bytes, one connection in four carrying the pattern); each is run in process
(one worker thread, today's Python tier) and with 1..N worker processes.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOP_PACKETS = 768      # circulating packets per worker: its rings of 1024 hold them all, so none is refused
PATTERN = "X-FlowOS-Needle/1"       # streambench's
PYTHON_SCENARIOS = {"python_field": "procbench:DportField",
                    "stream_scan": {"streambench:PyStreamFind": {"pattern": PATTERN}}}
BURST = 256
READY_S = 60            # how long flowos-run may take to start (EAL, ports, worker processes)
STOP_S = 30             # how long it may take to stop after SIGINT


class PyScaleError(Exception):
    pass


def loop_capture(path, flows, packets):
    """A capture of `packets` UDP packets, `flows` connections in turn (scapy, as the tests).
    Source address and port vary apart: the symmetric hash folds the XOR of the 16-bit words, so
    ports that follow the address would give every connection one worker."""
    from scapy.all import IP, UDP, Ether, Raw, wrpcap
    frames = []
    for i in range(packets):
        c = i % flows
        frames.append(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
                      IP(src=f"10.{c >> 16 & 255}.{c >> 8 & 255}.{c & 255}", dst="10.200.0.1") /
                      UDP(sport=10000 + c * 7919 % 50000, dport=443 if c % 4 == 0 else 80) /
                      Raw(PATTERN.encode() + b"x" if c % 4 == 0 else b"x" * 18))
    wrpcap(str(path), frames)


def loop_config(path, capture, processor, workers, processes, cpus, memory_mode, prefix):
    """flowos-run's configuration for one run (JSON is YAML)."""
    config = {
        "eal": {"memory": memory_mode, "worker_cpus": cpus, "file_prefix": prefix},
        "ports": [{"name": "feed", "vdev": f"net_pcap0,rx_pcap={capture},tx_pcap=/dev/null"},
                  {"name": "a", "vdev": "net_ring0"},
                  {"name": "b", "vdev": "net_ring1"}],
        "forward": ["feed -> a", "a -> b", "b -> a"],
        "run": {"workers": workers, "burst": BURST, "worker_processes": "always" if processes else "auto"},
        "engine": {"capacity": 65536},
        "flows": [{"name": "all", "match": {}, "pipeline": [processor]}],
    }
    Path(path).write_text(json.dumps(config))


def ring_laps(flowos_ctl, prefix):
    """Packets received on the two ring ports so far (flowos-ctl stats)."""
    done = subprocess.run([flowos_ctl, "-f", prefix, "stats"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise PyScaleError(f"flowos-ctl stats failed: {done.stderr.strip() or done.stdout.strip()}")
    ports = {p["name"]: p for p in json.loads(done.stdout)["ports"]}
    return sum(int(ports[name]["rx_packets"]) for name in ("a", "b"))


def run_once(flowos_run, scenario, workers, processes, cpus, memory_mode, seconds, warmup, flows, workdir):
    """Mpps round the loop with `workers` workers (processes or, for one, a thread), and the run's
    --stats-json."""
    prefix = f"pyscale-{os.getpid()}-{scenario}-{workers}{'p' if processes else 't'}"
    capture, config, stats = (Path(workdir, f"{prefix}.{ext}") for ext in ("pcap", "yaml", "json"))
    if not capture.exists():
        loop_capture(capture, flows * workers, LOOP_PACKETS * workers)
    loop_config(config, capture, PYTHON_SCENARIOS[scenario], workers, processes, cpus, memory_mode, prefix)
    here = Path(__file__).resolve().parent      # procbench's processors, and the extensions it imports
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here), str(here.parent / "build" / "release" / "benchmarks")]))
    proc = subprocess.Popen([flowos_run, "-c", str(config), "--stats-json", str(stats), "--no-dashboard"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", env=env)
    flowos_ctl = str(Path(flowos_run).with_name("flowos-ctl"))
    try:
        laps0 = wait_running(proc, flowos_ctl, prefix)
        time.sleep(warmup)
        t0, laps0 = time.monotonic(), ring_laps(flowos_ctl, prefix)
        time.sleep(seconds)
        t1, laps1 = time.monotonic(), ring_laps(flowos_ctl, prefix)
    finally:
        output = stop(proc)
    if proc.returncode not in (0, 1) or not stats.exists():
        raise PyScaleError(f"flowos-run exited {proc.returncode}\n{output[-2000:]}")
    report = json.loads(stats.read_text())
    return {"mpps": (laps1 - laps0) / (t1 - t0) / 1e6, "laps": laps1 - laps0, "seconds": t1 - t0,
            "loop_packets": LOOP_PACKETS * workers, "report": report}


def wait_running(proc, flowos_ctl, prefix):
    """Waits until packets go round (the loop's first laps); returns the laps then."""
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PyScaleError(f"flowos-run exited {proc.returncode} at start:\n{proc.stdout.read()[:3000]}")
        try:
            laps = ring_laps(flowos_ctl, prefix)
            if laps > LOOP_PACKETS:
                return laps
        except (PyScaleError, KeyError, ValueError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.2)
    raise PyScaleError(f"no packet went round the loop within {READY_S} s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(2)
    try:
        output, _ = proc.communicate(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return output


# The targets: n worker processes over one, and one worker process over one worker thread.
TARGET_PROCESSES = {2: 1.7, 14: 12.0}
TARGET_PROCESS_COST = 0.95


def runs(flowos_run, scenarios, counts, cpus, memory_mode, reps, seconds, warmup, flows, log):
    """reps rounds, alternating: each scenario on one worker thread (in process: today's Python tier)
    and on each count of worker processes. Returns {scenario: {label: [run, ...]}}, label "thread"
    or the count of processes."""
    out = {name: {} for name in scenarios}
    with tempfile.TemporaryDirectory(prefix="pyscale-") as workdir:
        for rep in range(1, reps + 1):
            for name in scenarios:
                for label in ["thread"] + list(counts):
                    n = 1 if label == "thread" else label
                    r = run_once(flowos_run, name, n, label != "thread", cpus[:n], memory_mode, seconds, warmup,
                                 flows, workdir)
                    out[name].setdefault(label, []).append(r)
                    what = "1 worker thread" if label == "thread" else f"{n} worker process" + ("es" if n > 1 else "")
                    log(f"  run {rep}/{reps}, {name}, {what}: {r['mpps']:.2f} Mpps")
    return out


def anomalies(name, label, r):
    """What makes a run's figure unfit: packets lost round the loop, mbufs left, a fault."""
    report, problems = r["report"], []
    where = f"{name}, {label}"
    lost = report["totals"]["dropped"] + sum(p["tx_unsent"] for p in report["ports"])
    if lost:
        problems.append(f"{where}: {lost} packets dropped or refused: the loop lost them")
    # At the end every packet of the loop is in it (in a ring port's queue, freed at the end), and no
    # other mbuf is out.
    mbufs, loop = report["mbufs"], r["loop_packets"]
    if mbufs["in_use_at_exit"] or mbufs["left_in_port_queues"] != loop - lost:
        problems.append(f"{where}: {mbufs['left_in_port_queues']} mbufs left in the ring ports at the end, not the "
                        f"loop's {loop - lost}; {mbufs['in_use_at_exit']} more out of the pool")
    faults = [p for flow in report["engine"]["flows"] for p in flow["processors"] if p["report"].get("faults")]
    for p in faults:
        problems.append(f"{where}: {p['name']} faulted {p['report']['faults']} times")
    return problems


def summary(rs):
    mpps = [r["mpps"] for r in rs]
    return {"median_mpps": statistics.median(mpps), "runs_mpps": mpps}


def results(all_runs):
    """Medians per scenario and label, the ratios against the targets, and the anomalies."""
    data, problems, targets = {}, [], {}
    for name, by_label in all_runs.items():
        data[name] = {str(label): summary(rs) for label, rs in by_label.items()}
        for label, rs in by_label.items():
            for r in rs:
                problems += anomalies(name, label, r)
        one = data[name].get("1", {}).get("median_mpps")
        thread = data[name]["thread"]["median_mpps"]
        if one:
            targets[f"{name}_process_cost"] = {"value": one / thread, "target": TARGET_PROCESS_COST,
                                               "met": one / thread >= TARGET_PROCESS_COST}
        for n, goal in TARGET_PROCESSES.items():
            got = data[name].get(str(n), {}).get("median_mpps")
            value = got / one if got and one else None
            targets[f"{name}_{n}"] = {"value": value, "target": goal, "met": None if value is None else value >= goal}
    return data, targets, sorted(set(problems))


def table(data, targets):
    lines = ["", "Python processors on worker processes (flowos-run on a closed loop of two net_ring ports; Mpps: "
                 "laps of the loop; x 1 process: against one worker process)", "",
             f"{'scenario':<14} {'workers':<12} {'Mpps':>8} {'min':>7} {'max':>7} {'x 1 process':>11}"]
    for name, by_label in data.items():
        one = by_label.get("1", {}).get("median_mpps")
        for label, s in by_label.items():
            what = "1 thread" if label == "thread" else f"{label} process" + ("es" if label != "1" else "")
            times = f"{s['median_mpps'] / one:.2f}" if one else "-"
            lines.append(f"{name:<14} {what:<12} {s['median_mpps']:8.2f} {min(s['runs_mpps']):7.2f} "
                         f"{max(s['runs_mpps']):7.2f} {times:>11}")
    for key, t in targets.items():
        verdict = "not measured" if t["met"] is None else "met" if t["met"] else "NOT met"
        value = "-" if t["value"] is None else f"{t['value']:.2f}x"
        what = ("1 worker process / 1 worker thread" if key.endswith("_process_cost") else
                f"{key.rsplit('_', 1)[1]} worker processes / 1")
        lines.append(f"target {key.rsplit('_', 2)[0] if key.endswith('_process_cost') else key.rsplit('_', 1)[0]}, "
                     f"{what}: {value}, target >= {t['target']:g}x: {verdict}")
    return lines


if __name__ == "__main__":      # one run, for trying it by hand: pyscale.py WORKERS [t|p]
    with tempfile.TemporaryDirectory() as d:
        n = int(sys.argv[1])
        r = run_once(str(Path(sys.executable).with_name("flowos-run")), "python_field", n,
                     len(sys.argv) < 3 or sys.argv[2] == "p", list(range(os.cpu_count() - n, os.cpu_count())),
                     "hugepages", 3, 1, 256, d)
        print(json.dumps({k: v for k, v in r.items() if k != "report"}))
