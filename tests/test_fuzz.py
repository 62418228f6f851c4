"""The libFuzzer targets (tests/fuzz/: decode, the classifier, the flow index, the flow table,
the TCP normaliser and stream edits through the engine), built with clang under ASan and UBSan
(tests/fuzz/fuzzbuild.py, which scripts/fuzz runs for as long as asked). Here each target fuzzes
for FLOWOS_FUZZ_SECONDS (10) from the captures' seeds and must find nothing; every seed and every
regression input (tests/fuzz/regressions/<target>/: each crash found, kept) replays clean.
Inputs in a target's regressions/<target>/pending/ crash on a known defect whose fix is owed by
another change: meanwhile the target steps round it while fuzzing, and those inputs are replayed
with FLOWOS_FUZZ_PENDING naming the defect and must still crash (when one stops, the fix is in:
move it up a folder)."""
import os
import re

import pytest

from fuzz import fuzzbuild

SECONDS = int(os.environ.get("FLOWOS_FUZZ_SECONDS", "10"))
# The known defects pending inputs crash on (tests/fuzz/regressions/<target>/pending/<defect>--*),
# each fixed by another change; the targets step round them unless FLOWOS_FUZZ_PENDING names them.
PENDING = {
    "zero-delete": "fo_stream_splice(b, dir, off, 0, NULL, 0) does NULL + 0 in ext/src/fo_stream.c "
                   "(the same-length branch: data += cut), undefined behaviour",
    "chains": "pkt_splice on a chained mbuf reads off the chain (__rte_pktmbuf_read from pkt_copy_out), "
              "here from stream_split_rest cutting a held segment that edits grew past one mbuf: "
              "the multi-segment work on streams",
}
PENDING_TARGETS = sorted(p.parent.parent.name for p in fuzzbuild.REGRESSIONS.glob("*/pending/*--*"))

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


@pytest.mark.parametrize("target", sorted(set(PENDING_TARGETS)))
def test_pending_regressions_still_crash(target):
    """Each pending input still crashes when the target goes where its defect is. When this
    fails, the fix is in: move the input to tests/fuzz/regressions/<target>/ (replayed clean from
    then on), drop the target's way round the defect and its PENDING entry."""
    exe = fuzzbuild.build(target)
    for path in fuzzbuild.regressions(target, pending=True):
        defect = path.name.split("--")[0]
        assert defect in PENDING, f"{path.name}: no reason in PENDING for {defect!r}"
        done = fuzzbuild.replay(exe, [path], pending=defect)
        assert done.returncode != 0, (f"{path.name} no longer crashes ({PENDING[defect]}): the fix is in; "
                                      f"move it to tests/fuzz/regressions/{target}/")
