"""The live dashboard, rendered from what a real run reports (its --stats-json), at the widths a
terminal has: everything fits and nothing is cut off with an ellipsis."""
import io
import os
import re
from dataclasses import fields

import pytest
from rich.console import Console
from rich.live import Live

from flowos.apps.dashboard import Dashboard
from flowos.runtime.stats import PortStats, Snapshot

from conftest import DATA, run_flowos

TESTS = DATA.parent

CONFIG = f"""
ports:
  - {{name: lan, vdev: "net_pcap0,rx_pcap={DATA}/mixed.pcap,infinite_rx=1,tx_pcap=/dev/null"}}
  - {{name: wan, vdev: "net_pcap1,rx_pcap={DATA}/udp_echo.pcap,infinite_rx=1,tx_pcap=/dev/null"}}
forward: ["lan <-> wan"]
flows:
  - name: web
    match: {{proto: tcp}}
    pipeline:
      - counter
      - acl: {{rules: [{{action: deny, dport: 5201}}, {{action: deny, sport: 5201}}], default: allow}}
      - pyprocs.faults:Raise
"""


@pytest.fixture(scope="module")
def real_stats(tmp_path_factory):
    """A second of the demo's middlebox (counter, ACL) with a Python processor that faults."""
    tmp_path = tmp_path_factory.mktemp("dashboard")
    (tmp_path / "middlebox.yaml").write_text(CONFIG)
    with pytest.MonkeyPatch.context() as env:   # flowos-run imports pyprocs.* from tests/
        env.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))
        run = run_flowos("-c", "middlebox.yaml", "--duration", "1", tmp_path=tmp_path)
    assert run.stats is not None, run.stderr
    return run.stats


