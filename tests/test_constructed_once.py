"""A Python processor's constructor runs once per instance a run uses (docs/processors.md,
"Faults"; docs/architecture.md, "The package"): one per worker, made where it runs, never once
more to check its parameters; a reload's new generation makes its own. A constructor that
rejects its parameters is still a configuration error, one line, exit status 2: at the start of a
run (in a worker thread's process or a worker process), at --check, and at a reload (refused)."""
import json
import subprocess

import pytest

from conftest import DATA, run_flowos
from flowos.testing.runs import FLOWOS_RUN, processor_env
from test_python_processors import pyprocs_importable  # noqa: F401 (an autouse fixture: pyprocs on PYTHONPATH)
from test_reload_e2e import checker, loop  # noqa: F401 (loop, the fixture: flowos-run on a closed loop)
from test_worker_processes import skip_without_hugepages

CAPTURE = "udp_echo.pcap"


def constructed(tmp_path, **params):
    out = tmp_path / "constructed.txt"
    return out, {"pyprocs.constructed:Constructed": {"out": str(out), **params}}


def pids(out):
    """The pid of each construction so far, in order."""
    return out.read_text().split() if out.exists() else []


def write_config(tmp_path, pipeline, workers=1, memory="no-huge"):
    path = tmp_path / "box.yaml"
    path.write_text(json.dumps({
        "eal": {"memory": memory},
        "ports": [{"name": "in", "vdev": f"net_pcap0,rx_pcap={DATA / CAPTURE},tx_pcap={tmp_path / 'out.pcap'}"}],
        "run": {"workers": workers},
        "engine": {"capacity": 4096},
        "pool": {"mbufs": 8191},
        "flows": [{"name": "all", "pipeline": pipeline}],
    }))
    return path


def test_one_worker_constructs_its_processor_once(tmp_path):
    out, proc = constructed(tmp_path)
    run = run_flowos("-c", write_config(tmp_path, [proc]), tmp_path=tmp_path, memory=None, env=processor_env())
    assert run.returncode == 0, run.stderr
    # was 3: the command line's reading of the file constructed it to check its parameters, and the
    # run's again (its reading of the file, for reloads to compare with), then the run's instance
    assert len(pids(out)) == 1


def test_each_worker_thread_has_its_own_instance_constructed_once(tmp_path):
    """Two worker threads (a Cython-tier processor: no worker processes), one process: two instances."""
    out = tmp_path / "constructed.txt"
    proc = {"pyprocs.constructed:CConstructed": {"out": str(out)}}
    run = run_flowos("-c", write_config(tmp_path, [proc], workers=2), tmp_path=tmp_path, memory=None,
                     env=processor_env())
    assert run.returncode == 0, run.stderr
    made = pids(out)
    assert len(made) == 2 and len(set(made)) == 1      # was 4: two readings of the file, then one per worker


def test_each_worker_process_constructs_its_own_once_and_the_primary_none(tmp_path):
    skip_without_hugepages()
    out, proc = constructed(tmp_path)
    run = run_flowos("-c", write_config(tmp_path, [proc], workers=2, memory="hugepages"), tmp_path=tmp_path,
                     memory=None, env=processor_env(), timeout=120)
    assert run.returncode == 0, run.stderr
    made = pids(out)
    # was 4: the primary's two readings of the file constructed it, then one per process
    assert len(made) == 2 and len(set(made)) == 2
    assert {row["pid"] for row in run.stats["workers"]} == {int(pid) for pid in made}


@pytest.mark.parametrize("workers, processes", [(1, False), (2, True)], ids=["thread", "worker-processes"])
def test_a_reload_constructs_the_attached_processor_once_per_worker(loop, tmp_path, workers, processes):  # noqa: F811
    # A Python processor from the start: a run of threads takes another only if it has one.
    run = loop([checker(tmp_path / "order.json")], workers=workers, processes=processes)
    out, proc = constructed(tmp_path)
    answer = run.change("attach", flow="all", processor=proc)
    assert "error" not in answer, answer
    run.stop()
    assert len(pids(out)) == workers      # was workers + 1: the attach's parsing constructed one more


@pytest.mark.parametrize("processes", [False, True], ids=["thread", "worker-processes"])
def test_a_constructor_that_rejects_its_parameters_is_a_config_error_at_the_start(tmp_path, processes):
    if processes:
        skip_without_hugepages()
    _, proc = constructed(tmp_path, fail=True)
    config = write_config(tmp_path, [proc], workers=2 if processes else 1,
                          memory="hugepages" if processes else "no-huge")
    run = run_flowos("-c", config, tmp_path=tmp_path, memory=None, env=processor_env(), timeout=120)
    assert run.returncode == 2, run.stderr
    assert (f"flowos-run: error: {config}: flows[0].pipeline[0]: pyprocs.constructed:Constructed rejects its "
            "parameters: ValueError: told to fail") in run.stderr.splitlines(), run.stderr


def test_a_processor_flag_that_is_rejected_names_the_flag(tmp_path):
    run = run_flowos("--vdev", "net_null0", "--processor", "pyprocs.faults:Strict,threshold=500", "--packets", "10",
                     tmp_path=tmp_path, env=processor_env())
    assert run.returncode == 2
    assert ("flowos-run: error: --processor: flows[0].pipeline[0]: pyprocs.faults:Strict rejects its parameters: "
            "ValueError: threshold must be an integer in 1..100, got 500") in run.stderr.splitlines(), run.stderr


def test_check_constructs_each_processor_once_and_starts_nothing(tmp_path):
    out, proc = constructed(tmp_path)
    done = subprocess.run([FLOWOS_RUN, "--check", "-c", str(write_config(tmp_path, [proc]))], capture_output=True,
                          text=True, cwd=tmp_path, env=processor_env(), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(pids(out)) == 1


@pytest.mark.parametrize("workers, processes, said", [(1, False, ""), (2, True, "worker process 0: ")],
                         ids=["thread", "worker-processes"])
def test_an_attach_whose_processor_rejects_its_parameters_is_refused(loop, tmp_path, workers, processes,  # noqa: F811
                                                                     said):
    run = loop([checker(tmp_path / "order.json")], workers=workers, processes=processes)
    _, proc = constructed(tmp_path, fail=True)
    answer = run.change("attach", flow="all", processor=proc)
    assert answer["error"] == (f"reload refused, nothing changed: {said}flow 'all'[0]: pyprocs.constructed:Constructed "
                               "rejects its parameters: ValueError: told to fail")
    assert run.ask("/flowos/stats")["reloads"]["reloads_refused"] == 1
    run.stop()
