"""Property: nothing a Python processor does to its Batch crashes the box. Hypothesis writes
scripts of operations (tests/pyprocs/randomops.py: verdict writes in and out of range, every way
to resize batch.verdicts, injects of any length and type, writes past the end, views and
objects kept past the call, stream reads and edits anywhere, exceptions raised) and a real
flowos-run replays a capture through a processor that runs the script on every batch. Each run
must exit 0 (1 when the script faulted) with its statistics, leak no mbuf, account for every packet, count exactly the
faults the script's calls should cost, send only well-formed frames, and the processor must
have found every refused operation refused.

Bounded for CI: a fixed example that runs every op, then a few derandomized examples (no
database), each one flowos-run of a small capture.
"""
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import packets
from flowcheck import check_clean, one_port, report, run_config

TESTS = Path(__file__).parent
OPS = ("set", "set_slice", "resize", "verdict_view", "helpers", "return", "inject", "write", "ttl", "packet",
       "view", "fields", "flows", "stream_read", "stream_find", "stream_view", "stream_edit", "stream_release",
       "old", "raise")
ETHER_HEADER = 14

# Indices mostly in range (0..999 is taken modulo the batch's size), some negative, some past the end.
index_like = st.one_of(st.integers(0, 999), st.integers(-3, -1), st.integers(1000, 1003))
op = st.tuples(st.sampled_from(OPS), index_like, st.integers(0, 100_000), st.booleans())

# Every op with a few arguments each (in range, negative, past the end; short, long and typical
# frames; both flags), views and objects kept and used a call later; and the same with a call
# that raises at its end.
ARGS = ((1, 7, False), (2, 33, True), (0, 100, False), (5, 64, True), (1001, 1500, False), (-1, 2299, True))
EVERY_OP = [[name, a, b, flag] for a, b, flag in ARGS for name in OPS if name != "raise"] + [["raise", 0, 0, False]]
EVERY_OP_RAISING = EVERY_OP + [["raise", 0, 0, True]]


@pytest.fixture(scope="module", autouse=True)
def pyprocs_importable():
    """flowos-run (a subprocess) imports pyprocs.* from this folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))
        yield


def run_script(directory, script, capture, burst, policy, level):
    """Runs `script` on every batch of `capture`; returns (run, what the processor saved, frames in, out)."""
    directory = Path(directory)
    (directory / "script.json").write_text(json.dumps(script))
    out, saved = directory / "out.pcap", directory / "saved.json"
    proc = {"pyprocs.randomops:Script": {"script": str(directory / "script.json"), "out": str(saved),
                                         "level": level, "on_error": policy}}
    flows = [{"name": "all", "pipeline": [proc]}]
    run = run_config(directory, one_port(TESTS / "data" / capture, out, flows, {"clock": "capture"},
                                         run={"burst": burst}))
    return run, (json.loads(saved.read_text()) if saved.exists() else None), packets(TESTS / "data" / capture), \
        (packets(out) if out.exists() else [])


def check_survived(run, saved, frames_in, frames_out, script, policy):
    assert saved is not None, run.stderr
    # exit 0 (1 when the script faulted), statistics written, no mbuf left, every packet accounted for
    check_clean(run, returncode=1 if saved["expected_faults"] else 0)
    assert saved["violations"] == [], saved["violations"]
    rep = report(run, "all")
    assert rep["calls"] == saved["calls"] > 0
    assert rep["faults"] == saved["expected_faults"], (rep["first_faults"][:2], saved)
    stats = run.stats["engine"]["stats"]
    assert stats["injected"] >= saved["injects"]
    # A failed call's packets all pass, or are all dropped (each once: on_error holds none of them).
    assert stats["verdicts"][policy] >= saved["failed_packets"]
    assert all(ETHER_HEADER <= len(f) <= 65535 for f in frames_out)
    if not {"write", "ttl", "stream_edit"} & {name for name, *_ in script}:
        known = {f.hex() for f in frames_in} | set(saved["injected"])
        assert saved["injects"] > len(saved["injected"]) or all(f.hex() in known for f in frames_out)


@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(op, min_size=1, max_size=40),
       capture=st.sampled_from(["http_get.pcap", "udp_echo.pcap", "mixed.pcap"]),
       burst=st.sampled_from([1, 7, 256]),
       policy=st.sampled_from(["pass", "drop"]),
       level=st.sampled_from(["l2", "payload"]))
@example(script=EVERY_OP, capture="http_get.pcap", burst=3, policy="pass", level="payload")
@example(script=EVERY_OP_RAISING, capture="mixed.pcap", burst=256, policy="drop", level="l2")
def test_no_batch_operation_crashes_the_box(script, capture, burst, policy, level):
    with tempfile.TemporaryDirectory() as directory:
        run, saved, frames_in, frames_out = run_script(directory, script, capture, burst, policy, level)
        check_survived(run, saved, frames_in, frames_out, script, policy)
