"""The Python scenarios of `scripts/bench scaling` (benchmarks/pyscale.py) measure flowos-run itself:
one worker thread and worker processes on a closed loop of two net_ring ports. Run briefly for
correctness, not timing: every packet of the loop goes round and is still in it at the end (freed from
the ring ports then; no packet lost, no other mbuf out of the pool), the connections reach both
worker processes, and the anomaly checks fire on a run that lost packets."""
import copy
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import pyscale  # noqa: E402

from flowos.runtime import hugepages  # noqa: E402

FLOWOS_RUN = os.path.join(os.path.dirname(sys.executable), "flowos-run")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if hugepages.choose("auto", 512).mode != "hugepages":
        pytest.skip("worker processes need hugepages (scripts/hugepages)")
    cpus = sorted(os.sched_getaffinity(0))
    workdir = tmp_path_factory.mktemp("pyscale")
    return {label: pyscale.run_once(FLOWOS_RUN, "python_field", n, label != "thread", [cpus[i % len(cpus)] for i in range(n)],
                                    "hugepages", 0.5, 0.2, 64, workdir)
            for label, n in (("thread", 1), ("1", 1), ("2", 2))}


def test_packets_go_round_the_loop_with_nothing_lost(runs):
    for label, r in runs.items():
        assert r["laps"] > 0 and r["mpps"] > 0
        assert pyscale.anomalies("python_field", label, r) == []


def test_both_worker_processes_get_connections(runs):
    report = runs["2"]["report"]
    rows = report["workers"]
    assert len(rows) == 2 and len({row["pid"] for row in rows}) == 2
    assert all(row["engine"]["flows_created"] > 0 for row in rows)
    assert sum(row["engine"]["flows_created"] for row in rows) == 2 * 64     # 64 per worker
    assert runs["2"]["loop_packets"] == 2 * pyscale.LOOP_PACKETS


def test_anomalies_fire_on_a_lossy_run(runs):
    r = copy.deepcopy(runs["thread"])
    r["report"]["ports"][1]["tx_unsent"] = 5
    problems = pyscale.anomalies("python_field", "thread", r)
    assert any("5 packets dropped or refused" in p for p in problems)
    assert any("mbufs left in the ring ports at the end, not the loop" in p for p in problems)


def test_results_compare_processes_with_one(runs):
    data, targets, problems = pyscale.results({"python_field": {"thread": [runs["thread"]], 1: [runs["1"]],
                                                                 2: [runs["2"]]}})
    one, two, thread = (data["python_field"][k]["median_mpps"] for k in ("1", "2", "thread"))
    assert targets["python_field_2"]["value"] == pytest.approx(two / one)
    assert targets["python_field_process_cost"]["value"] == pytest.approx(one / thread)
    assert targets["python_field_14"]["met"] is None      # not measured here
    assert problems == []
    assert any(line.startswith("target python_field, 2 worker processes / 1") for line in pyscale.table(data, targets))


def test_the_stream_scan_goes_round_on_two_worker_processes(tmp_path):
    """stream_scan: every lap adds each UDP datagram's payload to its flow's stream, which the
    processor searches and releases: nothing lost, no fault, both processes with flows."""
    if hugepages.choose("auto", 512).mode != "hugepages":
        pytest.skip("worker processes need hugepages (scripts/hugepages)")
    cpus = sorted(os.sched_getaffinity(0))
    r = pyscale.run_once(FLOWOS_RUN, "stream_scan", 2, True, [cpus[i % len(cpus)] for i in range(2)], "hugepages",
                         0.5, 0.2, 64, tmp_path)
    assert r["laps"] > 0 and pyscale.anomalies("stream_scan", "2", r) == []
    assert all(row["engine"]["flows_created"] > 0 for row in r["report"]["workers"])
    processor = r["report"]["engine"]["flows"][0]["processors"][0]
    assert processor["name"] == "streambench:PyStreamFind" and processor["report"]["calls"] > 0
