"""Changing a running box (docs/reload.md), end to end: flowos-run on a closed loop, a net_ring
port forwarded into itself (one FIFO: a capture enters it once, then its packets go round for
ever in the same order, the traffic never stops) while processors and whole flow definitions are attached, detached and
reloaded, through the control socket as flowos-ctl sends them, and by SIGHUP. Every packet of the
loop is still in it at the end (none lost, no other mbuf out of the pool), and a checker in the
pipeline sees every flow's packets in their order throughout."""
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.all import IP, UDP, Ether, Raw, wrpcap

from flowos.runtime.control import unflatten
from flowos.runtime.control_server import SOCKET_NAME
from flowos.apps.ctl import Instance
from flowos.runtime.control_server import runtime_base
from flowos.testing.runs import kill_flowos, processor_env
from conftest import remove_runtime_folder, unique_prefix
from test_worker_processes import skip_without_hugepages

FLOWOS_RUN = str(Path(sys.executable).with_name("flowos-run"))
FLOWOS_CTL = str(Path(sys.executable).with_name("flowos-ctl"))
FLOWS, PER_FLOW = 16, 24            # 384 packets go round: under a ring's 1024, so none is refused
LOOP = FLOWS * PER_FLOW


def loop_capture(path):
    """Each packet's payload: (flow number, its sequence number in the flow); flows in turn."""
    frames = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
              IP(src=f"10.0.0.{c + 1}", dst="10.200.0.1") /
              UDP(sport=10000 + c, dport=80 if c % 2 else 443) / Raw(struct.pack("!II", c, seq) + b"x" * 10)
              for seq in range(PER_FLOW) for c in range(FLOWS)]
    wrpcap(str(path), frames)


def checker(out, per_process=False):
    """The order checker; per_process: each worker process writes its own file (order_checked)."""
    return {"pyprocs.reloads:OrderCheck": {"out": str(out), "arm_after": 3 * LOOP, "per_process": per_process}}


def order_checked(out):
    """The order checker's counts, every worker process's summed (each wrote `out` + "." + its pid)."""
    found = [json.loads(path.read_text()) for path in sorted(out.parent.glob(out.name + ".*"))]
    assert found, f"no {out.name}.* written"
    return {key: sum(f[key] for f in found) for key in ("checked", "violations", "learnt")} | {
        "ended": {reason: sum(f["ended"].get(reason, 0) for f in found) for f in found for reason in f["ended"]}}


def write_config(path, tmp_path, prefix, pipeline, workers=1, processes=False):
    """The loop's configuration; processes: its workers as worker processes, in hugepages (each
    polls its own queue of the ring: its flows go round in it)."""
    config = {
        "eal": {"file_prefix": prefix, "memory": "hugepages" if processes else "no-huge"},
        "ports": [{"name": "feed", "vdev": f"net_pcap0,rx_pcap={tmp_path / 'loop.pcap'},tx_pcap=/dev/null"},
                  {"name": "a", "vdev": "net_ring0"}],
        "forward": ["feed -> a", "a -> a"],
        "run": {"workers": workers, "burst": 64, **({"worker_processes": "always"} if processes else {})},
        "engine": {"capacity": 4096},
        "flows": [{"name": "all", "pipeline": pipeline}],
    }
    Path(path).write_text(json.dumps(config))


