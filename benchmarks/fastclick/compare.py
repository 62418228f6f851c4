"""FlowOS's flow path against FastClick's, side by side on one core (issue 15).

Runs, in alternating rounds, FlowOS's fo_flowbench (generator_only, flows_1k, flows_100k,
pipeline_100k) and FastClick's flowpath.click and generator_only.click at 1k and 100k flows, on the
same CPU and in the same memory mode, and prints cycles per packet with each side's generator
taken off. FastClick is not part of FlowOS: build it by hand (README.md here) and give its `click`
with --click. Nothing in the build, the tests or CI runs this.

    .venv/bin/python benchmarks/fastclick/compare.py --click /path/to/fastclick/bin/click

Each run's main thread (the one that runs the packets) is checked through
/proc/<pid>/task/<pid>/schedstat, read when it has exited: the time it waited on a run queue, as a
share of the time it ran, is printed per round, and rounds above --max-wait (percent) are left out
of the medians and listed.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import bench  # noqa: E402  (benchmarks/bench.py: fo_flowbench's binary, EAL clean-up, anomaly checks)
from flowos.runtime import hugepages  # noqa: E402
from flowos.configuration.config import MEMORY_MODES  # noqa: E402
from flowos.errors import FlowOSError  # noqa: E402

FLOWOS_SCENARIOS = ("generator_only", "flows_1k", "flows_100k", "pipeline_100k")
# FastClick's runs: (name, configuration, flows). Capacity is twice the flows, as fo_flowbench's.
FASTCLICK_RUNS = (("gen_1k", "generator_only.click", 1000), ("flows_1k", "flowpath.click", 1000),
                  ("gen_100k", "generator_only.click", 100000), ("flows_100k", "flowpath.click", 100000))
# The rows of the comparison: (FlowOS scenario, FastClick flow path, its generator).
ROWS = (("flows_1k", "flows_1k", "gen_1k"), ("flows_100k", "flows_100k", "gen_100k"),
        ("pipeline_100k", "flows_100k", "gen_100k"))
MARK = re.compile(r"^MARK(\d) (\d+(?:\.\d+)?) (\d+)$")
POLL_S = 0.05
RUN_LIMIT_S = 120


def schedstat(pid):
    """(ns on a CPU, ns waiting on a run queue) of the thread pid: a process's main thread."""
    ran, waited, _ = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
    return int(ran), int(waited)


