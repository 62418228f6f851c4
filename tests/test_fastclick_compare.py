"""benchmarks/fastclick/compare.py without FastClick: a missing --click is a clear error, and one
run's figures are read from the DriverManager's lines as a stand-in `click` prints them."""
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "fastclick"))
import compare  # noqa: E402

from flowos.runtime import hugepages  # noqa: E402


def test_missing_click_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fastclick" / "compare.py"),
                           "--click", str(tmp_path / "click")], capture_output=True, text=True)
    assert done.returncode == 1
    assert "not an executable file; build FastClick first" in done.stderr


def stand_in(tmp_path, output):
    """A `click` that prints output and exits 0, whatever its arguments."""
    path = tmp_path / "click"
    path.write_text("#!/bin/sh\ncat <<'END'\n" + output + "END\n")
    path.chmod(0o755)
    return Namespace(click=str(path), warmup=0.5, seconds=2.0, order="sequential")


def run(args, config, flows):
    return compare.fastclick_run(args, hugepages.choose("no-huge", 64), 0, "unused", config, flows, 2.5e9)


def test_cycles_per_packet_from_the_window(tmp_path):
    args = stand_in(tmp_path, "MARK0 100.5 1000\nMARK1 102.5 51000\nFLOWS 1000\n")
    cycles, on_cpu, wait = run(args, "flowpath.click", 1000)
    assert cycles == pytest.approx(2.0 * 2.5e9 / 50000)
    assert 0 <= on_cpu < cycles     # the stand-in ran far less than the 2 s its lines claim
    assert wait >= 0


def test_schedstat_is_read_from_the_exited_process():
    w = compare.Watched(["sh", "-c", "echo MARK0 1 1; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
                                     "echo MARK1 2 2; echo err >&2"])
    assert w.finish() == (0, "MARK0 1 1\nMARK1 2 2\n", "err\n")
    assert w.ran_ns > 0 and w.waited_ns >= 0
    assert 0 < w.ran_at_mark[0] <= w.ran_at_mark[1] <= w.ran_ns


def test_a_table_short_of_its_flows_is_refused(tmp_path):
    args = stand_in(tmp_path, "MARK0 1.0 0\nMARK1 3.0 1000\nFLOWS 980\n")
    with pytest.raises(compare.bench.BenchError, match="holds 980 flows, 1000 expected"):
        run(args, "flowpath.click", 1000)
    assert run(args, "generator_only.click", 1000)[0] > 0     # the generator's table is not counted


@pytest.mark.parametrize("output", ["MARK0 1.0 0\nFLOWS 1000\n", "MARK0 1.0 5\nMARK1 3.0 5\nFLOWS 1000\n"])
def test_a_run_without_a_window_is_refused(tmp_path, output):
    with pytest.raises(compare.bench.BenchError):
        run(stand_in(tmp_path, output), "flowpath.click", 1000)


def test_the_configurations_take_what_compare_passes():
    for name in ("flowpath.click", "generator_only.click"):
        text = (ROOT / "benchmarks" / "fastclick" / name).read_text()
        for param in ("FLOWS", "CAPACITY", "WARMUP", "SECONDS", "SEQUENTIAL"):
            assert f"${param} " in text, (name, param)
    assert os.access(ROOT / "benchmarks" / "fastclick" / "compare.py", os.R_OK)
