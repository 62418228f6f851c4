"""The streams benchmark, one run: the flow engine on one core, streams on, over real TCP.

    streambench.py --cpu N --file-prefix P --memory hugepages|no-huge [--huge-dir D] [--memory-mb MB]
                   [--seconds S] [--warmup S] [--flows N] [--payload B] [--only NAME,...] [--list]

bench.py's `streams` subcommand runs this once per repetition with the pybench and cystream
extensions (benchmarks/pybench.pyx, cystream.pyx, built into build/release/benchmarks) on
PYTHONPATH, and reads the one JSON object it prints; progress goes to stderr.

Traffic: fo_gen's stream mode (fo_gen.h): N connections, each direction a SYN then in-order data
segments of --payload bytes (1448 by default) with advancing sequence numbers, acknowledging
what the other side received, scattered as in the other flow benchmarks. One catch-all
definition with streams (normalised TCP), one payload-level processor, bursts of 32.

  scan_*  count a pattern in both directions of every flow, also across packets: the pattern is
          planted in one connection in 4, two copies per two segments, one of them cut in two
          by a segment boundary; each processor releases up to where the pattern may still be
          starting (partial_at), and its count must equal the copies the generator planted.
  edit_*  one edit at the start of every data packet's payload, both directions: none (the
          processor only walks the packets), a same-length replace, an insert or a delete of
          EDIT_BYTES bytes; the engine then renumbers the direction (and keeps each segment
          until the other side acknowledges it).
"""
import sys

import flowos
from flowos.boundary._python import PythonTier

import benchrun
import cystream
import pybench

POOL_SIZE = 16383    # the TX ring (1024), the bursts, held segments and the copies of rewritten data
PATTERN = b"X-FlowOS-Needle/1"   # its first byte is no lowercase letter and occurs once in it (fo_gen.h)
PLANT_DIV = 4
MSS = 1460           # announced in the SYNs: an insert of EDIT_BYTES into a 1448-byte segment is not split
EDIT_BYTES = 4
INSERT = b"EDIT"


class PyStreamFind(flowos.Processor):
    """Counts the pattern in both directions of every flow (flow.stream(d).find per flow and call),
    releasing up to partial_at, remembering in flow.state where the next match may start: what
    cystream.StreamFind and bench_find do."""
    level = "payload"

    def __init__(self, pattern):
        super().__init__()
        # bytes, or text from a configuration (flowos-run: benchmarks/pyscale.py)
        self.pattern = pattern.encode() if isinstance(pattern, str) else pattern
        self.matched = 0

    def process(self, batch):
        pat, matched, keep = self.pattern, 0, len(self.pattern) - 1
        for flow in batch.flows():
            seen = flow.state
            if seen is None:
                seen = flow.state = [0, 0]
            for s in flow.streams():
                start, end = s.start, s.end
                if end == start:
                    continue
                at = max(seen[s.dir], start)
                while (hit := s.find(pat, at, end)) >= 0:
                    matched += 1
                    at = hit + 1
                seen[s.dir] = max(at, end - keep)   # held bytes come back: skip what was searched
                s.release(s.partial_at(pat))
        self.matched += matched


class PyStreamEdit(flowos.Processor):
    """One edit at the start of every data packet's payload (Stream.packets(), from the last one
    back): none, replace, insert or delete, as cystream.StreamEdit and bench_edit."""
    level = "payload"
    readonly = False

    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.packets = self.edits = 0

    def process(self, batch):
        mode, packets = self.mode, 0
        for flow in batch.flows():
            for s in flow.streams():
                for off, _, plen in reversed(s.packets()):
                    if plen <= EDIT_BYTES:
                        continue
                    packets += 1
                    if mode == "replace":
                        s.replace(off, INSERT)
                    elif mode == "insert":
                        s.insert(off, INSERT)
                    elif mode == "delete":
                        s.delete(off, EDIT_BYTES)
        self.packets += packets
        if mode != "none":
            self.edits += packets


