"""The processors benchmark, one run: the flow engine on one core with one processor per scenario.

    procbench.py --cpu N --file-prefix P --memory hugepages|no-huge [--huge-dir D] [--memory-mb MB]
                 [--seconds S] [--warmup S] [--packets N] [--only NAME,...] [--list]

bench.py's `processors` subcommand runs this once per repetition (the EAL starts once per process)
with the pybench extension (benchmarks/pybench.pyx, built into build/release/benchmarks) on
PYTHONPATH, and reads the one JSON object it prints; progress goes to stderr.

Every scenario is the engine flowos-run builds for one catch-all flow, on fo_flowbench's traffic
(64-byte TCP frames of 1k or 100k connections, each in both directions, scattered), with one
processor in its only stage, at bursts of 32 packets (or 1: one processor call per packet; or 256,
the most the engine takes: one call per 256 packets). The
processors that read a field all do the same thing: count the packets whose TCP/UDP destination
port is 443 (a third of this traffic: the client-to-server direction of two connections in three).
"""
import sys

import flowos
from flowos.boundary._python import PythonTier

import benchrun
import cyproc
import pybench

POOL_SIZE = 8191     # as fo_flowbench: the TX ring (1024) and the engine's bursts never hold more
HTTPS = 443


class Nothing(flowos.Processor):
    """Returns at once: the cost of the boundary alone (GIL, Batch, verdicts copied back)."""
    level = "l4"

    def process(self, batch):
        pass


class DportField(flowos.Processor):
    """The field read alone: batch.dport (one C loop over the burst into an array.array('H'));
    nothing is done with it."""
    level = "l4"

    def process(self, batch):
        batch.dport


class DportCounter(flowos.Processor):
    """Counts the packets to port 443 in self.matched (the run checks it); subclasses say how."""
    level = "l4"

    def __init__(self):
        super().__init__()
        self.matched = 0


class DportVector(DportCounter):
    """Vectorised: batch.dport (one C loop over the burst into an array.array('H')), then
    array.count, a C loop that still boxes every item into an int to compare it."""

    def process(self, batch):
        self.matched += batch.dport.count(HTTPS)


class DportNumpy(DportCounter):
    """Vectorised with NumPy, as the buffer protocol is meant for: np.frombuffer wraps
    batch.dport without a copy, then one comparison and one count, no Python object per packet."""

    def __init__(self):
        super().__init__()
        import numpy
        self.np = numpy

    def process(self, batch):
        np = self.np
        self.matched += int(np.count_nonzero(np.frombuffer(batch.dport, np.uint16) == HTTPS))


class DportLoop(DportCounter):
    """Per packet in Python: a zero-copy view of each packet and its two port bytes (offsets 36
    and 37: untagged Ethernet, IPv4 without options, as this traffic is)."""

    def process(self, batch):
        matched = 0
        for i in range(len(batch)):
            p = batch.packet(i)
            if (p[36] << 8 | p[37]) == HTTPS:
                matched += 1
        self.matched += matched


class DportLoopField(DportCounter):
    """Per packet in Python, over the field array: for port in batch.dport."""

    def process(self, batch):
        matched = 0
        for port in batch.dport:
            if port == HTTPS:
                matched += 1
        self.matched += matched


