"""FlowOS benchmarks, one subcommand each (run through scripts/bench).

  bridge   the FlowOS bridge against dpdk-testpmd's io forwarding on the same two net_null ports
           (the default when no subcommand is given)
  flows    the flow engine on one core (fo_engine_burst on generated TCP traffic), per scenario:
           classification, flow table, a C pipeline, flow setup rate, memory per flow, the flow
           hash's cost, and keys crafted to collide under CRC32 against plain ones
  processors  the same engine with one processor per scenario: none, C, Cython, Python (doing
           nothing, vectorised, per packet) and one Python call per packet (procbench.py)
  streams  the same engine with streams on, over real in-order TCP: the rate at which each tier
           finds a pattern across packets, and the cost of a length-changing edit per packet
           (streambench.py)
  scaling  the flow path and the bridge on N workers, one engine shard each, each fed by its own
           generator with connections it owns (as RSS delivers them), and the spreading mode: one
           receiving worker handing the other shards' packets to their inboxes (fo_scalebench);
           and the ways to spread one receiver's traffic compared: FlowOS's inboxes,
           rte_distributor, an event_sw eventdev; and Python processors on 1 worker thread
           against N worker processes: flowos-run itself on a closed loop (pyscale.py)

A benchmark is a function that takes the parsed arguments and returns a Report: a JSON-able dict
and the text to show. Add one with an entry in BENCHMARKS.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from flowos.runtime import hugepages
from flowos.configuration.config import DATA_ROOM, MEMORY_MODES, PoolConfig
from flowos.configuration.devices import PortSpec
from flowos.configuration.eal_args import lcore_map, parse_cpus
from flowos.errors import FlowOSError

import pyscale

FLOWOS_RUN = Path(sys.executable).with_name("flowos-run")
TESTPMD = "dpdk-testpmd"
VDEVS = ("net_null0", "net_null1")
BURST = 32
MBUFS = 16383
STARTUP_S = 30      # what a run may take beyond its measured seconds (EAL init, port setup, teardown)
STOP_GRACE_S = 10   # how long a process may take to exit after SIGINT before it is killed


class BenchError(Exception):
    pass


@dataclass
class Report:
    data: dict    # what --json prints
    text: str     # what is printed otherwise


@dataclass(frozen=True)
class Setup:
    """What both tools share in a run, so that they are compared on equal terms."""
    memory: hugepages.MemoryMode
    worker_cpu: int
    lcores: str          # main lcore floating over the other CPUs, the worker alone on worker_cpu
    seconds: float
    burst: int = BURST
    mbufs: int = MBUFS
    cache: int = PoolConfig.cache
    data_room: int = DATA_ROOM
    descriptors: int = PortSpec.rx_descriptors


# ---------------------------------------------------------------------------------------------
# Running a process, bounded in time


def run_bounded(argv, limit_s, enough=None):
    """Runs argv and returns (exit status, its output). Interrupts it with SIGINT once enough(line)
    is true for a line of its output, or after limit_s; kills it if it then does not exit in time."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    lines, done = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if enough and enough(line):
                done.set()
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        in_time = done.wait(limit_s)
    finally:
        stop(proc)
    reader.join(STOP_GRACE_S)
    output = "".join(lines)
    if not in_time:
        raise BenchError(f"{Path(argv[0]).name} did not finish within {limit_s:.0f} s\n{tail(output)}")
    return proc.returncode, output


def stop(proc):
    """SIGINT, then SIGKILL if the process does not exit within STOP_GRACE_S."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def count_lines(prefix, n):
    """A predicate for run_bounded: true once n lines starting with prefix have been seen."""
    seen = 0

    def enough(line):
        nonlocal seen
        seen += line.lstrip().startswith(prefix)
        return seen >= n
    return enough


def tail(text, lines=15):
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_json(argv, name, timeout, ok=(0,), env=None, what=""):
    """Runs a benchmark program that prints one JSON object; returns it. One that takes too long,
    exits with a status not in `ok` or prints no JSON is a BenchError naming it."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{name}{what} did not finish in time") from None
    try:
        data = json.loads(done.stdout)
    except ValueError:
        data = None
    if done.returncode not in ok or data is None:
        raise BenchError(f"{name} failed (exit {done.returncode})\n{tail(done.stdout + done.stderr)}")
    return data


def remove_runtime_dir(prefix):
    """The EAL leaves an empty runtime folder per file prefix; remove ours (only if empty)."""
    base = "/var/run" if os.geteuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp")
    try:
        os.rmdir(Path(base, "dpdk", prefix))
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# The bridge benchmark: one run of each tool, in Mpps of packets received on both ports


def eal_args(setup, prefix):
    """The EAL command line FlowOS builds for itself (flowos/configuration/eal_args.py), for testpmd."""
    memory = setup.memory
    argv = ["--lcores", setup.lcores, "--file-prefix", prefix, "--no-shconf", "--no-telemetry",
            "-m", str(memory.memory_mb), "--no-pci"]
    argv += ["--no-huge"] if memory.mode == "no-huge" else ["--huge-dir", memory.huge_dir, "--huge-unlink"]
    for vdev in VDEVS:
        argv += ["--vdev", vdev]
    return argv


def testpmd_mpps(setup, prefix):
    """testpmd io forwarding; the median of its per-second samples of Rx-pps summed over ports.
    The first sample (always 0: nothing to compare with yet) is skipped."""
    samples = int(setup.seconds)
    argv = ["stdbuf", "-oL", TESTPMD, *eal_args(setup, prefix), "--",
            "--forward-mode=io", "--auto-start", "--stats-period", "1", "--nb-cores=1",
            f"--burst={setup.burst}", f"--total-num-mbufs={setup.mbufs}", f"--mbcache={setup.cache}",
            f"--mbuf-size={setup.data_room}", f"--rxd={setup.descriptors}", f"--txd={setup.descriptors}"]
    status, output = run_bounded(argv, setup.seconds + 1 + STARTUP_S,
                                 count_lines("Rx-pps:", (samples + 1) * len(VDEVS)))
    per_second = testpmd_samples(output)[1:samples + 1]
    if status != 0 or len(per_second) < samples:
        raise BenchError(f"testpmd failed (exit {status}, {len(per_second)} of {samples} samples)\n{tail(output)}")
    return statistics.median(per_second) / 1e6


def testpmd_samples(output):
    """Summed Rx-pps of each complete 'Port statistics' block testpmd printed, in order."""
    samples = []
    for block in output.split("Port statistics")[1:]:
        pps = [int(n) for n in re.findall(r"Rx-pps:\s+(\d+)", block)]
        if len(pps) == len(VDEVS):
            samples.append(sum(pps))
    return samples


def flowos_mpps(setup, prefix):
    """The FlowOS bridge; packets received on both ports over the seconds its worker ran."""
    with tempfile.TemporaryDirectory(prefix="flowos-bench-") as tmp:
        stats_file = Path(tmp, "stats.json")
        argv = [str(FLOWOS_RUN), *[a for vdev in VDEVS for a in ("--vdev", vdev)],
                "--duration", str(setup.seconds), "--burst", str(setup.burst), "--mbufs", str(setup.mbufs),
                "--memory", setup.memory.mode, "--memory-mb", str(setup.memory.memory_mb),
                "--worker-cpu", str(setup.worker_cpu), "--file-prefix", prefix,
                "--no-dashboard", "--stats-json", str(stats_file)]
        status, output = run_bounded(argv, setup.seconds + STARTUP_S)
        if status != 0 or not stats_file.exists():
            raise BenchError(f"flowos-run failed (exit {status})\n{tail(output)}")
        stats = json.loads(stats_file.read_text())
    if stats["memory_mode"] != setup.memory.mode or stats["mbufs"]["pool_size"] != setup.mbufs:
        raise BenchError(f"flowos-run ran with {stats['memory_mode']} and {stats['mbufs']['pool_size']} mbufs, "
                         f"not {setup.memory.mode} and {setup.mbufs}")
    return stats["totals"]["rx_packets"] / stats["elapsed_s"] / 1e6


TOOLS = {"testpmd": testpmd_mpps, "flowos": flowos_mpps}


