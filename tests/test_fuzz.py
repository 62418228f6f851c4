"""The libFuzzer targets (tests/fuzz/: decode, the classifier, the flow index, the flow table,
the TCP normaliser and stream edits through the engine), built with clang under ASan and UBSan
(tests/fuzz/fuzzbuild.py, which scripts/fuzz runs for as long as asked). Here each target fuzzes
for FLOWOS_FUZZ_SECONDS (10) from the captures' seeds and must find nothing; every seed and every
regression input (tests/fuzz/regressions/<target>/: each crash found, kept) replays clean."""
import os
import re

import pytest

from fuzz import fuzzbuild

SECONDS = int(os.environ.get("FLOWOS_FUZZ_SECONDS", "10"))
pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module", autouse=True)
def need_clang():
    if fuzzbuild.clang() is None:
        pytest.skip(f"needs clang with libFuzzer: apt-get install {' '.join(fuzzbuild.APT_PACKAGES)} "
                    "(scripts/setup and scripts/fuzz install them)")


def tail(done):
    return (done.stdout + done.stderr)[-6000:]


@pytest.mark.parametrize("target", fuzzbuild.TARGETS)
def test_fuzzing_finds_nothing(target):
    done, crashes = fuzzbuild.fuzz(target, SECONDS)
    assert done.returncode == 0 and not crashes, tail(done)
    executed = re.search(r"stat::number_of_executed_units: *(\d+)", done.stderr)
    assert executed and int(executed.group(1)) > 100, tail(done)


@pytest.mark.parametrize("target", fuzzbuild.TARGETS)
def test_seeds_and_regressions_replay_clean(target):
    exe = fuzzbuild.build(target)
    seeds = sorted(fuzzbuild.write_seeds(target).iterdir())
    inputs = seeds + fuzzbuild.regressions(target)
    assert len(seeds) >= 8
    done = fuzzbuild.replay(exe, inputs)
    assert done.returncode == 0, tail(done)
    assert done.stderr.count("Running: ") == len(inputs), tail(done)

