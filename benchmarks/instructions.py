"""Instructions per packet of fo_flowbench's scenarios, counted by valgrind's callgrind: a figure
that, unlike cycles, does not move with the load on a shared machine.

  .venv/bin/python benchmarks/instructions.py [--only classify_1,flows_1k] [--binary PATH]

Each scenario runs twice under callgrind (`fo_flowbench --packets N`: the pass that creates the
flows, then exactly N packets), at two packet counts; the difference of the two instruction
totals divided by the difference of the counts is what one more packet costs, with the EAL's
start, the engine's set-up and the first pass cancelled out. "engine" is that less
generator_only's (the generator and the TX ring). Needs valgrind (apt-get install valgrind);
about 30 s per scenario. Under callgrind the CPU features DPDK sees are valgrind's (rte_acl picks
its code path from them), so compare builds with each other, not with cycles.
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from bench import remove_runtime_dir

ROOT = Path(__file__).resolve().parent.parent
FLOWBENCH = ROOT / "build" / "release" / "benchmarks" / "fo_flowbench"
COUNTS = (64000, 320000)
GENERATOR = "generator_only"


def collected(binary, scenario, packets):
    """Instructions the whole run of one scenario executed under callgrind."""
    prefix = f"fo-instr-{scenario}"
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(binary), "--no-huge", "-m", "512",
            "--no-pci", "--no-shconf", "--no-telemetry", "--file-prefix", prefix, "-l", "0", "--",
            "--only", scenario, "--packets", str(packets)]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    remove_runtime_dir(prefix)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"instructions: {' '.join(argv)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_packet(binary, scenario):
    low, high = (collected(binary, scenario, n) for n in COUNTS)
    return (high - low) / (COUNTS[1] - COUNTS[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="classify_1,flows_1k", help="comma-separated scenarios (fo_flowbench -- --list)")
    parser.add_argument("--binary", default=str(FLOWBENCH), help="the fo_flowbench to count (default: this build's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    binary = Path(args.binary)
    if not binary.exists():
        sys.exit(f"instructions: {binary} does not exist (scripts/setup builds it)")
    scenarios = [s for s in args.only.split(",") if s]
    generator = per_packet(binary, GENERATOR)
    results = {GENERATOR: {"instructions_per_packet": round(generator, 1)}}
    for scenario in scenarios:
        if scenario != GENERATOR:
            total = per_packet(binary, scenario)
            results[scenario] = {"instructions_per_packet": round(total, 1), "engine": round(total - generator, 1)}
    if args.json:
        print(json.dumps({"binary": str(binary), "packets": COUNTS, "scenarios": results}))
        return
    print(f"{'scenario':<16} {'instr/pkt':>10} {'engine':>8}   ({binary})")
    for name, r in results.items():
        print(f"{name:<16} {r['instructions_per_packet']:>10.1f} {r.get('engine', ''):>8}")


if __name__ == "__main__":
    main()