def bridge(args):
    if shutil.which(TESTPMD) is None:
        raise BenchError(f"{TESTPMD} not found: install it with apt-get install dpdk")
    lcores, (worker_cpu,) = lcore_map(None if args.cpu is None else [args.cpu])
    setup = Setup(hugepages.choose(args.memory, args.memory_mb), worker_cpu, lcores, args.seconds)
    log(f"bridge: memory {setup.memory.mode} ({setup.memory.reason}), lcores {lcores}, "
        f"{args.reps} x {args.seconds:g} s per tool")
    runs = {name: [] for name in TOOLS}
    for rep in range(1, args.reps + 1):
        for name, measure in TOOLS.items():
            prefix = f"bench-{os.getpid()}-{name}-{rep}"
            try:
                runs[name].append(round(measure(setup, prefix), 3))
            finally:
                remove_runtime_dir(prefix)
            log(f"  run {rep}/{args.reps} {name:8} {runs[name][-1]:8.2f} Mpps")
    medians = {name: statistics.median(values) for name, values in runs.items()}
    data = {"benchmark": "bridge",
            "flowos_mpps": round(medians["flowos"], 3),
            "testpmd_mpps": round(medians["testpmd"], 3),
            "ratio": round(medians["flowos"] / medians["testpmd"], 3),
            "memory_mode": setup.memory.mode,
            "memory_mb": setup.memory.memory_mb,
            "worker_cpu": setup.worker_cpu,
            "lcores": setup.lcores,
            "vdevs": list(VDEVS),
            "burst": setup.burst, "mbufs": setup.mbufs, "mbuf_cache": setup.cache,
            "reps": args.reps, "seconds": args.seconds,
            "flowos_runs_mpps": runs["flowos"],
            "testpmd_runs_mpps": runs["testpmd"]}
    return Report(data, bridge_table(data))


def bridge_table(data):
    lines = [f"bridge: {' <-> '.join(data['vdevs'])}, worker CPU {data['worker_cpu']}, "
             f"memory {data['memory_mode']} ({data['memory_mb']} MB), burst {data['burst']}, "
             f"{data['mbufs']} mbufs (cache {data['mbuf_cache']}), {data['reps']} x {data['seconds']:g} s",
             "",
             f"{'run':>6}  {'testpmd Mpps':>12}  {'FlowOS Mpps':>12}"]
    for i, (t, f) in enumerate(zip(data["testpmd_runs_mpps"], data["flowos_runs_mpps"]), 1):
        lines.append(f"{i:>6}  {t:12.2f}  {f:12.2f}")
    lines.append(f"{'median':>6}  {data['testpmd_mpps']:12.2f}  {data['flowos_mpps']:12.2f}")
    lines += ["", f"FlowOS / testpmd = {data['ratio']:.3f}  (target >= 0.95)"]
    return "\n".join(lines)


def add_bridge_args(p):
    p.add_argument("--reps", type=positive(int), default=5, help="runs of each tool, alternating (default 5)")
    p.add_argument("--seconds", type=positive(int), default=5, help="seconds per run (default 5)")
    p.add_argument("--memory", choices=MEMORY_MODES, default="auto",
                   help="memory mode of both tools (default auto: hugepages when enough are free)")
    p.add_argument("--memory-mb", type=positive(int), default=256, help="EAL memory of each run (default 256)")
    p.add_argument("--cpu", type=int, help="CPU of the forwarding lcore (default: the last one)")


# ---------------------------------------------------------------------------------------------
# The flow path: fo_flowbench (benchmarks/fo_flowbench.c) runs the flow engine on one core


ROOT = Path(__file__).resolve().parent.parent
FLOWBENCH = ROOT / "build" / "release" / "benchmarks" / "fo_flowbench"
FLOWS_MEMORY_MB = 512     # EAL memory: the largest scenario (1M flows in a table of 2M) takes about 470 MiB
FLOWS_LIMIT_S = 120       # per run, beyond its measured seconds (EAL init, building 1M-flow tables)
# The issue's targets, and the scenario each is read from.
TARGET_MPPS = ("pipeline_100k", 20.0)
TARGET_SETUP = ("setup_1m", 2.0)
TARGET_MEMORY = ("setup_1m", 512.0)
TARGET_MEMORY_PIPELINE = ("setup_1m_pipeline", 512.0)