def compact(n):
    """The dashboard's count format (docs/dashboard.md): 987, 12.3k, 30.8M, 123M."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f}{prefix}" if n / scale < 100 else f"{n / scale:.0f}{prefix}"
    return str(n)


def snapshot_of(stats):
    names = {f.name for f in fields(PortStats)}
    ports = [PortStats(**{k: v for k, v in p.items() if k in names}) for p in stats["ports"]]
    snap = Snapshot(stats["elapsed_s"], ports, stats["mbufs"]["in_use_at_exit"], stats["mbufs"]["pool_size"],
                    stats["engine"]["stats"])
    snap.processors = stats["engine"]["flows"]
    snap.workers = stats["workers"]
    return snap


def rendered(stats, width):
    """What the dashboard draws for these statistics on a terminal `width` columns wide."""
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    view = Dashboard(console)
    view.header = "memory no-huge | routes lan->wan, wan->lan"
    view.live = Live(console=console, auto_refresh=False)   # never started: it only holds what update() drew
    view.update(snapshot_of(stats))
    console.print(view.live.renderable)
    return console.file.getvalue()


@pytest.mark.parametrize("width", [80, 120])
def test_dashboard_fits_and_shows_processors_and_drops(real_stats, width):
    text = rendered(real_stats, width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(l for l in lines if len(l) > width)
    assert "…" not in text, text
    engine = real_stats["engine"]["stats"]
    assert engine["verdicts"]["drop"] > 0 and engine["dropped"] > 0   # the ACL denied the iperf flows
    # every port's totals
    for port in real_stats["ports"]:
        row = next(line for line in lines if re.match(rf"\s*{port['name']}\s", line))
        assert compact(port["rx_packets"]) in row.split() and compact(port["tx_packets"]) in row.split(), row
    # every processor, and for the one that counts calls, its calls, faults and a time per call
    procs = real_stats["engine"]["flows"][0]["processors"]
    assert [p["name"] for p in procs] == ["counter", "acl", "pyprocs.faults:Raise"]
    faults = procs[2]["report"]["faults"]
    assert faults == procs[2]["report"]["calls"] > 0
    for p, shown_faults in zip(procs, ["-", "-", compact(faults)]):   # C built-ins cannot fault
        row = next(line for line in lines if p["name"] in line.split()).split()
        assert p["calls"] > 0 and p["packets"] >= p["calls"]
        assert row[:5] == ["web", p["name"], compact(p["calls"]), compact(p["packets"]), shown_faults], row
        assert re.fullmatch(r"[\d.]+", row[5]) and row[6] in ("ns", "us", "ms", "s"), row
    # the engine's drops by reason: the verdicts the ACL gave, and all of them
    drop_row = next(line for line in lines if "verdict drop" in line)
    assert compact(engine["verdicts"]["drop"]) in drop_row.split()
    assert compact(engine["dropped"]) in next(line for line in lines if "all (dropped)" in line).split()


def test_the_summary_fits_80_columns_with_every_packet_count_whole(real_stats):
    """The summary at exit, from the same run's ports: at 80 columns no header or number is cut
    (it printed 'rx packe…' and '30,797,1…'), packet counts stay exact; bytes and rates scaled."""
    from flowos.apps.dashboard import summary_table
    from flowos.runtime.stats import RunReport
    names = {f.name for f in fields(PortStats)}
    ports = [PortStats(**{k: v for k, v in p.items() if k in names}) for p in real_stats["ports"]]
    report = RunReport("no-huge", "", 64, "p", real_stats["elapsed_s"], real_stats["stop_reason"], ports,
                       real_stats["mbufs"]["pool_size"], 0, engine=real_stats["engine"])
    console = Console(width=80, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(summary_table(report))
    text = console.file.getvalue()
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines) and "…" not in text, text
    for col in ("rx packets", "rx bytes", "tx packets", "tx bytes", "dropped", "avg rx pps"):
        assert col in text, text
    for port in real_stats["ports"]:
        row = next(line for line in lines if re.match(rf"\s*{port['name']}\s", line)).split()
        assert f"{port['rx_packets']:,}" in row and f"{port['tx_packets']:,}" in row, row


WORKERS_CONFIG = CONFIG.replace("      - pyprocs.faults:Raise\n", "") + "run: {workers: 2}\n"


@pytest.fixture(scope="module")
def workers_stats(tmp_path_factory):
    """A second of the same middlebox (C processors only) on two workers."""
    tmp_path = tmp_path_factory.mktemp("dashboard-workers")
    (tmp_path / "middlebox.yaml").write_text(WORKERS_CONFIG)
    run = run_flowos("-c", "middlebox.yaml", "--duration", "1", tmp_path=tmp_path)
    assert run.stats is not None, run.stderr
    return run.stats


@pytest.mark.parametrize("width", [80, 120])
def test_dashboard_shows_each_workers_load(workers_stats, width):
    """A row per worker: its CPU, packets per second, the share of its polls that found packets,
    its packets and what it handed to the others (between an empty snapshot and the run's end)."""
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    view = Dashboard(console)
    view.live = Live(console=console, auto_refresh=False)
    start = snapshot_of(workers_stats)
    start.workers = [dict(w, polls=0, busy_polls=0, engine=dict(w["engine"], packets=0)) for w in start.workers]
    view.update(start)
    view.update(snapshot_of(workers_stats))
    console.print(view.live.renderable)
    lines = console.file.getvalue().splitlines()
    assert all(len(line) <= width for line in lines)
    rows = workers_stats["workers"]
    assert len(rows) == 2 and all(w["engine"]["packets"] > 0 and 0 < w["busy_polls"] <= w["polls"] for w in rows)
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["worker", "cpu", "pps"])
    for w, line in zip(rows, lines[header + 2:header + 4]):
        cells = line.split()
        assert cells[:2] == [str(w["worker"]), str(w["cpu"])], line
        assert cells[3].endswith("%") and cells[4] == compact(w["engine"]["packets"]), line


@pytest.mark.parametrize("width", [80])
def test_dashboard_shows_a_worker_process_being_restarted(workers_stats, width):
    """A worker process being restarted (run.on_worker_death: restart) has a row without its load
    and counters, then one with a new pid counting from 0: the dashboard shows it, without a rate
    across the restart."""
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    view = Dashboard(console)
    view.live = Live(console=console, auto_refresh=False)
    before = snapshot_of(workers_stats)
    restarting = snapshot_of(workers_stats)
    restarting.workers = [dict(restarting.workers[0], pid=1)] + [
        {k: v for k, v in w.items() if k in ("worker", "cpu", "pid")} for w in restarting.workers[1:]]
    restarted = snapshot_of(workers_stats)
    restarted.workers = [dict(restarted.workers[0], pid=1), dict(restarted.workers[1], pid=2)]
    for snapshot in (before, restarting, restarted):
        view.update(snapshot)
    console.print(view.live.renderable)
    lines = console.file.getvalue().splitlines()
    assert any(line.split()[:3] == ["worker", "cpu", "pps"] for line in lines)
