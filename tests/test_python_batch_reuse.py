"""The Python tier reuses, from one call to the next, the Batch, its verdict array and its
vector field arrays when nothing else holds them (flowos/boundary/_python.pyx, new_batch and
Batch.field), and never one a processor kept: docs/python.md, "What a processor may keep".
A real flowos-run replays a capture in bursts of 4 through tests/pyprocs/reuse.py."""
import json
import os
from pathlib import Path

import pytest

from flowcheck import one_port, report, run_config

TESTS = Path(__file__).parent
CAPTURE = TESTS / "data" / "udp_echo.pcap"


@pytest.fixture(autouse=True)
def pyprocs_importable(monkeypatch):
    """flowos-run (a subprocess) imports pyprocs.* from this folder."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


def run_reuse(tmp_path, keep):
    out = tmp_path / "seen.json"
    flows = [{"name": "all", "pipeline": [{"pyprocs.reuse:Reuse": {"out": str(out), "keep": keep}}]}]
    run = run_config(tmp_path, one_port(CAPTURE, tmp_path / "out.pcap", flows, {"clock": "capture"},
                                        run={"burst": 4}))
    assert run.returncode == 0, run.stderr
    assert report(run, "all")["faults"] == 0
    seen = json.loads(out.read_text())
    assert seen["calls"] == report(run, "all")["calls"] > 10
    return seen


def test_a_batch_and_its_arrays_nothing_holds_are_reused(tmp_path):
    """Every call after the first gets the previous call's Batch, verdict array and dport array
    (no allocation per call). The Batch was allocated anew in every call before: its reuse test
    counted its own temporary reference to the verdict array."""
    seen = run_reuse(tmp_path, keep=False)
    reused = seen["calls"] - 1
    assert (seen["same_batch"], seen["same_verdicts"], seen["same_dport"]) == (reused, reused, reused), seen


def test_arrays_a_processor_keeps_keep_their_values(tmp_path):
    """A verdict or field array kept past its call is never handed out again: it keeps its
    burst's values, and a weak reference to a field array sees its values or nothing."""
    seen = run_reuse(tmp_path, keep=True)
    later = seen["calls"] - 1
    assert seen["same_batch"] == later, seen            # the Batch itself was not kept
    assert seen["same_verdicts"] == seen["same_dport"] == 0, seen
    assert seen["kept_dport_unchanged"] == seen["kept_not_handed_out"] == later, seen
    assert seen["weak_checked"] == 2 * seen["calls"] - 1 and seen["weak_unchanged"] == seen["weak_checked"], seen
