"""Statistics of a run: live snapshots for the dashboard, and the final report (JSON)."""
import json
from dataclasses import asdict, dataclass, field

PORT_COUNTERS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_missed", "rx_errors",
                 "tx_errors", "rx_nombuf", "tx_unsent")
# Every way a packet can be lost on a port, in the port's own counters and the worker's.
DROP_COUNTERS = ("rx_missed", "rx_errors", "tx_errors", "rx_nombuf", "tx_unsent")


@dataclass
class PortStats:
    name: str
    device: str
    driver: str
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_missed: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_nombuf: int = 0
    tx_unsent: int = 0   # refused by the TX queue: freed by the worker and counted here
    tx_linearised: int = 0   # chains too long for the device, sent copied into one segment
    tx_oversize: int = 0     # chains too long for the device that could not be: left unsent (docs/ports.md)
    link_up: bool = False
    link_speed_mbps: int = 0     # 0: unknown (virtual devices often say nothing)
    link_full_duplex: bool = False
    mtu: int = 0

    @property
    def dropped(self):
        return sum(getattr(self, c) for c in DROP_COUNTERS)


@dataclass
class Snapshot:
    """What the dashboard shows: taken at `elapsed` seconds into the run."""
    elapsed: float
    ports: list
    pool_in_use: int
    pool_size: int
    engine: dict | None = None   # the flow engine's statistics, when flows are defined
    processors: list | None = None   # per flow definition: its processors' counts (Bridge.processor_counts)
    workers: list = field(default_factory=list)   # per worker: its load and counts (flowos.runtime.shards.worker_rows)


@dataclass
class SourceReport:
    """A capture replayed by a port: what it holds and what was received of it."""
    port: str
    capture: str
    packets: int
    bytes: int
    received: int
    damaged: str | None = None
    truncated: int = 0     # packets captured shorter than they were on the wire (the capture's snaplen)


@dataclass
class RunReport:
    memory_mode: str
    memory_reason: str
    memory_mb: int
    file_prefix: str
    elapsed_s: float
    stop_reason: str
    ports: list
    pool_size: int
    mbufs_in_use_at_exit: int
    sources: list = field(default_factory=list)
    engine: dict | None = None     # the flow engine's report, when flows are defined
    burst: int = 0                 # packets per receive burst
    watchdog: dict | None = None   # flowos.runtime.watchdog.Watchdog.report(): the budget, reports, a stuck call
    worker_left_running: bool = False   # it would not stop: nothing was torn down (see watchdog.verdict)
    workers: list = field(default_factory=list)   # per worker: its CPU, load, and its shard's counters
    ended: dict | None = None      # a data plane that died, as its supervisor saw it (flowos.runtime.supervisor)
    mbufs_lost_with_workers: dict | None = None   # worker processes restarted: what went with the dead ones
    mbufs_left_in_port_queues: int = 0   # received by no worker before the end, freed (devices.KEEPS_QUEUED_MBUFS)

    def ending(self):
        """How the data plane ended: "stopped" (its worker stopped when told, or by itself), "stuck"
        (it did not: the watchdog named the call it was in), or the supervisor's "crashed" or "killed"."""
        if self.ended is not None:
            return self.ended
        stuck = (self.watchdog or {}).get("stuck")
        if stuck is None:
            return {"how": "stopped"}
        return {"how": "stuck", "processor": stuck["processor"], "call": stuck["call"], "text": stuck["text"],
                "lost": self.watchdog.get("undrained")}

    def totals(self):
        keys = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")
        totals = {k: sum(getattr(p, k) for p in self.ports) for k in keys}
        totals["dropped"] = sum(p.dropped for p in self.ports)
        return totals

    def to_dict(self):
        return {
            "memory_mode": self.memory_mode,
            "memory_reason": self.memory_reason,
            "memory_mb": self.memory_mb,
            "file_prefix": self.file_prefix,
            "elapsed_s": round(self.elapsed_s, 6),
            "stop_reason": self.stop_reason,
            "burst": self.burst,
            "ports": [dict(asdict(p), dropped=p.dropped) for p in self.ports],
            "totals": self.totals(),
            "mbufs": {"pool_size": self.pool_size, "in_use_at_exit": self.mbufs_in_use_at_exit,
                      "left_in_port_queues": self.mbufs_left_in_port_queues,
                      **({"lost_with_worker_processes": self.mbufs_lost_with_workers}
                         if self.mbufs_lost_with_workers is not None else {})},
            "sources": [asdict(s) for s in self.sources],
            **({"engine": self.engine} if self.engine is not None else {}),
            "workers": self.workers,
            **({"watchdog": self.watchdog} if self.watchdog is not None else {}),
            "ended": self.ending(),
        }

    def write_json(self, path):
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
