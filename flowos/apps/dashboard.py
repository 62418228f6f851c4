"""What the user sees: a live rich dashboard while running, and a summary table at the end."""
import time

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flowos.runtime import output


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
    lines.append(f"flowos: {spreading(bridge)}")
    if bridge.control_server is not None:
        lines.append(f"flowos: control: flowos-ctl --file-prefix {bridge.file_prefix} "
                     f"(socket {bridge.control_server.path})")
    return "\n".join(lines)


def spreading(bridge):
    """How many workers, on which CPUs, and how each port spreads what it receives over them."""
    workers = bridge.worker
    text = f"{len(workers)} worker(s) on CPU {', '.join(map(str, workers.cpus))}"
    if len(workers) == 1:
        return text
    ports = []
    for name, port in bridge.ports.items():
        if port.spread == "rss":
            ports.append(f"{name} symmetric RSS over {port.rx_queues} queues")
        elif port.spread == "device":
            ports.append(f"{name} {port.rx_queues} queues spread by the device ({port.spread_why}), "
                         "flows handed to their workers")
        else:
            ports.append(f"{name} one queue, flows handed to their workers")
        if bridge.relay_engine is not None:     # worker processes: who polls the port
            ports[-1] += (", polled by the worker processes" if name in bridge.own_queue_ports else
                          ", received and sent by the relay")
    return text + "; " + "; ".join(ports)


class QuietView:
    """--no-dashboard: one line at start, the summary at the end, nothing in between."""

    interval = 0.05

    def __init__(self, console=None):
        self.console = console or Console(highlight=False)

    def started(self, bridge):
        self.console.print(describe_start(bridge), markup=False)
        output.banner_printed()

    def update(self, snapshot):
        pass

    def stopped(self):
        pass


class Dashboard(QuietView):
    """The live view: ports, processors and the engine's drops, redrawn every refresh."""

    interval = 0.25

    def __init__(self, console=None):
        super().__init__(console)
        self.live = None
        self.previous = None
        self.header = ""

    def started(self, bridge):
        self.header = f"memory {bridge.memory.mode} | routes " + ", ".join(f"{a}->{b}" for a, b in bridge.config.forward)
        super().started(bridge)
        # FlowOS's output router (flowos.runtime.output) sends what processors write above the display, or
        # where it was redirected: rich must not take stdout and stderr over itself.
        self.live = Live(Text("starting"), console=self.console, refresh_per_second=4, transient=True,
                         redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def update(self, snapshot):
        now = time.monotonic()
        rates = {}
        if self.previous is not None:
            then, old = self.previous
            dt = max(now - then, 1e-6)
            for p, o in zip(snapshot.ports, old.ports):
                rates[p.name] = ((p.rx_packets - o.rx_packets) / dt, (p.tx_packets - o.tx_packets) / dt)
            for w, o in zip(snapshot.workers, old.workers):
                # A worker process being restarted has no load to read; a restarted one counts from 0.
                if "polls" in w and "polls" in o and w.get("pid") == o.get("pid"):
                    rates[("worker", w["worker"])] = worker_load(w, o, dt)
        self.previous = (now, snapshot)
        if self.live is not None:
            self.live.update(render(snapshot, self.header, rates, self.console.width))

    def stopped(self):
        if self.live is not None:
            self.live.stop()
            self.live = None


def compact(value):
    """A count in at most 6 characters: 987, 12.3k, 30.8M."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            scaled = value / scale
            return f"{scaled:.1f}{prefix}" if abs(scaled) < 100 else f"{scaled:.0f}{prefix}"
    return f"{value:.0f}"


def per_call(busy_ns, calls):
    if not calls:
        return "-"
    ns = busy_ns / calls
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


WIDE = 110   # from this many columns the processors and drops tables stand side by side


def _table(title, columns):
    """A borderless table whose cells wrap rather than end in an ellipsis (the console decides
    the width: 80 columns must do)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 1))
    for name, left in columns:
        table.add_column(name, justify="left" if left else "right", overflow="fold", min_width=len(name))
    return table


def link_text(port):
    """"up 10 Gb/s", "up 1 Gb/s half", "up" (a device that gives no speed), or "down"."""
    if not port.link_up:
        return "down"
    speed = f" {port.link_speed_mbps / 1000:g} Gb/s" if port.link_speed_mbps >= 1000 else \
        f" {port.link_speed_mbps} Mb/s" if port.link_speed_mbps else ""
    return "up" + speed + ("" if port.link_full_duplex or not speed else " half")


def ports_table(ports, rates, width):
    wide = width >= WIDE
    columns = [("port", True)] + ([("device", True)] if wide else []) + \
        [("link", True), ("rx pps", False), ("tx pps", False), ("rx", False), ("tx", False), ("dropped", False)]
    table = _table("ports", columns)
    for p in ports:
        rx_rate, tx_rate = rates.get(p.name, (0.0, 0.0))
        table.add_row(p.name, *([f"{p.device} ({p.driver})"] if wide else []), link_text(p),
                      compact(rx_rate), compact(tx_rate), compact(p.rx_packets), compact(p.tx_packets),
                      compact(p.dropped))
    return table