# name: (what is in the stage, burst, what it is); processors are made fresh for each scenario.
KINDS = {
    "none": (None, 32, "no processor"),
    "c_counter": ("counter", 32, "C: the built-in counter (packets and bytes per flow and direction)"),
    "c_nothing": ("bench_nothing", 32, "C: fo_benchproc.c, returns at once (the engine's cost of a processor)"),
    "c_dport": ("bench_dport", 32, "C: fo_benchproc.c, counts dport 443 (fo_pkt_meta, one loop)"),
    "cython_dport": ("cython", 32, "Cython: a flowos.cprocessor.CProcessor counting dport 443 (pkt_dport)"),
    "python_nothing": (Nothing, 32, "Python: process() returns at once"),
    "python_field": (DportField, 32, "Python: batch.dport, not used"),
    "python_vector": (DportVector, 32, "Python: batch.dport.count(443)"),
    "python_numpy": (DportNumpy, 32, "Python: NumPy over batch.dport (frombuffer, ==, count_nonzero)"),
    "python_loop": (DportLoop, 32, "Python: per packet, batch.packet(i)[36] << 8 | [37]"),
    "python_loop_field": (DportLoopField, 32, "Python: per packet, for port in batch.dport"),
    "none_b1": (None, 1, "no processor, bursts of 1"),
    "python_nothing_b1": (Nothing, 1, "Python: process() returns at once, bursts of 1 (one call per packet)"),
    "python_field_b1": (DportField, 1, "Python: batch.dport, not used, bursts of 1 (one call per packet)"),
    "python_vector_b1": (DportVector, 1, "Python: batch.dport.count(443), bursts of 1 (one call per packet)"),
    "python_numpy_b1": (DportNumpy, 1, "Python: NumPy over batch.dport, bursts of 1 (one call per packet)"),
    "none_b256": (None, 256, "no processor, bursts of 256 (FO_MAX_BURST, flowos-run --burst 256)"),
    "c_nothing_b256": ("bench_nothing", 256, "C: fo_benchproc.c, returns at once, bursts of 256"),
    "c_dport_b256": ("bench_dport", 256, "C: fo_benchproc.c, counts dport 443, bursts of 256"),
    "python_nothing_b256": (Nothing, 256, "Python: process() returns at once, bursts of 256"),
    "python_field_b256": (DportField, 256, "Python: batch.dport, not used, bursts of 256"),
    "python_vector_b256": (DportVector, 256, "Python: batch.dport.count(443), bursts of 256"),
    "python_numpy_b256": (DportNumpy, 256, "Python: NumPy over batch.dport, bursts of 256"),
}
FLOWS = {"1k": 1000, "100k": 100000}
SCENARIOS = {f"{kind}_{suffix}": (kind, flows) for suffix, flows in FLOWS.items() for kind in KINDS}


def make_processor(kind):
    """What run() puts in the stage (None, a C processor's name, a tier) and the Python object."""
    what = KINDS[kind][0]
    if what is None or isinstance(what, str) and what != "cython":
        return what, None
    if what == "cython":
        proc = cyproc.DportCount()
        return cyproc.tier(proc), proc
    proc = what()
    return PythonTier(proc), proc


def run_scenario(rig, name, seconds, warmup, packets=0):
    kind, flows = SCENARIOS[name]
    stage, proc = make_processor(kind)
    r = pybench.run(rig, flows, KINDS[kind][1], seconds, warmup, stage, packets)
    r["kind"] = kind
    r["what"] = KINDS[kind][2]
    if proc is not None and hasattr(proc, "matched"):
        r["matched"] = proc.matched
    elif isinstance(r.get("processor"), dict) and "matched" in r["processor"]:
        r["matched"] = r["processor"]["matched"]
    return r


def main(argv=None):
    p = benchrun.parser("procbench", __doc__, memory_mb=512)
    p.add_argument("--packets", type=int, default=0,
                   help="exactly this many packets after the pass, no warm-up or timed window "
                        "(benchmarks/proc_instructions.py counts instructions so)")
    args, names = benchrun.parse(p, argv, {name: KINDS[kind][2] for name, (kind, _) in SCENARIOS.items()}, 26)
    if names is None:
        return 0
    header = {"frame_len": pybench.FRAME_LEN, "seconds": args.seconds, "warmup": args.warmup}
    return benchrun.run("procbench", "processors", args, names, "pb_pool", POOL_SIZE, header,
                        lambda rig, name: run_scenario(rig, name, args.seconds, args.warmup, args.packets))


if __name__ == "__main__":
    sys.exit(main())
