"""What procbench.py and streambench.py share: their command line, the EAL's arguments, and one
EAL, mbuf pool and pybench.Rig around their scenarios, with the one JSON object each prints.

pybench comes from build/release/benchmarks on PYTHONPATH, as for the scripts themselves.
"""
import argparse
import json
import os
import sys
import tempfile

from flowos.boundary._runtime import Eal, Mempool

import pybench

POOL_CACHE = 256
DATA_ROOM = 2176     # RTE_MBUF_DEFAULT_BUF_SIZE: a 1448-byte segment and a few bytes more fit one mbuf


def parser(prog, doc, memory_mb):
    """The options every such script takes up to --warmup; the script adds its own, then calls
    parse()."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    p.add_argument("--file-prefix", default=f"{prog}-{os.getpid()}")
    p.add_argument("--memory", choices=("hugepages", "no-huge"), default="no-huge")
    p.add_argument("--huge-dir", default="/dev/hugepages")
    p.add_argument("--memory-mb", type=int, default=memory_mb)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=0.5)
    return p


def parse(p, argv, scenarios, width):
    """Adds --only and --list and parses. Returns the arguments and the scenarios to run, or None
    after printing `scenarios` (name: what it is) for --list."""
    p.add_argument("--only", help="comma-separated scenarios (default all)")
    p.add_argument("--list", action="store_true", help="print the scenarios and exit")
    args = p.parse_args(argv)
    if args.list:
        for name, what in scenarios.items():
            print(f"{name:<{width}} {what}")
        return args, None
    names = list(scenarios) if not args.only else args.only.split(",")
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        p.error(f"no scenario {', '.join(unknown)} (--list names them)")
    return args, names


def eal_argv(prog, args):
    argv = [prog, "--lcores", f"0@{args.cpu}", "--file-prefix", args.file_prefix, "--no-shconf",
            "--no-telemetry", "--no-pci", "-m", str(args.memory_mb), "--log-level=lib.eal:warning"]
    if args.memory == "no-huge":
        return argv + ["--no-huge"]
    return argv + ["--huge-dir", args.huge_dir, "--huge-unlink"]


def run(prog, benchmark, args, names, pool_name, pool_size, header, run_scenario):
    """Starts the EAL, creates the pool and the rig, runs run_scenario(rig, name) for each name
    (progress on stderr) and prints one JSON object: the benchmark, memory mode, CPU and TSC rate,
    then `header`, the Python version and the scenarios' results."""
    with tempfile.TemporaryDirectory(prefix=f"{prog}-") as tmp:
        eal = Eal.start(eal_argv(prog, args), os.path.join(tmp, "dpdk.log"))
        pool = rig = None
        try:
            pybench.register_meta()
            pool = Mempool.create(eal, pool_name, pool_size, POOL_CACHE, DATA_ROOM)
            rig = pybench.Rig.create(pool)
            out = {"benchmark": benchmark, "memory": args.memory, "cpu": args.cpu, "tsc_hz": pybench.tsc_hz(),
                   **header, "python": sys.version.split()[0], "scenarios": {}}
            for name in names:
                print(f"{prog}: {name} ...", file=sys.stderr, flush=True)
                out["scenarios"][name] = run_scenario(rig, name)
        finally:
            if rig is not None:
                rig.close()
            if pool is not None:
                pool.close()
            eal.close()
    print(json.dumps(out))
    return 0
