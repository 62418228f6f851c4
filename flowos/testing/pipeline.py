"""Runs a pipeline over packets with the real flowos-run and says what came out: the output
packets, per flow what happened to its packets (the verdicts), and FlowOS's statistics.

    result = run_pipeline(packets, pipeline=["mymodule:PortBlocker"])
    assert result.flow(dport=23).verdict == "dropped"

The packets (scapy packets, bytes, or a capture's path) are replayed once through one port
(net_pcap: rx_pcap in, tx_pcap out; the port forwards to itself), with the flow engine on the
capture's clock, so a run repeats exactly. Flows are told apart by flowos.testing.flowkey, which
reads the frames without FlowOS.
"""
import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from flowos.testing.flowkey import Keyer, addr_str, read_header
from flowos.testing.pcap import read_pcap, write_pcap
from flowos.testing.runs import processor_env, run_flowos

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
VERDICTS = ("forwarded", "dropped", "partly dropped", "modified", "new")
_runs = itertools.count()


class PipelineFailed(AssertionError):
    """flowos-run did not end cleanly (exit status not 0): its error output says why."""


@dataclass
class FlowResult:
    """One connection, in both directions, as the frames tell it: its opener's 5-tuple (the
    sender of its first packet), the frames that went in and those that came out, in order."""
    proto: int           # IP protocol, 0 for a frame that is not IP
    src: str | None      # the opener's address; None for a non-IP flow
    sport: int
    dst: str | None
    dport: int
    ether_type: int
    sent: list = field(default_factory=list)       # frames (bytes) fed to FlowOS
    received: list = field(default_factory=list)   # frames that left FlowOS

    @property
    def verdict(self):
        """forwarded: every frame came out unchanged, in order; dropped: none came out; partly
        dropped: some came out unchanged, the others not at all; new: FlowOS made the flow (no
        frame went in); modified: anything else (frames changed, added or reordered)."""
        if self.received == self.sent:
            return "forwarded"
        if not self.received:
            return "dropped"
        if not self.sent:
            return "new"
        rest = iter(self.sent)
        if all(frame in rest for frame in self.received):      # an ordered subsequence
            return "partly dropped"
        return "modified"

    def __str__(self):
        if self.src is None:
            return f"ether 0x{self.ether_type:04x}"
        proto = PROTO_NAMES.get(self.proto, f"proto {self.proto}")
        ends = f"{self.src}:{self.sport} -> {self.dst}:{self.dport}" if self.proto in (6, 17, 132) else \
            f"{self.src} -> {self.dst}"
        return f"{proto} {ends}"


def _flows(frames_in, frames_out):
    """The FlowResults of a run, in the order their first frame went in (or came out)."""
    flows = {}
    for frames, side in ((frames_in, "sent"), (frames_out, "received")):
        keyer = Keyer()     # its own per side: a later fragment follows its first on the same side
        for raw in frames:
            key, _ = keyer.key(raw)
            if key not in flows:
                h = read_header(raw)
                ip = h.family != 0
                flows[key] = FlowResult(h.proto, addr_str(h.family, h.src) if ip else None, h.sport,
                                        addr_str(h.family, h.dst) if ip else None, h.dport, h.ether_type)
            getattr(flows[key], side).append(raw)
    return list(flows.values())


@dataclass
class PipelineResult:
    returncode: int
    stdout: str
    stderr: str
    stats: dict          # flowos-run's --stats-json (docs/flows.md, "Statistics")
    frames: list         # the frames that came out, as bytes, in order
    flows: list          # FlowResult per connection

    @property
    def packets(self):
        """The frames that came out, as scapy packets."""
        from scapy.layers.l2 import Ether
        return [Ether(raw) for raw in self.frames]

    @property
    def verdicts(self):
        """{str(flow): its verdict}, for every flow."""
        return {str(flow): flow.verdict for flow in self.flows}

    @property
    def engine(self):
        """The flow engine's counters (packets, dropped, flows created and ended, ...)."""
        return self.stats["engine"]["stats"]

    def flow(self, **fields):
        """The one flow whose opener's fields are these, e.g. flow(dport=23) or
        flow(proto="udp", src="10.0.0.1"). Raises LookupError, listing the flows, unless exactly
        one matches."""
        if isinstance(fields.get("proto"), str):
            names = {name: number for number, name in PROTO_NAMES.items()}
            fields["proto"] = names.get(fields["proto"], fields["proto"])
        found = [f for f in self.flows if all(getattr(f, k) == v for k, v in fields.items())]
        if len(found) != 1:
            raise LookupError(f"{len(found)} flows match {fields}; the flows: " +
                              "; ".join(str(f) for f in self.flows))
        return found[0]

    def processor(self, name, definition=None):
        """What the run says of processor `name` (a built-in's name or module:Class): the engine's
        counts of its calls and its report (for a Python processor: calls, packets, faults and
        their first tracebacks). `definition` names the flow definition where several have it."""
        found = [proc for flow in self.stats["engine"]["flows"] if definition in (None, flow["name"])
                 for proc in flow["processors"] if proc["name"] == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} processors named {name!r}" +
                              (f" in definition {definition!r}" if definition else "") +
                              " (give definition= where several flow definitions have it)")
        return found[0]


def run_pipeline(packets, pipeline=None, *, flows=None, engine=None, config=None, args=(), workdir=None,
                 times=None, check=True, timeout=60, memory="no-huge"):
    """Runs flowos-run over `packets` and returns a PipelineResult.

    packets: scapy packets or bytes (written to a capture `times` apart: seconds, default 1 ms
    apart), or the path of a capture. pipeline: the stages of one catch-all flow definition, as a
    config's `pipeline:` writes them (["counter", {"mymodule:Cls": {"param": 1}}]); or flows: the
    whole `flows:` section. engine: the `engine:` section (default: the capture's clock);
    config: more sections (`run:`, `pool:`). args: more flowos-run flags. workdir: where the
    capture, the config, the output and the statistics are kept (default: a temporary folder,
    removed). check: raise PipelineFailed unless flowos-run exits 0."""
    if pipeline is not None and flows is not None:
        raise ValueError("give pipeline= (one catch-all flow) or flows=, not both")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="flowos-test-") as tmp:
            return run_pipeline(packets, pipeline, flows=flows, engine=engine, config=config, args=args,
                                workdir=tmp, times=times, check=check, timeout=timeout, memory=memory)
    n = next(_runs)
    workdir = Path(workdir)
    if isinstance(packets, (str, os.PathLike)):
        capture = Path(packets).absolute()
    else:
        capture = write_pcap(workdir / f"in-{n}.pcap", packets, times)
    out = workdir / f"out-{n}.pcap"
    cfg = {"ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={capture},tx_pcap={out}"}], "forward": ["a -> a"]}
    if pipeline is not None:
        flows = [{"name": "all", "pipeline": list(pipeline)}]
    if flows:
        cfg["flows"] = flows
        cfg["engine"] = {"clock": "capture", **(engine or {})}
    cfg.update(config or {})
    path = workdir / f"flowos-{n}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = run_flowos("-c", path, *args, tmp_path=workdir, memory=memory, timeout=timeout,
                     env=processor_env())
    if check and run.returncode != 0:
        raise PipelineFailed(f"flowos-run -c {path} exited {run.returncode}:\n{run.stderr.strip()}")
    frames_in, frames_out = read_pcap(capture), read_pcap(out) if out.exists() else []
    return PipelineResult(run.returncode, run.stdout, run.stderr, run.stats, frames_out, _flows(frames_in, frames_out))
