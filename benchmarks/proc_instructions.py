"""Instructions per packet of the processors benchmark's scenarios (procbench.py), counted by
valgrind's callgrind: a figure that, unlike cycles, does not move with the load on a shared
machine, for A/B comparisons of the processor tiers' per-call code.

  .venv/bin/python benchmarks/proc_instructions.py [--only none_b256_1k,python_field_b256_1k]
                                                   [--pythonpath DIR:DIR]

Each scenario runs twice under callgrind (`procbench.py --packets N`: the pass that creates the
flows, then exactly N packets), at two packet counts; the difference of the two instruction
totals divided by the difference of the counts is what one more packet costs, with Python's and
the EAL's start, the engine's set-up and the first pass cancelled out. `--pythonpath` puts
another build's flowos package and pybench first (default: this checkout's build/release
benchmarks and the installed flowos). Needs valgrind; about a minute per scenario. Under
callgrind the CPU features DPDK sees are valgrind's, so compare builds with each other, not
with cycles; cache misses are not in these counts (the cycle figures have them).
"""
import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from bench import remove_runtime_dir

ROOT = Path(__file__).resolve().parent.parent
PROCBENCH = ROOT / "benchmarks" / "procbench.py"
COUNTS = (25600, 102400)    # multiples of every burst the scenarios use (1, 32, 256)


def collected(pythonpath, scenario, packets):
    """Instructions the whole run of one scenario executed under callgrind."""
    prefix = f"fo-pinstr-{os.getpid()}-{scenario}"
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, str(PROCBENCH),
            "--memory", "no-huge", "--memory-mb", "512", "--file-prefix", prefix, "--only", scenario,
            "--packets", str(packets)]
    env = dict(os.environ, PYTHONPATH=pythonpath)
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", env=env)
    remove_runtime_dir(prefix)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"proc_instructions: {' '.join(argv)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout)["scenarios"][scenario]
    if "error" in result:
        sys.exit(f"proc_instructions: {scenario}: {result['error']}")
    return int(found.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="none_b256_1k,python_field_b256_1k",
                        help="comma-separated scenarios (procbench.py --list)")
    parser.add_argument("--pythonpath", default=str(ROOT / "build" / "release" / "benchmarks"),
                        help="PYTHONPATH for procbench.py: where flowos (if not the installed one) and pybench are")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = {}
    for scenario in filter(None, args.only.split(",")):
        low, high = (collected(args.pythonpath, scenario, n) for n in COUNTS)
        results[scenario] = round((high - low) / (COUNTS[1] - COUNTS[0]), 1)
        if not args.json:
            print(f"{scenario:<26} {results[scenario]:8.1f} instructions per packet", flush=True)
    if args.json:
        print(json.dumps({"counts": COUNTS, "instructions_per_packet": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