def processors_table(flows):
    """Each processor of each flow definition: calls, packets, time per call (the engine counts
    them for every tier), faults (Python and Cython processors; a C built-in cannot fault: "-")."""
    table = _table("processors", [("flow", True), ("processor", True), ("calls", False), ("packets", False),
                                  ("faults", False), ("per call", False)])
    for flow in flows:
        for proc in flow["processors"]:
            report = proc.get("report")
            faults = report.get("faults") if isinstance(report, dict) and "calls" in report else None
            table.add_row(flow["name"], proc["name"], compact(proc["calls"]), compact(proc["packets"]),
                          "-" if faults is None else compact(faults), per_call(proc["busy_ns"], proc["calls"]),
                          style="bold red" if faults else None)
    return table


def worker_packets(row):
    """What a worker processed: its shard's packets (from its queues and its inbox), or, without a
    flow engine, what it received."""
    return row["engine"]["packets"] if "engine" in row else row.get("rx_packets", 0)


def worker_load(row, old, dt):
    """(packets per second, share of its polls that found packets) between two snapshots."""
    polls = row["polls"] - old["polls"]
    return (worker_packets(row) - worker_packets(old)) / dt, (row["busy_polls"] - old["busy_polls"]) / polls if polls else 0.0


def workers_table(workers, rates):
    table = _table("workers", [("worker", True), ("cpu", False), ("pps", False), ("busy", False),
                               ("packets", False), ("handed", False)])
    for w in workers:
        pps, busy = rates.get(("worker", w["worker"]), (0.0, 0.0))
        handed = w["engine"]["handed_off"] if "engine" in w else 0
        table.add_row(str(w["worker"]), str(w["cpu"]), compact(pps), f"{busy:.0%}", compact(worker_packets(w)),
                      compact(handed))
    return table


def drop_reasons(stats):
    """The engine's drops by reason, as (reason, packets), the ones that happened."""
    streams = stats.get("streams", {})
    reasons = [("verdict drop", stats["verdicts"]["drop"]), ("bad verdict", stats["bad_verdicts"]),
               ("bad redirect", stats["bad_redirects"]), ("malformed", stats["malformed_dropped"]),
               ("unmatched", stats["unmatched_dropped"]), ("table full", stats["table_full_dropped"]),
               ("hold overflow", stats["hold_overflow_packets"]),
               ("reorder overflow", streams.get("reorder_overflow", 0)),
               ("stream duplicate", streams.get("duplicates", 0)),
               ("keep budget", stats["budget"]["segments_dropped"]), ("tx unsent", stats["tx_unsent"])]
    return [(reason, n) for reason, n in reasons if n]


def drops_table(stats):
    table = _table("engine drops", [("reason", True), ("packets", False)])
    for reason, n in drop_reasons(stats):
        table.add_row(reason, compact(n))
    table.add_row("all (dropped)", compact(stats["dropped"]), style="bold")
    return table


def render(snapshot, header, rates, width):
    """The dashboard at `width` columns: tables stacked, the processors and the drops side by side
    where they fit."""
    parts = [Text(f"FlowOS up {snapshot.elapsed:.1f} s | {header}"), ports_table(snapshot.ports, rates, width)]
    if len(snapshot.workers) > 1:
        parts.append(workers_table(snapshot.workers, rates))
    parts.append(Text(f"mbuf pool: {compact(snapshot.pool_in_use)} of {compact(snapshot.pool_size)} in use"))
    if snapshot.engine is not None:
        stats = snapshot.engine
        parts.append(Text(f"flows: {compact(stats['flows_active'])} active (peak {compact(stats['flows_peak'])}), "
                          f"{compact(stats['flows_created'])} created | engine packets {compact(stats['packets'])}"))
        tables = [processors_table(snapshot.processors or []), drops_table(stats)]
        if width >= WIDE:
            side = Table.grid(padding=(0, 3))
            side.add_row(*tables)
            tables = [side]
        parts += tables
    return Group(*parts)


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
    # Packets exact, bytes and rates scaled: 80 columns hold it up to 100 million packets a
    # port (--stats-json has every count exact).
    table = _table(f"FlowOS summary: {report.elapsed_s:.2f} s, stopped by {report.stop_reason}, "
                   f"memory {report.memory_mode}",
                   [("port", True), ("rx packets", False), ("rx bytes", False), ("tx packets", False),
                    ("tx bytes", False), ("dropped", False), ("avg rx pps", False)])
    elapsed = max(report.elapsed_s, 1e-9)
    for p in report.ports:
        table.add_row(p.name, f"{p.rx_packets:,}", _si(p.rx_bytes, "B"), f"{p.tx_packets:,}",
                      _si(p.tx_bytes, "B"), f"{p.dropped:,}", _si(p.rx_packets / elapsed))
    t = report.totals()
    table.add_row("total", f"{t['rx_packets']:,}", _si(t["rx_bytes"], "B"), f"{t['tx_packets']:,}",
                  _si(t["tx_bytes"], "B"), f"{t['dropped']:,}", _si(t["rx_packets"] / elapsed), style="bold")
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
