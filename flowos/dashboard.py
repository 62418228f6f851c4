"""What the user sees: a live rich dashboard while running, and a summary table at the end."""
import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


def _si(value, unit=""):
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}".rstrip()


def describe_start(bridge):
    cfg, mem = bridge.config, bridge.memory
    lines = [f"flowos: memory {mem.mode} ({mem.reason}), {mem.memory_mb} MB; "
             f"{len(cfg.ports)} port(s); routes " + ", ".join(f"{a} -> {b}" for a, b in cfg.forward)]
    lines += [f"flowos: {note}" for note in cfg.notes]
    if bridge.control_server is not None:
        lines.append(f"flowos: control: flowos-ctl --file-prefix {bridge.file_prefix} "
                     f"(socket {bridge.control_server.path})")
    return "\n".join(lines)


class QuietView:
    """--no-dashboard: one line at start, the summary at the end, nothing in between."""

    interval = 0.05

    def __init__(self, console=None):
        self.console = console or Console(highlight=False)

    def started(self, bridge):
        self.console.print(describe_start(bridge), markup=False)

    def update(self, snapshot):
        pass

    def stopped(self):
        pass


class Dashboard(QuietView):
    """A live table of the ports: rates over the last refresh, totals, drops, pool use."""

    interval = 0.25

    def __init__(self, console=None):
        super().__init__(console)
        self.live = None
        self.previous = None
        self.header = ""

    def started(self, bridge):
        self.header = f"memory {bridge.memory.mode} | routes " + ", ".join(f"{a}->{b}" for a, b in bridge.config.forward)
        super().started(bridge)
        self.live = Live(Text("starting"), console=self.console, refresh_per_second=4, transient=True)
        self.live.start()

    def update(self, snapshot):
        now = time.monotonic()
        rates = {}
        if self.previous is not None:
            then, old = self.previous
            dt = max(now - then, 1e-6)
            for p, o in zip(snapshot.ports, old.ports):
                rates[p.name] = ((p.rx_packets - o.rx_packets) / dt, (p.tx_packets - o.tx_packets) / dt)
        self.previous = (now, snapshot)
        table = Table(title=f"FlowOS  up {snapshot.elapsed:.1f} s | {self.header}", title_justify="left")
        for col in ("port", "device", "link", "rx pps", "tx pps", "rx", "tx", "dropped"):
            table.add_column(col, justify="left" if col in ("port", "device", "link") else "right", no_wrap=True)
        for p in snapshot.ports:
            rx_rate, tx_rate = rates.get(p.name, (0.0, 0.0))
            table.add_row(p.name, f"{p.device} ({p.driver})", "up" if p.link_up else "down",
                          _si(rx_rate), _si(tx_rate), f"{p.rx_packets:,}", f"{p.tx_packets:,}", f"{p.dropped:,}")
        lines = [table, Text(f"mbuf pool: {snapshot.pool_in_use:,} of {snapshot.pool_size:,} in use")]
        if snapshot.engine is not None:
            lines.append(Text(engine_line(snapshot.engine)))
        if self.live is not None:
            self.live.update(Group(*lines))

    def stopped(self):
        if self.live is not None:
            self.live.stop()
            self.live = None


def engine_line(stats):
    malformed = sum(stats["malformed"].values())
    line = (f"flows: {stats['flows_active']:,} active (peak {stats['flows_peak']:,}), {stats['flows_created']:,} "
            f"created | unmatched {stats['unmatched']:,} | malformed {malformed:,} | "
            f"dropped {stats['dropped']:,} | table full {stats['table_full']:,}")
    budget = stats["budget"]
    line += f"\nkept: {budget['kept']:,} of a budget of {budget['limit']:,} (peak {budget['peak']:,})"
    if budget["overflows"] or budget["segments_dropped"]:
        line += f" | cut back {budget['overflows']:,} | segments refused {budget['segments_dropped']:,}"
    streams = stats.get("streams") or {}
    if any(streams.values()):
        line += "\nstreams: " + " | ".join(f"{name.replace('_', ' ')} {value:,}" for name, value in streams.items() if value)
    return line


def summary_table(report):
    table = Table(title=f"FlowOS summary: {report.elapsed_s:.2f} s, stopped by {report.stop_reason}, "
                        f"memory {report.memory_mode}", title_justify="left")
    for col in ("port", "rx packets", "rx bytes", "tx packets", "tx bytes", "dropped", "avg rx pps"):
        table.add_column(col, justify="left" if col == "port" else "right", no_wrap=True)
    elapsed = max(report.elapsed_s, 1e-9)
    for p in report.ports:
        table.add_row(p.name, f"{p.rx_packets:,}", f"{p.rx_bytes:,}", f"{p.tx_packets:,}",
                      f"{p.tx_bytes:,}", f"{p.dropped:,}", _si(p.rx_packets / elapsed))
    t = report.totals()
    table.add_row("total", f"{t['rx_packets']:,}", f"{t['rx_bytes']:,}", f"{t['tx_packets']:,}",
                  f"{t['tx_bytes']:,}", f"{t['dropped']:,}", _si(t["rx_packets"] / elapsed), style="bold")
    lines = [table, Text(f"mbufs in use at exit: {report.mbufs_in_use_at_exit} of {report.pool_size:,}")]
    if report.engine is not None:
        lines.append(Text(engine_line(report.engine["stats"])))
        for flow in report.engine["flows"]:
            lines.append(Text(f"flow {flow['name']}: {flow['packets']:,} packets, {flow['bytes']:,} bytes, "
                              f"{flow['flows_created']:,} flows; pipeline: "
                              + (" -> ".join(p["name"] for p in flow["processors"]) or "none")))
    for p in report.ports:
        if p.tx_oversize:
            lines.append(Text(f"port {p.name}: {p.tx_oversize:,} packets too long for {p.driver} to send "
                              "whole were not sent (tx_oversize; see docs/ports.md)"))
    for s in report.sources:
        note = f"capture {s.capture}: {s.received:,} of {s.packets:,} packets received"
        if s.damaged:
            note += f" (the capture ends with a damaged record: {s.damaged})"
        if s.truncated:
            note += (f"; {s.truncated:,} of them were captured shorter than they were on the wire (snaplen) "
                     "and go out as captured, their records no longer saying so")
        lines.append(Text(note))
    return Group(*lines)