class LoopRun:
    """flowos-run on the loop; ask() speaks to its control socket as flowos-ctl does."""

    def __init__(self, tmp_path, pipeline, workers=1, processes=False):
        loop_capture(tmp_path / "loop.pcap")
        self.prefix = unique_prefix()
        self.config = tmp_path / "box.yaml"
        self.stats = tmp_path / "stats.json"
        write_config(self.config, tmp_path, self.prefix, pipeline, workers, processes)
        self.proc = subprocess.Popen([FLOWOS_RUN, "--no-dashboard", "-c", str(self.config), "--stats-json",
                                      str(self.stats)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=tmp_path, env=processor_env())
        self.proc.file_prefix = self.prefix
        self.inst = None
        deadline = time.monotonic() + 60
        while self.laps() <= LOOP:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.proc.communicate()
            time.sleep(0.1)

    def ask(self, command, params=""):
        if self.inst is None:
            self.inst = Instance(os.path.join(runtime_base(), self.prefix, SOCKET_NAME), timeout=60)
        return unflatten(self.inst.ask(command, params, 2000)[command])

    def laps(self):
        try:
            stats = self.ask("/flowos/stats")
        except (OSError, ValueError):
            self.inst = None
            return 0
        return sum(p["rx_packets"] for p in stats["ports"] if p["name"] == "a")

    def change(self, what, **request):
        try:
            answer = self.ask(f"/flowos/{what}", json.dumps(request))
            if isinstance(answer.get("error"), list):
                answer["error"] = "".join(answer["error"])
            return answer
        except (OSError, ValueError):
            time.sleep(1)
            if self.proc.poll() is None:
                raise
            raise AssertionError(f"flowos-run ended: {self.proc.communicate()[1][-3000:]}") from None

    def stop(self):
        if self.inst is not None:
            self.inst.close()
        self.proc.send_signal(signal.SIGINT)
        self.stdout, self.stderr = self.proc.communicate(timeout=60)
        kill_flowos(self.proc)
        remove_runtime_folder(self.prefix)
        return json.loads(self.stats.read_text())


@pytest.fixture
def loop(tmp_path):
    runs = []

    def start(pipeline, workers=1, processes=False):
        if processes:
            skip_without_hugepages()
        runs.append(LoopRun(tmp_path, pipeline, workers, processes))
        return runs[-1]
    yield start
    for run in runs:
        kill_flowos(run.proc)
        remove_runtime_folder(run.prefix)


def nothing_lost(report):
    lost = report["totals"]["dropped"] + sum(p["tx_unsent"] for p in report["ports"])
    return lost == 0 and report["mbufs"]["in_use_at_exit"] == 0 and report["mbufs"]["left_in_port_queues"] == LOOP


@pytest.mark.parametrize("workers, processes", [(1, False), (2, False), (2, True)],
                         ids=["1-worker", "2-worker-threads", "2-worker-processes"])
def test_a_hundred_changes_under_never_stopping_traffic(loop, tmp_path, workers, processes):
    """Processors attached and detached, a definition attached and detached, the file reloaded:
    100 changes, two in three moving the live flows (--migrate), while the loop goes round. With
    two workers each shard takes every change between two of its bursts: as threads (C processors
    only: Python ones would need worker processes), and as worker processes, each of which
    prepares every change before any switches, with its own order checker (Python) for its flows."""
    out, web_out = tmp_path / "order.json", tmp_path / "web.json"
    checking = workers == 1 or processes
    run = loop([checker(out, processes) if checking else {"ttl": {"set": 64}}], workers, processes)
    web = {"name": "web", "match": {"dport": 80},
           "pipeline": [checker(web_out, processes) if checking else {"counter": {"max_flows": 64}},
                        {"hold": {"packets": 3}}]}
    # The checker has armed itself (the feed is over, the order learnt): each worker process sees
    # its share of the loop only.
    while run.laps() < (5 if workers == 1 else 8) * LOOP:
        time.sleep(0.05)
    laps = [run.laps()]
    for i in range(100):
        migrate = i % 3 != 0
        step = i % 5
        if step == 0:
            answer = run.change("attach", flow="all", processor={"counter": {"max_flows": 64}}, migrate=migrate)
        elif step == 1:
            answer = run.change("detach", flow="all", processor="counter", migrate=migrate)
        elif step == 2:
            answer = run.change("attach", definition=web, position=0, migrate=migrate)
        elif step == 3:
            answer = run.change("detach", flow="web", migrate=migrate)
        else:
            answer = run.change("reload", migrate=migrate)
        assert "error" not in answer, (i, answer)
        if i % 25 == 24:
            laps.append(run.laps())
    stats = run.ask("/flowos/stats")
    report = run.stop()
    assert all(b > a for a, b in zip(laps, laps[1:])), laps          # it went round all along
    assert stats["reloads"]["reloads"] == 100 and stats["reloads"]["reloads_refused"] == 0
    assert stats["engine"]["generations"] == 100 * workers      # each shard's switches
    assert stats["engine"]["flows_migrated"] > 0
    assert nothing_lost(report), (report["totals"], report["mbufs"])
    if checking:
        read = order_checked if processes else (lambda path: json.loads(path.read_text()))
        order, web_order = read(out), read(web_out)
        assert order["violations"] == 0 and order["learnt"] == LOOP and order["checked"] > 4 * LOOP
        assert web_order["checked"] > 0
        assert order["ended"].get("reload", 0) > 0            # migrated flows' pipelines ended (flow_end "reload")


def test_invalid_changes_change_nothing_and_say_why(loop, tmp_path):
    run = loop([checker(tmp_path / "order.json")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows: [{name: all, pipeline: [nosuch]}]\n")
    refused = subprocess.run([FLOWOS_CTL, "-f", run.prefix, "reload", str(bad)], capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 1
    assert "reload refused, nothing changed" in refused.stdout and "no processor 'nosuch'" in refused.stdout
    other = json.loads(run.config.read_text())
    other["run"]["burst"] = 32
    moved = tmp_path / "other.yaml"
    moved.write_text(json.dumps(other))
    answer = run.change("reload", path=str(moved))
    assert "its run: section differs from the running configuration's" in answer["error"]
    other["run"]["burst"], other["engine"]["capacity"] = 64, 8192
    moved.write_text(json.dumps(other))
    assert "engine.capacity is 4096 in the running configuration" in run.change("reload", path=str(moved))["error"]
    answer = run.change("detach", flow="nosuch")
    assert "no flow definition 'nosuch'" in answer["error"]
    answer = run.change("attach", flow="all", processor={"hold": {"packets": 0}})
    assert "nothing changed" in answer["error"]
    stats = run.ask("/flowos/stats")
    assert stats["reloads"]["reloads"] == 0 and stats["reloads"]["reloads_refused"] == 5
    assert stats["engine"]["generations"] == 0
    assert "no processor 'nosuch'" in stats["reloads"]["last_error"] or "packets" in stats["reloads"]["last_error"]
    processors = run.ask("/flowos/processors")
    report = run.stop()
    assert nothing_lost(report)
    assert len(processors["processors"]) == 1


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "worker-processes"])
def test_sighup_reloads_the_configuration_file(loop, tmp_path, processes):
    run = loop([checker(tmp_path / "order.json", processes)], 2 if processes else 1, processes)
    config = json.loads(run.config.read_text())
    config["flows"][0]["pipeline"].append({"counter": {"max_flows": 64}})
    run.config.write_text(json.dumps(config))
    run.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while run.ask("/flowos/stats")["reloads"]["reloads"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [p["name"] for p in run.ask("/flowos/processors")["processors"]][-1] == "counter"
    run.config.write_text("flows: [")
    run.proc.send_signal(signal.SIGHUP)
    while run.ask("/flowos/stats")["reloads"]["reloads_refused"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    report = run.stop()
    assert "SIGHUP: reload refused, nothing changed" in run.stderr and "not valid YAML" in run.stderr
    assert nothing_lost(report)


def test_the_papers_dynamic_attach(loop, tmp_path):
    """The FlowOS paper's dynamic attach: a processing module joins a flow's pipeline at run time.
    Attached without --migrate, the live flows keep their pipeline (new flows would take it);
    with --migrate, every live flow's next packets go through it; detached with --migrate, it
    gets flow_end ("reload") for each of its flows, then its teardown; nothing lost meanwhile."""
    out, seen = tmp_path / "order.json", tmp_path / "attached.json"
    run = loop([checker(out)])
    while run.laps() < 5 * LOOP:
        time.sleep(0.05)
    module = {"pyprocs.reloads:Attached": {"out": str(seen)}}
    assert "error" not in run.change("attach", flow="all", processor=module)
    time.sleep(0.3)
    assert not seen.exists()                      # no live flow went through it: none was ever saved
    assert "error" not in run.change("detach", flow="all", processor="Attached")
    assert json.loads(seen.read_text()) == {"flows": [], "ended": {}, "torn_down": True}
    assert "error" not in run.change("attach", flow="all", processor=module, migrate=True)
    laps = run.laps()
    while run.laps() < laps + 2 * LOOP:
        time.sleep(0.05)
    processors = [p["name"] for p in run.ask("/flowos/processors")["processors"]]
    listed = run.ask("/flowos/flows")
    assert listed["live"] == FLOWS and {f["flow"] for f in listed["flows"]} == {"all"}   # named after a reload too
    assert "error" not in run.change("detach", flow="all", processor="Attached", migrate=True)
    attached = json.loads(seen.read_text())
    report = run.stop()
    assert processors == ["pyprocs.reloads:OrderCheck", "pyprocs.reloads:Attached"]
    assert attached["flows"] == list(range(10000, 10000 + FLOWS))     # every live flow, by its source port
    assert attached["ended"] == {"reload": FLOWS} and attached["torn_down"]
    assert nothing_lost(report)
    assert json.loads(out.read_text())["violations"] == 0


def ctl(run, *args):
    done = subprocess.run([FLOWOS_CTL, "-f", run.prefix, *args], capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else done.stderr


def test_flowos_ctl_attach_detach_and_reload(loop, tmp_path):
    run = loop([{"counter": {"max_flows": 64}}])
    rc, answer = ctl(run, "attach", "all", "{hold: {packets: 2}}", "--stage", "0", "--migrate")
    assert rc == 0 and answer["attached"]["definitions"] == ["all"], answer
    rc, answer = ctl(run, "attach", "--definition", "{name: dns, match: {dport: 53}, pipeline: [counter]}",
                     "--position", "0")
    assert rc == 0 and answer["attached"]["definitions"] == ["dns", "all"], answer
    names = [(p["flow"], p["name"]) for p in run.ask("/flowos/processors")["processors"]]
    assert names == [("dns", "counter"), ("all", "hold"), ("all", "counter")], names
    rc, answer = ctl(run, "detach", "all", "hold", "--migrate")
    assert rc == 0 and answer["detached"]["migrate"] == 1, answer
    rc, answer = ctl(run, "detach", "dns")
    assert rc == 0 and answer["detached"]["definitions"] == ["all"], answer
    assert ctl(run, "attach", "all") == (1, "flowos-ctl: attach needs a flow definition's name and a processor, "
                                            "or --definition\n")
    rc, answer = ctl(run, "reload")
    assert rc == 0 and answer["reloaded"]["definitions"] == ["all"], answer
    report = run.stop()
    assert nothing_lost(report)


def test_a_worker_that_does_not_switch_in_time_changes_nothing(loop, tmp_path):
    """A worker stuck in a processor past the 10 s a switch is waited for (by 10 s, whatever the
    staging takes on a loaded machine): the request is withdrawn, the staged instances are undone,
    the run keeps its configuration, and the refusal says the worker stayed in one burst."""
    run = loop(["pyprocs.control:PortDropper"])
    assert run.ask("/flowos/message", "PortDropper,stall 20").get("status") == "ok"
    answer = run.change("attach", flow="all", processor="counter")
    assert "reload refused, nothing changed: the workers did not take the new configuration" in answer["error"]
    assert "timeout: its worker stayed in one burst meanwhile" in answer["error"], answer
    stats = run.ask("/flowos/stats")
    assert stats["reloads"]["reloads_refused"] == 1 and stats["engine"]["generations"] == 0
    assert [p["name"] for p in run.ask("/flowos/processors")["processors"]] == ["pyprocs.control:PortDropper"]
    laps = run.laps()
    while run.laps() <= laps + LOOP:        # the stall over, the loop goes round again
        time.sleep(0.1)
    report = run.stop()
    assert nothing_lost(report)


def test_definitions_past_the_linear_tests_classify_after_a_reload(loop, tmp_path):
    """Six definitions take rte_acl's trie, whose results a later generation offsets by its place
    in the definition space: the loop's flows still land in "all", nothing lost, none reordered."""
    out = tmp_path / "order.json"
    run = loop([checker(out)])
    while run.laps() < 5 * LOOP:
        time.sleep(0.05)
    for port in range(1, 6):
        answer = run.change("attach", definition={"name": f"p{port}", "match": {"dport": port},
                                                  "pipeline": ["counter"]}, position=0, migrate=True)
        assert "error" not in answer, answer
    listed = run.ask("/flowos/flows")
    laps = run.laps()
    while run.laps() < laps + 2 * LOOP:
        time.sleep(0.05)
    definitions = run.ask("/flowos/stats")["engine"]
    report = run.stop()
    assert listed["live"] == FLOWS and {f["flow"] for f in listed["flows"]} == {"all"}, listed
    assert definitions["unmatched"] == 0
    assert nothing_lost(report)
    assert json.loads(out.read_text())["violations"] == 0