class Watched:
    """A process whose main thread's schedstat is read at each MARK line it prints (the time on a
    CPU at that moment) and once it has exited, before it is reaped (its whole life)."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        self.output, self.ran_at_mark = {}, {}
        self.readers = [threading.Thread(target=self.read, args=(name,), daemon=True)
                        for name in ("stdout", "stderr")]
        for reader in self.readers:
            reader.start()

    def read(self, name):
        lines = []
        for line in getattr(self.proc, name):
            if name == "stdout" and MARK.match(line):
                self.ran_at_mark[int(MARK.match(line)[1])] = schedstat(self.proc.pid)[0]
            lines.append(line)
        self.output[name] = "".join(lines)

    def finish(self):
        """Waits for the exit; returns (exit status, stdout, stderr)."""
        deadline = time.monotonic() + RUN_LIMIT_S
        while os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                bench.stop(self.proc)
                raise bench.BenchError(f"{self.proc.args[0]} did not finish within {RUN_LIMIT_S} s")
            time.sleep(POLL_S)
        for reader in self.readers:     # its output ends with it (the MARK lines read before the reaping)
            reader.join(RUN_LIMIT_S)
        self.ran_ns, self.waited_ns = schedstat(self.proc.pid)
        self.proc.wait()
        return self.proc.returncode, self.output["stdout"], self.output["stderr"]

    def wait_pct(self):
        return 100.0 * self.waited_ns / self.ran_ns if self.ran_ns else 0.0


def eal(memory, cpu, prefix):
    argv = ["--lcores", f"0@{cpu}", "--file-prefix", prefix, "--no-shconf", "--no-telemetry", "--no-pci",
            "-m", str(memory.memory_mb), "--log-level=lib.eal:warning"]
    return argv + (["--no-huge"] if memory.mode == "no-huge" else ["--huge-dir", memory.huge_dir, "--huge-unlink"])


def flowos_run(args, binary, memory, cpu, prefix):
    """One fo_flowbench run of FLOWOS_SCENARIOS: {scenario: cycles per packet} over its window and on
    a CPU (its thread's CPU time in the window at the TSC rate), tsc_hz, wait %."""
    argv = [str(binary)] + eal(memory, cpu, prefix) + [
        "--", "--seconds", str(args.seconds), "--warmup", str(args.warmup), "--only", ",".join(FLOWOS_SCENARIOS)]
    w = Watched(argv)
    rc, out, err = w.finish()
    try:
        data = json.loads(out)
    except ValueError:
        data = None
    if rc != 0 or data is None:
        raise bench.BenchError(f"fo_flowbench failed (exit {rc})\n{bench.tail(out + err)}")
    problems = [p for name, r in data["scenarios"].items() for p in bench.flowbench_anomalies(name, r)]
    if problems:
        raise bench.BenchError("fo_flowbench: " + "; ".join(problems))
    hz, scenarios = data["tsc_hz"], data["scenarios"]
    return ({name: r["cycles_per_packet"] for name, r in scenarios.items()},
            {name: r["cpu_seconds"] * hz / r["packets"] for name, r in scenarios.items()}, hz, w.wait_pct())


def fastclick_run(args, memory, cpu, prefix, config, flows, tsc_hz):
    """One FastClick run: cycles per packet over the DriverManager's window and on a CPU (the main
    thread's time on a CPU between the MARK lines as they came, at the TSC rate), and wait %.
    stdbuf makes Click's stdout line-buffered, so that each MARK line comes when it is printed."""
    argv = ["stdbuf", "-oL", args.click, "--dpdk"] + eal(memory, cpu, prefix) + [
        "--", str(HERE / config), f"FLOWS={flows}", f"CAPACITY={2 * flows}",
        f"WARMUP={args.warmup}s", f"SECONDS={args.seconds}s", f"SEQUENTIAL={str(args.order == 'sequential').lower()}"]
    w = Watched(argv)
    rc, out, err = w.finish()
    marks = {int(m[1]): (float(m[2]), int(m[3])) for m in map(MARK.match, out.splitlines()) if m}
    counted = re.search(r"^FLOWS (\d+)$", out, re.M)
    if rc != 0 or set(marks) != {0, 1} or not counted:
        raise bench.BenchError(f"FastClick ({config}, {flows} flows) failed (exit {rc})\n{bench.tail(out + err)}")
    (t0, c0), (t1, c1) = marks[0], marks[1]
    if c1 <= c0 or t1 <= t0:
        raise bench.BenchError(f"FastClick ({config}, {flows} flows) generated no packets in its window\n{out}")
    # The ports are random, so two flows may draw the same: a few fewer than FLOWS is fine.
    if config == "flowpath.click" and int(counted[1]) < 0.99 * flows:
        raise bench.BenchError(f"FastClick ({config}): the table holds {counted[1]} flows, {flows} expected")
    on_cpu_s = (w.ran_at_mark[1] - w.ran_at_mark[0]) / 1e9
    return (t1 - t0) * tsc_hz / (c1 - c0), on_cpu_s * tsc_hz / (c1 - c0), w.wait_pct()


def compare(args):
    click = Path(args.click)
    if not (click.is_file() and os.access(click, os.X_OK)):
        raise bench.BenchError(f"--click {args.click}: not an executable file; build FastClick first "
                               f"(benchmarks/fastclick/README.md) and give its bin/click")
    binary = Path(args.binary).resolve() if args.binary else bench.flowbench_binary()
    memory = hugepages.choose(args.memory, args.memory_mb)
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    bench.log(f"compare: FastClick {click}, FlowOS {binary}, memory {memory.mode} ({memory.reason}), CPU {cpu}")
    runs = {"flowos": [], "fastclick": []}   # per round: {"wall"|"cpu": {name: cycles/pkt}}, wait %
    left_out = []
    tsc_hz = None
    for rnd in range(1, args.rounds + 1):
        load = os.getloadavg()[0]
        prefix = f"fccompare-{os.getpid()}-{rnd}"
        try:
            wall, on_cpu, tsc_hz, wait = flowos_run(args, binary, memory, cpu, prefix + "-flowos")
        finally:
            bench.remove_runtime_dir(prefix + "-flowos")
        record(runs, left_out, args, {"round": rnd, "side": "flowos", "load": load, "wait_pct": round(wait, 2),
                                      "wall": wall, "cpu": on_cpu})
        wall, on_cpu, waits = {}, {}, {}
        load = os.getloadavg()[0]
        for name, config, flows in FASTCLICK_RUNS:
            try:
                wall[name], on_cpu[name], waits[name] = fastclick_run(args, memory, cpu, f"{prefix}-{name}", config,
                                                                      flows, tsc_hz)
            finally:
                bench.remove_runtime_dir(f"{prefix}-{name}")
        record(runs, left_out, args, {"round": rnd, "side": "fastclick", "load": load,
                                      "wait_pct": round(max(waits.values()), 2), "wall": wall, "cpu": on_cpu})
    return summarize(args, runs, left_out, memory, cpu, tsc_hz)


def record(runs, left_out, args, run):
    """Keeps a round's run, or leaves it out when its thread waited more than --max-wait."""
    (runs[run["side"]] if run["wait_pct"] <= args.max_wait else left_out).append(run)
    bench.log(f"  round {run['round']} {run['side']} (load {run['load']:.2f}, waited {run['wait_pct']:.2f} %): "
              + ", ".join(f"{k} {v:.1f}/{run['cpu'][k]:.1f}" for k, v in run["wall"].items())
              + " (cycles/pkt over the window / on a CPU)")


def summarize(args, runs, left_out, memory, cpu, tsc_hz):
    def median(side, clock, key, base=None):
        values = [r[clock][key] - (r[clock][base] if base else 0) for r in runs[side]]
        return round(statistics.median(values), 1) if values else None

    rows = []
    for flowos_name, fc_name, fc_gen in ROWS:
        row = {"flowos_scenario": flowos_name, "fastclick_config": fc_name}
        for clock in ("cpu", "wall"):
            fo = median("flowos", clock, flowos_name, "generator_only")
            fc = median("fastclick", clock, fc_name, fc_gen)
            row[clock] = {"flowos_engine_cycles": fo, "fastclick_cycles": fc,
                          "flowos_speed_vs_fastclick": round(fc / fo, 2) if fo and fc else None}
        rows.append(row)
    gens = {f"{side} {key}": {clock: median(side, clock, key) for clock in ("cpu", "wall")}
            for side, key in (("flowos", "generator_only"), ("fastclick", "gen_1k"), ("fastclick", "gen_100k"))}
    return {"memory": memory.mode, "cpu": cpu, "order": args.order, "tsc_hz": tsc_hz, "rounds": args.rounds,
            "seconds": args.seconds, "max_wait_pct": args.max_wait, "rows": rows, "generators": gens,
            "runs": runs, "left_out": left_out}


def table(data):
    lines = [f"memory {data['memory']}, CPU {data['cpu']}, TSC {data['tsc_hz'] / 1e6:.0f} MHz, FastClick's flows in "
             f"{data['order']} order, {data['rounds']} rounds, {len(data['runs']['flowos'])} FlowOS and "
             f"{len(data['runs']['fastclick'])} FastClick runs kept; medians of cycles per packet, generator "
             "taken off, on a CPU (over the window)",
             "| scenario | FlowOS engine cycles/pkt | FastClick cycles/pkt | FlowOS / FastClick speed |",
             "|---|--:|--:|--:|"]
    for r in data["rows"]:
        c, w = r["cpu"], r["wall"]
        lines.append(f"| {r['flowos_scenario']} (FastClick {r['fastclick_config']}) "
                     f"| {c['flowos_engine_cycles']} ({w['flowos_engine_cycles']}) "
                     f"| {c['fastclick_cycles']} ({w['fastclick_cycles']}) "
                     f"| {c['flowos_speed_vs_fastclick']} ({w['flowos_speed_vs_fastclick']}) |")
    lines.append("generators (cycles/pkt, taken off): " + ", ".join(
        f"{k} {v['cpu']} ({v['wall']})" for k, v in data["generators"].items()))
    for r in data["left_out"]:
        lines.append(f"left out: round {r['round']} {r['side']}: waited {r['wait_pct']} % of its run time")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--click", required=True, help="FastClick's click binary (built with --enable-dpdk --enable-flow)")
    p.add_argument("--binary", help="the fo_flowbench to run (default: build/release/benchmarks/fo_flowbench)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds: FlowOS, then FastClick (3)")
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per scenario (2)")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per scenario (0.5)")
    p.add_argument("--memory", default="auto", choices=MEMORY_MODES)
    p.add_argument("--memory-mb", type=int, default=bench.FLOWS_MEMORY_MB)
    p.add_argument("--cpu", type=int, help="the CPU both run on (default: the last one)")
    p.add_argument("--max-wait", type=float, default=2.0,
                   help="leave out runs whose main thread waited on a run queue more than this %% of its run time")
    p.add_argument("--order", choices=("sequential", "random"), default="sequential",
                   help="FastClick's generator: the flows in a fixed round-robin order, as FlowOS's (default), "
                        "or one drawn at random per packet")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        data = compare(args)
    except (bench.BenchError, FlowOSError) as e:
        print(f"compare: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(data) if args.json else table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