def flowbench_binary():
    if not FLOWBENCH.exists():
        log(f"flows: {FLOWBENCH.relative_to(ROOT)} is missing; building it with scripts/setup")
        done = subprocess.run(["bash", str(ROOT / "scripts" / "setup")], cwd=ROOT, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0 or not FLOWBENCH.exists():
            raise BenchError(f"scripts/setup did not build {FLOWBENCH}\n{tail(done.stdout)}")
    return FLOWBENCH


def flowbench_run(binary, memory, cpu, args, prefix):
    """One run of fo_flowbench: its JSON object."""
    argv = [str(binary), "--lcores", f"0@{cpu}", "--file-prefix", prefix, "--no-shconf", "--no-telemetry",
            "--no-pci", "-m", str(memory.memory_mb), "--log-level=lib.eal:warning"]
    argv += ["--no-huge"] if memory.mode == "no-huge" else ["--huge-dir", memory.huge_dir, "--huge-unlink"]
    argv += ["--", "--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    if args.only:
        argv += ["--only", args.only]
    # It exits 1 when a scenario failed, and says why in that scenario's result.
    return run_json(argv, binary.name, FLOWS_LIMIT_S + 12 * (args.seconds + args.warmup), ok=(0, 1))


def flowbench_anomalies(name, r):
    """What in one scenario's result says the measurement is not what it claims to be."""
    problems = []
    if r["heap_leaked_bytes"]:
        problems.append(f"{name}: the engine left {r['heap_leaked_bytes']} bytes allocated after fo_engine_free")
    if "error" in r:
        return problems + [f"{name}: {r['error']}"]
    if r["mbufs_missing"]:
        problems.append(f"{name}: {r['mbufs_missing']} mbufs neither in the pool nor in the TX ring")
    e = r["engine"]
    if e is not None:
        for key in ("malformed", "table_full", "tx_unsent", "dropped"):
            if e[key]:
                problems.append(f"{name}: engine counted {e[key]} {key}")
        if e["tx_packets"] != e["packets"]:
            problems.append(f"{name}: engine saw {e['packets']} packets but sent {e['tx_packets']}")
        if name.startswith("classify") and e["unmatched"] != e["packets"]:
            problems.append(f"{name}: {e['packets'] - e['unmatched']} packets matched a definition")
        if not name.startswith("classify") and e["flows_created"] != r["flows"]:
            problems.append(f"{name}: {e['flows_created']} flows created, {r['flows']} expected")
    return problems


def flows(args):
    binary = Path(args.binary).resolve() if args.binary else flowbench_binary()
    if not binary.exists():
        raise BenchError(f"{binary} does not exist")
    memory = hugepages.choose(args.memory, args.memory_mb)
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    log(f"flows: {binary}, memory {memory.mode} ({memory.reason}), CPU {cpu}, "
        f"{args.reps} runs of {args.seconds:g} s per scenario")
    runs = []
    for rep in range(1, args.reps + 1):
        prefix = f"bench-{os.getpid()}-flows-{rep}"
        try:
            runs.append(flowbench_run(binary, memory, cpu, args, prefix))
        finally:
            remove_runtime_dir(prefix)
        log(f"  run {rep}/{args.reps}: " + ", ".join(
            f"{name} {r.get('mpps', r.get('mflows_per_s', float('nan'))):.2f}"
            for name, r in runs[-1]["scenarios"].items()))
    if runs[0]["memory"] != memory.mode:
        raise BenchError(f"fo_flowbench ran with {runs[0]['memory']}, not {memory.mode}")
    scenarios, anomalies = summarize_runs(runs, flowbench_anomalies, flows_summary)
    data = {"benchmark": "flows", "binary": str(binary), "memory_mode": memory.mode,
            "memory_mb": memory.memory_mb, "cpu": cpu, "reps": args.reps, "seconds": args.seconds,
            "warmup": args.warmup, "burst": runs[0]["burst"], "frame_len": runs[0]["frame_len"],
            "tsc_hz": runs[0]["tsc_hz"], "sizeof_fo_flow": runs[0]["sizeof_fo_flow"], "scenarios": scenarios,
            "targets": flows_targets(scenarios), "anomalies": sorted(set(anomalies))}
    return Report(data, flows_table(data))


def summarize_runs(runs, anomalies_of, summary_of):
    """Per scenario: the summary of its good runs (or the first error), and every run's anomalies."""
    scenarios, anomalies = {}, []
    for name in runs[0]["scenarios"]:
        results = [run["scenarios"][name] for run in runs]
        for r in results:
            anomalies += anomalies_of(name, r)
        good = [r for r in results if "error" not in r]
        scenarios[name] = summary_of(good) if good else {"error": results[0]["error"]}
    return scenarios, anomalies


def processors_summary(good):
    """Medians of one processor scenario's runs."""
    return {"kind": good[0]["kind"], "what": good[0]["what"], "flows": good[0]["flows"], "burst": good[0]["burst"],
            "median": round(statistics.median(r["mpps"] for r in good), 3),
            "runs": [round(r["mpps"], 3) for r in good],
            "cycles_per_packet": round(statistics.median(r["cycles_per_packet"] for r in good), 1),
            "cpu_cycles_per_packet": round(statistics.median(r["cpu_cycles_per_packet"] for r in good), 1)}


def flows_summary(results):
    """Medians of one scenario's runs. Throughput scenarios have mpps, setup ones mflows_per_s."""
    def median(key):
        return round(statistics.median(r[key] for r in results), 3)
    if "mpps" in results[0]:
        out = {"unit": "Mpps", "median": median("mpps"), "runs": [r["mpps"] for r in results],
               "cycles_per_packet": median("cycles_per_packet")}
        if "engine_heap_mib" in results[0]:
            out["engine_heap_mib"] = median("engine_heap_mib")
        return out
    return {"unit": "Mflows/s", "median": median("mflows_per_s"), "runs": [r["mflows_per_s"] for r in results],
            "cycles_per_flow": median("cycles_per_flow"), "shutdown_mflows_per_s": median("shutdown_mflows_per_s"),
            "flows": results[0]["flows"], "engine_heap_mib": median("engine_heap_full_mib"),
            "heap_bytes_per_flow": median("heap_bytes_per_flow")}


def flows_targets(scenarios):
    """The issue's targets against the medians (None where the scenario did not run)."""
    def check(target, key, at_least):
        name, goal = target
        value = scenarios.get(name, {}).get(key)
        met = None if value is None else (value >= goal if at_least else value <= goal)
        return {"scenario": name, "value": value, "target": goal, "met": met}
    return {"full_path_mpps": check(TARGET_MPPS, "median", True),
            "setup_mflows_per_s": check(TARGET_SETUP, "median", True),
            "memory_1m_flows_mib": check(TARGET_MEMORY, "engine_heap_mib", False),
            "memory_1m_flows_pipeline_mib": check(TARGET_MEMORY_PIPELINE, "engine_heap_mib", False)}


def flows_table(data):
    sc = data["scenarios"]
    base = sc.get("generator_only", {}).get("cycles_per_packet")
    lines = [f"flows: fo_engine_burst on CPU {data['cpu']}, memory {data['memory_mode']} "
             f"({data['memory_mb']} MB), burst {data['burst']}, {data['frame_len']}-byte TCP frames, "
             f"{data['reps']} x {data['seconds']:g} s per scenario (after {data['warmup']:g} s of warm-up)", "",
             f"{'scenario':<18} {'median Mpps':>11} {'min':>7} {'max':>7} {'cycles/pkt':>10} "
             f"{'engine cycles/pkt':>17} {'engine heap MiB':>15}"]
    for name, s in sc.items():
        if s.get("unit") != "Mpps":
            continue
        no_generator = name == "generator_only" or name.startswith("hash_")   # hash_*: cycles per key, no packets
        engine = f"{s['cycles_per_packet'] - base:.0f}" if base is not None and not no_generator else "-"
        heap = f"{s['engine_heap_mib']:.1f}" if "engine_heap_mib" in s else "-"
        lines.append(f"{name:<18} {s['median']:11.2f} {min(s['runs']):7.2f} {max(s['runs']):7.2f} "
                     f"{s['cycles_per_packet']:10.0f} {engine:>17} {heap:>15}")
    lines += ["", f"{'scenario':<18} {'median Mflows/s':>15} {'min':>7} {'max':>7} {'cycles/flow':>11} "
              f"{'shutdown Mflows/s':>17} {'heap MiB':>8} {'B/flow':>7}"]
    for name, s in sc.items():
        if s.get("unit") != "Mflows/s":
            continue
        lines.append(f"{name:<18} {s['median']:15.2f} {min(s['runs']):7.2f} {max(s['runs']):7.2f} "
                     f"{s['cycles_per_flow']:11.0f} {s['shutdown_mflows_per_s']:17.2f} "
                     f"{s['engine_heap_mib']:8.1f} {s['heap_bytes_per_flow']:7.0f}")
    for name, s in sc.items():
        if "error" in s:
            lines.append(f"{name}: failed: {s['error']}")
    lines += ["", "(engine cycles/pkt: cycles/pkt less generator_only's, the generator's and TX ring's share;",
              " hash_*: the flow index's hash alone, Mpps and cycles/pkt are per key;",
              " crc32_collide_8k: 8192 connections whose keys share one CRC32, against plain_8k)", ""]
    labels = {"full_path_mpps": ("full path", "Mpps", ">="),
              "setup_mflows_per_s": ("flow setup", "Mflows/s", ">="),
              "memory_1m_flows_mib": ("memory, 1M flows", "MiB", "<="),
              "memory_1m_flows_pipeline_mib": ("memory, 1M flows with the pipeline", "MiB", "<=")}
    for key, t in data["targets"].items():
        label, unit, op = labels[key]
        verdict = "not measured" if t["met"] is None else "met" if t["met"] else "NOT met"
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(f"target {label}: {value} {unit} ({t['scenario']}), target {op} {t['target']:g}: {verdict}")
    for problem in data["anomalies"]:
        lines.append(f"warning: {problem}")
    return "\n".join(lines)


def add_timing_args(p, warmup_after="one pass over its traffic"):
    """--reps, --seconds and --warmup, as the flows, processors and streams benchmarks take them."""
    p.add_argument("--reps", type=positive(int), default=5, help="runs of the whole set (default 5)")
    p.add_argument("--seconds", type=positive(float), default=2.0, help="measured seconds per scenario (default 2)")
    p.add_argument("--warmup", type=positive(float), default=0.5,
                   help=f"seconds of warm-up per scenario, after {warmup_after} (default 0.5)")


def add_engine_args(p, lister, memory_mb=256, memory_mb_help="EAL memory (default 256)"):
    """--memory, --memory-mb, --cpu and --only (`lister`: what names the scenarios), as the flows,
    processors and streams benchmarks take them."""
    p.add_argument("--memory", choices=MEMORY_MODES, default="auto",
                   help="memory mode (default auto: hugepages when enough are free)")
    p.add_argument("--memory-mb", type=positive(int), default=memory_mb, help=memory_mb_help)
    p.add_argument("--cpu", type=int, help="CPU to run on (default: the last one)")
    p.add_argument("--only", help=f"comma-separated scenarios (default all; {lister} names them)")


def add_flows_args(p):
    add_timing_args(p)
    add_engine_args(p, "fo_flowbench -- --list", FLOWS_MEMORY_MB,
                    f"EAL memory (default {FLOWS_MEMORY_MB}: what the 1M-flow scenarios need)")
    p.add_argument("--binary", help=f"the fo_flowbench to run, e.g. one built from another commit "
                                    f"(default {FLOWBENCH.relative_to(ROOT)}, built if missing)")


# ---------------------------------------------------------------------------------------------
# Processors: procbench.py (with benchmarks/pybench.pyx) runs the flow engine on one core with one
# processor of each tier: none, C, Cython, Python (nothing, vectorised, per packet), and one
# Python call per packet (bursts of 1)


BUILD = ROOT / "build" / "release"
PROCBENCH = ROOT / "benchmarks" / "procbench.py"
PROCESSORS_LIMIT_S = 60     # per run, beyond its measured seconds (EAL init, one pass over the traffic)
PROCESSORS_SCENARIOS = 46   # procbench.py --list: 23 kinds at 1k and at 100k flows
# The issue's targets, each read at both flow counts. Python processors are measured at bursts of
# 256, what flowos-run gives a pipeline with a Python processor (config.PYTHON_BURST).
TARGET_PYTHON_MPPS = 15.0     # python_field_b256 (a vectorised field read), Mpps per core
TARGET_CYTHON_GAP = 0.10      # cython_dport within 10 % of c_dport
TARGET_BATCH_SPEEDUP = 10.0   # the same logic batched (b256) against one call per packet (b1)
TARGET_PYTHON_VS_ENGINE = 0.9  # issue 15: python_field_b256 against none_b256, same flows
BATCHED_LOGIC = ("python_field", "python_vector", "python_numpy")
FLOW_SUFFIXES = ("1k", "100k")
DPORT_KINDS = ("c_dport", "c_dport_b256", "cython_dport", "python_vector", "python_vector_b1", "python_vector_b256",
               "python_numpy", "python_numpy_b1", "python_numpy_b256", "python_loop", "python_loop_field")


def pybench_modules():
    """The built pybench extension; scripts/setup builds it (and FlowOS) if it is missing."""
    found = sorted((BUILD / "benchmarks").glob("pybench*.so"))
    if not found:
        log(f"processors: {BUILD.relative_to(ROOT)}/benchmarks/pybench*.so is missing; building it with scripts/setup")
        done = subprocess.run(["bash", str(ROOT / "scripts" / "setup")], cwd=ROOT, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        found = sorted((BUILD / "benchmarks").glob("pybench*.so"))
        if done.returncode != 0 or not found:
            raise BenchError(f"scripts/setup did not build pybench\n{tail(done.stdout)}")
    return found[0]


def check_same_build():
    """pybench links the fast path's shared library from build/release and hands the engine's
    batches to the installed flowos's tiers, and a process loads one copy of that library (the
    first by name): all must come from the same build, or the struct layouts they share may
    differ (a crash, or wrong figures). Where each built file went is the build's own record
    (meson-info/intro-installed.json)."""
    import flowos
    installed = Path(flowos.__file__).resolve().parent
    record = BUILD / "meson-info" / "intro-installed.json"
    if not record.exists():
        raise BenchError(f"{BUILD} has no build: run scripts/setup")
    stale = []
    for built, destination in json.loads(record.read_text()).items():
        package_path = destination.partition("/site-packages/flowos/")[2]
        if not built.endswith(".so") or not package_path:
            continue
        copy = installed / package_path
        if not copy.exists() or copy.read_bytes() != Path(built).read_bytes():
            stale.append(package_path)
    lib = BUILD / "ext" / "libflowos_fast.so"
    pybench = pybench_modules()
    if lib.exists() and pybench.stat().st_mtime < lib.stat().st_mtime:
        stale.append(pybench.name)
    if stale:
        raise BenchError(f"the installed flowos and {BUILD} differ ({', '.join(stale)}): "
                         "run scripts/setup")


def procbench_run(memory, cpu, args, prefix, script=PROCBENCH, scenarios=PROCESSORS_SCENARIOS, extra=()):
    """One run of procbench.py (or another script of its kind, e.g. streambench.py, with `scenarios`
    in all and `extra` arguments): its JSON object, with the load average around it."""
    argv = [sys.executable, str(script), *extra, "--cpu", str(cpu), "--file-prefix", prefix,
            "--memory", memory.mode, "--memory-mb", str(memory.memory_mb),
            "--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    if memory.mode == "hugepages":
        argv += ["--huge-dir", memory.huge_dir]
    if args.only:
        argv += ["--only", args.only]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(BUILD / "benchmarks"),
                                                                    os.environ.get("PYTHONPATH")])))
    scenarios = len(args.only.split(",")) if args.only else scenarios
    load_before = os.getloadavg()[0]
    data = run_json(argv, script.name, PROCESSORS_LIMIT_S + scenarios * (args.seconds + args.warmup + 5), env=env)
    data["loadavg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return data


def pybench_anomalies(name, r, engine_counters):
    """What every pybench result is checked for: the leak checks, the engine's `engine_counters`
    (each must be 0) and one flow created per connection."""
    problems = [f"{name}: {key} {r[key]}" for key in ("heap_leaked_bytes", "mbufs_missing") if r[key]]
    e = r["engine"]
    if e is not None:
        problems += [f"{name}: engine counted {e[key]} {key}" for key in engine_counters if e[key]]
        if e["flows_created"] != r["flows"]:
            problems.append(f"{name}: {e['flows_created']} flows created, {r['flows']} expected")
    return problems


def processors_anomalies(name, r):
    """What in one scenario's result says the measurement is not what it claims to be."""
    if "error" in r:
        return [f"{name}: {r['error']}"]
    problems = pybench_anomalies(name, r, ("malformed", "table_full", "tx_unsent", "dropped", "unmatched",
                                           "bad_verdicts"))
    e = r["engine"]
    if e["tx_packets"] != e["packets"]:
        problems.append(f"{name}: engine saw {e['packets']} packets but sent {e['tx_packets']}")
    proc = r["processor"]
    if isinstance(proc, dict):    # the tiers' statistics, or a C processor's report (counter's has no packets)
        if "packets" in proc and proc["packets"] != e["packets"]:
            problems.append(f"{name}: the processor saw {proc.get('packets')} of {e['packets']} packets")
        if proc.get("faults"):
            problems.append(f"{name}: the processor faulted {proc['faults']} times: {proc.get('first_faults')}")
    if r["kind"] in DPORT_KINDS:
        share = r.get("matched", 0) / e["packets"]
        if abs(share - 1 / 3) > 0.01:   # two connections in three go to 443, one direction each
            problems.append(f"{name}: counted {share:.4f} of the packets to port 443, not 1/3")
    return problems


def procbench_runs(args, label, tag, detail, rate, script=PROCBENCH, scenarios=PROCESSORS_SCENARIOS, extra=()):
    """args.reps runs of procbench.py (or streambench.py, as procbench_run) after checking the
    build, each logged with its scenarios' `rate` ("mpps", "gbps"): the memory, the CPU and the runs.
    `detail` goes in the first log line after the CPU."""
    check_same_build()
    memory = hugepages.choose(args.memory, args.memory_mb)
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    log(f"{label}: memory {memory.mode} ({memory.reason}), CPU {cpu}, {detail}"
        f"{args.reps} runs of {args.seconds:g} s per scenario")
    runs = []
    for rep in range(1, args.reps + 1):
        prefix = f"bench-{os.getpid()}-{tag}-{rep}"
        try:
            runs.append(procbench_run(memory, cpu, args, prefix, script, scenarios, extra))
        finally:
            remove_runtime_dir(prefix)
        log(f"  run {rep}/{args.reps} (load {runs[-1]['loadavg'][0]:.2f}): " + ", ".join(
            f"{name} {r[rate]:.2f}" for name, r in runs[-1]["scenarios"].items() if rate in r))
    return memory, cpu, runs


def processors(args):
    memory, cpu, runs = procbench_runs(args, "processors", "procs", "", "mpps")
    scenarios, anomalies = summarize_runs(runs, processors_anomalies, processors_summary)
    data = {"benchmark": "processors", "memory_mode": memory.mode, "memory_mb": memory.memory_mb, "cpu": cpu,
            "reps": args.reps, "seconds": args.seconds, "warmup": args.warmup, "tsc_hz": runs[0]["tsc_hz"],
            "frame_len": runs[0]["frame_len"], "python": runs[0]["python"],
            "loadavg": [run["loadavg"] for run in runs], "scenarios": scenarios,
            "targets": processors_targets(scenarios), "anomalies": sorted(set(anomalies))}
    return Report(data, processors_table(data))


def processors_targets(scenarios):
    """The issue's three targets against the medians, per flow count (met None: not measured)."""
    def median(name, key="median"):
        return scenarios.get(name, {}).get(key)

    def ratio(a, b, digits):
        return None if a is None or b is None else round(a / b, digits)

    def target(value, goal, met):
        return {"value": value, "target": goal, "met": None if value is None else met(value)}

    def extra_cycles(name, base):
        """Cycles per packet the processor adds to the engine (no processor, same burst)."""
        with_proc, without = median(name, "cycles_per_packet"), median(base, "cycles_per_packet")
        return None if with_proc is None or without is None else with_proc - without

    def speed_on_cpu(name, base):
        """name's speed over base's on a CPU: base's on-CPU cycles per packet over name's."""
        a, b = median(name, "cpu_cycles_per_packet"), median(base, "cpu_cycles_per_packet")
        return None if a is None or b is None else round(b / a, 3)

    def at_least(goal):
        return lambda v: v >= goal

    out = {}
    for s in FLOW_SUFFIXES:
        c, cy = median(f"c_dport_{s}"), median(f"cython_dport_{s}")
        out[s] = {
            # Issue 15: a Python processor reading a field at bursts of 256 against the engine
            # alone at the same flows and burst, over the measured window and on a CPU.
            "python_field_vs_engine": target(ratio(median(f"python_field_b256_{s}"), median(f"none_b256_{s}"), 3),
                                             TARGET_PYTHON_VS_ENGINE, at_least(TARGET_PYTHON_VS_ENGINE)),
            "python_field_vs_engine_on_cpu": target(speed_on_cpu(f"python_field_b256_{s}", f"none_b256_{s}"),
                                                    TARGET_PYTHON_VS_ENGINE, at_least(TARGET_PYTHON_VS_ENGINE)),
            # A vectorised field read (batch.dport, one C loop), and the same field used: counted
            # with array.count, and with NumPy.
            **{f"{logic}_mpps": target(median(f"{logic}_b256_{s}"), TARGET_PYTHON_MPPS,
                                        lambda v: v >= TARGET_PYTHON_MPPS) for logic in BATCHED_LOGIC},
            "cython_vs_c": target(ratio(cy, c, 3), 1 - TARGET_CYTHON_GAP, lambda v: v >= 1 - TARGET_CYTHON_GAP),
            # Each logic batched against the same logic called once per packet: end to end (Mpps), and
            # in the cycles per packet the processor adds to the engine at each burst size (what the
            # boundary itself costs, the engine's own batching aside).
            **{f"{logic}_batched_speedup": target(ratio(median(f"{logic}_b256_{s}"), median(f"{logic}_b1_{s}"), 2),
                                                  TARGET_BATCH_SPEEDUP, lambda v: v >= TARGET_BATCH_SPEEDUP)
               for logic in BATCHED_LOGIC},
            **{f"{logic}_batched_speedup_boundary": target(
                ratio(extra_cycles(f"{logic}_b1_{s}", f"none_b1_{s}"), extra_cycles(f"{logic}_b256_{s}", f"none_b256_{s}"), 1),
                TARGET_BATCH_SPEEDUP, lambda v: v >= TARGET_BATCH_SPEEDUP) for logic in BATCHED_LOGIC},
        }
    return out


def pybench_title(data, detail):
    """The first line of the processors and streams tables, with `detail` after the memory."""
    loads = data["loadavg"]
    return (f"{data['benchmark']}: fo_engine_burst on CPU {data['cpu']}, memory {data['memory_mode']} "
            f"({data['memory_mb']} MB), {detail}, Python {data['python']}, "
            f"load average {min(l[0] for l in loads):.2f}-{max(l[1] for l in loads):.2f}")


def processors_table(data):
    sc, hz = data["scenarios"], data["tsc_hz"]
    lines = [pybench_title(data, f"{data['frame_len']}-byte TCP frames, one catch-all flow, {data['reps']} x "
                                 f"{data['seconds']:g} s per scenario (after one pass and {data['warmup']:g} s of "
                                 f"warm-up)"), "",
             f"{'scenario':<24} {'burst':>5} {'median Mpps':>11} {'min':>7} {'max':>7} {'cycles/pkt':>10} "
             f"{'on CPU':>6} {'+ over none':>11} {'+ per call':>10}  what"]
    for name, s in sc.items():
        if "error" in s:
            lines.append(f"{name:<24} {s['error']}")
            continue
        suffix = name.rsplit("_", 1)[1]
        base_name = f"none_{suffix}" if s["burst"] == 32 else f"none_b{s['burst']}_{suffix}"
        base = sc.get(base_name, {}).get("cycles_per_packet")
        extra = s["cycles_per_packet"] - base if base is not None and not s["kind"].startswith("none") else None
        per_call = f"{extra * s['burst'] / hz * 1e9:7.0f} ns" if extra is not None else "-"
        lines.append(f"{name:<24} {s['burst']:>5} {s['median']:11.2f} {min(s['runs']):7.2f} {max(s['runs']):7.2f} "
                     f"{s['cycles_per_packet']:10.0f} {s['cpu_cycles_per_packet']:6.0f} {'-' if extra is None else f'{extra:.0f}':>11} {per_call:>10}  "
                     f"{s['what']}")
    lines += ["", "(on CPU: cycles per packet of the measuring thread's CPU time, without its run-queue waits; "
                  "+ over none: cycles per packet more than no processor at the same flows and burst; "
                  "+ per call: that, times the burst, in ns)", ""]

    def verdict(t):
        return "not measured" if t["met"] is None else "met" if t["met"] else "NOT met"

    def value(t, form):
        return "-" if t["value"] is None else format(t["value"], form)

    what = {"python_field": "a field read (batch.dport)", "python_vector": "the field counted (array.count)",
            "python_numpy": "the field counted (NumPy)"}
    for suffix, t in data["targets"].items():
        c = t["cython_vs_c"]
        lines += [f"{suffix} flows, a Python field read at bursts of 256 / the engine alone: "
                  f"{value(t['python_field_vs_engine'], '.3f')} in Mpps, "
                  f"{value(t['python_field_vs_engine_on_cpu'], '.3f')} on a CPU (target >= {TARGET_PYTHON_VS_ENGINE:g}: "
                  f"{verdict(t['python_field_vs_engine'])}, {verdict(t['python_field_vs_engine_on_cpu'])})",
                  f"{suffix} flows, Python at bursts of 256: " + "; ".join(
                      f"{what[logic]} {value(t[f'{logic}_mpps'], '.2f')} Mpps ({verdict(t[f'{logic}_mpps'])})"
                      for logic in BATCHED_LOGIC) + f" (target >= {TARGET_PYTHON_MPPS:g})",
                  f"{suffix} flows: Cython / C {value(c, '.3f')} (target >= 0.9: at most 10 % slower): {verdict(c)}",
                  f"{suffix} flows, batched (256) / one call per packet, in Mpps: " + "; ".join(
                      f"{what[logic]} {value(t[f'{logic}_batched_speedup'], '.1f')}x "
                      f"({verdict(t[f'{logic}_batched_speedup'])})" for logic in BATCHED_LOGIC)
                  + f" (target >= {TARGET_BATCH_SPEEDUP:g}x)",
                  f"{suffix} flows, batched (256) / one call per packet, in the cycles the processor adds to the "
                  "engine: " + "; ".join(
                      f"{what[logic]} {value(t[f'{logic}_batched_speedup_boundary'], '.1f')}x "
                      f"({verdict(t[f'{logic}_batched_speedup_boundary'])})" for logic in BATCHED_LOGIC)]
    for problem in data["anomalies"]:
        lines.append(f"warning: {problem}")
    return "\n".join(lines)


def add_processors_args(p):
    add_timing_args(p)
    add_engine_args(p, "procbench.py --list")


# ---------------------------------------------------------------------------------------------
# Streams: streambench.py (with pybench and cystream) runs the flow engine on one core with
# streams on, over real in-order TCP (fo_gen's stream mode): the pattern scan rate of each tier
# and the cost of a length-changing edit per packet


STREAMBENCH = ROOT / "benchmarks" / "streambench.py"
STREAMS_SCENARIOS = 17      # streambench.py --list
TARGET_SCAN_GBPS = 10.0     # scan_c and scan_cython, Gbit/s of TCP payload per core
EDIT_TIERS = ("c", "cython", "python")
EDIT_MODES = ("replace", "insert", "delete")
# Counters that say the segments did not arrive as sent (in order, once each), or were not all handled.
STREAM_IN_ORDER = ("reordered", "reorder_overflow", "duplicates", "overlap_bytes", "retransmits", "gaps_skipped",
                   "split", "split_failed", "release_split_failed", "copies_evicted")


def streams_anomalies(name, r):
    """What in one scenario's result says the measurement is not what it claims to be."""
    if "error" in r:
        return [f"{name}: {r['error']}"]
    problems = pybench_anomalies(name, r, ("malformed", "table_full", "tx_unsent", "dropped", "unmatched",
                                           "bad_verdicts", "hold_overflows", "inject_failed"))
    gen = r["generator"]
    if gen["unknown"]:
        problems.append(f"{name}: {gen['unknown']} packets out of the engine were none of the generator's")
    e = r["engine"]
    if e is None:
        return problems
    for key in STREAM_IN_ORDER:
        if e["streams"][key]:
            problems.append(f"{name}: engine counted {e['streams'][key]} streams.{key}")
    # Every packet leaves, and every one the engine made (segments cut at a release point or
    # split at the MSS: `created`) less those it replaced; at most the flows' last segments wait.
    if not 0 <= e["packets"] + e["created"] - e["replaced"] - e["tx_packets"] <= 2 * r["flows"]:
        problems.append(f"{name}: engine saw {e['packets']} packets, made {e['created']} and replaced "
                        f"{e['replaced']}, but sent {e['tx_packets']}")
    counts = r.get("counts") or {}
    if r["kind"].endswith("_find"):
        if counts.get("matched") != gen["planted"] or not gen["planted"]:
            problems.append(f"{name}: the processor counted {counts.get('matched')} matches, "
                            f"the generator planted {gen['planted']}")
    elif "_edit_" in r["kind"]:
        edits = counts.get("edits", 0)
        if counts.get("failed"):
            problems.append(f"{name}: {counts['failed']} edits failed")
        if r["kind"].endswith("_none") != (edits == 0) or (edits and edits < gen["data"]):
            problems.append(f"{name}: {edits} edits for {gen['data']} data segments")
    return problems


def streams_summary(good):
    """Medians of one streams scenario's runs."""
    def median(key):
        return round(statistics.median(r[key] for r in good), 3)
    return {"kind": good[0]["kind"], "what": good[0]["what"], "median_gbps": median("gbps"),
            "runs_gbps": [round(r["gbps"], 3) for r in good], "median_mpps": median("mpps"),
            "runs_mpps": [round(r["mpps"], 3) for r in good], "cycles_per_packet": median("cycles_per_packet"),
            "engine_streams": good[0]["engine"]["streams"] if good[0]["engine"] else None,
            "counts": good[0].get("counts"), "planted": good[0]["generator"]["planted"]}


def streams_targets(scenarios, hz):
    """Scan rates against the target; the cost of each edit over the same tier walking the packets."""
    out = {}
    for name in ("scan_c", "scan_cython", "scan_python"):
        value = scenarios.get(name, {}).get("median_gbps")
        out[name] = {"value": value, "target": TARGET_SCAN_GBPS if name != "scan_python" else None,
                     "met": None if value is None or name == "scan_python" else value >= TARGET_SCAN_GBPS}
    costs = {}
    for tier in EDIT_TIERS:
        base = scenarios.get(f"edit_{tier}_none", {}).get("cycles_per_packet")
        for mode in EDIT_MODES:
            c = scenarios.get(f"edit_{tier}_{mode}", {}).get("cycles_per_packet")
            if c is not None and base is not None:
                costs[f"{tier}_{mode}"] = round((c - base) / hz * 1e9, 1)
    out["edit_ns_per_packet"] = costs
    return out


def streams(args):
    memory, cpu, runs = procbench_runs(args, "streams", "streams",
                                       f"{args.flows} connections, {args.payload}-byte segments, ", "gbps",
                                       STREAMBENCH, STREAMS_SCENARIOS,
                                       ("--flows", str(args.flows), "--payload", str(args.payload)))
    scenarios, anomalies = summarize_runs(runs, streams_anomalies, streams_summary)
    first = runs[0]
    data = {"benchmark": "streams", "memory_mode": memory.mode, "memory_mb": memory.memory_mb, "cpu": cpu,
            "reps": args.reps, "seconds": args.seconds, "warmup": args.warmup, "tsc_hz": first["tsc_hz"],
            "flows": first["flows"], "payload": first["payload"], "pattern": first["pattern"],
            "plant_div": first["plant_div"], "mss": first["mss"], "edit_bytes": first["edit_bytes"],
            "python": first["python"], "loadavg": [run["loadavg"] for run in runs], "scenarios": scenarios,
            "targets": streams_targets(scenarios, first["tsc_hz"]), "anomalies": sorted(set(anomalies))}
    return Report(data, streams_table(data))


def streams_table(data):
    sc, hz = data["scenarios"], data["tsc_hz"]
    gen = sc.get("gen_only", {}).get("cycles_per_packet")
    lines = [pybench_title(data, f"{data['flows']} TCP connections (both directions), {data['payload']}-byte "
                                 f"segments in order, bursts of 32, {data['reps']} x {data['seconds']:g} s per "
                                 f"scenario"), "",
             f"{'scenario':<20} {'Gbit/s':>7} {'min':>6} {'max':>6} {'Mpps':>6} {'cycles/pkt':>10} "
             f"{'less gen.':>9} {'Gbit/s less gen.':>16}  what"]
    for name, s in sc.items():
        if "error" in s:
            lines.append(f"{name:<20} {s['error']}")
            continue
        engine = s["cycles_per_packet"] - gen if gen is not None and name != "gen_only" else None
        rate = data["payload"] * 8 * hz / engine / 1e9 if engine else None
        lines.append(f"{name:<20} {s['median_gbps']:7.2f} {min(s['runs_gbps']):6.2f} {max(s['runs_gbps']):6.2f} "
                     f"{s['median_mpps']:6.2f} {s['cycles_per_packet']:10.0f} "
                     f"{'-' if engine is None else f'{engine:.0f}':>9} {'-' if rate is None else f'{rate:.1f}':>16}  "
                     f"{s['what']}")
    lines += ["", "(Gbit/s: TCP payload through the engine per second, generator included; less gen.: without "
                  "gen_only's cycles per packet)", ""]
    t = data["targets"]
    for name in ("scan_c", "scan_cython", "scan_python"):
        v = t[name]
        value = "-" if v["value"] is None else f"{v['value']:.2f}"
        verdict = ("no target" if v["target"] is None else "not measured" if v["met"] is None
                   else "met" if v["met"] else "NOT met")
        goal = f" (target >= {v['target']:g})" if v["target"] else ""
        lines.append(f"{name}: {value} Gbit/s{goal}: {verdict}")
    for tier in EDIT_TIERS:
        costs = [f"{mode} {t['edit_ns_per_packet'][f'{tier}_{mode}']:.0f} ns" for mode in EDIT_MODES
                 if f"{tier}_{mode}" in t["edit_ns_per_packet"]]
        if costs:
            lines.append(f"edit cost per packet over edit_{tier}_none ({data['edit_bytes']} bytes): " + ", ".join(costs))
    for problem in data["anomalies"]:
        lines.append(f"warning: {problem}")
    return "\n".join(lines)


def add_streams_args(p):
    add_timing_args(p, "the SYNs of every connection")
    p.add_argument("--flows", type=positive(int), default=1000, help="TCP connections (default 1000)")
    p.add_argument("--payload", type=positive(int), default=1448,
                   help="TCP payload bytes per segment, 36..1460 (default 1448)")
    add_engine_args(p, "streambench.py --list")


# ---------------------------------------------------------------------------------------------
# Scaling: fo_scalebench (benchmarks/fo_scalebench.c) runs the flow engine on N worker lcores, one
# engine shard each, for each N asked for: each worker fed by its own generator on its own port
# with connections it owns (what symmetric RSS delivers), and the spreading mode (one receiving
# worker handing the other shards' packets to their inboxes). Then the ways to spread one
# receiver's traffic, compared (benchmarks/fo_spread.c): a receiver that only spreads, N - 1
# workers that process, with the pipeline (inbox, distributor, eventdev) or freeing (*_bare).


SCALEBENCH = ROOT / "build" / "release" / "benchmarks" / "fo_scalebench"
SPREADERS = ("inbox", "distributor", "eventdev")
SPREAD_SCENARIOS = SPREADERS + tuple(f"{name}_bare" for name in SPREADERS)
SCALE_SCENARIOS = ("bridge", "pipeline", "spread") + SPREAD_SCENARIOS
PYTHON_SCALE_SCENARIOS = tuple(pyscale.PYTHON_SCENARIOS)   # flowos-run with worker processes (pyscale.py)
SCALE_MEMORY_MB = (256, 128)       # EAL memory: a base, and per worker (a shard of 200k flows, its mbufs)
SCALE_LIMIT_S = 120                # per run, beyond its measured seconds (EAL init, building the shards)
# The issue's targets: aggregate Mpps with N workers over 1 worker, for these N.
TARGET_SCALING = {2: 1.8, 14: 12.0}
HANDED_SHARE_TOLERANCE = 0.01      # spread: the share handed over, against the traffic's owners


def scaling_run(binary, memory, cpus, args, prefix, only):
    """One run of fo_scalebench on len(cpus) workers: its JSON object."""
    from flowos.runtime.runner import STEER_PATTERN   # flowos-run's key pattern, so that both steer alike

    lcores = ",".join(f"{lcore}@{cpu}" for lcore, cpu in enumerate(cpus))
    argv = [str(binary), "--lcores", lcores, "--main-lcore", "0", "--file-prefix", prefix, "--no-shconf",
            "--no-telemetry", "--no-pci", "-m", str(memory.memory_mb), "--log-level=lib.eal:warning"]
    argv += ["--no-huge"] if memory.mode == "no-huge" else ["--huge-dir", memory.huge_dir, "--huge-unlink"]
    argv += ["--", "--flows", str(args.flows), "--seconds", str(args.seconds), "--warmup", str(args.warmup),
             "--steer-pattern", str(STEER_PATTERN)]
    argv += ["--only", ",".join(only)]
    return run_json(argv, binary.name, SCALE_LIMIT_S + 4 * (args.seconds + args.warmup) * len(only),
                    ok=(0, 1), what=f" on {len(cpus)} workers")


def scaling_anomalies(name, n, r):
    """What in one scenario's result on n workers says the measurement is not what it claims."""
    where = f"{name} ({n} workers)"
    problems = []
    if r.get("heap_leaked_bytes"):
        problems.append(f"{where}: the shards left {r['heap_leaked_bytes']} bytes allocated")
    if "error" in r:
        return problems + [f"{where}: {r['error']}"]
    if r["mbufs_missing"]:
        problems.append(f"{where}: {r['mbufs_missing']} mbufs neither in the pool nor in a ring")
    shards = [w["engine"] for w in r["workers"] if w["engine"] is not None]
    for w, e in enumerate(shards):
        for key in ("malformed", "unmatched", "table_full", "tx_unsent", "dropped"):
            if e[key]:
                problems.append(f"{where}: worker {w}'s shard counted {e[key]} {key}")
        if e["tx_packets"] != e["packets"]:
            problems.append(f"{where}: worker {w}'s shard processed {e['packets']} packets but sent {e['tx_packets']}")
    if name == "pipeline":
        for w, (k, e) in enumerate(zip(r["workers"], shards)):
            if e["handed_off"]:
                problems.append(f"{where}: worker {w} handed {e['handed_off']} packets over, though it owns "
                                f"every connection it is fed")
            if e["packets"] != k["generated"]:
                problems.append(f"{where}: worker {w} generated {k['generated']} packets, its shard processed "
                                f"{e['packets']}")
            if e["flows_created"] != r["flows_per_worker"]:
                problems.append(f"{where}: worker {w}'s shard created {e['flows_created']} flows, "
                                f"{r['flows_per_worker']} expected")
    if name == "spread":
        receiver, generated = shards[0], r["workers"][0]["generated"]
        others = sum(e["packets"] for e in shards[1:])
        if receiver["packets"] + others != generated:
            problems.append(f"{where}: the receiver generated {generated} packets, the shards processed "
                            f"{receiver['packets'] + others}")
        if receiver["handed_off"] != others:
            problems.append(f"{where}: the receiver handed {receiver['handed_off']} packets over, the other "
                            f"shards processed {others} from their inboxes")
        share = receiver["handed_off"] / generated if generated else 0.0
        if abs(share - r["expected_handed_share"]) > HANDED_SHARE_TOLERANCE:
            problems.append(f"{where}: {share:.3f} of the packets handed over, "
                            f"{r['expected_handed_share']:.3f} expected from the connections' owners")
        if sum(e["flows_created"] for e in shards) != r["flows_per_worker"] * n:
            problems.append(f"{where}: the shards created {sum(e['flows_created'] for e in shards)} flows, "
                            f"{r['flows_per_worker'] * n} expected")
    if name in SPREAD_SCENARIOS:
        problems += spreading_anomalies(where, r, shards)
    return problems


def spreading_anomalies(where, r, shards):
    """What in a run of one receiver spreading to workers says a flow was not kept on one worker in
    order, or a packet was lost."""
    problems = []
    generated, others = r["workers"][0]["generated"], r["workers"][1:]
    received = sum(w["received"] for w in others)
    if received != generated:
        problems.append(f"{where}: the receiver spread {generated} packets, the workers received {received}")
    disorder = sum(w["disorder"] for w in others)
    if disorder:
        problems.append(f"{where}: {disorder} packets reached their worker out of their flow's order "
                        f"(or were none of the traffic's)")
    if r["flows_split"]:
        problems.append(f"{where}: {r['flows_split']} of {r['flows']} connections reached more than one worker: "
                        f"{r['spreader']} keeps a flow on one worker only while some of its packets are there, so "
                        f"a flow table sharded by worker sees it as several flows")
    if r["flow_visits"] < r["flows"]:
        problems.append(f"{where}: {r['flows'] - r['flow_visits']} of {r['flows']} connections reached no worker")
    if not r["bare"]:
        processed = sum(e["packets"] for e in shards)
        if processed != generated:
            problems.append(f"{where}: the receiver spread {generated} packets, the workers' engines "
                            f"processed {processed}")
        created = sum(e["flows_created"] for e in shards)
        if created != r["flow_visits"]:
            problems.append(f"{where}: the workers' engines created {created} flows, the connections reached "
                            f"workers {r['flow_visits']} times")
    return problems


def scaling_summary(name, n, good):
    """Medians over the runs of one scenario on n workers."""
    def med(values):
        return round(statistics.median(values), 3)
    receiving = [[w for w in r["workers"] if w["receives"]] for r in good]
    aggregates = [round(sum(w["mpps"] for w in ws), 3) for ws in receiving]
    out = {"workers": n, "median_mpps": med(aggregates), "runs_mpps": aggregates,
           "per_worker_mpps": [med(ws[i]["mpps"] for ws in receiving) for i in range(len(receiving[0]))],
           "cycles_per_packet": med(statistics.mean(w["cycles_per_packet"] for w in ws) for ws in receiving),
           "cpus": [w["cpu"] for w in good[0]["workers"]]}
    if name in SPREAD_SCENARIOS:
        # On a shared machine: how much of its timed seconds the receiver ran, and its CPU time per packet.
        out["receiver_cpu_share"] = med(r["workers"][0]["cpu_seconds"] / r["workers"][0]["seconds"] for r in good)
        out["receiver_cpu_ns_per_packet"] = med(r["workers"][0]["cpu_ns_per_packet"] for r in good)
        out["flows_split_share"] = med(r["flows_split"] / r["flows"] for r in good)
        out["disorder"] = max(sum(w["disorder"] for w in r["workers"][1:]) for r in good)
        out["workers_busy_share"] = med(sum(w["busy_polls"] for w in r["workers"][1:]) /
                                        max(1, sum(w["polls"] for w in r["workers"][1:])) for r in good)
    if name == "spread":
        shards = [[w["engine"] for w in r["workers"]] for r in good]
        out["handed_share"] = med(s[0]["handed_off"] / r["workers"][0]["generated"] for s, r in zip(shards, good))
        out["expected_handed_share"] = round(good[0]["expected_handed_share"], 4)
        out["handoff_full"] = med(s[0]["handoff_full"] for s in shards)
        out["others_busy_share"] = med(sum(w["busy_polls"] for w in r["workers"][1:]) /
                                       max(1, sum(w["polls"] for w in r["workers"][1:])) for r in good)
    return out


def scaling_targets(results):
    """Aggregate Mpps on N workers over 1 worker, against the issue's targets where N is one of theirs."""
    out = {}
    for name in ("bridge", "pipeline"):
        one = results.get(name, {}).get(1, {}).get("median_mpps")
        for n, goal in TARGET_SCALING.items():
            value = results.get(name, {}).get(n, {}).get("median_mpps")
            ratio_ = round(value / one, 3) if value is not None and one else None
            out[f"{name}_{n}_workers"] = {"value": ratio_, "target": goal,
                                          "met": None if ratio_ is None else ratio_ >= goal}
    return out


def scaling_cpus(args, most):
    """The CPUs of the workers, one each: --cpus, or the last `most` this process may run on."""
    cpus = sorted(os.sched_getaffinity(0))
    chosen = args.cpus if args.cpus is not None else cpus[-most:]
    if len(set(chosen)) != len(chosen) or any(c not in cpus for c in chosen):
        raise BenchError(f"--cpus {args.cpus}: distinct CPUs this process may run on ({cpus}) expected")
    if len(chosen) < most:
        raise BenchError(f"{most} workers need {most} CPUs, one each; {len(chosen)} available ({chosen}): "
                         f"ask for fewer workers, or name the CPUs with --cpus")
    return chosen


def scaling(args):
    counts = sorted(set(args.workers))
    cpus = scaling_cpus(args, max(counts))
    asked = args.only.split(",") if args.only else list(SCALE_SCENARIOS + PYTHON_SCALE_SCENARIOS)
    unknown = [name for name in asked if name not in SCALE_SCENARIOS + PYTHON_SCALE_SCENARIOS]
    if unknown:
        raise BenchError(f"no scaling scenario {', '.join(unknown)} "
                         f"(scenarios: {','.join(SCALE_SCENARIOS + PYTHON_SCALE_SCENARIOS)})")
    base_mb, per_worker_mb = SCALE_MEMORY_MB
    memory = hugepages.choose(args.memory, args.memory_mb or base_mb + per_worker_mb * max(counts))
    engine = [name for name in asked if name in SCALE_SCENARIOS]
    python = [name for name in asked if name in PYTHON_SCALE_SCENARIOS]
    data = scaling_engine(args, counts, cpus, memory, engine) if engine else \
        {"benchmark": "scaling", "memory_mode": memory.mode, "memory_mb": memory.memory_mb, "cpus": cpus,
         "workers": counts, "reps": args.reps, "seconds": args.seconds, "warmup": args.warmup, "scenarios": {},
         "targets": {}, "anomalies": []}
    text = scaling_table(data) if engine else ""
    if python:
        if memory.mode != "hugepages":
            raise BenchError(f"the Python scenarios run worker processes, which need hugepages ({memory.reason})")
        log(f"scaling, Python processors: flowos-run with 1 worker thread and {counts} worker processes on CPUs "
            f"{cpus}, {args.reps} runs of {args.seconds:g} s each, alternating")
        runs = pyscale.runs(str(FLOWOS_RUN), python, counts, cpus, memory.mode, args.reps, args.seconds,
                            args.warmup, args.python_flows, log)
        results, targets, problems = pyscale.results(runs)
        data["python"] = results
        data["targets"].update(targets)
        data["anomalies"] = sorted(set(data["anomalies"] + problems))
        text = "\n".join(filter(None, [text] + pyscale.table(results, targets) +
                                 [f"warning: {p}" for p in problems]))
    data["loadavg"] = os.getloadavg()
    return Report(data, text)


def scaling_engine(args, counts, cpus, memory, only):
    """fo_scalebench's scenarios `only` on each worker count: the results, their targets and anomalies."""
    binary = Path(args.binary).resolve() if args.binary else SCALEBENCH
    if not args.binary and not binary.exists():
        flowbench_binary()      # scripts/setup builds every benchmark program
    if not binary.exists():
        raise BenchError(f"{binary} does not exist")
    log(f"scaling: {binary}, memory {memory.mode} ({memory.reason}), workers {counts} on CPUs {cpus}, "
        f"{args.reps} runs of {args.seconds:g} s per scenario and worker count, alternating")
    runs = {n: [] for n in counts}
    for rep in range(1, args.reps + 1):
        for n in counts:
            prefix = f"bench-{os.getpid()}-scaling-{n}-{rep}"
            try:
                runs[n].append(scaling_run(binary, memory, cpus[:n], args, prefix, only))
            finally:
                remove_runtime_dir(prefix)
            log(f"  run {rep}/{args.reps}, {n} workers: " + ", ".join(
                f"{name} {sum(w.get('mpps', 0) for w in r.get('workers', []) if w['receives']):.2f} Mpps"
                for name, r in runs[n][-1]["scenarios"].items() if "error" not in r))
    if runs[counts[0]][0]["memory"] != memory.mode:
        raise BenchError(f"fo_scalebench ran with {runs[counts[0]][0]['memory']}, not {memory.mode}")
    results, anomalies = {}, []
    for n in counts:
        for name in runs[n][0]["scenarios"]:
            rs = [run["scenarios"][name] for run in runs[n]]
            for r in rs:
                anomalies += scaling_anomalies(name, n, r)
            good = [r for r in rs if "error" not in r]
            results.setdefault(name, {})[n] = scaling_summary(name, n, good) if good else {"error": rs[0]["error"]}
    first = runs[counts[0]][0]
    return {"benchmark": "scaling", "binary": str(binary), "memory_mode": memory.mode,
            "memory_mb": memory.memory_mb, "cpus": cpus, "workers": counts, "reps": args.reps,
            "seconds": args.seconds, "warmup": args.warmup, "flows_per_worker": first["flows_per_worker"],
            "burst": first["burst"], "frame_len": first["frame_len"], "tsc_hz": first["tsc_hz"],
            "steer_pattern": first["steer_pattern"], "loadavg": os.getloadavg(), "scenarios": results,
            "targets": scaling_targets(results), "anomalies": sorted(set(anomalies))}


def scaling_table(data):
    sc = data["scenarios"]
    bridge_ = sc.get("bridge", {})
    lines = [f"scaling: fo_engine_burst on 1 worker per CPU ({','.join(map(str, data['cpus']))}), memory "
             f"{data['memory_mode']} ({data['memory_mb']} MB), {data['frame_len']}-byte TCP frames, bursts of "
             f"{data['burst']}, {data['flows_per_worker']} flows per worker, {data['reps']} x {data['seconds']:g} s "
             f"per scenario and worker count (after {data['warmup']:g} s of warm-up), load average "
             f"{data['loadavg'][0]:.2f}", "",
             f"{'scenario':<9} {'workers':>7} {'Mpps':>8} {'min':>7} {'max':>7} {'x 1 worker':>10} "
             f"{'cycles/pkt':>10} {'engine cycles/pkt':>17}  per worker Mpps"]
    for name in SCALE_SCENARIOS[:3]:
        one = sc.get(name if name != "spread" else "pipeline", {}).get(1, {}).get("median_mpps")
        for n, s in sc.get(name, {}).items():
            if "error" in s:
                if not (name == "spread" and n == 1):
                    lines.append(f"{name:<9} {n:>7} {s['error']}")
                continue
            gen = bridge_.get(n, {}).get("cycles_per_packet")
            engine = f"{s['cycles_per_packet'] - gen:.0f}" if gen is not None and name != "bridge" else "-"
            times = f"{s['median_mpps'] / one:.2f}" if one else "-"
            lines.append(f"{name:<9} {n:>7} {s['median_mpps']:8.2f} {min(s['runs_mpps']):7.2f} "
                         f"{max(s['runs_mpps']):7.2f} {times:>10} {s['cycles_per_packet']:10.0f} {engine:>17}  "
                         + " ".join(f"{v:.2f}" for v in s["per_worker_mpps"]))
    lines += ["", "(Mpps: the receiving workers' sum; cycles/pkt: per packet at a receiving worker, its generator "
                  "included; engine cycles/pkt: less the bridge's at the same worker count, the generator's share;",
              " x 1 worker: spread against pipeline on 1 worker)", ""]
    one = sc.get("pipeline", {}).get(1, {})
    for n, s in sc.get("spread", {}).items():
        if "error" in s or "cycles_per_packet" not in one:
            continue
        lines.append(f"spread, {n} workers: {s['cycles_per_packet'] - one['cycles_per_packet']:+.0f} cycles per packet "
                     f"at the receiver against pipeline on 1 worker; {s['handed_share']:.1%} handed over "
                     f"(expected {s['expected_handed_share']:.1%}); the receiver found an inbox full "
                     f"{s['handoff_full']:.0f} times; the other workers found packets in "
                     f"{s['others_busy_share']:.1%} of their polls")
    lines += spreading_table(sc)
    for key, t in data["targets"].items():
        name, n = key.split("_")[0], key.split("_")[1]
        verdict = "not measured" if t["met"] is None else "met" if t["met"] else "NOT met"
        value = "-" if t["value"] is None else f"{t['value']:.2f}x"
        lines.append(f"target {name}, {n} workers / 1 worker: {value}, target >= {t['target']:g}x: {verdict}")
    for problem in data["anomalies"]:
        lines.append(f"warning: {problem}")
    return "\n".join(lines)


def spreading_table(sc):
    """The ways to spread one receiver's traffic, side by side, for each worker count measured."""
    counts = sorted({n for name in SPREAD_SCENARIOS for n in sc.get(name, {})})
    if not counts:
        return []
    lines = ["", "spreading one receiver's traffic to the other workers (the receiver only spreads; Mpps: what "
                 "reaches the workers; cycles/pkt: at the receiver, its generator included)", "",
             f"{'spreader':<12} {'workers':>7} {'Mpps':>8} {'min':>7} {'max':>7} {'bare Mpps':>9} "
             f"{'bare cycles/pkt':>15} {'bare CPU ns/pkt':>15} {'CPU share':>9} {'flows split':>11} {'disorder':>8}"]
    for n in counts:
        for way in SPREADERS:
            s, b = sc.get(way, {}).get(n), sc.get(f"{way}_bare", {}).get(n)
            if s is None and b is None:
                continue
            if "error" in (s or {}) or "error" in (b or {}):
                lines.append(f"{way:<12} {n - 1:>7} {(s or {}).get('error') or b['error']}")
                continue
            main = f"{s['median_mpps']:8.2f} {min(s['runs_mpps']):7.2f} {max(s['runs_mpps']):7.2f}" if s else \
                f"{'-':>8} {'-':>7} {'-':>7}"
            bare = f"{b['median_mpps']:9.2f} {b['cycles_per_packet']:15.0f} {b['receiver_cpu_ns_per_packet']:15.1f}" \
                if b else f"{'-':>9} {'-':>15} {'-':>15}"
            share = min(x["receiver_cpu_share"] for x in (s, b) if x)
            split = max(x["flows_split_share"] for x in (s, b) if x)
            disorder = max(x["disorder"] for x in (s, b) if x)
            lines.append(f"{way:<12} {n - 1:>7} {main} {bare} {share:9.0%} {split:11.1%} {disorder:8d}")
    lines += ["(workers: processing workers besides the receiver; CPU share: the least share of its timed seconds "
              "the receiver ran, below 100 % when the machine is shared)"]
    return lines


def worker_counts(text):
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or any(n < 1 or n > 64 for n in counts):
        raise argparse.ArgumentTypeError(f"expected worker counts 1..64 such as 1,2,4, got {text!r}")
    return counts


def cpu_ids(text):
    try:
        return parse_cpus(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_scaling_args(p):
    add_timing_args(p)
    p.add_argument("--workers", type=worker_counts, default=[1, 2],
                   help="worker counts to run, e.g. 1,2,4,8,14 (default 1,2); N workers need N CPUs")
    p.add_argument("--cpus", type=cpu_ids,
                   help="the workers' CPUs, worker i on the i-th (default: the last ones this process may run on)")
    p.add_argument("--flows", type=positive(int), default=100000, help="flows per worker (default 100000)")
    p.add_argument("--memory", choices=MEMORY_MODES, default="auto",
                   help="memory mode (default auto: hugepages when enough are free)")
    p.add_argument("--memory-mb", type=positive(int),
                   help=f"EAL memory (default {SCALE_MEMORY_MB[0]} + {SCALE_MEMORY_MB[1]} per worker)")
    p.add_argument("--python-flows", type=positive(int), default=256,
                   help=f"connections per worker in the Python scenarios' loop of {pyscale.LOOP_PACKETS} packets per "
                        "worker (default 256)")
    p.add_argument("--only", help="comma-separated scenarios (default all: "
                                  f"{','.join(SCALE_SCENARIOS + PYTHON_SCALE_SCENARIOS)})")
    p.add_argument("--binary", help=f"the fo_scalebench to run (default {SCALEBENCH.relative_to(ROOT)})")


# ---------------------------------------------------------------------------------------------
# Command line


BENCHMARKS = {"bridge": (add_bridge_args, bridge, "FlowOS bridge vs dpdk-testpmd io forwarding on net_null"),
              "flows": (add_flows_args, flows, "the flow engine's per-core throughput, setup rate and memory"),
              "processors": (add_processors_args, processors,
                             "the flow path with a processor of each tier: none, C, Cython, Python"),
              "streams": (add_streams_args, streams,
                          "streams over real TCP: pattern scan rate per tier, cost of a length-changing edit"),
              "scaling": (add_scaling_args, scaling,
                          "the flow path and the bridge on N workers, one engine shard each; the spreading mode")}
DEFAULT = "bridge"


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a value > 0, got {text!r}")
        return value
    return parse


def log(message):
    print(message, file=sys.stderr, flush=True)


def build_parser():
    parser = argparse.ArgumentParser(prog="scripts/bench", description=f"FlowOS benchmarks (default: {DEFAULT}).")
    commands = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name, (add_args, run, help_text) in BENCHMARKS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_args(sub)
        sub.add_argument("--json", action="store_true", help="print only one JSON object with the results")
        sub.set_defaults(run=run)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in BENCHMARKS and argv[0] not in ("-h", "--help"):
        argv.insert(0, DEFAULT)
    args = build_parser().parse_args(argv)
    try:
        report = args.run(args)
    except (BenchError, FlowOSError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report.data) if args.json else report.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
