"""Python processors on N workers: flowos-run itself, its workers run as processes
(docs/architecture.md, "Worker processes"), measured on a closed loop.

Two net_ring ports, each a loop (what a net_ring vdev sends on a queue it receives on that queue)
forwarded into each other, and a capture that enters the loop once: its packets then go round for
ever, through the relay, a worker's inbox, its engine shard and Python processor, its outbox and
back through the relay; no generator runs. A lap is one packet received on a ring port; the rate
is the laps of both ports between two readings of flowos-ctl stats, after a warm-up.

The packets are UDP, `flows` connections with as many packets each as fit the loop (LOOP_PACKETS:
under the 1024 entries of a net_ring's ring, so nothing is dropped). Scenarios: python_field
(batch.dport at bursts of 256, the processor of `scripts/bench processors`'s python_field_b256);
each is run in process (one worker thread, today's Python tier) and with 1..N worker processes.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOP_PACKETS = 768      # circulating packets: each ring of 1024 holds them all, so none is refused
PYTHON_SCENARIOS = {"python_field": "procbench:DportField"}
BURST = 256
READY_S = 60            # how long flowos-run may take to start (EAL, ports, worker processes)
STOP_S = 30             # how long it may take to stop after SIGINT


class PyScaleError(Exception):
    pass


def loop_capture(path, flows):
    """A capture of LOOP_PACKETS UDP packets, `flows` connections in turn (scapy, as the tests)."""
    from scapy.all import IP, UDP, Ether, Raw, wrpcap
    frames = []
    for i in range(LOOP_PACKETS):
        c = i % flows
        frames.append(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
                      IP(src=f"10.{c >> 16 & 255}.{c >> 8 & 255}.{c & 255}", dst="10.200.0.1") /
                      UDP(sport=1024 + c % 60000, dport=443 if c % 4 == 0 else 80) / Raw(b"x" * 18))
    wrpcap(str(path), frames)


def loop_config(path, capture, processor, workers, processes, cpus, memory_mode, prefix):
    """flowos-run's configuration for one run (JSON is YAML)."""
    config = {
        "eal": {"memory": memory_mode, "worker_cpus": cpus, "file_prefix": prefix},
        "ports": [{"name": "feed", "vdev": f"net_pcap_{prefix},rx_pcap={capture},tx_pcap=/dev/null"},
                  {"name": "a", "vdev": f"net_ring_{prefix}a"},
                  {"name": "b", "vdev": f"net_ring_{prefix}b"}],
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
    ports = json.loads(done.stdout)["ports"]
    return sum(int(ports[name]["rx_packets"]) for name in ("a", "b"))


def run_once(flowos_run, scenario, workers, processes, cpus, memory_mode, seconds, warmup, flows, workdir):
    """Mpps round the loop with `workers` workers (processes or, for one, a thread), and the run's
    --stats-json."""
    prefix = f"pyscale-{os.getpid()}-{scenario}-{workers}{'p' if processes else 't'}"
    capture, config, stats = (Path(workdir, f"{prefix}.{ext}") for ext in ("pcap", "yaml", "json"))
    if not capture.exists():
        loop_capture(capture, flows)
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
            "report": report}


def wait_running(proc, flowos_ctl, prefix):
    """Waits until packets go round (the loop's first laps); returns the laps then."""
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PyScaleError(f"flowos-run exited {proc.returncode} at start:\n{proc.stdout.read()[-2000:]}")
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


if __name__ == "__main__":      # one run, for trying it by hand: pyscale.py WORKERS [t|p]
    with tempfile.TemporaryDirectory() as d:
        n = int(sys.argv[1])
        r = run_once(str(Path(sys.executable).with_name("flowos-run")), "python_field", n,
                     len(sys.argv) < 3 or sys.argv[2] == "p", list(range(os.cpu_count() - n, os.cpu_count())),
                     "hugepages", 3, 1, 256, d)
        print(json.dumps({k: v for k, v in r.items() if k != "report"}))