# name: (what is in the stage, whether the pattern is planted, what it is)
SCENARIOS = {
    "gen_only": ("generator", True, "the generator and the TX ring alone (no engine)"),
    "flow_only": (None, True, "no processor (streams stay off): decode, classify, flow table, TX"),
    "scan_c": ("c_find", True, "C: bench_find, fo_stream_find per flow direction (fo_benchproc.c)"),
    "scan_cython": ("cython_find", True, "Cython: stream_find through batch.stream_ops (cystream.pyx)"),
    "scan_python": ("python_find", True, "Python: flow.stream(d).find per flow direction, release(partial_at)"),
}
for _tier in ("c", "cython", "python"):
    for _mode in ("none", "replace", "insert", "delete"):
        SCENARIOS[f"edit_{_tier}_{_mode}"] = (
            f"{_tier}_edit_{_mode}", False,
            {"none": "walks every packet's stream offset, no edit",
             "replace": f"replaces {EDIT_BYTES} bytes at the start of every payload (same length)",
             "insert": f"inserts {EDIT_BYTES} bytes at the start of every payload",
             "delete": f"deletes {EDIT_BYTES} bytes at the start of every payload"}[_mode]
            + {"c": " (C: bench_edit)", "cython": " (Cython: stream_splice)",
               "python": " (Python: Stream.packets, replace/insert/delete)"}[_tier])


def make_processor(kind):
    """What run_streams() puts in the stage (None, a C processor's tuple, a tier) and the object
    that counts, if any."""
    if kind in (None, "generator"):
        return None, None
    if kind == "c_find":
        return ("bench_find", PATTERN), None
    if kind == "cython_find":
        proc = cystream.StreamFind(PATTERN)
        return cystream.tier(proc), proc
    if kind == "python_find":
        proc = PyStreamFind(PATTERN)
        return PythonTier(proc), proc
    tier, _, mode = kind.split("_")
    if tier == "c":
        return ("bench_edit", mode, EDIT_BYTES), None
    if tier == "cython":
        proc = cystream.StreamEdit(mode, EDIT_BYTES)
        return cystream.tier(proc), proc
    proc = PyStreamEdit(mode)
    return PythonTier(proc), proc


def run_scenario(rig, name, args):
    kind, planted, what = SCENARIOS[name]
    stage, proc = make_processor(kind)
    r = pybench.run_streams(rig, args.flows, 32, args.seconds, args.warmup, stage, payload_len=args.payload,
                            mss=MSS, pattern=PATTERN, plant_div=PLANT_DIV if planted else 0,
                            engine=kind != "generator")
    r["kind"] = kind or "none"
    r["what"] = what
    report = r.get("processor") if isinstance(r.get("processor"), dict) else {}
    if proc is not None:
        counts = proc.report() if hasattr(proc, "report") else {}
        for key in ("matched", "packets", "edits"):
            if hasattr(proc, key):
                counts[key] = getattr(proc, key)
        report = dict(report, **counts)
    r["counts"] = report
    return r


def main(argv=None):
    p = benchrun.parser("streambench", __doc__, memory_mb=256)
    p.add_argument("--flows", type=int, default=1000)
    p.add_argument("--payload", type=int, default=1448, help="TCP payload bytes per segment (default 1448)")
    args, names = benchrun.parse(p, argv, {name: what for name, (_, _, what) in SCENARIOS.items()}, 22)
    if names is None:
        return 0
    header = {"seconds": args.seconds, "warmup": args.warmup, "flows": args.flows, "payload": args.payload,
              "pattern": PATTERN.decode(), "plant_div": PLANT_DIV, "mss": MSS, "edit_bytes": EDIT_BYTES}
    return benchrun.run("streambench", "streams", args, names, "sb_pool", POOL_SIZE, header,
                        lambda rig, name: run_scenario(rig, name, args))


if __name__ == "__main__":
    sys.exit(main())
