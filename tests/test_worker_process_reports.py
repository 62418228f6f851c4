"""The worker processes' engine reports, merged into the run's one (flowos.runtime.worker_processes): each
definition's counts summed by its name and each processor's by its place and name, so that
processes that run different configurations at the end (a reload partly done: some took it, the
others did not) still make one report, each definition and processor in it once."""
from types import SimpleNamespace

from flowos.runtime.worker_processes import WorkerProcesses


def flow(name, packets, processors):
    return {"name": name, "packets": packets, "bytes": 10 * packets, "flows_created": 1, "flows_active": 0,
            "processors": [{"name": p, "calls": 1, "packets": packets, "busy_ns": 5, "report": {"seen": packets}}
                           for p in processors]}


def merged(*flows_per_process):
    procs = WorkerProcesses.__new__(WorkerProcesses)
    procs.reports = {w: {"engine": {"stats": {"packets": sum(f["packets"] for f in flows)}, "flows": flows}}
                     for w, flows in enumerate(flows_per_process)}
    procs.restarts = {w: [] for w in procs.reports}
    procs.relay_engine = SimpleNamespace(stats=lambda: {"packets": 0})
    return procs.engine_report()


def test_processes_with_one_configuration_are_summed_definition_by_definition():
    report = merged([flow("web", 3, ["counter", "ttl"]), flow("all", 1, ["counter"])],
                    [flow("web", 4, ["counter", "ttl"]), flow("all", 2, ["counter"])])
    assert report["stats"]["packets"] == 10
    assert [(f["name"], f["packets"], f["bytes"]) for f in report["flows"]] == [("web", 7, 70), ("all", 3, 30)]
    assert [(p["name"], p["calls"], p["report"]) for p in report["flows"][0]["processors"]] == [
        ("counter", 2, {"seen": 7}), ("ttl", 2, {"seen": 7})]


def test_processes_with_different_configurations_make_one_report():
    """Process 0 took a reload that added "dns" and a ttl to "all"; process 1 did not."""
    report = merged([flow("dns", 5, ["counter"]), flow("all", 1, ["counter", "ttl"])],
                    [flow("all", 2, ["counter"])])
    assert [(f["name"], f["packets"]) for f in report["flows"]] == [("dns", 5), ("all", 3)]
    assert [(p["name"], p["packets"]) for p in report["flows"][1]["processors"]] == [("counter", 3), ("ttl", 1)]
